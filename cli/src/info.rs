//! `eggroll info`: the WebGPU adapters, the CPU backend, and what `--backend auto` picks; with
//! `--model`, a Hugging Face model folder's architecture, parameter count and the memory a
//! population's generation needs.

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::is_hardware;
use eggroll_backend::select::list_adapters;
use eggroll_backend::AdapterDescription;
use eggroll_backend::Kernels;
use eggroll_llm::params::{registry, Role};
use eggroll_llm::{MemoryNeed, ModelConfig, WeightDtype, Weights};
use std::path::Path;

use crate::args::InfoArgs;
use crate::error::Result;
use eggroll::limits::host_memory_limit;

/// One line describing an adapter.
pub fn describe(a: &AdapterDescription) -> String {
    let features = if a.features.is_empty() { "none".to_string() } else { a.features.join(", ") };
    format!("{} [{}, {}] driver: {}; optional features: {features}", a.name, a.backend, a.device_type, a.driver)
}

/// Prints the adapters, or with `--model` the model.
pub fn run(args: &InfoArgs) -> Result<()> {
    match &args.model {
        Some(dir) => model(dir, args.population, args.weight_dtype),
        None => {
            adapters();
            Ok(())
        }
    }
}

/// Prints a model folder's architecture, parameters and memory (its matrices held as `weights`
/// asks: `auto` is the checkpoint's own dtype), without loading its weights.
fn model(dir: &Path, population: usize, weights: WeightDtype) -> Result<()> {
    let config = ModelConfig::load(dir)?;
    let stored_weights = Weights::open(dir)?;
    stored_weights.check(&config)?;
    let gib = |b: u64| format!("{:.3} GiB", b as f64 / f64::from(1u32 << 30));
    let c = &config;
    println!("model: {} ({})", dir.display(), c.family.name());
    println!(
        "layers {}, hidden {}, intermediate {}, heads {} (key/value {}, width {}), vocabulary {}, positions {}",
        c.layers, c.hidden, c.intermediate, c.heads, c.kv_heads, c.head_dim, c.vocab, c.max_positions
    );
    let rope = match c.rope.llama3 {
        Some(s) => format!("theta {}, llama3 scaling x{} from {} positions", c.rope.theta, s.factor, s.original_max_position_embeddings),
        None => format!("theta {}", c.rope.theta),
    };
    println!(
        "rope {rope}; RMSNorm eps {}; {}; q/k/v biases: {}; q/k norms: {}",
        c.rms_eps,
        if c.tied { "head tied to the embedding" } else { "separate head" },
        c.qkv_bias,
        c.qk_norm
    );
    let weights_on_disk = stored_weights.dtype();
    let stored = weights_on_disk.map_or("unknown", |d| d.name());
    println!("parameters: {} ({stored} on disk)", c.parameter_count());
    let perturbed: u64 = registry(c).iter().filter(|p| p.role == Role::Projection).map(|p| p.shape.iter().product::<usize>() as u64).sum();
    println!("perturbed by default (q, k, v, o, gate, up, down): {perturbed}");
    let (prompt, new) = (256usize.min(c.max_positions / 2), 256usize.min(c.max_positions / 2));
    let matrices = weights.wanted(weights_on_disk);
    let need = MemoryNeed::of(c, matrices, population, 1, prompt, new);
    println!(
        "memory for a population of {population}, one prompt of {prompt} tokens and {new} new: {} (weights {} with the matrices in {matrices}, KV caches {}, activations {}, logits {})",
        gib(need.total()),
        gib(need.weights),
        gib(need.caches),
        gib(need.activations),
        gib(need.logits)
    );
    match host_memory_limit() {
        Some(l) if need.total() > l.bytes => println!("host memory: {} ({}): too little", gib(l.bytes), l.source),
        Some(l) => println!("host memory: {} ({}): enough", gib(l.bytes), l.source),
        None => println!("host memory: unknown"),
    }
    Ok(())
}

/// Prints the adapters' report on stdout.
fn adapters() {
    let all = list_adapters();
    println!("wgpu adapters:");
    if all.is_empty() {
        println!("  (none)");
    }
    for (i, a) in all.iter().enumerate() {
        let kind = if is_hardware(a) { "hardware" } else { "software" };
        println!("  {i}: {} ({kind})", describe(a));
    }
    let cpu = CpuBackend::new().describe();
    println!("cpu backend:\n  {}", describe(&cpu));
    // What `select::hardware_adapter` returns, without enumerating the adapters a second time.
    match all.iter().find(|a| is_hardware(a)) {
        Some(a) => println!("--backend auto picks: wgpu, {}", a.name),
        None => println!("--backend auto picks: cpu (no hardware GPU adapter)"),
    }
}
