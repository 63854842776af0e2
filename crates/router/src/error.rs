//! Errors reported while compiling route specs into a [`crate::Router`].

/// A route spec that cannot be compiled.
///
/// `route` is the index of the spec in the list given to [`crate::Router::build`];
/// `field` names the offending entry in the style `paths[1]`, `hosts[0]`,
/// `headers[2]`, `query[0]` or `version`, so the config layer can point at the
/// exact YAML node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {route}: {field}: {message}")]
pub struct BuildError {
    /// Index of the route in the spec list.
    pub route: usize,
    /// The field at fault, e.g. `paths[1]`.
    pub field: String,
    /// What is wrong, for humans.
    pub message: String,
}

impl BuildError {
    pub(crate) fn new(route: usize, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            route,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A string that [`crate::ValueMatch::parse`] cannot turn into a matcher.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ValueMatchError {
    /// The text after `~` is not a valid regular expression.
    #[error("invalid regex {pattern:?}: {source}")]
    Regex {
        /// The regex text, without the leading `~`.
        pattern: String,
        /// Why the regex crate rejected it.
        #[source]
        source: regex::Error,
    },
}
