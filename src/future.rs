//! The response future: the inner service's own future for pass-through
//! requests (no allocation), a boxed future for requests the layer handles.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::ParResponseBody;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pin_project! {
    /// Response future of [`Par`](crate::Par).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{Service, ServiceBuilder, ServiceExt};
    /// use tower_par::{ParLayer, ParRequestBody, ResponseFuture, StaticClients};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut svc = ServiceBuilder::new()
    ///     .layer(ParLayer::new(StaticClients::new()))
    ///     .service_fn(|_: Request<ParRequestBody<Full<Bytes>>>| async {
    ///         Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    ///     });
    /// let req = Request::get("/par").body(Full::new(Bytes::new()))?;
    /// let future: ResponseFuture<_, _, _> = svc.ready().await?.call(req);
    /// // The PAR endpoint accepts POST only.
    /// assert_eq!(future.await?.status(), 405);
    /// # Ok(()) }
    /// ```
    pub struct ResponseFuture<F, ResB, E> {
        #[pin]
        kind: Kind<F, ResB, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, ResB, E> {
        Passthrough { #[pin] future: F },
        Handled { future: BoxFuture<Result<Response<ParResponseBody<ResB>>, E>> },
    }
}

impl<F, ResB, E> ResponseFuture<F, ResB, E> {
    pub(crate) fn passthrough(future: F) -> Self {
        Self {
            kind: Kind::Passthrough { future },
        }
    }

    pub(crate) fn handled(future: BoxFuture<Result<Response<ParResponseBody<ResB>>, E>>) -> Self {
        Self {
            kind: Kind::Handled { future },
        }
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, ResB, E>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ParResponseBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { future } => {
                let res = ready!(future.poll(cx))?;
                Poll::Ready(Ok(res.map(ParResponseBody::inner)))
            }
            KindProj::Handled { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, ResB, E> fmt::Debug for ResponseFuture<F, ResB, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}
