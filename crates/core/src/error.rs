//! The error a plugin factory or a credential scheme rejects a
//! configuration with.

/// Why a plugin configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    /// Dotted path of the faulty field inside the plugin's `config`
    /// (`allow[2]`), empty for the whole config.
    pub path: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl PluginError {
    /// An error about the field at `path`.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}
