//! The command line ([`Cli`]), how `train` builds its [`EsConfig`] (task defaults, then the
//! `--config` TOML file, then the flags) and how `bench` maps its flags onto [`BenchOptions`].

use crate::error::{CliError, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use eggroll::config::{EsConfig, OptimizerKind};
use eggroll_backend::select::BackendChoice;
use eggroll_backend::DType;
use eggroll_bench::{BenchOptions, MeasureOptions};
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
    Bench(Box<BenchArgs>),
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

/// Options of `eggroll bench`.
#[derive(Clone, Debug, Args)]
pub struct BenchArgs {
    /// Backend: auto (a hardware GPU if there is one, else the CPU), cpu or wgpu (WGPU_BACKEND and
    /// WGPU_ADAPTER_NAME select the adapter).
    #[arg(long, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Small sweep that finishes in under a minute on the CPU and on software adapters:
    /// m=n=128, N in {64,256}, rank in {1,4}, rows in {1,16}.
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// Sweep for a real GPU: m=n in {1024,4096,8192}, N in {64,256,1024}, rank in {1,4,16}, rows in
    /// {1,16}; points beyond the adapter's limits are skipped.
    #[arg(long)]
    pub full: bool,
    /// Output features of W (one point instead of the sweep; default 1024).
    #[arg(long)]
    pub m: Option<usize>,
    /// Input features of W (one point instead of the sweep; default 1024).
    #[arg(long)]
    pub n: Option<usize>,
    /// Population size N, even (one point instead of the sweep; default 256).
    #[arg(long)]
    pub population: Option<usize>,
    /// Rank of the perturbations (one point instead of the sweep; default 1).
    #[arg(long)]
    pub rank: Option<usize>,
    /// Input rows per member (one point instead of the sweep; default 1).
    #[arg(long)]
    pub rows: Option<usize>,
    /// Storage types of the forwards' inputs and weights to sweep, comma-separated: f32, f16
    /// (f16 needs the adapter's `shader-f16`; points it cannot run are skipped with the reason).
    /// Default: f32, and f16 too with --full.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub dtype: Option<Vec<DType>>,
    /// Timed samples per operation, after warm-up runs (default 5, 3 with --quick).
    #[arg(long, value_name = "K")]
    pub repeats: Option<usize>,
    /// Skip naive ES at a point when one call is estimated to take longer than SECS.
    #[arg(long, value_name = "SECS", default_value_t = MeasureOptions::default().naive_limit_s)]
    pub naive_limit: f64,
    /// Let the rule pick the wgpu GEMM configuration instead of autotuning it.
    #[arg(long)]
    pub no_autotune: bool,
    /// Write the results as a JSON array (one object per point) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw fraction of inference and speedup vs naive against N to FILE.png or FILE.svg.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Write the Markdown table (with the adapter line) to FILE as well as stdout.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Start no new point after SECS seconds: the points left are reported as skipped, and the
    /// table, JSON and plot are written as usual (a point already running finishes).
    #[arg(long, value_name = "SECS")]
    pub time_limit: Option<f64>,
    /// Measure nothing: read the results of earlier runs from these `--json` files (e.g. one per
    /// GPU, comma-separated) and print, write and plot them together, with the adapter in a
    /// column of the table and in the plot's legend when there are several.
    #[arg(long, value_name = "FILES", value_delimiter = ',', num_args = 1..,
          conflicts_with_all = ["backend", "quick", "full", "m", "n", "population", "rank", "rows", "dtype", "repeats", "naive_limit", "no_autotune", "time_limit"])]
    pub from: Option<Vec<PathBuf>>,
}

impl BenchArgs {
    /// The benchmark runner's options, flag for flag.
    pub fn options(&self) -> BenchOptions {
        let Self {
            backend,
            quick,
            full,
            m,
            n,
            population,
            rank,
            rows,
            dtype,
            repeats,
            naive_limit,
            no_autotune,
            json,
            plot,
            markdown,
            time_limit,
            from,
        } = self.clone();
        BenchOptions {
            backend,
            quick,
            full,
            m,
            n,
            population,
            rank,
            rows,
            dtype,
            repeats,
            naive_limit,
            no_autotune,
            json,
            plot,
            markdown,
            time_limit,
            from,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `eggroll bench <line>` parsed, or clap's refusal.
    fn bench(line: &[&str]) -> std::result::Result<BenchOptions, clap::Error> {
        let cli = Cli::try_parse_from(["eggroll", "bench"].iter().chain(line))?;
        match cli.command {
            Command::Bench(args) => Ok(args.options()),
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn bench_flags_map_onto_the_runner_options() {
        assert_eq!(bench(&[]).unwrap(), BenchOptions::default());
        let line = [
            "--backend=cpu",
            "--quick",
            "--m=1",
            "--n=2",
            "--population=4",
            "--rank=3",
            "--rows=5",
            "--dtype=f32,f16",
            "--repeats=6",
            "--naive-limit=0.5",
            "--no-autotune",
            "--json=a.json",
            "--plot=p.svg",
            "--markdown=t.md",
            "--time-limit=9",
        ];
        let expected = BenchOptions {
            backend: BackendChoice::Cpu,
            quick: true,
            full: false,
            m: Some(1),
            n: Some(2),
            population: Some(4),
            rank: Some(3),
            rows: Some(5),
            dtype: Some(DType::ALL.to_vec()),
            repeats: Some(6),
            naive_limit: 0.5,
            no_autotune: true,
            json: Some("a.json".into()),
            plot: Some("p.svg".into()),
            markdown: Some("t.md".into()),
            time_limit: Some(9.0),
            from: None,
        };
        assert_eq!(bench(&line).unwrap(), expected);
        let from = bench(&["--from", "a.json,b.json", "--json", "all.json"]).unwrap();
        assert_eq!(from.from, Some(vec!["a.json".into(), "b.json".into()]));
        assert_eq!(from.json, Some("all.json".into()));
        assert!(bench(&["--full"]).unwrap().full);
    }

    #[test]
    fn clap_refuses_what_it_can() {
        for line in [
            &["--backend", "tpu"][..],
            &["--quick", "--full"],
            &["--dtype", "bf16"],
            &["--from", "a.json", "--quick"],
            &["--from", "a.json", "--backend", "cpu"],
        ] {
            assert!(bench(line).is_err(), "{line:?} parsed");
        }
    }
}
