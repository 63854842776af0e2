//! The gateway's own pool of HTTP/1.1 connections to plain `http://`
//! upstreams, used instead of hyper-util's pooled client on the hot path.
//!
//! Why not hyper-util's: its pool keys connections by (scheme, authority)
//! hashed with SipHash on every checkout and every return, and after each
//! response it spawns a task that waits for the connection to become ready
//! before putting it back. Profiles put the two at about 9,400 instructions
//! per proxied request (bench/README.md). Here:
//! - idle connections are kept per target in a map hashed with foldhash
//!   over the authority string (one short write, not a byte at a time);
//! - a connection goes back to the pool when the response body that came
//!   over it ends (or is dropped after its end), from whatever task that
//!   happens in; nothing is spawned per request;
//! - the next user waits for [`SendRequest::ready`] before sending, so a
//!   connection returned a moment before hyper's dispatcher is idle again
//!   costs a wait, never a failure.
//!
//! Each connection is still driven by a task of its own (hyper's
//! [`Connection`](hyper::client::conn::http1::Connection)), spawned once
//! when it is made. Driving it from the requesting task instead (polling
//! the connection beside the response future, then from the response
//! body) was tried and measured worse: 46,043 -> 49,745 instructions per
//! request, because each upstream read then wakes and re-polls the whole
//! client connection (hyper's server dispatcher and the connection watch),
//! four times per request, where a connection task of its own is polled
//! three times at a fraction of the cost (ARCHITECTURE.md, decisions).
//!
//! Upgraded connections (`101`) are never returned.
//!
//! Correctness rules kept from hyper-util: a request that was never
//! written (the pooled connection turned out closed) is sent again on
//! another connection, never reported as a failure; requests go out in
//! origin form (`/path?query`), the Host header being the gateway's.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_core::Body;
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a request on a pooled connection failed.
#[derive(Debug)]
pub enum PoolError {
    /// No connection could be made (refused, unreachable, DNS, timeout).
    Connect(io::Error),
    /// The connection failed after the request was handed to it.
    Send(hyper::Error),
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Send(e) => write!(f, "request: {e}"),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) => Some(e),
            Self::Send(e) => Some(e),
        }
    }
}

/// A failed request, and the request itself when it never left.
#[derive(Debug)]
pub struct Unsent {
    /// What went wrong.
    pub error: PoolError,
    /// The request as it was given, when no byte of it was written.
    pub request: Option<Request<Body>>,
}

impl Unsent {
    fn back(error: PoolError, request: Request<Body>) -> Self {
        Self {
            error,
            request: Some(request),
        }
    }
}

/// The pool's settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// TCP connect timeout, over all addresses of a name.
    pub connect_timeout: Duration,
    /// Idle connections kept per target; more are closed when they free up.
    pub max_idle_per_host: usize,
    /// Idle connections older than this are closed.
    pub idle_timeout: Duration,
}

/// A pool of HTTP/1.1 connections to plain upstreams. Cloning is cheap.
#[derive(Clone)]
pub struct Http1Pool {
    inner: Arc<Inner>,
}

struct Inner {
    config: PoolConfig,
    idle: Mutex<HashMap<Box<str>, Vec<Idle>, foldhash::fast::RandomState>>,
    reaper: AtomicBool,
}

struct Idle {
    tx: SendRequest<Body>,
    since: Instant,
}

impl Http1Pool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                idle: Mutex::new(HashMap::default()),
                reaper: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `req`, whose URI is absolute (`http://target/path`), over an
    /// idle connection to its target or a new one. When no connection could
    /// be made the request comes back untouched with the error: it never
    /// left, and may be sent elsewhere as it is.
    pub async fn request(&self, req: Request<Body>) -> Result<Response<Body>, Unsent> {
        let Some(authority) = req.uri().authority().cloned() else {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "request URI names no target");
            return Err(Unsent::back(PoolError::Connect(e), req));
        };
        let mut req = req;
        loop {
            let (mut tx, reused) = match self.checkout(authority.as_str()).await {
                Some(tx) => (tx, true),
                None => match self.connect(&authority).await {
                    Ok(tx) => (tx, false),
                    Err(e) => return Err(Unsent::back(e, req)),
                },
            };
            let absolute = std::mem::replace(req.uri_mut(), Uri::from_static("/"));
            *req.uri_mut() = origin_form(&absolute);
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.wrap(resp, tx, &authority)),
                Err(mut e) => match e.take_message() {
                    // Never written: a pooled connection that closed just
                    // now. A fresh connection that fails like this is a
                    // failure of its own, not a reason to loop.
                    Some(mut back) if reused => {
                        *back.uri_mut() = absolute;
                        req = back;
                    }
                    _ => {
                        return Err(Unsent {
                            error: PoolError::Send(e.into_error()),
                            request: None,
                        });
                    }
                },
            }
        }
    }

    /// The most recently used idle connection to `key` that is still open
    /// and ready.
    async fn checkout(&self, key: &str) -> Option<SendRequest<Body>> {
        loop {
            let mut tx = {
                let mut idle = self.inner.lock();
                let list = idle.get_mut(key)?;
                let found = list.pop()?;
                if found.since.elapsed() >= self.inner.config.idle_timeout {
                    // The rest are older still.
                    list.clear();
                    return None;
                }
                found.tx
            };
            if tx.is_closed() {
                continue;
            }
            // Returned at the end of its last body, the dispatcher may be a
            // moment from idle; a closed one answers with an error.
            if tx.ready().await.is_ok() {
                return Some(tx);
            }
        }
    }

    async fn connect(&self, authority: &Authority) -> Result<SendRequest<Body>, PoolError> {
        let timeout = self.inner.config.connect_timeout;
        let stream = match tokio::time::timeout(timeout, tcp_connect(authority)).await {
            Ok(r) => r.map_err(PoolError::Connect)?,
            Err(_) => {
                return Err(PoolError::Connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {authority} timed out after {timeout:?}"),
                )));
            }
        };
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(PoolError::Send)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }

    fn wrap(
        &self,
        resp: Response<Incoming>,
        tx: SendRequest<Body>,
        authority: &Authority,
    ) -> Response<Body> {
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // The connection now carries another protocol: never pooled.
            return resp.map(gatehouse_core::body::boxed);
        }
        let back = Return {
            pool: Arc::downgrade(&self.inner),
            key: authority.as_str().into(),
            tx,
        };
        resp.map(|inner| {
            gatehouse_core::body::boxed(PooledBody {
                inner,
                done: false,
                back: Some(back),
            })
        })
    }

    /// Idle connections to `key` right now (tests).
    #[cfg(test)]
    fn idle_count(&self, key: &str) -> usize {
        self.inner.lock().get(key).map_or(0, Vec::len)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Vec<Idle>, foldhash::fast::RandomState>> {
        match self.idle.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn put(self: &Arc<Self>, key: Box<str>, tx: SendRequest<Body>) {
        if tx.is_closed() {
            return;
        }
        {
            let mut idle = self.lock();
            let list = idle.entry(key).or_default();
            if list.len() >= self.config.max_idle_per_host {
                return;
            }
            list.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
        if !self.reaper.load(Ordering::Relaxed) && !self.reaper.swap(true, Ordering::Relaxed) {
            spawn_reaper(Arc::downgrade(self), self.config.idle_timeout);
        }
    }
}

/// Every `every` (at most every 5 s), until the pool is gone: closes idle
/// connections past the idle timeout and lets go of ones the upstream
/// closed.
fn spawn_reaper(pool: Weak<Inner>, every: Duration) {
    let every = every.clamp(Duration::from_millis(100), Duration::from_secs(5));
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = pool.upgrade() else { return };
            let max_age = inner.config.idle_timeout;
            let mut idle = inner.lock();
            idle.retain(|_, list| {
                list.retain(|c| !c.tx.is_closed() && c.since.elapsed() < max_age);
                !list.is_empty()
            });
        }
    });
}

/// `http://host/p?q` as `/p?q`: what goes on the request line to an
/// origin server.
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(pq) if pq.as_str() != "/" => Uri::from(pq.clone()),
        _ => Uri::from(PathAndQuery::from_static("/")),
    }
}

async fn tcp_connect(authority: &Authority) -> io::Result<TcpStream> {
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(80);
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let stream = match literal.parse::<IpAddr>() {
        Ok(ip) => TcpStream::connect(SocketAddr::new(ip, port)).await?,
        Err(_) => {
            let mut last = None;
            let mut found = None;
            for addr in tokio::net::lookup_host((literal, port)).await? {
                match TcpStream::connect(addr).await {
                    Ok(s) => {
                        found = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            match (found, last) {
                (Some(s), _) => s,
                (None, Some(e)) => return Err(e),
                (None, None) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{literal} has no address"),
                    ));
                }
            }
        }
    };
    stream.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
    socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
    Ok(stream)
}

/// The way back to the pool for one connection.
struct Return {
    pool: Weak<Inner>,
    key: Box<str>,
    tx: SendRequest<Body>,
}

impl Return {
    fn give_back(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(self.key, self.tx);
        }
    }
}

/// A response body that returns its connection to the pool once it has
/// been read to the end. Dropped before its end, the connection is closed
/// (hyper cannot reuse a connection with unread response bytes).
struct PooledBody {
    inner: Incoming,
    done: bool,
    back: Option<Return>,
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => {
                this.finish();
            }
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl PooledBody {
    fn finish(&mut self) {
        self.done = true;
        if let Some(back) = self.back.take() {
            back.give_back();
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body with nothing to read (HEAD, 204, 304, Content-Length: 0)
        // may never be polled.
        if self.done || self.inner.is_end_stream() {
            self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn pool(max_idle: usize, idle: Duration) -> Http1Pool {
        Http1Pool::new(PoolConfig {
            connect_timeout: Duration::from_secs(2),
            max_idle_per_host: max_idle,
            idle_timeout: idle,
        })
    }

    type Conns = Arc<std::sync::atomic::AtomicUsize>;

    /// An upstream that answers the `n`th request head of a connection with
    /// `reply(n, request line)` (raw bytes; request bodies are not read),
    /// and counts the connections it accepted.
    async fn serve_heads(
        reply: impl Fn(usize, &str) -> Vec<u8> + Send + Sync + 'static,
    ) -> (SocketAddr, Conns) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Conns::default();
        let counted = conns.clone();
        let reply = Arc::new(reply);
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut seen = Vec::new();
                    let mut next = 0;
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&seen[..end]).to_string();
                            seen.drain(..end + 4);
                            let line = head.lines().next().unwrap_or("");
                            let bytes = reply(next, line);
                            next += 1;
                            if s.write_all(&bytes).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, conns)
    }

    /// Answers every request with `body`, echoing its request line in
    /// `x-line`.
    async fn upstream(body: &'static str) -> (SocketAddr, Conns) {
        serve_heads(move |_, line| {
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-line: {line}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
        .await
    }

    /// Answers the requests of a connection with `replies` in turn
    /// (cycling).
    async fn scripted(replies: Vec<&'static [u8]>) -> (SocketAddr, Conns) {
        serve_heads(move |n, _| replies[n % replies.len()].to_vec()).await
    }

    fn get(addr: SocketAddr, path: &str) -> Request<Body> {
        Request::builder()
            .uri(format!("http://{addr}{path}"))
            .header("host", "example")
            .body(gatehouse_core::body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_body_was_read() {
        let (addr, conns) = upstream("hello").await;
        let p = pool(8, Duration::from_secs(60));
        for _ in 0..5 {
            let resp = p.request(get(addr, "/a?b=c")).await.unwrap();
            assert_eq!(resp.headers()["x-line"], "GET /a?b=c HTTP/1.1");
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"hello");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
        assert_eq!(p.idle_count(&addr.to_string()), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_unread_closes_its_connection() {
        let (addr, conns) = upstream("hello").await;
        let p = pool(8, Duration::from_secs(60));
        let resp = p.request(get(addr, "/")).await.unwrap();
        assert_eq!(resp.headers()["x-line"], "GET / HTTP/1.1");
        drop(resp);
        assert_eq!(p.idle_count(&addr.to_string()), 0);
        let resp = p.request(get(addr, "/")).await.unwrap();
        resp.into_body().collect().await.unwrap();
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_requests_get_their_own_connections_and_the_idle_cap_holds() {
        let (addr, conns) = upstream("x").await;
        let p = pool(2, Duration::from_secs(60));
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(p.request(get(addr, "/")).await.unwrap());
        }
        assert_eq!(conns.load(Ordering::SeqCst), 4);
        for resp in held {
            resp.into_body().collect().await.unwrap();
        }
        assert_eq!(p.idle_count(&addr.to_string()), 2);
    }

    #[tokio::test]
    async fn idle_connections_expire() {
        let (addr, conns) = upstream("x").await;
        let p = pool(8, Duration::from_millis(150));
        p.request(get(addr, "/"))
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap();
        assert_eq!(p.idle_count(&addr.to_string()), 1);
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(p.idle_count(&addr.to_string()), 0, "the reaper closed it");
        p.request(get(addr, "/"))
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap();
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_pooled_connection_the_upstream_closed_is_not_a_failure() {
        // An upstream that answers one request per connection, then closes
        // without saying so.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    let _ = s.shutdown().await;
                });
            }
        });
        let p = pool(8, Duration::from_secs(60));
        for _ in 0..5 {
            let resp = p.request(get(addr, "/")).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.into_body().collect().await.unwrap();
            // Let the close arrive, so the next checkout sees it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn connect_failures_are_connect_errors() {
        // A port nothing listens on.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let p = pool(8, Duration::from_secs(60));
        match p.request(get(addr, "/x?y")).await {
            Err(Unsent {
                error: PoolError::Connect(e),
                request: Some(back),
            }) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                // Untouched, so it can be sent to another target.
                assert_eq!(back.uri().to_string(), format!("http://{addr}/x?y"));
                assert_eq!(back.headers()["host"], "example");
            }
            other => panic!("expected a connect error with the request, got {other:?}"),
        }
    }

    /// Every way a response can end leaves its connection reusable: the
    /// body read to its end, or never polled because there is nothing to
    /// read.
    #[tokio::test]
    async fn every_kind_of_response_end_gives_the_connection_back() {
        let cases: [(&str, &[u8], &[u8], bool); 5] = [
            ("content-length", b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc", b"abc", true),
            ("chunked", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", b"abcde", true),
            ("empty, read", b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", b"", true),
            ("empty, never polled", b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", b"", false),
            ("204, never polled", b"HTTP/1.1 204 No Content\r\n\r\n", b"", false),
        ];
        for (name, reply, want, read) in cases {
            let (addr, conns) = scripted(vec![reply]).await;
            let p = pool(8, Duration::from_secs(60));
            for i in 0..4 {
                let resp = p.request(get(addr, "/")).await.unwrap();
                if read {
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    assert_eq!(&body[..], want, "{name} #{i}");
                } else {
                    drop(resp);
                }
            }
            assert_eq!(
                conns.load(Ordering::SeqCst),
                1,
                "{name}: one connection for all"
            );
        }
    }

    /// A body much larger than one read arrives whole, and only then does
    /// its connection go back to the pool.
    #[tokio::test]
    async fn a_large_body_is_read_through_and_its_connection_reused() {
        const LEN: usize = 3 * 1024 * 1024;
        let reply: &'static [u8] = {
            let mut r = format!("HTTP/1.1 200 OK\r\ncontent-length: {LEN}\r\n\r\n").into_bytes();
            r.extend((0..LEN).map(|i| (i % 251) as u8));
            Box::leak(r.into_boxed_slice())
        };
        let (addr, conns) = scripted(vec![reply]).await;
        let p = pool(8, Duration::from_secs(60));
        for _ in 0..2 {
            let resp = p.request(get(addr, "/")).await.unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body.len(), LEN);
            assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    /// An idle connection the upstream closes is let go by the reaper,
    /// with no request needed to notice.
    #[tokio::test]
    async fn the_reaper_lets_go_of_connections_the_upstream_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            let _ = close_rx.await;
            drop(s);
        });
        // Idle timeout 200 ms: the reaper looks every 200 ms.
        let p = pool(8, Duration::from_millis(200));
        p.request(get(addr, "/"))
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap();
        assert_eq!(p.idle_count(&addr.to_string()), 1);
        close_tx.send(()).unwrap();
        // Well within the idle timeout, but after one reaper pass.
        for _ in 0..50 {
            if p.idle_count(&addr.to_string()) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the closed connection is still pooled");
    }

    #[test]
    fn origin_form_keeps_path_and_query_only() {
        let cases = [
            ("http://a:1/x/y?z=1", "/x/y?z=1"),
            ("http://a:1/", "/"),
            ("http://a:1", "/"),
            ("http://a:1/%2e%2e/admin", "/%2e%2e/admin"),
        ];
        for (input, want) in cases {
            let uri: Uri = input.parse().unwrap();
            assert_eq!(origin_form(&uri).to_string(), want, "{input}");
        }
    }
}
