//! `eggroll finetune`: a Hugging Face model folder fine-tuned by EGGROLL on a task's verifiable
//! rewards (eggroll-llm's `FineTuning`, `finetune` and `arithmetic`), evaluated on held-out
//! problems before, every `--eval-every` epochs and after, and written back as a model folder
//! with `--out`.

use crate::args::{DtypeArg, FinetuneArgs, FinetuneTask, OptimizerArg};
use crate::drive::progress;
use crate::error::{CliError, Result};
use eggroll::config::{EsConfig, Shaping};
use eggroll::limits::host_memory_limit;
use eggroll_backend::gpu::WgpuOptions;
use eggroll_backend::select::select_backend;
use eggroll_backend::Kernels;
use eggroll_llm::arithmetic::Arithmetic;
use eggroll_llm::config::StoredDtype;
use eggroll_llm::finetune::{epoch, evaluate, Decoding, Evaluation};
use eggroll_llm::model::projection_shapes;
use eggroll_llm::{FineTuning, GenerationConfig, MemoryNeed, ModelConfig, TextTokenizer, Weights};
use serde_json::json;
use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::time::Instant;

/// Loads the model into a trainer, trains `--epochs` epochs and reports.
pub fn finetune(args: &FinetuneArgs) -> Result<()> {
    let FinetuneTask::Arithmetic = args.task;
    let task = Arithmetic { operations: args.operations.clone(), digits: args.digits };
    task.validate()?;
    if args.prompts_per_epoch == 0 || args.max_tokens == 0 || args.epochs == 0 {
        return Err(CliError::new(format!(
            "--prompts-per-epoch {}, --max-tokens {} and --epochs {} must each be at least 1",
            args.prompts_per_epoch, args.max_tokens, args.epochs
        )));
    }
    let eval_problems: Vec<(String, String)> = task.eval_set(args.seed).into_iter().map(|p| (p.prompt, p.answer)).collect();
    let held_out: HashSet<String> = eval_problems.iter().map(|(p, _)| p.clone()).collect();

    let model_config = ModelConfig::load(&args.model)?;
    let tokenizer = TextTokenizer::load(&args.model)?;
    let generation = GenerationConfig::load(&args.model, &model_config)?;
    let weights = Weights::open(&args.model)?;
    weights.check(&model_config)?;
    let out_dtype = match args.out_dtype {
        Some(DtypeArg::F32) => StoredDtype::F32,
        Some(DtypeArg::Bf16) => StoredDtype::Bf16,
        Some(DtypeArg::F16) => StoredDtype::F16,
        None => weights.dtype().unwrap_or(StoredDtype::F32),
    };
    let decoding = Decoding { tokenizer: &tokenizer, eos: &generation.eos_token_ids, max_tokens: args.max_tokens, chat: args.chat };
    let longest = eval_problems.iter().map(|(p, _)| decoding.encode(p).map(|ids| ids.len())).collect::<eggroll_llm::Result<Vec<_>>>()?;
    let longest = longest.into_iter().max().unwrap_or(1);

    let backend = select_backend(args.backend(), &WgpuOptions::default())?;
    // The epoch's population generation and a held-out slice of the mean model, each within
    // the machine's memory and the adapter's limits.
    // The trainer also keeps a gradient estimate of every projection, and Adam's two moments.
    let mut need = MemoryNeed::of(&model_config, args.population, args.prompts_per_epoch, 2 * longest, args.max_tokens);
    let projections: u64 = projection_shapes(&model_config).iter().map(|[m, n]| (m * n) as u64).sum::<u64>() * model_config.layers as u64;
    let per_value = if matches!(args.optimizer, OptimizerArg::Sgd) { 1 } else { 3 };
    need.weights += projections * per_value * 4;
    need.check(host_memory_limit().map(|l| (l.bytes, l.source)), backend.memory_limits())?;
    let adapter = backend.describe().name;
    let kind = backend.kind();
    let config = EsConfig {
        population: args.population,
        rank: args.rank,
        sigma: args.sigma,
        lr: args.lr,
        optimizer: args.optimizer.into(),
        method: args.method.into(),
        seed: args.seed,
        noise_reuse: args.noise_reuse,
        epochs: args.epochs,
        shaping: Shaping::ZScore,
        ..EsConfig::default()
    };
    let mut tuning = FineTuning::from_weights(backend, model_config, &weights, config)?;
    let mut reward = |completion: &str, answer: &str| Ok(Arithmetic::reward(completion, answer));
    let mut log = match &args.metrics {
        Some(path) => Some(File::create(path).map_err(|e| CliError::file(path, "cannot create the metrics log", e))?),
        None => None,
    };

    let evaluate_now = |tuning: &FineTuning<_>, reward: &mut dyn FnMut(&str, &str) -> eggroll_llm::Result<f32>| {
        evaluate(tuning, tuning.backend(), decoding, &eval_problems, 1.0, reward)
    };
    let initial = evaluate_now(&tuning, &mut reward)?;
    let bar = progress(args.epochs, 0, false);
    let (mut last, mut train_seconds, mut generated) = (initial, 0.0f64, 0usize);
    for e in 0..args.epochs {
        let problems: Vec<(String, String)> =
            task.batch(args.seed, e, args.prompts_per_epoch, &held_out).into_iter().map(|p| (p.prompt, p.answer)).collect();
        let started = Instant::now();
        let outcome = epoch(&mut tuning, decoding, &problems, args.normalize_std, &mut reward)?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        train_seconds += ms / 1e3;
        generated += outcome.generated_tokens;
        let done = e + 1;
        let evaluation = (done == args.epochs || (args.eval_every > 0 && done % args.eval_every == 0))
            .then(|| evaluate_now(&tuning, &mut reward))
            .transpose()?;
        if let Some(evaluation) = evaluation {
            last = evaluation;
        }
        if let Some(file) = log.as_mut() {
            let mut line = json!({
                "epoch": done, "mean_reward": outcome.mean_reward,
                "mean_completion_tokens": outcome.mean_completion_tokens, "ms": ms,
            });
            if let Some(Evaluation { reward, accuracy }) = evaluation {
                line["accuracy"] = json!(accuracy);
                line["eval_reward"] = json!(reward);
            }
            writeln!(file, "{line}").and_then(|_| file.flush()).map_err(|e| {
                CliError::file(args.metrics.as_deref().unwrap_or(std::path::Path::new("")), "cannot write the metrics log", e)
            })?;
        }
        bar.set_message(format!("reward {:.3}, held-out accuracy {:.3}", outcome.mean_reward, last.accuracy));
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(out) = &args.out {
        tuning.save_pretrained(&args.model, out, out_dtype)?;
    }
    let summary = json!({
        "task": "arithmetic", "model": args.model.display().to_string(), "method": tuning.trainer().config().method.to_string(),
        "backend": kind, "adapter": adapter, "epochs": args.epochs, "population": args.population, "rank": args.rank,
        "sigma": args.sigma, "initial_eval_reward": initial.reward, "final_eval_reward": last.reward,
        "initial_eval_accuracy": initial.accuracy, "final_eval_accuracy": last.accuracy,
        "tokens_per_second": generated as f64 / train_seconds.max(1e-9), "ms_per_epoch": train_seconds * 1e3 / f64::from(args.epochs),
    });
    if args.json {
        println!("{}", serde_json::to_string(&summary).map_err(CliError::new)?);
    } else {
        println!(
            "held-out accuracy {:.3} -> {:.3} (reward {:.3} -> {:.3}) after {} epochs, {:.0} ms per epoch, {:.1} generated tokens/s",
            initial.accuracy,
            last.accuracy,
            initial.reward,
            last.reward,
            args.epochs,
            train_seconds * 1e3 / f64::from(args.epochs),
            generated as f64 / train_seconds.max(1e-9)
        );
        if let Some(out) = &args.out {
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}
