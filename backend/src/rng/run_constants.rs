//! What the hand-written batch kernels (AVX-512, AVX2) hoist out of a run of draws: the Philox
//! round keys, and the work of the first two rounds that does not depend on the block.

use super::{NoiseStream, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1};

/// What the batches of one run share: the Philox round keys, and the first two rounds' work that
/// does not depend on the block (only counter word 0 varies between blocks, so round 0's second
/// product and round 1's first one are the same for every block: computed once, in scalar).
pub(super) struct RunConstants {
    /// `(k0, k1)` of each round, 0 to 9.
    pub(super) keys: [[u64; 2]; 10],
    /// Round 0: `c3 ^ k1`, XORed into the block's `hi(M0 c0)` to give its word 2.
    pub(super) r0_c3_k1: u64,
    /// Round 1: `c1 ^ k0` with `c1 = lo(M1 c2)` of round 0, XORed into `hi(M1 c2)`.
    pub(super) r1_c1_k0: u64,
    /// Round 1: `hi(M0 c0) ^ k1` with `c0` of round 0 (a constant), XORed into word 3.
    pub(super) r1_hi0_k1: u64,
    /// Round 1: `lo(M0 c0)`, the new word 3 of every block.
    pub(super) r1_lo0: u64,
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
