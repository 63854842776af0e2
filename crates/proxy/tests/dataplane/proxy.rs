//! Core proxying through the real gateway to real upstreams: methods and
//! bodies, path handling, Host, HTTP versions, routing predicates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{TestGateway, empty, get, req, send, send_with};
use gatehouse_testkit::{Upstream, body};

fn one_route(up: &Upstream, route_extra: &str) -> String {
    format!(
        "services:\n  - name: up\n    url: \"{}\"\nroutes:\n  - name: r\n    service: up\n{route_extra}",
        up.url()
    )
}

#[tokio::test]
async fn forwards_get_with_query_and_returns_upstream_response() {
    let up = Upstream::builder().name("a").start().await;
    let gw = TestGateway::start(&one_route(&up, "    paths: [\"/api/*\"]\n")).await;
    let r = get(&gw.url("/api/items?x=1&y=two")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("a"));
    let v = r.json();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/api/items");
    assert_eq!(v["query"], "x=1&y=two");
    // Host defaults to the upstream's authority.
    assert_eq!(v["headers"]["host"], up.addr().to_string());
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn forwards_post_body_and_status() {
    let up = Upstream::builder().status(201).start().await;
    let gw = TestGateway::start(&one_route(&up, "")).await;
    let r = send(
        req("POST", &gw.url("/anything"))
            .header("content-type", "text/plain")
            .body(body::full("hello upstream"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201);
    let v = r.json();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["body_len"], 14);
    assert_eq!(v["headers"]["content-type"], "text/plain");
}

#[tokio::test]
async fn strip_prefix_rewrite_and_service_base_path() {
    let up = Upstream::echo().await;
    let yaml = format!(
        r#"services:
  - name: up
    url: "{url}/base"
routes:
  - name: strip
    service: up
    paths: ["/svc/*"]
    strip_prefix: true
  - name: rewrite
    service: up
    paths: ["/users/{{id}}/posts/{{post}}"]
    rewrite: "/v2/posts/{{post}}?by={{id}}"
  - name: plain
    service: up
    paths: ["/plain"]
"#,
        url = up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(
        get(&gw.url("/svc/a/b?q=1")).await.json()["uri"],
        "/base/a/b?q=1"
    );
    assert_eq!(get(&gw.url("/svc")).await.json()["path"], "/base/");
    assert_eq!(get(&gw.url("/plain")).await.json()["path"], "/base/plain");
    let v = get(&gw.url("/users/7/posts/99")).await.json();
    assert_eq!(v["path"], "/base/v2/posts/99");
}

#[tokio::test]
async fn host_preserved_or_rewritten_per_route() {
    let up = Upstream::echo().await;
    let yaml = format!(
        r#"services:
  - name: up
    url: "{url}"
routes:
  - name: keep
    service: up
    paths: ["/keep"]
    preserve_host: true
  - name: set
    service: up
    paths: ["/set"]
    host_rewrite: internal.svc
"#,
        url = up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let r = send(empty(
        req("GET", &gw.url("/keep")).header("host", "api.example.com"),
    ))
    .await;
    assert_eq!(r.json()["headers"]["host"], "api.example.com");
    assert_eq!(r.json()["headers"]["x-forwarded-host"], "api.example.com");
    let r = send(empty(
        req("GET", &gw.url("/set")).header("host", "api.example.com"),
    ))
    .await;
    assert_eq!(r.json()["headers"]["host"], "internal.svc");
}

#[tokio::test]
async fn routes_by_host_method_header_query_and_priority() {
    let a = Upstream::builder().name("a").start().await;
    let b = Upstream::builder().name("b").start().await;
    let yaml = format!(
        r#"services:
  - name: a
    url: "{a}"
  - name: b
    url: "{b}"
routes:
  - name: any
    service: a
    paths: ["/*"]
  - name: host
    service: b
    hosts: ["*.example.com"]
    paths: ["/*"]
  - name: header
    service: b
    paths: ["/h"]
    headers:
      x-canary: "1"
  - name: query
    service: b
    paths: ["/q"]
    query:
      beta: ["yes", "true"]
  - name: delete
    service: b
    paths: ["/m"]
    methods: [DELETE]
  - name: low
    service: a
    paths: ["/p"]
  - name: high
    service: b
    paths: ["/*"]
    hosts: ["prio.test"]
    priority: 10
"#,
        a = a.url(),
        b = b.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let who = |r: &common::Resp| r.header("x-upstream").unwrap_or("?").to_string();
    assert_eq!(who(&get(&gw.url("/x")).await), "a");
    assert_eq!(
        who(&send(empty(
            req("GET", &gw.url("/x")).header("host", "api.example.com")
        ))
        .await),
        "b"
    );
    assert_eq!(
        who(&send(empty(
            req("GET", &gw.url("/x")).header("host", "example.com")
        ))
        .await),
        "a"
    );
    assert_eq!(
        who(&send(empty(req("GET", &gw.url("/h")).header("x-canary", "1"))).await),
        "b"
    );
    assert_eq!(who(&get(&gw.url("/h")).await), "a");
    assert_eq!(who(&get(&gw.url("/q?beta=true")).await), "b");
    assert_eq!(who(&get(&gw.url("/q?beta=no")).await), "a");
    assert_eq!(who(&send(empty(req("DELETE", &gw.url("/m")))).await), "b");
    // GET /m falls back to the catch-all route rather than 405.
    assert_eq!(who(&get(&gw.url("/m")).await), "a");
    // Explicit priority beats the more specific exact path.
    assert_eq!(
        who(&send(empty(req("GET", &gw.url("/p")).header("host", "prio.test"))).await),
        "b"
    );
}

#[tokio::test]
async fn api_version_by_header_query_and_path_segment() {
    let v1 = Upstream::builder().name("v1").start().await;
    let v2 = Upstream::builder().name("v2").start().await;
    let yaml = format!(
        r#"services:
  - name: v1
    url: "{v1}"
  - name: v2
    url: "{v2}"
routes:
  - name: h1
    service: v1
    paths: ["/orders"]
    version: {{ value: "1", header: api-version, default: true }}
  - name: h2
    service: v2
    paths: ["/orders"]
    version: {{ value: "2", header: api-version }}
  - name: q2
    service: v2
    paths: ["/items"]
    version: {{ value: "2024-06", query: version }}
  - name: p2
    service: v2
    paths: ["/users/{{id}}"]
    version: {{ value: v2, path: true, strip: true }}
"#,
        v1 = v1.url(),
        v2 = v2.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let who = |r: &common::Resp| r.header("x-upstream").unwrap_or("?").to_string();
    assert_eq!(who(&get(&gw.url("/orders")).await), "v1");
    assert_eq!(
        who(&send(empty(
            req("GET", &gw.url("/orders")).header("api-version", "2")
        ))
        .await),
        "v2"
    );
    assert_eq!(
        who(&send(empty(
            req("GET", &gw.url("/orders")).header("api-version", "1")
        ))
        .await),
        "v1"
    );
    send(empty(
        req("GET", &gw.url("/orders")).header("api-version", "3"),
    ))
    .await
    .assert_problem(404, "no-route");
    assert_eq!(who(&get(&gw.url("/items?version=2024-06")).await), "v2");
    get(&gw.url("/items")).await.assert_problem(404, "no-route");
    let r = get(&gw.url("/v2/users/5")).await;
    assert_eq!(who(&r), "v2");
    assert_eq!(r.json()["path"], "/users/5");
    get(&gw.url("/v1/users/5"))
        .await
        .assert_problem(404, "no-route");
}

#[tokio::test]
async fn h2c_downstream_to_http1_upstream_and_http1_to_h2_upstream() {
    let h1 = Upstream::builder().name("h1").http1_only().start().await;
    let h2 = Upstream::builder().name("h2").http2_only().start().await;
    let yaml = format!(
        r#"services:
  - name: h1
    url: "{h1}"
  - name: h2
    url: "{h2}"
    protocol: http2
routes:
  - name: to-h1
    service: h1
    paths: ["/one"]
  - name: to-h2
    service: h2
    paths: ["/two"]
"#,
        h1 = h1.url(),
        h2 = h2.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let h2c = gatehouse_testkit::h2c_client();
    let r = send_with(&h2c, empty(req("GET", &gw.url("/one")))).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["version"], "HTTP/1.1");
    assert_eq!(v["headers"]["via"], "2 gatehouse");
    let r = get(&gw.url("/two")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["version"], "HTTP/2.0");
    assert_eq!(r.json()["headers"]["via"], "1.1 gatehouse");
}

#[tokio::test]
async fn keep_alive_reuses_upstream_connections() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&one_route(&up, "")).await;
    let client = gatehouse_testkit::http1_client();
    for _ in 0..20 {
        let r = send_with(&client, empty(req("GET", &gw.url("/k")))).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(up.hits(), 20);
    assert_eq!(
        up.connections(),
        1,
        "sequential requests must reuse one pooled connection"
    );
}

#[tokio::test]
async fn several_listeners_serve_the_same_routes() {
    let up = Upstream::echo().await;
    let yaml = format!(
        "listeners:\n  - name: public\n    address: \"127.0.0.1:0\"\n  - name: internal\n    address: \"127.0.0.1:0\"\n    http2: false\n{}",
        one_route(&up, "")
    );
    let gw = TestGateway::start(&yaml).await;
    let addrs = gw.gateway.addrs().to_vec();
    assert_eq!(addrs.len(), 2);
    assert_ne!(addrs[0], addrs[1]);
    for addr in &addrs {
        let r = get(&format!("http://{addr}/x")).await;
        assert_eq!(r.status, 200);
        // X-Forwarded-Port tells the upstream which listener took it.
        assert_eq!(
            r.json()["headers"]["x-forwarded-port"],
            addr.port().to_string()
        );
    }
    // The HTTP/1-only listener refuses h2c prior knowledge; the other takes it.
    let h2c = gatehouse_testkit::h2c_client();
    let ok = h2c
        .request(empty(req("GET", &format!("http://{}/x", addrs[0]))))
        .await;
    assert_eq!(ok.unwrap().status(), 200);
    let refused = h2c
        .request(empty(req("GET", &format!("http://{}/x", addrs[1]))))
        .await;
    assert!(
        refused.is_err(),
        "h2c must not be served on an http2: false listener"
    );
}

#[tokio::test]
async fn pool_idle_limit_per_host_is_honoured() {
    let up = Upstream::echo().await;
    let yaml = format!(
        "services:\n  - name: up\n    url: \"{}\"\n    pool:\n      max_idle_per_host: 0\nroutes:\n  - name: r\n    service: up\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    for _ in 0..5 {
        assert_eq!(get(&gw.url("/k")).await.status, 200);
    }
    // No idle connection may be kept, so none is reused.
    assert_eq!(up.connections(), 5);
}
