//! The SQLite backend: one file, WAL mode, one connection per handle behind
//! a mutex, every call on tokio's blocking pool. Writes run in `BEGIN
//! IMMEDIATE` transactions, so writers from any handle or process are
//! serialized by SQLite's write lock (waiting up to `busy_timeout`).
//! Handles on the same file in one process share one change channel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row, Transaction, TransactionBehavior, params};
use serde_json::Value;
use tokio::sync::watch;
use uuid::Uuid;

use crate::changes::{Changes, publish};
use crate::common::{
    ApplyPlan, AuditRedactor, audit_json, check_content, check_expect, check_placement,
    check_token_request, check_workspace_name, crash_failpoint, describe, now_ms, page_size,
    to_i64, to_u64,
};
use crate::migrate;
use crate::model::{
    AdminToken, ApplyDocument, ApplyReport, AuditEntry, AuditQuery, DEFAULT_WORKSPACE, Document,
    Expect, IssuedToken, Kind, ListQuery, NewDocument, Outcome, Page, Role, StoreSnapshot,
    WORKSPACE_SCOPE, Written,
};
use crate::{Result, Store, StoreError, token};

/// How long a write waits for another writer's lock before `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const COLS: &str = "id, workspace, kind, name, tags, body, version, created_at, updated_at";

/// Change channels of the files open in this process, by canonical path.
static HUBS: LazyLock<Mutex<HashMap<PathBuf, Weak<watch::Sender<u64>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// A store in one SQLite file.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    hub: Arc<watch::Sender<u64>>,
    redact: Option<AuditRedactor>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::unavailable("sqlite", e)
            }
            _ => StoreError::backend("sqlite", e),
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending
    /// migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let (conn, revision, canonical) = tokio::task::spawn_blocking(move || open_file(&path))
            .await
            .map_err(|e| StoreError::backend("sqlite open task", e))??;
        let hub = {
            let mut hubs = HUBS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            hubs.retain(|_, hub| hub.strong_count() > 0);
            match hubs.get(&canonical).and_then(Weak::upgrade) {
                Some(hub) => hub,
                None => {
                    let hub = Arc::new(watch::Sender::new(revision));
                    hubs.insert(canonical, Arc::downgrade(&hub));
                    hub
                }
            }
        };
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            hub,
            redact: None,
        })
    }

    /// Passes every document body written into the audit log through
    /// `redactor` (see [`AuditRedactor`]).
    #[must_use]
    pub fn with_audit_redactor(mut self, redactor: Option<AuditRedactor>) -> Self {
        self.redact = redactor;
        self
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &watch::Sender<u64>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = Arc::clone(&self.conn);
        let hub = Arc::clone(&self.hub);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| StoreError::backend_msg("sqlite connection mutex poisoned"))?;
            f(&mut conn, &hub)
        })
        .await
        .map_err(|e| StoreError::backend("sqlite task", e))?
    }
}

/// Owner-only files: the store holds credentials and private keys. A
/// directory the store creates is 0700 (an existing one is left as it is:
/// it may be shared); the database file is created 0600 before SQLite opens
/// it, and SQLite creates `-wal` and `-shm` with the database file's mode.
/// An existing database, WAL or SHM file readable by group or others is
/// tightened to 0600 with a warning. Modes are set explicitly, whatever
/// the umask.
fn private_files(path: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StoreError::unavailable(format!("cannot create {}", dir.display()), e))?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| StoreError::unavailable(format!("cannot open {}", path.display()), e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(
                |e| {
                    StoreError::unavailable(format!("cannot make {} owner-only", file.display()), e)
                },
            )?;
            tracing::warn!(
                file = %file.display(),
                was = format!("{mode:o}"),
                "sqlite store: file was readable by other users; made it 0600"
            );
        }
    }
    Ok(())
}

fn open_file(path: &Path) -> Result<(Connection, u64, PathBuf)> {
    private_files(path)?;
    let mut conn = Connection::open(path)
        .map_err(|e| StoreError::unavailable(format!("cannot open {}", path.display()), e))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::backend_msg(format!(
            "sqlite: {} refused WAL mode (got `{mode}`)",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate_sqlite(&mut conn)?;
    let revision = read_revision(&conn)?;
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok((conn, revision, canonical))
}

fn migrate_sqlite(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let pending = migrate::pending(migrate::SQLITE, current)?;
    for m in pending {
        tx.execute_batch(m.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![m.version, now_ms()],
        )?;
        if m.version == 1 {
            seed(&tx)?;
        }
        tracing::info!(version = m.version, "sqlite store: applied migration");
    }
    tx.commit()?;
    Ok(())
}

/// Creates the default workspace (revision 1).
fn seed(tx: &Transaction<'_>) -> Result<()> {
    let rev = bump(tx)?;
    let now = now_ms();
    let doc = Document {
        id: Uuid::new_v4(),
        workspace: WORKSPACE_SCOPE.to_owned(),
        kind: Kind::Workspace,
        name: DEFAULT_WORKSPACE.to_owned(),
        tags: Vec::new(),
        body: serde_json::json!({ "name": DEFAULT_WORKSPACE }),
        version: rev,
        created_at: now,
        updated_at: now,
    };
    insert_doc(tx, &doc)?;
    audit_doc(tx, None, rev, "system", "create", None, Some(&doc))
}

fn read_revision(conn: &Connection) -> Result<u64> {
    let rev: i64 = conn.query_row(
        "SELECT revision FROM store_revision WHERE id = 1",
        [],
        |r| r.get(0),
    )?;
    Ok(to_u64(rev))
}

fn bump(tx: &Transaction<'_>) -> Result<u64> {
    let rev: i64 = tx.query_row(
        "UPDATE store_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision",
        [],
        |r| r.get(0),
    )?;
    Ok(to_u64(rev))
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::backend("json", e))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::backend("stored json", e))
}

fn read_doc(row: &Row<'_>) -> Result<Document> {
    let id: String = row.get(0)?;
    let kind: String = row.get(2)?;
    let tags: String = row.get(4)?;
    let body: String = row.get(5)?;
    let version: i64 = row.get(6)?;
    Ok(Document {
        id: Uuid::parse_str(&id).map_err(|e| StoreError::backend("stored id", e))?,
        workspace: row.get(1)?,
        kind: kind.parse()?,
        name: row.get(3)?,
        tags: from_json(&tags)?,
        body: from_json(&body)?,
        version: to_u64(version),
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
    })
}

fn query_docs(conn: &Connection, sql: &str, args: &[SqlValue]) -> Result<Vec<Document>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read_doc(row)?);
    }
    Ok(out)
}

fn find(conn: &Connection, workspace: &str, kind: Kind, name: &str) -> Result<Option<Document>> {
    let docs = query_docs(
        conn,
        &format!("SELECT {COLS} FROM documents WHERE workspace = ?1 AND kind = ?2 AND name = ?3"),
        &[
            SqlValue::Text(workspace.to_owned()),
            SqlValue::Text(kind.as_str().to_owned()),
            SqlValue::Text(name.to_owned()),
        ],
    )?;
    Ok(docs.into_iter().next())
}

fn workspace_exists(conn: &Connection, workspace: &str) -> Result<bool> {
    Ok(find(conn, WORKSPACE_SCOPE, Kind::Workspace, workspace)?.is_some())
}

fn insert_doc(tx: &Transaction<'_>, d: &Document) -> Result<()> {
    tx.execute(
        "INSERT INTO documents (id, workspace, kind, name, tags, body, version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            d.id.to_string(),
            d.workspace,
            d.kind.as_str(),
            d.name,
            to_json(&d.tags)?,
            to_json(&d.body)?,
            to_i64(d.version),
            d.created_at,
            d.updated_at
        ],
    )?;
    Ok(())
}

fn update_doc(tx: &Transaction<'_>, d: &Document) -> Result<()> {
    tx.execute(
        "UPDATE documents SET tags = ?2, body = ?3, version = ?4, updated_at = ?5 WHERE id = ?1",
        params![
            d.id.to_string(),
            to_json(&d.tags)?,
            to_json(&d.body)?,
            to_i64(d.version),
            d.updated_at
        ],
    )?;
    Ok(())
}

fn delete_doc(tx: &Transaction<'_>, id: Uuid) -> Result<()> {
    tx.execute(
        "DELETE FROM documents WHERE id = ?1",
        params![id.to_string()],
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn audit_row(
    tx: &Transaction<'_>,
    revision: u64,
    actor: &str,
    action: &str,
    kind: &str,
    workspace: &str,
    name: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO audit_log (revision, at, actor, action, kind, workspace, name, before, after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            to_i64(revision),
            now_ms(),
            actor,
            action,
            kind,
            workspace,
            name,
            before.map(to_json).transpose()?,
            after.map(to_json).transpose()?
        ],
    )?;
    Ok(())
}

fn audit_doc(
    tx: &Transaction<'_>,
    redact: Option<&AuditRedactor>,
    revision: u64,
    actor: &str,
    action: &str,
    before: Option<&Document>,
    after: Option<&Document>,
) -> Result<()> {
    let Some(d) = after.or(before) else {
        return Ok(());
    };
    audit_row(
        tx,
        revision,
        actor,
        action,
        d.kind.as_str(),
        &d.workspace,
        &d.name,
        before.map(|d| audit_json(d, redact)).as_ref(),
        after.map(|d| audit_json(d, redact)).as_ref(),
    )
}

fn read_token(row: &Row<'_>) -> Result<AdminToken> {
    let id: String = row.get(0)?;
    let role: String = row.get(2)?;
    Ok(AdminToken {
        id: Uuid::parse_str(&id).map_err(|e| StoreError::backend("stored id", e))?,
        name: row.get(1)?,
        role: Role::from_parts(&role, row.get(3)?)?,
        created_at: row.get(4)?,
        created_by: row.get(5)?,
        revoked_at: row.get(6)?,
    })
}

const TOKEN_COLS: &str = "id, name, role, workspace, created_at, created_by, revoked_at";

fn query_tokens(conn: &Connection, sql: &str, args: &[SqlValue]) -> Result<Vec<AdminToken>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read_token(row)?);
    }
    Ok(out)
}

fn token_json(t: &AdminToken) -> Result<Value> {
    serde_json::to_value(t).map_err(|e| StoreError::backend("json", e))
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn get(&self, workspace: &str, kind: Kind, name: &str) -> Result<Document> {
        let (workspace, name) = (workspace.to_owned(), name.to_owned());
        self.run(move |conn, _| {
            find(conn, &workspace, kind, &name)?
                .ok_or_else(|| StoreError::NotFound(describe(&workspace, kind, &name)))
        })
        .await
    }

    async fn get_by_id(&self, id: Uuid) -> Result<Document> {
        self.run(move |conn, _| {
            query_docs(
                conn,
                &format!("SELECT {COLS} FROM documents WHERE id = ?1"),
                &[SqlValue::Text(id.to_string())],
            )?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("document {id}")))
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page> {
        let kind = query
            .kind
            .ok_or_else(|| StoreError::Invalid("list needs a kind".into()))?;
        let size = page_size(query.limit);
        let mut sql = format!(
            "SELECT {COLS} FROM documents WHERE workspace = ?1 AND kind = ?2 AND name > ?3"
        );
        let mut args = vec![
            SqlValue::Text(query.workspace.clone()),
            SqlValue::Text(kind.as_str().to_owned()),
            SqlValue::Text(query.after.clone().unwrap_or_default()),
        ];
        for tag in &query.tags {
            args.push(SqlValue::Text(tag.clone()));
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM json_each(documents.tags) WHERE value = ?{})",
                args.len()
            ));
        }
        args.push(SqlValue::Integer(
            i64::try_from(size + 1).unwrap_or(i64::MAX),
        ));
        sql.push_str(&format!(" ORDER BY name LIMIT ?{}", args.len()));
        self.run(move |conn, _| {
            let mut items = query_docs(conn, &sql, &args)?;
            let next = if items.len() > size {
                items.truncate(size);
                items.last().map(|d| d.name.clone())
            } else {
                None
            };
            Ok(Page { items, next })
        })
        .await
    }

    async fn put(&self, actor: &str, doc: NewDocument, expect: Expect) -> Result<Written> {
        check_placement(&doc.workspace, doc.kind, &doc.name)?;
        check_content(doc.kind, &doc.name, &doc.tags, &doc.body)?;
        let actor = actor.to_owned();
        let redact = self.redact.clone();
        self.run(move |conn, hub| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let old = find(&tx, &doc.workspace, doc.kind, &doc.name)?;
            check_expect(expect, old.as_ref().map(|d| d.version), || {
                describe(&doc.workspace, doc.kind, &doc.name)
            })?;
            if doc.kind != Kind::Workspace && !workspace_exists(&tx, &doc.workspace)? {
                return Err(StoreError::NotFound(format!(
                    "workspace `{}`",
                    doc.workspace
                )));
            }
            if let Some(old) = &old
                && old.tags == doc.tags
                && old.body == doc.body
            {
                return Ok(Written {
                    document: old.clone(),
                    outcome: Outcome::Unchanged,
                });
            }
            let rev = bump(&tx)?;
            let now = now_ms();
            let new = Document {
                id: old.as_ref().map_or_else(Uuid::new_v4, |o| o.id),
                workspace: doc.workspace,
                kind: doc.kind,
                name: doc.name,
                tags: doc.tags,
                body: doc.body,
                version: rev,
                created_at: old.as_ref().map_or(now, |o| o.created_at),
                updated_at: now,
            };
            let outcome = if old.is_some() {
                update_doc(&tx, &new)?;
                audit_doc(
                    &tx,
                    redact.as_ref(),
                    rev,
                    &actor,
                    "update",
                    old.as_ref(),
                    Some(&new),
                )?;
                Outcome::Updated
            } else {
                insert_doc(&tx, &new)?;
                audit_doc(
                    &tx,
                    redact.as_ref(),
                    rev,
                    &actor,
                    "create",
                    None,
                    Some(&new),
                )?;
                Outcome::Created
            };
            tx.commit()?;
            publish(hub, rev);
            Ok(Written {
                document: new,
                outcome,
            })
        })
        .await
    }

    async fn delete(
        &self,
        actor: &str,
        workspace: &str,
        kind: Kind,
        name: &str,
        expect: Expect,
    ) -> Result<Document> {
        if expect == Expect::Absent {
            return Err(StoreError::Invalid(
                "a delete cannot expect the document to be absent".into(),
            ));
        }
        let (actor, workspace, name) = (actor.to_owned(), workspace.to_owned(), name.to_owned());
        let redact = self.redact.clone();
        self.run(move |conn, hub| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(old) = find(&tx, &workspace, kind, &name)? else {
                return match expect {
                    Expect::Version(_) => Err(StoreError::Conflict { current: None }),
                    _ => Err(StoreError::NotFound(describe(&workspace, kind, &name))),
                };
            };
            check_expect(expect, Some(old.version), || {
                describe(&workspace, kind, &name)
            })?;
            if kind == Kind::Workspace {
                let held: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM documents WHERE workspace = ?1",
                    params![name],
                    |r| r.get(0),
                )?;
                if held > 0 {
                    return Err(StoreError::Invalid(format!(
                        "workspace `{name}` still holds {held} documents; delete them first"
                    )));
                }
            }
            let rev = bump(&tx)?;
            delete_doc(&tx, old.id)?;
            audit_doc(
                &tx,
                redact.as_ref(),
                rev,
                &actor,
                "delete",
                Some(&old),
                None,
            )?;
            tx.commit()?;
            publish(hub, rev);
            Ok(old)
        })
        .await
    }

    async fn apply(
        &self,
        actor: &str,
        workspace: &str,
        docs: Vec<ApplyDocument>,
    ) -> Result<ApplyReport> {
        check_workspace_name(workspace)?;
        let (actor, workspace) = (actor.to_owned(), workspace.to_owned());
        let redact = self.redact.clone();
        self.run(move |conn, hub| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !workspace_exists(&tx, &workspace)? {
                return Err(StoreError::NotFound(format!("workspace `{workspace}`")));
            }
            let existing = query_docs(
                &tx,
                &format!("SELECT {COLS} FROM documents WHERE workspace = ?1"),
                &[SqlValue::Text(workspace.clone())],
            )?;
            let mut plan = ApplyPlan::new(&workspace, existing, docs)?;
            if !plan.changes() {
                return Ok(plan.report(read_revision(&tx)?));
            }
            let r = bump(&tx)?;
            plan.stamp(r);
            for (written, w) in plan.writes.iter().enumerate() {
                crash_failpoint(written);
                if w.old.is_some() {
                    update_doc(&tx, &w.new)?;
                    audit_doc(
                        &tx,
                        redact.as_ref(),
                        r,
                        &actor,
                        "update",
                        w.old.as_ref(),
                        Some(&w.new),
                    )?;
                } else {
                    insert_doc(&tx, &w.new)?;
                    audit_doc(
                        &tx,
                        redact.as_ref(),
                        r,
                        &actor,
                        "create",
                        None,
                        Some(&w.new),
                    )?;
                }
            }
            for old in &plan.gone {
                delete_doc(&tx, old.id)?;
                audit_doc(&tx, redact.as_ref(), r, &actor, "delete", Some(old), None)?;
            }
            tx.commit()?;
            publish(hub, r);
            Ok(plan.report(r))
        })
        .await
    }

    async fn revision(&self) -> Result<u64> {
        self.run(|conn, _| read_revision(conn)).await
    }

    async fn snapshot(&self) -> Result<StoreSnapshot> {
        self.run(|conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let revision = read_revision(&tx)?;
            let documents = query_docs(
                &tx,
                &format!("SELECT {COLS} FROM documents ORDER BY workspace, kind, name"),
                &[],
            )?;
            tx.commit()?;
            Ok(StoreSnapshot {
                revision,
                documents,
            })
        })
        .await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut sql = String::from(
            "SELECT seq, revision, at, actor, action, kind, workspace, name, before, after
             FROM audit_log WHERE 1 = 1",
        );
        let mut args = Vec::new();
        for (col, val) in [
            ("workspace", &query.workspace),
            ("kind", &query.kind),
            ("name", &query.name),
        ] {
            if let Some(v) = val {
                args.push(SqlValue::Text(v.clone()));
                sql.push_str(&format!(" AND {col} = ?{}", args.len()));
            }
        }
        if let Some(seq) = query.before_seq {
            args.push(SqlValue::Integer(to_i64(seq)));
            sql.push_str(&format!(" AND seq < ?{}", args.len()));
        }
        args.push(SqlValue::Integer(
            i64::try_from(page_size(query.limit)).unwrap_or(i64::MAX),
        ));
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
        self.run(move |conn, _| {
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let before: Option<String> = row.get(8)?;
                let after: Option<String> = row.get(9)?;
                out.push(AuditEntry {
                    seq: to_u64(row.get(0)?),
                    revision: to_u64(row.get(1)?),
                    at: row.get(2)?,
                    actor: row.get(3)?,
                    action: row.get(4)?,
                    kind: row.get(5)?,
                    workspace: row.get(6)?,
                    name: row.get(7)?,
                    before: before.as_deref().map(from_json).transpose()?,
                    after: after.as_deref().map(from_json).transpose()?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn create_token(&self, actor: &str, name: &str, role: Role) -> Result<IssuedToken> {
        check_token_request(name, &role)?;
        let plaintext = token::generate()?;
        let hash = token::hash(&plaintext);
        let record = AdminToken {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            role,
            created_at: now_ms(),
            created_by: actor.to_owned(),
            revoked_at: None,
        };
        let stored = record.clone();
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Role::WorkspaceAdmin { workspace } = &stored.role
                && !workspace_exists(&tx, workspace)?
            {
                return Err(StoreError::NotFound(format!("workspace `{workspace}`")));
            }
            let (role, workspace) = stored.role.parts();
            tx.execute(
                "INSERT INTO admin_tokens (id, name, token_hash, role, workspace, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    stored.id.to_string(),
                    stored.name,
                    hash,
                    role,
                    workspace,
                    stored.created_at,
                    stored.created_by
                ],
            )?;
            let rev = read_revision(&tx)?;
            audit_row(
                &tx,
                rev,
                &stored.created_by,
                "create",
                "admin_token",
                WORKSPACE_SCOPE,
                &stored.name,
                None,
                Some(&token_json(&stored)?),
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        Ok(IssuedToken {
            token: record,
            plaintext,
        })
    }

    async fn lookup_token(&self, presented: &str) -> Result<Option<AdminToken>> {
        let hash = token::hash(presented);
        self.run(move |conn, _| {
            Ok(query_tokens(
                conn,
                &format!(
                    "SELECT {TOKEN_COLS} FROM admin_tokens WHERE token_hash = ?1 AND revoked_at IS NULL"
                ),
                &[SqlValue::Text(hash)],
            )?
            .into_iter()
            .next())
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<AdminToken>> {
        self.run(|conn, _| {
            query_tokens(
                conn,
                &format!("SELECT {TOKEN_COLS} FROM admin_tokens ORDER BY created_at, id"),
                &[],
            )
        })
        .await
    }

    async fn revoke_token(&self, actor: &str, id: Uuid) -> Result<AdminToken> {
        let actor = actor.to_owned();
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(old) = query_tokens(
                &tx,
                &format!("SELECT {TOKEN_COLS} FROM admin_tokens WHERE id = ?1"),
                &[SqlValue::Text(id.to_string())],
            )?
            .into_iter()
            .next() else {
                return Err(StoreError::NotFound(format!("admin token {id}")));
            };
            if old.revoked_at.is_some() {
                return Ok(old);
            }
            let new = AdminToken {
                revoked_at: Some(now_ms()),
                ..old.clone()
            };
            tx.execute(
                "UPDATE admin_tokens SET revoked_at = ?2 WHERE id = ?1",
                params![id.to_string(), new.revoked_at],
            )?;
            let rev = read_revision(&tx)?;
            audit_row(
                &tx,
                rev,
                &actor,
                "revoke",
                "admin_token",
                WORKSPACE_SCOPE,
                &old.name,
                Some(&token_json(&old)?),
                Some(&token_json(&new)?),
            )?;
            tx.commit()?;
            Ok(new)
        })
        .await
    }

    fn subscribe(&self) -> Changes {
        Changes::new(self.hub.subscribe())
    }
}
