//! Serving the admin API: hyper's HTTP/1.1 connection builder over the axum
//! router, with a header-read timeout that is also the keep-alive idle
//! limit, and a connection cap of its own, so that the admin listener
//! cannot hold unbounded descriptors (in role `both` they are the proxy's
//! too). axum's own `serve` has neither.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// The admin server's connection limits. Fixed defaults (see
/// [`ServeLimits::default`]); embedding programs and tests may pass
/// their own to [`crate::serve_with_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// How long a connection may take to send a request head, counted from
    /// when the server starts waiting for it: on a new connection, and
    /// between requests on a keep-alive connection (so it is also the idle
    /// timeout: the admin API speaks HTTP/1.1 only, where "no request in
    /// flight" is exactly "waiting for the next head"). Default 10 s.
    pub header_read_timeout: Duration,
    /// Most connections open at once; the next one is closed as soon as it
    /// is accepted. Default 256, separate from (and small next to) the
    /// proxy's `server.max_connections`.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

/// How often a refusal at the cap is logged at warn level.
const REFUSAL_WARN_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` under `limits` until `shutdown` resolves,
/// then lets open connections finish their requests.
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    let tracker = TaskTracker::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut last_warn: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if open.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
                        open.fetch_sub(1, Ordering::AcqRel);
                        drop(stream);
                        if last_warn.is_none_or(|t| t.elapsed() >= REFUSAL_WARN_EVERY) {
                            last_warn = Some(Instant::now());
                            tracing::warn!(%peer, max = limits.max_connections, "admin API connection refused at its cap (further refusals for 10 s are logged at debug level)");
                        } else {
                            tracing::debug!(%peer, "admin API connection refused at its cap");
                        }
                        continue;
                    }
                    let slot = Slot(open.clone());
                    tracker.spawn(connection(stream, peer, router.clone(), limits, stop_rx.clone(), slot));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off
                    // briefly instead of spinning.
                    tracing::warn!(error = %e, "admin API accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// A connection's place under the cap, given back when it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ServeLimits,
    mut stop: watch::Receiver<bool>,
    _slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let service = TowerToHyperService::new(router);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut draining = *stop.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "admin API connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
