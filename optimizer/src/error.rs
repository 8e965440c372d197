//! The one error type of the optimiser.

use thiserror::Error;

/// Everything the optimiser, its tasks and its checkpoints can fail with.
#[derive(Debug, Error)]
pub enum EggrollError {
    /// A backend kernel refused its arguments or the device failed, or a raw fitness value is NaN
    /// or infinite ([`eggroll_backend::Error::NonFiniteFitness`]).
    #[error(transparent)]
    Backend(#[from] eggroll_backend::Error),
    /// An invalid configuration (names the offending field).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Input data or fitness values of the wrong shape or content.
    #[error("invalid data: {0}")]
    Data(String),
    /// Bytes that are not a trainer state file (not safetensors, or not f32 tensors).
    #[error("corrupt trainer state: {0}")]
    CorruptState(String),
    /// A trainer state (checkpoint) does not match the model or optimiser.
    #[error("checkpoint mismatch: {0}")]
    Checkpoint(String),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Result alias of the optimiser.
pub type Result<T> = std::result::Result<T, EggrollError>;
