//! Completion of a flow on a later step (PAR-28, FAPI 2.0 note 3), over
//! real HTTP: the wrapped service behaves like oidc-provider or Keycloak,
//! answering the redeemed authorization request with a bounce to its own
//! interaction path, and sending the authorization response from there.
//! The layer must end the flow on that response, so that the same browser
//! re-entering the `request_uri` with the same cookies gets no second code.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::service_fn;
use tower::util::BoxCloneService;
use tower_par::{
    Completion, MemoryStore, ParLayer, ParRequestBody, ParStore, PushedAuthorization,
    PushedRequest, RedeemMode, RedeemOutcome, RequestUri, Setting, StaticClients, StoreError,
};

use support::{c_basic, clients, form_encode, CHALLENGE, C_ID, C_REDIRECT, NOT_FOUND};

const TIMEOUT: Duration = Duration::from_secs(10);

type UpstreamRequest = Request<ParRequestBody<Incoming>>;
type Upstream = BoxCloneService<UpstreamRequest, Response<Full<Bytes>>, Infallible>;

/// One interaction of the upstream: what it needs to answer the client.
#[derive(Clone)]
struct Interaction {
    redirect_uri: String,
    state: String,
    form_post: bool,
}

/// What the upstream did, for the assertions.
#[derive(Default)]
struct Counters {
    /// Redeemed authorization requests that reached it.
    authorize: AtomicUsize,
    /// Authorization codes it issued.
    codes: AtomicUsize,
}

/// An authorization server that knows nothing of PAR, shaped like
/// oidc-provider: the authorization endpoint starts an interaction and
/// bounces the browser to `{interaction}/<id>`; from there
///
/// - `{interaction}/<id>` (the resume step) sends the authorization
///   response: a 303 to the `redirect_uri` with a code, or for
///   `response_mode=form_post` the auto-submitting form page;
/// - `{interaction}/<id>/login` shows a login page (HTML 200);
/// - `{interaction}/<id>/federate` redirects to an upstream identity
///   provider.
fn upstream(authorize_path: &'static str, interaction: &'static str) -> (Upstream, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let interactions: Arc<Mutex<HashMap<String, Interaction>>> = Arc::default();
    let c = counters.clone();
    let svc = service_fn(move |req: UpstreamRequest| {
        let (counters, interactions) = (c.clone(), interactions.clone());
        async move {
            let path = req.uri().path().to_owned();
            let res = Response::builder();
            let res = if path == authorize_path {
                let Some(par) = req.extensions().get::<PushedAuthorization>().cloned() else {
                    return Ok(res
                        .status(StatusCode::BAD_REQUEST)
                        .body(Full::from("upstream: not a pushed request"))
                        .unwrap());
                };
                let params: Vec<(String, String)> =
                    serde_urlencoded::from_str(req.uri().query().unwrap_or_default()).unwrap();
                let param = |n: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                counters.authorize.fetch_add(1, Ordering::SeqCst);
                // One interaction per request_uri, as a session cookie would.
                let id = format!("i{}", &par.request_uri().fingerprint()[..6]);
                interactions.lock().unwrap().insert(
                    id.clone(),
                    Interaction {
                        redirect_uri: param("redirect_uri"),
                        state: param("state"),
                        form_post: param("response_mode") == "form_post",
                    },
                );
                res.status(StatusCode::SEE_OTHER)
                    .header(header::LOCATION, format!("{interaction}/{id}"))
                    .body(Full::default())
            } else if let Some(rest) = path.strip_prefix(&format!("{interaction}/")) {
                let (id, step) = rest.split_once('/').unwrap_or((rest, ""));
                let Some(i) = interactions.lock().unwrap().get(id).cloned() else {
                    return Ok(res
                        .status(StatusCode::NOT_FOUND)
                        .body(Full::from("upstream: no such interaction"))
                        .unwrap());
                };
                match step {
                    "login" => res
                        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                        .body(Full::from(
                            "<form method=post><input name=\"login\"></form>",
                        )),
                    "federate" => res
                        .status(StatusCode::FOUND)
                        .header(
                            header::LOCATION,
                            "https://idp.example/authorize?client_id=as&state=x",
                        )
                        .body(Full::default()),
                    _ => {
                        let code =
                            format!("code-{}", counters.codes.fetch_add(1, Ordering::SeqCst) + 1);
                        if i.form_post {
                            res.header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                                .body(Full::from(format!(
                                    "<html><body onload=\"document.forms[0].submit()\">\
                                     <form method=\"post\" action=\"{}\">\
                                     <input type=\"hidden\" name=\"code\" value=\"{code}\">\
                                     <input type=\"hidden\" name=\"state\" value=\"{}\">\
                                     </form></body></html>",
                                    i.redirect_uri, i.state
                                )))
                        } else {
                            let query = serde_urlencoded::to_string([
                                ("code", code.as_str()),
                                ("state", i.state.as_str()),
                            ])
                            .unwrap();
                            res.status(StatusCode::SEE_OTHER)
                                .header(header::LOCATION, format!("{}?{query}", i.redirect_uri))
                                .body(Full::default())
                        }
                    }
                }
            } else {
                res.status(StatusCode::NOT_FOUND).body(Full::default())
            };
            Ok::<_, Infallible>(res.unwrap())
        }
    });
    (BoxCloneService::new(svc), counters)
}

struct Server {
    base: String,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `layer` over [`upstream`] on `127.0.0.1:0`.
async fn serve<St: ParStore>(
    layer: ParLayer<StaticClients, St>,
    authorize_path: &'static str,
    interaction: &'static str,
) -> Server {
    let (inner, counters) = upstream(authorize_path, interaction);
    listen(tower::Layer::layer(&layer, inner), counters).await
}

/// Serves `svc` on `127.0.0.1:0`.
async fn listen<S, B>(svc: S, counters: Arc<Counters>) -> Server
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Server {
        base: format!("http://{addr}"),
        counters,
        task,
    }
}

/// A cookie as the browser keeps it.
#[derive(Clone, Debug)]
struct Cookie {
    value: String,
    path: String,
}

/// A user agent with a cookie jar that honours `Path` (RFC 6265 §5.1.4).
#[derive(Clone)]
struct Browser {
    http: Client<HttpConnector, Full<Bytes>>,
    jar: Arc<Mutex<HashMap<String, Cookie>>>,
    /// `name=value` pairs sent before the jar's on every path, as cookies
    /// planted with a longer `Path` (or for a parent domain) are.
    planted: Arc<Mutex<Vec<String>>>,
    /// The `Accept-Encoding` sent on every request, if any.
    accept_encoding: Option<&'static str>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || request_path[cookie_path.len()..].starts_with('/')))
}

impl Browser {
    fn new() -> Self {
        Self {
            http: Client::builder(TokioExecutor::new()).build_http(),
            jar: Arc::default(),
            planted: Arc::default(),
            accept_encoding: None,
        }
    }

    /// A browser that sends `Accept-Encoding: value` on every request.
    fn accepting(value: &'static str) -> Self {
        Self {
            accept_encoding: Some(value),
            ..Self::new()
        }
    }

    /// The `Cookie` header this browser sends on `path`.
    fn cookie_header(&self, path: &str) -> Option<String> {
        let jar = self.jar.lock().unwrap();
        let mut pairs = self.planted.lock().unwrap().clone();
        pairs.extend(
            jar.iter()
                .filter(|(_, c)| path_matches(path, &c.path))
                .map(|(n, c)| format!("{n}={}", c.value)),
        );
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    async fn send(&self, method: Method, base: &str, target: &str, form: Option<String>) -> Page {
        let path = target.split('?').next().unwrap();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{base}{target}"))
            .header(header::ACCEPT, "text/html");
        if let Some(c) = self.cookie_header(path) {
            req = req.header(header::COOKIE, c);
        }
        if let Some(coding) = self.accept_encoding {
            req = req.header(header::ACCEPT_ENCODING, coding);
        }
        if let Some(auth) = form.as_ref().and(Some(c_basic())) {
            req = req
                .header(header::AUTHORIZATION, auth)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let req = req
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .unwrap();
        let res = tokio::time::timeout(TIMEOUT, self.http.request(req))
            .await
            .expect("in time")
            .expect("HTTP exchange");
        let set_cookies: Vec<String> = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let (name, value) = c.split(';').next().unwrap().split_once('=').unwrap();
            let path = c
                .split(';')
                .find_map(|a| a.trim().strip_prefix("Path="))
                .unwrap_or("/")
                .to_owned();
            let mut jar = self.jar.lock().unwrap();
            if c.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(
                    name.to_owned(),
                    Cookie {
                        value: value.to_owned(),
                        path,
                    },
                );
            }
        }
        let status = res.status();
        let location = res
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            location,
            set_cookies,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, base: &str, target: &str) -> Page {
        self.send(Method::GET, base, target, None).await
    }

    fn snapshot(&self) -> HashMap<String, Cookie> {
        self.jar.lock().unwrap().clone()
    }

    fn restore(&self, cookies: HashMap<String, Cookie>) {
        *self.jar.lock().unwrap() = cookies;
    }

    fn flow_cookies(&self) -> Vec<(String, Cookie)> {
        self.snapshot()
            .into_iter()
            .filter(|(n, _)| n.contains("par_flow_"))
            .collect()
    }
}

/// Client C's pushed request; `extra` is appended to the form.
fn pushed_form(state: &str, extra: &str) -> String {
    format!(
        "response_type=code&client_id=C&redirect_uri={}&scope=openid&state={state}\
         &code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        form_encode(C_REDIRECT)
    )
}

/// Pushes as client C and returns the compact authorization URL.
async fn push(server: &Server, par_path: &str, authorize_path: &str, form: String) -> String {
    let pusher = Browser::new();
    let page = pusher
        .send(Method::POST, &server.base, par_path, Some(form))
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    let created: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    let request_uri = created["request_uri"].as_str().unwrap();
    format!(
        "{authorize_path}?client_id={C_ID}&request_uri={}",
        form_encode(request_uri)
    )
}

fn dev_layer() -> ParLayer {
    ParLayer::new(clients()).flow_cookie_secure(false)
}

fn assert_refused(page: &Page) {
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("invalid_request_uri"), "{}", page.body);
    assert!(page.location.is_none());
}

/// PAR-28: the oidc-provider shape. The browser is bounced from
/// `/authorize` to `/authorize/resume/<id>`, which answers with the code.
/// Before that answer the flow is reload-safe; after it, re-entry with the
/// same cookies is refused and the upstream is not called again.
#[tokio::test]
async fn par28_a_code_from_a_later_path_ends_the_flow_and_reentry_gets_400() {
    for secure in [false, true] {
        let layer = ParLayer::new(clients()).flow_cookie_secure(secure);
        let server = serve(layer, "/authorize", "/authorize/resume").await;
        let authorize = push(&server, "/par", "/authorize", pushed_form("s1", "")).await;
        let b = Browser::new();

        let first = b.get(&server.base, &authorize).await;
        assert_eq!(first.status, StatusCode::SEE_OTHER);
        let resume = first.location.unwrap();
        assert!(resume.starts_with("/authorize/resume/"), "{resume}");
        let cookies = b.flow_cookies();
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        let (name, cookie) = &cookies[0];
        let expected_path = if secure { "/" } else { "/authorize" };
        assert_eq!(cookie.path, expected_path);
        assert_eq!(name.starts_with("__Host-"), secure, "{name}");

        // Reload before the code: re-entry works.
        let reload = b.get(&server.base, &authorize).await;
        assert_eq!(reload.status, StatusCode::SEE_OTHER);
        assert_eq!(reload.location.as_deref(), Some(resume.as_str()));
        assert_eq!(server.counters.authorize.load(Ordering::SeqCst), 2);

        let same_cookies = b.snapshot();
        let code = b.get(&server.base, &resume).await;
        assert_eq!(code.status, StatusCode::SEE_OTHER, "{}", code.body);
        let callback = code.location.unwrap();
        assert!(
            callback.starts_with(&format!("{C_REDIRECT}?code=code-1")),
            "{callback}"
        );
        // The completion removes the cookie, on the path it was set for.
        assert!(
            code.set_cookies
                .iter()
                .any(|c| c.starts_with(&format!("{name}=;"))
                    && c.contains("Max-Age=0")
                    && c.contains(&format!("Path={expected_path}"))),
            "{:?}",
            code.set_cookies
        );
        assert!(b.flow_cookies().is_empty());

        // The same browser, with the same cookies as before the code.
        b.restore(same_cookies);
        let again = b.get(&server.base, &authorize).await;
        assert_refused(&again);
        assert!(again.body.contains(NOT_FOUND), "{}", again.body);
        assert_eq!(server.counters.authorize.load(Ordering::SeqCst), 2);
        assert_eq!(server.counters.codes.load(Ordering::SeqCst), 1);
    }
}

/// Keycloak's shape: the authorization response comes from
/// `login-actions`, outside the authorization endpoint. With the path
/// configured, the cookie's `Path` covers both and the code ends the flow.
#[tokio::test]
async fn a_flow_path_outside_the_authorize_path_completes_and_the_cookie_path_covers_it() {
    let cases: [(&str, &str, &str, &str); 2] = [
        ("/par", "/authorize", "/login-actions", "/"),
        (
            "/realms/demo/protocol/openid-connect/ext/par/request",
            "/realms/demo/protocol/openid-connect/auth",
            "/realms/demo/login-actions",
            "/realms/demo",
        ),
    ];
    for (par, authorize_path, interaction, cookie_path) in cases {
        let layer = dev_layer()
            .par_path(par)
            .unwrap()
            .authorize_path(authorize_path)
            .unwrap()
            .flow_paths([interaction])
            .unwrap();
        let server = serve(layer, authorize_path, interaction).await;
        let authorize = push(&server, par, authorize_path, pushed_form("s1", "")).await;
        let b = Browser::new();
        let first = b.get(&server.base, &authorize).await;
        assert_eq!(first.status, StatusCode::SEE_OTHER);
        let resume = first.location.unwrap();
        assert!(resume.starts_with(interaction), "{resume}");
        let cookies = b.flow_cookies();
        assert_eq!(cookies.len(), 1);
        assert_eq!(cookies[0].1.path, cookie_path);
        // The browser presents it on the later step.
        assert!(b.cookie_header(&resume).is_some());

        let same_cookies = b.snapshot();
        let code = b.get(&server.base, &resume).await;
        assert!(code.location.unwrap().starts_with(C_REDIRECT));
        b.restore(same_cookies);
        assert_refused(&b.get(&server.base, &authorize).await);
        assert_eq!(server.counters.authorize.load(Ordering::SeqCst), 1);
    }
}

/// Without `flow_paths`, a later step outside the authorization endpoint
/// is not watched (and the cookie is not even sent there): the default
/// covers the authorization endpoint and the paths below it only.
#[tokio::test]
async fn by_default_only_the_authorize_path_and_below_are_watched() {
    let server = serve(dev_layer(), "/authorize", "/login-actions").await;
    let authorize = push(&server, "/par", "/authorize", pushed_form("s1", "")).await;
    let b = Browser::new();
    let first = b.get(&server.base, &authorize).await;
    let resume = first.location.unwrap();
    assert!(b.cookie_header(&resume).is_none());
    assert!(b
        .get(&server.base, &resume)
        .await
        .location
        .unwrap()
        .starts_with(C_REDIRECT));
    // Still in flow: the layer never saw the response.
    assert_eq!(
        b.get(&server.base, &authorize).await.status,
        StatusCode::SEE_OTHER
    );
}

/// A response on a flow path that sends the browser somewhere else (an
/// upstream identity provider, a login page) does not end the flow.
#[tokio::test]
async fn a_later_step_that_redirects_elsewhere_or_shows_a_page_does_not_complete() {
    let server = serve(dev_layer(), "/authorize", "/authorize/resume").await;
    let authorize = push(&server, "/par", "/authorize", pushed_form("s1", "")).await;
    let b = Browser::new();
    let resume = b.get(&server.base, &authorize).await.location.unwrap();

    let federate = b.get(&server.base, &format!("{resume}/federate")).await;
    assert_eq!(federate.status, StatusCode::FOUND);
    assert!(federate
        .location
        .unwrap()
        .starts_with("https://idp.example/"));
    assert!(
        federate.set_cookies.is_empty(),
        "{:?}",
        federate.set_cookies
    );
    let login = b.get(&server.base, &format!("{resume}/login")).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.set_cookies.is_empty());

    // Still in flow: re-entry works, then the code ends it.
    assert_eq!(
        b.get(&server.base, &authorize).await.status,
        StatusCode::SEE_OTHER
    );
    let same_cookies = b.snapshot();
    assert!(b
        .get(&server.base, &resume)
        .await
        .location
        .unwrap()
        .starts_with(C_REDIRECT));
    b.restore(same_cookies);
    assert_refused(&b.get(&server.base, &authorize).await);
}

/// A browser without the flow's cookie on the later step (another browser,
/// or one with a forged or altered value) completes nobody's flow: the
/// owner can still re-enter, and then complete it.
#[tokio::test]
async fn a_browser_without_the_cookie_completes_nobodys_flow() {
    let server = serve(dev_layer(), "/authorize", "/authorize/resume").await;
    let authorize = push(&server, "/par", "/authorize", pushed_form("s1", "")).await;
    let owner = Browser::new();
    let resume = owner.get(&server.base, &authorize).await.location.unwrap();
    let (name, real) = owner.flow_cookies().remove(0);

    let (secret, rest) = real.value.split_once('.').unwrap();
    let flipped = if secret.starts_with('A') { "B" } else { "A" };
    let forged = [
        // No cookie at all.
        None,
        // A bare secret, as older cookies were.
        Some(secret.to_owned()),
        // Another secret for the same flow and client.
        Some(format!("{flipped}{}.{rest}", &secret[1..])),
        // The right secret, another client.
        Some(format!(
            "{secret}.{}.T1RIRVI",
            rest.split('.').next().unwrap()
        )),
        // Junk.
        Some("x.y.z".to_owned()),
    ];
    for value in forged {
        let other = Browser::new();
        if let Some(value) = value {
            other.jar.lock().unwrap().insert(
                name.clone(),
                Cookie {
                    value,
                    path: real.path.clone(),
                },
            );
        }
        // The upstream answers it (its own session), the layer ends nothing.
        let page = other.get(&server.base, &resume).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(page.set_cookies.is_empty(), "{:?}", page.set_cookies);
        // The same forged cookies re-enter nothing either.
        assert_refused(&other.get(&server.base, &authorize).await);
    }
    // The owner's flow is still open.
    let again = owner.get(&server.base, &authorize).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let same_cookies = owner.snapshot();
    assert!(owner
        .get(&server.base, &resume)
        .await
        .location
        .unwrap()
        .starts_with(C_REDIRECT));
    owner.restore(same_cookies);
    assert_refused(&owner.get(&server.base, &authorize).await);
}

/// `response_mode=form_post`: the auto-submitting page from the later
/// path ends the flow; the login page before it (HTML 200 too) does not.
#[tokio::test]
async fn form_post_completion_on_a_later_path() {
    let server = serve(dev_layer(), "/authorize", "/authorize/resume").await;
    let form = pushed_form("s1", "&response_mode=form_post");
    let authorize = push(&server, "/par", "/authorize", form).await;
    let b = Browser::new();
    let resume = b.get(&server.base, &authorize).await.location.unwrap();

    let login = b.get(&server.base, &format!("{resume}/login")).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.set_cookies.is_empty());
    assert_eq!(
        b.get(&server.base, &authorize).await.status,
        StatusCode::SEE_OTHER
    );

    let same_cookies = b.snapshot();
    let page = b.get(&server.base, &resume).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("name=\"code\" value=\"code-1\""),
        "{}",
        page.body
    );
    assert!(page.set_cookies.iter().any(|c| c.contains("Max-Age=0")));
    b.restore(same_cookies);
    assert_refused(&b.get(&server.base, &authorize).await);
    assert_eq!(server.counters.codes.load(Ordering::SeqCst), 1);
}

/// Two flows of one client in one browser: the code of one (told apart by
/// its `state`) ends that one only; the other stays reload-safe.
#[tokio::test]
async fn the_state_tells_two_flows_of_one_client_apart() {
    let server = serve(dev_layer(), "/authorize", "/authorize/resume").await;
    let one = push(&server, "/par", "/authorize", pushed_form("one", "")).await;
    let two = push(&server, "/par", "/authorize", pushed_form("two", "")).await;
    let b = Browser::new();
    let resume_one = b.get(&server.base, &one).await.location.unwrap();
    let resume_two = b.get(&server.base, &two).await.location.unwrap();
    assert_eq!(b.flow_cookies().len(), 2);

    let code = b.get(&server.base, &resume_one).await;
    assert!(code.location.unwrap().contains("state=one"));
    assert_eq!(b.flow_cookies().len(), 1);
    assert_refused(&b.get(&server.base, &one).await);
    assert_eq!(
        b.get(&server.base, &two).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(b
        .get(&server.base, &resume_two)
        .await
        .location
        .unwrap()
        .contains("state=two"));
    assert_refused(&b.get(&server.base, &two).await);
}

type AnswerBody = BoxBody<Bytes, Infallible>;

/// An authorization server whose authorization endpoint answers a redeemed
/// request with `answer(code)` itself (`bounce: false`), or bounces the
/// browser to `/authorize/resume/1`, which answers with it.
async fn serve_answering<F>(layer: ParLayer, bounce: bool, answer: F) -> Server
where
    F: Fn(&str) -> Response<AnswerBody> + Clone + Send + Sync + 'static,
{
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let inner = service_fn(move |req: UpstreamRequest| {
        let (c, answer) = (c.clone(), answer.clone());
        async move {
            if req.uri().path() == "/authorize" {
                if req.extensions().get::<PushedAuthorization>().is_none() {
                    return Ok(Response::builder()
                        .status(StatusCode::BAD_REQUEST)
                        .body(full("upstream: not a pushed request"))
                        .unwrap());
                }
                c.authorize.fetch_add(1, Ordering::SeqCst);
                if bounce {
                    return Ok(Response::builder()
                        .status(StatusCode::SEE_OTHER)
                        .header(header::LOCATION, "/authorize/resume/1")
                        .body(full(""))
                        .unwrap());
                }
            }
            let code = format!("code-{}", c.codes.fetch_add(1, Ordering::SeqCst) + 1);
            Ok::<_, Infallible>(answer(&code))
        }
    });
    listen(tower::Layer::layer(&layer, inner), counters).await
}

fn full(body: impl Into<Bytes>) -> AnswerBody {
    Full::new(body.into()).boxed()
}

/// A body of unknown length (sent chunked), as a proxied response is.
fn streamed(body: String) -> AnswerBody {
    let body = Bytes::from(body);
    let (a, b) = body.split_at(body.len() / 2);
    let frames = [Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)]
        .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
    StreamBody::new(futures::stream::iter(frames)).boxed()
}

/// The auto-submitting page of `response_mode=form_post`, `padding`
/// bytes longer.
fn form_post_page(code: &str, padding: usize) -> String {
    format!(
        "<html><body onload=\"document.forms[0].submit()\"><!--{}-->\
         <form method=\"post\" action=\"{C_REDIRECT}\">\
         <input type=\"hidden\" name=\"code\" value=\"{code}\">\
         <input type=\"hidden\" name=\"state\" value=\"s1\">\
         </form></body></html>",
        "x".repeat(padding)
    )
}

fn html(content_type: &str, body: AnswerBody) -> Response<AnswerBody> {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .unwrap()
}

/// The authorization response of a flow: the page from the later step
/// (`bounce`), or from the authorization endpoint itself.
async fn answer_of(server: &Server, b: &Browser, authorize: &str, bounce: bool) -> Page {
    let first = b.get(&server.base, authorize).await;
    if !bounce {
        return first;
    }
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let resume = first.location.unwrap();
    assert_eq!(resume, "/authorize/resume/1");
    b.get(&server.base, &resume).await
}

/// PAR-28: the `state` of the authorization response agrees with the
/// pushed one under either reading of the query: form-decoded (`+` is a
/// space) or RFC 3986 percent-decoded (`+` is itself, as URI builders
/// leave it). A pushed `ab+cd` echoed as `state=ab+cd` ends the flow; a
/// `state` that differs under both readings does not.
#[tokio::test]
async fn par28_a_state_echoed_with_an_unencoded_plus_ends_the_flow() {
    let cases = [
        ("ab+cd", "ab+cd", true),
        ("ab+cd", "ab%2Bcd", true),
        ("ab cd", "ab+cd", true),
        ("ab cd", "ab%20cd", true),
        ("a+b c", "a%2Bb+c", true),
        ("a+b c", "a+b%20c", true),
        ("ab+cd", "ab-cd", false),
        ("ab+cd", "ab+ce", false),
    ];
    for (pushed, echoed, ends) in cases {
        let server = serve_answering(dev_layer(), true, move |code| {
            Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(
                    header::LOCATION,
                    format!("{C_REDIRECT}?code={code}&state={echoed}"),
                )
                .body(full(""))
                .unwrap()
        })
        .await;
        let form = pushed_form(&form_encode(pushed), "");
        let authorize = push(&server, "/par", "/authorize", form).await;
        let b = Browser::new();
        let before = b.get(&server.base, &authorize).await;
        assert_eq!(before.status, StatusCode::SEE_OTHER);
        let same_cookies = b.snapshot();
        let code = b.get(&server.base, "/authorize/resume/1").await;
        let callback = code.location.unwrap();
        assert!(callback.starts_with(C_REDIRECT), "{callback}");
        b.restore(same_cookies);
        let again = b.get(&server.base, &authorize).await;
        if ends {
            assert_refused(&again);
            assert_eq!(server.counters.authorize.load(Ordering::SeqCst), 1);
        } else {
            // Another flow's response: this one stays reload-safe.
            assert_eq!(again.status, StatusCode::SEE_OTHER, "{pushed:?} {echoed:?}");
        }
    }
}

/// PAR-28, FAPI 2.0 note 3: the `form_post` page ends the flow however it
/// is served: streamed (no length known in advance), with a media type in
/// upper case, with `Content-Encoding: identity`; at the authorization
/// endpoint and on a later step.
#[tokio::test]
async fn par28_a_streamed_or_upper_case_form_post_page_ends_the_flow() {
    type Serve = fn(&str) -> Response<AnswerBody>;
    let pages: [(&str, Serve); 4] = [
        ("streamed", |code| {
            html(
                "text/html; charset=utf-8",
                streamed(form_post_page(code, 0)),
            )
        }),
        ("upper case", |code| {
            html("Text/HTML; charset=UTF-8", full(form_post_page(code, 0)))
        }),
        ("upper case, streamed", |code| {
            html("TEXT/HTML", streamed(form_post_page(code, 0)))
        }),
        ("identity", |code| {
            let mut res = html("text/html", streamed(form_post_page(code, 200 * 1024)));
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, "identity".parse().unwrap());
            res
        }),
    ];
    for bounce in [true, false] {
        for (what, page) in pages {
            let server = serve_answering(dev_layer(), bounce, page).await;
            let form = pushed_form("s1", "&response_mode=form_post");
            let authorize = push(&server, "/par", "/authorize", form).await;
            let b = Browser::new();
            let same_cookies = b.snapshot();
            let answer = answer_of(&server, &b, &authorize, bounce).await;
            assert_eq!(answer.status, StatusCode::OK, "{what}: {}", answer.body);
            assert!(
                answer.body.contains("name=\"code\" value=\"code-1\""),
                "{what}: {}",
                answer.body
            );
            assert!(
                answer.set_cookies.iter().any(|c| c.contains("Max-Age=0")),
                "{what} (bounce {bounce}): {:?}",
                answer.set_cookies
            );
            if bounce {
                b.restore(same_cookies);
            }
            assert_refused(&b.get(&server.base, &authorize).await);
            assert_eq!(server.counters.codes.load(Ordering::SeqCst), 1, "{what}");
        }
    }
}

/// PAR-28, fail closed: an HTML `200` that could be the `form_post` page
/// of a presented flow but cannot be checked (compressed, or larger than
/// 256 KiB, whether or not its length is known) is not delivered: a
/// `server_error` page instead, without the code, and the flow stays open.
/// The same compressed page for a flow that is not `form_post` passes.
#[tokio::test]
async fn par28_a_form_post_page_that_cannot_be_checked_is_not_delivered() {
    type Serve = fn(&str) -> Response<AnswerBody>;
    let pages: [(&str, Serve); 4] = [
        ("gzip", |code| {
            let mut res = html("text/html", full(form_post_page(code, 0)));
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
            res
        }),
        ("identity, br", |code| {
            let mut res = html("text/html", streamed(form_post_page(code, 0)));
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, "identity, br".parse().unwrap());
            res
        }),
        ("streamed, 300 KiB", |code| {
            html("text/html", streamed(form_post_page(code, 300 * 1024)))
        }),
        ("300 KiB", |code| {
            html("text/html", full(form_post_page(code, 300 * 1024)))
        }),
    ];
    for bounce in [true, false] {
        for (what, page) in pages {
            let server = serve_answering(dev_layer(), bounce, page).await;
            let form = pushed_form("s1", "&response_mode=form_post");
            let authorize = push(&server, "/par", "/authorize", form).await;
            let b = Browser::new();
            let answer = answer_of(&server, &b, &authorize, bounce).await;
            assert_eq!(
                answer.status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{what}: {}",
                answer.body
            );
            assert!(
                answer.body.contains("server_error"),
                "{what}: {}",
                answer.body
            );
            assert!(!answer.body.contains("code-1"), "{what}");
            assert!(answer.location.is_none());
            if bounce {
                // Nothing was completed: the flow can be retried.
                let again = b.get(&server.base, &authorize).await;
                assert_eq!(again.status, StatusCode::SEE_OTHER, "{what}");
            }
        }
        // Not a form_post flow: the page is not an authorization response.
        let (_, gzip) = pages[0];
        let server = serve_answering(dev_layer(), bounce, gzip).await;
        let authorize = push(&server, "/par", "/authorize", pushed_form("s1", "")).await;
        let answer = answer_of(&server, &Browser::new(), &authorize, bounce).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
}

/// The `Accept-Encoding` of each request that reached an upstream, with
/// its path.
type SeenCodings = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Whether an `Accept-Encoding` value allows `gzip`.
fn allows_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|v| {
        v.split(',').any(|c| {
            let mut c = c.split(';').map(str::trim);
            let coding = c.next().unwrap_or_default();
            let refused = c.any(|p| p.replace(' ', "").eq_ignore_ascii_case("q=0"));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
    })
}

/// An authorization server that compresses its HTML whenever the request
/// allows `gzip` (it marks the page `Content-Encoding: gzip`) and sends it
/// unencoded otherwise. Its authorization endpoint answers a redeemed
/// request with the `form_post` page itself (`bounce: false`), or bounces
/// the browser to `/authorize/resume/1`, which answers with it. Records
/// the `Accept-Encoding` of every request it gets.
async fn serve_compressing(bounce: bool) -> (Server, SeenCodings) {
    let counters = Arc::new(Counters::default());
    let seen = SeenCodings::default();
    let (c, s) = (counters.clone(), seen.clone());
    let inner = service_fn(move |req: UpstreamRequest| {
        let (c, s) = (c.clone(), s.clone());
        async move {
            let coding = req
                .headers()
                .get(header::ACCEPT_ENCODING)
                .map(|v| v.to_str().unwrap().to_owned());
            s.lock()
                .unwrap()
                .push((req.uri().path().to_owned(), coding.clone()));
            if req.uri().path() == "/authorize" {
                if req.extensions().get::<PushedAuthorization>().is_none() {
                    return Ok(Response::builder()
                        .status(StatusCode::BAD_REQUEST)
                        .body(full("upstream: not a pushed request"))
                        .unwrap());
                }
                c.authorize.fetch_add(1, Ordering::SeqCst);
                if bounce {
                    return Ok(Response::builder()
                        .status(StatusCode::SEE_OTHER)
                        .header(header::LOCATION, "/authorize/resume/1")
                        .body(full(""))
                        .unwrap());
                }
            }
            let code = format!("code-{}", c.codes.fetch_add(1, Ordering::SeqCst) + 1);
            let mut res = html("text/html; charset=utf-8", full(form_post_page(&code, 0)));
            if allows_gzip(coding.as_deref()) {
                res.headers_mut()
                    .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
            }
            Ok::<_, Infallible>(res)
        }
    });
    let server = listen(tower::Layer::layer(&dev_layer(), inner), counters).await;
    (server, seen)
}

/// PAR-28, META-13: behind an authorization server that compresses its
/// pages, a `form_post` flow from a browser accepting `gzip, br` still
/// completes, at the authorization endpoint and on a later step: every
/// request the layer may have to read the answer to (the redemption, a
/// re-entry, a later step presenting the `form_post` flow's cookie) reaches
/// the wrapped service with `Accept-Encoding: identity`.
#[tokio::test]
async fn a_form_post_flow_completes_behind_a_compressing_authorization_server() {
    assert!(allows_gzip(Some("gzip, br")));
    assert!(!allows_gzip(Some("identity")));
    assert!(!allows_gzip(Some("gzip;q=0, br")));
    for bounce in [false, true] {
        let (server, seen) = serve_compressing(bounce).await;
        let form = pushed_form("s1", "&response_mode=form_post");
        let authorize = push(&server, "/par", "/authorize", form).await;
        let b = Browser::accepting("gzip, br");
        if bounce {
            // A re-entry before the flow ends is read as well.
            let first = b.get(&server.base, &authorize).await;
            assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
        }
        // The flow's cookie, if any, before the flow ends.
        let same_cookies = b.snapshot();
        let answer = answer_of(&server, &b, &authorize, bounce).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "bounce {bounce}: {}",
            answer.body
        );
        assert!(
            answer.body.contains("name=\"code\" value=\"code-1\""),
            "bounce {bounce}: {}",
            answer.body
        );
        assert!(
            answer.set_cookies.iter().any(|c| c.contains("Max-Age=0")),
            "bounce {bounce}: {:?}",
            answer.set_cookies
        );
        if bounce {
            b.restore(same_cookies);
        }
        assert_refused(&b.get(&server.base, &authorize).await);
        assert_eq!(server.counters.codes.load(Ordering::SeqCst), 1);
        let seen = seen.lock().unwrap().clone();
        let expected: &[&str] = match bounce {
            false => &["/authorize"],
            true => &["/authorize", "/authorize", "/authorize/resume/1"],
        };
        assert_eq!(
            seen.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            expected
        );
        for (path, coding) in &seen {
            assert_eq!(
                coding.as_deref(),
                Some("identity"),
                "{path} (bounce {bounce})"
            );
        }
    }
}

/// Requests of a flow that is not `form_post` are passed with the
/// browser's `Accept-Encoding` as it is: the redemption, a re-entry and a
/// later step presenting the flow's cookie; its (compressed) page is
/// delivered as the wrapped service sent it.
#[tokio::test]
async fn a_flow_that_is_not_form_post_keeps_the_browsers_accept_encoding() {
    for bounce in [false, true] {
        let (server, seen) = serve_compressing(bounce).await;
        let authorize = push(&server, "/par", "/authorize", pushed_form("s1", "")).await;
        let b = Browser::accepting("gzip, br");
        if bounce {
            let first = b.get(&server.base, &authorize).await;
            assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
        }
        let answer = answer_of(&server, &b, &authorize, bounce).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(answer.body.contains("code-1"), "{}", answer.body);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), if bounce { 3 } else { 1 }, "{seen:?}");
        for (path, coding) in &seen {
            assert_eq!(
                coding.as_deref(),
                Some("gzip, br"),
                "{path} (bounce {bounce})"
            );
        }
    }
}

/// PAR-28: cookies planted before the flow's own (a non-`__Host-` cookie
/// can be set by a sibling subdomain, with a longer `Path` so that it is
/// sent first) do not hide it on the later step, however many: names that
/// only start like a flow cookie's, names of the exact shape with
/// malformed values, a flow's value under another flow's name, and
/// malformed values under the flow's own name.
#[tokio::test]
async fn par28_planted_flow_cookies_do_not_hide_the_flows_own() {
    let server = serve(dev_layer(), "/authorize", "/authorize/resume").await;
    let authorize = push(&server, "/par", "/authorize", pushed_form("s1", "")).await;
    let b = Browser::new();
    let resume = b.get(&server.base, &authorize).await.location.unwrap();
    let (name, real) = b.flow_cookies().remove(0);
    assert_eq!(name.len(), "par_flow_".len() + 12, "{name}");
    let mut planted = Vec::new();
    for i in 0..20 {
        planted.push(format!("par_flow_j{i}=x"));
        planted.push(format!("par_flow_{i:0>12}=x.y.z"));
        planted.push(format!("par_flow_{i:0>12}={}", real.value));
        planted.push(format!("{name}=junk{i}"));
    }
    *b.planted.lock().unwrap() = planted;
    let same_cookies = b.snapshot();
    let code = b.get(&server.base, &resume).await;
    assert!(code.location.unwrap().starts_with(C_REDIRECT));
    assert!(
        code.set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("{name}=;")) && c.contains("Max-Age=0")),
        "{:?}",
        code.set_cookies
    );
    b.restore(same_cookies);
    assert_refused(&b.get(&server.base, &authorize).await);
    assert_eq!(server.counters.codes.load(Ordering::SeqCst), 1);
}

/// PAR-28: a `flow_paths` entry must be a path a request can match as it
/// arrives, as `authorize_path` must: no escapes, `;` parameters, `\`,
/// empty segments or dot segments.
#[test]
fn par28_flow_paths_refuse_spellings_no_request_path_matches() {
    for bad in [
        "/login%2Dactions",
        "/login;jsessionid=1",
        "/login\\actions",
        "//login-actions",
        "/realms//login-actions",
        "/login-actions//",
        "/./login-actions",
        "/realms/x/../login-actions",
        "/login-actions/.",
        "//",
    ] {
        let err = ParLayer::new(clients()).flow_paths([bad]).unwrap_err();
        assert_eq!(err.setting(), Setting::FlowPaths, "{bad:?}");
        assert!(err.to_string().contains("flow_paths"), "{err}");
    }
    for good in ["/", "/login-actions/", "/realms/x.y/login-actions"] {
        assert!(
            ParLayer::new(clients()).flow_paths([good]).is_ok(),
            "{good}"
        );
    }
}

#[test]
fn a_bad_flow_paths_value_is_a_config_error_naming_flow_paths() {
    for bad in [
        "login-actions",
        "",
        "/login?x=1",
        "/login#top",
        "/log\nin",
        "/log\u{7f}in",
        "/log in",
    ] {
        let err = ParLayer::new(clients()).flow_paths([bad]).unwrap_err();
        assert_eq!(err.setting(), Setting::FlowPaths, "{bad:?}");
        assert_eq!(err.setting().name(), "flow_paths");
        assert!(err.to_string().contains("flow_paths"), "{err}");
    }
    let many = (0..65).map(|i| format!("/p{i}"));
    assert_eq!(
        ParLayer::new(clients())
            .flow_paths(many)
            .unwrap_err()
            .setting(),
        Setting::FlowPaths
    );
    let layer = ParLayer::new(clients())
        .flow_paths(["/login-actions/", "/auth"])
        .unwrap();
    let shown = format!("{layer:?}");
    assert!(
        shown.contains("flow_paths: [\"/login-actions\", \"/auth\"]"),
        "{shown}"
    );
}

/// A store written before `ParStore::in_flow` existed: it relies on the
/// provided method, and can be switched to failing.
#[derive(Clone, Default)]
struct ThirdPartyStore {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
    /// Another response completes each flow just before this one does.
    beaten: Arc<AtomicBool>,
}

impl ThirdPartyStore {
    fn check(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StoreError::unavailable("down")),
            false => Ok(()),
        }
    }
}

impl ParStore for ThirdPartyStore {
    async fn insert(
        &self,
        uri: &RequestUri,
        request: PushedRequest,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert(uri, request, ttl).await
    }
    async fn redeem(
        &self,
        uri: &RequestUri,
        client_id: &str,
        mode: RedeemMode,
    ) -> Result<RedeemOutcome, StoreError> {
        self.check()?;
        self.inner.redeem(uri, client_id, mode).await
    }
    async fn complete(
        &self,
        uri: &RequestUri,
        binding: &[u8; 32],
    ) -> Result<Completion, StoreError> {
        self.check()?;
        let done = self.inner.complete(uri, binding).await?;
        match self.beaten.load(Ordering::SeqCst) {
            true => Ok(Completion::NotInFlow),
            false => Ok(done),
        }
    }
    async fn mark_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.mark_once(key, ttl).await
    }
}

/// The provided `ParStore::in_flow` (built on `redeem`) finds the flow
/// on the later step like the memory store's own; with the store down,
/// a response that could be the authorization response is not delivered
/// (503), while the login page before it still is.
#[tokio::test]
async fn a_store_without_in_flow_completes_and_an_outage_fails_closed() {
    let store = ThirdPartyStore::default();
    let (down, beaten) = (store.down.clone(), store.beaten.clone());
    let layer = dev_layer().with_store(store);
    let server = serve(layer, "/authorize", "/authorize/resume").await;

    let authorize = push(&server, "/par", "/authorize", pushed_form("s1", "")).await;
    let b = Browser::new();
    let resume = b.get(&server.base, &authorize).await.location.unwrap();
    let same_cookies = b.snapshot();
    assert!(b
        .get(&server.base, &resume)
        .await
        .location
        .unwrap()
        .starts_with(C_REDIRECT));
    b.restore(same_cookies);
    assert_refused(&b.get(&server.base, &authorize).await);

    let authorize = push(&server, "/par", "/authorize", pushed_form("s2", "")).await;
    let b = Browser::new();
    let resume = b.get(&server.base, &authorize).await.location.unwrap();
    down.store(true, Ordering::SeqCst);
    let login = b.get(&server.base, &format!("{resume}/login")).await;
    assert_eq!(login.status, StatusCode::OK);
    let page = b.get(&server.base, &resume).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert!(page.location.is_none());
    assert!(
        page.body.contains("temporarily_unavailable"),
        "{}",
        page.body
    );
    down.store(false, Ordering::SeqCst);
    // Nothing was completed: the flow is still open for a retry.
    assert_eq!(
        b.get(&server.base, &authorize).await.status,
        StatusCode::SEE_OTHER
    );

    // Two responses end the flow at once (two tabs): the one that loses
    // the completion is not delivered.
    beaten.store(true, Ordering::SeqCst);
    let lost = b.get(&server.base, &resume).await;
    assert_refused(&lost);
    assert!(
        lost.body.contains("already been completed"),
        "{}",
        lost.body
    );
    beaten.store(false, Ordering::SeqCst);
    assert_refused(&b.get(&server.base, &authorize).await);
}

/// The same completion through `RedisStore`, whose `in_flow` is one `GET`
/// that leaves a pushed entry pushed.
#[cfg(feature = "redis")]
mod redis_store {
    use std::process::{Child, Command, Stdio};
    use std::time::{Instant, SystemTime};

    use tower_par::{AuthMethod, RedisStore, RedisStoreConfig};

    use super::*;

    /// A throw-away `redis-server` on a free loopback port, killed on drop.
    struct TestRedis {
        url: String,
        child: Child,
    }

    impl Drop for TestRedis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn start_redis() -> Option<TestRedis> {
        let on_path = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !on_path {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but redis-server is not installed");
            }
            eprintln!("skipped: no redis-server");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let redis = TestRedis {
            url: format!("redis://127.0.0.1:{port}/0"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    #[tokio::test]
    async fn par28_a_later_step_completes_through_redis() {
        let Some(redis) = start_redis() else {
            return;
        };
        let store = RedisStore::connect(RedisStoreConfig::new(redis.url.clone()))
            .await
            .unwrap();

        // in_flow on a pushed entry changes nothing.
        let ttl = Duration::from_secs(60);
        let request = PushedRequest::new(
            "app",
            AuthMethod::None,
            "response_type=code",
            SystemTime::now(),
            ttl,
        );
        let uri = RequestUri::generate();
        store.insert(&uri, request, ttl).await.unwrap();
        assert!(store
            .in_flow(&uri, "app", &[1; 32])
            .await
            .unwrap()
            .is_none());
        let bind = RedeemMode::Bind {
            binding: [1; 32],
            reenter: None,
            window: Duration::from_secs(600),
        };
        let redeemed = store.redeem(&uri, "app", bind).await.unwrap();
        assert!(matches!(redeemed, RedeemOutcome::Redeemed(_)));
        assert!(store
            .in_flow(&uri, "app", &[1; 32])
            .await
            .unwrap()
            .is_some());
        assert!(store
            .in_flow(&uri, "app", &[2; 32])
            .await
            .unwrap()
            .is_none());
        assert!(store
            .in_flow(&uri, "other", &[1; 32])
            .await
            .unwrap()
            .is_none());

        let server = serve(
            dev_layer().with_store(store),
            "/authorize",
            "/authorize/resume",
        )
        .await;
        let authorize = push(&server, "/par", "/authorize", pushed_form("s1", "")).await;
        let b = Browser::new();
        let resume = b.get(&server.base, &authorize).await.location.unwrap();
        assert_eq!(
            b.get(&server.base, &authorize).await.status,
            StatusCode::SEE_OTHER
        );
        let same_cookies = b.snapshot();
        let code = b.get(&server.base, &resume).await;
        assert!(code.location.unwrap().starts_with(C_REDIRECT));
        b.restore(same_cookies);
        assert_refused(&b.get(&server.base, &authorize).await);
        assert_eq!(server.counters.codes.load(Ordering::SeqCst), 1);
    }
}
