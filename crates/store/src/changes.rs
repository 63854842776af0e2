//! Change notification: the latest store revision, as a watch channel.
//!
//! Subscribers only ever need "something changed, the store is now at
//! revision N": a node then reloads the snapshot. A watch channel keeps
//! exactly that (no queue to overflow, a slow subscriber sees the latest
//! value). A backend also sends the current revision again after it
//! reconnects to its database, whether or not it moved, so subscribers
//! resync after an outage in which they may have missed notifications.

use futures_util::Stream;
use tokio::sync::watch;

/// A subscription to store changes (see [`crate::Store::subscribe`]).
#[derive(Debug, Clone)]
pub struct Changes {
    rx: watch::Receiver<u64>,
}

impl Changes {
    pub(crate) fn new(rx: watch::Receiver<u64>) -> Changes {
        Changes { rx }
    }

    /// The latest revision seen so far (without waiting).
    pub fn current(&self) -> u64 {
        *self.rx.borrow()
    }

    /// Waits for the next notification and returns the revision it
    /// carries; `None` when the store has been dropped.
    pub async fn next(&mut self) -> Option<u64> {
        self.rx.changed().await.ok()?;
        Some(*self.rx.borrow_and_update())
    }

    /// The notifications as a stream of revisions.
    pub fn into_stream(self) -> impl Stream<Item = u64> + Send + 'static {
        futures_util::stream::unfold(self, |mut changes| async move {
            let revision = changes.next().await?;
            Some((revision, changes))
        })
    }
}

/// The sending side, shared by everything that writes to one database.
pub(crate) fn publish(tx: &watch::Sender<u64>, revision: u64) {
    tx.send_modify(|current| *current = (*current).max(revision));
}
