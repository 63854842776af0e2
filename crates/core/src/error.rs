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

    /// The error's field in a config file, given the path of the plugin's
    /// `config` object there (`routes[0].plugins[1].config`): that path, or
    /// it joined with the error's own (`.allow[2]`, `[0]`).
    pub fn field_under(&self, config_at: &str) -> String {
        if self.path.is_empty() {
            config_at.to_owned()
        } else if self.path.starts_with('[') {
            format!("{config_at}{}", self.path)
        } else {
            format!("{config_at}.{}", self.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PluginError;

    #[test]
    fn fields_join_under_the_config_path() {
        let at = "routes[0].plugins[1].config";
        for (path, want) in [
            ("", "routes[0].plugins[1].config"),
            ("allow[2]", "routes[0].plugins[1].config.allow[2]"),
            ("[0]", "routes[0].plugins[1].config[0]"),
        ] {
            assert_eq!(PluginError::at(path, "m").field_under(at), want);
        }
    }
}
