//! The one body type used on the request path, in both directions.

use bytes::Bytes;

use crate::problem::Problem;
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

/// The error a plugin's body wrapper yields when it refuses a streamed
/// request body (too large, malformed, ...). The proxy finds it in the
/// error's source chain, wherever hyper or the client wrapped it, and
/// answers its problem instead of a generic upstream failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("request body rejected: {}", .0.kind().slug())]
pub struct BodyRejected(pub Problem);

impl BodyRejected {
    /// The first `BodyRejected` in `err` or its chain of sources.
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyRejected> {
        let mut current = Some(err);
        while let Some(e) = current {
            if let Some(found) = e.downcast_ref::<BodyRejected>() {
                return Some(found);
            }
            current = e.source();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::ProblemType;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped")]
    struct Wrapper(#[source] BoxError);

    #[test]
    fn body_rejected_is_found_through_wrappers() {
        let inner: BoxError = Box::new(BodyRejected(Problem::new(ProblemType::PayloadTooLarge)));
        let outer = Wrapper(Box::new(Wrapper(inner)));
        let found = BodyRejected::find(&outer).expect("found");
        assert_eq!(found.0.kind(), ProblemType::PayloadTooLarge);
        let plain = std::io::Error::other("x");
        assert!(BodyRejected::find(&plain).is_none());
    }
}
