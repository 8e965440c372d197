//! [`TransformerKernels`] for [`SelectedBackend`]: each call handed to the backend inside.

use super::buffer::SelectedBuffer;
use super::SelectedBackend;
use crate::transformer::{AttentionShape, Nucleus, TransformerKernels};
use crate::Result;

impl TransformerKernels for SelectedBackend {
    fn rms_norm_unchecked(&self, x: &mut SelectedBuffer, weight: &SelectedBuffer, cols: usize, eps: f32) -> Result<()> {
        forward!(self, b(x, weight) => b.rms_norm_unchecked(x, weight, cols, eps))
    }

    fn rope_unchecked(&self, x: &mut SelectedBuffer, positions: &[u32], heads: usize, head_dim: usize, inv_freq: &[f32]) -> Result<()> {
        forward!(self, b(x) => b.rope_unchecked(x, positions, heads, head_dim, inv_freq))
    }

    fn attention_unchecked(
        &self, q: &SelectedBuffer, k: &SelectedBuffer, v: &SelectedBuffer, shape: AttentionShape, slots: &[u32], starts: &[u32],
        new: usize, k_cache: &mut SelectedBuffer, v_cache: &mut SelectedBuffer, out: &mut SelectedBuffer,
    ) -> Result<()> {
        forward!(self, b(q, k, v, k_cache, v_cache, out) => b.attention_unchecked(q, k, v, shape, slots, starts, new, k_cache, v_cache, out))
    }

    fn silu_mul_unchecked(&self, gate: &mut SelectedBuffer, up: &SelectedBuffer) -> Result<()> {
        forward!(self, b(gate, up) => b.silu_mul_unchecked(gate, up))
    }

    fn greedy_rows_unchecked(&self, logits: &SelectedBuffer, cols: usize, picks: &mut SelectedBuffer) -> Result<()> {
        forward!(self, b(logits, picks) => b.greedy_rows_unchecked(logits, cols, picks))
    }

    fn sample_rows_unchecked(
        &self, logits: &SelectedBuffer, cols: usize, nucleus: Nucleus, keys: &[[u32; 2]], picks: &mut SelectedBuffer,
    ) -> Result<()> {
        forward!(self, b(logits, picks) => b.sample_rows_unchecked(logits, cols, nucleus, keys, picks))
    }

    fn place_unchecked(&self, src: &SelectedBuffer, dst: &mut SelectedBuffer, rows: usize, offset: usize) -> Result<()> {
        forward!(self, b(src, dst) => b.place_unchecked(src, dst, rows, offset))
    }

    fn embedding_piece_unchecked(
        &self, tokens: &[u32], first: usize, piece: &SelectedBuffer, cols: usize, y: &mut SelectedBuffer,
    ) -> Result<()> {
        forward!(self, b(piece, y) => b.embedding_piece_unchecked(tokens, first, piece, cols, y))
    }

    fn add_unchecked(&self, y: &mut SelectedBuffer, x: &SelectedBuffer) -> Result<()> {
        forward!(self, b(y, x) => b.add_unchecked(y, x))
    }
}
