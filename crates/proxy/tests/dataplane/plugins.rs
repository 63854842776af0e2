//! Plugins through the real gateway: attachment levels (global, service,
//! route, consumer), deterministic order, short-circuit answers, and each
//! first plugin's user-visible behaviour end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{TestGateway, empty, get, req, send};
use gatehouse_testkit::{Upstream, body};

fn levels(up: &Upstream) -> String {
    format!(
        r#"services:
  - name: up
    url: "{url}"
    plugins:
      - name: headers
        config:
          response:
            set:
              x-level: service
routes:
  - name: svc-level
    service: up
    paths: ["/svc"]
  - name: route-level
    service: up
    paths: ["/route"]
    plugins:
      - name: headers
        config:
          response:
            set:
              x-level: route
  - name: keyed
    service: up
    paths: ["/keyed"]
    plugins:
      - name: key-auth
      - name: headers
        config:
          request:
            set:
              x-consumer: "$(consumer)"
          response:
            set:
              x-level: route
  - name: other
    paths: ["/other"]
    plugins:
      - name: mock
        config:
          body: mocked
plugins:
  - name: headers
    config:
      response:
        set:
          x-level: global
          x-global: "yes"
consumers:
  - username: alice
    credentials:
      key_auth:
        - key: alice-key-123
    plugins:
      - name: headers
        config:
          response:
            set:
              x-level: consumer
  - username: bob
    credentials:
      key_auth:
        - key: bob-key-4567
"#,
        url = up.url()
    )
}

#[tokio::test]
async fn most_specific_level_wins_per_plugin_name() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&levels(&up)).await;
    let r = get(&gw.url("/svc")).await;
    assert_eq!(r.header("x-level"), Some("service"));
    // The service-level `headers` replaced the global one entirely.
    assert_eq!(r.header("x-global"), None);
    assert_eq!(
        get(&gw.url("/route")).await.header("x-level"),
        Some("route")
    );
    let r = get(&gw.url("/other")).await;
    assert_eq!(r.header("x-level"), Some("global"));
    assert_eq!(r.text(), "mocked");
}

#[tokio::test]
async fn consumer_plugins_apply_once_the_consumer_is_identified() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&levels(&up)).await;
    let r = send(empty(
        req("GET", &gw.url("/keyed")).header("x-api-key", "alice-key-123"),
    ))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-level"), Some("consumer"));
    // alice's `headers` replaced the route's one, so its request part is gone.
    assert_eq!(r.json()["headers"].get("x-consumer"), None);
    assert_eq!(
        r.json()["headers"].get("x-api-key"),
        None,
        "key must be hidden from upstream"
    );

    let r = send(empty(req("GET", &gw.url("/keyed?apikey=bob-key-4567")))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-level"), Some("route"));
    assert_eq!(r.json()["headers"]["x-consumer"], "bob");
    assert_eq!(r.json()["query"], serde_json::Value::Null);

    let r = get(&gw.url("/keyed")).await;
    r.assert_problem(401, "unauthorized");
    assert!(r.header("www-authenticate").is_some());
    send(empty(
        req("GET", &gw.url("/keyed")).header("x-api-key", "wrong-key-000"),
    ))
    .await
    .assert_problem(401, "unauthorized");
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn cors_preflight_and_actual_requests() {
    let up = Upstream::echo().await;
    let yaml = format!(
        r#"services:
  - name: up
    url: "{url}"
routes:
  - name: api
    service: up
    paths: ["/api/*"]
    methods: [GET, POST]
    plugins:
      - name: cors
        config:
          origins: ["https://app.example.com"]
          credentials: true
          max_age: 600
          exposed_headers: [x-total]
"#,
        url = up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    // Preflight: answered by the gateway even though OPTIONS is not listed.
    let r = send(empty(
        req("OPTIONS", &gw.url("/api/items"))
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type"),
    ))
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert_eq!(up.hits(), 0, "preflight must not reach the upstream");

    let r = send(empty(
        req("OPTIONS", &gw.url("/api/items"))
            .header("origin", "https://evil.example.com")
            .header("access-control-request-method", "POST"),
    ))
    .await;
    r.assert_problem(403, "cors-rejected");

    let r = send(empty(
        req("GET", &gw.url("/api/items")).header("origin", "https://app.example.com"),
    ))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("x-total"));
    assert!(
        r.header("vary")
            .unwrap()
            .to_ascii_lowercase()
            .contains("origin")
    );

    // A preflight for a method the route does not serve stays a 405.
    let r = send(empty(
        req("OPTIONS", &gw.url("/api/items"))
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "DELETE"),
    ))
    .await;
    r.assert_problem(405, "method-not-allowed");
}

#[tokio::test]
async fn ip_restriction_uses_the_resolved_client_address() {
    let up = Upstream::echo().await;
    let yaml = format!(
        r#"server:
  trusted_proxies: ["127.0.0.1"]
services:
  - name: up
    url: "{url}"
routes:
  - name: r
    service: up
    plugins:
      - name: ip-restriction
        config:
          deny: ["203.0.113.0/24"]
          allow: ["127.0.0.0/8", "198.51.100.0/24", "2001:db8::/32"]
"#,
        url = up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(get(&gw.url("/")).await.status, 200);
    let via = |xff: &'static str| empty(req("GET", &gw.url("/")).header("x-forwarded-for", xff));
    assert_eq!(send(via("198.51.100.7")).await.status, 200);
    assert_eq!(send(via("2001:db8::1")).await.status, 200);
    send(via("203.0.113.9"))
        .await
        .assert_problem(403, "ip-forbidden");
    send(via("192.0.2.1"))
        .await
        .assert_problem(403, "ip-forbidden");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn request_size_limit_rejects_before_the_upstream() {
    let up = Upstream::echo().await;
    let yaml = format!(
        "services:\n  - name: up\n    url: \"{}\"\nroutes:\n  - name: r\n    service: up\n    plugins:\n      - name: request-size-limit\n        config:\n          max_bytes: 1000\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let r = send(
        req("POST", &gw.url("/"))
            .body(body::full(vec![b'a'; 1000]))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = send(
        req("POST", &gw.url("/"))
            .body(body::full(vec![b'a'; 1001]))
            .unwrap(),
    )
    .await;
    r.assert_problem(413, "payload-too-large");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn mock_answers_without_a_backend_and_headers_edit_both_ways() {
    let up = Upstream::echo().await;
    let yaml = format!(
        r#"services:
  - name: up
    url: "{url}"
routes:
  - name: sandbox
    paths: ["/pets/{{id}}"]
    plugins:
      - name: mock
        config:
          json: {{ id: "{{id}}", kind: cat }}
          responses:
            - method: DELETE
              status: 204
  - name: edit
    service: up
    paths: ["/edit/{{id}}"]
    plugins:
      - name: headers
        config:
          request:
            remove: [x-remove-me]
            set:
              x-item: "$(capture.id)"
              x-req: "$(request_id)"
            add:
              x-multi: b
          response:
            remove: [x-upstream]
            add:
              x-extra: "1"
"#,
        url = up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let r = get(&gw.url("/pets/7")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), serde_json::json!({"id": "7", "kind": "cat"}));
    assert_eq!(
        send(empty(req("DELETE", &gw.url("/pets/7")))).await.status,
        204
    );

    let r = send(empty(
        req("GET", &gw.url("/edit/42"))
            .header("x-remove-me", "1")
            .header("x-multi", "a")
            .header("x-request-id", "req-abc"),
    ))
    .await;
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    assert_eq!(h.get("x-remove-me"), None);
    assert_eq!(h["x-item"], "42");
    assert_eq!(h["x-req"], "req-abc");
    assert_eq!(h["x-multi"], serde_json::json!(["a", "b"]));
    assert_eq!(r.header("x-upstream"), None);
    assert_eq!(r.header("x-extra"), Some("1"));
    assert_eq!(r.header("x-request-id"), Some("req-abc"));
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn request_id_plugin_changes_header_and_trust() {
    let up = Upstream::echo().await;
    let yaml = format!(
        r#"services:
  - name: up
    url: "{url}"
routes:
  - name: r
    service: up
    plugins:
      - name: request-id
        config:
          header: x-correlation-id
          trust_incoming: false
"#,
        url = up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let r = send(empty(
        req("GET", &gw.url("/")).header("x-correlation-id", "client-chosen"),
    ))
    .await;
    let id = r.header("x-correlation-id").expect("echoed").to_string();
    assert_ne!(id, "client-chosen");
    assert_eq!(r.json()["headers"]["x-correlation-id"], id.as_str());
    // The core x-request-id carries the same id, to the upstream and back,
    // even when the client sent one of its own.
    assert_eq!(r.header("x-request-id"), Some(id.as_str()));
    assert_eq!(r.json()["headers"]["x-request-id"], id.as_str());
    let r = send(empty(
        req("GET", &gw.url("/"))
            .header("x-correlation-id", "client-chosen")
            .header("x-request-id", "client-core-id"),
    ))
    .await;
    let id = r.header("x-correlation-id").expect("echoed").to_string();
    assert_ne!(id, "client-chosen");
    assert_eq!(r.header("x-request-id"), Some(id.as_str()));
    assert_eq!(r.json()["headers"]["x-request-id"], id.as_str());
}
