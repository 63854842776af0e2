//! Helpers for the plugin unit tests: requests, contexts and problem bodies.

use std::sync::Arc;

use gatehouse_core::{
    Body, BuildCx, BuildEnv, Ctx, Flow, Plugin, PluginError, PluginFactory, Resources, Scope, body,
};
use http_body_util::BodyExt;

/// A context for a client at `203.0.113.7:50000` with request id `rid-1`.
pub fn ctx() -> Ctx {
    Ctx::new(Arc::from("rid-1"), "203.0.113.7:50000".parse().unwrap())
}

/// A request with an empty body.
pub fn request(method: &str, uri: &str) -> http::Request<Body> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .body(body::empty())
        .unwrap()
}

/// Builds `factory` from `config` with an empty environment.
pub fn build(
    factory: &dyn PluginFactory,
    config: serde_json::Value,
) -> Result<Arc<dyn Plugin>, PluginError> {
    build_in(factory, &config, &BuildEnv::default())
}

/// Builds `factory` from `config` with `env`, at a test scope, with
/// detached resources.
pub fn build_in(
    factory: &dyn PluginFactory,
    config: &serde_json::Value,
    env: &BuildEnv,
) -> Result<Arc<dyn Plugin>, PluginError> {
    let scope = Scope::Other("test".into());
    let resources = Resources::detached();
    factory.build(
        config,
        &BuildCx::new(factory.name(), env, &scope, &resources),
    )
}

/// The response of a `Flow::Respond`, panicking on `Continue`.
pub fn responded(flow: Flow) -> http::Response<Body> {
    match flow {
        Flow::Respond(resp) => resp,
        Flow::Continue => panic!("expected a response, got Continue"),
    }
}

/// Whether the flow continues.
pub fn continues(flow: &Flow) -> bool {
    matches!(flow, Flow::Continue)
}

/// Collects a body into bytes.
pub async fn bytes(body: Body) -> bytes::Bytes {
    body.collect().await.unwrap().to_bytes()
}

/// Status and parsed problem+json document of a rejection.
pub async fn problem(flow: Flow) -> (u16, serde_json::Value, http::HeaderMap) {
    let resp = responded(flow);
    let (parts, body) = resp.into_parts();
    assert_eq!(
        parts.headers[http::header::CONTENT_TYPE],
        gatehouse_core::problem::CONTENT_TYPE
    );
    let doc: serde_json::Value = serde_json::from_slice(&bytes(body).await).unwrap();
    (parts.status.as_u16(), doc, parts.headers)
}

/// Response parts of an empty 200 response, for response-phase tests.
pub fn response_parts() -> http::response::Parts {
    http::Response::new(()).into_parts().0
}

/// A body of several chunks with no known length, like a chunked upload.
pub struct Chunks(pub std::collections::VecDeque<bytes::Bytes>);

impl http_body::Body for Chunks {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// A chunked body made of `chunks`.
pub fn chunked(chunks: &[&'static [u8]]) -> Body {
    body::boxed(Chunks(
        chunks
            .iter()
            .map(|c| bytes::Bytes::from_static(c))
            .collect(),
    ))
}

/// The error of building `factory` from `config`, panicking on success.
pub fn build_err(factory: &dyn PluginFactory, config: serde_json::Value) -> PluginError {
    match build(factory, config) {
        Ok(_) => panic!("expected a config error"),
        Err(err) => err,
    }
}
