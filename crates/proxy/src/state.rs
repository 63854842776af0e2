//! The state every connection shares: the current snapshot behind an
//! `ArcSwap` (readers never wait for writers), and what is needed to
//! compile the next one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use gatehouse_config::{ConfigErrors, Loaded};
use gatehouse_plugins::Registry;

use crate::client::ClientCache;
use crate::snapshot::{Snapshot, compile};

/// Shared by the listeners, the request path and the reloader.
pub struct Shared {
    current: ArcSwap<Snapshot>,
    registry: Registry,
    clients: ClientCache,
    versions: AtomicU64,
    reload_lock: tokio::sync::Mutex<()>,
    checkers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    /// Compiles the first snapshot.
    pub fn new(loaded: &Loaded, registry: Registry) -> Result<Self, ConfigErrors> {
        let clients = ClientCache::default();
        let snap = compile(loaded, &registry, &clients, 1)?;
        let checkers = start_health_checks(&snap);
        Ok(Self {
            current: ArcSwap::from_pointee(snap),
            registry,
            clients,
            versions: AtomicU64::new(1),
            reload_lock: tokio::sync::Mutex::new(()),
            checkers: std::sync::Mutex::new(checkers),
        })
    }

    /// The snapshot a new request should use. The request keeps it until
    /// it ends, whatever reloads happen meanwhile.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Compiles `loaded` and swaps it in; on error the current snapshot
    /// keeps serving. Returns the new version.
    pub async fn reload(&self, loaded: &Loaded) -> Result<u64, ConfigErrors> {
        let _serialized = self.reload_lock.lock().await;
        let version = self.versions.load(Ordering::Relaxed) + 1;
        let snap = compile(loaded, &self.registry, &self.clients, version)?;
        self.clients.retain(&snap.client_keys);
        self.versions.store(version, Ordering::Relaxed);
        // Health state starts afresh with the new snapshot's targets.
        let checkers = start_health_checks(&snap);
        self.current.store(Arc::new(snap));
        let old = std::mem::replace(&mut *self.lock_checkers(), checkers);
        old.iter().for_each(tokio::task::JoinHandle::abort);
        Ok(version)
    }

    /// Stops every health-check task.
    pub fn stop_health_checks(&self) {
        self.lock_checkers().drain(..).for_each(|h| h.abort());
    }

    fn lock_checkers(&self) -> std::sync::MutexGuard<'_, Vec<tokio::task::JoinHandle<()>>> {
        match self.checkers.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Starts the active health checks a snapshot configures.
fn start_health_checks(snap: &Snapshot) -> Vec<tokio::task::JoinHandle<()>> {
    snap.services
        .iter()
        .filter_map(|svc| {
            let spec = svc.active_check.clone()?;
            Some(crate::health::spawn(crate::health::CheckTarget {
                service: svc.name.clone(),
                scheme: svc.scheme.clone(),
                host: svc.host_header.clone(),
                targets: svc.targets.clone(),
                health: svc.health.clone(),
                spec,
            }))
        })
        .collect()
}
