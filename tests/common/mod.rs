//! Helpers shared by the integration tests.
//!
//! Each test file includes this module with `mod common;` and uses only part
//! of it, hence the `dead_code` allowance. Keep helpers grouped by section.

#![allow(dead_code)]

// ===========================================================================
// Section: HTTP harness (introduced with tests/push.rs)
//
// Echo inner service, the layer over it, request builders, response readers
// and assertions, the spec's client registry. Generic over the client
// registry, the store and the request body type. Add other helpers in a
// section of their own below.
// ===========================================================================

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use futures::stream;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::Value;
use tower::{Layer, Service, ServiceExt};
use tower_par::{
    AuthMethod, Client, ClientAuthenticator, Par, ParLayer, ParRequestBody, ParResponseBody,
    ParStore, PushedAuthorization, StaticClients, REQUEST_URI_PREFIX,
};

// --- the spec's test registry (Test matrix conventions) --------------------

/// `C`: confidential, `client_secret_basic`, one redirect URI, scopes
/// `openid profile`.
pub const C: &str = "C";
/// `C`'s secret; contains characters that form-url-encoding changes.
pub const C_SECRET: &str = "s3cr+t %x";
/// `C`'s only registered redirect URI.
pub const C_REDIRECT: &str = "https://c.example/cb";
/// A second confidential `client_secret_basic` client (for AUTH-9).
pub const OTHER: &str = "OTHER";
pub const OTHER_SECRET: &str = "other-secret";
/// A `client_secret_post` client.
pub const POST: &str = "POSTC";
pub const POST_SECRET: &str = "p0st secret";
pub const POST_REDIRECT: &str = "https://post.example/cb";
/// `P`: a public client (`none`).
pub const P: &str = "P";
pub const P_REDIRECT: &str = "https://p.example/cb";
/// A confidential client with two registered redirect URIs.
pub const TWO: &str = "TWO";
pub const TWO_SECRET: &str = "two-secret";
pub const TWO_REDIRECT_1: &str = "https://two.example/cb1";
pub const TWO_REDIRECT_2: &str = "https://two.example/cb2";
/// A confidential client with its own `request_uri` lifetime.
pub const LONG: &str = "LONG";
pub const LONG_SECRET: &str = "long-secret";
pub const LONG_REDIRECT: &str = "https://long.example/cb";
pub const LONG_LIFETIME_SECS: u64 = 90;

/// A valid S256 `code_challenge` (RFC 7636 Appendix B).
pub const S256_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The registry described by the spec's test matrix, plus the extra clients
/// named above.
pub fn spec_clients() -> StaticClients {
    StaticClients::new()
        .with_client(
            Client::new(C, AuthMethod::ClientSecretBasic)
                .redirect_uri(C_REDIRECT)
                .scopes(["openid", "profile"]),
            Some(C_SECRET),
        )
        .and_then(|r| {
            r.with_client(
                Client::new(OTHER, AuthMethod::ClientSecretBasic)
                    .redirect_uri("https://other.example/cb"),
                Some(OTHER_SECRET),
            )
        })
        .and_then(|r| {
            r.with_client(
                Client::new(POST, AuthMethod::ClientSecretPost).redirect_uri(POST_REDIRECT),
                Some(POST_SECRET),
            )
        })
        .and_then(|r| {
            r.with_client(
                Client::new(P, AuthMethod::None).redirect_uri(P_REDIRECT),
                None,
            )
        })
        .and_then(|r| {
            r.with_client(
                Client::new(TWO, AuthMethod::ClientSecretBasic)
                    .redirect_uri(TWO_REDIRECT_1)
                    .redirect_uri(TWO_REDIRECT_2),
                Some(TWO_SECRET),
            )
        })
        .and_then(|r| {
            r.with_client(
                Client::new(LONG, AuthMethod::ClientSecretBasic)
                    .redirect_uri(LONG_REDIRECT)
                    .request_uri_lifetime(Duration::from_secs(LONG_LIFETIME_SECS)),
                Some(LONG_SECRET),
            )
        })
        .expect("the test registry is valid")
}

/// The matrix's "base body" for `C`.
pub fn base_body() -> String {
    base_body_for(C, C_REDIRECT)
}

/// The "base body" for any client and redirect URI.
pub fn base_body_for(client_id: &str, redirect_uri: &str) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s1\
         &code_challenge={S256_CHALLENGE}&code_challenge_method=S256",
        form_encode(client_id),
        form_encode(redirect_uri),
    )
}

// --- the echo inner service ------------------------------------------------

/// Counts how often the inner service was called.
#[derive(Clone, Default, Debug)]
pub struct InnerCalls(Arc<AtomicUsize>);

impl InnerCalls {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Header set on every response of the echo service.
pub const ECHO_HEADER: &str = "x-echo";

/// The echo service's response future.
pub type EchoFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

/// What [`echo_service`] is: a cloneable inner service for the layer.
pub trait EchoService<B>:
    Service<
        Request<ParRequestBody<B>>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = EchoFuture,
    > + Clone
    + Send
    + 'static
{
}

impl<B, T> EchoService<B> for T where
    T: Service<
            Request<ParRequestBody<B>>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
            Future = EchoFuture,
        > + Clone
        + Send
        + 'static
{
}

/// The layered echo service, as returned by [`layered`].
pub type Layered<E, C, St> = (Par<E, C, St>, InnerCalls);

/// An inner service that answers `200` with a JSON description of the
/// request it received:
/// `{"method", "path", "query", "content_type", "body", "pushed_client_id"}`
/// (`query` and `pushed_client_id` are `null` when absent), and counts its
/// calls in `calls`.
pub fn echo_service<B>(calls: InnerCalls) -> impl EchoService<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    tower::service_fn(move |req: Request<ParRequestBody<B>>| -> EchoFuture {
        let calls = calls.clone();
        Box::pin(async move {
            calls.hit();
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                Err(e) => format!("<body error: {e}>"),
            };
            let echo = serde_json::json!({
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "query": parts.uri.query(),
                "content_type": parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok()),
                "body": body,
                "pushed_client_id": parts
                    .extensions
                    .get::<PushedAuthorization>()
                    .map(|p| p.client_id().to_owned()),
            });
            let res = Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(ECHO_HEADER, "1")
                .body(Full::new(Bytes::from(echo.to_string())))
                .expect("valid echo response");
            Ok(res)
        })
    })
}

/// `layer` over a fresh echo service, with the counter of inner calls.
/// The body type `B` is inferred from the requests sent.
pub fn layered<C, St, B>(layer: &ParLayer<C, St>) -> Layered<impl EchoService<B>, C, St>
where
    C: ClientAuthenticator,
    St: ParStore,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    let calls = InnerCalls::default();
    (layer.layer(echo_service::<B>(calls.clone())), calls)
}

/// The default layer over the spec registry.
pub fn default_layer() -> ParLayer {
    ParLayer::new(spec_clients())
}

/// Sends one request through a clone of `svc`.
pub async fn send<S, B>(svc: &S, req: Request<B>) -> Response<ParResponseBody<Full<Bytes>>>
where
    S: Service<Request<B>, Response = Response<ParResponseBody<Full<Bytes>>>, Error = Infallible>
        + Clone,
{
    match svc.clone().oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

// --- request builders ------------------------------------------------------

/// `application/x-www-form-urlencoded` encoding of one name or value
/// (space as `+`, everything but `A-Za-z0-9*-._` percent-encoded).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds a form from pairs, encoding names and values.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", form_encode(n), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `Authorization: Basic` as RFC 6749 §2.3.1 builds it: both halves
/// form-url-encoded, then base64.
pub fn basic(client_id: &str, secret: &str) -> String {
    basic_raw(&format!(
        "{}:{}",
        form_encode(client_id),
        form_encode(secret)
    ))
}

/// `Authorization: Basic base64(user_pass)`, with no encoding of the halves.
pub fn basic_raw(user_pass: &str) -> String {
    format!("Basic {}", STANDARD.encode(user_pass))
}

/// `POST uri` with a form body and the given extra headers; `Content-Length`
/// is set.
pub fn form_post(
    uri: &str,
    body: impl Into<String>,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let body: String = body.into();
    let mut req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, body.len());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(Full::new(Bytes::from(body)))
        .expect("valid request")
}

/// `POST uri` with a body of any content type.
pub fn post_with_type(
    uri: &str,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let body: Bytes = body.into();
    Request::post(uri)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.len())
        .body(Full::new(body))
        .expect("valid request")
}

/// A request with an empty body.
pub fn request(method: &str, uri: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .expect("valid request")
}

/// `GET uri` with an empty body.
pub fn get(uri: &str) -> Request<Full<Bytes>> {
    request("GET", uri)
}

/// A body delivered in several frames, with no size hint.
pub type ChunkedBody =
    StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// A body that yields `chunks` one frame at a time.
pub fn chunked_body<I, T>(chunks: I) -> ChunkedBody
where
    I: IntoIterator<Item = T>,
    T: Into<Bytes>,
{
    let frames: Vec<_> = chunks
        .into_iter()
        .map(|c| Ok(Frame::data(c.into())))
        .collect();
    StreamBody::new(stream::iter(frames))
}

/// `POST uri` with a form body streamed in `chunks`, without
/// `Content-Length`.
pub fn chunked_form_post<I, T>(
    uri: &str,
    chunks: I,
    headers: &[(&str, &str)],
) -> Request<ChunkedBody>
where
    I: IntoIterator<Item = T>,
    T: Into<Bytes>,
{
    let mut req =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(chunked_body(chunks)).expect("valid request")
}

/// `GET /authorize?client_id=..&request_uri=..`.
pub fn authorize_with(client_id: &str, request_uri: &str) -> Request<Full<Bytes>> {
    get(&format!(
        "/authorize?{}",
        form(&[("client_id", client_id), ("request_uri", request_uri)])
    ))
}

// --- response readers ------------------------------------------------------

/// The whole body.
pub async fn body_bytes<B>(res: Response<B>) -> Bytes
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    res.into_body()
        .collect()
        .await
        .expect("readable body")
        .to_bytes()
}

/// The body as a string.
pub async fn body_string<B>(res: Response<B>) -> String
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    String::from_utf8(body_bytes(res).await.to_vec()).expect("UTF-8 body")
}

/// The body parsed as JSON.
pub async fn body_json<B>(res: Response<B>) -> Value
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let bytes = body_bytes(res).await;
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// A header as a string, if present.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ASCII header"))
}

/// Asserts an RFC 6749 §5.2 JSON error: status, `application/json`,
/// `Cache-Control: no-store`, exactly the members `error` (= `code`) and
/// `error_description` (a string); returns the description.
pub async fn assert_oauth_error<B>(res: Response<B>, status: u16, code: &str) -> String
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    assert_eq!(res.status().as_u16(), status, "status (expected {code})");
    assert_error_headers(res.headers());
    let json = body_json(res).await;
    assert_error_shape(&json);
    assert_eq!(json["error"], code, "error code in {json}");
    json["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Headers every JSON error must carry.
pub fn assert_error_headers(headers: &HeaderMap) {
    assert_eq!(
        header_str(headers, "content-type"),
        Some("application/json")
    );
    let cache = header_str(headers, "cache-control").expect("Cache-Control on errors");
    assert!(cache.contains("no-store"), "Cache-Control: {cache}");
    assert!(
        headers.get(ECHO_HEADER).is_none(),
        "answered by the inner service"
    );
}

/// `{"error": string, "error_description": string}` and nothing else; the
/// code uses only the characters RFC 6749 §5.2 allows.
pub fn assert_error_shape(json: &Value) {
    let obj = json.as_object().expect("error body is a JSON object");
    let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "error_description"], "members of {json}");
    let code = json["error"].as_str().expect("error is a string");
    assert!(!code.is_empty());
    assert!(
        code.bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e)),
        "error code characters: {code}"
    );
    assert!(
        json["error_description"].is_string(),
        "error_description in {json}"
    );
}

/// Asserts a PAR success response (RFC 9126 §2.2): `201`,
/// `application/json`, `Cache-Control: no-store`, exactly `request_uri` (a
/// URN with the RFC 9126 prefix, at most 512 characters) and `expires_in`
/// (= `expires_in`). Returns the `request_uri`.
pub async fn assert_created<B>(res: Response<B>, expires_in: u64) -> String
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let status = res.status();
    let headers = res.headers().clone();
    let json = body_json(res).await;
    assert_eq!(status, StatusCode::CREATED, "body: {json}");
    assert_eq!(
        header_str(&headers, "content-type"),
        Some("application/json")
    );
    let cache = header_str(&headers, "cache-control").expect("Cache-Control on 201");
    assert!(cache.contains("no-store"), "Cache-Control: {cache}");
    assert!(
        headers.get(ECHO_HEADER).is_none(),
        "answered by the inner service"
    );
    let obj = json.as_object().expect("JSON object");
    let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["expires_in", "request_uri"], "members of {json}");
    assert_eq!(
        json["expires_in"].as_u64(),
        Some(expires_in),
        "expires_in in {json}"
    );
    let uri = json["request_uri"]
        .as_str()
        .expect("request_uri is a string");
    assert!(uri.starts_with(REQUEST_URI_PREFIX), "request_uri {uri}");
    assert!(uri.len() <= 512, "request_uri longer than 512: {uri}");
    uri.to_owned()
}

/// Redeems `request_uri` at `/authorize` as `client_id` and returns what the
/// inner service received (see [`echo_service`]).
pub async fn redeem<S>(svc: &S, client_id: &str, request_uri: &str) -> Value
where
    S: Service<
            Request<Full<Bytes>>,
            Response = Response<ParResponseBody<Full<Bytes>>>,
            Error = Infallible,
        > + Clone,
{
    let res = send(svc, authorize_with(client_id, request_uri)).await;
    assert_eq!(res.status(), StatusCode::OK, "redemption failed");
    assert!(
        res.headers().get(ECHO_HEADER).is_some(),
        "inner service not reached"
    );
    body_json(res).await
}

// ===========================================================================
// End of section: HTTP harness
// ===========================================================================
