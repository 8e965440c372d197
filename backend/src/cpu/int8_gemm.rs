//! The integer products `out = x wᵀ` of the CPU's integer kernels (int8 rows, `i32` sums): rows
//! of `x` against rows of `w` as dot products (portable, and the same code compiled for AVX2 where
//! the processor has it), or AVX-512 VNNI's `vpdpbusd` on `w` packed four inputs to a lane. Sums
//! of integers are exact whatever their order, so every path gives the same bits.

use rayon::prelude::*;
use std::ops::Range;

/// Columns of `w` per block: a column range handed to [`Rhs::product`] starts at a multiple of it
/// (the packed layout holds whole blocks).
pub(crate) const COLUMN_BLOCK: usize = 64;

/// `Σ_l a_l b_l` of two int8 rows, widened to `i32` (an integer sum, so the compiler is free to
/// vectorise it).
#[inline(always)]
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum()
}

/// The kernels a product can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// Dot products in plain Rust, compiled for the baseline target.
    Portable,
    /// The same dot products compiled for AVX2.
    Avx2,
    /// `vpdpbusd` (AVX-512 VNNI) on packed columns.
    Vnni,
}

impl Path {
    /// The fastest path this processor runs.
    pub(crate) fn fastest() -> Self {
        [Path::Vnni, Path::Avx2].into_iter().find(|p| p.available()).unwrap_or(Path::Portable)
    }

    /// Whether this processor runs the path.
    pub(crate) fn available(self) -> bool {
        match self {
            Path::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Path::Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// Groups of four inputs one packing task lays out (each reads every row of `w` once).
const PACK_GROUPS: usize = 16;

/// The right-hand side `w` (`cols x inner`, row-major) of products `x wᵀ`, prepared once for the
/// path that multiplies by it.
pub(crate) struct Rhs<'a> {
    w: &'a [i8],
    inner: usize,
    cols: usize,
    path: Path,
    /// VNNI only: `w` as `[inner / 4][padded cols][4]` (zeros past the edges).
    packed: Vec<i8>,
    /// VNNI only: `128 Σ_l w[j, l]` per (padded) column, what the unsigned `x + 128` adds.
    offsets: Vec<i32>,
    /// VNNI only: the columns rounded up to whole blocks.
    padded_cols: usize,
}

impl<'a> Rhs<'a> {
    /// `w` for the fastest path.
    pub(crate) fn new(w: &'a [i8], inner: usize) -> Self {
        Self::with_path(w, inner, Path::fastest())
    }

    /// `w` for `path`, which the processor must run ([`Path::available`]).
    pub(crate) fn with_path(w: &'a [i8], inner: usize, path: Path) -> Self {
        let cols = w.len() / inner;
        let mut rhs = Self { w, inner, cols, path, packed: Vec::new(), offsets: Vec::new(), padded_cols: 0 };
        if path == Path::Vnni {
            let padded = cols.div_ceil(COLUMN_BLOCK) * COLUMN_BLOCK;
            let groups = inner.div_ceil(4);
            rhs.packed = vec![0; groups * padded * 4];
            // Each task fills the packed rows of a few groups, reading every row of `w` once.
            rhs.packed.par_chunks_mut(PACK_GROUPS * padded * 4).enumerate().for_each(|(task, chunk)| {
                let first = task * PACK_GROUPS;
                for (j, row) in w.chunks_exact(inner).enumerate() {
                    for g in 0..chunk.len() / (padded * 4) {
                        let (l, at) = (4 * (first + g), (g * padded + j) * 4);
                        match row.get(l..l + 4) {
                            // A fixed-size copy: one 4-byte move, not a call.
                            Some(four) => chunk[at..at + 4].copy_from_slice(four),
                            None => chunk[at..at + inner - l].copy_from_slice(&row[l..]),
                        }
                    }
                }
            });
            rhs.offsets = w.par_chunks(inner).map(|row| 128 * row.iter().map(|&v| i32::from(v)).sum::<i32>()).collect();
            rhs.offsets.resize(padded, 0);
            rhs.padded_cols = padded;
        }
        rhs
    }

    /// `out[i, j - cols.start] = Σ_l x[i, l] w[j, l]` for every row `i` of `x` and `j` in `cols`
    /// (`cols.start` a multiple of [`COLUMN_BLOCK`]), on the calling thread.
    pub(crate) fn product(&self, x: &[i8], cols: Range<usize>, out: &mut [i32]) {
        assert!(cols.start.is_multiple_of(COLUMN_BLOCK) && cols.end <= self.cols, "column range {cols:?}");
        assert_eq!(out.len(), x.len() / self.inner * cols.len(), "output length");
        match self.path {
            Path::Portable => dots(x, self.w, self.inner, cols, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `with_path` requires a path the processor runs.
            Path::Avx2 => unsafe { dots_avx2(x, self.w, self.inner, cols, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above; the packed layout holds whole blocks from `cols.start`.
            Path::Vnni => unsafe { vnni::product(self, x, cols, out) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("only the portable path exists off x86_64"),
        }
    }

    /// [`Rhs::product`] over every column, split over rayon: by rows of `x` when there are enough
    /// of them, else by column blocks of each row.
    pub(crate) fn product_par(&self, x: &[i8], out: &mut [i32]) {
        let (inner, cols) = (self.inner, self.cols);
        let rows = x.len() / inner;
        let threads = rayon::current_num_threads();
        if rows >= 2 * threads {
            let rows_per_job = rows.div_ceil(4 * threads);
            out.par_chunks_mut(rows_per_job * cols)
                .zip(x.par_chunks(rows_per_job * inner))
                .for_each(|(out, x)| self.product(x, 0..cols, out));
        } else {
            let block = cols.div_ceil(threads).div_ceil(COLUMN_BLOCK) * COLUMN_BLOCK;
            for (x_row, out_row) in x.chunks_exact(inner).zip(out.chunks_exact_mut(cols)) {
                out_row.par_chunks_mut(block).enumerate().for_each(|(b, out)| {
                    let start = b * block;
                    self.product(x_row, start..start + out.len(), out);
                });
            }
        }
    }
}

/// The dot-product path: row `i` of `x` against rows `cols` of `w`.
#[inline(always)]
fn dots(x: &[i8], w: &[i8], inner: usize, cols: Range<usize>, out: &mut [i32]) {
    for (x_row, out_row) in x.chunks_exact(inner).zip(out.chunks_exact_mut(cols.len())) {
        for (o, w_row) in out_row.iter_mut().zip(w[cols.start * inner..cols.end * inner].chunks_exact(inner)) {
            *o = dot_i8(x_row, w_row);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dots_avx2(x: &[i8], w: &[i8], inner: usize, cols: Range<usize>, out: &mut [i32]) {
    dots(x, w, inner, cols, out)
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    //! `vpdpbusd` multiplies unsigned bytes by signed ones, four to an `i32` lane: each row of `x`
    //! goes as `x + 128` (its bytes xor 0x80), four inputs broadcast to every lane, against 16
    //! columns of packed `w` per register, and `128 Σ_l w[j, l]` comes off the sums. The lanes
    //! wrap on overflow, so the result is exact whenever the true sum fits an `i32`.

    use super::{Rhs, COLUMN_BLOCK};
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// Registers of 16 columns per block.
    const VECTORS: usize = COLUMN_BLOCK / 16;

    /// [`Rhs::product`] on the VNNI path.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn product(rhs: &Rhs, x: &[i8], cols: Range<usize>, out: &mut [i32]) {
        let rows = x.len() / rhs.inner;
        let mut i = 0;
        while i < rows {
            let block = (rows - i).min(4);
            let (x_block, out_block) = (&x[i * rhs.inner..(i + block) * rhs.inner], &mut out[i * cols.len()..(i + block) * cols.len()]);
            // SAFETY: the caller runs on a processor with the enabled features.
            unsafe {
                match block {
                    4 => tiles::<4>(rhs, x_block, cols.clone(), out_block),
                    3 => tiles::<3>(rhs, x_block, cols.clone(), out_block),
                    2 => tiles::<2>(rhs, x_block, cols.clone(), out_block),
                    _ => tiles::<1>(rhs, x_block, cols.clone(), out_block),
                }
            }
            i += block;
        }
    }

    /// Word `g` of a row (inputs `4g..4g + 4`, zeros past its end) as `x + 128`.
    #[inline(always)]
    fn word(row: &[i8], g: usize) -> i32 {
        let mut bytes = [0u8; 4];
        match row.get(4 * g..4 * g + 4) {
            Some(four) => bytes.iter_mut().zip(four).for_each(|(b, &v)| *b = v as u8),
            None => bytes.iter_mut().zip(&row[4 * g..]).for_each(|(b, &v)| *b = v as u8),
        }
        (u32::from_le_bytes(bytes) ^ 0x8080_8080) as i32
    }

    /// `R` rows of `x` against the columns `cols`, one block of [`COLUMN_BLOCK`] at a time.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tiles<const R: usize>(rhs: &Rhs, x: &[i8], cols: Range<usize>, out: &mut [i32]) {
        let (inner, padded, width) = (rhs.inner, rhs.padded_cols, cols.len());
        let groups = inner.div_ceil(4);
        let rows: [&[i8]; R] = std::array::from_fn(|r| &x[r * inner..(r + 1) * inner]);
        let packed = rhs.packed.as_ptr();
        for j in cols.clone().step_by(COLUMN_BLOCK) {
            let mut acc = [[_mm512_setzero_si512(); VECTORS]; R];
            for g in 0..groups {
                // SAFETY: `j` is a multiple of COLUMN_BLOCK below `padded`, so the block's
                // 4 x COLUMN_BLOCK bytes of group g lie inside the packed matrix.
                let mut w = [_mm512_setzero_si512(); VECTORS];
                for (v, w) in w.iter_mut().enumerate() {
                    *w = unsafe { _mm512_loadu_si512(packed.add((g * padded + j + 16 * v) * 4).cast()) };
                }
                for (acc_r, row) in acc.iter_mut().zip(&rows) {
                    let xb = _mm512_set1_epi32(word(row, g));
                    for (a, &w) in acc_r.iter_mut().zip(&w) {
                        *a = _mm512_dpbusd_epi32(*a, xb, w);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate() {
                for (v, &a) in acc_r.iter().enumerate() {
                    let first = j + 16 * v;
                    if first >= cols.end {
                        break;
                    }
                    let lanes = (cols.end - first).min(16);
                    let mask: __mmask16 = if lanes == 16 { 0xffff } else { (1u16 << lanes) - 1 };
                    // SAFETY: `offsets` holds `padded` values; the masked store writes the
                    // `lanes` outputs of row r from column `first` on, inside `out`.
                    unsafe {
                        let offset = _mm512_loadu_si512(rhs.offsets.as_ptr().add(first).cast());
                        let sum = _mm512_sub_epi32(a, offset);
                        _mm512_mask_storeu_epi32(out.as_mut_ptr().add(r * width + first - cols.start), mask, sum);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_pcg::Pcg64;

    /// Every path the processor runs gives the portable path's bits, on odd shapes (inner
    /// dimensions not multiples of 4 included, as the update's are), extreme values and column
    /// ranges of every kind.
    #[test]
    fn every_path_gives_the_portable_bits() {
        let mut rng = Pcg64::seed_from_u64(17);
        let paths: Vec<Path> = [Path::Avx2, Path::Vnni].into_iter().filter(|p| p.available()).collect();
        for (inner, cols, rows) in [(4, 4, 1), (12, 36, 5), (100, 100, 3), (7, 65, 9), (1, 130, 4), (256, 200, 2), (33, 64, 6)] {
            for fill in [0, 127, -127, 1] {
                let draw = |rng: &mut Pcg64, len: usize| -> Vec<i8> {
                    (0..len).map(|_| if fill == 1 { rng.random_range(-127..=127i32) as i8 } else { fill }).collect()
                };
                let (x, w) = (draw(&mut rng, rows * inner), draw(&mut rng, cols * inner));
                let ranges = [0..cols, 0..cols.min(3), if cols > COLUMN_BLOCK { COLUMN_BLOCK..cols } else { 0..cols }];
                for range in ranges {
                    let mut want = vec![0; rows * range.len()];
                    Rhs::with_path(&w, inner, Path::Portable).product(&x, range.clone(), &mut want);
                    for &path in &paths {
                        let mut got = vec![-1; rows * range.len()];
                        Rhs::with_path(&w, inner, path).product(&x, range.clone(), &mut got);
                        assert_eq!(got, want, "{path:?} inner {inner} cols {range:?} rows {rows} fill {fill}");
                    }
                }
                let mut par = vec![0; rows * cols];
                Rhs::new(&w, inner).product_par(&x, &mut par);
                let mut want = vec![0; rows * cols];
                Rhs::with_path(&w, inner, Path::Portable).product(&x, 0..cols, &mut want);
                assert_eq!(par, want);
            }
        }
    }
}
