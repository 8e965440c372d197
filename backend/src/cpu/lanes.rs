//! Vector-lane arithmetic for the transformer kernels (`transformer.rs`): a branch-free `exp`,
//! sums in 16 lanes added as a tree, and [`vectorized`], which compiles a kernel's loops for the
//! widest vector unit the processor has. These kernels define no recorded bits (the EGGROLL
//! kernels keep their own fixed orders); they are checked against f64 definitions and against
//! transformers within tolerance.

/// Lanes of a vector sum: 16 f32 values fill an AVX-512 register, two AVX2 ones.
pub(crate) const LANES: usize = 16;

/// Defines `fn $name(args) -> R` that runs its body compiled for AVX-512, or AVX2 with FMA, when
/// the processor has them (the body is inlined into a copy compiled for those features), else as
/// it is: the loops of the body then run in the widest vector registers there are.
macro_rules! vectorized {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the processor supports the features the function is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use vectorized;

/// `log2 e`.
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` in two parts, the first with trailing zero bits so that `n LN2_HI` is exact.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5 2^23`: adding it rounds an f32 of magnitude below `2^22` to an integer, to nearest even,
/// and leaves that integer in the low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;
/// Cephes' minimax coefficients of `(e^r - 1 - r) / r²` on `|r| <= ln2 / 2`.
const EXP_POLY: [f32; 6] = [1.987_569_2e-4, 1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];

/// `e^x` to within 2 ulp for `x` in `[-87.3, 88.3]`, clamped there outside it (NaN stays NaN):
/// only arithmetic and bit operations, so that loops over it run in vector lanes.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let c = x.clamp(-87.3, 88.3);
    let shifted = c * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = (c - n * LN2_HI) - n * LN2_LO;
    let p = EXP_POLY.iter().fold(0.0f32, |acc, &k| acc * r + k);
    let e = p * (r * r) + r + 1.0;
    // The integer n sits in the low bits of `shifted`; 2^n is its biased exponent.
    let n_bits = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let scale = f32::from_bits((n_bits + 127).wrapping_shl(23) as u32);
    if x.is_nan() {
        x
    } else {
        e * scale
    }
}

/// The sum of 16 lanes, halves added to halves.
#[inline(always)]
pub(crate) fn lane_sum(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0]
}

/// `Σ a_i b_i`: 16 lanes over the whole chunks, the tail added after.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (a16, b16) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a16.remainder().iter().zip(b16.remainder()).map(|(x, y)| x * y).sum();
    for (ca, cb) in a16.zip(b16) {
        for i in 0..LANES {
            acc[i] += ca[i] * cb[i];
        }
    }
    lane_sum(acc) + tail
}

/// `Σ f(x_i)` over `xs`, 16 lanes, the tail added after.
#[inline(always)]
pub(crate) fn sum_of(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += f(c[i]);
        }
    }
    lane_sum(acc) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let ulp = (want as f32).next_up() as f64 - want as f32 as f64;
            worst = worst.max((exp(x) as f64 - want).abs() / ulp);
            x += 0.000_731;
        }
        assert!(worst <= 2.0, "exp is {worst} ulp off");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1000.0) < 1.3e-38 && exp(1000.0) > 2e38 && exp(1000.0).is_finite());
    }

    #[test]
    fn sums_match_f64_on_every_path() {
        let a: Vec<f32> = (0..77).map(|i| ((i * 37 % 19) as f32 - 9.0) * 0.125).collect();
        let b: Vec<f32> = (0..77).map(|i| ((i * 11 % 23) as f32 - 11.0) * 0.5).collect();
        let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot(&a, &b) as f64 - want).abs() < 1e-4);
        vectorized! {
            fn fast_dot(a: &[f32], b: &[f32]) -> f32 {
                dot(a, b)
            }
        }
        assert_eq!(fast_dot(&a, &b), dot(&a, &b));
        let squares: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
        assert!((sum_of(&a, |x| x * x) as f64 - squares).abs() < 1e-4);
    }
}
