//! The CPU GEMM: row-major wrappers over `matrixmultiply::sgemm` (multithreaded, SIMD).

/// A row-major matrix view: `rows x cols` with row stride `ld`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    /// Whether the stored matrix is the transpose of the view (`data` holds `cols x rows`).
    pub transposed: bool,
}

impl<'a> View<'a> {
    /// `data` as a row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        debug_assert!(data.len() >= rows * cols);
        Self { data, rows, cols, transposed: false }
    }
    /// `data` (row-major `cols x rows`) seen as its transpose, `rows x cols`.
    pub fn transpose_of(data: &'a [f32], rows: usize, cols: usize) -> Self {
        debug_assert!(data.len() >= rows * cols);
        Self { data, rows, cols, transposed: true }
    }
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (1, self.rows as isize)
        } else {
            (self.cols as isize, 1)
        }
    }
}

/// `c = a · b + beta c` with `c` row-major `a.rows x b.cols`.
pub(crate) fn gemm(a: View, b: View, beta: f32, c: &mut [f32]) {
    assert_eq!(a.cols, b.rows, "gemm inner dimensions");
    assert!(c.len() >= a.rows * b.cols, "gemm output too small");
    if a.rows == 0 || b.cols == 0 {
        return;
    }
    let (rsa, csa) = a.strides();
    let (rsb, csb) = b.strides();
    // SAFETY: the asserts above guarantee every index the strides reach lies inside the slices:
    // `a` spans rows x cols, `b` spans rows x cols, `c` spans a.rows x b.cols, row-major.
    unsafe {
        matrixmultiply::sgemm(
            a.rows,
            a.cols,
            b.cols,
            1.0,
            a.data.as_ptr(),
            rsa,
            csa,
            b.data.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            b.cols as isize,
            1,
        );
    }
}
