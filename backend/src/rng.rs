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

    /// Fills `out` with draws `start .. start + out.len()` of pair `pair` (element indices wrap
    /// at 2^32, as in [`NoiseStream::normal`]): exactly the values of [`NoiseStream::normal`],
    /// computed 32 Philox blocks at a time (4 for short runs) on the fastest [`FillPath`] the
    /// processor runs. No fused multiply-add is introduced, so every path gives the same bits.
    #[inline]
    pub fn fill_normals(&self, pair: u32, start: u32, out: &mut [f32]) {
        // SAFETY: the fastest path is one the processor runs.
        unsafe { self.fill_normals_unchecked(FillPath::fastest(), pair, start, out) }
    }

    /// [`NoiseStream::fill_normals`] on a chosen path (to compare or check the paths); an
    /// [`Error::Unsupported`](crate::Error::Unsupported) naming it where the processor lacks it.
    pub fn fill_normals_on(&self, path: FillPath, pair: u32, start: u32, out: &mut [f32]) -> crate::Result<()> {
        if !path.available() {
            let feature = if path == FillPath::Avx512 { "AVX-512F" } else { "AVX2" };
            return Err(crate::Error::Unsupported(format!("the {} draw path needs an x86-64 processor with {feature}", path.name())));
        }
        // SAFETY: checked just above.
        unsafe { self.fill_normals_unchecked(path, pair, start, out) };
        Ok(())
    }

    /// The fill on `path`, which the caller has checked the processor runs.
    #[inline]
    unsafe fn fill_normals_unchecked(&self, path: FillPath, pair: u32, start: u32, out: &mut [f32]) {
        match path {
            // SAFETY (both): the caller checked that the processor has the features the
            // function is compiled for.
            #[cfg(target_arch = "x86_64")]
            FillPath::Avx512 => unsafe { fill_normals_avx512(self, pair, start, out) },
            #[cfg(target_arch = "x86_64")]
            FillPath::Avx2 => unsafe { fill_normals_avx2(self, pair, start, out) },
            #[cfg(not(target_arch = "x86_64"))]
            FillPath::Avx512 | FillPath::Avx2 => unreachable!("not available off x86-64"),
            FillPath::Portable => fill_normals_body(self, pair, start, out, |b, o| normal_blocks_wide(self, pair, b, o)),
        }
    }
}

/// The implementations of [`NoiseStream::fill_normals`]. They give the same bits; they differ in
/// speed and in what the processor must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FillPath {
    /// Hand-written AVX-512F kernel (x86-64).
    Avx512,
    /// Hand-written AVX2 kernel (x86-64).
    Avx2,
    /// Portable Rust, vectorised by the compiler for the build's target.
    Portable,
}

impl FillPath {
    /// Every path, fastest first.
    pub const ALL: [FillPath; 3] = [FillPath::Avx512, FillPath::Avx2, FillPath::Portable];

    /// Whether this processor runs the path.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            FillPath::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            FillPath::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            FillPath::Avx512 | FillPath::Avx2 => false,
            FillPath::Portable => true,
        }
    }

    /// The fastest path this processor runs: the one [`NoiseStream::fill_normals`] takes
    /// (found once per process; small fills are frequent enough for the lookup to show).
    #[inline]
    pub fn fastest() -> FillPath {
        static FASTEST: std::sync::OnceLock<FillPath> = std::sync::OnceLock::new();
        *FASTEST.get_or_init(|| FillPath::ALL.into_iter().find(|p| p.available()).unwrap_or(FillPath::Portable))
    }

    /// Short name: `avx512`, `avx2`, `portable`.
    pub fn name(self) -> &'static str {
        match self {
            FillPath::Avx512 => "avx512",
            FillPath::Avx2 => "avx2",
            FillPath::Portable => "portable",
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod lanes;
#[cfg(target_arch = "x86_64")]
mod run_constants;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fill_normals_avx512(stream: &NoiseStream, pair: u32, start: u32, out: &mut [f32]) {
    let run = run_constants::RunConstants::new(stream, pair);
    fill_normals_body(stream, pair, start, out, |b, o| avx512::normal_blocks_wide(&run, b, o))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_normals_avx2(stream: &NoiseStream, pair: u32, start: u32, out: &mut [f32]) {
    let run = run_constants::RunConstants::new(stream, pair);
    fill_normals_body(stream, pair, start, out, |b, o| avx2::normal_blocks_wide(&run, b, o))
}

/// The fill loop shared by every path; `wide(block0, out)` draws the wide batch of this
/// stream's `pair` that starts at block `block0`.
#[inline(always)]
fn fill_normals_body(stream: &NoiseStream, pair: u32, start: u32, out: &mut [f32], wide: impl Fn(u32, &mut [f32; WIDE_DRAWS])) {
    // Batches count blocks on past the end of the stream; a run that passes element 2^32 - 1 is
    // split there and goes on from element 0, as single draws do.
    let to_end = (1u64 << 32) - u64::from(start);
    let (head, tail) = out.split_at_mut(out.len().min(usize::try_from(to_end).unwrap_or(usize::MAX)));
    let mut batch = [0.0f32; WIDE_DRAWS];
    let mut narrow = [[0.0f32; 4]; NARROW];
    for (mut element, run) in [(start, head), (0, tail)] {
        let mut i = 0;
        while i < run.len() {
            let first = element & !3;
            let offset = (element - first) as usize;
            let left = run.len() - i;
            if offset == 0 && left >= WIDE_DRAWS {
                // A whole batch lands straight in `run`.
                let target: &mut [f32; WIDE_DRAWS] = (&mut run[i..i + WIDE_DRAWS]).try_into().expect("batch-sized slice");
                wide(first >> 2, target);
                i += WIDE_DRAWS;
                element = element.wrapping_add(WIDE_DRAWS as u32);
                continue;
            }
            // Short runs (small layers, tails) take the narrow blocks: a wide batch would draw up
            // to WIDE_DRAWS values to keep a handful.
            let block: &[f32] = if offset + left > 4 * NARROW {
                wide(first >> 2, &mut batch);
                &batch
            } else {
                normal_blocks(stream, pair, first >> 2, &mut narrow);
                narrow.as_flattened()
            };
            let take = (block.len() - offset).min(left);
            run[i..i + take].copy_from_slice(&block[offset..offset + take]);
            i += take;
            element = element.wrapping_add(take as u32);
        }
    }
}

/// One wide batch on the portable path (vectorised by the compiler).
#[inline(always)]
fn normal_blocks_wide(stream: &NoiseStream, pair: u32, block0: u32, out: &mut [f32; WIDE_DRAWS]) {
    let mut blocks = [[0.0f32; 4]; WIDE];
    normal_blocks(stream, pair, block0, &mut blocks);
    out.copy_from_slice(blocks.as_flattened());
}

/// The noise epoch of training epoch `epoch`: a new epoch of noise every `noise_reuse` epochs, or
/// the same noise for ever when `noise_reuse == 0`.
pub fn noise_epoch(epoch: u32, noise_reuse: u32) -> u32 {
    epoch.checked_div(noise_reuse).unwrap_or(0)
}

/// 2^-24, the spacing of the uniform grid the 24 high bits of a word land on.
const INV_2_24: f32 = 1.0 / 16_777_216.0;
/// Bits of √½ as f32: [`ln_unit`] reduces its argument to [√½, √2).
const SQRT_HALF_BITS: u32 = 0x3f35_04f3;
/// Coefficients of s³, s⁵, s⁷, s⁹ in the atanh series of [`ln_unit`] (over 2s).
const LN_SERIES: [f32; 4] = [1.0 / 3.0, 1.0 / 5.0, 1.0 / 7.0, 1.0 / 9.0];
/// Coefficients of φ³, φ⁵, φ⁷, φ⁹ in the sine series of [`sincos_turns`] (over φ).
const SIN_SERIES: [f32; 4] = [-1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0, 1.0 / 362_880.0];
/// Coefficients of φ², φ⁴, φ⁶, φ⁸ in the cosine series of [`sincos_turns`].
const COS_SERIES: [f32; 4] = [-0.5, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40_320.0];

/// Natural log for x in (0, 1], portable and vectorisable: x = 2^e m with m in [√½, √2), then
/// ln m = 2 atanh(s), s = (m - 1)/(m + 1), by its odd series to s^9 (truncation < 5e-9).
/// `shaders/philox.wgsl` computes the same formula.
#[inline(always)]
pub(crate) fn ln_unit(x: f32) -> f32 {
    let bits = x.to_bits();
    // Exponent relative to √½: m = x / 2^e lands in [√½, √2).
    let shifted = bits.wrapping_sub(SQRT_HALF_BITS);
    let e = (shifted as i32) >> 23;
    let m = f32::from_bits(bits.wrapping_sub((e as u32) << 23));
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let [c3, c5, c7, c9] = LN_SERIES;
    let series = 1.0 + s2 * (c3 + s2 * (c5 + s2 * (c7 + s2 * c9)));
    e as f32 * core::f32::consts::LN_2 + 2.0 * s * series
}

/// `(sin 2πu, cos 2πu)` for the turn fraction `u = k / 2^24`, `k < 2^24`, portable and
/// vectorisable: `q` is the nearest quarter turn (integer arithmetic), `f = u - q/4` in
/// [-1/8, 1/8] exactly, Taylor series of sin and cos of φ = 2πf to degree 9 and 8 (truncation
/// < 3e-8), then a rotation by q quarter turns. `shaders/philox.wgsl` computes the same formula.
#[inline(always)]
pub(crate) fn sincos_turns(k: u32) -> (f32, f32) {
    let q = (k + (1 << 21)) >> 22;
    let phi = (k as i32 - (q << 22) as i32) as f32 * INV_2_24 * core::f32::consts::TAU;
    let p2 = phi * phi;
    let [s3, s5, s7, s9] = SIN_SERIES;
    let [c2, c4, c6, c8] = COS_SERIES;
    let sin = phi * (1.0 + p2 * (s3 + p2 * (s5 + p2 * (s7 + p2 * s9))));
    let cos = 1.0 + p2 * (c2 + p2 * (c4 + p2 * (c6 + p2 * c8)));
    let (s, c) = if q & 1 == 0 { (sin, cos) } else { (cos, -sin) };
    if q & 2 == 0 {
        (s, c)
    } else {
        (-s, -c)
    }
}

/// Box-Muller: two u32 words to two independent standard normals `(r cos t, r sin t)`.
///
/// `u1 = (hi24(w0) + 1) / 2^24` lies in (0, 1] so the log is finite (|z| <= 5.77), and
/// `t = 2π hi24(w1) / 2^24` lies in [0, 2π). Both conversions are exact in f32.
#[inline(always)]
pub(crate) fn box_muller(w0: u32, w1: u32) -> (f32, f32) {
    let u1 = ((w0 >> 8) + 1) as i32 as f32 * INV_2_24;
    let r = (-2.0 * ln_unit(u1)).sqrt();
    let (s, c) = sincos_turns(w1 >> 8);
    (r * c, r * s)
}

/// Philox blocks computed side by side so the compiler vectorises them.
const WIDE: usize = 32;
/// Draws in one wide batch.
const WIDE_DRAWS: usize = 4 * WIDE;
/// Blocks side by side for short runs.
const NARROW: usize = 4;

/// Normals of `LANES` consecutive blocks (`4 LANES` draws) starting at block `block0`.
#[inline(always)]
fn normal_blocks<const LANES: usize>(stream: &NoiseStream, pair: u32, block0: u32, out: &mut [[f32; 4]; LANES]) {
    // Words live in the low halves of u64 lanes, so each 32x32->64 product is one widening
    // multiply of the vector unit (no packing and unpacking between rounds).
    const LO: u64 = 0xffff_ffff;
    let [k0, k1] = stream.key();
    let (mut k0, mut k1) = (u64::from(k0), u64::from(k1));
    let mut c0: [u64; LANES] = core::array::from_fn(|i| u64::from(block0.wrapping_add(i as u32)));
    let mut c1 = [u64::from(pair); LANES];
    let mut c2 = [u64::from(stream.param_id); LANES];
    let mut c3 = [u64::from(stream.noise_epoch); LANES];
    for round in 0..10 {
        if round > 0 {
            k0 = (k0 + u64::from(PHILOX_W0)) & LO;
            k1 = (k1 + u64::from(PHILOX_W1)) & LO;
        }
        for i in 0..LANES {
            let p0 = u64::from(PHILOX_M0) * (c0[i] & LO);
            let p1 = u64::from(PHILOX_M1) * (c2[i] & LO);
            // The low words keep the products' high halves above bit 31: only the low 32 bits
            // of a lane ever feed a multiply or the output, so masking them would be wasted work.
            (c0[i], c1[i], c2[i], c3[i]) = ((p1 >> 32) ^ c1[i] ^ k0, p1, (p0 >> 32) ^ c3[i] ^ k1, p0);
        }
    }
    let mut z = [[0.0f32; LANES]; 4];
    for i in 0..LANES {
        (z[0][i], z[1][i]) = box_muller(c0[i] as u32, c1[i] as u32);
        (z[2][i], z[3][i]) = box_muller(c2[i] as u32, c3[i] as u32);
    }
    for i in 0..LANES {
        for w in 0..4 {
            out[i][w] = z[w][i];
        }
    }
}

/// Where the draws of a low-rank perturbation live in its pair's stream, column by column:
/// `A` (m x r) takes elements `[0, m r)` with `A[j, k]` at `k m + j`, `B` (n x r) takes
/// `[m r, (m + n) r)` with `B[l, k]` at `m r + k n + l`. Each factor column is a contiguous run
/// of draws, which is the order the kernels consume them in.
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
        k * self.m + j
    }
    /// Element index of `B[l, k]`.
    #[inline]
    pub fn b_index(&self, l: u32, k: u32) -> u32 {
        self.m * self.rank + k * self.n + l
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
    fn every_fill_path_gives_the_bits_of_single_draws() {
        // Starts on and off block boundaries, lengths around the narrow, wide and batch sizes.
        let s = NoiseStream::new(0x0123_4567_89ab_cdef, 11, 3);
        let cases = [
            (0, 16),
            (0, 128),
            (0, 640),
            (1, 127),
            (2, 129),
            (3, 300),
            (128, 1000),
            (4093, 517),
            (u32::MAX - 300, 301),
            (u32::MAX - 100, 300),
        ];
        for path in FillPath::ALL {
            if !path.available() {
                eprintln!("this processor lacks the {} path: not checked here", path.name());
                assert!(s.fill_normals_on(path, 9, 0, &mut [0.0; 4]).is_err(), "{path:?} refused");
                continue;
            }
            for (start, len) in cases {
                let mut fill = vec![0.0; len];
                s.fill_normals_on(path, 9, start, &mut fill).expect("available path");
                for (i, z) in fill.iter().enumerate() {
                    let want = s.normal(9, start.wrapping_add(i as u32));
                    assert_eq!(z.to_bits(), want.to_bits(), "{} path, start {start}, element {i}", path.name());
                }
            }
        }
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
    fn polynomial_ln_and_sincos_are_accurate() {
        for i in 1..=4096u32 {
            let x = i as f32 / 4096.0;
            let want = f64::from(x).ln();
            assert!((f64::from(ln_unit(x)) - want).abs() < 2e-7 * (1.0 + want.abs()), "ln({x})");
            let tiny = x * 1e-6;
            assert!((f64::from(ln_unit(tiny)) - f64::from(tiny).ln()).abs() < 4e-6, "ln({tiny})");
            let k = ((i - 1) << 12) | ((i * 7) & 0xfff);
            let (s, c) = sincos_turns(k);
            let t = std::f64::consts::TAU * f64::from(k) / 16_777_216.0;
            assert!((f64::from(s) - t.sin()).abs() < 3e-7 && (f64::from(c) - t.cos()).abs() < 3e-7, "sincos({k})");
        }
    }

    #[test]
    fn noise_epoch_follows_noise_reuse() {
        assert_eq!(noise_epoch(17, 0), 0);
        assert_eq!(noise_epoch(17, 1), 17);
        assert_eq!(noise_epoch(17, 5), 3);
    }
}
