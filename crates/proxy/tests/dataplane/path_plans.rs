//! Plan-level plugins through the real gateway: the documented example
//! (docs/apps-and-subscriptions.md, "Plan plugins") end to end, the order
//! of levels (route < plan < consumer), plan access plugins caught up
//! after the subscription check, only approved subscriptions bringing
//! their plan's plugins, and plugins refused at plan level.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Resp, TestGateway, req, send};
use gatehouse_core::KeyHasher;
use gatehouse_testkit::Upstream;

fn doc_example() -> String {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/apps-and-subscriptions.md"),
    )
    .unwrap();
    let section = &doc[doc.find("### Plan plugins").unwrap()..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_string()
}

async fn call(gw: &TestGateway, method: &str, key: &str, body: usize) -> Resp {
    let b = gatehouse_testkit::body::full("z".repeat(body));
    send(
        req(method, &gw.url("/v2/orders"))
            .header("x-api-key", key)
            .body(b)
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn the_documented_plan_example_behaves_as_its_table_says() {
    let up = Upstream::echo().await;
    let yaml = doc_example().replace("http://127.0.0.1:9000", &up.url());
    let gw = TestGateway::start(&yaml).await;
    let gold = "acme-mobile-2026-key";
    let free = "acme-web-key-0001";
    let r = call(&gw, "GET", gold, 0).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-tier"], "gold");
    let r = call(&gw, "GET", free, 0).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-tier"], "standard");
    let hits = up.hits();
    call(&gw, "POST", free, 2048)
        .await
        .assert_problem(413, "payload-too-large");
    assert_eq!(up.hits(), hits, "refused before the upstream");
    let r = call(&gw, "POST", gold, 2048).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body_len"], 2048);
    // Same answers again: the merged chains are reused, not rebuilt.
    for _ in 0..3 {
        assert_eq!(
            call(&gw, "GET", gold, 0).await.json()["headers"]["x-tier"],
            "gold"
        );
        assert_eq!(
            call(&gw, "GET", free, 0).await.json()["headers"]["x-tier"],
            "standard"
        );
    }
}

const SECRET: &str = "integration-test-secret-0123456789";

fn hash(key: &str) -> String {
    KeyHasher::new(SECRET.as_bytes()).hash(key).to_string()
}

/// Three apps of two consumers: `gold-app` (consumer `vip`, which has a
/// `headers` plugin of its own), `silver-app` and `pending-app` (consumer
/// `plain`). `gold` sets `x-level: plan` and refuses 127.0.0.1 via
/// `ip-restriction`, unless `open_gold`.
fn levels(up: &Upstream, open_gold: bool) -> String {
    let deny = if open_gold { "192.0.2.1" } else { "127.0.0.1" };
    format!(
        r#"server:
  key_hash_secret: "{SECRET}"
services:
  - name: s
    url: "{url}"
routes:
  - name: r
    service: s
    paths: ["/v2/orders"]
    plugins:
      - name: key-auth
      - name: headers
        config:
          request:
            set:
              x-level: route
apis:
  - name: orders
    version: v2
    routes: [r]
consumers:
  - username: vip
    apps:
      - name: gold-app
        keys:
          - hash: "{gold}"
    plugins:
      - name: headers
        config:
          request:
            set:
              x-level: consumer
  - username: plain
    apps:
      - name: silver-app
        keys:
          - hash: "{silver}"
      - name: pending-app
        keys:
          - hash: "{pending}"
plans:
  - name: gold
    plugins:
      - name: ip-restriction
        config:
          deny: ["{deny}"]
      - name: headers
        config:
          request:
            set:
              x-level: plan
  - name: silver
    plugins:
      - name: headers
        config:
          request:
            set:
              x-level: plan
subscriptions:
  - app: gold-app
    api: orders
    plan: gold
    status: approved
  - app: silver-app
    api: orders
    plan: silver
    status: approved
  - app: pending-app
    api: orders
    plan: silver
    status: pending
"#,
        url = up.url(),
        gold = hash("gold-key-0001"),
        silver = hash("silver-key-01"),
        pending = hash("pending-key-1"),
    )
}

#[tokio::test]
async fn plan_plugins_sit_between_route_and_consumer_and_run_their_access_phase() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&levels(&up, false)).await;
    // The gold plan's ip-restriction runs once the plan is known (after
    // key-auth and the subscription check), though it sorts before
    // key-auth: refused.
    call(&gw, "GET", "gold-key-0001", 0)
        .await
        .assert_problem(403, "ip-forbidden");
    // Silver: the plan's headers replace the route's.
    let r = call(&gw, "GET", "silver-key-01", 0).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-level"], "plan");
    // A pending subscription brings no plan (and no plan plugins); the
    // API does not require a subscription, so the call goes through.
    let r = call(&gw, "GET", "pending-key-1", 0).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-level"], "route");

    // Gold opened up: the consumer's headers win over the plan's.
    gw.reload(&levels(&up, true)).await.unwrap();
    for _ in 0..3 {
        let r = call(&gw, "GET", "gold-key-0001", 0).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["headers"]["x-level"], "consumer");
    }
}

#[tokio::test]
async fn a_plugin_with_a_rewrite_phase_is_refused_at_plan_level() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&levels(&up, true)).await;
    let bad = levels(&up, true).replace(
        "  - name: silver\n    plugins:\n",
        "  - name: silver\n    plugins:\n      - name: request-id\n",
    );
    let err = gw.reload(&bad).await.unwrap_err();
    assert!(err.contains("plans[1].plugins[0].name"), "{err}");
    assert!(err.contains("cannot be attached to a plan"), "{err}");
}
