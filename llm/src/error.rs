//! The one error type of the language-model crate.

use thiserror::Error;

/// Everything loading, tokenizing and running a pretrained model can fail with. Each names the
/// file, tensor or option at fault.
#[derive(Debug, Error)]
pub enum LlmError {
    /// A model folder's file is missing, unreadable or malformed (names the file).
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// An architecture, option or value this crate does not implement (names it).
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// A tensor missing from the weights, or whose shape or dtype disagrees with the config.
    #[error("weights: {0}")]
    Weights(String),
    /// The tokenizer failed, or disagrees with the model (vocabulary size, special tokens).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template failed to render.
    #[error("chat template: {0}")]
    Template(String),
    /// A request the model cannot serve (a prompt beyond its positions, a bad sampling setting).
    #[error("invalid request: {0}")]
    Request(String),
    /// A backend kernel refused its arguments or the device failed.
    #[error(transparent)]
    Backend(#[from] eggroll_backend::Error),
    /// The trainer refused its config, values or fitness.
    #[error(transparent)]
    Trainer(#[from] eggroll::EggrollError),
}

/// Result alias of the language-model crate.
pub type Result<T> = std::result::Result<T, LlmError>;

/// A [`LlmError::File`] for `path`.
pub(crate) fn file_error(path: &std::path::Path, message: impl std::fmt::Display) -> LlmError {
    LlmError::File { path: path.display().to_string(), message: message.to_string() }
}
