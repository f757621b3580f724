//! A deliberately PAR-unaware authorization server, given PAR by `ParLayer`.
//!
//! The server below knows nothing of pushed requests: `/authorize`
//! auto-approves a classic query-string request and redirects to the
//! client's `redirect_uri` with a `code`; `/token` exchanges the code with
//! PKCE (S256) and client authentication; it publishes an RFC 8414 document.
//! Wrapped in `ParLayer`, it gains `/par`, `request_uri` support at
//! `/authorize` and the PAR metadata members.
//!
//! ```text
//! cargo run --example legacy_server                # 127.0.0.1:3000
//! cargo run --example legacy_server -- --addr 127.0.0.1:4000 --clients clients.json
//! ```
//!
//! Environment: `ADDR`, `PAR_ISSUER` (public base URL), `PAR_CLIENTS`
//! (clients file), `PAR_REQUIRED=1`, `PAR_TTL_SECS`, `PAR_METADATA=0`,
//! `PAR_DEMO_LOGIN=1` (same as `--login`), `PAR_REDEMPTION=strict`,
//! `PAR_FLOW_WINDOW_SECS` (default 600), `PAR_REDIS_URL` (same as
//! `--redis URL`: keep pushed requests in Redis, shared by instances),
//! `PAR_REDIS_SECRET` (the `RedisStore` secret every instance shares).
//!
//! `--login` adds a login step, as legacy servers have: `/authorize` without
//! a session redirects to `/login?return_to=<the authorize path and query it
//! received>`; the login form (`demo` / `demo`) sets a session cookie and
//! sends the browser back to `return_to`. With the layer in front, that
//! bounce carries only the compact `request_uri` form.
//!
//! With `PAR_REDEMPTION=strict` the compact form cannot be re-entered (the
//! `request_uri` is consumed at its first use), so the login step does what
//! a strict deployment must: `/authorize` keeps the authorization request
//! server-side under a random id, bound to the browser by a cookie, and
//! sends it to `/login?pending=<id>`; a successful login continues from the
//! kept request and answers with the authorization response itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::collections::HashSet;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tower_par::{
    AuthMethod, Client, ClientAuthenticator, ClientCredentials, ParLayer, Redemption, Secret,
    StaticClients,
};
#[cfg(feature = "redis")]
use tower_par::{RedisStore, RedisStoreConfig};

const DEMO_REDIRECT: &str = "http://127.0.0.1:8080/cb";

struct Settings {
    addr: SocketAddr,
    demo: DemoOptions,
}

/// Everything that shapes the demo application.
#[derive(Clone)]
pub struct DemoOptions {
    /// Public base URL: issuer and advertised endpoints.
    pub issuer: String,
    /// The registered clients (shared by the layer and the legacy server).
    pub clients: StaticClients,
    /// Require PAR for every client.
    pub required: bool,
    /// `request_uri` lifetime in seconds.
    pub ttl: Option<u64>,
    /// Flow window in seconds (flow-bound redemption).
    pub flow_window: Option<u64>,
    /// Add the PAR members to the discovery documents.
    pub metadata: bool,
    /// Put a login step in front of `/authorize`.
    pub login: bool,
    /// Consume `request_uri`s at the first redemption.
    pub strict: bool,
    /// Keep pushed requests in Redis (shared by several instances).
    pub redis: Option<String>,
}

fn settings() -> Result<Settings, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = std::env::var("ADDR").ok();
    let mut clients_file = std::env::var("PAR_CLIENTS").ok();
    let mut login = false;
    let mut redis = std::env::var("PAR_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = Some(args.next().ok_or("--addr needs a value")?),
            "--clients" => clients_file = Some(args.next().ok_or("--clients needs a value")?),
            "--login" => login = true,
            "--redis" => redis = Some(args.next().ok_or("--redis needs a URL")?),
            "-h" | "--help" => {
                println!("usage: legacy_server [--addr HOST:PORT] [--clients FILE] [--login] [--redis URL]\nenv: ADDR PAR_ISSUER PAR_CLIENTS PAR_REQUIRED=1 PAR_TTL_SECS PAR_METADATA=0 PAR_DEMO_LOGIN=1 PAR_REDEMPTION=strict PAR_FLOW_WINDOW_SECS PAR_REDIS_URL PAR_REDIS_SECRET");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}' (try --help)")),
        }
    }
    let addr: SocketAddr = addr
        .as_deref()
        .unwrap_or("127.0.0.1:3000")
        .parse()
        .map_err(|e| format!("bad address: {e}"))?;
    let issuer = std::env::var("PAR_ISSUER")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{addr}"));
    let clients = match clients_file {
        Some(path) => StaticClients::from_path(&path).map_err(|e| format!("{path}: {e}"))?,
        None => demo_clients().map_err(|e| e.to_string())?,
    };
    let flag = |name: &str, default: bool| match std::env::var(name).ok().as_deref() {
        Some("1") | Some("true") | Some("yes") => true,
        Some("0") | Some("false") | Some("no") => false,
        _ => default,
    };
    let flow_window = match std::env::var("PAR_FLOW_WINDOW_SECS") {
        Ok(v) => Some(
            v.parse()
                .map_err(|_| format!("PAR_FLOW_WINDOW_SECS '{v}' is not a number"))?,
        ),
        Err(_) => None,
    };
    let ttl = match std::env::var("PAR_TTL_SECS") {
        Ok(v) => Some(
            v.parse()
                .map_err(|_| format!("PAR_TTL_SECS '{v}' is not a number"))?,
        ),
        Err(_) => None,
    };
    let strict = match std::env::var("PAR_REDEMPTION").ok().as_deref() {
        None | Some("") | Some("flow") | Some("flow_bound") => false,
        Some("strict") => true,
        Some(other) => return Err(format!("PAR_REDEMPTION '{other}': use flow or strict")),
    };
    Ok(Settings {
        addr,
        demo: DemoOptions {
            issuer,
            clients,
            required: flag("PAR_REQUIRED", false),
            ttl,
            flow_window,
            metadata: flag("PAR_METADATA", true),
            login: login || flag("PAR_DEMO_LOGIN", false),
            redis,
            strict,
        },
    })
}

/// The built-in demo clients.
pub fn demo_clients() -> Result<StaticClients, tower_par::StaticClientsError> {
    StaticClients::new()
        .with_client(
            Client::new("demo-client", AuthMethod::ClientSecretBasic).redirect_uri(DEMO_REDIRECT),
            Some("demo-secret"),
        )?
        .with_client(
            Client::new("demo-post-client", AuthMethod::ClientSecretPost)
                .redirect_uri(DEMO_REDIRECT),
            Some("demo-post-secret"),
        )?
        .with_client(
            Client::new("demo-public", AuthMethod::None).redirect_uri(DEMO_REDIRECT),
            None,
        )
}

/// What the legacy server remembers about an issued code.
struct Grant {
    client_id: String,
    redirect_uri: Option<String>,
    challenge: Option<(String, String)>,
    scope: Option<String>,
    issued: Instant,
}

/// An authorization request kept server-side across the login step.
struct Pending {
    params: HashMap<String, String>,
    /// The value of the browser's `legacy_pending_<id>` cookie.
    secret: String,
    created: Instant,
}

#[derive(Clone)]
struct Legacy {
    issuer: String,
    clients: StaticClients,
    codes: Arc<Mutex<HashMap<String, Grant>>>,
    /// `Some` in login mode: the session ids of logged-in browsers.
    sessions: Option<Arc<Mutex<HashSet<String>>>>,
    /// `Some` in login mode with strict redemption: requests waiting for
    /// their login, by id.
    pending: Option<Arc<Mutex<HashMap<String, Pending>>>>,
}

const SESSION_COOKIE: &str = "legacy_session";
const PENDING_COOKIE: &str = "legacy_pending_";
/// How long a kept request waits for its login, as the flow window.
const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// Requests kept at once; more get `503` rather than unbounded memory.
const MAX_PENDING: usize = 10_000;

impl Legacy {
    fn logged_in(&self, headers: &HeaderMap) -> bool {
        let Some(sessions) = &self.sessions else {
            return true;
        };
        let sessions = sessions.lock().unwrap();
        cookies(headers).any(|(n, v)| n == SESSION_COOKIE && sessions.contains(v))
    }

    /// Strict redemption: the request cannot come back through
    /// `/authorize`, so it waits here for the login (M-3, M-5).
    fn keep_for_login(
        &self,
        pending: &Mutex<HashMap<String, Pending>>,
        params: HashMap<String, String>,
    ) -> Response {
        let (id, secret) = (random_token(), random_token());
        {
            let mut pending = pending.lock().unwrap();
            pending.retain(|_, p| p.created.elapsed() < PENDING_LIFETIME);
            if pending.len() >= MAX_PENDING {
                return error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many sign-ins in progress, please retry",
                );
            }
            pending.insert(
                id.clone(),
                Pending {
                    params,
                    secret: secret.clone(),
                    created: Instant::now(),
                },
            );
        }
        let mut res = Redirect::to(&format!("/login?pending={id}")).into_response();
        let cookie = format!(
            "{PENDING_COOKIE}{id}={secret}; Path=/login; Max-Age={}; HttpOnly; SameSite=Lax",
            PENDING_LIFETIME.as_secs()
        );
        if let Ok(v) = cookie.parse() {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        res
    }

    /// Whether the kept request `id` exists, is fresh, and belongs to the
    /// browser that sent `headers`.
    fn owns_pending(&self, headers: &HeaderMap, id: &str) -> bool {
        let Some(pending) = &self.pending else {
            return false;
        };
        let pending = pending.lock().unwrap();
        let Some(p) = pending
            .get(id)
            .filter(|p| p.created.elapsed() < PENDING_LIFETIME)
        else {
            return false;
        };
        let name = format!("{PENDING_COOKIE}{id}");
        cookies(headers).any(|(n, v)| n == name && v == p.secret)
    }
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn error_page(status: StatusCode, msg: &str) -> Response {
    let msg = msg
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    (
        status,
        Html(format!(
            "<!doctype html><h1>Authorization error</h1><p>{msg}</p>\n"
        )),
    )
        .into_response()
}

/// The legacy authorization endpoint: classic query (or form) parameters.
async fn authorize(
    State(app): State<Legacy>,
    headers: HeaderMap,
    received: String,
    params: HashMap<String, String>,
) -> Response {
    if !app.logged_in(&headers) {
        if let Some(pending) = &app.pending {
            return app.keep_for_login(pending, params);
        }
        // What legacy servers do: send the browser to log in, carrying the
        // whole authorization request along in `return_to`.
        let target = format!(
            "/login?{}",
            serde_urlencoded::to_string([("return_to", received)]).unwrap()
        );
        return Redirect::to(&target).into_response();
    }
    issue(&app, &params)
}

/// The authorization response for a logged-in user: a code (auto-approved)
/// or an error, at the client's redirect URI.
fn issue(app: &Legacy, params: &HashMap<String, String>) -> Response {
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    let Some(client_id) = get("client_id") else {
        return error_page(StatusCode::BAD_REQUEST, "client_id is required");
    };
    let Some(client) = app.clients.get(&client_id).cloned() else {
        return error_page(StatusCode::BAD_REQUEST, "unknown client");
    };
    let redirect_uri = match get("redirect_uri") {
        Some(uri) if client.redirect_uris.contains(&uri) => uri,
        Some(_) => return error_page(StatusCode::BAD_REQUEST, "redirect_uri is not registered"),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return error_page(StatusCode::BAD_REQUEST, "redirect_uri is required"),
    };
    let state = get("state");
    let mut target = redirect_uri.clone();
    target.push(if target.contains('?') { '&' } else { '?' });
    if get("response_type").as_deref() != Some("code") {
        target.push_str("error=unsupported_response_type");
    } else {
        let code = random_token();
        let challenge = get("code_challenge").map(|c| {
            (
                c,
                get("code_challenge_method").unwrap_or_else(|| "plain".into()),
            )
        });
        app.codes.lock().unwrap().insert(
            code.clone(),
            Grant {
                client_id,
                redirect_uri: get("redirect_uri"),
                challenge,
                scope: get("scope"),
                issued: Instant::now(),
            },
        );
        target.push_str(&format!("code={code}"));
    }
    if let Some(state) = state {
        target.push_str("&state=");
        target.push_str(&serde_urlencoded::to_string([("s", state)]).unwrap()[2..]);
    }
    Redirect::to(&target).into_response()
}

async fn authorize_get(
    state: State<Legacy>,
    // The URI as this handler received it (after any rewriting by layers),
    // which is what a legacy server puts into its login redirect.
    uri: axum::http::Uri,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let received = uri
        .path_and_query()
        .map_or("/authorize".to_owned(), |pq| pq.to_string());
    authorize(state, headers, received, params).await
}

async fn authorize_post(
    state: State<Legacy>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    // A POSTed request comes back as the equivalent GET after login.
    let received = format!(
        "/authorize?{}",
        serde_urlencoded::to_string(&params).unwrap()
    );
    authorize(state, headers, received, params.into_iter().collect()).await
}

/// Where a successful login continues.
enum Continue {
    /// Back to a URL of this server (the flow-bound demo).
    ReturnTo(String),
    /// From the request kept under this id (strict redemption).
    Pending(String),
}

impl Continue {
    fn query(&self) -> String {
        let pair = match self {
            Continue::ReturnTo(r) => ("return_to", r),
            Continue::Pending(id) => ("pending", id),
        };
        serde_urlencoded::to_string([pair]).unwrap()
    }
}

fn login_page(next: &Continue, failed: bool) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
    };
    let action = format!("/login?{}", next.query());
    let (name, value) = match next {
        Continue::ReturnTo(r) => ("return_to", r),
        Continue::Pending(id) => ("pending", id),
    };
    let status = if failed {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let note = if failed {
        "<p id=\"error\">Wrong username or password.</p>"
    } else {
        ""
    };
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in</title></head><body>\
         <h1>Sign in</h1>{note}<form method=\"post\" action=\"{}\">\
         <label>Username <input name=\"username\" id=\"username\"></label>\
         <label>Password <input name=\"password\" id=\"password\" type=\"password\"></label>\
         <input type=\"hidden\" name=\"{name}\" value=\"{}\">\
         <button type=\"submit\" id=\"submit\">Sign in</button></form>\
         <p>Demo account: demo / demo</p></body></html>\n",
        esc(&action),
        esc(value)
    );
    (status, Html(page)).into_response()
}

/// Only a path of this server: the login step must not be an open
/// redirect. A single leading `/` not followed by `/` or `\` (browsers read
/// `/\evil.example` as `//evil.example`), and nothing but visible ASCII
/// without `\` (browsers drop tabs and newlines, `/\t/evil.example` is
/// `//evil.example` too).
fn safe_return_to(return_to: Option<&String>) -> Option<String> {
    let r = return_to?;
    let b = r.as_bytes();
    let local = b.first() == Some(&b'/') && !matches!(b.get(1), Some(b'/' | b'\\'));
    let plain = b.iter().all(|&c| c.is_ascii_graphic() && c != b'\\');
    (local && plain).then(|| r.clone())
}

/// The login step's continuation from the query or the form: a kept
/// request this browser owns, or a safe `return_to`.
fn continuation(
    app: &Legacy,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    form: Option<&HashMap<String, String>>,
) -> Result<Continue, &'static str> {
    let field = |k: &str| q.get(k).or_else(|| form.and_then(|f| f.get(k)));
    if let Some(id) = field("pending") {
        return if app.owns_pending(headers, id) {
            Ok(Continue::Pending(id.clone()))
        } else {
            Err("this sign-in expired or was started in another browser: start again from the application")
        };
    }
    safe_return_to(field("return_to"))
        .map(Continue::ReturnTo)
        .ok_or("return_to must be a path of this server")
}

async fn login_form(
    State(app): State<Legacy>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match continuation(&app, &headers, &q, None) {
        Ok(next) => login_page(&next, false),
        Err(msg) => error_page(StatusCode::BAD_REQUEST, msg),
    }
}

async fn login_submit(
    State(app): State<Legacy>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let next = match continuation(&app, &headers, &q, Some(&form)) {
        Ok(next) => next,
        Err(msg) => return error_page(StatusCode::BAD_REQUEST, msg),
    };
    let ok = form.get("username").map(String::as_str) == Some("demo")
        && form.get("password").map(String::as_str) == Some("demo");
    let Some(sessions) = app.sessions.as_ref().filter(|_| ok) else {
        return login_page(&next, true);
    };
    let mut res = match &next {
        Continue::ReturnTo(r) => Redirect::to(r).into_response(),
        Continue::Pending(id) => {
            let kept = app
                .pending
                .as_ref()
                .and_then(|p| p.lock().unwrap().remove(id));
            let Some(kept) = kept else {
                // Taken by a concurrent login of the same browser.
                return error_page(StatusCode::BAD_REQUEST, "this sign-in was already used");
            };
            let mut res = issue(&app, &kept.params);
            let clear =
                format!("{PENDING_COOKIE}{id}=; Path=/login; Max-Age=0; HttpOnly; SameSite=Lax");
            if let Ok(v) = clear.parse() {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            res
        }
    };
    let session = random_token();
    sessions.lock().unwrap().insert(session.clone());
    if let Ok(v) = format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax").parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut res = (
        status,
        Json(serde_json::json!({"error": error, "error_description": description})),
    )
        .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
    res
}

/// The legacy token endpoint: authorization_code with PKCE.
async fn token(
    State(app): State<Legacy>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| form.get(k).filter(|v| !v.is_empty()).cloned();
    let credentials = match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(h) if h.len() > 6 && h[..6].eq_ignore_ascii_case("basic ") => {
            let decoded = STANDARD
                .decode(h[6..].trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return token_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "malformed Basic credentials",
                );
            };
            let dec = |s: &str| {
                serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
                    .ok()
                    .and_then(|v| v.into_iter().next())
                    .map(|(_, v)| v)
            };
            let (Some(id), Some(secret)) = (dec(id), dec(secret)) else {
                return token_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "malformed Basic credentials",
                );
            };
            ClientCredentials {
                client_id: id,
                method: AuthMethod::ClientSecretBasic,
                secret: Some(Secret::new(secret)),
                assertion: None,
            }
        }
        _ => match (get("client_id"), get("client_secret")) {
            (Some(id), Some(secret)) => ClientCredentials {
                client_id: id,
                method: AuthMethod::ClientSecretPost,
                secret: Some(Secret::new(secret)),
                assertion: None,
            },
            (Some(id), None) => ClientCredentials {
                client_id: id,
                method: AuthMethod::None,
                secret: None,
                assertion: None,
            },
            (None, _) => {
                return token_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "client authentication required",
                )
            }
        },
    };
    let parts = axum::http::Request::new(()).into_parts().0;
    let client = match app.clients.authenticate(&credentials, &parts).await {
        Ok(c) => c,
        Err(_) => {
            return token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            )
        }
    };
    if get("grant_type").as_deref() != Some("authorization_code") {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code is supported",
        );
    }
    let Some(code) = get("code") else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code is required",
        );
    };
    let Some(grant) = app.codes.lock().unwrap().remove(&code) else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown or used code",
        );
    };
    if grant.client_id != client.client_id || grant.issued.elapsed() > Duration::from_secs(60) {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code was not issued to this client or expired",
        );
    }
    if grant.redirect_uri.is_some() && grant.redirect_uri != get("redirect_uri") {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri does not match",
        );
    }
    if let Some((challenge, method)) = &grant.challenge {
        let Some(verifier) = get("code_verifier") else {
            return token_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "code_verifier is required",
            );
        };
        let computed = match method.as_str() {
            "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            _ => verifier,
        };
        if &computed != challenge {
            return token_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "PKCE verification failed",
            );
        }
    }
    let mut body = serde_json::json!({
        "access_token": random_token(),
        "token_type": "Bearer",
        "expires_in": 3600,
    });
    if let Some(scope) = grant.scope {
        body["scope"] = scope.into();
    }
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
    res
}

async fn metadata(State(app): State<Legacy>) -> Response {
    let i = &app.issuer;
    Json(serde_json::json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
    }))
    .into_response()
}

/// The demo application: the legacy server wrapped with the PAR layer.
pub async fn app(opts: &DemoOptions) -> Result<Router, String> {
    let legacy = Legacy {
        issuer: opts.issuer.clone(),
        clients: opts.clients.clone(),
        codes: Arc::default(),
        sessions: opts.login.then(Arc::default),
        pending: (opts.login && opts.strict).then(Arc::default),
    };
    let mut par = ParLayer::new(opts.clients.clone())
        .issuer(opts.issuer.clone())
        .map_err(|e| format!("PAR_ISSUER: {e}"))?
        .require_par(opts.required)
        .metadata(opts.metadata)
        // The binding cookie is `Secure` unless the demo runs on plain HTTP.
        .flow_cookie_secure(opts.issuer.starts_with("https://"))
        .redemption(if opts.strict {
            Redemption::Strict
        } else {
            Redemption::FlowBound
        });
    if let Some(ttl) = opts.ttl {
        par = par
            .request_uri_lifetime(Duration::from_secs(ttl))
            .map_err(|e| format!("PAR_TTL_SECS: {e}"))?;
    }
    if let Some(window) = opts.flow_window {
        par = par
            .flow_window(Duration::from_secs(window))
            .map_err(|e| format!("PAR_FLOW_WINDOW_SECS: {e}"))?;
    }
    let mut router = Router::new()
        .route("/authorize", get(authorize_get).post(authorize_post))
        .route("/token", post(token))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata));
    if opts.login {
        router = router.route("/login", get(login_form).post(login_submit));
    }
    let router = router.with_state(legacy);
    // `layer`, not `route_layer`: /par has no route of its own.
    match &opts.redis {
        None => Ok(router.layer(par)),
        #[cfg(feature = "redis")]
        Some(url) => {
            let mut config = RedisStoreConfig::new(url.clone());
            // Shared by every instance: stored entries cannot be forged
            // by whoever can write to Redis.
            if let Ok(secret) = std::env::var("PAR_REDIS_SECRET") {
                config = config.secret(secret);
            }
            let store = RedisStore::connect(config)
                .await
                .map_err(|e| format!("Redis: {e}"))?;
            Ok(router.layer(par.with_store(store)))
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => Err("--redis needs the `redis` feature (on by default)".into()),
    }
}

#[allow(dead_code)]
#[tokio::main]
async fn main() {
    let s = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("legacy_server: {e}");
            std::process::exit(2);
        }
    };
    let app = match app(&s.demo).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("legacy_server: {e}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(s.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("legacy_server: cannot listen on {}: {e}", s.addr);
            std::process::exit(1);
        }
    };
    let i = &s.demo.issuer;
    println!(
        "legacy_server listening on http://{} (issuer {i}, PAR required: {}, login step: {}, store: {})",
        s.addr,
        s.demo.required,
        s.demo.login,
        if s.demo.redis.is_some() { "redis" } else { "memory" }
    );
    println!("Try it (demo-client / demo-secret, client_secret_basic):");
    println!("  curl -s -u demo-client:demo-secret {i}/par \\");
    println!("    -d response_type=code -d redirect_uri={DEMO_REDIRECT} -d state=xyz \\");
    println!("    -d code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM -d code_challenge_method=S256");
    println!(
        "  curl -si '{i}/authorize?client_id=demo-client&request_uri=<request_uri from above>'"
    );
    println!("  curl -s -u demo-client:demo-secret {i}/token -d grant_type=authorization_code \\");
    println!("    -d code=<code from Location> -d redirect_uri={DEMO_REDIRECT} \\");
    println!("    -d code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    println!("  curl -s {i}/.well-known/oauth-authorization-server");
    if s.demo.login {
        println!("Login step on: /authorize first sends the browser to /login (demo / demo);");
        println!("  open the authorize URL in a browser, or use curl -c jar -b jar -L.");
    }
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("legacy_server: {e}");
    }
}
