//! [`Kernels`] for [`WgpuBackend`]: the buffer transfers, and each f32 kernel as the dispatches
//! of the typed units of [`super::kernels`] (and GEMMs, [`super::gemm`]) it submits, behind the
//! checks of the front ([`crate::Backend`]). What is refused here is only what the adapter cannot
//! do: f16 storage without shader-f16, and the buffer, binding, grid and 32-bit index limits the
//! kernels check. bf16 storage needs no feature: the kernels read it as packed `u32` words.

use super::adapter::describe_adapter;
use super::buffer::GpuBuffer;
use super::context::{byte_size, word, ScratchUse};
use super::gemm::Gemm;
use super::kernel::{Cached, Dispatch, Operands};
use super::kernels::*;
use super::params::{
    stream_fields, ElementParams, EmbeddingParams, LogSoftmaxParams, LowRankParams, MaterialiseParams, NoiseParams, NormParams,
    RecurrenceParams, VectorParams,
};
use super::timing;
use super::wgpu_backend::WgpuBackend;
use crate::ops::{self, AdamParams, Batch, DType, InputLayout, LowRankNoise, Recurrence};
use crate::rng::NoiseStream;
use crate::{AdapterDescription, Backend, Error, Kernels, MemoryLimits, Result};

/// Rows per block of the projection kernels (lowrank.wgsl's PROJECT_ROWS).
const PROJECT_ROWS: usize = 8;

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

    /// 16-bit values are rounded to nearest, ties to even, and packed two to a 32-bit word.
    fn write_unchecked(&self, buffer: &mut GpuBuffer, data: &[f32]) -> Result<()> {
        if !data.is_empty() {
            // Padded to whole 32-bit words, as buffer writes require.
            let halves = |to_bits: fn(f32) -> u16| -> Vec<u16> {
                let mut bits: Vec<u16> = data.iter().map(|&v| to_bits(v)).collect();
                bits.resize(data.len().next_multiple_of(2), 0);
                bits
            };
            let target = &buffer.buffer;
            match buffer.dtype {
                DType::F32 => self.ctx.write_buffer(target, 0, bytemuck::cast_slice(data)),
                DType::F16 => self.ctx.write_buffer(target, 0, bytemuck::cast_slice(&halves(|v| half::f16::from_f32(v).to_bits()))),
                DType::Bf16 => self.ctx.write_buffer(target, 0, bytemuck::cast_slice(&halves(|v| half::bf16::from_f32(v).to_bits()))),
            }
        }
        self.ctx.check_errors()
    }

    fn copy_unchecked(&self, src: &GpuBuffer, dst: &mut GpuBuffer) -> Result<()> {
        if src.len > 0 {
            let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("copy") });
            encoder.copy_buffer_to_buffer(&src.buffer, 0, &dst.buffer, 0, byte_size("copy", src.dtype.words(src.len))?);
            self.ctx.submit(encoder);
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
            DType::Bf16 => bytes.chunks_exact(2).take(buffer.len).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        })
    }

    async fn synchronize(&self) -> Result<()> {
        timing::drain(&self.ctx).await
    }

    /// The device's own `max_buffer_size` and `max_storage_buffer_binding_size`; wgpu does not
    /// tell the device's memory.
    fn set_noise_cache(&self, bytes: u64) {
        self.noise.set_budget(bytes);
    }

    fn memory_limits(&self) -> MemoryLimits {
        let limits = &self.ctx.limits;
        MemoryLimits {
            max_buffer_bytes: Some(limits.max_buffer_size),
            max_binding_bytes: Some(limits.max_storage_buffer_binding_size),
            device_bytes: None,
        }
    }

    fn matmul_unchecked(&self, x: &GpuBuffer, w: &GpuBuffer, m: usize, n: usize, rows: usize, y: &mut GpuBuffer) -> Result<()> {
        let operands = Operands { x: x.dtype, w: w.dtype };
        let gemm = self.gemm(Gemm { operands, ..Gemm::plain(&x.buffer, &w.buffer, &y.buffer, rows, m, n) })?;
        self.ctx.run(&[gemm])
    }

    fn noise_factors_unchecked(&self, noise: LowRankNoise, population: usize, a: &mut GpuBuffer, b: &mut GpuBuffer) -> Result<()> {
        let params = noise_params(&noise, population, 0)?;
        self.dispatch(NoiseFactors, a.len + b.len, &params, NoiseFactorsBuffers { a_out: &a.buffer, b_out: &b.buffer })
    }

    /// The shared or per-member GEMM `X Wᵀ`, the projections `P = X B` of every pair (or
    /// member), and their expansion `s (σ/√r) P Aᵀ` onto the product: one submission. With the
    /// noise cache on, the factors come from the epoch's entry (filled by the first call). The
    /// projections read only `X`: their variant is the input's storage type.
    fn perturbed_matmul_unchecked(&self, x: &GpuBuffer, w: &GpuBuffer, noise: LowRankNoise, batch: Batch, y: &mut GpuBuffer) -> Result<()> {
        let (dtype, operands) = (x.dtype, Operands { x: x.dtype, w: w.dtype });
        let s = noise.shape;
        let (m, n, r, rows, population) = (s.m, s.n, s.rank, batch.rows, batch.population);
        let shared = batch.input == InputLayout::Shared;
        // P = X B per pair (shared input: both members see the same X) or per member.
        let projections = if shared { population / 2 } else { population };
        let p = self.ctx.scratch(ScratchUse::Projections, projections * rows * r)?;
        let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&noise.stream);
        let pair_offset = word("first pair", batch.first_pair())?;
        let lowrank_params = |count: usize| -> Result<LowRankParams> {
            Ok(LowRankParams {
                rows: word("rows", rows)?,
                n: word("n", n)?,
                m: word("m", m)?,
                rank: word("rank", r)?,
                count: word("count", count)?,
                shared_input: u32::from(shared),
                seed_lo,
                seed_hi,
                param_id,
                noise_epoch,
                scale: s.scale(),
                pair_offset,
                a_rows: word("rows of the whole matrix", s.whole_rows())?,
                a_first: word("first row of the piece", s.first_row())?,
                ..LowRankParams::default()
            })
        };
        let z = if shared { Some(self.ctx.scratch(ScratchUse::SharedProduct, rows * m)?) } else { None };
        let base = match &z {
            Some(z) => self.gemm(Gemm { operands, ..Gemm::plain(&x.buffer, &w.buffer, z.buffer(), rows, m, n) })?,
            None => self.gemm(Gemm { operands, ..Gemm::plain(&x.buffer, &w.buffer, &y.buffer, population * rows, m, n) })?,
        };
        // Blocks of rows that share one pair's B: the shared rows, or both members' rows.
        let pair_rows = if shared { rows } else { 2 * rows };
        let sums = population / 2 * r * pair_rows.div_ceil(PROJECT_ROWS);
        let project_params = lowrank_params(population / 2)?;
        // A piece of a larger matrix reads its rows of `A` from the whole's entry.
        let cached = self.cached_normals(noise.stream, (s.whole_rows(), n, r), batch.first_pair(), population / 2)?;
        let (x, p_out) = (&x.buffer, p.buffer());
        let project = match (self.project_by_reduction(sums, n), &cached) {
            (true, cached) => {
                let groups = self.ctx.groups_grid("lowrank_project_reduce", sums as u64)?;
                match cached {
                    Some(cached) => Dispatch::new(
                        LowrankProjectReduceCached(Cached(dtype)),
                        &project_params,
                        LowrankProjectReduceCachedBuffers { x, p_out, cached },
                        groups,
                    ),
                    None => Dispatch::new(LowrankProjectReduce(dtype), &project_params, LowrankProjectReduceBuffers { x, p_out }, groups),
                }
            }
            (false, Some(cached)) => {
                self.over(LowrankProjectCached(Cached(dtype)), sums, &project_params, LowrankProjectCachedBuffers { x, p_out, cached })?
            }
            (false, None) => self.over(LowrankProject(dtype), sums, &project_params, LowrankProjectBuffers { x, p_out })?,
        };
        let expand_len = population / 2 * rows.div_ceil(4) * m;
        let expand_params = lowrank_params(population)?;
        let (p_in, z, y) = (p.buffer(), z.as_ref().map_or(&self.ctx.dummy, |z| z.buffer()), &y.buffer);
        let expand = match &cached {
            Some(cached) => {
                self.over(LowrankExpandCached(Cached::F32), expand_len, &expand_params, LowrankExpandCachedBuffers { p_in, z, y, cached })?
            }
            None => self.over(LowrankExpand, expand_len, &expand_params, LowrankExpandBuffers { p_in, z, y })?,
        };
        self.ctx.run(&[base, project, expand])
    }

    /// Per chunk of members: their weights `W + s_i σ E_i` materialised in the input's storage
    /// type (16-bit weights widened to f32 first), then one batched GEMM of inputs and weights of
    /// that type.
    fn full_rank_matmul_unchecked(&self, x: &GpuBuffer, w: &GpuBuffer, noise: LowRankNoise, batch: Batch, y: &mut GpuBuffer) -> Result<()> {
        let (m, n, rows, population) = (noise.shape.m, noise.shape.n, batch.rows, batch.population);
        let (dtype, operands) = (x.dtype, Operands { x: x.dtype, w: w.dtype });
        let len = word("full-rank noise draws m n", m * n)?;
        let start = noise.full_rank_start();
        let blocks = word("full-rank noise blocks", (start as usize + m * n).div_ceil(4) - start as usize / 4)?;
        let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&noise.stream);
        let chunk = self.chunk("materialised weights W + E_i", m * n, population)?;
        let w_i = self.ctx.scratch(ScratchUse::Materialised, dtype.words(chunk * m * n))?;
        for first in (0..population).step_by(chunk) {
            let count = chunk.min(population - first);
            let pairs = (first + count).div_ceil(2) - first / 2;
            let params = MaterialiseParams {
                len,
                blocks,
                start,
                first: word("first", first)?,
                count: word("count", count)?,
                seed_lo,
                seed_hi,
                param_id,
                noise_epoch,
                sigma: noise.shape.sigma,
                pair_offset: word("first pair", batch.first_pair())?,
                ..MaterialiseParams::default()
            };
            let materialise =
                self.over(Materialise(operands), pairs * blocks as usize, &params, MaterialiseBuffers { w: &w.buffer, out: w_i.buffer() })?;
            let (x_offset, x_batch) = match batch.input {
                InputLayout::Shared => (0, 0),
                InputLayout::PerMember => (first * rows * n, rows * n),
            };
            let multiply = self.gemm(Gemm {
                operands: Operands::same(dtype),
                batch: count,
                x_offset,
                x_batch,
                w_batch: m * n,
                y_offset: first * rows * m,
                y_batch: rows * m,
                ..Gemm::plain(&x.buffer, w_i.buffer(), &y.buffer, rows, m, n)
            })?;
            self.ctx.run(&[materialise, multiply])?;
        }
        Ok(())
    }

    /// `G = alpha Σ_k d_k A_k B_kᵀ = alpha A' B'ᵀ` with `A' = [A_k]` (m x pairs r) and
    /// `B' = [d_k B_k]` (n x pairs r): per chunk of pairs, the factors (read from the noise
    /// cache when the epoch's forwards kept the whole population's) and one accumulating GEMM.
    fn lowrank_update_unchecked(&self, fitness: &[f32], noise: LowRankNoise, g: &mut GpuBuffer) -> Result<()> {
        let d = self.fitness_differences(fitness)?;
        let s = noise.shape;
        let (m, n, r) = (s.m, s.n, s.rank);
        let pairs = fitness.len() / 2;
        let alpha = s.scale() / (fitness.len() as f32).sqrt();
        let chunk = self.chunk("update factors", m.max(n) * r, pairs)?;
        let a = self.ctx.scratch(ScratchUse::UpdateA, m * chunk * r)?;
        let b = self.ctx.scratch(ScratchUse::UpdateB, n * chunk * r)?;
        let kept = self.kept_normals(noise.stream, (s.whole_rows() + n) * r, pairs);
        let (a_out, b_out, d) = (a.buffer(), b.buffer(), d.buffer());
        for first in (0..pairs).step_by(chunk) {
            let count = chunk.min(pairs - first);
            let (len, params) = ((m + n) * count * r, noise_params(&noise, count, first)?);
            let factors = match &kept {
                Some(cached) => {
                    self.over(UpdateFactorsCached(Cached::F32), len, &params, UpdateFactorsCachedBuffers { a_out, b_out, d, cached })?
                }
                None => self.over(UpdateFactors, len, &params, UpdateFactorsBuffers { a_out, b_out, d })?,
            };
            let multiply =
                self.gemm(Gemm { alpha, accumulate: first > 0, ..Gemm::plain(a.buffer(), b.buffer(), &g.buffer, m, n, count * r) })?;
            self.ctx.run(&[factors, multiply])?;
        }
        Ok(())
    }

    fn perturbed_bias_unchecked(&self, y: &mut GpuBuffer, bias: &GpuBuffer, stream: NoiseStream, sigma: f32, batch: Batch) -> Result<()> {
        let params = vector_params(y, bias, stream, sigma, batch)?;
        let (len, y, vector_param) = (y.len, &y.buffer, &bias.buffer);
        match self.cached_normals(stream, (bias.len, 0, 1), batch.first_pair(), batch.population / 2)? {
            Some(cached) => self.dispatch(
                PerturbedBiasCached(Cached::F32),
                len,
                &params,
                PerturbedBiasCachedBuffers { y, vector_param, cached: &cached },
            ),
            None => self.dispatch(PerturbedBias, len, &params, PerturbedBiasBuffers { y, vector_param }),
        }
    }

    fn vector_update_unchecked(&self, fitness: &[f32], stream: NoiseStream, sigma: f32, g: &mut GpuBuffer) -> Result<()> {
        self.full_rank_estimate(fitness, stream, 0, sigma, g)
    }

    fn full_rank_update_unchecked(&self, fitness: &[f32], noise: LowRankNoise, g: &mut GpuBuffer) -> Result<()> {
        self.full_rank_estimate(fitness, noise.stream, noise.full_rank_start(), noise.shape.sigma, g)
    }

    fn add_bias_unchecked(&self, y: &mut GpuBuffer, bias: &GpuBuffer) -> Result<()> {
        let params = ElementParams { cols: word("bias length", bias.len)?, ..elementwise_over(y.len)? };
        self.dispatch(AddBias, y.len, &params, AddBiasBuffers { dst: &y.buffer, src: &bias.buffer })
    }

    fn perturbed_gain_unchecked(&self, y: &mut GpuBuffer, gain: &GpuBuffer, stream: NoiseStream, sigma: f32, batch: Batch) -> Result<()> {
        let params = vector_params(y, gain, stream, sigma, batch)?;
        let (len, y, vector_param) = (y.len, &y.buffer, &gain.buffer);
        match self.cached_normals(stream, (gain.len, 0, 1), batch.first_pair(), batch.population / 2)? {
            Some(cached) => self.dispatch(
                PerturbedGainCached(Cached::F32),
                len,
                &params,
                PerturbedGainCachedBuffers { y, vector_param, cached: &cached },
            ),
            None => self.dispatch(PerturbedGain, len, &params, PerturbedGainBuffers { y, vector_param }),
        }
    }

    fn gain_unchecked(&self, y: &mut GpuBuffer, gain: &GpuBuffer) -> Result<()> {
        let params = ElementParams { cols: word("gain length", gain.len)?, ..elementwise_over(y.len)? };
        self.dispatch(Gain, y.len, &params, GainBuffers { dst: &y.buffer, src: &gain.buffer })
    }

    fn activation_unchecked(&self, x: &mut GpuBuffer, act: ops::Activation) -> Result<()> {
        let mode = match act {
            ops::Activation::Relu => 0,
            ops::Activation::Silu => 1,
            ops::Activation::Tanh => 2,
        };
        let params = ElementParams { mode, ..elementwise_over(x.len)? };
        self.dispatch(Activation, x.len, &params, ActivationBuffers { dst: &x.buffer })
    }

    fn layer_norm_unchecked(&self, x: &mut GpuBuffer, cols: usize, eps: f32) -> Result<()> {
        let rows = x.len / cols;
        let params = NormParams { rows: word("rows", rows)?, cols: word("columns", cols)?, eps, ..NormParams::default() };
        self.dispatch(LayerNorm, rows, &params, LayerNormBuffers { x: &x.buffer })
    }

    fn sgd_step_unchecked(&self, param: &mut GpuBuffer, grad: &GpuBuffer, lr: f32) -> Result<()> {
        let params = ElementParams { lr, ..elementwise_over(param.len)? };
        self.dispatch(SgdStep, param.len, &params, SgdStepBuffers { dst: &param.buffer, src: &grad.buffer })
    }

    fn adam_step_unchecked(
        &self, param: &mut GpuBuffer, grad: &GpuBuffer, m: &mut GpuBuffer, v: &mut GpuBuffer, a: AdamParams,
    ) -> Result<()> {
        let params = ElementParams {
            lr: a.lr,
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
            weight_decay: a.weight_decay,
            bc1: 1.0 - a.beta1.powi(a.step as i32),
            bc2: 1.0 - a.beta2.powi(a.step as i32),
            ..elementwise_over(param.len)?
        };
        let buffers = AdamStepBuffers { dst: &param.buffer, src: &grad.buffer, m: &m.buffer, v: &v.buffer };
        self.dispatch(AdamStep, param.len, &params, buffers)
    }

    /// Without `h0` the context's placeholder buffer is bound in its place and the flag tells the
    /// kernel not to read it.
    fn mingru_scan_unchecked(
        &self, gate: &GpuBuffer, candidate: &GpuBuffer, h0: Option<&GpuBuffer>, shape: Recurrence, h: &mut GpuBuffer,
    ) -> Result<()> {
        let params = RecurrenceParams {
            sequences: word("sequences", shape.sequences)?,
            time: word("time steps", shape.time)?,
            width: word("width", shape.width)?,
            has_h0: u32::from(h0.is_some()),
        };
        let h0 = h0.map_or(&self.ctx.dummy, |b| &b.buffer);
        let buffers = MingruScanBuffers { gate: &gate.buffer, candidate: &candidate.buffer, h0, h: &h.buffer };
        self.dispatch(MingruScan, shape.state_len(), &params, buffers)
    }

    /// One workgroup per row; the targets go up in a pooled scratch buffer.
    fn log_softmax_at_unchecked(&self, logits: &GpuBuffer, targets: &[u32], classes: usize, out: &mut GpuBuffer) -> Result<()> {
        let rows = targets.len();
        let params = LogSoftmaxParams { rows: word("rows", rows)?, classes: word("classes", classes)?, ..LogSoftmaxParams::default() };
        let t = self.upload_scratch(ScratchUse::Targets, targets)?;
        let groups = self.ctx.groups_grid("log_softmax_at", rows as u64)?;
        let buffers = LogSoftmaxAtBuffers { logits: &logits.buffer, targets: t.buffer(), out: &out.buffer };
        self.ctx.run(&[Dispatch::new(LogSoftmaxAt, &params, buffers, groups)])
    }

    fn perturbed_embedding_unchecked(
        &self, tokens: &[u32], table: &GpuBuffer, noise: LowRankNoise, batch: Batch, y: &mut GpuBuffer,
    ) -> Result<()> {
        let params = embedding_params(noise, batch, noise.shape.scale())?;
        let s = noise.shape;
        // A piece of a split table draws its noise on the fly, as a piece of a matrix does.
        let cached = match s.piece {
            None => self.cached_normals(noise.stream, (s.m, s.n, s.rank), batch.first_pair(), batch.population / 2)?,
            Some(_) => None,
        };
        let t = self.upload_scratch(ScratchUse::Tokens, tokens)?;
        let (len, table, tokens, y) = (y.len, &table.buffer, t.buffer(), &y.buffer);
        match cached {
            Some(cached) => {
                let buffers = PerturbedEmbeddingCachedBuffers { table, tokens, y, cached: &cached };
                self.dispatch(PerturbedEmbeddingCached(Cached::F32), len, &params, buffers)
            }
            None => self.dispatch(PerturbedEmbedding, len, &params, PerturbedEmbeddingBuffers { table, tokens, y }),
        }
    }

    fn full_rank_embedding_unchecked(
        &self, tokens: &[u32], table: &GpuBuffer, noise: LowRankNoise, batch: Batch, y: &mut GpuBuffer,
    ) -> Result<()> {
        let params = embedding_params(noise, batch, noise.shape.sigma)?;
        let t = self.upload_scratch(ScratchUse::Tokens, tokens)?;
        let buffers = FullRankEmbeddingBuffers { table: &table.buffer, tokens: t.buffer(), y: &y.buffer };
        self.dispatch(FullRankEmbedding, y.len, &params, buffers)
    }

    fn embedding_unchecked(&self, tokens: &[u32], table: &GpuBuffer, cols: usize, y: &mut GpuBuffer) -> Result<()> {
        let params = EmbeddingParams {
            rows: word("rows", tokens.len())?,
            n: word("cols", cols)?,
            count: 1,
            shared_input: 1,
            ..EmbeddingParams::default()
        };
        let t = self.upload_scratch(ScratchUse::Tokens, tokens)?;
        self.dispatch(Embedding, y.len, &params, EmbeddingBuffers { table: &table.buffer, tokens: t.buffer(), y: &y.buffer })
    }
}

impl WgpuBackend {
    /// Whether the projection `X B` of `sums` blocks of sums over `n` runs as a workgroup
    /// reduction (`lowrank_project_reduce`) rather than one serial loop per block.
    fn project_by_reduction(&self, sums: usize, n: usize) -> bool {
        // One workgroup per block pays a few barriers and a reduction; worth it when the serial
        // chains are long and too few to occupy the device.
        let occupancy = if self.ctx.info.device_type == wgpu::DeviceType::Cpu { 64 } else { 16384 };
        n >= 64 && sums < occupancy
    }
}

impl WgpuBackend {
    /// `g = σ/√N Σ_i f_i s_i ε_i` with `ε_i` draws `start .. start + g.len` of pair `i / 2`: a
    /// vector's estimate, or a matrix's (or piece's) under OpenES; a whole vector's draws from
    /// the noise cache when a forward kept them.
    fn full_rank_estimate(&self, fitness: &[f32], stream: NoiseStream, start: u32, sigma: f32, g: &mut GpuBuffer) -> Result<()> {
        let d = self.fitness_differences(fitness)?;
        let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&stream);
        let params = VectorParams {
            len: word("gradient length", g.len)?,
            pairs: word("pairs", fitness.len() / 2)?,
            seed_lo,
            seed_hi,
            param_id,
            noise_epoch,
            coef: sigma / (fitness.len() as f32).sqrt(),
            start,
            ..VectorParams::default()
        };
        let (len, d, g) = (g.len, d.buffer(), &g.buffer);
        let kept = if start == 0 { self.kept_normals(stream, len, fitness.len() / 2) } else { None };
        match kept {
            Some(cached) => {
                self.dispatch(VectorUpdateCached(Cached::F32), len, &params, VectorUpdateCachedBuffers { d, g, cached: &cached })
            }
            None => self.dispatch(VectorUpdate, len, &params, VectorUpdateBuffers { d, g }),
        }
    }
}

/// The parameters of an elementwise kernel over `len` values, the rest zero (the bias
/// corrections one).
fn elementwise_over(len: usize) -> Result<ElementParams> {
    Ok(ElementParams { len: word("buffer length", len)?, bc1: 1.0, bc2: 1.0, ..ElementParams::default() })
}

/// `NoiseParams` of noise.wgsl for `count` members or pairs from `first`.
fn noise_params(noise: &LowRankNoise, count: usize, first: usize) -> Result<NoiseParams> {
    let s = noise.shape;
    let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&noise.stream);
    Ok(NoiseParams {
        m: word("m", s.m)?,
        n: word("n", s.n)?,
        rank: word("rank", s.rank)?,
        count: word("count", count)?,
        first: word("first", first)?,
        seed_lo,
        seed_hi,
        param_id,
        noise_epoch,
        a_rows: word("rows of the whole matrix", s.whole_rows())?,
        a_first: word("first row of the piece", s.first_row())?,
        ..NoiseParams::default()
    })
}

/// `VectorParams` of the forwards of vector_noise.wgsl: member i's `v + s_i σ ε_i` applied to
/// its rows of `y`.
fn vector_params(y: &GpuBuffer, v: &GpuBuffer, stream: NoiseStream, sigma: f32, batch: Batch) -> Result<VectorParams> {
    let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&stream);
    Ok(VectorParams {
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
    })
}

/// `EmbeddingParams` of a perturbed lookup of `batch` with `noise`, its noise scaled by `scale`.
fn embedding_params(noise: LowRankNoise, batch: Batch, scale: f32) -> Result<EmbeddingParams> {
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
        first_row: word("first row", s.first_row())?,
        whole_rows: word("rows", s.whole_rows())?,
        ..EmbeddingParams::default()
    })
}
