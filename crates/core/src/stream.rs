//! The body type itself and its constructors, re-exported by
//! [`crate::body`]; kept apart so problem documents (which render into a
//! body) and `body::collect` (which answers with a problem) do not depend
//! on each other.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

/// Error type carried by bodies: anything that can go wrong while streaming.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A streaming, type-erased body. Request bodies from clients and response
/// bodies from upstreams are wrapped into this without buffering.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body made of one chunk that is already in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Wraps any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}
