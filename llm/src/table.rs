//! A vocabulary-sized table (the token embedding, an untied head) on the device, held in pieces
//! of whole rows that each fit the adapter's buffer and binding limits, and the two things a
//! forward does with it: the rows of some tokens, and the logits over the whole vocabulary.

use crate::error::Result;
use eggroll_backend::transformer::Transformer;
use eggroll_backend::MemoryLimits;

/// A `rows x cols` table in pieces of `piece_rows` rows (the last may have fewer).
pub(crate) struct Table<B: Transformer> {
    pieces: Vec<B::Buffer>,
    piece_rows: usize,
    rows: usize,
    cols: usize,
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
        Ok(Table { pieces, piece_rows, rows, cols })
    }

    /// The number of pieces.
    pub(crate) fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// `x ← ` the rows of `tokens` (each below the table's rows), one after another.
    pub(crate) fn gather(&self, backend: &B, tokens: &[u32], x: &mut B::Buffer) -> Result<()> {
        if let [whole] = self.pieces.as_slice() {
            return Ok(backend.embedding(tokens, whole, self.cols, x)?);
        }
        // Each piece's rows are gathered into a run of `runs`, in piece order; `order` then
        // gathers every token's row from there into its own place.
        let mut runs = backend.zeros(tokens.len() * self.cols)?;
        let mut order = vec![0u32; tokens.len()];
        let mut placed = 0;
        for (p, piece) in self.pieces.iter().enumerate() {
            let first = (p * self.piece_rows) as u32;
            let (rows, local): (Vec<usize>, Vec<u32>) = tokens
                .iter()
                .enumerate()
                .filter(|(_, &t)| t >= first && ((t - first) as usize) < self.piece_rows)
                .map(|(r, &t)| (r, t - first))
                .unzip();
            if rows.is_empty() {
                continue;
            }
            let mut run = backend.zeros(rows.len() * self.cols)?;
            backend.embedding(&local, piece, self.cols, &mut run)?;
            backend.place(&run, &mut runs, 1, placed * self.cols)?;
            for r in rows {
                order[r] = placed as u32;
                placed += 1;
            }
        }
        Ok(backend.embedding(&order, &runs, self.cols, x)?)
    }

    /// `logits ← x Tᵀ` for `x` of `n` rows of `cols`: `n x rows` logits, one piece's columns at
    /// a time.
    pub(crate) fn logits(&self, backend: &B, x: &B::Buffer, n: usize, logits: &mut B::Buffer) -> Result<()> {
        if let [whole] = self.pieces.as_slice() {
            return Ok(backend.matmul(x, whole, self.rows, self.cols, n, logits)?);
        }
        for (p, piece) in self.pieces.iter().enumerate() {
            let piece_rows = backend.len(piece) / self.cols;
            let mut part = backend.zeros(n * piece_rows)?;
            backend.matmul(x, piece, piece_rows, self.cols, n, &mut part)?;
            backend.place(&part, logits, n, p * self.piece_rows)?;
        }
        Ok(())
    }
}
