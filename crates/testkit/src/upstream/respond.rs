//! The behaviours of an [`super::Upstream`]: one function per way to answer.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, stream};
use http::header::{
    CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_KEY, TRAILER, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{Behaviour, Config, State};
use crate::body::{BoxBody, BoxError, full, zeros};
use crate::server::Shutdown;

const X_UPSTREAM: HeaderName = HeaderName::from_static("x-upstream");
const X_TRAILER_ECHO: HeaderName = HeaderName::from_static("x-trailer-echo");

/// Builds the response to `req` according to `config`.
pub(super) async fn respond(
    config: &Config,
    state: &State,
    stop: &Shutdown,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    state.on_request(&req);
    if let Some(delay) = config.delay {
        tokio::time::sleep(delay).await;
    }
    let mut status_applies = true;
    let mut resp = match &config.behaviour {
        Behaviour::Echo => echo(config, req).await,
        Behaviour::Fixed(body) => {
            drain(req.into_body()).await;
            Response::new(full(body.clone()))
        }
        Behaviour::ResetMidBody { chunked } => reset_mid_body(*chunked),
        Behaviour::NeverRespond => {
            drain(req.into_body()).await;
            std::future::pending().await
        }
        Behaviour::Sse { events, interval } => sse(*events, *interval),
        Behaviour::Large(len) => Response::new(LargeBody { remaining: *len }.boxed_unsync()),
        Behaviour::GrpcLike => grpc_like(req),
        Behaviour::WebSocketEcho if is_websocket_upgrade(&req) => {
            status_applies = false;
            websocket_echo(stop, req)
        }
        Behaviour::WebSocketEcho => echo(config, req).await,
        Behaviour::Handler(handler) => {
            status_applies = false;
            handler(req).await
        }
    };
    if let (Some(status), true) = (config.status, status_applies) {
        *resp.status_mut() = status;
    }
    let headers = resp.headers_mut();
    for (name, _) in &config.headers {
        headers.remove(name);
    }
    for (name, value) in &config.headers {
        headers.append(name, value.clone());
    }
    headers.insert(X_UPSTREAM, config.name.clone());
    resp
}

/// Reads a body to its end, counting data bytes without keeping them.
async fn drain(mut body: Incoming) -> (u64, Option<hyper::Error>) {
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => len += frame.data_ref().map_or(0, |d| d.len() as u64),
            Err(error) => return (len, Some(error)),
        }
    }
    (len, None)
}

fn header_value_string(value: &HeaderValue) -> String {
    value.to_str().map_or_else(
        |_| String::from_utf8_lossy(value.as_bytes()).into_owned(),
        str::to_owned,
    )
}

async fn echo(config: &Config, req: Request<Incoming>) -> Response<BoxBody> {
    let (parts, body) = req.into_parts();
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<_> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| serde_json::Value::String(header_value_string(v)))
            .collect();
        let value = match <[_; 1]>::try_from(values) {
            Ok([one]) => one,
            Err(many) => serde_json::Value::Array(many),
        };
        headers.insert(name.as_str().to_owned(), value);
    }
    let (body_len, body_error) = drain(body).await;
    let mut json = serde_json::json!({
        "upstream": header_value_string(&config.name),
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": body_len,
    });
    if let Some(error) = body_error {
        json["body_error"] = serde_json::Value::String(error.to_string());
    }
    let mut resp = Response::new(full(json.to_string()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn reset_mid_body(chunked: bool) -> Response<BoxBody> {
    const DECLARED: u64 = 1024 * 1024;
    const SENT: usize = 16 * 1024;
    let frames = stream::unfold(0u8, |step| async move {
        match step {
            0 => Some((Ok(Frame::data(Bytes::from(vec![b'x'; SENT]))), 1)),
            1 => {
                // Give the transport a moment to put the partial body on the
                // wire before the failure tears the connection down.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let error: BoxError = "test upstream: reset mid-body".into();
                Some((Err(error), 2))
            }
            _ => None,
        }
    });
    let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
    if !chunked {
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(DECLARED));
    }
    resp
}

fn sse(events: usize, interval: Duration) -> Response<BoxBody> {
    let frames = stream::unfold(0usize, move |sent| async move {
        if sent >= events {
            return None;
        }
        if sent > 0 {
            tokio::time::sleep(interval).await;
        }
        let event = Bytes::from(format!("data: event {}\n\n", sent + 1));
        Some((Ok::<_, BoxError>(Frame::data(event)), sent + 1))
    });
    let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `remaining` zero bytes in 64 KiB frames, with an exact size hint.
struct LargeBody {
    remaining: u64,
}

impl Body for LargeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        const CHUNK: u64 = 64 * 1024;
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(CHUNK);
        self.remaining -= n;
        // n <= 64 KiB, so the cast cannot truncate.
        Poll::Ready(Some(Ok(Frame::data(zeros(n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

fn grpc_like(req: Request<Incoming>) -> Response<BoxBody> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("grpc-message", HeaderValue::from_static("ok"));
    if let Some(echo) = req.headers().get(X_TRAILER_ECHO) {
        trailers.insert(X_TRAILER_ECHO, echo.clone());
    }
    let body = GrpcEcho {
        inner: req.into_body(),
        trailers: Some(trailers),
    };
    let mut resp = Response::new(body.boxed_unsync());
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    // hyper's HTTP/1 server only sends trailers announced here.
    headers.insert(
        TRAILER,
        HeaderValue::from_static("grpc-status, grpc-message, x-trailer-echo"),
    );
    resp
}

/// Echoes the data frames of `inner`, then sends `trailers`.
struct GrpcEcho {
    inner: Incoming,
    trailers: Option<HeaderMap>,
}

impl Body for GrpcEcho {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        while self.trailers.is_some() {
            match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    // Request trailers are dropped.
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                None => return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t)))),
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.trailers.is_none()
    }
}

fn is_websocket_upgrade(req: &Request<Incoming>) -> bool {
    let has_token = |name, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has_token(UPGRADE, "websocket")
        && has_token(CONNECTION, "upgrade")
        && req.headers().contains_key(SEC_WEBSOCKET_KEY)
}

fn websocket_echo(stop: &Shutdown, mut req: Request<Incoming>) -> Response<BoxBody> {
    let accept = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .map(|key| derive_accept_key(key.as_bytes()))
        .and_then(|accept| HeaderValue::from_str(&accept).ok());
    let Some(accept) = accept else {
        let mut resp = Response::new(full("missing sec-websocket-key"));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    stop.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "test upstream: websocket upgrade failed");
                return;
            }
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        // Keep polling after a Close so tungstenite can send its reply.
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Response::new(crate::body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    resp
}
