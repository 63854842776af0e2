//! From the control-plane store to what a node serves: [`assemble`] turns
//! the documents of every workspace plus the node's own settings (`server`,
//! `listeners`) into one `gatehouse_config::Config`; [`check_documents`]
//! also runs the checks `gatehouse validate` runs. See docs/cluster.md.
//!
//! Naming: entities of workspace `default` keep their names; those of any
//! other workspace `W` become `W/name`, and so does every reference to
//! them. Global plugins of `default` stay global; global plugins of `W`
//! are attached to each of `W`'s services that has no plugin of that name.
//! `app` and `credential` documents join their consumer. Workspace and
//! certificate documents are not compiled here (store-backed nodes add
//! certificates to their TLS listeners themselves, crates/gatehouse/src/certs.rs).

mod assemble;
mod conflict;

use gatehouse_config::{Config, ConfigError, Loaded};
use gatehouse_store::Document;

pub use assemble::qualify;

/// The name validation messages give the assembled configuration.
pub const SOURCE_NAME: &str = "store";

/// One configuration from every workspace's documents plus the node
/// settings (`server` and `listeners` of `node`; its entity sections are
/// ignored). Errors: bodies that do not decode, app or credential
/// documents naming an unknown consumer, and routes of different
/// workspaces that conflict. The result is not validated yet (see
/// [`check_documents`]).
pub fn assemble(documents: &[Document], node: &Config) -> Result<Config, Vec<String>> {
    let assembled = assemble::assemble(documents, node)?;
    let conflicts = conflict::route_conflicts(&assembled.config.routes, &assembled.route_origins);
    if conflicts.is_empty() {
        Ok(assembled.config)
    } else {
        Err(conflicts)
    }
}

/// [`assemble`], then the validation `gatehouse validate` runs, giving a
/// [`Loaded`] ready for `Gateway::start` / `reload` (which compile it).
/// Relative file paths resolve against the current directory.
pub fn prepare(documents: &[Document], node: &Config) -> Result<Loaded, Vec<String>> {
    let config = assemble(documents, node)?;
    let loaded = gatehouse_config::from_config(config.clone(), SOURCE_NAME).map_err(|e| {
        e.0.iter()
            .map(|e| describe(e, Some(&config)))
            .collect::<Vec<_>>()
    })?;
    Ok(match std::env::current_dir() {
        Ok(dir) => loaded.with_base_dir(dir),
        Err(_) => loaded,
    })
}

/// [`assemble`], then the same validation and compile `gatehouse validate`
/// runs (`gatehouse_proxy::check`), with the validator's messages as
/// strings (naming the entity each is about).
pub fn check_documents(documents: &[Document], node: &Config) -> Result<Config, Vec<String>> {
    let loaded = prepare(documents, node)?;
    compile_errors(&loaded)?;
    Ok(loaded.config)
}

/// Compiles `loaded` (without binding anything), as a list of messages.
pub fn compile_errors(loaded: &Loaded) -> Result<(), Vec<String>> {
    gatehouse_proxy::check(loaded).map_err(|e| {
        e.0.iter()
            .map(|err| describe(err, Some(&loaded.config)))
            .collect()
    })
}

/// A validation message with the entity it is about spelled out:
/// `routes[3].service` becomes ``route `team-a/orders` (routes[3].service)``.
pub fn describe(e: &ConfigError, config: Option<&Config>) -> String {
    let entity = config.and_then(|c| entity_of(&e.field, c));
    match (entity, e.field.is_empty()) {
        (_, true) => e.message.clone(),
        (Some(entity), false) => format!("{entity} ({}): {}", e.field, e.message),
        (None, false) => format!("{}: {}", e.field, e.message),
    }
}

fn entity_of(field: &str, c: &Config) -> Option<String> {
    let (section, rest) = field.split_once('[')?;
    let index: usize = rest.split_once(']')?.0.parse().ok()?;
    let (kind, name) = match section {
        "services" => ("service", c.services.get(index)?.name.clone()),
        "routes" => ("route", c.routes.get(index)?.name.clone()),
        "plugins" => ("global plugin", c.plugins.get(index)?.name.clone()),
        "consumers" => ("consumer", c.consumers.get(index)?.username.clone()),
        "apis" => {
            let a = c.apis.get(index)?;
            ("api", format!("{}@{}", a.name, a.version))
        }
        "plans" => ("plan", c.plans.get(index)?.name.clone()),
        "subscriptions" => {
            let s = c.subscriptions.get(index)?;
            ("subscription", format!("{}/{}", s.app, s.api))
        }
        _ => return None,
    };
    Some(format!("{kind} `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualify_keeps_default_names() {
        assert_eq!(qualify("default", "orders"), "orders");
        assert_eq!(qualify("team-a", "orders"), "team-a/orders");
    }
}
