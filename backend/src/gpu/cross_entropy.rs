//! The log-likelihood of each row's target class under a softmax (cross_entropy.wgsl): the
//! fitness of a language model, reduced on the device so that the logits are never read back.

use super::buffer::GpuBuffer;
use super::context::{word, Dispatch, ScratchUse, Storage};
use super::params::{LogSoftmaxParams, UniformBlock};
use super::shaders::Kernel;
use super::wgpu_backend::WgpuBackend;
use crate::Result;

impl WgpuBackend {
    /// `out[row] = log_softmax(logits[row])[targets[row]]`, one workgroup per row; the targets
    /// are uploaded into a pooled scratch buffer.
    pub(crate) fn log_softmax_at_kernel(&self, logits: &GpuBuffer, targets: &[u32], classes: usize, out: &mut GpuBuffer) -> Result<()> {
        let rows = targets.len();
        let params = LogSoftmaxParams { rows: word("rows", rows)?, classes: word("classes", classes)?, ..LogSoftmaxParams::default() };
        let t = self.ctx.scratch(ScratchUse::Targets, rows)?;
        self.ctx.queue.write_buffer(t.buffer(), 0, bytemuck::cast_slice(targets));
        self.ctx.run(&[Dispatch {
            kernel: Kernel::LogSoftmaxAt,
            params: UniformBlock::of(&params),
            storage: Storage::of([(1, &logits.buffer), (2, t.buffer()), (3, &out.buffer)]),
            groups: self.ctx.groups_grid("log_softmax_at", rows as u64)?,
        }])
    }
}
