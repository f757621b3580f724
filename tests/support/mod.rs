//! Shared fixtures for the authorization-endpoint, metadata, TCP and axum
//! tests: a client registry, request builders, an inner service that echoes
//! what it received, and assertions on the layer's own error responses.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Map, Value};
use tower::util::BoxCloneService;
use tower::{service_fn, Service, ServiceExt};
use tower_par::{
    AuthMethod, Client, Par, ParLayer, ParRequestBody, ParResponseBody, PushedAuthorization,
    StaticClients,
};

/// Confidential client (`client_secret_basic`), as in the test matrix.
pub const C_ID: &str = "C";
/// C's secret: needs form-url-encoding inside the Basic header (AUTH-6).
pub const C_SECRET: &str = "s3cr+t %x";
pub const C_REDIRECT: &str = "https://c.example/cb";
/// A public client (`none`).
pub const P_ID: &str = "P";
pub const P_REDIRECT: &str = "https://p.example/cb";
/// A public client registered with `require_pushed_authorization_requests`.
pub const R_ID: &str = "R";
pub const R_REDIRECT: &str = "https://r.example/cb";
/// A confidential client registered for `client_secret_post`.
pub const Q_ID: &str = "Q";
pub const Q_SECRET: &str = "q-secret";
pub const Q_REDIRECT: &str = "https://q.example/cb";

/// RFC 7636 Appendix B challenge.
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The description of every unknown, expired or used `request_uri`.
pub const NOT_FOUND: &str = "request_uri is unknown, expired or already used";

pub const FORM: &str = "application/x-www-form-urlencoded";

pub fn clients() -> StaticClients {
    optional_clients()
        .with_client(
            Client::new(R_ID, AuthMethod::None)
                .redirect_uri(R_REDIRECT)
                .require_par(true),
            None,
        )
        .unwrap()
        .with_client(
            Client::new(Q_ID, AuthMethod::ClientSecretPost).redirect_uri(Q_REDIRECT),
            Some(Q_SECRET),
        )
        .unwrap()
}

/// C and P only: no client requires PAR, so the layer lets
/// requests it does not read through to the wrapped service.
pub fn optional_clients() -> StaticClients {
    StaticClients::new()
        .with_client(
            Client::new(C_ID, AuthMethod::ClientSecretBasic)
                .redirect_uri(C_REDIRECT)
                .scopes(["openid", "profile"]),
            Some(C_SECRET),
        )
        .unwrap()
        .with_client(
            Client::new(P_ID, AuthMethod::None).redirect_uri(P_REDIRECT),
            None,
        )
        .unwrap()
}

/// The request with an `Accept` header.
pub fn with_accept(mut req: Request<Full<Bytes>>, accept: &str) -> Request<Full<Bytes>> {
    req.headers_mut()
        .insert(header::ACCEPT, accept.parse().unwrap());
    req
}

/// A classic front-channel authorization request (no `request_uri`).
pub fn front_channel_request(client_id: &str, redirect: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&state=xyz",
        form_encode(redirect)
    )
}

/// A layer with default settings over [`clients`].
pub fn layer() -> ParLayer {
    ParLayer::new(clients())
}

/// Form-url-encodes one value (RFC 6749 Appendix B).
pub fn form_encode(value: &str) -> String {
    let pair = serde_urlencoded::to_string([("v", value)]).unwrap();
    pair[2..].to_owned()
}

/// `Authorization: Basic` as RFC 6749 §2.3.1 builds it: both halves
/// form-url-encoded, then base64.
pub fn basic(id: &str, secret: &str) -> String {
    let raw = format!("{}:{}", form_encode(id), form_encode(secret));
    format!("Basic {}", STANDARD.encode(raw))
}

pub fn c_basic() -> String {
    basic(C_ID, C_SECRET)
}

/// The pushed request of client C, in a deliberately non-alphabetical
/// order and with a percent-encoded JSON value, so that forwarding "as
/// pushed" is observable.
pub fn c_form() -> String {
    format!(
        "state=s1&response_type=code&client_id=C&redirect_uri=https%3A%2F%2Fc.example%2Fcb\
         &scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256\
         &claims=%7B%22id_token%22%3A%7B%22acr%22%3Anull%7D%7D"
    )
}

/// The pushed request of a public client.
pub fn public_form(client_id: &str, redirect: &str) -> String {
    format!(
        "response_type=code&client_id={client_id}&redirect_uri={}&state=p1\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        form_encode(redirect)
    )
}

pub fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::default()).unwrap()
}

pub fn post_form(uri: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, FORM)
        .body(Full::new(body.into()))
        .unwrap()
}

/// A request to the PAR endpoint, with an optional `Authorization` value.
pub fn push_request(authorization: Option<&str>, form: &str) -> Request<Full<Bytes>> {
    let mut req = post_form("/par", form.to_owned());
    if let Some(value) = authorization {
        req.headers_mut()
            .insert(header::AUTHORIZATION, value.parse().unwrap());
    }
    req
}

/// Path and query of an authorization request that redeems `request_uri`.
pub fn authorize_uri(client_id: &str, request_uri: &str) -> String {
    format!(
        "/authorize?client_id={client_id}&request_uri={}",
        form_encode(request_uri)
    )
}

/// Collects a response into its parts and body bytes.
pub async fn into_parts<B>(res: Response<B>) -> (http::response::Parts, Bytes)
where
    B: Body<Data = Bytes>,
    B::Error: Debug,
{
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("response body").to_bytes();
    (parts, bytes)
}

pub async fn body_string<B>(res: Response<B>) -> String
where
    B: Body<Data = Bytes>,
    B::Error: Debug,
{
    let (_, bytes) = into_parts(res).await;
    String::from_utf8(bytes.to_vec()).expect("UTF-8 body")
}

/// Pushes `form` and returns the issued `request_uri`, asserting a `201`.
pub async fn push<S, ResB>(svc: &S, authorization: Option<&str>, form: &str) -> String
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResB>> + Clone,
    S::Error: Debug,
    ResB: Body<Data = Bytes>,
    ResB::Error: Debug,
{
    let res = svc
        .clone()
        .oneshot(push_request(authorization, form))
        .await
        .unwrap();
    let (parts, bytes) = into_parts(res).await;
    assert_eq!(
        parts.status,
        StatusCode::CREATED,
        "push failed: {}",
        String::from_utf8_lossy(&bytes)
    );
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["request_uri"].as_str().expect("request_uri").to_owned()
}

/// Pushes C's [`c_form`] with Basic credentials.
pub async fn push_c<S, ResB>(svc: &S) -> String
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResB>> + Clone,
    S::Error: Debug,
    ResB: Body<Data = Bytes>,
    ResB::Error: Debug,
{
    push(svc, Some(&c_basic()), &c_form()).await
}

/// What the inner service saw: a JSON object with `method`, `uri`,
/// `headers` (lower-case names; repeated values joined by `, `), `body`, and
/// `par` (the `PushedAuthorization` extension, or `null`).
pub fn describe(parts: &http::request::Parts, body: &[u8]) -> Value {
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("<binary>"))
            .collect();
        headers.insert(name.as_str().to_owned(), Value::String(values.join(", ")));
    }
    let par = match parts.extensions.get::<PushedAuthorization>() {
        Some(p) => json!({
            "client_id": p.client_id(),
            "auth_method": p.auth_method().as_str(),
            "request_uri": p.request_uri().to_string(),
            "lifetime_secs": p.expires_at().duration_since(p.pushed_at()).unwrap().as_secs(),
            "pushed_at_unix": p.pushed_at().duration_since(UNIX_EPOCH).unwrap().as_secs(),
        }),
        None => Value::Null,
    };
    json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(body),
        "par": par,
    })
}

/// The inner service used throughout: counts its calls and answers `200`
/// with [`describe`] as JSON.
pub type Echo<B> = BoxCloneService<Request<ParRequestBody<B>>, Response<Full<Bytes>>, Infallible>;

pub fn echo<B>(calls: Arc<AtomicUsize>) -> Echo<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Debug,
{
    BoxCloneService::new(service_fn(move |req: Request<ParRequestBody<B>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect().await.expect("request body").to_bytes();
            let described = describe(&parts, &bytes);
            let mut res = Response::new(Full::new(Bytes::from(described.to_string())));
            res.headers_mut()
                .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            res.headers_mut().insert("x-inner", "echo".parse().unwrap());
            Ok::<_, Infallible>(res)
        }
    }))
}

/// The layered service under test, and the inner service's call counter.
pub type Svc = Par<Echo<Full<Bytes>>>;
pub type SvcResponse = Response<ParResponseBody<Full<Bytes>>>;

pub fn service(layer: ParLayer) -> (Svc, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = tower::Layer::layer(&layer, echo(calls.clone()));
    (svc, calls)
}

pub async fn call(svc: &Svc, req: Request<Full<Bytes>>) -> SvcResponse {
    svc.clone().oneshot(req).await.unwrap()
}

/// Calls and expects the inner service's echo (`200`, `x-inner: echo`).
pub async fn call_echo(svc: &Svc, req: Request<Full<Bytes>>) -> Value {
    let res = call(svc, req).await;
    let (parts, bytes) = into_parts(res).await;
    assert_eq!(
        parts.status,
        StatusCode::OK,
        "expected the inner service, got {}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(parts.headers["x-inner"], "echo");
    serde_json::from_slice(&bytes).unwrap()
}

pub fn hits(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

fn assert_not_redirected(headers: &HeaderMap) {
    // OA-5: an unverified request is never redirected anywhere.
    assert!(
        headers.get(header::LOCATION).is_none(),
        "unexpected Location: {:?}",
        headers.get(header::LOCATION)
    );
    assert!(
        headers.get("x-inner").is_none(),
        "the inner service answered"
    );
}

/// Asserts the layer's HTML error page at the authorization endpoint.
pub async fn assert_html_error<B>(
    res: Response<B>,
    status: StatusCode,
    code: &str,
    description: &str,
) where
    B: Body<Data = Bytes>,
    B::Error: Debug,
{
    let (parts, bytes) = into_parts(res).await;
    let page = String::from_utf8(bytes.to_vec()).unwrap();
    assert_eq!(parts.status, status, "{page}");
    assert_not_redirected(&parts.headers);
    assert_eq!(
        parts.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert_eq!(parts.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(
        parts.headers[header::CONTENT_LENGTH],
        bytes.len().to_string().as_str()
    );
    assert!(page.contains(&format!("<code>{code}</code>")), "{page}");
    assert!(page.contains(&format!("<p>{description}</p>")), "{page}");
}

/// Asserts an RFC 6749 §5.2 JSON error with exactly `error` and
/// `error_description`.
pub async fn assert_json_error<B>(
    res: Response<B>,
    status: StatusCode,
    code: &str,
    description: &str,
) where
    B: Body<Data = Bytes>,
    B::Error: Debug,
{
    let (parts, bytes) = into_parts(res).await;
    assert_eq!(parts.status, status, "{}", String::from_utf8_lossy(&bytes));
    assert_not_redirected(&parts.headers);
    assert_eq!(parts.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(parts.headers[header::CACHE_CONTROL], "no-store");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v, json!({"error": code, "error_description": description}));
}

/// A hyper client (HTTP/1.1, or HTTP/2 with prior knowledge) that sends
/// origin-form requests to `addr`.
pub type Http = BoxCloneService<
    Request<Full<Bytes>>,
    Response<hyper::body::Incoming>,
    hyper_util::client::legacy::Error,
>;

pub fn client(addr: std::net::SocketAddr, http2: bool) -> Http {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(http2)
        .build_http::<Full<Bytes>>();
    BoxCloneService::new(
        tower::ServiceBuilder::new()
            .map_request(move |mut req: Request<Full<Bytes>>| {
                *req.uri_mut() = format!("http://{addr}{}", req.uri()).parse().unwrap();
                req
            })
            .service(client),
    )
}

pub async fn send(http: &Http, req: Request<Full<Bytes>>) -> Response<hyper::body::Incoming> {
    http.clone().oneshot(req).await.expect("HTTP exchange")
}
