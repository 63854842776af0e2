//! Listeners and connections: binds the configured addresses, terminates
//! TLS on TLS listeners (handshake under `header_read_timeout`), serves
//! HTTP/1.1 and h2 / h2c on each connection with hyper-util's auto
//! builder, and drains gracefully on shutdown. Plain listeners take the
//! same path as before TLS existed: the stream goes straight to hyper.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
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

/// The fixed facts of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenerSpec {
    /// Position in the config's `listeners` (its TLS settings are
    /// looked up by it in each new snapshot).
    pub index: usize,
    /// Serve HTTP/2 besides HTTP/1.1.
    pub http2: bool,
}

/// Accepts connections until `stop` flips to true.
pub async fn accept_loop(
    listener: TcpListener,
    spec: ListenerSpec,
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
                    tracker.spawn(serve_connection(stream, peer, port, spec, shared.clone(), stop.clone()));
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

/// Per-connection limits, read from the snapshot current at accept time.
struct Limits {
    max_headers: usize,
    max_buf: usize,
    header_read_timeout: Duration,
    h2_header_list: u32,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    port: u16,
    spec: ListenerSpec,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let snap = shared.snapshot();
    let s = &snap.settings;
    // hyper's own limits sit above ours so that ordinary overruns get our
    // problem+json 431; only grossly oversized heads hit hyper's bare one.
    let limits = Limits {
        max_headers: s.max_header_count.saturating_mul(2).max(100),
        max_buf: (s.max_header_bytes.saturating_mul(2) + 16 * 1024).max(400 * 1024),
        header_read_timeout: s.header_read_timeout,
        h2_header_list: u32::try_from(s.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
    };
    let tls = snap.listener_tls(spec.index);
    drop(snap);

    let Some(tls) = tls else {
        let conn = Arc::new(ConnInfo::new(peer, port, None).on_listener(spec.index));
        serve_http(stream, conn, spec.http2, limits, shared, stop).await;
        return;
    };
    if *stop.borrow() {
        return;
    }
    // A client that connects and never completes the handshake is closed
    // after `header_read_timeout`; failures are the client's business and
    // only logged at debug level.
    let handshake = tokio::time::timeout(
        limits.header_read_timeout,
        tokio_rustls::TlsAcceptor::from(tls).accept(stream),
    );
    let stream = tokio::select! {
        _ = stop.changed() => return,
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %peer, "TLS handshake timed out");
                return;
            }
        }
    };
    let session = stream.get_ref().1;
    let info = crate::tls::listener::session_info(session);
    // ALPN decides: h2 when the client picked it (the listener offers it
    // only with `http2: true`), else HTTP/1.1.
    let http2 = session.alpn_protocol() == Some(b"h2") || spec.http2;
    let conn = Arc::new(ConnInfo::new(peer, port, Some(info)).on_listener(spec.index));
    serve_http(stream, conn, http2, limits, shared, stop).await;
}

/// Serves HTTP on an accepted (and, on TLS listeners, decrypted) stream.
async fn serve_http<S>(
    stream: S,
    conn: Arc<ConnInfo>,
    http2: bool,
    limits: Limits,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Limits {
        max_headers,
        max_buf,
        header_read_timeout,
        h2_header_list,
    } = limits;
    let first_request = Arc::new(AtomicBool::new(false));
    let seen = first_request.clone();
    let peer = conn.peer;
    let switched = conn.switched.clone();
    let service = hyper::service::service_fn(move |req| {
        seen.store(true, Ordering::Relaxed);
        handle(shared.clone(), conn.clone(), req)
    });
    let io = TokioIo::new(FramingGuard::new(stream, peer, switched));
    let watch = Watch {
        peer,
        stop,
        first_request,
        header_read_timeout,
    };

    if http2 {
        // HTTP/1.1 and h2 (h2c prior knowledge, or h2 chosen by ALPN) on
        // one port: the auto builder reads the connection preface.
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
