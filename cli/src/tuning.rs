//! A fine-tuning run of `eggroll finetune`: the command line read and checked once ([`Setup`]),
//! the trainers of one process and how they share the population ([`Replicas`]: one alone or as
//! an MPI rank, or one per adapter on its own thread), the verifier of each, the loop of epochs
//! with its held-out evaluations, metrics log and checkpoints, and the report.

use crate::args::{DtypeArg, FinetuneArgs, FinetuneTask};
use crate::checkpoint::{self, Manifest};
use crate::crash::crash_point;
use crate::drive::{check_manifest, progress};
use crate::error::{CliError, Result};
use crate::metrics::MetricsLog;
use crate::replicas::{ThreadExchange, RELEASED};
use eggroll::checkpoint::fnv1a64;
use eggroll::config::{EsConfig, OptimizerKind, Shaping};
use eggroll::limits::host_memory_limit;
use eggroll::session::Exchange;
use eggroll::EggrollError;
use eggroll_backend::select::SelectedBackend;
use eggroll_backend::transformer::Transformer;
use eggroll_backend::{DType, Kernels};
use eggroll_llm::arithmetic::{Arithmetic, ArithmeticTask};
use eggroll_llm::config::StoredDtype;
use eggroll_llm::countdown::CountdownTask;
use eggroll_llm::finetune::{epoch, evaluate, Decoding, EpochOutcome, Evaluation};
use eggroll_llm::jsonl::JsonlTask;
use eggroll_llm::params::{registry, Role};
use eggroll_llm::storage::weight_bytes_of;
use eggroll_llm::verifier::RewardCommand;
use eggroll_llm::{
    FineTuning, GenerationConfig, Included, Layout, LlmError, MemoryNeed, ModelConfig, Problem, Task, TextTokenizer, WeightDtype, Weights,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A reward function given by a program that embeds `finetune`: the rewards of `completions[i]`
/// to `problems[i]`, one per completion.
pub type RewardFn = dyn Fn(&[Problem], &[String]) -> eggroll_llm::Result<Vec<f32>> + Send + Sync;

/// Called after each epoch with its metrics line (`epoch`, `mean_reward`, `accuracy` and
/// `eval_reward` when evaluated, `mean_completion_tokens`, `ms`); an error stops the run.
pub type OnEpoch<'a> = dyn FnMut(&serde_json::Value) -> Result<()> + 'a;

/// What a program that embeds `finetune` gives in place of `--data`, `--eval-data` and the
/// verifier (with `--task jsonl`): problems in memory and a reward function.
pub struct Embedded {
    /// The training problems.
    pub train: Vec<Problem>,
    /// The held-out problems; none: a share of `train` set aside by the seed, as without
    /// `--eval-data`.
    pub eval: Option<Vec<Problem>>,
    /// Scores every completion, on each replica's thread.
    pub reward: Arc<RewardFn>,
}

/// What a run reports at its end beyond its tensors, kept in each checkpoint so that a resumed
/// run reports what an uninterrupted one would.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Progress {
    /// The held-out evaluation before the first epoch.
    initial: Scores,
    /// The latest held-out evaluation.
    last: Scores,
    /// Seconds spent in epochs (evaluations excluded).
    train_seconds: f64,
    /// Tokens the population generated in those epochs.
    generated_tokens: u64,
}

/// An [`Evaluation`] as a checkpoint stores it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Scores {
    reward: f64,
    accuracy: f64,
}

impl From<Evaluation> for Scores {
    fn from(e: Evaluation) -> Self {
        Scores { reward: e.reward, accuracy: e.accuracy }
    }
}

/// The trainers of one process and how they share the population.
pub(crate) enum Replicas<'e> {
    /// One trainer, with the exchange of its process (the whole population alone, or an MPI
    /// rank's share).
    One(Box<FineTuning<SelectedBackend>>, &'e mut dyn Exchange<f32>),
    /// One trainer per adapter, each on its own thread with its end of the in-process exchange.
    Threads(Vec<(FineTuning<SelectedBackend>, ThreadExchange)>),
}

impl Replicas<'_> {
    /// The first trainer: the one that evaluates, checkpoints and writes `--out`.
    fn lead(&self) -> &FineTuning<SelectedBackend> {
        match self {
            Replicas::One(tuning, _) => tuning,
            Replicas::Threads(all) => &all[0].0,
        }
    }

    /// The adapters, joined by ` + `.
    fn adapter(&self) -> String {
        match self {
            Replicas::One(tuning, _) => tuning.backend().describe().name,
            Replicas::Threads(all) => all.iter().map(|(t, _)| t.backend().describe().name).collect::<Vec<_>>().join(" + "),
        }
    }

    /// Every trainer.
    fn each(&mut self) -> Vec<&mut FineTuning<SelectedBackend>> {
        match self {
            Replicas::One(tuning, _) => vec![&mut **tuning],
            Replicas::Threads(all) => all.iter_mut().map(|(t, _)| t).collect(),
        }
    }
}

/// How one trainer's answers are scored: by the task's verifier, by its own reward command, or
/// by the embedding's reward function.
enum Verifier {
    Task,
    Command(RewardCommand),
    Function(Arc<RewardFn>),
}

impl Verifier {
    /// The embedding's `reward`, else the `--reward-cmd` command started, else the task's
    /// verifier.
    fn start(args: &FinetuneArgs, reward: Option<&Arc<RewardFn>>) -> Result<Self> {
        Ok(match (reward, &args.reward_cmd) {
            (Some(reward), _) => Verifier::Function(Arc::clone(reward)),
            (None, Some(cmd)) => Verifier::Command(RewardCommand::start(cmd, Duration::from_secs_f64(args.reward_timeout))?),
            (None, None) => Verifier::Task,
        })
    }

    /// The rewards of `completions[i]` to `problems[i]`.
    fn score(&mut self, task: &dyn Task, problems: &[Problem], completions: &[String]) -> eggroll_llm::Result<Vec<f32>> {
        match self {
            Verifier::Command(command) => command.score(problems, completions),
            Verifier::Function(reward) => {
                let rewards = reward(problems, completions)?;
                if rewards.len() != completions.len() {
                    return Err(LlmError::Request(format!(
                        "the reward function returned {} rewards for {} completions",
                        rewards.len(),
                        completions.len()
                    )));
                }
                Ok(rewards)
            }
            Verifier::Task => Ok(problems.iter().zip(completions).map(|(p, c)| task.reward(p, c)).collect()),
        }
    }
}

/// Everything a run reads and checks before it trains: the configuration, the task, the model's
/// files and the settings a checkpoint records.
pub(crate) struct Setup {
    /// The trainer's configuration.
    pub(crate) config: EsConfig,
    task: Box<dyn Task>,
    model_config: ModelConfig,
    tokenizer: TextTokenizer,
    eos: Vec<u32>,
    /// The folder's weights, or none with `--random-weights`.
    weights: Option<Weights>,
    max_tokens: usize,
    longest: usize,
    prompts_per_epoch: usize,
    out_dtype: StoredDtype,
    /// The tensors beyond the projections that the trainer holds.
    included: Included,
    /// The embedding's reward function, in place of the task's verifier and `--reward-cmd`.
    reward: Option<Arc<RewardFn>>,
    /// What a checkpoint must share with the run that resumes it, beyond the configuration.
    pub(crate) settings: serde_json::Value,
}

impl Setup {
    /// Reads and checks the command line's configuration, task (or the `embedded` problems) and
    /// model folder.
    pub(crate) fn load(args: &FinetuneArgs, embedded: Option<Embedded>) -> Result<Self> {
        let config = args.config.overlay(defaults())?;
        let max_tokens = args.max_tokens.unwrap_or(if args.task == FinetuneTask::Arithmetic { 8 } else { 256 });
        if args.prompts_per_epoch == 0 || max_tokens == 0 || config.epochs == 0 {
            return Err(CliError::new(format!(
                "--prompts-per-epoch {}, --max-tokens {max_tokens} and --epochs {} must each be at least 1",
                args.prompts_per_epoch, config.epochs
            )));
        }
        if !(args.reward_timeout.is_finite() && args.reward_timeout > 0.0) {
            return Err(CliError::new(format!("--reward-timeout {}: a positive number of seconds", args.reward_timeout)));
        }
        config.validate()?;
        let (task, reward, problems_fnv1a64) = match embedded {
            Some(embedded) => {
                if args.task != FinetuneTask::Jsonl || args.data.is_some() || args.eval_data.is_some() || args.reward_cmd.is_some() {
                    return Err(CliError::new("problems given in memory take the place of --task, --data, --eval-data and --reward-cmd"));
                }
                let hash = fnv1a64(format!("{:?}{:?}", embedded.train, embedded.eval).as_bytes());
                let task: Box<dyn Task> = Box::new(JsonlTask::new(embedded.train, embedded.eval, config.seed)?);
                (task, Some(embedded.reward), Some(hash))
            }
            None => (load_task(args, config.seed)?, None, None),
        };
        let model_config = ModelConfig::load(&args.model)?;
        let tokenizer = TextTokenizer::load(&args.model)?;
        let generation = GenerationConfig::load(&args.model, &model_config)?;
        let weights = if args.random_weights {
            if args.out.is_some() {
                return Err(CliError::new("--out writes a trained model: not with --random-weights"));
            }
            None
        } else {
            let weights = Weights::open(&args.model)?;
            weights.check(&model_config)?;
            Some(weights)
        };
        let out_dtype = match args.out_dtype {
            Some(DtypeArg::F32) => StoredDtype::F32,
            Some(DtypeArg::Bf16) => StoredDtype::Bf16,
            Some(DtypeArg::F16) => StoredDtype::F16,
            None => weights.as_ref().and_then(Weights::dtype).unwrap_or(StoredDtype::F32),
        };
        let mut settings = settings(args, &*task, max_tokens)?;
        if let Some(hash) = problems_fnv1a64 {
            settings["problems_fnv1a64"] = json!(hash);
        }
        let mut setup = Setup {
            config,
            task,
            model_config,
            tokenizer,
            eos: generation.eos_token_ids,
            weights,
            max_tokens,
            longest: 1,
            prompts_per_epoch: args.prompts_per_epoch,
            out_dtype,
            included: args.include,
            reward,
            settings,
        };
        setup.longest = longest_prompt(&setup.decoding(args.chat), &*setup.task, args.prompts_per_epoch, setup.model_config.max_positions)?;
        Ok(setup)
    }

    /// How prompts are encoded and answers generated.
    fn decoding(&self, chat: bool) -> Decoding<'_> {
        Decoding { tokenizer: &self.tokenizer, eos: &self.eos, max_tokens: self.max_tokens, chat }
    }

    /// A trainer on `backend` that generates for `members` members at a time, after checking
    /// that the epoch's generation and a held-out slice fit the machine's memory and the
    /// adapter's limits (the trainer also keeps a gradient estimate of every tensor it trains,
    /// and Adam's two moments).
    pub(crate) fn replica(&self, backend: SelectedBackend, members: usize) -> Result<FineTuning<SelectedBackend>> {
        // The frozen embedding and head as the checkpoint stores them where the backend holds
        // that type (the same values; drawn weights stay f32).
        let tables = match &self.weights {
            Some(weights) => WeightDtype::Auto.resolve(&backend, weights.dtype())?,
            None => DType::F32,
        };
        let mut need = MemoryNeed::of(&self.model_config, DType::F32, members, self.prompts_per_epoch, 2 * self.longest, self.max_tokens);
        // Every tensor once, as `weight_bytes_of` stores it, except the included tables and
        // norms, which the trainer holds in f32 instead; and for every tensor the trainer holds,
        // its gradient estimate (and Adam's two moments).
        need.weights = weight_bytes_of(&self.model_config, DType::F32, tables);
        let per_value = if matches!(self.config.optimizer, OptimizerKind::Sgd) { 1 } else { 3 };
        for param in registry(&self.model_config).iter().filter(|p| self.included.trains(&self.model_config, p)) {
            let values = param.shape.iter().product::<usize>() as u64;
            if param.role == Role::Embedding {
                need.weights = need.weights - values * tables.bytes() as u64 + values * 4;
            }
            need.weights += values * per_value * 4;
        }
        need.check(host_memory_limit().map(|l| (l.bytes, l.source)), backend.memory_limits())?;
        let (model_config, config) = (self.model_config.clone(), self.config.clone());
        Ok(match &self.weights {
            Some(weights) => {
                let layout = Layout { weights: tables, ..Layout::default() };
                FineTuning::from_weights_with(backend, model_config, weights, config, layout, self.included)?
            }
            None => FineTuning::random(backend, model_config, config.seed, config, self.included)?,
        })
    }

    /// Trains `replicas` for the configuration's epochs. The `lead` process (the only one, or
    /// rank 0 of a job) evaluates, writes the metrics log, checkpoints and `--out`, calls
    /// `on_epoch`, and returns the summary ([`summary`]); the others only train.
    pub(crate) fn train(
        &self, args: &FinetuneArgs, mut replicas: Replicas, lead: bool, on_epoch: &mut OnEpoch,
    ) -> Result<Option<serde_json::Value>> {
        let decoding = self.decoding(args.chat);
        let task = &*self.task;
        let threads = match &replicas {
            Replicas::One(..) => 1,
            Replicas::Threads(all) => all.len(),
        };
        let mut verifiers = (0..threads).map(|_| Verifier::start(args, self.reward.as_ref())).collect::<Result<Vec<_>>>()?;
        let evaluate_now = |tuning: &FineTuning<SelectedBackend>, verifier: &mut Verifier| {
            let mut verify = |p: &[Problem], c: &[String]| verifier.score(task, p, c);
            evaluate(tuning, tuning.backend(), decoding, task.eval_set(), task.full_reward(), &mut verify).map(Scores::from)
        };

        let ckpt_dir = args.checkpoint.as_deref().or(args.resume.as_deref()).filter(|_| lead);
        let (mut state, mut log) = match &args.resume {
            Some(dir) => {
                let loaded = checkpoint::load(dir)?;
                let manifest = &loaded.manifest;
                check_manifest(manifest, "finetune", &self.settings, &self.config, dir)?;
                let state: Progress = serde_json::from_value(manifest.progress.clone())
                    .map_err(|e| loaded.corrupt(format!("state.json: the run's progress: {e}")))?;
                for tuning in replicas.each() {
                    tuning.load_state(&loaded.model, manifest.epoch).map_err(|e| match e {
                        LlmError::Trainer(EggrollError::CorruptState(why)) => loaded.corrupt(format!("{}: {why}", checkpoint::MODEL)),
                        other => CliError::new(format!("cannot resume from {}: {other}", dir.display())),
                    })?;
                }
                let log = match args.metrics.as_deref().filter(|_| lead) {
                    Some(path) => Some(MetricsLog::reopen(path, manifest.metrics_bytes, manifest.epoch)?.0),
                    None => None,
                };
                (state, log)
            }
            None => {
                let log = args.metrics.as_deref().filter(|_| lead).map(MetricsLog::create).transpose()?;
                let none = Scores { reward: 0.0, accuracy: 0.0 };
                let initial = if lead { evaluate_now(replicas.lead(), &mut verifiers[0])? } else { none };
                (Progress { initial, last: initial, train_seconds: 0.0, generated_tokens: 0 }, log)
            }
        };
        if let Some(dir) = ckpt_dir.filter(|d| args.resume.as_deref() != Some(*d)) {
            checkpoint::start(dir)?;
        }

        let epochs = self.config.epochs;
        let start = replicas.lead().trainer().epoch();
        let bar = progress(epochs, start, !lead);
        for e in start..epochs {
            let problems = task.batch(e, args.prompts_per_epoch)?;
            let started = Instant::now();
            let outcome = match &mut replicas {
                Replicas::One(tuning, exchange) => {
                    let verifier = &mut verifiers[0];
                    let mut verify = |p: &[Problem], c: &[String]| verifier.score(task, p, c);
                    epoch(tuning, decoding, &problems, args.normalize_std, &mut verify, *exchange)?
                }
                Replicas::Threads(all) => threaded_epoch(all, &mut verifiers, task, decoding, &problems, args.normalize_std)?,
            };
            let ms = started.elapsed().as_secs_f64() * 1e3;
            state.train_seconds += ms / 1e3;
            state.generated_tokens += outcome.generated_tokens as u64;
            let done = e + 1;
            let evaluation = (lead && (done == epochs || (args.eval_every > 0 && done.is_multiple_of(args.eval_every))))
                .then(|| evaluate_now(replicas.lead(), &mut verifiers[0]))
                .transpose()?;
            if let Some(evaluation) = evaluation {
                state.last = evaluation;
            }
            let mut line = json!({
                "epoch": done, "mean_reward": outcome.mean_reward,
                "mean_completion_tokens": outcome.mean_completion_tokens, "ms": ms,
            });
            if let Some(Scores { reward, accuracy }) = evaluation {
                line["accuracy"] = json!(accuracy);
                line["eval_reward"] = json!(reward);
            }
            if let Some(log) = log.as_mut() {
                log.append_line(done, &line)?;
            }
            if lead {
                on_epoch(&line)?;
            }
            crash_point(done, "epoch");
            if let Some(dir) = ckpt_dir.filter(|_| done.is_multiple_of(args.checkpoint_every) || done == epochs) {
                save(replicas.lead(), dir, &self.settings, &state, log.as_mut())?;
            }
            bar.set_message(format!("reward {:.3}, held-out accuracy {:.3}", outcome.mean_reward, state.last.accuracy));
            bar.inc(1);
        }
        bar.finish_and_clear();
        if !lead {
            return Ok(None);
        }
        if let Some(out) = &args.out {
            replicas.lead().save_pretrained(&args.model, out, self.out_dtype)?;
        }
        Ok(Some(summary(args, replicas.lead(), &state, task.name(), replicas.lead().backend().kind(), &replicas.adapter())))
    }
}

/// One epoch on every replica at once, each on its own thread with its verifier; the first
/// error any meets (the others' waits on it released).
fn threaded_epoch(
    all: &mut [(FineTuning<SelectedBackend>, ThreadExchange)], verifiers: &mut [Verifier], task: &dyn Task, decoding: Decoding,
    problems: &[Problem], normalize_std: bool,
) -> Result<EpochOutcome> {
    let outcomes: Vec<eggroll_llm::Result<EpochOutcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = all
            .iter_mut()
            .zip(verifiers.iter_mut())
            .map(|((tuning, exchange), verifier)| {
                s.spawn(move || {
                    let mut verify = |p: &[Problem], c: &[String]| verifier.score(task, p, c);
                    let outcome = epoch(tuning, decoding, problems, normalize_std, &mut verify, exchange);
                    if outcome.is_err() {
                        exchange.fail();
                    }
                    outcome
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(LlmError::Request("a device's thread panicked".into())))).collect()
    });
    // A replica's own error before the one it caused in the others.
    let mut first = None;
    for outcome in outcomes {
        match outcome {
            Ok(o) => first = first.or(Some(Ok(o))),
            Err(e) if e.to_string().contains(RELEASED) => first = first.or(Some(Err(e))),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(first.expect("at least one replica")?)
}

/// The run's summary: `task, model, method, backend, adapter, epochs, population, rank, sigma,
/// initial_eval_reward, final_eval_reward, initial_eval_accuracy, final_eval_accuracy,
/// tokens_per_second, ms_per_epoch`.
fn summary<B: Transformer>(
    args: &FinetuneArgs, tuning: &FineTuning<B>, state: &Progress, task: &str, kind: &str, adapter: &str,
) -> serde_json::Value {
    let config = tuning.trainer().config();
    let ms_per_epoch = state.train_seconds * 1e3 / f64::from(config.epochs);
    let tokens_per_second = state.generated_tokens as f64 / state.train_seconds.max(1e-9);
    let (initial, last) = (state.initial, state.last);
    json!({
        "task": task, "model": args.model.display().to_string(), "method": config.method.to_string(),
        "backend": kind, "adapter": adapter, "epochs": config.epochs, "population": config.population,
        "rank": config.rank, "sigma": config.sigma, "initial_eval_reward": initial.reward,
        "final_eval_reward": last.reward, "initial_eval_accuracy": initial.accuracy,
        "final_eval_accuracy": last.accuracy, "tokens_per_second": tokens_per_second, "ms_per_epoch": ms_per_epoch,
        "include": tuning.included().words(),
    })
}

/// Prints the `summary`: the JSON object with `--json`, else a line (two with `--out`).
pub(crate) fn report(args: &FinetuneArgs, summary: &serde_json::Value) {
    if args.json {
        println!("{summary}");
        return;
    }
    let f = |key: &str| summary[key].as_f64().unwrap_or(f64::NAN);
    println!(
        "held-out accuracy {:.3} -> {:.3} (reward {:.3} -> {:.3}) after {} epochs, {:.0} ms per epoch, {:.1} generated tokens/s",
        f("initial_eval_accuracy"),
        f("final_eval_accuracy"),
        f("initial_eval_reward"),
        f("final_eval_reward"),
        summary["epochs"],
        f("ms_per_epoch"),
        f("tokens_per_second"),
    );
    if let Some(out) = &args.out {
        println!("wrote {}", out.display());
    }
}

/// The task `--task` names, with its settings checked.
fn load_task(args: &FinetuneArgs, seed: u64) -> Result<Box<dyn Task>> {
    if args.task != FinetuneTask::Jsonl && (args.data.is_some() || args.eval_data.is_some()) {
        return Err(CliError::new("--data and --eval-data are for --task jsonl"));
    }
    Ok(match args.task {
        FinetuneTask::Arithmetic => {
            Box::new(ArithmeticTask::new(Arithmetic { operations: args.operations.clone(), digits: args.digits }, seed)?)
        }
        FinetuneTask::Countdown => Box::new(CountdownTask::new(seed)?),
        FinetuneTask::Jsonl => {
            let data = args.data.as_deref().ok_or_else(|| CliError::new("--task jsonl needs --data FILE.jsonl"))?;
            Box::new(JsonlTask::load(data, args.eval_data.as_deref(), seed)?)
        }
    })
}

/// The tokens of the longest prompt among the held-out problems and the first epoch's batch,
/// after checking that each leaves room for `decoding.max_tokens` new tokens within the model's
/// `max_positions`.
fn longest_prompt(decoding: &Decoding, task: &dyn Task, prompts_per_epoch: usize, max_positions: usize) -> Result<usize> {
    let first = task.batch(0, prompts_per_epoch)?;
    let mut longest = 1;
    for (set, problem) in task.eval_set().iter().map(|p| ("held-out", p)).chain(first.iter().map(|p| ("training", p))) {
        let tokens = decoding.encode(&problem.prompt)?.len();
        if tokens + decoding.max_tokens > max_positions {
            return Err(CliError::new(format!(
                "the {set} prompt {:?} has {tokens} tokens: with --max-tokens {} it is beyond the model's {max_positions} positions",
                problem.prompt, decoding.max_tokens
            )));
        }
        longest = longest.max(tokens);
    }
    Ok(longest)
}

/// What a checkpoint must share with the run that resumes it beyond the trainer's
/// configuration: the model, the task and its data, and how answers are generated and
/// evaluated. The reward command is not among them: a verifier that failed may be mended (or
/// replaced) before resuming.
fn settings(args: &FinetuneArgs, task: &dyn Task, max_tokens: usize) -> Result<serde_json::Value> {
    let config = args.model.join("config.json");
    let config = std::fs::read(&config).map_err(|e| CliError::file(&config, "cannot read", e))?;
    let data = |path: &Option<std::path::PathBuf>| -> Result<Option<String>> {
        path.as_deref().map(|p| std::fs::read(p).map(|b| fnv1a64(&b)).map_err(|e| CliError::file(p, "cannot read", e))).transpose()
    };
    let mut settings = json!({
        "model": args.model.display().to_string(), "model_config_fnv1a64": fnv1a64(&config), "task": task.name(),
        "operations": args.operations.iter().collect::<String>(), "digits": args.digits,
        "data_fnv1a64": data(&args.data)?, "eval_data_fnv1a64": data(&args.eval_data)?,
        "prompts_per_epoch": args.prompts_per_epoch, "max_tokens": max_tokens, "normalize_std": args.normalize_std,
        "chat": args.chat, "eval_every": args.eval_every, "random_weights": args.random_weights,
    });
    // Recorded only when some tensor beyond the projections is trained, so that the checkpoints
    // of runs that train the projections alone read as they always have.
    if args.include != Included::default() {
        settings["include"] = json!(args.include.to_string());
    }
    Ok(settings)
}

/// Saves the trainer's state and the run's progress into `dir` as the checkpoint of its epoch.
fn save<B: Transformer>(
    tuning: &FineTuning<B>, dir: &Path, settings: &serde_json::Value, state: &Progress, log: Option<&mut MetricsLog>,
) -> Result<()> {
    let trainer = tuning.trainer();
    let manifest = Manifest {
        format_version: checkpoint::FORMAT_VERSION,
        task: "finetune".into(),
        settings: settings.clone(),
        progress: serde_json::to_value(state).map_err(CliError::new)?,
        epoch: trainer.epoch(),
        seed: trainer.config().seed,
        config: trainer.config().clone(),
        metrics_bytes: log.map(MetricsLog::sync).transpose()?,
        model_bytes: 0,
        model_fnv1a64: String::new(),
    };
    checkpoint::save(dir, manifest, &tuning.save_state()?)
}

/// `finetune`'s trainer configuration before `--config` and the flags: the authors' transformer
/// runs' rank 1 and σ, a population and learning rate that fit this CPU for the shipped model,
/// and the fitness kept at its scale (each prompt's rewards are already centred), so that an
/// epoch whose members answer alike takes a small step.
fn defaults() -> EsConfig {
    EsConfig {
        population: 128,
        rank: 1,
        sigma: 1e-3,
        lr: 3.0,
        optimizer: OptimizerKind::Sgd,
        epochs: 100,
        shaping: Shaping::Centered,
        ..EsConfig::default()
    }
}
