//! The `eggroll` command: `train`, `info`, `bench`, `sample`, `generate`, `finetune` and
//! `rl-compare` (the library `eggroll_cli`). Every failure prints one `error: ...` line on stderr
//! and exits non-zero.

use clap::error::ErrorKind;
use clap::Parser;
use eggroll_cli::args::Cli;
use eggroll_cli::{allocator, runtime_dir};
use std::process::ExitCode;

/// The stack of each of rayon's threads, which run the command: Linux's default for a main thread.
const STACK_BYTES: usize = 8 << 20;

fn main() -> ExitCode {
    // Before any thread exists: it sets an environment variable.
    runtime_dir::ensure();
    allocator::keep_freed_blocks();
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
    // The command runs on one of rayon's threads, so that each parallel region of the CPU backend
    // starts inside the pool: the calling thread takes its share of the work, where a thread
    // outside the pool would hand all of it over, sleep, and be woken again at every region.
    // Their stacks are as large as the main thread's.
    let pool = rayon::ThreadPoolBuilder::new().stack_size(STACK_BYTES).thread_name(|i| format!("worker {i}"));
    if let Err(e) = pool.build_global() {
        eprintln!("error: cannot start the worker threads: {e}");
        return ExitCode::FAILURE;
    }
    let result = rayon::scope(|_| eggroll_cli::run(&cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
