//! The CPU backend: the reference every GPU kernel is checked against, and a fast backend in its
//! own right (a SIMD multithreaded GEMM for the shared `X Wᵀ`, rayon over antithetic pairs for the
//! low-rank terms, noise regenerated once per pair and shared by its two members).

mod draws;
mod gemm;
mod int8;
mod int8_full_rank;
mod int8_gemm;
mod int8_naive;
mod int8_noise;
mod int8_pairs;
mod lanes;
mod lowrank;
#[cfg(target_arch = "x86_64")]
mod narrow;
#[cfg(target_arch = "x86_64")]
mod panels;
mod recurrence;
mod sampling;
mod tanh;
mod transformer;

use crate::noise_cache::NoiseCache;
use crate::ops::{member_sign, Activation, AdamParams, Batch, InputLayout, LowRankNoise};
use crate::rng::{FillPath, NoiseStream};
use crate::transformer::RotationMemo;
use crate::{AdapterDescription, Kernels, Result};
use draws::HostDraws;
use gemm::{gemm, gemm_serial, matvec_rows, uses_dots, x_wt_dots, View};
use lowrank::{add_lowrank, PairScratch, Pairs};
use rayon::prelude::*;
use recurrence::mingru_scan;
use std::sync::Arc;

/// Upper bound on the f32 scratch the low-rank update materialises at once (pairs are chunked).
const UPDATE_SCRATCH_FLOATS: usize = 32 << 20;

/// From how many rows per member naive ES multiplies its `W + σ E_i` by the GEMM rather than by
/// dot products, which read it once and do not pack it: below it the GEMM's packing of the whole
/// matrix costs more than it saves (the crossover is measured with `eggroll bench`, see
/// BENCHMARKS.md).
const NAIVE_GEMM_ROWS: usize = 8;

/// Below this many multiply-adds a call runs on the calling thread: handing work to rayon's
/// threads and waiting for them costs more than they would save.
const INLINE_WORK: usize = 1 << 19;

/// How many tasks a call of `work` multiply-adds over `items` independent items (pairs, rows)
/// splits into: one (the calling thread) for small work, else one per thread of the pool.
fn tasks(work: usize, items: usize) -> usize {
    if work < INLINE_WORK {
        1
    } else {
        rayon::current_num_threads().min(items).max(1)
    }
}

/// An output that the tasks of [`column_blocks`] write, each in its own columns.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

// SAFETY: the tasks that share it write disjoint elements (see `column_blocks`).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// `run(start, end)` over blocks of the columns `0..cols`, each block a multiple of `tile` wide:
/// one block per thread of the pool, or the whole on the calling thread when `work` multiply-adds
/// are few (`tasks`).
fn column_blocks(cols: usize, tile: usize, work: usize, run: impl Fn(usize, usize) + Sync) {
    let tasks = tasks(work, cols.div_ceil(tile));
    let block = cols.div_ceil(tasks).next_multiple_of(tile);
    if tasks == 1 {
        run(0, cols);
    } else {
        (0..cols).step_by(block).collect::<Vec<_>>().into_par_iter().for_each(|start| run(start, (start + block).min(cols)));
    }
}

/// The multithreaded CPU backend. Buffers are plain `Vec<f32>`. Clones share the noise cache
/// ([`Kernels::set_noise_cache`]) and the rotary embedding's last rotations.
#[derive(Clone, Debug, Default)]
pub struct CpuBackend {
    noise: Arc<NoiseCache<HostDraws>>,
    rotations: Arc<RotationMemo>,
}

impl CpuBackend {
    /// A CPU backend on rayon's global thread pool, its noise cache off.
    pub fn new() -> Self {
        Self::default()
    }

    /// The threads its kernels run on: those of the rayon pool it is called from.
    pub fn threads(&self) -> usize {
        rayon::current_num_threads()
    }
}

impl CpuBackend {
    /// `g = σ/√N Σ_i f_i s_i ε_i` with `ε_i` draws `start .. start + g.len()` of pair `i / 2`:
    /// a vector's estimate, or a matrix's (or piece's) under OpenES. A whole vector's draws come
    /// from the noise cache when a forward kept them.
    fn full_rank_estimate(&self, fitness: &[f32], stream: NoiseStream, start: u32, sigma: f32, g: &mut [f32]) {
        let coef = sigma / (fitness.len() as f32).sqrt();
        let (len, pairs) = (g.len(), fitness.len() / 2);
        let kept = if start == 0 { self.kept_normals(stream, len, pairs) } else { None };
        let mut scratch = if kept.is_some() { Vec::new() } else { vec![0.0; len] };
        g.fill(0.0);
        for pair in 0..pairs {
            let eps: &[f32] = match &kept {
                Some(kept) => &kept[pair * len..(pair + 1) * len],
                None => {
                    stream.fill_normals(pair as u32, start, &mut scratch);
                    &scratch
                }
            };
            let d = coef * (fitness[2 * pair] - fitness[2 * pair + 1]);
            for (gj, ej) in g.iter_mut().zip(eps) {
                *gj += d * ej;
            }
        }
    }
}

/// Writes the row-major `rows x r` matrix whose transpose is `t` (r x rows) into `out`.
fn transpose_into(t: &[f32], rows: usize, r: usize, sign: f32, out: &mut [f32]) {
    for (k, column) in t.chunks_exact(rows).enumerate() {
        for (j, v) in column.iter().enumerate() {
            out[j * r + k] = sign * v;
        }
    }
}

/// The input rows of the batch's member `member` (counted from the batch's first).
fn member_input<'a, T>(x: &'a [T], batch: &Batch, n: usize, member: usize) -> &'a [T] {
    match batch.input {
        InputLayout::Shared => x,
        InputLayout::PerMember => &x[member * batch.rows * n..(member + 1) * batch.rows * n],
    }
}

/// Applies a vector parameter `v` (len) with full-rank noise to `y` (N x rows x len):
/// `op(y[i, row, j], v[j] + s_i σ ε_i[j])` for every value, in parallel over the antithetic
/// pairs, the noise `ε` of each pair (draw `j` of its stream, pair `batch.first_pair()` on for
/// the batch's first) read from `kept` (every pair's, one after another) or drawn once, and
/// shared by its members.
fn perturbed_vector(
    y: &mut [f32], v: &[f32], stream: NoiseStream, kept: Option<&[f32]>, sigma: f32, batch: &Batch, op: impl Fn(&mut f32, f32) + Sync,
) {
    let (len, rows, first_pair) = (v.len(), batch.rows, batch.first_pair());
    y.par_chunks_mut(2 * rows * len).enumerate().for_each_init(
        || if kept.is_some() { Vec::new() } else { vec![0.0; len] },
        |scratch, (pair, y_pair)| {
            let eps: &[f32] = match kept {
                Some(kept) => &kept[pair * len..(pair + 1) * len],
                None => {
                    stream.fill_normals((first_pair + pair) as u32, 0, scratch);
                    scratch
                }
            };
            for (half, y_member) in y_pair.chunks_exact_mut(rows * len).enumerate() {
                let coef = member_sign(half) * sigma;
                for y_row in y_member.chunks_exact_mut(len) {
                    for ((yj, vj), ej) in y_row.iter_mut().zip(v).zip(eps.iter()) {
                        op(yj, vj + coef * ej);
                    }
                }
            }
        },
    );
}

impl Kernels for CpuBackend {
    type Buffer = Vec<f32>;

    fn describe(&self) -> AdapterDescription {
        AdapterDescription {
            name: match self.threads() {
                1 => "CPU (1 thread)".to_string(),
                threads => format!("CPU ({threads} threads)"),
            },
            vendor: 0,
            backend: "cpu".into(),
            driver: format!("{} on rayon, {}, {} draws", gemm::kernels(), std::env::consts::ARCH, FillPath::fastest().name()),
            device_type: "Cpu".into(),
            features: Vec::new(),
        }
    }

    fn upload(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }

    fn zeros(&self, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn set_noise_cache(&self, bytes: u64) {
        self.noise.set_budget(bytes);
    }

    fn write_unchecked(&self, buffer: &mut Vec<f32>, data: &[f32]) -> Result<()> {
        buffer.copy_from_slice(data);
        Ok(())
    }

    fn copy_unchecked(&self, src: &Vec<f32>, dst: &mut Vec<f32>) -> Result<()> {
        dst.copy_from_slice(src);
        Ok(())
    }

    fn len(&self, buffer: &Vec<f32>) -> usize {
        buffer.len()
    }

    async fn read(&self, buffer: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(buffer.clone())
    }

    async fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn matmul_unchecked(&self, x: &Vec<f32>, w: &Vec<f32>, m: usize, n: usize, rows: usize, y: &mut Vec<f32>) -> Result<()> {
        if uses_dots(rows, m, n) {
            x_wt_dots(x, rows, &w[..m * n], n, y);
        } else {
            gemm(View::new(x, rows, n), View::transpose_of(w, n, m), 0.0, y);
        }
        Ok(())
    }

    fn noise_factors_unchecked(&self, noise: LowRankNoise, _population: usize, a: &mut Vec<f32>, b: &mut Vec<f32>) -> Result<()> {
        let LowRankNoise { shape, .. } = noise;
        let (ma, nb) = (shape.m * shape.rank, shape.n * shape.rank);
        let r = shape.rank;
        a.par_chunks_mut(2 * ma).zip(b.par_chunks_mut(2 * nb)).enumerate().for_each_init(
            || (vec![0.0; ma], vec![0.0; nb]),
            |(a_t, b_t), (pair, (a2, b2))| {
                noise.fill_factors_t(pair as u32, a_t, b_t);
                let (a_even, a_odd) = a2.split_at_mut(ma);
                let (b_even, b_odd) = b2.split_at_mut(nb);
                transpose_into(a_t, shape.m, r, 1.0, a_even);
                transpose_into(a_t, shape.m, r, -1.0, a_odd);
                transpose_into(b_t, shape.n, r, 1.0, b_even);
                b_odd.copy_from_slice(b_even);
            },
        );
        Ok(())
    }

    fn perturbed_matmul_unchecked(&self, x: &Vec<f32>, w: &Vec<f32>, noise: LowRankNoise, batch: Batch, y: &mut Vec<f32>) -> Result<()> {
        let shape = noise.shape;
        let (m, n, rows) = (shape.m, shape.n, batch.rows);
        // The shared X Wᵀ, row blocks of it fused with the low-rank terms of the same members: one
        // task per block of antithetic pairs, each drawing a pair's noise once for both members.
        let base = match batch.input {
            InputLayout::Shared => {
                let mut base = vec![0.0; rows * m];
                gemm(View::new(x, rows, n), View::transpose_of(w, n, m), 0.0, &mut base);
                Some(base)
            }
            InputLayout::PerMember => None,
        };
        // A few rows per member of a large weight (a language model's decode step): every
        // member's X_i Wᵀ at once, each thread reading its share of W once, before the low-rank
        // terms.
        let all_rows = batch.population * rows;
        let shared_first = base.is_none() && uses_dots(all_rows, m, n);
        if shared_first {
            x_wt_dots(x, all_rows, &w[..m * n], n, y);
        }
        let pairs = batch.population / 2;
        let per_pair = (m + n) * shape.rank;
        // A piece of a larger matrix draws its rows of `A` on the fly.
        let kept = match shape.piece {
            None => self.normals(noise.stream, per_pair, batch.first_pair(), pairs),
            Some(_) => None,
        };
        let pairs_per_task = pairs.div_ceil(tasks(batch.population * rows * (m * n + (m + n) * shape.rank), pairs));
        let pair_len = 2 * rows * m;
        let run = |scratch: &mut PairScratch, (task, y_block): (usize, &mut [f32])| {
            let first = task * pairs_per_task;
            let count = y_block.len() / pair_len;
            let (x_block, x_stride) = match batch.input {
                InputLayout::Shared => (&x[..rows * n], 0),
                InputLayout::PerMember => (&x[first * 2 * rows * n..(first + count) * 2 * rows * n], rows * n),
            };
            match &base {
                Some(base) => y_block.chunks_exact_mut(rows * m).for_each(|y_i| y_i.copy_from_slice(base)),
                None if shared_first => {}
                None => gemm_serial(View::new(x_block, count * 2 * rows, n), View::transpose_of(w, n, m), 0.0, y_block),
            }
            let factors = kept.as_deref().map(|kept| &kept[first * per_pair..(first + count) * per_pair]);
            let block = Pairs { first: (batch.first_pair() + first) as u32, x: x_block, x_stride, y: y_block, factors };
            add_lowrank(&noise, block, rows, scratch);
        };
        if pairs_per_task == pairs {
            run(&mut PairScratch::default(), (0, y));
        } else {
            y.par_chunks_mut(pairs_per_task * pair_len).enumerate().for_each_init(PairScratch::default, run);
        }
        Ok(())
    }

    fn full_rank_matmul_unchecked(&self, x: &Vec<f32>, w: &Vec<f32>, noise: LowRankNoise, batch: Batch, y: &mut Vec<f32>) -> Result<()> {
        let (m, n, sigma, rows) = (noise.shape.m, noise.shape.n, noise.shape.sigma, batch.rows);
        let pair_len = 2 * rows * m;
        // One task per thread, as in the EGGROLL forward, so that each allocates its two m x n
        // buffers once (per rayon job, as `for_each_init` would, it paid page faults over and over).
        let pairs_per_task = (batch.population / 2).div_ceil(rayon::current_num_threads());
        y.par_chunks_mut(pairs_per_task * pair_len).enumerate().for_each(|(task, y_block)| {
            let (mut eps, mut w_i) = (vec![0.0; m * n], vec![0.0; m * n]);
            for (k, y_pair) in y_block.chunks_exact_mut(pair_len).enumerate() {
                // The pair's full-rank noise E, drawn once for both of its members.
                let pair = task * pairs_per_task + k;
                noise.stream.fill_normals((batch.first_pair() + pair) as u32, noise.full_rank_start(), &mut eps);
                for (half, y_member) in y_pair.chunks_exact_mut(rows * m).enumerate() {
                    // Materialise W_i = W + s_i σ E, then multiply.
                    let coef = member_sign(half) * sigma;
                    w_i.iter_mut().zip(w).zip(&eps).for_each(|((w_i, w), e)| *w_i = w + coef * e);
                    let x_i = member_input(x, &batch, n, 2 * pair + half);
                    if rows < NAIVE_GEMM_ROWS {
                        matvec_rows(x_i, rows, &w_i, n, y_member);
                    } else {
                        gemm_serial(View::new(x_i, rows, n), View::transpose_of(&w_i, n, m), 0.0, y_member);
                    }
                }
            }
        });
        Ok(())
    }

    fn lowrank_update_unchecked(&self, fitness: &[f32], noise: LowRankNoise, g: &mut Vec<f32>) -> Result<()> {
        let shape = noise.shape;
        let (m, n, r) = (shape.m, shape.n, shape.rank);
        let pairs = fitness.len() / 2;
        // G = Σ_k coef_k A_k B_kᵀ with coef_k = (σ/√r)/√N (f_2k - f_2k+1): a GEMM of inner
        // dimension pairs x r over Aᵀ (pairs r x m) and Bᵀ (pairs r x n), chunked over pairs.
        let coef = shape.scale() / (fitness.len() as f32).sqrt();
        let kept = match shape.piece {
            None => self.kept_normals(noise.stream, (m + n) * r, pairs),
            Some(_) => None,
        };
        let chunk = (UPDATE_SCRATCH_FLOATS / ((m + n) * r)).clamp(1, pairs);
        let mut at = vec![0.0; chunk * r * m];
        let mut bt = vec![0.0; chunk * r * n];
        for (c, first) in (0..pairs).step_by(chunk).enumerate() {
            let count = chunk.min(pairs - first);
            at[..count * r * m].par_chunks_mut(r * m).zip(bt[..count * r * n].par_chunks_mut(r * n)).enumerate().for_each(
                |(k, (at_k, bt_k))| {
                    let pair = first + k;
                    match &kept {
                        Some(kept) => {
                            let factors = &kept[pair * (m + n) * r..(pair + 1) * (m + n) * r];
                            at_k.copy_from_slice(&factors[..m * r]);
                            bt_k.copy_from_slice(&factors[m * r..]);
                        }
                        None => noise.fill_factors_t(pair as u32, at_k, bt_k),
                    }
                    let d = coef * (fitness[2 * pair] - fitness[2 * pair + 1]);
                    at_k.iter_mut().for_each(|v| *v *= d);
                },
            );
            let inner = count * r;
            let beta = if c == 0 { 0.0 } else { 1.0 };
            gemm(View::transpose_of(&at[..inner * m], m, inner), View::new(&bt[..inner * n], inner, n), beta, g);
        }
        Ok(())
    }

    fn perturbed_bias_unchecked(&self, y: &mut Vec<f32>, bias: &Vec<f32>, stream: NoiseStream, sigma: f32, batch: Batch) -> Result<()> {
        let kept = self.normals(stream, bias.len(), batch.first_pair(), batch.population / 2);
        perturbed_vector(y, bias, stream, kept.as_deref(), sigma, &batch, |y, b| *y += b);
        Ok(())
    }

    fn vector_update_unchecked(&self, fitness: &[f32], stream: NoiseStream, sigma: f32, g: &mut Vec<f32>) -> Result<()> {
        self.full_rank_estimate(fitness, stream, 0, sigma, g);
        Ok(())
    }

    fn full_rank_update_unchecked(&self, fitness: &[f32], noise: LowRankNoise, g: &mut Vec<f32>) -> Result<()> {
        self.full_rank_estimate(fitness, noise.stream, noise.full_rank_start(), noise.shape.sigma, g);
        Ok(())
    }

    fn add_bias_unchecked(&self, y: &mut Vec<f32>, bias: &Vec<f32>) -> Result<()> {
        let len = bias.len();
        y.par_chunks_mut(len).for_each(|row| row.iter_mut().zip(bias).for_each(|(v, b)| *v += b));
        Ok(())
    }

    fn perturbed_gain_unchecked(&self, y: &mut Vec<f32>, gain: &Vec<f32>, stream: NoiseStream, sigma: f32, batch: Batch) -> Result<()> {
        let kept = self.normals(stream, gain.len(), batch.first_pair(), batch.population / 2);
        perturbed_vector(y, gain, stream, kept.as_deref(), sigma, &batch, |y, g| *y *= 1.0 + g);
        Ok(())
    }

    fn gain_unchecked(&self, y: &mut Vec<f32>, gain: &Vec<f32>) -> Result<()> {
        let len = gain.len();
        y.par_chunks_mut(len).for_each(|row| row.iter_mut().zip(gain).for_each(|(v, g)| *v *= 1.0 + g));
        Ok(())
    }

    fn activation_unchecked(&self, x: &mut Vec<f32>, act: Activation) -> Result<()> {
        let f: fn(&mut [f32]) = match act {
            Activation::Relu => |c| c.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Silu => |c| c.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp()),
            Activation::Tanh => tanh::tanh_in_place,
        };
        x.par_chunks_mut(4096).for_each(f);
        Ok(())
    }

    fn layer_norm_unchecked(&self, x: &mut Vec<f32>, cols: usize, eps: f32) -> Result<()> {
        x.par_chunks_mut(cols).for_each(|row| {
            let mean = row.iter().sum::<f32>() / cols as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / cols as f32;
            let inv = 1.0 / (var + eps).sqrt();
            row.iter_mut().for_each(|v| *v = (*v - mean) * inv);
        });
        Ok(())
    }

    fn sgd_step_unchecked(&self, param: &mut Vec<f32>, grad: &Vec<f32>, lr: f32) -> Result<()> {
        param.iter_mut().zip(grad).for_each(|(p, g)| *p += lr * g);
        Ok(())
    }

    fn adam_step_unchecked(&self, param: &mut Vec<f32>, grad: &Vec<f32>, m: &mut Vec<f32>, v: &mut Vec<f32>, p: AdamParams) -> Result<()> {
        let c1 = 1.0 - p.beta1.powi(p.step as i32);
        let c2 = 1.0 - p.beta2.powi(p.step as i32);
        for (((w, g), m), v) in param.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
            let loss_grad = -g;
            *m = p.beta1 * *m + (1.0 - p.beta1) * loss_grad;
            *v = p.beta2 * *v + (1.0 - p.beta2) * loss_grad * loss_grad;
            let update = (*m / c1) / ((*v / c2).sqrt() + p.eps);
            *w -= p.lr * (update + p.weight_decay * *w);
        }
        Ok(())
    }

    fn mingru_scan_unchecked(
        &self, gate: &Vec<f32>, candidate: &Vec<f32>, h0: Option<&Vec<f32>>, shape: crate::Recurrence, h: &mut Vec<f32>,
    ) -> Result<()> {
        mingru_scan(gate, candidate, h0.map(Vec::as_slice), shape, h);
        Ok(())
    }

    fn log_softmax_at_unchecked(&self, logits: &Vec<f32>, targets: &[u32], classes: usize, out: &mut Vec<f32>) -> Result<()> {
        out.par_iter_mut().zip(logits.par_chunks(classes)).zip(targets.par_iter()).for_each(|((o, row), &t)| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|l| (l - max).exp()).sum();
            *o = (row[t as usize] - max) - sum.ln();
        });
        Ok(())
    }

    fn perturbed_embedding_unchecked(
        &self, tokens: &[u32], table: &Vec<f32>, noise: LowRankNoise, batch: Batch, y: &mut Vec<f32>,
    ) -> Result<()> {
        let shape = noise.shape;
        let (m, n, r, rows, first_row) = (shape.m, shape.n, shape.rank, batch.rows, shape.first_row());
        let scale = shape.scale();
        let per_pair = (m + n) * r;
        // A piece of a split table draws its rows of `A` on the fly, as a piece of a matrix does.
        let kept = match shape.piece {
            None => self.normals(noise.stream, per_pair, batch.first_pair(), batch.population / 2),
            Some(_) => None,
        };
        // One task per antithetic pair: its factors drawn once or read from the cache (column by
        // column, Aᵀ and Bᵀ; a piece's rows of A), then each looked-up row in the table is the
        // table's row plus s_i scale Σ_k A[v, k] B[:, k].
        y.par_chunks_mut(2 * rows * n).enumerate().for_each_init(
            || if kept.is_some() { (Vec::new(), Vec::new()) } else { (vec![0.0; m * r], vec![0.0; n * r]) },
            |(a_scratch, b_scratch), (pair, y_pair)| {
                // A piece none of whose rows the pair's members look up draws nothing.
                let in_table = |v: &u32| (*v as usize).checked_sub(first_row).is_some_and(|v| v < m);
                let looked_up = |member: usize| member_input(tokens, &batch, 1, member).iter().any(in_table);
                if shape.piece.is_some() && !looked_up(2 * pair) && !looked_up(2 * pair + 1) {
                    return;
                }
                let (a_t, b_t): (&[f32], &[f32]) = match &kept {
                    Some(kept) => kept[pair * per_pair..(pair + 1) * per_pair].split_at(m * r),
                    None => {
                        noise.fill_factors_t((batch.first_pair() + pair) as u32, a_scratch, b_scratch);
                        (a_scratch, b_scratch)
                    }
                };
                for (half, y_member) in y_pair.chunks_exact_mut(rows * n).enumerate() {
                    let coef = member_sign(half) * scale;
                    let member_tokens = member_input(tokens, &batch, 1, 2 * pair + half);
                    for (&v, y_row) in member_tokens.iter().zip(y_member.chunks_exact_mut(n)) {
                        let Some(v) = (v as usize).checked_sub(first_row).filter(|&v| v < m) else { continue };
                        y_row.copy_from_slice(&table[v * n..(v + 1) * n]);
                        for (a_col, b_col) in a_t.chunks_exact(m).zip(b_t.chunks_exact(n)) {
                            let c = coef * a_col[v];
                            y_row.iter_mut().zip(b_col).for_each(|(yj, bj)| *yj += c * bj);
                        }
                    }
                }
            },
        );
        Ok(())
    }

    fn full_rank_embedding_unchecked(
        &self, tokens: &[u32], table: &Vec<f32>, noise: LowRankNoise, batch: Batch, y: &mut Vec<f32>,
    ) -> Result<()> {
        let (m, n, sigma, rows, first_row) = (noise.shape.m, noise.shape.n, noise.shape.sigma, batch.rows, noise.shape.first_row());
        // One task per antithetic pair. Row `v` of the pair's noise E is draws `v n .. v n + n`
        // (`v` a row of the whole table): drawn once per row for the even member, and again for
        // the odd member only when its token differs (per-member tokens), then
        // `W[v, :] ± σ E[v, :]` for the rows in the table (a piece's, the others left as they are).
        y.par_chunks_mut(2 * rows * n).enumerate().for_each_init(
            || vec![0.0; n],
            |eps, (pair, y_pair)| {
                let noise_pair = (batch.first_pair() + pair) as u32;
                let (y_even, y_odd) = y_pair.split_at_mut(rows * n);
                let even_tokens = member_input(tokens, &batch, 1, 2 * pair);
                let odd_tokens = member_input(tokens, &batch, 1, 2 * pair + 1);
                let in_table = |v: u32| (v as usize).checked_sub(first_row).filter(|&v| v < m);
                // `v n < whole rows x n <= 2^32`: the checked bound on the draws.
                let draw = |v: u32, eps: &mut [f32]| noise.stream.fill_normals(noise_pair, v * n as u32, eps);
                let row = |v: usize, coef: f32, eps: &[f32], y_row: &mut [f32]| {
                    let w_row = &table[v * n..(v + 1) * n];
                    y_row.iter_mut().zip(w_row).zip(eps).for_each(|((y, w), e)| *y = w + coef * e);
                };
                let rows = y_even.chunks_exact_mut(n).zip(y_odd.chunks_exact_mut(n)).zip(even_tokens.iter().zip(odd_tokens));
                for ((y_e, y_o), (&v_even, &v_odd)) in rows {
                    let even = in_table(v_even);
                    if let Some(local) = even {
                        draw(v_even, eps);
                        row(local, sigma, eps, y_e);
                    }
                    if let Some(local) = in_table(v_odd) {
                        if v_odd != v_even {
                            draw(v_odd, eps);
                        }
                        row(local, -sigma, eps, y_o);
                    }
                }
            },
        );
        Ok(())
    }

    fn embedding_unchecked(&self, tokens: &[u32], table: &Vec<f32>, cols: usize, y: &mut Vec<f32>) -> Result<()> {
        for (&v, y_row) in tokens.iter().zip(y.chunks_exact_mut(cols)) {
            let v = v as usize;
            y_row.copy_from_slice(&table[v * cols..(v + 1) * cols]);
        }
        Ok(())
    }
}
