//! Embedding EGGROLL in an application, two ways:
//!
//! 1. the model is one of the crate's MLPs and the fitness is computed from the whole
//!    population's outputs, which the backend produces in one batched forward;
//! 2. ask/tell: the app takes the perturbation handles, evaluates each member wherever it likes
//!    (here: on the host, with its own forward pass), and tells the trainer the fitness.
//!
//! Run: `cargo run --release -p eggroll --example embed`

use eggroll::{CpuBackend, EsConfig, FloatTrainer, InputLayout, Mlp, OptimizerKind};

/// The function the app wants its network to learn: `sin(3a) + b / 2`.
fn target(a: f32, b: f32) -> f32 {
    (3.0 * a).sin() + 0.5 * b
}

fn main() -> Result<(), eggroll::EggrollError> {
    // A fixed set of 64 input points, shared by every population member.
    let rows = 64;
    let x: Vec<f32> = (0..rows).flat_map(|i| [i as f32 / rows as f32 * 2.0 - 1.0, ((i * 7) % rows) as f32 / rows as f32]).collect();
    let y: Vec<f32> = x.chunks_exact(2).map(|p| target(p[0], p[1])).collect();
    let mse = |pred: &[f32]| pred.iter().zip(&y).map(|(p, t)| (p - t).powi(2)).sum::<f32>() / rows as f32;

    // 1. Batched: one population forward per epoch, fitness = -MSE of each member.
    let model = Mlp::builder(2).linear(32).tanh().linear(32).tanh().linear(1).build()?;
    let config =
        EsConfig { population: 256, rank: 4, sigma: 0.05, lr: 0.01, optimizer: OptimizerKind::Adam, epochs: 300, ..EsConfig::default() };
    let mut es = FloatTrainer::new(CpuBackend::new(), model, config)?;
    println!("batched: start MSE {:.4}", mse(&es.forward_mean(&x, rows)?));
    for _ in 0..es.config().epochs {
        let out = es.population_forward(&x, InputLayout::Shared, rows)?; // N x rows x 1
        let fitness: Vec<f32> = out.chunks_exact(rows).map(|member| -mse(member)).collect();
        es.tell(&fitness)?;
    }
    println!("batched: end MSE {:.4} after {} epochs", mse(&es.forward_mean(&x, rows)?), es.epoch());

    // 2. ask/tell: a linear model y = w·x + b that the app evaluates itself.
    let model = Mlp::builder(2).linear(1).build()?;
    let config = EsConfig { population: 64, sigma: 0.1, lr: 0.05, optimizer: OptimizerKind::Adam, epochs: 200, ..EsConfig::default() };
    let mut es = FloatTrainer::new(CpuBackend::new(), model, config)?;
    // The app's own forward pass of the linear model, from parameters looked up by name.
    let predict = |p: &eggroll::ParamValues| -> Vec<f32> {
        let (w, b) = (p.get("layers.0.weight").expect("a weight"), p.get("layers.0.bias").expect("a bias")[0]);
        x.chunks_exact(2).map(|q| w[0] * q[0] + w[1] * q[1] + b).collect()
    };
    for _ in 0..es.config().epochs {
        let mean = es.params()?;
        // Each member's parameters: the mean plus its perturbation, in one call.
        let fitness: Vec<f32> = es.ask().iter().map(|member| -mse(&predict(&member.apply_all(&mean)))).collect();
        es.tell(&fitness)?;
    }
    let p = es.params()?;
    let (w, b) = (p.get("layers.0.weight").unwrap_or_default(), p.get("layers.0.bias").unwrap_or_default());
    println!("ask/tell: w = {w:?}, b = {b:?}, MSE {:.4}", mse(&predict(&p)));
    Ok(())
}
