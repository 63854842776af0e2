//! Runs the log phase once a response body has been fully sent, or was
//! abandoned, without delaying the response.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use gatehouse_core::{Body, BoxError, Ctx, LogRecord, Phase};
use http_body::{Body as _, Frame, SizeHint};

use crate::chain::Chain;

/// A body that counts bytes and calls the log phase at its end.
pub struct LogBody {
    inner: Body,
    state: Option<(Arc<Chain>, Ctx)>,
    status: u16,
    bytes: u64,
}

impl LogBody {
    /// Wraps `inner`.
    pub fn wrap(inner: Body, chain: Arc<Chain>, ctx: Ctx, status: u16) -> Body {
        gatehouse_core::body::boxed(Self {
            inner,
            state: Some((chain, ctx)),
            status,
            bytes: 0,
        })
    }

    fn done(&mut self, completed: bool) {
        if let Some((chain, ctx)) = self.state.take() {
            let record = LogRecord {
                status: self.status,
                bytes_sent: self.bytes,
                duration: ctx.started.elapsed(),
                completed,
            };
            for e in chain.phase(Phase::Log) {
                e.plugin.log(&ctx, &record);
            }
        }
    }
}

impl http_body::Body for LogBody {
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
                    this.done(true);
                }
            }
            Poll::Ready(None) => this.done(true),
            Poll::Ready(Some(Err(_))) => this.done(false),
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

impl Drop for LogBody {
    fn drop(&mut self) {
        let completed = self.inner.is_end_stream();
        self.done(completed);
    }
}

/// Reports the end of an upstream exchange to the load balancer when the
/// response body ends or is dropped, so `least-connections` counts a
/// streaming response as in flight for as long as it streams.
pub struct FinishBody {
    inner: Body,
    done: Option<(Arc<gatehouse_upstream::Balancer>, usize)>,
    latency: std::time::Duration,
    ok: bool,
}

impl FinishBody {
    /// Wraps `inner`; `latency` and `ok` are what the balancer is told.
    pub fn wrap(
        inner: Body,
        balancer: Arc<gatehouse_upstream::Balancer>,
        target: usize,
        latency: std::time::Duration,
        ok: bool,
    ) -> Body {
        gatehouse_core::body::boxed(Self {
            inner,
            done: Some((balancer, target)),
            latency,
            ok,
        })
    }

    fn finish(&mut self, ok: bool) {
        if let Some((balancer, target)) = self.done.take() {
            balancer.on_finish(target, self.latency, self.ok && ok);
        }
    }
}

impl http_body::Body for FinishBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.finish(true),
            _ => {}
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

impl Drop for FinishBody {
    fn drop(&mut self) {
        let completed = self.inner.is_end_stream();
        self.finish(completed);
    }
}

/// Keeps a value (a concurrency slot) alive until the body ends or is
/// dropped.
pub struct HoldBody<T> {
    inner: Body,
    held: Option<T>,
}

impl<T: Send + Unpin + 'static> HoldBody<T> {
    /// Wraps `inner`, holding `value` until its end.
    pub fn wrap(inner: Body, value: T) -> Body {
        gatehouse_core::body::boxed(Self {
            inner,
            held: Some(value),
        })
    }
}

impl<T: Unpin> http_body::Body for HoldBody<T> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || this.inner.is_end_stream() {
            this.held = None;
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
