//! Listeners and connections: binds the configured addresses, terminates
//! TLS on TLS listeners (handshake under `header_read_timeout`), serves
//! HTTP/1.1 and h2 / h2c on each connection with hyper-util's auto
//! builder, and drains gracefully on shutdown. Plain listeners take the
//! same path as before TLS existed: the stream goes straight to hyper.
//!
//! Limits (docs/security.md, "Connection and request limits"): connections
//! over `max_connections` / `max_connections_per_ip` are closed at accept
//! (`conns.rs`); a connection that sends no request within
//! `header_read_timeout` is closed; one with no request in flight for
//! `idle_timeout` is shut down gracefully (HTTP/2: GOAWAY); an HTTP/2
//! connection has at most `http2_max_concurrent_streams` streams and at most
//! `max_requests_per_connection` of them are served at once.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

use crate::conns::{Conns, Refused, Ticket};
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

/// How often a refusal at the connection caps is logged at warn level (the
/// rest at debug): a flood must not flood the log too.
const REFUSAL_WARN_EVERY: Duration = Duration::from_secs(10);

/// HTTP/2 streams the client reset before they were accepted, held at
/// once (hyper's `max_pending_accept_reset_streams`; CVE-2023-44487
/// "rapid reset": over it the connection is closed with ENHANCE_YOUR_CALM).
const H2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the server may reset because of the client's protocol errors
/// before the connection is closed (hyper's `max_local_error_reset_streams`).
const H2_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;
/// HTTP/2 keep-alive pings: one after this long without a frame from the
/// peer, and the connection is closed when it is not answered in
/// [`H2_KEEP_ALIVE_TIMEOUT`] (reaps dead peers holding streams open).
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Accepts connections until `stop` flips to true.
pub async fn accept_loop(
    listener: TcpListener,
    spec: ListenerSpec,
    shared: Arc<Shared>,
    conns: Arc<Conns>,
    tracker: TaskTracker,
    mut stop: watch::Receiver<bool>,
) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let mut last_warn: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let admitted = {
                        let snap = shared.snapshot();
                        let s = &snap.settings;
                        conns.admit(peer.ip(), s.conn.caps, s.trusted.contains(peer.ip()))
                    };
                    match admitted {
                        Ok(ticket) => {
                            tracker.spawn(serve_connection(stream, peer, port, spec, shared.clone(), ticket, stop.clone()));
                        }
                        Err(why) => {
                            // Closed at once: no task, no buffers. The
                            // client sees a reset or an EOF.
                            drop(stream);
                            let cap = match why {
                                Refused::Total => "max_connections",
                                Refused::PerIp => "max_connections_per_ip",
                            };
                            if last_warn.is_none_or(|t| t.elapsed() >= REFUSAL_WARN_EVERY) {
                                last_warn = Some(Instant::now());
                                tracing::warn!(peer = %peer, cap, open = conns.open(), "connection refused at the cap (further refusals for 10 s are logged at debug level)");
                            } else {
                                tracing::debug!(peer = %peer, cap, "connection refused at the cap");
                            }
                        }
                    }
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
    conn: crate::snapshot::ConnSettings,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    port: u16,
    spec: ListenerSpec,
    shared: Arc<Shared>,
    // The connection's place under the caps; moved into its stream.
    ticket: Ticket,
    stop: watch::Receiver<bool>,
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
        conn: s.conn,
    };
    let tls = snap.listener_tls(spec.index);
    drop(snap);

    let Some(tls) = tls else {
        let conn = Arc::new(ConnInfo::new(peer, port, None).on_listener(spec.index));
        serve_http(
            Held::new(stream, ticket),
            conn,
            spec.http2,
            limits,
            shared,
            stop,
        )
        .await;
        return;
    };
    // Boxed: the TLS handshake and stream hold rustls's connection state,
    // several KB that every plain connection's task would otherwise
    // reserve too (the task is as large as its largest path).
    Box::pin(serve_tls(
        stream, tls, peer, port, spec, shared, ticket, limits, stop,
    ))
    .await;
}

/// Serves a connection of a TLS listener: handshake (under
/// `header_read_timeout`), then HTTP with the protocol ALPN chose.
#[allow(clippy::too_many_arguments)]
async fn serve_tls(
    stream: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    peer: SocketAddr,
    port: u16,
    spec: ListenerSpec,
    shared: Arc<Shared>,
    ticket: Ticket,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
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
    serve_http(Held::new(stream, ticket), conn, http2, limits, shared, stop).await;
}

/// A client stream that carries its connection's [`Ticket`]: the place
/// under the caps is given back when the stream is dropped. After an HTTP/1.1
/// upgrade (WebSocket) hyper hands the stream to the tunnel, so a tunnel
/// keeps counting until it closes.
struct Held<S> {
    inner: S,
    _ticket: Ticket,
}

impl<S> Held<S> {
    fn new(inner: S, ticket: Ticket) -> Self {
        Self {
            inner,
            _ticket: ticket,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What a connection's watcher knows of its requests: how many are in
/// flight (from the request's arrival until its response body has been
/// sent or dropped), whether any arrived, and when the last one ended.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    seen: AtomicUsize,
    /// Nanoseconds after `started` at which the last request ended.
    last_end: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            seen: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.seen.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// When the connection became idle: its start or the last request's
    /// end.
    fn idle_since(&self) -> Instant {
        self.started + Duration::from_nanos(self.last_end.load(Ordering::Acquire))
    }
}

/// One request in flight; dropped when its response body ends (or the
/// request is abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let at = u64::try_from(a.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        a.last_end.fetch_max(at, Ordering::AcqRel);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
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
        conn: conn_limits,
    } = limits;
    let activity = Activity::new();
    let counted = activity.clone();
    // At most `max_requests_per_connection` requests of this connection are
    // served at once; the rest wait on their stream for a slot. The slot and
    // the in-flight mark are held until the response body ends.
    let slots = Arc::new(Semaphore::new(conn_limits.max_requests));
    let peer = conn.peer;
    let switched = conn.switched.clone();
    let service = hyper::service::service_fn(move |req| {
        let in_flight = counted.begin();
        let slots = slots.clone();
        let shared = shared.clone();
        let conn = conn.clone();
        async move {
            // The semaphore is never closed: `ok()` only to avoid a panic path.
            let slot = slots.acquire_owned().await.ok();
            let response = handle(shared, conn, req).await?;
            Ok::<_, std::convert::Infallible>(
                response.map(|body| crate::logbody::hold(body, (in_flight, slot))),
            )
        }
    });
    let io = TokioIo::new(FramingGuard::new(stream, peer, switched));
    let watch = Watch {
        peer,
        stop,
        activity,
        header_read_timeout,
        idle_timeout: conn_limits.idle_timeout,
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
            .max_concurrent_streams(conn_limits.h2_max_streams)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESET_STREAMS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESET_STREAMS)
            .keep_alive_interval(Some(H2_KEEP_ALIVE_INTERVAL))
            .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
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

/// Drives one connection to its end: drains it on shutdown, closes it if
/// no request arrived within `header_read_timeout`, and shuts it down
/// gracefully once it has had no request in flight for `idle_timeout`.
struct Watch {
    peer: std::net::SocketAddr,
    stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
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
        // arrives, the connection gets `header_read_timeout` in total.
        // After that: hyper's header timer between HTTP/1 requests, and the
        // idle timer below for both protocols.
        let first_deadline = tokio::time::sleep(self.header_read_timeout);
        tokio::pin!(first_deadline);
        let idle = tokio::time::sleep(self.idle_timeout);
        tokio::pin!(idle);
        // After an idle shutdown began: when to give up on the graceful
        // close (a peer that never reads the GOAWAY or answers its ping).
        let hard_close = tokio::time::sleep(Duration::MAX);
        tokio::pin!(hard_close);
        let mut waiting_for_first = true;
        let mut draining = false;
        let mut closing = false;
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
                    if self.activity.seen.load(Ordering::Relaxed) == 0 {
                        tracing::debug!(peer = %peer, "closing a connection that sent no request in time");
                        return;
                    }
                }
                () = &mut idle, if !closing && !draining => {
                    let now = tokio::time::Instant::now();
                    if self.activity.in_flight.load(Ordering::Acquire) > 0 {
                        // Busy: look again one full period later.
                        idle.as_mut().reset(now + self.idle_timeout);
                        continue;
                    }
                    let due = tokio::time::Instant::from_std(self.activity.idle_since() + self.idle_timeout);
                    if due > now {
                        idle.as_mut().reset(due);
                        continue;
                    }
                    tracing::debug!(peer = %peer, "closing a connection idle for idle_timeout");
                    closing = true;
                    graceful(connection.as_mut());
                    hard_close.as_mut().reset(now + self.header_read_timeout);
                }
                () = &mut hard_close, if closing => {
                    tracing::debug!(peer = %peer, "idle connection did not close gracefully in time; dropping it");
                    return;
                }
            }
        }
    }
}
