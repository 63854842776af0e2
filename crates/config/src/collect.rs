//! What the cross-entity checks (`validate`, `lifecycle`) report into: the
//! errors found so far, each located in the file, and how a list of
//! defined names is worded in a message.

use std::collections::HashSet;

use crate::error::ConfigErrors;
use crate::locate::Source;

/// Collects every error of one validation pass instead of stopping at the
/// first.
pub(crate) struct Collector<'a> {
    source: &'a Source,
    errors: Vec<crate::ConfigError>,
}

impl<'a> Collector<'a> {
    /// An empty collector locating fields in `source`.
    pub(crate) fn new(source: &'a Source) -> Self {
        Self {
            source,
            errors: Vec::new(),
        }
    }

    /// An error about the field at the dotted path `field`.
    pub(crate) fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(self.source.error(&field.into(), message));
    }

    /// Every error collected, or `Ok` when there is none.
    pub(crate) fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// `names` sorted and comma-separated, `none` when empty.
pub(crate) fn list(names: &HashSet<&str>) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    let mut v: Vec<&str> = names.iter().copied().collect();
    v.sort_unstable();
    v.join(", ")
}
