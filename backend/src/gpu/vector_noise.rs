//! The full-rank vector noise kernels (vector_noise.wgsl): the perturbed bias of the forward and
//! the vector update.

use super::buffer::GpuBuffer;
use super::context::{word, Storage};
use super::params::{stream_fields, UniformBlock, VectorParams};
use super::shaders::Kernel;
use super::wgpu_backend::WgpuBackend;
use crate::ops::Batch;
use crate::rng::NoiseStream;
use crate::Result;

impl WgpuBackend {
    /// `y[i, row, :] += bias + s_i σ ε_i`.
    pub(crate) fn perturbed_bias_kernel(
        &self,
        y: &mut GpuBuffer,
        bias: &GpuBuffer,
        stream: NoiseStream,
        sigma: f32,
        batch: Batch,
    ) -> Result<()> {
        let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&stream);
        let p = VectorParams {
            len: word("bias length", bias.len)?,
            total: word("output length", y.len)?,
            span: word("rows x length", batch.rows * bias.len)?,
            pairs: word("pairs", batch.population / 2)?,
            seed_lo,
            seed_hi,
            param_id,
            noise_epoch,
            coef: sigma,
            ..VectorParams::default()
        };
        self.dispatch(Kernel::PerturbedBias, y.len, UniformBlock::of(&p), Storage::of([(1, &y.buffer), (2, &bias.buffer)]))
    }

    /// `g = σ/√N Σ_i f_i s_i ε_i`.
    pub(crate) fn vector_update_kernel(&self, fitness: &[f32], stream: NoiseStream, sigma: f32, g: &mut GpuBuffer) -> Result<()> {
        let d = self.fitness_differences(fitness)?;
        let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&stream);
        let p = VectorParams {
            len: word("gradient length", g.len)?,
            pairs: word("pairs", fitness.len() / 2)?,
            seed_lo,
            seed_hi,
            param_id,
            noise_epoch,
            coef: sigma / (fitness.len() as f32).sqrt(),
            ..VectorParams::default()
        };
        self.dispatch(Kernel::VectorUpdate, g.len, UniformBlock::of(&p), Storage::of([(3, d.buffer()), (4, &g.buffer)]))
    }
}
