//! A vocabulary-sized table (the token embedding, an untied head) on the device, held in pieces
//! of whole rows that each fit the adapter's buffer and binding limits, and the two things a
//! forward does with it: the rows of some tokens, and the logits over the whole vocabulary.

use crate::error::Result;
use eggroll_backend::transformer::Transformer;
use eggroll_backend::{DType, MemoryLimits};
use std::sync::Mutex;

/// A `rows x cols` table in pieces of `piece_rows` rows (the last may have fewer).
pub(crate) struct Table<B: Transformer> {
    pieces: Vec<B::Buffer>,
    piece_rows: usize,
    rows: usize,
    cols: usize,
    /// The pieces' storage type.
    dtype: DType,
    /// The pieces' logits buffers, kept for the next call.
    parts: Parts<B>,
}

/// Device buffers for the outputs of a split tensor's pieces (a piece's logits, a projection
/// piece's product), each placed into the whole's output and then kept for the next piece or
/// call of as many values: a decode step allocates none.
pub(crate) struct Parts<B: Transformer> {
    kept: Mutex<Vec<B::Buffer>>,
}

impl<B: Transformer> Default for Parts<B> {
    fn default() -> Self {
        Parts { kept: Mutex::new(Vec::new()) }
    }
}

impl<B: Transformer> Parts<B> {
    /// The most buffers kept: a whole piece's and a last piece's output, for a decode step and
    /// a prefill.
    const KEPT: usize = 4;

    /// A buffer of `len` values: a kept one, or a new one.
    pub(crate) fn take(&self, backend: &B, len: usize) -> Result<B::Buffer> {
        let mut kept = self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match kept.iter().position(|b| backend.len(b) == len) {
            Some(at) => Ok(kept.swap_remove(at)),
            None => Ok(backend.zeros(len)?),
        }
    }

    /// Keeps `buffer` for a later [`Parts::take`], dropping the oldest beyond [`Parts::KEPT`].
    pub(crate) fn keep(&self, buffer: B::Buffer) {
        let mut kept = self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        kept.push(buffer);
        if kept.len() > Self::KEPT {
            kept.remove(0);
        }
    }
}

/// The most bytes one piece of a table may have: `requested` when given, else the smaller of the
/// adapter's largest buffer and its storage binding limit (no limit where the backend has none).
pub(crate) fn piece_bytes(requested: Option<u64>, limits: MemoryLimits) -> u64 {
    requested.unwrap_or_else(|| [limits.max_buffer_bytes, limits.max_binding_bytes].into_iter().flatten().min().unwrap_or(u64::MAX))
}

impl<B: Transformer> Table<B> {
    /// Uploads `values` (`rows x cols`, row-major) stored as `dtype` in pieces of at most
    /// `max_bytes` bytes each (at least one row a piece).
    pub(crate) fn upload(backend: &B, values: &[f32], rows: usize, cols: usize, max_bytes: u64, dtype: DType) -> Result<Self> {
        let row_bytes = (cols * dtype.bytes()) as u64;
        let piece_rows = usize::try_from(max_bytes / row_bytes).unwrap_or(usize::MAX).clamp(1, rows.max(1));
        let pieces =
            values.chunks(piece_rows * cols).map(|piece| backend.upload_as(piece, dtype)).collect::<std::result::Result<_, _>>()?;
        Ok(Table { pieces, piece_rows, rows, cols, dtype, parts: Parts::default() })
    }

    /// The number of pieces.
    pub(crate) fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// `x ← ` the rows of `tokens` (each below the table's rows), one after another: each piece
    /// writes the rows of the tokens it holds (a whole f32 table by the plain lookup).
    pub(crate) fn gather(&self, backend: &B, tokens: &[u32], x: &mut B::Buffer) -> Result<()> {
        if let ([whole], DType::F32) = (self.pieces.as_slice(), self.dtype) {
            return Ok(backend.embedding(tokens, whole, self.cols, x)?);
        }
        for (p, piece) in self.pieces.iter().enumerate() {
            backend.embedding_piece(tokens, p * self.piece_rows, piece, self.cols, x)?;
        }
        Ok(())
    }

    /// `logits ← x Tᵀ` for `x` of `n` rows of `cols`: `n x rows` logits, one piece's columns at
    /// a time.
    pub(crate) fn logits(&self, backend: &B, x: &B::Buffer, n: usize, logits: &mut B::Buffer) -> Result<()> {
        if let [whole] = self.pieces.as_slice() {
            return Ok(backend.matmul(x, whole, self.rows, self.cols, n, logits)?);
        }
        for (p, piece) in self.pieces.iter().enumerate() {
            let len = n * (backend.len(piece) / self.cols);
            let mut part = self.parts.take(backend, len)?;
            backend.matmul(x, piece, len / n, self.cols, n, &mut part)?;
            backend.place(&part, logits, n, p * self.piece_rows)?;
            self.parts.keep(part);
        }
        Ok(())
    }
}
