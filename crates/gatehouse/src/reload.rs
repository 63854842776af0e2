//! Hot reload and shutdown: SIGHUP or a change of the config file reloads
//! (validate, compile, swap; a bad file is logged and the old config keeps
//! serving); SIGTERM/SIGINT drain and exit 0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use gatehouse_config::Loaded;
use gatehouse_proxy::Gateway;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Reloads `path` into `gateway`, logging the outcome.
pub async fn reload_file(gateway: &Gateway, path: &Path) -> bool {
    let loaded = match gatehouse_config::load_file(path) {
        Ok(l) => l,
        Err(errors) => {
            tracing::error!(errors = %errors, "config rejected; still serving the previous one");
            return false;
        }
    };
    match gateway.reload(&loaded).await {
        Ok(version) => {
            tracing::info!(version, file = %path.display(), "config reloaded");
            true
        }
        Err(errors) => {
            tracing::error!(errors = %errors, "config rejected; still serving the previous one");
            false
        }
    }
}

/// The bytes of the config file, compared to detect changes.
pub fn fingerprint(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// The signals the gateway reacts to. Installed before the listeners are
/// bound, so a SIGHUP that arrives as soon as the gateway is reachable
/// reloads it instead of killing it (the default action).
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers for SIGTERM, SIGINT and SIGHUP.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT, calling `on_hup` for every SIGHUP.
    pub async fn wait_for_stop(&mut self, mut on_hup: impl FnMut()) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => on_hup(),
            }
        }
    }
}

/// Serves until SIGTERM or SIGINT, reloading on SIGHUP and file changes.
pub async fn serve_until_signal(
    gateway: Gateway,
    signals: Signals,
    path: Option<PathBuf>,
    initial: Option<Vec<u8>>,
    loaded: &Loaded,
) -> ExitCode {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    let watch = loaded.config.server.watch && path.is_some();
    let mut tick = tokio::time::interval(
        loaded
            .config
            .server
            .watch_interval
            .max(Duration::from_millis(50)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = initial;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match &path {
                    Some(p) => {
                        last = fingerprint(p);
                        reload_file(&gateway, p).await;
                    }
                    None => tracing::info!("SIGHUP ignored: running the embedded demo config"),
                }
            }
            _ = tick.tick(), if watch => {
                if let Some(p) = &path {
                    let now = fingerprint(p);
                    if now.is_some() && now != last {
                        last = now;
                        reload_file(&gateway, p).await;
                    }
                }
            }
        }
    }
    tracing::info!("shutting down: draining in-flight requests");
    if gateway.shutdown().await {
        tracing::info!("drained; bye");
    } else {
        tracing::warn!("shutdown deadline passed with requests still in flight");
    }
    ExitCode::SUCCESS
}
