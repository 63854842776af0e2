//! The gatehouse data plane.
//!
//! [`Gateway::start`] binds the listeners and serves requests from an
//! immutable [`snapshot::Snapshot`] that [`Gateway::reload`] swaps
//! atomically. Architecture invariant: this is the only crate that knows
//! hyper's server and client types.

mod access;
pub mod canon;
mod chain;
mod circuit;
mod client;
mod conns;
mod discovery;
mod error;
mod forward;
mod framing;
mod handler;
mod health;
mod lifecycle;
mod limit;
mod logbody;
mod outbound;
mod pool;
mod retry;
mod retry_policy;
mod server;
mod snapshot;
mod sources;
mod split;
mod state;
mod status;
mod targets;
#[cfg(any(test, feature = "__test"))]
pub mod testing;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::{ConfigErrors, Loaded};
use gatehouse_core::{Registry, Resources};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

pub use state::Shared;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration does not compile.
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running gateway. Dropping it stops accepting and aborts connections;
/// call [`Gateway::shutdown`] to drain gracefully instead.
pub struct Gateway {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    tracker: TaskTracker,
    listeners: TaskTracker,
    /// The status listener's state and its stop signal (it keeps serving
    /// while the proxy drains, to report "not ready").
    status: Arc<status::Status>,
    status_addr: Option<SocketAddr>,
    status_stop: watch::Sender<bool>,
}

/// The listener used when a config names none.
pub const DEFAULT_LISTENER: &str = "0.0.0.0:8080";

impl Gateway {
    /// Compiles `loaded` with the plugins of `registry` (the binary passes
    /// `gatehouse_plugins::registry()`; an embedding program or a test may
    /// add its own), binds its listeners and starts serving. Reloads use
    /// the same registry.
    pub async fn start(loaded: &Loaded, registry: Registry) -> Result<Self, StartError> {
        let shared = Arc::new(Shared::new(loaded, registry)?);
        let config = &loaded.config;
        if config.server.key_hash_secret.is_none()
            && config
                .consumers
                .iter()
                .any(|c| c.apps.iter().any(|a| !a.keys.is_empty()))
        {
            tracing::warn!(
                "server.key_hash_secret is not set: app API keys are hashed with a built-in secret \
                 that anyone can read in the source. Set a long random secret, the same on every node, \
                 and re-hash the keys (gatehouse keys hash --config FILE KEY)"
            );
        }
        // DNS-backed services resolve in the background; give them up to
        // `server.dns.timeout` so a normal start does not answer 503 before
        // the first answers. DNS never blocks the start beyond that.
        if !shared.first_resolution().await {
            tracing::warn!(
                "some DNS names did not resolve in time; their services answer 503 until they do"
            );
        }
        let mut specs: Vec<(SocketAddr, bool)> = loaded
            .config
            .listeners
            .iter()
            .map(|l| (l.address.0, l.http2))
            .collect();
        if specs.is_empty() {
            specs.push((
                SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 8080)),
                true,
            ));
        }
        let status = Arc::new(status::Status::new());
        let (status_stop, status_stop_rx) = watch::channel(false);
        let status_listener = match config.server.status_listen {
            Some(a) => Some(server::bind(a.0).map_err(|source| StartError::Bind {
                addr: a.0.to_string(),
                source,
            })?),
            None => None,
        };
        let mut bound = Vec::with_capacity(specs.len());
        for (addr, http2) in specs {
            let listener = server::bind(addr).map_err(|source| StartError::Bind {
                addr: addr.to_string(),
                source,
            })?;
            bound.push((listener, http2));
        }
        let (stop, stop_rx) = watch::channel(false);
        let tracker = TaskTracker::new();
        let listeners = TaskTracker::new();
        let mut addrs = Vec::with_capacity(bound.len());
        // One count of open connections over all listeners.
        let conns = Arc::new(conns::Conns::default());
        for (index, (listener, http2)) in bound.into_iter().enumerate() {
            if let Ok(a) = listener.local_addr() {
                addrs.push(a);
                let tls = shared.snapshot().listener_tls(index).is_some();
                tracing::info!(address = %a, http2, tls, "listening");
            }
            listeners.spawn(server::accept_loop(
                listener,
                server::ListenerSpec { index, http2 },
                shared.clone(),
                conns.clone(),
                tracker.clone(),
                stop_rx.clone(),
            ));
        }
        listeners.close();
        let mut status_addr = None;
        if let Some(l) = status_listener {
            status_addr = l.local_addr().ok();
            if let Some(a) = status_addr {
                tracing::info!(address = %a, "status listener");
            }
            tokio::spawn(status::serve(
                l,
                shared.clone(),
                conns.clone(),
                status.clone(),
                status_stop_rx,
            ));
        }
        status.set_ready();
        Ok(Self {
            shared,
            addrs,
            stop,
            tracker,
            listeners,
            status,
            status_addr,
            status_stop,
        })
    }

    /// The bound listener addresses, in config order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The status listener's address, when `server.status_listen` is set.
    pub fn status_addr(&self) -> Option<SocketAddr> {
        self.status_addr
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The shared state (snapshot access for tests and the admin side).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The long-lived resources: plugin state, shared entries, the metrics
    /// registry ([`Resources::metrics`]), plugin background tasks.
    pub fn resources(&self) -> &Resources {
        self.shared.resources()
    }

    /// Validates, compiles and atomically swaps in a new configuration.
    /// On error the running configuration is untouched. Listener and
    /// thread settings only take effect on restart.
    pub async fn reload(&self, loaded: &Loaded) -> Result<u64, ConfigErrors> {
        self.shared.reload(loaded).await
    }

    /// Stops accepting, lets in-flight requests finish for up to the
    /// configured `shutdown_timeout`, then returns whether everything
    /// drained in time.
    pub async fn shutdown(self) -> bool {
        let deadline = self.shared.snapshot().settings.shutdown_timeout;
        self.shutdown_within(deadline).await
    }

    /// Like [`Gateway::shutdown`] with an explicit deadline.
    /// Plugin background tasks are told to stop once requests drained,
    /// and get what is left of the deadline to finish.
    pub async fn shutdown_within(self, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        self.status.set_draining();
        let _ = self.stop.send(true);
        self.listeners.wait().await;
        self.tracker.close();
        let drained = tokio::time::timeout_at(until, self.tracker.wait())
            .await
            .is_ok();
        self.shared.stop_background_tasks();
        let tasks = self.shared.plugin_tasks().clone();
        let stopped = tokio::time::timeout_at(until, tasks.wait()).await.is_ok();
        if !stopped {
            tracing::warn!("plugin background tasks still running at the shutdown deadline");
        }
        if let Some(log) = self.shared.access_log() {
            // The lines of the last requests, written before the process
            // exits (bounded: a stuck disk does not hold the exit).
            let log = log.clone();
            let left = until
                .saturating_duration_since(tokio::time::Instant::now())
                .max(Duration::from_secs(1));
            let _ = tokio::task::spawn_blocking(move || log.flush(left)).await;
        }
        let _ = self.status_stop.send(true);
        drained
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let _ = self.status_stop.send(true);
        self.shared.stop_background_tasks();
    }
}

/// Compiles `loaded` with the plugins of `registry` without binding
/// anything: every error a start or a reload would report, with file, line
/// and field. Plugins are built with detached resources, so nothing is
/// kept and no background task starts.
pub fn check(loaded: &Loaded, registry: &Registry) -> Result<(), ConfigErrors> {
    let clients = client::ClientCache::default();
    let resources = Resources::detached();
    snapshot::compile(loaded, registry, &resources.build(), &clients, 0).map(|_| ())
}
