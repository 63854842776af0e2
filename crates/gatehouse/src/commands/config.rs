//! `gatehouse config dump | diff | apply`: declarative sync between a YAML
//! configuration file and one workspace of the control-plane store (GitOps).
//!
//! Mapping (see docs/gitops.md): every entity of the file is one document
//! whose body is the entity as JSON (serde), so a dumped body deserializes
//! back into the same `gatehouse-config` type:
//!
//! | section         | kind           | document name                  |
//! |-----------------|----------------|--------------------------------|
//! | `services`      | `service`      | `name`                         |
//! | `routes`        | `route`        | `name`                         |
//! | `plugins`       | `plugin`       | `name`, then `name#2`, ...     |
//! | `consumers`     | `consumer`     | `username`                     |
//! | `apis`          | `api`          | `name@version`                 |
//! | `plans`         | `plan`         | `name`                         |
//! | `subscriptions` | `subscription` | `app/api` or `app/api/version` |
//!
//! `server` and `listeners` are node settings and are not stored.
//!
//! Secrets are never dumped (a consumer's inline key-auth keys are left
//! out), and `diff` / `apply` keep the stored keys of a consumer the file
//! lists without any, so a dump applies without wiping them
//! (docs/security.md, "Secrets").

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use gatehouse_config::Config;
use gatehouse_store::{ApplyDocument, Document, Kind, Store};
use serde::Serialize;
use serde_json::{Map, Value};

/// `gatehouse config ...`. Exit codes: 0 success (`diff`: no changes),
/// 1 `diff` found changes, 2 error.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a workspace of the store as a configuration file (YAML).
    Dump {
        /// The store: `postgres://user@host:port/db` or `sqlite:///path.db`.
        #[arg(long, env = "GATEHOUSE_STORE")]
        store: String,
        /// The workspace.
        #[arg(long, default_value = gatehouse_store::DEFAULT_WORKSPACE)]
        workspace: String,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Show what `apply` would change: exit 0 if nothing, 1 if something.
    Diff {
        /// The configuration file.
        file: PathBuf,
        /// The store: `postgres://user@host:port/db` or `sqlite:///path.db`.
        #[arg(long, env = "GATEHOUSE_STORE")]
        store: String,
        /// The workspace.
        #[arg(long, default_value = gatehouse_store::DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// Make a workspace of the store equal to a configuration file, in one
    /// transaction.
    Apply {
        /// The configuration file.
        file: PathBuf,
        /// The store: `postgres://user@host:port/db` or `sqlite:///path.db`.
        #[arg(long, env = "GATEHOUSE_STORE")]
        store: String,
        /// The workspace.
        #[arg(long, default_value = gatehouse_store::DEFAULT_WORKSPACE)]
        workspace: String,
    },
}

/// The actor recorded in the audit log for changes made by `config apply`.
const CLI_ACTOR: &str = "cli";

/// Exit code of `diff` when there are changes.
const EXIT_CHANGES: u8 = 1;
/// Exit code of every `config` subcommand on an error.
const EXIT_ERROR: u8 = 2;

/// The YAML sections that are stored, in the order a dump writes them.
const SECTIONS: [(&str, Kind); 7] = [
    ("services", Kind::Service),
    ("routes", Kind::Route),
    ("plugins", Kind::Plugin),
    ("consumers", Kind::Consumer),
    ("apis", Kind::Api),
    ("plans", Kind::Plan),
    ("subscriptions", Kind::Subscription),
];

/// Runs a `config` subcommand. Exit codes: 0 ok (for `diff`: no changes),
/// 1 `diff` found changes, 2 error (invalid file, store failure).
/// Errors are printed here (with their causes), not by the caller, because
/// they exit 2, not 1.
pub fn exec(command: ConfigCommand) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
        .and_then(|rt| rt.block_on(run(command)));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Dump {
            store,
            workspace,
            output,
        } => {
            let store = open(&store).await?;
            let (_, docs) = read(store.as_ref(), &workspace).await?;
            let yaml = dump(&docs)?;
            match output {
                Some(path) => std::fs::write(&path, yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{yaml}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Diff {
            file,
            store,
            workspace,
        } => {
            let mut desired = desired(&file)?;
            let store = open(&store).await?;
            let (_, current) = read(store.as_ref(), &workspace).await?;
            note_kept(keep_unmanaged(&current, &mut desired));
            keep_stored_keys(&current, &mut desired);
            let plan = diff(&current, &desired);
            for line in &plan.lines {
                println!("{line}");
            }
            println!("{}", plan.summary());
            Ok(if plan.has_changes() {
                ExitCode::from(EXIT_CHANGES)
            } else {
                ExitCode::SUCCESS
            })
        }
        ConfigCommand::Apply {
            file,
            store,
            workspace,
        } => {
            let mut desired = desired(&file)?;
            let store = open(&store).await?;
            let (all, current) = read(store.as_ref(), &workspace).await?;
            note_kept(keep_unmanaged(&current, &mut desired));
            keep_stored_keys(&current, &mut desired);
            if let Err(errors) = cross_check(&all, &workspace, &desired) {
                bail!(
                    "apply refused, nothing changed: the store would not load on the nodes:\n  {}",
                    errors.join("\n  ")
                );
            }
            let report = store
                .apply(CLI_ACTOR, &workspace, desired)
                .await
                .context("apply failed, nothing changed")?;
            println!(
                "applied to workspace `{workspace}`: {} created, {} updated, {} deleted, {} unchanged; revision {}",
                report.created, report.updated, report.deleted, report.unchanged, report.revision
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The store; what `apply` writes into its audit log has secrets replaced
/// by `null` (this command has no node secret to fingerprint them with).
async fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let schemes = gatehouse_plugins::registry().schemes().clone();
    gatehouse_store::open_with(
        url,
        Some(gatehouse_admin::secrets::audit_redactor(schemes, None)),
    )
    .await
    .context("cannot open the store")
}

/// Validates the file like `gatehouse validate` and maps it to documents.
fn desired(file: &std::path::Path) -> anyhow::Result<Vec<ApplyDocument>> {
    let loaded = crate::load_and_check(file)?;
    let config = &loaded.config;
    if !config.listeners.is_empty() || config.server != gatehouse_config::Server::default() {
        eprintln!(
            "note: `server` and `listeners` in {} are node settings; they are not stored",
            file.display()
        );
    }
    to_documents(config)
}

/// Adds the workspace's documents of kinds a configuration file cannot
/// describe (apps, credentials and certificates kept as their own
/// documents, usually made through the admin API) to `desired` unchanged,
/// so an apply keeps them instead of deleting them. Returns how many.
fn keep_unmanaged(current: &[Document], desired: &mut Vec<ApplyDocument>) -> usize {
    let before = desired.len();
    desired.extend(
        current
            .iter()
            .filter(|d| !SECTIONS.iter().any(|(_, k)| *k == d.kind))
            .map(|d| ApplyDocument {
                kind: d.kind,
                name: d.name.clone(),
                tags: d.tags.clone(),
                body: d.body.clone(),
            }),
    );
    desired.len() - before
}

/// The inline credentials of a consumer per scheme field
/// (`credentials.key_auth`, ...), the non-empty lists only.
fn inline_credentials(body: &Value) -> Vec<(&str, &Vec<Value>)> {
    body.get("credentials")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(field, list)| Some((field.as_str(), list.as_array()?)))
        .filter(|(_, list)| !list.is_empty())
        .collect()
}

/// `dump` never writes secrets, so a consumer the file lists without
/// credentials of a scheme (`key_auth` keys, or any other registered
/// scheme's) keeps those stored for it: applying a dump (or a file that
/// never held them) does not wipe them. A file that lists credentials of a
/// scheme replaces the stored ones of that scheme. Returns how many
/// consumers kept some.
pub fn keep_stored_keys(current: &[Document], desired: &mut [ApplyDocument]) -> usize {
    let mut kept = 0;
    for d in desired.iter_mut().filter(|d| d.kind == Kind::Consumer) {
        let Some(stored) = current
            .iter()
            .find(|c| c.kind == Kind::Consumer && c.name == d.name)
        else {
            continue;
        };
        let listed: Vec<String> = inline_credentials(&d.body)
            .into_iter()
            .map(|(field, _)| field.to_owned())
            .collect();
        let missing: Vec<(&str, &Vec<Value>)> = inline_credentials(&stored.body)
            .into_iter()
            .filter(|(field, _)| !listed.iter().any(|l| l == field))
            .collect();
        if missing.is_empty() {
            continue;
        }
        if let Value::Object(body) = &mut d.body {
            let creds = body
                .entry("credentials")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(creds) = creds {
                for (field, list) in &missing {
                    creds.insert((*field).to_owned(), Value::Array((*list).clone()));
                    eprintln!(
                        "note: consumer `{}`: the file lists no `{field}` credentials; its {} stored one(s) are kept (secrets are never dumped; change them in the file or through the admin API)",
                        d.name,
                        list.len()
                    );
                }
                kept += 1;
            }
        }
    }
    kept
}

/// Removes the secrets from a document body before it is dumped: every
/// inline credential of a consumer, whatever its scheme (a scheme's
/// credentials hold its secrets). Returns how many were removed.
fn strip_secrets(kind: Kind, body: &mut Value) -> usize {
    if kind != Kind::Consumer {
        return 0;
    }
    match body.get_mut("credentials") {
        Some(Value::Object(creds)) => creds
            .values_mut()
            .map(|list| match list {
                Value::Array(items) => std::mem::take(items).len(),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// Whether a diff path of a `kind` body may hold a secret (its values are
/// then not printed).
fn secret_path(kind: Kind, path: &str) -> bool {
    kind == Kind::Consumer && (path == "(body)" || path.starts_with("credentials"))
}

fn note_kept(kept: usize) {
    if kept > 0 {
        eprintln!(
            "note: {kept} app, credential or certificate document(s) of the workspace are not described by the file; they are kept as they are"
        );
    }
}

/// The checks every node runs on the store (and the admin API before each
/// write), on the store as it would be after the apply: the other
/// workspaces as they are, this one as `desired`. Catches what one file
/// cannot show, such as a route that conflicts with another workspace's.
fn cross_check(
    all: &[Document],
    workspace: &str,
    desired: &[ApplyDocument],
) -> Result<(), Vec<String>> {
    let mut docs: Vec<Document> = all
        .iter()
        .filter(|d| d.workspace != workspace)
        .cloned()
        .collect();
    docs.extend(desired.iter().map(|d| Document {
        id: Default::default(),
        workspace: workspace.to_owned(),
        kind: d.kind,
        name: d.name.clone(),
        tags: d.tags.clone(),
        body: d.body.clone(),
        version: 0,
        created_at: 0,
        updated_at: 0,
    }));
    docs.sort_by(Document::snapshot_order);
    crate::certs::check_all(&docs)?;
    gatehouse_control::check_documents(
        &docs,
        &gatehouse_config::Config::default(),
        &gatehouse_plugins::registry(),
    )
    .map(drop)
}

/// Every document of the store and those of one (existing) workspace,
/// read at one revision.
async fn read(
    store: &dyn Store,
    workspace: &str,
) -> anyhow::Result<(Vec<Document>, Vec<Document>)> {
    store
        .get(gatehouse_store::WORKSPACE_SCOPE, Kind::Workspace, workspace)
        .await
        .with_context(|| format!("workspace `{workspace}`"))?;
    let all = store
        .snapshot()
        .await
        .context("cannot read the store")?
        .documents;
    let current = all
        .iter()
        .filter(|d| d.workspace == workspace)
        .cloned()
        .collect();
    Ok((all, current))
}

fn doc<T: Serialize>(
    kind: Kind,
    name: String,
    tags: &[String],
    entity: &T,
) -> anyhow::Result<ApplyDocument> {
    let body = serde_json::to_value(entity).with_context(|| format!("{kind} `{name}`"))?;
    Ok(ApplyDocument {
        kind,
        name,
        tags: tags.to_vec(),
        body,
    })
}

/// The configuration's entities as documents of one workspace.
pub fn to_documents(config: &Config) -> anyhow::Result<Vec<ApplyDocument>> {
    let mut docs = Vec::new();
    for s in &config.services {
        docs.push(doc(Kind::Service, s.name.clone(), &s.tags, s)?);
    }
    for r in &config.routes {
        docs.push(doc(Kind::Route, r.name.clone(), &r.tags, r)?);
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for p in &config.plugins {
        let n = seen.entry(p.name.as_str()).or_insert(0);
        *n += 1;
        let name = if *n == 1 {
            p.name.clone()
        } else {
            format!("{}#{n}", p.name)
        };
        docs.push(doc(Kind::Plugin, name, &[], p)?);
    }
    for c in &config.consumers {
        docs.push(doc(Kind::Consumer, c.username.clone(), &c.tags, c)?);
    }
    for a in &config.apis {
        docs.push(doc(
            Kind::Api,
            format!("{}@{}", a.name, a.version),
            &a.tags,
            a,
        )?);
    }
    for p in &config.plans {
        docs.push(doc(Kind::Plan, p.name.clone(), &p.tags, p)?);
    }
    for s in &config.subscriptions {
        let name = match &s.version {
            Some(v) => format!("{}/{}/{v}", s.app, s.api),
            None => format!("{}/{}", s.app, s.api),
        };
        docs.push(doc(Kind::Subscription, name, &[], s)?);
    }
    Ok(docs)
}

/// A workspace's documents as configuration YAML: the stored sections in a
/// fixed order, entities sorted by document name. Same documents, same bytes.
pub fn dump(docs: &[Document]) -> anyhow::Result<String> {
    let mut by_kind: BTreeMap<Kind, Vec<&Document>> = BTreeMap::new();
    for d in docs {
        if SECTIONS.iter().any(|(_, k)| *k == d.kind) {
            by_kind.entry(d.kind).or_default().push(d);
        } else {
            eprintln!(
                "note: {} `{}` is not part of the configuration file; not dumped",
                d.kind, d.name
            );
        }
    }
    let mut out = String::from("# gatehouse config dump\n");
    for (section, kind) in SECTIONS {
        let Some(list) = by_kind.get_mut(&kind) else {
            continue;
        };
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let mut bodies = Vec::with_capacity(list.len());
        for d in list.iter() {
            let mut body = d.body.clone();
            let removed = strip_secrets(d.kind, &mut body);
            if removed > 0 {
                eprintln!(
                    "note: {} `{}`: {removed} key-auth key(s) not dumped (secrets); `apply` keeps them",
                    d.kind, d.name
                );
            }
            bodies.push(body);
        }
        let mut one = Map::new();
        one.insert(section.to_owned(), Value::Array(bodies));
        let yaml = serde_norway::to_string(&Value::Object(one))
            .with_context(|| format!("cannot render {section}"))?;
        out.push_str(&yaml);
    }
    // The dump must be a configuration the gateway accepts as is.
    if let Err(e) = gatehouse_config::parse_str(&out, "<dump>") {
        bail!("the stored documents do not form a valid configuration:\n{e}");
    }
    Ok(out)
}

/// What `apply` would change.
#[derive(Debug, Default)]
pub struct SyncPlan {
    /// Readable lines: `+ kind name`, `- kind name`, `~ kind name: path: old -> new`.
    pub lines: Vec<String>,
    /// Documents to create.
    pub create: usize,
    /// Documents to update.
    pub update: usize,
    /// Documents to delete.
    pub delete: usize,
    /// Documents already as desired.
    pub unchanged: usize,
}

impl SyncPlan {
    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.delete > 0
    }

    /// `N to create, M to update, K to delete, U unchanged`.
    pub fn summary(&self) -> String {
        format!(
            "{} to create, {} to update, {} to delete, {} unchanged",
            self.create, self.update, self.delete, self.unchanged
        )
    }
}

/// Compares the workspace's documents with the desired ones, field by field.
pub fn diff(current: &[Document], desired: &[ApplyDocument]) -> SyncPlan {
    let mut plan = SyncPlan::default();
    let now: BTreeMap<(Kind, &str), &Document> = current
        .iter()
        .map(|d| ((d.kind, d.name.as_str()), d))
        .collect();
    let want: BTreeMap<(Kind, &str), &ApplyDocument> = desired
        .iter()
        .map(|d| ((d.kind, d.name.as_str()), d))
        .collect();
    let mut keys: Vec<(Kind, &str)> = now.keys().chain(want.keys()).copied().collect();
    keys.sort();
    keys.dedup();
    for key @ (kind, name) in keys {
        match (now.get(&key), want.get(&key)) {
            (None, Some(_)) => {
                plan.create += 1;
                plan.lines.push(format!("+ {kind} {name}"));
            }
            (Some(_), None) => {
                plan.delete += 1;
                plan.lines.push(format!("- {kind} {name}"));
            }
            (Some(old), Some(new)) => {
                let mut changes = Vec::new();
                if old.tags != new.tags {
                    changes.push((
                        "(document tags)".to_owned(),
                        Value::from(old.tags.clone()),
                        Value::from(new.tags.clone()),
                    ));
                }
                changed_paths(&old.body, &new.body, String::new(), &mut changes);
                if changes.is_empty() {
                    plan.unchanged += 1;
                } else {
                    plan.update += 1;
                    let mut secret_shown = false;
                    for (path, a, b) in changes {
                        if secret_path(kind, &path) {
                            // Secrets never reach the terminal or CI logs.
                            if !std::mem::replace(&mut secret_shown, true) {
                                plan.lines.push(format!(
                                    "~ {kind} {name}: credentials: (secret values changed, not shown)"
                                ));
                            }
                            continue;
                        }
                        plan.lines.push(format!(
                            "~ {kind} {name}: {path}: {} -> {}",
                            show(&a),
                            show(&b)
                        ));
                    }
                }
            }
            (None, None) => {}
        }
    }
    plan
}

fn show(v: &Value) -> String {
    if v.is_null() {
        "null".to_owned()
    } else {
        v.to_string()
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Collects `(path, old, new)` for every leaf that differs. Objects are
/// compared key by key (a missing key counts as `null`), arrays of equal
/// length element by element, anything else as a whole.
fn changed_paths(old: &Value, new: &Value, path: String, out: &mut Vec<(String, Value, Value)>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let x = a.get(k).unwrap_or(&Value::Null);
                let y = b.get(k).unwrap_or(&Value::Null);
                changed_paths(x, y, join(&path, k), out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                changed_paths(x, y, format!("{path}[{i}]"), out);
            }
        }
        _ => out.push((
            if path.is_empty() {
                "(body)".to_owned()
            } else {
                path
            },
            old.clone(),
            new.clone(),
        )),
    }
}
