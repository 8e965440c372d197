//! `tanh` for the CPU backend's activations: fdlibm's single-precision algorithm (`tanhf` over
//! `expm1f`), the one glibc's `tanhf` runs, written out here so that it inlines into the
//! activation loop instead of costing two library calls per value. Every step is the same f32
//! operation in the same order, so the results are glibc's to the bit (the tests compare them on
//! glibc targets), and the same on every platform.

/// `ln 2`, split so that `k ln2_hi` is exact for the `k` of [`expm1`].
const LN2_HI: f32 = f32::from_bits(0x3f31_7180);
const LN2_LO: f32 = f32::from_bits(0x3717_f7d1);
const INV_LN2: f32 = f32::from_bits(0x3fb8_aa3b);
/// The scaled coefficients of fdlibm's rational approximation of `expm1` on `[0, 0.5 ln 2]`.
const Q: [f32; 5] = [
    f32::from_bits(0xbd08_8889),
    f32::from_bits(0x3ad0_0d01),
    f32::from_bits(0xb8a6_70cd),
    f32::from_bits(0x3686_7e54),
    f32::from_bits(0xb457_edbb),
];
/// `1 - TINY` rounds to the f32 below 1 (fdlibm's ±1 with the inexact flag raised).
const TINY: f32 = 1.0e-30;

/// `tanh` of every value of `xs` in place, bit for bit glibc's `tanhf`: compiled for AVX-512 /
/// AVX2 when the processor has them, where the branch-free [`tanh`] runs in vector lanes.
pub(crate) fn tanh_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor supports the features the function is compiled for.
            return unsafe { tanh_in_place_avx512(xs) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { tanh_in_place_avx2(xs) };
        }
    }
    tanh_in_place_body(xs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tanh_in_place_avx512(xs: &mut [f32]) {
    tanh_in_place_body(xs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tanh_in_place_avx2(xs: &mut [f32]) {
    tanh_in_place_body(xs)
}

/// A plain `for` loop (no adaptor left to inline) so that it is compiled with its caller's features.
#[inline(always)]
fn tanh_in_place_body(xs: &mut [f32]) {
    for v in xs.iter_mut() {
        *v = tanh(*v);
    }
}

/// `tanh(x)`, bit for bit glibc's `tanhf` (fdlibm's): `±(1 - 2 / (expm1(2|x|) + 2))` for
/// `|x| >= 1`, `∓expm1(-2|x|) / (expm1(-2|x|) + 2)` below, `x (1 + x)` under `2^-55` and `±1` from
/// 22 on. Every case is computed and the one that applies selected, so that a loop over values
/// runs in vector lanes without branches.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let bits = x.to_bits();
    let ix = bits & 0x7fff_ffff;
    let positive = bits >> 31 == 0;
    let a = f32::from_bits(ix);
    let big = ix >= 0x3f80_0000;
    let t = expm1(if big { 2.0 * a } else { -2.0 * a });
    // `2 / (t + 2)` or `-t / (t + 2)`: one division serves both cases.
    let q = (if big { 2.0 } else { -t }) / (t + 2.0);
    let z = if big { 1.0 - q } else { q };
    let z = if ix < 0x41b0_0000 { z } else { 1.0 - TINY };
    let signed = if positive { z } else { -z };
    let r = if ix < 0x2400_0000 { x * (1.0 + x) } else { signed };
    // fdlibm's `1 / x ± 1`: ±1 for ±inf, the NaN itself for a NaN.
    let inf_nan = if ix > 0x7f80_0000 {
        x + x
    } else if positive {
        1.0
    } else {
        -1.0
    };
    if ix >= 0x7f80_0000 {
        inf_nan
    } else {
        r
    }
}

/// `exp(x) - 1` for the arguments [`tanh`] gives it (`-2 < x <= 0` or `2 <= x < 44`, where no
/// case of overflow or of `x <= -27 ln 2` arises), as fdlibm's `expm1f` computes it: `x` reduced
/// to `x - k ln 2` with `|x - k ln 2| <= 0.5 ln 2` (`k = ±1` from the split `ln 2` up to
/// `1.5 ln 2`), the rational approximation there, and `2^k` put back by the case of `k` that
/// keeps the most bits; every case computed and one selected.
#[inline(always)]
fn expm1(x: f32) -> f32 {
    let bits = x.to_bits();
    let negative = bits >> 31 != 0;
    let hx = bits & 0x7fff_ffff;
    let near = hx < 0x3f85_1592;
    let kf = (INV_LN2 * x + if negative { -0.5 } else { 0.5 }) as i32;
    let k_far = kf as f32;
    let (hi_near, lo_near, k_near) = if negative { (x + LN2_HI, -LN2_LO, -1i32) } else { (x - LN2_HI, LN2_LO, 1) };
    let hi = if near { hi_near } else { x - k_far * LN2_HI };
    let lo = if near { lo_near } else { k_far * LN2_LO };
    let k_red = if near { k_near } else { kf };
    let reduced = hi - lo;
    let c_red = (hi - reduced) - lo;
    let reduce = hx > 0x3eb1_7218;
    let xr = if reduce { reduced } else { x };
    let c = if reduce { c_red } else { 0.0 };
    let k = if reduce { k_red } else { 0 };
    let hfx = 0.5 * xr;
    let hxs = xr * hfx;
    let r1 = 1.0 + hxs * (Q[0] + hxs * (Q[1] + hxs * (Q[2] + hxs * (Q[3] + hxs * Q[4]))));
    let t = 3.0 - r1 * hfx;
    let e = hxs * ((r1 - t) / (6.0 - xr * t));
    let r0 = xr - (xr * e - hxs);
    let e2 = (xr * (e - c) - c) - hxs;
    let r_m1 = 0.5 * (xr - e2) - 0.5;
    let r_p1 = if xr < -0.25 { -2.0 * (e2 - (xr + 0.5)) } else { 1.0 + 2.0 * (xr - e2) };
    let scale = (k << 23) as u32;
    let scaled = |y: f32| f32::from_bits(y.to_bits().wrapping_add(scale));
    let r_far = scaled(1.0 - (e2 - xr)) - 1.0;
    let kc = k.clamp(0, 31) as u32;
    let t_low = f32::from_bits(0x3f80_0000u32.wrapping_sub(0x0100_0000u32 >> kc));
    let r_low = scaled(t_low - (e2 - xr));
    let t_high = f32::from_bits(((0x7f - k.clamp(0, 0x7f)) as u32) << 23);
    let r_high = scaled((xr - (e2 + t_high)) + 1.0);
    let r = if k <= -2 || k > 56 {
        r_far
    } else if k < 23 {
        r_low
    } else {
        r_high
    };
    let r = if k == 1 { r_p1 } else { r };
    let r = if k == -1 { r_m1 } else { r };
    let r = if k == 0 { r0 } else { r };
    if hx < 0x3300_0000 {
        x
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    /// Every 61st f32 (all signs, exponents and a spread of mantissas, NaNs and infinities among
    /// them), and the region where the policy networks' activations live densely, through the
    /// vectorised loop and one at a time, against glibc's `tanhf`, which `f32::tanh` calls on
    /// glibc targets.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn tanh_is_glibcs_to_the_bit() {
        let spread = (0..=u32::MAX).step_by(61).map(f32::from_bits);
        let dense = (0..4_000_000).map(|i| (i as f32 - 2e6) * 4e-6);
        let xs: Vec<f32> = spread.chain(dense).collect();
        let mut lanes = xs.clone();
        super::tanh_in_place(&mut lanes);
        for (&x, &v) in xs.iter().zip(&lanes) {
            let glibc = x.tanh();
            for ours in [v, super::tanh(x)] {
                assert!(ours.to_bits() == glibc.to_bits(), "tanh({x:e}) = {ours:e}, glibc {glibc:e}");
            }
        }
    }
}
