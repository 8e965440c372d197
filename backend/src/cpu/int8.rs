//! Integer EGGROLL's kernels on the CPU ([docs/int8.md](../../../docs/int8.md)): the reference the
//! GPU's integer kernels are checked against. Every product accumulates int8 values in `i32`
//! (exact, so the order of the sums is free, and `int8_gemm` picks the fastest kernel); the noise
//! is [`noise_value`]'s, drawn 16 to a Philox block, through the factor layout of
//! `rng::FactorLayout`; rayon splits the work over antithetic pairs (each pair's
//! factors drawn once for both members) or over rows.

use super::int8_gemm::{dot_i8, Rhs};
use super::int8_noise::{fill_noise, sign, MIN_JOB_VALUES};
use super::int8_pairs::{member_outputs, Product};
use super::{int8_full_rank, int8_naive};
use super::{member_input, CpuBackend};
use crate::int8::{log_likelihood, noise_value, sat8, weight_shift, IntKernels, IntMatrix, IntNoise};
use crate::ops::{Batch, Recurrence};
use crate::rng::NoiseStream;
use crate::Result;
use rayon::prelude::*;

/// Rows of `x` a task of the mean model's product takes: the row tile of the VNNI product.
const ROW_TILE: usize = 4;

/// Draws pair `pair`'s factors: `a` gets `a_q[j]` at `q m + j` (`r x m`), `b` gets `b_q[l]` at
/// `q n + l` (`r x n`), the elements `q m + j` and `m r + q n + l` of its stream.
fn draw_factors(noise: &IntNoise, m: usize, pair: u32, a: &mut [i8], b: &mut [i8]) {
    fill_noise(&noise.stream, pair, 0, a);
    fill_noise(&noise.stream, pair, (m * noise.rank) as u32, b);
}

/// Per-thread scratch of the perturbed product: the pair's factors (`r x m`, `r x n`), its
/// members' `x Wᵀ` (per-member input, `2 x rows x m`), a member's noise terms (`rows x m`) and
/// projections `p` (`r`).
#[derive(Default)]
struct PairScratch {
    a: Vec<i8>,
    b: Vec<i8>,
    acc: Vec<i32>,
    noise: Vec<i32>,
    p: Vec<i32>,
}

/// `noise[row, j] = Σ_q p_q a_q[j]` with `p_q = Σ_l x[row, l] b_q[l]`, for every row of `x`.
#[inline(always)]
fn noise_terms(x: &[i8], a: &[i8], b: &[i8], n: usize, m: usize, p: &mut [i32], noise: &mut [i32]) {
    for (x_row, noise_row) in x.chunks_exact(n).zip(noise.chunks_exact_mut(m)) {
        for (p_q, b_q) in p.iter_mut().zip(b.chunks_exact(n)) {
            *p_q = dot_i8(x_row, b_q);
        }
        noise_row.fill(0);
        for (&p_q, a_q) in p.iter().zip(a.chunks_exact(m)) {
            for (v, &a) in noise_row.iter_mut().zip(a_q) {
                *v += p_q * i32::from(a);
            }
        }
    }
}

/// Both members' outputs of pair `pair` (`y_pair`, `2 x rows x m`). The elementwise loops are
/// compiled for AVX-512 / AVX2 when the processor has them; the integer results are the same.
fn pair_outputs(job: &Product, pair: usize, y_pair: &mut [i8], scratch: &mut PairScratch) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the processor supports the features the function is compiled for.
            return unsafe { pair_outputs_avx512(job, pair, y_pair, scratch) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { pair_outputs_avx2(job, pair, y_pair, scratch) };
        }
    }
    pair_outputs_body(job, pair, y_pair, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pair_outputs_avx512(job: &Product, pair: usize, y_pair: &mut [i8], scratch: &mut PairScratch) {
    pair_outputs_body(job, pair, y_pair, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pair_outputs_avx2(job: &Product, pair: usize, y_pair: &mut [i8], scratch: &mut PairScratch) {
    pair_outputs_body(job, pair, y_pair, scratch)
}

#[inline(always)]
fn pair_outputs_body(job: &Product, pair: usize, y_pair: &mut [i8], scratch: &mut PairScratch) {
    let (m, n, r, rows) = (job.shape.m, job.shape.n, job.noise.rank, job.batch.rows);
    let (t, o) = (job.noise.shift, weight_shift(n));
    let member_len = rows * m;
    let PairScratch { a, b, acc, noise, p } = scratch;
    acc.resize(2 * member_len, 0);
    noise.resize(member_len, 0);
    p.resize(r, 0);
    let (a, b): (&[i8], &[i8]) = match &job.factors {
        Some(factors) => factors[pair * (m + n) * r..(pair + 1) * (m + n) * r].split_at(m * r),
        None => {
            a.resize(r * m, 0);
            b.resize(r * n, 0);
            draw_factors(&job.noise, m, (job.batch.first_pair() + pair) as u32, a, b);
            (a, b)
        }
    };
    if job.base.is_none() {
        // Per-member input: both members' rows are contiguous, one product for the pair.
        job.w.product(&job.x[2 * pair * rows * n..(2 * pair + 2) * rows * n], 0..m, acc);
    }
    for (half, y_member) in y_pair.chunks_exact_mut(member_len).enumerate() {
        let member = 2 * pair + half;
        let x_i = member_input(job.x, &job.batch, n, member);
        // With shared input both members have the same noise terms, of opposite sign.
        if job.base.is_none() || half == 0 {
            noise_terms(x_i, a, b, n, m, p, noise);
        }
        let acc = match &job.base {
            Some(base) => base.as_slice(),
            None => &acc[half * member_len..(half + 1) * member_len],
        };
        member_outputs(y_member, acc, noise, sign(member), t, o);
    }
}

impl IntKernels for CpuBackend {
    type I8 = Vec<i8>;
    type I32 = Vec<i32>;

    fn zeros_i32(&self, len: usize) -> Result<Vec<i32>> {
        Ok(vec![0; len])
    }

    fn copy_i8_unchecked(&self, src: &Vec<i8>, dst: &mut Vec<i8>) -> Result<()> {
        dst.copy_from_slice(src);
        Ok(())
    }

    fn len_i8(&self, tensor: &Vec<i8>) -> usize {
        tensor.len()
    }

    fn len_i32(&self, tensor: &Vec<i32>) -> usize {
        tensor.len()
    }

    async fn read_i8(&self, tensor: &Vec<i8>) -> Result<Vec<i8>> {
        Ok(tensor.clone())
    }

    async fn read_i32(&self, tensor: &Vec<i32>) -> Result<Vec<i32>> {
        Ok(tensor.clone())
    }

    fn upload_i8_unchecked(&self, data: &[i8]) -> Result<Vec<i8>> {
        Ok(data.to_vec())
    }

    fn zeros_i8_unchecked(&self, len: usize) -> Result<Vec<i8>> {
        Ok(vec![0; len])
    }

    fn write_i8_unchecked(&self, tensor: &mut Vec<i8>, data: &[i8]) -> Result<()> {
        tensor.copy_from_slice(data);
        Ok(())
    }

    fn int_matmul_unchecked(&self, x: &Vec<i8>, w: &Vec<i8>, shape: IntMatrix, rows: usize, y: &mut Vec<i8>) -> Result<()> {
        let (m, n) = (shape.m, shape.n);
        let (w, o) = (Rhs::new(w, n), weight_shift(n));
        if rows >= 2 * rayon::current_num_threads() {
            // One row tile of the product per task, summed into the task's own scratch and then
            // shifted and saturated there, so no full-size i32 buffer is made or walked on one
            // thread; larger blocks of rows per task measured slower.
            let rows_per_task = ROW_TILE;
            y.par_chunks_mut(rows_per_task * m).zip(x.par_chunks(rows_per_task * n)).for_each_init(Vec::new, |acc, (y, x)| {
                acc.clear();
                acc.resize(y.len(), 0);
                w.product(x, 0..m, acc);
                y.iter_mut().zip(acc.iter()).for_each(|(y, &a)| *y = sat8(a >> o));
            });
        } else {
            let mut acc = vec![0; rows * m];
            w.product_par(x, &mut acc);
            y.iter_mut().zip(&acc).for_each(|(y, &a)| *y = sat8(a >> o));
        }
        Ok(())
    }

    fn int_perturbed_matmul_unchecked(
        &self, x: &Vec<i8>, w: &Vec<i8>, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut Vec<i8>,
    ) -> Result<()> {
        let factors = self.int_noise(noise.stream, (shape.m + shape.n) * noise.rank, batch.first_pair(), batch.population / 2);
        Product { factors, ..Product::new(x, w, shape, noise, batch) }.run(y, pair_outputs);
        Ok(())
    }

    fn int_naive_matmul_unchecked(
        &self, x: &Vec<i8>, w: &Vec<i8>, shape: IntMatrix, stream: NoiseStream, batch: Batch, y: &mut Vec<i8>,
    ) -> Result<()> {
        int8_naive::naive_matmul(x, w, shape, &stream, &batch, y);
        Ok(())
    }

    fn int_full_rank_matmul_unchecked(
        &self, x: &Vec<i8>, w: &Vec<i8>, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut Vec<i8>,
    ) -> Result<()> {
        int8_full_rank::perturbed_matmul(x, w, shape, noise, batch, y);
        Ok(())
    }

    fn int_embedding_unchecked(&self, tokens: &[u32], table: &Vec<i8>, shape: IntMatrix, y: &mut Vec<i8>) -> Result<()> {
        let d = shape.n;
        for (&v, y_row) in tokens.iter().zip(y.chunks_exact_mut(d)) {
            let v = v as usize;
            y_row.copy_from_slice(&table[v * d..(v + 1) * d]);
        }
        Ok(())
    }

    fn int_perturbed_embedding_unchecked(
        &self, tokens: &[u32], table: &Vec<i8>, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut Vec<i8>,
    ) -> Result<()> {
        let (m, d, r, rows) = (shape.m, shape.n, noise.rank, batch.rows);
        let t = noise.shift;
        let per_pair = (m + d) * r;
        let kept = self.int_noise(noise.stream, per_pair, batch.first_pair(), batch.population / 2);
        // One task per pair: `b` (r x d) drawn once, the few `a_q[v]` of the looked-up rows on
        // demand (or both read from the noise cache), the rows of both members from them.
        y.par_chunks_mut(2 * rows * d).enumerate().for_each_init(
            || (if kept.is_some() { Vec::new() } else { vec![0i8; r * d] }, vec![0i32; d]),
            |(b_scratch, sum), (pair, y_pair)| {
                let pair32 = (batch.first_pair() + pair) as u32;
                let factors = kept.as_deref().map(|kept| &kept[pair * per_pair..(pair + 1) * per_pair]);
                let b: &[i8] = match factors {
                    Some(factors) => &factors[m * r..],
                    None => {
                        fill_noise(&noise.stream, pair32, (m * r) as u32, b_scratch);
                        b_scratch
                    }
                };
                for (half, y_member) in y_pair.chunks_exact_mut(rows * d).enumerate() {
                    let member = 2 * pair + half;
                    let s = sign(member);
                    let member_tokens = member_input(tokens, &batch, 1, member);
                    for (&v, y_row) in member_tokens.iter().zip(y_member.chunks_exact_mut(d)) {
                        let v = v as usize;
                        sum.fill(0);
                        for (q, b_q) in b.chunks_exact(d).enumerate() {
                            let a = match factors {
                                Some(factors) => i32::from(factors[q * m + v]),
                                None => i32::from(noise_value(&noise.stream, pair32, (q * m + v) as u32)),
                            };
                            sum.iter_mut().zip(b_q).for_each(|(s, &b)| *s += a * i32::from(b));
                        }
                        let w_row = &table[v * d..(v + 1) * d];
                        for ((y, &w), &sum) in y_row.iter_mut().zip(w_row).zip(sum.iter()) {
                            *y = sat8(i32::from(w) + s * (sum >> t));
                        }
                    }
                }
            },
        );
        Ok(())
    }

    fn int_full_rank_embedding_unchecked(
        &self, tokens: &[u32], table: &Vec<i8>, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut Vec<i8>,
    ) -> Result<()> {
        int8_full_rank::perturbed_embedding(tokens, table, shape, noise, batch, y);
        Ok(())
    }

    fn int_layer_norm_unchecked(&self, x: &mut Vec<i8>, width: usize) -> Result<()> {
        let d = width as i32;
        x.par_chunks_mut(width).with_min_len(MIN_JOB_VALUES.div_ceil(width)).for_each(|row| {
            let s: i32 = row.iter().map(|&v| i32::from(v).abs()).sum();
            // A row of zeros (S = 0) stays zeros.
            if s != 0 {
                row.iter_mut().for_each(|v| *v = sat8(i32::from(*v) * 16 * d / s));
            }
        });
        Ok(())
    }

    fn int_mingru_scan_unchecked(&self, gate: &Vec<i8>, candidate: &Vec<i8>, shape: Recurrence, h: &mut Vec<i8>) -> Result<()> {
        let (width, span) = (shape.width, shape.time * shape.width);
        h.par_chunks_mut(span).with_min_len(MIN_JOB_VALUES.div_ceil(span)).enumerate().for_each(|(s, h_seq)| {
            let values = s * span..(s + 1) * span;
            let (g_seq, c_seq) = (&gate[values.clone()], &candidate[values]);
            let mut state = vec![0i32; width];
            for ((g, c), h_t) in g_seq.chunks_exact(width).zip(c_seq.chunks_exact(width)).zip(h_seq.chunks_exact_mut(width)) {
                for (((&g, &c), h), out) in g.iter().zip(c).zip(state.iter_mut()).zip(h_t.iter_mut()) {
                    let z = (i32::from(g) + 64).clamp(0, 128);
                    *h += (z * (i32::from(c) - *h)) >> 7;
                    *out = *h as i8;
                }
            }
        });
        Ok(())
    }

    fn int_relu_unchecked(&self, x: &mut Vec<i8>) -> Result<()> {
        x.par_chunks_mut(MIN_JOB_VALUES).for_each(|c| c.iter_mut().for_each(|v| *v = (*v).max(0)));
        Ok(())
    }

    fn int_add_unchecked(&self, x: &mut Vec<i8>, other: &Vec<i8>) -> Result<()> {
        let len = other.len();
        x.par_chunks_mut(len * MIN_JOB_VALUES.div_ceil(len)).for_each(|block| {
            for row in block.chunks_exact_mut(len) {
                row.iter_mut().zip(other).for_each(|(v, &o)| *v = sat8(i32::from(*v) + i32::from(o)));
            }
        });
        Ok(())
    }

    fn int_log_likelihood_unchecked(&self, logits: &Vec<i8>, targets: &[u32], classes: usize, out: &mut Vec<i32>) -> Result<()> {
        out.par_iter_mut().zip(logits.par_chunks(classes)).zip(targets.par_iter()).for_each(|((o, row), &t)| {
            *o = log_likelihood(row, t as usize);
        });
        Ok(())
    }

    fn int_lowrank_update_unchecked(
        &self, fitness: &[i8], noise: IntNoise, shape: IntMatrix, threshold: i32, w: &mut Vec<i8>,
    ) -> Result<()> {
        let (m, n, r) = (shape.m, shape.n, noise.rank);
        // Only pairs of nonzero fitness contribute to Z.
        let active: Vec<usize> = (0..fitness.len()).filter(|&k| fitness[k] != 0).collect();
        if active.is_empty() {
            return Ok(());
        }
        // Z = Fᵀ G with the columns of F (m x K r) the f_k a_kq and those of G (n x K r) the
        // b_kq: an integer `x wᵀ` over the inner dimension K r, so both are stored transposed.
        let inner = active.len() * r;
        let (mut fa_t, mut b_t) = (vec![0i8; m * inner], vec![0i8; n * inner]);
        let kept = self.kept_int_noise(noise.stream, (m + n) * r, fitness.len());
        let mut factors: Vec<(Vec<i8>, Vec<i8>)> = active
            .par_iter()
            .map(|&k| {
                let (mut a, mut b) = (vec![0i8; r * m], vec![0i8; r * n]);
                match &kept {
                    Some(kept) => {
                        let pair = &kept[k * (m + n) * r..(k + 1) * (m + n) * r];
                        a.copy_from_slice(&pair[..m * r]);
                        b.copy_from_slice(&pair[m * r..]);
                    }
                    None => draw_factors(&noise, m, k as u32, &mut a, &mut b),
                }
                a.iter_mut().for_each(|v| *v *= fitness[k]);
                (a, b)
            })
            .collect();
        for (c, (a, b)) in factors.drain(..).enumerate() {
            for q in 0..r {
                let col = c * r + q;
                for j in 0..m {
                    fa_t[j * inner + col] = a[q * m + j];
                }
                for l in 0..n {
                    b_t[l * inner + col] = b[q * n + l];
                }
            }
        }
        let mut z = vec![0i32; m * n];
        Rhs::new(&b_t, inner).product_par(&fa_t, &mut z);
        w.par_chunks_mut(MIN_JOB_VALUES).zip(z.par_chunks(MIN_JOB_VALUES)).for_each(|(w, z)| {
            for (w, &z) in w.iter_mut().zip(z) {
                if z.abs() > threshold {
                    *w = sat8(i32::from(*w) + z.signum());
                }
            }
        });
        Ok(())
    }

    fn int_full_rank_update_unchecked(
        &self, fitness: &[i8], noise: IntNoise, shape: IntMatrix, threshold: i32, w: &mut Vec<i8>,
    ) -> Result<()> {
        int8_full_rank::update(fitness, noise, shape, threshold, w);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_noise_is_noise_value() {
        let stream = NoiseStream::new(0x1234_5678_9abc, 7, 2);
        for (first, len) in [(0, 16), (3, 1), (5, 40), (16, 16), (31, 2), (1000, 333)] {
            let mut out = vec![0; len];
            fill_noise(&stream, 9, first, &mut out);
            let want: Vec<i8> = (first..first + len as u32).map(|e| noise_value(&stream, 9, e)).collect();
            assert_eq!(out, want, "from {first}, {len} draws");
        }
    }
}
