//! The one error type of the backends, with the values of its shape and limit errors.

use std::borrow::Cow;
use std::fmt;
use thiserror::Error;

/// Everything a backend call can refuse or fail with. Messages name the offending argument.
#[derive(Debug, Error)]
pub enum Error {
    /// A buffer or dimension does not match the shape the call implies.
    #[error("shape mismatch: {0}")]
    Shape(ShapeError),
    /// An argument is out of its valid range (odd population, rank 0, rank > min(m, n), ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Fitness values must be finite.
    #[error("non-finite fitness: member {member} has {}{value}", if *raw { "raw fitness " } else { "" })]
    NonFiniteFitness {
        /// Index of the first offending member.
        member: usize,
        /// Its value (NaN or +-Inf).
        value: f32,
        /// Whether the values are raw fitness, checked before shaping
        /// ([`validate_fitness`](crate::validate_fitness)), rather than the fitness an update is
        /// given.
        raw: bool,
    },
    /// The work does not fit the adapter's limits and cannot be split.
    #[error("exceeds adapter limit: {0}")]
    Limit(LimitError),
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

/// How buffers or dimensions fail to match the shape a call implies ([`Error::Shape`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeError {
    /// A buffer or list holds the wrong number of values.
    Length {
        /// The buffer or list, as the call names it ("input X", "targets").
        what: &'static str,
        /// Values it holds.
        actual: usize,
        /// Values the call implies.
        expected: usize,
    },
    /// A matrix with a side of 0.
    EmptyMatrix {
        /// Output features.
        m: usize,
        /// Input features.
        n: usize,
    },
    /// A vector parameter with no values.
    Empty {
        /// The vector ("bias", "gain").
        what: &'static str,
    },
    /// A buffer that is not a whole number (> 0) of rows of the width the call implies.
    Rows {
        /// The buffer ("logits", "embedding table").
        what: &'static str,
        /// Values it holds.
        len: usize,
        /// Values per row.
        width: usize,
    },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { what, actual, expected } => write!(f, "{what} holds {actual} values, expected {expected}"),
            Self::EmptyMatrix { m, n } => write!(f, "matrix is {m}x{n}: both sides must be > 0"),
            Self::Empty { what } => write!(f, "{what} is empty"),
            Self::Rows { what, len, width } => write!(f, "{what} of {len} values is not a whole number (> 0) of rows of {width}"),
        }
    }
}

impl From<ShapeError> for Error {
    fn from(e: ShapeError) -> Self {
        Error::Shape(e)
    }
}

/// A size past a bound the call cannot split ([`Error::Limit`]): an adapter limit, the 32-bit
/// indices of the kernels and noise streams, or the exact integer sums of the int8 kernels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitError {
    /// What is too large: an argument, a buffer by its label, a kernel's dispatch.
    pub what: Cow<'static, str>,
    /// Its size, in `unit`.
    pub value: u128,
    /// What the size counts ("bytes", "draws per pair", "workgroups"; empty for a plain number).
    pub unit: &'static str,
    /// The largest size allowed, in `unit`.
    pub limit: u128,
    /// The bound: the adapter limit as wgpu names it (`max_buffer_size`), or what sets it.
    pub limit_name: &'static str,
}

impl LimitError {
    /// `what` of `value` `unit` past `limit` (the bound `limit_name`).
    pub fn new(
        what: impl Into<Cow<'static, str>>, value: impl Into<u128>, unit: &'static str, limit: impl Into<u128>, limit_name: &'static str,
    ) -> Self {
        Self { what: what.into(), value: value.into(), unit, limit: limit.into(), limit_name }
    }
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { what, value, unit, limit, limit_name } = self;
        let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
        write!(f, "{what}: {value}{unit}, more than the {limit_name} limit of {limit}")
    }
}

impl From<LimitError> for Error {
    fn from(e: LimitError) -> Self {
        Error::Limit(e)
    }
}

/// Result alias of the backends.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_values() {
        let length = Error::from(ShapeError::Length { what: "input X", actual: 3, expected: 4 });
        assert_eq!(length.to_string(), "shape mismatch: input X holds 3 values, expected 4");
        assert_eq!(
            Error::from(ShapeError::EmptyMatrix { m: 0, n: 2 }).to_string(),
            "shape mismatch: matrix is 0x2: both sides must be > 0"
        );
        assert_eq!(Error::from(ShapeError::Empty { what: "bias" }).to_string(), "shape mismatch: bias is empty");
        let rows = Error::from(ShapeError::Rows { what: "logits", len: 10, width: 4 });
        assert_eq!(rows.to_string(), "shape mismatch: logits of 10 values is not a whole number (> 0) of rows of 4");
        let buffer = Error::from(LimitError::new("input X", 20u64, "bytes", 16u64, "max_buffer_size"));
        assert_eq!(buffer.to_string(), "exceeds adapter limit: input X: 20 bytes, more than the max_buffer_size limit of 16");
        let rows = Error::from(LimitError::new("rows", 5u64 << 32, "", u32::MAX, "32-bit shader index"));
        assert_eq!(rows.to_string(), "exceeds adapter limit: rows: 21474836480, more than the 32-bit shader index limit of 4294967295");
    }

    #[test]
    fn non_finite_fitness_says_whether_it_is_raw() {
        let raw = Error::NonFiniteFitness { member: 9, value: f32::NAN, raw: true };
        assert_eq!(raw.to_string(), "non-finite fitness: member 9 has raw fitness NaN");
        let given = Error::NonFiniteFitness { member: 2, value: f32::INFINITY, raw: false };
        assert_eq!(given.to_string(), "non-finite fitness: member 2 has inf");
    }
}
