//! The PostgreSQL backend, for clusters: one mutex-guarded client per
//! handle (reconnected on demand) and a dedicated LISTEN connection that
//! turns `NOTIFY gatehouse_changes` into [`Changes`].
//!
//! Every write transaction first locks the single `store_revision` row
//! (`SELECT ... FOR UPDATE`): writers from every node are serialized, a
//! precondition is checked against committed data and cannot be lost, and
//! revisions commit in the order they are numbered (a node that has seen
//! revision N has seen everything before it). Control-plane writes are rare
//! enough that one global write lock costs nothing that matters.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard, mpsc, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{
    AsyncMessage, Client, Config, GenericClient, IsolationLevel, NoTls, Row, Transaction,
};
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

/// The NOTIFY channel; the payload is the new revision in decimal.
pub const CHANNEL: &str = "gatehouse_changes";

/// `application_name` of the LISTEN session (so operators can find it).
pub const LISTEN_APPLICATION_NAME: &str = "gatehouse-listen";

const COLS: &str = "id, workspace, kind, name, tags, body, version, created_at, updated_at";
const TOKEN_COLS: &str = "id, name, role, workspace, created_at, created_by, revoked_at";
/// Key of the advisory lock migrations hold (nodes starting together).
const MIGRATION_LOCK: i64 = 0x6761_7465_686f_7573; // "gatehous"

type Param = Box<dyn ToSql + Sync + Send>;

/// A store in a PostgreSQL database.
pub struct PostgresStore {
    config: Config,
    client: Mutex<Option<Client>>,
    hub: Arc<watch::Sender<u64>>,
    listener: tokio::task::JoinHandle<()>,
    redact: Option<AuditRedactor>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        // admin_shutdown, crash_shutdown, cannot_connect_now
        if matches!(db.code().code(), "57P01" | "57P02" | "57P03") {
            return StoreError::unavailable("postgres", e);
        }
        return StoreError::backend("postgres", e);
    }
    if e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) {
        return StoreError::unavailable("postgres", e);
    }
    StoreError::backend("postgres", e)
}

async fn connect_client(config: &Config) -> Result<Client> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| StoreError::unavailable("cannot connect to postgres", e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres store connection ended");
        }
    });
    Ok(client)
}

impl PostgresStore {
    /// Passes every document body written into the audit log through
    /// `redactor` (see [`AuditRedactor`]).
    #[must_use]
    pub fn with_audit_redactor(mut self, redactor: Option<AuditRedactor>) -> Self {
        self.redact = redactor;
        self
    }

    /// Connects to `postgres://...`, applies pending migrations and starts
    /// listening for changes.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        let mut config: Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("postgres URL: {e}")))?;
        config
            .connect_timeout(Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        let mut client = connect_client(&config).await?;
        migrate_postgres(&mut client).await?;
        let revision = read_revision(&client).await?;
        let hub = Arc::new(watch::Sender::new(revision));
        let listener = tokio::spawn(listen_loop(config.clone(), Arc::clone(&hub)));
        Ok(PostgresStore {
            config,
            client: Mutex::new(Some(client)),
            hub,
            listener,
            redact: None,
        })
    }

    /// The client, reconnecting if the last one was lost.
    async fn client(&self) -> Result<MutexGuard<'_, Option<Client>>> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = None;
            *guard = Some(connect_client(&self.config).await?);
        }
        Ok(guard)
    }
}

fn live<'a>(guard: &'a mut MutexGuard<'_, Option<Client>>) -> Result<&'a mut Client> {
    guard
        .as_mut()
        .ok_or_else(|| StoreError::unavailable_msg("postgres: no connection"))
}

async fn migrate_postgres(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at BIGINT NOT NULL
         )",
    )
    .await
    .map_err(pg_err)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)?;
    for m in migrate::pending(migrate::POSTGRES, current)? {
        tx.batch_execute(m.sql).await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&m.version as &(dyn ToSql + Sync), &now_ms()],
        )
        .await
        .map_err(pg_err)?;
        if m.version == 1 {
            let rev = bump(&tx).await?;
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
            insert_doc(&tx, &doc).await?;
            audit_doc(&tx, None, rev, "system", "create", None, Some(&doc)).await?;
        }
        tracing::info!(version = m.version, "postgres store: applied migration");
    }
    tx.commit().await.map_err(pg_err)?;
    Ok(())
}

async fn read_revision(c: &impl GenericClient) -> Result<u64> {
    let rev: i64 = c
        .query_one("SELECT revision FROM store_revision WHERE id = 1", &[])
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)?;
    Ok(to_u64(rev))
}

/// Starts a write: takes the global write lock (the revision row).
async fn begin_write(client: &mut Client) -> Result<Transaction<'_>> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.execute(
        "SELECT revision FROM store_revision WHERE id = 1 FOR UPDATE",
        &[],
    )
    .await
    .map_err(pg_err)?;
    Ok(tx)
}

/// Bumps the revision and queues the NOTIFY (sent at commit).
async fn bump(tx: &Transaction<'_>) -> Result<u64> {
    let rev: i64 = tx
        .query_one(
            "UPDATE store_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision",
            &[],
        )
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)?;
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL as &(dyn ToSql + Sync), &rev.to_string()],
    )
    .await
    .map_err(pg_err)?;
    Ok(to_u64(rev))
}

fn read_doc(row: &Row) -> Result<Document> {
    let kind: String = row.try_get(2).map_err(pg_err)?;
    let version: i64 = row.try_get(6).map_err(pg_err)?;
    Ok(Document {
        id: row.try_get(0).map_err(pg_err)?,
        workspace: row.try_get(1).map_err(pg_err)?,
        kind: kind.parse()?,
        name: row.try_get(3).map_err(pg_err)?,
        tags: row.try_get(4).map_err(pg_err)?,
        body: row.try_get(5).map_err(pg_err)?,
        version: to_u64(version),
        created_at: row.try_get(7).map_err(pg_err)?,
        updated_at: row.try_get(8).map_err(pg_err)?,
    })
}

async fn query_docs(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Document>> {
    c.query(sql, params)
        .await
        .map_err(pg_err)?
        .iter()
        .map(read_doc)
        .collect()
}

async fn find(
    c: &impl GenericClient,
    workspace: &str,
    kind: Kind,
    name: &str,
) -> Result<Option<Document>> {
    let docs = query_docs(
        c,
        &format!("SELECT {COLS} FROM documents WHERE workspace = $1 AND kind = $2 AND name = $3"),
        &[&workspace as &(dyn ToSql + Sync), &kind.as_str(), &name],
    )
    .await?;
    Ok(docs.into_iter().next())
}

async fn workspace_exists(c: &impl GenericClient, workspace: &str) -> Result<bool> {
    Ok(find(c, WORKSPACE_SCOPE, Kind::Workspace, workspace)
        .await?
        .is_some())
}

async fn insert_doc(tx: &Transaction<'_>, d: &Document) -> Result<()> {
    tx.execute(
        "INSERT INTO documents (id, workspace, kind, name, tags, body, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &d.id as &(dyn ToSql + Sync),
            &d.workspace,
            &d.kind.as_str(),
            &d.name,
            &d.tags,
            &d.body,
            &to_i64(d.version),
            &d.created_at,
            &d.updated_at,
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn update_doc(tx: &Transaction<'_>, d: &Document) -> Result<()> {
    tx.execute(
        "UPDATE documents SET tags = $2, body = $3, version = $4, updated_at = $5 WHERE id = $1",
        &[
            &d.id as &(dyn ToSql + Sync),
            &d.tags,
            &d.body,
            &to_i64(d.version),
            &d.updated_at,
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn delete_doc(tx: &Transaction<'_>, id: Uuid) -> Result<()> {
    tx.execute("DELETE FROM documents WHERE id = $1", &[&id])
        .await
        .map_err(pg_err)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn audit_row(
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &to_i64(revision) as &(dyn ToSql + Sync),
            &now_ms(),
            &actor,
            &action,
            &kind,
            &workspace,
            &name,
            &before,
            &after,
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn audit_doc(
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
    .await
}

fn read_token(row: &Row) -> Result<AdminToken> {
    let role: String = row.try_get(2).map_err(pg_err)?;
    Ok(AdminToken {
        id: row.try_get(0).map_err(pg_err)?,
        name: row.try_get(1).map_err(pg_err)?,
        role: Role::from_parts(&role, row.try_get(3).map_err(pg_err)?)?,
        created_at: row.try_get(4).map_err(pg_err)?,
        created_by: row.try_get(5).map_err(pg_err)?,
        revoked_at: row.try_get(6).map_err(pg_err)?,
    })
}

async fn query_tokens(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<AdminToken>> {
    c.query(sql, params)
        .await
        .map_err(pg_err)?
        .iter()
        .map(read_token)
        .collect()
}

fn token_json(t: &AdminToken) -> Result<Value> {
    serde_json::to_value(t).map_err(|e| StoreError::backend("json", e))
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn get(&self, workspace: &str, kind: Kind, name: &str) -> Result<Document> {
        let mut guard = self.client().await?;
        find(&*live(&mut guard)?, workspace, kind, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(describe(workspace, kind, name)))
    }

    async fn get_by_id(&self, id: Uuid) -> Result<Document> {
        let mut guard = self.client().await?;
        query_docs(
            &*live(&mut guard)?,
            &format!("SELECT {COLS} FROM documents WHERE id = $1"),
            &[&id],
        )
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::NotFound(format!("document {id}")))
    }

    async fn list(&self, query: &ListQuery) -> Result<Page> {
        let kind = query
            .kind
            .ok_or_else(|| StoreError::Invalid("list needs a kind".into()))?;
        let size = page_size(query.limit);
        let limit = i64::try_from(size + 1).unwrap_or(i64::MAX);
        let after = query.after.clone().unwrap_or_default();
        let mut guard = self.client().await?;
        let mut items = query_docs(
            &*live(&mut guard)?,
            &format!(
                "SELECT {COLS} FROM documents
                 WHERE workspace = $1 AND kind = $2 AND name > $3 AND tags @> $4::text[]
                 ORDER BY name LIMIT $5"
            ),
            &[
                &query.workspace as &(dyn ToSql + Sync),
                &kind.as_str(),
                &after,
                &query.tags,
                &limit,
            ],
        )
        .await?;
        let next = if items.len() > size {
            items.truncate(size);
            items.last().map(|d| d.name.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn put(&self, actor: &str, doc: NewDocument, expect: Expect) -> Result<Written> {
        check_placement(&doc.workspace, doc.kind, &doc.name)?;
        check_content(doc.kind, &doc.name, &doc.tags, &doc.body)?;
        let mut guard = self.client().await?;
        let tx = begin_write(live(&mut guard)?).await?;
        let old = find(&tx, &doc.workspace, doc.kind, &doc.name).await?;
        check_expect(expect, old.as_ref().map(|d| d.version), || {
            describe(&doc.workspace, doc.kind, &doc.name)
        })?;
        if doc.kind != Kind::Workspace && !workspace_exists(&tx, &doc.workspace).await? {
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
        let rev = bump(&tx).await?;
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
            update_doc(&tx, &new).await?;
            audit_doc(
                &tx,
                self.redact.as_ref(),
                rev,
                actor,
                "update",
                old.as_ref(),
                Some(&new),
            )
            .await?;
            Outcome::Updated
        } else {
            insert_doc(&tx, &new).await?;
            audit_doc(
                &tx,
                self.redact.as_ref(),
                rev,
                actor,
                "create",
                None,
                Some(&new),
            )
            .await?;
            Outcome::Created
        };
        tx.commit().await.map_err(pg_err)?;
        publish(&self.hub, rev);
        Ok(Written {
            document: new,
            outcome,
        })
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
        let mut guard = self.client().await?;
        let tx = begin_write(live(&mut guard)?).await?;
        let Some(old) = find(&tx, workspace, kind, name).await? else {
            return match expect {
                Expect::Version(_) => Err(StoreError::Conflict { current: None }),
                _ => Err(StoreError::NotFound(describe(workspace, kind, name))),
            };
        };
        check_expect(expect, Some(old.version), || {
            describe(workspace, kind, name)
        })?;
        if kind == Kind::Workspace {
            let held: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM documents WHERE workspace = $1",
                    &[&name],
                )
                .await
                .map_err(pg_err)?
                .try_get(0)
                .map_err(pg_err)?;
            if held > 0 {
                return Err(StoreError::Invalid(format!(
                    "workspace `{name}` still holds {held} documents; delete them first"
                )));
            }
        }
        let rev = bump(&tx).await?;
        delete_doc(&tx, old.id).await?;
        audit_doc(
            &tx,
            self.redact.as_ref(),
            rev,
            actor,
            "delete",
            Some(&old),
            None,
        )
        .await?;
        tx.commit().await.map_err(pg_err)?;
        publish(&self.hub, rev);
        Ok(old)
    }

    async fn apply(
        &self,
        actor: &str,
        workspace: &str,
        docs: Vec<ApplyDocument>,
    ) -> Result<ApplyReport> {
        check_workspace_name(workspace)?;
        let mut guard = self.client().await?;
        let tx = begin_write(live(&mut guard)?).await?;
        if !workspace_exists(&tx, workspace).await? {
            return Err(StoreError::NotFound(format!("workspace `{workspace}`")));
        }
        let existing = query_docs(
            &tx,
            &format!("SELECT {COLS} FROM documents WHERE workspace = $1"),
            &[&workspace],
        )
        .await?;
        let mut plan = ApplyPlan::new(workspace, existing, docs)?;
        if !plan.changes() {
            return Ok(plan.report(read_revision(&tx).await?));
        }
        let r = bump(&tx).await?;
        plan.stamp(r);
        for (written, w) in plan.writes.iter().enumerate() {
            crash_failpoint(written);
            if w.old.is_some() {
                update_doc(&tx, &w.new).await?;
                audit_doc(
                    &tx,
                    self.redact.as_ref(),
                    r,
                    actor,
                    "update",
                    w.old.as_ref(),
                    Some(&w.new),
                )
                .await?;
            } else {
                insert_doc(&tx, &w.new).await?;
                audit_doc(
                    &tx,
                    self.redact.as_ref(),
                    r,
                    actor,
                    "create",
                    None,
                    Some(&w.new),
                )
                .await?;
            }
        }
        for old in &plan.gone {
            delete_doc(&tx, old.id).await?;
            audit_doc(
                &tx,
                self.redact.as_ref(),
                r,
                actor,
                "delete",
                Some(old),
                None,
            )
            .await?;
        }
        tx.commit().await.map_err(pg_err)?;
        publish(&self.hub, r);
        Ok(plan.report(r))
    }

    async fn revision(&self) -> Result<u64> {
        let mut guard = self.client().await?;
        read_revision(&*live(&mut guard)?).await
    }

    async fn snapshot(&self) -> Result<StoreSnapshot> {
        let mut guard = self.client().await?;
        let tx = live(&mut guard)?
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_err)?;
        let revision = read_revision(&tx).await?;
        let documents = query_docs(
            &tx,
            &format!("SELECT {COLS} FROM documents ORDER BY workspace, kind, name"),
            &[],
        )
        .await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(StoreSnapshot {
            revision,
            documents,
        })
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut sql = String::from(
            "SELECT seq, revision, at, actor, action, kind, workspace, name, before, after
             FROM audit_log WHERE TRUE",
        );
        let mut params: Vec<Param> = Vec::new();
        for (col, val) in [
            ("workspace", &query.workspace),
            ("kind", &query.kind),
            ("name", &query.name),
        ] {
            if let Some(v) = val {
                params.push(Box::new(v.clone()));
                sql.push_str(&format!(" AND {col} = ${}", params.len()));
            }
        }
        if let Some(seq) = query.before_seq {
            params.push(Box::new(to_i64(seq)));
            sql.push_str(&format!(" AND seq < ${}", params.len()));
        }
        params.push(Box::new(
            i64::try_from(page_size(query.limit)).unwrap_or(i64::MAX),
        ));
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", params.len()));
        let mut guard = self.client().await?;
        let rows = live(&mut guard)?
            .query(&sql, &refs(&params))
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    seq: to_u64(row.try_get(0).map_err(pg_err)?),
                    revision: to_u64(row.try_get(1).map_err(pg_err)?),
                    at: row.try_get(2).map_err(pg_err)?,
                    actor: row.try_get(3).map_err(pg_err)?,
                    action: row.try_get(4).map_err(pg_err)?,
                    kind: row.try_get(5).map_err(pg_err)?,
                    workspace: row.try_get(6).map_err(pg_err)?,
                    name: row.try_get(7).map_err(pg_err)?,
                    before: row.try_get(8).map_err(pg_err)?,
                    after: row.try_get(9).map_err(pg_err)?,
                })
            })
            .collect()
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
        let mut guard = self.client().await?;
        let tx = live(&mut guard)?.transaction().await.map_err(pg_err)?;
        if let Role::WorkspaceAdmin { workspace } = &record.role
            && !workspace_exists(&tx, workspace).await?
        {
            return Err(StoreError::NotFound(format!("workspace `{workspace}`")));
        }
        let (role, workspace) = record.role.parts();
        tx.execute(
            "INSERT INTO admin_tokens (id, name, token_hash, role, workspace, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &record.id as &(dyn ToSql + Sync),
                &record.name,
                &hash,
                &role,
                &workspace,
                &record.created_at,
                &record.created_by,
            ],
        )
        .await
        .map_err(pg_err)?;
        let rev = read_revision(&tx).await?;
        audit_row(
            &tx,
            rev,
            actor,
            "create",
            "admin_token",
            WORKSPACE_SCOPE,
            &record.name,
            None,
            Some(&token_json(&record)?),
        )
        .await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(IssuedToken {
            token: record,
            plaintext,
        })
    }

    async fn lookup_token(&self, presented: &str) -> Result<Option<AdminToken>> {
        let hash = token::hash(presented);
        let mut guard = self.client().await?;
        Ok(query_tokens(
            &*live(&mut guard)?,
            &format!(
                "SELECT {TOKEN_COLS} FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
            ),
            &[&hash],
        )
        .await?
        .into_iter()
        .next())
    }

    async fn list_tokens(&self) -> Result<Vec<AdminToken>> {
        let mut guard = self.client().await?;
        query_tokens(
            &*live(&mut guard)?,
            &format!("SELECT {TOKEN_COLS} FROM admin_tokens ORDER BY created_at, id"),
            &[],
        )
        .await
    }

    async fn revoke_token(&self, actor: &str, id: Uuid) -> Result<AdminToken> {
        let mut guard = self.client().await?;
        let tx = live(&mut guard)?.transaction().await.map_err(pg_err)?;
        let Some(old) = query_tokens(
            &tx,
            &format!("SELECT {TOKEN_COLS} FROM admin_tokens WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await?
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
            "UPDATE admin_tokens SET revoked_at = $2 WHERE id = $1",
            &[&id as &(dyn ToSql + Sync), &new.revoked_at],
        )
        .await
        .map_err(pg_err)?;
        let rev = read_revision(&tx).await?;
        audit_row(
            &tx,
            rev,
            actor,
            "revoke",
            "admin_token",
            WORKSPACE_SCOPE,
            &old.name,
            Some(&token_json(&old)?),
            Some(&token_json(&new)?),
        )
        .await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(new)
    }

    fn subscribe(&self) -> Changes {
        Changes::new(self.hub.subscribe())
    }
}

/// Keeps a LISTEN session up for as long as the store lives, reconnecting
/// with capped exponential backoff.
async fn listen_loop(config: Config, hub: Arc<watch::Sender<u64>>) {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);
    let mut delay = FIRST;
    loop {
        match listen_once(&config, &hub).await {
            Ok(()) => {
                tracing::warn!("postgres LISTEN connection lost; reconnecting");
                delay = FIRST;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "postgres LISTEN connection failed");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX);
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One LISTEN session: connects, listens, publishes the current revision
/// (subscribers resync: they may have missed notifications while it was
/// down), then relays notifications until the connection ends.
async fn listen_once(config: &Config, hub: &watch::Sender<u64>) -> Result<()> {
    let mut config = config.clone();
    config.application_name(LISTEN_APPLICATION_NAME);
    let (client, mut connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| StoreError::unavailable("cannot connect to postgres", e))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "postgres LISTEN connection ended");
                    break;
                }
            }
        }
    }));
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(pg_err)?;
    let revision = read_revision(&client).await?;
    publish(hub, revision);
    while let Some(payload) = rx.recv().await {
        match payload.parse::<u64>() {
            Ok(revision) => publish(hub, revision),
            Err(_) => tracing::debug!(%payload, "ignoring a malformed change notification"),
        }
    }
    Ok(())
}
