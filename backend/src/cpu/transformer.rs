//! The CPU reference of the transformer kernels ([`crate::transformer`]): rows in parallel, f32
//! arithmetic in vector lanes (`lanes.rs`: sums in 16 lanes, a branch-free `exp`), compiled for
//! the processor's widest vector unit.

use super::lanes::{self, vectorized};
use super::sampling::sample_row;
use super::CpuBackend;
use crate::transformer::{AttentionShape, Nucleus, TransformerKernels};
use crate::Result;
use rayon::prelude::*;

impl TransformerKernels for CpuBackend {
    fn rms_norm_unchecked(&self, x: &mut Vec<f32>, weight: &Vec<f32>, cols: usize, eps: f32) -> Result<()> {
        x.par_chunks_mut(cols).for_each(|row| {
            let mean = sum_of_squares(row) / cols as f32;
            scale_by(row, weight, 1.0 / (mean + eps).sqrt());
        });
        Ok(())
    }

    fn rope_unchecked(&self, x: &mut Vec<f32>, positions: &[u32], heads: usize, head_dim: usize, inv_freq: &[f32]) -> Result<()> {
        let half = head_dim / 2;
        let turns = self.rotations.get(positions, inv_freq);
        x.par_chunks_mut(heads * head_dim).zip(turns.par_chunks(2 * half)).for_each(|(row, turns)| {
            for head in row.chunks_exact_mut(head_dim) {
                let (first, second) = head.split_at_mut(half);
                for ((a, b), turn) in first.iter_mut().zip(second.iter_mut()).zip(turns.chunks_exact(2)) {
                    let (cos, sin) = (turn[0], turn[1]);
                    let (x1, x2) = (*a, *b);
                    *a = x1 * cos - x2 * sin;
                    *b = x2 * cos + x1 * sin;
                }
            }
        });
        Ok(())
    }

    fn attention_unchecked(
        &self, q: &Vec<f32>, k: &Vec<f32>, v: &Vec<f32>, shape: AttentionShape, slots: &[u32], starts: &[u32], new: usize,
        k_cache: &mut Vec<f32>, v_cache: &mut Vec<f32>, out: &mut Vec<f32>,
    ) -> Result<()> {
        let AttentionShape { heads, kv_heads, head_dim, capacity, .. } = shape;
        let kv_width = kv_heads * head_dim;
        let slot_len = capacity * kv_width;
        // The new keys and values go into their slots first.
        for (s, (&slot, &start)) in slots.iter().zip(starts).enumerate() {
            let at = slot as usize * slot_len + start as usize * kv_width;
            let rows = s * new * kv_width..(s + 1) * new * kv_width;
            k_cache[at..at + new * kv_width].copy_from_slice(&k[rows.clone()]);
            v_cache[at..at + new * kv_width].copy_from_slice(&v[rows]);
        }
        let (k_cache, v_cache) = (&*k_cache, &*v_cache);
        let width = heads * head_dim;
        // The cached keys and values that query row `row` attends to.
        let seen = |row: usize| {
            let (s, t) = (row / new, row % new);
            let (slot, position) = (slots[s] as usize, starts[s] as usize + t);
            slot * slot_len..slot * slot_len + (position + 1) * kv_width
        };
        out.par_chunks_mut(width).zip(q.par_chunks(width)).enumerate().for_each_init(Vec::new, |weights, (row, (out_row, query))| {
            // The next sequence's keys and values on their way from memory while this row attends
            // (a hint: attention reads the caches from memory, and one row's compute is shorter).
            if (row + 1) % new == 0 && row + 1 < slots.len() * new {
                let next = seen(row + 1);
                let lines = next.len().div_ceil(lanes::CACHE_LINE);
                lanes::prefetch_lines(&k_cache[next.clone()], 0, lines);
                lanes::prefetch_lines(&v_cache[next], 0, lines);
            }
            let here = seen(row);
            attend(query, &k_cache[here.clone()], &v_cache[here], shape, weights, out_row);
        });
        Ok(())
    }

    fn silu_mul_unchecked(&self, gate: &mut Vec<f32>, up: &Vec<f32>) -> Result<()> {
        gate.par_chunks_mut(4096).zip(up.par_chunks(4096)).for_each(|(g, u)| silu_mul(g, u));
        Ok(())
    }

    fn greedy_rows_unchecked(&self, logits: &Vec<f32>, cols: usize, picks: &mut Vec<f32>) -> Result<()> {
        picks.par_chunks_mut(3).zip(logits.par_chunks(cols)).for_each(|(pick, row)| {
            let mut at = 0;
            for (i, v) in row.iter().enumerate() {
                if *v > row[at] {
                    at = i;
                }
            }
            let largest = row[at];
            let sum = sum_of_exp(row, largest);
            pick.copy_from_slice(&[at as f32, largest, sum.ln()]);
        });
        Ok(())
    }

    fn sample_rows_unchecked(
        &self, logits: &Vec<f32>, cols: usize, nucleus: Nucleus, keys: &[[u32; 2]], picks: &mut Vec<f32>,
    ) -> Result<()> {
        picks.par_chunks_mut(2).zip(logits.par_chunks(cols)).zip(keys.par_iter()).for_each_init(
            Vec::new,
            |e, ((pick, row), &[member, position])| {
                let (token, log_prob) = sample_row(row, nucleus, member, position, e);
                pick.copy_from_slice(&[token as f32, log_prob]);
            },
        );
        Ok(())
    }

    fn place_unchecked(&self, src: &Vec<f32>, dst: &mut Vec<f32>, rows: usize, offset: usize) -> Result<()> {
        let (width, cols) = (src.len() / rows, dst.len() / rows);
        dst.par_chunks_mut(cols).zip(src.par_chunks(width)).for_each(|(d, s)| d[offset..offset + width].copy_from_slice(s));
        Ok(())
    }

    fn embedding_piece_unchecked(&self, tokens: &[u32], first: usize, piece: &Vec<f32>, cols: usize, y: &mut Vec<f32>) -> Result<()> {
        let rows = first..first + piece.len() / cols;
        for (&t, y_row) in tokens.iter().zip(y.chunks_exact_mut(cols)) {
            let t = t as usize;
            if rows.contains(&t) {
                y_row.copy_from_slice(&piece[(t - first) * cols..(t - first + 1) * cols]);
            }
        }
        Ok(())
    }

    fn add_unchecked(&self, y: &mut Vec<f32>, x: &Vec<f32>) -> Result<()> {
        y.par_chunks_mut(4096).zip(x.par_chunks(4096)).for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, x)| *y += x));
        Ok(())
    }
}

vectorized! {
    /// `Σ x²` over `row`.
    fn sum_of_squares(row: &[f32]) -> f32 {
        lanes::sum_of(row, #[inline(always)] |v| v.map(|v| v * v))
    }
}

vectorized! {
    /// `row ← weight ⊙ (row · inv)`.
    fn scale_by(row: &mut [f32], weight: &[f32], inv: f32) {
        for (v, w) in row.iter_mut().zip(weight) {
            *v = w * (*v * inv);
        }
    }
}

vectorized! {
    /// `Σ_j e^(row_j - largest)`.
    fn sum_of_exp(row: &[f32], largest: f32) -> f32 {
        lanes::sum_of(row, #[inline(always)] |l| lanes::exp_lanes(l.map(|l| l - largest)))
    }
}

vectorized! {
    /// `gate ← gate / (1 + e^-gate) ⊙ up`.
    fn silu_mul(gate: &mut [f32], up: &[f32]) {
        for (g, u) in gate.iter_mut().zip(up) {
            *g = *g / (1.0 + lanes::exp(-*g)) * u;
        }
    }
}

/// One query row's attention (`q`: `heads x head_dim`) over the keys and values of its positions
/// (`kv_heads x head_dim` each), into `out`; `weights` is scratch. The query-key dots run in
/// AVX-512 or AVX2 registers where the processor has them and heads are whole 16-lane chunks
/// (the same bits as [`lanes::dot`]).
fn attend(q: &[f32], keys: &[f32], values: &[f32], shape: AttentionShape, weights: &mut Vec<f32>, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if shape.head_dim.is_multiple_of(lanes::LANES) {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the processor supports the features the function is compiled for.
                return unsafe { attend_avx512(q, keys, values, shape, weights, out) };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: as above.
                return unsafe { attend_avx2(q, keys, values, shape, weights, out) };
            }
        }
    }
    attend_lanes(q, keys, values, shape, weights, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn attend_avx512(q: &[f32], keys: &[f32], values: &[f32], shape: AttentionShape, weights: &mut Vec<f32>, out: &mut [f32]) {
    attend_with(q, keys, values, shape, weights, out, |a, b| lanes::dot_avx512(a, b))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(q: &[f32], keys: &[f32], values: &[f32], shape: AttentionShape, weights: &mut Vec<f32>, out: &mut [f32]) {
    attend_with(q, keys, values, shape, weights, out, |a, b| lanes::dot_avx2(a, b))
}

vectorized! {
    /// [`attend`] with [`lanes::dot`].
    fn attend_lanes(q: &[f32], keys: &[f32], values: &[f32], shape: AttentionShape, weights: &mut Vec<f32>, out: &mut [f32]) {
        attend_with(q, keys, values, shape, weights, out, lanes::dot)
    }
}

/// [`attend`] with the query-key dot product `dot`.
#[inline(always)]
fn attend_with(
    q: &[f32], keys: &[f32], values: &[f32], shape: AttentionShape, weights: &mut Vec<f32>, out: &mut [f32],
    dot: impl Fn(&[f32], &[f32]) -> f32,
) {
    let AttentionShape { heads, kv_heads, head_dim, .. } = shape;
    let (kv_width, group) = (kv_heads * head_dim, heads / kv_heads);
    let scale = 1.0 / (head_dim as f32).sqrt();
    weights.resize(keys.len() / kv_width, 0.0);
    for (h, (out_head, query)) in out.chunks_exact_mut(head_dim).zip(q.chunks_exact(head_dim)).enumerate() {
        let kv = (h / group) * head_dim;
        for (w, key) in weights.iter_mut().zip(keys.chunks_exact(kv_width)) {
            *w = dot(query, &key[kv..kv + head_dim]) * scale;
        }
        let max = weights.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for w in weights.iter_mut() {
            *w = lanes::exp(*w - max);
        }
        let total: f32 = weights.iter().sum();
        // The weighted values, a block of outputs at a time held in registers over all the keys
        // (each output summed from 0.0 key after key either way).
        let mut start = 0;
        while start < head_dim {
            let at = kv + start;
            start += match head_dim - start {
                64.. => weigh_values::<64>(weights, values, kv_width, at, total, &mut out_head[start..]),
                16.. => weigh_values::<16>(weights, values, kv_width, at, total, &mut out_head[start..]),
                _ => weigh_values::<1>(weights, values, kv_width, at, total, &mut out_head[start..]),
            };
        }
    }
}

/// Outputs `0..W` of `out`: the sum over the keys of each key's weight times its value (values
/// `at..at + W` of the key's row of `kv_width`), in key order from 0.0, over `total`; returns `W`.
#[inline(always)]
fn weigh_values<const W: usize>(weights: &[f32], values: &[f32], kv_width: usize, at: usize, total: f32, out: &mut [f32]) -> usize {
    let mut acc = [0.0f32; W];
    for (w, value) in weights.iter().zip(values.chunks_exact(kv_width)) {
        let v: &[f32; W] = value[at..at + W].try_into().expect("W values");
        for i in 0..W {
            acc[i] += w * v[i];
        }
    }
    for (o, a) in out[..W].iter_mut().zip(acc) {
        *o = a / total;
    }
    W
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`attend_with`] written plainly: each head's weights, then its outputs summed key after
    /// key in memory.
    fn attend_plainly(q: &[f32], keys: &[f32], values: &[f32], shape: AttentionShape, out: &mut [f32]) {
        let AttentionShape { heads, kv_heads, head_dim, .. } = shape;
        let (kv_width, group) = (kv_heads * head_dim, heads / kv_heads);
        let scale = 1.0 / (head_dim as f32).sqrt();
        for (h, (out_head, query)) in out.chunks_exact_mut(head_dim).zip(q.chunks_exact(head_dim)).enumerate() {
            let kv = (h / group) * head_dim;
            let dots: Vec<f32> = keys.chunks_exact(kv_width).map(|key| lanes::dot(query, &key[kv..kv + head_dim]) * scale).collect();
            let max = dots.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let weights: Vec<f32> = dots.iter().map(|d| lanes::exp(d - max)).collect();
            let total: f32 = weights.iter().sum();
            out_head.fill(0.0);
            for (w, value) in weights.iter().zip(values.chunks_exact(kv_width)) {
                for (o, v) in out_head.iter_mut().zip(&value[kv..kv + head_dim]) {
                    *o += w * v;
                }
            }
            for o in out_head.iter_mut() {
                *o /= total;
            }
        }
    }

    #[test]
    fn attention_in_registers_gives_the_bits_of_its_plain_definition() {
        let value = |i: usize| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 3.0;
        for head_dim in [8, 24, 32, 64, 80, 128] {
            let shape = AttentionShape { heads: 4, kv_heads: 2, head_dim, capacity: 0, slots: 0 };
            let q: Vec<f32> = (0..4 * head_dim).map(value).collect();
            let keys: Vec<f32> = (0..7 * 2 * head_dim).map(|i| value(i + 17)).collect();
            let values: Vec<f32> = (0..7 * 2 * head_dim).map(|i| value(i + 91)).collect();
            let mut want = vec![0.0; 4 * head_dim];
            attend_plainly(&q, &keys, &values, shape, &mut want);
            let mut got = vec![f32::NAN; 4 * head_dim];
            attend(&q, &keys, &values, shape, &mut Vec::new(), &mut got);
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "head_dim {head_dim}"
            );
        }
    }

    #[test]
    fn every_attention_path_gives_the_bits_of_the_lanes() {
        let shape = AttentionShape { heads: 6, kv_heads: 2, head_dim: 32, capacity: 0, slots: 0 };
        let value = |i: usize| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 3.0;
        let q: Vec<f32> = (0..6 * 32).map(value).collect();
        let keys: Vec<f32> = (0..5 * 2 * 32).map(|i| value(i + 17)).collect();
        let values: Vec<f32> = (0..5 * 2 * 32).map(|i| value(i + 91)).collect();
        let (mut weights, mut want) = (Vec::new(), vec![0.0; 6 * 32]);
        attend_lanes(&q, &keys, &values, shape, &mut weights, &mut want);
        assert!(want.iter().all(|v| v.is_finite() && v.abs() < 2.0));
        let mut got = vec![0.0; 6 * 32];
        attend(&q, &keys, &values, shape, &mut weights, &mut got);
        assert_eq!(got, want, "the processor's widest path");
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the processor has AVX2 and FMA.
            unsafe { attend_avx2(&q, &keys, &values, shape, &mut weights, &mut got) };
            assert_eq!(got, want, "AVX2");
        }
    }
}
