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

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A file's text and name, for errors at a place in it.
pub struct Doc<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Doc<'_> {
    /// An error at byte `offset`.
    pub fn at(&self, offset: usize, message: impl Into<String>) -> FileError {
        let (line, column) = line_col(self.text, offset);
        FileError::At {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// A serde/toml error: its own message, at its span (or `fallback`).
    pub fn de(&self, e: &toml::de::Error, fallback: usize, prefix: &str) -> FileError {
        let offset = e.span().map_or(fallback, |s| s.start);
        self.at(offset, format!("{prefix}{}", e.message().trim()))
    }
}
