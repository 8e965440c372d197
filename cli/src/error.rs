//! Every failure of the command line is a [`CliError`], printed by `main` as one `error: ...` line.

use std::fmt;
use std::path::Path;

/// A failure of the command line, as one line of text.
#[derive(Debug)]
pub struct CliError(String);

/// Result alias of the command line.
pub type Result<T> = std::result::Result<T, CliError>;

impl CliError {
    /// An error with `message`; line breaks are folded so that it prints as one line.
    pub fn new(message: impl fmt::Display) -> Self {
        let text = message.to_string();
        Self(text.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "))
    }

    /// `what: source`, for an I/O or parse failure on a named file.
    pub fn file(path: &Path, what: &str, source: impl fmt::Display) -> Self {
        Self::new(format!("{what} {}: {source}", path.display()))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<eggroll::error::EggrollError> for CliError {
    fn from(e: eggroll::error::EggrollError) -> Self {
        Self::new(e)
    }
}

impl From<eggroll_backend::Error> for CliError {
    fn from(e: eggroll_backend::Error) -> Self {
        Self::new(e)
    }
}

impl From<eggroll_llm::LlmError> for CliError {
    fn from(e: eggroll_llm::LlmError) -> Self {
        Self::new(e)
    }
}
