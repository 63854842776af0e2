//! What plugins are built with, per workspace: the consumers their config
//! may name and the credential indexes and app keys they look callers up
//! in (`gatehouse_core::BuildEnv`). One function, used by the data plane's
//! compile and the control plane's check alike.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_core::{App, AppKey, AppKeys, BuildEnv, Consumer, KeyHash, KeyHasher, Schemes};

use crate::Config;

/// The build environments of one configuration, by workspace id
/// (`Config::workspaces`; a file config has one workspace, `default`).
pub struct BuildEnvs {
    /// For the plugins of the workspace's routes, services and consumers:
    /// the keys and apps of the consumers its routes accept, and those
    /// consumers by the name its documents use (own consumers unqualified,
    /// accepted ones by their qualified name).
    pub own: Vec<BuildEnv>,
    /// For the global plugins on the workspace's routes: the same keys;
    /// consumer names are those of `default`, where global plugins are
    /// written (`default`'s map, shared by every workspace).
    pub global: Vec<BuildEnv>,
}

impl BuildEnvs {
    /// Builds the environments of `config` with the credential indexes of
    /// `schemes` and app keys hashed with `hasher`.
    pub fn build(config: &Config, schemes: &Schemes, hasher: &KeyHasher) -> Self {
        let tenancy = &config.workspaces;
        let consumer = |c: &crate::Consumer| Consumer {
            username: c.username.as_str().into(),
            custom_id: c.custom_id.as_deref().map(Into::into),
        };
        // The consumers of each workspace, with the name its own
        // documents use for them.
        let mut by_ws: Vec<Vec<(&str, &crate::Consumer)>> = vec![Vec::new(); tenancy.count()];
        for (i, c) in config.consumers.iter().enumerate() {
            let w = tenancy.of("consumers", i);
            let prefix = format!("{}/", tenancy.name(w));
            let local = if w == 0 {
                c.username.as_str()
            } else {
                c.username.strip_prefix(&prefix).unwrap_or(&c.username)
            };
            if let Some(list) = by_ws.get_mut(w) {
                list.push((local, c));
            }
        }
        let mut own: Vec<BuildEnv> = Vec::with_capacity(by_ws.len());
        for w in 0..by_ws.len() {
            // Per scheme field, the credentials of the accepted workspaces
            // (reversed into lookup order below: a scheme's index keeps
            // the first of two equal credentials).
            let mut credentials: HashMap<&str, Vec<(Consumer, &serde_json::Value)>> =
                HashMap::new();
            let mut consumers = HashMap::new();
            let mut app_keys = AppKeys::new(hasher.clone());
            // Accepted workspaces in reverse order, own last: the earlier
            // a workspace is tried, the later it is inserted, so its key or
            // name wins over the same one elsewhere.
            let order: Vec<usize> = tenancy.accepted_by(w).collect();
            for &from in order.iter().rev() {
                for &(local, c) in by_ws.get(from).into_iter().flatten() {
                    let rt = consumer(c);
                    for (field, list) in &c.credentials.0 {
                        let entries = credentials.entry(field.as_str()).or_default();
                        entries.extend(list.iter().map(|v| (rt.clone(), v)));
                    }
                    for app in &c.apps {
                        for k in &app.keys {
                            let Some(hash) = KeyHash::parse(&k.hash) else {
                                continue; // reported by validation
                            };
                            app_keys.insert(
                                hash,
                                AppKey {
                                    app: App {
                                        name: app.name.as_str().into(),
                                        consumer: c.username.as_str().into(),
                                    },
                                    consumer: rt.clone(),
                                    expires_at: k.expires_at.map(|t| t.0),
                                    revoked: k.revoked,
                                },
                            );
                        }
                    }
                    let name = if from == w {
                        local
                    } else {
                        c.username.as_str()
                    };
                    consumers.insert(name.to_string(), rt);
                }
            }
            // Earlier workspaces were pushed last: reverse into lookup order.
            let mut indexes = gatehouse_core::credentials::Indexes::default();
            for scheme in schemes.iter() {
                let mut list = credentials.remove(scheme.field()).unwrap_or_default();
                list.reverse();
                indexes.insert(scheme.name(), scheme.index(&list));
            }
            own.push(BuildEnv {
                credentials: indexes,
                consumers: Arc::new(consumers),
                app_keys: Arc::new(app_keys),
            });
        }
        // Global plugins are written in `default`: the consumers they name
        // are `default`'s (one shared map), the keys they check the route's.
        let global = own
            .iter()
            .map(|env| BuildEnv {
                credentials: env.credentials.clone(),
                consumers: own[0].consumers.clone(),
                app_keys: env.app_keys.clone(),
            })
            .collect();
        Self { own, global }
    }
}
