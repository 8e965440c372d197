//! The Box-Muller steps of the hand-written wide paths, written once for both vector widths:
//! [`box_muller_lanes!`] gives `avx2` its 8-lane functions and `avx512` its 16-lane ones from the
//! same body, with each width's intrinsics, so the two paths take the same floating-point steps.
//!
//! The steps are those of [`super::box_muller`] (no fused multiply-add, IEEE division and square
//! root) with the integer steps rearranged and exact power-of-two scalings folded into
//! neighbouring products, which changes no bit (the generated tests check all 2^24 inputs of each
//! half against the portable path):
//! - `u1 = f 2^-24` with `f = hi24(w0) + 1` is exact, so its bits are `f`'s less 24 in the
//!   exponent; the reduction `m = u1 / 2^e` keeps the low 23 bits of `bits(u1) - bits(√½)`.
//! - `-2 ln = -2 (e ln2 + 2s S)`: scaling by -2 commutes with rounding (no overflow, no
//!   subnormal), so it is `e (-2 ln2) + (-4s) S` with `-2 ln2` and `-4s` exact.
//! - The angle: `j = k - 2^22 q` is the low 22 bits of `k = hi24(w1)` read as a signed number,
//!   one shift pair; `q mod 4` is bits 30-31 of `w1 + 2^29` (the rotation by 4 quarter turns is
//!   none), whose bit 31 is the sine's flip and bit 30 the swap; `(j 2^-24) 2π` rounds as
//!   `j (2π 2^-24)`.

/// Defines, for one vector width, `$radius` (`r = sqrt(-2 ln u1)` of `L` vectors of Philox
/// word 0) and `$sincos` ([`super::sincos_turns`]`(w1 >> 8)` of `L` vectors of word 1), compiled
/// for `$feature` on the float vectors `$f` and integer vectors `$i` with the intrinsics named
/// after `intrinsics:`. `rotate: |w1, sin, cos| { .. }` is the width's rotation of one vector's
/// `(sin, cos)` by the quarter turns of `turn = w1 + 2^29` (odd quarter turns swap sine and
/// cosine; the sine is negated for bit 31 of `turn` and the cosine for bit 31 of `turn + 2^30`,
/// by flipping sign bits as scalar negation does).
///
/// It also defines the unit tests that check both functions against the portable path on every
/// input, run when the processor has `$feature` (`$test_radius` and `$test_sincos`, on `$lanes`
/// lanes loaded with `$load`).
macro_rules! box_muller_lanes {
    (
        feature: $feature:tt,
        radius: $radius:ident,
        sincos: $sincos:ident,
        vectors: ($f:ty, $i:ty),
        intrinsics: {
            $set1_ps:ident, $add_ps:ident, $sub_ps:ident, $mul_ps:ident, $div_ps:ident, $sqrt_ps:ident,
            $set1_epi32:ident, $add_epi32:ident, $sub_epi32:ident, $and_si:ident,
            $slli_epi32:ident, $srli_epi32:ident, $srai_epi32:ident,
            $cvtepi32_ps:ident, $castps_si:ident, $castsi_ps:ident $(,)?
        },
        rotate: |$w1:ident, $sin:ident, $cos:ident| $rotate:block,
        tests: ($test_radius:ident, $test_sincos:ident, $lanes:literal, $load:ident, $name:literal) $(,)?
    ) => {
        /// `r = sqrt(-2 ln u1)` of `L` vectors of word 0.
        #[target_feature(enable = $feature)]
        fn $radius<const L: usize>(w0: [$i; L]) -> [$f; L] {
            let splat = $set1_ps;
            let (mul, add) = ($mul_ps, $add_ps);
            let int = $set1_epi32;
            let one = splat(1.0);
            let f = w0.map(|w| $cvtepi32_ps($add_epi32($srli_epi32::<8>(w), int(1))));
            let shifted = f.map(|f| $sub_epi32($castps_si(f), int((SQRT_HALF_BITS + (24 << 23)) as i32)));
            let e = shifted.map(|t| $srai_epi32::<23>(t));
            let m = shifted.map(|t| $castsi_ps($add_epi32($and_si(t, int(0x7f_ffff)), int(SQRT_HALF_BITS as i32))));
            let s = m.map(|m| $div_ps($sub_ps(m, one), add(m, one)));
            let s2 = s.map(|s| mul(s, s));
            let [l3, l5, l7, l9] = LN_SERIES.map(|c| splat(c));
            let mut series = s2.map(|s2| add(l7, mul(s2, l9)));
            for c in [l5, l3, one] {
                series = core::array::from_fn(|i| add(c, mul(s2[i], series[i])));
            }
            core::array::from_fn(|i| {
                let minus_2_ln =
                    add(mul($cvtepi32_ps(e[i]), splat(-2.0 * core::f32::consts::LN_2)), mul(mul(splat(-4.0), s[i]), series[i]));
                $sqrt_ps(minus_2_ln)
            })
        }

        /// [`super::sincos_turns`]`(w1 >> 8)` of `L` vectors of word 1: `(sin, cos)`.
        #[target_feature(enable = $feature)]
        fn $sincos<const L: usize>(w1: [$i; L]) -> ([$f; L], [$f; L]) {
            let splat = $set1_ps;
            let (mul, add) = ($mul_ps, $add_ps);
            let one = splat(1.0);
            let phi = w1.map(|w| mul($cvtepi32_ps($srai_epi32::<10>($slli_epi32::<2>(w))), splat(INV_2_24 * core::f32::consts::TAU)));
            let p2 = phi.map(|p| mul(p, p));
            let [s3, s5, s7, s9] = SIN_SERIES.map(|c| splat(c));
            let [c2, c4, c6, c8] = COS_SERIES.map(|c| splat(c));
            let (mut sin, mut cos) = (p2.map(|p2| add(s7, mul(p2, s9))), p2.map(|p2| add(c6, mul(p2, c8))));
            for (s_k, c_k) in [(s5, c4), (s3, c2), (one, one)] {
                sin = core::array::from_fn(|i| add(s_k, mul(p2[i], sin[i])));
                cos = core::array::from_fn(|i| add(c_k, mul(p2[i], cos[i])));
            }
            let sin: [$f; L] = core::array::from_fn(|i| mul(phi[i], sin[i]));
            let rotated = core::array::from_fn(|i| {
                let ($w1, $sin, $cos) = (w1[i], sin[i], cos[i]);
                $rotate
            });
            (rotated.map(|(s, _)| s), rotated.map(|(_, c)| c))
        }

        #[cfg(test)]
        mod tests {
            use super::super::{ln_unit, sincos_turns, INV_2_24};
            use super::*;

            /// Runs `check` on `$lanes` words at a time: `hi24 = k` for every k < 2^24, the low 8
            /// bits (which no path reads) set to garbage.
            fn every_hi24(mut check: impl FnMut(&[u32; $lanes], $i)) {
                for k0 in (0..1u32 << 24).step_by($lanes) {
                    let words: [u32; $lanes] = core::array::from_fn(|i| ((k0 + i as u32) << 8) | (k0 / $lanes & 0xff) ^ i as u32);
                    // SAFETY: the words are one vector's load.
                    check(&words, unsafe { $load(words.as_ptr().cast()) });
                }
            }

            fn lanes(v: $f) -> [f32; $lanes] {
                // SAFETY: both are a vector's bytes of plain data.
                unsafe { core::mem::transmute(v) }
            }

            #[test]
            fn $test_radius() {
                if !std::arch::is_x86_feature_detected!($feature) {
                    eprintln!(concat!("no ", $name, " on this processor: the ", $name, " path is not used, nothing to check"));
                    return;
                }
                every_hi24(|words, v| {
                    // SAFETY: the processor has the feature (checked above).
                    let [got] = unsafe { $radius([v]) }.map(lanes);
                    for (w, r) in words.iter().zip(got) {
                        let u1 = ((w >> 8) + 1) as i32 as f32 * INV_2_24;
                        let want = (-2.0 * ln_unit(u1)).sqrt();
                        assert_eq!(r.to_bits(), want.to_bits(), "w0 = {w:#010x}");
                    }
                });
            }

            #[test]
            fn $test_sincos() {
                if !std::arch::is_x86_feature_detected!($feature) {
                    eprintln!(concat!("no ", $name, " on this processor: the ", $name, " path is not used, nothing to check"));
                    return;
                }
                every_hi24(|words, v| {
                    // SAFETY: as above.
                    let ([sin], [cos]) = unsafe { $sincos([v]) };
                    for ((w, s), c) in words.iter().zip(lanes(sin)).zip(lanes(cos)) {
                        let (want_s, want_c) = sincos_turns(w >> 8);
                        assert_eq!((s.to_bits(), c.to_bits()), (want_s.to_bits(), want_c.to_bits()), "w1 = {w:#010x}");
                    }
                });
            }
        }
    };
}

pub(super) use box_muller_lanes;
