//! hyper clients for tests: pooled HTTP/1.1 and h2c (HTTP/2 prior knowledge).

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::BoxBody;

/// A pooled hyper client over plain TCP; request bodies are [`BoxBody`], so a
/// test can send [`crate::body::full`], [`crate::body::empty`] or a
/// [`crate::StreamingBody`]. `client.get(uri)` sends an empty body.
pub type Client = hyper_util::client::legacy::Client<HttpConnector, BoxBody>;

/// A pooled HTTP/1.1 client.
pub fn http1_client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// A client that speaks HTTP/2 with prior knowledge (h2c) on `http://` URIs.
pub fn h2c_client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}
