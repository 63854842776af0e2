//! Checks of the API lifecycle and app entities: `apis`, the consumers'
//! `apps` and their key hashes, `plans` and `subscriptions`.

use std::collections::{HashMap, HashSet};

use crate::collect::{Collector, list};
use crate::model::{ApiState, Config};

/// Whether `hash` is the stored form of a key hash: `k1:` and 64 hex
/// digits.
pub fn valid_key_hash(hash: &str) -> bool {
    hash.strip_prefix("k1:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(crate) fn validate(config: &Config, c: &mut Collector<'_>) {
    apis(config, c);
    apps(config, c);
    plans_and_subscriptions(config, c);
}

fn apis(config: &Config, c: &mut Collector<'_>) {
    let routes: HashSet<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    let mut versions: HashMap<(&str, &str), usize> = HashMap::new();
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, api) in config.apis.iter().enumerate() {
        let at = format!("apis[{i}]");
        if api.name.trim().is_empty() {
            c.error(format!("{at}.name"), "must not be empty");
        }
        if api.version.trim().is_empty() {
            c.error(format!("{at}.version"), "must not be empty");
        } else if let Some(prev) = versions.insert((&api.name, &api.version), i) {
            c.error(
                format!("{at}.version"),
                format!(
                    "`{}` version `{}` is already defined at apis[{prev}]",
                    api.name, api.version
                ),
            );
        }
        for (j, r) in api.routes.iter().enumerate() {
            if !routes.contains(r.as_str()) {
                c.error(
                    format!("{at}.routes[{j}]"),
                    format!("no route named `{r}` (defined routes: {})", list(&routes)),
                );
            } else if let Some(prev) = owner.insert(r, i) {
                if prev == i {
                    c.error(
                        format!("{at}.routes[{j}]"),
                        format!("route `{r}` is listed twice"),
                    );
                } else {
                    let other = &config.apis[prev];
                    c.error(
                        format!("{at}.routes[{j}]"),
                        format!(
                            "route `{r}` already belongs to apis[{prev}] (`{}` {}); a route belongs to at most one API",
                            other.name, other.version
                        ),
                    );
                }
            }
        }
        if let Some(p) = &api.openapi
            && p.trim().is_empty()
        {
            c.error(format!("{at}.openapi"), "must not be empty");
        }
        if api.state == ApiState::Deprecated && api.deprecated_at.is_none() {
            c.error(
                format!("{at}.deprecated_at"),
                "required with `state: deprecated` (when the API was deprecated, e.g. 2026-06-01T00:00:00Z)",
            );
        }
        if let (Some(dep), Some(sunset)) = (api.deprecated_at, api.sunset)
            && sunset < dep
        {
            c.error(
                format!("{at}.sunset"),
                "must not be earlier than `deprecated_at`",
            );
        }
        if let Some(s) = &api.successor {
            let ok = !s.trim().is_empty()
                && !s.contains(['<', '>', ' ', '"'])
                && s.parse::<http::Uri>().is_ok()
                && http::HeaderValue::from_str(s).is_ok();
            if !ok {
                c.error(
                    format!("{at}.successor"),
                    format!("`{s}` is not a URI (expected e.g. /v3/orders or https://api.example.com/v3/orders)"),
                );
            }
        }
    }
}

fn apps(config: &Config, c: &mut Collector<'_>) {
    let mut names: HashMap<&str, String> = HashMap::new();
    // Key hashes are unique per workspace, not across workspaces: a check
    // across workspaces would tell a workspace admin that a key they
    // guessed exists in another workspace (and where). Each workspace's
    // routes look keys up in that workspace's own map (docs/security.md).
    let mut hashes: HashMap<(usize, String), String> = HashMap::new();
    for (i, consumer) in config.consumers.iter().enumerate() {
        let ws = config.workspaces.of("consumers", i);
        for (j, app) in consumer.apps.iter().enumerate() {
            let at = format!("consumers[{i}].apps[{j}]");
            if app.name.trim().is_empty() {
                c.error(format!("{at}.name"), "must not be empty");
            } else if let Some(prev) = names.insert(&app.name, at.clone()) {
                c.error(
                    format!("{at}.name"),
                    format!(
                        "`{}` is already used by {prev} (app names are unique across consumers)",
                        app.name
                    ),
                );
            }
            for (k, key) in app.keys.iter().enumerate() {
                let field = format!("{at}.keys[{k}].hash");
                if !valid_key_hash(&key.hash) {
                    c.error(
                        field,
                        "expected `k1:` and 64 hex digits (the output of `gatehouse keys hash` or `gatehouse keys new`); plaintext keys do not belong in the config",
                    );
                } else if let Some(prev) = hashes.insert(
                    (ws, key.hash.to_ascii_lowercase()),
                    format!("{at}.keys[{k}]"),
                ) {
                    c.error(field, format!("duplicate key hash (also at {prev})"));
                }
            }
        }
    }
}

fn plans_and_subscriptions(config: &Config, c: &mut Collector<'_>) {
    let mut plans: HashMap<&str, usize> = HashMap::new();
    for (i, p) in config.plans.iter().enumerate() {
        let field = format!("plans[{i}].name");
        if p.name.trim().is_empty() {
            c.error(field, "must not be empty");
        } else if let Some(prev) = plans.insert(&p.name, i) {
            c.error(
                field,
                format!("`{}` is already used by plans[{prev}]", p.name),
            );
        }
    }
    let apps: HashSet<&str> = config
        .consumers
        .iter()
        .flat_map(|c| c.apps.iter().map(|a| a.name.as_str()))
        .collect();
    let mut api_versions: HashMap<&str, Vec<&str>> = HashMap::new();
    for a in &config.apis {
        api_versions.entry(&a.name).or_default().push(&a.version);
    }
    let api_names: HashSet<&str> = api_versions.keys().copied().collect();
    let plan_names: HashSet<&str> = plans.keys().copied().collect();
    let mut seen: HashMap<(&str, &str, Option<&str>), usize> = HashMap::new();
    for (i, s) in config.subscriptions.iter().enumerate() {
        let at = format!("subscriptions[{i}]");
        if !apps.contains(s.app.as_str()) {
            c.error(
                format!("{at}.app"),
                format!("no app named `{}` (defined apps: {})", s.app, list(&apps)),
            );
        }
        match api_versions.get(s.api.as_str()) {
            None => c.error(
                format!("{at}.api"),
                format!(
                    "no API named `{}` (defined APIs: {})",
                    s.api,
                    list(&api_names)
                ),
            ),
            Some(versions) => {
                if let Some(v) = &s.version
                    && !versions.contains(&v.as_str())
                {
                    c.error(
                        format!("{at}.version"),
                        format!(
                            "API `{}` has no version `{v}` (defined versions: {})",
                            s.api,
                            versions.join(", ")
                        ),
                    );
                }
            }
        }
        if !plan_names.contains(s.plan.as_str()) {
            c.error(
                format!("{at}.plan"),
                format!(
                    "no plan named `{}` (defined plans: {})",
                    s.plan,
                    list(&plan_names)
                ),
            );
        }
        if let Some(prev) = seen.insert((&s.app, &s.api, s.version.as_deref()), i) {
            c.error(
                at.clone(),
                format!(
                    "app `{}` is already subscribed to `{}`{} at subscriptions[{prev}]",
                    s.app,
                    s.api,
                    s.version
                        .as_deref()
                        .map(|v| format!(" {v}"))
                        .unwrap_or_default()
                ),
            );
        }
    }
}
