//! The kernels of a pretrained transformer's forward beyond the matmuls (docs/kernels.md): RMSNorm
//! with a weight, the rotary position embedding, causal grouped-query attention over per-sequence
//! KV caches (a prefill of many positions or one decode step), the SiLU-gated product of the MLP,
//! the residual sum, greedy decoding's choice of each row and nucleus sampling's, and the placing of a split table's
//! pieces. [`Transformer`] is the checked front, as [`crate::Backend`] is for the
//! EGGROLL kernels: its provided methods check the arguments once, then run the backend's
//! [`TransformerKernels`]. The projections themselves are [`crate::Backend::matmul`] and
//! [`crate::Backend::perturbed_matmul`].

use crate::error::{Error, Result, ShapeError};
use crate::{Backend, DType};
use std::sync::{Arc, Mutex};

/// Where a call of [`Transformer::attention`] reads and writes: `sequences` sequences, each
/// adding `new` positions after what its cache holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads` is a multiple: query head `h` reads key/value head
    /// `h / (heads / kv_heads)`).
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Positions each cache slot holds at most.
    pub capacity: usize,
    /// Cache slots (the sequences a cache holds).
    pub slots: usize,
}

impl AttentionShape {
    /// Floats of one cache (keys or values): `slots x capacity x kv_heads x head_dim`.
    pub fn cache_len(&self) -> usize {
        self.slots * self.capacity * self.kv_heads * self.head_dim
    }
}

/// How [`Transformer::sample_rows`] draws a token: from the softmax of the logits over the
/// temperature, kept to the smallest set of most likely tokens whose probability reaches `top_p`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nucleus {
    /// Softmax temperature (finite, > 0): the logits are multiplied by its inverse.
    pub temperature: f32,
    /// The probability the kept tokens reach (0 < top_p <= 1; 1 keeps every token).
    pub top_p: f32,
    /// The key of the uniforms (with each row's member and position).
    pub seed: u64,
}

/// The checked transformer kernels, for every [`TransformerKernels`].
pub trait Transformer: TransformerKernels {
    /// `x[row] ← x[row] / sqrt(mean(x[row]²) + eps) ⊙ weight` for every row of `cols` values
    /// (`weight` has `cols`), in f32 as transformers' `LlamaRMSNorm` computes it.
    fn rms_norm(&self, x: &mut Self::Buffer, weight: &Self::Buffer, cols: usize, eps: f32) -> Result<()> {
        let len = self.len(x);
        if cols == 0 || !len.is_multiple_of(cols) {
            return Err(ShapeError::Rows { what: "RMSNorm input", len, width: cols }.into());
        }
        if self.len(weight) != cols {
            return Err(ShapeError::Length { what: "RMSNorm weight", actual: self.len(weight), expected: cols }.into());
        }
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::InvalidArgument(format!("RMSNorm eps must be finite and >= 0, got {eps}")));
        }
        f32_buffers(self, &[x, weight])?;
        self.rms_norm_unchecked(x, weight, cols, eps)
    }

    /// Rotates each of the `heads` heads (`head_dim` wide) of row `r` of `x` by position
    /// `positions[r]`: value `i` and `i + head_dim / 2` of a head turn by the angle
    /// `position · inv_freq[i]`, as transformers' `apply_rotary_pos_emb` (rotate-half form).
    fn rope(&self, x: &mut Self::Buffer, positions: &[u32], heads: usize, head_dim: usize, inv_freq: &[f32]) -> Result<()> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) || inv_freq.len() != head_dim / 2 {
            return Err(Error::InvalidArgument(format!(
                "rope: head_dim {head_dim} must be even and positive with head_dim / 2 inverse frequencies, got {}",
                inv_freq.len()
            )));
        }
        let expected = positions.len() * heads * head_dim;
        if self.len(x) != expected {
            return Err(ShapeError::Length { what: "rope input", actual: self.len(x), expected }.into());
        }
        f32_buffers(self, &[x])?;
        self.rope_unchecked(x, positions, heads, head_dim, inv_freq)
    }

    /// Causal attention of `starts.len()` sequences, each adding `new` positions: sequence `s`
    /// writes its keys and values (rows `s·new ..` of `k` and `v`, `kv_heads x head_dim` each)
    /// into cache slot `slots[s]` at positions `starts[s] ..`, then each of its `new` query rows
    /// (`heads x head_dim`) attends to the slot's positions up to its own, softmax of
    /// `q·k / √head_dim`. `out` gets the weighted values (`heads x head_dim` per row).
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self, q: &Self::Buffer, k: &Self::Buffer, v: &Self::Buffer, shape: AttentionShape, slots: &[u32], starts: &[u32], new: usize,
        k_cache: &mut Self::Buffer, v_cache: &mut Self::Buffer, out: &mut Self::Buffer,
    ) -> Result<()> {
        let AttentionShape { heads, kv_heads, head_dim, capacity, slots: slot_count } = shape;
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) || head_dim == 0 {
            return Err(Error::InvalidArgument(format!(
                "attention: {heads} query heads over {kv_heads} key/value heads of width {head_dim}"
            )));
        }
        if slots.len() != starts.len() || new == 0 {
            return Err(Error::InvalidArgument(format!(
                "attention: {} slots for {} starts, {new} new positions",
                slots.len(),
                starts.len()
            )));
        }
        for (&slot, &start) in slots.iter().zip(starts) {
            if slot as usize >= slot_count {
                return Err(Error::InvalidArgument(format!("attention: cache slot {slot} of {slot_count}")));
            }
            if start as usize + new > capacity {
                return Err(Error::InvalidArgument(format!(
                    "attention: positions {start}..{} beyond the cache's {capacity}",
                    start as usize + new
                )));
            }
        }
        let rows = slots.len() * new;
        let lens = [
            ("attention queries", q, rows * heads * head_dim),
            ("attention keys", k, rows * kv_heads * head_dim),
            ("attention values", v, rows * kv_heads * head_dim),
            ("key cache", &*k_cache, shape.cache_len()),
            ("value cache", &*v_cache, shape.cache_len()),
            ("attention output", &*out, rows * heads * head_dim),
        ];
        for (what, buffer, expected) in lens {
            if self.len(buffer) != expected {
                return Err(ShapeError::Length { what, actual: self.len(buffer), expected }.into());
            }
            f32_buffers(self, &[buffer])?;
        }
        self.attention_unchecked(q, k, v, shape, slots, starts, new, k_cache, v_cache, out)
    }

    /// `gate ← silu(gate) ⊙ up`, the gated MLP's product (SiLU in f32: `x / (1 + e^-x)`).
    fn silu_mul(&self, gate: &mut Self::Buffer, up: &Self::Buffer) -> Result<()> {
        if self.len(gate) != self.len(up) {
            return Err(ShapeError::Length { what: "SiLU-gated up projection", actual: self.len(up), expected: self.len(gate) }.into());
        }
        f32_buffers(self, &[gate, up])?;
        self.silu_mul_unchecked(gate, up)
    }

    /// For each row of `cols` logits: the index of its largest value (the first of equal ones),
    /// that value, and `ln Σ_j exp(l_j - largest)`, written to `picks` (3 values per row, the
    /// index as an f32): greedy decoding's choice and the chosen token's log-probability
    /// (`-picks[3 row + 2]`) without reading the logits back.
    fn greedy_rows(&self, logits: &Self::Buffer, cols: usize, picks: &mut Self::Buffer) -> Result<()> {
        let len = self.len(logits);
        if cols == 0 || !len.is_multiple_of(cols) {
            return Err(ShapeError::Rows { what: "greedy logits", len, width: cols }.into());
        }
        if cols > 1 << 24 {
            return Err(Error::InvalidArgument(format!("greedy rows of {cols} logits: at most 2^24 (the index is written as an f32)")));
        }
        if self.len(picks) != 3 * (len / cols) {
            return Err(ShapeError::Length { what: "greedy picks", actual: self.len(picks), expected: 3 * (len / cols) }.into());
        }
        f32_buffers(self, &[logits, picks])?;
        self.greedy_rows_unchecked(logits, cols, picks)
    }

    /// For each row of `cols` logits: a token drawn by `nucleus` with the uniform of the row's
    /// `keys` entry `[member, position]` (the top 24 bits of the first word of Philox4x32-10 at
    /// counter `(position, member, 0x5a4d504c, 0)`, key `(seed low, seed high)`), and its
    /// log-probability at temperature 1, written to `picks` (2 values per row, the token as an
    /// f32), without reading the logits back. The nucleus is the tokens whose `exp(l/T - max/T)`
    /// is at least the largest threshold whose values reach `top_p` of their total; the token is
    /// the one at which their running sum in vocabulary order passes the uniform times their
    /// mass (the CPU backend's `cpu/sampling.rs` gives the order of every sum).
    fn sample_rows(&self, logits: &Self::Buffer, cols: usize, nucleus: Nucleus, keys: &[[u32; 2]], picks: &mut Self::Buffer) -> Result<()> {
        let len = self.len(logits);
        if cols == 0 || !len.is_multiple_of(cols) {
            return Err(ShapeError::Rows { what: "sampled logits", len, width: cols }.into());
        }
        if cols > 1 << 24 {
            return Err(Error::InvalidArgument(format!("sampled rows of {cols} logits: at most 2^24 (the token is written as an f32)")));
        }
        let rows = len / cols;
        if keys.len() != rows {
            return Err(ShapeError::Length { what: "sampling keys", actual: keys.len(), expected: rows }.into());
        }
        if self.len(picks) != 2 * rows {
            return Err(ShapeError::Length { what: "sampled picks", actual: self.len(picks), expected: 2 * rows }.into());
        }
        if !(nucleus.temperature.is_finite() && nucleus.temperature > 0.0 && (1.0 / nucleus.temperature).is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "sampling temperature {}: need a finite value > 0 with a finite inverse",
                nucleus.temperature
            )));
        }
        if !(nucleus.top_p > 0.0 && nucleus.top_p <= 1.0) {
            return Err(Error::InvalidArgument(format!("sampling top-p {}: need 0 < top-p <= 1", nucleus.top_p)));
        }
        f32_buffers(self, &[logits, picks])?;
        if rows == 0 {
            return Ok(());
        }
        self.sample_rows_unchecked(logits, cols, nucleus, keys, picks)
    }

    /// Writes `src` (`rows` rows of `width` values) into columns `offset .. offset + width` of
    /// `dst` (`rows` rows of `cols` values), leaving its other columns as they are: how a split
    /// table's pieces (a vocabulary's logits, an embedding's rows) are put together.
    fn place(&self, src: &Self::Buffer, dst: &mut Self::Buffer, rows: usize, offset: usize) -> Result<()> {
        let (len, dst_len) = (self.len(src), self.len(dst));
        if rows == 0 || !len.is_multiple_of(rows) || !dst_len.is_multiple_of(rows) {
            return Err(Error::InvalidArgument(format!("place: {len} values into {dst_len} are not {rows} rows of each")));
        }
        let (width, cols) = (len / rows, dst_len / rows);
        if offset + width > cols {
            return Err(Error::InvalidArgument(format!("place: columns {offset}..{} beyond the destination's {cols}", offset + width)));
        }
        f32_buffers(self, &[src, dst])?;
        self.place_unchecked(src, dst, rows, offset)
    }

    /// One piece of a table split by rows (a vocabulary beyond a binding limit), the rows
    /// `first ..` of the whole: `y[row] ← piece[tokens[row] - first]` for each row whose token
    /// falls in the piece; the other rows of `y` (`tokens x cols`) are left as they are. Looking
    /// up every piece in turn gathers the tokens' rows of the whole table. The piece may be
    /// stored as any of [`DType::WEIGHTS`] (its values widened to f32 exactly); `y` is f32.
    fn embedding_piece(&self, tokens: &[u32], first: usize, piece: &Self::Buffer, cols: usize, y: &mut Self::Buffer) -> Result<()> {
        let len = self.len(piece);
        if cols == 0 || len == 0 || !len.is_multiple_of(cols) {
            return Err(ShapeError::Rows { what: "embedding piece", len, width: cols }.into());
        }
        if self.len(y) != tokens.len() * cols {
            return Err(ShapeError::Length { what: "embedding output", actual: self.len(y), expected: tokens.len() * cols }.into());
        }
        f32_buffers(self, &[y])?;
        if tokens.is_empty() {
            return Ok(());
        }
        self.embedding_piece_unchecked(tokens, first, piece, cols, y)
    }

    /// `y ← y + x`, the residual sum.
    fn add(&self, y: &mut Self::Buffer, x: &Self::Buffer) -> Result<()> {
        if self.len(y) != self.len(x) {
            return Err(ShapeError::Length { what: "residual summand", actual: self.len(x), expected: self.len(y) }.into());
        }
        f32_buffers(self, &[y, x])?;
        self.add_unchecked(y, x)
    }
}

impl<K: TransformerKernels> Transformer for K {}

/// What a backend implements behind [`Transformer`]; each kernel may assume the front's rules.
pub trait TransformerKernels: Backend {
    /// [`Transformer::rms_norm`] without the checks.
    fn rms_norm_unchecked(&self, x: &mut Self::Buffer, weight: &Self::Buffer, cols: usize, eps: f32) -> Result<()>;
    /// [`Transformer::rope`] without the checks.
    fn rope_unchecked(&self, x: &mut Self::Buffer, positions: &[u32], heads: usize, head_dim: usize, inv_freq: &[f32]) -> Result<()>;
    /// [`Transformer::attention`] without the checks.
    #[allow(clippy::too_many_arguments)]
    fn attention_unchecked(
        &self, q: &Self::Buffer, k: &Self::Buffer, v: &Self::Buffer, shape: AttentionShape, slots: &[u32], starts: &[u32], new: usize,
        k_cache: &mut Self::Buffer, v_cache: &mut Self::Buffer, out: &mut Self::Buffer,
    ) -> Result<()>;
    /// [`Transformer::silu_mul`] without the checks.
    fn silu_mul_unchecked(&self, gate: &mut Self::Buffer, up: &Self::Buffer) -> Result<()>;
    /// [`Transformer::greedy_rows`] without the checks.
    fn greedy_rows_unchecked(&self, logits: &Self::Buffer, cols: usize, picks: &mut Self::Buffer) -> Result<()>;
    /// [`Transformer::sample_rows`] without the checks.
    fn sample_rows_unchecked(
        &self, logits: &Self::Buffer, cols: usize, nucleus: Nucleus, keys: &[[u32; 2]], picks: &mut Self::Buffer,
    ) -> Result<()>;
    /// [`Transformer::place`] without the checks.
    fn place_unchecked(&self, src: &Self::Buffer, dst: &mut Self::Buffer, rows: usize, offset: usize) -> Result<()>;
    /// [`Transformer::embedding_piece`] without the checks.
    fn embedding_piece_unchecked(
        &self, tokens: &[u32], first: usize, piece: &Self::Buffer, cols: usize, y: &mut Self::Buffer,
    ) -> Result<()>;
    /// [`Transformer::add`] without the checks.
    fn add_unchecked(&self, y: &mut Self::Buffer, x: &Self::Buffer) -> Result<()>;
}

/// The cosine and sine of each row's angle at each frequency, `position · inv_freq[i]` in f32 as
/// transformers computes it, interleaved (`rows x inv_freq.len() x 2`): what every backend's
/// `rope` turns its pairs by.
pub(crate) fn rotations(positions: &[u32], inv_freq: &[f32]) -> Vec<f32> {
    positions
        .iter()
        .flat_map(|&position| {
            inv_freq.iter().flat_map(move |f| {
                let (sin, cos) = (position as f32 * f).sin_cos();
                [cos, sin]
            })
        })
        .collect()
}

/// The rotations of the last positions a backend turned by, kept with what made them: a
/// forward turns the queries and keys of every layer by the same positions, so it computes
/// their sines and cosines once instead of twice a layer (the same values, read again).
#[derive(Debug, Default)]
pub(crate) struct RotationMemo(Mutex<Option<Rotated>>);

/// The positions and the bits of the inverse frequencies that made `values`.
#[derive(Debug)]
struct Rotated {
    positions: Vec<u32>,
    freq_bits: Vec<u32>,
    values: Arc<[f32]>,
}

impl RotationMemo {
    /// [`rotations`] of `positions` and `inv_freq`: the kept ones when both are what they were
    /// made from (to the bit), else made now and kept.
    pub(crate) fn get(&self, positions: &[u32], inv_freq: &[f32]) -> Arc<[f32]> {
        let freq_bits: Vec<u32> = inv_freq.iter().map(|f| f.to_bits()).collect();
        let mut kept = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(r) = kept.as_ref().filter(|r| r.positions == positions && r.freq_bits == freq_bits) {
            return Arc::clone(&r.values);
        }
        let values: Arc<[f32]> = rotations(positions, inv_freq).into();
        *kept = Some(Rotated { positions: positions.to_vec(), freq_bits, values: Arc::clone(&values) });
        values
    }
}

/// Every buffer is f32 (the transformer kernels take 16-bit storage only as the table piece of
/// [`Transformer::embedding_piece`]).
fn f32_buffers<B: Backend>(backend: &B, buffers: &[&B::Buffer]) -> Result<()> {
    match buffers.iter().map(|b| backend.dtype(b)).find(|d| *d != DType::F32) {
        Some(other) => Err(Error::Unsupported(format!(
            "the transformer kernels take f32 buffers, got {other} (16-bit storage is only for embedding_piece's table piece)"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::{rotations, RotationMemo};
    use std::sync::Arc;

    #[test]
    fn the_memo_gives_the_rotations_of_what_it_is_asked_for() {
        let memo = RotationMemo::default();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let (freq, other_freq) = ([1.0f32, 0.1, 0.01], [1.0f32, 0.1, 0.011]);
        let first = memo.get(&[3, 4], &freq);
        assert_eq!(bits(&first), bits(&rotations(&[3, 4], &freq)));
        assert!(Arc::ptr_eq(&first, &memo.get(&[3, 4], &freq)), "the same positions and frequencies are kept");
        for (positions, freq) in [(&[3u32, 5][..], &freq), (&[3, 4, 5][..], &freq), (&[3, 4][..], &other_freq)] {
            assert_eq!(bits(&memo.get(positions, freq)), bits(&rotations(positions, freq)), "{positions:?}, {freq:?}");
        }
    }
}
