//! [`IntBackend`] for [`WgpuBackend`]: integer EGGROLL's kernels (docs/int8.md) as the `int8_*`
//! WGSL modules, over int8 tensors packed four to a word ([`GpuI8`]). Each call is one
//! submission of one to three dispatches (naive ES: one of two per chunk of members, OpenES's
//! product one of two per chunk of pairs); tokens, targets, fitness, factors, projections, naive
//! ES's materialised weights and OpenES's materialised noise go through the pooled scratch
//! buffers, and the log-likelihood's tables are uploaded once per
//! backend, so that a steady loop creates no device objects.

use super::buffer::GpuBuffer;
use super::context::{byte_size, word, ScratchUse};
use super::int8_buffer::{GpuI32, GpuI8};
use super::int8_kernels::*;
use super::kernel::{Dispatch, IntCached};
use super::params::{stream_fields, IntElementParams, IntFullRankParams, IntNaiveParams, IntNoiseParams, IntUpdateParams};
use super::wgpu_backend::WgpuBackend;
use crate::int8::{weight_shift, IntKernels, IntMatrix, IntNoise, EXP2, LOG2};
use crate::ops::{Batch, InputLayout, Recurrence};
use crate::rng::NoiseStream;
use crate::{DType, Kernels, Result};

/// Output rows per invocation of `int_matmul`, `int_naive_matmul` and `int_full_rank_matmul` (`RB`
/// of int8_matmul.wgsl, int8_naive.wgsl and int8_full_rank.wgsl).
const MATMUL_ROWS: usize = 4;
/// `@workgroup_size(8, 8)` of `int_matmul`.
const MATMUL_WORKGROUP: usize = 8;

/// Packs int8 values four to a little-endian word (lane j = byte j).
fn pack(data: &[i8]) -> Vec<u32> {
    data.chunks_exact(4).map(|c| u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8])).collect()
}

impl WgpuBackend {
    /// `EXP2` then `LOG2`, on the device from the first log-likelihood on.
    fn int_tables(&self) -> Result<&wgpu::Buffer> {
        if let Some(b) = self.int_tables.get() {
            return Ok(b);
        }
        let values: Vec<i32> = EXP2.iter().chain(LOG2.iter()).copied().collect();
        let buffer = self.ctx.storage("int8 tables", values.len())?;
        self.ctx.write_buffer(&buffer, 0, bytemuck::cast_slice(&values));
        Ok(self.int_tables.get_or_init(|| buffer))
    }

    /// The product's parameters: the mean model's when `noise` is `None`, else those of the
    /// batch's `count` members from pair `first_pair` of the whole population on.
    fn int_noise_params(
        &self, shape: IntMatrix, rows: usize, (count, first_pair): (usize, usize), shared: bool, noise: Option<IntNoise>,
    ) -> Result<IntNoiseParams> {
        let [seed_lo, seed_hi, param_id, noise_epoch] = noise.map(|n| stream_fields(&n.stream)).unwrap_or_default();
        Ok(IntNoiseParams {
            rows: word("rows", rows)?,
            m: word("m", shape.m)?,
            n: word("n", shape.n)?,
            rank: word("rank", noise.map_or(0, |n| n.rank))?,
            count: word("population", count)?,
            shared_input: u32::from(shared),
            shift: noise.map_or(0, |n| n.shift),
            out_shift: weight_shift(shape.n),
            seed_lo,
            seed_hi,
            param_id,
            noise_epoch,
            pair_offset: word("first pair", first_pair)?,
            ..IntNoiseParams::default()
        })
    }

    /// The grid of `int_matmul` over `m / 4` output words and `rows` output rows.
    fn int_matmul_grid(&self, m: usize, rows: usize) -> Result<[u32; 3]> {
        let x = (m / 4).div_ceil(MATMUL_WORKGROUP);
        let y = rows.div_ceil(MATMUL_ROWS).div_ceil(MATMUL_WORKGROUP);
        let groups = [word("int8 product grid", x)?, word("int8 product grid", y)?, 1];
        self.ctx.check_grid("int8 product", groups)?;
        Ok(groups)
    }

    /// The parameters of OpenES's kernels on `noise` (the stream, the rank and the shift), with
    /// the rest zero.
    fn int_full_rank_params(&self, shape: IntMatrix, noise: IntNoise) -> Result<IntFullRankParams> {
        let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&noise.stream);
        Ok(IntFullRankParams {
            m: word("m", shape.m)?,
            n: word("n", shape.n)?,
            rank: word("rank", noise.rank)?,
            shift: noise.shift,
            seed_lo,
            seed_hi,
            param_id,
            noise_epoch,
            ..IntFullRankParams::default()
        })
    }
}

impl IntKernels for WgpuBackend {
    type I8 = GpuI8;
    type I32 = GpuI32;

    fn zeros_i32(&self, len: usize) -> Result<GpuI32> {
        Ok(GpuI32 { values: self.new_buffer(len, DType::F32)? })
    }

    /// A buffer-to-buffer copy of the packed words: the bits, untouched by any shader.
    fn copy_i8_unchecked(&self, src: &GpuI8, dst: &mut GpuI8) -> Result<()> {
        self.copy_unchecked(&src.words, &mut dst.words)
    }

    fn len_i8(&self, tensor: &GpuI8) -> usize {
        tensor.len
    }

    fn len_i32(&self, tensor: &GpuI32) -> usize {
        tensor.len()
    }

    async fn read_i8(&self, tensor: &GpuI8) -> Result<Vec<i8>> {
        if tensor.len == 0 {
            return Ok(Vec::new());
        }
        let bytes = self.ctx.read_bytes(tensor.buffer(), byte_size("read", tensor.len / 4)?).await?;
        Ok(bytes.into_iter().map(|b| b as i8).collect())
    }

    async fn read_i32(&self, tensor: &GpuI32) -> Result<Vec<i32>> {
        if tensor.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = self.ctx.read_bytes(tensor.buffer(), byte_size("read", tensor.len())?).await?;
        Ok(bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    fn upload_i8_unchecked(&self, data: &[i8]) -> Result<GpuI8> {
        let mut tensor = self.zeros_i8_unchecked(data.len())?;
        self.write_i8_unchecked(&mut tensor, data)?;
        Ok(tensor)
    }

    fn zeros_i8_unchecked(&self, len: usize) -> Result<GpuI8> {
        let words: GpuBuffer = self.new_buffer(len / 4, DType::F32)?;
        Ok(GpuI8 { words, len })
    }

    fn write_i8_unchecked(&self, tensor: &mut GpuI8, data: &[i8]) -> Result<()> {
        if !data.is_empty() {
            self.ctx.write_buffer(tensor.buffer(), 0, bytemuck::cast_slice(&pack(data)));
        }
        self.ctx.check_errors()
    }

    fn int_matmul_unchecked(&self, x: &GpuI8, w: &GpuI8, shape: IntMatrix, rows: usize, y: &mut GpuI8) -> Result<()> {
        let params = self.int_noise_params(shape, rows, (1, 0), true, None)?;
        let (factors, proj) = (&self.ctx.dummy, &self.ctx.dummy_other);
        let buffers = IntMatmulBuffers { x: x.buffer(), w: w.buffer(), factors, proj, y: y.buffer() };
        self.ctx.run(&[Dispatch::new(IntMatmul(self.int_dot), &params, buffers, self.int_matmul_grid(shape.m, rows)?)])
    }

    fn int_perturbed_matmul_unchecked(
        &self, x: &GpuI8, w: &GpuI8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut GpuI8,
    ) -> Result<()> {
        let shared = batch.input == InputLayout::Shared;
        let pairs = batch.population / 2;
        let factor_words = noise.rank * (shape.m + shape.n) / 4;
        let projections = if shared { pairs } else { batch.population } * batch.rows * noise.rank;
        // The factors: the noise cache's entry of the epoch (filled by the first call), or drawn
        // into scratch by this call's first dispatch.
        let cached = self.cached_int_noise(noise.stream, (shape.m, shape.n, noise.rank), batch.first_pair(), pairs)?;
        let proj_scratch = self.ctx.scratch(ScratchUse::IntProjections, projections)?;
        let params = self.int_noise_params(shape, batch.rows, (batch.population, batch.first_pair()), shared, Some(noise))?;
        let dot = self.int_dot;
        let proj = proj_scratch.buffer();
        let scratch;
        let (factors, draw) = match &cached {
            Some(cached) => (cached, None),
            None => {
                scratch = self.ctx.scratch(ScratchUse::IntFactors, pairs * factor_words)?;
                let factors = scratch.buffer();
                (factors, Some(self.over(IntNoiseFactors(dot), pairs * factor_words, &params, IntNoiseFactorsBuffers { factors })?))
            }
        };
        let project = self.over(IntProject(dot), projections, &params, IntProjectBuffers { x: x.buffer(), factors, proj })?;
        let multiply = Dispatch::new(
            IntMatmul(dot),
            &params,
            IntMatmulBuffers { x: x.buffer(), w: w.buffer(), factors, proj, y: y.buffer() },
            self.int_matmul_grid(shape.m, batch.population * batch.rows)?,
        );
        self.ctx.run(&draw.into_iter().chain([project, multiply]).collect::<Vec<_>>())
    }

    fn int_naive_matmul_unchecked(
        &self, x: &GpuI8, w: &GpuI8, shape: IntMatrix, stream: NoiseStream, batch: Batch, y: &mut GpuI8,
    ) -> Result<()> {
        let (m, n, rows, population) = (shape.m, shape.n, batch.rows, batch.population);
        // Members in chunks whose materialised weights (m n / 4 words each) fit the scratch budget.
        let words = m * n / 4;
        let chunk = self.chunk("materialised int8 weights W_i", words, population)?;
        let w_i = self.ctx.scratch(ScratchUse::Materialised, chunk * words)?;
        let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&stream);
        for first in (0..population).step_by(chunk) {
            let count = chunk.min(population - first);
            let pairs = (first + count).div_ceil(2) - first / 2;
            let params = IntNaiveParams {
                rows: word("rows", rows)?,
                m: word("m", m)?,
                n: word("n", n)?,
                first: word("first", first)?,
                count: word("count", count)?,
                shared_input: u32::from(batch.input == InputLayout::Shared),
                out_shift: weight_shift(n),
                seed_lo,
                seed_hi,
                param_id,
                noise_epoch,
                pair_offset: word("first pair", batch.first_pair())?,
            };
            let materialise = self.over(
                IntNaiveMaterialise(self.int_dot),
                pairs * (words / 4),
                &params,
                IntNaiveMaterialiseBuffers { w: w.buffer(), wi: w_i.buffer() },
            )?;
            let x_groups = (m / 4).div_ceil(MATMUL_WORKGROUP);
            let y_groups = (count * rows.div_ceil(MATMUL_ROWS)).div_ceil(MATMUL_WORKGROUP);
            let groups = [word("int8 naive grid", x_groups)?, word("int8 naive grid", y_groups)?, 1];
            self.ctx.check_grid("int8 naive product", groups)?;
            let multiply = Dispatch::new(
                IntNaiveMatmul(self.int_dot),
                &params,
                IntNaiveMatmulBuffers { x: x.buffer(), wi: w_i.buffer(), y: y.buffer() },
                groups,
            );
            self.ctx.run(&[materialise, multiply])?;
        }
        Ok(())
    }

    fn int_full_rank_matmul_unchecked(
        &self, x: &GpuI8, w: &GpuI8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut GpuI8,
    ) -> Result<()> {
        let (m, n, rows, pairs) = (shape.m, shape.n, batch.rows, batch.population / 2);
        // Pairs in chunks whose materialised noise (m n i32 each) fits the scratch budget.
        let chunk = self.chunk("full-rank int8 noise E_k", m * n, pairs)?;
        let e = self.ctx.scratch(ScratchUse::IntFullRank, chunk * m * n)?;
        let base = IntFullRankParams {
            rows: word("rows", rows)?,
            shared_input: u32::from(batch.input == InputLayout::Shared),
            out_shift: weight_shift(n),
            pair_offset: word("first pair", batch.first_pair())?,
            ..self.int_full_rank_params(shape, noise)?
        };
        for first in (0..pairs).step_by(chunk) {
            let count = chunk.min(pairs - first);
            let params = IntFullRankParams { first_pair: word("first", first)?, pairs: word("pairs", count)?, ..base };
            let draw =
                self.over(IntFullRankNoise(self.int_dot), count * (m * n / 8), &params, IntFullRankNoiseBuffers { e: e.buffer() })?;
            let x_groups = (m / 4).div_ceil(MATMUL_WORKGROUP);
            let y_groups = (2 * count * rows.div_ceil(MATMUL_ROWS)).div_ceil(MATMUL_WORKGROUP);
            let groups = [word("int8 full-rank grid", x_groups)?, word("int8 full-rank grid", y_groups)?, 1];
            self.ctx.check_grid("int8 full-rank product", groups)?;
            let buffers = IntFullRankMatmulBuffers { x: x.buffer(), w: w.buffer(), e: e.buffer(), y: y.buffer() };
            let multiply = Dispatch::new(IntFullRankMatmul(self.int_dot), &params, buffers, groups);
            self.ctx.run(&[draw, multiply])?;
        }
        Ok(())
    }

    fn int_embedding_unchecked(&self, tokens: &[u32], table: &GpuI8, shape: IntMatrix, y: &mut GpuI8) -> Result<()> {
        let params = self.int_noise_params(shape, tokens.len(), (1, 0), true, None)?;
        let t = self.upload_scratch(ScratchUse::Tokens, tokens)?;
        self.dispatch(
            IntEmbedding(self.int_dot),
            y.len / 4,
            &params,
            IntEmbeddingBuffers { table: table.buffer(), tokens: t.buffer(), y: y.buffer() },
        )
    }

    fn int_perturbed_embedding_unchecked(
        &self, tokens: &[u32], table: &GpuI8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut GpuI8,
    ) -> Result<()> {
        let shared = batch.input == InputLayout::Shared;
        let params = self.int_noise_params(shape, batch.rows, (batch.population, batch.first_pair()), shared, Some(noise))?;
        let cached = self.cached_int_noise(noise.stream, (shape.m, shape.n, noise.rank), batch.first_pair(), batch.population / 2)?;
        let t = self.upload_scratch(ScratchUse::Tokens, tokens)?;
        let (len, table, tokens, y) = (y.len / 4, table.buffer(), t.buffer(), y.buffer());
        match cached {
            Some(cached) => {
                let buffers = IntPerturbedEmbeddingCachedBuffers { table, tokens, y, cached: &cached };
                self.dispatch(IntPerturbedEmbeddingCached(IntCached(self.int_dot)), len, &params, buffers)
            }
            None => self.dispatch(IntPerturbedEmbedding(self.int_dot), len, &params, IntPerturbedEmbeddingBuffers { table, tokens, y }),
        }
    }

    fn int_full_rank_embedding_unchecked(
        &self, tokens: &[u32], table: &GpuI8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut GpuI8,
    ) -> Result<()> {
        let params = IntFullRankParams {
            rows: word("rows", batch.rows)?,
            pairs: word("pairs", batch.population / 2)?,
            shared_input: u32::from(batch.input == InputLayout::Shared),
            pair_offset: word("first pair", batch.first_pair())?,
            ..self.int_full_rank_params(shape, noise)?
        };
        let t = self.upload_scratch(ScratchUse::Tokens, tokens)?;
        let buffers = IntFullRankEmbeddingBuffers { x: t.buffer(), w: table.buffer(), y: y.buffer() };
        self.dispatch(IntFullRankEmbedding(self.int_dot), y.len / 4, &params, buffers)
    }

    fn int_layer_norm_unchecked(&self, x: &mut GpuI8, width: usize) -> Result<()> {
        let rows = x.len / width;
        let params = IntElementParams { rows: word("rows", rows)?, width: word("width", width)?, ..Default::default() };
        self.dispatch(IntLayerNorm(self.int_dot), rows, &params, IntLayerNormBuffers { a: x.buffer() })
    }

    fn int_mingru_scan_unchecked(&self, gate: &GpuI8, candidate: &GpuI8, shape: Recurrence, h: &mut GpuI8) -> Result<()> {
        let params = IntElementParams {
            rows: word("sequences", shape.sequences)?,
            width: word("width", shape.width)?,
            time: word("time", shape.time)?,
            ..Default::default()
        };
        let buffers = IntMingruScanBuffers { a: h.buffer(), b: gate.buffer(), c: candidate.buffer() };
        self.dispatch(IntMingruScan(self.int_dot), shape.sequences * shape.width / 4, &params, buffers)
    }

    fn int_relu_unchecked(&self, x: &mut GpuI8) -> Result<()> {
        let params = IntElementParams { len: word("words", x.len / 4)?, ..Default::default() };
        self.dispatch(IntRelu(self.int_dot), x.len / 4, &params, IntReluBuffers { a: x.buffer() })
    }

    fn int_add_unchecked(&self, x: &mut GpuI8, other: &GpuI8) -> Result<()> {
        let params = IntElementParams { len: word("words", x.len / 4)?, other: word("words", other.len / 4)?, ..Default::default() };
        self.dispatch(IntAdd(self.int_dot), x.len / 4, &params, IntAddBuffers { a: x.buffer(), b: other.buffer() })
    }

    fn int_log_likelihood_unchecked(&self, logits: &GpuI8, targets: &[u32], classes: usize, out: &mut GpuI32) -> Result<()> {
        let params = IntElementParams { rows: word("rows", targets.len())?, width: word("classes", classes)?, ..Default::default() };
        let tables = self.int_tables()?;
        let t = self.upload_scratch(ScratchUse::Targets, targets)?;
        let buffers = IntLogLikelihoodBuffers { b: logits.buffer(), c: t.buffer(), out: out.buffer(), tables };
        self.dispatch(IntLogLikelihood(self.int_dot), targets.len(), &params, buffers)
    }

    fn int_lowrank_update_unchecked(&self, fitness: &[i8], noise: IntNoise, shape: IntMatrix, threshold: i32, w: &mut GpuI8) -> Result<()> {
        let pairs = fitness.len();
        let inner_words = (pairs * noise.rank).div_ceil(4);
        let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&noise.stream);
        let params = IntUpdateParams {
            m: word("m", shape.m)?,
            n: word("n", shape.n)?,
            rank: word("rank", noise.rank)?,
            pairs: word("pairs", pairs)?,
            inner_words: word("inner words", inner_words)?,
            threshold,
            seed_lo,
            seed_hi,
            param_id,
            noise_epoch,
            ..Default::default()
        };
        let f = self.upload_scratch(ScratchUse::IntFitness, &fitness.iter().map(|&f| i32::from(f)).collect::<Vec<i32>>())?;
        let fa = self.ctx.scratch(ScratchUse::IntUpdateA, shape.m * inner_words)?;
        let fb = self.ctx.scratch(ScratchUse::IntUpdateB, shape.n * inner_words)?;
        let (fitness, fa, fb) = (f.buffer(), fa.buffer(), fb.buffer());
        let len = (shape.m + shape.n) * inner_words;
        // The pairs' noise from the noise cache when the epoch's forwards kept the whole population's.
        let kept = self.kept_int_noise(noise.stream, noise.rank * (shape.m + shape.n), pairs);
        let factors = match &kept {
            Some(cached) => {
                let buffers = IntUpdateFactorsCachedBuffers { fitness, fa, fb, cached };
                self.over(IntUpdateFactorsCached(IntCached(self.int_dot)), len, &params, buffers)?
            }
            None => self.over(IntUpdateFactors(self.int_dot), len, &params, IntUpdateFactorsBuffers { fitness, fa, fb })?,
        };
        self.ctx.run(&[
            factors,
            self.over(IntUpdate(self.int_dot), shape.m * shape.n / 4, &params, IntUpdateBuffers { fa, fb, w: w.buffer() })?,
        ])
    }

    fn int_full_rank_update_unchecked(
        &self, fitness: &[i8], noise: IntNoise, shape: IntMatrix, threshold: i32, w: &mut GpuI8,
    ) -> Result<()> {
        let params = IntFullRankParams { pairs: word("pairs", fitness.len())?, threshold, ..self.int_full_rank_params(shape, noise)? };
        let f = self.upload_scratch(ScratchUse::IntFitness, &fitness.iter().map(|&f| i32::from(f)).collect::<Vec<i32>>())?;
        // Eight weights (two words) per invocation.
        let buffers = IntFullRankUpdateBuffers { y: w.buffer(), fitness: f.buffer() };
        self.dispatch(IntFullRankUpdate(self.int_dot), (shape.m * shape.n / 4).div_ceil(2), &params, buffers)
    }
}
