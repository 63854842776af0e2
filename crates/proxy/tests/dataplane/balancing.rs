//! Load balancing over a service's targets through the real gateway:
//! weighted round-robin, consistent hashing, least connections, drained
//! targets, and the URL host as the Host header.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestGateway, empty, get, req, send};
use gatehouse_testkit::Upstream;

async fn upstreams(n: usize) -> Vec<Upstream> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(Upstream::builder().name(&format!("u{i}")).start().await);
    }
    v
}

fn service(ups: &[&Upstream], weights: &[u32], lb: &str) -> String {
    let mut targets = String::new();
    for (u, w) in ups.iter().zip(weights) {
        targets.push_str(&format!(
            "      - target: \"{}\"\n        weight: {w}\n",
            u.addr()
        ));
    }
    format!(
        "services:\n  - name: pool\n    url: \"http://users.internal/api\"\n    targets:\n{targets}{lb}routes:\n  - name: r\n    service: pool\n    paths: [\"/*\"]\n"
    )
}

async fn tally(
    n: usize,
    build: impl Fn(usize) -> http::request::Builder,
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for i in 0..n {
        let r = send(empty(build(i))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        *counts
            .entry(r.header("x-upstream").unwrap().to_string())
            .or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn weighted_round_robin_is_exact_and_uses_the_url_host() {
    let ups = upstreams(3).await;
    let gw = TestGateway::start(&service(&[&ups[0], &ups[1], &ups[2]], &[2, 1, 1], "")).await;
    let counts = tally(40, |_| req("GET", &gw.url("/x"))).await;
    assert_eq!(counts["u0"], 20);
    assert_eq!(counts["u1"], 10);
    assert_eq!(counts["u2"], 10);
    let v = get(&gw.url("/y")).await.json();
    assert_eq!(v["headers"]["host"], "users.internal");
    assert_eq!(v["path"], "/api/y");
}

#[tokio::test]
async fn consistent_hash_keeps_a_key_on_one_target() {
    let ups = upstreams(3).await;
    let lb =
        "    load_balancing:\n      algorithm: consistent-hash\n      hash_on: header:x-user\n";
    let gw = TestGateway::start(&service(&[&ups[0], &ups[1], &ups[2]], &[1, 1, 1], lb)).await;
    let mut seen_targets = std::collections::HashSet::new();
    for user in 0..30 {
        let counts = tally(5, |_| {
            req("GET", &gw.url("/x")).header("x-user", format!("user-{user}"))
        })
        .await;
        assert_eq!(
            counts.len(),
            1,
            "user-{user} moved between targets: {counts:?}"
        );
        seen_targets.extend(counts.into_keys());
    }
    assert_eq!(
        seen_targets.len(),
        3,
        "30 users should spread over all targets"
    );
}

#[tokio::test]
async fn least_connections_avoids_the_busy_target() {
    let slow = Upstream::builder()
        .name("slow")
        .delay(Duration::from_millis(300))
        .start()
        .await;
    let fast = Upstream::builder().name("fast").start().await;
    let lb = "    load_balancing:\n      algorithm: least-connections\n";
    let gw = std::sync::Arc::new(TestGateway::start(&service(&[&slow, &fast], &[1, 1], lb)).await);
    // Occupy the slow target, then send quick requests: they must go to
    // the idle one while the slow request is in flight.
    let g = gw.clone();
    let pending = tokio::spawn(async move { get(&g.url("/slow")).await });
    let mut spins = 0;
    while slow.hits() == 0 && fast.hits() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        spins += 1;
        assert!(spins < 400);
    }
    // With both idle, the tie goes to the first target.
    assert_eq!(
        slow.hits(),
        1,
        "the first request should take the first target"
    );
    let counts = tally(10, |_| req("GET", &gw.url("/x"))).await;
    assert_eq!(counts.get("fast"), Some(&10), "{counts:?}");
    assert_eq!(pending.await.unwrap().header("x-upstream"), Some("slow"));
}

#[tokio::test]
async fn drained_targets_get_nothing_and_all_drained_is_503() {
    let ups = upstreams(2).await;
    let gw = TestGateway::start(&service(&[&ups[0], &ups[1]], &[1, 0], "")).await;
    let counts = tally(6, |_| req("GET", &gw.url("/x"))).await;
    assert_eq!(counts.get("u0"), Some(&6));
    let gw = TestGateway::start(&service(&[&ups[0], &ups[1]], &[0, 0], "")).await;
    get(&gw.url("/x"))
        .await
        .assert_problem(503, "no-healthy-upstream");
}

#[tokio::test]
async fn invalid_balancing_config_is_located() {
    // A malformed value stops the read at that value; cross-field checks
    // come after.
    let svc = "services:\n  - name: s\n    url: http://x\n";
    for (rest, want) in [
        (
            "    targets:\n      - target: nope\n",
            "lb.yaml:5:17: services[0].targets[0].target: `nope` is not host:port",
        ),
        (
            "    load_balancing:\n      algorithm: fastest\n",
            "lb.yaml:5:18: services[0].load_balancing.algorithm: unknown algorithm `fastest`",
        ),
        (
            "    load_balancing:\n      hash_on: header:x\n",
            "lb.yaml:5:7: services[0].load_balancing.hash_on: only used with `algorithm: consistent-hash`",
        ),
    ] {
        let err = gatehouse_config::parse_str(&format!("{svc}{rest}"), "lb.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
    }
}
