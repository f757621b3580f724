//! Helpers for testing code that uses the layer (feature `test-util`).
//!
//! - [`push`]: pushes an authorization request through a layer, as a
//!   client would, and returns the `request_uri`, to test an
//!   authorization endpoint behind the layer without writing the PAR call.
//! - [`store_conformance`] (and [`allowance_conformance`]): the checks every
//!   built-in [`ParStore`] passes, for stores of your own.
//!
//! Enable it for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! tower-par = { version = "0.1", features = ["test-util"] }
//! ```

mod conformance;

use std::convert::Infallible;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use tower_layer::Layer as _;
use tower_service::Service;

pub use conformance::{allowance_conformance, store_conformance, Allowance};

use crate::{ClientAuthenticator, ParLayer, ParRequestBody, ParStore};

/// A push the layer refused: its status and JSON body.
///
/// ```
/// use tower_par::{test_util, AuthMethod, Client, ParLayer, StaticClients};
///
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// let clients = StaticClients::new().with_client(
///     Client::new("app", AuthMethod::ClientSecretBasic).redirect_uri("https://app.example/cb"),
///     Some("app-secret"),
/// )?;
/// let layer = ParLayer::new(clients);
/// let refused = test_util::push(&layer, "app", Some("wrong"), &[("response_type", "code")])
///     .await
///     .unwrap_err();
/// assert_eq!(refused.status, 401);
/// assert!(refused.body.contains("invalid_client"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRefused {
    /// The response status, e.g. `400`.
    pub status: StatusCode,
    /// The response body (an OAuth error object).
    pub body: String,
}

impl fmt::Display for PushRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "push refused with {}: {}", self.status, self.body)
    }
}

impl std::error::Error for PushRefused {}

/// Pushes `params` to `layer`'s PAR endpoint as `client_id` and returns the
/// `request_uri` it issued. With a `client_secret` the client authenticates
/// with `client_secret_basic`; without, `client_id` is sent in the body (a
/// public client, `none`). `client_id` is added to the parameters. The
/// layer wraps a service that is never called (a push never reaches it).
///
/// ```
/// use tower_par::{test_util, AuthMethod, Client, ParLayer, StaticClients};
///
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// let clients = StaticClients::new().with_client(
///     Client::new("app", AuthMethod::ClientSecretBasic).redirect_uri("https://app.example/cb"),
///     Some("app-secret"),
/// )?;
/// let layer = ParLayer::new(clients);
/// let request_uri = test_util::push(
///     &layer,
///     "app",
///     Some("app-secret"),
///     &[("response_type", "code"), ("redirect_uri", "https://app.example/cb")],
/// )
/// .await?;
/// assert!(request_uri.starts_with(tower_par::REQUEST_URI_PREFIX));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn push<C, St>(
    layer: &ParLayer<C, St>,
    client_id: &str,
    client_secret: Option<&str>,
    params: &[(&str, &str)],
) -> Result<String, PushRefused>
where
    C: ClientAuthenticator,
    St: ParStore,
{
    let mut form = vec![("client_id", client_id)];
    form.extend(params.iter().copied());
    let body = serde_urlencoded::to_string(&form).unwrap_or_default();
    let mut req = Request::post(layer.par_path_str())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(secret) = client_secret {
        // RFC 6749 §2.3.1: form-url-encode both halves, then base64.
        let id = encode_component(client_id);
        let secret = encode_component(secret);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        req = req.header(header::AUTHORIZATION, format!("Basic {basic}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| PushRefused {
            status: StatusCode::BAD_REQUEST,
            body: e.to_string(),
        })?;
    let mut svc = layer.layer(NeverCalled);
    let res = match poll_fn(|cx| svc.poll_ready(cx)).await {
        Ok(()) => svc.call(req).await,
        Err(never) => match never {},
    };
    let res = match res {
        Ok(res) => res,
        Err(never) => match never {},
    };
    let status = res.status();
    let bytes = match res.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let body = String::from_utf8_lossy(&bytes).into_owned();
    if status != StatusCode::CREATED {
        return Err(PushRefused { status, body });
    }
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("request_uri")?.as_str().map(str::to_owned))
        .ok_or(PushRefused { status, body })
}

fn encode_component(s: &str) -> String {
    let pair = serde_urlencoded::to_string([("", s)]).unwrap_or_default();
    pair.strip_prefix('=').unwrap_or(&pair).to_owned()
}

/// The wrapped service of [`push`]: answers 404 if it is ever reached.
#[derive(Clone, Copy, Debug)]
struct NeverCalled;

impl Service<Request<ParRequestBody<Full<Bytes>>>> for NeverCalled {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<ParRequestBody<Full<Bytes>>>) -> Self::Future {
        Box::pin(async {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::NOT_FOUND;
            Ok(res)
        })
    }
}
