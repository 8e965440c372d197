//! The CPU reference of the transformer kernels ([`crate::transformer`]): rows in parallel, f32
//! arithmetic in the order transformers' PyTorch forward uses where it is defined.

use super::lowrank::dot;
use super::CpuBackend;
use crate::transformer::{rotations, AttentionShape, TransformerKernels};
use crate::Result;
use rayon::prelude::*;

impl TransformerKernels for CpuBackend {
    fn rms_norm_unchecked(&self, x: &mut Vec<f32>, weight: &Vec<f32>, cols: usize, eps: f32) -> Result<()> {
        x.par_chunks_mut(cols).for_each(|row| {
            let mean = row.iter().map(|v| v * v).sum::<f32>() / cols as f32;
            let inv = 1.0 / (mean + eps).sqrt();
            row.iter_mut().zip(weight).for_each(|(v, w)| *v = w * (*v * inv));
        });
        Ok(())
    }

    fn rope_unchecked(&self, x: &mut Vec<f32>, positions: &[u32], heads: usize, head_dim: usize, inv_freq: &[f32]) -> Result<()> {
        let half = head_dim / 2;
        let turns = rotations(positions, inv_freq);
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
        let group = heads / kv_heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let width = heads * head_dim;
        out.par_chunks_mut(width).enumerate().for_each(|(row, out_row)| {
            let (s, t) = (row / new, row % new);
            let (slot, position) = (slots[s] as usize, starts[s] as usize + t);
            let keys = &k_cache[slot * slot_len..slot * slot_len + (position + 1) * kv_width];
            let values = &v_cache[slot * slot_len..slot * slot_len + (position + 1) * kv_width];
            let mut weights = vec![0.0f32; position + 1];
            for (h, out_head) in out_row.chunks_exact_mut(head_dim).enumerate() {
                let query = &q[row * width + h * head_dim..row * width + (h + 1) * head_dim];
                let kv = (h / group) * head_dim;
                for (w, key) in weights.iter_mut().zip(keys.chunks_exact(kv_width)) {
                    *w = dot(query, &key[kv..kv + head_dim]) * scale;
                }
                let max = weights.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut total = 0.0f32;
                for w in weights.iter_mut() {
                    *w = (*w - max).exp();
                    total += *w;
                }
                out_head.fill(0.0);
                for (w, value) in weights.iter().zip(values.chunks_exact(kv_width)) {
                    let p = w / total;
                    out_head.iter_mut().zip(&value[kv..kv + head_dim]).for_each(|(o, v)| *o += p * v);
                }
            }
        });
        Ok(())
    }

    fn silu_mul_unchecked(&self, gate: &mut Vec<f32>, up: &Vec<f32>) -> Result<()> {
        gate.par_chunks_mut(4096).zip(up.par_chunks(4096)).for_each(|(g, u)| {
            g.iter_mut().zip(u).for_each(|(g, u)| *g = *g / (1.0 + (-*g).exp()) * u);
        });
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
            let sum: f32 = row.iter().map(|l| (l - largest).exp()).sum();
            pick.copy_from_slice(&[at as f32, largest, sum.ln()]);
        });
        Ok(())
    }

    fn place_unchecked(&self, src: &Vec<f32>, dst: &mut Vec<f32>, rows: usize, offset: usize) -> Result<()> {
        let (width, cols) = (src.len() / rows, dst.len() / rows);
        dst.par_chunks_mut(cols).zip(src.par_chunks(width)).for_each(|(d, s)| d[offset..offset + width].copy_from_slice(s));
        Ok(())
    }

    fn add_unchecked(&self, y: &mut Vec<f32>, x: &Vec<f32>) -> Result<()> {
        y.par_chunks_mut(4096).zip(x.par_chunks(4096)).for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, x)| *y += x));
        Ok(())
    }
}
