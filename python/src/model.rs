//! `eggroll_wgpu.Mlp`: the description of a multilayer perceptron, which the trainer builds the
//! library's [`eggroll::Mlp`] from and a checkpoint records.

use crate::errors::{to_py, value_error};
use eggroll::Activation;
use pyo3::prelude::*;
use serde::{Deserialize, Serialize};

/// The activations a Python caller may name, with their library values.
/// `None`: "pqn", the authors' `relu(layer_norm(x))`.
const ACTIVATIONS: [(&str, Option<Activation>); 4] =
    [("tanh", Some(Activation::Tanh)), ("relu", Some(Activation::Relu)), ("silu", Some(Activation::Silu)), ("pqn", None)];

/// A multilayer perceptron: linear layers of the given widths with an activation between each
/// two (none after the last).
///
/// ``Mlp([4, 32, 32, 2], activation="tanh")`` takes 4 inputs, has two hidden layers of 32 and
/// gives 2 outputs. ``activation`` is "tanh" (the default), "relu", "silu" or "pqn" (``relu`` of an
/// affine-free layer norm, the authors' and the regression task's); ``bias=False``
/// leaves the biases out. The parameters are named ``layers.<i>.weight`` (outputs x inputs) and
/// ``layers.<i>.bias``, ``i`` the position of the linear layer among all layers.
#[pyclass(module = "eggroll_wgpu", frozen, eq, from_py_object)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mlp {
    /// The widths: inputs, then each linear layer's outputs.
    #[pyo3(get)]
    sizes: Vec<usize>,
    /// The activation between linear layers.
    #[pyo3(get)]
    activation: String,
    /// Whether the linear layers have biases.
    #[pyo3(get)]
    bias: bool,
}

#[pymethods]
impl Mlp {
    /// Describes the perceptron; a `ValueError` names what is wrong with ``sizes`` or
    /// ``activation``.
    #[new]
    #[pyo3(signature = (sizes, activation = "tanh", bias = true))]
    fn py_new(sizes: Vec<usize>, activation: &str, bias: bool) -> PyResult<Self> {
        let mlp = Mlp { sizes, activation: activation.to_ascii_lowercase(), bias };
        mlp.build()?;
        Ok(mlp)
    }

    /// The number of input features.
    #[getter]
    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    /// The number of output features.
    #[getter]
    pub fn outputs(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }

    /// ``Mlp([...], activation="...", bias=...)``.
    pub fn __repr__(&self) -> String {
        let bias = if self.bias { "True" } else { "False" };
        format!("Mlp({:?}, activation={:?}, bias={bias})", self.sizes, self.activation)
    }
}

impl Mlp {
    /// The library's model of this description; a `ValueError` when it describes none.
    pub fn build(&self) -> PyResult<eggroll::Mlp> {
        if self.sizes.len() < 2 {
            return Err(value_error(format!("sizes must list the inputs and at least one layer's outputs, got {:?}", self.sizes)));
        }
        if let Some(at) = self.sizes.iter().position(|&w| w == 0) {
            return Err(value_error(format!("sizes[{at}] is 0: every width must be at least 1")));
        }
        let act = ACTIVATIONS.iter().find(|(name, _)| *name == self.activation).map(|(_, a)| *a).ok_or_else(|| {
            let names: Vec<_> = ACTIVATIONS.iter().map(|(n, _)| *n).collect();
            value_error(format!("unknown activation {:?}: expected one of {}", self.activation, names.join(", ")))
        })?;
        let layers = &self.sizes[1..];
        let mut builder = eggroll::Mlp::builder(self.sizes[0]);
        for (i, &width) in layers.iter().enumerate() {
            builder = builder.linear_with(width, self.bias);
            if i + 1 < layers.len() {
                builder = match act {
                    Some(act) => builder.activation(act),
                    None => builder.pqn(),
                };
            }
        }
        builder.build().map_err(to_py)
    }
}
