//! The crate's error type: every failure a user can cause is a value, never a panic.

use std::path::PathBuf;

/// Errors returned by scoreflow.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument or configuration value is out of its domain.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Tensor shapes or dimensions disagree.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A data file is malformed; `location` names the line/row where known.
    #[error("{path}: {location}{msg}")]
    Data {
        /// File that failed to parse.
        path: String,
        /// "line N: " / "row N: " prefix, or empty.
        location: String,
        /// What is wrong.
        msg: String,
    },
    /// Operating-system I/O failure on a file.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint is truncated, foreign or does not match the model.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint {
        /// File involved.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A numerical solver could not finish (step too small, too many steps, non-finite state).
    #[error("solver: {0}")]
    Solver(String),
    /// Training produced a non-finite loss or gradient.
    #[error("training diverged at step {step}: {msg}")]
    Diverged {
        /// Optimiser step at which the problem was seen.
        step: usize,
        /// What was non-finite.
        msg: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an `std::io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
