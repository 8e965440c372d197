//! The wide batch of normals written out with AVX-512 intrinsics: the same arithmetic as
//! [`super::normal_blocks`] and [`super::box_muller`], operation for operation (no fused
//! multiply-add, IEEE division and square root), so the draws are bit for bit those of the
//! portable path. It is faster because it keeps the Philox words in the low halves of 64-bit
//! lanes without ever masking them (one `vpmuludq` per product, the high half moved down with a
//! shuffle instead of a shift), because the block-independent parts of Philox's first two rounds
//! and the round keys are computed once per run ([`RunConstants`]), because the quarter-turn
//! rotation of Box-Muller's sine and cosine is sign-bit arithmetic, and because it lays the 32
//! blocks out so that the Box-Muller results land in draw order after one round of unpacks.

use super::{
    NoiseStream, COS_SERIES, INV_2_24, LN_SERIES, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1, SIN_SERIES, SQRT_HALF_BITS, WIDE, WIDE_DRAWS,
};
use core::arch::x86_64::*;

/// Sets of 8 blocks (one per 64-bit lane) computed side by side.
const SETS: usize = WIDE / 8;

/// What the batches of one run share: the Philox round keys, and the first two rounds' work that
/// does not depend on the block (only counter word 0 varies between blocks, so round 0's second
/// product and round 1's first one are the same for every block: computed once, in scalar).
pub(super) struct RunConstants {
    /// `(k0, k1)` of rounds 2 to 9.
    keys: [[u64; 2]; 10],
    /// Round 0: `c3 ^ k1`, XORed into the block's `hi(M0 c0)` to give its word 2.
    r0_c3_k1: u64,
    /// Round 1: `c1 ^ k0` with `c1 = lo(M1 c2)` of round 0, XORed into `hi(M1 c2)`.
    r1_c1_k0: u64,
    /// Round 1: `hi(M0 c0) ^ k1` with `c0` of round 0 (a constant), XORed into word 3.
    r1_hi0_k1: u64,
    /// Round 1: `lo(M0 c0)`, the new word 3 of every block.
    r1_lo0: u64,
}

impl RunConstants {
    /// The constants of `pair` under `stream`.
    pub(super) fn new(stream: &NoiseStream, pair: u32) -> Self {
        let [mut k0, mut k1] = stream.key();
        let mut keys = [[0u64; 2]; 10];
        for (round, key) in keys.iter_mut().enumerate() {
            if round > 0 {
                k0 = k0.wrapping_add(PHILOX_W0);
                k1 = k1.wrapping_add(PHILOX_W1);
            }
            *key = [u64::from(k0), u64::from(k1)];
        }
        let mulhilo = |a: u32, b: u32| {
            let p = u64::from(a) * u64::from(b);
            ((p >> 32) as u32, p as u32)
        };
        // Round 0: c0' = hi(M1 c2) ^ c1 ^ k0 and c1' = lo(M1 c2) are the same for every block.
        let (hi1, lo1) = mulhilo(PHILOX_M1, stream.param_id);
        let c0_1 = hi1 ^ pair ^ keys[0][0] as u32;
        // Round 1: its first product is M0 c0' for every block.
        let (hi0, lo0) = mulhilo(PHILOX_M0, c0_1);
        Self {
            keys,
            r0_c3_k1: u64::from(stream.noise_epoch ^ keys[0][1] as u32),
            r1_c1_k0: u64::from(lo1 ^ keys[1][0] as u32),
            r1_hi0_k1: u64::from(hi0 ^ keys[1][1] as u32),
            r1_lo0: u64::from(lo0),
        }
    }
}

/// Draws `4 block0 .. 4 (block0 + WIDE)` of the run's pair, in order.
#[target_feature(enable = "avx512f")]
pub(super) fn normal_blocks_wide(run: &RunConstants, block0: u32, out: &mut [f32; WIDE_DRAWS]) {
    let words = philox_sets(run, block0);
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
    // Rotation by q quarter turns: odd q swaps sine and cosine; the sine is negated for
    // q & 2 and the cosine for (q + 1) & 2, by flipping sign bits as scalar negation does.
    let odd = _mm512_test_epi32_mask(q, _mm512_set1_epi32(1));
    let (s_q, c_q) = (_mm512_mask_blend_ps(odd, sin, cos), _mm512_mask_blend_ps(odd, cos, sin));
    let sign = _mm512_set1_epi32(i32::MIN);
    let s_flip = _mm512_slli_epi32::<30>(q);
    let c_flip = _mm512_slli_epi32::<30>(_mm512_add_epi32(q, _mm512_set1_epi32(1)));
    // 0x78: a ^ (b & c).
    let s_q = _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<0x78>(_mm512_castps_si512(s_q), s_flip, sign));
    let c_q = _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<0x78>(_mm512_castps_si512(c_q), c_flip, sign));
    (mul(r, c_q), mul(r, s_q))
}
