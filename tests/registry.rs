//! The authorization endpoint and the client registry: an outage is not
//! "no such client" (PAR-31, PAR-41), lookups are bounded per request, and
//! the binding cookie of a `Secure` deployment is a `__Host-` cookie.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use tower::{Layer, ServiceExt};
use tower_par::{
    Client, ClientAuthError, ClientAuthenticator, ClientCredentials, Par, ParLayer, StaticClients,
};

use support::*;

/// `StaticClients` whose lookups fail while `down` is set, counting them.
#[derive(Clone)]
struct Flaky {
    inner: StaticClients,
    down: Arc<AtomicBool>,
    lookups: Arc<AtomicUsize>,
}

impl Flaky {
    fn new() -> Self {
        Self {
            inner: clients(),
            down: Arc::default(),
            lookups: Arc::default(),
        }
    }
}

impl ClientAuthenticator for Flaky {
    async fn authenticate(
        &self,
        credentials: &ClientCredentials,
        request: &http::request::Parts,
    ) -> Result<Arc<Client>, ClientAuthError> {
        self.inner.authenticate(credentials, request).await
    }

    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, ClientAuthError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(ClientAuthError::unavailable("connection refused"));
        }
        self.inner.client(client_id).await
    }
}

type FlakySvc = Par<Echo<Full<Bytes>>, Flaky>;

fn flaky_service(layer: ParLayer<Flaky>) -> (FlakySvc, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    (layer.layer(echo(calls.clone())), calls)
}

async fn send(
    svc: &FlakySvc,
    req: Request<Full<Bytes>>,
) -> Response<tower_par::ParResponseBody<Full<Bytes>>> {
    svc.clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e: Infallible| match e {})
}

async fn json_of<B: http_body::Body<Data = Bytes>>(res: Response<B>) -> (StatusCode, Value)
where
    B::Error: std::fmt::Debug,
{
    let status = res.status();
    let body = body_string(res).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn json_get(uri: &str) -> Request<Full<Bytes>> {
    with_accept(get(uri), "application/json")
}

#[tokio::test]
async fn par31_a_registry_outage_refuses_front_channel_requests_with_503() {
    let clients = Flaky::new();
    let (svc, calls) = flaky_service(ParLayer::new(clients.clone()));
    clients.down.store(true, Ordering::SeqCst);
    // R requires PAR; whether C does cannot be known during the outage.
    for id in [R_ID, C_ID] {
        let uri = front_channel_request(id, C_REDIRECT);
        let res = send(&svc, json_get(&uri)).await;
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert!(res.headers().contains_key(header::RETRY_AFTER));
        let (status, err) = json_of(res).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
        assert_eq!(err["error"], "temporarily_unavailable", "{err}");
    }
    assert_eq!(hits(&calls), 0, "nothing reached the wrapped service");
    // Back up: R is refused for requiring PAR, C gets through.
    clients.down.store(false, Ordering::SeqCst);
    let (status, _) =
        json_of(send(&svc, json_get(&front_channel_request(R_ID, R_REDIRECT))).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let res = send(&svc, get(&front_channel_request(C_ID, C_REDIRECT))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(hits(&calls), 1);
}

#[tokio::test]
async fn par41_a_registry_outage_at_redemption_leaves_the_request_uri_redeemable() {
    let clients = Flaky::new();
    let (svc, calls) = flaky_service(ParLayer::new(clients.clone()));
    let request_uri = push_c(&svc).await;
    clients.down.store(true, Ordering::SeqCst);
    let res = send(&svc, json_get(&authorize_uri(C_ID, &request_uri))).await;
    let (status, err) = json_of(res).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["error"], "temporarily_unavailable");
    assert_eq!(hits(&calls), 0);
    // The outage did not burn it: redeemed once the registry answers.
    clients.down.store(false, Ordering::SeqCst);
    let res = send(&svc, get(&authorize_uri(C_ID, &request_uri))).await;
    let (status, seen) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["par"]["client_id"], C_ID);
}

#[tokio::test]
async fn par31_client_lookups_per_request_are_bounded() {
    let clients = Flaky::new();
    let (svc, calls) = flaky_service(ParLayer::new(clients.clone()));
    let many: String = (0..2000)
        .map(|i| format!("client_id=app{i}"))
        .collect::<Vec<_>>()
        .join("&");
    // Repeats are a malformed request, judged by lenient reading.
    let res = send(
        &svc,
        json_get(&format!("/authorize?response_type=code&{many}")),
    )
    .await;
    let (status, err) = json_of(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(clients.lookups.load(Ordering::SeqCst) <= 4);
    // The same in a form body, and in query and body together.
    let lookups = clients.lookups.load(Ordering::SeqCst);
    let res = send(
        &svc,
        with_accept(
            post_form(&format!("/authorize?{many}"), many.clone()),
            "application/json",
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(clients.lookups.load(Ordering::SeqCst) - lookups <= 4);
    // A value repeated many times is one lookup.
    let lookups = clients.lookups.load(Ordering::SeqCst);
    let same = vec!["client_id=C"; 500].join("&");
    send(&svc, json_get(&format!("/authorize?{same}"))).await;
    assert_eq!(clients.lookups.load(Ordering::SeqCst) - lookups, 1);
    assert_eq!(hits(&calls), 1, "only the repeated-C request got through");
}

#[tokio::test]
async fn no_lookup_at_all_while_no_client_can_require_par() {
    // StaticClients knows that none of its clients requires PAR.
    let (svc, calls) = service(ParLayer::new(optional_clients()));
    let res = call(&svc, get(&front_channel_request(C_ID, C_REDIRECT))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(hits(&calls), 1);
    assert!(!optional_clients().may_require_par());
    assert!(clients().may_require_par());
}

#[tokio::test]
async fn a_secure_binding_cookie_is_a_host_cookie_and_reenters() {
    let (svc, calls) = service(layer());
    let request_uri = push_c(&svc).await;
    let res = call(&svc, get(&authorize_uri(C_ID, &request_uri))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let set: Vec<&str> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set.len(), 1, "{set:?}");
    let cookie = set[0];
    assert!(cookie.starts_with("__Host-par_flow_"), "{cookie}");
    let attrs: Vec<&str> = cookie.split(';').map(str::trim).collect();
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(attrs.contains(&attr), "{attr} missing: {cookie}");
    }
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    // The browser sends it back: the same request again.
    let pair = attrs[0];
    let mut again = get(&authorize_uri(C_ID, &request_uri));
    again
        .headers_mut()
        .insert(header::COOKIE, pair.parse().unwrap());
    let seen = call_echo(&svc, again).await;
    assert_eq!(seen["par"]["client_id"], C_ID);
    assert_eq!(hits(&calls), 2);
}

/// The memory store, counting redemption attempts.
#[derive(Clone, Default)]
struct CountingStore {
    inner: tower_par::MemoryStore,
    redeems: Arc<AtomicUsize>,
}

impl tower_par::ParStore for CountingStore {
    async fn insert(
        &self,
        uri: &tower_par::RequestUri,
        request: tower_par::PushedRequest,
        ttl: std::time::Duration,
    ) -> Result<(), tower_par::StoreError> {
        self.inner.insert(uri, request, ttl).await
    }
    async fn redeem(
        &self,
        uri: &tower_par::RequestUri,
        client_id: &str,
        mode: tower_par::RedeemMode,
    ) -> Result<tower_par::RedeemOutcome, tower_par::StoreError> {
        self.redeems.fetch_add(1, Ordering::SeqCst);
        self.inner.redeem(uri, client_id, mode).await
    }
    async fn complete(
        &self,
        uri: &tower_par::RequestUri,
        binding: &[u8; 32],
    ) -> Result<tower_par::Completion, tower_par::StoreError> {
        self.inner.complete(uri, binding).await
    }
    async fn mark_once(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, tower_par::StoreError> {
        self.inner.mark_once(key, ttl).await
    }
}

fn host_cookie_name(request_uri: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"tower-par flow cookie\0");
    h.update(request_uri.as_bytes());
    format!(
        "__Host-par_flow_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h.finalize()[..9])
    )
}

#[tokio::test]
async fn par15_a_live_request_uri_of_another_client_costs_what_an_unknown_one_costs() {
    let store = CountingStore::default();
    let layer = ParLayer::new(clients()).with_store(store.clone());
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer.layer(echo::<Full<Bytes>>(calls.clone()));
    let live = push_c(&svc).await;
    let unknown = tower_par::RequestUri::generate().to_string();
    let mut costs = Vec::new();
    let mut answers = Vec::new();
    for uri in [&live, &unknown] {
        let name = host_cookie_name(uri);
        let cookie: Vec<String> = (1..=4u8)
            .map(|i| {
                use base64::Engine;
                let v = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([i; 32]);
                format!("{name}={v}")
            })
            .collect();
        let mut req = get(&authorize_uri(P_ID, uri));
        req.headers_mut()
            .insert(header::COOKIE, cookie.join("; ").parse().unwrap());
        let before = store.redeems.load(Ordering::SeqCst);
        let res = svc.clone().oneshot(req).await.unwrap();
        costs.push(store.redeems.load(Ordering::SeqCst) - before);
        answers.push((res.status(), body_string(res).await));
    }
    assert_eq!(
        costs[0], costs[1],
        "store calls: live {} vs unknown {}",
        costs[0], costs[1]
    );
    assert_eq!(answers[0], answers[1]);
    assert_eq!(hits(&calls), 0);
}

#[tokio::test]
async fn ids_no_registry_issues_are_never_looked_up() {
    let clients = Flaky::new();
    let (svc, _) = flaky_service(ParLayer::new(clients.clone()));
    let long = "x".repeat(300);
    let res = send(
        &svc,
        json_get(&format!("/authorize?response_type=code&client_id={long}")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    // A NUL or line break could end the id early for another parser.
    for id in ["R%00x", "R%0Ax"] {
        let res = send(
            &svc,
            json_get(&format!("/authorize?response_type=code&client_id={id}")),
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{id}");
    }
    assert_eq!(clients.lookups.load(Ordering::SeqCst), 0);
}
