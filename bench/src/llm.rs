//! `eggroll bench --llm CONFIG.json`: a population's generation at a Hugging Face model's shapes,
//! with random weights drawn from the seed. Every member answers the same prompt greedily (no
//! end-of-sequence stop), timed three ways on the same backend, their runs alternating: the
//! unperturbed model generating the population's sequences (plain batched inference), EGGROLL
//! (each member's rank-r noise on every projection) and OpenES (a full-rank noise matrix per
//! pair), as `--method` lists them. With `--temperature` the members sample instead (nucleus
//! sampling on the backend, `--top-p`). Generated tokens per second count every member's new
//! tokens; the prefill of the prompt is inside each run's time.
//!
//! The perturbed runs are generations as a fine-tuning epoch runs them: each one a new noise
//! epoch, with the backend's noise cache holding one epoch's low-rank factors (the trainer's
//! default, `noise_cache_mb`), so that a run's first forward draws every projection's factors and
//! its later forwards read them; the draws count in the run's time. OpenES draws its full-rank
//! matrices at every forward (the cache keeps low-rank factors only).

use crate::{BenchError, BenchOptions, LlmMethod};
use eggroll_backend::gpu::WgpuOptions;
use eggroll_backend::select::select_backend;
use eggroll_backend::Kernels;
use eggroll_llm::generate::{generate, Members, Sampling};
use eggroll_llm::model::projection_shapes;
use eggroll_llm::storage::weight_bytes;
use eggroll_llm::{Layout, Model, ModelConfig, Noise, Perturbation};
use std::path::Path;
use std::time::Instant;

/// The seed of the weights, the prompt and the noise.
const SEED: u64 = 0x5eed;

/// Runs the benchmark and prints a table (and writes `--json`).
pub(crate) fn run(args: &BenchOptions, config_path: &Path) -> Result<(), BenchError> {
    let config = ModelConfig::from_file(config_path)?;
    let population = args.population.unwrap_or(64);
    let rank = args.rank.unwrap_or(1);
    let repeats = args.repeats.unwrap_or(3);
    if population == 0 || !population.is_multiple_of(2) || rank == 0 || repeats == 0 || args.prompt_tokens == 0 || args.new_tokens == 0 {
        return Err(BenchError::InvalidArgument(format!(
            "--population {population} (even, > 0), --rank {rank}, --repeats {repeats}, --prompt-tokens {} and --new-tokens {} (> 0)",
            args.prompt_tokens, args.new_tokens
        )));
    }
    let sampling = Sampling { temperature: args.temperature, top_p: args.top_p, seed: SEED };
    if !(args.temperature.is_finite() && args.temperature >= 0.0 && args.top_p > 0.0 && args.top_p <= 1.0) {
        return Err(BenchError::InvalidArgument(format!(
            "--temperature {} (finite, >= 0; 0 is greedy) and --top-p {} (0 < P <= 1)",
            args.temperature, args.top_p
        )));
    }
    let decoding =
        if args.temperature > 0.0 { format!("sampled at temperature {}, top-p {}", args.temperature, args.top_p) } else { "greedy".into() };
    let backend = select_backend(args.backend, &WgpuOptions { autotune: !args.no_autotune, ..Default::default() })?;
    let adapter = backend.describe();
    let weights = args.weight_dtype.resolve(&backend, config.dtype)?;
    eprintln!(
        "eggroll bench --llm: {} at {} ({} layers, hidden {}, vocabulary {}), N = {population}, rank {rank}, {} + {} tokens, on {}, weights in {}",
        config.family.name(),
        config_path.display(),
        config.layers,
        config.hidden,
        config.vocab,
        args.prompt_tokens,
        args.new_tokens,
        adapter.name,
        weights,
    );
    let model = Model::random_with(&backend, config.clone(), SEED, Layout { weights, ..Layout::default() })?;
    let prompt: Vec<u32> = (0..args.prompt_tokens as u64).map(|i| ((i * 2_654_435_761 + SEED) % config.vocab as u64) as u32).collect();
    let perturbed = |noise| Perturbation { noise, sigma: 1e-3, seed: SEED, noise_epoch: 0, population, first_member: 0 };
    // (name, the members' noise or none for the unperturbed model, prompts)
    type Run = (&'static str, Option<Perturbation>, Vec<Vec<u32>>);
    let mut runs: Vec<Run> = vec![("inference", None, vec![prompt.clone(); population])];
    for method in &args.method {
        let run = match method {
            LlmMethod::Eggroll => ("eggroll", perturbed(Noise::LowRank { rank })),
            LlmMethod::Openes => ("openes", perturbed(Noise::FullRank)),
        };
        if !runs.iter().any(|r| r.0 == run.0) {
            runs.push((run.0, Some(run.1), vec![prompt.clone()]));
        }
    }
    // One noise epoch's low-rank factors: every projection's (m + n) r draws per pair, 4 bytes each.
    let per_pair: usize = projection_shapes(&config).iter().map(|[m, n]| (m + n) * rank).sum::<usize>() * config.layers;
    let cache_bytes = (per_pair as u64).saturating_mul((population / 2) as u64).saturating_mul(4);
    backend.set_noise_cache(cache_bytes);
    // One untimed run of each (page faults, shader compilation, autotuning), then the timed
    // ones in turn.
    let mut seconds: Vec<Vec<f64>> = vec![Vec::new(); runs.len()];
    for round in 0..=repeats {
        for (k, (_, perturbation, prompts)) in runs.iter_mut().enumerate() {
            // Each run its own noise epoch, drawn afresh (the cache holds only the last one).
            let members = perturbation.map_or(Members::Mean, |p| Members::Population(Perturbation { noise_epoch: round as u32, ..p }));
            let started = Instant::now();
            let answers = generate(&backend, &model, prompts, members, args.new_tokens, &[], sampling)?;
            let elapsed = started.elapsed().as_secs_f64();
            let tokens: usize = answers.iter().flatten().map(|c| c.tokens.len()).sum();
            assert_eq!(tokens, population * args.new_tokens, "every member generates every token");
            if round > 0 {
                seconds[k].push(elapsed);
            }
        }
    }
    let best = |k: usize| seconds[k].iter().copied().fold(f64::INFINITY, f64::min);
    let tokens = (population * args.new_tokens) as f64;
    let flops = generation_flops(&config, population, args.prompt_tokens, args.new_tokens);
    let peak = peak_resident_bytes();
    println!(
        "Adapter: **{}** ({}); best of {repeats} runs after a warm-up; N = {population}, rank {rank}, prompt {} tokens, {} new tokens, {decoding}; noise cache {:.1} MiB (one epoch's factors, drawn in each run)",
        adapter.name,
        adapter.backend,
        args.prompt_tokens,
        args.new_tokens,
        cache_bytes as f64 / 1048576.0
    );
    println!();
    println!("| generation | seconds | generated tokens/s | GFLOP/s | fraction of inference |");
    println!("|---|---:|---:|---:|---:|");
    let mut json = serde_json::Map::new();
    for (k, (name, ..)) in runs.iter().enumerate() {
        let s = best(k);
        println!("| {name} | {s:.3} | {:.1} | {:.1} | {:.3} |", tokens / s, flops / s / 1e9, best(0) / s);
        json.insert(format!("{name}_seconds"), serde_json::json!(s));
        json.insert(format!("{name}_tokens_per_second"), serde_json::json!(tokens / s));
        if k > 0 {
            json.insert(format!("{name}_fraction_of_inference"), serde_json::json!(best(0) / s));
        }
    }
    if let Some(peak) = peak {
        println!(
            "\npeak resident memory: {:.1} MiB (weights {:.1} MiB, the matrices in {weights})",
            peak as f64 / 1048576.0,
            weight_bytes(&config, weights) as f64 / 1048576.0
        );
        json.insert("peak_resident_bytes".into(), serde_json::json!(peak));
    }
    let common = serde_json::json!({
        "model_type": config.family.name(), "config": config_path.display().to_string(), "adapter": adapter.name,
        "backend": backend.kind(), "population": population, "rank": rank, "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens, "repeats": repeats, "temperature": args.temperature, "top_p": args.top_p,
        "noise_cache": "on", "weight_dtype": weights.name(),
        // The first --method's (eggroll by default).
        "fraction_of_inference": best(0) / best(1),
        "gflop_per_generation": flops / 1e9, "parameters": config.parameter_count(),
    });
    for (k, v) in common.as_object().expect("an object") {
        json.insert(k.clone(), v.clone());
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(json)).map_err(|e| BenchError::output(path, e))?;
        std::fs::write(path, text).map_err(|e| BenchError::output(path, e))?;
    }
    Ok(())
}

/// The multiply-adds of a generation, times two: every projection and the head for each
/// generated row (the prompt's prefill counts every prompt row, its head only the last), and
/// attention's scores and weighted sums over the positions each row sees.
fn generation_flops(c: &ModelConfig, population: usize, prompt: usize, new: usize) -> f64 {
    let (h, q, kv, i) = ((c.hidden) as f64, (c.heads * c.head_dim) as f64, (c.kv_heads * c.head_dim) as f64, c.intermediate as f64);
    let per_row = c.layers as f64 * (h * q + 2.0 * h * kv + q * h + 3.0 * h * i);
    let rows = (prompt + new - 1) as f64;
    let heads = (population as f64) * c.layers as f64 * q;
    // Row t attends to t + 1 positions: sum over the rows of 2 multiply-adds per position and value.
    let positions: f64 = (1..=prompt + new - 1).map(|t| t as f64).sum();
    let attention = heads * 2.0 * positions;
    let head = new as f64 * h * c.vocab as f64;
    2.0 * population as f64 * (rows * per_row + head) + 2.0 * attention
}

/// The peak resident memory of this process (`VmHWM` of `/proc/self/status`), where Linux tells.
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    Some(line.split_whitespace().next()?.parse::<u64>().ok()? * 1024)
}
