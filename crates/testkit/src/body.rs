//! Body types and helpers: the boxed body used by servers and clients, and
//! [`StreamingBody`], which generates large uploads without holding them.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};

/// Error type carried by [`BoxBody`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every testkit response and client request.
///
/// Build one with [`full`], [`empty`], [`StreamingBody::boxed`] or
/// `BodyExt::boxed_unsync` on any `Send` body whose error converts into
/// [`BoxError`].
pub type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `data` in one frame.
pub fn full(data: impl Into<Bytes>) -> BoxBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body with no data.
pub fn empty() -> BoxBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Collects a whole body into memory (for small response bodies in tests).
pub async fn to_bytes<B: Body>(body: B) -> Result<Bytes, B::Error> {
    Ok(body.collect().await?.to_bytes())
}

const ZEROS: &[u8] = &[0u8; 64 * 1024];

/// `len` zero bytes; free for up to 64 KiB, one allocation above that.
pub(crate) fn zeros(len: usize) -> Bytes {
    match ZEROS.get(..len) {
        Some(slice) => Bytes::from_static(slice),
        None => Bytes::from(vec![0u8; len]),
    }
}

/// A request (or response) body that yields `total` zero bytes, `chunk`
/// bytes per frame, without ever holding more than one chunk.
///
/// By default it reports an exact size hint, so hyper sends a
/// `content-length`; call [`StreamingBody::chunked`] to hide the size and get
/// `transfer-encoding: chunked` over HTTP/1.1.
#[derive(Debug, Clone)]
pub struct StreamingBody {
    remaining: u64,
    chunk: Bytes,
    exact_size: bool,
}

impl StreamingBody {
    /// `total` zero bytes in frames of `chunk` bytes (a `chunk` of 0 is
    /// treated as 1).
    pub fn zeros(total: u64, chunk: usize) -> Self {
        Self {
            remaining: total,
            chunk: zeros(chunk.max(1)),
            exact_size: true,
        }
    }

    /// Hides the length, so HTTP/1.1 clients send it chunked.
    #[must_use]
    pub fn chunked(mut self) -> Self {
        self.exact_size = false;
        self
    }

    /// Bytes not yet yielded.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Boxes the body for [`crate::Client`] requests.
    pub fn boxed(self) -> BoxBody {
        self.boxed_unsync()
    }
}

impl Body for StreamingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n =
            usize::try_from(self.remaining).map_or(self.chunk.len(), |r| r.min(self.chunk.len()));
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact_size {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}
