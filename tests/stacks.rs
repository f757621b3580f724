//! The layer in the stacks users build: real tower-http 0.6 layers around
//! and inside it, through `ServiceBuilder`, `Router::layer`, nesting under
//! a prefix, and `axum::serve`. Each test sends real requests and asserts
//! which order works and, for the orders the docs warn against, what goes
//! wrong ("Placement in a stack" in the crate docs).

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::RawQuery;
use axum::routing;
use axum::{Json, Router};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::decompression::DecompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, TraceLayer};
use tower_par::{redacted_uri, ParLayer};

use support::*;

const ISSUER: &str = "https://as.example";
const SPA: &str = "https://spa.example";

/// The PAR-unaware application: an authorization endpoint that echoes
/// its query, a discovery document, a slow route.
fn app() -> Router {
    Router::new()
        .route(
            "/authorize",
            routing::get(|RawQuery(q): RawQuery| async move { Json(json!({ "query": q })) }),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            routing::get(|| async {
                Json(json!({
                    "issuer": ISSUER,
                    "authorization_endpoint": format!("{ISSUER}/authorize"),
                    "token_endpoint": format!("{ISSUER}/token"),
                    "response_types_supported": ["code"],
                }))
            }),
        )
        .route(
            "/slow",
            routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        )
}

fn par() -> ParLayer {
    layer().issuer(ISSUER).unwrap().metadata(true)
}

/// CORS for the PAR endpoint only: FAPI 2.0 (FAPI-26) forbids
/// CORS at the authorization endpoint, and `AllowOrigin::predicate` sees
/// the request's path.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(|origin, parts| {
            origin == SPA && parts.uri.path() == "/par"
        }))
        .allow_methods([Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
}

fn preflight(path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header(header::ORIGIN, SPA)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .body(Full::default())
        .unwrap()
}

fn cross_origin(mut req: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    req.headers_mut()
        .insert(header::ORIGIN, HeaderValue::from_static(SPA));
    req
}

fn metadata_request(accept_encoding: &str) -> Request<Full<Bytes>> {
    let mut req = get("/.well-known/oauth-authorization-server");
    req.headers_mut().insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_str(accept_encoding).unwrap(),
    );
    req
}

fn allow_origin(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .and_then(|v| v.to_str().ok())
}

/// Redeems `request_uri` at `path` and returns the query the application
/// saw.
async fn redeem_at<S, B>(svc: &S, path: &str, request_uri: &str) -> Value
where
    S: tower::Service<Request<Full<Bytes>>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let uri = format!(
        "{path}?client_id={C_ID}&request_uri={}",
        form_encode(request_uri)
    );
    let (parts, bytes) = into_parts(svc.clone().oneshot(get(&uri)).await.unwrap()).await;
    assert_eq!(
        parts.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap()
}

// ---------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------

#[tokio::test]
async fn cors_outside_the_layer_answers_the_par_preflight_and_marks_the_push() {
    let svc = ServiceBuilder::new()
        .layer(cors())
        .layer(par())
        .service(app());

    let res = svc.clone().oneshot(preflight("/par")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(allow_origin(res.headers()), Some(SPA));
    assert_eq!(
        res.headers()[header::ACCESS_CONTROL_ALLOW_METHODS],
        HeaderValue::from_static("POST")
    );

    let res = svc
        .clone()
        .oneshot(cross_origin(push_request(Some(&c_basic()), &c_form())))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(allow_origin(res.headers()), Some(SPA));

    // FAPI-26: no CORS at the authorization endpoint, even cross-origin.
    let res = svc
        .clone()
        .oneshot(cross_origin(get("/authorize?response_type=code")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(allow_origin(res.headers()), None);
}

#[tokio::test]
async fn cors_inside_the_layer_never_sees_par_so_the_preflight_is_refused_par20() {
    // The layer answers `/par` itself, before anything it wraps runs: the
    // preflight gets the PAR endpoint's `405` (PAR-20: POST only), with no
    // CORS headers, so a browser refuses the push. This is the documented
    // reason CorsLayer goes outside the layer.
    let svc = ServiceBuilder::new()
        .layer(par())
        .layer(cors())
        .service(app());

    let res = svc.clone().oneshot(preflight("/par")).await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()[header::ALLOW], "POST");
    assert_eq!(allow_origin(res.headers()), None);

    let res = svc
        .clone()
        .oneshot(cross_origin(push_request(Some(&c_basic()), &c_form())))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(allow_origin(res.headers()), None);
}

// ---------------------------------------------------------------------------
// Compression
// ---------------------------------------------------------------------------

#[tokio::test]
async fn compression_outside_the_layer_keeps_the_par_members_meta12() {
    let svc = ServiceBuilder::new()
        .layer(CompressionLayer::new())
        .layer(par())
        .service(app());

    let res = svc.clone().oneshot(metadata_request("gzip")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");

    let client = ServiceBuilder::new()
        .layer(DecompressionLayer::new())
        .service(svc);
    let doc: Value = serde_json::from_str(
        &body_string(client.oneshot(metadata_request("gzip")).await.unwrap()).await,
    )
    .unwrap();
    assert_eq!(
        doc["pushed_authorization_request_endpoint"],
        format!("{ISSUER}/par")
    );
    assert_eq!(doc["token_endpoint"], format!("{ISSUER}/token"));
}

#[tokio::test]
async fn compression_inside_the_layer_keeps_the_par_members_uncompressed_meta13() {
    // META-13: the layer asks the application for its document with
    // `Accept-Encoding: identity`, so a compression layer inside it leaves
    // the document as it is; the client gets it with the PAR members, but
    // uncompressed. Other routes are still compressed.
    let svc = ServiceBuilder::new()
        .layer(par())
        .layer(CompressionLayer::new())
        .service(app());
    let res = svc.clone().oneshot(metadata_request("gzip")).await.unwrap();
    assert_eq!(res.headers().get(header::CONTENT_ENCODING), None);
    let doc: Value = serde_json::from_str(&body_string(res).await).unwrap();
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(
        doc["pushed_authorization_request_endpoint"],
        format!("{ISSUER}/par")
    );

    let mut req =
        get("/authorize?response_type=code&padding=0123456789012345678901234567890123456789");
    req.headers_mut()
        .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
}

// ---------------------------------------------------------------------------
// Timeout, body limits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn timeout_outside_the_layer_answers_with_an_empty_par_body() {
    // `TimeoutLayer` needs `ParResponseBody: Default` for its `408`.
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(100),
        ))
        .layer(par())
        .service(app());

    let (parts, body) = into_parts(svc.clone().oneshot(get("/slow")).await.unwrap()).await;
    assert_eq!(parts.status, StatusCode::REQUEST_TIMEOUT);
    assert!(body.is_empty());

    let request_uri = push_c(&svc).await;
    let seen = redeem_at(&svc, "/authorize", &request_uri).await;
    assert_eq!(seen["query"], c_form());
}

#[tokio::test]
async fn body_limit_outside_the_layer_also_bounds_the_par_endpoint() {
    let svc = ServiceBuilder::new()
        .layer(RequestBodyLimitLayer::new(1024))
        .layer(par())
        .service(app());

    // With a `Content-Length` (hyper and browsers send one for any sized
    // body), tower-http answers 413 before the layer reads anything.
    let big = format!("{}&login_hint={}", c_form(), "a".repeat(2048));
    let mut req = push_request(Some(&c_basic()), &big);
    req.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(big.len()));
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // A body of unknown length is cut by tower-http while the layer reads
    // it: the push cannot be read and is refused as the layer's own 400.
    let res = svc
        .clone()
        .oneshot(push_request(Some(&c_basic()), &big))
        .await
        .unwrap();
    let (parts, bytes) = into_parts(res).await;
    assert_eq!(parts.status, StatusCode::BAD_REQUEST);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["error"], "invalid_request", "{v}");

    let request_uri = push_c(&svc).await;
    let seen = redeem_at(&svc, "/authorize", &request_uri).await;
    assert_eq!(seen["query"], c_form());
}

// ---------------------------------------------------------------------------
// Trace, and the redacting span
// ---------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every span and event on this thread, as text, while the guard lives.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// The random part of a `request_uri`: what must never reach a log.
fn secret_part(request_uri: &str) -> &str {
    request_uri.rsplit(':').next().unwrap()
}

#[tokio::test]
async fn default_trace_span_outside_the_layer_logs_the_request_uri() {
    // The control for the tests below: the capture does see URIs, and
    // tower-http's default span records a redeemed request_uri in full.
    let (captured, _guard) = capture();
    let svc = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http().make_span_with(DefaultMakeSpan::new()))
        .layer(par())
        .service(app());
    let request_uri = push_c(&svc).await;
    redeem_at(&svc, "/authorize", &request_uri).await;
    let log = captured.text();
    assert!(log.contains("uri=/par"), "{log}");
    assert!(log.contains(secret_part(&request_uri)), "{log}");
}

#[tokio::test]
async fn redacted_uri_span_keeps_the_request_uri_out_of_the_log_par43() {
    let (captured, _guard) = capture();
    let svc = ServiceBuilder::new()
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                tracing::info_span!("request", method = %req.method(), uri = %redacted_uri(req.uri()))
            }),
        )
        .layer(par())
        .service(app());
    let request_uri = push_c(&svc).await;
    redeem_at(&svc, "/authorize", &request_uri).await;
    let log = captured.text();
    assert!(log.contains("uri=/par"), "{log}");
    assert!(
        log.contains("uri=/authorize?client_id=C&request_uri=[redacted]"),
        "{log}"
    );
    assert!(!log.contains(secret_part(&request_uri)), "{log}");
}

#[cfg(feature = "tower-http")]
#[tokio::test]
async fn redacted_make_span_keeps_the_request_uri_and_code_out_of_the_log_par43() {
    let (captured, _guard) = capture();
    let svc = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http().make_span_with(tower_par::RedactedMakeSpan::new()))
        .layer(par())
        .service(app());
    let request_uri = push_c(&svc).await;
    redeem_at(&svc, "/authorize", &request_uri).await;
    svc.clone()
        .oneshot(get("/authorize?code=SplxlOBeZQQYbYS6WxSbIA&state=s1"))
        .await
        .unwrap();
    let log = captured.text();
    assert!(log.contains("uri=/par"), "{log}");
    assert!(log.contains("request_uri=[redacted]"), "{log}");
    assert!(log.contains("code=[redacted]&state=s1"), "{log}");
    assert!(!log.contains(secret_part(&request_uri)), "{log}");
    assert!(!log.contains("SplxlOBeZQQYbYS6WxSbIA"), "{log}");
    // Never the headers: the push's `Authorization` stays out.
    assert!(!log.contains(&c_basic()["Basic ".len()..]), "{log}");
}

#[tokio::test]
async fn trace_inside_the_layer_never_sees_the_par_endpoint() {
    let (captured, _guard) = capture();
    let svc = ServiceBuilder::new()
        .layer(par())
        .layer(TraceLayer::new_for_http())
        .service(app());
    push_c(&svc).await;
    svc.clone().oneshot(get("/authorize")).await.unwrap();
    let log = captured.text();
    assert!(log.contains("uri=/authorize"), "{log}");
    assert!(!log.contains("uri=/par"), "{log}");
}

// ---------------------------------------------------------------------------
// Router::layer, nesting
// ---------------------------------------------------------------------------

/// The recommended order, written with `Router::layer` (the last call is
/// the outermost layer).
fn recommended_router() -> Router {
    app()
        .layer(par())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(5),
        ))
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .layer(CompressionLayer::new())
        .layer(cors())
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &Request<_>| tracing::info_span!("request", uri = %redacted_uri(req.uri())),
        ))
}

#[tokio::test]
async fn router_layer_in_the_recommended_order_serves_every_part() {
    let app = recommended_router();

    let res = app.clone().oneshot(preflight("/par")).await.unwrap();
    assert_eq!(allow_origin(res.headers()), Some(SPA));

    let request_uri = push_c(&app).await;
    let seen = redeem_at(&app, "/authorize", &request_uri).await;
    assert_eq!(seen["query"], c_form());

    let client = ServiceBuilder::new()
        .layer(DecompressionLayer::new())
        .service(app);
    let doc: Value = serde_json::from_str(
        &body_string(client.oneshot(metadata_request("gzip")).await.unwrap()).await,
    )
    .unwrap();
    assert_eq!(
        doc["pushed_authorization_request_endpoint"],
        format!("{ISSUER}/par")
    );
}

#[tokio::test]
async fn recommended_stack_served_by_axum_serve() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, recommended_router()).await.unwrap() });
    let http = client(addr, false);

    let res = send(&http, preflight("/par")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(allow_origin(res.headers()), Some(SPA));

    let request_uri = push_c(&http).await;
    let seen = redeem_at(&http, "/authorize", &request_uri).await;
    assert_eq!(seen["query"], c_form());
}

#[tokio::test]
async fn nest_of_a_layered_router_does_not_reach_the_par_endpoint() {
    // `nest` merges the nested router's routes under the prefix, each with
    // the nested router's layers; `/oauth/par` matches no route, so it goes
    // to the outer router's fallback, which the layer does not wrap: 404.
    let app = Router::new().nest("/oauth", app().layer(par()));
    let res = app
        .clone()
        .oneshot(push_request(Some(&c_basic()), &c_form()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let mut req = push_request(Some(&c_basic()), &c_form());
    *req.uri_mut() = "/oauth/par".parse().unwrap();
    assert_eq!(
        app.oneshot(req).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

fn under_oauth(mut req: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    *req.uri_mut() = format!("/oauth{}", req.uri()).parse().unwrap();
    req
}

#[tokio::test]
async fn nest_service_mounts_the_layer_under_a_prefix() {
    // `nest_service` hands the whole nested service every request under
    // the prefix, with the prefix stripped: the layer's own paths stay
    // `/par` and `/authorize`, so it is told the URL it is published at.
    let par = par()
        .par_endpoint_url(format!("{ISSUER}/oauth/par"))
        .unwrap();
    let app = Router::new().nest_service("/oauth", app().layer(par));
    let svc = tower::service_fn(move |req| app.clone().oneshot(under_oauth(req)));

    let request_uri = push_c(&svc).await;
    let seen = redeem_at(&svc, "/authorize", &request_uri).await;
    assert_eq!(seen["query"], c_form());

    let doc: Value = serde_json::from_str(
        &body_string(svc.oneshot(metadata_request("identity")).await.unwrap()).await,
    )
    .unwrap();
    assert_eq!(
        doc["pushed_authorization_request_endpoint"],
        format!("{ISSUER}/oauth/par")
    );
}

#[tokio::test]
async fn layer_outside_a_nest_with_prefixed_paths() {
    let par = par()
        .par_path("/oauth/par")
        .unwrap()
        .authorize_path("/oauth/authorize")
        .unwrap();
    let app = Router::new().nest("/oauth", app()).layer(par);

    let res = app
        .clone()
        .oneshot(under_oauth(push_request(Some(&c_basic()), &c_form())))
        .await
        .unwrap();
    let (parts, bytes) = into_parts(res).await;
    assert_eq!(parts.status, StatusCode::CREATED);
    let request_uri = serde_json::from_slice::<Value>(&bytes).unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = redeem_at(&app, "/oauth/authorize", &request_uri).await;
    assert_eq!(seen["query"], c_form());
}

// ---------------------------------------------------------------------------
// hyper, with an inner body that has no `Default`
// ---------------------------------------------------------------------------

type Chunks = futures::stream::Iter<
    std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::convert::Infallible>>,
>;

#[tokio::test]
async fn cors_and_timeout_over_the_layer_on_hyper_with_a_streamed_inner_body() {
    // `StreamBody` has no `Default`; `ParResponseBody<StreamBody<_>>` does,
    // which is all `CorsLayer` and `TimeoutLayer` ask for.
    let handler = |req: Request<tower_par::ParRequestBody<hyper::body::Incoming>>| async move {
        let frames = vec![Ok(http_body::Frame::data(Bytes::from(
            req.uri().query().unwrap_or("").to_owned(),
        )))];
        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::StreamBody::new(
            futures::stream::iter(frames) as Chunks,
        )))
    };
    let svc = ServiceBuilder::new()
        .layer(cors())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(5),
        ))
        .layer(par())
        .service_fn(handler);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
            });
        }
    });
    let http = client(addr, false);

    let res = send(&http, preflight("/par")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(allow_origin(res.headers()), Some(SPA));

    let request_uri = push_c(&http).await;
    let uri = format!(
        "/authorize?client_id={C_ID}&request_uri={}",
        form_encode(&request_uri)
    );
    assert_eq!(body_string(send(&http, get(&uri)).await).await, c_form());
}
