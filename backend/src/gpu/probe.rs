//! Test hooks that run the WGSL RNG itself, for comparison with [`crate::rng`] bit for bit.

use super::context::{word, Dispatch};
use super::shaders::Kernel;
use super::WgpuBackend;
use crate::rng::NoiseStream;
use crate::Result;

impl WgpuBackend {
    /// Philox4x32-10 of each counter under `key`, computed by `shaders/philox.wgsl`.
    pub async fn philox_words(&self, counters: &[[u32; 4]], key: [u32; 2]) -> Result<Vec<[u32; 4]>> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let flat: Vec<u32> = counters.iter().flatten().copied().collect();
        let input = self.ctx.storage("philox counters", flat.len())?;
        self.ctx.queue.write_buffer(&input, 0, bytemuck::cast_slice(&flat));
        let output = self.ctx.storage("philox words", flat.len())?;
        let params = vec![word("counters", counters.len())?, key[0], key[1], 0, 0, 0, 0];
        let groups = self.ctx.grid("philox_words", counters.len())?;
        self.ctx.run(&[Dispatch { kernel: Kernel::PhiloxWords, params, buffers: vec![(1, &input), (2, &output)], groups }])?;
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
        let [lo, hi] = stream.key();
        let params = vec![word("draws", count)?, lo, hi, stream.param_id, stream.noise_epoch, pair, start];
        let groups = self.ctx.grid("normal_draws", count)?;
        self.ctx.run(&[Dispatch { kernel: Kernel::NormalDraws, params, buffers: vec![(3, &output)], groups }])?;
        let bytes = self.ctx.read_bytes(&output, count as u64 * 4).await?;
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }
}
