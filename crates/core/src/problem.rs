//! RFC 9457 `application/problem+json` responses made by the gateway itself.
//!
//! Every rejection the gateway produces goes through [`Problem`], so clients
//! get one stable shape: a `type` URI that never changes, a title, the status
//! and the request id. Upstream internals and secrets never end up here.

use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::stream::{self as body, Body};

/// The media type of problem details.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem type a plugin owns: declared as a `pub const` in the plugin's
/// module, listed by its factory ([`crate::PluginFactory::problem_types`])
/// and raised as [`ProblemType::Plugin`]. The slug is public API, like the
/// gateway's own: it must never change and must not collide with another.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ProblemDef {
    /// `urn:gatehouse:problem:<slug>`.
    pub slug: &'static str,
    /// The default status (a plugin may answer another, configured one).
    pub status: u16,
    /// A short summary that does not change between occurrences.
    pub title: &'static str,
}

/// Stable problem types. The slug of each is part of the public API: it is
/// rendered as `urn:gatehouse:problem:<slug>` and must never change.
///
/// The named variants are the gateway's own ([`CORE_TYPES`]); plugins bring
/// theirs as [`ProblemType::Plugin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemType {
    /// No route matched the request (404).
    NoRoute,
    /// A route matched the path but not the method (405).
    MethodNotAllowed,
    /// A method the gateway never forwards, such as `CONNECT` or `TRACE`
    /// (501).
    MethodNotImplemented,
    /// The request body is larger than allowed (413).
    PayloadTooLarge,
    /// A request body was sent without the required Content-Length (411).
    LengthRequired,
    /// The request headers are too large or too many (431).
    HeadersTooLarge,
    /// The request is malformed (400).
    BadRequest,
    /// The request path cannot be canonicalised: a malformed or control
    /// escape, an encoded slash the listener refuses, a dot segment above
    /// the root or hidden behind `;` parameters (400). docs/security.md.
    BadPath,
    /// The effective host (request-target authority or `Host`) is not
    /// `host[:port]`, or HTTP/2 `:authority` and `host` disagree (400).
    BadHost,
    /// A rewritten or stripped upstream path would leave the service's
    /// base path or the route's resource (400).
    PathOutsideRoute,
    /// The upstream could not be reached or broke the connection (502).
    UpstreamUnreachable,
    /// The upstream did not answer in time (504).
    UpstreamTimeout,
    /// The TLS handshake with the upstream failed: its certificate did not
    /// verify, or it rejected ours (502).
    UpstreamTls,
    /// No healthy upstream is available (503).
    NoHealthyUpstream,
    /// The matched route has no service and no plugin answered (503).
    NoService,
    /// The service is at its concurrency limit and its queue is full or
    /// the wait timed out (503).
    ServiceOverloaded,
    /// The circuit breaker of the service, or of every target that could
    /// take the request, is open (503).
    CircuitOpen,
    /// Authentication is missing or wrong (401).
    Unauthorized,
    /// The caller is known but not allowed (403), e.g. an app without an
    /// approved subscription to the API.
    Forbidden,
    /// The API version the route belongs to is retired (410).
    ApiRetired,
    /// The gateway is shutting down (503).
    ShuttingDown,
    /// An unexpected failure inside the gateway (500).
    Internal,
    /// Admin API: no such entity, workspace, token or endpoint (404).
    NotFound,
    /// Admin API: the entity already exists (409).
    Conflict,
    /// Admin API: an `If-Match` / `If-None-Match` precondition did not
    /// hold (412).
    PreconditionFailed,
    /// Admin API: the entity does not deserialize into its configuration
    /// type, or its name does not match (400).
    InvalidEntity,
    /// Admin API: the control-plane store cannot be reached (503).
    StoreUnavailable,
    /// A type owned by a plugin.
    Plugin(&'static ProblemDef),
}

/// Every problem type of the gateway itself (the data plane and the admin
/// API), for docs/errors.md's test; plugins list theirs through their
/// factories.
pub const CORE_TYPES: &[ProblemType] = &[
    ProblemType::NoRoute,
    ProblemType::MethodNotAllowed,
    ProblemType::MethodNotImplemented,
    ProblemType::PayloadTooLarge,
    ProblemType::LengthRequired,
    ProblemType::HeadersTooLarge,
    ProblemType::BadRequest,
    ProblemType::BadPath,
    ProblemType::BadHost,
    ProblemType::PathOutsideRoute,
    ProblemType::UpstreamUnreachable,
    ProblemType::UpstreamTimeout,
    ProblemType::UpstreamTls,
    ProblemType::NoHealthyUpstream,
    ProblemType::NoService,
    ProblemType::ServiceOverloaded,
    ProblemType::CircuitOpen,
    ProblemType::Unauthorized,
    ProblemType::Forbidden,
    ProblemType::ApiRetired,
    ProblemType::ShuttingDown,
    ProblemType::Internal,
    ProblemType::NotFound,
    ProblemType::Conflict,
    ProblemType::PreconditionFailed,
    ProblemType::InvalidEntity,
    ProblemType::StoreUnavailable,
];

impl ProblemType {
    /// The stable slug of this problem type.
    pub fn slug(self) -> &'static str {
        match self {
            Self::NoRoute => "no-route",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::MethodNotImplemented => "method-not-implemented",
            Self::PayloadTooLarge => "payload-too-large",
            Self::LengthRequired => "length-required",
            Self::HeadersTooLarge => "headers-too-large",
            Self::BadRequest => "bad-request",
            Self::BadPath => "bad-path",
            Self::BadHost => "bad-host",
            Self::PathOutsideRoute => "path-outside-route",
            Self::UpstreamUnreachable => "upstream-unreachable",
            Self::UpstreamTimeout => "upstream-timeout",
            Self::UpstreamTls => "upstream-tls",
            Self::NoHealthyUpstream => "no-healthy-upstream",
            Self::NoService => "no-service",
            Self::ServiceOverloaded => "service-overloaded",
            Self::CircuitOpen => "circuit-open",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::ApiRetired => "api-retired",
            Self::ShuttingDown => "shutting-down",
            Self::Internal => "internal",
            Self::NotFound => "not-found",
            Self::Conflict => "conflict",
            Self::PreconditionFailed => "precondition-failed",
            Self::InvalidEntity => "invalid-entity",
            Self::StoreUnavailable => "store-unavailable",
            Self::Plugin(def) => def.slug,
        }
    }

    /// The `type` member: `urn:gatehouse:problem:<slug>`.
    pub fn uri(self) -> String {
        format!("urn:gatehouse:problem:{}", self.slug())
    }

    /// The status this problem is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::MethodNotImplemented => StatusCode::NOT_IMPLEMENTED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::LengthRequired => StatusCode::LENGTH_REQUIRED,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::BadRequest | Self::BadPath | Self::BadHost | Self::PathOutsideRoute => {
                StatusCode::BAD_REQUEST
            }
            Self::UpstreamUnreachable | Self::UpstreamTls => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::NoHealthyUpstream
            | Self::NoService
            | Self::ServiceOverloaded
            | Self::CircuitOpen
            | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::ApiRetired => StatusCode::GONE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::InvalidEntity => StatusCode::BAD_REQUEST,
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Plugin(def) => {
                StatusCode::from_u16(def.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// A short, human-readable summary that does not change between
    /// occurrences.
    pub fn title(self) -> &'static str {
        match self {
            Self::NoRoute => "No route matches the request",
            Self::MethodNotAllowed => "Method not allowed on this route",
            Self::MethodNotImplemented => "Method not supported by the gateway",
            Self::PayloadTooLarge => "Request body too large",
            Self::LengthRequired => "Content-Length required",
            Self::HeadersTooLarge => "Request header fields too large",
            Self::BadRequest => "Malformed request",
            Self::BadPath => "Request path refused",
            Self::BadHost => "Request host refused",
            Self::PathOutsideRoute => "Upstream path leaves the route",
            Self::UpstreamUnreachable => "Upstream unreachable",
            Self::UpstreamTimeout => "Upstream timed out",
            Self::UpstreamTls => "TLS to the upstream failed",
            Self::NoHealthyUpstream => "No healthy upstream",
            Self::NoService => "No service configured for this route",
            Self::ServiceOverloaded => "Service at its concurrency limit",
            Self::CircuitOpen => "Circuit breaker open",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::ApiRetired => "API version retired",
            Self::ShuttingDown => "Gateway is shutting down",
            Self::Internal => "Internal gateway error",
            Self::NotFound => "Not found",
            Self::Conflict => "Already exists",
            Self::PreconditionFailed => "Precondition failed",
            Self::InvalidEntity => "Invalid entity",
            Self::StoreUnavailable => "Store unavailable",
            Self::Plugin(def) => def.title,
        }
    }
}

/// A problem details document plus the headers that go with it.
#[derive(Debug, Clone)]
pub struct Problem {
    kind: ProblemType,
    status: StatusCode,
    detail: Option<String>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl Problem {
    /// A problem of the given type with its default status.
    pub fn new(kind: ProblemType) -> Self {
        Self {
            kind,
            status: kind.status(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// Adds a human-readable explanation specific to this occurrence. Never
    /// put upstream internals or secrets here.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Overrides the status (for example a plugin configured to answer 429).
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a response header (for example `Allow` on a 405).
    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The problem type.
    pub fn kind(&self) -> ProblemType {
        self.kind
    }

    /// The HTTP status this problem answers with.
    pub fn status_code(&self) -> StatusCode {
        self.status
    }

    /// Renders the response. `request_id` is included in the document and
    /// in the `x-request-id` header by the proxy.
    pub fn into_response(self, request_id: Option<&str>) -> Response<Body> {
        let doc = Document {
            kind: self.kind.uri(),
            title: self.kind.title(),
            status: self.status.as_u16(),
            detail: self.detail.as_deref(),
            request_id,
        };
        // Serializing a struct of strings and integers cannot fail.
        let json = serde_json::to_vec(&doc).unwrap_or_default();
        let mut resp = Response::new(body::full(json));
        *resp.status_mut() = self.status;
        resp.extensions_mut().insert(Answered(self.kind));
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        resp
    }
}

/// Put in the extensions of every problem+json response made by
/// [`Problem::into_response`]: which problem it answers (the access log
/// reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered(pub ProblemType);

impl From<ProblemType> for Problem {
    fn from(kind: ProblemType) -> Self {
        Self::new(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn renders_rfc9457_document() {
        let resp = Problem::new(ProblemType::NoRoute)
            .detail("GET /nope")
            .into_response(Some("abc"));
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["type"], "urn:gatehouse:problem:no-route");
        assert_eq!(v["status"], 404);
        assert_eq!(v["title"], "No route matches the request");
        assert_eq!(v["detail"], "GET /nope");
        assert_eq!(v["request_id"], "abc");
    }

    #[tokio::test]
    async fn plugin_types_render_their_own_slug_status_and_title() {
        static TEAPOT: ProblemDef = ProblemDef {
            slug: "teapot",
            status: 418,
            title: "I am a teapot",
        };
        let resp = Problem::new(ProblemType::Plugin(&TEAPOT)).into_response(None);
        assert_eq!(resp.status().as_u16(), 418);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["type"], "urn:gatehouse:problem:teapot");
        assert_eq!(v["title"], "I am a teapot");
    }

    #[test]
    fn core_slugs_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for t in CORE_TYPES {
            let slug = t.slug();
            assert!(seen.insert(slug), "duplicate slug {slug}");
            assert!(
                slug.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{slug}"
            );
            assert!(!t.title().is_empty());
        }
    }
}
