//! Runs work when a response body has been fully sent or was abandoned,
//! without delaying the response: the log phase, the load balancer's
//! `on_finish`, releasing a concurrency slot.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use gatehouse_core::{Body, BoxError, Ctx, LogRecord, Phase};
use http_body::{Body as _, Frame, SizeHint};

use crate::chain::Chain;

/// How a body ended.
#[derive(Debug, Clone, Copy)]
pub struct End {
    /// Whether every frame was delivered (false: error or dropped early).
    pub completed: bool,
    /// Data bytes that went through.
    pub bytes: u64,
}

/// A body that calls `on_end` exactly once: at its end, on an error, or
/// when it is dropped.
pub struct OnEnd<F: FnOnce(End)> {
    inner: Body,
    on_end: Option<F>,
    bytes: u64,
}

impl<F: FnOnce(End) + Send + Unpin + 'static> OnEnd<F> {
    /// Wraps `inner`.
    pub fn wrap(inner: Body, on_end: F) -> Body {
        gatehouse_core::body::boxed(Self {
            inner,
            on_end: Some(on_end),
            bytes: 0,
        })
    }
}

impl<F: FnOnce(End)> OnEnd<F> {
    fn end(&mut self, completed: bool) {
        if let Some(f) = self.on_end.take() {
            f(End {
                completed,
                bytes: self.bytes,
            });
        }
    }
}

impl<F: FnOnce(End) + Unpin> http_body::Body for OnEnd<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.end(true);
                }
            }
            Poll::Ready(None) => this.end(true),
            Poll::Ready(Some(Err(_))) => this.end(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<F: FnOnce(End)> Drop for OnEnd<F> {
    fn drop(&mut self) {
        let completed = self.inner.is_end_stream();
        self.end(completed);
    }
}

/// Runs the chain's log phase when `body` ends.
pub fn log_phase(body: Body, chain: Arc<Chain>, ctx: Ctx, status: u16) -> Body {
    OnEnd::wrap(body, move |end: End| {
        let record = LogRecord {
            status,
            bytes_sent: end.bytes,
            duration: ctx.started.elapsed(),
            completed: end.completed,
        };
        for e in chain.phase(Phase::Log) {
            e.plugin.log(&ctx, &record);
        }
    })
}

/// Tells the balancer the exchange with `target` is over when `body` ends,
/// so `least-connections` counts a streaming response as in flight for as
/// long as it streams. `latency` and `ok` are what it is told.
pub fn finish_target(
    body: Body,
    balancer: Arc<gatehouse_upstream::Balancer>,
    target: usize,
    latency: std::time::Duration,
    ok: bool,
) -> Body {
    OnEnd::wrap(body, move |end: End| {
        balancer.on_finish(target, latency, ok && end.completed);
    })
}

/// Keeps `value` (a concurrency slot) alive until `body` ends.
pub fn hold<T: Send + Unpin + 'static>(body: Body, value: T) -> Body {
    OnEnd::wrap(body, move |_: End| drop(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::Mutex;

    type Seen = Arc<Mutex<Vec<(bool, u64)>>>;

    fn recorder() -> (Seen, impl FnOnce(End) + Send + Unpin + 'static) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (seen, move |end: End| {
            s.lock().unwrap().push((end.completed, end.bytes))
        })
    }

    #[tokio::test]
    async fn runs_once_at_the_end_with_the_byte_count() {
        let (seen, f) = recorder();
        let body = OnEnd::wrap(gatehouse_core::body::full("hello"), f);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(*seen.lock().unwrap(), vec![(true, 5)]);
    }

    #[tokio::test]
    async fn runs_once_when_dropped_early() {
        let (seen, f) = recorder();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream = http_body_util::StreamBody::new(tokio_stream_adapter(rx));
        let mut body = OnEnd::wrap(gatehouse_core::body::boxed(stream), f);
        tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))))
            .await
            .unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap().len(), 3);
        drop(body);
        drop(tx);
        assert_eq!(*seen.lock().unwrap(), vec![(false, 3)]);
    }

    fn tokio_stream_adapter(
        mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    ) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
