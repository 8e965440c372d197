//! `eggroll train`: picks the backend and the task, then [`run`]s the training loop with its
//! progress bar, metrics log, checkpoints, plot and summary.

use crate::args::TrainArgs;
use crate::checkpoint::{self, Manifest};
use crate::crash::crash_point;
use crate::error::{CliError, Result};
use crate::metrics::{MetricsLog, Record};
use crate::plot;
use eggroll::report::Summary;
use eggroll::session::{EggSession, FloatSession, Session};
use eggroll::shards::ShardedSession;
use eggroll::tasks::{CharLm, Egg};
use eggroll::{EggrollError, Evaluation, Task, TaskKind};
use eggroll_backend::gpu::{WgpuBackend, WgpuOptions};
use eggroll_backend::select::select_backend;
use eggroll_backend::with_backend;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::io::IsTerminal;
use std::time::Instant;

/// Builds the configuration and the task, opens the backend `--backend` asks for, and trains.
pub fn train(args: &TrainArgs) -> Result<()> {
    // Under mpirun, one rank of a job (src/mpi.rs); a plain launch goes on below.
    #[cfg(feature = "mpi")]
    if crate::mpi::launched() {
        return crate::mpi::train(args);
    }
    let kind: TaskKind = args.task.parse()?;
    args.check_task_flags(kind)?;
    match kind {
        TaskKind::CharLm => {
            let options = args.lm_options(CharLm::default_options());
            let config = args.config(CharLm::new(0, &options)?.default_config())?;
            let task = CharLm::new(config.seed, &options)?;
            if let Some(devices) = args.devices(kind)? {
                return run(ShardedSession::new(open_devices(&devices)?, task, config)?, args);
            }
            let selected = select_backend(args.backend, &WgpuOptions::default())?;
            with_backend!(selected, backend => run(FloatSession::new(backend, task, config)?, args))
        }
        TaskKind::Egg => {
            args.devices(kind)?;
            let options = args.lm_options(Egg::default_options());
            let config = args.config(Egg::new(0, &options)?.default_config())?;
            let task = Egg::new(config.seed, &options)?;
            let selected = select_backend(args.backend, &WgpuOptions::default())?;
            with_backend!(selected, backend => run(EggSession::new(backend, task, config)?, args))
        }
        _ => {
            let config = args.config(args.mlp_task(kind, 0)?.default_config())?;
            let task = args.mlp_task(kind, config.seed)?;
            if let Some(devices) = args.devices(kind)? {
                return run(ShardedSession::new(open_devices(&devices)?, task, config)?, args);
            }
            let selected = select_backend(args.backend, &WgpuOptions::default())?;
            with_backend!(selected, backend => run(FloatSession::new(backend, task, config)?, args))
        }
    }
}

/// The wgpu backends on the adapters `indices` (as `eggroll info` numbers them), in order.
fn open_devices(indices: &[usize]) -> Result<Vec<WgpuBackend>> {
    let open = |&index: &usize| WgpuBackend::new_blocking(&WgpuOptions { adapter_index: Some(index), ..WgpuOptions::default() });
    Ok(indices.iter().map(open).collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Loads the checkpoint in `dir` into the session after checking it belongs to this task,
/// configuration and model; returns its manifest.
pub(crate) fn resume<S: Session>(session: &mut S, dir: &std::path::Path) -> Result<Manifest> {
    let loaded = checkpoint::load(dir)?;
    let manifest = &loaded.manifest;
    let refuse = |why: String| CliError::new(format!("cannot resume from {}: {why}", dir.display()));
    let name = session.name();
    if manifest.task != name {
        return Err(refuse(format!("it is a checkpoint of task `{}`, not `{name}`", manifest.task)));
    }
    let settings = session.settings();
    if manifest.settings != settings {
        let key = settings.as_object().and_then(|o| o.keys().find(|k| manifest.settings.get(k.as_str()) != o.get(k.as_str())).cloned());
        let key = key.unwrap_or_default();
        let (saved, now) = (manifest.settings.get(&key).cloned().unwrap_or_default(), settings.get(&key).cloned().unwrap_or_default());
        return Err(refuse(format!("it was made with {key} = {saved}, this run has {now}")));
    }
    if manifest.config != *session.config() {
        let (saved, now) = (json!(manifest.config), json!(session.config()));
        let field = saved.as_object().and_then(|o| o.keys().find(|k| saved[k.as_str()] != now[k.as_str()]).cloned());
        let field = field.unwrap_or_default();
        // Config floats are f32: show them as such.
        let show = |v: &serde_json::Value| match v.as_f64().filter(|_| v.is_f64()) {
            Some(f) => (f as f32).to_string(),
            None => v.to_string(),
        };
        return Err(refuse(format!("it was made with {field} = {}, this run has {}", show(&saved[&field]), show(&now[&field]))));
    }
    session.restore(&loaded.model, manifest.epoch).map_err(|e| match e {
        EggrollError::CorruptState(why) => loaded.corrupt(format!("{}: {why}", checkpoint::MODEL)),
        EggrollError::Checkpoint(why) => refuse(why),
        other => refuse(other.to_string()),
    })?;
    Ok(loaded.manifest)
}

/// Saves the session's trainer into `dir` as the checkpoint of its current epoch.
fn save<S: Session>(session: &S, dir: &std::path::Path, log: Option<&mut MetricsLog>) -> Result<()> {
    let model = session.save()?;
    let manifest = Manifest {
        format_version: checkpoint::FORMAT_VERSION,
        task: session.name().to_string(),
        settings: session.settings(),
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
fn progress(epochs: u32, start: u32, quiet: bool) -> ProgressBar {
    let target = if quiet || !std::io::stderr().is_terminal() { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
    let bar = ProgressBar::with_draw_target(Some(u64::from(epochs)), target);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} epoch {pos}/{len} {msg} [{elapsed}<{eta}]") {
        bar.set_style(style);
    }
    bar.set_position(u64::from(start));
    bar
}

/// Trains the session for the epochs its configuration asks for (from the checkpoint on with
/// `--resume`), then reports.
pub fn run<S: Session>(mut session: S, args: &TrainArgs) -> Result<()> {
    let name = session.name();
    let epochs = session.config().epochs;
    let tokens = session.tokens_per_epoch();
    let ckpt_dir = args.checkpoint.as_ref().or(args.resume.as_ref());
    let manifest = match &args.resume {
        Some(dir) => Some(resume(&mut session, dir)?),
        None => None,
    };
    if let Some(dir) = ckpt_dir.filter(|d| args.resume.as_ref() != Some(d)) {
        checkpoint::start(dir)?;
    }
    let (mut log, mut history) = match (&args.metrics, &manifest) {
        (Some(path), Some(m)) => MetricsLog::resume(path, m.metrics_bytes, m.epoch).map(|(l, h)| (Some(l), h))?,
        (Some(path), None) => (Some(MetricsLog::create(path)?), Vec::new()),
        (None, _) => (None, Vec::new()),
    };

    let bar = progress(epochs, session.epoch(), args.quiet);
    let (mut last_eval, mut total_ms, start) = (None::<Evaluation>, 0.0, session.epoch());
    for epoch in start..epochs {
        let t = Instant::now();
        let stats = session.train_epoch()?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        total_ms += ms;
        let done = epoch + 1;
        let eval = if done % args.eval_every == 0 || done == epochs { Some(session.evaluate()?) } else { None };
        let record = Record {
            epoch: done,
            mean_fitness: stats.mean_fitness,
            lr: stats.lr,
            sigma: stats.sigma,
            ms,
            eval: eval.as_ref().map(|e| (e.train_loss, e.metric_name.to_string(), e.metric)),
        };
        if let Some(log) = log.as_mut() {
            log.append(&record)?;
        }
        history.push(record);
        crash_point(done, "epoch");
        if let Some(dir) = ckpt_dir.filter(|_| done % args.checkpoint_every == 0 || done == epochs) {
            save(&session, dir, log.as_mut())?;
        }
        last_eval = eval.or(last_eval);
        let shown = last_eval.as_ref().map(|e| format!(" train_loss {:.4} {} {:.4}", e.train_loss, e.metric_name, e.metric));
        let speed = tokens.map(|t| format!(" {:.0} tok/s", t as f64 / (ms / 1e3)));
        bar.set_message(format!("fitness {:.4}{}{}", stats.mean_fitness, shown.unwrap_or_default(), speed.unwrap_or_default()));
        bar.set_position(u64::from(done));
    }
    bar.finish_and_clear();

    let final_eval = match last_eval.filter(|_| start < epochs) {
        Some(e) => e,
        None => session.evaluate()?,
    };
    if let Some(path) = &args.plot {
        plot::draw(path, &history, &format!("eggroll {name}"))?;
    }
    let ms_per_epoch = if epochs > start { total_ms / f64::from(epochs - start) } else { 0.0 };
    let summary = Summary {
        task: name,
        adapter: session.adapter(),
        config: session.config().clone(),
        eval: final_eval,
        ms_per_epoch,
        resumed_from: manifest.map(|m| m.epoch),
        baselines: session.baselines(),
        tokens_per_second: tokens.filter(|_| ms_per_epoch > 0.0).map(|t| t as f64 / (ms_per_epoch / 1e3)),
        timings: session.timings(),
    };
    report(&session, &summary, args.json);
    Ok(())
}

/// Prints the final summary: one JSON object with `json` ([`Summary::to_json`]), else two human
/// lines (three with baselines, a token rate or timings).
fn report<S: Session>(session: &S, summary: &Summary, json: bool) {
    if json {
        println!("{}", summary.to_json());
        return;
    }
    let (name, adapter, c, eval) = (session.name(), &summary.adapter, &summary.config, &summary.eval);
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
