//! The request path's newer phases through the real gateway, with test
//! plugins registered in a registry of the test's own: `request_body`
//! (body replacement: Content-Length follows, retries replay the replaced
//! body), `upstream` (another service, a target, a URL), `upstream_error`
//! (fallback answer, a bounded retry elsewhere) and the async
//! `response_headers`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{TestGateway, empty, req, send};
use gatehouse_core::{
    Band, BuildCx, Ctx, ErrorFlow, Flow, Phase, Phases, Plugin, PluginError, PluginFactory,
    Request, UpstreamChoice, UpstreamFailure, body,
};
use gatehouse_testkit::Upstream;
use http_body_util::BodyExt;
use serde_json::Value;

/// A factory for a test plugin built from its config by `make`.
struct Factory {
    name: &'static str,
    priority: i32,
    make: fn(&Value) -> Arc<dyn Plugin>,
}

impl PluginFactory for Factory {
    fn name(&self) -> &'static str {
        self.name
    }
    fn priority(&self) -> i32 {
        self.priority
    }
    fn schema(&self) -> Value {
        serde_json::json!({})
    }
    fn band(&self) -> Band {
        Band::ALL
            .into_iter()
            .find(|b| b.range().contains(&self.priority))
            .unwrap_or(Band::Transform)
    }
    fn build(&self, config: &Value, _cx: &BuildCx<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
        Ok((self.make)(config))
    }
}

fn text(config: &Value, field: &str) -> Option<String> {
    config.get(field).and_then(Value::as_str).map(String::from)
}

/// Replaces the request body with `body`, in the `request_body` phase or,
/// with `in: upstream_request` or `in: rewrite`, in that one.
struct BodySwap {
    body: String,
    phase: Phase,
}

#[async_trait]
impl Plugin for BodySwap {
    fn name(&self) -> &'static str {
        "test-body-swap"
    }
    fn phases(&self) -> Phases {
        Phases::of(&[self.phase])
    }
    async fn rewrite(&self, _ctx: &mut Ctx, req: &mut Request) -> Flow {
        *req.body_mut() = body::full(self.body.clone());
        Flow::Continue
    }
    async fn request_body(&self, ctx: &mut Ctx, req: &mut Request) -> Flow {
        // Reads the client's body (bounded), then replaces it.
        let old = std::mem::replace(req.body_mut(), body::empty());
        let read = body::collect(old, 1024).await;
        match read {
            Ok(b) => {
                *req.body_mut() = body::full(format!("{}<{}>", self.body, b.len()));
                Flow::Continue
            }
            Err(r) => ctx.reject(r.0),
        }
    }
    async fn upstream_request(&self, _ctx: &mut Ctx, req: &mut Request) -> Flow {
        *req.body_mut() = body::full(self.body.clone());
        Flow::Continue
    }
}

/// Routes requests that carry `x-route-me` to what its config names (a
/// table of the plugin's own: the client only picks an entry).
struct Router {
    service: Option<String>,
    target: Option<String>,
    url: Option<String>,
}

#[async_trait]
impl Plugin for Router {
    fn name(&self) -> &'static str {
        "test-router"
    }
    fn phases(&self) -> Phases {
        Phases::of(&[Phase::Upstream])
    }
    async fn upstream(&self, _ctx: &mut Ctx, req: &mut Request) -> Option<UpstreamChoice> {
        let wanted = req.headers().get("x-route-me")?.to_str().ok()?;
        match wanted {
            "service" => Some(UpstreamChoice::Service(self.service.as_deref()?.into())),
            "target" => Some(UpstreamChoice::Target(
                self.target.as_deref()?.parse().ok()?,
            )),
            "url" => Some(UpstreamChoice::Url(self.url.as_deref()?.parse().ok()?)),
            _ => None,
        }
    }
}

/// On a final upstream failure: answers `respond`, or sends the request
/// to service `retry` (every time it is asked: the proxy bounds it).
struct Fallback {
    respond: Option<String>,
    retry: Option<String>,
}

#[async_trait]
impl Plugin for Fallback {
    fn name(&self) -> &'static str {
        "test-fallback"
    }
    fn phases(&self) -> Phases {
        Phases::of(&[Phase::UpstreamError])
    }
    async fn upstream_error(&self, _ctx: &mut Ctx, failure: &UpstreamFailure) -> ErrorFlow {
        if let Some(r) = &self.respond {
            let mut resp = http::Response::new(body::full(format!(
                "{r}: {} from {}",
                failure.kind.slug(),
                failure.service
            )));
            resp.headers_mut()
                .insert("x-fallback", http::HeaderValue::from_static("yes"));
            return ErrorFlow::Respond(resp);
        }
        match &self.retry {
            Some(s) => ErrorFlow::Retry(UpstreamChoice::Service(s.as_str().into())),
            None => ErrorFlow::Default,
        }
    }
}

/// Sets `x-async-status` after an await, on every response.
struct AsyncHeaders;

#[async_trait]
impl Plugin for AsyncHeaders {
    fn name(&self) -> &'static str {
        "test-async-headers"
    }
    fn phases(&self) -> Phases {
        Phases::of(&[Phase::ResponseHeaders])
    }
    async fn response_headers(&self, _ctx: &mut Ctx, resp: &mut http::response::Parts) {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let v = http::HeaderValue::from(resp.status.as_u16());
        resp.headers.insert("x-async-status", v);
    }
}

fn registry() -> gatehouse_plugins::Registry {
    let mut r = gatehouse_plugins::registry();
    r.register(Arc::new(Factory {
        name: "test-body-swap",
        priority: 0,
        make: |c| {
            Arc::new(BodySwap {
                body: text(c, "body").unwrap_or_default(),
                phase: match text(c, "in").as_deref() {
                    Some("upstream_request") => Phase::UpstreamRequest,
                    Some("rewrite") => Phase::Rewrite,
                    _ => Phase::RequestBody,
                },
            })
        },
    }));
    r.register(Arc::new(Factory {
        name: "test-router",
        priority: 0,
        make: |c| {
            Arc::new(Router {
                service: text(c, "service"),
                target: text(c, "target"),
                url: text(c, "url"),
            })
        },
    }));
    r.register(Arc::new(Factory {
        name: "test-fallback",
        priority: 0,
        make: |c| {
            Arc::new(Fallback {
                respond: text(c, "respond"),
                retry: text(c, "retry"),
            })
        },
    }));
    r.register(Arc::new(Factory {
        name: "test-async-headers",
        priority: 0,
        make: |_| Arc::new(AsyncHeaders),
    }));
    r
}

/// What a body-recording upstream saw: Content-Length and body per request.
type Seen = Arc<Mutex<Vec<(Option<String>, String)>>>;

/// An upstream that records each request's Content-Length and body and
/// answers 503 to the first `fail_first` requests, then 200 with the body.
async fn recording(fail_first: usize) -> (Upstream, Seen) {
    let seen: Seen = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let up = Upstream::builder()
        .handler(move |req: http::Request<hyper::body::Incoming>| {
            let seen = s.clone();
            let n = count.fetch_add(1, Ordering::SeqCst);
            async move {
                let cl = req
                    .headers()
                    .get("content-length")
                    .map(|v| v.to_str().unwrap().to_string());
                let b = req.into_body().collect().await.unwrap().to_bytes();
                let b = String::from_utf8_lossy(&b).into_owned();
                seen.lock().unwrap().push((cl, b.clone()));
                let status = if n < fail_first { 503 } else { 200 };
                let mut resp = http::Response::new(gatehouse_testkit::body::full(b));
                *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                resp
            }
        })
        .start()
        .await;
    (up, seen)
}

fn post(
    gw: &TestGateway,
    path: &str,
    body: &'static str,
) -> http::Request<gatehouse_testkit::BoxBody> {
    req("POST", &gw.url(path))
        .body(gatehouse_testkit::body::full(body))
        .unwrap()
}

fn body_config(up: &Upstream, plugin: &str) -> String {
    format!(
        r#"services:
  - name: s
    url: "{url}"
    retries:
      attempts: 1
      on: [503]
      methods: [POST]
      buffer_body: 1024
      backoff: {{ base: 1ms, max: 1ms }}
routes:
  - name: r
    service: s
    paths: ["/r"]
    plugins:
{plugin}"#,
        url = up.url()
    )
}

#[tokio::test]
async fn a_replaced_body_is_sent_with_its_own_length_and_replayed_on_retry() {
    let (up, seen) = recording(1).await;
    let plugin =
        "      - name: test-body-swap\n        config: { body: \"a much longer replacement\" }\n";
    let gw = TestGateway::start_with_registry(&body_config(&up, plugin), registry()).await;
    let r = send(post(&gw, "/r", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let want = "a much longer replacement<2>";
    assert_eq!(r.text(), want);
    let seen = seen.lock().unwrap().clone();
    // The first try got 503; the retry replayed the replaced body, both
    // with the replaced body's length, not the client's.
    let len = want.len().to_string();
    assert_eq!(
        seen,
        [
            (Some(len.clone()), want.to_string()),
            (Some(len), want.to_string())
        ]
    );
}

#[tokio::test]
async fn a_body_replaced_in_upstream_request_is_framed_and_replayed_too() {
    let (up, seen) = recording(1).await;
    let plugin =
        "      - name: test-body-swap\n        config: { body: \"late\", in: upstream_request }\n";
    let gw = TestGateway::start_with_registry(&body_config(&up, plugin), registry()).await;
    // The client's body is longer than the replacement: the retry logic
    // sizes the body the plugin left, not the client's.
    let r = send(post(&gw, "/r", "the client's original, longer body")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "late");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (Some("4".into()), "late".into()),
            (Some("4".into()), "late".into())
        ]
    );
}

#[tokio::test]
async fn a_body_replaced_in_rewrite_is_framed_too() {
    let (up, seen) = recording(0).await;
    let plugin = "      - name: test-body-swap\n        config: { body: \"early\", in: rewrite }\n";
    let gw = TestGateway::start_with_registry(&body_config(&up, plugin), registry()).await;
    let r = send(post(&gw, "/r", "the client's original body")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "early");
    assert_eq!(
        seen.lock().unwrap().clone(),
        [(Some("5".into()), "early".into())]
    );
}

/// Without a plugin that had the request, the proxy leaves the client's
/// framing as it came (Transfer-Encoding is hop-by-hop and hyper re-chunks):
/// each row is a raw request and the Content-Length and body the upstream
/// must see.
#[tokio::test]
async fn an_untouched_body_keeps_the_clients_framing() {
    let (up, seen) = recording(0).await;
    let config = body_config(&up, "").replace("    plugins:\n", "");
    let gw = TestGateway::start_with_registry(&config, registry()).await;
    let cases: [(&str, &str, Option<&str>, &str); 5] = [
        (
            "content-length",
            "POST /r HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 5\r\n\r\nhello",
            Some("5"),
            "hello",
        ),
        (
            "chunked",
            "POST /r HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            None,
            "hello",
        ),
        (
            "empty with content-length 0",
            "POST /r HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            Some("0"),
            "",
        ),
        (
            "chunked, empty",
            "POST /r HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            None,
            "",
        ),
        (
            "no body",
            "GET /r HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            None,
            "",
        ),
    ];
    let mut rows = Vec::new();
    for (name, raw, cl, body) in cases {
        seen.lock().unwrap().clear();
        let resp = gatehouse_testkit::raw::send(gw.addr(), raw.as_bytes())
            .await
            .unwrap();
        let got = seen.lock().unwrap().clone();
        let want = vec![(cl.map(String::from), body.to_string())];
        let result = if resp.statuses() == [200] && got == want {
            Ok(())
        } else {
            Err(format!(
                "statuses {:?}, upstream saw {got:?}, want {want:?}",
                resp.statuses()
            ))
        };
        rows.push((name, result));
    }
    crate::table::assert_rows(rows);
}

#[tokio::test]
async fn a_body_over_the_plugins_collect_limit_is_refused_with_413() {
    let (up, seen) = recording(0).await;
    let plugin = "      - name: test-body-swap\n        config: { body: x }\n";
    let gw = TestGateway::start_with_registry(&body_config(&up, plugin), registry()).await;
    let big: &'static str = Box::leak("y".repeat(2000).into_boxed_str());
    let r = send(post(&gw, "/r", big)).await;
    r.assert_problem(413, "payload-too-large");
    assert!(seen.lock().unwrap().is_empty());
}

fn routing_config(a: &Upstream, b: &Upstream) -> String {
    format!(
        r#"services:
  - name: a
    url: "{a}"
  - name: b
    url: "{b}/b-base"
routes:
  - name: r
    service: a
    paths: ["/r"]
    plugins:
      - name: test-router
        config:
          service: b
          target: "{b_addr}"
          url: "{b}/elsewhere?from=plugin"
  - name: nowhere
    service: a
    paths: ["/nowhere"]
    plugins:
      - name: test-router
        config:
          service: no-such-service
"#,
        a = a.url(),
        b = b.url(),
        b_addr = b.addr(),
    )
}

#[tokio::test]
async fn an_upstream_plugin_picks_another_service_a_target_or_a_url() {
    let a = Upstream::builder().name("a").echo().start().await;
    let b = Upstream::builder().name("b").echo().start().await;
    let gw = TestGateway::start_with_registry(&routing_config(&a, &b), registry()).await;
    let call = |how: &'static str| {
        let gw = &gw;
        async move {
            let mut r = req("GET", &gw.url("/r?q=1"));
            if !how.is_empty() {
                r = r.header("x-route-me", how);
            }
            send(empty(r)).await
        }
    };
    // No choice: the route's service.
    let r = call("").await;
    assert_eq!(r.json()["upstream"], "a");
    assert_eq!(r.json()["path"], "/r");
    // Another service: its base path and Host apply.
    let r = call("service").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["upstream"], "b");
    assert_eq!(j["path"], "/b-base/r");
    assert_eq!(j["query"], "q=1");
    assert_eq!(j["headers"]["host"], b.addr().to_string());
    // A target of the route's service: the connection goes there, Host
    // and path stay the service's.
    let r = call("target").await;
    let j = r.json();
    assert_eq!(j["upstream"], "b");
    assert_eq!(j["path"], "/r");
    assert_eq!(j["headers"]["host"], a.addr().to_string());
    // A URL: its path and query replace the request's, its authority is
    // the Host; forwarding headers are still the gateway's.
    let r = call("url").await;
    let j = r.json();
    assert_eq!(j["upstream"], "b");
    assert_eq!(j["path"], "/elsewhere");
    assert_eq!(j["query"], "from=plugin");
    assert_eq!(j["headers"]["host"], b.addr().to_string());
    assert_eq!(j["headers"]["x-forwarded-for"], "127.0.0.1");
    // A service the workspace does not have: 503, nothing sent.
    let hits = a.hits() + b.hits();
    let r = send(empty(
        req("GET", &gw.url("/nowhere")).header("x-route-me", "service"),
    ))
    .await;
    r.assert_problem(503, "no-service");
    assert_eq!(a.hits() + b.hits(), hits);
}

fn failing_config(live: &Upstream, plugin: &str) -> String {
    format!(
        r#"services:
  - name: dead
    url: "http://127.0.0.1:1"
    retries:
      buffer_body: 1024
  - name: also-dead
    url: "http://127.0.0.1:1"
  - name: live
    url: "{live}"
routes:
  - name: r
    service: dead
    paths: ["/r"]
    plugins:
      - name: test-async-headers
{plugin}"#,
        live = live.url(),
    )
}

#[tokio::test]
async fn upstream_error_may_answer_with_a_fallback() {
    let (live, _) = recording(0).await;
    let plugin = "      - name: test-fallback\n        config: { respond: cached }\n";
    let gw = TestGateway::start_with_registry(&failing_config(&live, plugin), registry()).await;
    let r = send(empty(req("GET", &gw.url("/r")))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "cached: upstream-unreachable from dead");
    assert_eq!(r.header("x-fallback"), Some("yes"));
    // Response phases run on the fallback too.
    assert_eq!(r.header("x-async-status"), Some("200"));
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test]
async fn upstream_error_may_send_the_request_elsewhere_once_with_its_body() {
    let (live, seen) = recording(0).await;
    let plugin = "      - name: test-fallback\n        config: { retry: live }\n";
    let gw = TestGateway::start_with_registry(&failing_config(&live, plugin), registry()).await;
    let r = send(post(&gw, "/r", "replay me")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "replay me");
    assert_eq!(
        *seen.lock().unwrap(),
        [(Some("9".into()), "replay me".into())]
    );

    // A plugin that keeps asking for another dead service is honoured
    // once; then the gateway's own problem goes out, through the
    // (async) response phases.
    let plugin = "      - name: test-fallback\n        config: { retry: also-dead }\n";
    let gw = TestGateway::start_with_registry(&failing_config(&live, plugin), registry()).await;
    let r = send(empty(req("GET", &gw.url("/r")))).await;
    r.assert_problem(502, "upstream-unreachable");
    assert_eq!(r.header("x-async-status"), Some("502"));
}

#[tokio::test]
async fn async_response_headers_run_on_upstream_and_plugin_responses() {
    let up = Upstream::echo().await;
    let yaml = format!(
        r#"services:
  - name: s
    url: "{}"
routes:
  - name: r
    service: s
    paths: ["/r"]
  - name: m
    paths: ["/m"]
    plugins:
      - name: mock
        config: {{ status: 201, body: made }}
plugins:
  - name: test-async-headers
"#,
        up.url()
    );
    let gw = TestGateway::start_with_registry(&yaml, registry()).await;
    let r = send(empty(req("GET", &gw.url("/r")))).await;
    assert_eq!(r.header("x-async-status"), Some("200"));
    let r = send(empty(req("GET", &gw.url("/m")))).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-async-status"), Some("201"));
    // Refused before routing: no chain, so no plugin, not even a global
    // one (only the request id is added).
    let r = send(empty(req("GET", &gw.url("/none")))).await;
    r.assert_problem(404, "no-route");
    assert_eq!(r.header("x-async-status"), None);
}
