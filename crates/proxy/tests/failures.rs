//! Upstream failures and gateway-made rejections, through the real gateway:
//! each is a problem+json with the right status and request id, arrives in
//! bounded time, and leaves the gateway serving.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common {
    pub use gatehouse_proxy::testing::*;
}

use std::time::{Duration, Instant};

use common::{Resp, TestGateway, empty, get, req, send, send_with};
use gatehouse_testkit::raw::{self, End};
use gatehouse_testkit::{
    AcceptThenCloseServer, BlackholeServer, RefusingAddr, StreamingBody, Upstream, body,
    current_rss_kb, http1_client,
};
use http_body_util::BodyExt;

/// One service `up` at `url` (with extra service lines, each indented four
/// spaces) and a route `/api/*` to it.
fn one_service(url: &str, service_extra: &str) -> String {
    format!(
        "services:\n  - name: up\n    url: \"{url}\"\n{service_extra}routes:\n  - name: api\n    service: up\n    paths: [\"/api/*\"]\n"
    )
}

/// GET `path` with a client request id; returns the response and how long
/// it took.
async fn timed_get(gw: &TestGateway, path: &str, request_id: &str) -> (Resp, Duration) {
    let started = Instant::now();
    let r = send(empty(
        req("GET", &gw.url(path)).header("x-request-id", request_id),
    ))
    .await;
    (r, started.elapsed())
}

/// The problem carries the client's request id, in the body and the header.
fn assert_request_id(r: &Resp, doc: &serde_json::Value, id: &str) {
    assert_eq!(doc["request_id"], id, "{doc}");
    assert_eq!(r.header("x-request-id"), Some(id));
}

#[tokio::test]
async fn connection_refused_is_502_upstream_unreachable() {
    let refusing = RefusingAddr::new();
    let gw = TestGateway::start(&one_service(&refusing.url(), "")).await;
    let (r, took) = timed_get(&gw, "/api/x", "refused-1").await;
    let doc = r.assert_problem(502, "upstream-unreachable");
    assert_request_id(&r, &doc, "refused-1");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // The problem names the service, never the upstream's address.
    assert!(
        !r.text().contains(&refusing.addr().to_string()),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_504_after_the_timeout() {
    let hole = BlackholeServer::start().await;
    let gw = TestGateway::start(&one_service(&hole.url(), "    timeout: 300ms\n")).await;
    let (r, took) = timed_get(&gw, "/api/x", "hole-1").await;
    let doc = r.assert_problem(504, "upstream-timeout");
    assert_request_id(&r, &doc, "hole-1");
    assert!(took >= Duration::from_millis(300), "took {took:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(hole.hits(), 1, "the gateway did connect");
}

#[tokio::test]
async fn a_slow_upstream_is_504_after_the_timeout() {
    let up = Upstream::builder()
        .delay(Duration::from_secs(2))
        .start()
        .await;
    let gw = TestGateway::start(&one_service(&up.url(), "    timeout: 200ms\n")).await;
    let (r, took) = timed_get(&gw, "/api/slow", "slow-1").await;
    let doc = r.assert_problem(504, "upstream-timeout");
    assert_request_id(&r, &doc, "slow-1");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(up.hits(), 1, "the request reached the upstream");
}

#[tokio::test]
async fn an_upstream_that_accepts_then_resets_is_502() {
    let server = AcceptThenCloseServer::start().await;
    let gw = TestGateway::start(&one_service(&server.url(), "")).await;
    let (r, took) = timed_get(&gw, "/api/x", "rst-1").await;
    let doc = r.assert_problem(502, "upstream-unreachable");
    assert_request_id(&r, &doc, "rst-1");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(server.hits() >= 1);
}

#[tokio::test]
async fn an_upstream_that_accepts_then_closes_is_502() {
    let server = AcceptThenCloseServer::start_fin().await;
    let gw = TestGateway::start(&one_service(&server.url(), "")).await;
    let (r, took) = timed_get(&gw, "/api/x", "fin-1").await;
    let doc = r.assert_problem(502, "upstream-unreachable");
    assert_request_id(&r, &doc, "fin-1");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(server.hits() >= 1);
}

/// Two resetting upstreams (declared length and chunked) and a healthy one.
async fn reset_setup() -> (Upstream, Upstream, Upstream, TestGateway) {
    let sized = Upstream::builder().reset_mid_body().start().await;
    let chunked = Upstream::builder().reset_mid_body_chunked().start().await;
    let ok = Upstream::echo().await;
    let yaml = format!(
        r#"services:
  - name: sized
    url: "{sized}"
  - name: chunked
    url: "{chunked}"
  - name: ok
    url: "{ok}"
routes:
  - name: sized
    service: sized
    paths: ["/sized"]
  - name: chunked
    service: chunked
    paths: ["/chunked"]
  - name: ok
    service: ok
    paths: ["/ok"]
"#,
        sized = sized.url(),
        chunked = chunked.url(),
        ok = ok.url()
    );
    let gw = TestGateway::start(&yaml).await;
    (sized, chunked, ok, gw)
}

/// The response has started when the upstream breaks, so the status stays
/// 200: the client must see a body that fails, not a silently short one.
#[tokio::test]
async fn an_upstream_reset_mid_body_fails_the_client_body() {
    let (_sized, _chunked, _ok, gw) = reset_setup().await;
    let client = http1_client();
    for path in ["/sized", "/chunked"] {
        let resp = client
            .request(empty(req("GET", &gw.url(path))))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(resp.headers().contains_key("x-request-id"), "{path}");
        if path == "/sized" {
            assert_eq!(resp.headers()["content-length"], "1048576");
        }
        let collected = resp.into_body().collect().await;
        assert!(
            collected.is_err(),
            "{path}: a body cut by the upstream was delivered as complete ({} bytes)",
            collected.map(|c| c.to_bytes().len()).unwrap_or_default()
        );
    }
    let r = send_with(&client, empty(req("GET", &gw.url("/ok")))).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn an_upstream_reset_mid_body_leaves_a_raw_response_incomplete() {
    let (_sized, _chunked, _ok, gw) = reset_setup().await;
    for path in ["/sized", "/chunked"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: gw\r\n\r\n");
        let raw = raw::send(gw.addr(), request.as_bytes()).await.unwrap();
        assert_ne!(raw.end, End::TimedOut, "{path}: connection left open");
        let first = raw.first().unwrap();
        assert_eq!(first.status, 200, "{path}");
        assert!(!first.complete, "{path}: response looks complete");
        assert!(first.body.len() <= 16 * 1024, "{path}");
    }
    assert_eq!(get(&gw.url("/ok")).await.status, 200);
}

#[tokio::test]
async fn a_route_without_a_service_or_answering_plugin_is_503() {
    let gw = TestGateway::start(
        "routes:\n  - name: empty\n    paths: [\"/empty\"]\n    plugins:\n      - name: headers\n        config:\n          response:\n            set:\n              x-seen: \"1\"\n  - name: bare\n    paths: [\"/bare\"]\n",
    )
    .await;
    for path in ["/empty", "/bare"] {
        let (r, _) = timed_get(&gw, path, "nosvc-1").await;
        let doc = r.assert_problem(503, "no-service");
        assert_request_id(&r, &doc, "nosvc-1");
        if path == "/empty" {
            // The plugin ran, but only edits headers.
            assert_eq!(r.header("x-seen"), Some("1"));
        }
    }
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let up = Upstream::echo().await;
    let yaml = format!(
        "services:\n  - name: up\n    url: \"{}\"\nroutes:\n  - name: items\n    service: up\n    paths: [\"/items\"]\n    methods: [GET, POST]\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;

    let (r, _) = timed_get(&gw, "/nope", "404-1").await;
    let doc = r.assert_problem(404, "no-route");
    assert_request_id(&r, &doc, "404-1");

    let r = send(empty(
        req("DELETE", &gw.url("/items")).header("x-request-id", "405-1"),
    ))
    .await;
    let doc = r.assert_problem(405, "method-not-allowed");
    assert_request_id(&r, &doc, "405-1");
    let allow = r.header("allow").expect("Allow header");
    let mut methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    methods.sort_unstable();
    assert_eq!(methods, ["GET", "POST"], "Allow: {allow}");
    assert_eq!(up.hits(), 0);
}

fn size_limited(up: &Upstream) -> String {
    format!(
        "services:\n  - name: up\n    url: \"{}\"\nroutes:\n  - name: upload\n    service: up\n    paths: [\"/upload\"]\n    plugins:\n      - name: request-size-limit\n        config:\n          max_bytes: 1024\n",
        up.url()
    )
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_413_before_the_upstream() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&size_limited(&up)).await;
    let r = send(
        req("POST", &gw.url("/upload"))
            .header("x-request-id", "big-1")
            .body(body::full(vec![b'x'; 2048]))
            .unwrap(),
    )
    .await;
    let doc = r.assert_problem(413, "payload-too-large");
    assert_request_id(&r, &doc, "big-1");
    assert_eq!(up.hits(), 0, "the upstream must not receive anything");

    // Within the limit it goes through.
    let r = send(
        req("POST", &gw.url("/upload"))
            .body(body::full(vec![b'x'; 1024]))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 1024);
}

/// Without a declared length the plugin counts the stream; the proxy maps
/// the `BodyTooLarge` stream error to 413 (`handler::forward_upstream`).
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&size_limited(&up)).await;
    let r = send(
        req("POST", &gw.url("/upload"))
            .header("x-request-id", "chunked-1")
            .body(StreamingBody::zeros(2048, 256).chunked().boxed())
            .unwrap(),
    )
    .await;
    let doc = r.assert_problem(413, "payload-too-large");
    assert_request_id(&r, &doc, "chunked-1");
    assert!(up.hits() <= 1, "at most the head was forwarded");

    let r = send(
        req("POST", &gw.url("/upload"))
            .body(StreamingBody::zeros(1000, 256).chunked().boxed())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let echo = r.json();
    assert_eq!(echo["body_len"], 1000);
    assert_eq!(echo["headers"]["transfer-encoding"], "chunked");
}

/// Failures must not leak: 1,000 refused and timed-out requests in a row
/// leave the process's resident memory roughly where it was.
#[tokio::test]
async fn a_thousand_failures_do_not_grow_memory() {
    let refusing = RefusingAddr::new();
    let slow = Upstream::builder()
        .delay(Duration::from_millis(100))
        .record(0)
        .start()
        .await;
    let yaml = format!(
        r#"services:
  - name: refused
    url: "{refused}"
  - name: slow
    url: "{slow}"
    timeout: 1ms
routes:
  - name: refused
    service: refused
    paths: ["/refused"]
  - name: slow
    service: slow
    paths: ["/slow"]
"#,
        refused = refusing.url(),
        slow = slow.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let client = http1_client();
    let refused_url = gw.url("/refused");
    let slow_url = gw.url("/slow");
    let run = |n: usize| {
        let client = client.clone();
        let (refused_url, slow_url) = (refused_url.clone(), slow_url.clone());
        async move {
            for i in 0..n {
                let (url, status) = if i % 2 == 0 {
                    (&refused_url, 502)
                } else {
                    (&slow_url, 504)
                };
                let r = send_with(&client, empty(req("GET", url))).await;
                assert_eq!(r.status, status, "request {i}: {}", r.text());
            }
        }
    };

    // Warm up pools, allocator arenas and lazily built state first.
    run(200).await;
    let before = current_rss_kb().unwrap();
    let started = Instant::now();
    run(1000).await;
    let took = started.elapsed();
    let grown_kb = current_rss_kb().unwrap().saturating_sub(before);
    assert!(
        grown_kb < 30 * 1024,
        "RSS grew by {grown_kb} KiB over 1,000 failures (in {took:?})"
    );
    // Still healthy for the next request.
    assert_eq!(get(&refused_url).await.status, 502);
}
