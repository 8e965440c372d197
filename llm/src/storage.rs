//! The storage type of a model's frozen matrices on its backend (`--weight-dtype`): its own
//! projections and the embedding and head tables. A checkpoint stored in bf16 or f16 can be held
//! as it is on disk where the backend stores that type (wgpu: bf16 on every adapter, f16 on
//! adapters with `shader-f16`): half the memory of f32, and the same outputs, since the kernels
//! widen each weight exactly to f32 and compute as they do with f32 weights. The CPU backend
//! holds f32 only.

use crate::config::{ModelConfig, StoredDtype};
use crate::error::{LlmError, Result};
use crate::params::{registry, Role};
use eggroll_backend::{Backend, DType};

/// Which storage type to hold a model's frozen matrices in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightDtype {
    /// The checkpoint's own 16-bit type where the backend stores it, else f32 (lossless either way).
    #[default]
    Auto,
    /// This type (f16 rounds bf16 or f32 weights; bf16 rounds f16 or f32 ones).
    Exactly(DType),
}

impl WeightDtype {
    /// `auto`, `f32`, `f16` or `bf16`, as the flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            WeightDtype::Auto => "auto",
            WeightDtype::Exactly(d) => d.name(),
        }
    }

    /// The storage type asked for, for weights stored as `on_disk` (the checkpoint's dtype, or
    /// the config's when the weights are drawn): [`WeightDtype::Auto`] asks for `on_disk`'s own.
    pub fn wanted(self, on_disk: Option<StoredDtype>) -> DType {
        match (self, on_disk) {
            (WeightDtype::Exactly(dtype), _) => dtype,
            (WeightDtype::Auto, Some(StoredDtype::Bf16)) => DType::Bf16,
            (WeightDtype::Auto, Some(StoredDtype::F16)) => DType::F16,
            (WeightDtype::Auto, Some(StoredDtype::F32) | None) => DType::F32,
        }
    }

    /// The storage type on `backend` for weights stored as `on_disk`: [`WeightDtype::Auto`]
    /// picks [`WeightDtype::wanted`] when `backend` stores it and f32 otherwise; a type asked
    /// for exactly that `backend` cannot store is refused, naming both.
    pub fn resolve<B: Backend>(self, backend: &B, on_disk: Option<StoredDtype>) -> Result<DType> {
        let wanted = self.wanted(on_disk);
        match self {
            WeightDtype::Auto => Ok(if stores(backend, wanted) { wanted } else { DType::F32 }),
            WeightDtype::Exactly(dtype) => match backend.upload_as(&[0.0], dtype) {
                Ok(_) => Ok(dtype),
                Err(e) => Err(LlmError::Request(format!("weights held as {dtype}: {e}"))),
            },
        }
    }
}

impl std::str::FromStr for WeightDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(WeightDtype::Auto),
            other => DType::WEIGHTS
                .into_iter()
                .find(|d| d.name() == other)
                .map(WeightDtype::Exactly)
                .ok_or_else(|| format!("unknown weight dtype '{s}' (expected auto, f32, f16 or bf16)")),
        }
    }
}

impl std::fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `backend` holds buffers of `dtype` (it refuses a storage type it lacks).
fn stores<B: Backend>(backend: &B, dtype: DType) -> bool {
    dtype == DType::F32 || backend.upload_as(&[0.0], dtype).is_ok()
}

/// The bytes of a model's weights with its matrices (projections, embedding, head) stored as
/// `matrices` and its norms and biases in f32.
pub fn weight_bytes(config: &ModelConfig, matrices: DType) -> u64 {
    weight_bytes_of(config, matrices, matrices)
}

/// The bytes of a model's weights with its projections stored as `projections`, its embedding
/// and head as `tables`, and its norms and biases in f32.
pub fn weight_bytes_of(config: &ModelConfig, projections: DType, tables: DType) -> u64 {
    registry(config)
        .iter()
        .map(|p| {
            let values = p.shape.iter().product::<usize>() as u64;
            values
                * match p.role {
                    Role::Projection => projections.bytes() as u64,
                    Role::Embedding => tables.bytes() as u64,
                    Role::Norm | Role::Bias => 4,
                }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_names_every_weight_dtype() {
        assert_eq!("auto".parse::<WeightDtype>().unwrap(), WeightDtype::Auto);
        for dtype in DType::WEIGHTS {
            assert_eq!(dtype.name().parse::<WeightDtype>().unwrap(), WeightDtype::Exactly(dtype));
            assert_eq!(WeightDtype::Exactly(dtype).to_string(), dtype.name());
        }
        let err = "int8".parse::<WeightDtype>().unwrap_err();
        assert!(err.contains("int8") && err.contains("bf16"), "{err}");
    }

    #[test]
    fn the_cpu_backend_holds_f32_whatever_the_checkpoint() {
        let cpu = eggroll_backend::cpu::CpuBackend::new();
        for on_disk in [None, Some(StoredDtype::F32), Some(StoredDtype::F16), Some(StoredDtype::Bf16)] {
            assert_eq!(WeightDtype::Auto.resolve(&cpu, on_disk).unwrap(), DType::F32);
        }
        let err = WeightDtype::Exactly(DType::Bf16).resolve(&cpu, Some(StoredDtype::Bf16)).unwrap_err().to_string();
        assert!(err.contains("bf16") && err.contains("cpu"), "{err}");
    }
}
