//! The built-in plugins through the in-process chain harness
//! (`gatehouse_core::harness`): a chain of several plugins, in the data
//! plane's order, over one request, with no gateway. What a plugin author's
//! own tests look like (docs/plugins/AUTHORING.md, "Testing a plugin").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use gatehouse_core::harness::Harness;
use gatehouse_core::{Ctx, body};
use serde_json::json;

fn ctx(ip: &str) -> Ctx {
    Ctx::new(Arc::from("rid-1"), format!("{ip}:40000").parse().unwrap())
}

fn get(uri: &str) -> gatehouse_core::Request {
    http::Request::builder()
        .uri(uri)
        .body(body::empty())
        .unwrap()
}

fn chain() -> Harness {
    let mut h = Harness::new();
    h.add(
        &gatehouse_plugins::ip_restriction::FACTORY,
        json!({"allow": ["10.0.0.0/8"]}),
    )
    .unwrap()
    .add(
        &gatehouse_plugins::headers::FACTORY,
        json!({"request": {"set": {"x-from": "gateway"}}, "response": {"set": {"x-seen": "yes"}}}),
    )
    .unwrap();
    h
}

#[tokio::test]
async fn an_allowed_client_reaches_the_upstream_with_the_edited_request() {
    let out = chain()
        .run(ctx("10.1.2.3"), get("/x"), |_, req| {
            // The request as the upstream gets it.
            assert_eq!(req.headers()["x-from"], "gateway");
            Ok(http::Response::new(body::full("ok")))
        })
        .await;
    assert_eq!(out.response.status(), 200);
    assert_eq!(out.response.headers()["x-seen"], "yes");
    assert_eq!(out.upstream_calls, 1);
}

#[tokio::test]
async fn a_refused_client_never_reaches_the_upstream_and_still_gets_response_headers() {
    // Hostile and unknown client addresses: all refused before the upstream.
    for ip in ["192.0.2.1", "127.0.0.1", "11.0.0.1"] {
        let out = chain()
            .run(ctx(ip), get("/x"), |_, _| {
                panic!("{ip} reached the upstream")
            })
            .await;
        assert_eq!(out.response.status(), 403, "{ip}");
        assert_eq!(out.response.headers()["x-seen"], "yes", "{ip}");
        assert_eq!(out.upstream_calls, 0);
    }
    let mut unknown = ctx("10.1.2.3");
    unknown.client_ip = None;
    let out = chain()
        .run(unknown, get("/x"), |_, _| {
            panic!("an unknown client reached the upstream")
        })
        .await;
    assert_eq!(out.response.status(), 403);
}
