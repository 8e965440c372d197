//! [`IntBackend`] for [`SelectedBackend`]: every integer kernel handed to the backend inside,
//! with the tensors of its kind (`forward!`, `made!`).

use super::buffer::{Selected, SelectedI32, SelectedI8};
use super::SelectedBackend;
use crate::int8::{IntKernels, IntMatrix, IntNoise};
use crate::ops::{Batch, Recurrence};
use crate::rng::NoiseStream;
use crate::Result;

impl IntKernels for SelectedBackend {
    type I8 = SelectedI8;
    type I32 = SelectedI32;

    fn zeros_i32(&self, len: usize) -> Result<SelectedI32> {
        made!(self, b => b.zeros_i32(len))
    }

    /// The tensor's own length, whichever backend asks (as for
    /// [`Kernels::len`](crate::Kernels::len)).
    fn len_i8(&self, tensor: &SelectedI8) -> usize {
        match tensor {
            Selected::Cpu(v) => v.len(),
            Selected::Wgpu(g) => g.len,
        }
    }

    /// The tensor's own length, whichever backend asks.
    fn len_i32(&self, tensor: &SelectedI32) -> usize {
        match tensor {
            Selected::Cpu(v) => v.len(),
            Selected::Wgpu(g) => g.len(),
        }
    }

    async fn read_i8(&self, tensor: &SelectedI8) -> Result<Vec<i8>> {
        forward!(self, b(tensor) => b.read_i8(tensor).await)
    }

    async fn read_i32(&self, tensor: &SelectedI32) -> Result<Vec<i32>> {
        forward!(self, b(tensor) => b.read_i32(tensor).await)
    }

    fn upload_i8_unchecked(&self, data: &[i8]) -> Result<SelectedI8> {
        made!(self, b => b.upload_i8_unchecked(data))
    }

    fn zeros_i8_unchecked(&self, len: usize) -> Result<SelectedI8> {
        made!(self, b => b.zeros_i8_unchecked(len))
    }

    fn copy_i8_unchecked(&self, src: &SelectedI8, dst: &mut SelectedI8) -> Result<()> {
        forward!(self, b(src, dst) => b.copy_i8_unchecked(src, dst))
    }

    fn write_i8_unchecked(&self, tensor: &mut SelectedI8, data: &[i8]) -> Result<()> {
        forward!(self, b(tensor) => b.write_i8_unchecked(tensor, data))
    }

    fn int_matmul_unchecked(&self, x: &SelectedI8, w: &SelectedI8, shape: IntMatrix, rows: usize, y: &mut SelectedI8) -> Result<()> {
        forward!(self, b(x, w, y) => b.int_matmul_unchecked(x, w, shape, rows, y))
    }

    fn int_perturbed_matmul_unchecked(
        &self, x: &SelectedI8, w: &SelectedI8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut SelectedI8,
    ) -> Result<()> {
        forward!(self, b(x, w, y) => b.int_perturbed_matmul_unchecked(x, w, shape, noise, batch, y))
    }

    fn int_naive_matmul_unchecked(
        &self, x: &SelectedI8, w: &SelectedI8, shape: IntMatrix, stream: NoiseStream, batch: Batch, y: &mut SelectedI8,
    ) -> Result<()> {
        forward!(self, b(x, w, y) => b.int_naive_matmul_unchecked(x, w, shape, stream, batch, y))
    }

    fn int_full_rank_matmul_unchecked(
        &self, x: &SelectedI8, w: &SelectedI8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut SelectedI8,
    ) -> Result<()> {
        forward!(self, b(x, w, y) => b.int_full_rank_matmul_unchecked(x, w, shape, noise, batch, y))
    }

    fn int_embedding_unchecked(&self, tokens: &[u32], table: &SelectedI8, shape: IntMatrix, y: &mut SelectedI8) -> Result<()> {
        forward!(self, b(table, y) => b.int_embedding_unchecked(tokens, table, shape, y))
    }

    fn int_perturbed_embedding_unchecked(
        &self, tokens: &[u32], table: &SelectedI8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut SelectedI8,
    ) -> Result<()> {
        forward!(self, b(table, y) => b.int_perturbed_embedding_unchecked(tokens, table, shape, noise, batch, y))
    }

    fn int_full_rank_embedding_unchecked(
        &self, tokens: &[u32], table: &SelectedI8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut SelectedI8,
    ) -> Result<()> {
        forward!(self, b(table, y) => b.int_full_rank_embedding_unchecked(tokens, table, shape, noise, batch, y))
    }

    fn int_layer_norm_unchecked(&self, x: &mut SelectedI8, width: usize) -> Result<()> {
        forward!(self, b(x) => b.int_layer_norm_unchecked(x, width))
    }

    fn int_mingru_scan_unchecked(&self, gate: &SelectedI8, candidate: &SelectedI8, shape: Recurrence, h: &mut SelectedI8) -> Result<()> {
        forward!(self, b(gate, candidate, h) => b.int_mingru_scan_unchecked(gate, candidate, shape, h))
    }

    fn int_relu_unchecked(&self, x: &mut SelectedI8) -> Result<()> {
        forward!(self, b(x) => b.int_relu_unchecked(x))
    }

    fn int_add_unchecked(&self, x: &mut SelectedI8, other: &SelectedI8) -> Result<()> {
        forward!(self, b(x, other) => b.int_add_unchecked(x, other))
    }

    fn int_log_likelihood_unchecked(&self, logits: &SelectedI8, targets: &[u32], classes: usize, out: &mut SelectedI32) -> Result<()> {
        forward!(self, b(logits, out) => b.int_log_likelihood_unchecked(logits, targets, classes, out))
    }

    fn int_lowrank_update_unchecked(
        &self, fitness: &[i8], noise: IntNoise, shape: IntMatrix, threshold: i32, w: &mut SelectedI8,
    ) -> Result<()> {
        forward!(self, b(w) => b.int_lowrank_update_unchecked(fitness, noise, shape, threshold, w))
    }

    fn int_full_rank_update_unchecked(
        &self, fitness: &[i8], noise: IntNoise, shape: IntMatrix, threshold: i32, w: &mut SelectedI8,
    ) -> Result<()> {
        forward!(self, b(w) => b.int_full_rank_update_unchecked(fitness, noise, shape, threshold, w))
    }
}
