//! The EGGROLL benchmark runner behind `eggroll bench`, and the criterion benches of the kernels
//! (`bench/benches/kernels.rs`).
//!
//! # What a point measures
//!
//! A point is a weight `W` (`m x n`), a population of `N` members (antithetic pairs) with `rows`
//! input rows each (their own rows: `N x rows x n`, member-major) and rank-`r` perturbations.
//! Four operations are timed on it, each after untimed warm-up calls (at least one, for 100 ms):
//!
//! 1. **inference**: plain batched `Backend::matmul` of all members' rows (`N·rows x n` times the
//!    shared `Wᵀ`, no noise): the speed limit of any population forward;
//! 2. **EGGROLL** forward: `Backend::perturbed_matmul`, the noise regenerated on the device at each
//!    call (a new noise epoch per call), or with `--calls K` once per episode of K calls (see
//!    below);
//! 3. **naive ES** (OpenAI-style ES, the paper's baseline): `Backend::full_rank_matmul`,
//!    every member's `W + s_i σ E_i` with full-rank Gaussian noise `E_i` (m x n draws per pair,
//!    regenerated at each call) materialised and multiplied: one matmul per member. Its cost does
//!    not depend on the rank, so a sweep measures it once per `(m, n, N, rows, dtype)` (at the
//!    first rank) and reports that measurement, or its skip, at every rank;
//! 4. **update**: `Backend::lowrank_update`, the ES gradient estimate (a GEMM of inner dimension
//!    `(N/2)·r`: the two members of a pair share their noise).
//!
//! Times are per call: the median of `--repeats` timed samples with their min and max, a sample
//! being as many back-to-back calls as make it last 20 ms or more (one call when a call is that
//! long; at most 1000). GFLOP/s count the base matmul, `2·m·n·N·rows` flops, for inference,
//! EGGROLL and naive alike (update GFLOP/s count `2·m·n·(N/2)·r`).
//! `fraction_of_inference = inference / EGGROLL` (1: the perturbations are free),
//! `speedup_vs_naive = naive / EGGROLL`.
//!
//! Episodes (`--calls K`, JSON `calls`, default 1): a training episode runs many forwards on one
//! noise epoch ([`eggroll_backend::rng::noise_epoch`]). With K > 1, inference is timed as K
//! back-to-back matmuls and EGGROLL as K back-to-back perturbed matmuls on the same stream and
//! noise epoch, an episode; every episode (each sample, and each repetition inside a sample) has
//! a new noise epoch, so its first call draws the factors and that fill counts in `eggroll_ms`.
//! The backend's noise cache ([`Kernels::set_noise_cache`]) is on for these two measurements,
//! with a budget that holds one episode's factors, so the episode's later calls read them (JSON
//! `noise_cache: "on"`; `"off"` at K = 1, each call its own noise epoch as above: with nothing to
//! read the factors again, keeping them would only cost a pass). Samples count
//! episodes, warm-up and calibration too, and the times stay per call (an episode's time over K),
//! so `fraction_of_inference` compares with K = 1. `calls` applies to inference and EGGROLL
//! only: naive ES and the update are measured as at K = 1, with the cache off. int8 points time
//! `int_matmul` and `int_perturbed_matmul` in episodes alike. The table gains a `calls (noise
//! cache)` column when a result has K > 1, and the plot a line per K.
//!
//! Timing: on wgpu, GPU timestamp queries ([`WgpuBackend::time_gpu`]) when the adapter has
//! `TIMESTAMP_QUERY`, else wall time between two device synchronisations; on the CPU, wall time.
//! The wgpu GEMM is autotuned (`WgpuOptions::autotune`) during the warm-up calls, never timed.
//!
//! Storage type (`--dtype`, JSON `dtype`): in `f16` points the inputs and weights of inference, of
//! the EGGROLL forward and of naive ES (whose materialised `W + E_i` is f16 too) are stored as f16
//! (loads widen to f32, accumulation and the output are f32), halving their memory traffic; the
//! update stays f32 (its output is the f32 gradient).
//!
//! In `int8` points ([`Precision::Int8`]) the four operations are integer EGGROLL's
//! ([`eggroll_backend::int8::IntBackend`], docs/int8.md), on int8 inputs, weights and outputs:
//! inference `int_matmul`, the EGGROLL forward `int_perturbed_matmul` (noise shift 4, a new noise
//! epoch per call), naive ES `int_naive_matmul` (full-rank integer noise materialised per
//! member) and the update `int_lowrank_update` (fitness ±1 per pair, the threshold of
//! `int8::threshold(0.5, N/2, r)`). Their rates count the same operations as integer operations
//! per second, in the `*_gops` fields (the `*_gflops` ones stay empty), shown as `GOP/s` in the
//! table. int8 needs `m` and `n` multiples of 4: other points are skipped with the reason.
//!
//! Skips (reported as `null` in JSON and `skipped: ...` in the table, the sweep goes on):
//! * a point whose input, output or weight buffer exceeds the adapter's `max_buffer_size` or
//!   `max_storage_buffer_binding_size`, or whose kernels return `Error::Limit` or run out of
//!   device memory;
//! * an f16 point on the CPU backend or on an adapter without `shader-f16` (`Error::Unsupported`);
//! * naive ES when one call is estimated to take longer than `--naive-limit` seconds (default 5):
//!   the estimate times naive ES on the first `min(N, 8)` members and scales it by `N / min(N, 8)`
//!   (naive cost is linear in N; a small probe under-uses a GPU, so the estimate errs long).
//!
//! # Usage
//!
//! ```text
//! eggroll bench                          # default sweep, suits the CPU: m=n=1024,
//!                                        #   N in {64,256,1024}, rank in {1,4}, rows in {1,16}
//! eggroll bench --quick                  # m=n=128, N in {64,256}, rank {1,4}, rows {1,16}:
//!                                        #   under a minute on the CPU and on lavapipe
//! eggroll bench --full --backend wgpu    # for a real GPU: m=n in {1024,4096,8192},
//!                                        #   N in {64,256,1024}, rank {1,4,16}, rows {1,16},
//!                                        #   dtype f32, f16 and int8
//! eggroll bench --backend cpu --m 1024 --n 1024 --population 256 --rank 4 --rows 16
//!                                        # one point (missing ones: m=n=1024, N=256, rank 1, rows 1)
//! eggroll bench --backend wgpu --m 4096 --n 4096 --population 1024 --dtype f32,f16
//!                                        # one point in both float storage types
//! eggroll bench --backend cpu --dtype f32,int8 --rank 1
//!                                        # one point in f32 and in integer EGGROLL
//! eggroll bench --quick --json out.json --plot out.png --markdown out.md
//! eggroll bench --backend cpu --m 256 --n 256 --population 256 --rank 4 --calls 100
//!                                        # episodes of 100 forwards sharing one noise epoch
//! ```
//!
//! `--backend auto|cpu|wgpu` selects as everywhere else ([`eggroll_backend::select`]; `wgpu` honours
//! `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`). Progress goes to stderr, one line per point; the
//! Markdown table goes to stdout. `--json FILE` writes an array of [`PointResult`] and
//! `--markdown FILE` the table (both rewritten after every point, so a long sweep keeps what it
//! measured; `--time-limit SECS` starts no new point after SECS), `--plot FILE.png|FILE.svg` draws
//! `fraction_of_inference` and `speedup_vs_naive` against N, one line per `(m, rank, rows, dtype)`.
//! Inference and the EGGROLL forward are measured side by side: their timed samples alternate,
//! so that drift in the machine's speed falls on both alike.
//!
//! The `eggroll` binary (crate `eggroll-cli`) parses these flags into [`BenchOptions`] (the
//! `clap` feature declares them, all but `--backend`, which the binary shares with its other
//! commands) and calls [`run`]. From Rust, [`measure_point`] runs one point on any
//! [`BenchBackend`].

mod llm;
mod measure;
mod plot;
mod precision;
mod report;
mod sweep;

pub use measure::{measure_point, BenchBackend, MeasureOptions};
pub use plot::draw_plot;
pub use precision::Precision;
pub use report::Timing;
pub use report::{markdown_table, AdapterInfo, PointResult};
pub use sweep::{PointSpec, Preset};

use eggroll_backend::gpu::WgpuOptions;
use eggroll_backend::select::{select_backend, BackendChoice, SelectedBackend};
use eggroll_llm::WeightDtype;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

#[cfg(doc)]
use eggroll_backend::{gpu::WgpuBackend, Kernels};

/// Everything `eggroll bench` can fail with.
#[derive(Debug, Error)]
pub enum BenchError {
    /// An option is out of range (odd population, rank 0, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// A backend could not be opened or a kernel failed (other than a skip).
    #[error(transparent)]
    Backend(#[from] eggroll_backend::Error),
    /// The model config of `--llm` is refused, or its generation failed.
    #[error(transparent)]
    Llm(#[from] eggroll_llm::LlmError),
    /// Writing an output file failed.
    #[error("cannot write {path}: {message}")]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl BenchError {
    fn output(path: &Path, message: impl std::fmt::Display) -> Self {
        Self::Output { path: path.to_path_buf(), message: message.to_string() }
    }
}

/// The id of `--from` (with the `clap` feature): it measures nothing, so every flag that says
/// what to measure or how conflicts with it, as must a caller's `--backend`.
#[cfg(feature = "clap")]
pub const FROM: &str = "from";

/// The clap group of `--quick` and `--full`, of which one at most is given (with the `clap`
/// feature).
#[cfg(feature = "clap")]
const PRESET: &str = "preset";

/// Options of `eggroll bench`, one field per flag; the checks and defaults of the methods below
/// name the flags in their messages. With the `clap` feature the struct declares the flags itself
/// (`clap::Args`), all but `--backend`, which the caller declares alongside its other commands'.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[cfg_attr(feature = "clap", command(group = clap::ArgGroup::new(PRESET)))]
pub struct BenchOptions {
    /// `--backend`: auto (a hardware GPU if there is one, else the CPU), cpu or wgpu.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub backend: BackendChoice,
    /// Small sweep that finishes in under a minute on the CPU and on software adapters:
    /// m=n=128, N in {64,256}, rank in {1,4}, rows in {1,16}.
    #[cfg_attr(feature = "clap", arg(long, group = PRESET, conflicts_with = FROM))]
    pub quick: bool,
    /// Sweep for a real GPU: m=n in {1024,4096,8192}, N in {64,256,1024}, rank in {1,4,16}, rows in
    /// {1,16}; points beyond the adapter's limits are skipped.
    #[cfg_attr(feature = "clap", arg(long, group = PRESET, conflicts_with = FROM))]
    pub full: bool,
    /// Output features of W (one point instead of the sweep; default 1024).
    #[cfg_attr(feature = "clap", arg(long, conflicts_with = FROM))]
    pub m: Option<usize>,
    /// Input features of W (one point instead of the sweep; default 1024).
    #[cfg_attr(feature = "clap", arg(long, conflicts_with = FROM))]
    pub n: Option<usize>,
    /// Population size N, even (one point instead of the sweep; default 256).
    #[cfg_attr(feature = "clap", arg(long, conflicts_with = FROM))]
    pub population: Option<usize>,
    /// Rank of the perturbations (one point instead of the sweep; default 1).
    #[cfg_attr(feature = "clap", arg(long, conflicts_with = FROM))]
    pub rank: Option<usize>,
    /// Input rows per member (one point instead of the sweep; default 1).
    #[cfg_attr(feature = "clap", arg(long, conflicts_with = FROM))]
    pub rows: Option<usize>,
    /// Storage types of the forwards' inputs and weights to sweep, comma-separated: f32, f16,
    /// int8 (f16 needs the adapter's `shader-f16`; int8 times integer EGGROLL's kernels and needs
    /// m and n multiples of 4; points that cannot run are skipped with the reason).
    /// Default: f32, and f16 and int8 too with --full.
    #[cfg_attr(feature = "clap", arg(long, value_name = "LIST", value_delimiter = ',', conflicts_with = FROM))]
    pub dtype: Option<Vec<Precision>>,
    /// Timed samples per operation, after warm-up runs (default 5, 3 with --quick).
    #[cfg_attr(feature = "clap", arg(long, value_name = "K", conflicts_with = FROM))]
    pub repeats: Option<usize>,
    /// Forwards per episode, all of one noise epoch: inference and EGGROLL are timed as K
    /// back-to-back calls, each episode a new noise epoch whose first call draws the factors,
    /// with the noise cache on when K > 1 so that the later calls read them; times per call.
    #[cfg_attr(feature = "clap", arg(long, value_name = "K", default_value_t = 1, conflicts_with = FROM))]
    pub calls: usize,
    /// Skip naive ES at a point when one call is estimated to take longer than SECS.
    #[cfg_attr(feature = "clap", arg(long, value_name = "SECS", default_value_t = MeasureOptions::default().naive_limit_s, conflicts_with = FROM))]
    pub naive_limit: f64,
    /// Let the rule pick the wgpu GEMM configuration instead of autotuning it.
    #[cfg_attr(feature = "clap", arg(long, conflicts_with = FROM))]
    pub no_autotune: bool,
    /// Write the results as a JSON array (one object per point) to FILE.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub json: Option<PathBuf>,
    /// Draw fraction of inference and speedup vs naive against N to FILE.png or FILE.svg.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub plot: Option<PathBuf>,
    /// Write the Markdown table (with the adapter line) to FILE as well as stdout.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub markdown: Option<PathBuf>,
    /// Start no new point after SECS seconds: the points left are reported as skipped, and the
    /// table, JSON and plot are written as usual (a point already running finishes).
    #[cfg_attr(feature = "clap", arg(long, value_name = "SECS", conflicts_with = FROM))]
    pub time_limit: Option<f64>,
    /// Measure nothing: read the results of earlier runs from these `--json` files (e.g. one per
    /// GPU, comma-separated) and print, write and plot them together, with the adapter in a
    /// column of the table and in the plot's legend when there are several.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILES", value_delimiter = ',', num_args = 1.., id = FROM))]
    pub from: Option<Vec<PathBuf>>,
    /// Time a population's generation at the shapes of a Hugging Face `config.json` (Llama,
    /// Qwen2, Qwen3) with random weights drawn from the seed, no download: every member answers
    /// one prompt greedily (or sampled, --temperature), with EGGROLL's perturbations against the
    /// same generation without them (--population, default 64; --rank, default 1; --repeats, default 3).
    #[cfg_attr(feature = "clap", arg(long, value_name = "CONFIG.json", conflicts_with_all = [FROM, PRESET, "m", "n", "rows", "dtype"]))]
    pub llm: Option<PathBuf>,
    /// With --llm: tokens of the prompt.
    #[cfg_attr(feature = "clap", arg(long, value_name = "K", default_value_t = 32, requires = "llm"))]
    pub prompt_tokens: usize,
    /// With --llm: tokens each member generates.
    #[cfg_attr(feature = "clap", arg(long, value_name = "K", default_value_t = 32, requires = "llm"))]
    pub new_tokens: usize,
    /// With --llm: the perturbations timed against unperturbed inference, comma-separated:
    /// `eggroll` (each member's rank-r noise) and `openes` (a full-rank noise matrix per pair and
    /// projection: use a small population or model).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_enum, value_name = "LIST", value_delimiter = ',', default_values_t = [LlmMethod::Eggroll], requires = "llm")
    )]
    pub method: Vec<LlmMethod>,
    /// With --llm: the members sample at this softmax temperature instead of answering greedily
    /// (0, the default: greedy), on the backend (`Transformer::sample_rows`).
    #[cfg_attr(feature = "clap", arg(long, value_name = "T", default_value_t = 0.0, requires = "llm"))]
    pub temperature: f32,
    /// With --llm and --temperature: nucleus sampling's top-p (default 1: every token).
    #[cfg_attr(feature = "clap", arg(long, value_name = "P", default_value_t = 1.0, requires = "temperature"))]
    pub top_p: f32,
    /// With --llm: the storage type of the model's matrices: `auto` (the default: the config's
    /// `torch_dtype` where the backend stores it, else f32; the drawn weights are rounded to it),
    /// `f32`, `f16` or `bf16`.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DTYPE", default_value = "auto", requires = "llm"))]
    pub weight_dtype: WeightDtype,
}

/// A perturbation `eggroll bench --llm` times (`--method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LlmMethod {
    /// EGGROLL: each member's rank-r noise on every projection.
    Eggroll,
    /// OpenES: a full-rank noise matrix per pair and projection.
    Openes,
}

impl Default for BenchOptions {
    /// What `eggroll bench` without flags runs: the default sweep on `auto`.
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            quick: false,
            full: false,
            m: None,
            n: None,
            population: None,
            rank: None,
            rows: None,
            dtype: None,
            repeats: None,
            calls: 1,
            naive_limit: MeasureOptions::default().naive_limit_s,
            no_autotune: false,
            json: None,
            plot: None,
            markdown: None,
            time_limit: None,
            from: None,
            llm: None,
            prompt_tokens: 32,
            new_tokens: 32,
            method: vec![LlmMethod::Eggroll],
            temperature: 0.0,
            top_p: 1.0,
            weight_dtype: WeightDtype::Auto,
        }
    }
}

impl BenchOptions {
    /// The preset the flags select.
    pub fn preset(&self) -> Preset {
        if self.full {
            Preset::Full
        } else if self.quick {
            Preset::Quick
        } else {
            Preset::Default
        }
    }

    /// The points to run, checked: the preset's sweep, or the one point `--m --n --population
    /// --rank --rows` describe when any of them is given.
    pub fn points(&self) -> Result<Vec<PointSpec>, BenchError> {
        let single = [self.m, self.n, self.population, self.rank, self.rows].iter().any(Option::is_some);
        let points = if single {
            let d = PointSpec::SINGLE_DEFAULT;
            let point = PointSpec {
                m: self.m.unwrap_or(d.m),
                n: self.n.unwrap_or(d.n),
                population: self.population.unwrap_or(d.population),
                rank: self.rank.unwrap_or(d.rank),
                rows: self.rows.unwrap_or(d.rows),
                dtype: d.dtype,
            };
            self.dtypes().iter().map(|&dtype| PointSpec { dtype, ..point }).collect()
        } else {
            self.preset().points(self.dtypes())
        };
        for p in &points {
            p.validate()?;
        }
        Ok(points)
    }

    /// The storage types to sweep: `--dtype`, else the preset's.
    pub fn dtypes(&self) -> &[Precision] {
        self.dtype.as_deref().unwrap_or(self.preset().dtypes())
    }

    /// The measurement options the flags select, checked.
    pub fn measure_options(&self) -> Result<MeasureOptions, BenchError> {
        let repeats = self.repeats.unwrap_or(if self.quick { 3 } else { 5 });
        if repeats == 0 {
            return Err(BenchError::InvalidArgument("--repeats 0: need at least one timed run".into()));
        }
        if !(1..=u32::MAX as usize).contains(&self.calls) {
            return Err(BenchError::InvalidArgument(format!(
                "--calls {}: need 1..={} forwards per episode (1: each call its own noise epoch)",
                self.calls,
                u32::MAX
            )));
        }
        if !(self.naive_limit.is_finite() && self.naive_limit >= 0.0) {
            return Err(BenchError::InvalidArgument(format!(
                "--naive-limit {}: must be a finite number of seconds >= 0",
                self.naive_limit
            )));
        }
        Ok(MeasureOptions { repeats, naive_limit_s: self.naive_limit, calls: self.calls, ..MeasureOptions::default() })
    }

    /// `--time-limit`, checked.
    pub fn time_limit(&self) -> Result<Option<Duration>, BenchError> {
        match self.time_limit {
            None => Ok(None),
            Some(secs) if secs.is_finite() && secs > 0.0 => Ok(Some(Duration::from_secs_f64(secs))),
            Some(secs) => Err(BenchError::InvalidArgument(format!("--time-limit {secs}: must be a finite number of seconds > 0"))),
        }
    }
}

/// Runs `eggroll bench` with `args`: checks them, opens the backend, measures every point (progress
/// on stderr), prints the Markdown table on stdout and writes the files asked for.
pub fn run(args: &BenchOptions) -> Result<(), BenchError> {
    if let Some(config) = &args.llm {
        return llm::run(args, config);
    }
    if let Some(paths) = &args.from {
        return report_saved(args, paths);
    }
    let points = args.points()?;
    let opts = args.measure_options()?;
    let time_limit = args.time_limit()?;
    if let Some(path) = &args.plot {
        plot::check_extension(path)?;
    }
    let wgpu_opts = WgpuOptions { autotune: !args.no_autotune, ..Default::default() };
    let selected = select_backend(args.backend, &wgpu_opts)?;
    if args.preset() == Preset::Full && points.len() > 1 && selected.kind() == "cpu" {
        eprintln!("note: --full is sized for a GPU (m=n up to 8192); on the CPU backend it takes hours");
    }
    // The JSON and the table are rewritten after every point, so that a sweep cut short keeps what
    // it measured.
    // Each backend's own kernels are timed, not the run-time choice between them.
    let write = |r: &[PointResult]| write_files(args, r);
    let results = match selected {
        SelectedBackend::Cpu(b) => sweep(&b, &points, &opts, time_limit, write),
        SelectedBackend::Wgpu(b) => sweep(&*b, &points, &opts, time_limit, write),
    }?;
    finish(args, &results)
}

/// `--from`: the results of `paths`, one after the other, printed and written like a sweep's.
fn report_saved(args: &BenchOptions, paths: &[PathBuf]) -> Result<(), BenchError> {
    if let Some(path) = &args.plot {
        plot::check_extension(path)?;
    }
    let mut results = Vec::new();
    for path in paths {
        results.extend(read_json(path)?);
    }
    write_files(args, &results)?;
    finish(args, &results)
}

/// Writes `--json` and `--markdown`, when asked for.
fn write_files(args: &BenchOptions, results: &[PointResult]) -> Result<(), BenchError> {
    if let Some(path) = &args.json {
        write_json(path, results)?;
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, markdown_table(results)).map_err(|e| BenchError::output(path, e))?;
    }
    Ok(())
}

/// Prints the table on stdout and draws `--plot`, when asked for.
fn finish(args: &BenchOptions, results: &[PointResult]) -> Result<(), BenchError> {
    print!("{}", markdown_table(results));
    if let Some(path) = &args.plot {
        draw_plot(path, results)?;
    }
    Ok(())
}

/// Measures `points` in order on `backend`, one progress line per point on stderr, calling
/// `after_point` with the results so far after each point. Once `time_limit` has passed since the
/// start, the points not started yet are reported as skipped instead of measured.
pub fn sweep<B: BenchBackend>(
    backend: &B, points: &[PointSpec], opts: &MeasureOptions, time_limit: Option<Duration>,
    mut after_point: impl FnMut(&[PointResult]) -> Result<(), BenchError>,
) -> Result<Vec<PointResult>, BenchError> {
    let start = Instant::now();
    let adapter = backend.describe();
    eprintln!(
        "eggroll bench: {} points on {} ({}, {}, {}); timing: {}; {} repeats after a warm-up{}",
        points.len(),
        adapter.name,
        adapter.backend,
        adapter.device_type,
        adapter.driver,
        backend.timing().as_str(),
        opts.repeats,
        if opts.calls > 1 {
            format!("; {} calls per episode, noise cache {}", opts.calls, if opts.noise_cache() { "on" } else { "off" })
        } else {
            String::new()
        }
    );
    let mut results = Vec::with_capacity(points.len());
    let mut naive_memo = measure::NaiveMemo::default();
    for (i, p) in points.iter().enumerate() {
        let r = match time_limit {
            Some(limit) if start.elapsed() >= limit => {
                measure::skipped_point(backend, p, opts, format!("skipped: not started within --time-limit {} s", limit.as_secs_f64()))
            }
            _ => measure::measure_point_memo(backend, p, opts, &mut naive_memo)?,
        };
        eprintln!("[{}/{}] {}", i + 1, points.len(), r.progress_line());
        results.push(r);
        after_point(&results)?;
    }
    let choices = backend.gemm_choices();
    if !choices.is_empty() {
        eprintln!("GEMM configurations per shape bucket: {}", choices.join("; "));
    }
    Ok(results)
}

/// Reads a JSON array of results written by `--json`; errors name the file.
pub fn read_json(path: &Path) -> Result<Vec<PointResult>, BenchError> {
    let bad = |message: String| BenchError::InvalidArgument(format!("--from {}: {message}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let results: Vec<PointResult> =
        serde_json::from_str(&text).map_err(|e| bad(format!("not the JSON `eggroll bench --json` writes: {e}")))?;
    if results.is_empty() {
        return Err(bad("holds no results".into()));
    }
    Ok(results)
}

/// Writes `results` as a pretty JSON array.
pub fn write_json(path: &Path, results: &[PointResult]) -> Result<(), BenchError> {
    let text = serde_json::to_string_pretty(results).map_err(|e| BenchError::output(path, e))?;
    std::fs::write(path, text + "\n").map_err(|e| BenchError::output(path, e))
}
