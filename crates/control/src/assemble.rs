//! Documents of every workspace → one `Config`: names of workspaces other
//! than `default` are qualified as `workspace/name` (with every reference
//! to them), app and credential documents join their consumers, global
//! plugins of a non-default workspace attach to that workspace's services.
//! The workspace of every entity and each workspace's
//! `accept_consumers_from` are recorded in `Config::workspaces`, so the
//! data plane scopes consumers, keys and consumer plugins per workspace
//! without parsing names.

use std::collections::BTreeMap;

use gatehouse_config::{
    Api, AppDocument, Config, Consumer, CredentialDocument, Plan, PluginRef, Route, Service,
    Subscription, Workspaces,
};
use gatehouse_store::{DEFAULT_WORKSPACE, Document, Kind, WORKSPACE_SCOPE};
use serde::de::DeserializeOwned;

use crate::Issue;

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
/// `config.routes`) and the host names certificate documents claim, which
/// the host ownership check needs.
pub(crate) struct Assembled {
    pub config: Config,
    pub route_origins: Vec<Origin>,
    pub certificates: Vec<(Origin, Vec<String>)>,
}

/// The part of a workspace document's body assembly reads (the admin API
/// checks the whole body, `gatehouse_admin::Workspace`).
#[derive(serde::Deserialize)]
struct WorkspaceBody {
    #[serde(default)]
    accept_consumers_from: Vec<String>,
}

/// The part of a certificate document's body the host check reads.
#[derive(serde::Deserialize)]
struct CertificateBody {
    #[serde(default)]
    cert: String,
    #[serde(default)]
    hosts: Vec<String>,
}

fn decode<T: DeserializeOwned>(doc: &Document, errors: &mut Vec<Issue>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(&doc.body) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().to_string();
            let at = if path == "." || path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            };
            // A workspace document is about the workspace it describes.
            let about = if doc.workspace == WORKSPACE_SCOPE {
                &doc.name
            } else {
                &doc.workspace
            };
            errors.push(Issue::about(
                about,
                format!(
                    "{} document `{}` in workspace `{}` does not decode: {at}{}",
                    doc.kind,
                    doc.name,
                    doc.workspace,
                    e.inner()
                ),
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

pub(crate) fn assemble(documents: &[Document], node: &Config) -> Result<Assembled, Vec<Issue>> {
    let mut errors = Vec::new();
    // BTreeMap: workspaces in name order, so the result is deterministic
    // whatever order the documents come in; `default` comes first (and is
    // always there: workspace 0).
    let mut workspaces: BTreeMap<(bool, &str), Workspace> = BTreeMap::new();
    workspaces.entry((false, DEFAULT_WORKSPACE)).or_default();
    let mut accepts: BTreeMap<&str, (String, Vec<String>)> = BTreeMap::new();
    let mut certificates = Vec::new();
    for doc in documents {
        if doc.workspace == WORKSPACE_SCOPE {
            if doc.kind == Kind::Workspace {
                workspaces
                    .entry((doc.name != DEFAULT_WORKSPACE, doc.name.as_str()))
                    .or_default();
                if let Some(body) = decode::<WorkspaceBody>(doc, &mut errors)
                    && !body.accept_consumers_from.is_empty()
                {
                    accepts.insert(
                        doc.name.as_str(),
                        (doc.name.clone(), body.accept_consumers_from),
                    );
                }
            }
            continue;
        }
        let key = (doc.workspace != DEFAULT_WORKSPACE, doc.workspace.as_str());
        let ws = workspaces.entry(key).or_default();
        match doc.kind {
            Kind::Workspace => {}
            Kind::Certificate => {
                if let Some(c) = decode::<CertificateBody>(doc, &mut errors) {
                    let names = if c.hosts.is_empty() {
                        pem_dns_names(c.cert.as_bytes())
                    } else {
                        c.hosts
                    };
                    certificates.push((
                        Origin {
                            workspace: doc.workspace.clone(),
                            name: doc.name.clone(),
                        },
                        names,
                    ));
                }
            }
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
    let mut tenancy = Workspaces::default();
    for ((_, name), ws) in workspaces {
        let id = tenancy.names.len();
        tenancy.names.push(name.to_string());
        add_workspace(
            (id, name),
            ws,
            &mut config,
            &mut tenancy,
            &mut route_origins,
            &mut errors,
        );
    }
    // Sharing is opted into by the accepting workspace's document (only
    // a super-admin writes those), naming workspaces that exist.
    tenancy.accepts = vec![Vec::new(); tenancy.names.len()];
    for (name, (_, list)) in accepts {
        let Some(id) = tenancy.names.iter().position(|n| n == name) else {
            continue;
        };
        for other in list {
            match tenancy.names.iter().position(|n| *n == other) {
                Some(o) if o == id => errors.push(Issue::about(
                    name,
                    format!("workspace `{name}`: accept_consumers_from names the workspace itself"),
                )),
                Some(o) if tenancy.accepts[id].contains(&o) => errors.push(Issue::about(
                    name,
                    format!("workspace `{name}`: accept_consumers_from names `{other}` twice"),
                )),
                Some(o) => tenancy.accepts[id].push(o),
                None => errors.push(Issue::about(
                    name,
                    format!(
                        "workspace `{name}`: accept_consumers_from names `{other}`, which is not a workspace"
                    ),
                )),
            }
        }
    }
    config.workspaces = tenancy;
    if errors.is_empty() {
        Ok(Assembled {
            config,
            route_origins,
            certificates,
        })
    } else {
        Err(errors)
    }
}

fn add_workspace(
    (id, name): (usize, &str),
    ws: Workspace,
    config: &mut Config,
    tenancy: &mut Workspaces,
    route_origins: &mut Vec<Origin>,
    errors: &mut Vec<Issue>,
) {
    let q = |n: &str| qualify(name, n);
    let default = name == DEFAULT_WORKSPACE;

    // Consumers first: app and credential documents join them.
    let mut consumers = ws.consumers;
    for (doc_name, app) in ws.apps {
        match consumers.iter_mut().find(|c| c.username == app.consumer) {
            Some(c) => c.apps.push(app.app()),
            None => errors.push(Issue::about(
                name,
                format!(
                    "app document `{doc_name}` in workspace `{name}` refers to consumer `{}`, which does not exist in that workspace",
                    app.consumer
                ),
            )),
        }
    }
    for (doc_name, cred) in ws.credentials {
        match consumers.iter_mut().find(|c| c.username == cred.consumer) {
            Some(c) => {
                // Whatever scheme fields it holds (the admin API allows
                // exactly one registered one); checked with the schemes
                // once joined (`gatehouse_config::check_credentials`).
                for (field, value) in cred.schemes {
                    c.credentials.push(&field, value);
                }
            }
            None => errors.push(Issue::about(
                name,
                format!(
                    "credential document `{doc_name}` in workspace `{name}` refers to consumer `{}`, which does not exist in that workspace",
                    cred.consumer
                ),
            )),
        }
    }

    for mut s in ws.services {
        if !default {
            node_files(name, "service", &s.name, service_files(&s), errors);
        }
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
        tenancy.services.push(id);
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
        tenancy.routes.push(id);
    }
    for mut c in consumers {
        c.username = q(&c.username);
        for a in &mut c.apps {
            a.name = q(&a.name);
        }
        config.consumers.push(c);
        tenancy.consumers.push(id);
    }
    for mut a in ws.apis {
        if !default {
            let files = a.openapi.iter().map(|_| "openapi").collect();
            node_files(
                name,
                "API",
                &format!("{}@{}", a.name, a.version),
                files,
                errors,
            );
        }
        a.name = q(&a.name);
        for r in &mut a.routes {
            *r = q(r);
        }
        config.apis.push(a);
        tenancy.apis.push(id);
    }
    for mut p in ws.plans {
        p.name = q(&p.name);
        config.plans.push(p);
        tenancy.plans.push(id);
    }
    for mut s in ws.subscriptions {
        s.app = q(&s.app);
        s.api = q(&s.api);
        s.plan = q(&s.plan);
        config.subscriptions.push(s);
        tenancy.subscriptions.push(id);
    }
}

/// The fields of a service that name files on the node.
fn service_files(s: &Service) -> Vec<&'static str> {
    let Some(tls) = &s.tls else {
        return Vec::new();
    };
    [
        ("tls.ca", &tls.ca),
        ("tls.client_cert", &tls.client_cert),
        ("tls.client_key", &tls.client_key),
    ]
    .into_iter()
    .filter(|(_, v)| v.is_some())
    .map(|(f, _)| f)
    .collect()
}

/// Documents outside `default` may not name files on the node: the
/// node's files are shared by every workspace (another workspace's
/// certificate keys in the data directory, the node's own listener keys,
/// key files placed for `default`'s services), so a path would let a
/// workspace use another's private key as its upstream client identity,
/// probe which files exist, and make the store fail on every node by
/// naming a file that later disappears (which blocks every workspace's
/// writes). The message is the same whatever the file is (no oracle).
fn node_files(
    workspace: &str,
    what: &str,
    name: &str,
    fields: Vec<&'static str>,
    errors: &mut Vec<Issue>,
) {
    for field in fields {
        errors.push(Issue::about(
            workspace,
            format!(
                "{what} `{name}` in workspace `{workspace}`: `{field}` names a file on the node; only documents of workspace `default` may name node files (they are shared by every workspace)"
            ),
        ));
    }
}

/// The DNS names (SANs) of the first certificate of a PEM chain, lower
/// case: the names SNI serves it for when no `hosts` are given. Empty when
/// the PEM does not parse (reported by whoever loads it). The data plane
/// reads the same names when it loads the certificate.
fn pem_dns_names(pem: &[u8]) -> Vec<String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let Some(Ok(der)) = CertificateDer::pem_slice_iter(pem).next() else {
        return Vec::new();
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}
