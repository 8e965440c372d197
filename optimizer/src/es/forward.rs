//! The trainer's forward pass: the model's layers on the backend through [`Forward`], the whole
//! population at once or the mean model, in buffers reused across calls.

use super::Slot;
use crate::error::Result;
use crate::forward::{Arena, Forward, Mode};
use crate::model::Model;
use eggroll_backend::Backend;

/// Enqueues `model` with parameters `slots` on `x`; returns the device buffer that will hold the
/// output (members x rows x outputs, member-major) for the caller to read back, or with
/// `targets` (a class per output row) the log-likelihood of each row's target under the
/// softmax of its outputs ([`Forward::log_likelihood`], members x rows).
pub(crate) fn run<'a, B: Backend, M: Model>(
    backend: &'a B,
    model: &M,
    slots: &'a [Slot<B>],
    cache: &'a mut Vec<Arena<B>>,
    mode: Mode,
    x: &[f32],
    targets: Option<&[u32]>,
) -> Result<&'a B::Buffer> {
    let params = slots.iter().map(|s| (&s.spec, &s.value)).collect();
    let (mut f, input) = Forward::start(backend, params, cache, mode, x, model.inputs())?;
    let output = model.forward(&mut f, input)?;
    match targets {
        Some(targets) => {
            f.check_output(output, model.outputs())?;
            let scores = f.log_likelihood(output, targets)?;
            f.finish(scores, 1)
        }
        None => f.finish(output, model.outputs()),
    }
}
