//! The store's data types: documents and their kinds, preconditions, list
//! queries and pages, apply reports, audit entries, admin tokens and roles.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::StoreError;

/// The scope workspaces themselves live in: a workspace is a document of
/// kind [`Kind::Workspace`] whose `workspace` is this value. Workspace names
/// start with a letter or digit, so no workspace can be called this.
pub const WORKSPACE_SCOPE: &str = "_workspaces";

/// The workspace every store starts with (created by the first migration).
pub const DEFAULT_WORKSPACE: &str = "default";

/// Most documents one `list` call returns.
pub const MAX_PAGE_SIZE: usize = 1000;

/// What sort of entity a document holds. The lowercase names are stored in
/// the database and must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A workspace (lives in [`WORKSPACE_SCOPE`]).
    Workspace,
    /// `gatehouse_config::Service`.
    Service,
    /// `gatehouse_config::Route`.
    Route,
    /// A global plugin (`gatehouse_config::PluginRef`).
    Plugin,
    /// `gatehouse_config::Consumer`.
    Consumer,
    /// A consumer's credential.
    Credential,
    /// A consumer's app.
    App,
    /// A subscription plan.
    Plan,
    /// An app's subscription to an API under a plan.
    Subscription,
    /// An API: a set of routes with a version and a lifecycle state.
    Api,
    /// A TLS certificate.
    Certificate,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 11] = [
        Kind::Workspace,
        Kind::Service,
        Kind::Route,
        Kind::Plugin,
        Kind::Consumer,
        Kind::Credential,
        Kind::App,
        Kind::Plan,
        Kind::Subscription,
        Kind::Api,
        Kind::Certificate,
    ];

    /// The stable lowercase name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Workspace => "workspace",
            Kind::Service => "service",
            Kind::Route => "route",
            Kind::Plugin => "plugin",
            Kind::Consumer => "consumer",
            Kind::Credential => "credential",
            Kind::App => "app",
            Kind::Plan => "plan",
            Kind::Subscription => "subscription",
            Kind::Api => "api",
            Kind::Certificate => "certificate",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| StoreError::Invalid(format!("unknown kind `{s}`")))
    }
}

/// One stored entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Stable id, assigned when the document is created.
    pub id: Uuid,
    /// The workspace it belongs to ([`WORKSPACE_SCOPE`] for workspaces).
    pub workspace: String,
    /// What it is.
    pub kind: Kind,
    /// Its name, unique per workspace and kind.
    pub name: String,
    /// Free-form labels, filterable with [`ListQuery::tags`].
    pub tags: Vec<String>,
    /// The entity exactly as in the YAML configuration model, so the
    /// `gatehouse-config` type of its kind deserializes it.
    pub body: Value,
    /// The store revision that last changed this document. It only grows
    /// (also across a delete and re-create), so it is the document's ETag.
    pub version: u64,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
}

impl Document {
    /// The order [`crate::Store::snapshot`] returns documents in: by
    /// workspace, kind name, then name (byte order). Code that builds a
    /// snapshot-like list itself sorts with this, so a node compiles the
    /// same list in the same order.
    pub fn snapshot_order(a: &Document, b: &Document) -> std::cmp::Ordering {
        (a.workspace.as_str(), a.kind.as_str(), a.name.as_str()).cmp(&(
            b.workspace.as_str(),
            b.kind.as_str(),
            b.name.as_str(),
        ))
    }

    /// Deserializes the body into its configuration type.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        T::deserialize(&self.body)
            .map_err(|e| StoreError::Invalid(format!("{} `{}`: {e}", self.kind, self.name)))
    }
}

/// A document to write with [`crate::Store::put`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDocument {
    /// The workspace ([`WORKSPACE_SCOPE`] for workspaces).
    pub workspace: String,
    /// What it is.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The entity (a JSON object).
    pub body: Value,
}

/// One document of the desired state given to [`crate::Store::apply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyDocument {
    /// What it is (anything but a workspace).
    pub kind: Kind,
    /// Its name, unique per kind in the input.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The entity (a JSON object).
    pub body: Value,
}

/// A write's precondition (HTTP `If-Match` / `If-None-Match: *`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there.
    Any,
    /// Only create: fails with `AlreadyExists` when the document exists.
    Absent,
    /// Only when the current version is this one: fails with `Conflict`
    /// otherwise (also when the document does not exist).
    Version(u64),
}

/// The result of a [`crate::Store::put`].
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The document as stored now.
    pub document: Document,
    /// What the write did.
    pub outcome: Outcome,
}

/// What a write did to one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It did not exist before.
    Created,
    /// It existed and changed.
    Updated,
    /// It existed with the same tags and body; nothing was written.
    Unchanged,
}

/// Which documents [`crate::Store::list`] returns: one workspace and kind,
/// ordered by name (byte order), one page at a time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListQuery {
    /// The workspace ([`WORKSPACE_SCOPE`] to list workspaces).
    pub workspace: String,
    /// The kind (`None` is invalid; `Option` only so `Default` works).
    pub kind: Option<Kind>,
    /// Only documents carrying all of these tags.
    pub tags: Vec<String>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to [`MAX_PAGE_SIZE`]; 0 means 100.
    pub limit: usize,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// The documents, ordered by name.
    pub items: Vec<Document>,
    /// Cursor for the next page (opaque); `None` on the last page.
    pub next: Option<String>,
}

/// What an [`crate::Store::apply`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Documents that did not exist.
    pub created: usize,
    /// Documents whose tags or body changed.
    pub updated: usize,
    /// Documents that were not in the input.
    pub deleted: usize,
    /// Documents already as given.
    pub unchanged: usize,
    /// The store revision after the apply.
    pub revision: u64,
}

/// Everything a node compiles: all documents at one revision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreSnapshot {
    /// The revision these documents are at.
    pub revision: u64,
    /// Every document, ordered by workspace, kind, name.
    pub documents: Vec<Document>,
}

/// Rewrites a document body (of the given kind) before it is written into
/// the audit log as `before` / `after`, for example to remove secrets. The
/// store applies it to every audit entry of a document it writes; it knows
/// nothing about what it removes (the caller's policy: the admin API passes
/// `gatehouse_admin::secrets::audit_redactor`). It must not fail and
/// should be idempotent. See docs/store.md.
pub type AuditRedactor = std::sync::Arc<dyn Fn(Kind, &mut Value) + Send + Sync>;

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log (grows; newest is largest).
    pub seq: u64,
    /// The store revision the change produced (for token changes, the
    /// revision at the time: tokens do not bump it).
    pub revision: u64,
    /// When, Unix milliseconds.
    pub at: i64,
    /// Who: the admin token's name, `system`, or what the caller passes.
    pub actor: String,
    /// `create`, `update`, `delete`, `revoke`.
    pub action: String,
    /// A [`Kind`] name, or `admin_token`.
    pub kind: String,
    /// The workspace ([`WORKSPACE_SCOPE`] for workspaces and tokens).
    pub workspace: String,
    /// The entity's name.
    pub name: String,
    /// The document before the change (`None` for a create).
    pub before: Option<Value>,
    /// The document after the change (`None` for a delete).
    pub after: Option<Value>,
}

/// Which audit entries [`crate::Store::audit`] returns, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditQuery {
    /// Only this workspace.
    pub workspace: Option<String>,
    /// Only this kind name.
    pub kind: Option<String>,
    /// Only this entity name.
    pub name: Option<String>,
    /// Only entries older than this `seq` (the cursor for the next page).
    pub before_seq: Option<u64>,
    /// At most this many; 0 means 100; capped at [`MAX_PAGE_SIZE`].
    pub limit: usize,
}

/// What an admin token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum Role {
    /// Everything, in every workspace, including tokens.
    SuperAdmin,
    /// Everything inside one workspace.
    WorkspaceAdmin {
        /// The workspace.
        workspace: String,
    },
    /// Read every entity, change nothing.
    ReadOnly,
    /// Read the audit log only.
    Auditor,
}

impl Role {
    pub(crate) fn parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Role::SuperAdmin => ("super-admin", None),
            Role::WorkspaceAdmin { workspace } => ("workspace-admin", Some(workspace)),
            Role::ReadOnly => ("read-only", None),
            Role::Auditor => ("auditor", None),
        }
    }

    pub(crate) fn from_parts(role: &str, workspace: Option<String>) -> Result<Role, StoreError> {
        match (role, workspace) {
            ("super-admin", _) => Ok(Role::SuperAdmin),
            ("workspace-admin", Some(workspace)) => Ok(Role::WorkspaceAdmin { workspace }),
            ("read-only", _) => Ok(Role::ReadOnly),
            ("auditor", _) => Ok(Role::Auditor),
            (other, _) => Err(StoreError::Invalid(format!("unknown role `{other}`"))),
        }
    }
}

/// An admin token as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminToken {
    /// Stable id (revoke by it).
    pub id: Uuid,
    /// A label: who or what uses it. It is the actor in the audit log.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Who created it.
    pub created_by: String,
    /// When it was revoked, Unix milliseconds; revoked tokens never match.
    pub revoked_at: Option<i64>,
}

/// A freshly created token: the only time the plaintext exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The stored record.
    pub token: AdminToken,
    /// The secret to hand to the user once (`gha_` + 64 hex digits).
    pub plaintext: String,
}
