//! [`Backend`] for [`WgpuBackend`]: argument checks, then dispatches of the `shaders/` kernels.

use super::context::{byte_size, word, Dispatch, Params};
use super::shaders::Kernel;
use super::{describe_adapter, GpuBuffer, WgpuBackend};
use crate::ops::{Activation, AdamParams, Batch, DType, LowRankNoise};
use crate::rng::NoiseStream;
use crate::{AdapterDescription, Backend, Error, Result};

/// The bits of an f32 uniform field.
pub(crate) fn bits(v: f32) -> u32 {
    v.to_bits()
}

/// Uniform words of the elementwise kernels (`ElementParams` of elementwise.wgsl).
struct ElementParams {
    len: u32,
    cols: u32,
    mode: u32,
    lr: f32,
    adam: Option<AdamParams>,
}

impl ElementParams {
    fn new(len: usize) -> Result<Self> {
        Ok(Self { len: word("buffer length", len)?, cols: 1, mode: 0, lr: 0.0, adam: None })
    }

    fn words(&self) -> Params {
        let (b1, b2, eps, wd, bc1, bc2) = match self.adam {
            Some(p) => (p.beta1, p.beta2, p.eps, p.weight_decay, 1.0 - p.beta1.powi(p.step as i32), 1.0 - p.beta2.powi(p.step as i32)),
            None => (0.0, 0.0, 0.0, 0.0, 1.0, 1.0),
        };
        vec![self.len, self.cols, self.mode, bits(self.lr), bits(b1), bits(b2), bits(eps), bits(wd), bits(bc1), bits(bc2)]
    }
}

impl WgpuBackend {
    /// Runs one kernel over `invocations` one-dimensional invocations.
    pub(crate) fn dispatch(&self, kernel: Kernel, invocations: usize, params: Params, buffers: Vec<(u32, &wgpu::Buffer)>) -> Result<()> {
        let groups = self.ctx.grid(&format!("{kernel:?}"), invocations)?;
        self.ctx.run(&[Dispatch { kernel, params, buffers, groups }])
    }

    fn elementwise(&self, kernel: Kernel, p: ElementParams, buffers: Vec<(u32, &wgpu::Buffer)>) -> Result<()> {
        self.dispatch(kernel, p.len as usize, p.words(), buffers)
    }

    /// Uploads the antithetic fitness differences `d_k = f_2k - f_2k+1`.
    pub(crate) fn fitness_differences(&self, fitness: &[f32]) -> Result<GpuBuffer> {
        let d: Vec<f32> = fitness.chunks_exact(2).map(|f| f[0] - f[1]).collect();
        self.upload(&d)
    }
}

/// Uniform words selecting a noise stream: seed low and high words, parameter id, noise epoch.
pub(crate) fn stream_words(stream: &NoiseStream) -> [u32; 4] {
    let [lo, hi] = stream.key();
    [lo, hi, stream.param_id, stream.noise_epoch]
}

impl Backend for WgpuBackend {
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
        let mut buffer = GpuBuffer { buffer: self.ctx.storage("upload", dtype.words(data.len()))?, len: data.len(), dtype };
        self.write(&mut buffer, data)?;
        Ok(buffer)
    }

    fn dtype(&self, buffer: &GpuBuffer) -> DType {
        buffer.dtype
    }

    fn zeros(&self, len: usize) -> Result<GpuBuffer> {
        // wgpu zero-initialises new buffers.
        Ok(GpuBuffer::f32(self.ctx.storage("zeros", len)?, len))
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
        let (tx, rx) = futures_channel::oneshot::channel();
        self.ctx.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        self.ctx.poll()?;
        rx.await.map_err(|_| Error::Device("the device was lost before the queue drained".into()))?;
        self.ctx.check_errors()
    }

    fn matmul_unchecked(&self, x: &GpuBuffer, w: &GpuBuffer, m: usize, n: usize, rows: usize, y: &mut GpuBuffer) -> Result<()> {
        let gemm =
            self.gemm(super::lowrank::Gemm { dtype: x.dtype, ..super::lowrank::Gemm::plain(&x.buffer, &w.buffer, &y.buffer, rows, m, n) })?;
        self.ctx.run(&[gemm])
    }

    fn noise_factors_unchecked(&self, noise: LowRankNoise, population: usize, a: &mut GpuBuffer, b: &mut GpuBuffer) -> Result<()> {
        self.noise_factors_impl(noise, population, a, b)
    }

    fn perturbed_matmul_unchecked(&self, x: &GpuBuffer, w: &GpuBuffer, noise: LowRankNoise, batch: Batch, y: &mut GpuBuffer) -> Result<()> {
        self.perturbed_matmul_impl(x, w, noise, batch, y)
    }

    fn naive_perturbed_matmul_unchecked(
        &self,
        x: &GpuBuffer,
        w: &GpuBuffer,
        noise: LowRankNoise,
        batch: Batch,
        y: &mut GpuBuffer,
    ) -> Result<()> {
        self.naive_perturbed_matmul_impl(x, w, noise, batch, y)
    }

    fn lowrank_update_unchecked(&self, fitness: &[f32], noise: LowRankNoise, g: &mut GpuBuffer) -> Result<()> {
        self.lowrank_update_impl(fitness, noise, g)
    }

    fn perturbed_bias_unchecked(&self, y: &mut GpuBuffer, bias: &GpuBuffer, stream: NoiseStream, sigma: f32, batch: Batch) -> Result<()> {
        let [lo, hi, id, epoch] = stream_words(&stream);
        let params = vec![
            word("bias length", bias.len)?,
            word("output length", y.len)?,
            word("rows x length", batch.rows * bias.len)?,
            word("pairs", batch.population / 2)?,
            lo,
            hi,
            id,
            epoch,
            bits(sigma),
        ];
        self.dispatch(Kernel::PerturbedBias, y.len, params, vec![(1, &y.buffer), (2, &bias.buffer)])
    }

    fn vector_update_unchecked(&self, fitness: &[f32], stream: NoiseStream, sigma: f32, g: &mut GpuBuffer) -> Result<()> {
        let d = self.fitness_differences(fitness)?;
        let [lo, hi, id, epoch] = stream_words(&stream);
        let coef = sigma / (fitness.len() as f32).sqrt();
        let params = vec![word("gradient length", g.len)?, 0, 0, word("pairs", fitness.len() / 2)?, lo, hi, id, epoch, bits(coef)];
        self.dispatch(Kernel::VectorUpdate, g.len, params, vec![(3, &d.buffer), (4, &g.buffer)])
    }

    fn add_bias_unchecked(&self, y: &mut GpuBuffer, bias: &GpuBuffer) -> Result<()> {
        let p = ElementParams { cols: word("bias length", bias.len)?, ..ElementParams::new(y.len)? };
        self.elementwise(Kernel::AddBias, p, vec![(1, &y.buffer), (2, &bias.buffer)])
    }

    fn activation_unchecked(&self, x: &mut GpuBuffer, act: Activation) -> Result<()> {
        let mode = match act {
            Activation::Relu => 0,
            Activation::Silu => 1,
            Activation::Tanh => 2,
        };
        let p = ElementParams { mode, ..ElementParams::new(x.len)? };
        self.elementwise(Kernel::Activation, p, vec![(1, &x.buffer)])
    }

    fn layer_norm_unchecked(&self, x: &mut GpuBuffer, cols: usize, eps: f32) -> Result<()> {
        let rows = x.len / cols;
        let params = vec![word("rows", rows)?, word("columns", cols)?, bits(eps)];
        self.dispatch(Kernel::LayerNorm, rows, params, vec![(1, &x.buffer)])
    }

    fn sgd_step_unchecked(&self, param: &mut GpuBuffer, grad: &GpuBuffer, lr: f32) -> Result<()> {
        let p = ElementParams { lr, ..ElementParams::new(param.len)? };
        self.elementwise(Kernel::SgdStep, p, vec![(1, &param.buffer), (2, &grad.buffer)])
    }

    fn adam_step_unchecked(
        &self,
        param: &mut GpuBuffer,
        grad: &GpuBuffer,
        m: &mut GpuBuffer,
        v: &mut GpuBuffer,
        p: AdamParams,
    ) -> Result<()> {
        let e = ElementParams { lr: p.lr, adam: Some(p), ..ElementParams::new(param.len)? };
        self.elementwise(Kernel::AdamStep, e, vec![(1, &param.buffer), (2, &grad.buffer), (3, &m.buffer), (4, &v.buffer)])
    }
}
