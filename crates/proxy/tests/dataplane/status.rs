//! The status listener: liveness, readiness (also while draining), the
//! status document and the metrics page, on an address of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::{TestGateway, get, req, send};
use gatehouse_testkit::Upstream;

fn config(upstream: &str) -> String {
    format!(
        "server:\n  status_listen: \"127.0.0.1:0\"\nservices:\n  - name: up\n    url: \"{upstream}\"\nroutes:\n  - name: all\n    service: up\n    paths: [\"/*\"]\n"
    )
}

/// Every sample line of a Prometheus text page as (name, value), checking
/// that each family has its HELP and TYPE lines first.
fn samples(page: &str) -> Vec<(String, f64)> {
    let mut typed = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split_whitespace().next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| typed.contains(*f))
            .unwrap_or(name);
        assert!(typed.contains(family), "no TYPE for {name}: {page}");
        assert!(name.starts_with("gatehouse_"), "{name}");
        out.push((name.to_string(), value.parse().expect("a number")));
    }
    out
}

#[tokio::test]
async fn health_status_and_metrics_answer_on_their_own_address() {
    let up = Upstream::builder().name("up").start().await;
    let gw = TestGateway::start(&config(&up.url())).await;
    let status = gw.gateway.status_addr().expect("a status listener");
    let url = |p: &str| format!("http://{status}{p}");

    let live = get(&url("/health/live")).await;
    assert_eq!(live.status, 200);
    let ready = get(&url("/health/ready")).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
    let doc = get(&url("/status")).await.json();
    assert_eq!(doc["config_version"], 1);
    assert_eq!(doc["ready"], true);
    assert!(doc["version"].as_str().is_some());

    let page = get(&url("/metrics")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let s = samples(&page.text());
    assert!(
        s.contains(&("gatehouse_config_version".into(), 1.0)),
        "{s:?}"
    );
    assert!(s.contains(&("gatehouse_ready".into(), 1.0)), "{s:?}");

    gw.reload(&config(&up.url())).await.unwrap();
    assert_eq!(get(&url("/status")).await.json()["config_version"], 2);
    let s = samples(&get(&url("/metrics")).await.text());
    assert!(
        s.contains(&("gatehouse_config_version".into(), 2.0)),
        "{s:?}"
    );

    // (method, path, status)
    let rows = [
        ("POST", "/health/live", 405),
        ("DELETE", "/metrics", 405),
        ("GET", "/health", 404),
        ("GET", "/metrics/../status", 404),
        ("GET", "/", 404),
    ];
    for (method, path, want) in rows {
        let r = send(common::empty(req(method, &url(path)))).await;
        assert_eq!(r.status, want, "{method} {path}");
    }
    // The proxy's listener does not answer for the status paths: they go
    // to the route (the upstream) like any other path.
    let through_proxy = get(&gw.url("/health/ready")).await;
    assert_eq!(through_proxy.status, 200);
    assert_eq!(through_proxy.header("x-upstream"), Some("up"));
}

#[tokio::test]
async fn readiness_turns_503_while_draining() {
    let slow = Upstream::builder()
        .name("slow")
        .delay(Duration::from_millis(1500))
        .start()
        .await;
    let gw = TestGateway::start(&config(&slow.url())).await;
    let status = gw.gateway.status_addr().unwrap();
    let slow_url = gw.url("/slow");
    let in_flight = tokio::spawn(async move { get(&slow_url).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let TestGateway { gateway } = gw;
    let shutdown = tokio::spawn(gateway.shutdown_within(Duration::from_secs(5)));
    let mut seen = None;
    for _ in 0..50 {
        let r = get(&format!("http://{status}/health/ready")).await;
        if r.status == 503 {
            seen = Some(r.json());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.expect("503 while draining")["status"], "draining");
    assert_eq!(
        get(&format!("http://{status}/health/live")).await.status,
        200
    );
    assert_eq!(
        in_flight.await.unwrap().status,
        200,
        "the request in flight finished"
    );
    assert!(shutdown.await.unwrap(), "drained in time");
}
