//! The access log through the real gateway: one line per request, with
//! the route, service, upstream, consumer, status, bytes, timings and
//! problem type; credentials never reach it, hostile values cannot forge
//! lines, and the combined format reads like nginx's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{TestGateway, get, req, send};
use gatehouse_testkit::{Upstream, body};

fn config(log: &Path, format: &str, upstream: &str) -> String {
    format!(
        r#"server:
  access_log:
    enabled: true
    output: "{log}"
    format: {format}
services:
  - name: echo
    url: "{upstream}"
routes:
  - name: open
    service: echo
    paths: ["/open/*"]
  - name: secure
    service: echo
    paths: ["/secure/*"]
    plugins:
      - name: key-auth
consumers:
  - username: alice
    credentials:
      key_auth:
        - key: alice-key-123
"#,
        log = log.display()
    )
}

/// The file's lines once there are `n` of them (the writer is a thread of
/// its own: lines arrive shortly after the responses).
fn lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n || Instant::now() > deadline {
            assert_eq!(lines.len(), n, "access log:\n{text}");
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (name, request, status, route, consumer, problem, whether an upstream
/// answered)
type Row = (
    &'static str,
    http::Request<gatehouse_testkit::BoxBody>,
    u16,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    bool,
);

#[tokio::test]
async fn every_request_is_one_json_line_without_credentials() {
    let up = Upstream::builder().name("up").start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = TestGateway::start(&config(&log, "json", &up.url())).await;

    let with_key =
        |path: &str| common::empty(req("GET", &gw.url(path)).header("x-api-key", "alice-key-123"));
    let rows: Vec<Row> = vec![
        (
            "plain",
            common::empty(req("GET", &gw.url("/open/a?q=1"))),
            200,
            Some("open"),
            None,
            None,
            true,
        ),
        (
            "no route",
            common::empty(req("GET", &gw.url("/nowhere"))),
            404,
            None,
            None,
            Some("no-route"),
            false,
        ),
        (
            "no key",
            common::empty(req("GET", &gw.url("/secure/x"))),
            401,
            Some("secure"),
            None,
            Some("unauthorized"),
            false,
        ),
        (
            "key in a header",
            with_key("/secure/y"),
            200,
            Some("secure"),
            Some("alice"),
            None,
            true,
        ),
        (
            "key in the query",
            common::empty(req(
                "GET",
                &gw.url("/secure/z?apikey=alice-key-123&x=%22%0A"),
            )),
            200,
            Some("secure"),
            Some("alice"),
            None,
            true,
        ),
        (
            "a body",
            req("POST", &gw.url("/open/post"))
                .body(body::full("hello"))
                .unwrap(),
            200,
            Some("open"),
            None,
            None,
            true,
        ),
        // CR LF never gets past hyper's parser; quotes, braces, a tab and
        // bytes over 0x7f do.
        (
            "a forged field in the user agent",
            common::empty(req("GET", &gw.url("/open/ua")).header(
                "user-agent",
                http::HeaderValue::from_bytes(b"x\"},{\"status\":999\t\xff").unwrap(),
            )),
            200,
            Some("open"),
            None,
            None,
            true,
        ),
    ];
    let mut wanted = Vec::new();
    for (name, request, status, route, consumer, problem, upstream) in rows {
        let r = send(request).await;
        assert_eq!(r.status, status, "{name}: {}", r.text());
        wanted.push((name, status, route, consumer, problem, upstream));
    }
    let got = lines(&log, wanted.len());
    let text = got.join("\n");
    assert!(
        !text.contains("alice-key-123"),
        "a key reached the log:\n{text}"
    );
    for ((name, status, route, consumer, problem, upstream), line) in wanted.iter().zip(&got) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
        assert_eq!(v["status"], *status, "{name}: {line}");
        assert_eq!(v["route"].as_str(), *route, "{name}: {line}");
        assert_eq!(v["consumer"].as_str(), *consumer, "{name}: {line}");
        assert_eq!(v["problem"].as_str(), *problem, "{name}: {line}");
        assert_eq!(
            v["upstream"].as_str().is_some(),
            *upstream,
            "{name}: {line}"
        );
        assert!(v["method"].as_str().is_some(), "{name}: {line}");
        assert!(
            v["request_id"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: {line}"
        );
        assert_eq!(v["client_ip"], "127.0.0.1", "{name}: {line}");
        assert!(v["duration_ms"].as_f64().unwrap() >= 0.0, "{name}: {line}");
        assert_eq!(v["completed"], true, "{name}: {line}");
        if *upstream {
            assert_eq!(v["service"], "echo", "{name}: {line}");
            assert_eq!(v["upstream"], up.addr().to_string(), "{name}: {line}");
            let total = v["duration_ms"].as_f64().unwrap();
            let upstream_ms = v["upstream_ms"].as_f64().unwrap();
            assert!(upstream_ms <= total, "{name}: {line}");
            assert_eq!(v["retries"], 0, "{name}: {line}");
            assert!(v["bytes_out"].as_u64().unwrap() > 0, "{name}: {line}");
        }
    }
    let by_name = |n: &str| {
        let i = wanted.iter().position(|w| w.0 == n).unwrap();
        serde_json::from_str::<serde_json::Value>(&got[i]).unwrap()
    };
    assert_eq!(
        by_name("key in the query")["path"],
        "/secure/z?apikey=REDACTED&x=%22%0A"
    );
    assert_eq!(by_name("plain")["path"], "/open/a?q=1");
    assert_eq!(by_name("a body")["bytes_in"], 5);
    assert_eq!(by_name("a body")["method"], "POST");
    // The forged field stayed inside the user agent's string.
    let ua = by_name("a forged field in the user agent");
    assert_eq!(ua["status"], 200);
    assert_eq!(ua["user_agent"], "x\"},{\"status\":999\t\u{fffd}");
}

#[tokio::test]
async fn the_combined_format_reads_like_nginx() {
    let up = Upstream::builder().name("up").start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = TestGateway::start(&config(&log, "combined", &up.url())).await;
    let r = send(common::empty(
        req("GET", &gw.url("/secure/c?apikey=alice-key-123"))
            .header("user-agent", "agent \"quoted\"")
            .header("referer", "https://example.com/"),
    ))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(get(&gw.url("/nowhere")).await.status, 404);
    let got = lines(&log, 2);
    let first = &got[0];
    assert!(first.starts_with("127.0.0.1 - alice ["), "{first}");
    assert!(
        first.contains("] \"GET /secure/c?apikey=REDACTED HTTP/1.1\" 200 "),
        "{first}"
    );
    assert!(
        first.ends_with("\"https://example.com/\" \"agent \\x22quoted\\x22\""),
        "{first}"
    );
    assert!(got[1].starts_with("127.0.0.1 - - ["), "{}", got[1]);
    assert!(
        got[1].contains("\"GET /nowhere HTTP/1.1\" 404 "),
        "{}",
        got[1]
    );
}

#[tokio::test]
async fn an_access_log_that_cannot_be_opened_stops_the_start_with_the_field() {
    let loaded = gatehouse_config::parse_str(
        "listeners:\n  - address: \"127.0.0.1:0\"\nserver:\n  access_log:\n    enabled: true\n    output: /nonexistent-dir/a/b.log\n",
        "test.yaml",
    )
    .unwrap();
    let err = gatehouse_proxy::Gateway::start(&loaded, gatehouse_plugins::registry())
        .await
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(text.contains("server.access_log.output"), "{text}");
    assert!(text.contains("/nonexistent-dir/a/b.log"), "{text}");
}
