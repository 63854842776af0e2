//! Checks and helpers both backends share: name rules, the precondition
//! check, timestamps and how a document appears in the audit log.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::StoreError;
pub(crate) use crate::model::AuditRedactor;
use crate::model::{
    ApplyDocument, ApplyReport, Document, Expect, Kind, MAX_PAGE_SIZE, Role, WORKSPACE_SCOPE,
};

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A workspace name: 1-64 of `A-Z a-z 0-9 . _ -`, starting with a letter
/// or digit.
pub(crate) fn check_workspace_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "workspace name `{name}`: use 1-64 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
        )))
    }
}

/// An entity name: 1-255 bytes, no control characters.
pub(crate) fn check_name(kind: Kind, name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{kind} name `{}`: must be 1-255 bytes without control characters",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// Checks where a document may live: workspaces in [`WORKSPACE_SCOPE`],
/// everything else in a (well-named) workspace.
pub(crate) fn check_placement(workspace: &str, kind: Kind, name: &str) -> Result<(), StoreError> {
    if kind == Kind::Workspace {
        if workspace != WORKSPACE_SCOPE {
            return Err(StoreError::Invalid(format!(
                "workspaces live in the `{WORKSPACE_SCOPE}` scope, not in `{workspace}`"
            )));
        }
        check_workspace_name(name)
    } else {
        check_workspace_name(workspace)?;
        check_name(kind, name)
    }
}

/// Checks a document's content.
pub(crate) fn check_content(
    kind: Kind,
    name: &str,
    tags: &[String],
    body: &Value,
) -> Result<(), StoreError> {
    if !body.is_object() {
        return Err(StoreError::Invalid(format!(
            "{kind} `{name}`: the body must be a JSON object"
        )));
    }
    if let Some(tag) = tags
        .iter()
        .find(|t| t.is_empty() || t.len() > 128 || t.chars().any(char::is_control))
    {
        return Err(StoreError::Invalid(format!(
            "{kind} `{name}`: tag `{}` must be 1-128 bytes without control characters",
            tag.escape_debug()
        )));
    }
    Ok(())
}

/// What an apply writes, worked out before anything is written: every
/// input document checked (names, content, duplicates), compared with the
/// workspace's current documents. Both backends then write it in one
/// transaction, so a bad document anywhere in the input writes nothing.
pub(crate) struct ApplyPlan {
    /// Documents to create (`old` is `None`) or update, in input order;
    /// `new.version` is set by [`ApplyPlan::stamp`].
    pub writes: Vec<PlannedWrite>,
    /// Documents not in the input, ordered by kind and name.
    pub gone: Vec<Document>,
    /// Input documents already stored as given.
    pub unchanged: usize,
}

/// One create or update of an [`ApplyPlan`].
pub(crate) struct PlannedWrite {
    /// The document as it is now (`None`: it is created).
    pub old: Option<Document>,
    /// The document as it will be.
    pub new: Document,
}

impl ApplyPlan {
    /// Checks `docs` and compares them with `existing` (the workspace's
    /// documents now).
    pub fn new(
        workspace: &str,
        existing: Vec<Document>,
        docs: Vec<ApplyDocument>,
    ) -> Result<ApplyPlan, StoreError> {
        let mut existing: std::collections::HashMap<(Kind, String), Document> = existing
            .into_iter()
            .map(|d| ((d.kind, d.name.clone()), d))
            .collect();
        let mut seen = std::collections::HashSet::new();
        let now = now_ms();
        let mut writes = Vec::new();
        let mut unchanged = 0;
        for d in docs {
            let key = check_apply_document(&d, &mut seen)?;
            let old = existing.remove(&key);
            if let Some(old) = &old
                && old.tags == d.tags
                && old.body == d.body
            {
                unchanged += 1;
                continue;
            }
            let new = Document {
                id: old.as_ref().map_or_else(uuid::Uuid::new_v4, |o| o.id),
                workspace: workspace.to_owned(),
                kind: d.kind,
                name: d.name,
                tags: d.tags,
                body: d.body,
                version: 0,
                created_at: old.as_ref().map_or(now, |o| o.created_at),
                updated_at: now,
            };
            writes.push(PlannedWrite { old, new });
        }
        let mut gone: Vec<Document> = existing.into_values().collect();
        gone.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        Ok(ApplyPlan {
            writes,
            gone,
            unchanged,
        })
    }

    /// Whether the apply changes anything (and so needs a new revision).
    pub fn changes(&self) -> bool {
        !self.writes.is_empty() || !self.gone.is_empty()
    }

    /// Gives every written document the apply's revision.
    pub fn stamp(&mut self, revision: u64) {
        for w in &mut self.writes {
            w.new.version = revision;
        }
    }

    /// The report of this plan once written at `revision`.
    pub fn report(&self, revision: u64) -> ApplyReport {
        let created = self.writes.iter().filter(|w| w.old.is_none()).count();
        ApplyReport {
            created,
            updated: self.writes.len() - created,
            deleted: self.gone.len(),
            unchanged: self.unchanged,
            revision,
        }
    }
}

fn check_apply_document(
    d: &ApplyDocument,
    seen: &mut std::collections::HashSet<(Kind, String)>,
) -> Result<(Kind, String), StoreError> {
    if d.kind == Kind::Workspace {
        return Err(StoreError::Invalid(
            "an apply cannot contain workspaces".into(),
        ));
    }
    check_name(d.kind, &d.name)?;
    check_content(d.kind, &d.name, &d.tags, &d.body)?;
    let key = (d.kind, d.name.clone());
    if !seen.insert(key.clone()) {
        return Err(StoreError::Invalid(format!(
            "{} `{}` appears twice in the input",
            d.kind, d.name
        )));
    }
    Ok(key)
}

/// The environment variable of the crash failpoint (tests only).
pub const CRASH_FAILPOINT_ENV: &str = "GATEHOUSE_FAILPOINT_APPLY_CRASH_AFTER";

/// Test-only fault injection, called by both backends before each
/// document an apply writes: with `GATEHOUSE_FAILPOINT_APPLY_CRASH_AFTER=N`
/// set, the process aborts (no unwinding, no rollback, like a power cut or
/// `kill -9`) inside the apply's transaction once N documents are written.
/// The crash tests use it to prove an interrupted apply leaves the old
/// config whole. Read once; unset, it costs one load of a `OnceLock`.
pub(crate) fn crash_failpoint(written: usize) {
    static AFTER: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let after = AFTER.get_or_init(|| {
        std::env::var(CRASH_FAILPOINT_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
    });
    if written > 0 && *after == Some(written) {
        tracing::error!(
            documents = written,
            "{CRASH_FAILPOINT_ENV}: aborting in the middle of an apply"
        );
        std::process::abort();
    }
}

pub(crate) fn check_expect(
    expect: Expect,
    current: Option<u64>,
    what: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    match (expect, current) {
        (Expect::Any, _) | (Expect::Absent, None) => Ok(()),
        (Expect::Absent, Some(_)) => Err(StoreError::AlreadyExists(what())),
        (Expect::Version(want), current) if current != Some(want) => {
            Err(StoreError::Conflict { current })
        }
        (Expect::Version(_), _) => Ok(()),
    }
}

/// The page size to use for a requested limit.
pub(crate) fn page_size(limit: usize) -> usize {
    match limit {
        0 => 100,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// How a document appears as `before` / `after` in the audit log: its
/// body passed through the store's [`AuditRedactor`], if it has one.
pub(crate) fn audit_json(doc: &Document, redact: Option<&AuditRedactor>) -> Value {
    let mut body = doc.body.clone();
    if let Some(redact) = redact {
        redact(doc.kind, &mut body);
    }
    serde_json::json!({
        "id": doc.id,
        "version": doc.version,
        "tags": doc.tags,
        "body": body,
    })
}

pub(crate) fn describe(workspace: &str, kind: Kind, name: &str) -> String {
    format!("{kind} `{name}` in workspace `{workspace}`")
}

/// u64 ↔ i64 for BIGINT columns (revisions never get near 2^63).
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Checks a token request's fields.
pub(crate) fn check_token_request(name: &str, role: &Role) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "token name: must be 1-255 bytes without control characters".into(),
        ));
    }
    if let Role::WorkspaceAdmin { workspace } = role {
        check_workspace_name(workspace)?;
    }
    Ok(())
}
