//! The low-rank kernels: the EGGROLL forward, the naive materialised baseline, the noise factors
//! and the low-rank update, each a short sequence of dispatches.

use super::context::{word, Dispatch};
use super::kernels::{bits, stream_words};
use super::shaders::Kernel;
use super::{GpuBuffer, MatmulVariant, WgpuBackend};
use crate::ops::{check_len, check_population, Batch, InputLayout, LowRankNoise};
use crate::{Error, Result};

/// Output tile of the GEMM kernels (matmul.wgsl's TILE).
const GEMM_TILE: usize = 64;

/// One (batched) GEMM `y[b] = alpha x[b] w[b]ᵀ (+ y[b])`, offsets and strides in f32.
pub(crate) struct Gemm<'a> {
    x: &'a wgpu::Buffer,
    w: &'a wgpu::Buffer,
    y: &'a wgpu::Buffer,
    rows: usize,
    cols: usize,
    inner: usize,
    batch: usize,
    x_offset: usize,
    x_batch: usize,
    w_batch: usize,
    y_offset: usize,
    y_batch: usize,
    alpha: f32,
    accumulate: bool,
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
        }
    }
}

impl WgpuBackend {
    /// The dispatch of `g` with the backend's GEMM variant.
    pub(crate) fn gemm<'a>(&self, g: Gemm<'a>) -> Result<Dispatch<'a>> {
        let tiles = |v: usize| word("GEMM tiles", v.div_ceil(GEMM_TILE));
        let groups = [tiles(g.cols)?, tiles(g.rows)?, word("GEMM batch", g.batch)?];
        self.ctx.check_grid("GEMM", groups)?;
        let kernel = match self.matmul_variant {
            MatmulVariant::WorkgroupTiled => Kernel::MatmulTiled,
            MatmulVariant::Direct => Kernel::MatmulDirect,
        };
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
        Ok(Dispatch { kernel, params, buffers: vec![(1, g.x), (2, g.w), (3, g.y)], groups })
    }

    /// A scratch buffer of `len` f32 that must fit one storage binding.
    fn scratch(&self, what: &str, len: usize) -> Result<GpuBuffer> {
        let max = self.ctx.max_binding_floats();
        if len > max {
            return Err(Error::Limit(format!("{what}: {len} f32 exceed one storage binding of {max} f32")));
        }
        Ok(GpuBuffer { buffer: self.ctx.storage(what, len)?, len })
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
        noise.shape.validate()?;
        check_population(population)?;
        let s = noise.shape;
        check_len("factor A", a.len, population * s.m * s.rank)?;
        check_len("factor B", b.len, population * s.n * s.rank)?;
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
        check_matmul_args(x, w, &noise, &batch, y)?;
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
            Some(z) => self.gemm(Gemm::plain(&x.buffer, &w.buffer, &z.buffer, rows, m, n))?,
            None => self.gemm(Gemm::plain(&x.buffer, &w.buffer, &y.buffer, population * rows, m, n))?,
        };
        let project = Dispatch {
            kernel: Kernel::LowrankProject,
            params: lowrank_params(projections)?,
            buffers: vec![(1, &x.buffer), (2, &p.buffer)],
            groups: self.ctx.grid("lowrank_project", projections * r * rows.div_ceil(8))?,
        };
        let expand = Dispatch {
            kernel: Kernel::LowrankExpand,
            params: lowrank_params(population)?,
            buffers: vec![(3, &p.buffer), (4, z.as_ref().map_or(&self.ctx.dummy, |z| &z.buffer)), (5, &y.buffer)],
            groups: self.ctx.grid("lowrank_expand", population * rows.div_ceil(4) * m)?,
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
        check_matmul_args(x, w, &noise, &batch, y)?;
        let s = noise.shape;
        let (m, n, r, rows, population) = (s.m, s.n, s.rank, batch.rows, batch.population);
        let chunk = self.chunk("materialised weights W + E_i", m * n, population)?;
        let a = self.scratch("factors A", chunk * m * r)?;
        let b = self.scratch("factors B", chunk * n * r)?;
        let w_i = self.scratch("materialised weights W + E_i", chunk * m * n)?;
        for first in (0..population).step_by(chunk) {
            let count = chunk.min(population - first);
            let factors = Dispatch {
                kernel: Kernel::NoiseFactors,
                params: self.noise_params(&noise, count, first)?,
                buffers: vec![(1, &a.buffer), (2, &b.buffer)],
                groups: self.ctx.grid("noise_factors", count * (m + n) * r)?,
            };
            let materialise = Dispatch {
                kernel: Kernel::Materialise,
                params: vec![word("m", m)?, word("n", n)?, word("rank", r)?, word("count", count)?, bits(s.scale())],
                buffers: vec![(1, &w.buffer), (2, &a.buffer), (3, &b.buffer), (4, &w_i.buffer)],
                groups: self.ctx.grid("materialise", count * m * n)?,
            };
            let (x_offset, x_batch) = match batch.input {
                InputLayout::Shared => (0, 0),
                InputLayout::PerMember => (first * rows * n, rows * n),
            };
            let multiply = self.gemm(Gemm {
                batch: count,
                x_offset,
                x_batch,
                w_batch: m * n,
                y_offset: first * rows * m,
                y_batch: rows * m,
                ..Gemm::plain(&x.buffer, &w_i.buffer, &y.buffer, rows, m, n)
            })?;
            self.ctx.run(&[factors, materialise, multiply])?;
        }
        Ok(())
    }

    pub(crate) fn lowrank_update_impl(&self, fitness: &[f32], noise: LowRankNoise, g: &mut GpuBuffer) -> Result<()> {
        noise.shape.validate()?;
        let d = self.fitness_differences(fitness)?;
        let s = noise.shape;
        let (m, n, r) = (s.m, s.n, s.rank);
        check_len("gradient G", g.len, m * n)?;
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

/// The argument checks of the population forwards.
fn check_matmul_args(x: &GpuBuffer, w: &GpuBuffer, noise: &LowRankNoise, batch: &Batch, y: &GpuBuffer) -> Result<()> {
    noise.shape.validate()?;
    batch.validate()?;
    let (m, n) = (noise.shape.m, noise.shape.n);
    check_len("weight W", w.len, m * n)?;
    check_len("input X", x.len, batch.input_len(n))?;
    check_len("output Y", y.len, batch.output_len(m))
}
