//! The `eggroll` command: `train`, `info`, `bench`, `sample`, `generate` and `rl-compare`. Every failure prints
//! one `error: ...` line on stderr and exits non-zero.
//!
//! Modules: argument parsing ([`args`]), the training command ([`train`], one MPI rank in `mpi`),
//! its driver and hooks ([`drive`]) and their files ([`metrics`], [`plot`], [`checkpoint`]), adapter and model listing ([`info`]), text generation ([`sample`] from a trained `charlm`, [`generate`] from a Hugging Face model),
//! EGGROLL against OpenES on the control tasks ([`rl_compare`]).

mod args;
mod checkpoint;
mod crash;
mod drive;
mod error;
mod finetune;
mod generate;
mod info;
mod metrics;
#[cfg(feature = "mpi")]
mod mpi;
mod plot;
mod replicas;
mod rl_compare;
mod runtime_dir;
mod sample;
mod train;
mod tuning;
mod workers;

use args::{Cli, Command};
use clap::error::ErrorKind;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any thread exists: it sets an environment variable.
    runtime_dir::ensure();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        // Clap's own errors run over several lines (usage, hints): keep the first.
        Err(e) => {
            let rendered = e.render().to_string();
            let line = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
            eprintln!("{}", if line.starts_with("error:") { line.to_string() } else { format!("error: {line}") });
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Command::Train(args) => train::train(args),
        Command::Info(args) => info::run(args),
        Command::Generate(args) => generate::generate(args),
        Command::Finetune(args) => finetune::finetune(args),
        Command::Bench(args) => eggroll_bench::run(&args.options()).map_err(error::CliError::new),
        Command::Sample(args) => sample::sample(args),
        Command::RlCompare(args) => rl_compare::rl_compare(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
