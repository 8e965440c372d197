//! The storage type of a point (`--dtype`, JSON `dtype`): the backend's float storage types, or
//! integer EGGROLL's int8.

use crate::BenchError;
use eggroll_backend::DType;

/// What a point's inputs and weights are stored as, and so which kernels it times: the f32
/// [`eggroll_backend::Backend`] kernels for `f32` and `f16`, integer EGGROLL's
/// [`eggroll_backend::int8::IntBackend`] kernels for `int8`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 inputs and weights.
    #[default]
    F32,
    /// f16 inputs and weights, widened to f32 on load.
    F16,
    /// Integer EGGROLL: int8 inputs, weights and outputs, i32 accumulation (docs/int8.md).
    Int8,
}

impl Precision {
    /// Every storage type, in the order sweeps take them.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Int8];

    /// `f32`, `f16` or `int8`, as flags and JSON spell it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Int8 => "int8",
        }
    }

    /// The backend's float storage type, `None` for int8.
    pub fn float(self) -> Option<DType> {
        match self {
            Precision::F32 => Some(DType::F32),
            Precision::F16 => Some(DType::F16),
            Precision::Int8 => None,
        }
    }

    /// Bytes per stored value.
    pub fn bytes(self) -> usize {
        self.float().map_or(1, DType::bytes)
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Self, BenchError> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| BenchError::InvalidArgument(format!("unknown dtype '{s}' (expected f32, f16 or int8)")))
    }
}
