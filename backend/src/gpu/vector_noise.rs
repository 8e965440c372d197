//! The full-rank vector noise kernels (vector_noise.wgsl): the perturbed bias and gain of the
//! forward and the vector update.

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
        self.perturbed_vector(Kernel::PerturbedBias, y, bias, stream, sigma, batch)
    }

    /// `y[i, row, :] *= 1 + gain + s_i σ ε_i`.
    pub(crate) fn perturbed_gain_kernel(
        &self,
        y: &mut GpuBuffer,
        gain: &GpuBuffer,
        stream: NoiseStream,
        sigma: f32,
        batch: Batch,
    ) -> Result<()> {
        self.perturbed_vector(Kernel::PerturbedGain, y, gain, stream, sigma, batch)
    }

    /// One of the forwards of vector_noise.wgsl: `kernel` applies member i's `v + s_i σ ε_i` to
    /// its rows of `y`.
    fn perturbed_vector(
        &self,
        kernel: Kernel,
        y: &mut GpuBuffer,
        v: &GpuBuffer,
        stream: NoiseStream,
        sigma: f32,
        batch: Batch,
    ) -> Result<()> {
        let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&stream);
        let p = VectorParams {
            len: word("vector length", v.len)?,
            total: word("output length", y.len)?,
            span: word("rows x length", batch.rows * v.len)?,
            pairs: word("pairs", batch.population / 2)?,
            seed_lo,
            seed_hi,
            param_id,
            noise_epoch,
            coef: sigma,
            pair_offset: word("first pair", batch.first_pair())?,
            ..VectorParams::default()
        };
        self.dispatch(kernel, y.len, UniformBlock::of(&p), Storage::of([(1, &y.buffer), (2, &v.buffer)]))
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
