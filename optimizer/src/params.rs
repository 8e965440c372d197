//! Named parameters and their stable noise ids.
//!
//! Every parameter has a `u32` id, the `param_id` of its [`eggroll_backend::NoiseStream`]:
//! ids are assigned in registration order (0, 1, 2, ...), so the same model always draws the
//! same noise for the same parameter, run after run.

use crate::error::{EggrollError, Result};
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
}

impl ParamKind {
    /// Number of values.
    pub fn len(&self) -> usize {
        match *self {
            ParamKind::Matrix { m, n } => m * n,
            ParamKind::Vector { len } => len,
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

/// The parameters of a model in registration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamRegistry {
    specs: Vec<ParamSpec>,
}

impl ParamRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a trainable parameter and returns its id; names must be unique.
    pub fn register(&mut self, name: impl Into<String>, kind: ParamKind) -> Result<u32> {
        let name = name.into();
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
/// [`ParamValues::get`]. [`crate::Eggroll::params`] gives the mean parameters,
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
