//! The wide batch of normals written out with AVX-512 intrinsics: the same arithmetic as
//! [`super::normal_blocks`] and [`super::box_muller`], operation for operation (no fused
//! multiply-add, IEEE division and square root), so the draws are bit for bit those of the
//! portable path. It is faster because it keeps the Philox words in the low halves of 64-bit
//! lanes without ever masking them (one `vpmuludq` per product, the high half moved down with a
//! shuffle instead of a shift), and because it lays the 32 blocks out so that the Box-Muller
//! results land in draw order after one round of unpacks.

use super::{
    NoiseStream, COS_SERIES, INV_2_24, LN_SERIES, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1, SIN_SERIES, SQRT_HALF_BITS, WIDE, WIDE_DRAWS,
};
use core::arch::x86_64::*;

/// Sets of 8 blocks (one per 64-bit lane) computed side by side.
const SETS: usize = WIDE / 8;

/// Draws `4 block0 .. 4 (block0 + WIDE)` of `pair`, in order.
#[target_feature(enable = "avx512f")]
pub(super) fn normal_blocks_wide(stream: &NoiseStream, pair: u32, block0: u32, out: &mut [f32; WIDE_DRAWS]) {
    let words = philox_sets(stream, pair, block0);
    // Within each half of 16 blocks, vector lane 4L + k holds block 4k + L: after the unpacks in
    // `interleave`, vector k then holds blocks 4k .. 4k + 3, which is draw order.
    let index = _mm512_setr_epi32(0, 8, 16, 24, 2, 10, 18, 26, 4, 12, 20, 28, 6, 14, 22, 30);
    for half in 0..SETS / 2 {
        let w: [__m512i; 4] = core::array::from_fn(|j| _mm512_permutex2var_epi32(words[j][2 * half], index, words[j][2 * half + 1]));
        let (z0, z1) = box_muller16(w[0], w[1]);
        let (z2, z3) = box_muller16(w[2], w[3]);
        for (k, v) in interleave(z0, z1, z2, z3).into_iter().enumerate() {
            let at = 64 * half + 16 * k;
            // SAFETY: `at + 16 <= WIDE_DRAWS`, the length of `out`.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(at), v) };
        }
    }
}

/// Philox4x32-10 of blocks `block0 + 8 s + lane` for each set `s`: word `j` of that block is the
/// low half of lane `lane` of `result[j][s]` (the high halves hold garbage).
#[target_feature(enable = "avx512f")]
fn philox_sets(stream: &NoiseStream, pair: u32, block0: u32) -> [[__m512i; SETS]; 4] {
    let m0 = _mm512_set1_epi64(i64::from(PHILOX_M0));
    let m1 = _mm512_set1_epi64(i64::from(PHILOX_M1));
    let lanes = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    // A carry out of the low word lands in the high half, which no multiply reads.
    let mut c0: [__m512i; SETS] =
        core::array::from_fn(|s| _mm512_add_epi64(_mm512_set1_epi64(i64::from(block0.wrapping_add(8 * s as u32))), lanes));
    let mut c1 = [_mm512_set1_epi64(i64::from(pair)); SETS];
    let mut c2 = [_mm512_set1_epi64(i64::from(stream.param_id)); SETS];
    let mut c3 = [_mm512_set1_epi64(i64::from(stream.noise_epoch)); SETS];
    let [mut k0, mut k1] = stream.key();
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(PHILOX_W0);
            k1 = k1.wrapping_add(PHILOX_W1);
        }
        let (kv0, kv1) = (_mm512_set1_epi64(i64::from(k0)), _mm512_set1_epi64(i64::from(k1)));
        for s in 0..SETS {
            let p0 = _mm512_mul_epu32(c0[s], m0);
            let p1 = _mm512_mul_epu32(c2[s], m1);
            // Copy each product's high word over its low word.
            let hi0 = _mm512_shuffle_epi32::<_MM_PERM_DDBB>(p0);
            let hi1 = _mm512_shuffle_epi32::<_MM_PERM_DDBB>(p1);
            // 0x96: a ^ b ^ c.
            c0[s] = _mm512_ternarylogic_epi64::<0x96>(hi1, c1[s], kv0);
            c1[s] = p1;
            c2[s] = _mm512_ternarylogic_epi64::<0x96>(hi0, c3[s], kv1);
            c3[s] = p0;
        }
    }
    [c0, c1, c2, c3]
}

/// `(z0, z1, z2, z3)` of 16 blocks to four vectors of draws: vector `k`, lane `4L + w`, holds
/// `z_w` of lane `4L + k`.
#[target_feature(enable = "avx512f")]
fn interleave(z0: __m512, z1: __m512, z2: __m512, z3: __m512) -> [__m512; 4] {
    let (t0, t1) = (_mm512_castps_pd(_mm512_unpacklo_ps(z0, z1)), _mm512_castps_pd(_mm512_unpackhi_ps(z0, z1)));
    let (t2, t3) = (_mm512_castps_pd(_mm512_unpacklo_ps(z2, z3)), _mm512_castps_pd(_mm512_unpackhi_ps(z2, z3)));
    [
        _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2)),
        _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2)),
        _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3)),
        _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3)),
    ]
}

/// [`super::box_muller`] on 16 lanes.
#[target_feature(enable = "avx512f")]
fn box_muller16(w0: __m512i, w1: __m512i) -> (__m512, __m512) {
    let splat = _mm512_set1_ps;
    let (mul, add) = (_mm512_mul_ps, _mm512_add_ps);
    let one = splat(1.0);
    let u1 = mul(_mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_srli_epi32::<8>(w0), _mm512_set1_epi32(1))), splat(INV_2_24));
    // ln_unit(u1)
    let bits = _mm512_castps_si512(u1);
    let e = _mm512_srai_epi32::<23>(_mm512_sub_epi32(bits, _mm512_set1_epi32(SQRT_HALF_BITS as i32)));
    let m = _mm512_castsi512_ps(_mm512_sub_epi32(bits, _mm512_slli_epi32::<23>(e)));
    let s = _mm512_div_ps(_mm512_sub_ps(m, one), add(m, one));
    let s2 = mul(s, s);
    let [l3, l5, l7, l9] = LN_SERIES.map(|c| splat(c));
    let series = add(one, mul(s2, add(l3, mul(s2, add(l5, mul(s2, add(l7, mul(s2, l9))))))));
    let ln = add(mul(_mm512_cvtepi32_ps(e), splat(core::f32::consts::LN_2)), mul(mul(splat(2.0), s), series));
    let r = _mm512_sqrt_ps(mul(splat(-2.0), ln));
    // sincos_turns(w1 >> 8)
    let k = _mm512_srli_epi32::<8>(w1);
    let q = _mm512_srli_epi32::<22>(_mm512_add_epi32(k, _mm512_set1_epi32(1 << 21)));
    let phi = mul(mul(_mm512_cvtepi32_ps(_mm512_sub_epi32(k, _mm512_slli_epi32::<22>(q))), splat(INV_2_24)), splat(core::f32::consts::TAU));
    let p2 = mul(phi, phi);
    let [s3, s5, s7, s9] = SIN_SERIES.map(|c| splat(c));
    let [c2, c4, c6, c8] = COS_SERIES.map(|c| splat(c));
    let sin = mul(phi, add(one, mul(p2, add(s3, mul(p2, add(s5, mul(p2, add(s7, mul(p2, s9)))))))));
    let cos = add(one, mul(p2, add(c2, mul(p2, add(c4, mul(p2, add(c6, mul(p2, c8))))))));
    let odd = _mm512_test_epi32_mask(q, _mm512_set1_epi32(1));
    let (s_q, c_q) = (_mm512_mask_blend_ps(odd, sin, cos), _mm512_mask_blend_ps(odd, cos, negate(sin)));
    let flip = _mm512_test_epi32_mask(q, _mm512_set1_epi32(2));
    let (s_q, c_q) = (_mm512_mask_blend_ps(flip, s_q, negate(s_q)), _mm512_mask_blend_ps(flip, c_q, negate(c_q)));
    (mul(r, c_q), mul(r, s_q))
}

/// `-x`, by flipping the sign bit as scalar negation does.
#[target_feature(enable = "avx512f")]
fn negate(x: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(i32::MIN)))
}
