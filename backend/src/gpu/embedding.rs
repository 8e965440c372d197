//! The embedding lookups (embedding.wgsl): one dispatch each, one invocation per output value;
//! the tokens are uploaded into a pooled scratch buffer.

use super::buffer::GpuBuffer;
use super::context::{word, Dispatch, ScratchUse, Storage};
use super::params::{stream_fields, EmbeddingParams, UniformBlock};
use super::shaders::Kernel;
use super::wgpu_backend::WgpuBackend;
use crate::ops::{Batch, InputLayout, LowRankNoise};
use crate::Result;

/// The parameters of a perturbed lookup of `batch` with `noise`, its noise scaled by `scale`.
fn perturbed_params(noise: LowRankNoise, batch: Batch, scale: f32) -> Result<EmbeddingParams> {
    let s = noise.shape;
    let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&noise.stream);
    Ok(EmbeddingParams {
        rows: word("rows", batch.rows)?,
        m: word("m", s.m)?,
        n: word("n", s.n)?,
        rank: word("rank", s.rank)?,
        count: word("population", batch.population)?,
        shared_input: u32::from(batch.input == InputLayout::Shared),
        seed_lo,
        seed_hi,
        param_id,
        noise_epoch,
        scale,
        pair_offset: word("first pair", batch.first_pair())?,
    })
}

impl WgpuBackend {
    /// Every member's perturbed rows of the table for its tokens.
    pub(crate) fn perturbed_embedding_kernel(
        &self,
        tokens: &[u32],
        table: &GpuBuffer,
        noise: LowRankNoise,
        batch: Batch,
        y: &mut GpuBuffer,
    ) -> Result<()> {
        let params = perturbed_params(noise, batch, noise.shape.scale())?;
        self.gather(Kernel::PerturbedEmbedding, "perturbed_embedding", tokens, table, params, y)
    }

    /// Every member's rows of its table with naive ES's full-rank noise, for its tokens.
    pub(crate) fn naive_perturbed_embedding_kernel(
        &self,
        tokens: &[u32],
        table: &GpuBuffer,
        noise: LowRankNoise,
        batch: Batch,
        y: &mut GpuBuffer,
    ) -> Result<()> {
        let params = perturbed_params(noise, batch, noise.shape.sigma)?;
        self.gather(Kernel::NaivePerturbedEmbedding, "naive_perturbed_embedding", tokens, table, params, y)
    }

    /// The table's rows for the tokens, unperturbed.
    pub(crate) fn embedding_kernel(&self, tokens: &[u32], table: &GpuBuffer, cols: usize, y: &mut GpuBuffer) -> Result<()> {
        let params = EmbeddingParams {
            rows: word("rows", tokens.len())?,
            n: word("cols", cols)?,
            count: 1,
            shared_input: 1,
            ..EmbeddingParams::default()
        };
        self.gather(Kernel::Embedding, "embedding", tokens, table, params, y)
    }

    /// Uploads the tokens and runs `kernel` over every value of `y`.
    fn gather(
        &self,
        kernel: Kernel,
        what: &str,
        tokens: &[u32],
        table: &GpuBuffer,
        params: EmbeddingParams,
        y: &mut GpuBuffer,
    ) -> Result<()> {
        let t = self.ctx.scratch(ScratchUse::Tokens, tokens.len())?;
        self.ctx.queue.write_buffer(t.buffer(), 0, bytemuck::cast_slice(tokens));
        word("output values", y.len)?;
        self.ctx.run(&[Dispatch {
            kernel,
            params: UniformBlock::of(&params),
            storage: Storage::of([(1, &table.buffer), (2, t.buffer()), (3, &y.buffer)]),
            groups: self.ctx.grid(what, y.len)?,
        }])
    }
}
