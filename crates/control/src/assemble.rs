//! Documents of every workspace → one `Config`: names of workspaces other
//! than `default` are qualified as `workspace/name` (with every reference
//! to them), app and credential documents join their consumers, global
//! plugins of a non-default workspace attach to that workspace's services.

use std::collections::BTreeMap;

use gatehouse_config::{
    Api, AppDocument, Config, Consumer, CredentialDocument, Plan, PluginRef, Route, Service,
    Subscription,
};
use gatehouse_store::{DEFAULT_WORKSPACE, Document, Kind, WORKSPACE_SCOPE};
use serde::de::DeserializeOwned;

/// The name an entity of `workspace` has in the compiled configuration:
/// unchanged in `default`, `workspace/name` elsewhere.
pub fn qualify(workspace: &str, name: &str) -> String {
    if workspace == DEFAULT_WORKSPACE {
        name.to_string()
    } else {
        format!("{workspace}/{name}")
    }
}

/// Where an assembled entity came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub workspace: String,
    pub name: String,
}

/// An assembled configuration plus the origin of each route (same order as
/// `config.routes`), which the conflict check needs.
pub(crate) struct Assembled {
    pub config: Config,
    pub route_origins: Vec<Origin>,
}

fn decode<T: DeserializeOwned>(doc: &Document, errors: &mut Vec<String>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(&doc.body) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().to_string();
            let at = if path == "." || path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            };
            errors.push(format!(
                "{} document `{}` in workspace `{}` does not decode: {at}{}",
                doc.kind,
                doc.name,
                doc.workspace,
                e.inner()
            ));
            None
        }
    }
}

/// One workspace's entities, decoded and not yet qualified.
#[derive(Default)]
struct Workspace {
    services: Vec<Service>,
    routes: Vec<Route>,
    plugins: Vec<PluginRef>,
    consumers: Vec<Consumer>,
    apps: Vec<(String, AppDocument)>,
    credentials: Vec<(String, CredentialDocument)>,
    apis: Vec<Api>,
    plans: Vec<Plan>,
    subscriptions: Vec<Subscription>,
}

pub(crate) fn assemble(documents: &[Document], node: &Config) -> Result<Assembled, Vec<String>> {
    let mut errors = Vec::new();
    // BTreeMap: workspaces in name order, so the result is deterministic
    // whatever order the documents come in; `default` comes first.
    let mut workspaces: BTreeMap<(bool, &str), Workspace> = BTreeMap::new();
    for doc in documents {
        if doc.workspace == WORKSPACE_SCOPE {
            continue;
        }
        let key = (doc.workspace != DEFAULT_WORKSPACE, doc.workspace.as_str());
        let ws = workspaces.entry(key).or_default();
        match doc.kind {
            Kind::Workspace | Kind::Certificate => {}
            Kind::Service => ws.services.extend(decode(doc, &mut errors)),
            Kind::Route => ws.routes.extend(decode(doc, &mut errors)),
            Kind::Plugin => ws.plugins.extend(decode(doc, &mut errors)),
            Kind::Consumer => ws.consumers.extend(decode(doc, &mut errors)),
            Kind::App => {
                if let Some(a) = decode(doc, &mut errors) {
                    ws.apps.push((doc.name.clone(), a));
                }
            }
            Kind::Credential => {
                if let Some(c) = decode(doc, &mut errors) {
                    ws.credentials.push((doc.name.clone(), c));
                }
            }
            Kind::Api => ws.apis.extend(decode(doc, &mut errors)),
            Kind::Plan => ws.plans.extend(decode(doc, &mut errors)),
            Kind::Subscription => ws.subscriptions.extend(decode(doc, &mut errors)),
        }
    }

    let mut config = Config {
        server: node.server.clone(),
        listeners: node.listeners.clone(),
        ..Config::default()
    };
    let mut route_origins = Vec::new();
    for ((_, name), ws) in workspaces {
        add_workspace(name, ws, &mut config, &mut route_origins, &mut errors);
    }
    if errors.is_empty() {
        Ok(Assembled {
            config,
            route_origins,
        })
    } else {
        Err(errors)
    }
}

fn add_workspace(
    name: &str,
    ws: Workspace,
    config: &mut Config,
    route_origins: &mut Vec<Origin>,
    errors: &mut Vec<String>,
) {
    let q = |n: &str| qualify(name, n);
    let default = name == DEFAULT_WORKSPACE;

    // Consumers first: app and credential documents join them.
    let mut consumers = ws.consumers;
    for (doc_name, app) in ws.apps {
        match consumers.iter_mut().find(|c| c.username == app.consumer) {
            Some(c) => c.apps.push(app.app()),
            None => errors.push(format!(
                "app document `{doc_name}` in workspace `{name}` refers to consumer `{}`, which does not exist in that workspace",
                app.consumer
            )),
        }
    }
    for (doc_name, cred) in ws.credentials {
        match consumers.iter_mut().find(|c| c.username == cred.consumer) {
            Some(c) => {
                if let Some(k) = cred.key_auth {
                    c.credentials.key_auth.push(k);
                }
            }
            None => errors.push(format!(
                "credential document `{doc_name}` in workspace `{name}` refers to consumer `{}`, which does not exist in that workspace",
                cred.consumer
            )),
        }
    }

    for mut s in ws.services {
        s.name = q(&s.name);
        if !default {
            // A non-default workspace's global plugins apply to each of its
            // services that does not configure a plugin of that name.
            for p in &ws.plugins {
                if !s.plugins.iter().any(|own| own.name == p.name) {
                    s.plugins.push(p.clone());
                }
            }
        }
        config.services.push(s);
    }
    if default {
        config.plugins.extend(ws.plugins);
    }
    for mut r in ws.routes {
        route_origins.push(Origin {
            workspace: name.to_string(),
            name: r.name.clone(),
        });
        r.name = q(&r.name);
        if let Some(s) = &mut r.service {
            *s = q(s);
        }
        if let Some(branches) = &mut r.split {
            for b in branches {
                b.service = q(&b.service);
            }
        }
        config.routes.push(r);
    }
    for mut c in consumers {
        c.username = q(&c.username);
        for a in &mut c.apps {
            a.name = q(&a.name);
        }
        config.consumers.push(c);
    }
    for mut a in ws.apis {
        a.name = q(&a.name);
        for r in &mut a.routes {
            *r = q(r);
        }
        config.apis.push(a);
    }
    for mut p in ws.plans {
        p.name = q(&p.name);
        config.plans.push(p);
    }
    for mut s in ws.subscriptions {
        s.app = q(&s.app);
        s.api = q(&s.api);
        s.plan = q(&s.plan);
        config.subscriptions.push(s);
    }
}
