//! The redemption lifecycle over real HTTP (PAR-28, PAR-29, PAR-40, M-3,
//! M-6, M-7): the demo's legacy server with a login step, served on
//! 127.0.0.1, driven by a hyper client with a cookie jar per "browser".

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/legacy_server.rs"]
mod legacy_server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use legacy_server::DemoOptions;
use sha2::{Digest, Sha256};

const CB: &str = "http://127.0.0.1:8080/cb";
const TIMEOUT: Duration = Duration::from_secs(10);

struct Server {
    base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn options(f: impl FnOnce(&mut DemoOptions)) -> DemoOptions {
    let mut o = DemoOptions {
        issuer: String::new(),
        clients: legacy_server::demo_clients().unwrap(),
        required: false,
        ttl: None,
        flow_window: None,
        metadata: true,
        login: true,
        strict: false,
        redis: None,
    };
    f(&mut o);
    o
}

async fn start(mut opts: DemoOptions) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    opts.issuer = format!("http://{addr}");
    let app = legacy_server::app(&opts).await.unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        base: opts.issuer,
        task,
    }
}

/// A user agent: a hyper client and its own cookie jar.
#[derive(Clone)]
struct Browser {
    http: Client<HttpConnector, Full<Bytes>>,
    jar: Arc<Mutex<HashMap<String, String>>>,
    /// Every URL this browser was sent to (requests and redirects).
    visited: Arc<Mutex<Vec<String>>>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: Client::builder(TokioExecutor::new()).build_http(),
            jar: Arc::default(),
            visited: Arc::default(),
        }
    }

    async fn send(&self, method: &str, url: &str, form: Option<String>) -> Page {
        self.visited.lock().unwrap().push(url.to_owned());
        let cookies: Vec<String> = self
            .jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut req = Request::builder().method(method).uri(url);
        if !cookies.is_empty() {
            req = req.header(header::COOKIE, cookies.join("; "));
        }
        if form.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let req = req
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .unwrap();
        let res = tokio::time::timeout(TIMEOUT, self.http.request(req))
            .await
            .unwrap()
            .unwrap();
        for c in res.headers().get_all(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (name, value) = c.split(';').next().unwrap().split_once('=').unwrap();
            let mut jar = self.jar.lock().unwrap();
            if c.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = res.status();
        let location = res
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        if let Some(l) = &location {
            self.visited.lock().unwrap().push(l.clone());
        }
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            location,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, url: &str) -> Page {
        self.send("GET", url, None).await
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    /// The binding cookies (`par_flow_<tag>`, one per flow) this browser holds.
    fn flow_cookies(&self) -> Vec<(String, String)> {
        let jar = self.jar.lock().unwrap();
        jar.iter()
            .filter(|(n, _)| n.starts_with("par_flow_"))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }
}

/// The name of the binding cookie of the flow of `request_uri`, as the
/// layer derives it: `par_flow_` and 72 bits of a SHA-256 of the URN.
fn flow_cookie_name(request_uri: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tower-par flow cookie\0");
    h.update(request_uri.as_bytes());
    format!("par_flow_{}", URL_SAFE_NO_PAD.encode(&h.finalize()[..9]))
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_owned()
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

/// Distinctive pushed values, so a leak is easy to spot.
struct Pushed {
    request_uri: String,
    authorize: String,
    state: String,
    challenge: String,
    nonce: String,
    verifier: String,
}

async fn push(server: &Server) -> Pushed {
    let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = format!("st8{}", &URL_SAFE_NO_PAD.encode(rand_bytes())[..16]);
    let nonce = format!("n0nce{}", &URL_SAFE_NO_PAD.encode(rand_bytes())[..16]);
    let body = form(&[
        ("response_type", "code"),
        ("redirect_uri", CB),
        ("scope", "profile email"),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let req = Request::post(format!("{}/par", server.base))
        .header(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("demo-client:demo-secret")),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let res = http.request(req).await.unwrap();
    assert_eq!(res.status(), 201);
    let json: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let request_uri = json["request_uri"].as_str().unwrap().to_owned();
    let authorize = format!(
        "{}/authorize?{}",
        server.base,
        form(&[("client_id", "demo-client"), ("request_uri", &request_uri)])
    );
    Pushed {
        request_uri,
        authorize,
        state,
        challenge,
        nonce,
        verifier,
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source");
    b
}

fn decoded(s: &str) -> String {
    let once = serde_urlencoded::from_str::<Vec<(String, String)>>(&format!(
        "x={}",
        s.replace('&', "%26")
    ))
    .ok()
    .and_then(|v| v.into_iter().next())
    .map_or_else(|| s.to_owned(), |(_, v)| v);
    once
}

/// Walks authorize → login → authorize, returning the callback URL.
async fn login_and_complete(server: &Server, b: &Browser, p: &Pushed) -> String {
    let first = b.get(&p.authorize).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let login_url = absolute(&server.base, first.location.as_deref().unwrap());
    assert!(login_url.contains("/login?return_to="));
    let page = b.get(&login_url).await;
    assert_eq!(page.status, 200);
    let posted = b
        .send(
            "POST",
            &login_url,
            Some(form(&[("username", "demo"), ("password", "demo")])),
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    let back = absolute(&server.base, posted.location.as_deref().unwrap());
    let done = b.get(&back).await;
    assert!(
        done.status.is_redirection(),
        "{} {}",
        done.status,
        done.body
    );
    done.location.unwrap()
}

fn assert_no_pushed_values(b: &Browser, p: &Pushed, except_last: bool) {
    let visited = b.visited.lock().unwrap().clone();
    let n = if except_last {
        visited.len() - 1
    } else {
        visited.len()
    };
    for url in &visited[..n] {
        for text in [url.clone(), decoded(url), decoded(&decoded(url))] {
            for secret in [p.state.as_str(), &p.challenge, &p.nonce, "email", "scope"] {
                assert!(!text.contains(secret), "{secret} leaked in {url}");
            }
        }
    }
}

#[tokio::test]
async fn m3_login_bounce_carries_only_the_compact_request_and_the_flow_completes() {
    let server = start(options(|_| {})).await;
    let p = push(&server).await;
    let b = Browser::new();
    let callback = login_and_complete(&server, &b, &p).await;
    assert!(callback.starts_with(&format!("{CB}?code=")), "{callback}");
    assert!(callback.ends_with(&format!("&state={}", p.state)));
    assert_no_pushed_values(&b, &p, true);
    // The bounce went through the compact form.
    assert!(b
        .visited
        .lock()
        .unwrap()
        .iter()
        .any(|u| decoded(u).contains(&p.request_uri)));
    // The binding cookie is gone with the flow it bound.
    assert!(b.flow_cookies().is_empty(), "{:?}", b.flow_cookies());

    // The code works at the token endpoint (PKCE S256 verified there).
    let code = callback
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let token_req = Request::post(format!("{}/token", server.base))
        .header(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("demo-client:demo-secret")),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", &p.verifier),
        ]))))
        .unwrap();
    let token = b.http.request(token_req).await.unwrap();
    assert_eq!(token.status(), 200);
    let json: serde_json::Value =
        serde_json::from_slice(&token.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        json["scope"], "profile email",
        "the pushed scope reached the legacy server"
    );

    // PAR-28 / FAPI note 3: reuse after completion fails.
    let reuse = b.get(&p.authorize).await;
    assert_eq!(reuse.status, StatusCode::BAD_REQUEST);
    assert!(reuse.body.contains("invalid_request_uri"));
    assert!(reuse.location.is_none());
}

#[tokio::test]
async fn m3_front_channel_extras_never_reach_the_login_bounce() {
    let server = start(options(|_| {})).await;
    let p = push(&server).await;
    let b = Browser::new();
    let with_extras = format!(
        "{}&scope=evil&redirect_uri=https%3A%2F%2Fevil.example&state=other",
        p.authorize
    );
    let first = b.get(&with_extras).await;
    let location = first.location.unwrap();
    let return_to = decoded(location.split_once("return_to=").unwrap().1);
    assert!(return_to.contains("request_uri="), "{return_to}");
    for extra in ["evil", "other", "scope", "state="] {
        assert!(!return_to.contains(extra), "{extra} in {return_to}");
    }
    let callback = login_and_complete(&server, &b, &p).await;
    assert!(callback.ends_with(&format!("&state={}", p.state)));
}

#[tokio::test]
async fn cookie_attributes_in_development_mode() {
    let server = start(options(|_| {})).await;
    let p = push(&server).await;
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let res = http
        .request(Request::get(&p.authorize).body(Full::default()).unwrap())
        .await
        .unwrap();
    let cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    let name = flow_cookie_name(&p.request_uri);
    assert!(cookie.starts_with(&format!("{name}=")), "{cookie}");
    for attr in ["Path=/authorize", "HttpOnly", "SameSite=Lax", "Max-Age=600"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    // Plain-http issuer: development mode, no `Secure`.
    assert!(!cookie.contains("Secure"));
    // The cookie carries no parameter.
    assert!(!cookie.contains(&p.state) && !cookie.contains(&p.challenge));
}

#[tokio::test]
async fn par28_reload_and_back_during_login_reenter_the_same_request() {
    let server = start(options(|_| {})).await;
    let p = push(&server).await;
    let b = Browser::new();
    for _ in 0..3 {
        let again = b.get(&p.authorize).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER);
        assert!(again.location.unwrap().starts_with("/login?return_to="));
    }
    let callback = login_and_complete(&server, &b, &p).await;
    assert!(callback.contains(&format!("state={}", p.state)));
}

#[tokio::test]
async fn par40_another_browser_cannot_use_a_request_in_flow_and_the_owner_still_can() {
    let server = start(options(|_| {})).await;
    let p = push(&server).await;
    let owner = Browser::new();
    assert_eq!(owner.get(&p.authorize).await.status, StatusCode::SEE_OTHER);
    let thief = Browser::new();
    let stolen = thief.get(&p.authorize).await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST);
    assert!(stolen.body.contains("invalid_request_uri"));
    // A forged binding cookie does not help either.
    thief.jar.lock().unwrap().insert(
        flow_cookie_name(&p.request_uri),
        URL_SAFE_NO_PAD.encode([7u8; 32]),
    );
    assert_eq!(
        thief.get(&p.authorize).await.status,
        StatusCode::BAD_REQUEST
    );
    let callback = login_and_complete(&server, &owner, &p).await;
    assert!(callback.starts_with(CB));
}

#[tokio::test]
async fn a_planted_flow_cookie_cannot_claim_the_victims_flow() {
    let server = start(options(|_| {})).await;
    let p = push(&server).await;
    let planted = URL_SAFE_NO_PAD.encode([42u8; 32]);
    let name = flow_cookie_name(&p.request_uri);
    let victim = Browser::new();
    victim
        .jar
        .lock()
        .unwrap()
        .insert(name.clone(), planted.clone());
    assert_eq!(victim.get(&p.authorize).await.status, StatusCode::SEE_OTHER);
    // The layer set a fresh secret in place of the planted one.
    let cookie = victim.cookie(&name).unwrap();
    assert!(!cookie.contains(&planted), "{cookie}");
    // The attacker, holding only the planted secret, cannot re-enter.
    let attacker = Browser::new();
    attacker.jar.lock().unwrap().insert(name, planted);
    assert_eq!(
        attacker.get(&p.authorize).await.status,
        StatusCode::BAD_REQUEST
    );
    let callback = login_and_complete(&server, &victim, &p).await;
    assert!(callback.starts_with(CB));
}

/// Cookies a sibling subdomain or a plain-HTTP page could plant: values
/// under the configured name, and values that look like issued secrets.
fn planted_cookie_header(real: Option<(&str, &str)>) -> String {
    let mut pairs: Vec<String> = (0..8u8)
        .map(|i| format!("par_flow={}", URL_SAFE_NO_PAD.encode([i; 32])))
        .collect();
    pairs.push(format!(
        "par_flow={}",
        (10..14u8)
            .map(|i| URL_SAFE_NO_PAD.encode([i; 32]))
            .collect::<Vec<_>>()
            .join(".")
    ));
    pairs.push(format!(
        "par_flow_AAAAAAAAAAAA={}",
        URL_SAFE_NO_PAD.encode([20u8; 32])
    ));
    if let Some((n, v)) = real {
        pairs.push(format!("{n}={v}"));
    }
    pairs.join("; ")
}

#[tokio::test]
async fn planted_flow_cookies_never_cost_the_real_flow_its_reentry_nor_are_echoed() {
    let server = start(options(|_| {})).await;
    let p = push(&server).await;
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let get = |cookie: String| {
        Request::get(&p.authorize)
            .header(header::COOKIE, cookie)
            .body(Full::default())
            .unwrap()
    };
    // First redemption with the junk already in the browser.
    let res = http
        .request(get(planted_cookie_header(None)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set: Vec<String> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(set.len(), 1, "{set:?}");
    let (name, value) = set[0].split(';').next().unwrap().split_once('=').unwrap();
    assert_eq!(name, flow_cookie_name(&p.request_uri));
    // Nothing the layer did not issue is sent back.
    for i in (0..8u8).chain(10..14).chain([20]) {
        assert!(
            !set[0].contains(&URL_SAFE_NO_PAD.encode([i; 32])),
            "{set:?}"
        );
    }
    // Re-entry works with the junk still there, before and after the real
    // cookie in the header.
    for cookie in [
        planted_cookie_header(Some((name, value))),
        format!("{name}={value}; {}", planted_cookie_header(None)),
    ] {
        let again = http.request(get(cookie)).await.unwrap();
        assert_eq!(again.status(), StatusCode::SEE_OTHER);
        assert!(again.headers().get(header::SET_COOKIE).is_none());
        let location = again.headers()[header::LOCATION].to_str().unwrap();
        assert!(location.starts_with("/login?return_to="), "{location}");
    }
}

#[tokio::test]
async fn one_browser_can_have_several_flows_open() {
    let server = start(options(|_| {})).await;
    let (first, second) = (push(&server).await, push(&server).await);
    let b = Browser::new();
    assert_eq!(b.get(&first.authorize).await.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get(&second.authorize).await.status, StatusCode::SEE_OTHER);
    // Both re-enter with the one cookie, in either order.
    let one = login_and_complete(&server, &b, &first).await;
    assert!(one.contains(&format!("state={}", first.state)));
    let two = b.get(&second.authorize).await;
    assert!(two
        .location
        .unwrap()
        .contains(&format!("state={}", second.state)));
}

#[tokio::test]
async fn strict_policy_consumes_at_first_redemption() {
    let server = start(options(|o| o.strict = true)).await;
    let p = push(&server).await;
    let b = Browser::new();
    let first = b.get(&p.authorize).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    assert!(b.flow_cookies().is_empty(), "strict mode sets no cookie");
    let second = b.get(&p.authorize).await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn m6_expires_in_bounds_the_first_redemption_only() {
    let server = start(options(|o| o.ttl = Some(1))).await;
    // Started in time: the login may take longer than expires_in.
    let p = push(&server).await;
    let b = Browser::new();
    let first = b.get(&p.authorize).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let callback = login_and_complete(&server, &b, &p).await;
    assert!(callback.starts_with(CB));

    // PAR-29: never redeemed within expires_in → rejected.
    let late = push(&server).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        Browser::new().get(&late.authorize).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn the_end_of_the_flow_window_consumes_the_request() {
    let server = start(options(|o| o.flow_window = Some(1))).await;
    let p = push(&server).await;
    let b = Browser::new();
    assert_eq!(b.get(&p.authorize).await.status, StatusCode::SEE_OTHER);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(b.get(&p.authorize).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tabs_completing_at_once_complete_exactly_once() {
    let server = start(options(|_| {})).await;
    let p = push(&server).await;
    let b = Browser::new();
    // Log in in one tab; the other tabs share the cookies.
    let first = b.get(&p.authorize).await;
    let login_url = absolute(&server.base, first.location.as_deref().unwrap());
    b.send(
        "POST",
        &login_url,
        Some(form(&[("username", "demo"), ("password", "demo")])),
    )
    .await;
    let tabs = (0..20).map(|_| {
        let b = b.clone();
        let url = p.authorize.clone();
        tokio::spawn(async move { b.get(&url).await })
    });
    let pages: Vec<Page> = futures::future::join_all(tabs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let codes = pages
        .iter()
        .filter(|pg| pg.location.as_deref().is_some_and(|l| l.starts_with(CB)))
        .count();
    assert_eq!(
        codes, 1,
        "exactly one authorization response reaches the client"
    );
    assert!(pages
        .iter()
        .filter(|pg| pg.location.is_none())
        .all(|pg| pg.status == StatusCode::BAD_REQUEST));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_redemptions_from_two_browsers_one_wins() {
    let server = start(options(|_| {})).await;
    let p = push(&server).await;
    let attempts = (0..2 * 16).map(|_| {
        let url = p.authorize.clone();
        tokio::spawn(async move {
            let b = Browser::new();
            let page = b.get(&url).await;
            (page.status, b)
        })
    });
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::SEE_OTHER)
        .collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(
        results
            .iter()
            .filter(|(s, _)| *s == StatusCode::BAD_REQUEST)
            .count(),
        results.len() - 1
    );
    // The winner's browser finishes its flow.
    let winner = &winners[0].1;
    let callback = login_and_complete(&server, winner, &p).await;
    assert!(callback.starts_with(CB));
}

#[tokio::test]
async fn m7_request_uri_is_checked_before_the_login_step() {
    let server = start(options(|_| {})).await;
    let b = Browser::new();
    let bogus = format!(
        "{}/authorize?client_id=demo-client&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Anope",
        server.base
    );
    let page = b.get(&bogus).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.location.is_none(),
        "no bounce to /login for a bad request_uri"
    );
}

// ---- the layer over hand-written inner services -------------------------

mod inner {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::{header, Request, Response, StatusCode};
    use http_body_util::Full;
    use tower::{Layer, Service, ServiceExt};
    use tower_par::{
        AuthMethod, Client, ParLayer, ParRequestBody, PushedAuthorization, StaticClients,
    };

    const CB: &str = "https://c.example/cb";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn layer() -> ParLayer {
        let clients = StaticClients::new()
            .with_client(Client::new("app", AuthMethod::None).redirect_uri(CB), None)
            .unwrap();
        ParLayer::new(clients)
    }

    type Inner = fn(Request<ParRequestBody<Full<Bytes>>>) -> Response<Full<Bytes>>;

    async fn push<S>(svc: &mut S, extra: &str) -> String
    where
        S: Service<
            Request<Full<Bytes>>,
            Response = Response<tower_par::ParResponseBody<Full<Bytes>>>,
            Error = Infallible,
        >,
    {
        let body = format!("client_id=app&response_type=code&state=S7ATE&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}");
        let req = Request::post("/par")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), 201);
        let b = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        v["request_uri"].as_str().unwrap().to_owned()
    }

    fn service(
        inner: Inner,
    ) -> impl Service<
        Request<Full<Bytes>>,
        Response = Response<tower_par::ParResponseBody<Full<Bytes>>>,
        Error = Infallible,
    > + Clone {
        layer().layer(tower::service_fn(move |req| async move {
            Ok::<_, Infallible>(inner(req))
        }))
    }

    fn authorize(uri: &str, cookie: Option<&str>) -> Request<Full<Bytes>> {
        let q = serde_urlencoded::to_string([("client_id", "app"), ("request_uri", uri)]).unwrap();
        let mut b = Request::get(format!("/authorize?{q}"));
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        b.body(Full::default()).unwrap()
    }

    fn cookie_of<B>(res: &Response<B>) -> String {
        res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn m3_refresh_header_and_double_encoded_location_are_compacted() {
        fn bounce(req: Request<ParRequestBody<Full<Bytes>>>) -> Response<Full<Bytes>> {
            let full = format!("https://as.example{}", req.uri());
            let once = serde_urlencoded::to_string([("next", &full)]).unwrap();
            let twice = serde_urlencoded::to_string([("return", &once)]).unwrap();
            Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, format!("https://idp.example/sso?{twice}"))
                .header("refresh", format!("0; url=/login?{once}"))
                .body(Full::default())
                .unwrap()
        }
        let mut svc = service(bounce);
        let uri = push(&mut svc, "&nonce=N0NCE").await;
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(authorize(&uri, None))
            .await
            .unwrap();
        for name in [header::LOCATION.as_str(), "refresh"] {
            let v = res.headers()[name].to_str().unwrap();
            for leaked in ["S7ATE", CHALLENGE, "N0NCE", "response_type"] {
                assert!(!v.contains(leaked), "{name}: {v}");
            }
            assert!(v.contains("request_uri"), "{name}: {v}");
        }
    }

    #[tokio::test]
    async fn form_post_page_completes_the_flow() {
        fn form_post(_: Request<ParRequestBody<Full<Bytes>>>) -> Response<Full<Bytes>> {
            let page = format!(
                "<html><body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{CB}\">\
                 <input type=\"hidden\" name=\"code\" value=\"c0de\"><input type=\"hidden\" name=\"state\" value=\"S7ATE\"></form></body></html>"
            );
            Response::builder()
                .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                .body(Full::new(Bytes::from(page)))
                .unwrap()
        }
        let mut svc = service(form_post);
        let uri = push(&mut svc, "&response_mode=form_post").await;
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(authorize(&uri, None))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let cookie = cookie_of(&res);
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains("c0de"),
            "page delivered intact"
        );
        // Completed: the same browser cannot come back.
        let again = svc
            .ready()
            .await
            .unwrap()
            .call(authorize(&uri, Some(&cookie)))
            .await
            .unwrap();
        assert_eq!(again.status(), 400);
    }

    #[tokio::test]
    async fn a_page_that_is_not_the_response_keeps_the_flow_open() {
        fn consent(_: Request<ParRequestBody<Full<Bytes>>>) -> Response<Full<Bytes>> {
            Response::builder()
                .header(header::CONTENT_TYPE, "text/html")
                .body(Full::new(Bytes::from_static(
                    b"<form method=post action=/consent><button>Allow</button></form>",
                )))
                .unwrap()
        }
        let mut svc = service(consent);
        let uri = push(&mut svc, "&response_mode=form_post").await;
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(authorize(&uri, None))
            .await
            .unwrap();
        let cookie = cookie_of(&res);
        let again = svc
            .ready()
            .await
            .unwrap()
            .call(authorize(&uri, Some(&cookie)))
            .await
            .unwrap();
        assert_eq!(again.status(), 200);
    }

    #[tokio::test]
    async fn extension_offers_the_compact_url_and_flags_reentry() {
        fn echo(req: Request<ParRequestBody<Full<Bytes>>>) -> Response<Full<Bytes>> {
            let par = req.extensions().get::<PushedAuthorization>().unwrap();
            let text = format!("{}|{}", par.compact_authorize_url(), par.is_reentry());
            Response::new(Full::new(Bytes::from(text)))
        }
        let mut svc = service(echo);
        let uri = push(&mut svc, "").await;
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(authorize(&uri, None))
            .await
            .unwrap();
        let cookie = cookie_of(&res);
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        let expected = format!(
            "/authorize?{}",
            serde_urlencoded::to_string([("client_id", "app"), ("request_uri", uri.as_str())])
                .unwrap()
        );
        assert_eq!(String::from_utf8_lossy(&body), format!("{expected}|false"));
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(authorize(&uri, Some(&cookie)))
            .await
            .unwrap();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(String::from_utf8_lossy(&body).ends_with("|true"));
    }
}
