//! `gatehouse run --store URL`: a node that serves the assembled
//! configuration of the control-plane store (docs/cluster.md).
//!
//! The node follows the store: a change notification (or the periodic
//! revision check, or SIGHUP) makes it read a snapshot, assemble and check
//! it (`gatehouse-control`) and swap it in; a snapshot that fails is logged
//! and the last good configuration keeps serving. Every snapshot that loads
//! is written to the snapshot file, which a node starts from when the store
//! cannot be reached; it then keeps retrying the store in the background.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::ValueEnum;
use gatehouse_config::{Config, Loaded};
use gatehouse_core::Registry;
use gatehouse_proxy::{Gateway, Shared};
use gatehouse_store::{Document, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::datadir::{private_dir, write_private_file};
use crate::reload::Signals;

/// What a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The proxy and the admin API in one process.
    Both,
    /// The proxy only.
    DataPlane,
    /// The admin API only (no proxy listeners).
    ControlPlane,
}

/// The options of `gatehouse run --store`.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The store URL.
    pub store: String,
    /// The node-settings file (`server`, `listeners`).
    pub config: Option<PathBuf>,
    /// What to run.
    pub role: Role,
    /// Where the admin API listens.
    pub admin_listen: SocketAddr,
    /// Where the snapshot file is written.
    pub snapshot_file: PathBuf,
    /// Where certificate documents are written as PEM files for the TLS
    /// listeners (`<data dir>/certs`).
    pub certs_dir: PathBuf,
    /// How often the store's revision is compared with the one served.
    pub resync_interval: Duration,
    /// The plugins the node and its admin API's write check know: the
    /// binary passes `gatehouse_plugins::registry()`; a test running a node
    /// in-process ([`serve_until`]) may add its own.
    pub registry: Registry,
}

/// On SQLite, how often the revision is polled: its change notification
/// only sees writes made by this process.
const SQLITE_POLL: Duration = Duration::from_millis(250);
/// First and longest wait between attempts to open an unreachable store.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Version of the snapshot file format.
const SNAPSHOT_FORMAT: u32 = 1;

/// The node settings: `server` and `listeners` of the file, or the demo
/// config's listeners and default server settings without a file. Entity
/// sections in the file are an error (they come from the store).
pub fn node_settings(path: Option<&Path>) -> anyhow::Result<(Config, PathBuf)> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let Some(path) = path else {
        let demo = gatehouse_config::parse_str(crate::DEMO_CONFIG, "<embedded demo config>")?;
        let settings = Config {
            listeners: demo.config.listeners,
            ..Config::default()
        };
        return Ok((settings, cwd));
    };
    let loaded = gatehouse_config::load_file(path)?;
    let c = &loaded.config;
    let sections: Vec<&str> = [
        ("services", c.services.is_empty()),
        ("routes", c.routes.is_empty()),
        ("plugins", c.plugins.is_empty()),
        ("consumers", c.consumers.is_empty()),
        ("apis", c.apis.is_empty()),
        ("plans", c.plans.is_empty()),
        ("subscriptions", c.subscriptions.is_empty()),
    ]
    .into_iter()
    .filter_map(|(name, empty)| (!empty).then_some(name))
    .collect();
    if !sections.is_empty() {
        bail!(
            "{}: with --store the configuration comes from the store; this file may only hold node settings (`server`, `listeners`), but it has `{}` (put them in the store with `gatehouse config apply`)",
            path.display(),
            sections.join("`, `")
        );
    }
    let base = loaded
        .base_dir
        .clone()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(cwd);
    Ok((
        Config {
            server: loaded.config.server,
            listeners: loaded.config.listeners,
            ..Config::default()
        },
        base,
    ))
}

/// Runs a store-backed node until SIGTERM/SIGINT.
pub fn run(opts: NodeOptions) -> anyhow::Result<ExitCode> {
    let (settings, base_dir) = node_settings(opts.config.as_deref())?;
    let rt = crate::runtime(settings.server.worker_threads).context("cannot start the runtime")?;
    rt.block_on(serve(opts, settings, base_dir))?;
    Ok(ExitCode::SUCCESS)
}

/// The snapshot file: the last store snapshot this node loaded.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotFile {
    /// File format version (1).
    pub format: u32,
    /// The store revision of the documents.
    pub revision: u64,
    /// Every document at that revision.
    pub documents: Vec<Document>,
}

/// Why the snapshot file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// Reading it failed (it exists).
    #[error("cannot read snapshot file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// It is not a snapshot file.
    #[error("snapshot file {} is corrupt", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Another format version.
    #[error("snapshot file {} has format {found}, this gatehouse reads format {SNAPSHOT_FORMAT}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u32,
    },
}

/// Reads the snapshot file: `None` when there is none.
pub fn read_snapshot(path: &Path) -> Result<Option<SnapshotFile>, SnapshotFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SnapshotFileError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let file: SnapshotFile =
        serde_json::from_slice(&bytes).map_err(|source| SnapshotFileError::Corrupt {
            path: path.to_owned(),
            source,
        })?;
    if file.format != SNAPSHOT_FORMAT {
        return Err(SnapshotFileError::Format {
            path: path.to_owned(),
            found: file.format,
        });
    }
    Ok(Some(file))
}

/// Keeps the node's data directory (the parent of `certs_dir`) and its
/// `certs` directory owner-only (0700): they hold the snapshot file (every
/// document, credentials included) and certificate private keys. Both are
/// created 0700 when first written ([`write_private_file`]); existing ones
/// open to group or others are tightened here, at start, with a warning.
fn private_data_dirs(opts: &NodeOptions) -> anyhow::Result<()> {
    let data = opts
        .certs_dir
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    for dir in data.into_iter().chain([opts.certs_dir.as_path()]) {
        private_dir(dir).with_context(|| format!("data directory {}", dir.display()))?;
    }
    Ok(())
}

/// Turns documents into a configuration this node can load.
#[derive(Clone)]
struct Assembler {
    settings: Config,
    base_dir: PathBuf,
    certs_dir: PathBuf,
    registry: Registry,
}

impl Assembler {
    /// Assembled and validated; compiling is left to the gateway's
    /// `reload`, which reports its own errors and swaps nothing on error.
    fn validate(&self, documents: &[Document]) -> Result<Loaded, Vec<String>> {
        let settings =
            crate::certs::with_store_certificates(&self.settings, documents, &self.certs_dir)?;
        Ok(gatehouse_control::prepare(documents, &settings)?.with_base_dir(self.base_dir.clone()))
    }

    /// Assembled, validated and compiled: the full `gatehouse validate`
    /// check (at start, before anything is served).
    fn prepare(&self, documents: &[Document]) -> Result<Loaded, Vec<String>> {
        let loaded = self.validate(documents)?;
        gatehouse_proxy::check(&loaded, &self.registry)
            .map_err(|e| gatehouse_control::describe_all(&e, &loaded.config))?;
        Ok(loaded)
    }
}

/// The store, its audit log redacting secrets under this node's secret.
async fn open_store(url: &str, settings: &Config) -> anyhow::Result<Arc<dyn Store>> {
    gatehouse_store::open_with(url, Some(crate::admin::audit_redactor(settings)))
        .await
        .context("cannot open the store")
}

async fn serve(opts: NodeOptions, settings: Config, base_dir: PathBuf) -> anyhow::Result<()> {
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    let hup = Arc::new(Notify::new());
    let on_hup = Arc::clone(&hup);
    let control_plane = opts.role == Role::ControlPlane;
    let stop = async move {
        signals
            .wait_for_stop(|| {
                if control_plane {
                    tracing::info!("SIGHUP ignored: a control-plane node serves no config");
                } else {
                    tracing::info!("SIGHUP: resyncing with the store");
                    on_hup.notify_one();
                }
            })
            .await;
    };
    serve_until(opts, settings, base_dir, hup, stop).await
}

/// Runs a store-backed node until `stop` resolves; `hup` makes it resync
/// with the store at once (what SIGHUP does). [`run`] drives it from the
/// process's signals; tests run a node in-process with it.
pub async fn serve_until(
    opts: NodeOptions,
    settings: Config,
    base_dir: PathBuf,
    hup: Arc<Notify>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let admin_listener = if opts.role == Role::DataPlane {
        None
    } else {
        let l = tokio::net::TcpListener::bind(opts.admin_listen)
            .await
            .with_context(|| format!("cannot listen on {} (admin API)", opts.admin_listen))?;
        Some(l)
    };
    let (stop_tx, stop_rx) = watch::channel(false);

    if opts.role == Role::ControlPlane {
        let store = open_store(&opts.store, &settings).await?;
        let listener = admin_listener.context("no admin listener")?;
        tracing::info!(listen = %opts.admin_listen, backend = store.backend(), role = "control-plane", "admin API listening");
        let state = crate::admin::state(store, &settings, opts.registry.clone());
        let admin = tokio::spawn(serve_admin(listener, state, stop_rx));
        stop.await;
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), admin).await;
        tracing::info!("bye");
        return Ok(());
    }

    let admin_settings = settings.clone();
    let assembler = Assembler {
        settings,
        base_dir,
        certs_dir: opts.certs_dir.clone(),
        registry: opts.registry.clone(),
    };
    private_data_dirs(&opts)?;
    let file = read_snapshot(&opts.snapshot_file);
    let store = open_store(&opts.store, &assembler.settings).await;
    let (loaded, revision, store, save) = initial(&assembler, &opts, file, store).await?;

    let gateway = Gateway::start(&loaded, opts.registry.clone()).await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        revision,
        role = ?opts.role,
        addrs = ?gateway.addrs(),
        "gatehouse node started"
    );
    let follower = Follower {
        assembler,
        shared: Arc::clone(gateway.shared()),
        snapshot_file: opts.snapshot_file.clone(),
        // Started from the file: load whatever the store has once it is
        // back, even at the same revision number (the file may come from
        // another store, whose numbers mean nothing here).
        served: save.as_ref().map(|_| revision),
    };
    if let Some(bytes) = save {
        follower.save(bytes).await;
    }
    let follow = tokio::spawn(follower.follow(
        opts.store.clone(),
        store,
        opts.resync_interval,
        Arc::clone(&hup),
        admin_listener.map(|l| (l, stop_rx, admin_settings)),
    ));

    stop.await;
    follow.abort();
    let _ = stop_tx.send(true);
    tracing::info!("shutting down: draining in-flight requests");
    if gateway.shutdown().await {
        tracing::info!("drained; bye");
    } else {
        tracing::warn!("shutdown deadline passed with requests still in flight");
    }
    Ok(())
}

type Initial = (Loaded, u64, Option<Arc<dyn Store>>, Option<Vec<u8>>);

/// The first configuration: the store's, else the snapshot file's.
async fn initial(
    assembler: &Assembler,
    opts: &NodeOptions,
    file: Result<Option<SnapshotFile>, SnapshotFileError>,
    store: anyhow::Result<Arc<dyn Store>>,
) -> anyhow::Result<Initial> {
    let path = opts.snapshot_file.display();
    let (from_store, store) = match store {
        Ok(s) => {
            let snapshot = match s.snapshot().await {
                Ok(snap) => match assembler.prepare(&snap.documents) {
                    Ok(loaded) => Ok((loaded, snap)),
                    Err(errors) => Err(anyhow!(
                        "the store's configuration (revision {}) is invalid:\n  {}",
                        snap.revision,
                        errors.join("\n  ")
                    )),
                },
                Err(e) => Err(anyhow::Error::new(e).context("cannot read the store")),
            };
            (snapshot, Some(s))
        }
        Err(e) => (Err(e), None),
    };
    match from_store {
        Ok((loaded, snap)) => {
            if let Err(e) = &file {
                tracing::warn!(error = %crate::chain(e), "ignoring the snapshot file; it will be overwritten");
            }
            let bytes = encode(snap.revision, &snap.documents);
            Ok((loaded, snap.revision, store, bytes))
        }
        Err(store_error) => match file {
            Ok(Some(file)) => {
                let loaded = assembler.prepare(&file.documents).map_err(|errors| {
                    anyhow!(
                        "{store_error:#}\nand the snapshot file {path} (revision {}) does not load:\n  {}",
                        file.revision,
                        errors.join("\n  ")
                    )
                })?;
                tracing::warn!(
                    error = format!("{store_error:#}"),
                    snapshot_file = %path,
                    revision = file.revision,
                    "starting from the snapshot file; retrying the store in the background"
                );
                Ok((loaded, file.revision, store, None))
            }
            Ok(None) => Err(anyhow!(
                "{store_error:#}\nand there is no snapshot file at {path} to start from"
            )),
            Err(file_error) => Err(anyhow!(
                "{store_error:#}\nand {}",
                crate::chain(&file_error)
            )),
        },
    }
}

fn encode(revision: u64, documents: &[Document]) -> Option<Vec<u8>> {
    #[derive(Serialize)]
    struct Out<'a> {
        format: u32,
        revision: u64,
        documents: &'a [Document],
    }
    match serde_json::to_vec(&Out {
        format: SNAPSHOT_FORMAT,
        revision,
        documents,
    }) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the snapshot file");
            None
        }
    }
}

async fn serve_admin(
    listener: tokio::net::TcpListener,
    state: gatehouse_admin::AppState,
    mut stop: watch::Receiver<bool>,
) {
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = gatehouse_admin::serve_with(listener, state, shutdown).await {
        tracing::error!(error = %e, "admin API stopped");
    }
}

/// Keeps the gateway on the store's latest good snapshot.
struct Follower {
    assembler: Assembler,
    shared: Arc<Shared>,
    snapshot_file: PathBuf,
    /// The revision last tried (loaded or rejected).
    served: Option<u64>,
}

impl Follower {
    async fn save(&self, bytes: Vec<u8>) {
        let path = self.snapshot_file.clone();
        let written = tokio::task::spawn_blocking(move || write_private_file(&path, &bytes)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, file = %self.snapshot_file.display(), "cannot write the snapshot file")
            }
            Err(e) => tracing::error!(error = %e, "snapshot file writer failed"),
        }
    }

    /// Loads the store's snapshot if its revision differs from the one
    /// tried last (or always, with `force`).
    async fn sync(&mut self, store: &dyn Store, force: bool) {
        if !force {
            match store.revision().await {
                Ok(r) if Some(r) == self.served => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %crate::chain(&e), "cannot read the store revision; still serving the last good config");
                    return;
                }
            }
        }
        let snap = match store.snapshot().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %crate::chain(&e), "cannot read the store; still serving the last good config");
                return;
            }
        };
        if !force && Some(snap.revision) == self.served {
            return;
        }
        self.served = Some(snap.revision);
        // Assembling and validating a big store takes milliseconds of CPU
        // (and writes certificate files): off the threads serving traffic.
        let assembler = self.assembler.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let loaded = assembler.validate(&snap.documents);
            (loaded, snap)
        })
        .await;
        let (loaded, snap) = match checked {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "the store config check failed; still serving the last good one");
                return;
            }
        };
        let loaded = match loaded {
            Ok(l) => l,
            Err(errors) => {
                tracing::error!(
                    revision = snap.revision,
                    errors = %errors.join("; "),
                    "store config rejected; still serving the last good one"
                );
                return;
            }
        };
        match self.shared.reload(&loaded).await {
            Ok(version) => {
                tracing::info!(
                    revision = snap.revision,
                    version,
                    "config reloaded from the store"
                );
                if let Some(bytes) = encode(snap.revision, &snap.documents) {
                    self.save(bytes).await;
                }
            }
            Err(errors) => {
                let errors: Vec<String> = errors
                    .0
                    .iter()
                    .map(|e| gatehouse_control::describe(e, Some(&loaded.config)))
                    .collect();
                tracing::error!(
                    revision = snap.revision,
                    errors = %errors.join("; "),
                    "store config rejected; still serving the last good one"
                );
            }
        }
    }

    async fn follow(
        mut self,
        url: String,
        store: Option<Arc<dyn Store>>,
        resync: Duration,
        hup: Arc<Notify>,
        mut admin: Option<(tokio::net::TcpListener, watch::Receiver<bool>, Config)>,
    ) {
        let store = match store {
            Some(s) => s,
            None => {
                let mut delay = RETRY_FIRST;
                loop {
                    tokio::time::sleep(delay).await;
                    match open_store(&url, &self.assembler.settings).await {
                        Ok(s) => {
                            tracing::info!("the store is reachable again; resyncing");
                            break s;
                        }
                        Err(e) => {
                            tracing::warn!(error = format!("{e:#}"), retry_in = ?delay, "store still unreachable; serving the snapshot file's config");
                            delay = (delay * 2).min(RETRY_MAX);
                        }
                    }
                }
            }
        };
        if let Some((listener, stop, settings)) = admin.take() {
            tracing::info!(listen = ?listener.local_addr().ok(), "admin API listening");
            let state = crate::admin::state(
                Arc::clone(&store),
                &settings,
                self.assembler.registry.clone(),
            );
            tokio::spawn(serve_admin(listener, state, stop));
        }
        let mut changes = store.subscribe();
        self.sync(store.as_ref(), false).await;
        let mut resync_tick = tokio::time::interval(resync.max(Duration::from_millis(100)));
        resync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let poll = store.backend() == "sqlite";
        let mut poll_tick = tokio::time::interval(SQLITE_POLL);
        poll_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                revision = changes.next() => {
                    if revision.is_none() {
                        // The store was dropped; cannot happen while we
                        // hold it, but do not spin.
                        std::future::pending::<()>().await;
                    }
                    self.sync(store.as_ref(), false).await;
                }
                _ = resync_tick.tick() => self.sync(store.as_ref(), false).await,
                _ = poll_tick.tick(), if poll => self.sync(store.as_ref(), false).await,
                () = hup.notified() => self.sync(store.as_ref(), true).await,
            }
        }
    }
}
