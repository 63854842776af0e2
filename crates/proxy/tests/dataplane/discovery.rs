//! DNS-based target discovery through the real gateway, a real DNS server
//! (`testkit::DnsServer`) and real upstreams on 127.0.0.1-3: A records
//! spread traffic and are followed without a reload, a target that stays
//! keeps its pooled connection, SRV gives ports and weights, a silent DNS
//! at start gives a fast 503 until it answers, failures keep the last good
//! set, active checks probe new targets, reloads resolve before swapping,
//! and validation accepts DNS targets without resolving them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{TestGateway, get};
use gatehouse_testkit::dns::{Mode, Srv};
use gatehouse_testkit::{DnsServer, Upstream};

fn lo(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// Upstreams named `names` on 127.0.0.1, 127.0.0.2, ... all on one port
/// (the port an A-record target names).
async fn same_port(names: &[&str]) -> Vec<Upstream> {
    'attempt: for _ in 0..20 {
        let first = Upstream::builder().name(names[0]).start().await;
        let port = first.addr().port();
        let mut ups = vec![first];
        for (i, name) in names.iter().enumerate().skip(1) {
            let addr = SocketAddr::from((lo(u8::try_from(i).unwrap() + 1), port));
            match Upstream::builder().name(name).bind(addr).try_start().await {
                Ok(u) => ups.push(u),
                Err(_) => continue 'attempt,
            }
        }
        return ups;
    }
    panic!("no port free on every loopback address");
}

/// `server.dns` pointing at `dns`, short timeouts, plus `extra` lines.
fn dns_server(dns: &DnsServer, extra: &str) -> String {
    format!(
        "server:\n  dns:\n    nameservers: [\"{}\"]\n    timeout: 500ms\n    error_ttl: 200ms\n{extra}",
        dns.addr()
    )
}

const ROUTE: &str = "routes:\n  - name: r\n    service: api\n";

/// Sends `n` GETs one after the other; counts answers by `x-upstream`.
async fn tally(gw: &TestGateway, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let r = get(&gw.url("/x")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        *counts
            .entry(r.header("x-upstream").unwrap().to_string())
            .or_default() += 1;
    }
    counts
}

/// Polls until `cond` holds (deadline 5 s); returns how long it took.
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if cond().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn a_records_of_the_url_host_spread_traffic_and_changes_apply_without_reload() {
    let ups = same_port(&["u1", "u2", "u3"]).await;
    let port = ups[0].addr().port();
    let dns = DnsServer::start().await;
    dns.set_a("api.test", &[lo(1), lo(2)], 1);
    let gw = TestGateway::start(&format!(
        "{}services:\n  - name: api\n    url: \"http://api.test:{port}\"\n{ROUTE}",
        dns_server(&dns, "")
    ))
    .await;

    // Both addresses get traffic at once (the start waited for DNS).
    let counts = tally(&gw, 20).await;
    assert_eq!(counts.get("u1"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("u2"), Some(&10), "{counts:?}");
    // The URL's host stays the Host header.
    let v = get(&gw.url("/h")).await.json();
    assert_eq!(v["headers"]["host"], format!("api.test:{port}"));

    dns.set_a("api.test", &[lo(2), lo(3)], 1);
    let took = eventually("traffic reaches the new address", async || {
        get(&gw.url("/x")).await.header("x-upstream") == Some("u3")
    })
    .await;
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} with a 1 s TTL"
    );
    let u1_before = ups[0].hits();
    let counts = tally(&gw, 20).await;
    assert_eq!(counts.get("u2"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("u3"), Some(&10), "{counts:?}");
    assert_eq!(ups[0].hits(), u1_before, "the removed address gets nothing");
}

#[tokio::test]
async fn a_target_that_stays_keeps_its_pooled_connection() {
    let ups = same_port(&["u1", "u2", "u3"]).await;
    let port = ups[0].addr().port();
    let dns = DnsServer::start().await;
    dns.set_a("pool.test", &[lo(1), lo(2)], 1);
    let gw = TestGateway::start(&format!(
        "{}services:\n  - name: api\n    url: \"http://api.internal\"\n    targets:\n      - target: \"pool.test:{port}\"\n        weight: 5\n{ROUTE}",
        dns_server(&dns, "")
    ))
    .await;
    let counts = tally(&gw, 10).await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert_eq!(ups[1].connections(), 1);

    dns.set_a("pool.test", &[lo(2), lo(3)], 1);
    eventually("traffic reaches the new address", async || {
        get(&gw.url("/x")).await.header("x-upstream") == Some("u3")
    })
    .await;
    let u2_hits = ups[1].hits();
    tally(&gw, 10).await;
    assert!(
        ups[1].hits() > u2_hits,
        "the address that stays keeps traffic"
    );
    assert_eq!(
        ups[1].connections(),
        1,
        "the address that stays must keep its pooled connection across the change"
    );
    assert_eq!(ups[2].connections(), 1);
}

#[tokio::test]
async fn srv_records_give_ports_and_weights_from_the_lowest_priority() {
    let mut ups = Vec::new();
    for name in ["a", "b", "c", "backup"] {
        ups.push(Upstream::builder().name(name).start().await);
    }
    let port = |i: usize| ups[i].addr().port();
    let dns = DnsServer::start().await;
    for host in ["a.test", "b.test", "c.test", "backup.test"] {
        dns.set_a(host, &[lo(1)], 60);
    }
    dns.set_srv(
        "_http._tcp.api.test",
        &[
            Srv::new(10, 3, port(0), "a.test"),
            Srv::new(10, 1, port(1), "b.test"),
            // Weight 0 counts as 1.
            Srv::new(10, 0, port(2), "c.test"),
            // A target that does not resolve is left out.
            Srv::new(10, 5, 9, "missing.test"),
            // A higher priority number is only a fallback: never used.
            Srv::new(20, 100, port(3), "backup.test"),
        ],
        60,
    );
    let gw = TestGateway::start(&format!(
        "{}services:\n  - name: api\n    url: \"http://api.test\"\n    targets:\n      - srv: _http._tcp.api.test\n{ROUTE}",
        dns_server(&dns, "")
    ))
    .await;
    let counts = tally(&gw, 50).await;
    assert_eq!(counts.get("a"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("c"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("backup"), None, "{counts:?}");
}

#[tokio::test]
async fn silent_dns_at_start_gives_a_fast_503_until_it_answers() {
    let ups = same_port(&["u1"]).await;
    let port = ups[0].addr().port();
    let dns = DnsServer::start().await;
    dns.set_mode(Mode::Drop);
    let config = format!(
        "server:\n  dns:\n    nameservers: [\"{}\"]\n    timeout: 1s\n    error_ttl: 100ms\nservices:\n  - name: api\n    url: \"http://api.test:{port}\"\n{ROUTE}",
        dns.addr()
    );
    let started = Instant::now();
    let gw = TestGateway::start(&config).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the start waits for DNS at most `timeout`, took {took:?}"
    );

    let sent = Instant::now();
    let r = get(&gw.url("/x")).await;
    let took = sent.elapsed();
    let v = r.assert_problem(503, "no-healthy-upstream");
    assert!(
        took < Duration::from_millis(500),
        "the 503 must not wait for DNS (1 s timeout), took {took:?}"
    );
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("`api` has no resolved targets yet (DNS: "),
        "{detail}"
    );
    assert!(dns.queries_for("api.test") > 0, "the gateway asked");

    // The reason follows the DNS failure.
    eventually("the detail names the timeout", async || {
        let v = get(&gw.url("/x")).await.json();
        v["detail"].as_str().unwrap().contains("timed out after 1s")
    })
    .await;
    dns.set_mode(Mode::NxDomain);
    eventually("the detail names the NXDOMAIN", async || {
        let v = get(&gw.url("/x")).await.json();
        v["detail"]
            .as_str()
            .unwrap()
            .contains("NXDOMAIN for `api.test`")
    })
    .await;

    // DNS starts answering: traffic flows, no reload.
    dns.set_a("api.test", &[lo(1)], 1);
    dns.set_mode(Mode::Answer);
    eventually("traffic flows once DNS answers", async || {
        get(&gw.url("/x")).await.status == 200
    })
    .await;
    assert_eq!(gw.gateway.shared().snapshot().version, 1, "no reload");
}

#[tokio::test]
async fn failures_after_a_good_answer_keep_the_last_good_set() {
    let ups = same_port(&["u1", "u2"]).await;
    let port = ups[0].addr().port();
    let dns = DnsServer::start().await;
    dns.set_a("api.test", &[lo(1), lo(2)], 1);
    let gw = TestGateway::start(&format!(
        "{}services:\n  - name: api\n    url: \"http://api.test:{port}\"\n{ROUTE}",
        dns_server(&dns, "")
    ))
    .await;
    assert_eq!(tally(&gw, 4).await.len(), 2);

    for mode in [Mode::NxDomain, Mode::ServFail, Mode::Drop] {
        dns.set_mode(mode);
        // Wait until the gateway has asked (and failed) at least twice.
        let asked = dns.queries_for("api.test");
        eventually("the gateway re-resolves", async || {
            dns.queries_for("api.test") >= asked + 4
        })
        .await;
        let counts = tally(&gw, 10).await;
        assert_eq!(counts.get("u1"), Some(&5), "{mode:?}: {counts:?}");
        assert_eq!(counts.get("u2"), Some(&5), "{mode:?}: {counts:?}");
    }
    // A name that disappears from the zone is an NXDOMAIN too.
    dns.set_mode(Mode::Answer);
    dns.remove("api.test");
    let asked = dns.queries_for("api.test");
    eventually("the gateway re-resolves", async || {
        dns.queries_for("api.test") >= asked + 4
    })
    .await;
    assert_eq!(tally(&gw, 4).await.len(), 2);
}

#[tokio::test]
async fn active_health_checks_probe_targets_that_dns_adds() {
    let ups = same_port(&["u1", "u2"]).await;
    let port = ups[0].addr().port();
    let dns = DnsServer::start().await;
    dns.set_a("api.test", &[lo(1)], 1);
    let gw = TestGateway::start(&format!(
        "{}services:\n  - name: api\n    url: \"http://api.test:{port}\"\n    health_checks:\n      active:\n        path: /health\n        interval: 50ms\n{ROUTE}",
        dns_server(&dns, "")
    ))
    .await;
    eventually("u1 is probed", async || {
        ups[0].requests().iter().any(|r| r.uri.path() == "/health")
    })
    .await;
    assert_eq!(ups[1].hits(), 0);
    dns.set_a("api.test", &[lo(1), lo(2)], 1);
    eventually("the new address is probed", async || {
        ups[1].requests().iter().any(|r| r.uri.path() == "/health")
    })
    .await;
    drop(gw);
}

#[tokio::test]
async fn a_reload_resolves_before_it_swaps_and_remembers_answers_while_dns_is_down() {
    let ups = same_port(&["u1", "u2"]).await;
    let port = ups[0].addr().port();
    let fixed = Upstream::builder().name("fixed").start().await;
    let dns = DnsServer::start().await;
    dns.set_a("api.test", &[lo(1), lo(2)], 1);
    let gw = TestGateway::start(&format!(
        "{}services:\n  - name: api\n    url: \"{}\"\n{ROUTE}",
        dns_server(&dns, ""),
        fixed.url()
    ))
    .await;
    assert_eq!(get(&gw.url("/x")).await.header("x-upstream"), Some("fixed"));

    // Right after the reload returns, the DNS-backed service has targets.
    let dynamic = format!(
        "{}services:\n  - name: api\n    url: \"http://api.test:{port}\"\n{ROUTE}",
        dns_server(&dns, "")
    );
    gw.reload(&dynamic).await.unwrap();
    assert_eq!(tally(&gw, 4).await.len(), 2);

    // A reload while DNS is silent keeps the last good answers.
    dns.set_mode(Mode::Drop);
    gw.reload(&dynamic).await.unwrap();
    let counts = tally(&gw, 4).await;
    assert_eq!(counts.get("u1"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("u2"), Some(&2), "{counts:?}");
}

#[tokio::test]
async fn localhost_and_ip_targets_stay_fixed() {
    let up = Upstream::builder().name("local").start().await;
    let dns = DnsServer::start().await;
    let gw = TestGateway::start(&format!(
        "{}services:\n  - name: api\n    url: \"http://localhost:{}\"\n    targets:\n      - target: \"localhost:{}\"\n      - target: \"{}\"\n{ROUTE}",
        dns_server(&dns, ""),
        up.addr().port(),
        up.addr().port(),
        up.addr()
    ))
    .await;
    let counts = tally(&gw, 6).await;
    assert_eq!(counts.get("local"), Some(&6));
    assert_eq!(dns.queries(), 0, "no DNS query for localhost or IPs");
}

#[tokio::test]
async fn validation_accepts_dns_targets_without_resolving_them() {
    let dns = DnsServer::start().await;
    let yaml = format!(
        "{}services:\n  - name: api\n    url: \"http://api.test:8080\"\n  - name: pool\n    url: \"http://pool.test\"\n    targets:\n      - target: \"pool.test:8080\"\n        weight: 10\n      - target: \"10.0.0.1:8080\"\n      - srv: _http._tcp.pool.test\n{ROUTE}",
        dns_server(&dns, "    min_ttl: 2s\n    max_ttl: 1m\n")
    );
    let loaded = gatehouse_config::parse_str(&yaml, "dns.yaml").unwrap();
    gatehouse_proxy::check(&loaded, &gatehouse_plugins::registry()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(dns.queries(), 0, "compiling must not touch the network");
}

#[test]
fn bad_srv_names_ports_and_dns_settings_are_located() {
    // Cross-field mistakes are all reported at once.
    let yaml = "\
server:
  dns:
    nameservers: [\"10.0.0.2\", \"[::1]:53\"]
    min_ttl: 10m
    max_ttl: 1m
services:
  - name: api
    url: http://api.test
    targets:
      - srv: _http._tcp.api.test
        weight: 5
      - target: api.test:80
        srv: _http._tcp.api.test
      - weight: 3
";
    let err = gatehouse_config::parse_str(yaml, "bad.yaml")
        .unwrap_err()
        .to_string();
    for expected in [
        "server.dns.max_ttl: must not be less than min_ttl (600s)",
        "bad.yaml:11:9: services[0].targets[0].weight: not allowed with `srv`",
        "services[0].targets[1].srv: set either `target` or `srv`, not both",
        "services[0].targets[2]: needs `target: host:port` or `srv: _service._proto.name`",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // A malformed value stops the read at that value.
    for (yaml, expected) in [
        (
            "server:\n  dns:\n    nameservers: [\"10.0.0.2\", \"nope\"]\n",
            "bad.yaml:3:31: server.dns.nameservers[1]: `nope` is not an IP address with an optional port",
        ),
        (
            "server:\n  dns:\n    nameservers: [\"10.0.0.3:0\"]\n",
            "server.dns.nameservers[0]: `10.0.0.3:0` is not an IP address",
        ),
        (
            "server:\n  dns:\n    error_ttl: 0s\n",
            "server.dns.error_ttl: must be greater than zero",
        ),
    ] {
        let err = gatehouse_config::parse_str(yaml, "bad.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let target = |entry: &str| {
        format!(
            "services:\n  - name: api\n    url: http://api.test\n    targets:\n      - {entry}\n"
        )
    };
    for (entry, expected) in [
        (
            "srv: api.test",
            "bad.yaml:5:14: services[0].targets[0].srv: `api.test` is not an SRV name (expected _service._proto.name",
        ),
        (
            "target: api.test:0",
            "services[0].targets[0].target: `api.test:0` is not host:port with a port from 1 to 65535",
        ),
        (
            "target: api.test",
            "services[0].targets[0].target: `api.test` is not host:port",
        ),
        (
            "target: bad_host!:80",
            "services[0].targets[0].target: `bad_host!` is neither an IP address nor a DNS name",
        ),
        (
            "srv: _http._tcp.api.test:80",
            "services[0].targets[0].srv: `_http._tcp.api.test:80` is not an SRV name",
        ),
    ] {
        let err = gatehouse_config::parse_str(&target(entry), "bad.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}
