//! Concurrency protection: a service's in-flight cap, its bounded wait
//! queue and queue timeout, through the real gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestGateway, get};
use gatehouse_testkit::Upstream;

fn config(up: &Upstream, concurrency: &str) -> String {
    format!(
        "services:\n  - name: slow\n    url: \"{}\"\n    concurrency:\n{concurrency}routes:\n  - name: r\n    service: slow\n",
        up.url()
    )
}

async fn occupy(gw: &Arc<TestGateway>, up: &Upstream) -> tokio::task::JoinHandle<common::Resp> {
    let g = gw.clone();
    let pending = tokio::spawn(async move { get(&g.url("/first")).await });
    assert!(up.wait_for_hits(1, Duration::from_secs(5)).await);
    pending
}

#[tokio::test]
async fn full_service_without_queue_rejects_at_once() {
    let up = Upstream::builder()
        .delay(Duration::from_millis(400))
        .start()
        .await;
    let gw = Arc::new(TestGateway::start(&config(&up, "      max_in_flight: 1\n")).await);
    let first = occupy(&gw, &up).await;
    let started = Instant::now();
    let r = get(&gw.url("/second")).await;
    let doc = r.assert_problem(503, "service-overloaded");
    assert!(doc["detail"].as_str().unwrap().contains("queue is full"));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(up.hits(), 1);
    assert_eq!(first.await.unwrap().status, 200);
    // The slot is free again once the first response has been sent.
    assert_eq!(get(&gw.url("/third")).await.status, 200);
}

#[tokio::test]
async fn queued_request_waits_for_a_slot() {
    let up = Upstream::builder()
        .delay(Duration::from_millis(300))
        .start()
        .await;
    let gw = Arc::new(
        TestGateway::start(&config(
            &up,
            "      max_in_flight: 1\n      queue_size: 1\n      queue_timeout: 5s\n",
        ))
        .await,
    );
    let first = occupy(&gw, &up).await;
    let second = get(&gw.url("/second")).await;
    assert_eq!(second.status, 200);
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn queue_timeout_bounds_the_wait() {
    let up = Upstream::builder()
        .delay(Duration::from_millis(1500))
        .start()
        .await;
    let gw = Arc::new(
        TestGateway::start(&config(
            &up,
            "      max_in_flight: 1\n      queue_size: 5\n      queue_timeout: 150ms\n",
        ))
        .await,
    );
    let _first = occupy(&gw, &up).await;
    let started = Instant::now();
    let r = get(&gw.url("/second")).await;
    r.assert_problem(503, "service-overloaded");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(140) && took < Duration::from_millis(1200),
        "{took:?}"
    );
    assert_eq!(up.hits(), 1);
}
