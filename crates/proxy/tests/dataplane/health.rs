//! Active health checks through the real gateway: a failing target leaves
//! rotation and comes back when healthy; with every target down requests
//! get a fast 503; TCP probes eject a refusing target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{TestGateway, get};
use gatehouse_testkit::{RefusingAddr, Upstream, body};

/// An upstream whose /health answers 200 or 503 as `healthy` says.
async fn switchable(name: &'static str, healthy: Arc<AtomicBool>) -> Upstream {
    Upstream::builder()
        .name(name)
        .record(10_000)
        .handler(move |req| {
            let healthy = healthy.clone();
            async move {
                let status = if req.uri().path() == "/health" && !healthy.load(Ordering::Relaxed) {
                    503
                } else {
                    200
                };
                http::Response::builder()
                    .status(status)
                    .header("x-upstream", name)
                    .body(body::full(name))
                    .unwrap()
            }
        })
        .start()
        .await
}

fn config(targets: &[String], check: &str) -> String {
    let list: String = targets
        .iter()
        .map(|t| format!("      - target: \"{t}\"\n"))
        .collect();
    format!(
        "services:\n  - name: pool\n    url: \"http://pool.internal\"\n    targets:\n{list}    health_checks:\n      active:\n{check}routes:\n  - name: r\n    service: pool\n"
    )
}

const HTTP_CHECK: &str = "        path: /health\n        interval: 50ms\n        timeout: 200ms\n        healthy_threshold: 2\n        unhealthy_threshold: 2\n";

/// Polls until `cond` holds (deadline 5 s).
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn who(gw: &TestGateway) -> String {
    get(&gw.url("/x"))
        .await
        .header("x-upstream")
        .unwrap_or("-")
        .to_string()
}

#[tokio::test]
async fn unhealthy_target_leaves_rotation_and_comes_back() {
    let a_ok = Arc::new(AtomicBool::new(true));
    let b_ok = Arc::new(AtomicBool::new(true));
    let a = switchable("a", a_ok.clone()).await;
    let b = switchable("b", b_ok.clone()).await;
    let gw = TestGateway::start(&config(
        &[a.addr().to_string(), b.addr().to_string()],
        HTTP_CHECK,
    ))
    .await;

    // Probes carry the service's Host header.
    eventually("a probe reaches a", async || {
        a.requests().iter().any(|r| r.uri.path() == "/health")
    })
    .await;
    let probe = a
        .requests()
        .into_iter()
        .find(|r| r.uri.path() == "/health")
        .unwrap();
    assert_eq!(probe.header("host"), Some("pool.internal"));

    b_ok.store(false, Ordering::Relaxed);
    eventually("b is taken out", async || {
        let mut all_a = true;
        for _ in 0..6 {
            all_a &= who(&gw).await == "a";
        }
        all_a
    })
    .await;

    b_ok.store(true, Ordering::Relaxed);
    eventually("b is back in rotation", async || {
        let mut seen_b = false;
        for _ in 0..6 {
            seen_b |= who(&gw).await == "b";
        }
        seen_b
    })
    .await;
}

#[tokio::test]
async fn every_target_down_is_a_fast_503() {
    let a_ok = Arc::new(AtomicBool::new(false));
    let a = switchable("a", a_ok.clone()).await;
    let b = switchable("b", a_ok.clone()).await;
    let gw = TestGateway::start(&config(
        &[a.addr().to_string(), b.addr().to_string()],
        HTTP_CHECK,
    ))
    .await;
    eventually("both targets out", async || {
        get(&gw.url("/x")).await.status == 503
    })
    .await;
    let started = Instant::now();
    let r = get(&gw.url("/x")).await;
    r.assert_problem(503, "no-healthy-upstream");
    assert!(started.elapsed() < Duration::from_millis(500));
    let forwarded = |u: &Upstream| u.requests().iter().filter(|r| r.uri.path() == "/x").count();
    let before = forwarded(&a) + forwarded(&b);
    for _ in 0..5 {
        get(&gw.url("/x"))
            .await
            .assert_problem(503, "no-healthy-upstream");
    }
    assert_eq!(
        forwarded(&a) + forwarded(&b),
        before,
        "requests reached unhealthy targets"
    );
}

#[tokio::test]
async fn tcp_probe_ejects_a_refusing_target() {
    let a = Upstream::builder().name("a").start().await;
    let dead = RefusingAddr::new();
    let tcp = "        type: tcp\n        interval: 50ms\n        timeout: 200ms\n        unhealthy_threshold: 1\n";
    let gw = TestGateway::start(&config(
        &[a.addr().to_string(), dead.addr().to_string()],
        tcp,
    ))
    .await;
    eventually("the refusing target is ejected", async || {
        let mut ok = true;
        for _ in 0..6 {
            ok &= get(&gw.url("/x")).await.status == 200;
        }
        ok
    })
    .await;
}

#[test]
fn invalid_health_check_config_is_located() {
    // Each malformed value stops the read at that value.
    let active = "services:\n  - name: s\n    url: http://x:1\n    health_checks:\n      active:\n";
    for (field, needle) in [
        (
            "path: health",
            "hc.yaml:6:15: services[0].health_checks.active.path: must be a path starting with `/`",
        ),
        (
            "interval: 0s",
            "services[0].health_checks.active.interval: must be greater than zero",
        ),
        (
            "unhealthy_threshold: 0",
            "services[0].health_checks.active.unhealthy_threshold: must be at least 1",
        ),
        (
            "expected_statuses: [99]",
            "services[0].health_checks.active.expected_statuses[0]: must be an HTTP status",
        ),
    ] {
        let err = gatehouse_config::parse_str(&format!("{active}        {field}\n"), "hc.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}

fn passive_config(targets: &[String], passive: &str) -> String {
    let list: String = targets
        .iter()
        .map(|t| format!("      - target: \"{t}\"\n"))
        .collect();
    format!(
        "services:\n  - name: pool\n    url: \"http://pool.internal\"\n    targets:\n{list}    health_checks:\n      passive:\n{passive}routes:\n  - name: r\n    service: pool\n"
    )
}

#[tokio::test]
async fn passive_checks_eject_a_failing_target_until_the_cool_down_ends() {
    let good = Upstream::builder().name("good").start().await;
    let bad = Upstream::builder().name("bad").status(500).start().await;
    let gw = TestGateway::start(&passive_config(
        &[good.addr().to_string(), bad.addr().to_string()],
        "        consecutive_failures: 2\n        cool_down: 400ms\n",
    ))
    .await;
    // Round-robin alternates: the bad target fails twice within 4 requests.
    for _ in 0..4 {
        get(&gw.url("/x")).await;
    }
    assert_eq!(bad.hits(), 2);
    let ejected_at = Instant::now();
    for _ in 0..6 {
        let r = get(&gw.url("/x")).await;
        assert_eq!(r.header("x-upstream"), Some("good"));
    }
    assert_eq!(bad.hits(), 2, "an ejected target must get no traffic");
    // After the cool-down the target gets traffic again.
    eventually("the bad target is back after its cool-down", async || {
        get(&gw.url("/x")).await;
        bad.hits() > 2
    })
    .await;
    assert!(ejected_at.elapsed() >= Duration::from_millis(350));
}

#[tokio::test]
async fn passive_checks_count_connect_failures() {
    let good = Upstream::builder().name("good").start().await;
    let dead = RefusingAddr::new();
    // Retries off, so the client sees the connect failure the check counts
    // (with the default retry it would be retried on the good target).
    let gw = TestGateway::start(&passive_config(
        &[good.addr().to_string(), dead.addr().to_string()],
        "        consecutive_failures: 1\n        cool_down: 60s\n    retries:\n      attempts: 0\n",
    ))
    .await;
    let first_two = [
        get(&gw.url("/x")).await.status,
        get(&gw.url("/x")).await.status,
    ];
    assert!(first_two.contains(&502), "{first_two:?}");
    for _ in 0..6 {
        assert_eq!(get(&gw.url("/x")).await.status, 200);
    }
}

#[tokio::test]
async fn a_single_checked_target_that_is_down_gets_a_fast_503() {
    let ok = Arc::new(AtomicBool::new(false));
    let only = switchable("only", ok.clone()).await;
    let gw = TestGateway::start(&config(&[only.addr().to_string()], HTTP_CHECK)).await;
    eventually("the only target is out", async || {
        get(&gw.url("/x")).await.status == 503
    })
    .await;
    get(&gw.url("/x"))
        .await
        .assert_problem(503, "no-healthy-upstream");
    ok.store(true, Ordering::Relaxed);
    eventually("the only target is back", async || {
        get(&gw.url("/x")).await.status == 200
    })
    .await;
}

/// An HTTP/2 (h2c) service is probed over HTTP/2, like its requests: an
/// upstream that speaks only HTTP/2 stays healthy and sees h2 probes.
#[tokio::test]
async fn http2_services_are_probed_over_http2() {
    let up = Upstream::builder().http2_only().record(1_000).start().await;
    let yaml = format!(
        "services:\n  - name: h2\n    url: \"{}\"\n    protocol: http2\n    health_checks:\n      active:\n{HTTP_CHECK}routes:\n  - name: r\n    service: h2\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    eventually("three probes reached the upstream", async || {
        up.requests()
            .iter()
            .filter(|r| r.uri.path() == "/health")
            .count()
            >= 3
    })
    .await;
    for r in up.requests().iter().filter(|r| r.uri.path() == "/health") {
        assert_eq!(r.version, http::Version::HTTP_2);
    }
    // Still in rotation: the probes succeed.
    assert_eq!(get(&gw.url("/x")).await.status, 200);
}
