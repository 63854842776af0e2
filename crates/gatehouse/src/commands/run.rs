//! `gatehouse run`: serve a configuration file (or the embedded demo
//! configuration), or with `--store` the control-plane store's
//! configuration as a node of a cluster (`crate::node`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::node::{NodeOptions, Role};

/// `gatehouse run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Configuration file (YAML). Without it, the embedded demo
    /// configuration is served. With `--store`, it may only hold node
    /// settings (`server`, `listeners`); without it a store-backed node
    /// listens where the demo configuration does (127.0.0.1:8080).
    #[arg(short, long, env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve the configuration of this control-plane store
    /// (`postgres://user@host:port/db` or `sqlite:///path.db`) and
    /// follow its changes (see docs/cluster.md).
    #[arg(long, env = "GATEHOUSE_STORE")]
    pub store: Option<String>,
    /// With `--store`: the proxy and the admin API (`both`), the proxy
    /// only (`data-plane`) or the admin API only (`control-plane`).
    #[arg(long, value_enum, default_value_t = Role::Both, requires = "store")]
    pub role: Role,
    /// With `--store`: where the admin API listens (roles `both` and
    /// `control-plane`).
    #[arg(long, default_value = "127.0.0.1:8001", requires = "store")]
    pub admin_listen: SocketAddr,
    /// With `--store`, required for roles `both` and `data-plane`: the
    /// node's own data directory (the snapshot file it starts from when
    /// the store is down, and the store's certificates). There is no
    /// default: give every node its own, on persistent disk.
    #[arg(long, env = "GATEHOUSE_DATA_DIR", requires = "store")]
    pub data_dir: Option<PathBuf>,
    /// With `--store`: the last good store snapshot, written after
    /// every successful load and read at start when the store is
    /// unreachable. Default: `<data dir>/snapshot.json`.
    #[arg(long, requires = "store")]
    pub snapshot_file: Option<PathBuf>,
    /// With `--store`: how often the store's revision is compared with
    /// the one served (a safety net for missed notifications).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, requires = "store")]
    pub resync_interval: Duration,
}

/// Runs the gateway until SIGTERM/SIGINT.
pub fn exec(args: RunArgs) -> anyhow::Result<ExitCode> {
    let RunArgs {
        config,
        store,
        role,
        admin_listen,
        data_dir,
        snapshot_file,
        resync_interval,
    } = args;
    let Some(store) = store else {
        return run_file(config);
    };
    let data_dir = match (data_dir, role) {
        (Some(dir), _) => dir,
        // A control-plane node writes nothing locally.
        (None, Role::ControlPlane) => PathBuf::new(),
        (None, _) => bail!(
            "--data-dir (or GATEHOUSE_DATA_DIR) is required with --store: the node keeps the last good snapshot of the store there, to start from when the store is down, and the store's certificates (see docs/cluster.md)"
        ),
    };
    crate::node::run(NodeOptions {
        store,
        config,
        role,
        admin_listen,
        snapshot_file: snapshot_file.unwrap_or_else(|| data_dir.join("snapshot.json")),
        certs_dir: data_dir.join("certs"),
        resync_interval,
        registry: gatehouse_plugins::registry(),
    })
}

/// Serves a file (or the demo configuration), reloading on SIGHUP and on
/// file changes.
fn run_file(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    // Fingerprint the file before reading it: if it changes in between, the
    // watcher sees a difference and reloads once more (harmless), instead
    // of missing a change made right after start.
    let fingerprint = config.as_deref().and_then(crate::reload::fingerprint);
    let loaded = match &config {
        Some(path) => crate::load_and_check(path)?,
        None => gatehouse_config::parse_str(crate::DEMO_CONFIG, "<embedded demo config>")
            .and_then(|l| gatehouse_proxy::check(&l, &gatehouse_plugins::registry()).map(|()| l))?,
    };
    let rt =
        crate::runtime(loaded.config.server.worker_threads).context("cannot start the runtime")?;
    rt.block_on(async move {
        let signals =
            crate::reload::Signals::install().context("cannot install signal handlers")?;
        let gateway =
            gatehouse_proxy::Gateway::start(&loaded, gatehouse_plugins::registry()).await?;
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            config = config
                .as_ref()
                .map_or("<embedded demo config>".to_string(), |p| p
                    .display()
                    .to_string()),
            "gatehouse started"
        );
        Ok(crate::reload::serve_until_signal(gateway, signals, config, fingerprint, &loaded).await)
    })
}
