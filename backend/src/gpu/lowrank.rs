//! The low-rank kernels: the EGGROLL forward, the naive ES baseline (full-rank noise,
//! materialised), the noise factors and the low-rank update, each a few dispatches.

use super::context::{word, Context, Dispatch};
use super::gemm::GemmConfig;
use super::kernels::{bits, stream_words};
use super::shaders::Kernel;
use super::{GpuBuffer, WgpuBackend};
use crate::ops::{Batch, DType, InputLayout, LowRankNoise};
use crate::{Error, Result};

/// One (batched) GEMM `y[b] = alpha x[b] w[b]ᵀ (+ y[b])`, offsets and strides in f32.
pub(crate) struct Gemm<'a> {
    pub x: &'a wgpu::Buffer,
    pub w: &'a wgpu::Buffer,
    pub y: &'a wgpu::Buffer,
    pub rows: usize,
    pub cols: usize,
    pub inner: usize,
    pub batch: usize,
    pub x_offset: usize,
    pub x_batch: usize,
    pub w_batch: usize,
    pub y_offset: usize,
    pub y_batch: usize,
    pub alpha: f32,
    pub accumulate: bool,
    /// Storage type of `x` and `w` (`y` is f32).
    pub dtype: DType,
}

impl<'a> Gemm<'a> {
    /// `y = x wᵀ` with x rows x inner, w cols x inner.
    pub(crate) fn plain(x: &'a wgpu::Buffer, w: &'a wgpu::Buffer, y: &'a wgpu::Buffer, rows: usize, cols: usize, inner: usize) -> Self {
        Self {
            x,
            w,
            y,
            rows,
            cols,
            inner,
            batch: 1,
            x_offset: 0,
            x_batch: 0,
            w_batch: 0,
            y_offset: 0,
            y_batch: 0,
            alpha: 1.0,
            accumulate: false,
            dtype: DType::F32,
        }
    }

    /// The dispatch of this GEMM with `config`.
    pub(crate) fn dispatch(self, ctx: &Context, config: GemmConfig) -> Result<Dispatch<'a>> {
        let g = self;
        let (tm, tn) = config.tile();
        let tiles = |v: usize, t: u32| word("GEMM tiles", v.div_ceil(t as usize));
        let groups = [tiles(g.cols, tn)?, tiles(g.rows, tm)?, word("GEMM batch", g.batch)?];
        ctx.check_grid("GEMM", groups)?;
        let params = vec![
            word("GEMM rows", g.rows)?,
            word("GEMM columns", g.cols)?,
            word("GEMM inner dimension", g.inner)?,
            u32::from(g.accumulate),
            word("GEMM input offset", g.x_offset)?,
            word("GEMM input stride", g.x_batch)?,
            word("GEMM weight stride", g.w_batch)?,
            word("GEMM output offset", g.y_offset)?,
            word("GEMM output stride", g.y_batch)?,
            bits(g.alpha),
        ];
        Ok(Dispatch { kernel: Kernel::Gemm(config, g.dtype), params, buffers: vec![(1, g.x), (2, g.w), (3, g.y)], groups })
    }
}

/// Rows per block of the projection kernels (lowrank.wgsl's PROJECT_ROWS).
const PROJECT_ROWS: usize = 8;

impl WgpuBackend {
    /// Whether the projection `X B` of `sums` blocks of sums over `n` runs as a workgroup
    /// reduction (`lowrank_project_reduce`) rather than one serial loop per block.
    fn project_by_reduction(&self, sums: usize, n: usize) -> bool {
        // One workgroup per block pays a few barriers and a reduction; worth it when the serial
        // chains are long and too few to occupy the device.
        let occupancy = if self.ctx.info.device_type == wgpu::DeviceType::Cpu { 64 } else { 16384 };
        n >= 64 && sums < occupancy
    }

    /// The dispatch of `g` with the configuration chosen for its shape.
    pub(crate) fn gemm<'a>(&self, g: Gemm<'a>) -> Result<Dispatch<'a>> {
        let config = self.gemm_config(&g)?;
        g.dispatch(&self.ctx, config)
    }

    /// A scratch buffer of `len` f32 that must fit one storage binding.
    fn scratch(&self, what: &str, len: usize) -> Result<GpuBuffer> {
        let max = self.ctx.max_binding_floats();
        if len > max {
            return Err(Error::Limit(format!("{what}: {len} f32 exceed one storage binding of {max} f32")));
        }
        Ok(GpuBuffer::f32(self.ctx.storage(what, len)?, len))
    }

    /// How many items of `per_item` f32 fit one scratch buffer (at least 1, at most `total`).
    fn chunk(&self, what: &str, per_item: usize, total: usize) -> Result<usize> {
        let budget = self.ctx.max_binding_floats().min(self.scratch_floats);
        if per_item > self.ctx.max_binding_floats() {
            return Err(Error::Limit(format!("{what}: {per_item} f32 per item exceed one storage binding")));
        }
        let max_batch = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        Ok((budget / per_item).clamp(1, total.min(max_batch)))
    }

    pub(crate) fn noise_factors_impl(&self, noise: LowRankNoise, population: usize, a: &mut GpuBuffer, b: &mut GpuBuffer) -> Result<()> {
        let params = self.noise_params(&noise, population, 0)?;
        self.dispatch(Kernel::NoiseFactors, a.len + b.len, params, vec![(1, &a.buffer), (2, &b.buffer)])
    }

    /// `NoiseParams` of noise.wgsl for `count` members or pairs from `first`.
    fn noise_params(&self, noise: &LowRankNoise, count: usize, first: usize) -> Result<Vec<u32>> {
        let s = noise.shape;
        let [lo, hi, id, epoch] = stream_words(&noise.stream);
        Ok(vec![word("m", s.m)?, word("n", s.n)?, word("rank", s.rank)?, word("count", count)?, word("first", first)?, lo, hi, id, epoch])
    }

    pub(crate) fn perturbed_matmul_impl(
        &self,
        x: &GpuBuffer,
        w: &GpuBuffer,
        noise: LowRankNoise,
        batch: Batch,
        y: &mut GpuBuffer,
    ) -> Result<()> {
        let dtype = x.dtype;
        let s = noise.shape;
        let (m, n, r, rows, population) = (s.m, s.n, s.rank, batch.rows, batch.population);
        let shared = batch.input == InputLayout::Shared;
        // P = X B per pair (shared input: both members see the same X) or per member.
        let projections = if shared { population / 2 } else { population };
        let p = self.scratch("projections X B", projections * rows * r)?;
        let [lo, hi, id, epoch] = stream_words(&noise.stream);
        let lowrank_params = |count: usize| -> Result<Vec<u32>> {
            Ok(vec![
                word("rows", rows)?,
                word("n", n)?,
                word("m", m)?,
                word("rank", r)?,
                word("count", count)?,
                u32::from(shared),
                lo,
                hi,
                id,
                epoch,
                bits(s.scale()),
            ])
        };
        let z = if shared { Some(self.scratch("shared X Wᵀ", rows * m)?) } else { None };
        let base = match &z {
            Some(z) => self.gemm(Gemm { dtype, ..Gemm::plain(&x.buffer, &w.buffer, &z.buffer, rows, m, n) })?,
            None => self.gemm(Gemm { dtype, ..Gemm::plain(&x.buffer, &w.buffer, &y.buffer, population * rows, m, n) })?,
        };
        // Blocks of rows that share one pair's B: the shared rows, or both members' rows.
        let pair_rows = if shared { rows } else { 2 * rows };
        let sums = population / 2 * r * pair_rows.div_ceil(PROJECT_ROWS);
        let (kernel, groups) = if self.project_by_reduction(sums, n) {
            (Kernel::LowrankProjectReduce(dtype), self.ctx.groups_grid("lowrank_project_reduce", sums as u64)?)
        } else {
            (Kernel::LowrankProject(dtype), self.ctx.grid("lowrank_project", sums)?)
        };
        let project = Dispatch { kernel, params: lowrank_params(population / 2)?, buffers: vec![(1, &x.buffer), (2, &p.buffer)], groups };
        let expand = Dispatch {
            kernel: Kernel::LowrankExpand,
            params: lowrank_params(population)?,
            buffers: vec![(3, &p.buffer), (4, z.as_ref().map_or(&self.ctx.dummy, |z| &z.buffer)), (5, &y.buffer)],
            groups: self.ctx.grid("lowrank_expand", population / 2 * rows.div_ceil(4) * m)?,
        };
        self.ctx.run(&[base, project, expand])
    }

    pub(crate) fn naive_perturbed_matmul_impl(
        &self,
        x: &GpuBuffer,
        w: &GpuBuffer,
        noise: LowRankNoise,
        batch: Batch,
        y: &mut GpuBuffer,
    ) -> Result<()> {
        let (m, n, rows, population) = (noise.shape.m, noise.shape.n, batch.rows, batch.population);
        // W_i is materialised in the weights' storage type.
        let dtype = x.dtype;
        let len = word("full-rank noise draws m n", m * n)?;
        let [lo, hi, id, epoch] = stream_words(&noise.stream);
        let chunk = self.chunk("materialised weights W + E_i", m * n, population)?;
        let w_i = self.scratch("materialised weights W + E_i", dtype.words(chunk * m * n))?;
        for first in (0..population).step_by(chunk) {
            let count = chunk.min(population - first);
            let pairs = (first + count).div_ceil(2) - first / 2;
            let materialise = Dispatch {
                kernel: Kernel::Materialise(dtype),
                params: vec![
                    len,
                    len.div_ceil(4),
                    word("first", first)?,
                    word("count", count)?,
                    lo,
                    hi,
                    id,
                    epoch,
                    bits(noise.shape.sigma),
                ],
                buffers: vec![(1, &w.buffer), (2, &w_i.buffer)],
                groups: self.ctx.grid("materialise", pairs * (m * n).div_ceil(4))?,
            };
            let (x_offset, x_batch) = match batch.input {
                InputLayout::Shared => (0, 0),
                InputLayout::PerMember => (first * rows * n, rows * n),
            };
            let multiply = self.gemm(Gemm {
                dtype,
                batch: count,
                x_offset,
                x_batch,
                w_batch: m * n,
                y_offset: first * rows * m,
                y_batch: rows * m,
                ..Gemm::plain(&x.buffer, &w_i.buffer, &y.buffer, rows, m, n)
            })?;
            self.ctx.run(&[materialise, multiply])?;
        }
        Ok(())
    }

    pub(crate) fn lowrank_update_impl(&self, fitness: &[f32], noise: LowRankNoise, g: &mut GpuBuffer) -> Result<()> {
        let d = self.fitness_differences(fitness)?;
        let s = noise.shape;
        let (m, n, r) = (s.m, s.n, s.rank);
        let pairs = fitness.len() / 2;
        let alpha = s.scale() / (fitness.len() as f32).sqrt();
        // G = alpha Σ_k d_k A_k B_kᵀ = alpha A' B'ᵀ with A' = [A_k] (m x pairs r) and
        // B' = [d_k B_k] (n x pairs r): one GEMM per chunk of pairs, accumulating.
        let chunk = self.chunk("update factors", m.max(n) * r, pairs)?;
        let a = self.scratch("update factors A", m * chunk * r)?;
        let b = self.scratch("update factors d B", n * chunk * r)?;
        for first in (0..pairs).step_by(chunk) {
            let count = chunk.min(pairs - first);
            let factors = Dispatch {
                kernel: Kernel::UpdateFactors,
                params: self.noise_params(&noise, count, first)?,
                buffers: vec![(1, &a.buffer), (2, &b.buffer), (3, &d.buffer)],
                groups: self.ctx.grid("update_factors", (m + n) * count * r)?,
            };
            let multiply =
                self.gemm(Gemm { alpha, accumulate: first > 0, ..Gemm::plain(&a.buffer, &b.buffer, &g.buffer, m, n, count * r) })?;
            self.ctx.run(&[factors, multiply])?;
        }
        Ok(())
    }
}
