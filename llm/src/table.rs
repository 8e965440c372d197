//! A vocabulary-sized table (the token embedding, an untied head) on the device, held in pieces
//! of whole rows that each fit the adapter's buffer and binding limits, and the two things a
//! forward does with it: the rows of some tokens, and the logits over the whole vocabulary.

use crate::error::Result;
use eggroll_backend::transformer::Transformer;
use eggroll_backend::MemoryLimits;
use std::sync::Mutex;

/// A `rows x cols` table in pieces of `piece_rows` rows (the last may have fewer).
pub(crate) struct Table<B: Transformer> {
    pieces: Vec<B::Buffer>,
    piece_rows: usize,
    rows: usize,
    cols: usize,
    /// The pieces' logits buffers of the latest call (a whole piece's, the last piece's), kept
    /// for the next call of as many rows: a decode step allocates none.
    parts: Mutex<Vec<B::Buffer>>,
}

/// The most bytes one piece of a table may have: `requested` when given, else the smaller of the
/// adapter's largest buffer and its storage binding limit (no limit where the backend has none).
pub(crate) fn piece_bytes(requested: Option<u64>, limits: MemoryLimits) -> u64 {
    requested.unwrap_or_else(|| [limits.max_buffer_bytes, limits.max_binding_bytes].into_iter().flatten().min().unwrap_or(u64::MAX))
}

impl<B: Transformer> Table<B> {
    /// Uploads `values` (`rows x cols`, row-major) in pieces of at most `max_bytes` bytes each
    /// (at least one row a piece).
    pub(crate) fn upload(backend: &B, values: &[f32], rows: usize, cols: usize, max_bytes: u64) -> Result<Self> {
        let row_bytes = (cols * 4) as u64;
        let piece_rows = usize::try_from(max_bytes / row_bytes).unwrap_or(usize::MAX).clamp(1, rows.max(1));
        let pieces = values.chunks(piece_rows * cols).map(|piece| backend.upload(piece)).collect::<std::result::Result<_, _>>()?;
        Ok(Table { pieces, piece_rows, rows, cols, parts: Mutex::new(Vec::new()) })
    }

    /// The number of pieces.
    pub(crate) fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// `x ← ` the rows of `tokens` (each below the table's rows), one after another: each piece
    /// writes the rows of the tokens it holds.
    pub(crate) fn gather(&self, backend: &B, tokens: &[u32], x: &mut B::Buffer) -> Result<()> {
        if let [whole] = self.pieces.as_slice() {
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
        let mut kept = self.parts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut used = Vec::with_capacity(2);
        for (p, piece) in self.pieces.iter().enumerate() {
            let len = n * (backend.len(piece) / self.cols);
            let mut part = match kept.iter().position(|b| backend.len(b) == len) {
                Some(at) => kept.swap_remove(at),
                None => match used.iter().position(|b| backend.len(b) == len) {
                    Some(at) => used.swap_remove(at),
                    None => backend.zeros(len)?,
                },
            };
            backend.matmul(x, piece, len / n, self.cols, n, &mut part)?;
            backend.place(&part, logits, n, p * self.piece_rows)?;
            used.push(part);
        }
        *kept = used;
        Ok(())
    }
}
