//! An input file that cannot be used, with where and why: the error shape
//! shared by every parser of the user's files (scenario files, compose and
//! env files).

/// What is wrong with an input file: at a line and column (1-based) where
/// one is known, else the file as a whole.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum FileError {
    #[error("{file}:{line}:{column}: {message}")]
    At {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
}
