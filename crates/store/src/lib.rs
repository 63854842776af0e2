//! The control-plane store: every entity (service, route, consumer, ...) is
//! a versioned JSON document in a workspace, behind one [`Store`] trait with
//! two backends: SQLite (embedded, one file) and PostgreSQL (shared by a
//! cluster). Every change bumps the global revision and appends to the audit
//! log in the same transaction; subscribers learn about new revisions.
//! See docs/store.md.

mod changes;
mod common;
mod error;
mod migrate;
mod model;
mod postgres;
mod sqlite;
mod token;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

pub use changes::Changes;
pub use error::{Cause, Result, StoreError};
pub use migrate::{POSTGRES_SCHEMA_VERSION, SQLITE_SCHEMA_VERSION};
pub use model::{
    AdminToken, ApplyDocument, ApplyReport, AuditEntry, AuditQuery, AuditRedactor,
    DEFAULT_WORKSPACE, Document, Expect, IssuedToken, Kind, ListQuery, MAX_PAGE_SIZE, NewDocument,
    Outcome, Page, Role, StoreSnapshot, WORKSPACE_SCOPE, Written,
};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The control-plane store. Object safe: share it as `Arc<dyn Store>` (for
/// example as axum state); every future is `Send`.
///
/// Writes take the `actor` (who is making the change) for the audit log.
/// All writes to one database are serialized; every write that changes
/// something bumps [`Store::revision`] and appends audit entries in the same
/// transaction, and wakes [`Store::subscribe`]rs after it commits.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// One document. `NotFound` when there is none.
    async fn get(&self, workspace: &str, kind: Kind, name: &str) -> Result<Document>;

    /// One document by its id. `NotFound` when there is none.
    async fn get_by_id(&self, id: Uuid) -> Result<Document>;

    /// One page of a workspace's documents of one kind, ordered by name,
    /// optionally only those carrying all the given tags.
    async fn list(&self, query: &ListQuery) -> Result<Page>;

    /// Creates or replaces a document if `expect` holds (`Conflict` /
    /// `AlreadyExists` otherwise). Writing the same tags and body again
    /// changes nothing (`Outcome::Unchanged`, no new revision). A document
    /// outside [`WORKSPACE_SCOPE`] needs its workspace to exist.
    async fn put(&self, actor: &str, doc: NewDocument, expect: Expect) -> Result<Written>;

    /// Deletes a document if `expect` (`Any` or `Version`) holds and returns
    /// what it was. A workspace can only be deleted when it is empty.
    async fn delete(
        &self,
        actor: &str,
        workspace: &str,
        kind: Kind,
        name: &str,
        expect: Expect,
    ) -> Result<Document>;

    /// Makes the workspace's documents (all kinds) equal to `docs`, in one
    /// transaction: on any error nothing changes. The workspace must exist.
    async fn apply(
        &self,
        actor: &str,
        workspace: &str,
        docs: Vec<ApplyDocument>,
    ) -> Result<ApplyReport>;

    /// The global change counter: grows by one with every committed change
    /// (a put, a delete, a whole apply).
    async fn revision(&self) -> Result<u64>;

    /// Every document and the revision they are at, read consistently.
    async fn snapshot(&self) -> Result<StoreSnapshot>;

    /// Audit entries, newest first.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;

    /// Creates an admin token. The plaintext is returned here only; the
    /// store keeps its SHA-256 (see docs/store.md).
    async fn create_token(&self, actor: &str, name: &str, role: Role) -> Result<IssuedToken>;

    /// The live (not revoked) token matching a presented secret.
    async fn lookup_token(&self, presented: &str) -> Result<Option<AdminToken>>;

    /// Every token, revoked ones included, oldest first.
    async fn list_tokens(&self) -> Result<Vec<AdminToken>>;

    /// Revokes a token at once; `NotFound` if there is no such token.
    async fn revoke_token(&self, actor: &str, id: Uuid) -> Result<AdminToken>;

    /// Notifications of new revisions, from this handle and from every other
    /// writer to the same database (other processes too, on PostgreSQL).
    fn subscribe(&self) -> Changes;
}

/// Opens a store from a URL, applying pending migrations:
/// `postgres://user@host:port/db` (or `postgresql://`) for PostgreSQL;
/// `sqlite:///abs/path.db`, `sqlite://rel/path.db` or a plain file path for
/// SQLite (the file and its directory are created).
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_with(url, None).await
}

/// [`open`] with an [`AuditRedactor`] applied to every document body the
/// store writes into its audit log (`None`: bodies as they are). The admin
/// API and `gatehouse config apply` open their store this way, so the
/// audit table never holds a secret.
pub async fn open_with(url: &str, redactor: Option<AuditRedactor>) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            PostgresStore::connect(url)
                .await?
                .with_audit_redactor(redactor),
        ))
    } else {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if path.is_empty() {
            return Err(StoreError::Invalid(format!(
                "store URL `{url}` names no file"
            )));
        }
        Ok(Arc::new(
            SqliteStore::open(path).await?.with_audit_redactor(redactor),
        ))
    }
}
