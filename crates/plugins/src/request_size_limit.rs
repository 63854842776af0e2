//! `request-size-limit`: rejects request bodies over a size, without ever
//! buffering them.
//!
//! A declared `Content-Length` over the limit is answered 413 in the access
//! phase, before anything is read. Every other body is wrapped in
//! [`LimitedBody`], which counts bytes as they stream to the upstream and
//! fails the stream with a [`BodyRejected`] 413 problem once the limit is
//! passed; the proxy answers that problem when an upstream send failed
//! with it (without knowing this plugin).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http_body::{Frame, SizeHint};
use schemars::JsonSchema;
use serde::Deserialize;

use gatehouse_core::{
    Body, BoxError, Ctx, Flow, Phase, Phases, Plugin, PluginError, Problem, ProblemType, Request,
    body,
};

use gatehouse_core::{Band, BodyRejected};

use crate::{TypedFactory, config};

/// Registry name.
pub const NAME: &str = "request-size-limit";
/// Default priority.
pub const PRIORITY: i32 = 951;

/// Configuration of `request-size-limit`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Config {
    /// Largest accepted request body, in bytes (> 0).
    pub max_bytes: u64,
    /// Answer 411 to requests that have a body but no `Content-Length`
    /// (chunked uploads).
    #[serde(default)]
    pub require_content_length: bool,
}

/// Builds [`RequestSizeLimit`] instances from their `config`.
pub const FACTORY: TypedFactory<Config> =
    TypedFactory::new(NAME, PRIORITY, Band::Policy, |cfg, _cx| {
        Ok(Arc::new(RequestSizeLimit::new(cfg)?))
    });

pin_project_lite::pin_project! {
    /// A body that streams `inner` through and fails with [`BodyRejected`]
    /// as soon as more than `limit` bytes were seen. The chunk that passes
    /// the limit is not forwarded.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        remaining: u64,
        limit: u64,
        failed: bool,
    }
}

impl<B> LimitedBody<B> {
    /// Wraps `inner` with a limit of `limit` bytes.
    pub fn new(inner: B, limit: u64) -> Self {
        Self {
            inner,
            remaining: limit,
            limit,
            failed: false,
        }
    }
}

impl<B> http_body::Body for LimitedBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > *this.remaining {
                        *this.failed = true;
                        return Poll::Ready(Some(Err(Box::new(too_large(*this.limit)))));
                    }
                    *this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => Poll::Ready(Some(Err(err.into()))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The 413 a body over `limit` bytes gets, as the stream error.
fn too_large(limit: u64) -> BodyRejected {
    BodyRejected(
        Problem::new(ProblemType::PayloadTooLarge)
            .detail(format!("request body exceeds the limit of {limit} bytes")),
    )
}

/// The running plugin.
#[derive(Debug)]
pub struct RequestSizeLimit {
    max_bytes: u64,
    require_content_length: bool,
}

impl RequestSizeLimit {
    /// Validates `cfg` and builds the plugin.
    pub fn new(cfg: Config) -> Result<Self, PluginError> {
        if cfg.max_bytes == 0 {
            return Err(PluginError::at(
                "max_bytes",
                "expected a size in bytes greater than 0",
            ));
        }
        Ok(Self {
            max_bytes: cfg.max_bytes,
            require_content_length: cfg.require_content_length,
        })
    }

    fn too_large(&self, ctx: &Ctx) -> Flow {
        config::reject(ctx, too_large(self.max_bytes).0)
    }
}

/// What a `Content-Length` value says.
enum Declared {
    Length(u64),
    /// All digits, but more than `u64::MAX`.
    Huge,
    Invalid,
}

fn declared_length(value: &http::HeaderValue) -> Declared {
    let bytes = value.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return Declared::Invalid;
    }
    // All ASCII digits, so valid UTF-8; parsing only fails on overflow.
    match std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()) {
        Some(n) => Declared::Length(n),
        None => Declared::Huge,
    }
}

#[async_trait]
impl Plugin for RequestSizeLimit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn phases(&self) -> Phases {
        Phases::of(&[Phase::Access])
    }

    async fn access(&self, ctx: &mut Ctx, req: &mut Request) -> Flow {
        match req.headers().get(CONTENT_LENGTH).map(declared_length) {
            Some(Declared::Length(n)) if n > self.max_bytes => return self.too_large(ctx),
            Some(Declared::Huge) => return self.too_large(ctx),
            Some(Declared::Invalid) => {
                return config::reject(
                    ctx,
                    Problem::new(ProblemType::BadRequest).detail("invalid Content-Length header"),
                );
            }
            Some(Declared::Length(_)) => {}
            None => {
                let has_body = req.headers().contains_key(TRANSFER_ENCODING)
                    || !http_body::Body::is_end_stream(req.body());
                if !has_body {
                    return Flow::Continue;
                }
                if self.require_content_length {
                    return config::reject(
                        ctx,
                        Problem::new(ProblemType::LengthRequired)
                            .detail("a Content-Length header is required for request bodies"),
                    );
                }
            }
        }
        // Even with a declared length within the limit the body is counted:
        // it costs one comparison per chunk and does not trust the framing.
        let inner = std::mem::replace(req.body_mut(), body::empty());
        let limited: Body = body::boxed(LimitedBody::new(inner, self.max_bytes));
        *req.body_mut() = limited;
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use http::HeaderValue;
    use http_body::Body as _;
    use http_body_util::BodyExt;
    use serde_json::json;

    fn plugin(config: serde_json::Value) -> Arc<dyn Plugin> {
        build(&FACTORY, config).unwrap()
    }

    fn with_length(len: &str, body: Body) -> Request {
        let mut req = request("POST", "/upload");
        req.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_str(len).unwrap());
        *req.body_mut() = body;
        req
    }

    #[tokio::test]
    async fn declared_length_over_limit_is_413_before_reading() {
        let p = plugin(json!({"max_bytes": 10}));
        let mut req = with_length("11", body::full(&b"0123456789a"[..]));
        let (status, doc, _) = problem(p.access(&mut ctx(), &mut req).await).await;
        assert_eq!(status, 413);
        assert_eq!(doc["type"], "urn:gatehouse:problem:payload-too-large");
        assert_eq!(doc["detail"], "request body exceeds the limit of 10 bytes");
    }

    #[tokio::test]
    async fn huge_content_length_is_413_not_an_overflow() {
        let p = plugin(json!({"max_bytes": 1024}));
        for len in ["18446744073709551615", "99999999999999999999999999"] {
            let mut req = with_length(len, body::empty());
            let (status, _, _) = problem(p.access(&mut ctx(), &mut req).await).await;
            assert_eq!(status, 413, "{len}");
        }
    }

    #[tokio::test]
    async fn malformed_content_length_is_400() {
        let p = plugin(json!({"max_bytes": 1024}));
        let mut req = with_length("12abc", body::empty());
        let (status, doc, _) = problem(p.access(&mut ctx(), &mut req).await).await;
        assert_eq!(status, 400);
        assert_eq!(doc["type"], "urn:gatehouse:problem:bad-request");
    }

    #[tokio::test]
    async fn body_within_limit_streams_through_unchanged() {
        let p = plugin(json!({"max_bytes": 10}));
        let mut req = with_length("10", body::full(&b"0123456789"[..]));
        assert!(continues(&p.access(&mut ctx(), &mut req).await));
        assert_eq!(req.body().size_hint().exact(), Some(10));
        assert_eq!(
            &bytes(std::mem::replace(req.body_mut(), body::empty())).await[..],
            b"0123456789"
        );

        let mut req = request("POST", "/");
        *req.body_mut() = chunked(&[b"0123", b"4567", b"89"]);
        assert!(continues(&p.access(&mut ctx(), &mut req).await));
        let got = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"0123456789");
    }

    #[tokio::test]
    async fn chunked_overflow_fails_the_stream_with_body_too_large() {
        let p = plugin(json!({"max_bytes": 10}));
        let mut req = request("POST", "/");
        req.headers_mut()
            .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        *req.body_mut() = chunked(&[b"0123", b"4567", b"89a", b"never read"]);
        assert!(continues(&p.access(&mut ctx(), &mut req).await));
        let err = req.into_body().collect().await.unwrap_err();
        let found = BodyRejected::find(&*err).expect("BodyRejected in the chain");
        assert_eq!(found.0.kind(), ProblemType::PayloadTooLarge);
        let doc = found.0.clone().into_response(None);
        assert_eq!(doc.status(), 413);
        let body = bytes(doc.into_body()).await;
        assert!(
            String::from_utf8_lossy(&body).contains("request body exceeds the limit of 10 bytes")
        );
    }

    #[tokio::test]
    async fn lying_content_length_is_still_capped() {
        let p = plugin(json!({"max_bytes": 4}));
        let mut req = with_length("3", chunked(&[b"abc", b"def"]));
        assert!(continues(&p.access(&mut ctx(), &mut req).await));
        let err = req.into_body().collect().await.unwrap_err();
        assert!(err.downcast_ref::<BodyRejected>().is_some());
    }

    #[tokio::test]
    async fn limiter_stops_after_failing() {
        let mut limited = LimitedBody::new(chunked(&[b"abcdef", b"gh"]), 5);
        let first = limited.frame().await.unwrap();
        assert!(first.is_err());
        assert!(limited.is_end_stream());
        assert!(limited.frame().await.is_none());
    }

    #[tokio::test]
    async fn require_content_length_answers_411_for_unknown_lengths_only() {
        let p = plugin(json!({"max_bytes": 100, "require_content_length": true}));
        let mut req = request("POST", "/");
        *req.body_mut() = chunked(&[b"abc"]);
        let (status, doc, _) = problem(p.access(&mut ctx(), &mut req).await).await;
        assert_eq!(status, 411);
        assert_eq!(doc["status"], 411);

        let mut req = request("POST", "/");
        req.headers_mut()
            .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        assert_eq!(
            responded(p.access(&mut ctx(), &mut req).await).status(),
            411
        );

        // No body at all (a GET) needs no length.
        assert!(continues(
            &p.access(&mut ctx(), &mut request("GET", "/")).await
        ));
        // A declared length is fine.
        let mut req = with_length("3", body::full(&b"abc"[..]));
        assert!(continues(&p.access(&mut ctx(), &mut req).await));
    }

    #[tokio::test]
    async fn unknown_length_is_accepted_by_default() {
        let p = plugin(json!({"max_bytes": 100}));
        let mut req = request("POST", "/");
        *req.body_mut() = chunked(&[b"abc"]);
        assert!(continues(&p.access(&mut ctx(), &mut req).await));
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (json!({}), ""),
            (serde_json::Value::Null, ""),
            (json!({"max_bytes": 0}), "max_bytes"),
            (json!({"max_bytes": -5}), "max_bytes"),
            (json!({"max_bytes": "1MB"}), "max_bytes"),
            (
                json!({"max_bytes": 5, "require_content_length": 1}),
                "require_content_length",
            ),
            (json!({"max_bytes": 5, "max": 1}), "max"),
        ];
        for (cfg, path) in cases {
            let err = build_err(&FACTORY, cfg.clone());
            assert_eq!(err.path, path, "{cfg}: {}", err.message);
        }
        let err = build_err(&FACTORY, json!({}));
        assert!(err.message.contains("max_bytes"), "{}", err.message);
    }
}
