//! [`Backend`] for [`SelectedBackend`]: every call handed to the backend inside, with the
//! buffers of its kind (`forward!`, `made!`).

use super::buffer::{Selected, SelectedBuffer};
use super::SelectedBackend;
use crate::ops::{Activation, AdamParams, Batch, DType, LowRankNoise, Recurrence};
use crate::rng::NoiseStream;
use crate::{AdapterDescription, Kernels, MemoryLimits, Result};

impl Kernels for SelectedBackend {
    type Buffer = SelectedBuffer;

    fn describe(&self) -> AdapterDescription {
        forward!(self, b() => b.describe())
    }

    fn upload(&self, data: &[f32]) -> Result<SelectedBuffer> {
        made!(self, b => b.upload(data))
    }

    fn upload_as(&self, data: &[f32], dtype: DType) -> Result<SelectedBuffer> {
        made!(self, b => b.upload_as(data, dtype))
    }

    /// The buffer's own storage type, whichever backend asks (so that the checks in front of a
    /// kernel see it, and the kernel then refuses a buffer of the other kind).
    fn dtype(&self, buffer: &SelectedBuffer) -> DType {
        match buffer {
            Selected::Cpu(_) => DType::F32,
            Selected::Wgpu(g) => g.dtype,
        }
    }

    fn zeros(&self, len: usize) -> Result<SelectedBuffer> {
        made!(self, b => b.zeros(len))
    }

    /// The buffer's own length, whichever backend asks (as for [`Kernels::dtype`]).
    fn len(&self, buffer: &SelectedBuffer) -> usize {
        match buffer {
            Selected::Cpu(v) => v.len(),
            Selected::Wgpu(g) => g.len,
        }
    }

    async fn read(&self, buffer: &SelectedBuffer) -> Result<Vec<f32>> {
        forward!(self, b(buffer) => b.read(buffer).await)
    }

    async fn synchronize(&self) -> Result<()> {
        forward!(self, b() => b.synchronize().await)
    }

    fn memory_limits(&self) -> MemoryLimits {
        forward!(self, b() => b.memory_limits())
    }

    fn set_noise_cache(&self, bytes: u64) {
        forward!(self, b() => b.set_noise_cache(bytes))
    }

    fn write_unchecked(&self, buffer: &mut SelectedBuffer, data: &[f32]) -> Result<()> {
        forward!(self, b(buffer) => b.write_unchecked(buffer, data))
    }

    fn copy_unchecked(&self, src: &SelectedBuffer, dst: &mut SelectedBuffer) -> Result<()> {
        forward!(self, b(src, dst) => b.copy_unchecked(src, dst))
    }

    fn matmul_unchecked(
        &self, x: &SelectedBuffer, w: &SelectedBuffer, m: usize, n: usize, rows: usize, y: &mut SelectedBuffer,
    ) -> Result<()> {
        forward!(self, b(x, w, y) => b.matmul_unchecked(x, w, m, n, rows, y))
    }

    fn noise_factors_unchecked(
        &self, noise: LowRankNoise, population: usize, a: &mut SelectedBuffer, b: &mut SelectedBuffer,
    ) -> Result<()> {
        forward!(self, backend(a, b) => backend.noise_factors_unchecked(noise, population, a, b))
    }

    fn perturbed_matmul_unchecked(
        &self, x: &SelectedBuffer, w: &SelectedBuffer, noise: LowRankNoise, batch: Batch, y: &mut SelectedBuffer,
    ) -> Result<()> {
        forward!(self, b(x, w, y) => b.perturbed_matmul_unchecked(x, w, noise, batch, y))
    }

    fn full_rank_matmul_unchecked(
        &self, x: &SelectedBuffer, w: &SelectedBuffer, noise: LowRankNoise, batch: Batch, y: &mut SelectedBuffer,
    ) -> Result<()> {
        forward!(self, b(x, w, y) => b.full_rank_matmul_unchecked(x, w, noise, batch, y))
    }

    fn lowrank_update_unchecked(&self, fitness: &[f32], noise: LowRankNoise, g: &mut SelectedBuffer) -> Result<()> {
        forward!(self, b(g) => b.lowrank_update_unchecked(fitness, noise, g))
    }

    fn perturbed_bias_unchecked(
        &self, y: &mut SelectedBuffer, bias: &SelectedBuffer, stream: NoiseStream, sigma: f32, batch: Batch,
    ) -> Result<()> {
        forward!(self, b(y, bias) => b.perturbed_bias_unchecked(y, bias, stream, sigma, batch))
    }

    fn vector_update_unchecked(&self, fitness: &[f32], stream: NoiseStream, sigma: f32, g: &mut SelectedBuffer) -> Result<()> {
        forward!(self, b(g) => b.vector_update_unchecked(fitness, stream, sigma, g))
    }

    fn full_rank_update_unchecked(&self, fitness: &[f32], noise: LowRankNoise, g: &mut SelectedBuffer) -> Result<()> {
        forward!(self, b(g) => b.full_rank_update_unchecked(fitness, noise, g))
    }

    fn add_bias_unchecked(&self, y: &mut SelectedBuffer, bias: &SelectedBuffer) -> Result<()> {
        forward!(self, b(y, bias) => b.add_bias_unchecked(y, bias))
    }

    fn perturbed_gain_unchecked(
        &self, y: &mut SelectedBuffer, gain: &SelectedBuffer, stream: NoiseStream, sigma: f32, batch: Batch,
    ) -> Result<()> {
        forward!(self, b(y, gain) => b.perturbed_gain_unchecked(y, gain, stream, sigma, batch))
    }

    fn gain_unchecked(&self, y: &mut SelectedBuffer, gain: &SelectedBuffer) -> Result<()> {
        forward!(self, b(y, gain) => b.gain_unchecked(y, gain))
    }

    fn activation_unchecked(&self, x: &mut SelectedBuffer, act: Activation) -> Result<()> {
        forward!(self, b(x) => b.activation_unchecked(x, act))
    }

    fn layer_norm_unchecked(&self, x: &mut SelectedBuffer, cols: usize, eps: f32) -> Result<()> {
        forward!(self, b(x) => b.layer_norm_unchecked(x, cols, eps))
    }

    fn sgd_step_unchecked(&self, param: &mut SelectedBuffer, grad: &SelectedBuffer, lr: f32) -> Result<()> {
        forward!(self, b(param, grad) => b.sgd_step_unchecked(param, grad, lr))
    }

    fn adam_step_unchecked(
        &self, param: &mut SelectedBuffer, grad: &SelectedBuffer, m: &mut SelectedBuffer, v: &mut SelectedBuffer, p: AdamParams,
    ) -> Result<()> {
        forward!(self, b(param, grad, m, v) => b.adam_step_unchecked(param, grad, m, v, p))
    }

    fn mingru_scan_unchecked(
        &self, gate: &SelectedBuffer, candidate: &SelectedBuffer, h0: Option<&SelectedBuffer>, shape: Recurrence, h: &mut SelectedBuffer,
    ) -> Result<()> {
        forward!(self, b(gate, candidate, h0, h) => b.mingru_scan_unchecked(gate, candidate, h0, shape, h))
    }

    fn log_softmax_at_unchecked(&self, logits: &SelectedBuffer, targets: &[u32], classes: usize, out: &mut SelectedBuffer) -> Result<()> {
        forward!(self, b(logits, out) => b.log_softmax_at_unchecked(logits, targets, classes, out))
    }

    fn perturbed_embedding_unchecked(
        &self, tokens: &[u32], table: &SelectedBuffer, noise: LowRankNoise, batch: Batch, y: &mut SelectedBuffer,
    ) -> Result<()> {
        forward!(self, b(table, y) => b.perturbed_embedding_unchecked(tokens, table, noise, batch, y))
    }

    fn full_rank_embedding_unchecked(
        &self, tokens: &[u32], table: &SelectedBuffer, noise: LowRankNoise, batch: Batch, y: &mut SelectedBuffer,
    ) -> Result<()> {
        forward!(self, b(table, y) => b.full_rank_embedding_unchecked(tokens, table, noise, batch, y))
    }

    fn embedding_unchecked(&self, tokens: &[u32], table: &SelectedBuffer, cols: usize, y: &mut SelectedBuffer) -> Result<()> {
        forward!(self, b(table, y) => b.embedding_unchecked(tokens, table, cols, y))
    }
}
