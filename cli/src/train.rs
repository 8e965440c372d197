//! `eggroll train`: builds the run the command line asks for
//! ([`RunSpec`](eggroll::run::RunSpec)) on the backend or adapters it names, then drives it
//! ([`drive::run`]); under `mpirun`, one rank of a job (`crate::mpi`).

use crate::args::TrainArgs;
use crate::drive::{self, OnEpoch};
use crate::error::Result;
use eggroll::report::Summary;
use eggroll::run::Workers;
use eggroll::session::Local;
use eggroll_backend::gpu::{WgpuBackend, WgpuOptions};
use eggroll_backend::select::{select_backend, SelectedBackend};

/// `eggroll train`: trains as [`run`] does (under mpirun, one rank of a job) and prints the
/// summary.
pub fn train(args: &TrainArgs) -> Result<()> {
    // Under mpirun, one rank of a job (src/mpi.rs); a plain launch goes on below.
    #[cfg(feature = "mpi")]
    if crate::mpi::launched() {
        return crate::mpi::train(args);
    }
    drive::report(&run(args, &mut |_| Ok(()))?, args.json);
    Ok(())
}

/// Builds the configuration and the task, opens the backend `--backend` asks for (or the
/// adapters of `--devices`), trains in this process, calling `on_epoch` after each epoch, and
/// returns the summary.
pub fn run(args: &TrainArgs, on_epoch: &mut OnEpoch) -> Result<Summary> {
    let spec = args.spec()?;
    let devices = args.devices()?;
    let config = spec.config(|defaults| args.config.overlay(defaults))?;
    let workers = match devices {
        Some(devices) => Workers::Sharded { backends: open_devices(&devices)?, exchange: Local },
        None => crate::workers::workers(select_backend(args.backend(), &WgpuOptions::default())?, &spec, &config, Local),
    };
    drive::run(spec.build(config, workers)?, args, on_epoch)
}

/// The wgpu backends on the adapters `indices` (as `eggroll info` numbers them), in order.
pub(crate) fn open_devices(indices: &[usize]) -> Result<Vec<SelectedBackend>> {
    let open = |&index: &usize| {
        let backend = WgpuBackend::new_blocking(&WgpuOptions { adapter_index: Some(index), ..WgpuOptions::default() })?;
        Ok(SelectedBackend::Wgpu(Box::new(backend)))
    };
    indices.iter().map(open).collect()
}
