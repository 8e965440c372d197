//! The models EGGROLL trains: the [`Model`] interface and its built-in implementation, the
//! multilayer perceptron [`Mlp`].
//!
//! In an [`Mlp`], a [`Linear`](Layer::Linear) layer at position i of the layer list owns the parameters
//! `layers.i.weight` (outputs x inputs, `y = x Wᵀ`) and, with a bias, `layers.i.bias`; ids follow
//! that order.
//!
//! [`LmShape`] is the shape of the byte-level language models (`charlm`'s and `egg`'s), as a
//! checkpoint records it.

use crate::error::{EggrollError, Result};
pub use crate::forward::{Forward, Values, LAYER_NORM_EPS};
use crate::params::{Linear, ParamKind, ParamRegistry, ParamSpec};
use eggroll_backend::{Activation, Backend};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

/// Vocabulary of a byte-level language model: the 256 byte values.
pub const BYTE_VOCAB: usize = 256;

/// A model's parameters and forward: what [`crate::FloatTrainer`] trains. Implement it for an app's own
/// network built from [`Forward`]'s layers (`optimizer/examples/custom_model.rs` shows one): the
/// model registers its parameters once, keeps the registry and the handles it returned, and
/// gives those handles to the layers; [`Mlp`] is one implementation.
pub trait Model {
    /// The parameters (name, shape and kind; noise ids in registration order) and the width of
    /// the input and output rows.
    fn registry(&self) -> &ParamRegistry;

    /// Runs the layers on `x` (the model input, [`ParamRegistry::inputs`] wide) and returns the
    /// output ([`ParamRegistry::outputs`] wide), for every member at once.
    fn forward<B: Backend>(&self, f: &mut Forward<'_, B>, x: Values) -> Result<Values>;

    /// Initial values: matrices `W ~ N(0, 1/fan_in)` (fan-in the `n` of `m x n`), zero vectors,
    /// a pure function of `seed` (PCG64 and Box-Muller, parameters drawn in id order).
    fn init_params(&self, seed: u64) -> Vec<(ParamSpec, Vec<f32>)> {
        init_params(self.registry(), seed)
    }
}

/// The shape of a byte-level language model, as a checkpoint's settings record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmShape {
    /// Features of the residual stream.
    pub width: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Bytes per sequence: the recurrence restarts from zero every `window` rows.
    pub window: usize,
}

/// One layer of an [`Mlp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// `y = x Wᵀ (+ b)`; W gets low-rank noise, b full-rank noise.
    Linear {
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// An elementwise activation.
    Activation(Activation),
    /// Layer norm over the features of each row, no affine parameters.
    LayerNorm,
    /// `relu(layer_norm(x))`, the authors' "pqn" nonlinearity.
    Pqn,
}

/// A stack of [`Layer`]s with the parameters of its linear layers; build one with
/// [`Mlp::builder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mlp {
    layers: Vec<Layer>,
    registry: ParamRegistry,
    /// The parameters of each linear layer, in order.
    linears: Vec<Linear>,
}

/// Builds an [`Mlp`] layer by layer, tracking the width.
#[derive(Clone, Debug)]
pub struct MlpBuilder {
    inputs: usize,
    layers: Vec<Layer>,
    width: usize,
}

impl MlpBuilder {
    /// Appends a linear layer with a bias to `outputs` features.
    pub fn linear(self, outputs: usize) -> Self {
        self.linear_with(outputs, true)
    }

    /// Appends a linear layer to `outputs` features, with or without a bias.
    pub fn linear_with(mut self, outputs: usize, bias: bool) -> Self {
        self.layers.push(Layer::Linear { inputs: self.width, outputs, bias });
        self.width = outputs;
        self
    }

    /// Appends an activation.
    pub fn activation(mut self, act: Activation) -> Self {
        self.layers.push(Layer::Activation(act));
        self
    }

    /// Appends a ReLU.
    pub fn relu(self) -> Self {
        self.activation(Activation::Relu)
    }

    /// Appends a tanh.
    pub fn tanh(self) -> Self {
        self.activation(Activation::Tanh)
    }

    /// Appends an affine-free layer norm.
    pub fn layer_norm(mut self) -> Self {
        self.layers.push(Layer::LayerNorm);
        self
    }

    /// Appends `relu(layer_norm(x))`.
    pub fn pqn(mut self) -> Self {
        self.layers.push(Layer::Pqn);
        self
    }

    /// The model, its parameters registered (`layers.i.weight` then `layers.i.bias` per linear
    /// layer i, ids in that order, its outputs those of the last linear layer); refuses (naming
    /// the layer) a model without inputs, a linear layer without outputs, or one with no linear
    /// layer at all.
    pub fn build(self) -> Result<Mlp> {
        let invalid = |why: String| Err(EggrollError::Config(format!("model: {why}")));
        if self.inputs == 0 {
            return invalid("inputs must be > 0".into());
        }
        for (i, layer) in self.layers.iter().enumerate() {
            if let Layer::Linear { outputs: 0, .. } = layer {
                return invalid(format!("linear layer {i} has no outputs"));
            }
        }
        if !self.layers.iter().any(|l| matches!(l, Layer::Linear { .. })) {
            return invalid("at least one linear layer is needed".into());
        }
        let mut registry = ParamRegistry::new(self.inputs, self.width);
        let mut linears = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if let Layer::Linear { inputs, outputs, bias } = *layer {
                linears.push(registry.linear(&format!("layers.{i}"), outputs, inputs, bias)?);
            }
        }
        Ok(Mlp { layers: self.layers, registry, linears })
    }
}

impl Mlp {
    /// Starts a model taking `inputs` features.
    pub fn builder(inputs: usize) -> MlpBuilder {
        MlpBuilder { inputs, layers: Vec::new(), width: inputs }
    }

    /// The layers in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
}

impl Model for Mlp {
    fn registry(&self) -> &ParamRegistry {
        &self.registry
    }

    fn forward<B: Backend>(&self, f: &mut Forward<'_, B>, x: Values) -> Result<Values> {
        let (mut h, mut linears) = (x, self.linears.iter());
        for layer in &self.layers {
            match *layer {
                Layer::Linear { .. } => {
                    let linear = linears.next().expect("a linear layer's parameters were registered at build");
                    h = f.linear(h, linear.weight, linear.bias)?;
                }
                Layer::Activation(act) => f.activation(h, act)?,
                Layer::LayerNorm => f.layer_norm(h)?,
                Layer::Pqn => {
                    f.layer_norm(h)?;
                    f.activation(h, Activation::Relu)?;
                }
            }
        }
        Ok(h)
    }
}

/// The default initial values of [`Model::init_params`]: matrices `W ~ N(0, 1/fan_in)`, zero
/// vectors, drawn in id order from PCG64 seeded with `seed`.
pub(crate) fn init_params(registry: &ParamRegistry, seed: u64) -> Vec<(ParamSpec, Vec<f32>)> {
    let mut rng = Pcg64::seed_from_u64(seed);
    registry
        .specs()
        .iter()
        .map(|spec| {
            let values = match spec.kind {
                ParamKind::Matrix { m, n } | ParamKind::Rows { m, n, .. } => {
                    let std = (1.0 / n as f64).sqrt();
                    (0..m * n).map(|_| (std * standard_normal(&mut rng)) as f32).collect()
                }
                ParamKind::Vector { len } => vec![0.0; len],
            };
            (spec.clone(), values)
        })
        .collect()
}

/// One standard normal draw (Box-Muller on two uniforms, the first in (0, 1]).
pub(crate) fn standard_normal(rng: &mut Pcg64) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
