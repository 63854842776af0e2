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
mod check;
mod hosts;

use gatehouse_config::{Config, ConfigError, ConfigErrors, Loaded};
use gatehouse_core::Registry;
use gatehouse_store::Document;

pub use assemble::qualify;
pub use check::check;

/// The name validation messages give the assembled configuration.
pub const SOURCE_NAME: &str = "store";

/// One problem found in the store's documents, with the workspace it is
/// about so that a caller limited to one workspace is shown only its own
/// problems, in words that name nothing of another workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The workspace whose documents it is about; `None` for the node
    /// settings.
    pub workspace: Option<String>,
    /// The message for callers who may see every workspace (and the node
    /// log): it names every entity involved.
    pub message: String,
    /// The message for a caller of `workspace` alone, when `message` names
    /// another workspace's entities; `None`: `message` is fine for them.
    pub scoped: Option<String>,
}

impl Issue {
    /// An issue about entities of `workspace` only.
    pub fn about(workspace: &str, message: String) -> Self {
        Self {
            workspace: Some(workspace.to_string()),
            message,
            scoped: None,
        }
    }
}

/// Who reads the messages of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer<'a> {
    /// A node, `gatehouse config apply` or a write of workspace documents:
    /// every message in full.
    All,
    /// A write into this workspace: its own problems, in words that name
    /// nothing outside it; other workspaces' problems only as one line
    /// saying that there are some.
    Workspace(&'a str),
}

/// The messages `viewer` is shown for `issues` (see [`Viewer`]).
pub fn messages(issues: Vec<Issue>, viewer: Viewer<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut hidden = false;
    for issue in issues {
        let text = match viewer {
            Viewer::All => issue.message,
            Viewer::Workspace(w) => match issue.workspace.as_deref() {
                None => issue.message,
                Some(own) if own == w => without_lists(&issue.scoped.unwrap_or(issue.message)),
                Some(_) => {
                    hidden = true;
                    continue;
                }
            },
        };
        if !out.contains(&text) {
            out.push(text);
        }
    }
    if let (true, true, Viewer::Workspace(w)) = (out.is_empty(), hidden, viewer) {
        out.push(format!(
            "the store has problems outside workspace `{w}`, which only a token for every workspace may see; no change is accepted until they are fixed"
        ));
    }
    out
}

/// `message` without `(defined services: a, b/c, ...)` lists: they list
/// the names of every workspace.
fn without_lists(message: &str) -> String {
    match message.find(" (defined ") {
        Some(i) => {
            let rest = &message[i..];
            let end = rest.find(')').map_or(rest.len(), |e| e + 1);
            format!("{}{}", &message[..i], &rest[end..])
        }
        None => message.to_string(),
    }
}

/// One configuration from every workspace's documents plus the node
/// settings (`server` and `listeners` of `node`; its entity sections are
/// ignored). Errors: bodies that do not decode, app or credential
/// documents naming an unknown consumer, bad `accept_consumers_from`, and
/// host ownership across workspaces (`hosts.rs`). The result is not
/// validated yet (see [`check_documents`]).
pub fn assemble(documents: &[Document], node: &Config) -> Result<Config, Vec<String>> {
    assemble_issues(documents, node).map_err(|i| messages(i, Viewer::All))
}

fn assemble_issues(documents: &[Document], node: &Config) -> Result<Config, Vec<Issue>> {
    let assembled = assemble::assemble(documents, node)?;
    let issues = hosts::ownership(
        &assembled.config.routes,
        &assembled.route_origins,
        &assembled.certificates,
    );
    if issues.is_empty() {
        Ok(assembled.config)
    } else {
        Err(issues)
    }
}

/// [`assemble`], then the validation `gatehouse validate` runs, giving a
/// [`Loaded`] ready for `Gateway::start` / `reload` (which compile it).
/// Relative file paths resolve against the current directory.
pub fn prepare(documents: &[Document], node: &Config) -> Result<Loaded, Vec<String>> {
    prepare_issues(documents, node).map_err(|i| messages(i, Viewer::All))
}

fn prepare_issues(documents: &[Document], node: &Config) -> Result<Loaded, Vec<Issue>> {
    let config = assemble_issues(documents, node)?;
    let loaded = gatehouse_config::from_config(config.clone(), SOURCE_NAME)
        .map_err(|e| e.0.iter().map(|e| issue(e, &config)).collect::<Vec<_>>())?;
    Ok(match std::env::current_dir() {
        Ok(dir) => loaded.with_base_dir(dir),
        Err(_) => loaded,
    })
}

/// [`assemble`], then validation and the control plane's [`check`] (plugin
/// configs and credentials through `registry`, the route table), with the
/// messages as strings (naming the entity each is about), in full. What
/// needs files (TLS certificates, OpenAPI documents) is checked by the
/// nodes, which compile the result (`gatehouse_proxy::check`).
pub fn check_documents(
    documents: &[Document],
    node: &Config,
    registry: &Registry,
) -> Result<Config, Vec<String>> {
    check_documents_for(documents, node, registry, Viewer::All)
}

/// [`check_documents`] with the messages `viewer` may see (the admin API
/// passes the workspace a write goes to).
pub fn check_documents_for(
    documents: &[Document],
    node: &Config,
    registry: &Registry,
    viewer: Viewer<'_>,
) -> Result<Config, Vec<String>> {
    let run = || {
        let loaded = prepare_issues(documents, node)?;
        check(&loaded, registry).map_err(|e| {
            e.0.iter()
                .map(|err| issue(err, &loaded.config))
                .collect::<Vec<_>>()
        })?;
        Ok(loaded.config)
    };
    run().map_err(|i| messages(i, viewer))
}

/// The messages of `errors` about `config`, each naming the entity it is
/// about (for the errors of a compile, `gatehouse_proxy::check`).
pub fn describe_all(errors: &ConfigErrors, config: &Config) -> Vec<String> {
    errors.0.iter().map(|e| describe(e, Some(config))).collect()
}

/// A validation error as an [`Issue`] of the workspace of the entity its
/// field is in (global plugins are `default`'s; node settings none).
fn issue(e: &ConfigError, config: &Config) -> Issue {
    let workspace = e.field.split_once('[').and_then(|(section, rest)| {
        let index: usize = rest.split_once(']')?.0.parse().ok()?;
        let id = match section {
            "plugins" => 0,
            "services" | "routes" | "consumers" | "apis" | "plans" | "subscriptions" => {
                config.workspaces.of(section, index)
            }
            _ => return None,
        };
        Some(config.workspaces.name(id).to_string())
    });
    // For the workspace's own writer: no `routes[57]` style paths, whose
    // indexes count the entities of every workspace before it; each one
    // becomes the entity it points at (of the same workspace).
    let scoped = workspace.as_ref().map(|_| {
        let rest = e
            .field
            .split_once(']')
            .map_or("", |(_, rest)| rest.trim_start_matches('.'));
        let message = localize(&e.message, config);
        match (entity_of(&e.field, config), rest.is_empty()) {
            (Some(entity), true) => format!("{entity}: {message}"),
            (Some(entity), false) => format!("{entity} ({rest}): {message}"),
            (None, _) => describe(e, Some(config)),
        }
    });
    Issue {
        workspace,
        message: describe(e, Some(config)),
        scoped,
    }
}

/// `text` with every `section[N]` path (`consumers[4].apps[0]`) replaced
/// by the entity it names (``consumer `team-a/alice` (apps[0])``).
fn localize(text: &str, config: &Config) -> String {
    const SECTIONS: [&str; 7] = [
        "services",
        "routes",
        "plugins",
        "consumers",
        "apis",
        "plans",
        "subscriptions",
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for section in SECTIONS {
            if let Some(after) = rest.strip_prefix(section).and_then(|a| a.strip_prefix('['))
                && let Some((digits, tail)) = after.split_once(']')
                && !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && let Some(entity) = entity_of(&format!("{section}[{digits}]"), config)
            {
                // The path below the entity, up to the next space or `)`.
                let end = tail.find([' ', ')', ',', ';']).unwrap_or(tail.len());
                let below = tail[..end].trim_start_matches('.');
                out.push_str(&entity);
                if !below.is_empty() {
                    out.push_str(&format!(" ({below})"));
                }
                rest = &tail[end..];
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
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
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn scoped_messages_hide_other_workspaces() {
        let issues = || {
            vec![
                Issue::about("a", "route `a/x` (routes[1].service): no service named `a/y` (defined services: a/s, b/secret)".into()),
                Issue {
                    workspace: Some("b".into()),
                    message: "route `r` in workspace `b` and route `x` in workspace `a` ...".into(),
                    scoped: Some("route `r` in workspace `b`: host taken".into()),
                },
                Issue {
                    workspace: None,
                    message: "listeners[0].address: bad".into(),
                    scoped: None,
                },
            ]
        };
        assert_eq!(messages(issues(), Viewer::All).len(), 3);
        assert_eq!(
            messages(issues(), Viewer::Workspace("a")),
            [
                "route `a/x` (routes[1].service): no service named `a/y`",
                "listeners[0].address: bad"
            ]
        );
        assert_eq!(
            messages(issues(), Viewer::Workspace("b")),
            [
                "route `r` in workspace `b`: host taken",
                "listeners[0].address: bad"
            ]
        );
        let only_b = vec![issues().remove(1)];
        let seen = messages(only_b, Viewer::Workspace("a"));
        assert_eq!(seen.len(), 1);
        assert!(seen[0].starts_with("the store has problems outside workspace `a`"));
        assert!(!seen[0].contains("`b`"));
    }

    #[test]
    fn paths_become_the_entities_they_name() {
        let mut config = Config::default();
        for name in ["x", "team-a/alice"] {
            config
                .consumers
                .push(serde_json::from_value(serde_json::json!({ "username": name })).unwrap());
        }
        assert_eq!(
            localize(
                "duplicate API key (also used by consumers[1].credentials.key_auth[0])",
                &config
            ),
            "duplicate API key (also used by consumer `team-a/alice` (credentials.key_auth[0]))"
        );
        assert_eq!(
            localize("routes[9] and routes[x]", &config),
            "routes[9] and routes[x]"
        );
    }

    #[test]
    fn qualify_keeps_default_names() {
        assert_eq!(qualify("default", "orders"), "orders");
        assert_eq!(qualify("team-a", "orders"), "team-a/orders");
    }
}
