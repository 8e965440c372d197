//! Every failure of the command line is a [`CliError`], printed by `main` as one `error: ...` line.

use std::fmt;
use std::path::Path;

/// A failure of the command line, as one line of text.
#[derive(Debug)]
pub struct CliError {
    message: String,
    /// Whether the device or adapter failed, rather than what the command asked of it.
    device: bool,
}

/// Result alias of the command line.
pub type Result<T> = std::result::Result<T, CliError>;

impl CliError {
    /// An error with `message`; line breaks are folded so that it prints as one line.
    pub fn new(message: impl fmt::Display) -> Self {
        let text = message.to_string();
        Self { message: text.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "), device: false }
    }

    /// Whether the device or adapter failed (none found, lost, out of memory, beyond its limits,
    /// lacking a feature), rather than the arguments, data or files: an embedding raises the two
    /// differently.
    pub fn is_device_failure(&self) -> bool {
        self.device
    }

    /// The error of a backend failure `e`.
    fn backend(e: &eggroll_backend::Error) -> Self {
        use eggroll_backend::Error as E;
        let device = !matches!(e, E::Shape(_) | E::InvalidArgument(_) | E::NonFiniteFitness { .. });
        Self { device, ..Self::new(e) }
    }

    /// `what: source`, for an I/O or parse failure on a named file.
    pub fn file(path: &Path, what: &str, source: impl fmt::Display) -> Self {
        Self::new(format!("{what} {}: {source}", path.display()))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<eggroll::error::EggrollError> for CliError {
    fn from(e: eggroll::error::EggrollError) -> Self {
        match &e {
            eggroll::error::EggrollError::Backend(b) => Self::backend(b),
            _ => Self::new(e),
        }
    }
}

impl From<eggroll_backend::Error> for CliError {
    fn from(e: eggroll_backend::Error) -> Self {
        Self::backend(&e)
    }
}

impl From<eggroll_llm::LlmError> for CliError {
    fn from(e: eggroll_llm::LlmError) -> Self {
        use eggroll_llm::LlmError;
        match e {
            LlmError::Backend(b) | LlmError::Trainer(eggroll::error::EggrollError::Backend(b)) => Self::backend(&b),
            e => Self::new(e),
        }
    }
}
