//! The cross-entity validation hook: before a write, the state the store
//! would be in after it is built from a snapshot and handed to the
//! configured [`crate::Validator`].
//!
//! The snapshot is read before the write, not in its transaction: a
//! concurrent writer can change the store in between, so two writes that
//! are each fine against the snapshot they saw can together make a state
//! the validator would refuse. The node's compile of every snapshot still
//! rejects such a state and keeps its last good configuration
//! (docs/admin-api.md).

use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_core::ProblemType;
use std::sync::Arc;

use gatehouse_store::{Document, Kind, NewDocument, StoreSnapshot, WORKSPACE_SCOPE};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The write about to be made.
pub enum Change<'a> {
    /// A document created or replaced.
    Put(&'a NewDocument),
    /// A document deleted.
    Delete {
        /// Its workspace.
        workspace: &'a str,
        /// Its kind.
        kind: Kind,
        /// Its name.
        name: &'a str,
    },
}

/// The documents of `snapshot` with `change` applied. A new document gets
/// a nil id, version `revision + 1` and the current time.
pub fn candidate(
    mut documents: Vec<Document>,
    revision: u64,
    change: &Change<'_>,
) -> Vec<Document> {
    match change {
        Change::Put(doc) => {
            let same = |d: &Document| {
                d.workspace == doc.workspace && d.kind == doc.kind && d.name == doc.name
            };
            if let Some(d) = documents.iter_mut().find(|d| same(d)) {
                d.tags.clone_from(&doc.tags);
                d.body = doc.body.clone();
                d.version = revision + 1;
            } else {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                documents.push(Document {
                    id: Uuid::nil(),
                    workspace: doc.workspace.clone(),
                    kind: doc.kind,
                    name: doc.name.clone(),
                    tags: doc.tags.clone(),
                    body: doc.body.clone(),
                    version: revision + 1,
                    created_at: now,
                    updated_at: now,
                });
                documents.sort_by(Document::snapshot_order);
            }
        }
        Change::Delete {
            workspace,
            kind,
            name,
        } => {
            documents.retain(|d| !(d.workspace == *workspace && d.kind == *kind && d.name == *name))
        }
    }
    documents
}

/// The state a write was checked against: the store's revision before it
/// and the documents after it (see [`remember_write`]).
pub struct Checked {
    base: u64,
    documents: Vec<Document>,
}

/// Serializes the writes of this API process while a validator is set:
/// hold the guard from [`cross_check`] to the store write, so no write is
/// checked against a snapshot another checked write is about to change.
/// Writes through other processes (another node's admin API, `config
/// apply`) are not covered; nodes still reject a bad result.
pub async fn serialize(state: &AppState) -> Option<tokio::sync::MutexGuard<'_, ()>> {
    match state.validator {
        Some(_) => Some(state.write_lock.lock().await),
        None => None,
    }
}

/// Runs the validator (if any) on the state after `change`: `422
/// invalid-entity` with its messages when it refuses.
pub async fn cross_check(state: &AppState, change: Change<'_>) -> ApiResult<Option<Checked>> {
    let Some(validator) = state.validator.clone() else {
        return Ok(None);
    };
    let snapshot = current_snapshot(state).await?;
    let documents = candidate(snapshot.documents.clone(), snapshot.revision, &change);
    // Messages are scoped to the workspace written to (whoever writes):
    // a workspace admin never learns another workspace's entities from a
    // refusal. Writes of workspace documents (super-admins only) get every
    // message in full.
    let scope = match &change {
        Change::Put(doc) => doc.workspace.clone(),
        Change::Delete { workspace, .. } => (*workspace).to_owned(),
    };
    // A full check can take a while on a big store: off the async threads.
    let (documents, verdict) = tokio::task::spawn_blocking(move || {
        let verdict = if scope == WORKSPACE_SCOPE {
            validator.check(&documents)
        } else {
            validator.check_in(&documents, &scope)
        };
        (documents, verdict)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "admin API: the validator panicked");
        ApiError::new(
            ProblemType::Internal,
            "the validator failed (see the server log)",
        )
    })?;
    verdict.map_err(ApiError::rejected)?;
    Ok(Some(Checked {
        base: snapshot.revision,
        documents,
    }))
}

/// After a checked put went through: when it produced exactly the next
/// revision (no other write came in between; every committed change bumps
/// the revision by one), the checked documents, with the stored document
/// in place of the candidate, are the store at that revision, so the next
/// check needs no snapshot read.
pub fn remember_write(state: &AppState, checked: Option<Checked>, written: &Document) {
    let Some(Checked {
        base,
        mut documents,
    }) = checked
    else {
        return;
    };
    if written.version != base + 1 {
        return;
    }
    let Some(slot) = documents.iter_mut().find(|d| {
        d.workspace == written.workspace && d.kind == written.kind && d.name == written.name
    }) else {
        return;
    };
    *slot = written.clone();
    if let Ok(mut cache) = state.snapshot_cache.lock() {
        *cache = Some(Arc::new(StoreSnapshot {
            revision: written.version,
            documents,
        }));
    }
}

/// Every document at the store's current revision: the cached snapshot
/// when the revision has not moved since it was read or written, else a
/// fresh one (and that is cached). The documents at one revision never
/// change, so a cache keyed by revision cannot be stale.
async fn current_snapshot(state: &AppState) -> ApiResult<Arc<StoreSnapshot>> {
    let revision = state.store.revision().await?;
    if let Ok(cache) = state.snapshot_cache.lock()
        && let Some(s) = cache.as_ref()
        && s.revision == revision
    {
        return Ok(Arc::clone(s));
    }
    let fresh = Arc::new(state.store.snapshot().await?);
    if let Ok(mut cache) = state.snapshot_cache.lock() {
        *cache = Some(Arc::clone(&fresh));
    }
    Ok(fresh)
}
