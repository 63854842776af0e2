//! The protocol and attachment edges of issue 8, through the real gateway
//! to real upstreams: consumer-level plugins that sort before the
//! authenticating plugin, X-Forwarded-For hops that do not parse, client
//! address headers from clients, `Upgrade` requests that were not
//! switched, `Upgrade: h2c`, `CONNECT` / `TRACE`, CORS with credentials and
//! `mock` bodies fed hostile path captures. Each table names its cases.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{TestGateway, empty, req, send};
use gatehouse_testkit::Upstream;
use gatehouse_testkit::raw::{self, End};

fn problems_of(yaml: &str) -> String {
    let loaded = gatehouse_config::parse_str(yaml, "edges.yaml")
        .unwrap_or_else(|e| panic!("does not parse:\n{e}"));
    match gatehouse_proxy::check(&loaded, &gatehouse_plugins::registry()) {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Consumer-level plugins
// ---------------------------------------------------------------------------

/// `alice` has an `ip-restriction` that denies 127.0.0.1 (priority 3000,
/// before `key-auth` at 1250), `bob` has one that allows it, `carol` none.
fn consumers(up: &Upstream) -> String {
    format!(
        r#"services:
  - name: echo
    url: "{url}"
routes:
  - name: api
    service: echo
    paths: ["/api/*"]
    plugins:
      - name: ip-restriction
        config:
          allow: ["127.0.0.0/8"]
      - name: key-auth
consumers:
  - username: alice
    credentials:
      key_auth:
        - key: alice-key-123
    plugins:
      - name: ip-restriction
        config:
          deny: ["127.0.0.1"]
  - username: bob
    credentials:
      key_auth:
        - key: bob-key-123
    plugins:
      - name: ip-restriction
        config:
          allow: ["127.0.0.1"]
      - name: request-size-limit
        config:
          max_bytes: 4
  - username: carol
    credentials:
      key_auth:
        - key: carol-key-123
"#,
        url = up.url()
    )
}

#[tokio::test]
async fn a_consumer_plugin_that_sorts_before_key_auth_runs() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&consumers(&up)).await;
    async fn check(gw: &TestGateway, key: &str, body: &'static str, expect: u16) {
        let r = send(
            req("POST", &gw.url("/api/x"))
                .header("x-api-key", key)
                .body(gatehouse_testkit::body::full(body))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, expect, "key {key}, body {body:?}: {}", r.text());
        if expect == 403 {
            r.assert_problem(403, "ip-forbidden");
        }
    }
    // alice's own deny list runs although it sorts before key-auth.
    check(&gw, "alice-key-123", "", 403).await;
    // bob's allow list passes; his request-size-limit (after key-auth) too.
    check(&gw, "bob-key-123", "ok", 200).await;
    check(&gw, "bob-key-123", "too long", 413).await;
    // carol has no plugins of her own.
    check(&gw, "carol-key-123", "", 200).await;
    check(&gw, "wrong", "", 401).await;
    assert_eq!(up.hits(), 2);
}

#[test]
fn a_consumer_plugin_that_could_never_run_is_refused_by_validation() {
    let up_url = "http://127.0.0.1:9";
    let yaml = |plugin: &str| {
        format!(
            "services:\n  - name: echo\n    url: \"{up_url}\"\nroutes:\n  - name: api\n    service: echo\n    plugins:\n      - name: key-auth\nconsumers:\n  - username: alice\n    credentials:\n      key_auth:\n        - key: alice-key-123\n    plugins:\n{plugin}"
        )
    };
    fn check(what: &str, errors: &str, expect: Option<&str>) {
        match expect {
            None => assert!(errors.is_empty(), "{what}: {errors}"),
            Some(p) => {
                assert!(errors.contains(p), "{what}: {errors}");
                assert!(errors.contains("consumer `alice`"), "{what}: {errors}");
                assert!(errors.contains("rewrite"), "{what}: {errors}");
            }
        }
    }
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            "cors (rewrite + response_headers)",
            "      - name: cors\n        config:\n          origins: [\"https://a.example\"]\n",
            Some("consumers[0].plugins[0].name"),
        ),
        (
            "request-id (rewrite)",
            "      - name: headers\n        config:\n          request:\n            set:\n              x-a: b\n      - name: request-id\n",
            Some("consumers[0].plugins[1].name"),
        ),
        (
            "ip-restriction (access)",
            "      - name: ip-restriction\n        config:\n          deny: [\"10.0.0.0/8\"]\n",
            None,
        ),
        (
            "headers (upstream_request + response_headers)",
            "      - name: headers\n        config:\n          request:\n            set:\n              x-a: b\n",
            None,
        ),
    ];
    for (what, plugin, expect) in cases {
        check(what, &problems_of(&yaml(plugin)), *expect);
    }
}

// ---------------------------------------------------------------------------
// Client address behind trusted proxies
// ---------------------------------------------------------------------------

/// The gateway trusts 127.0.0.1 (the test client) as a proxy. `/internal`
/// allows only 127.0.0.0/8 (where the proxy itself lives); `/public`
/// denies 203.0.113.0/24.
fn behind_proxy(up: &Upstream) -> String {
    format!(
        r#"server:
  trusted_proxies: ["127.0.0.1/32"]
services:
  - name: echo
    url: "{url}"
routes:
  - name: internal
    service: echo
    paths: ["/internal/*"]
    plugins:
      - name: ip-restriction
        config:
          allow: ["127.0.0.0/8"]
  - name: public
    service: echo
    paths: ["/public/*"]
    plugins:
      - name: ip-restriction
        config:
          deny: ["203.0.113.0/24"]
  - name: open
    service: echo
    paths: ["/open/*"]
"#,
        url = up.url()
    )
}

#[tokio::test]
async fn forwarded_hops_resolve_or_fail_closed_through_ip_restriction() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&behind_proxy(&up)).await;
    async fn check(gw: &TestGateway, path: &str, xff: Option<&str>, expect: u16) {
        let mut b = req("GET", &gw.url(path));
        if let Some(v) = xff {
            b = b.header("x-forwarded-for", v);
        }
        let r = send(empty(b)).await;
        assert_eq!(
            r.status,
            expect,
            "{path} with X-Forwarded-For {xff:?}: {}",
            r.text()
        );
    }
    let cases: &[(&str, Option<&str>, u16)] = &[
        // Allow-list of internal ranges: the proxy's own address must never
        // stand in for a client it could not name.
        ("/internal/a", None, 200),
        ("/internal/a", Some("127.0.0.5"), 200),
        ("/internal/a", Some("127.0.0.9:4431"), 200),
        ("/internal/a", Some("203.0.113.9:51234"), 403),
        ("/internal/a", Some("[2001:db8::1]:443"), 403),
        ("/internal/a", Some("[2001:db8::1]"), 403),
        ("/internal/a", Some("unknown"), 403),
        ("/internal/a", Some("\"127.0.0.5\""), 403),
        ("/internal/a", Some("_obfuscated"), 403),
        ("/internal/a", Some("203.0.113.9, junk"), 403),
        ("/internal/a", Some(""), 403),
        // Deny-list: an unknown client does not escape it either.
        ("/public/a", Some("198.51.100.7"), 200),
        ("/public/a", Some(" 203.0.113.9:51234 "), 403),
        ("/public/a", Some("unknown"), 403),
        ("/public/a", Some("[::ffff:203.0.113.9]:80"), 403),
    ];
    for (path, xff, expect) in cases {
        check(&gw, path, *xff, *expect).await;
    }

    // What the upstream hears about the client.
    let r = send(empty(
        req("GET", &gw.url("/open/a")).header("x-forwarded-for", "203.0.113.9:51234"),
    ))
    .await;
    assert_eq!(r.status, 200);
    let seen = up.last_request().unwrap();
    assert_eq!(seen.header("x-real-ip"), Some("203.0.113.9"));
    let r = send(empty(
        req("GET", &gw.url("/open/a")).header("x-forwarded-for", "unknown"),
    ))
    .await;
    assert_eq!(r.status, 200, "routes without address checks still serve");
    let seen = up.last_request().unwrap();
    assert_eq!(seen.header("x-real-ip"), None, "unknown: no X-Real-IP");
    assert_eq!(seen.header("x-forwarded-for"), Some("unknown, 127.0.0.1"));
}

const CLIENT_ADDRESS_FIELDS: &[&str] = &[
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-original-forwarded-for",
];

fn with_spoofed_addresses(mut b: http::request::Builder) -> http::request::Builder {
    for name in CLIENT_ADDRESS_FIELDS {
        b = b.header(*name, "10.0.0.1");
    }
    b
}

#[tokio::test]
async fn client_address_fields_from_clients_do_not_reach_the_upstream() {
    let up = Upstream::echo().await;
    let yaml = format!(
        "services:\n  - name: echo\n    url: \"{}\"\nroutes:\n  - name: all\n    service: echo\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let r = send(empty(with_spoofed_addresses(req("GET", &gw.url("/a"))))).await;
    assert_eq!(r.status, 200);
    let seen = up.last_request().unwrap();
    for name in CLIENT_ADDRESS_FIELDS {
        let want = (*name == "x-real-ip").then_some("127.0.0.1");
        assert_eq!(seen.header(name), want, "{name}");
    }
    assert_eq!(seen.headers.get_all("x-real-ip").iter().count(), 1);

    // From a trusted proxy they are kept; X-Real-IP is the resolved client.
    let gw = TestGateway::start(&behind_proxy(&up)).await;
    let r = send(empty(
        with_spoofed_addresses(req("GET", &gw.url("/open/a")))
            .header("x-forwarded-for", "198.51.100.7"),
    ))
    .await;
    assert_eq!(r.status, 200);
    let seen = up.last_request().unwrap();
    for name in CLIENT_ADDRESS_FIELDS {
        let want = if *name == "x-real-ip" {
            "198.51.100.7"
        } else {
            "10.0.0.1"
        };
        assert_eq!(seen.header(name), Some(want), "{name}");
    }
}

/// `X-Original-URL` and the like name another path to upstreams that honour
/// them (IIS URL Rewrite, Symfony before 4.1, Zend): `GET /public/x` with
/// `X-Original-URL: /admin/secret` would be routed by the catch-all and
/// served as /admin/secret. They never reach the upstream, from clients or
/// from trusted proxies.
#[tokio::test]
async fn path_override_fields_do_not_reach_the_upstream() {
    const FIELDS: &[&str] = &["x-original-url", "x-rewrite-url", "x-override-url"];
    let up = Upstream::echo().await;
    let yaml = format!(
        "services:\n  - name: echo\n    url: \"{}\"\nroutes:\n  - name: all\n    service: echo\n",
        up.url()
    );
    for gw in [
        TestGateway::start(&yaml).await,
        TestGateway::start(&behind_proxy(&up)).await,
    ] {
        let mut b = req("GET", &gw.url("/open/a"));
        for name in FIELDS {
            b = b.header(*name, "/admin/secret");
        }
        let r = send(empty(b)).await;
        assert_eq!(r.status, 200);
        let seen = up.last_request().unwrap();
        assert_eq!(seen.uri.path(), "/open/a");
        for name in FIELDS {
            assert_eq!(seen.header(name), None, "{name}");
        }
    }
}

// ---------------------------------------------------------------------------
// Upgrade, h2c, CONNECT, TRACE
// ---------------------------------------------------------------------------

fn plain(up: &Upstream) -> String {
    format!(
        "server:\n  shutdown_timeout: 1s\nservices:\n  - name: echo\n    url: \"{}\"\nroutes:\n  - name: all\n    service: echo\n",
        up.url()
    )
}

/// An upgrade the upstream declines (200, not 101) leaves the connection
/// HTTP/1, so the framing guard keeps watching it: a CL+TE request after
/// it gets hyper's bare 400 and never reaches the upstream.
#[tokio::test]
async fn an_upgrade_that_was_not_switched_keeps_the_framing_guard_on() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&plain(&up)).await;
    for upgrade in ["foo", "websocket"] {
        let body = "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n";
        let request = format!(
            "GET /first HTTP/1.1\r\nHost: gw\r\nUpgrade: {upgrade}\r\nConnection: upgrade\r\n\r\n\
POST /cl-te HTTP/1.1\r\nHost: gw\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
            body.len()
        );
        let raw = raw::send(gw.addr(), request.as_bytes()).await.unwrap();
        assert_eq!(
            raw.statuses(),
            [200, 400],
            "Upgrade: {upgrade}: {}",
            raw.text()
        );
        assert!(raw.responses[1].body.is_empty(), "{}", raw.text());
        assert_ne!(raw.end, End::TimedOut, "connection left open");
    }
    for r in up.requests() {
        assert_eq!(
            r.uri.path(),
            "/first",
            "reached the upstream: {} {}",
            r.method,
            r.uri
        );
    }
}

/// After a real `101`, the connection carries another protocol: bytes
/// that look like a CL+TE head are tunnel data and pass untouched both
/// ways (the guard stopped only because the 101 was sent).
#[tokio::test]
async fn after_a_101_the_tunnel_carries_bytes_untouched() {
    let up = Upstream::builder()
        .handler(|mut req| async move {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(up) = upgrade.await else { return };
                let mut io = hyper_util::rt::TokioIo::new(up);
                let mut buf = [0u8; 4096];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            http::Response::builder()
                .status(101)
                .header("connection", "upgrade")
                .header("upgrade", "foo")
                .body(gatehouse_testkit::body::empty())
                .unwrap()
        })
        .start()
        .await;
    let gw = TestGateway::start(&plain(&up)).await;
    let mut conn = raw::Conn::connect(gw.addr()).await.unwrap();
    conn.write(b"GET /tunnel HTTP/1.1\r\nHost: gw\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n")
        .await
        .unwrap();
    let r = conn.read_response().await.unwrap();
    assert_eq!(r.status, 101);
    let data =
        b"POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    conn.write(data).await.unwrap();
    // Half-close: the echo upstream ends its side after echoing, so the
    // tunnel closes and everything it sent back is in.
    conn.shutdown_write().await.unwrap();
    let rest = conn.read_to_end().await.unwrap();
    assert_ne!(rest.end, End::TimedOut, "tunnel never closed");
    assert_eq!(
        String::from_utf8_lossy(&rest.bytes),
        String::from_utf8_lossy(data)
    );
}

#[tokio::test]
async fn h2c_upgrades_are_forwarded_as_plain_http11() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&plain(&up)).await;
    let request = "GET /h2c HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n\
GET /after HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n";
    let raw = raw::send(gw.addr(), request.as_bytes()).await.unwrap();
    assert_eq!(raw.statuses(), [200, 200], "{}", raw.text());
    let first = &up.requests()[0];
    assert_eq!(first.uri.path(), "/h2c");
    for name in ["upgrade", "http2-settings", "connection"] {
        assert_eq!(first.header(name), None, "{name} reached the upstream");
    }
}

#[tokio::test]
async fn connect_and_trace_are_refused_with_501() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&plain(&up)).await;
    let cases: &[(&str, &str)] = &[
        (
            "CONNECT",
            "CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n",
        ),
        (
            "CONNECT to the upstream",
            &format!(
                "CONNECT {} HTTP/1.1\r\nHost: {}\r\n\r\n",
                up.addr(),
                up.addr()
            ),
        ),
        (
            "TRACE",
            "TRACE /a HTTP/1.1\r\nHost: gw\r\nCookie: session=1\r\n\r\n",
        ),
    ];
    for (what, request) in cases {
        let mut conn = raw::Conn::connect(gw.addr()).await.unwrap();
        conn.write(request.as_bytes()).await.unwrap();
        let r = conn.read_response().await.unwrap();
        assert_eq!(r.status, 501, "{what}: {}", r.body_text());
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{what}"
        );
        let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            doc["type"], "urn:gatehouse:problem:method-not-implemented",
            "{what}"
        );
        // The connection is still HTTP/1 and still guarded.
        conn.write(b"GET /next HTTP/1.1\r\nHost: gw\r\n\r\n")
            .await
            .unwrap();
        let next = conn.read_response().await.unwrap();
        assert_eq!(next.status, 200, "{what}: after");
    }
    assert!(up.requests().iter().all(|r| r.uri.path() == "/next"));
}

// ---------------------------------------------------------------------------
// CORS and mock
// ---------------------------------------------------------------------------

#[test]
fn cors_credentials_with_any_origin_are_refused_by_validation() {
    let yaml = |cfg: &str| {
        format!(
            "routes:\n  - name: r\n    plugins:\n      - name: cors\n        config:\n{cfg}      - name: mock\n"
        )
    };
    fn check(cfg: &str, refused: bool, errors: &str) {
        if refused {
            assert!(
                errors.contains("routes[0].plugins[0].config.credentials")
                    && errors.contains("any origin"),
                "{cfg}: {errors}"
            );
        } else {
            assert!(errors.is_empty(), "{cfg}: {errors}");
        }
    }
    let cases: &[(&str, bool)] = &[
        (
            "          origins: [\"*\"]\n          credentials: true\n",
            true,
        ),
        ("          credentials: true\n", true),
        (
            "          origins: [\"~.*\"]\n          credentials: true\n",
            true,
        ),
        ("          origins: [\"*\"]\n", false),
        (
            "          origins: [\"https://app.example.com\"]\n          credentials: true\n",
            false,
        ),
    ];
    for (cfg, refused) in cases {
        check(cfg, *refused, &problems_of(&yaml(cfg)));
    }
}

/// The demo's sandbox route: a `body:` template declared as JSON. Path
/// captures cannot add fields to it, however they are spelled.
#[tokio::test]
async fn mock_json_bodies_keep_their_shape_whatever_the_capture() {
    let yaml = r#"routes:
  - name: users-sandbox
    paths: ["/api/users/{id}"]
    plugins:
      - name: mock
        config:
          headers:
            content-type: application/json
          body: '{"id": "{id}", "name": "Ada Lovelace"}'
"#;
    let gw = TestGateway::start(yaml).await;
    // (path, whether it must be served): backslashes, encoded or not, may
    // be refused by the path canonicaliser instead; that is fine too.
    let cases = [
        ("/api/users/42", true),
        ("/api/users/x%22,%22admin%22:true,%22y%22:%22", true),
        ("/api/users/x\",\"admin\":true,\"y\":\"", true),
        ("/api/users/a%5C%22b", false),
        ("/api/users/a\\\"b", false),
    ];
    for (path, must_serve) in cases {
        let request = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
        let raw = raw::send(gw.addr(), request.as_bytes()).await.unwrap();
        let Some(r) = raw.first() else {
            panic!("{path}: no response: {}", raw.text())
        };
        if r.status == 400 && !must_serve {
            continue;
        }
        assert_eq!(r.status, 200, "{path}: {}", r.body_text());
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", r.body_text()));
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "name"], "{path}: {v}");
        assert_eq!(v["name"], "Ada Lovelace", "{path}");
        // The capture arrives whole, as one string (the path canonicaliser
        // may spell it differently than the client did).
        assert!(v["id"].is_string(), "{path}: {v}");
    }
}
