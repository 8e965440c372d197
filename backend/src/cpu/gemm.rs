//! The CPU GEMM: row-major views over `matrixmultiply::sgemm` (SIMD kernels chosen at run time),
//! parallelised by rayon over row blocks so that the whole backend shares one thread pool (two
//! pools spinning against each other cost more than the low-rank work itself).

use rayon::prelude::*;

/// A strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// `data` as a row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "view larger than its data");
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// `data` (row-major `cols x rows`) seen as its transpose, `rows x cols`.
    pub fn transpose_of(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "view larger than its data");
        Self { data, rows, cols, row_stride: 1, col_stride: rows }
    }

    /// Rows `start .. start + count` of the view.
    fn row_block(&self, start: usize, count: usize) -> View<'a> {
        assert!(start + count <= self.rows);
        let offset = if count == 0 { 0 } else { start * self.row_stride };
        View { data: &self.data[offset..], rows: count, ..*self }
    }
}

/// `c = a · b + beta c` on the calling thread, `c` row-major `a.rows x b.cols`.
pub(crate) fn gemm_serial(a: View, b: View, beta: f32, c: &mut [f32]) {
    assert_eq!(a.cols, b.rows, "gemm inner dimensions");
    assert!(c.len() >= a.rows * b.cols, "gemm output too small");
    if a.rows == 0 || b.cols == 0 {
        return;
    }
    // SAFETY: every index the strides reach lies inside the slices: the constructors check that
    // a view's data spans its rows x cols, row blocks stay inside, and `c` spans a.rows x b.cols.
    unsafe {
        matrixmultiply::sgemm(
            a.rows,
            a.cols,
            b.cols,
            1.0,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c.as_mut_ptr(),
            b.cols as isize,
            1,
        );
    }
}

/// `c = a · b + beta c`, rows of `a` split across rayon's threads, or on the calling thread when
/// the product is small (`super::tasks`).
pub(crate) fn gemm(a: View, b: View, beta: f32, c: &mut [f32]) {
    if super::tasks(a.rows * a.cols * b.cols, a.rows) == 1 {
        return gemm_serial(a, b, beta, c);
    }
    let block = a.rows.div_ceil(rayon::current_num_threads()).max(16);
    let width = b.cols;
    c[..a.rows * width].par_chunks_mut(block * width).enumerate().for_each(|(i, c_block)| {
        let rows = c_block.len() / width;
        gemm_serial(a.row_block(i * block, rows), b, beta, c_block);
    });
}

/// `c = a · wᵀ` by dot products (`a`: row-major `rows x k`, `w`: row-major `cols x k`, k > 0, `c`:
/// row-major `rows x cols`), each row of `w` read once for every row of `a`. For a few rows
/// this beats [`gemm_serial`], which packs all of `w` and pads the rows to its kernel's height.
pub(crate) fn matvec_rows(a: &[f32], rows: usize, w: &[f32], k: usize, c: &mut [f32]) {
    assert!(k > 0 && w.len().is_multiple_of(k), "matvec: w is not a whole number of rows of {k}");
    let cols = w.len() / k;
    assert!(a.len() >= rows * k && c.len() >= rows * cols, "matvec shapes");
    for (j, w_row) in w.chunks_exact(k).enumerate() {
        for (t, a_row) in a.chunks_exact(k).take(rows).enumerate() {
            c[t * cols + j] = dot(a_row, w_row);
        }
    }
}

/// `a · b` with 16 partial sums, so that the compiler can keep them in vector registers.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let main = a.len() / LANES * LANES;
    for (x, y) in a[..main].chunks_exact(LANES).zip(b[..main].chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = a[main..].iter().zip(&b[main..]).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}
