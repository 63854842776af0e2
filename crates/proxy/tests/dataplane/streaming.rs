//! Bodies stream both ways: server-sent events arrive one by one, large
//! downloads flow without buffering, WebSocket upgrades and gRPC-style h2
//! trailers pass through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::{TestGateway, empty, req};
use futures_util::{SinkExt, StreamExt};
use gatehouse_testkit::tokio_tungstenite::tungstenite::Message;
use gatehouse_testkit::{Upstream, body};
use http_body_util::BodyExt;

fn route_to(up: &Upstream, protocol: &str) -> String {
    format!(
        "services:\n  - name: up\n    url: \"{}\"\n    protocol: {protocol}\nroutes:\n  - name: r\n    service: up\n",
        up.url()
    )
}

#[tokio::test]
async fn server_sent_events_arrive_one_by_one() {
    let up = Upstream::builder()
        .sse(5, Duration::from_millis(150))
        .start()
        .await;
    let gw = TestGateway::start(&route_to(&up, "http1")).await;
    let client = gatehouse_testkit::http1_client();
    let resp = client
        .request(empty(req("GET", &gw.url("/events"))))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut arrivals = Vec::new();
    let start = Instant::now();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            let chunk = String::from_utf8_lossy(data).into_owned();
            for _ in chunk.matches("data: event").collect::<Vec<_>>() {
                arrivals.push(start.elapsed());
            }
            text.push_str(&chunk);
        }
    }
    assert_eq!(arrivals.len(), 5, "{text}");
    assert!(text.contains("data: event 1\n\n") && text.contains("data: event 5\n\n"));
    // The upstream emits event i at i x 150 ms. A buffering proxy would
    // deliver nothing before the last one is emitted (600 ms) and then all
    // at once. Delays only make arrivals later, so these bounds hold on a
    // loaded machine too.
    assert!(
        arrivals[0] < Duration::from_millis(450),
        "first event held back: {arrivals:?}"
    );
    assert!(
        arrivals[4] - arrivals[0] >= Duration::from_millis(300),
        "events were batched: {arrivals:?}"
    );
}

#[tokio::test]
async fn large_download_streams() {
    let up = Upstream::builder()
        .large_response(64 * 1024 * 1024)
        .start()
        .await;
    let gw = TestGateway::start(&route_to(&up, "http1")).await;
    let client = gatehouse_testkit::http1_client();
    let resp = client
        .request(empty(req("GET", &gw.url("/big"))))
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-length"], "67108864");
    let mut body = resp.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            total += data.len() as u64;
        }
    }
    assert_eq!(total, 64 * 1024 * 1024);
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    let up = Upstream::builder().websocket_echo().start().await;
    let gw = TestGateway::start(&route_to(&up, "http1")).await;
    let stream = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let (mut ws, resp) = gatehouse_testkit::tokio_tungstenite::client_async(
        format!("ws://{}/ws", gw.addr()),
        stream,
    )
    .await
    .expect("websocket handshake through the gateway");
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(resp.headers()["via"], "1.1 gatehouse");
    for i in 0..3 {
        ws.send(Message::Text(format!("hello {i}").into()))
            .await
            .unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), format!("hello {i}"));
    }
    ws.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_data().as_ref(),
        &[1, 2, 3]
    );
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn grpc_style_h2_with_trailers_passes_through() {
    let up = Upstream::builder().grpc_like().http2_only().start().await;
    let gw = TestGateway::start(&route_to(&up, "http2")).await;
    let client = gatehouse_testkit::h2c_client();
    let payload = b"\x00\x00\x00\x00\x05hello".to_vec();
    let resp = client
        .request(
            req("POST", &gw.url("/pkg.Service/Method"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .header("x-trailer-echo", "abc")
                .body(body::full(payload.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers must pass through");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "ok");
    assert_eq!(trailers["x-trailer-echo"], "abc");
    assert_eq!(collected.to_bytes().as_ref(), payload.as_slice());
}
