//! Test hooks that run the WGSL RNG itself, for comparison with [`crate::rng`] bit for bit
//! (cargo feature `testing`).

use super::context::word;
use super::kernels::probe::{NormalDraws, NormalDrawsBuffers, PhiloxWords, PhiloxWordsBuffers};
use super::params::ProbeParams;
use super::wgpu_backend::WgpuBackend;
use crate::rng::NoiseStream;
use crate::Result;

impl WgpuBackend {
    /// Destroys the device, as a browser may at any time: every later call reports the loss.
    pub fn destroy_device(&self) {
        self.ctx.device.destroy();
    }

    /// Philox4x32-10 of each counter under `key`, computed by `shaders/philox.wgsl`.
    pub async fn philox_words(&self, counters: &[[u32; 4]], key: [u32; 2]) -> Result<Vec<[u32; 4]>> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let flat: Vec<u32> = counters.iter().flatten().copied().collect();
        let input = self.ctx.storage("philox counters", flat.len())?;
        self.ctx.write_buffer(&input, 0, bytemuck::cast_slice(&flat));
        let output = self.ctx.storage("philox words", flat.len())?;
        let params = ProbeParams { count: word("counters", counters.len())?, seed_lo: key[0], seed_hi: key[1], ..ProbeParams::default() };
        self.dispatch(PhiloxWords, counters.len(), &params, PhiloxWordsBuffers { counters: &input, words: &output })?;
        let bytes = self.ctx.read_bytes(&output, flat.len() as u64 * 4).await?;
        Ok(bytes
            .chunks_exact(16)
            .map(|c| std::array::from_fn(|i| u32::from_le_bytes([c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]])))
            .collect())
    }

    /// Draws `start .. start + count` of pair `pair` of `stream`, computed by `normal_at` of
    /// `shaders/philox.wgsl` (compare with [`NoiseStream::normal`]).
    pub async fn normals(&self, stream: NoiseStream, pair: u32, start: u32, count: usize) -> Result<Vec<f32>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let output = self.ctx.storage("normal draws", count)?;
        let [seed_lo, seed_hi] = stream.key();
        let params = ProbeParams {
            count: word("draws", count)?,
            seed_lo,
            seed_hi,
            param_id: stream.param_id,
            noise_epoch: stream.noise_epoch,
            pair,
            start,
            ..ProbeParams::default()
        };
        self.dispatch(NormalDraws, count, &params, NormalDrawsBuffers { normals: &output })?;
        let bytes = self.ctx.read_bytes(&output, count as u64 * 4).await?;
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }
}
