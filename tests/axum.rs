//! The layer in an axum 0.8 application: `Router::layer(par)`, driven with
//! `oneshot` and served with `axum::serve`, and the whole router wrapped
//! from the outside.
//!
//! `Router::route_layer(par)` is not enough and is deliberately not used:
//! route layers only run for matched routes, and `/par` has no route of its
//! own, so the PAR endpoint would answer 404. `Router::layer` also wraps the
//! fallback, which is where `/par` arrives.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::routing;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt};
use tower_par::{ParLayer, ParResponseBody, PushedAuthorization};

use support::*;

#[derive(Clone, Default)]
struct Handled(Arc<AtomicUsize>);

fn pushed(ext: &Option<Extension<PushedAuthorization>>) -> Value {
    match ext {
        Some(Extension(p)) => {
            json!({"client_id": p.client_id(), "request_uri": p.request_uri().to_string()})
        }
        None => Value::Null,
    }
}

async fn authorize_get(
    State(handled): State<Handled>,
    RawQuery(query): RawQuery,
    ext: Option<Extension<PushedAuthorization>>,
) -> Json<Value> {
    handled.0.fetch_add(1, Ordering::SeqCst);
    Json(json!({"query": query, "pushed": pushed(&ext)}))
}

async fn authorize_post(
    State(handled): State<Handled>,
    RawQuery(query): RawQuery,
    ext: Option<Extension<PushedAuthorization>>,
    body: String,
) -> Json<Value> {
    handled.0.fetch_add(1, Ordering::SeqCst);
    Json(json!({"query": query, "body": body, "pushed": pushed(&ext)}))
}

async fn token(body: String) -> String {
    format!("token:{body}")
}

/// The PAR-unaware application, and how often `/authorize` ran.
fn app() -> (Router, Arc<AtomicUsize>) {
    let handled = Handled::default();
    let count = handled.0.clone();
    let router = Router::new()
        .route(
            "/authorize",
            routing::get(authorize_get).post(authorize_post),
        )
        .route("/token", routing::post(token))
        .route("/health", routing::get(|| async { "ok" }))
        .with_state(handled);
    (router, count)
}

fn app_with(par: ParLayer) -> (Router, Arc<AtomicUsize>) {
    let (router, count) = app();
    (router.layer(par), count)
}

async fn json_body<B>(res: Response<B>) -> Value
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let (parts, bytes) = into_parts(res).await;
    assert_eq!(
        parts.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

// ---------------------------------------------------------------------------
// Router::layer, driven with oneshot
// ---------------------------------------------------------------------------

#[tokio::test]
async fn router_layer_serves_par_and_redeems_at_the_authorize_route_t72_par32() {
    let (app, handled) = app_with(layer());
    let request_uri = push_c(&app).await;

    let uri = format!("{}&scope=profile", authorize_uri(C_ID, &request_uri));
    let seen = json_body(app.clone().oneshot(get(&uri)).await.unwrap()).await;
    assert_eq!(
        seen,
        json!({
            "query": c_form(),
            "pushed": {"client_id": "C", "request_uri": request_uri},
        })
    );

    // One-time use (PAR-28).
    let res = app.clone().oneshot(get(&uri)).await.unwrap();
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn router_layer_redeems_a_post_form_at_the_authorize_route_oa2() {
    let (app, _) = app_with(layer());
    let request_uri = push_c(&app).await;
    let body = format!("client_id=C&request_uri={}", form_encode(&request_uri));
    let seen = json_body(
        app.clone()
            .oneshot(post_form("/authorize", body))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        seen,
        json!({
            "query": null,
            "body": c_form(),
            "pushed": {"client_id": "C", "request_uri": request_uri},
        })
    );
}

#[tokio::test]
async fn router_layer_leaves_other_routes_and_classic_requests_alone() {
    let (app, _) = app_with(layer());

    let res = app.clone().oneshot(get("/health")).await.unwrap();
    assert_eq!(body_string(res).await, "ok");

    let res = app
        .clone()
        .oneshot(post_form("/token", "grant_type=authorization_code&code=x"))
        .await
        .unwrap();
    assert_eq!(
        body_string(res).await,
        "token:grant_type=authorization_code&code=x"
    );

    let seen = json_body(
        app.clone()
            .oneshot(get("/authorize?response_type=code&client_id=C"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        seen,
        json!({"query": "response_type=code&client_id=C", "pushed": null})
    );

    // Unknown paths still reach axum's fallback.
    let res = app.clone().oneshot(get("/nope")).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn router_layer_enforces_require_par_on_the_authorize_route_t80_t81() {
    let (app, handled) = app_with(layer().require_par(true));
    let classic = "/authorize?response_type=code&client_id=C&state=x";
    let res = app.clone().oneshot(get(classic)).await.unwrap();
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "pushed authorization request required",
    )
    .await;
    let res = app
        .clone()
        .oneshot(post_form("/authorize", "response_type=code&client_id=C"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(handled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn head_authorize_does_not_reach_the_get_handler_when_par_is_required_m4() {
    let (app, handled) = app_with(layer().require_par(true));
    let req = Request::head("/authorize?response_type=code&client_id=C&state=x")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(handled.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------
// Served with axum::serve
// ---------------------------------------------------------------------------

#[tokio::test]
async fn router_layer_over_axum_serve_push_redeem_reuse_t72_t76() {
    let (app, handled) = app_with(layer());
    let addr = serve(app).await;
    let http = client(addr, false);

    let request_uri = push(&http, Some(&c_basic()), &c_form()).await;
    let seen = json_body(send(&http, get(&authorize_uri(C_ID, &request_uri))).await).await;
    assert_eq!(seen["query"], c_form().as_str());
    assert_eq!(seen["pushed"]["client_id"], "C");

    let res = send(&http, get(&authorize_uri(C_ID, &request_uri))).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;

    let res = send(&http, get("/health")).await;
    assert_eq!(body_string(res).await, "ok");
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------
// Wrapping the whole router
// ---------------------------------------------------------------------------

#[tokio::test]
async fn par_layer_around_the_whole_router_served_with_axum_serve() {
    let (router, handled) = app();
    let svc = ServiceBuilder::new()
        .map_response(|res: Response<ParResponseBody<Body>>| res.map(Body::new))
        .layer(layer())
        .service(router);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let make = axum::ServiceExt::<Request<Body>>::into_make_service(svc);
    tokio::spawn(async move { axum::serve(listener, make).await.unwrap() });
    let http = client(addr, false);

    let request_uri = push(&http, Some(&c_basic()), &c_form()).await;
    let seen = json_body(send(&http, get(&authorize_uri(C_ID, &request_uri))).await).await;
    assert_eq!(
        seen,
        json!({
            "query": c_form(),
            "pushed": {"client_id": "C", "request_uri": request_uri},
        })
    );
    let res = send(&http, get(&authorize_uri(C_ID, &request_uri))).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;

    let res = send(&http, post_form("/token", "code=x")).await;
    assert_eq!(body_string(res).await, "token:code=x");
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn par_layer_around_the_whole_router_with_oneshot() {
    let (router, _) = app();
    let svc = tower::Layer::layer(&layer(), router);
    let request_uri = push_c(&svc).await;
    let body = format!("client_id=C&request_uri={}", form_encode(&request_uri));
    let seen = json_body(
        svc.clone()
            .oneshot(post_form("/authorize", body))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["body"], c_form().as_str());
    assert_eq!(seen["pushed"]["client_id"], "C");
}
