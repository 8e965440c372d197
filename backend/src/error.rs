//! The one error type of the backends.

use thiserror::Error;

/// Everything a backend call can refuse or fail with. Messages name the offending argument.
#[derive(Debug, Error)]
pub enum Error {
    /// A buffer or dimension does not match the shape the call implies.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An argument is out of its valid range (odd population, rank 0, rank > min(m, n), ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Fitness values must be finite.
    #[error("non-finite fitness: member {member} has {value}")]
    NonFiniteFitness {
        /// Index of the first offending member.
        member: usize,
        /// Its value (NaN or +-Inf).
        value: f32,
    },
    /// The work does not fit the adapter's limits and cannot be split.
    #[error("exceeds adapter limit: {0}")]
    Limit(String),
    /// The backend or adapter lacks what the call needs (f16 storage on the CPU or without the
    /// adapter's `shader-f16` feature, an f16 buffer passed where f32 is required).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// No adapter could be found or opened.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The device reported an error (validation, out of memory, lost device).
    #[error("device error: {0}")]
    Device(String),
    /// Reading a buffer back from the device failed.
    #[error("readback failed: {0}")]
    Readback(String),
}

/// Result alias of the backends.
pub type Result<T> = std::result::Result<T, Error>;
