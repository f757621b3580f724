//! The service in front of everything on the public listener, one per
//! connection: the per-request log line and metrics, `/healthz` and
//! `/readyz`, client-certificate handling, the `Connection` extension.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use tower_par::ClientCertificate;

use super::{logging, metrics, BoxError};
use crate::Connection;

/// RFC 9440 §2.2.
pub(crate) const CLIENT_CERT: HeaderName = HeaderName::from_static("client-cert");
/// RFC 9440 §2.3.
pub(crate) const CLIENT_CERT_CHAIN: HeaderName = HeaderName::from_static("client-cert-chain");

/// A readiness check answers `/readyz` is ready (`Ok`), or why not, in a
/// few words that reveal nothing about the deployment.
pub(crate) type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// `/readyz` answers `503` when the check takes longer.
pub(crate) const READINESS_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-connection front service.
#[derive(Clone)]
pub(crate) struct Front<S> {
    pub(crate) inner: S,
    pub(crate) connection: Connection,
    /// The certificate the client presented in the TLS handshake.
    pub(crate) certificate: Option<ClientCertificate>,
    pub(crate) readiness: Option<ReadinessCheck>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<Request<hyper::body::Incoming>> for Front<S>
where
    S: tower::Service<Request<hyper::body::Incoming>, Response = Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ServerBody<B>>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<hyper::body::Incoming>) -> Self::Future {
        let access = Access {
            method: req.method().clone(),
            // The path only: the query carries request_uri, codes and state.
            path: req.uri().path().to_owned(),
            start: Instant::now(),
            peer: self.connection.peer,
            logged: false,
        };

        if let Some(route) = HealthRoute::of(&access.path) {
            let readiness = self.readiness.clone();
            return Box::pin(async move {
                let res = route.answer(&access.method, readiness).await;
                access.answered(res.status());
                Ok(res.map(|body| ServerBody::Own { body }))
            });
        }

        client_certificate(&mut req, &self.connection, self.certificate.as_ref());
        req.extensions_mut().insert(self.connection);

        // The clone that was polled ready is the one called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = inner.call(req);
        Box::pin(async move {
            match future.await {
                Ok(res) => {
                    access.answered(res.status());
                    Ok(res.map(|body| ServerBody::Inner { body }))
                }
                Err(e) => {
                    access.failed();
                    Err(e.into())
                }
            }
        })
    }
}

/// A request's log line and metrics, written once: with the response
/// status, when the inner service failed, or (on drop) when the client
/// went away before the response.
struct Access {
    method: Method,
    path: String,
    start: Instant,
    peer: std::net::SocketAddr,
    logged: bool,
}

impl Access {
    fn answered(mut self, status: StatusCode) {
        self.logged = true;
        let elapsed = self.start.elapsed();
        logging::access(&self.method, &self.path, status, elapsed, self.peer);
        metrics::record(metrics::status_class(status), elapsed);
    }

    fn failed(mut self) {
        self.logged = true;
        let elapsed = self.start.elapsed();
        logging::access_failed(&self.method, &self.path, elapsed, self.peer);
        metrics::record("error", elapsed);
    }
}

impl Drop for Access {
    fn drop(&mut self) {
        if !self.logged {
            let elapsed = self.start.elapsed();
            logging::access_cancelled(&self.method, &self.path, elapsed, self.peer);
            metrics::record("cancelled", elapsed);
        }
    }
}

/// RFC 8705 §2 through the proxy: the connection's own certificate when it
/// has one; otherwise RFC 9440 `Client-Cert` (and `Client-Cert-Chain`)
/// from a trusted front proxy; from anyone else those headers are removed
/// before the layer or the upstream sees them (AUTH-24).
pub(crate) fn client_certificate<B>(
    req: &mut Request<B>,
    connection: &Connection,
    certificate: Option<&ClientCertificate>,
) {
    if let Some(certificate) = certificate {
        strip_client_cert_headers(req.headers_mut());
        req.extensions_mut().insert(certificate.clone());
        return;
    }
    if !connection.trusted {
        strip_client_cert_headers(req.headers_mut());
        return;
    }
    if let Some(certificate) = from_headers(req.headers()) {
        req.extensions_mut().insert(certificate);
    }
}

fn strip_client_cert_headers(headers: &mut HeaderMap) {
    headers.remove(CLIENT_CERT);
    headers.remove(CLIENT_CERT_CHAIN);
}

fn from_headers(headers: &HeaderMap) -> Option<ClientCertificate> {
    let mut certs = headers.get_all(CLIENT_CERT).iter();
    let cert = certs.next()?;
    // RFC 9440 §2.2: a single sf-binary item; several field lines are
    // not one certificate.
    if certs.next().is_some() {
        return None;
    }
    let lines: Vec<&HeaderValue> = headers.get_all(CLIENT_CERT_CHAIN).iter().collect();
    let chain = match lines.as_slice() {
        [] => None,
        [one] => Some((*one).clone()),
        // A list may be split over several field lines (RFC 9110 §5.3).
        many => {
            let mut joined = Vec::new();
            for (i, line) in many.iter().enumerate() {
                if i > 0 {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(line.as_bytes());
            }
            Some(HeaderValue::from_bytes(&joined).ok()?)
        }
    };
    ClientCertificate::from_rfc9440(cert, chain.as_ref())
}

#[derive(Clone, Copy)]
enum HealthRoute {
    Live,
    Ready,
}

impl HealthRoute {
    fn of(path: &str) -> Option<Self> {
        match path {
            "/healthz" => Some(Self::Live),
            "/readyz" => Some(Self::Ready),
            _ => None,
        }
    }

    async fn answer(
        self,
        method: &Method,
        readiness: Option<ReadinessCheck>,
    ) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        match self {
            Self::Live => text(StatusCode::OK, "ok\n"),
            Self::Ready => {
                let Some(check) = readiness else {
                    return text(StatusCode::OK, "ready\n");
                };
                match tokio::time::timeout(READINESS_TIMEOUT, check()).await {
                    Ok(Ok(())) => text(StatusCode::OK, "ready\n"),
                    Ok(Err(reason)) => text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("not ready: {reason}\n"),
                    ),
                    Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: timeout\n"),
                }
            }
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pin_project! {
    /// The public listener's response body: the inner service's, or the
    /// server's own (health answers).
    #[project = ServerBodyProj]
    pub(crate) enum ServerBody<B> {
        Inner { #[pin] body: B },
        Own { #[pin] body: Full<Bytes> },
    }
}

impl<B> Body for ServerBody<B>
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
        match self.project() {
            ServerBodyProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            ServerBodyProj::Own { body } => body
                .poll_frame(cx)
                .map_err(|never: Infallible| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Inner { body } => body.is_end_stream(),
            Self::Own { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Inner { body } => body.size_hint(),
            Self::Own { body } => body.size_hint(),
        }
    }
}
