//! The workers a run trains on when the command line names one backend.

use eggroll::run::{RunSpec, Workers};
use eggroll::session::Exchange;
use eggroll::EsConfig;
use eggroll_backend::select::SelectedBackend;

/// The workers of a run on `backend`: the backend alone, or on the CPU for a control task (one
/// small call per environment step), one worker per thread of the CPU backend, each evaluating
/// whole episodes of its share of the pairs on its own thread, so that a step pays for its
/// arithmetic rather than for a hand-off between threads at every layer (at most one worker per
/// pair of this process's members under `config`).
pub(crate) fn workers<X: Exchange<f32>>(
    backend: SelectedBackend, spec: &RunSpec, config: &EsConfig, exchange: X,
) -> Workers<SelectedBackend, X> {
    let pairs = exchange.members(config.population).map_or(0, |m| m.len() / 2);
    match backend {
        SelectedBackend::Cpu(cpu) if spec.task.is_control() && cpu.threads().min(pairs) > 1 => {
            let backends = (0..cpu.threads().min(pairs)).map(|_| SelectedBackend::Cpu(cpu.clone())).collect();
            Workers::Sharded { backends, exchange }
        }
        backend => Workers::One { backend, exchange },
    }
}
