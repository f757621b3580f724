//! Request and response bodies: the caller's own body, untouched, or bytes
//! the layer produced.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// The request body the wrapped service receives.
    ///
    /// Pass-through requests carry the original body (no copy, no
    /// allocation); requests the layer rewrote (a redeemed `request_uri`
    /// sent by POST) carry the stored parameters.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{ServiceBuilder, ServiceExt};
    /// use tower_par::{ParLayer, ParRequestBody, StaticClients};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // An echo service: the body it receives is a `ParRequestBody`.
    /// let svc = ServiceBuilder::new()
    ///     .layer(ParLayer::new(StaticClients::new()))
    ///     .service_fn(|req: Request<ParRequestBody<Full<Bytes>>>| async move {
    ///         let bytes = req.into_body().collect().await.unwrap().to_bytes();
    ///         Ok::<_, Infallible>(Response::new(Full::new(bytes)))
    ///     });
    /// // A request the layer does not handle keeps its own body.
    /// let req = Request::post("/token").body(Full::new(Bytes::from_static(b"grant_type=x")))?;
    /// let res = svc.oneshot(req).await?;
    /// assert_eq!(res.into_body().collect().await?.to_bytes(), "grant_type=x");
    /// # Ok(()) }
    /// ```
    pub struct ParRequestBody<B> {
        #[pin]
        kind: RequestKind<B>,
    }
}

pin_project! {
    #[project = RequestKindProj]
    enum RequestKind<B> {
        Original { #[pin] body: B },
        Rewritten { #[pin] body: Full<Bytes> },
    }
}

impl<B> ParRequestBody<B> {
    pub(crate) fn original(body: B) -> Self {
        Self {
            kind: RequestKind::Original { body },
        }
    }

    pub(crate) fn rewritten(bytes: Bytes) -> Self {
        Self {
            kind: RequestKind::Rewritten {
                body: Full::new(bytes),
            },
        }
    }
}

/// An empty body, whatever `B` is: for middleware that builds a request
/// of its own.
///
/// ```
/// use http_body::Body;
/// use http_body_util::Full;
/// use bytes::Bytes;
/// use tower_par::ParRequestBody;
///
/// let body = ParRequestBody::<Full<Bytes>>::default();
/// assert!(body.is_end_stream());
/// assert_eq!(body.size_hint().exact(), Some(0));
/// ```
impl<B> Default for ParRequestBody<B> {
    fn default() -> Self {
        Self::rewritten(Bytes::new())
    }
}

impl<B> Body for ParRequestBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            RequestKindProj::Original { body } => body.poll_frame(cx),
            RequestKindProj::Rewritten { body } => body.poll_frame(cx).map_err(never),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RequestKind::Original { body } => body.is_end_stream(),
            RequestKind::Rewritten { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RequestKind::Original { body } => body.size_hint(),
            RequestKind::Rewritten { body } => body.size_hint(),
        }
    }
}

impl<B> fmt::Debug for ParRequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RequestKind::Original { .. } => f.write_str("ParRequestBody::Original"),
            RequestKind::Rewritten { .. } => f.write_str("ParRequestBody::Rewritten"),
        }
    }
}

pin_project! {
    /// The response body the layer returns: the wrapped service's body, or
    /// the layer's own (PAR responses, errors, augmented metadata).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{ServiceBuilder, ServiceExt};
    /// use tower_par::{AuthMethod, Client, ParLayer, ParRequestBody, StaticClients};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let clients = StaticClients::new().with_client(
    ///     Client::new("app", AuthMethod::None).redirect_uri("https://app.example/cb"),
    ///     None,
    /// )?;
    /// let svc = ServiceBuilder::new()
    ///     .layer(ParLayer::new(clients))
    ///     .service_fn(|_: Request<ParRequestBody<Full<Bytes>>>| async {
    ///         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
    ///     });
    /// let push = Request::post("/par")
    ///     .header("content-type", "application/x-www-form-urlencoded")
    ///     .body(Full::new(Bytes::from_static(b"client_id=app&response_type=code")))?;
    /// // The PAR response is the layer's own body: JSON with the `request_uri`.
    /// let body = svc.oneshot(push).await?.into_body().collect().await?.to_bytes();
    /// let json: serde_json::Value = serde_json::from_slice(&body)?;
    /// assert!(json["request_uri"].as_str().unwrap().starts_with(tower_par::REQUEST_URI_PREFIX));
    /// # Ok(()) }
    /// ```
    pub struct ParResponseBody<B> {
        #[pin]
        kind: ResponseKind<B>,
    }
}

pin_project! {
    #[project = ResponseKindProj]
    enum ResponseKind<B> {
        Inner { #[pin] body: B },
        Own { #[pin] body: Full<Bytes> },
    }
}

impl<B> ParResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: ResponseKind::Inner { body },
        }
    }

    pub(crate) fn own(body: Full<Bytes>) -> Self {
        Self {
            kind: ResponseKind::Own { body },
        }
    }
}

/// An empty body, whatever `B` is. tower-http's `CorsLayer` (preflight
/// answers) and `TimeoutLayer` (`408`) answer with `ResBody::default()`,
/// so they compose over the layer even when `B` itself has no default
/// (hyper's `Incoming`, for instance).
///
/// ```
/// use http_body::Body;
/// use http_body_util::Full;
/// use bytes::Bytes;
/// use tower_par::ParResponseBody;
///
/// let body = ParResponseBody::<Full<Bytes>>::default();
/// assert!(body.is_end_stream());
/// assert_eq!(body.size_hint().exact(), Some(0));
/// ```
impl<B> Default for ParResponseBody<B> {
    fn default() -> Self {
        Self::own(Full::new(Bytes::new()))
    }
}

impl<B> Body for ParResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            ResponseKindProj::Inner { body } => body.poll_frame(cx),
            ResponseKindProj::Own { body } => body.poll_frame(cx).map_err(never),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            ResponseKind::Inner { body } => body.is_end_stream(),
            ResponseKind::Own { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            ResponseKind::Inner { body } => body.size_hint(),
            ResponseKind::Own { body } => body.size_hint(),
        }
    }
}

impl<B> fmt::Debug for ParResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ResponseKind::Inner { .. } => f.write_str("ParResponseBody::Inner"),
            ResponseKind::Own { .. } => f.write_str("ParResponseBody::Own"),
        }
    }
}

fn never<E>(e: Infallible) -> E {
    match e {}
}
