//! Driving a built run from the command line: resuming it from a checkpoint, the hooks of
//! `eggroll train` (progress bar, metrics log, checkpoints) around the library's driver, the plot
//! and the summary. `eggroll train` and rank 0 under `mpirun` run through [`run`].

use crate::args::TrainArgs;
use crate::checkpoint::{self, Manifest};
use crate::crash::crash_point;
use crate::error::{CliError, Result};
use crate::metrics::{MetricsLog, Record};
use crate::plot;
use eggroll::report::Summary;
use eggroll::run::{native_clock_ms, Driver, EpochRecord, Hooks};
use eggroll::session::Training;
use eggroll::{EggrollError, EsConfig};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::io::IsTerminal;
use std::path::Path;

/// Loads the checkpoint in `dir` into the driver's session after checking it belongs to this
/// task, configuration and model; returns its manifest.
pub(crate) fn resume<S: Training>(driver: &mut Driver<S>, dir: &Path) -> Result<Manifest> {
    let loaded = checkpoint::load(dir)?;
    let session = driver.session();
    check_manifest(&loaded.manifest, session.name(), &session.settings(), session.config(), dir)?;
    let refuse = |why: String| CliError::new(format!("cannot resume from {}: {why}", dir.display()));
    driver.resume(&loaded.model, loaded.manifest.epoch).map_err(|e| match e {
        EggrollError::CorruptState(why) => loaded.corrupt(format!("{}: {why}", checkpoint::MODEL)),
        EggrollError::Checkpoint(why) => refuse(why),
        other => refuse(other.to_string()),
    })?;
    Ok(loaded.manifest)
}

/// Refuses to resume from the checkpoint `manifest` (in `dir`) a run of another task, other
/// settings or another configuration than `task`, `settings` and `config`, naming the first
/// difference.
pub(crate) fn check_manifest(manifest: &Manifest, task: &str, settings: &serde_json::Value, config: &EsConfig, dir: &Path) -> Result<()> {
    let refuse = |why: String| CliError::new(format!("cannot resume from {}: {why}", dir.display()));
    if manifest.task != task {
        return Err(refuse(format!("it is a checkpoint of task `{}`, not `{task}`", manifest.task)));
    }
    checkpoint::check_epoch(manifest, config.epochs, dir)?;
    if manifest.settings != *settings {
        // A key either side has and the other does not, or holds otherwise.
        let differs = |a: &serde_json::Value, b: &serde_json::Value| {
            a.as_object().and_then(|o| o.keys().find(|k| b.get(k.as_str()) != o.get(k.as_str())).cloned())
        };
        let key = differs(settings, &manifest.settings).or_else(|| differs(&manifest.settings, settings)).unwrap_or_default();
        let (saved, now) = (manifest.settings.get(&key).cloned().unwrap_or_default(), settings.get(&key).cloned().unwrap_or_default());
        return Err(refuse(format!("it was made with {key} = {saved}, this run has {now}")));
    }
    // The noise cache changes no result: a run may resume with another budget.
    let saved = EsConfig { noise_cache_mb: config.noise_cache_mb, ..manifest.config.clone() };
    if saved != *config {
        let (saved, now) = (json!(saved), json!(config));
        let field = saved.as_object().and_then(|o| o.keys().find(|k| saved[k.as_str()] != now[k.as_str()]).cloned());
        let field = field.unwrap_or_default();
        // Config floats are f32: show them as such.
        let show = |v: &serde_json::Value| match v.as_f64().filter(|_| v.is_f64()) {
            Some(f) => (f as f32).to_string(),
            None => v.to_string(),
        };
        return Err(refuse(format!("it was made with {field} = {}, this run has {}", show(&saved[&field]), show(&now[&field]))));
    }
    Ok(())
}

/// Saves the session's trainer into `dir` as the checkpoint of its current epoch.
fn save<S: Training>(session: &S, dir: &Path, log: Option<&mut MetricsLog>) -> Result<()> {
    let model = session.save()?;
    let manifest = Manifest {
        format_version: checkpoint::FORMAT_VERSION,
        task: session.name().to_string(),
        settings: session.settings(),
        progress: serde_json::Value::Null,
        epoch: session.epoch(),
        seed: session.config().seed,
        config: session.config().clone(),
        metrics_bytes: log.map(MetricsLog::sync).transpose()?,
        model_bytes: 0,
        model_fnv1a64: String::new(),
    };
    checkpoint::save(dir, manifest, &model)
}

/// A progress bar on stderr, hidden with `quiet` or when stderr is not a terminal.
pub(crate) fn progress(epochs: u32, start: u32, quiet: bool) -> ProgressBar {
    let target = if quiet || !std::io::stderr().is_terminal() { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
    let bar = ProgressBar::with_draw_target(Some(u64::from(epochs)), target);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} epoch {pos}/{len} {msg} [{elapsed}<{eta}]") {
        bar.set_style(style);
    }
    bar.set_position(u64::from(start));
    bar
}

/// Called after each epoch with its record (as a metrics line holds it); an error stops the run.
pub type OnEpoch<'a> = dyn FnMut(&Record) -> Result<()> + 'a;

/// What `eggroll train` does around each epoch: evaluate every `--eval-every` epochs, append to
/// the metrics log, checkpoint, move the progress bar, and call the embedding's `on_epoch`.
struct TrainHooks<'a, 'f> {
    args: &'a TrainArgs,
    /// Where checkpoints go.
    ckpt_dir: Option<&'a Path>,
    log: Option<MetricsLog>,
    /// Every epoch's record, the resumed run's earlier ones included, for the plot.
    history: Vec<Record>,
    bar: ProgressBar,
    /// The last evaluation, for the progress bar.
    shown: Option<String>,
    tokens: Option<usize>,
    on_epoch: &'f mut OnEpoch<'f>,
}

impl<S: Training> Hooks<S> for TrainHooks<'_, '_> {
    type Error = CliError;
    fn evaluate_after(&mut self, done: u32, epochs: u32, _train_ms: f64) -> bool {
        done.is_multiple_of(self.args.eval_every) || done == epochs
    }

    fn after_epoch(&mut self, session: &S, r: &EpochRecord) -> Result<()> {
        let record = Record {
            epoch: r.epoch,
            mean_fitness: r.stats.mean_fitness,
            lr: r.stats.lr,
            sigma: r.stats.sigma,
            ms: r.ms,
            eval: r.eval.as_ref().map(|e| (e.train_loss, e.metric_name.to_string(), e.metric)),
        };
        if let Some(log) = self.log.as_mut() {
            log.append(&record)?;
        }
        (self.on_epoch)(&record)?;
        self.history.push(record);
        crash_point(r.epoch, "epoch");
        let epochs = session.config().epochs;
        if let Some(dir) = self.ckpt_dir.filter(|_| r.epoch.is_multiple_of(self.args.checkpoint_every) || r.epoch == epochs) {
            save(session, dir, self.log.as_mut())?;
        }
        if let Some(e) = &r.eval {
            self.shown = Some(format!(" train_loss {:.4} {} {:.4}", e.train_loss, e.metric_name, e.metric));
        }
        let speed = self.tokens.map(|t| format!(" {:.0} tok/s", t as f64 / (r.ms / 1e3)));
        let shown = self.shown.as_deref().unwrap_or_default();
        self.bar.set_message(format!("fitness {:.4}{shown}{}", r.stats.mean_fitness, speed.unwrap_or_default()));
        self.bar.set_position(u64::from(r.epoch));
        Ok(())
    }
}

/// Trains the session for the epochs its configuration asks for (from the checkpoint on with
/// `--resume`), calling `on_epoch` after each, draws `--plot`, and returns the summary.
pub fn run<S: Training>(session: S, args: &TrainArgs, on_epoch: &mut OnEpoch) -> Result<Summary> {
    let mut driver = Driver::new(session, native_clock_ms);
    let ckpt_dir = args.checkpoint.as_deref().or(args.resume.as_deref());
    let manifest = match &args.resume {
        Some(dir) => Some(resume(&mut driver, dir)?),
        None => None,
    };
    if let Some(dir) = ckpt_dir.filter(|d| args.resume.as_deref() != Some(*d)) {
        checkpoint::start(dir)?;
    }
    let (log, history) = match (&args.metrics, &manifest) {
        (Some(path), Some(m)) => MetricsLog::resume(path, m.metrics_bytes, m.epoch).map(|(l, h)| (Some(l), h))?,
        (Some(path), None) => (Some(MetricsLog::create(path)?), Vec::new()),
        (None, _) => (None, Vec::new()),
    };
    let session = driver.session();
    let bar = progress(session.config().epochs, session.epoch(), args.quiet);
    let tokens = session.tokens_per_epoch();
    let mut hooks = TrainHooks { args, ckpt_dir, log, history, bar, shown: None, tokens, on_epoch };
    let summary = driver.run(&mut hooks)?;
    hooks.bar.finish_and_clear();
    if let Some(path) = &args.plot {
        plot::draw(path, &hooks.history, &format!("eggroll {}", summary.task))?;
    }
    Ok(summary)
}

/// Prints the final summary: one JSON object with `json` ([`Summary::to_json`]), else two human
/// lines (three with baselines, a token rate or timings).
pub(crate) fn report(summary: &Summary, json: bool) {
    if json {
        println!("{}", summary.to_json());
        return;
    }
    let (name, adapter, c, eval) = (summary.task, &summary.adapter, &summary.config, &summary.eval);
    let backend = summary.backend();
    let api = if backend == "cpu" { String::new() } else { format!(", {}", adapter.backend) };
    println!("{name} on {} [{backend}{api}]: {} epochs, population {}, rank {}", adapter.name, c.epochs, c.population, c.rank);
    println!("final train_loss {:.6}, {} {:.6}; {:.3} ms/epoch", eval.train_loss, eval.metric_name, eval.metric, summary.ms_per_epoch);
    let mut extra: Vec<String> = summary.baselines.iter().map(|(key, value)| format!("{key} {value:.4}")).collect();
    extra.extend(summary.tokens_per_second.map(|rate| format!("{rate:.0} tokens/s")));
    extra.extend(summary.timings.iter().map(|(key, ms)| format!("{key} {ms:.3}")));
    if !extra.is_empty() {
        println!("{}", extra.join(", "));
    }
}
