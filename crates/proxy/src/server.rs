//! Listeners and connections: binds the configured addresses, serves
//! HTTP/1.1 and h2c on each connection with hyper-util's auto builder,
//! and drains gracefully on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::framing::FramingGuard;
use crate::handler::{ConnInfo, handle};
use crate::state::Shared;

/// Binds a listening socket with SO_REUSEADDR and a deep backlog.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections until `stop` flips to true.
pub async fn accept_loop(
    listener: TcpListener,
    http2: bool,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    mut stop: watch::Receiver<bool>,
) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let conn = Arc::new(ConnInfo::new(peer, port));
                    tracker.spawn(serve_connection(stream, conn, http2, shared.clone(), stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly
                    // instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    conn: Arc<ConnInfo>,
    http2: bool,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let snap = shared.snapshot();
    let s = &snap.settings;
    // hyper's own limits sit above ours so that ordinary overruns get our
    // problem+json 431; only grossly oversized heads hit hyper's bare one.
    let max_headers = s.max_header_count.saturating_mul(2).max(100);
    let max_buf = (s.max_header_bytes.saturating_mul(2) + 16 * 1024).max(400 * 1024);
    let header_read_timeout = s.header_read_timeout;
    let h2_header_list = u32::try_from(s.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX);
    drop(snap);

    let first_request = Arc::new(AtomicBool::new(false));
    let seen = first_request.clone();
    let peer = conn.peer;
    let service = hyper::service::service_fn(move |req| {
        seen.store(true, Ordering::Relaxed);
        handle(shared.clone(), conn.clone(), req)
    });
    let io = TokioIo::new(FramingGuard::new(stream, peer));
    let watch = Watch {
        peer,
        stop,
        first_request,
        header_read_timeout,
    };

    if http2 {
        // HTTP/1.1 and h2c (prior knowledge) on one port.
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .max_headers(max_headers)
            .max_buf_size(max_buf);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(h2_header_list)
            .max_concurrent_streams(512)
            .keep_alive_interval(Some(Duration::from_secs(30)));
        let connection = builder.serve_connection_with_upgrades(io, service);
        watch.drive(connection, |c| c.graceful_shutdown()).await;
    } else {
        // HTTP/1.1 only. hyper-util's auto builder ignores `http1_only`
        // when serving with upgrades, so use hyper's HTTP/1 builder.
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .max_headers(max_headers)
            .max_buf_size(max_buf);
        let connection = builder.serve_connection(io, service).with_upgrades();
        watch.drive(connection, |c| c.graceful_shutdown()).await;
    }
}

/// Drives one connection to its end: drains it on shutdown, and closes it
/// if no request arrived within `header_read_timeout`.
struct Watch {
    peer: std::net::SocketAddr,
    stop: watch::Receiver<bool>,
    first_request: Arc<AtomicBool>,
    header_read_timeout: Duration,
}

impl Watch {
    async fn drive<C, E>(mut self, connection: C, graceful: fn(Pin<&mut C>))
    where
        C: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let peer = self.peer;
        tokio::pin!(connection);
        if *self.stop.borrow() {
            graceful(connection.as_mut());
        }
        // hyper-util's auto builder first reads the connection preface to
        // tell HTTP/1 from h2c, with no timeout of its own, and hyper's
        // header timer only starts after that. Until the first request
        // arrives, the connection gets `header_read_timeout` in total; after
        // that hyper's own timer (HTTP/1) and keep-alive pings (h2) take over.
        let first_deadline = tokio::time::sleep(self.header_read_timeout);
        tokio::pin!(first_deadline);
        let mut waiting_for_first = true;
        let mut draining = false;
        loop {
            tokio::select! {
                res = connection.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                changed = self.stop.changed(), if !draining => {
                    draining = true;
                    if changed.is_ok() {
                        graceful(connection.as_mut());
                    }
                }
                () = &mut first_deadline, if waiting_for_first => {
                    waiting_for_first = false;
                    if !self.first_request.load(Ordering::Relaxed) {
                        tracing::debug!(peer = %peer, "closing a connection that sent no request in time");
                        return;
                    }
                }
            }
        }
    }
}
