//! The regression task's training written out as an ask/tell loop over the public API, the loop
//! an app (or the Python package, `python/benchmarks/regression_loop.py`) runs itself: each epoch
//! `population_forward` of every member on its own point, fitness `-(ŷ - y)²` on the host, then
//! `tell`. Prints one JSON object: the time per epoch and the mean model's final losses.
//!
//! The model and configuration are the built-in `regression` task's: an MLP 1 → 64 → 64 → 64 → 1
//! (the task's `pqn`, `relu(layer_norm(x))`, between layers, or with `--activation` a plain
//! activation, which the Python package's `Mlp` can express), target `y = x² + x + 1`, N = 4096,
//! rank 1, σ = lr = 1 with SGD, both decaying linearly to 0 over the run's epochs, groups of 128
//! members z-scored with the global variance, new noise every epoch. Each epoch takes the next
//! N / 128 training points (cycling through 1024) and gives point g to the members of group g.
//!
//! The data are not the task's (it draws them from its seed's PCG64 stream, which Python cannot
//! reproduce) but points both languages compute exactly alike from a formula (f64 arithmetic, then
//! rounded to f32): training point i is `-10 + 20 frac((i + 1/2) φ)`, φ = 0.6180339887498949
//! (the golden ratio's fraction), test point i the same with √2 - 1 = 0.41421356237309515;
//! 1024 of each, a low-discrepancy spread over [-10, 10].
//!
//! Run: `cargo run --release -p eggroll --example regression_loop -- [--population 4096]
//! [--epochs 1000] [--method eggroll|openes] [--seed 0] [--activation pqn|tanh|relu|silu]`
//! (the CPU backend).

use eggroll::config::Method;
use eggroll::tasks::Regression;
use eggroll::{Activation, Backend, CpuBackend, EsConfig, FloatTrainer, InputLayout, Mlp, Task};
use std::time::Instant;

/// Training and test points.
const POINTS: usize = 1024;
/// Members per fitness group.
const GROUP_SIZE: usize = 128;
/// Step of the training points' sequence.
const TRAIN_STEP: f64 = 0.618_033_988_749_894_9;
/// Step of the test points' sequence.
const TEST_STEP: f64 = 0.414_213_562_373_095_15;

/// The command line.
struct Options {
    population: usize,
    epochs: u32,
    method: Method,
    seed: u64,
    activation: String,
}

impl Options {
    /// Parses `--flag value` pairs; an error names the offending flag.
    fn parse() -> Result<Self, String> {
        let mut options = Self { population: 4096, epochs: 1000, method: Method::Eggroll, seed: 0, activation: "pqn".into() };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
            match flag.as_str() {
                "--population" => options.population = value.parse().map_err(|e| bad(&e))?,
                "--epochs" => options.epochs = value.parse().map_err(|e| bad(&e))?,
                "--method" => options.method = value.parse().map_err(|e| bad(&e))?,
                "--seed" => options.seed = value.parse().map_err(|e| bad(&e))?,
                "--activation" => options.activation = value,
                _ => return Err(format!("unknown flag {flag}; expected --population, --epochs, --method, --seed or --activation")),
            }
        }
        if options.epochs == 0 {
            return Err("--epochs must be at least 1".into());
        }
        Ok(options)
    }
}

/// `count` points `-10 + 20 frac((i + 1/2) step)`, computed in f64 and rounded to f32.
fn points(step: f64, count: usize) -> Vec<f32> {
    (0..count).map(|i| (-10.0 + 20.0 * ((i as f64 + 0.5) * step).fract()) as f32).collect()
}

/// The function the network learns.
fn target(x: f32) -> f32 {
    x * x + x + 1.0
}

/// Mean squared error of `pred` against the targets of `x`.
fn mse(pred: &[f32], x: &[f32]) -> f32 {
    pred.iter().zip(x).map(|(&p, &x)| (p - target(x)).powi(2)).sum::<f32>() / x.len() as f32
}

/// The MLP 1 → 64 → 64 → 64 → 1 with `activation` between its linear layers (pqn: the task's
/// own model).
fn model(activation: &str) -> Result<Mlp, String> {
    let mut builder = Mlp::builder(1);
    for _ in 0..3 {
        builder = builder.linear(64);
        builder = match activation {
            "pqn" => builder.pqn(),
            "tanh" => builder.activation(Activation::Tanh),
            "relu" => builder.activation(Activation::Relu),
            "silu" => builder.activation(Activation::Silu),
            other => return Err(format!("--activation {other}: expected pqn, tanh, relu or silu")),
        };
    }
    builder.linear(1).build().map_err(|e| e.to_string())
}

/// The name the backend gives its device (the CPU backend: its thread count).
fn device_name<B: Backend>(backend: &B) -> String {
    backend.describe().name
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = Options::parse()?;
    let (train_x, test_x) = (points(TRAIN_STEP, POINTS), points(TEST_STEP, POINTS));
    // The regression task's defaults, the schedules' horizon being this run's length.
    let task = Regression::new(options.seed);
    let config = EsConfig {
        population: options.population,
        epochs: options.epochs,
        method: options.method,
        seed: options.seed,
        ..task.default_config()
    };
    assert_eq!(config.group_size, GROUP_SIZE, "the regression task's groups");
    let model = model(&options.activation)?;
    if options.activation == "pqn" {
        assert_eq!(model, task.model(), "the regression task's model");
    }
    let backend = CpuBackend::new();
    let device = device_name(&backend);
    let mut es = FloatTrainer::new(backend, model, config)?;
    let start_test_loss = mse(&es.forward_mean(&test_x, POINTS)?, &test_x);

    let (n, groups) = (options.population, options.population / GROUP_SIZE);
    let mut batch = Vec::new();
    let started = Instant::now();
    for epoch in 0..options.epochs as usize {
        batch = (0..groups).map(|g| train_x[(epoch * groups + g) % POINTS]).collect();
        let x: Vec<f32> = (0..n).map(|member| batch[member / GROUP_SIZE]).collect();
        let y = es.population_forward(&x, InputLayout::PerMember, 1)?; // N x 1 row x 1 output
        let fitness: Vec<f32> = y.iter().zip(&x).map(|(&pred, &x)| -(pred - target(x)).powi(2)).collect();
        es.tell(&fitness)?;
    }
    let seconds = started.elapsed().as_secs_f64();

    let final_train_loss = mse(&es.forward_mean(&batch, batch.len())?, &batch);
    let final_test_loss = mse(&es.forward_mean(&test_x, POINTS)?, &test_x);
    let report = serde_json::json!({
        "impl": "rust",
        "method": options.method.to_string(),
        "population": n,
        "epochs": options.epochs,
        "seed": options.seed,
        "activation": options.activation,
        "sizes": [1, 64, 64, 64, 1],
        "backend": "cpu",
        "device": device,
        "ms_per_epoch": seconds * 1e3 / f64::from(options.epochs),
        "total_s": seconds,
        "start_test_loss": start_test_loss,
        "final_train_loss": final_train_loss,
        "final_test_loss": final_test_loss,
    });
    println!("{report}");
    Ok(())
}
