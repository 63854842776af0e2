//! The one body type used on the request path, in both directions, and
//! reading a whole body under a size limit.

use bytes::Bytes;

use crate::problem::Problem;
use http_body_util::BodyExt;

pub use crate::stream::{Body, BoxError, boxed, empty, full};

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

/// Reads a whole body into memory, refusing more than `limit` bytes: a
/// declared length above the limit is refused before anything is read,
/// and a stream of unknown length is cut off as soon as it passes it.
/// Trailers are dropped. Refusals are [`BodyRejected`]: `payload-too-large`
/// past the limit, `bad-request` when the body cannot be read (a wrapper's
/// own `BodyRejected` is passed on as it is).
pub async fn collect(mut body: Body, limit: u64) -> Result<Bytes, BodyRejected> {
    use crate::problem::ProblemType;
    use http_body::Body as _;
    let too_large = || {
        BodyRejected(
            Problem::new(ProblemType::PayloadTooLarge)
                .detail(format!("the request body is larger than {limit} bytes")),
        )
    };
    if body.size_hint().lower() > limit {
        return Err(too_large());
    }
    let mut first: Option<Bytes> = None;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match e.downcast::<BodyRejected>() {
            Ok(r) => *r,
            Err(_) => BodyRejected(
                Problem::new(ProblemType::BadRequest).detail("the request body could not be read"),
            ),
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let have = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if (have + data.len()) as u64 > limit {
            return Err(too_large());
        }
        match &first {
            // One chunk (the common case) is returned without a copy.
            None if buf.is_empty() => first = Some(data),
            Some(f) => {
                buf.reserve(f.len() + data.len());
                buf.extend_from_slice(f);
                buf.extend_from_slice(&data);
                first = None;
            }
            None => buf.extend_from_slice(&data),
        }
    }
    Ok(match first {
        Some(f) => f,
        None => Bytes::from(buf),
    })
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

    fn chunks(parts: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = parts
            .iter()
            .map(|p| Ok(http_body::Frame::data(Bytes::from_static(p))))
            .collect();
        boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    #[tokio::test]
    async fn collect_reads_up_to_the_limit_and_refuses_more() {
        async fn check(body: Body, limit: u64, expect: Option<&[u8]>) {
            let got = collect(body, limit).await;
            match (got, expect) {
                (Ok(b), Some(e)) => assert_eq!(&b[..], e),
                (Err(BodyRejected(p)), None) => {
                    assert_eq!(p.kind(), crate::problem::ProblemType::PayloadTooLarge)
                }
                (other, e) => panic!("{other:?}, expected {e:?}"),
            }
        }
        check(empty(), 0, Some(b"")).await;
        check(full("hello"), 5, Some(b"hello")).await;
        // Declared length above the limit: refused before reading.
        check(full("hello"), 4, None).await;
        check(
            chunks(&[b"he", b"llo", b" world"]),
            11,
            Some(b"hello world"),
        )
        .await;
        // Unknown length, cut off when it passes the limit.
        check(chunks(&[b"he", b"llo", b" world"]), 10, None).await;
        check(chunks(&[b"", b"x"]), 1, Some(b"x")).await;
    }
}
