//! The command line ([`Cli`]) and how `train` builds its [`EsConfig`]: task defaults, then the
//! `--config` TOML file, then the flags.

use super::{CliError, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use eggroll::config::{EsConfig, OptimizerKind};
use eggroll_backend::select::BackendChoice;
use std::path::{Path, PathBuf};

/// EGGROLL: evolution strategies with low-rank perturbations, on the CPU or any WebGPU adapter.
#[derive(Debug, Parser)]
#[command(name = "eggroll", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a task (regression by default) and report its losses.
    Train(Box<TrainArgs>),
    /// List the WebGPU adapters and the CPU backend, and which one `--backend auto` picks.
    Info,
    /// Benchmark the EGGROLL forward against plain inference and naive ES (Markdown table on stdout).
    Bench(Box<eggroll_bench::BenchArgs>),
}

/// Options of `eggroll train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Task: regression, constant, digits, cartpole or pendulum.
    #[arg(long, default_value = "regression")]
    pub task: String,
    /// Backend: auto (a hardware GPU if there is one, else the CPU), cpu, or wgpu (WGPU_BACKEND and
    /// WGPU_ADAPTER_NAME select the adapter).
    #[arg(long, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// EsConfig-shaped TOML file (partial allowed); flags override it, it overrides the task's defaults.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Number of epochs.
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Population size (even).
    #[arg(long, allow_negative_numbers = true)]
    pub population: Option<usize>,
    /// Rank of the perturbations.
    #[arg(long, allow_negative_numbers = true)]
    pub rank: Option<usize>,
    /// Noise scale σ.
    #[arg(long, allow_negative_numbers = true)]
    pub sigma: Option<f32>,
    /// Learning rate.
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Experiment seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fitness normalisation group size (0 = whole population).
    #[arg(long)]
    pub group_size: Option<usize>,
    /// New noise every this many epochs (0 = never).
    #[arg(long)]
    pub noise_reuse: Option<u32>,
    /// Optimiser.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// Evaluate the held-out metric every K epochs (and after the last one).
    #[arg(long, value_name = "K", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub eval_every: u32,
    /// Write one JSON line per epoch to FILE.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Draw train and test loss against epoch to FILE.png or FILE.svg.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print one final JSON object on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Save checkpoints (parameters, optimiser moments, config) into DIR.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Save a checkpoint every K epochs (and after the last one).
    #[arg(long, value_name = "K", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub checkpoint_every: u32,
    /// Continue from the latest checkpoint in DIR (and keep checkpointing there unless
    /// --checkpoint says otherwise); the rest of the command line must match the original run.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

/// `--optimizer` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// Plain ascent.
    Sgd,
    /// Adam.
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
}

impl From<OptimizerArg> for OptimizerKind {
    fn from(o: OptimizerArg) -> Self {
        match o {
            OptimizerArg::Sgd => OptimizerKind::Sgd,
            OptimizerArg::Adam => OptimizerKind::Adam,
            OptimizerArg::Adamw => OptimizerKind::AdamW,
        }
    }
}

impl TrainArgs {
    /// The run's configuration: `defaults` < `--config` file < flags, validated.
    pub fn config(&self, defaults: EsConfig) -> Result<EsConfig> {
        let mut c = match &self.config {
            Some(path) => overlay_file(defaults, path)?,
            None => defaults,
        };
        macro_rules! set {
            ($($field:ident),*) => {$( if let Some(v) = self.$field { c.$field = v.into(); } )*};
        }
        set!(epochs, population, rank, sigma, lr, seed, group_size, noise_reuse, optimizer);
        c.validate()?;
        Ok(c)
    }
}

/// `defaults` with the keys of the TOML file at `path` replaced (unknown keys are refused).
fn overlay_file(defaults: EsConfig, path: &Path) -> Result<EsConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::file(path, "cannot read config file", e))?;
    let bad = |e: &dyn std::fmt::Display| CliError::file(path, "invalid config file", e);
    // Parsed alone first for errors located in the file (wrong types, unknown keys).
    toml::from_str::<EsConfig>(&text).map_err(|e| bad(&toml_message(&text, &e)))?;
    let file: toml::Table = toml::from_str(&text).map_err(|e| bad(&toml_message(&text, &e)))?;
    let mut table = toml::Table::try_from(&defaults).map_err(|e| bad(&e))?;
    table.extend(file);
    table.try_into().map_err(|e: toml::de::Error| bad(&e.message()))
}

/// A TOML parse error as `line L: message`.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    match e.span().and_then(|span| text.get(..span.start)) {
        Some(before) => format!("line {}: {}", before.matches('\n').count() + 1, e.message()),
        None => e.message().to_string(),
    }
}
