//! The built-in gatehouse plugins and the registry that finds them by name.
//!
//! One module per plugin: each holds its config type (serde + JSON Schema),
//! its [`PluginFactory`], its [`gatehouse_core::Plugin`] impl and its tests.
//! The user documentation of each plugin lives in `docs/plugins/<name>.md`.
//!
//! | name                 | band           | priority | phases                              |
//! |----------------------|----------------|---------:|-------------------------------------|
//! | `request-id`         | observe        |   100000 | rewrite, response_headers           |
//! | `ip-restriction`     | admission      |     3000 | access                              |
//! | `cors`               | admission      |     2000 | rewrite, response_headers           |
//! | `key-auth`           | authentication |     1250 | access                              |
//! | `request-size-limit` | policy         |      951 | access                              |
//! | `headers`            | transform      |      800 | upstream_request, response_headers  |
//! | `mock`               | respond        |    -1000 | access                              |
//!
//! The bands and the same table, for users, are in docs/plugins/README.md
//! (checked against this registry by `tests/docs_examples.rs`).

use std::marker::PhantomData;
use std::sync::Arc;

use gatehouse_core::{Band, BuildCx, Plugin, PluginError, PluginFactory, ProblemDef};

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

/// The registry type lives in core (the proxy and the control plane take
/// one without depending on this crate); [`registry`] fills one.
pub use gatehouse_core::Registry;

/// Builds a plugin instance from its parsed config.
pub type BuildFn<C> = fn(C, &BuildCx<'_>) -> Result<Arc<dyn Plugin>, PluginError>;

/// A [`PluginFactory`] for a plugin built from a typed, serde-parsed
/// config: it parses `config` (reporting the path of a faulty field),
/// provides the JSON Schema of `C`, and hands the parsed value to `build`.
pub struct TypedFactory<C> {
    name: &'static str,
    priority: i32,
    band: Band,
    problems: &'static [&'static ProblemDef],
    build: BuildFn<C>,
    config: PhantomData<fn() -> C>,
}

impl<C> TypedFactory<C> {
    /// A factory for plugin `name` with a default `priority` inside `band`.
    pub const fn new(name: &'static str, priority: i32, band: Band, build: BuildFn<C>) -> Self {
        Self {
            name,
            priority,
            band,
            problems: &[],
            build,
            config: PhantomData,
        }
    }

    /// The problem types the plugin answers with
    /// ([`PluginFactory::problem_types`]).
    pub const fn problems(mut self, problems: &'static [&'static ProblemDef]) -> Self {
        self.problems = problems;
        self
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

    fn band(&self) -> Band {
        self.band
    }

    fn schema(&self) -> serde_json::Value {
        config::schema_of::<C>()
    }

    fn problem_types(&self) -> &'static [&'static ProblemDef] {
        self.problems
    }

    fn build(
        &self,
        value: &serde_json::Value,
        cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Plugin>, PluginError> {
        (self.build)(config::parse::<C>(value)?, cx)
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
    use gatehouse_core::plugin::testing::check_phases;
    use serde_json::json;

    /// A config every built-in plugin accepts.
    fn minimal(name: &str) -> serde_json::Value {
        match name {
            "ip-restriction" => json!({"allow": ["10.0.0.0/8"]}),
            "request-size-limit" => json!({"max_bytes": 10}),
            _ => serde_json::Value::Null,
        }
    }

    /// A config under which the plugin takes part in every phase it can:
    /// `headers` only declares the sides it has rules for.
    fn every_phase(name: &str) -> serde_json::Value {
        match name {
            "headers" => json!({
                "request": {"set": {"x-a": "1"}},
                "response": {"set": {"x-b": "1"}}
            }),
            _ => minimal(name),
        }
    }

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
        for factory in registry().iter() {
            let name = factory.name();
            let plugin = testing::build_in(&**factory, &minimal(name), &env)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(plugin.name(), name);
        }
    }

    #[test]
    fn every_priority_lies_in_its_band() {
        for factory in registry().iter() {
            let (name, band, priority) = (factory.name(), factory.band(), factory.priority());
            assert!(
                band.range().contains(&priority),
                "{name}: priority {priority} is outside band {} ({:?})",
                band.name(),
                band.range()
            );
        }
    }

    #[test]
    fn every_plugin_declares_exactly_the_phases_it_implements() {
        let env = BuildEnv::default();
        let mut failures = Vec::new();
        for factory in registry().iter() {
            let name = factory.name();
            let plugin = testing::build_in(&**factory, &every_phase(name), &env)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            if let Err(e) = check_phases(&*plugin) {
                failures.push(e);
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn capabilities_are_declared_where_the_proxy_needs_them() {
        use gatehouse_core::Capabilities;
        let env = BuildEnv::default();
        let caps = |name: &str| {
            let factory = registry().get(name).cloned().unwrap();
            testing::build_in(&*factory, &minimal(name), &env)
                .unwrap()
                .capabilities()
        };
        assert!(caps("cors").contains(Capabilities::ANSWERS_PREFLIGHT));
        assert!(caps("key-auth").contains(Capabilities::IDENTIFIES));
        for name in [
            "headers",
            "ip-restriction",
            "mock",
            "request-id",
            "request-size-limit",
        ] {
            assert_eq!(caps(name), Capabilities::NONE, "{name}");
        }
    }

    #[test]
    fn plugin_problem_slugs_are_unique_and_not_core_ones() {
        let mut seen: std::collections::HashSet<&str> = gatehouse_core::problem::CORE_TYPES
            .iter()
            .map(|t| t.slug())
            .collect();
        for factory in registry().iter() {
            for def in factory.problem_types() {
                assert!(
                    seen.insert(def.slug),
                    "{}: slug {} taken",
                    factory.name(),
                    def.slug
                );
            }
        }
    }
}
