//! `eggroll rl-compare`: EGGROLL against OpenES on the control tasks, at equal population and
//! equal training time.
//!
//! Every (task, method, seed) run starts from the task's default config with that seed and
//! method (and `--population`, `--hidden` when given) and gets the same share of `--minutes` as
//! training time. A run is limited by time alone: it stops at the first epoch boundary after its
//! share is used up, whatever the config's `epochs` says, so that both methods train for the same
//! time (the control tasks' schedules are constant, so `epochs` changes nothing else; a config
//! whose schedule decays over `epochs` is refused). The held-out return of the mean policy is
//! evaluated before training and at the first epoch boundary after each twentieth of the share;
//! evaluations are not counted as training time. The results go to `DIR/rl-compare.md` (one row
//! per task and method), `DIR/rl-compare.json` (every run) and `DIR/<task>.png` (return against
//! training time).

use crate::args::RlCompareArgs;
use crate::error::{CliError, Result};
use eggroll::config::{EsConfig, Method, Schedule};
use eggroll::run::{native_clock_ms, Driver, Hooks, RunSpec, Workers};
use eggroll::session::{Local, Training};
use eggroll::{EggrollError, TaskKind};
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::WgpuOptions;
use eggroll_backend::select::select_backend;
#[cfg(feature = "plot")]
use plotters::coord::Shift;
#[cfg(feature = "plot")]
use plotters::prelude::*;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Evaluations per run after the one before training: one per twentieth of the run's time.
const CHECKPOINTS: u32 = 20;

/// The two methods, in the order of the table's rows.
const METHODS: [Method; 2] = [Method::Eggroll, Method::OpenEs];

/// Plot size in pixels.
#[cfg(feature = "plot")]
const SIZE: (u32, u32) = (900, 600);

/// The held-out return at one checkpoint of a run.
#[derive(Clone, Debug, Serialize)]
struct Point {
    /// The checkpoint's nominal training time in seconds (`k / CHECKPOINTS` of the run's share).
    at_s: f64,
    /// Training time actually spent when it was evaluated (the first epoch boundary after `at_s`).
    train_s: f64,
    /// Epochs trained when it was evaluated.
    epochs: u32,
    /// Mean return of the mean policy over the held-out episodes.
    #[serde(rename = "return")]
    ret: f64,
}

/// One (task, method, seed) run.
#[derive(Debug, Serialize)]
struct Run {
    task: &'static str,
    method: &'static str,
    seed: u64,
    population: usize,
    rank: usize,
    epochs: u32,
    train_s: f64,
    ms_per_epoch: f64,
    final_return: f64,
    /// `CHECKPOINTS + 1` points, the first before training.
    curve: Vec<Point>,
}

/// One row of the table: a task and a method over every seed.
#[derive(Debug, Serialize)]
struct Row {
    task: &'static str,
    method: &'static str,
    population: usize,
    mean_return: f64,
    /// Sample standard deviation over the seeds (0 with one seed).
    sd_return: f64,
    min_return: f64,
    max_return: f64,
    mean_epochs: f64,
    mean_ms_per_epoch: f64,
    /// Gymnasium's "solved" return, where it defines one.
    threshold: Option<f64>,
    /// Whether the mean final return reaches the threshold.
    solved: Option<bool>,
    /// The method whose mean final return is higher by more than the two standard deviations
    /// together, else "tied"; the same on both rows of a task.
    better: &'static str,
}

/// The name `--method` takes.
fn method_name(method: Method) -> &'static str {
    match method {
        Method::Eggroll => "eggroll",
        Method::OpenEs => "openes",
    }
}

/// The return at which Gymnasium calls the task solved (CartPole-v1, Acrobot-v1, MountainCar-v0,
/// MountainCarContinuous-v0); Pendulum-v1 has none.
fn threshold(kind: TaskKind) -> Option<f64> {
    match kind {
        TaskKind::CartPole => Some(475.0),
        TaskKind::Acrobot => Some(-100.0),
        TaskKind::MountainCar => Some(-110.0),
        TaskKind::MountainCarContinuous => Some(90.0),
        _ => None,
    }
}

/// The checked command line: tasks, and each run's training time in seconds.
struct Plan<'a> {
    args: &'a RlCompareArgs,
    tasks: Vec<TaskKind>,
    run_s: f64,
}

impl<'a> Plan<'a> {
    /// Checks the flags; builds every task and method's trainer once on the CPU so that a
    /// population or hidden size either method refuses fails before any training.
    fn new(args: &'a RlCompareArgs) -> Result<Self> {
        let tasks = match &args.tasks {
            Some(kinds) => kinds.iter().map(|&kind| control_task(kind)).collect::<Result<Vec<_>>>()?,
            None => TaskKind::ALL.into_iter().filter(|k| k.is_control()).collect(),
        };
        if let Some(twice) = tasks.iter().enumerate().find_map(|(i, k)| tasks[..i].contains(k).then_some(k)) {
            return Err(CliError::new(format!("--tasks: {twice} is listed twice")));
        }
        if args.seeds == 0 {
            return Err(CliError::new("--seeds: must be >= 1, got 0"));
        }
        if !(args.minutes.is_finite() && args.minutes > 0.0) {
            return Err(CliError::new(format!("--minutes: must be a finite number > 0, got {}", args.minutes)));
        }
        let runs = tasks.len() as f64 * METHODS.len() as f64 * args.seeds as f64;
        let plan = Self { args, tasks, run_s: args.minutes * 60.0 / runs };
        for &kind in &plan.tasks {
            for method in METHODS {
                let (spec, config) = plan.setup(kind, method, 0)?;
                spec.build(config, Workers::one(CpuBackend::new()))
                    .map_err(|e| CliError::new(format!("{kind} with method {}: {e}", method_name(method))))?;
            }
        }
        Ok(plan)
    }

    /// The run and config of one (task, method, seed).
    fn setup(&self, kind: TaskKind, method: Method, seed: u64) -> Result<(RunSpec, EsConfig)> {
        let spec = RunSpec { hidden: self.args.policy.hidden.clone(), ..RunSpec::new(kind) };
        let population = self.args.population;
        let overlay = |d: EsConfig| Ok::<_, EggrollError>(EsConfig { seed, method, population: population.unwrap_or(d.population), ..d });
        if let Some(hidden) = &self.args.policy.hidden {
            kind.build_with_hidden(seed, hidden).map_err(|e| CliError::new(format!("--hidden: {e}")))?;
        }
        let config = spec.config(overlay).map_err(|e| CliError::new(format!("{kind}: {e}")))?;
        if config.lr_schedule != Schedule::Constant || config.sigma_schedule != Schedule::Constant {
            return Err(CliError::new(format!("{kind}: its schedule decays over its epochs, which a run limited by time ignores")));
        }
        Ok((spec, config))
    }
}

/// `kind`, refused with one error naming it unless it is a control task.
fn control_task(kind: TaskKind) -> Result<TaskKind> {
    if !kind.is_control() {
        let names: Vec<_> = TaskKind::ALL.iter().filter(|k| k.is_control()).map(|k| k.name()).collect();
        return Err(CliError::new(format!("--tasks: {kind} is not a control task; expected some of {}", names.join(", "))));
    }
    Ok(kind)
}

/// Runs every task, seed and method, then writes the table, the JSON and the plots.
pub fn rl_compare(args: &RlCompareArgs) -> Result<()> {
    let plan = Plan::new(args)?;
    let out = &args.out;
    std::fs::create_dir_all(out).map_err(|e| CliError::file(out, "cannot create", e))?;
    let total = plan.tasks.len() * METHODS.len() * args.seeds as usize;
    eprintln!("rl-compare: {total} runs of {:.1} s of training each", plan.run_s);
    let (mut runs, mut adapter) = (Vec::with_capacity(total), String::new());
    for &kind in &plan.tasks {
        for seed in 0..args.seeds {
            for method in METHODS {
                let (spec, config) = plan.setup(kind, method, seed)?;
                let backend = select_backend(args.backend(), &WgpuOptions::default())?;
                let workers = crate::workers::workers(backend, &spec, &config, Local);
                let session = spec.build(config, workers)?;
                adapter = session.adapter().name;
                let run = train_for(session, kind, plan.run_s)?;
                eprintln!(
                    "rl-compare: [{}/{total}] {kind} {} seed {seed}: {} epochs, {:.3} ms/epoch, return {:.2}",
                    runs.len() + 1,
                    run.method,
                    run.epochs,
                    run.ms_per_epoch,
                    run.final_return
                );
                runs.push(run);
            }
        }
    }
    let rows: Vec<Row> = plan.tasks.iter().flat_map(|&kind| rows(kind, &runs)).collect();
    let json = serde_json::json!({
        "adapter": adapter,
        "minutes": args.minutes,
        "seeds": args.seeds,
        "train_s_per_run": plan.run_s,
        "hidden": args.policy.hidden,
        "rows": rows,
        "runs": runs,
    });
    let text = serde_json::to_string_pretty(&json).map_err(CliError::new)?;
    write(&out.join("rl-compare.json"), &text)?;
    write(&out.join("rl-compare.md"), &table(&plan, &adapter, &rows))?;
    for &kind in &plan.tasks {
        draw(&out.join(format!("{kind}.png")), kind, &runs)?;
    }
    eprintln!("rl-compare: wrote rl-compare.md, rl-compare.json and the plots to {}", out.display());
    Ok(())
}

/// Writes `text` to `path`.
fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| CliError::file(path, "cannot write", e))
}

/// A run limited by time alone: it evaluates at the first epoch boundary after each of the
/// [`CHECKPOINTS`] equal parts of its training time and ends after the last one, whatever the
/// configuration's epochs.
struct TimeBudget {
    /// Seconds of training per part.
    step_s: f64,
    /// The next part to reach, from 1.
    next: u32,
}

impl<S> Hooks<S> for TimeBudget {
    type Error = CliError;
    fn evaluate_after(&mut self, _done: u32, _epochs: u32, train_ms: f64) -> bool {
        train_ms / 1e3 >= f64::from(self.next) * self.step_s
    }
    fn finished(&mut self, _done: u32, _epochs: u32, _train_ms: f64) -> bool {
        self.next > CHECKPOINTS
    }
}

/// Trains `session` for `run_s` seconds of training time (to the first epoch boundary after
/// it), evaluating the held-out return before training and at each checkpoint.
fn train_for<S: Training>(session: S, kind: TaskKind, run_s: f64) -> Result<Run> {
    let mut driver = Driver::new(session, native_clock_ms);
    let first = driver.evaluate()?;
    let mut budget = TimeBudget { step_s: run_s / f64::from(CHECKPOINTS), next: 1 };
    let mut curve = vec![Point { at_s: 0.0, train_s: 0.0, epochs: 0, ret: f64::from(first.metric) }];
    while !driver.finished(&mut budget) {
        let record = driver.step(&mut budget)?;
        if let Some(eval) = record.eval {
            let train_s = driver.train_ms() / 1e3;
            // A slow epoch may pass several checkpoints: they share its evaluation.
            while budget.next <= CHECKPOINTS && train_s >= f64::from(budget.next) * budget.step_s {
                let at_s = f64::from(budget.next) * budget.step_s;
                curve.push(Point { at_s, train_s, epochs: record.epoch, ret: f64::from(eval.metric) });
                budget.next += 1;
            }
        }
    }
    let (epochs, train_s) = (driver.session().epoch(), driver.train_ms() / 1e3);
    let config = driver.session().config();
    Ok(Run {
        task: kind.name(),
        method: method_name(config.method),
        seed: config.seed,
        population: config.population,
        rank: config.rank,
        epochs,
        train_s,
        ms_per_epoch: train_s * 1e3 / f64::from(epochs),
        final_return: curve.last().map_or(f64::NAN, |p| p.ret),
        curve,
    })
}

/// Mean and sample standard deviation (0 for one value).
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// The task's two rows, eggroll first.
fn rows(kind: TaskKind, runs: &[Run]) -> Vec<Row> {
    let mut rows: Vec<Row> = METHODS
        .iter()
        .map(|&method| {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.task == kind.name() && r.method == method_name(method)).collect();
            let finals: Vec<f64> = mine.iter().map(|r| r.final_return).collect();
            let (mean_return, sd_return) = mean_sd(&finals);
            let epochs: Vec<f64> = mine.iter().map(|r| f64::from(r.epochs)).collect();
            let ms: Vec<f64> = mine.iter().map(|r| r.ms_per_epoch).collect();
            Row {
                task: kind.name(),
                method: method_name(method),
                population: mine.first().map_or(0, |r| r.population),
                mean_return,
                sd_return,
                min_return: finals.iter().copied().fold(f64::INFINITY, f64::min),
                max_return: finals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                mean_epochs: mean_sd(&epochs).0,
                mean_ms_per_epoch: mean_sd(&ms).0,
                threshold: threshold(kind),
                solved: threshold(kind).map(|t| mean_return >= t),
                better: "tied",
            }
        })
        .collect();
    let (e, o) = (&rows[0], &rows[1]);
    let better = if (e.mean_return - o.mean_return).abs() <= e.sd_return + o.sd_return {
        "tied"
    } else if e.mean_return > o.mean_return {
        e.method
    } else {
        o.method
    };
    for row in &mut rows {
        row.better = better;
    }
    rows
}

/// The Markdown report: what was run, then one row per task and method.
fn table(plan: &Plan, adapter: &str, rows: &[Row]) -> String {
    let args = plan.args;
    let hidden = match &args.policy.hidden {
        Some(h) => h.iter().map(usize::to_string).collect::<Vec<_>>().join(","),
        None => "each task's default".into(),
    };
    let mut md = String::from("# EGGROLL against OpenES on the control tasks\n\n");
    let _ = writeln!(
        md,
        "{adapter}, {} seed{} per task and method, {:.1} s of training per run ({} minutes shared by {} runs), hidden layers {hidden}.",
        args.seeds,
        if args.seeds == 1 { "" } else { "s" },
        plan.run_s,
        args.minutes,
        rows.len() * args.seeds as usize
    );
    md.push_str(
        "Final return: the mean policy's mean return over the held-out episodes after the run's time, mean ± sample \
         standard deviation and min..max over the seeds. Solved: the mean final return reaches Gymnasium's threshold. \
         Better: the method whose mean is higher by more than the two standard deviations together, else tied.\n\n",
    );
    md.push_str("| task | method | population | final return | min..max | epochs | ms/epoch | threshold | solved | better |\n");
    md.push_str("|---|---|---:|---:|---:|---:|---:|---:|---|---|\n");
    for r in rows {
        let threshold = r.threshold.map_or("n/a".to_string(), |t| format!("{t}"));
        let solved = r.solved.map_or("n/a", |s| if s { "yes" } else { "no" });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} ± {:.2} | {:.2}..{:.2} | {:.1} | {:.3} | {threshold} | {solved} | {} |",
            r.task,
            r.method,
            r.population,
            r.mean_return,
            r.sd_return,
            r.min_return,
            r.max_return,
            r.mean_epochs,
            r.mean_ms_per_epoch,
            r.better
        );
    }
    md
}

/// A checkpoint of one method's runs on a task: its nominal time and the return over the seeds.
#[cfg(feature = "plot")]
struct Band {
    at_s: f64,
    mean: f64,
    min: f64,
    max: f64,
}

/// Per method of `kind`: its name and the checkpoints over its seeds.
#[cfg(feature = "plot")]
fn curves(kind: TaskKind, runs: &[Run]) -> Vec<(&'static str, Vec<Band>)> {
    METHODS
        .iter()
        .map(|&method| {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.task == kind.name() && r.method == method_name(method)).collect();
            let points = (0..=CHECKPOINTS as usize)
                .filter_map(|k| {
                    let at: Vec<&Point> = mine.iter().filter_map(|r| r.curve.get(k)).collect();
                    let rets: Vec<f64> = at.iter().map(|p| p.ret).collect();
                    let first = at.first()?;
                    let (lo, hi) = rets.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                    Some(Band { at_s: first.at_s, mean: mean_sd(&rets).0, min: lo, max: hi })
                })
                .collect();
            (method_name(method), points)
        })
        .collect()
}

/// Draws `kind`'s return against training time to `path` (PNG): per method the mean over seeds
/// and a band from the lowest to the highest seed, and Gymnasium's threshold where defined.
#[cfg(feature = "plot")]
fn draw(path: &Path, kind: TaskKind, runs: &[Run]) -> Result<()> {
    draw_on(BitMapBackend::new(path, SIZE).into_drawing_area(), kind, &curves(kind, runs))
        .map_err(|e| CliError::file(path, "cannot draw plot", e))
}

/// Without the `plot` feature: refused.
#[cfg(not(feature = "plot"))]
fn draw(path: &Path, _kind: TaskKind, _runs: &[Run]) -> Result<()> {
    Err(crate::plot::unavailable(path))
}

/// The chart itself.
#[cfg(feature = "plot")]
fn draw_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>, kind: TaskKind, curves: &[(&'static str, Vec<Band>)],
) -> std::result::Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let all = curves.iter().flat_map(|(_, points)| points);
    let (x_max, mut y_min, mut y_max) =
        all.fold((1e-6f64, f64::INFINITY, f64::NEG_INFINITY), |(x, lo, hi), p| (x.max(p.at_s), lo.min(p.min), hi.max(p.max)));
    if let Some(t) = threshold(kind) {
        (y_min, y_max) = (y_min.min(t), y_max.max(t));
    }
    let (y_min, y_max) = if y_min.is_finite() { (y_min, y_max.max(y_min + 1e-6)) } else { (0.0, 1.0) };
    let pad = (y_max - y_min) * 0.05;
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{kind}: EGGROLL against OpenES"), ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad))
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("training time (s)").y_desc("held-out return").draw().map_err(|e| err(&e))?;
    for ((name, points), color) in curves.iter().zip([BLUE, RED]) {
        let band: Vec<(f64, f64)> = points.iter().map(|p| (p.at_s, p.max)).chain(points.iter().rev().map(|p| (p.at_s, p.min))).collect();
        chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.15).filled()))).map_err(|e| err(&e))?;
        chart
            .draw_series(LineSeries::new(points.iter().map(|p| (p.at_s, p.mean)), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!("{name} (mean, band: min..max over seeds)"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    if let Some(t) = threshold(kind) {
        let gray = BLACK.mix(0.5);
        chart
            .draw_series(LineSeries::new([(0.0, t), (x_max, t)], gray.stroke_width(1)))
            .map_err(|e| err(&e))?
            .label(format!("solved ({t})"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], gray.stroke_width(1)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
