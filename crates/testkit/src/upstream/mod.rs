//! [`Upstream`]: a small real HTTP server whose behaviour a test picks with
//! [`UpstreamBuilder`], and which records what it received.

mod respond;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::body::BoxBody;
use crate::server::{ServerGuard, Shutdown, ShutdownExec, bind_loopback};

/// Which HTTP versions the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1, and HTTP/2 with prior knowledge (h2c), detected per
    /// connection from the preface.
    #[default]
    Auto,
    /// HTTP/1.x only: an h2c preface is a malformed request.
    Http1Only,
    /// HTTP/2 (h2c prior knowledge) only: an HTTP/1 request is a protocol error.
    Http2Only,
}

type Handler =
    Arc<dyn Fn(Request<Incoming>) -> BoxFuture<'static, Response<BoxBody>> + Send + Sync>;

/// What the server does with each request.
#[derive(Clone)]
pub(crate) enum Behaviour {
    Echo,
    Fixed(Bytes),
    ResetMidBody { chunked: bool },
    NeverRespond,
    Sse { events: usize, interval: Duration },
    Large(u64),
    GrpcLike,
    WebSocketEcho,
    Handler(Handler),
}

/// The builder's settings, shared by every connection.
pub(crate) struct Config {
    pub(crate) name: HeaderValue,
    pub(crate) protocol: Protocol,
    pub(crate) behaviour: Behaviour,
    pub(crate) status: Option<StatusCode>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) delay: Option<Duration>,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
}

/// Configures an [`Upstream`]. Behaviours (`echo`, `body`, `sse`, ...)
/// replace each other: the last one called wins. `status`, `header`, `delay`
/// and `name` combine with any behaviour except where noted.
#[must_use]
pub struct UpstreamBuilder {
    config: Config,
    record: usize,
    bind: Option<SocketAddr>,
}

impl UpstreamBuilder {
    fn new() -> Self {
        Self {
            config: Config {
                name: HeaderValue::from_static("upstream"),
                protocol: Protocol::Auto,
                behaviour: Behaviour::Echo,
                status: None,
                headers: Vec::new(),
                delay: None,
                tls: None,
            },
            record: 32,
            bind: None,
        }
    }

    /// Value of the `x-upstream` header on every response (and `"upstream"`
    /// in the echo JSON). Default: `upstream`.
    pub fn name(mut self, name: &str) -> Self {
        self.config.name =
            HeaderValue::from_str(name).expect("upstream name must be a valid header value");
        self
    }

    /// Which HTTP versions to accept (default [`Protocol::Auto`]).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.config.protocol = protocol;
        self
    }

    /// Accept only HTTP/1.x.
    pub fn http1_only(mut self) -> Self {
        self.config.protocol = Protocol::Http1Only;
        self
    }

    /// Accept only HTTP/2 with prior knowledge (h2c).
    pub fn http2_only(mut self) -> Self {
        self.config.protocol = Protocol::Http2Only;
        self
    }

    /// Default behaviour: 200 with a JSON description of the request
    /// (`upstream`, `method`, `uri`, `path`, `query`, `version`, `headers`,
    /// `body_len`). The request body is drained as it streams and only
    /// counted, so huge uploads use flat memory. Header values that occur
    /// more than once become arrays. A body that fails mid-way adds
    /// `body_error`.
    pub fn echo(mut self) -> Self {
        self.config.behaviour = Behaviour::Echo;
        self
    }

    /// A normalising server (see [`crate::normalize`]): answers 200 with
    /// `served <path>` and header `x-served`, where path is what nginx-
    /// or Tomcat-like servers would serve for the raw path received.
    pub fn normalizing(self) -> Self {
        self.handler(|req| {
            let path = req.uri().path().to_owned();
            async move { crate::normalize::respond(&path) }
        })
    }

    /// Status of every response (default 200). Ignored by `websocket_echo`
    /// upgrades and by `handler`.
    pub fn status(mut self, status: u16) -> Self {
        self.config.status = Some(StatusCode::from_u16(status).expect("status must be 100..=999"));
        self
    }

    /// Adds a response header (repeat for several values). Replaces any
    /// header of the same name that the behaviour sets itself.
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        K::Error: std::fmt::Debug,
        V: TryInto<HeaderValue>,
        V::Error: std::fmt::Debug,
    {
        let name = name.try_into().expect("invalid header name");
        let value = value.try_into().expect("invalid header value");
        self.config.headers.push((name, value));
        self
    }

    /// Responds with this fixed body (the request body is drained first).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.config.behaviour = Behaviour::Fixed(body.into());
        self
    }

    /// Waits this long after receiving the request head before responding.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.config.delay = Some(delay);
        self
    }

    /// Sends the headers with `content-length: 1048576`, 16 KiB of body,
    /// then fails the body: HTTP/1.1 closes the connection, HTTP/2 resets
    /// the stream (`RST_STREAM`, `INTERNAL_ERROR`).
    pub fn reset_mid_body(mut self) -> Self {
        self.config.behaviour = Behaviour::ResetMidBody { chunked: false };
        self
    }

    /// Like [`UpstreamBuilder::reset_mid_body`] but without a declared
    /// length (chunked over HTTP/1.1).
    pub fn reset_mid_body_chunked(mut self) -> Self {
        self.config.behaviour = Behaviour::ResetMidBody { chunked: true };
        self
    }

    /// Reads the whole request, then never responds (until dropped).
    pub fn never_respond(mut self) -> Self {
        self.config.behaviour = Behaviour::NeverRespond;
        self
    }

    /// `content-type: text/event-stream` with `events` events
    /// `data: event N\n\n` (N from 1), the first at once and each next one
    /// `interval` later, each in its own frame; then the body ends.
    pub fn sse(mut self, events: usize, interval: Duration) -> Self {
        self.config.behaviour = Behaviour::Sse { events, interval };
        self
    }

    /// Streams `bytes` zero bytes in 64 KiB frames, with `content-length`.
    pub fn large_response(mut self, bytes: u64) -> Self {
        self.config.behaviour = Behaviour::Large(bytes);
        self
    }

    /// 200 `content-type: application/grpc`, the request body echoed back
    /// frame by frame as it arrives, then trailers `grpc-status: 0`,
    /// `grpc-message: ok` and `x-trailer-echo` (copied from the request
    /// header of that name, if present). The response announces them in a
    /// `trailer` header; over HTTP/1.1 hyper sends them only if the request
    /// carried `te: trailers`.
    pub fn grpc_like(mut self) -> Self {
        self.config.behaviour = Behaviour::GrpcLike;
        self
    }

    /// Accepts HTTP/1.1 `Upgrade: websocket` and echoes every text and
    /// binary message back. Requests that are not upgrades get the echo
    /// JSON.
    pub fn websocket_echo(mut self) -> Self {
        self.config.behaviour = Behaviour::WebSocketEcho;
        self
    }

    /// Custom behaviour: `handler` builds each response. `delay`, `header`
    /// and `name` still apply; `status` does not.
    pub fn handler<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<BoxBody>> + Send + 'static,
    {
        self.config.behaviour = Behaviour::Handler(Arc::new(move |req| Box::pin(handler(req))));
        self
    }

    /// Serve HTTPS with this config (see [`crate::tls::server_config`]):
    /// every connection does a TLS handshake first, then HTTP as
    /// `protocol` says (HTTP/2 when ALPN picked `h2`, with `Auto`).
    /// [`Upstream::url`] then starts with `https://`; failed handshakes
    /// are counted by [`Upstream::tls_failures`].
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.config.tls = Some(config);
        self
    }

    /// How many request heads to keep for [`Upstream::requests`] (default 32).
    pub fn record(mut self, last_n: usize) -> Self {
        self.record = last_n;
        self
    }

    /// Listen on `addr` instead of `127.0.0.1:0`: for example
    /// `127.0.0.2:PORT`, to serve several upstreams on one port behind the
    /// A records of a DNS name (Linux routes all of 127/8 to loopback).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Binds `127.0.0.1:0` (or the [`UpstreamBuilder::bind`] address) and
    /// starts serving; the server accepts connections as soon as this
    /// returns. Must run inside a tokio runtime.
    ///
    /// # Panics
    /// If the listener cannot be bound.
    pub async fn start(self) -> Upstream {
        let at = self.bind;
        self.try_start()
            .await
            .unwrap_or_else(|e| panic!("bind {at:?} (None: 127.0.0.1:0): {e}"))
    }

    /// Like [`UpstreamBuilder::start`], returning the bind error (a chosen
    /// port may be taken).
    pub async fn try_start(self) -> std::io::Result<Upstream> {
        let listener = match self.bind {
            Some(addr) => TcpListener::bind(addr).await?,
            None => bind_loopback().await?,
        };
        let state = Arc::new(State::new(self.record));
        let scheme = if self.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let config = Arc::new(self.config);
        let run_state = state.clone();
        let guard = ServerGuard::spawn(listener, move |listener, stop| {
            accept_loop(listener, stop, config, run_state)
        })?;
        Ok(Upstream {
            guard,
            state,
            scheme,
        })
    }
}

/// The head of a request an [`Upstream`] received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
}

impl RecordedRequest {
    /// The first value of header `name`, if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) struct State {
    hits: AtomicUsize,
    connections: AtomicUsize,
    tls_failures: AtomicUsize,
    record: usize,
    recorded: Mutex<VecDeque<RecordedRequest>>,
    hit: Notify,
}

impl State {
    fn new(record: usize) -> Self {
        Self {
            hits: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            tls_failures: AtomicUsize::new(0),
            record,
            recorded: Mutex::new(VecDeque::new()),
            hit: Notify::new(),
        }
    }

    pub(crate) fn on_request(&self, req: &Request<Incoming>) {
        if self.record > 0 {
            let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
            if recorded.len() == self.record {
                recorded.pop_front();
            }
            recorded.push_back(RecordedRequest {
                method: req.method().clone(),
                uri: req.uri().clone(),
                version: req.version(),
                headers: req.headers().clone(),
            });
        }
        self.hits.fetch_add(1, Ordering::SeqCst);
        self.hit.notify_waiters();
    }
}

/// A running test upstream; dropping it stops the server and closes its
/// connections.
pub struct Upstream {
    guard: ServerGuard,
    state: Arc<State>,
    scheme: &'static str,
}

impl Upstream {
    pub fn builder() -> UpstreamBuilder {
        UpstreamBuilder::new()
    }

    /// An echo upstream with default settings.
    pub async fn echo() -> Self {
        Self::builder().start().await
    }

    pub fn addr(&self) -> SocketAddr {
        self.guard.addr()
    }

    /// `http://IP:PORT` of the listener (`127.0.0.1` unless bound
    /// elsewhere; `https://` with [`UpstreamBuilder::tls`]).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.guard.addr())
    }

    /// [`Upstream::url`] followed by `path_and_query` (which should start
    /// with `/`).
    pub fn uri(&self, path_and_query: &str) -> Uri {
        format!("{}{path_and_query}", self.url())
            .parse()
            .expect("url of a loopback server plus a path is a valid URI")
    }

    /// Requests received so far (counted when the head arrives).
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// TLS handshakes that failed (a TLS upstream only).
    pub fn tls_failures(&self) -> usize {
        self.state.tls_failures.load(Ordering::SeqCst)
    }

    /// The last N request heads (see [`UpstreamBuilder::record`]), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let recorded = self
            .state
            .recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recorded.iter().cloned().collect()
    }

    /// The most recent request head.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        let recorded = self
            .state
            .recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recorded.back().cloned()
    }

    /// Waits until at least `n` requests have arrived or `timeout` passes;
    /// returns whether `n` was reached. For background traffic such as
    /// health checks.
    pub async fn wait_for_hits(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.hit.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.hits() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.hits() >= n;
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    stop: Shutdown,
    config: Arc<Config>,
    state: Arc<State>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "test upstream accept failed");
                continue;
            }
        };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let (config, state, conn_stop) = (config.clone(), state.clone(), stop.clone());
        stop.spawn(async move {
            match config.tls.clone() {
                None => serve(stream, config, state, conn_stop).await,
                Some(tls) => match tokio_rustls::TlsAcceptor::from(tls).accept(stream).await {
                    Ok(stream) => serve(stream, config, state, conn_stop).await,
                    Err(error) => {
                        state.tls_failures.fetch_add(1, Ordering::SeqCst);
                        tracing::debug!(%error, "test upstream TLS handshake failed");
                    }
                },
            }
        });
    }
}

/// Serves HTTP on one accepted (and maybe decrypted) connection.
async fn serve<I>(stream: I, config: Arc<Config>, state: Arc<State>, conn_stop: Shutdown)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let exec = ShutdownExec(conn_stop.clone());
    let svc_config = config.clone();
    let svc = service_fn(move |req| {
        let (config, state, stop) = (svc_config.clone(), state.clone(), conn_stop.clone());
        async move { Ok::<_, Infallible>(respond::respond(&config, &state, &stop, req).await) }
    });
    let result = match config.protocol {
        Protocol::Auto => {
            hyper_util::server::conn::auto::Builder::new(exec)
                .serve_connection_with_upgrades(io, svc)
                .await
        }
        Protocol::Http1Only => hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .with_upgrades()
            .await
            .map_err(Into::into),
        Protocol::Http2Only => hyper::server::conn::http2::Builder::new(exec)
            .serve_connection(io, svc)
            .await
            .map_err(Into::into),
    };
    if let Err(error) = result {
        tracing::debug!(%error, "test upstream connection ended with an error");
    }
}
