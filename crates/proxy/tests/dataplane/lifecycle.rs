//! API lifecycle through the real gateway: draft routes are not served,
//! deprecated APIs carry Deprecation / Sunset / Link on every response,
//! retired ones answer 410, and versions coexist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{TestGateway, empty, get, req, send};
use gatehouse_testkit::Upstream;

fn config(up: &Upstream, v1_state: &str, v3_state: &str) -> String {
    format!(
        r#"services:
  - name: orders
    url: "{url}"
routes:
  - name: orders-v1
    service: orders
    paths: ["/v1/orders"]
  - name: orders-v1-private
    service: orders
    paths: ["/v1/private"]
    plugins:
      - name: key-auth
  - name: orders-v2
    service: orders
    paths: ["/v2/orders"]
  - name: orders-v3
    service: orders
    paths: ["/v3/orders"]
  - name: v3-fallback
    paths: ["/v3/*"]
    plugins:
      - name: mock
        config:
          body: fallback
apis:
  - name: orders
    version: v1
    routes: [orders-v1, orders-v1-private]
    state: {v1_state}
    deprecated_at: 2026-06-01T00:00:00Z
    sunset: 2027-01-01T00:00:00Z
    successor: /v2/orders
  - name: orders
    version: v2
    routes: [orders-v2]
    state: published
  - name: orders
    version: v3
    routes: [orders-v3]
    state: {v3_state}
"#,
        url = up.url()
    )
}

#[tokio::test]
async fn deprecated_v1_and_published_v2_coexist_with_exact_headers() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config(&up, "deprecated", "draft")).await;

    let r = get(&gw.url("/v1/orders")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/v1/orders");
    assert_eq!(r.header("deprecation"), Some("@1780272000"));
    assert_eq!(r.header("sunset"), Some("Fri, 01 Jan 2027 00:00:00 GMT"));
    assert_eq!(
        r.header("link"),
        Some("</v2/orders>; rel=\"successor-version\"")
    );

    // Errors of a deprecated API carry the headers too.
    let r = get(&gw.url("/v1/private")).await;
    r.assert_problem(401, "unauthorized");
    assert_eq!(r.header("deprecation"), Some("@1780272000"));
    assert_eq!(
        r.header("link"),
        Some("</v2/orders>; rel=\"successor-version\"")
    );

    let r = get(&gw.url("/v2/orders")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/v2/orders");
    for h in ["deprecation", "sunset", "link"] {
        assert_eq!(r.header(h), None, "{h} on a published API");
    }
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn draft_routes_are_absent_and_publishing_serves_them() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config(&up, "published", "draft")).await;

    // The draft route is not in the table: the next route that matches
    // takes the request, as if the draft did not exist.
    let r = get(&gw.url("/v3/orders")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "fallback");
    assert_eq!(up.hits(), 0);

    // Without another route it is a plain 404 no-route.
    let yaml =
        config(&up, "published", "draft").replace("paths: [\"/v3/*\"]", "paths: [\"/other\"]");
    gw.reload(&yaml).await.unwrap();
    get(&gw.url("/v3/orders"))
        .await
        .assert_problem(404, "no-route");

    gw.reload(&config(&up, "published", "published"))
        .await
        .unwrap();
    let r = get(&gw.url("/v3/orders")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/v3/orders");
    assert_eq!(up.hits(), 1);
    // Published v1 has no lifecycle headers even with the fields set.
    assert_eq!(get(&gw.url("/v1/orders")).await.header("deprecation"), None);
}

#[tokio::test]
async fn retired_api_answers_410_with_the_successor_and_never_reaches_upstream() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config(&up, "retired", "draft")).await;
    for path in ["/v1/orders", "/v1/private"] {
        let r = send(empty(
            req("POST", &gw.url(path)).header("x-api-key", "whatever"),
        ))
        .await;
        let doc = r.assert_problem(410, "api-retired");
        assert_eq!(
            doc["detail"],
            "`orders` v1 is retired; its successor is /v2/orders"
        );
        assert_eq!(
            r.header("link"),
            Some("</v2/orders>; rel=\"successor-version\"")
        );
        assert_eq!(r.header("sunset"), Some("Fri, 01 Jan 2027 00:00:00 GMT"));
    }
    assert_eq!(get(&gw.url("/v2/orders")).await.status, 200);
    assert_eq!(up.hits(), 1);
}

#[test]
fn openapi_document_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "routes:\n  - name: r\n    paths: [\"/r\"]\n    plugins:\n      - name: mock\napis:\n  - name: orders\n    version: v1\n    routes: [r]\n    openapi: specs/orders.yaml\n";
    let loaded = gatehouse_config::parse_str(yaml, "gw.yaml")
        .unwrap()
        .with_base_dir(dir.path());
    let err = gatehouse_proxy::check(&loaded, &gatehouse_plugins::registry())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gw.yaml:10:5: apis[0].openapi: no file at `"),
        "{err}"
    );
    assert!(err.contains("specs/orders.yaml`"), "{err}");

    std::fs::create_dir(dir.path().join("specs")).unwrap();
    std::fs::write(dir.path().join("specs/orders.yaml"), "openapi: 3.1.0\n").unwrap();
    gatehouse_proxy::check(&loaded, &gatehouse_plugins::registry()).unwrap();
}
