//! The commands of `eggroll` (`train`, `info`, `bench`, `sample`, `generate`, `finetune` and
//! `rl-compare`) as a library: the binary (`src/main.rs`) parses the command line into
//! [`args::Cli`] and calls [`run`]; a program that embeds the commands (the Python package)
//! builds the same arguments and calls [`train::run`] or [`finetune::run`], which return the
//! summary instead of printing it. Every failure is one [`error::CliError`].
//!
//! Modules: argument parsing ([`args`]), the training command ([`train`], one MPI rank in `mpi`),
//! its driver and hooks ([`drive`]) and their files ([`metrics`], `plot`, [`checkpoint`]),
//! adapter and model listing ([`info`]), text generation ([`sample`] from a trained `charlm`,
//! [`generate`] from a Hugging Face model), fine-tuning ([`finetune`], run by `tuning`), EGGROLL
//! against OpenES on the control tasks ([`rl_compare`]).

pub mod allocator;
pub mod args;
pub mod checkpoint;
mod crash;
pub mod drive;
pub mod error;
pub mod finetune;
pub mod generate;
pub mod info;
pub mod metrics;
#[cfg(feature = "mpi")]
mod mpi;
mod plot;
mod replicas;
pub mod rl_compare;
pub mod runtime_dir;
pub mod sample;
pub mod train;
mod tuning;
mod workers;

use args::Command;
use error::{CliError, Result};

/// Runs `command` as `eggroll` does, printing its output on stdout.
pub fn run(command: &Command) -> Result<()> {
    match command {
        Command::Train(args) => train::train(args),
        Command::Info(args) => info::run(args),
        Command::Generate(args) => generate::generate(args),
        Command::Finetune(args) => finetune::finetune(args),
        Command::Bench(args) => eggroll_bench::run(&args.options()).map_err(CliError::new),
        Command::Sample(args) => sample::sample(args),
        Command::RlCompare(args) => rl_compare::rl_compare(args),
    }
}
