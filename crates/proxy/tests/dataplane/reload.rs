//! Hot reload: new configs swap in atomically, bad ones are rejected while
//! the old one keeps serving, and requests in flight finish on the config
//! they started with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestGateway, empty, get, req, send_with};
use gatehouse_testkit::Upstream;

fn config(a: &Upstream, b: &Upstream, target: &str, header: &str) -> String {
    format!(
        r#"services:
  - name: a
    url: "{a}"
  - name: b
    url: "{b}"
routes:
  - name: r
    service: {target}
    paths: ["/*"]
    plugins:
      - name: headers
        config:
          response:
            set:
              x-config: "{header}"
"#,
        a = a.url(),
        b = b.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_fail_no_request() {
    let a = Upstream::builder().name("a").start().await;
    let b = Upstream::builder()
        .name("b")
        .delay(Duration::from_millis(5))
        .start()
        .await;
    let gw = Arc::new(TestGateway::start(&config(&a, &b, "a", "0")).await);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (gw, stop, ok, failed) = (gw.clone(), stop.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            let client = gatehouse_testkit::http1_client();
            while !stop.load(Ordering::Relaxed) {
                let r = send_with(&client, empty(req("GET", &gw.url("/load")))).await;
                // Every response must come from one consistent config: the
                // route's upstream and its header change together.
                let upstream = r.header("x-upstream").unwrap_or("");
                let version: usize = r
                    .header("x-config")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(usize::MAX);
                let expected = if version.is_multiple_of(2) { "a" } else { "b" };
                if r.status == 200 && upstream == expected {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for i in 1..=50u32 {
        let target = if i.is_multiple_of(2) { "a" } else { "b" };
        gw.reload(&config(&a, &b, target, &i.to_string()))
            .await
            .expect("reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} failed requests out of {}", ok + failed);
    assert!(ok > 200, "too little load to prove anything: {ok}");
    assert!(a.hits() > 0 && b.hits() > 0);
}

#[tokio::test]
async fn in_flight_request_finishes_on_its_config() {
    let slow = Upstream::builder()
        .name("slow")
        .delay(Duration::from_millis(400))
        .start()
        .await;
    let fast = Upstream::builder().name("fast").start().await;
    let gw = Arc::new(TestGateway::start(&config(&slow, &fast, "a", "old")).await);
    let g = gw.clone();
    let pending = tokio::spawn(async move { common::get(&g.url("/x")).await });
    assert!(slow.wait_for_hits(1, Duration::from_secs(2)).await);
    gw.reload(&config(&slow, &fast, "b", "new")).await.unwrap();
    let after = get(&gw.url("/x")).await;
    assert_eq!(after.header("x-upstream"), Some("fast"));
    assert_eq!(after.header("x-config"), Some("new"));
    let before = pending.await.unwrap();
    assert_eq!(before.status, 200);
    assert_eq!(before.header("x-upstream"), Some("slow"));
    // The response phases of the old request ran with the old chain.
    assert_eq!(before.header("x-config"), Some("old"));
}

#[tokio::test]
async fn invalid_config_is_rejected_and_old_one_keeps_serving() {
    let a = Upstream::builder().name("a").start().await;
    let b = Upstream::builder().name("b").start().await;
    let gw = TestGateway::start(&config(&a, &b, "a", "1")).await;
    // Dangling reference, unknown plugin option, and a broken route path.
    let bad = config(&a, &b, "missing", "1");
    let err = gw.reload(&bad).await.unwrap_err();
    assert!(
        err.contains("routes[0].service: no service named `missing`"),
        "{err}"
    );
    let bad = config(&a, &b, "b", "1").replace("set:", "sett:");
    let err = gw.reload(&bad).await.unwrap_err();
    assert!(err.contains("reload.yaml:"), "{err}");
    assert!(
        err.contains("routes[0].plugins[0].config.response"),
        "{err}"
    );
    let bad = config(&a, &b, "b", "1").replace("\"/*\"", "\"users\"");
    let err = gw.reload(&bad).await.unwrap_err();
    assert!(err.contains("routes[0].paths[0]"), "{err}");
    let r = get(&gw.url("/still")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("a"));
}
