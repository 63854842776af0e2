//! Timeouts, retries and circuit breakers through the real gateway against
//! real upstreams: retries move to another target, respect methods, bodies,
//! the budget and the backoff; per-try and total timeouts bound the time a
//! request takes; breakers fail fast and recover through half-open probes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::{common, table};

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Resp, TestGateway, empty, get, req, send};
use gatehouse_testkit::{AcceptThenCloseServer, RefusingAddr, Upstream, body};
use http_body_util::BodyExt;

/// A service `pool` over `targets` (extra service lines indented four
/// spaces) and a catch-all route `r` (extra route lines indented four).
fn pool(targets: &[String], service_extra: &str, route_extra: &str) -> String {
    let list: String = targets
        .iter()
        .map(|t| format!("      - target: \"{t}\"\n"))
        .collect();
    format!(
        "services:\n  - name: pool\n    url: \"http://pool.internal\"\n    targets:\n{list}{service_extra}routes:\n  - name: r\n    service: pool\n    paths: [\"/*\"]\n{route_extra}"
    )
}

/// An upstream named `name` answering every request with the status in
/// `status` (changeable while it runs) and its name as the body.
async fn switchable(name: &'static str, status: Arc<AtomicU16>) -> Upstream {
    Upstream::builder()
        .name(name)
        .record(1000)
        .handler(move |_req| {
            let status = status.clone();
            async move {
                http::Response::builder()
                    .status(status.load(Ordering::SeqCst))
                    .header("x-upstream", name)
                    .body(body::full(name))
                    .unwrap()
            }
        })
        .start()
        .await
}

/// An upstream that answers 200 with the request body it received.
async fn body_echo(name: &str) -> Upstream {
    Upstream::builder()
        .name(name)
        .handler(|req: http::Request<hyper::body::Incoming>| async move {
            let bytes = req.into_body().collect().await.unwrap().to_bytes();
            http::Response::new(body::full(bytes))
        })
        .start()
        .await
}

async fn timed(f: impl Future<Output = Resp>) -> (Resp, Duration) {
    let started = Instant::now();
    let r = f.await;
    (r, started.elapsed())
}

fn post(url: &str, data: Vec<u8>) -> http::Request<gatehouse_testkit::BoxBody> {
    req("POST", url).body(body::full(data)).unwrap()
}

/// A POST whose body has no declared length (chunked over HTTP/1.1).
fn post_chunked(url: &str, data: Vec<u8>) -> http::Request<gatehouse_testkit::BoxBody> {
    let frames = data
        .chunks(16)
        .map(|c| {
            Ok::<_, gatehouse_testkit::BoxError>(hyper::body::Frame::data(Bytes::copy_from_slice(
                c,
            )))
        })
        .collect::<Vec<_>>();
    let stream = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    req("POST", url).body(stream.boxed_unsync()).unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn a_connect_failure_is_retried_on_the_other_target() {
    let good = Upstream::builder().name("good").start().await;
    let dead = RefusingAddr::new();
    let gw = TestGateway::start(&pool(
        &[dead.addr().to_string(), good.addr().to_string()],
        "",
        "",
    ))
    .await;
    for i in 0..10 {
        let r = get(&gw.url(&format!("/x?i={i}"))).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-upstream"), Some("good"));
    }
    assert_eq!(good.hits(), 10);
}

/// A TCP server that reads each request head and then closes the
/// connection without answering: the connection breaks after the request
/// was sent, before response headers. Stops when the returned handle drops.
struct ReadThenClose {
    addr: std::net::SocketAddr,
    hits: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ReadThenClose {
    async fn start() -> Self {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        Self { addr, hits, task }
    }
}

impl Drop for ReadThenClose {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_reset_is_retried_only_when_listed() {
    let good = Upstream::builder().name("good").start().await;
    let breaking = ReadThenClose::start().await;
    let targets = [breaking.addr.to_string(), good.addr().to_string()];
    // Default conditions: a connection that breaks after the request was
    // sent is not retried (the upstream may have acted on it).
    let gw = TestGateway::start(&pool(&targets, "", "")).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get(&gw.url("/x")).await.status);
    }
    assert_eq!(statuses, [502, 200, 502, 200]);
    assert_eq!(breaking.hits.load(Ordering::SeqCst), 2);
    // With `reset` listed it is.
    let gw = TestGateway::start(&pool(
        &targets,
        "    retries:\n      on: [connect-failure, reset]\n",
        "",
    ))
    .await;
    for _ in 0..6 {
        let r = get(&gw.url("/x")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // A retry takes the next round-robin turn, so with two targets every
    // request tries the breaking one first.
    assert_eq!(breaking.hits.load(Ordering::SeqCst), 2 + 6);
}

#[tokio::test]
async fn a_connection_reset_before_the_request_is_a_connect_failure() {
    // Reset right after accept: nothing was sent, so the default
    // `connect-failure` retries it.
    let good = Upstream::builder().name("good").start().await;
    let closing = AcceptThenCloseServer::start().await;
    let gw = TestGateway::start(&pool(
        &[closing.addr().to_string(), good.addr().to_string()],
        "",
        "",
    ))
    .await;
    for _ in 0..4 {
        assert_eq!(get(&gw.url("/x")).await.status, 200);
    }
    assert_eq!(closing.hits(), 4, "each request tried it first");
}

#[tokio::test]
async fn a_503_is_retried_on_the_other_target_with_the_same_request() {
    let bad = Upstream::builder().name("bad").status(503).start().await;
    let good = Upstream::builder().name("good").start().await;
    let gw = TestGateway::start(&pool(
        &[bad.addr().to_string(), good.addr().to_string()],
        "    retries:\n      on: [503]\n",
        "",
    ))
    .await;
    for i in 0..6 {
        let r = send(empty(
            req("GET", &gw.url(&format!("/items?page={i}"))).header("x-custom", "kept"),
        ))
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let echo = r.json();
        assert_eq!(echo["upstream"], "good");
        assert_eq!(echo["uri"], format!("/items?page={i}"));
        assert_eq!(echo["headers"]["x-custom"], "kept");
        assert_eq!(echo["headers"]["host"], "pool.internal");
    }
    assert!(bad.hits() >= 3, "bad got {}", bad.hits());
}

#[tokio::test]
async fn exhausted_retries_return_the_upstreams_own_response() {
    let busy = Upstream::builder()
        .name("busy")
        .status(503)
        .header("content-type", "text/plain")
        .body("busy, try later")
        .start()
        .await;
    let gw = TestGateway::start(&pool(
        &[busy.addr().to_string()],
        "    retries:\n      attempts: 2\n      on: [503]\n      backoff: { base: 1ms, max: 1ms }\n",
        "",
    ))
    .await;
    let r = get(&gw.url("/x")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.text(), "busy, try later");
    assert_eq!(r.header("x-upstream"), Some("busy"));
    assert_eq!(busy.hits(), 3, "one try and two retries");
}

#[tokio::test]
async fn post_is_not_retried_by_default_but_a_route_may_allow_it() {
    let up = Upstream::builder().status(503).start().await;
    let yaml = format!(
        r#"services:
  - name: s
    url: "{}"
    retries:
      on: [503]
      backoff: {{ base: 1ms, max: 1ms }}
routes:
  - name: default
    service: s
    paths: ["/default"]
  - name: posts
    service: s
    paths: ["/posts"]
    retries:
      methods: [GET, POST]
"#,
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(
        send(empty(req("POST", &gw.url("/default")))).await.status,
        503
    );
    assert_eq!(up.hits(), 1, "POST is not retried by default");
    assert_eq!(
        send(empty(req("POST", &gw.url("/posts")))).await.status,
        503
    );
    assert_eq!(up.hits(), 3, "the route allows POST retries");
    assert_eq!(get(&gw.url("/default")).await.status, 503);
    assert_eq!(up.hits(), 5, "GET is retried");
    // An upgrade request is never retried.
    let r = send(empty(
        req("GET", &gw.url("/default"))
            .header("connection", "upgrade")
            .header("upgrade", "websocket"),
    ))
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(up.hits(), 6);
}

#[tokio::test]
async fn only_bodies_within_buffer_body_are_retried() {
    let only_bad = Upstream::builder().status(503).start().await;
    let yaml = pool(
        &[only_bad.addr().to_string()],
        "    retries:\n      on: [503]\n      methods: [POST]\n      buffer_body: 1024\n      backoff: { base: 1ms, max: 1ms }\n",
        "",
    );
    let gw = TestGateway::start(&yaml).await;
    let url = gw.url("/upload");
    assert_eq!(send(post(&url, pattern(100))).await.status, 503);
    assert_eq!(
        only_bad.hits(),
        2,
        "a 100-byte body is buffered and retried"
    );
    assert_eq!(send(post(&url, pattern(1024))).await.status, 503);
    assert_eq!(only_bad.hits(), 4, "exactly buffer_body bytes is retried");
    assert_eq!(send(post(&url, pattern(4096))).await.status, 503);
    assert_eq!(
        only_bad.hits(),
        5,
        "a larger body streams and is not retried"
    );
    assert_eq!(send(post_chunked(&url, pattern(100))).await.status, 503);
    assert_eq!(
        only_bad.hits(),
        6,
        "a body of unknown length is not retried"
    );
}

#[tokio::test]
async fn a_retried_body_reaches_the_second_target_identically() {
    let bad = Upstream::builder().name("bad").status(503).start().await;
    let good = body_echo("good").await;
    let gw = TestGateway::start(&pool(
        &[bad.addr().to_string(), good.addr().to_string()],
        "    retries:\n      on: [503]\n      methods: [POST]\n      buffer_body: 65536\n",
        "",
    ))
    .await;
    for len in [1, 100, 5000, 65536] {
        let data = pattern(len);
        let r = send(post(&gw.url("/upload"), data.clone())).await;
        assert_eq!(r.status, 200, "{len}");
        assert_eq!(&r.body[..], &data[..], "{len}: body differs");
    }
    assert!(bad.hits() >= 2, "bad got {}", bad.hits());
}

/// Retrying only connect failures keeps no copy of the request: the
/// request that could not be sent comes back whole from the connection
/// pool. So even a streamed body of unknown length, larger than any
/// buffer, reaches the other target intact, and a request that did reach
/// an upstream is never sent twice.
#[tokio::test]
async fn a_connect_failure_retry_sends_a_streamed_body_whole_without_buffering_it() {
    let dead = RefusingAddr::new();
    let good = body_echo("good").await;
    let gw = TestGateway::start(&pool(
        &[dead.addr().to_string(), good.addr().to_string()],
        "    retries:\n      on: [connect-failure]\n      methods: [POST]\n      buffer_body: 16\n      backoff: { base: 1ms, max: 1ms }\n",
        "",
    ))
    .await;
    let cases: [(&str, Vec<u8>, bool); 4] = [
        ("empty", Vec::new(), false),
        ("sized within buffer_body", pattern(10), false),
        ("sized beyond buffer_body", pattern(70_000), false),
        ("chunked beyond buffer_body", pattern(70_000), true),
    ];
    for (name, data, chunked) in cases {
        // Two requests each, so both orders of the round robin are seen.
        for round in 0..2 {
            let url = gw.url("/upload");
            let r = if chunked {
                send(post_chunked(&url, data.clone())).await
            } else {
                send(post(&url, data.clone())).await
            };
            assert_eq!(r.status, 200, "{name} #{round}: {}", r.text());
            assert_eq!(r.body.len(), data.len(), "{name} #{round}: length");
            assert!(r.body[..] == data[..], "{name} #{round}: body differs");
        }
    }
    assert_eq!(good.hits(), 8, "every request reached the live target once");
}

#[tokio::test]
async fn the_budget_caps_retries_under_a_burst() {
    let down = Upstream::builder().status(503).record(0).start().await;
    let gw = TestGateway::start(&pool(
        &[down.addr().to_string()],
        "    retries:\n      attempts: 3\n      on: [503]\n      backoff: { base: 0s, max: 0s }\n      budget: { ratio: 0.1, min_per_second: 1 }\n",
        "",
    ))
    .await;
    let started = Instant::now();
    let burst = (0..50).map(|_| get_status(gw.url("/x")));
    let statuses = futures_util::future::join_all(burst).await;
    assert!(statuses.iter().all(|&s| s == 503), "{statuses:?}");
    let seconds = started.elapsed().as_secs() + 1;
    let retries = down.hits() - 50;
    // 10% of 50 first tries plus one per second; without a budget it
    // would be 150.
    assert!(
        (1..=5 + seconds as usize + 1).contains(&retries),
        "{retries} retries in {seconds}s"
    );
    let snap = gw.gateway.shared().snapshot();
    let budget = &snap.services[0].budget;
    assert_eq!(budget.retried() as usize, retries);
    assert!(budget.denied() >= 40, "denied {}", budget.denied());
}

async fn get_status(url: String) -> u16 {
    get(&url).await.status
}

#[tokio::test]
async fn backoff_spaces_the_retries_within_the_cap() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let up = Upstream::builder()
        .handler(move |_req| {
            log.lock().unwrap().push(Instant::now());
            async {
                http::Response::builder()
                    .status(503)
                    .body(body::empty())
                    .unwrap()
            }
        })
        .start()
        .await;
    let gw = TestGateway::start(&pool(
        &[up.addr().to_string()],
        "    retries:\n      attempts: 5\n      on: [503]\n      backoff: { base: 50ms, max: 100ms }\n",
        "",
    ))
    .await;
    assert_eq!(get(&gw.url("/x")).await.status, 503);
    let times = seen.lock().unwrap().clone();
    assert_eq!(times.len(), 6);
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Each wait is random in [0, cap] (50, 100, 100, ... ms), plus the time
    // a try takes; together they cannot all be near zero.
    for (n, gap) in gaps.iter().enumerate() {
        let cap = if n == 0 { 50 } else { 100 };
        assert!(
            *gap < Duration::from_millis(cap + 150),
            "gap {n} is {gap:?}: {gaps:?}"
        );
    }
    let total: Duration = gaps.iter().sum();
    assert!(total >= Duration::from_millis(25), "{gaps:?}");
}

#[tokio::test]
async fn a_per_try_timeout_is_retried_on_the_fast_target() {
    let slow = Upstream::builder()
        .name("slow")
        .delay(Duration::from_secs(3))
        .start()
        .await;
    let fast = Upstream::builder().name("fast").start().await;
    let gw = TestGateway::start(&pool(
        &[slow.addr().to_string(), fast.addr().to_string()],
        "    timeout: 200ms\n    retries:\n      on: [timeout]\n",
        "",
    ))
    .await;
    for _ in 0..4 {
        let (r, took) = timed(get(&gw.url("/x"))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-upstream"), Some("fast"));
        assert!(took < Duration::from_millis(800), "took {took:?}");
    }
    assert!(slow.hits() >= 1);
}

#[tokio::test]
async fn the_total_timeout_cuts_retries_short() {
    let slow = Upstream::builder()
        .delay(Duration::from_secs(3))
        .start()
        .await;
    let gw = TestGateway::start(&pool(
        &[slow.addr().to_string()],
        "    timeout: 200ms\n    total_timeout: 500ms\n    retries:\n      attempts: 10\n      on: [timeout]\n      backoff: { base: 1ms, max: 1ms }\n",
        "",
    ))
    .await;
    let (r, took) = timed(get(&gw.url("/x"))).await;
    let doc = r.assert_problem(504, "upstream-timeout");
    let detail = doc["detail"].as_str().unwrap();
    assert!(detail.contains("total timeout of 500ms"), "{detail}");
    assert!(took >= Duration::from_millis(480), "took {took:?}");
    assert!(took < Duration::from_millis(900), "took {took:?}");
    assert_eq!(slow.hits(), 3, "tries at about 0, 200 and 400 ms");
}

#[tokio::test]
async fn route_timeouts_beat_the_services() {
    let slow = Upstream::builder()
        .delay(Duration::from_millis(700))
        .start()
        .await;
    let yaml = format!(
        r#"services:
  - name: s
    url: "{}"
    timeout: 5s
    retries:
      attempts: 3
      on: [timeout]
      backoff: {{ base: 1ms, max: 1ms }}
routes:
  - name: plain
    service: s
    paths: ["/plain"]
  - name: per-try
    service: s
    paths: ["/per-try"]
    timeouts: {{ per_try: 200ms }}
    retries: {{ attempts: 0 }}
  - name: total
    service: s
    paths: ["/total"]
    timeouts: {{ per_try: 200ms, total: 300ms }}
  - name: connect
    service: s
    paths: ["/connect"]
    timeouts: {{ connect: 150ms }}
"#,
        slow.url()
    );
    let gw = TestGateway::start(&yaml).await;

    let (r, took) = timed(get(&gw.url("/per-try"))).await;
    let doc = r.assert_problem(504, "upstream-timeout");
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("200ms (per-try timeout)"),
        "{doc}"
    );
    assert!(took < Duration::from_millis(600), "took {took:?}");

    let (r, took) = timed(get(&gw.url("/total"))).await;
    let doc = r.assert_problem(504, "upstream-timeout");
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("total timeout of 300ms (2 tries)"),
        "{doc}"
    );
    assert!(took < Duration::from_millis(700), "took {took:?}");

    // The service's own 5 s timeout lets the slow answer through.
    let (r, took) = timed(get(&gw.url("/plain"))).await;
    assert_eq!(r.status, 200);
    assert!(took >= Duration::from_millis(650), "took {took:?}");
    assert_eq!(slow.hits(), 1 + 2 + 1);

    // A connect timeout override gets a client of its own, kept by the
    // client cache; the other routes share the service's.
    let snap = gw.gateway.shared().snapshot();
    let connect = snap.routes.iter().find(|r| &*r.name == "connect").unwrap();
    let t = connect.timeouts.as_deref().unwrap();
    assert_eq!(t.connect, Some(Duration::from_millis(150)));
    assert!(t.client_for(0).is_some());
    let per_try = snap.routes.iter().find(|r| &*r.name == "per-try").unwrap();
    assert!(per_try.timeouts.as_deref().unwrap().client_for(0).is_none());
    assert!(
        snap.client_keys
            .iter()
            .any(|k| k.connect_timeout == Duration::from_millis(150))
    );
    let r = get(&gw.url("/connect")).await;
    assert_eq!(r.status, 200);
}

const BREAKER: &str = "    retries:\n      attempts: 0\n    circuit_breaker:\n      failure_ratio: 0.5\n      min_requests: 4\n      window: 10s\n      open_for: 300ms\n      half_open_requests: 2\n";

#[tokio::test]
async fn an_open_breaker_fails_fast_and_closes_after_probes_succeed() {
    let status = Arc::new(AtomicU16::new(503));
    let up = switchable("up", status.clone()).await;
    let gw = TestGateway::start(&pool(&[up.addr().to_string()], BREAKER, "")).await;
    for _ in 0..4 {
        assert_eq!(get(&gw.url("/x")).await.status, 503);
    }
    assert_eq!(up.hits(), 4);
    // Open: fast 503 problems with Retry-After, nothing reaches the upstream.
    for _ in 0..5 {
        let (r, took) = timed(get(&gw.url("/x"))).await;
        let doc = r.assert_problem(503, "circuit-open");
        assert!(doc["detail"].as_str().unwrap().contains("`pool`"), "{doc}");
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(took < Duration::from_millis(200), "took {took:?}");
    }
    assert_eq!(up.hits(), 4);

    // Half-open while still failing: the probe fails and it opens again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(get(&gw.url("/x")).await.status, 503);
    assert_eq!(up.hits(), 5, "one probe");
    get(&gw.url("/x")).await.assert_problem(503, "circuit-open");
    assert_eq!(up.hits(), 5);

    // Healthy again: two probes succeed and the breaker closes.
    status.store(200, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    for _ in 0..10 {
        assert_eq!(get(&gw.url("/x")).await.status, 200);
    }
    assert_eq!(up.hits(), 15);
}

#[tokio::test]
async fn a_reload_starts_breakers_closed() {
    let status = Arc::new(AtomicU16::new(500));
    let up = switchable("up", status.clone()).await;
    let yaml = pool(&[up.addr().to_string()], BREAKER, "");
    let gw = TestGateway::start(&yaml).await;
    for _ in 0..4 {
        get(&gw.url("/x")).await;
    }
    get(&gw.url("/x")).await.assert_problem(503, "circuit-open");
    status.store(200, Ordering::SeqCst);
    gw.reload(&yaml).await.unwrap();
    assert_eq!(get(&gw.url("/x")).await.status, 200);
}

#[tokio::test]
async fn a_per_target_breaker_takes_the_failing_target_out() {
    let good = Upstream::builder().name("good").start().await;
    let bad = Upstream::builder().name("bad").status(500).start().await;
    let gw = TestGateway::start(&pool(
        &[good.addr().to_string(), bad.addr().to_string()],
        "    retries:\n      attempts: 0\n    circuit_breaker:\n      failure_ratio: 0.9\n      min_requests: 3\n      open_for: 10s\n      per_target: true\n",
        "",
    ))
    .await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&gw.url("/x")).await.status);
    }
    assert_eq!(bad.hits(), 3, "{statuses:?}");
    assert!(
        statuses[6..].iter().all(|&s| s == 200),
        "after the third failure only the good target serves: {statuses:?}"
    );
    assert_eq!(good.hits(), 17);
}

#[tokio::test]
async fn retried_attempts_feed_passive_health() {
    let bad = Upstream::builder().name("bad").status(503).start().await;
    let good = Upstream::builder().name("good").start().await;
    let gw = TestGateway::start(&pool(
        &[bad.addr().to_string(), good.addr().to_string()],
        "    health_checks:\n      passive:\n        consecutive_failures: 2\n        cool_down: 60s\n    retries:\n      on: [503]\n",
        "",
    ))
    .await;
    for _ in 0..10 {
        let r = get(&gw.url("/x")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-upstream"), Some("good"));
    }
    assert_eq!(bad.hits(), 2, "ejected after two failed attempts");
}

/// The error `yaml` is refused with when read as `bad.yaml`.
fn read_error(yaml: &str) -> Result<String, String> {
    match gatehouse_config::parse_str(yaml, "bad.yaml") {
        Ok(_) => Err(format!("accepted:\n{yaml}")),
        Err(e) => Ok(e.to_string()),
    }
}

/// Fields that bound each other are all reported at once.
#[test]
fn retry_bounds_are_checked_across_service_and_route_and_all_reported() {
    let yaml = r#"services:
  - name: api
    url: http://api.internal:8080
    retries:
      backoff: { base: 300ms, max: 250ms }
routes:
  - name: r
    service: api
    retries: { backoff: { base: 1s } }
  - name: m
    paths: ["/m"]
    timeouts: { total: 1s }
"#;
    let err = read_error(yaml);
    table::assert_rows([
        (
            "a service's backoff base above its max",
            "services[0].retries.backoff.base: must not be greater than `max`",
        ),
        (
            "a route's base above the max it inherits from its service",
            "routes[0].retries.backoff.base: must not be greater than `max` (base 1s, max 250ms)",
        ),
        (
            "timeouts on a route without a service",
            "routes[1].timeouts: only valid on a route with a `service`",
        ),
    ]
    .map(|(name, needle)| {
        (
            name,
            err.clone().and_then(|e| table::contains_all(&e, &[needle])),
        )
    }));
}

/// A malformed value stops the read at that value.
#[test]
fn bad_retry_timeout_and_breaker_values_are_rejected_with_field_paths() {
    let service = |block: &str| {
        format!("services:\n  - name: api\n    url: http://api.internal:8080\n{block}")
    };
    let route = |block: &str| service(&format!("routes:\n  - name: r\n    service: api\n{block}"));
    let cases = [
        (
            "a zero total timeout",
            service("    total_timeout: 0s\n"),
            "services[0].total_timeout: must be greater than zero",
        ),
        (
            "too many attempts",
            service("    retries:\n      attempts: 11\n"),
            "services[0].retries.attempts: must be at most 10",
        ),
        (
            "an unknown retry condition",
            service("    retries:\n      on: [connect-failure, bogus]\n"),
            "services[0].retries.on[1]: unknown retry condition `bogus`",
        ),
        (
            "a retry status out of range",
            service("    retries:\n      on: [700]\n"),
            "services[0].retries.on[0]: must be an HTTP status (100-599)",
        ),
        (
            "a lower-case retry method",
            service("    retries:\n      methods: [get]\n"),
            "services[0].retries.methods[0]: `get` is not an HTTP method",
        ),
        (
            "a zero budget ratio",
            service("    retries:\n      budget: { ratio: 0, min_per_second: 10 }\n"),
            "services[0].retries.budget.ratio: must be greater than 0 and at most 1",
        ),
        (
            "a body buffer above 64 MiB",
            service("    retries:\n      buffer_body: 100000000\n"),
            "services[0].retries.buffer_body: must be at most 67108864 bytes",
        ),
        (
            "a failure ratio above 1",
            service("    circuit_breaker:\n      failure_ratio: 1.5\n"),
            "services[0].circuit_breaker.failure_ratio: must be greater than 0 and at most 1",
        ),
        (
            "zero minimum requests",
            service("    circuit_breaker:\n      min_requests: 0\n"),
            "services[0].circuit_breaker.min_requests: must be at least 1",
        ),
        (
            "a breaker window under 10ms",
            service("    circuit_breaker:\n      window: 1ms\n"),
            "services[0].circuit_breaker.window: must be at least 10ms",
        ),
        (
            "a zero open time",
            service("    circuit_breaker:\n      open_for: 0s\n"),
            "services[0].circuit_breaker.open_for: must be greater than zero",
        ),
        (
            "zero half-open requests",
            service("    circuit_breaker:\n      half_open_requests: 0\n"),
            "services[0].circuit_breaker.half_open_requests: must be between 1 and 1000",
        ),
        (
            "a breaker failure status out of range",
            service("    circuit_breaker:\n      failure_statuses: [99]\n"),
            "services[0].circuit_breaker.failure_statuses[0]: must be an HTTP status",
        ),
        (
            "a zero connect timeout on a route",
            route("    timeouts: { connect: 0s, per_try: 2s }\n"),
            "routes[0].timeouts.connect: must be greater than zero",
        ),
        (
            "too many attempts on a route",
            route("    retries: { attempts: 30 }\n"),
            "routes[0].retries.attempts: must be at most 10",
        ),
        (
            "an unknown retry condition on a route",
            route("    retries: { on: [nope] }\n"),
            "routes[0].retries.on[0]: unknown retry condition `nope`",
        ),
        (
            "an unknown key in a circuit_breaker block",
            "services:\n  - name: a\n    url: http://a:1\n    circuit_breaker:\n      open_after: 3\n"
                .to_owned(),
            "unknown field `open_after`",
        ),
    ];
    table::assert_rows(cases.iter().map(|(name, yaml, needle)| {
        (
            *name,
            read_error(yaml).and_then(|e| table::contains_all(&e, &[needle])),
        )
    }));
}
