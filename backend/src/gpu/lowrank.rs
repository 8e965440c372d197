//! The low-rank kernels: the EGGROLL forward, the naive ES baseline (full-rank noise,
//! materialised), the noise factors and the low-rank update, each a few dispatches.

use super::buffer::GpuBuffer;
use super::context::{word, Dispatch, ScratchUse, Storage};
use super::gemm::Gemm;
use super::params::{stream_fields, LowRankParams, MaterialiseParams, NoiseParams, UniformBlock};
use super::shaders::Kernel;
use super::wgpu_backend::WgpuBackend;
use crate::ops::{Batch, InputLayout, LowRankNoise};
use crate::Result;

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

    pub(crate) fn noise_factors_kernel(&self, noise: LowRankNoise, population: usize, a: &mut GpuBuffer, b: &mut GpuBuffer) -> Result<()> {
        let params = noise_params(&noise, population, 0)?;
        self.dispatch(Kernel::NoiseFactors, a.len + b.len, params, Storage::of([(1, &a.buffer), (2, &b.buffer)]))
    }

    pub(crate) fn perturbed_matmul_kernel(
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
        let p = self.ctx.scratch(ScratchUse::Projections, projections * rows * r)?;
        let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&noise.stream);
        let pair_offset = word("first pair", batch.first_pair())?;
        let lowrank_params = |count: usize| -> Result<UniformBlock> {
            Ok(UniformBlock::of(&LowRankParams {
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
            }))
        };
        let z = if shared { Some(self.ctx.scratch(ScratchUse::SharedProduct, rows * m)?) } else { None };
        let base = match &z {
            Some(z) => self.gemm(Gemm { dtype, ..Gemm::plain(&x.buffer, &w.buffer, z.buffer(), rows, m, n) })?,
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
        let project =
            Dispatch { kernel, params: lowrank_params(population / 2)?, storage: Storage::of([(1, &x.buffer), (2, p.buffer())]), groups };
        let expand = Dispatch {
            kernel: Kernel::LowrankExpand,
            params: lowrank_params(population)?,
            storage: Storage::of([(3, p.buffer()), (4, z.as_ref().map_or(&self.ctx.dummy, |z| z.buffer())), (5, &y.buffer)]),
            groups: self.ctx.grid("lowrank_expand", population / 2 * rows.div_ceil(4) * m)?,
        };
        self.ctx.run(&[base, project, expand])
    }

    pub(crate) fn naive_perturbed_matmul_kernel(
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
        let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&noise.stream);
        let chunk = self.chunk("materialised weights W + E_i", m * n, population)?;
        let w_i = self.ctx.scratch(ScratchUse::Materialised, dtype.words(chunk * m * n))?;
        for first in (0..population).step_by(chunk) {
            let count = chunk.min(population - first);
            let pairs = (first + count).div_ceil(2) - first / 2;
            let materialise = Dispatch {
                kernel: Kernel::Materialise(dtype),
                params: UniformBlock::of(&MaterialiseParams {
                    len,
                    blocks: len.div_ceil(4),
                    first: word("first", first)?,
                    count: word("count", count)?,
                    seed_lo,
                    seed_hi,
                    param_id,
                    noise_epoch,
                    sigma: noise.shape.sigma,
                    pair_offset: word("first pair", batch.first_pair())?,
                    ..MaterialiseParams::default()
                }),
                storage: Storage::of([(1, &w.buffer), (2, w_i.buffer())]),
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
                ..Gemm::plain(&x.buffer, w_i.buffer(), &y.buffer, rows, m, n)
            })?;
            self.ctx.run(&[materialise, multiply])?;
        }
        Ok(())
    }

    pub(crate) fn lowrank_update_kernel(&self, fitness: &[f32], noise: LowRankNoise, g: &mut GpuBuffer) -> Result<()> {
        let d = self.fitness_differences(fitness)?;
        let s = noise.shape;
        let (m, n, r) = (s.m, s.n, s.rank);
        let pairs = fitness.len() / 2;
        let alpha = s.scale() / (fitness.len() as f32).sqrt();
        // G = alpha Σ_k d_k A_k B_kᵀ = alpha A' B'ᵀ with A' = [A_k] (m x pairs r) and
        // B' = [d_k B_k] (n x pairs r): one GEMM per chunk of pairs, accumulating.
        let chunk = self.chunk("update factors", m.max(n) * r, pairs)?;
        let a = self.ctx.scratch(ScratchUse::UpdateA, m * chunk * r)?;
        let b = self.ctx.scratch(ScratchUse::UpdateB, n * chunk * r)?;
        for first in (0..pairs).step_by(chunk) {
            let count = chunk.min(pairs - first);
            let factors = Dispatch {
                kernel: Kernel::UpdateFactors,
                params: noise_params(&noise, count, first)?,
                storage: Storage::of([(1, a.buffer()), (2, b.buffer()), (3, d.buffer())]),
                groups: self.ctx.grid("update_factors", (m + n) * count * r)?,
            };
            let multiply =
                self.gemm(Gemm { alpha, accumulate: first > 0, ..Gemm::plain(a.buffer(), b.buffer(), &g.buffer, m, n, count * r) })?;
            self.ctx.run(&[factors, multiply])?;
        }
        Ok(())
    }
}

/// `NoiseParams` of noise.wgsl for `count` members or pairs from `first`.
fn noise_params(noise: &LowRankNoise, count: usize, first: usize) -> Result<UniformBlock> {
    let s = noise.shape;
    let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&noise.stream);
    Ok(UniformBlock::of(&NoiseParams {
        m: word("m", s.m)?,
        n: word("n", s.n)?,
        rank: word("rank", s.rank)?,
        count: word("count", count)?,
        first: word("first", first)?,
        seed_lo,
        seed_hi,
        param_id,
        noise_epoch,
        ..NoiseParams::default()
    }))
}
