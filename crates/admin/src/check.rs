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
use gatehouse_store::{Document, Kind, NewDocument};
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
                documents.sort_by(|a, b| {
                    (a.workspace.as_str(), a.kind.as_str(), a.name.as_str()).cmp(&(
                        b.workspace.as_str(),
                        b.kind.as_str(),
                        b.name.as_str(),
                    ))
                });
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

/// Runs the validator (if any) on the state after `change`: `422
/// invalid-entity` with its messages when it refuses.
pub async fn cross_check(state: &AppState, change: Change<'_>) -> ApiResult<()> {
    let Some(validator) = state.validator.clone() else {
        return Ok(());
    };
    let snapshot = state.store.snapshot().await?;
    let documents = candidate(snapshot.documents, snapshot.revision, &change);
    // A full check can take a while on a big store: off the async threads.
    tokio::task::spawn_blocking(move || validator.check(&documents))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "admin API: the validator panicked");
            ApiError::new(
                ProblemType::Internal,
                "the validator failed (see the server log)",
            )
        })?
        .map_err(ApiError::rejected)
}
