//! Counter-based random numbers: Philox4x32-10 and the normal draws EGGROLL's noise is made of.
//!
//! Every noise value is a pure function of `(seed, parameter id, noise epoch, pair index, element
//! index)`, so the noise of a population member never depends on how the work is split (tile size,
//! batch, workgroup count) or on which backend runs it. `shaders/philox.wgsl` implements the very
//! same functions for the GPU; `docs/rng.md` documents the mapping.

/// Philox multiplier for counter word 0.
pub const PHILOX_M0: u32 = 0xD251_1F53;
/// Philox multiplier for counter word 2.
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
/// Weyl increment of key word 0 (golden ratio).
pub const PHILOX_W0: u32 = 0x9E37_79B9;
/// Weyl increment of key word 1 (sqrt(3) - 1).
pub const PHILOX_W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = u64::from(a) * u64::from(b);
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32 with 10 rounds (Salmon et al., SC'11): maps a 128-bit counter and a 64-bit key to
/// 128 random bits. Reproduces Random123's known-answer vectors bit for bit.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(PHILOX_W0);
            k1 = k1.wrapping_add(PHILOX_W1);
        }
        let (hi0, lo0) = mulhilo(PHILOX_M0, c0);
        let (hi1, lo1) = mulhilo(PHILOX_M1, c2);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
    }
    [c0, c1, c2, c3]
}

/// Identifies one parameter's noise at one noise epoch: the RNG key is the seed, the counter holds
/// the parameter id, the noise epoch, the antithetic pair index and the element block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NoiseStream {
    /// Experiment seed (the Philox key).
    pub seed: u64,
    /// Stable id of the parameter (counter word 2).
    pub param_id: u32,
    /// `epoch / noise_reuse` (or 0 when `noise_reuse == 0`), counter word 3.
    pub noise_epoch: u32,
}

impl NoiseStream {
    /// A stream for `param_id` at `noise_epoch` under `seed`.
    pub fn new(seed: u64, param_id: u32, noise_epoch: u32) -> Self {
        Self { seed, param_id, noise_epoch }
    }

    /// The Philox key: the seed's low and high words.
    #[inline]
    pub fn key(&self) -> [u32; 2] {
        [self.seed as u32, (self.seed >> 32) as u32]
    }

    /// The Philox counter for the block of four elements holding `element` of pair `pair`.
    #[inline]
    pub fn counter(&self, pair: u32, element: u32) -> [u32; 4] {
        [element >> 2, pair, self.param_id, self.noise_epoch]
    }

    /// The standard normal draw number `element` of antithetic pair `pair`.
    #[inline]
    pub fn normal(&self, pair: u32, element: u32) -> f32 {
        let words = philox4x32_10(self.counter(pair, element), self.key());
        let lane = (element & 3) as usize;
        let (z_cos, z_sin) = box_muller(words[lane & 2], words[(lane & 2) + 1]);
        if lane & 1 == 0 {
            z_cos
        } else {
            z_sin
        }
    }

    /// Fills `out` with draws `start .. start + out.len()` of pair `pair`, four per Philox call.
    pub fn fill_normals(&self, pair: u32, start: u32, out: &mut [f32]) {
        let key = self.key();
        let mut element = start;
        let mut i = 0;
        while i < out.len() {
            let words = philox4x32_10(self.counter(pair, element), key);
            let (a, b) = box_muller(words[0], words[1]);
            let (c, d) = box_muller(words[2], words[3]);
            let block = [a, b, c, d];
            let lane = (element & 3) as usize;
            let take = (4 - lane).min(out.len() - i);
            out[i..i + take].copy_from_slice(&block[lane..lane + take]);
            i += take;
            element = element.wrapping_add(take as u32);
        }
    }
}

/// The noise epoch of training epoch `epoch`: a new epoch of noise every `noise_reuse` epochs, or
/// the same noise for ever when `noise_reuse == 0`.
pub fn noise_epoch(epoch: u32, noise_reuse: u32) -> u32 {
    if noise_reuse == 0 {
        0
    } else {
        epoch / noise_reuse
    }
}

/// 2^-24, the spacing of the uniform grid the 24 high bits of a word land on.
const INV_2_24: f32 = 1.0 / 16_777_216.0;

/// Box-Muller: two u32 words to two independent standard normals `(r cos t, r sin t)`.
///
/// `u1 = (hi24(w0) + 1) / 2^24` lies in (0, 1] so the log is finite (|z| <= 5.77), and
/// `u2 = hi24(w1) / 2^24` lies in [0, 1). Both conversions are exact in f32.
#[inline(always)]
pub fn box_muller(w0: u32, w1: u32) -> (f32, f32) {
    let u1 = ((w0 >> 8) + 1) as f32 * INV_2_24;
    let u2 = (w1 >> 8) as f32 * INV_2_24;
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (core::f32::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// Where the draws of a low-rank perturbation live in its pair's stream: `A` (m x r, row-major)
/// takes elements `[0, m r)`, `B` (n x r, row-major) takes `[m r, (m + n) r)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FactorLayout {
    /// Rows of `A` (output features of the layer).
    pub m: u32,
    /// Rows of `B` (input features of the layer).
    pub n: u32,
    /// Rank r: columns of `A` and `B`.
    pub rank: u32,
}

impl FactorLayout {
    /// Element index of `A[j, k]`.
    #[inline]
    pub fn a_index(&self, j: u32, k: u32) -> u32 {
        j * self.rank + k
    }
    /// Element index of `B[l, k]`.
    #[inline]
    pub fn b_index(&self, l: u32, k: u32) -> u32 {
        (self.m + l) * self.rank + k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn antithetic_pairs_and_layout_are_independent_of_chunking() {
        let s = NoiseStream::new(42, 3, 7);
        let mut whole = vec![0.0; 37];
        s.fill_normals(5, 3, &mut whole);
        for (i, z) in whole.iter().enumerate() {
            assert_eq!(*z, s.normal(5, 3 + i as u32));
        }
        let mut parts = vec![0.0; 37];
        s.fill_normals(5, 3, &mut parts[..10]);
        s.fill_normals(5, 13, &mut parts[10..]);
        assert_eq!(whole, parts);
    }

    #[test]
    fn streams_differ_by_every_key_part() {
        let base = NoiseStream::new(1, 2, 3);
        let z = base.normal(4, 5);
        assert_ne!(z, NoiseStream::new(2, 2, 3).normal(4, 5));
        assert_ne!(z, NoiseStream::new(1, 9, 3).normal(4, 5));
        assert_ne!(z, NoiseStream::new(1, 2, 4).normal(4, 5));
        assert_ne!(z, base.normal(6, 5));
        assert_ne!(z, base.normal(4, 6));
    }

    #[test]
    fn noise_epoch_follows_noise_reuse() {
        assert_eq!(noise_epoch(17, 0), 0);
        assert_eq!(noise_epoch(17, 1), 17);
        assert_eq!(noise_epoch(17, 5), 3);
    }
}
