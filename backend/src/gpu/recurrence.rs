//! The minGRU recurrence (recurrence.wgsl): one dispatch, one invocation per (sequence, channel),
//! each looping over time.

use super::buffer::GpuBuffer;
use super::context::{word, Storage};
use super::params::{RecurrenceParams, UniformBlock};
use super::shaders::Kernel;
use super::wgpu_backend::WgpuBackend;
use crate::ops::Recurrence;
use crate::Result;

impl WgpuBackend {
    /// `h` gets the scan of `gate` and `candidate` from `h0`, or from zeros when `h0` is `None`
    /// (the context's placeholder buffer is bound in its place and the flag tells the kernel not
    /// to read it).
    pub(crate) fn mingru_scan_kernel(
        &self,
        gate: &GpuBuffer,
        candidate: &GpuBuffer,
        h0: Option<&GpuBuffer>,
        shape: Recurrence,
        h: &mut GpuBuffer,
    ) -> Result<()> {
        let p = RecurrenceParams {
            sequences: word("sequences", shape.sequences)?,
            time: word("time steps", shape.time)?,
            width: word("width", shape.width)?,
            has_h0: u32::from(h0.is_some()),
        };
        let h0 = h0.map_or(&self.ctx.dummy, |b| &b.buffer);
        let storage = Storage::of([(1, &gate.buffer), (2, &candidate.buffer), (3, h0), (4, &h.buffer)]);
        self.dispatch(Kernel::MingruScan, shape.state_len(), UniformBlock::of(&p), storage)
    }
}
