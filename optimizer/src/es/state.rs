//! Trainer state for checkpoints: parameters, optimiser moments and the epoch.

use super::Eggroll;
use crate::error::{EggrollError, Result};
use crate::model::Model;
use crate::params::ParamValues;
use eggroll_backend::Backend;
use serde::{Deserialize, Serialize};

/// Everything needed to resume training exactly: the epoch and named tensors — the parameters
/// (`layers.0.weight`, ...) in id order, then for Adam/AdamW the moments `adam.m.<name>` and
/// `adam.v.<name>` of every parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// The epoch training resumes at.
    pub epoch: u32,
    /// Named flat tensors.
    pub tensors: Vec<(String, Vec<f32>)>,
}

impl TrainerState {
    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.as_slice())
    }
}

impl<B: Backend, M: Model> Eggroll<B, M> {
    /// Reads the parameters and optimiser moments back from the backend. Blocking; see
    /// [`Eggroll::state_async`].
    #[cfg(feature = "native")]
    pub fn state(&self) -> Result<TrainerState> {
        let mut tensors = Vec::new();
        for (name, buffer) in self.state_buffers() {
            tensors.push((name, self.backend.read_blocking(buffer)?));
        }
        Ok(TrainerState { epoch: self.epoch, tensors })
    }

    /// [`Eggroll::state`] with the read-backs awaited.
    pub async fn state_async(&self) -> Result<TrainerState> {
        let mut tensors = Vec::new();
        for (name, buffer) in self.state_buffers() {
            tensors.push((name, self.backend.read(buffer).await?));
        }
        Ok(TrainerState { epoch: self.epoch, tensors })
    }

    /// The mean parameters by name, in id order (no optimiser moments). Blocking; see
    /// [`Eggroll::params_async`].
    #[cfg(feature = "native")]
    pub fn params(&self) -> Result<ParamValues> {
        let mut entries = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            entries.push((slot.spec.clone(), self.backend.read_blocking(&slot.value)?));
        }
        Ok(ParamValues::new(entries))
    }

    /// [`Eggroll::params`] with the read-backs awaited.
    pub async fn params_async(&self) -> Result<ParamValues> {
        let mut entries = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            entries.push((slot.spec.clone(), self.backend.read(&slot.value).await?));
        }
        Ok(ParamValues::new(entries))
    }

    /// The tensors of [`TrainerState`], named, in order: the parameters, then the Adam moments.
    fn state_buffers(&self) -> Vec<(String, &B::Buffer)> {
        let mut buffers: Vec<_> = self.slots.iter().map(|slot| (slot.spec.name.clone(), &slot.value)).collect();
        for (kind, pick) in [("m", 0), ("v", 1)] {
            for slot in &self.slots {
                if let Some((m, v)) = &slot.moments {
                    buffers.push((format!("adam.{kind}.{}", slot.spec.name), if pick == 0 { m } else { v }));
                }
            }
        }
        buffers
    }

    /// Loads `state` (from [`Eggroll::state`] of the same model and optimiser kind): every
    /// expected tensor must be present with the right length and no other tensor may appear.
    pub fn restore(&mut self, state: &TrainerState) -> Result<()> {
        let mut expected = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            expected.push((slot.spec.name.clone(), i, 0));
            if slot.moments.is_some() {
                expected.push((format!("adam.m.{}", slot.spec.name), i, 1));
                expected.push((format!("adam.v.{}", slot.spec.name), i, 2));
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
            let want = self.slots[*slot].spec.kind.len();
            if data.len() != want {
                return Err(EggrollError::Checkpoint(format!("tensor `{name}` holds {} values, the model needs {want}", data.len())));
            }
            found.push((data, *slot, *which));
        }
        for (data, slot, which) in found {
            let slot = &mut self.slots[slot];
            let buffer = match (which, &mut slot.moments) {
                (1, Some((m, _))) => m,
                (2, Some((_, v))) => v,
                _ => &mut slot.value,
            };
            self.backend.write(buffer, data)?;
        }
        self.epoch = state.epoch;
        Ok(())
    }
}
