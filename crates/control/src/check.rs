//! What the control plane checks beyond `gatehouse-config`'s validation,
//! without the data plane: every plugin config is built through the plugin
//! registry (unknown names, bad options, consumers a plugin names, plugins
//! that cannot run at consumer level), and the route table is built with
//! the router (path and matcher syntax, rewrite templates, conflicts). What
//! needs files or sockets (TLS certificates and keys, OpenAPI documents)
//! is checked where they are read: `gatehouse validate` and the nodes
//! (`gatehouse_proxy::check`).

use gatehouse_config::BuildEnvs;
use gatehouse_config::{ConfigError, ConfigErrors, Loaded, OneOrMany, PluginRef};
use gatehouse_core::{BuildCx, BuildEnv, KeyHasher, Phases, Registry, Resources, Scope};
use gatehouse_router::{RouteSpec, Router, ValueMatch, VersionSource, VersionSpec};

/// Checks `loaded` (already validated) with `registry`; errors carry
/// field paths like validation's.
pub fn check(loaded: &Loaded, registry: &Registry) -> Result<(), ConfigErrors> {
    let mut errs = gatehouse_config::check_credentials(loaded, registry.schemes());
    plugins(loaded, registry, &mut errs);
    routes(loaded, &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errs))
    }
}

fn plugins(loaded: &Loaded, registry: &Registry, errs: &mut Vec<ConfigError>) {
    let config = &loaded.config;
    let tenancy = &config.workspaces;
    let hasher = match &config.server.key_hash_secret {
        Some(secret) => KeyHasher::new(secret.as_bytes()),
        None => KeyHasher::default(),
    };
    let envs = BuildEnvs::build(config, registry.schemes(), &hasher).own;
    let default_env = BuildEnv::default();
    let env = |section: &str, i: usize| envs.get(tenancy.of(section, i)).unwrap_or(&default_env);
    // Global plugins are written in `default` and name its consumers.
    let global = envs.first().unwrap_or(&default_env);
    build(&config.plugins, "plugins", registry, global, loaded, errs);
    for (i, s) in config.services.iter().enumerate() {
        let at = format!("services[{i}].plugins");
        build(&s.plugins, &at, registry, env("services", i), loaded, errs);
    }
    for (i, r) in config.routes.iter().enumerate() {
        let at = format!("routes[{i}].plugins");
        build(&r.plugins, &at, registry, env("routes", i), loaded, errs);
    }
    for (i, c) in config.consumers.iter().enumerate() {
        let at = format!("consumers[{i}].plugins");
        let built = build(&c.plugins, &at, registry, env("consumers", i), loaded, errs);
        for (j, phases) in built {
            if let Some(why) = phases.late_attachment_problem() {
                errs.push(loaded.source.error(
                    &format!("{at}[{j}].name"),
                    format!(
                        "consumer `{}`: plugin `{}` cannot be attached to a consumer: {why}",
                        c.username, c.plugins[j].name
                    ),
                ));
            }
        }
    }
    for (i, p) in config.plans.iter().enumerate() {
        let at = format!("plans[{i}].plugins");
        let built = build(&p.plugins, &at, registry, env("plans", i), loaded, errs);
        for (j, phases) in built {
            if let Some(why) = phases.late_attachment_problem() {
                errs.push(loaded.source.error(
                    &format!("{at}[{j}].name"),
                    format!(
                        "plan `{}`: plugin `{}` cannot be attached to a plan: {why}",
                        p.name, p.plugins[j].name
                    ),
                ));
            }
        }
    }
}

/// Builds each plugin of `refs` (enabled or not: a disabled plugin's
/// config is still checked); returns the index and phases of each built.
fn build(
    refs: &[PluginRef],
    at: &str,
    registry: &Registry,
    env: &BuildEnv,
    loaded: &Loaded,
    errs: &mut Vec<ConfigError>,
) -> Vec<(usize, Phases)> {
    let mut built = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        let Some(factory) = registry.get(&r.name) else {
            errs.push(
                loaded
                    .source
                    .error(&format!("{at}[{i}].name"), registry.unknown_plugin(&r.name)),
            );
            continue;
        };
        let config = r.config.clone().unwrap_or(serde_json::Value::Null);
        // Detached resources: state is made fresh and dropped, and no
        // background task starts.
        let resources = Resources::detached();
        let scope = Scope::Other(at.into());
        match factory.build(
            &config,
            &BuildCx::new(factory.name(), env, &scope, &resources),
        ) {
            Ok(plugin) => built.push((i, plugin.phases())),
            Err(e) => {
                let path = e.field_under(&format!("{at}[{i}].config"));
                errs.push(loaded.source.error(&path, e.message));
            }
        }
    }
    built
}

/// The route table: matchers, templates and the router itself.
fn routes(loaded: &Loaded, errs: &mut Vec<ConfigError>) {
    let config = &loaded.config;
    let mut specs = Vec::with_capacity(config.routes.len());
    let mut index = Vec::with_capacity(config.routes.len());
    let drafts: std::collections::HashSet<&str> = config
        .apis
        .iter()
        .filter(|a| a.state == gatehouse_config::ApiState::Draft)
        .flat_map(|a| a.routes.iter().map(String::as_str))
        .collect();
    let mut push = |path: String, message: String| errs.push(loaded.source.error(&path, message));
    for (i, r) in config.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        let mut headers = Vec::with_capacity(r.headers.len());
        for (name, v) in &r.headers {
            match (
                http::HeaderName::from_bytes(name.as_bytes()),
                value_match(v),
            ) {
                (Ok(h), Ok(m)) => headers.push((h, m)),
                (Err(_), _) => push(
                    format!("{at}.headers.{name}"),
                    format!("`{name}` is not a valid header name"),
                ),
                (_, Err(e)) => push(format!("{at}.headers.{name}"), e),
            }
        }
        let mut query = Vec::with_capacity(r.query.len());
        for (name, v) in &r.query {
            match value_match(v) {
                Ok(m) => query.push((name.to_ascii_lowercase(), m)),
                Err(e) => push(format!("{at}.query.{name}"), e),
            }
        }
        for (j, b) in r.split.iter().flatten().enumerate() {
            let Some(w) = &b.when else { continue };
            for (kind, map) in [("headers", &w.headers), ("cookies", &w.cookies)] {
                for (name, v) in map {
                    if let Err(e) = value_match(v) {
                        push(format!("{at}.split[{j}].when.{kind}.{name}"), e);
                    }
                }
            }
        }
        let version = r.version.as_ref().map(|v| VersionSpec {
            value: v.value.clone(),
            source: if let Some(h) = &v.header {
                VersionSource::Header(h.0.clone())
            } else if let Some(q) = &v.query {
                VersionSource::Query(q.clone())
            } else {
                VersionSource::PathSegment
            },
            default: v.default,
        });
        let spec = RouteSpec {
            hosts: r.hosts.clone(),
            paths: r.paths.clone(),
            methods: r.methods.iter().map(|m| m.0.clone()).collect(),
            headers,
            query,
            version,
            priority: r.priority,
        };
        if let Some(t) = &r.rewrite
            && let Err(e) = gatehouse_router::validate_template(t, &spec)
        {
            push(format!("{at}.rewrite"), e);
        }
        if !drafts.contains(r.name.as_str()) {
            specs.push(spec);
            index.push(i);
        }
    }
    if let Err(e) = Router::build(specs) {
        let route = index.get(e.route).copied().unwrap_or(e.route);
        push(format!("routes[{route}].{}", e.field), e.message);
    }
}

fn value_match(v: &OneOrMany) -> Result<ValueMatch, String> {
    match v {
        OneOrMany::One(s) => ValueMatch::parse(s).map_err(|e| e.to_string()),
        OneOrMany::Many(list) => Ok(ValueMatch::OneOf(list.clone())),
    }
}
