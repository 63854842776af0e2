//! The state every connection shares: the current snapshot behind an
//! `ArcSwap` (readers never wait for writers), what is needed to compile
//! the next one, and the lifecycle of a snapshot's background tasks
//! (active health checks, DNS discovery, the TLS file watch): started with
//! it, aborted when a reload replaces it or the gateway stops.
//!
//! It also owns the gateway's long-lived [`Resources`]: each compile gets a
//! build view, and after a swap the view is committed: entries the new
//! snapshot did not ask for are dropped, plugin background tasks it asked
//! for start (on [`Shared::plugin_tasks`]), those it no longer asks for are
//! told to stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use gatehouse_config::{ConfigErrors, Loaded};
use gatehouse_core::{Registry, Resources};
use tokio_util::task::TaskTracker;

use crate::client::ClientCache;
use crate::discovery::{self, Memory, TargetSource};
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
    /// The current snapshot's background tasks: active health checks and
    /// DNS discovery. Started with a snapshot, aborted when it is replaced.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Last good DNS answers, kept across reloads.
    dns_memory: Arc<Memory>,
    /// Plugin state, shared entries, metrics and background tasks: outlive
    /// snapshots.
    resources: Resources,
    /// The running plugin background tasks.
    plugin_tasks: TaskTracker,
    /// The access log, when `server.access_log.enabled` at start.
    access: Option<crate::access::AccessLog>,
}

impl Shared {
    /// Compiles the first snapshot and starts its background tasks (must
    /// run inside a tokio runtime). DNS names resolve in the background:
    /// see [`Shared::first_resolution`].
    pub fn new(loaded: &Loaded, registry: Registry) -> Result<Self, ConfigErrors> {
        let clients = ClientCache::default();
        let resources = Resources::new();
        let build = resources.build();
        let snap = compile(loaded, &registry, &build, &clients, 1)?;
        let access_config = &loaded.config.server.access_log;
        let access = match access_config.enabled {
            true => Some(crate::access::AccessLog::start(access_config).map_err(|e| {
                ConfigErrors::one(
                    loaded
                        .source
                        .error("server.access_log.output", e.to_string()),
                )
            })?),
            false => None,
        };
        let plugin_tasks = TaskTracker::new();
        spawn_plugin_tasks(&plugin_tasks, resources.commit(&build));
        let dns_memory = Arc::new(Memory::default());
        let tasks = start_tasks(&snap, &dns_memory);
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
            dns_memory,
            resources,
            plugin_tasks,
            access,
        })
    }

    /// The gateway's long-lived resources (plugin state, shared entries,
    /// the metrics registry, background tasks).
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// The running plugin background tasks (to wait for at shutdown).
    pub fn plugin_tasks(&self) -> &TaskTracker {
        &self.plugin_tasks
    }

    /// The snapshot a new request should use. The request keeps it until
    /// it ends, whatever reloads happen meanwhile.
    /// The version of the configuration in force (1 at start, one more
    /// per successful reload).
    pub fn version(&self) -> u64 {
        self.versions.load(Ordering::Relaxed)
    }

    /// The access log, if on.
    pub fn access_log(&self) -> Option<&crate::access::AccessLog> {
        self.access.as_ref()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Waits until every DNS-backed service of the current snapshot has
    /// finished its first discovery round (answered or failed), at most
    /// `server.dns.timeout`. Returns whether all did in time.
    pub async fn first_resolution(&self) -> bool {
        first_round(&self.snapshot()).await
    }

    /// Compiles `loaded` and swaps it in; on error the current snapshot
    /// keeps serving. Returns the new version.
    ///
    /// The new snapshot's health checks and DNS discovery start before the
    /// swap, and the swap waits (at most `server.dns.timeout`) for the
    /// first DNS answers, so DNS-backed services do not answer 503 right
    /// after a reload.
    pub async fn reload(&self, loaded: &Loaded) -> Result<u64, ConfigErrors> {
        let _serialized = self.reload_lock.lock().await;
        let version = self.versions.load(Ordering::Relaxed) + 1;
        let build = self.resources.build();
        let snap = compile(loaded, &self.registry, &build, &self.clients, version)?;
        self.check_listeners(loaded, &snap)?;
        self.clients.retain(&snap.client_keys);
        self.versions.store(version, Ordering::Relaxed);
        // Health state starts afresh with the new snapshot's targets.
        let tasks = start_tasks(&snap, &self.dns_memory);
        let snap = Arc::new(snap);
        first_round(&snap).await;
        self.current.store(snap.clone());
        spawn_plugin_tasks(&self.plugin_tasks, self.resources.commit(&build));
        let old = std::mem::replace(&mut *self.lock_tasks(), tasks);
        old.iter().for_each(tokio::task::JoinHandle::abort);
        let sources: Vec<&TargetSource> = snap
            .services
            .iter()
            .filter_map(|s| s.targets.discovery())
            .flat_map(|spec| spec.sources())
            .collect();
        self.dns_memory.retain(&sources);
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

    /// Stops every background task (health checks, DNS discovery, TLS
    /// file watch) and tells the plugins' background tasks to stop.
    pub fn stop_background_tasks(&self) {
        self.lock_tasks().drain(..).for_each(|h| h.abort());
        self.resources.stop_all();
        self.plugin_tasks.close();
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<tokio::task::JoinHandle<()>>> {
        match self.tasks.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // A gateway that failed to bind (or was dropped without a
        // shutdown) leaves no plugin task running.
        self.resources.stop_all();
    }
}

/// Spawns the plugin background tasks a commit started.
fn spawn_plugin_tasks(
    tracker: &TaskTracker,
    tasks: Vec<(Arc<str>, gatehouse_core::resources::TaskFuture)>,
) {
    for (key, task) in tasks {
        tracing::debug!(task = %key, "plugin background task started");
        tracker.spawn(task);
    }
}

/// Starts the background tasks a snapshot configures: one active health
/// checker per service that has one, one discovery task per service whose
/// targets name DNS names (sharing one resolver), and the TLS file watch
/// when a listener terminates TLS and `server.watch` is on.
fn start_tasks(snap: &Snapshot, memory: &Arc<Memory>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks: Vec<_> = snap
        .services
        .iter()
        .filter_map(|svc| {
            let spec = svc.active_check.clone()?;
            Some(crate::health::spawn(crate::health::CheckTarget {
                service: svc.name.clone(),
                scheme: svc.scheme.clone(),
                tls: svc.tls.clone(),
                host: svc.host_header.clone(),
                version: svc.version,
                targets: svc.targets.clone(),
                spec,
            }))
        })
        .collect();
    let dynamic: Vec<_> = snap
        .services
        .iter()
        .filter(|svc| svc.targets.discovery().is_some())
        .collect();
    if !dynamic.is_empty() {
        let resolver = discovery::resolver(&snap.dns);
        if let Err(e) = &resolver {
            tracing::error!(error = %e, "DNS discovery cannot start");
        }
        for svc in dynamic {
            tasks.push(discovery::spawn(
                resolver.clone(),
                snap.dns.clone(),
                svc.targets.clone(),
                memory.clone(),
            ));
        }
    }
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

/// Waits for the first discovery round of every DNS-backed service of
/// `snap`, at most `snap.dns.timeout`; whether all finished in time.
async fn first_round(snap: &Snapshot) -> bool {
    let rounds = snap
        .services
        .iter()
        .filter(|svc| svc.targets.discovery().is_some())
        .map(|svc| svc.targets.first_round());
    let all = futures_util::future::join_all(rounds);
    tokio::time::timeout(snap.dns.timeout, all).await.is_ok()
}
