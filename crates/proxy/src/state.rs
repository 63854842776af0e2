//! The state every connection shares: the current snapshot behind an
//! `ArcSwap` (readers never wait for writers), what is needed to compile
//! the next one, and the background tasks of the current snapshot (active
//! health checks, the TLS file watch).

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
    /// Which listeners (by config position) were started with TLS; a
    /// reload may change their certificates but not turn TLS on or off.
    started_tls: Vec<bool>,
    /// Background tasks of the current snapshot.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    /// Compiles the first snapshot.
    pub fn new(loaded: &Loaded, registry: Registry) -> Result<Self, ConfigErrors> {
        let clients = ClientCache::default();
        let snap = compile(loaded, &registry, &clients, 1)?;
        let tasks = start_tasks(&snap);
        let mut started_tls: Vec<bool> = snap.listeners.iter().map(|l| l.tls.is_some()).collect();
        if started_tls.is_empty() {
            started_tls.push(false); // the default listener
        }
        Ok(Self {
            started_tls,
            current: ArcSwap::from_pointee(snap),
            registry,
            clients,
            versions: AtomicU64::new(1),
            reload_lock: tokio::sync::Mutex::new(()),
            tasks: std::sync::Mutex::new(tasks),
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
        self.check_listeners(loaded, &snap)?;
        self.clients.retain(&snap.client_keys);
        self.versions.store(version, Ordering::Relaxed);
        // Health state starts afresh with the new snapshot's targets.
        let tasks = start_tasks(&snap);
        self.current.store(Arc::new(snap));
        let old = std::mem::replace(&mut *self.lock_tasks(), tasks);
        old.iter().for_each(tokio::task::JoinHandle::abort);
        Ok(version)
    }

    /// A running listener keeps its socket and its protocol: TLS can be
    /// reconfigured, but not switched on or off, by a reload.
    fn check_listeners(&self, loaded: &Loaded, snap: &Snapshot) -> Result<(), ConfigErrors> {
        let errors: Vec<_> = self
            .started_tls
            .iter()
            .enumerate()
            .filter_map(|(i, &was)| {
                let now = snap.listeners.get(i).is_some_and(|l| l.tls.is_some());
                (was != now).then(|| {
                    let what = if was { "off" } else { "on" };
                    loaded.source.error(
                        &format!("listeners[{i}].tls"),
                        format!("turning TLS {what} for a running listener needs a restart"),
                    )
                })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Stops the background tasks (health checks, TLS file watch).
    pub fn stop_health_checks(&self) {
        self.lock_tasks().drain(..).for_each(|h| h.abort());
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<tokio::task::JoinHandle<()>>> {
        match self.tasks.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Starts a snapshot's background tasks: active health checks, and the
/// TLS file watch when a listener terminates TLS and `server.watch` is on.
fn start_tasks(snap: &Snapshot) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = start_health_checks(snap);
    let tls: Vec<_> = snap
        .listeners
        .iter()
        .filter_map(|l| l.tls.clone())
        .collect();
    if !tls.is_empty() && snap.settings.watch {
        tasks.push(tokio::spawn(crate::tls::listener::watch(
            tls,
            snap.settings.watch_interval,
        )));
    }
    tasks
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
                tls: svc.tls.clone(),
                host: svc.host_header.clone(),
                targets: svc.targets.clone(),
                health: svc.health.clone(),
                spec,
            }))
        })
        .collect()
}
