//! `Par<S>`: the middleware service and request classification.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::{ParRequestBody, ParResponseBody};
use crate::client::{ClientAuthenticator, StaticClients};
use crate::config::{Config, Metadata, Redemption};
use crate::endpoint::{authorize, metadata, push};
use crate::future::ResponseFuture;
use crate::store::{MemoryStore, ParStore};

/// The service built by [`ParLayer`](crate::ParLayer).
///
/// Requests to the PAR endpoint are answered here; authorization requests
/// with a `request_uri` are rewritten before they reach `S`; responses to
/// requests on the flow paths (see
/// [`ParLayer::flow_paths`](crate::ParLayer::flow_paths)) that present a
/// flow cookie are watched for the end of that flow; everything else
/// reaches `S` untouched, without allocation or locking. Every failure of
/// the layer's own is an HTTP response: `Error` is `S::Error`.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_par::{Par, ParLayer, ParRequestBody, StaticClients};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let inner = service_fn(|req: Request<ParRequestBody<Full<Bytes>>>| async move {
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(req.uri().to_string()))))
/// });
/// let par: Par<_> = ParLayer::new(StaticClients::new()).layer(inner);
/// // Not PAR: passed through untouched.
/// let res = par.oneshot(Request::get("/userinfo").body(Full::new(Bytes::new()))?).await?;
/// assert_eq!(res.status(), 200);
/// # Ok(()) }
/// ```
pub struct Par<S, C = StaticClients, St = MemoryStore> {
    inner: S,
    config: Arc<Config<C, St>>,
}

impl<S, C, St> Par<S, C, St> {
    pub(crate) fn new(inner: S, config: Arc<Config<C, St>>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, C, St> Clone for Par<S, C, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, C, St> fmt::Debug for Par<S, C, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Par")
            .field("inner", &self.inner)
            .field("par_path", &self.config.par_path)
            .field("authorize_path", &self.config.authorize_path)
            .finish_non_exhaustive()
    }
}

enum Route {
    Passthrough,
    Push,
    Authorize,
    /// Another method on the authorize path, or another spelling of it.
    AuthorizeGuard,
    Metadata,
    /// A request on a flow path from a browser presenting a flow cookie:
    /// its response may end that flow.
    FlowStep,
}

fn route<C, St>(cfg: &Config<C, St>, method: &Method, path: &str, headers: &HeaderMap) -> Route {
    if path == cfg.par_path {
        return Route::Push;
    }
    // M-4: `/authorize/` and HEAD (answered by GET handlers in most
    // frameworks) must not be ways around the layer.
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed == cfg.authorize_path {
        return if method == Method::GET || method == Method::POST || method == Method::HEAD {
            Route::Authorize
        } else {
            Route::AuthorizeGuard
        };
    }
    if authorize::may_alias(path, &cfg.authorize_path) {
        return Route::AuthorizeGuard;
    }
    if cfg.metadata_mode() != Metadata::Off
        && (method == Method::GET || method == Method::HEAD)
        && metadata::is_metadata_path(path)
    {
        return Route::Metadata;
    }
    // Allocation-free, and false for requests without a flow cookie.
    if cfg.redemption == Redemption::FlowBound
        && cfg.watches(path)
        && authorize::has_flow_cookie(cfg, headers)
    {
        return Route::FlowStep;
    }
    Route::Passthrough
}

impl<S, C, St, ReqB, ResB> Service<Request<ReqB>> for Par<S, C, St>
where
    S: Service<Request<ParRequestBody<ReqB>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    C: ClientAuthenticator,
    St: ParStore,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ParResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        match route(&self.config, req.method(), req.uri().path(), req.headers()) {
            Route::Passthrough => {
                ResponseFuture::passthrough(self.inner.call(req.map(ParRequestBody::original)))
            }
            Route::Push => {
                let (parts, body) = req.into_parts();
                ResponseFuture::handled(Box::pin(push::handle(self.config.clone(), parts, body)))
            }
            Route::Authorize => {
                let inner = self.take_ready_inner();
                ResponseFuture::handled(Box::pin(authorize::handle(
                    self.config.clone(),
                    inner,
                    req,
                )))
            }
            Route::AuthorizeGuard => {
                let inner = self.take_ready_inner();
                ResponseFuture::handled(Box::pin(authorize::guard(self.config.clone(), inner, req)))
            }
            Route::Metadata => {
                let inner = self.take_ready_inner();
                ResponseFuture::handled(Box::pin(metadata::handle(self.config.clone(), inner, req)))
            }
            Route::FlowStep => {
                let inner = self.take_ready_inner();
                ResponseFuture::handled(Box::pin(authorize::watch(self.config.clone(), inner, req)))
            }
        }
    }
}

impl<S: Clone, C, St> Par<S, C, St> {
    /// The service that `poll_ready` prepared is the one that must be
    /// called; a fresh clone takes its place for the next request.
    fn take_ready_inner(&mut self) -> S {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}
