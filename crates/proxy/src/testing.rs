//! Test support (feature `__test`, never in the binary): starts the real
//! gateway in-process on 127.0.0.1:0 from a YAML string and stops it when
//! the guard drops, and collects responses. Shared by the data plane's
//! end-to-end tests (`tests/dataplane`) and the binary's (`crates/gatehouse/tests/e2e`).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;

use crate::Gateway;
use http_body_util::BodyExt;

/// A running in-process gateway.
pub struct TestGateway {
    pub gateway: Gateway,
}

impl TestGateway {
    /// Parses `yaml` (adding a `127.0.0.1:0` listener when it names none)
    /// and starts the gateway. Panics with the config errors otherwise.
    pub async fn start(yaml: &str) -> Self {
        Self::start_with_registry(yaml, gatehouse_plugins::registry()).await
    }

    /// Like [`TestGateway::start`] with a plugin registry of the test's own.
    pub async fn start_with_registry(yaml: &str, registry: gatehouse_plugins::Registry) -> Self {
        let yaml = if yaml.contains("listeners:") {
            yaml.to_string()
        } else {
            format!("listeners:\n  - address: \"127.0.0.1:0\"\n{yaml}")
        };
        let loaded = gatehouse_config::parse_str(&yaml, "test.yaml")
            .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        let gateway = Gateway::start(&loaded, registry)
            .await
            .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
        Self { gateway }
    }

    pub fn addr(&self) -> SocketAddr {
        self.gateway.addr()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }

    pub fn uri(&self, path: &str) -> http::Uri {
        self.url(path).parse().expect("valid uri")
    }

    /// Reloads from YAML; returns the errors as text on failure.
    pub async fn reload(&self, yaml: &str) -> Result<u64, String> {
        let yaml = if yaml.contains("listeners:") {
            yaml.to_string()
        } else {
            format!("listeners:\n  - address: \"127.0.0.1:0\"\n{yaml}")
        };
        let loaded =
            gatehouse_config::parse_str(&yaml, "reload.yaml").map_err(|e| e.to_string())?;
        self.gateway
            .reload(&loaded)
            .await
            .map_err(|e| e.to_string())
    }
}

/// A collected response.
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts this is an RFC 9457 problem of `slug` with `status`, and
    /// that the request id in the body matches the header.
    pub fn assert_problem(&self, status: u16, slug: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let v = self.json();
        assert_eq!(v["type"], format!("urn:gatehouse:problem:{slug}"), "{v}");
        assert_eq!(v["status"], status);
        assert!(v["title"].as_str().is_some_and(|t| !t.is_empty()));
        let rid = self.header("x-request-id").expect("x-request-id header");
        assert_eq!(v["request_id"], rid);
        v
    }
}

/// Sends `req` with a fresh HTTP/1.1 client and collects the response.
pub async fn send(req: http::Request<gatehouse_testkit::BoxBody>) -> Resp {
    send_with(&gatehouse_testkit::http1_client(), req).await
}

/// Sends with the given client.
pub async fn send_with(
    client: &gatehouse_testkit::Client,
    req: http::Request<gatehouse_testkit::BoxBody>,
) -> Resp {
    let resp = client.request(req).await.expect("request failed");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

/// GET `url`.
pub async fn get(url: &str) -> Resp {
    send(
        http::Request::get(url)
            .body(gatehouse_testkit::body::empty())
            .expect("request"),
    )
    .await
}

/// A request builder with an empty body.
pub fn req(method: &str, url: &str) -> http::request::Builder {
    http::Request::builder().method(method).uri(url)
}

/// Finishes a builder with an empty body.
pub fn empty(b: http::request::Builder) -> http::Request<gatehouse_testkit::BoxBody> {
    b.body(gatehouse_testkit::body::empty()).expect("request")
}

/// What `gatehouse validate` checks: parsed, validated and compiled
/// (without binding anything).
pub fn load_and_check(
    path: &std::path::Path,
) -> Result<gatehouse_config::Loaded, gatehouse_config::ConfigErrors> {
    let loaded = gatehouse_config::load_file(path)?;
    crate::check(&loaded, &gatehouse_plugins::registry())?;
    Ok(loaded)
}
