//! The minGRU recurrence on the CPU: rayon over whole sequences, a plain loop over time within
//! each.

use crate::ops::Recurrence;
use rayon::prelude::*;

/// Fewest values a rayon job scans (whole sequences, at least one), so that short sequences are
/// not one job each.
const MIN_JOB_VALUES: usize = 4096;

/// `1 / (1 + exp(-v))` in f32.
fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// The scan of one sequence: `gate`, `candidate` and `h` hold its `time x width` values, `h0` its
/// state before step 0 (zeros when `None`).
fn scan_sequence(gate: &[f32], candidate: &[f32], h0: Option<&[f32]>, width: usize, h: &mut [f32]) {
    for t in 0..h.len() / width {
        let (done, rest) = h.split_at_mut(t * width);
        let prev = if t == 0 { h0 } else { Some(&done[(t - 1) * width..]) };
        let step = t * width..(t + 1) * width;
        let (g, c) = (&gate[step.clone()], &candidate[step]);
        for (j, out) in rest[..width].iter_mut().enumerate() {
            let z = sigmoid(g[j]);
            let p = prev.map_or(0.0, |p| p[j]);
            *out = (1.0 - z) * p + z * c[j];
        }
    }
}

/// [`crate::Backend::mingru_scan`] on host slices of the lengths `shape` implies.
pub(super) fn mingru_scan(gate: &[f32], candidate: &[f32], h0: Option<&[f32]>, shape: Recurrence, h: &mut [f32]) {
    let (width, span) = (shape.width, shape.time * shape.width);
    h.par_chunks_mut(span).with_min_len(MIN_JOB_VALUES.div_ceil(span)).enumerate().for_each(|(s, h_seq)| {
        let values = s * span..(s + 1) * span;
        let h0_seq = h0.map(|h0| &h0[s * width..(s + 1) * width]);
        scan_sequence(&gate[values.clone()], &candidate[values], h0_seq, width, h_seq);
    });
}
