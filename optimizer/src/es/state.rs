//! Trainer state for checkpoints: parameters, optimiser moments and the epoch, in every number
//! format.

use super::Trainer;
use crate::error::{EggrollError, Result};
use crate::format::Tensors;
use crate::params::ParamValues;
use eggroll_backend::Backend;
use serde::{Deserialize, Serialize};

/// Everything needed to resume training exactly: the epoch and named tensors of values `V` (f32,
/// or int8 for an integer trainer) — the parameters (`layers.0.weight`, ...) in id order, then
/// for Adam/AdamW the moments `adam.m.<name>` and `adam.v.<name>` of every parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState<V = f32> {
    /// The epoch training resumes at.
    pub epoch: u32,
    /// Named flat tensors.
    pub tensors: Vec<(String, Vec<V>)>,
}

impl<V> TrainerState<V> {
    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&[V]> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.as_slice())
    }
}

impl<B: Backend, M, F: Tensors<B>> Trainer<B, M, F> {
    /// Reads the parameters and optimiser moments back from the backend. Blocking; see
    /// [`Trainer::state_async`].
    #[cfg(feature = "native")]
    pub fn state(&self) -> Result<TrainerState<F::Value>> {
        pollster::block_on(self.state_async())
    }

    /// [`Trainer::state`] with the read-backs awaited.
    pub async fn state_async(&self) -> Result<TrainerState<F::Value>> {
        let mut tensors = Vec::new();
        for (name, tensor) in self.state_tensors() {
            tensors.push((name, F::read(&self.backend, tensor).await?));
        }
        Ok(TrainerState { epoch: self.epoch, tensors })
    }

    /// The mean parameters by name, in id order (no optimiser moments). Blocking; see
    /// [`Trainer::params_async`].
    #[cfg(feature = "native")]
    pub fn params(&self) -> Result<ParamValues<F::Value>> {
        pollster::block_on(self.params_async())
    }

    /// [`Trainer::params`] with the read-backs awaited.
    pub async fn params_async(&self) -> Result<ParamValues<F::Value>> {
        let mut entries = Vec::with_capacity(self.params.len());
        for param in &self.params {
            entries.push((param.spec.clone(), F::read(&self.backend, &param.value).await?));
        }
        Ok(ParamValues::new(entries))
    }

    /// The tensors of [`TrainerState`], named, in order: the parameters, then the Adam moments.
    fn state_tensors(&self) -> Vec<(String, &F::Tensor)> {
        let mut tensors: Vec<_> = self.params.iter().map(|p| (p.spec.name.clone(), &p.value)).collect();
        for (kind, pick) in [("m", 0), ("v", 1)] {
            for param in &self.params {
                if let Some((m, v)) = &param.moments {
                    tensors.push((format!("adam.{kind}.{}", param.spec.name), if pick == 0 { m } else { v }));
                }
            }
        }
        tensors
    }

    /// Loads `state` (from [`Trainer::state`] of the same model, format and optimiser kind):
    /// every expected tensor must be present with the right length and no other tensor may
    /// appear.
    pub fn restore(&mut self, state: &TrainerState<F::Value>) -> Result<()> {
        let mut expected = Vec::new();
        for (i, param) in self.params.iter().enumerate() {
            expected.push((param.spec.name.clone(), i, 0));
            if param.moments.is_some() {
                expected.push((format!("adam.m.{}", param.spec.name), i, 1));
                expected.push((format!("adam.v.{}", param.spec.name), i, 2));
            }
        }
        if let Some((name, _)) = state.tensors.iter().find(|(n, _)| !expected.iter().any(|(e, ..)| e == n)) {
            return Err(EggrollError::Checkpoint(format!(
                "unexpected tensor `{name}` (wrong model, or a checkpoint of another optimiser)"
            )));
        }
        let mut found = Vec::new();
        for (name, slot, which) in &expected {
            let data = state.get(name).ok_or_else(|| EggrollError::Checkpoint(format!("tensor `{name}` is missing")))?;
            let want = self.params[*slot].spec.kind.len();
            if data.len() != want {
                return Err(EggrollError::Checkpoint(format!("tensor `{name}` holds {} values, the model needs {want}", data.len())));
            }
            found.push((data, *slot, *which));
        }
        for (data, slot, which) in found {
            let param = &mut self.params[slot];
            let tensor = match (which, &mut param.moments) {
                (1, Some((m, _))) => m,
                (2, Some((_, v))) => v,
                _ => &mut param.value,
            };
            F::write(&self.backend, tensor, data)?;
        }
        self.epoch = state.epoch;
        Ok(())
    }
}
