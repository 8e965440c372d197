//! The wide batch of normals written out with AVX-512 intrinsics: the floating-point operations
//! of [`super::normal_blocks`] and [`super::box_muller`] (no fused multiply-add, IEEE division
//! and square root; integer steps rearranged and exact power-of-two scalings folded, as
//! [`super::lanes`] argues), so the draws are bit for bit those of the portable path. It is faster
//! because it keeps the Philox words in the low halves of 64-bit lanes without ever masking them
//! (one `vpmuludq` per product, the high half moved down with a shuffle instead of a shift),
//! because the block-independent parts of Philox's first two rounds and the round keys are
//! computed once per run ([`RunConstants`]), because the quarter-turn rotation of Box-Muller's
//! sine and cosine is sign-bit arithmetic, because a batch's Box-Mullers are evaluated step by
//! step side by side, and because it lays the 32 blocks out so that the Box-Muller results land in
//! draw order after one round of unpacks.

use super::lanes::box_muller_lanes;
use super::run_constants::RunConstants;
use super::{COS_SERIES, INV_2_24, LN_SERIES, PHILOX_M0, PHILOX_M1, SIN_SERIES, SQRT_HALF_BITS, WIDE, WIDE_DRAWS};
use core::arch::x86_64::*;

/// Sets of 8 blocks (one per 64-bit lane) computed side by side.
const SETS: usize = WIDE / 8;

/// Draws `4 block0 .. 4 (block0 + WIDE)` of the run's pair, in order.
#[target_feature(enable = "avx512f")]
pub(super) fn normal_blocks_wide(run: &RunConstants, block0: u32, out: &mut [f32; WIDE_DRAWS]) {
    let words = philox_sets(run, block0);
    // Within each half of 16 blocks, vector lane 4L + k holds block 4k + L: after the unpacks in
    // `interleave`, vector k then holds blocks 4k .. 4k + 3, which is draw order.
    let index = _mm512_setr_epi32(0, 8, 16, 24, 2, 10, 18, 26, 4, 12, 20, 28, 6, 14, 22, 30);
    let w: [[__m512i; 4]; SETS / 2] =
        core::array::from_fn(|half| core::array::from_fn(|j| _mm512_permutex2var_epi32(words[j][2 * half], index, words[j][2 * half + 1])));
    // The batch's Box-Mullers (one per set) step by step side by side: each is a long dependent
    // chain, and interleaving them keeps the scheduler fed where one after another would stall.
    let r: [__m512; SETS] = radius16(core::array::from_fn(|i| w[i / 2][2 * (i % 2)]));
    let (sin, cos): ([__m512; SETS], [__m512; SETS]) = sincos16(core::array::from_fn(|i| w[i / 2][2 * (i % 2) + 1]));
    let z: [__m512; 2 * SETS] = core::array::from_fn(|i| {
        let b = i / 2;
        _mm512_mul_ps(r[b], if i % 2 == 0 { cos[b] } else { sin[b] })
    });
    for half in 0..SETS / 2 {
        let [z0, z1, z2, z3] = [z[4 * half], z[4 * half + 1], z[4 * half + 2], z[4 * half + 3]];
        for (k, v) in interleave(z0, z1, z2, z3).into_iter().enumerate() {
            let at = 64 * half + 16 * k;
            // SAFETY: `at + 16 <= WIDE_DRAWS`, the length of `out`.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(at), v) };
        }
    }
}

/// Philox4x32-10 of blocks `block0 + 8 s + lane` for each set `s`: word `j` of that block is the
/// low half of lane `lane` of `result[j][s]` (the high halves hold garbage). Rounds 0 and 1 take
/// their block-independent parts from `run`.
#[target_feature(enable = "avx512f")]
fn philox_sets(run: &RunConstants, block0: u32) -> [[__m512i; SETS]; 4] {
    let m0 = _mm512_set1_epi64(i64::from(PHILOX_M0));
    let m1 = _mm512_set1_epi64(i64::from(PHILOX_M1));
    let splat = |v: u64| _mm512_set1_epi64(v as i64);
    let lanes = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    let (mut c0, mut c1, mut c2, mut c3) = ([m0; SETS], [m0; SETS], [m0; SETS], [m0; SETS]);
    for s in 0..SETS {
        // A carry out of the low word lands in the high half, which no multiply reads.
        let counter = _mm512_add_epi64(splat(u64::from(block0.wrapping_add(8 * s as u32))), lanes);
        // Round 0: only the first product depends on the block.
        let p0 = _mm512_mul_epu32(counter, m0);
        let w2 = _mm512_xor_si512(_mm512_shuffle_epi32::<_MM_PERM_DDBB>(p0), splat(run.r0_c3_k1));
        // Round 1: only the second product does.
        let p1 = _mm512_mul_epu32(w2, m1);
        c0[s] = _mm512_xor_si512(_mm512_shuffle_epi32::<_MM_PERM_DDBB>(p1), splat(run.r1_c1_k0));
        c1[s] = p1;
        c2[s] = _mm512_xor_si512(p0, splat(run.r1_hi0_k1));
        c3[s] = splat(run.r1_lo0);
    }
    for key in &run.keys[2..] {
        let (kv0, kv1) = (splat(key[0]), splat(key[1]));
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

box_muller_lanes! {
    feature: "avx512f",
    radius: radius16,
    sincos: sincos16,
    vectors: (__m512, __m512i),
    intrinsics: {
        _mm512_set1_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps, _mm512_div_ps, _mm512_sqrt_ps,
        _mm512_set1_epi32, _mm512_add_epi32, _mm512_sub_epi32, _mm512_and_si512,
        _mm512_slli_epi32, _mm512_srli_epi32, _mm512_srai_epi32,
        _mm512_cvtepi32_ps, _mm512_castps_si512, _mm512_castsi512_ps,
    },
    // The swap is a blend on a mask of bit 30 of `turn`, each flip one ternary-logic op.
    rotate: |w1, sin, cos| {
        let sign = _mm512_set1_epi32(i32::MIN);
        let turn = _mm512_add_epi32(w1, _mm512_set1_epi32(1 << 29));
        let odd = _mm512_test_epi32_mask(turn, _mm512_set1_epi32(1 << 30));
        let (s_q, c_q) = (_mm512_mask_blend_ps(odd, sin, cos), _mm512_mask_blend_ps(odd, cos, sin));
        let c_flip = _mm512_add_epi32(turn, _mm512_set1_epi32(1 << 30));
        // 0x78: a ^ (b & c).
        let s_q = _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<0x78>(_mm512_castps_si512(s_q), turn, sign));
        let c_q = _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<0x78>(_mm512_castps_si512(c_q), c_flip, sign));
        (s_q, c_q)
    },
    tests: (
        radius16_gives_the_bits_of_the_portable_radius_for_every_input,
        sincos16_gives_the_bits_of_sincos_turns_for_every_input,
        16,
        _mm512_loadu_si512,
        "AVX-512"
    ),
}
