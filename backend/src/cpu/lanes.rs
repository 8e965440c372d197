//! Vector-lane arithmetic for the transformer kernels (`transformer.rs`): a branch-free `exp`,
//! sums in lanes added as a tree of halves ([`halving_sum`], also the order of `gemm.rs`'s dot
//! products and of the sampling reference), and [`vectorized`], which compiles a kernel's loops
//! for the widest vector unit the processor has; also the 16 x 16 register transpose
//! ([`transpose16`]) of the low-rank kernel and of the GEMM's packing, and the cache-line
//! prefetch ([`prefetch_lines`]) of both kernels. The transformer kernels
//! define no recorded bits (the EGGROLL kernels keep their own fixed orders); they are checked
//! against f64 definitions and against transformers within tolerance.

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

/// 16 lanes.
pub(crate) type Lanes = [f32; LANES];

/// The 16 values of `xs` from `at`.
#[inline(always)]
fn lanes_at(xs: &[f32], at: usize) -> Lanes {
    xs[at..at + LANES].try_into().expect("16 lanes")
}

/// [`exp`] of every lane.
#[inline(always)]
pub(crate) fn exp_lanes(x: Lanes) -> Lanes {
    let mut out = [0.0f32; LANES];
    for i in 0..LANES {
        out[i] = exp(x[i]);
    }
    out
}

/// The sum of 16 lanes, halves added to halves ([`halving_sum`]).
#[inline(always)]
pub(crate) fn lane_sum(acc: Lanes) -> f32 {
    halving_sum(acc)
}

/// The sum of `N` lanes (a power of two) as a tree of halves: lane `l` plus lane `l + N / 2`,
/// then plus lane `l + N / 4`, ..., `l + 1`, the order of a workgroup's reduction. The one such
/// sum of the CPU backend: the transformer kernels', the dot products' of `gemm.rs` and the
/// sampling reference's (whose bits follow sampling.wgsl).
#[inline(always)]
pub(crate) fn halving_sum<const N: usize>(mut lanes: [f32; N]) -> f32 {
    let mut width = N / 2;
    while width > 0 {
        for l in 0..width {
            lanes[l] += lanes[l + width];
        }
        width /= 2;
    }
    lanes[0]
}

/// `Σ a_i b_i`: 16 lanes over the whole chunks, the tail added after.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let full = len / LANES * LANES;
    let mut acc = [0.0f32; LANES];
    for at in (0..full).step_by(LANES) {
        let (x, y) = (lanes_at(a, at), lanes_at(b, at));
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a[full..len].iter().zip(&b[full..len]).map(|(x, y)| x * y).sum();
    lane_sum(acc) + tail
}

/// [`dot`] in AVX-512 registers, to the bit: the same products, sums in the same 16 lanes, and
/// the lanes added as [`lane_sum`] adds them. `a` and `b` are whole 16-lane chunks.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    assert!(a.len() == b.len() && a.len().is_multiple_of(LANES), "whole 16-lane chunks");
    let mut acc = _mm512_setzero_ps();
    for at in (0..a.len()).step_by(LANES) {
        // SAFETY: `at + 16 <= len` for both slices (asserted above).
        let (x, y) = unsafe { (_mm512_loadu_ps(a.as_ptr().add(at)), _mm512_loadu_ps(b.as_ptr().add(at))) };
        acc = _mm512_add_ps(acc, _mm512_mul_ps(x, y));
    }
    let h8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc))));
    let h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps::<1>(h8));
    let h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps::<1>(h2, h2)))
}

/// [`dot`] in AVX2 registers, to the bit, as [`dot_avx512`]: lanes 0-7 in one register and 8-15
/// in another, whose sum is the first step of [`lane_sum`]. `a` and `b` are whole 16-lane chunks.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    assert!(a.len() == b.len() && a.len().is_multiple_of(LANES), "whole 16-lane chunks");
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for at in (0..a.len()).step_by(LANES) {
        // SAFETY: `at + 16 <= len` for both slices (asserted above).
        let (x_lo, y_lo, x_hi, y_hi) = unsafe {
            let (a, b) = (a.as_ptr().add(at), b.as_ptr().add(at));
            (_mm256_loadu_ps(a), _mm256_loadu_ps(b), _mm256_loadu_ps(a.add(8)), _mm256_loadu_ps(b.add(8)))
        };
        lo = _mm256_add_ps(lo, _mm256_mul_ps(x_lo, y_lo));
        hi = _mm256_add_ps(hi, _mm256_mul_ps(x_hi, y_hi));
    }
    let h8 = _mm256_add_ps(lo, hi);
    let h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps::<1>(h8));
    let h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps::<1>(h2, h2)))
}

/// `Σ f(x_i)` over `xs`, `f` applied to 16 lanes at a time (the tail padded), summed in lanes.
#[inline(always)]
pub(crate) fn sum_of(xs: &[f32], f: impl Fn(Lanes) -> Lanes) -> f32 {
    let full = xs.len() / LANES * LANES;
    let mut acc = [0.0f32; LANES];
    for at in (0..full).step_by(LANES) {
        let v = f(lanes_at(xs, at));
        for i in 0..LANES {
            acc[i] += v[i];
        }
    }
    let rest = xs.len() - full;
    let tail = if rest > 0 {
        let mut padded = [0.0f32; LANES];
        padded[..rest].copy_from_slice(&xs[full..]);
        f(padded)[..rest].iter().sum()
    } else {
        0.0
    };
    lane_sum(acc) + tail
}

/// Floats per cache line.
pub(crate) const CACHE_LINE: usize = 16;

/// Asks the processor to bring `count` cache lines of `data`, from line `first` on (those that
/// exist), into its first-level cache; a hint, with no effect on any value.
#[inline(always)]
pub(crate) fn prefetch_lines(data: &[f32], first: usize, count: usize) {
    #[cfg(target_arch = "x86_64")]
    for line in first..(first + count).min(data.len().div_ceil(CACHE_LINE)) {
        // SAFETY: a prefetch reads nothing and cannot fault; the address is inside `data`.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(data.as_ptr().add(line * CACHE_LINE) as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, first, count);
}

/// The 16 x 16 transpose in AVX-512 registers: lane `i` of result `l` is lane `l` of `r[i]`.
///
/// # Safety
/// Only inside a function compiled for AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn transpose16(r: [std::arch::x86_64::__m512; 16]) -> [std::arch::x86_64::__m512; 16] {
    use std::arch::x86_64::*;
    let (ps, pd) = (_mm512_castpd_ps, _mm512_castps_pd);
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        let (a, b, c, d) = (pd(t[4 * i]), pd(t[4 * i + 1]), pd(t[4 * i + 2]), pd(t[4 * i + 3]));
        u[4 * i] = ps(_mm512_unpacklo_pd(a, c));
        u[4 * i + 1] = ps(_mm512_unpackhi_pd(a, c));
        u[4 * i + 2] = ps(_mm512_unpacklo_pd(b, d));
        u[4 * i + 3] = ps(_mm512_unpackhi_pd(b, d));
    }
    for i in 0..4 {
        t[i] = _mm512_shuffle_f32x4::<0x88>(u[i], u[i + 4]);
        t[i + 4] = _mm512_shuffle_f32x4::<0xdd>(u[i], u[i + 4]);
        t[i + 8] = _mm512_shuffle_f32x4::<0x88>(u[i + 8], u[i + 12]);
        t[i + 12] = _mm512_shuffle_f32x4::<0xdd>(u[i + 8], u[i + 12]);
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        out[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[i + 8]);
        out[i + 8] = _mm512_shuffle_f32x4::<0xdd>(t[i], t[i + 8]);
    }
    out
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
        assert!((sum_of(&a, |x| x.map(|v| v * v)) as f64 - squares).abs() < 1e-4);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F.
            assert_eq!(unsafe { dot_avx512(&a[..64], &b[..64]) }, dot(&a[..64], &b[..64]));
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2.
            assert_eq!(unsafe { dot_avx2(&a[..64], &b[..64]) }, dot(&a[..64], &b[..64]));
        }
        let e = exp_lanes(lanes_at(&a, 0));
        assert!(e.iter().zip(&a).all(|(e, x)| *e == exp(*x)));
    }
}
