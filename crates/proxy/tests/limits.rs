//! Connection and request limits (docs/security.md, "Connection and
//! request limits"), through the real gateway to real upstreams over
//! loopback: idle timeouts for HTTP/1.1 and HTTP/2, the global and
//! per-client-address connection caps, the HTTP/2 stream cap (advertised
//! and enforced, checked with raw frames), the cap on requests one client
//! connection has in flight upstream, the admin API's header-read timeout
//! and connection cap, and a connection-exhaustion run against both.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common {
    pub use gatehouse_proxy::testing::*;
}

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{TestGateway, get};
use gatehouse_testkit::Upstream;
use gatehouse_testkit::raw::Conn;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// One echo-like service and a catch-all route; `server` holds extra lines
/// of the `server:` block, each indented by two spaces.
fn config(up: &Upstream, server: &str) -> String {
    format!(
        "server:\n  shutdown_timeout: 1s\n{server}services:\n  - name: up\n    url: \"{url}\"\nroutes:\n  - name: all\n    service: up\n",
        url = up.url()
    )
}

async fn start(up: &Upstream, server: &str) -> TestGateway {
    TestGateway::start(&config(up, server)).await
}

const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: gw\r\n\r\n";

/// A TCP connection to `to` from the loopback address `from`
/// (127.0.0.0/8 is all loopback on Linux).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
        .await
        .expect("connect timed out")
        .unwrap()
}

/// What became of a connection that sent one request.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A `200` response head arrived.
    Served,
    /// Closed or reset without a byte.
    Refused,
}

/// Sends one HTTP/1.1 request on `s` and tells whether it was answered.
async fn try_request(s: &mut TcpStream) -> Outcome {
    let _ = s.write_all(GET).await;
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout_at(deadline.into(), s.read(&mut chunk))
            .await
            .expect("neither answered nor closed within 5 s");
        match read {
            Ok(0) | Err(_) if buf.is_empty() => return Outcome::Refused,
            Ok(0) | Err(_) => panic!("closed inside a response: {buf:?}"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(
                buf.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&buf)
            );
            return Outcome::Served;
        }
    }
}

/// A new connection from `from` is served once the gateway has noticed a
/// closed one: retried a bounded number of times, since the close reaches
/// the gateway asynchronously.
async fn eventually_served(from: &str, to: SocketAddr) -> TcpStream {
    for _ in 0..100 {
        let mut s = connect_from(from, to).await;
        if try_request(&mut s).await == Outcome::Served {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a connection from {from} was never served again");
}

/// Open file descriptors of this process (gateway and test clients alike).
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

// ---------------------------------------------------------------------------
// Idle timeouts
// ---------------------------------------------------------------------------

/// An h2c connection (prior knowledge) driven in the background; `closed`
/// resolves when the gateway ends it.
struct H2 {
    send: hyper::client::conn::http2::SendRequest<http_body_util::Empty<Bytes>>,
    closed: tokio::task::JoinHandle<()>,
}

impl H2 {
    async fn connect(addr: SocketAddr) -> Self {
        Self::over(TcpStream::connect(addr).await.unwrap()).await
    }

    async fn over(tcp: TcpStream) -> Self {
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        let closed = tokio::spawn(async move {
            let _ = conn.await;
        });
        Self { send, closed }
    }

    /// GETs `path`; returns the status and the body.
    async fn get(&mut self, path: &str) -> (u16, Bytes) {
        let req = http::Request::get(format!("http://gw{path}"))
            .body(http_body_util::Empty::new())
            .unwrap();
        let resp = self.send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    }

    /// Waits up to `wait` for the gateway to end the connection.
    async fn wait_closed(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, &mut self.closed).await.is_ok()
    }
}

const IDLE: &str = "  idle_timeout: 300ms\n  header_read_timeout: 10s\n";

#[tokio::test]
async fn an_idle_h2_connection_is_closed_after_idle_timeout() {
    let up = Upstream::echo().await;
    let gw = start(&up, IDLE).await;
    let mut h2 = H2::connect(gw.addr()).await;
    assert_eq!(h2.get("/one").await.0, 200);
    let idle_from = Instant::now();
    assert!(
        h2.wait_closed(Duration::from_secs(5)).await,
        "an idle h2 connection was still open after 5 s"
    );
    let took = idle_from.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "closed after {took:?}, idle_timeout is 300 ms"
    );
}

/// A stream in flight (an SSE response that lasts four idle timeouts) is
/// never cut; the connection closes once it has been idle afterwards.
#[tokio::test]
async fn an_h2_connection_with_a_slow_stream_in_flight_is_not_closed() {
    let up = Upstream::builder()
        .sse(8, Duration::from_millis(150))
        .start()
        .await;
    let gw = start(&up, IDLE).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let started = Instant::now();
    let (status, body) = h2.get("/events").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(1000));
    let text = String::from_utf8_lossy(&body);
    assert_eq!(text.matches("data:").count(), 8, "{text}");
    // The connection is still usable right after the long stream...
    assert_eq!(h2.get("/again").await.0, 200);
    // ...and then closes once idle.
    assert!(h2.wait_closed(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn an_idle_http1_connection_is_closed_after_idle_timeout() {
    let up = Upstream::echo().await;
    let gw = start(&up, IDLE).await;
    let mut conn = Conn::connect(gw.addr()).await.unwrap();
    conn.write(GET).await.unwrap();
    assert_eq!(conn.read_response().await.unwrap().status, 200);
    let idle_from = Instant::now();
    let end = conn.wait_closed(Duration::from_secs(5)).await.unwrap();
    let took = idle_from.elapsed();
    assert!(end.is_some(), "still open after 5 s");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "closed after {took:?}, idle_timeout is 300 ms (header_read_timeout 10 s)"
    );
    assert!(
        conn.buffered().is_empty(),
        "nothing is sent on an idle close"
    );
}

// ---------------------------------------------------------------------------
// Connection caps
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_global_cap_refuses_the_next_connection_and_accepts_after_a_close() {
    let up = Upstream::echo().await;
    let gw = start(&up, "  max_connections: 3\n  max_connections_per_ip: 0\n").await;
    let mut held = Vec::new();
    for from in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let mut s = connect_from(from, gw.addr()).await;
        assert_eq!(try_request(&mut s).await, Outcome::Served, "{from}");
        held.push(s);
    }
    for from in ["127.0.0.1", "127.0.0.4"] {
        let mut s = connect_from(from, gw.addr()).await;
        assert_eq!(
            try_request(&mut s).await,
            Outcome::Refused,
            "{from}: over the cap of 3"
        );
    }
    drop(held.pop());
    let _again = eventually_served("127.0.0.4", gw.addr()).await;
    // Those held are still served on their connections.
    for s in &mut held {
        assert_eq!(try_request(s).await, Outcome::Served);
    }
}

#[tokio::test]
async fn the_per_ip_cap_refuses_one_address_but_not_others_or_trusted_proxies() {
    let up = Upstream::echo().await;
    let gw = start(
        &up,
        "  max_connections: 100\n  max_connections_per_ip: 2\n  trusted_proxies: [\"127.0.0.9\"]\n",
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from("127.0.0.1", gw.addr()).await;
        assert_eq!(try_request(&mut s).await, Outcome::Served);
        held.push(s);
    }
    // (from, expected) for a new connection while 127.0.0.1 holds two.
    let cases = [
        ("127.0.0.1", Outcome::Refused),
        ("127.0.0.2", Outcome::Served),
        ("127.0.0.1", Outcome::Refused),
    ];
    let mut others = Vec::new();
    for (from, expect) in cases {
        let mut s = connect_from(from, gw.addr()).await;
        assert_eq!(try_request(&mut s).await, expect, "{from}");
        others.push(s);
    }
    // A trusted proxy carries many clients: not held to the per-IP cap.
    for i in 0..5 {
        let mut s = connect_from("127.0.0.9", gw.addr()).await;
        assert_eq!(
            try_request(&mut s).await,
            Outcome::Served,
            "trusted proxy, connection {i}"
        );
        others.push(s);
    }
    drop(held.pop());
    let _again = eventually_served("127.0.0.1", gw.addr()).await;
}

/// A WebSocket tunnel is a connection too: it keeps its place under the cap
/// after the upgrade, until it closes, and `idle_timeout` does not cut it.
#[tokio::test]
async fn a_websocket_tunnel_counts_against_the_cap_until_it_closes() {
    use futures_util::{SinkExt, StreamExt};
    use gatehouse_testkit::tokio_tungstenite::tungstenite::Message;
    let up = Upstream::builder().websocket_echo().start().await;
    let gw = start(
        &up,
        "  max_connections: 1
  idle_timeout: 200ms
",
    )
    .await;
    let stream = TcpStream::connect(gw.addr()).await.unwrap();
    let (mut ws, resp) = gatehouse_testkit::tokio_tungstenite::client_async(
        format!("ws://{}/ws", gw.addr()),
        stream,
    )
    .await
    .expect("websocket handshake through the gateway");
    assert_eq!(resp.status(), 101);
    let mut over = connect_from("127.0.0.2", gw.addr()).await;
    assert_eq!(
        try_request(&mut over).await,
        Outcome::Refused,
        "the tunnel holds the only slot"
    );
    // Quiet for three idle timeouts (a deliberate wait, not a readiness
    // check), then still echoing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    ws.send(Message::Text("still here".into())).await.unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "still here");
    ws.close(None).await.unwrap();
    drop(ws);
    let _again = eventually_served("127.0.0.2", gw.addr()).await;
}

// ---------------------------------------------------------------------------
// HTTP/2 streams and upstream requests per connection (raw frames)
// ---------------------------------------------------------------------------

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HEADERS (END_STREAM | END_HEADERS) for `GET /` with HPACK static-table
/// entries and a literal `:authority`.
fn get_headers(stream: u32) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 2];
    block.extend_from_slice(b"gw");
    frame(0x1, 0x5, stream, &block)
}

/// Reads frames for up to `wait`; returns (type, flags, stream, payload).
async fn read_frames(
    s: &mut TcpStream,
    wait: Duration,
    until: impl Fn(&[(u8, u8, u32, Vec<u8>)]) -> bool,
) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut chunk = vec![0u8; 16384];
    while !until(&frames) {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            frames.push((buf[3], buf[4], stream, buf[9..9 + len].to_vec()));
            buf.drain(..9 + len);
        }
    }
    frames
}

/// SETTINGS_MAX_CONCURRENT_STREAMS in the gateway's SETTINGS, and
/// REFUSED_STREAM for the stream one over it, sent by a client that
/// ignores the setting.
#[tokio::test]
async fn the_h2_stream_cap_is_advertised_and_enforced() {
    let up = Upstream::builder()
        .delay(Duration::from_secs(2))
        .start()
        .await;
    let gw = start(&up, "  http2_max_concurrent_streams: 4\n").await;
    let mut s = TcpStream::connect(gw.addr()).await.unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    for i in 0..5u32 {
        out.extend(get_headers(2 * i + 1));
    }
    s.write_all(&out).await.unwrap();
    let frames = read_frames(&mut s, Duration::from_secs(5), |f| {
        f.iter().any(|(t, ..)| *t == 0x3)
    })
    .await;
    let settings = frames
        .iter()
        .find(|(t, flags, ..)| *t == 0x4 && flags & 1 == 0)
        .expect("the gateway's SETTINGS");
    let advertised = settings
        .3
        .chunks(6)
        .find(|p| p[..2] == [0, 3])
        .map(|p| u32::from_be_bytes([p[2], p[3], p[4], p[5]]));
    assert_eq!(advertised, Some(4));
    let resets: Vec<_> = frames
        .iter()
        .filter(|(t, ..)| *t == 0x3)
        .map(|(_, _, id, p)| (*id, u32::from_be_bytes([p[0], p[1], p[2], p[3]])))
        .collect();
    assert_eq!(
        resets,
        [(9, 0x7)],
        "the fifth stream is refused (REFUSED_STREAM)"
    );
}

/// One h2 connection with 200 concurrent streams to a slow upstream: the
/// upstream never sees more than `max_requests_per_connection` of them at
/// once, and every request is still answered.
#[tokio::test]
async fn one_client_connection_holds_at_most_the_cap_of_upstream_requests() {
    const CAP: usize = 16;
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n, p) = (now.clone(), peak.clone());
    let up = Upstream::builder()
        .handler(move |_req| {
            let (n, p) = (n.clone(), p.clone());
            async move {
                let in_flight = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(in_flight, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                http::Response::new(gatehouse_testkit::body::full("ok"))
            }
        })
        .start()
        .await;
    let gw = start(
        &up,
        &format!("  http2_max_concurrent_streams: 250\n  max_requests_per_connection: {CAP}\n"),
    )
    .await;
    let h2 = H2::connect(gw.addr()).await;
    let requests = (0..200).map(|i| {
        let mut send = h2.send.clone();
        async move {
            let req = http::Request::get(format!("http://gw/r/{i}"))
                .body(http_body_util::Empty::new())
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            let status = resp.status().as_u16();
            resp.into_body().collect().await.unwrap();
            status
        }
    });
    let statuses = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::future::join_all(requests),
    )
    .await
    .expect("200 requests within 30 s");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= CAP,
        "{peak} upstream requests at once from one client connection"
    );
    assert!(
        peak >= CAP / 2,
        "only {peak} at once: the test did not load the cap"
    );
    assert!(
        up.connections() <= CAP,
        "{} upstream connections for one client connection",
        up.connections()
    );
}

// ---------------------------------------------------------------------------
// The admin API
// ---------------------------------------------------------------------------

struct Admin {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn admin(limits: gatehouse_admin::ServeLimits) -> Admin {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("admin.db").display());
    let store = gatehouse_store::open(&url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        gatehouse_admin::serve_with_limits(
            listener,
            gatehouse_admin::AppState::new(store),
            limits,
            async {
                let _ = rx.await;
            },
        )
        .await
        .unwrap();
    });
    Admin {
        addr,
        _stop: tx,
        _dir: dir,
    }
}

/// `GET /openapi.json` (no token needed) answers 200.
async fn admin_serves(addr: SocketAddr) -> bool {
    let Ok(mut conn) = Conn::connect(addr).await else {
        return false;
    };
    if conn
        .write(b"GET /openapi.json HTTP/1.1\r\nHost: admin\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    matches!(conn.read_response().await, Ok(r) if r.status == 200)
}

#[tokio::test]
async fn the_admin_api_closes_a_half_sent_request_after_its_header_read_timeout() {
    let admin = admin(gatehouse_admin::ServeLimits {
        header_read_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    // (what, bytes sent before going silent)
    let cases: [(&str, &[u8]); 3] = [
        ("silent", b""),
        (
            "half-sent head",
            b"GET /openapi.json HTTP/1.1\r\nHost: admin\r\nx-slow: ",
        ),
        (
            "idle after a request",
            b"GET /openapi.json HTTP/1.1\r\nHost: admin\r\n\r\n",
        ),
    ];
    for (what, bytes) in cases {
        let mut conn = Conn::connect(admin.addr).await.unwrap();
        conn.write(bytes).await.unwrap();
        let started = Instant::now();
        let end = conn.wait_closed(Duration::from_secs(5)).await.unwrap();
        assert!(end.is_some(), "{what}: still open after 5 s");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "{what}: closed after {took:?}"
        );
    }
    assert!(admin_serves(admin.addr).await);
}

#[tokio::test]
async fn the_admin_api_refuses_connections_over_its_cap() {
    let admin = admin(gatehouse_admin::ServeLimits {
        header_read_timeout: Duration::from_secs(30),
        max_connections: 4,
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = Conn::connect(admin.addr).await.unwrap();
        c.write(b"GET /openapi.json HTTP/1.1\r\nHost: admin\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(c.read_response().await.unwrap().status, 200);
        held.push(c);
    }
    let mut over = Conn::connect(admin.addr).await.unwrap();
    let end = over.wait_closed(Duration::from_secs(5)).await.unwrap();
    assert!(end.is_some(), "the fifth connection is closed at once");
    assert!(over.buffered().is_empty());
    drop(held.pop());
    let mut served = false;
    for _ in 0..100 {
        if admin_serves(admin.addr).await {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a slot freed by a close is usable again");
}

// ---------------------------------------------------------------------------
// Connection exhaustion
// ---------------------------------------------------------------------------

/// 1,000 half-sent connections from one address against the proxy, and
/// 1,000 against the admin API in the same process (role `both`): the
/// proxy admits only the per-address cap and closes the rest at once,
/// every attacking connection is closed within the header-read timeout (3 s),
/// a client from another address is served throughout, the admin API's
/// flood never costs the proxy a connection, and the descriptors come
/// back.
#[tokio::test]
async fn connection_exhaustion_is_capped_and_legitimate_clients_are_served() {
    const FLOOD: usize = 1000;
    const PER_IP: usize = 100;
    const ADMIN_CAP: usize = 64;
    const HEADER_READ: Duration = Duration::from_secs(3);
    let up = Upstream::echo().await;
    let gw = start(
        &up,
        &format!(
            "  header_read_timeout: 3s\n  max_connections: 400\n  max_connections_per_ip: {PER_IP}\n"
        ),
    )
    .await;
    let admin = admin(gatehouse_admin::ServeLimits {
        header_read_timeout: HEADER_READ,
        max_connections: ADMIN_CAP,
    })
    .await;
    let fds_before = fds();
    let rss_before = gatehouse_testkit::current_rss_kb().unwrap_or(0);

    let started = Instant::now();
    let mut flood = Vec::with_capacity(2 * FLOOD);
    for target in [gw.addr(), admin.addr] {
        for _ in 0..FLOOD {
            let mut s = connect_from("127.0.0.1", target).await;
            // Half a request head, never finished.
            let _ = s
                .write_all(b"GET /x HTTP/1.1\r\nHost: gw\r\nx-slow: ")
                .await;
            flood.push(s);
        }
    }
    // During the flood: a client from another address is served by the
    // proxy, on HTTP/1.1 and h2.
    let mut legit = connect_from("127.0.0.2", gw.addr()).await;
    assert_eq!(try_request(&mut legit).await, Outcome::Served);
    drop(legit);
    let mut h2 = H2::over(connect_from("127.0.0.2", gw.addr()).await).await;
    assert_eq!(h2.get("/during").await.0, 200);
    let fds_during = fds();
    // Each flood connection costs this process one client descriptor; the
    // servers hold at most their caps on top.
    assert!(
        fds_during <= fds_before + 2 * FLOOD + PER_IP + ADMIN_CAP + 50,
        "{fds_during} descriptors during the flood (before: {fds_before})"
    );

    // Right after the flood, before any header-read timeout can have
    // passed: only the admitted connections are still open.
    let mut still_open = 0;
    for s in &mut flood {
        let mut b = [0u8; 512];
        if tokio::time::timeout(Duration::from_millis(2), s.read(&mut b))
            .await
            .is_err()
        {
            still_open += 1;
        }
    }
    let checked = started.elapsed();
    assert!(
        checked < HEADER_READ,
        "the flood took {checked:?}: too slow to tell refusals from timeouts"
    );
    assert!(
        still_open <= PER_IP + ADMIN_CAP,
        "{still_open} flood connections admitted; caps allow {PER_IP} + {ADMIN_CAP}"
    );

    // Every flood connection ends: the admitted ones after the header-read
    // timeout, with nothing but an optional 408 before the close.
    for s in &mut flood {
        let mut b = [0u8; 512];
        let ended = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b))
            .await
            .expect("a flood connection still open 10 s after the flood");
        if let Ok(n) = ended
            && n > 0
        {
            assert!(
                b.starts_with(b"HTTP/1.1 408"),
                "{:?}",
                String::from_utf8_lossy(&b[..n])
            );
        }
    }
    let took = started.elapsed();
    assert!(
        took < HEADER_READ + Duration::from_secs(3),
        "flood drained after {took:?}"
    );
    drop(flood);

    // After the flood: both serve, the descriptors and memory come back.
    assert_eq!(get(&gw.url("/after")).await.status, 200);
    assert!(admin_serves(admin.addr).await);
    let mut fds_after = fds();
    for _ in 0..100 {
        if fds_after <= fds_before + 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        fds_after = fds();
    }
    assert!(
        fds_after <= fds_before + 10,
        "{fds_after} descriptors after the flood (before: {fds_before})"
    );
    let rss_after = gatehouse_testkit::current_rss_kb().unwrap_or(0);
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS {rss_before} kB → {rss_after} kB"
    );
    drop(h2);
}
