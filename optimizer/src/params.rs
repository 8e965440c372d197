//! Named parameters, their stable noise ids and the typed handles a model keeps.
//!
//! A model declares its parameters in a [`ParamRegistry`], which hands back a [`Matrix`] or
//! [`Vector`] handle for each; the model keeps its handles and gives them to the layers of
//! [`crate::Forward`], not names: a misspelt parameter, or a vector given for a matrix, does not
//! compile, and a handle of another model is refused. Names stay for what outlives the model:
//! checkpoints, [`ParamValues`], frozen parameters and error messages.
//!
//! Every parameter has a `u32` id, the `param_id` of its [`eggroll_backend::NoiseStream`]:
//! ids are assigned in registration order (0, 1, 2, ...), so the same model always draws the
//! same noise for the same parameter, run after run.

use crate::error::{EggrollError, Result};
use eggroll_backend::{LowRank, RowPiece};
use serde::{Deserialize, Serialize};

/// The shape of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParamKind {
    /// A weight matrix `W` (m x n, row-major, `y = x Wᵀ`): low-rank noise.
    Matrix {
        /// Output features.
        m: usize,
        /// Input features.
        n: usize,
    },
    /// A vector (bias): full-rank noise.
    Vector {
        /// Number of values.
        len: usize,
    },
    /// Rows `first .. first + m` of a matrix of `rows x n` held in pieces (one beyond an
    /// adapter's storage binding limit): the whole matrix's noise, its rows
    /// ([`eggroll_backend::LowRank::piece`]). The pieces of a matrix share its noise id.
    Rows {
        /// Rows of the piece.
        m: usize,
        /// Input features.
        n: usize,
        /// The piece's first row in the whole matrix.
        first: usize,
        /// Rows of the whole matrix.
        rows: usize,
    },
}

impl ParamKind {
    /// Number of values.
    pub fn len(&self) -> usize {
        match *self {
            ParamKind::Matrix { m, n } | ParamKind::Rows { m, n, .. } => m * n,
            ParamKind::Vector { len } => len,
        }
    }

    /// A matrix's or piece's noise shape at `rank` (clamped to the whole matrix's sides) and
    /// `sigma`; `None` for a vector.
    pub fn low_rank(&self, rank: usize, sigma: f32) -> Option<LowRank> {
        match *self {
            ParamKind::Matrix { m, n } => Some(LowRank { m, n, rank: rank.min(m).min(n), sigma, piece: None }),
            ParamKind::Rows { m, n, first, rows } => {
                Some(LowRank { m, n, rank: rank.min(rows).min(n), sigma, piece: Some(RowPiece { first, rows }) })
            }
            ParamKind::Vector { .. } => None,
        }
    }

    /// Whether the parameter holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One named parameter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Unique name, e.g. `"layers.0.weight"`.
    pub name: String,
    /// Stable noise id (registration order).
    pub id: u32,
    /// Shape.
    pub kind: ParamKind,
    /// Frozen parameters get no noise and no update.
    pub frozen: bool,
}

/// A registered matrix parameter (m x n, low-rank noise), as [`ParamRegistry::matrix`] returns
/// it: what [`crate::Forward`]'s layers take for a weight or an embedding table. A layer looks the
/// handle up by its id and refuses it unless the model registered that parameter with that shape.
///
/// A vector's handle is no matrix's:
///
/// ```compile_fail
/// use eggroll::{Values, Backend, Forward, ParamRegistry};
///
/// fn layer<B: Backend>(f: &mut Forward<'_, B>, x: Values, registry: &mut ParamRegistry) -> eggroll::Result<Values> {
///     let bias = registry.vector("bias", 3)?;
///     f.linear(x, bias, None)
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Matrix {
    id: u32,
    m: usize,
    n: usize,
}

impl Matrix {
    /// The noise id, which is its index in the registry.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Rows and columns (outputs, inputs).
    pub fn shape(&self) -> (usize, usize) {
        (self.m, self.n)
    }

    /// Its shape.
    pub fn kind(&self) -> ParamKind {
        ParamKind::Matrix { m: self.m, n: self.n }
    }
}

/// A registered vector parameter (full-rank noise), as [`ParamRegistry::vector`] returns it: what
/// [`crate::Forward`]'s layers take for a bias or a gain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vector {
    id: u32,
    len: usize,
}

impl Vector {
    /// The noise id, which is its index in the registry.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Its shape.
    pub fn kind(&self) -> ParamKind {
        ParamKind::Vector { len: self.len }
    }
}

/// The parameters of a linear layer `y = x Wᵀ (+ b)`, as [`ParamRegistry::linear`] registers
/// them: the weight and, when the layer has one, the bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    /// The weight (outputs x inputs).
    pub weight: Matrix,
    /// The bias (outputs), if any.
    pub bias: Option<Vector>,
}

/// The parameters of a model in registration order, with the width of its input and output rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamRegistry {
    inputs: usize,
    outputs: usize,
    specs: Vec<ParamSpec>,
}

impl ParamRegistry {
    /// An empty registry of a model whose forward takes `inputs` features per row (1 for a
    /// token id) and returns `outputs` (an integer model's classes).
    pub fn new(inputs: usize, outputs: usize) -> Self {
        Self { inputs, outputs, specs: Vec::new() }
    }

    /// Features of a row of the model's input.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Features of a row of the model's output.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Registers the trainable matrix `name` (m x n: outputs x inputs, `y = x Wᵀ`) and returns
    /// its handle; names must be unique and the matrix non-empty.
    pub fn matrix(&mut self, name: impl Into<String>, m: usize, n: usize) -> Result<Matrix> {
        let id = self.register(name.into(), ParamKind::Matrix { m, n })?;
        Ok(Matrix { id, m, n })
    }

    /// Registers the trainable vector `name` of `len` values and returns its handle; names must
    /// be unique and the vector non-empty.
    pub fn vector(&mut self, name: impl Into<String>, len: usize) -> Result<Vector> {
        let id = self.register(name.into(), ParamKind::Vector { len })?;
        Ok(Vector { id, len })
    }

    /// Registers the linear layer `prefix` from `inputs` to `outputs` features: the matrix
    /// `{prefix}.weight` and, with `bias`, then the vector `{prefix}.bias`.
    pub fn linear(&mut self, prefix: &str, outputs: usize, inputs: usize, bias: bool) -> Result<Linear> {
        let weight = self.matrix(format!("{prefix}.weight"), outputs, inputs)?;
        let bias = if bias { Some(self.vector(format!("{prefix}.bias"), outputs)?) } else { None };
        Ok(Linear { weight, bias })
    }

    /// Appends the parameter `name` of shape `kind` and returns its id.
    fn register(&mut self, name: String, kind: ParamKind) -> Result<u32> {
        if self.get(&name).is_some() {
            return Err(EggrollError::Config(format!("parameter `{name}` is registered twice")));
        }
        if kind.is_empty() {
            return Err(EggrollError::Config(format!("parameter `{name}` has no values ({kind:?})")));
        }
        let id = u32::try_from(self.specs.len()).map_err(|_| EggrollError::Config("more than 2^32 parameters".into()))?;
        self.specs.push(ParamSpec { name, id, kind, frozen: false });
        Ok(id)
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&ParamSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    /// Freezes or unfreezes the parameter called `name`.
    pub fn set_frozen(&mut self, name: &str, frozen: bool) -> Result<()> {
        match self.specs.iter_mut().find(|s| s.name == name) {
            Some(spec) => {
                spec.frozen = frozen;
                Ok(())
            }
            None => Err(EggrollError::Config(format!("no parameter called `{name}`"))),
        }
    }

    /// All parameters, in id order.
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether no parameter is registered.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Total number of values over all parameters.
    pub fn num_values(&self) -> usize {
        self.specs.iter().map(|s| s.kind.len()).sum()
    }
}

/// A model's parameter values, each with its spec, in id order; look one up by name with
/// [`ParamValues::get`]. [`crate::FloatTrainer::params`] gives the mean parameters,
/// [`crate::Perturbation::apply_all`] one member's.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamValues<V = f32> {
    entries: Vec<(ParamSpec, Vec<V>)>,
}

impl<V> ParamValues<V> {
    /// Pairs `specs` with `values` (same order and lengths).
    pub(crate) fn new(entries: Vec<(ParamSpec, Vec<V>)>) -> Self {
        Self { entries }
    }

    /// The values of the parameter called `name` (e.g. `layers.0.weight`, row-major).
    pub fn get(&self, name: &str) -> Option<&[V]> {
        self.entries.iter().find(|(spec, _)| spec.name == name).map(|(_, v)| v.as_slice())
    }

    /// Every parameter in id order, with its spec.
    pub fn iter(&self) -> impl Iterator<Item = (&ParamSpec, &[V])> {
        self.entries.iter().map(|(spec, v)| (spec, v.as_slice()))
    }

    /// Every parameter's values in id order, for mutation in place.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&ParamSpec, &mut [V])> {
        self.entries.iter_mut().map(|(spec, v)| (&*spec, v.as_mut_slice()))
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
