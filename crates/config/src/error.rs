//! Configuration errors that name the file, line, column and field.

use std::fmt;

use crate::locate::Source;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or other origin) the configuration came from.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Path of the faulty field, e.g. `routes[2].paths[0]`.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in one configuration (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A single error.
    pub fn one(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Turns a YAML/serde error into a located [`ConfigError`].
pub(crate) fn from_yaml(source: &Source, e: &serde_norway::Error) -> ConfigError {
    let mut message = e.to_string();
    // serde_norway appends " at line L column C"; we report those separately.
    if let Some(idx) = message.rfind(" at line ") {
        message.truncate(idx);
    }
    // ... and prefixes the path: "routes[0].paths: invalid type ...".
    let mut field = String::new();
    if let Some((head, rest)) = message.split_once(": ")
        && !head.contains(' ')
    {
        field = head.to_string();
        message = rest.to_string();
    }
    let (line, column) = match e.location() {
        Some(loc) => (Some(loc.line()), Some(loc.column())),
        None => match source.locate(&field) {
            Some((l, c)) => (Some(l), Some(c)),
            None => (None, None),
        },
    };
    ConfigError {
        file: source.name().to_string(),
        line,
        column,
        field,
        message,
    }
}
