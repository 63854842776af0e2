//! The plugin registry: factories by name. It lives in core so that the
//! data plane, the control plane and the binary all take a registry without
//! depending on the built-in plugins crate (`gatehouse_plugins::registry()`
//! fills one with the built-in plugins).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::credentials::{CredentialScheme, Schemes};
use crate::plugin::PluginFactory;

/// Plugin factories by registry name, and the credential schemes the
/// authentication plugins bring (see [`crate::credentials`]).
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<&'static str, Arc<dyn PluginFactory>>,
    schemes: Schemes,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the factory registered under its own name.
    pub fn register(&mut self, factory: Arc<dyn PluginFactory>) {
        self.factories.insert(factory.name(), factory);
    }

    /// Adds (or replaces) a credential scheme: its credentials are then
    /// accepted under `consumers[].credentials.<field>` and in credential
    /// documents, checked, kept secret and indexed for its plugin
    /// (docs/plugins/AUTHORING.md, "Credential schemes").
    pub fn register_scheme(&mut self, scheme: Arc<dyn CredentialScheme>) {
        self.schemes.register(scheme);
    }

    /// The registered credential schemes.
    pub fn schemes(&self) -> &Schemes {
        &self.schemes
    }

    /// The factory for `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn PluginFactory>> {
        self.factories.get(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.factories.keys().copied()
    }

    /// The message for a plugin name that is not registered, listing the
    /// ones that are.
    pub fn unknown_plugin(&self, name: &str) -> String {
        format!(
            "unknown plugin `{name}` (available: {})",
            self.names().collect::<Vec<_>>().join(", ")
        )
    }

    /// Registered factories, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn PluginFactory>> + '_ {
        self.factories.values()
    }

    /// Number of registered factories.
    pub fn len(&self) -> usize {
        self.factories.len()
    }

    /// Whether no factory is registered.
    pub fn is_empty(&self) -> bool {
        self.factories.is_empty()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("factories", &self.factories.keys())
            .field("schemes", &self.schemes)
            .finish()
    }
}
