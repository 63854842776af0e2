//! Each `Upstream` behaviour, exercised by a real hyper client.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use gatehouse_testkit::body::{self, full};
use gatehouse_testkit::tokio_tungstenite::tungstenite::Message;
use gatehouse_testkit::{Client, StreamingBody, Upstream, h2c_client, http1_client};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

async fn get(client: &Client, uri: http::Uri) -> Response<Incoming> {
    client.get(uri).await.unwrap()
}

async fn json(resp: Response<Incoming>) -> Value {
    serde_json::from_slice(&body::to_bytes(resp.into_body()).await.unwrap()).unwrap()
}

#[tokio::test]
async fn echo_describes_the_request_over_http1() {
    let upstream = Upstream::builder().name("a").start().await;
    let req = Request::post(upstream.uri("/items/7?x=1&y=2"))
        .header("x-one", "1")
        .header("x-many", "a")
        .header("x-many", "b")
        .body(full("hello"))
        .unwrap();
    let resp = http1_client().request(req).await.unwrap();

    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-upstream"], "a");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let echo = json(resp).await;
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/items/7");
    assert_eq!(echo["query"], "x=1&y=2");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["upstream"], "a");
    assert_eq!(echo["headers"]["x-one"], "1");
    assert_eq!(echo["headers"]["x-many"], serde_json::json!(["a", "b"]));
    assert_eq!(echo["body_len"], 5);

    assert_eq!(upstream.hits(), 1);
    assert_eq!(upstream.connections(), 1);
    let seen = upstream.last_request().unwrap();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.uri.path(), "/items/7");
    assert_eq!(seen.header("x-one"), Some("1"));
}

#[tokio::test]
async fn echo_over_h2c_reports_http2_and_a_missing_query_as_null() {
    let upstream = Upstream::echo().await;
    let resp = get(&h2c_client(), upstream.uri("/h2")).await;
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let echo = json(resp).await;
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echo["query"], Value::Null);
    assert_eq!(
        upstream.last_request().unwrap().version,
        http::Version::HTTP_2
    );
}

#[tokio::test]
async fn echo_counts_a_streamed_chunked_upload() {
    let upstream = Upstream::echo().await;
    let body = StreamingBody::zeros(3 * 1024 * 1024 + 5, 64 * 1024).chunked();
    let req = Request::put(upstream.uri("/up"))
        .body(body.boxed())
        .unwrap();
    let echo = json(http1_client().request(req).await.unwrap()).await;
    assert_eq!(echo["body_len"], 3 * 1024 * 1024 + 5);
    assert_eq!(echo["headers"]["transfer-encoding"], "chunked");
}

#[tokio::test]
async fn records_only_the_last_n_requests() {
    let upstream = Upstream::builder().record(2).start().await;
    let client = http1_client();
    for path in ["/1", "/2", "/3"] {
        // Reading the whole body returns the connection to the pool.
        json(get(&client, upstream.uri(path)).await).await;
    }
    let paths: Vec<_> = upstream
        .requests()
        .iter()
        .map(|r| r.uri.path().to_owned())
        .collect();
    assert_eq!(paths, ["/2", "/3"]);
    assert_eq!(upstream.hits(), 3);
    assert_eq!(
        upstream.connections(),
        1,
        "the pooled client reuses its connection"
    );
}

#[tokio::test]
async fn fixed_status_header_and_body() {
    let upstream = Upstream::builder()
        .status(503)
        .header("retry-after", "7")
        .header("content-type", "text/plain")
        .body("down for maintenance")
        .start()
        .await;
    let resp = get(&http1_client(), upstream.uri("/")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.headers()["x-upstream"], "upstream");
    let body = body::to_bytes(resp.into_body()).await.unwrap();
    assert_eq!(body, "down for maintenance");
}

#[tokio::test]
async fn status_alone_keeps_the_echo_body() {
    let upstream = Upstream::builder().status(418).start().await;
    let resp = get(&http1_client(), upstream.uri("/tea")).await;
    assert_eq!(resp.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(json(resp).await["path"], "/tea");
}

#[tokio::test]
async fn delay_holds_back_the_response_headers() {
    let delay = Duration::from_millis(150);
    let upstream = Upstream::builder().delay(delay).start().await;
    let client = http1_client();
    let started = Instant::now();
    let resp = get(&client, upstream.uri("/slow")).await;
    assert!(
        started.elapsed() >= delay,
        "headers came after {:?}",
        started.elapsed()
    );
    assert_eq!(resp.status(), StatusCode::OK);

    let timed_out =
        tokio::time::timeout(Duration::from_millis(30), client.get(upstream.uri("/slow"))).await;
    assert!(
        timed_out.is_err(),
        "a short client timeout fires before the delayed headers"
    );
}

async fn assert_reset_mid_body(client: &Client, upstream: &Upstream) {
    let resp = get(client, upstream.uri("/")).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "headers arrive before the reset"
    );
    let mut body = resp.into_body();
    let mut received = 0;
    let error = loop {
        match body.frame().await {
            Some(Ok(frame)) => received += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(error)) => break error,
            None => panic!("body ended cleanly after {received} bytes"),
        }
    };
    assert!(
        received > 0 && received < 1024 * 1024,
        "received {received} bytes, then {error}"
    );
}

#[tokio::test]
async fn reset_mid_body_fails_the_body_with_declared_length() {
    let upstream = Upstream::builder().reset_mid_body().start().await;
    let resp = get(&http1_client(), upstream.uri("/")).await;
    assert_eq!(resp.headers()["content-length"], "1048576");
    drop(resp);
    assert_reset_mid_body(&http1_client(), &upstream).await;
}

#[tokio::test]
async fn reset_mid_body_fails_a_chunked_body() {
    let upstream = Upstream::builder().reset_mid_body_chunked().start().await;
    let resp = get(&http1_client(), upstream.uri("/")).await;
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    drop(resp);
    assert_reset_mid_body(&http1_client(), &upstream).await;
}

#[tokio::test]
async fn reset_mid_body_resets_the_h2_stream() {
    let upstream = Upstream::builder().reset_mid_body().start().await;
    assert_reset_mid_body(&h2c_client(), &upstream).await;
}

#[tokio::test]
async fn never_respond_reads_the_request_and_hangs() {
    let upstream = Upstream::builder().never_respond().start().await;
    let req = Request::post(upstream.uri("/hang"))
        .body(full("payload"))
        .unwrap();
    let result =
        tokio::time::timeout(Duration::from_millis(200), http1_client().request(req)).await;
    assert!(result.is_err(), "no response should arrive");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn sse_events_arrive_one_by_one() {
    let interval = Duration::from_millis(100);
    let upstream = Upstream::builder().sse(3, interval).start().await;
    let resp = get(&http1_client(), upstream.uri("/events")).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");

    let mut body = resp.into_body();
    let mut events = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            events.push((Instant::now(), String::from_utf8(data.to_vec()).unwrap()));
        }
    }
    let texts: Vec<_> = events.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        [
            "data: event 1\n\n",
            "data: event 2\n\n",
            "data: event 3\n\n"
        ]
    );
    // Had the events been buffered until the end they would arrive together.
    let spread = events[2].0 - events[0].0;
    assert!(
        spread >= interval,
        "events arrived together, within {spread:?}"
    );
}

#[tokio::test]
async fn sse_streams_over_h2c_too() {
    let upstream = Upstream::builder()
        .sse(2, Duration::from_millis(20))
        .start()
        .await;
    let resp = get(&h2c_client(), upstream.uri("/events")).await;
    let body = body::to_bytes(resp.into_body()).await.unwrap();
    assert_eq!(body, "data: event 1\n\ndata: event 2\n\n");
}

#[tokio::test]
async fn large_response_streams_the_declared_length() {
    let len: u64 = 8 * 1024 * 1024 + 3;
    let upstream = Upstream::builder().large_response(len).start().await;
    let resp = get(&http1_client(), upstream.uri("/big")).await;
    assert_eq!(resp.headers()["content-length"], len.to_string().as_str());
    let mut body = resp.into_body();
    let (mut total, mut frames) = (0u64, 0);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            assert!(data.iter().all(|&b| b == 0));
            total += data.len() as u64;
            frames += 1;
        }
    }
    assert_eq!(total, len);
    assert!(frames > 1, "the body arrived in several frames");
}

#[tokio::test]
async fn grpc_like_echoes_the_body_and_sends_trailers_over_h2() {
    let upstream = Upstream::builder().grpc_like().start().await;
    let req = Request::post(upstream.uri("/pkg.Svc/Method"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-trailer-echo", "abc")
        .body(full(&b"\0\0\0\0\x03hey"[..]))
        .unwrap();
    let resp = h2c_client().request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.headers()["content-type"], "application/grpc");

    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers over h2");
    assert_eq!(collected.to_bytes(), &b"\0\0\0\0\x03hey"[..]);
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "ok");
    assert_eq!(trailers["x-trailer-echo"], "abc");
}

#[tokio::test]
async fn websocket_echo_round_trips_messages() {
    let upstream = Upstream::builder().websocket_echo().start().await;
    let tcp = tokio::net::TcpStream::connect(upstream.addr())
        .await
        .unwrap();
    let url = format!("ws://{}/ws", upstream.addr());
    let (mut ws, resp) = gatehouse_testkit::tokio_tungstenite::client_async(url, tcp)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(resp.headers()["x-upstream"], "upstream");

    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    ws.close(None).await.unwrap();
    while let Some(Ok(msg)) = ws.next().await {
        assert!(msg.is_close(), "only the close reply is left, got {msg:?}");
    }
    assert_eq!(
        upstream.last_request().unwrap().header("upgrade"),
        Some("websocket")
    );

    // Plain requests to the same upstream get the echo JSON.
    let resp = get(&http1_client(), upstream.uri("/plain")).await;
    assert_eq!(json(resp).await["path"], "/plain");
}

#[tokio::test]
async fn handler_builds_custom_responses() {
    let upstream = Upstream::builder()
        .header("x-extra", "1")
        .handler(|req: Request<Incoming>| async move {
            let mut resp = Response::new(full(format!("you asked for {}", req.uri().path())));
            *resp.status_mut() = StatusCode::CREATED;
            resp
        })
        .start()
        .await;
    let resp = get(&http1_client(), upstream.uri("/thing")).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["x-extra"], "1");
    let body = body::to_bytes(resp.into_body()).await.unwrap();
    assert_eq!(body, "you asked for /thing");
}

#[tokio::test]
async fn http2_only_refuses_http1() {
    let upstream = Upstream::builder().http2_only().start().await;
    assert!(http1_client().get(upstream.uri("/")).await.is_err());
    let resp = get(&h2c_client(), upstream.uri("/")).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn http1_only_refuses_h2c() {
    let upstream = Upstream::builder().http1_only().start().await;
    assert!(h2c_client().get(upstream.uri("/")).await.is_err());
    let resp = get(&http1_client(), upstream.uri("/")).await;
    assert_eq!(json(resp).await["version"], "HTTP/1.1");
}

#[tokio::test]
async fn wait_for_hits_sees_requests_made_elsewhere() {
    let upstream = Upstream::echo().await;
    let uri = upstream.uri("/bg");
    tokio::spawn(async move {
        let client = http1_client();
        for _ in 0..3 {
            let _ = client.get(uri.clone()).await;
        }
    });
    assert!(upstream.wait_for_hits(3, Duration::from_secs(5)).await);
    assert!(!upstream.wait_for_hits(4, Duration::from_millis(50)).await);
}

#[tokio::test]
async fn dropping_the_upstream_stops_it() {
    let upstream = Upstream::echo().await;
    let addr = upstream.addr();
    drop(upstream);
    // The accept task is aborted on drop; the runtime closes the listener the
    // next time it runs, so allow it a few turns.
    let mut refused = false;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "{addr} still accepts after drop");
}
