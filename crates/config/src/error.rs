//! Located configuration errors.

use std::fmt;

/// One problem in a configuration file.
///
/// Displayed as `FILE:LINE: field: problem`, the form compilers use, so editors and `grep` can
/// jump to it. `field` is the dotted path of the offending value (`listen[1].address`,
/// `registrar.min_expires`, `zone[0].networks[2]`); arrays are indexed from 0, lines from 1.
/// A file that cannot be read at all has no line and no field and is displayed as
/// `FILE: problem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file's name as given to the loader.
    pub file: String,
    /// 1-based line; none only when the file could not be read.
    pub line: Option<usize>,
    /// Dotted path of the field (empty only when the file could not be read).
    pub field: String,
    /// What is wrong, and where useful what would be right.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "{}:{}: {}: {}",
                self.file, line, self.field, self.problem
            ),
            None => write!(f, "{}: {}", self.file, self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration file, ordered by line. Never empty.
///
/// Displayed one error per line, without a trailing newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Wraps a non-empty list, sorting it by line (stable, so errors on one line keep the order
    /// they were found in).
    pub(crate) fn new(mut errors: Vec<ConfigError>) -> Self {
        debug_assert!(!errors.is_empty());
        errors.sort_by_key(|e| e.line.unwrap_or(0));
        ConfigErrors { errors }
    }

    /// The errors, ordered by line.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// How many errors there are (at least one).
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false; there for symmetry with [`len`](Self::len).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Each error's display form, one string per error.
    pub fn to_lines(&self) -> Vec<String> {
        self.errors.iter().map(ToString::to_string).collect()
    }

    /// The errors, by value.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.errors
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}
