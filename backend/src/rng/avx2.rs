//! The wide batch of normals written out with AVX2 intrinsics, for processors without AVX-512:
//! the arithmetic of [`super::avx512`] on 8 lanes (the same Box-Muller steps, from
//! [`super::lanes`], so the same bits as the portable path). Philox words sit in the low halves of
//! 64-bit lanes, four blocks per vector; two vectors of words are packed into one of eight 32-bit
//! lanes for Box-Muller, and the blocks are laid out so that a 4 x 8 transpose by unpacks leaves
//! the draws in order.

use super::lanes::box_muller_lanes;
use super::run_constants::RunConstants;
use super::{COS_SERIES, INV_2_24, LN_SERIES, PHILOX_M0, PHILOX_M1, SIN_SERIES, SQRT_HALF_BITS, WIDE, WIDE_DRAWS};
use core::arch::x86_64::*;

/// Blocks per group: two sets of four 64-bit lanes, one vector of eight 32-bit lanes.
const GROUP: usize = 8;
/// Groups computed side by side (AVX2 has 16 vector registers).
const GROUPS_AT_ONCE: usize = 2;

/// Draws `4 block0 .. 4 (block0 + WIDE)` of the run's pair, in order.
#[target_feature(enable = "avx2")]
pub(super) fn normal_blocks_wide(run: &RunConstants, block0: u32, out: &mut [f32; WIDE_DRAWS]) {
    for first in (0..WIDE / GROUP).step_by(GROUPS_AT_ONCE) {
        let words: [[__m256i; 4]; GROUPS_AT_ONCE] =
            core::array::from_fn(|g| philox_group(run, block0.wrapping_add((GROUP * (first + g)) as u32)));
        // The Box-Mullers of the groups step by step side by side (long dependent chains).
        let r: [__m256; 2 * GROUPS_AT_ONCE] = radius8(core::array::from_fn(|i| words[i / 2][2 * (i % 2)]));
        let (sin, cos): ([__m256; 2 * GROUPS_AT_ONCE], [__m256; 2 * GROUPS_AT_ONCE]) =
            sincos8(core::array::from_fn(|i| words[i / 2][2 * (i % 2) + 1]));
        for g in 0..GROUPS_AT_ONCE {
            let (b01, b23) = (2 * g, 2 * g + 1);
            let z = [
                _mm256_mul_ps(r[b01], cos[b01]),
                _mm256_mul_ps(r[b01], sin[b01]),
                _mm256_mul_ps(r[b23], cos[b23]),
                _mm256_mul_ps(r[b23], sin[b23]),
            ];
            for (k, v) in transpose(z).into_iter().enumerate() {
                let at = 4 * GROUP * (first + g) + 8 * k;
                // SAFETY: `at + 8 <= WIDE_DRAWS`, the length of `out`.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(at), v) };
            }
        }
    }
}

/// Philox4x32-10 of blocks `block0 .. block0 + 8`, word `j` of each in one vector of eight 32-bit
/// lanes. Lane `L` holds block `block0 + ORDER[L]`, the order [`transpose`] undoes.
#[target_feature(enable = "avx2")]
fn philox_group(run: &RunConstants, block0: u32) -> [__m256i; 4] {
    let m0 = _mm256_set1_epi64x(i64::from(PHILOX_M0));
    let m1 = _mm256_set1_epi64x(i64::from(PHILOX_M1));
    let splat = |v: u64| _mm256_set1_epi64x(v as i64);
    let xor = _mm256_xor_si256;
    // After packing (low words of set 0's lanes 0, 1, then set 1's lanes 0, 1, in each 128-bit
    // half), lane L holds block ORDER[L] = [0, 2, 4, 6, 1, 3, 5, 7]: set 0 takes blocks 0, 2, 1, 3
    // and set 1 blocks 4, 6, 5, 7.
    let lanes = [_mm256_setr_epi64x(0, 2, 1, 3), _mm256_setr_epi64x(4, 6, 5, 7)];
    // Words 0-3 of each set.
    let mut sets: [[__m256i; 4]; 2] = core::array::from_fn(|s| {
        // A carry out of the low word lands in the high half, which no multiply reads.
        let counter = _mm256_add_epi64(splat(u64::from(block0)), lanes[s]);
        // Round 0: only the first product depends on the block.
        let p0 = _mm256_mul_epu32(counter, m0);
        let w2 = xor(_mm256_shuffle_epi32::<0xf5>(p0), splat(run.r0_c3_k1));
        // Round 1: only the second product does.
        let p1 = _mm256_mul_epu32(w2, m1);
        [xor(_mm256_shuffle_epi32::<0xf5>(p1), splat(run.r1_c1_k0)), p1, xor(p0, splat(run.r1_hi0_k1)), splat(run.r1_lo0)]
    });
    for key in &run.keys[2..] {
        let (kv0, kv1) = (splat(key[0]), splat(key[1]));
        for [c0, c1, c2, c3] in sets.iter_mut() {
            let p0 = _mm256_mul_epu32(*c0, m0);
            let p1 = _mm256_mul_epu32(*c2, m1);
            // Copy each product's high word over its low word (0xf5: dwords 1, 1, 3, 3).
            *c0 = xor(xor(_mm256_shuffle_epi32::<0xf5>(p1), *c1), kv0);
            *c1 = p1;
            *c2 = xor(xor(_mm256_shuffle_epi32::<0xf5>(p0), *c3), kv1);
            *c3 = p0;
        }
    }
    // The low words of both sets into one vector: dwords 0, 2 of set 0 then of set 1, per half.
    let [a, b] = sets.map(|words| words.map(|w| _mm256_castsi256_ps(w)));
    core::array::from_fn(|j| _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(a[j], b[j])))
}

/// `(z0, z1, z2, z3)` of a group to its 32 draws in order: unpacks give vector `k` = lanes `k`
/// and `k + 4`, which hold consecutive blocks (see [`philox_group`]).
#[target_feature(enable = "avx2")]
fn transpose(z: [__m256; 4]) -> [__m256; 4] {
    let (t0, t1) = (_mm256_castps_pd(_mm256_unpacklo_ps(z[0], z[1])), _mm256_castps_pd(_mm256_unpackhi_ps(z[0], z[1])));
    let (t2, t3) = (_mm256_castps_pd(_mm256_unpacklo_ps(z[2], z[3])), _mm256_castps_pd(_mm256_unpackhi_ps(z[2], z[3])));
    [
        _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2)),
        _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2)),
        _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3)),
        _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3)),
    ]
}

box_muller_lanes! {
    feature: "avx2",
    radius: radius8,
    sincos: sincos8,
    vectors: (__m256, __m256i),
    intrinsics: {
        _mm256_set1_ps, _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps, _mm256_div_ps, _mm256_sqrt_ps,
        _mm256_set1_epi32, _mm256_add_epi32, _mm256_sub_epi32, _mm256_and_si256,
        _mm256_slli_epi32, _mm256_srli_epi32, _mm256_srai_epi32,
        _mm256_cvtepi32_ps, _mm256_castps_si256, _mm256_castsi256_ps,
    },
    // The swap is a blend on bit 30 of `turn` moved to the sign bit, the flips an and-xor.
    rotate: |w1, sin, cos| {
        let sign = _mm256_set1_ps(-0.0);
        let turn = _mm256_add_epi32(w1, _mm256_set1_epi32(1 << 29));
        let odd = _mm256_castsi256_ps(_mm256_slli_epi32::<1>(turn));
        let (s_q, c_q) = (_mm256_blendv_ps(sin, cos, odd), _mm256_blendv_ps(cos, sin, odd));
        let c_flip = _mm256_add_epi32(turn, _mm256_set1_epi32(1 << 30));
        let s_q = _mm256_xor_ps(s_q, _mm256_and_ps(_mm256_castsi256_ps(turn), sign));
        let c_q = _mm256_xor_ps(c_q, _mm256_and_ps(_mm256_castsi256_ps(c_flip), sign));
        (s_q, c_q)
    },
    tests: (
        radius8_gives_the_bits_of_the_portable_radius_for_every_input,
        sincos8_gives_the_bits_of_sincos_turns_for_every_input,
        8,
        _mm256_loadu_si256,
        "AVX2"
    ),
}
