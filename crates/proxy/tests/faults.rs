//! The fault matrix: every way an upstream can misbehave, through the real
//! gateway, against real misbehaving servers. For each fault the gateway
//! answers within the configured timeout (plus a small slack), the answer is
//! problem+json with a stable type (or, once the response has started, a
//! body that fails instead of ending short), and the gateway keeps serving.
//! Then 10,000 of these failures in a row must leave memory flat.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common {
    pub use gatehouse_proxy::testing::*;
}

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestGateway, empty, req, send_with};
use gatehouse_testkit::dns::{DnsServer, Mode};
use gatehouse_testkit::tls::{TestCa, server_config};
use gatehouse_testkit::{
    AcceptThenCloseServer, BlackholeServer, RefusingAddr, Upstream, current_rss_kb, http1_client,
};
use http_body_util::BodyExt;

/// How the gateway must answer one fault.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// problem+json with this status and type slug, within `bound`.
    Problem(u16, &'static str),
    /// Headers arrive (200) but the body fails: the upstream died mid-response.
    BrokenBody,
}

/// One fault: a route path, what the gateway must answer, and the longest
/// it may take (the configured timeout plus slack for a loaded machine).
#[derive(Clone, Copy, Debug)]
struct Fault {
    name: &'static str,
    path: &'static str,
    expect: Expect,
    bound: Duration,
}

const SLACK: Duration = Duration::from_millis(700);

/// The misbehaving servers, kept alive for the test's duration.
struct Servers {
    _refusing: RefusingAddr,
    _blackhole: BlackholeServer,
    _closing: AcceptThenCloseServer,
    _slow: Upstream,
    _dying: Upstream,
    _untrusted: Upstream,
    _dns: DnsServer,
    _ok: Upstream,
}

/// Starts the servers and a gateway whose connect and response timeouts are
/// `timeout`.
async fn setup(timeout: Duration) -> (Servers, TestGateway, Vec<Fault>) {
    let refusing = RefusingAddr::new();
    let blackhole = BlackholeServer::start().await;
    let closing = AcceptThenCloseServer::start().await;
    let slow = Upstream::builder()
        .delay(Duration::from_secs(30))
        .record(0)
        .start()
        .await;
    let dying = Upstream::builder().reset_mid_body().start().await;
    // A TLS upstream whose certificate no CA the gateway trusts signed.
    let untrusted = Upstream::builder()
        .tls(server_config(
            &TestCa::new("unknown CA").server_cert(&["backend.internal"]),
            &["http/1.1"],
            None,
        ))
        .start()
        .await;
    // A name server that never answers.
    let dns = DnsServer::start().await;
    dns.set_mode(Mode::Drop);
    let ok = Upstream::echo().await;
    let ms = timeout.as_millis();
    let yaml = format!(
        r#"server:
  dns:
    nameservers: ["{dns}"]
    timeout: {ms}ms
services:
  - name: refused
    url: "{refused}"
    connect_timeout: {ms}ms
  - name: blackhole
    url: "{blackhole}"
    timeout: {ms}ms
  - name: closing
    url: "{closing}"
    timeout: 2s
  - name: slow
    url: "{slow}"
    timeout: {ms}ms
  - name: dying
    url: "{dying}"
    timeout: 2s
  - name: untrusted
    url: "https://backend.internal"
    connect_timeout: 2s
    targets:
      - target: "{untrusted}"
  - name: nodns
    url: "http://api.test:80"
  - name: ok
    url: "{ok}"
routes:
  - {{ name: refused, service: refused, paths: ["/refused"] }}
  - {{ name: blackhole, service: blackhole, paths: ["/blackhole"] }}
  - {{ name: closing, service: closing, paths: ["/closing"] }}
  - {{ name: slow, service: slow, paths: ["/slow"] }}
  - {{ name: dying, service: dying, paths: ["/dying"] }}
  - {{ name: untrusted, service: untrusted, paths: ["/untrusted"] }}
  - {{ name: nodns, service: nodns, paths: ["/nodns"] }}
  - {{ name: ok, service: ok, paths: ["/ok"] }}
"#,
        dns = dns.addr(),
        untrusted = untrusted.addr(),
        refused = refusing.url(),
        blackhole = blackhole.url(),
        closing = closing.url(),
        slow = slow.url(),
        dying = dying.url(),
        ok = ok.url(),
    );
    let gw = TestGateway::start(&yaml).await;
    // Faults that end on a timer get `timeout`; the others fail on their
    // own and only need the generous 2 s bound (loaded machines).
    let bound = timeout + SLACK;
    let fast_failure = Duration::from_secs(2) + SLACK;
    let faults = vec![
        Fault {
            name: "connection refused",
            path: "/refused",
            expect: Expect::Problem(502, "upstream-unreachable"),
            bound,
        },
        Fault {
            name: "accepts and never answers",
            path: "/blackhole",
            expect: Expect::Problem(504, "upstream-timeout"),
            bound,
        },
        Fault {
            name: "accepts then closes",
            path: "/closing",
            expect: Expect::Problem(502, "upstream-unreachable"),
            bound: fast_failure,
        },
        Fault {
            name: "slow upstream",
            path: "/slow",
            expect: Expect::Problem(504, "upstream-timeout"),
            bound,
        },
        Fault {
            name: "TLS handshake failure",
            path: "/untrusted",
            expect: Expect::Problem(502, "upstream-tls"),
            bound: fast_failure,
        },
        Fault {
            name: "DNS answering nothing",
            path: "/nodns",
            expect: Expect::Problem(503, "no-healthy-upstream"),
            bound,
        },
        Fault {
            name: "killed mid-response",
            path: "/dying",
            expect: Expect::BrokenBody,
            bound: fast_failure,
        },
    ];
    let servers = Servers {
        _refusing: refusing,
        _blackhole: blackhole,
        _closing: closing,
        _slow: slow,
        _dying: dying,
        _untrusted: untrusted,
        _dns: dns,
        _ok: ok,
    };
    (servers, gw, faults)
}

/// Sends one request for `fault` and checks the answer and its timing.
async fn check(client: &gatehouse_testkit::Client, gw: &TestGateway, fault: &Fault, id: &str) {
    let started = Instant::now();
    let resp = client
        .request(empty(
            req("GET", &gw.url(fault.path)).header("x-request-id", id),
        ))
        .await
        .unwrap_or_else(|e| panic!("{}: the gateway did not answer: {e}", fault.name));
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.into_body().collect().await;
    let took = started.elapsed();
    assert!(
        took <= fault.bound,
        "{}: took {took:?}, more than {:?}",
        fault.name,
        fault.bound
    );
    match fault.expect {
        Expect::Problem(want_status, slug) => {
            let body = body.unwrap_or_else(|e| panic!("{}: body failed: {e}", fault.name));
            assert_eq!(status, want_status, "{}", fault.name);
            assert_eq!(content_type, "application/problem+json", "{}", fault.name);
            let doc: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap();
            assert_eq!(
                doc["type"],
                format!("urn:gatehouse:problem:{slug}"),
                "{}: {doc}",
                fault.name
            );
            assert_eq!(doc["status"], want_status, "{}", fault.name);
            assert_eq!(doc["request_id"], id, "{}", fault.name);
        }
        Expect::BrokenBody => {
            assert_eq!(status, 200, "{}", fault.name);
            assert!(
                body.is_err(),
                "{}: the body ended normally although the upstream died",
                fault.name
            );
        }
    }
}

#[tokio::test]
async fn every_fault_is_answered_in_time_with_a_stable_type() {
    let (_servers, gw, faults) = setup(Duration::from_millis(150)).await;
    let client = http1_client();
    for (i, fault) in faults.iter().enumerate() {
        check(&client, &gw, fault, &format!("fault-{i}")).await;
        // The gateway keeps serving after each fault.
        let ok = send_with(&client, empty(req("GET", &gw.url("/ok")))).await;
        assert_eq!(ok.status, 200, "after {}", fault.name);
    }
}

/// 10,000 failures of every kind, 64 at a time: memory stays flat, every
/// answer is in time and typed, and the gateway still serves afterwards.
/// Short timeouts keep the test quick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_failures_leave_memory_flat() {
    let (_servers, gw, faults) = setup(Duration::from_millis(40)).await;
    let gw = Arc::new(gw);
    let faults = Arc::new(faults);
    let client = http1_client();
    let run = |total: usize| {
        let (gw, faults, client) = (gw.clone(), faults.clone(), client.clone());
        async move {
            let workers = 64;
            let mut tasks = Vec::with_capacity(workers);
            for w in 0..workers {
                let (gw, faults, client) = (gw.clone(), faults.clone(), client.clone());
                tasks.push(tokio::spawn(async move {
                    let mut i = w;
                    while i < total {
                        let fault = &faults[i % faults.len()];
                        check(&client, &gw, fault, &format!("m-{i}")).await;
                        i += workers;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    // Warm up pools, allocator arenas and lazily built state first.
    run(1_000).await;
    let before = current_rss_kb().unwrap();
    let started = Instant::now();
    run(10_000).await;
    let took = started.elapsed();
    let after = current_rss_kb().unwrap();
    let grown_kb = after.saturating_sub(before);
    eprintln!("10,000 failures in {took:?}; RSS {before} KiB -> {after} KiB");
    assert!(
        grown_kb < 20 * 1024,
        "RSS grew by {grown_kb} KiB over 10,000 failures (in {took:?})"
    );
    let ok = send_with(&client, empty(req("GET", &gw.url("/ok")))).await;
    assert_eq!(ok.status, 200);
}
