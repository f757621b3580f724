//! The bodies of forwarding: [`ProxyBody`] (what the client receives) and
//! the request body sent upstream, with the `max_body_bytes` limit.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt as _;

/// The error type of the bodies here.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response of the [`Forwarder`](super::Forwarder): the
/// upstream's body, streamed frame by frame as it arrives, or the proxy's
/// own JSON error.
pub struct ProxyBody {
    kind: Kind,
}

enum Kind {
    Upstream(hyper::body::Incoming),
    Own(Option<Bytes>),
}

impl ProxyBody {
    pub(super) fn upstream(body: hyper::body::Incoming) -> Self {
        Self {
            kind: Kind::Upstream(body),
        }
    }

    pub(super) fn own(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Own(Some(bytes).filter(|b| !b.is_empty())),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Upstream(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BoxError::from))),
            Kind::Own(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(body) => body.is_end_stream(),
            Kind::Own(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(body) => body.size_hint(),
            Kind::Own(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

impl fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Upstream(_) => "upstream",
            Kind::Own(_) => "own",
        };
        f.debug_struct("ProxyBody").field("kind", &kind).finish()
    }
}

/// The request body type the upstream client sends.
pub(super) type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// The request body grew past `max_body_bytes` while streaming.
#[derive(Debug)]
pub(super) struct BodyTooLarge;

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request body over the configured limit")
    }
}

impl std::error::Error for BodyTooLarge {}

pin_project_lite::pin_project! {
    /// A request body streamed upstream that stops with [`BodyTooLarge`]
    /// (and raises `exceeded`) once more than `remaining` bytes went by.
    pub(super) struct Limited<B> {
        #[pin]
        inner: B,
        remaining: u64,
        exceeded: Arc<AtomicBool>,
    }
}

impl<B> Limited<B> {
    pub(super) fn new(inner: B, limit: u64, exceeded: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            remaining: limit,
            exceeded,
        }
    }
}

impl<B> Body for Limited<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if this.exceeded.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyTooLarge.into())));
        }
        match this.inner.poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > *this.remaining {
                        this.exceeded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(BodyTooLarge.into())));
                    }
                    *this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `body` limited to `limit` bytes, boxed for the upstream client.
pub(super) fn limited<B>(body: B, limit: u64, exceeded: Arc<AtomicBool>) -> UpstreamBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Limited::new(body, limit, exceeded).boxed_unsync()
}

/// A body of known bytes for the upstream client.
pub(super) fn full(bytes: Bytes) -> UpstreamBody {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}
