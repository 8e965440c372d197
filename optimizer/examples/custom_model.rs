//! An app's own network trained with EGGROLL: a residual MLP that the crate does not ship,
//! defined here from the crate's layers by implementing [`Model`]. It registers its parameters
//! once, keeping the handles the registry returns, and its forward hands those to the layers; the
//! population forward runs on the backend for every member at once, like the built-in
//! [`eggroll::Mlp`]'s.
//!
//! Run: `cargo run --release -p eggroll --example custom_model`

use eggroll::{Backend, CpuBackend, EsConfig, FloatTrainer, Forward, InputLayout, Linear, Model, ParamRegistry, Values};

/// `x -> tanh(W_in x + b_in) -> blocks of h + tanh(layer_norm(W_k h + b_k)) -> W_out h + b_out`.
struct ResidualMlp {
    registry: ParamRegistry,
    input: Linear,
    blocks: Vec<Linear>,
    output: Linear,
}

impl ResidualMlp {
    /// `inputs` features to one output through `blocks` residual blocks of `width` features.
    fn new(inputs: usize, width: usize, blocks: usize) -> eggroll::Result<Self> {
        let mut registry = ParamRegistry::new(inputs, 1);
        let input = registry.linear("in", width, inputs, true)?;
        let blocks = (0..blocks).map(|k| registry.linear(&format!("block.{k}"), width, width, true)).collect::<eggroll::Result<_>>()?;
        let output = registry.linear("out", 1, width, true)?;
        Ok(Self { registry, input, blocks, output })
    }
}

impl Model for ResidualMlp {
    fn registry(&self) -> &ParamRegistry {
        &self.registry
    }

    fn forward<B: Backend>(&self, f: &mut Forward<'_, B>, x: Values) -> eggroll::Result<Values> {
        let mut h = f.dense(x, self.input)?;
        f.tanh(h)?;
        for &block in &self.blocks {
            let y = f.dense(h, block)?;
            f.layer_norm(y)?;
            f.tanh(y)?;
            f.add(y, h)?;
            h = y;
        }
        f.dense(h, self.output)
    }
}

fn main() -> eggroll::Result<()> {
    // Learn y = sin(2a) cos(b) on 64 fixed points shared by every member.
    let rows = 64;
    let x: Vec<f32> =
        (0..rows).flat_map(|i| [i as f32 / rows as f32 * 2.0 - 1.0, ((i * 5) % rows) as f32 / rows as f32 * 2.0 - 1.0]).collect();
    let y: Vec<f32> = x.chunks_exact(2).map(|p| (2.0 * p[0]).sin() * p[1].cos()).collect();
    let mse = |pred: &[f32]| pred.iter().zip(&y).map(|(p, t)| (p - t).powi(2)).sum::<f32>() / rows as f32;

    // Adam, the default optimiser.
    let config = EsConfig { population: 256, rank: 4, sigma: 0.05, lr: 0.01, epochs: 300, ..EsConfig::default() };
    let mut es = FloatTrainer::new(CpuBackend::new(), ResidualMlp::new(2, 16, 2)?, config)?;
    println!("residual MLP: start MSE {:.4}", mse(&es.forward_mean(&x, rows)?));
    for _ in 0..es.config().epochs {
        let out = es.population_forward(&x, InputLayout::Shared, rows)?; // N x rows x 1
        let fitness: Vec<f32> = out.chunks_exact(rows).map(|member| -mse(member)).collect();
        es.tell(&fitness)?;
    }
    println!("residual MLP: end MSE {:.4} after {} epochs", mse(&es.forward_mean(&x, rows)?), es.epoch());
    Ok(())
}
