//! [`Backend`] for [`WgpuBackend`]: the buffer transfers, and the kernels of `gemm`, `lowrank`,
//! `vector_noise`, `elementwise`, `recurrence` and `cross_entropy` behind the trait's argument
//! checks (`crate::checks`). What is refused here is only what the adapter cannot do: f16 storage
//! without shader-f16, and the buffer, binding, grid and 32-bit index limits the kernels check.

use super::adapter::describe_adapter;
use super::buffer::GpuBuffer;
use super::context::byte_size;
use super::gemm::Gemm;
use super::timing;
use super::wgpu_backend::WgpuBackend;
use crate::ops::{Activation, AdamParams, Batch, DType, LowRankNoise};
use crate::rng::NoiseStream;
use crate::{AdapterDescription, Backend, Error, Kernels, MemoryLimits, Result};

impl Kernels for WgpuBackend {
    type Buffer = GpuBuffer;

    fn describe(&self) -> AdapterDescription {
        describe_adapter(&self.ctx.info, self.ctx.features)
    }

    fn upload(&self, data: &[f32]) -> Result<GpuBuffer> {
        self.upload_as(data, DType::F32)
    }

    fn upload_as(&self, data: &[f32], dtype: DType) -> Result<GpuBuffer> {
        if dtype == DType::F16 && !self.ctx.features.contains(wgpu::Features::SHADER_F16) {
            return Err(Error::Unsupported(format!("f16 storage needs the shader-f16 feature, which {} lacks", self.ctx.info.name)));
        }
        let mut buffer = self.new_buffer(data.len(), dtype)?;
        self.write(&mut buffer, data)?;
        Ok(buffer)
    }

    fn dtype(&self, buffer: &GpuBuffer) -> DType {
        buffer.dtype
    }

    fn zeros(&self, len: usize) -> Result<GpuBuffer> {
        self.new_buffer(len, DType::F32)
    }

    fn write_unchecked(&self, buffer: &mut GpuBuffer, data: &[f32]) -> Result<()> {
        if !data.is_empty() {
            match buffer.dtype {
                DType::F32 => self.ctx.queue.write_buffer(&buffer.buffer, 0, bytemuck::cast_slice(data)),
                DType::F16 => {
                    // Padded to whole 32-bit words, as buffer writes require.
                    let mut halves: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
                    halves.resize(data.len().next_multiple_of(2), half::f16::ZERO);
                    self.ctx.queue.write_buffer(&buffer.buffer, 0, bytemuck::cast_slice(&halves));
                }
            }
        }
        self.ctx.check_errors()
    }

    fn copy_unchecked(&self, src: &GpuBuffer, dst: &mut GpuBuffer) -> Result<()> {
        if src.len > 0 {
            let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("copy") });
            encoder.copy_buffer_to_buffer(&src.buffer, 0, &dst.buffer, 0, byte_size("copy", src.dtype.words(src.len))?);
            self.ctx.queue.submit([encoder.finish()]);
        }
        self.ctx.check_errors()
    }

    fn len(&self, buffer: &GpuBuffer) -> usize {
        buffer.len
    }

    async fn read(&self, buffer: &GpuBuffer) -> Result<Vec<f32>> {
        if buffer.len == 0 {
            return Ok(Vec::new());
        }
        let bytes = self.ctx.read_bytes(&buffer.buffer, byte_size("read", buffer.dtype.words(buffer.len))?).await?;
        Ok(match buffer.dtype {
            DType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            DType::F16 => bytes.chunks_exact(2).take(buffer.len).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        })
    }

    async fn synchronize(&self) -> Result<()> {
        timing::drain(&self.ctx).await
    }

    /// The device's own `max_buffer_size` and `max_storage_buffer_binding_size`; wgpu does not
    /// tell the device's memory.
    fn memory_limits(&self) -> MemoryLimits {
        let limits = &self.ctx.limits;
        MemoryLimits {
            max_buffer_bytes: Some(limits.max_buffer_size),
            max_binding_bytes: Some(limits.max_storage_buffer_binding_size),
            device_bytes: None,
        }
    }

    fn matmul_unchecked(&self, x: &GpuBuffer, w: &GpuBuffer, m: usize, n: usize, rows: usize, y: &mut GpuBuffer) -> Result<()> {
        let gemm = self.gemm(Gemm { dtype: x.dtype, ..Gemm::plain(&x.buffer, &w.buffer, &y.buffer, rows, m, n) })?;
        self.ctx.run(&[gemm])
    }

    fn noise_factors_unchecked(&self, noise: LowRankNoise, population: usize, a: &mut GpuBuffer, b: &mut GpuBuffer) -> Result<()> {
        self.noise_factors_kernel(noise, population, a, b)
    }

    fn perturbed_matmul_unchecked(&self, x: &GpuBuffer, w: &GpuBuffer, noise: LowRankNoise, batch: Batch, y: &mut GpuBuffer) -> Result<()> {
        self.perturbed_matmul_kernel(x, w, noise, batch, y)
    }

    fn naive_perturbed_matmul_unchecked(
        &self,
        x: &GpuBuffer,
        w: &GpuBuffer,
        noise: LowRankNoise,
        batch: Batch,
        y: &mut GpuBuffer,
    ) -> Result<()> {
        self.naive_perturbed_matmul_kernel(x, w, noise, batch, y)
    }

    fn lowrank_update_unchecked(&self, fitness: &[f32], noise: LowRankNoise, g: &mut GpuBuffer) -> Result<()> {
        self.lowrank_update_kernel(fitness, noise, g)
    }

    fn perturbed_bias_unchecked(&self, y: &mut GpuBuffer, bias: &GpuBuffer, stream: NoiseStream, sigma: f32, batch: Batch) -> Result<()> {
        self.perturbed_bias_kernel(y, bias, stream, sigma, batch)
    }

    fn vector_update_unchecked(&self, fitness: &[f32], stream: NoiseStream, sigma: f32, g: &mut GpuBuffer) -> Result<()> {
        self.vector_update_kernel(fitness, stream, sigma, g)
    }

    fn add_bias_unchecked(&self, y: &mut GpuBuffer, bias: &GpuBuffer) -> Result<()> {
        self.add_bias_kernel(y, bias)
    }

    fn perturbed_gain_unchecked(&self, y: &mut GpuBuffer, gain: &GpuBuffer, stream: NoiseStream, sigma: f32, batch: Batch) -> Result<()> {
        self.perturbed_gain_kernel(y, gain, stream, sigma, batch)
    }

    fn gain_unchecked(&self, y: &mut GpuBuffer, gain: &GpuBuffer) -> Result<()> {
        self.gain_kernel(y, gain)
    }

    fn activation_unchecked(&self, x: &mut GpuBuffer, act: Activation) -> Result<()> {
        self.activation_kernel(x, act)
    }

    fn layer_norm_unchecked(&self, x: &mut GpuBuffer, cols: usize, eps: f32) -> Result<()> {
        self.layer_norm_kernel(x, cols, eps)
    }

    fn sgd_step_unchecked(&self, param: &mut GpuBuffer, grad: &GpuBuffer, lr: f32) -> Result<()> {
        self.sgd_step_kernel(param, grad, lr)
    }

    fn adam_step_unchecked(
        &self,
        param: &mut GpuBuffer,
        grad: &GpuBuffer,
        m: &mut GpuBuffer,
        v: &mut GpuBuffer,
        p: AdamParams,
    ) -> Result<()> {
        self.adam_step_kernel(param, grad, m, v, p)
    }

    fn mingru_scan_unchecked(
        &self,
        gate: &GpuBuffer,
        candidate: &GpuBuffer,
        h0: Option<&GpuBuffer>,
        shape: crate::Recurrence,
        h: &mut GpuBuffer,
    ) -> Result<()> {
        self.mingru_scan_kernel(gate, candidate, h0, shape, h)
    }

    fn log_softmax_at_unchecked(&self, logits: &GpuBuffer, targets: &[u32], classes: usize, out: &mut GpuBuffer) -> Result<()> {
        self.log_softmax_at_kernel(logits, targets, classes, out)
    }

    fn perturbed_embedding_unchecked(
        &self,
        tokens: &[u32],
        table: &GpuBuffer,
        noise: LowRankNoise,
        batch: Batch,
        y: &mut GpuBuffer,
    ) -> Result<()> {
        self.perturbed_embedding_kernel(tokens, table, noise, batch, y)
    }

    fn naive_perturbed_embedding_unchecked(
        &self,
        tokens: &[u32],
        table: &GpuBuffer,
        noise: LowRankNoise,
        batch: Batch,
        y: &mut GpuBuffer,
    ) -> Result<()> {
        self.naive_perturbed_embedding_kernel(tokens, table, noise, batch, y)
    }

    fn embedding_unchecked(&self, tokens: &[u32], table: &GpuBuffer, cols: usize, y: &mut GpuBuffer) -> Result<()> {
        self.embedding_kernel(tokens, table, cols, y)
    }
}
