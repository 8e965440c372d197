//! OpenES on int8 on the CPU (docs/int8.md, "OpenES"): integer EGGROLL with each pair's low-rank
//! noise replaced by the full-rank `E_k`, whose element `e` combines (`spec::full_rank_combine`)
//! the `2 r` draws from `spec::full_rank_first_draw(e, r)` on, drawn 16 to a Philox block
//! (`fill_noise`). The draws of a row of a matrix are contiguous, so every kernel draws row by
//! row; rayon splits the products over antithetic pairs (each pair's `E_k` drawn once for both
//! members) and the update over blocks of rows.

use super::int8_gemm::Rhs;
use super::int8_naive::path;
use super::int8_noise::{fill_noise, sign, MIN_JOB_VALUES};
use super::int8_pairs::{member_outputs, Product};
use super::member_input;
use crate::int8::spec::{full_rank_combine, full_rank_first_draw};
use crate::int8::{sat8, weight_shift, IntMatrix, IntNoise};
use crate::ops::{Batch, InputLayout};
use rayon::prelude::*;

/// Ranks per slice of `E` in the product: a slice's values lie within `±225 · 72`, so that its
/// high part `(E + 64) >> 7` is an int8 value in `[-127, 127]`.
const SLICE_RANKS: usize = 72;

/// Values of `W` one task of the update takes (whole rows, at least one).
const UPDATE_TASK_VALUES: usize = 4 * MIN_JOB_VALUES;

/// The pair's draws of `count` consecutive elements from `first` (rank r): `2 r count` values.
fn draw_elements(noise: &IntNoise, pair: u32, first: usize, count: usize, draws: &mut Vec<i8>) {
    draws.resize(2 * noise.rank * count, 0);
    fill_noise(&noise.stream, pair, full_rank_first_draw(first, noise.rank), draws);
}

/// Per-thread scratch of the full-rank product: the draws of a row of `E_k` (`2 r n`), its int8
/// parts (`2 slices x m x n`), the products of the rows with them, the members' `x Wᵀ`
/// (per-member input) and the noise terms.
#[derive(Default)]
struct PairScratch {
    draws: Vec<i8>,
    parts: Vec<i8>,
    products: Vec<i32>,
    acc: Vec<i32>,
    noise: Vec<i32>,
}

/// Pair `pair`'s `E_k` as int8 parts the integer products take: per slice `s` of at most
/// [`SLICE_RANKS`] ranks, with `E_s` the sum of the slice's terms, the rows `2 s m + j` hold the
/// high parts `h = (E_s[j, :] - lo) / 128` and the rows `(2 s + 1) m + j` the low parts
/// `lo = ((E_s[j, :] + 64) & 127) - 64` in `[-64, 63]`, so that `E = Σ_s 128 h_s + lo_s` exactly.
fn split_noise(job: &Product, pair: u32, scratch: &mut PairScratch) {
    let (m, n, r) = (job.shape.m, job.shape.n, job.noise.rank);
    let slices = r.div_ceil(SLICE_RANKS);
    scratch.parts.resize(2 * slices * m * n, 0);
    for j in 0..m {
        draw_elements(&job.noise, pair, j * n, n, &mut scratch.draws);
        for s in 0..slices {
            let ranks = s * SLICE_RANKS..((s + 1) * SLICE_RANKS).min(r);
            let (high, low) = scratch.parts[2 * s * m * n..(2 * s + 2) * m * n].split_at_mut(m * n);
            let (high, low) = (&mut high[j * n..(j + 1) * n], &mut low[j * n..(j + 1) * n]);
            for (l, (h, lo)) in high.iter_mut().zip(low.iter_mut()).enumerate() {
                let e = full_rank_combine(&scratch.draws[2 * (l * r + ranks.start)..2 * (l * r + ranks.end)]);
                let low_part = ((e + 64) & 127) - 64;
                (*h, *lo) = (((e - low_part) >> 7) as i8, low_part as i8);
            }
        }
    }
}

/// `noise[row, j] = Σ_l x[row, l] E_k[j, l]` for every row of `x`, from the int8 parts of `E_k`.
fn noise_terms(job: &Product, x: &[i8], scratch: &mut PairScratch) {
    let m = job.shape.m;
    let (rows, width) = (x.len() / job.shape.n, scratch.parts.len() / job.shape.n);
    scratch.products.resize(rows * width, 0);
    scratch.noise.resize(rows * m, 0);
    Rhs::with_path(&scratch.parts, job.shape.n, path(rows)).product(x, 0..width, &mut scratch.products);
    for (noise, products) in scratch.noise.chunks_exact_mut(m).zip(scratch.products.chunks_exact(width)) {
        noise.fill(0);
        for slice in products.chunks_exact(2 * m) {
            let (high, low) = slice.split_at(m);
            noise.iter_mut().zip(high).zip(low).for_each(|((v, &h), &lo)| *v += 128 * h + lo);
        }
    }
}

/// Both members' outputs of pair `pair` of the batch (`y_pair`, `2 x rows x m`).
fn pair_outputs(job: &Product, pair: usize, y_pair: &mut [i8], scratch: &mut PairScratch) {
    let (m, n, rows) = (job.shape.m, job.shape.n, job.batch.rows);
    let (t, o) = (job.noise.shift, weight_shift(n));
    let member_len = rows * m;
    split_noise(job, (job.batch.first_pair() + pair) as u32, scratch);
    if job.base.is_none() {
        // Per-member input: both members' rows are contiguous, one product of each kind for the
        // pair.
        let x_pair = &job.x[2 * pair * rows * n..(2 * pair + 2) * rows * n];
        scratch.acc.resize(2 * member_len, 0);
        job.w.product(x_pair, 0..m, &mut scratch.acc);
        noise_terms(job, x_pair, scratch);
    } else {
        // Shared input: both members have the same noise terms, of opposite sign.
        noise_terms(job, job.x, scratch);
    }
    for (half, y_member) in y_pair.chunks_exact_mut(member_len).enumerate() {
        let (acc, noise) = match &job.base {
            Some(base) => (base.as_slice(), &scratch.noise[..]),
            None => {
                let own = half * member_len..(half + 1) * member_len;
                (&scratch.acc[own.clone()], &scratch.noise[own])
            }
        };
        member_outputs(y_member, acc, noise, sign(2 * pair + half), t, o);
    }
}

/// Every member's perturbed product under the full-rank noise, rayon over antithetic pairs.
pub(super) fn perturbed_matmul(x: &[i8], w: &[i8], shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut [i8]) {
    Product::new(x, w, shape, noise, batch).run(y, pair_outputs);
}

/// Every member's perturbed rows of the V x d table, one task per pair: `E_k`'s rows of the
/// looked-up tokens drawn once per pair when the tokens are shared, once per member otherwise.
pub(super) fn perturbed_embedding(tokens: &[u32], table: &[i8], shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut [i8]) {
    let (d, rows, t) = (shape.n, batch.rows, noise.shift);
    y.par_chunks_mut(2 * rows * d).enumerate().for_each_init(
        || (Vec::new(), vec![0i32; rows * d]),
        |(draws, e), (pair, y_pair)| {
            let pair32 = (batch.first_pair() + pair) as u32;
            for (half, y_member) in y_pair.chunks_exact_mut(rows * d).enumerate() {
                let member = 2 * pair + half;
                let member_tokens = member_input(tokens, &batch, 1, member);
                if half == 0 || batch.input == InputLayout::PerMember {
                    for (&v, e_row) in member_tokens.iter().zip(e.chunks_exact_mut(d)) {
                        draw_elements(&noise, pair32, v as usize * d, d, draws);
                        e_row.iter_mut().zip(draws.chunks_exact(2 * noise.rank)).for_each(|(e, d)| *e = full_rank_combine(d));
                    }
                }
                let s = sign(member);
                for ((&v, y_row), e_row) in member_tokens.iter().zip(y_member.chunks_exact_mut(d)).zip(e.chunks_exact(d)) {
                    let w_row = &table[v as usize * d..(v as usize + 1) * d];
                    for ((y, &w), &e) in y_row.iter_mut().zip(w_row).zip(e_row) {
                        *y = sat8(i32::from(w) + s * (e >> t));
                    }
                }
            }
        },
    );
}

/// The ±1 update with `Z = Σ_k f_k E_k`, rayon over blocks of rows of `W`: each block sums the
/// noise of every pair of nonzero fitness on its rows, then steps its weights.
pub(super) fn update(fitness: &[i8], noise: IntNoise, shape: IntMatrix, threshold: i32, w: &mut [i8]) {
    let n = shape.n;
    let active: Vec<usize> = (0..fitness.len()).filter(|&k| fitness[k] != 0).collect();
    if active.is_empty() {
        return;
    }
    let rows_per_task = UPDATE_TASK_VALUES.div_ceil(n).min(shape.m.div_ceil(rayon::current_num_threads())).max(1);
    w.par_chunks_mut(rows_per_task * n).enumerate().for_each(|(task, w)| {
        let (mut draws, mut z) = (Vec::new(), vec![0i32; w.len()]);
        for &k in &active {
            let f = i32::from(fitness[k]);
            draw_elements(&noise, k as u32, task * rows_per_task * n, w.len(), &mut draws);
            z.iter_mut().zip(draws.chunks_exact(2 * noise.rank)).for_each(|(z, d)| *z += f * full_rank_combine(d));
        }
        for (w, &z) in w.iter_mut().zip(&z) {
            if z.abs() > threshold {
                *w = sat8(i32::from(*w) + z.signum());
            }
        }
    });
}
