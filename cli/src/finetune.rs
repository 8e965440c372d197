//! `eggroll finetune`: a Hugging Face model folder fine-tuned by EGGROLL on a task's verifiable
//! rewards (eggroll-llm's `FineTuning`, `finetune` and tasks), scored by the task's verifier or
//! an external `--reward-cmd`, evaluated on held-out problems before, every `--eval-every`
//! epochs and after, checkpointed and resumed exactly, and written back as a model folder with
//! `--out`. This module opens the process's trainers (one, or one per adapter of `--devices`;
//! one rank of a job under `mpirun`, `crate::mpi`); `crate::tuning` runs them.

use crate::args::FinetuneArgs;
use crate::error::{CliError, Result};
use crate::replicas::ThreadExchange;
use crate::tuning::{report, Replicas, Setup};
pub use crate::tuning::{Embedded, OnEpoch, RewardFn};
use eggroll::session::Local;
use eggroll::shards::share_pairs;
use eggroll_backend::gpu::WgpuOptions;
use eggroll_backend::select::select_backend;

/// `eggroll finetune`: fine-tunes as [`run`] does (under `mpirun`, one rank of a job) and prints
/// the summary.
pub fn finetune(args: &FinetuneArgs) -> Result<()> {
    #[cfg(feature = "mpi")]
    if crate::mpi::launched() {
        return crate::mpi::finetune(args);
    }
    report(args, &run(args, None, &mut |_| Ok(()))?);
    Ok(())
}

/// Loads the model into a trainer (one per adapter with `--devices`), trains `--epochs` epochs
/// (from the checkpoint on with `--resume`) on the task, or on the `embedded` problems and reward
/// function, calling `on_epoch` after each, and returns the summary.
pub fn run(args: &FinetuneArgs, embedded: Option<Embedded>, on_epoch: &mut OnEpoch) -> Result<serde_json::Value> {
    let setup = Setup::load(args, embedded)?;
    let replicas = match args.devices()? {
        Some(devices) => {
            let backends = crate::train::open_devices(&devices)?;
            let shares = share_pairs(setup.config.population, backends.len()).map_err(|e| CliError::new(format!("{e} (--devices)")))?;
            let tunings = backends.into_iter().zip(shares).map(|(b, share)| setup.replica(b, share.len())).collect::<Result<Vec<_>>>()?;
            let ends = ThreadExchange::group(tunings.len());
            Replicas::Threads(tunings.into_iter().zip(ends).collect())
        }
        None => {
            let backend = select_backend(args.backend(), &WgpuOptions::default())?;
            Replicas::One(Box::new(setup.replica(backend, setup.config.population)?), &mut Local)
        }
    };
    let summary = setup.train(args, replicas, true, on_epoch)?;
    Ok(summary.expect("the only process leads"))
}
