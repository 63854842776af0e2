//! The built-in gatehouse plugins and the registry that finds them by name.
//!
//! One module per plugin: each holds its config type (serde + JSON Schema),
//! its [`PluginFactory`], its [`gatehouse_core::Plugin`] impl and its tests.
//! The user documentation of each plugin lives in `docs/plugins/<name>.md`.
//!
//! | name                 | priority | phases                              |
//! |----------------------|---------:|-------------------------------------|
//! | `request-id`         |   100000 | rewrite, response_headers           |
//! | `ip-restriction`     |     3000 | access                              |
//! | `cors`               |     2000 | rewrite, response_headers           |
//! | `key-auth`           |     1250 | access                              |
//! | `request-size-limit` |      951 | access                              |
//! | `headers`            |      800 | upstream_request, response_headers  |
//! | `mock`               |    -1000 | access                              |

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use gatehouse_core::{BuildEnv, CredentialScheme, Plugin, PluginError, PluginFactory, Schemes};

mod config;
#[cfg(test)]
mod testing;

pub mod cors;
pub mod headers;
pub mod ip_restriction;
pub mod key_auth;
pub mod mock;
pub mod request_id;
pub mod request_size_limit;

pub use request_size_limit::BodyTooLarge;

/// Builds a plugin instance from its parsed config.
pub type BuildFn<C> = fn(C, &BuildEnv) -> Result<Arc<dyn Plugin>, PluginError>;

/// A [`PluginFactory`] for a plugin built from a typed, serde-parsed
/// config: it parses `config` (reporting the path of a faulty field),
/// provides the JSON Schema of `C`, and hands the parsed value to `build`.
pub struct TypedFactory<C> {
    name: &'static str,
    priority: i32,
    build: BuildFn<C>,
    config: PhantomData<fn() -> C>,
}

impl<C> TypedFactory<C> {
    /// A factory for plugin `name` with a default `priority`.
    pub const fn new(name: &'static str, priority: i32, build: BuildFn<C>) -> Self {
        Self {
            name,
            priority,
            build,
            config: PhantomData,
        }
    }
}

impl<C> PluginFactory for TypedFactory<C>
where
    C: serde::de::DeserializeOwned + schemars::JsonSchema + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn schema(&self) -> serde_json::Value {
        config::schema_of::<C>()
    }

    fn build(
        &self,
        value: &serde_json::Value,
        env: &BuildEnv,
    ) -> Result<Arc<dyn Plugin>, PluginError> {
        (self.build)(config::parse::<C>(value)?, env)
    }
}

/// Plugin factories by registry name, and the credential schemes the
/// authentication plugins bring (see [`gatehouse_core::credentials`]).
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

/// The registry of every built-in plugin.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(Arc::new(request_id::FACTORY));
    registry.register(Arc::new(cors::FACTORY));
    registry.register(Arc::new(ip_restriction::FACTORY));
    registry.register(Arc::new(request_size_limit::FACTORY));
    registry.register(Arc::new(mock::FACTORY));
    registry.register(Arc::new(headers::FACTORY));
    registry.register(Arc::new(key_auth::FACTORY));
    registry.register_scheme(Arc::new(key_auth::SCHEME));
    registry
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::BuildEnv;
    use serde_json::json;

    #[test]
    fn registry_holds_every_plugin_with_its_priority() {
        let r = registry();
        let names: Vec<_> = r.names().collect();
        assert_eq!(
            names,
            [
                "cors",
                "headers",
                "ip-restriction",
                "key-auth",
                "mock",
                "request-id",
                "request-size-limit"
            ]
        );
        let prio = |n: &str| r.get(n).unwrap().priority();
        assert_eq!(prio("request-id"), 100_000);
        assert_eq!(prio("ip-restriction"), 3000);
        assert_eq!(prio("cors"), 2000);
        assert_eq!(prio("key-auth"), 1250);
        assert_eq!(prio("request-size-limit"), 951);
        assert_eq!(prio("headers"), 800);
        assert_eq!(prio("mock"), -1000);
        assert!(r.get("nope").is_none());
        let iterated: Vec<_> = r.iter().map(|f| f.name()).collect();
        assert_eq!(iterated, names);
        assert_eq!(r.len(), 7);
        let schemes: Vec<_> = r.schemes().iter().map(|s| (s.name(), s.field())).collect();
        assert_eq!(schemes, [("key-auth", "key_auth")]);
        // Every scheme belongs to a registered plugin of its name.
        for s in r.schemes().iter() {
            assert!(r.get(s.name()).is_some(), "{}", s.name());
        }
    }

    #[test]
    fn every_schema_is_an_object_schema() {
        for factory in registry().iter() {
            let name = factory.name();
            let schema = factory.schema();
            assert_eq!(schema["type"], "object", "{name}: {schema}");
            assert_eq!(schema["additionalProperties"], false, "{name}");
        }
    }

    #[test]
    fn built_plugins_report_their_name() {
        let env = BuildEnv::default();
        let minimal = |name: &str| match name {
            "ip-restriction" => json!({"allow": ["10.0.0.0/8"]}),
            "request-size-limit" => json!({"max_bytes": 10}),
            _ => serde_json::Value::Null,
        };
        for factory in registry().iter() {
            let name = factory.name();
            let plugin = factory
                .build(&minimal(name), &env)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(plugin.name(), name);
        }
    }
}
