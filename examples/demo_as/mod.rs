//! The demo authorization server: deliberately PAR-unaware, shared by the
//! `legacy_server` example (which wraps it in `ParLayer`, in process) and
//! by `par-proxy --demo` (which runs it standalone on a loopback port and
//! puts the proxy in front of it). One source, included by both with
//! `#[path]`; it uses no Cargo feature of its own, so it compiles the same
//! in both crates: whatever depends on a feature of `tower-par` (`jwt`,
//! `redis`) is decided by the includer, through [`TokenAuth`].
//!
//! `/authorize` auto-approves a classic query-string (or form) request and
//! redirects (303) to the client's `redirect_uri` with a `code`, `state`
//! and `iss` (RFC 9207), optionally after a login step (`demo` / `demo`);
//! `/token` exchanges the code with PKCE (S256), authenticating the client
//! through a [`TokenAuth`] (the layer's `TokenEndpoint`), and binds the
//! token to a DPoP key when the code is; `/.well-known/...` publishes an
//! RFC 8414 document without any PAR member.
//!
//! The DPoP key a code is bound to is the authorization request's
//! `dpop_jkt` parameter (RFC 9449 §10). That is the only channel in both
//! modes, and it is enough: at `/par` the layer stores the thumbprint of
//! the push's `DPoP` proof (or the pushed `dpop_jkt`) as the `dpop_jkt`
//! parameter of the pushed request, and the rewritten authorization
//! request carries it to this server, in process or over HTTP through the
//! proxy. The `PushedAuthorization` request extension, which the layer
//! also inserts, never crosses HTTP and is not read here. A classic
//! (unpushed) request may carry `dpop_jkt` itself, with the same effect.
//!
//! The two modes differ in what the token endpoint shares with `/par`.
//! Wrapped in the layer, `/token` authenticates with
//! `par.token_endpoint()`, which shares the layer's store (its `jti`
//! replay cache) and DPoP nonces with `/par`. Standalone, it uses a
//! `TokenEndpoint` of its own, from a `ParLayer` built for the purpose and
//! never applied as a layer (the same clients, issuer and token endpoint
//! URL; its own replay cache; no DPoP nonces), so a client assertion seen
//! at the proxy's `/par` is not remembered at `/token`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use tower_par::{Client, OAuthError, Params, StaticClients, StaticClientsError};

/// The redirect URI of every demo client.
pub const DEMO_REDIRECT: &str = "http://127.0.0.1:8080/cb";
/// The built-in FAPI 2.0 client (`private_key_jwt` with a key made at
/// start, DPoP-bound tokens).
pub const DEMO_FAPI_CLIENT: &str = "demo-fapi";

/// Client authentication at the demo's `/token`, as the layer does it at
/// `/par`: implemented by the includer for the layer's `TokenEndpoint`
/// (with the store it uses), because what it can do depends on the
/// features `tower-par` was built with.
pub trait TokenAuth: Clone + Send + Sync + 'static {
    /// `TokenEndpoint::authenticate_with_dpop`: the authenticated client
    /// and, when the request has a `DPoP` header, the proof key's RFC 7638
    /// thumbprint.
    fn authenticate_with_dpop(
        &self,
        parts: &Parts,
        params: &Params<'_>,
    ) -> impl Future<Output = Result<(Arc<Client>, Option<String>), OAuthError>> + Send;

    /// A fresh `DPoP-Nonce` for the client's next proof, when nonces are on
    /// (`TokenEndpoint::dpop_nonce`, feature `jwt`).
    fn dpop_nonce(&self) -> Option<String>;

    /// Whether JWT client authentication and DPoP proofs are verified
    /// (`tower-par`'s `jwt` feature): what the discovery document
    /// advertises.
    fn verifies_jwt(&self) -> bool;
}

/// What shapes the demo authorization server (the layer's settings are
/// the includer's).
#[derive(Clone)]
pub struct AsOptions {
    /// Public base URL: the issuer (`iss`) and the advertised endpoints.
    /// Behind the proxy, the proxy's public URL.
    pub issuer: String,
    /// The registered clients (the same as the layer's).
    pub clients: StaticClients,
    /// FAPI 2.0 (`--profile fapi2`): only `private_key_jwt` advertised, and
    /// every token request needs a DPoP proof (FAPI-4).
    pub fapi: bool,
    /// Put a login step in front of `/authorize`.
    pub login: bool,
    /// The `request_uri`s in front are consumed at their first use
    /// (`Redemption::Strict`): the login step keeps the request
    /// server-side instead of bouncing it through `/authorize`.
    pub strict: bool,
}

/// The demo authorization server's routes (`/authorize`, `/token`, the
/// RFC 8414 and OpenID discovery documents, and `/login` with
/// [`AsOptions::login`]), its client authentication at `/token` from
/// `tokens`.
pub fn router<T: TokenAuth>(opts: &AsOptions, tokens: T) -> Router {
    let legacy = Legacy {
        issuer: opts.issuer.clone(),
        fapi: opts.fapi,
        clients: opts.clients.clone(),
        tokens,
        codes: Arc::default(),
        sessions: opts.login.then(Arc::default),
        pending: (opts.login && opts.strict).then(Arc::default),
    };
    let mut router = Router::new()
        .route(
            "/authorize",
            get(authorize_get::<T>).post(authorize_post::<T>),
        )
        .route("/token", post(token::<T>))
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::<T>),
        )
        .route("/.well-known/openid-configuration", get(metadata::<T>));
    if opts.login {
        router = router.route("/login", get(login_form::<T>).post(login_submit::<T>));
    }
    router.with_state(legacy)
}

/// The built-in demo clients (`demo-client` / `demo-secret`,
/// `client_secret_basic`; `demo-post-client` / `demo-post-secret`,
/// `client_secret_post`; `demo-public`, public), in the library's
/// clients-file format (JSON, RFC 7591 member names).
pub fn demo_clients_value() -> serde_json::Value {
    serde_json::json!({ "clients": [
        {
            "client_id": "demo-client",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret": "demo-secret",
            "redirect_uris": [DEMO_REDIRECT],
        },
        {
            "client_id": "demo-post-client",
            "token_endpoint_auth_method": "client_secret_post",
            "client_secret": "demo-post-secret",
            "redirect_uris": [DEMO_REDIRECT],
        },
        {
            "client_id": "demo-public",
            "token_endpoint_auth_method": "none",
            "redirect_uris": [DEMO_REDIRECT],
        },
    ]})
}

/// The built-in demo clients (`demo-client`, `demo-post-client`,
/// `demo-public`), loaded from their clients-file form
/// (`demo_clients_value`).
pub fn demo_clients() -> Result<StaticClients, StaticClientsError> {
    StaticClients::from_json(&demo_clients_value().to_string())
}

/// The `demo-fapi` client's entry in the clients-file format, for its
/// public JWK: `private_key_jwt` signed with ES256, DPoP-bound tokens,
/// redirect [`DEMO_REDIRECT`].
pub fn demo_fapi_client_value(public_jwk: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "client_id": DEMO_FAPI_CLIENT,
        "token_endpoint_auth_method": "private_key_jwt",
        "redirect_uris": [DEMO_REDIRECT],
        "jwks": { "keys": [public_jwk] },
        "token_endpoint_auth_signing_alg": "ES256",
        "dpop_bound_access_tokens": true,
    })
}

/// An ES256 (P-256) key pair made now: the public JWK and the private JWK,
/// both with `kid` (the RFC 7638 thumbprint), `alg` and `use: sig`.
pub fn generate_fapi_key() -> Result<(serde_json::Value, serde_json::Value), String> {
    use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
    use p256::elliptic_curve::Generate;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};

    let secret = p256::SecretKey::generate();
    let pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("key encoding: {e}"))?;
    let encoding = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())
        .map_err(|e| format!("key encoding: {e}"))?;
    let jwk = Jwk::from_encoding_key(&encoding, jsonwebtoken::Algorithm::ES256)
        .map_err(|e| format!("public JWK: {e}"))?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| format!("JWK thumbprint: {e}"))?;
    let mut public = serde_json::to_value(&jwk).map_err(|e| e.to_string())?;
    let members = public
        .as_object_mut()
        .ok_or("public JWK is not an object")?;
    members.insert("kid".into(), kid.into());
    members.insert("alg".into(), "ES256".into());
    members.insert("use".into(), "sig".into());
    let mut private = public.clone();
    private["d"] = URL_SAFE_NO_PAD.encode(secret.to_bytes()).into();
    Ok((public, private))
}

/// Writes the `demo-fapi` client's private JWK, mode 0600, to `path`, or
/// to a new file in the temporary directory; returns where.
pub fn write_fapi_key(
    private_jwk: &serde_json::Value,
    path: Option<&Path>,
) -> Result<PathBuf, String> {
    let text = format!("{private_jwk:#}\n");
    match path {
        Some(path) => {
            write_private("the demo-fapi key", path, &text, false)?;
            Ok(path.to_owned())
        }
        None => {
            let path = temp_path("tower-par-demo-fapi", ".jwk.json");
            write_private("the demo-fapi key", &path, &text, true)?;
            Ok(path)
        }
    }
}

/// Writes a file readable by its owner only (`what` names it in errors).
/// `new`: the file must not exist yet (a random name in a shared
/// directory).
pub fn write_private(what: &str, path: &Path, text: &str, new: bool) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let shown = path.display();
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot write {what} to {shown}: {e}"))?;
    // An existing file keeps its mode on open: narrow it before writing.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {shown}: {e}"))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {what} to {shown}: {e}"))
}

/// A new, unguessable file name in the temporary directory:
/// `<prefix>-<random><suffix>`.
pub fn temp_path(prefix: &str, suffix: &str) -> PathBuf {
    let name = format!(
        "{prefix}-{}{suffix}",
        URL_SAFE_NO_PAD.encode(random_bytes::<9>())
    );
    std::env::temp_dir().join(name)
}

/// `N` bytes from the OS random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random source");
    b
}

/// What the legacy server remembers about an issued code.
struct Grant {
    client_id: String,
    redirect_uri: Option<String>,
    challenge: Option<(String, String)>,
    scope: Option<String>,
    /// The DPoP key thumbprint the request was bound to (`dpop_jkt`, as
    /// the layer stored it from the push's proof or parameter, DPOP-11).
    dpop_jkt: Option<String>,
    issued: Instant,
}

/// An authorization request kept server-side across the login step.
struct Pending {
    params: HashMap<String, String>,
    /// The value of the browser's `legacy_pending_<id>` cookie.
    secret: String,
    created: Instant,
}

/// The layer's token-endpoint view for the store in use.

#[derive(Clone)]
struct Legacy<T> {
    issuer: String,
    fapi: bool,
    clients: StaticClients,
    tokens: T,
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
/// How long a code can be exchanged (FAPI-11: at most 60 s).
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// Codes waiting for their exchange at once; more get
/// `temporarily_unavailable` rather than unbounded memory.
const MAX_CODES: usize = 10_000;
/// Largest token request body read.
const MAX_TOKEN_BODY: usize = 64 * 1024;

impl<T> Legacy<T> {
    /// Keeps a grant under a new code; `None` when too many codes wait.
    fn keep_code(&self, grant: Grant) -> Option<String> {
        let mut codes = self.codes.lock().unwrap();
        if codes.len() >= MAX_CODES {
            codes.retain(|_, g| g.issued.elapsed() <= CODE_LIFETIME);
            if codes.len() >= MAX_CODES {
                return None;
            }
        }
        let code = random_token();
        codes.insert(code.clone(), grant);
        Some(code)
    }

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
    getrandom::fill(&mut b).expect("the OS random source");
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
async fn authorize<T: TokenAuth>(
    State(app): State<Legacy<T>>,
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
        let target = format!("/login?{}", form_encode([("return_to", received.as_str())]));
        return Redirect::to(&target).into_response();
    }
    issue(&app, &params)
}

/// The authorization response for a logged-in user: a code (auto-approved)
/// or an error, at the client's redirect URI, with `iss` (RFC 9207,
/// FAPI-19), as a 303 (FAPI-22: never a 307, which would resend a POSTed
/// request to the client).
fn issue<T>(app: &Legacy<T>, params: &HashMap<String, String>) -> Response {
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
    let mut response: Vec<(&str, String)> = Vec::with_capacity(3);
    if get("response_type").as_deref() != Some("code") {
        response.push(("error", "unsupported_response_type".into()));
    } else {
        let challenge = get("code_challenge").map(|c| {
            (
                c,
                get("code_challenge_method").unwrap_or_else(|| "plain".into()),
            )
        });
        let grant = Grant {
            client_id,
            redirect_uri: get("redirect_uri"),
            challenge,
            scope: get("scope"),
            dpop_jkt: get("dpop_jkt"),
            issued: Instant::now(),
        };
        match app.keep_code(grant) {
            Some(code) => response.push(("code", code)),
            None => response.push(("error", "temporarily_unavailable".into())),
        }
    }
    response.push(("iss", app.issuer.clone()));
    if let Some(state) = get("state") {
        response.push(("state", state));
    }
    let mut target = redirect_uri;
    target.push(if target.contains('?') { '&' } else { '?' });
    target.push_str(&form_encode(response.iter().map(|(k, v)| (*k, v.as_str()))));
    Redirect::to(&target).into_response()
}

async fn authorize_get<T: TokenAuth>(
    state: State<Legacy<T>>,
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

async fn authorize_post<T: TokenAuth>(
    state: State<Legacy<T>>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    // A POSTed request comes back as the equivalent GET after login.
    let received = format!(
        "/authorize?{}",
        form_encode(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
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
        form_encode([(pair.0, pair.1.as_str())])
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
fn continuation<T>(
    app: &Legacy<T>,
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

async fn login_form<T: TokenAuth>(
    State(app): State<Legacy<T>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match continuation(&app, &headers, &q, None) {
        Ok(next) => login_page(&next, false),
        Err(msg) => error_page(StatusCode::BAD_REQUEST, msg),
    }
}

async fn login_submit<T: TokenAuth>(
    State(app): State<Legacy<T>>,
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

fn token_error(error: OAuthError) -> Response {
    error.to_response().map(axum::body::Body::new)
}

fn grant_error(description: &'static str) -> Response {
    token_error(OAuthError::new(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        description,
    ))
}

fn dpop_error(description: &'static str) -> Response {
    token_error(OAuthError::new(
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        description,
    ))
}

/// The legacy token endpoint: authorization_code with PKCE, the client
/// authenticated as at `/par`, the token DPoP-bound when the code is.
async fn token<T: TokenAuth>(
    State(app): State<Legacy<T>>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return token_error(OAuthError::invalid_request(
            "the token request must be application/x-www-form-urlencoded",
        ));
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_TOKEN_BODY).await else {
        return token_error(OAuthError::invalid_request(
            "the token request body is unreadable or larger than 64 KiB",
        ));
    };
    let params = match Params::parse(&body) {
        Ok(params) => params,
        Err(e) => return token_error(OAuthError::invalid_request(e.to_string())),
    };
    // Before the code is looked at: a `use_dpop_nonce` answer then leaves
    // both the code and the client assertion unused for the retry.
    let (client, proof_jkt) = match app.tokens.authenticate_with_dpop(&parts, &params).await {
        Ok(found) => found,
        Err(e) => return token_error(e),
    };
    if params.get("grant_type") != Some("authorization_code") {
        return token_error(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code is supported",
        ));
    }
    let Some(code) = params.get("code") else {
        return token_error(OAuthError::invalid_request("code is required"));
    };
    // RFC 9449 §5.2, DPOP-10: such a client's tokens are always DPoP-bound.
    // FAPI-4: under FAPI every token is sender-constrained, and the demo
    // has no mTLS, so every token request needs a proof.
    if proof_jkt.is_none() {
        if app.fapi {
            return dpop_error("FAPI 2.0 access tokens are sender-constrained: send a DPoP proof");
        }
        if client.dpop_bound_access_tokens {
            return dpop_error("this client's tokens are DPoP-bound: send a DPoP proof");
        }
    }
    let grant = {
        let mut codes = app.codes.lock().unwrap();
        let Some(grant) = codes.get(code) else {
            return grant_error("unknown or used code");
        };
        // RFC 9449 §10, DPOP-2, FAPI-12: a code bound to a DPoP key is
        // exchanged only with a proof made with that key. A request
        // without it is refused and the code stays for its holder, so
        // whoever saw the code can neither use it nor burn it.
        match (&grant.dpop_jkt, &proof_jkt) {
            (Some(_), None) => {
                return dpop_error(
                    "this code is bound to a DPoP key: send a DPoP proof made with that key",
                )
            }
            (Some(bound), Some(jkt)) if bound != jkt => {
                return dpop_error("the DPoP proof's key is not the one this code is bound to")
            }
            _ => {}
        }
        // RFC 6749 §4.1.2, FAPI-21: one exchange per code, whatever the
        // outcome of the checks below.
        codes.remove(code)
    };
    let Some(grant) = grant else {
        return grant_error("unknown or used code");
    };
    if grant.client_id != client.client_id || grant.issued.elapsed() > CODE_LIFETIME {
        return grant_error("code was not issued to this client or expired");
    }
    if grant.redirect_uri.is_some() && grant.redirect_uri.as_deref() != params.get("redirect_uri") {
        return grant_error("redirect_uri does not match");
    }
    if let Some((challenge, method)) = &grant.challenge {
        let Some(verifier) = params.get("code_verifier") else {
            return grant_error("code_verifier is required");
        };
        let computed = match method.as_str() {
            "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            _ => verifier.to_owned(),
        };
        if &computed != challenge {
            return grant_error("PKCE verification failed");
        }
    }
    let mut body = serde_json::json!({
        "access_token": random_token(),
        "token_type": if proof_jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": 3600,
    });
    if let Some(scope) = grant.scope {
        body["scope"] = scope.into();
    }
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
    // RFC 9449 §8.2: the nonce for the client's next proof.
    if let Some(nonce) = app.tokens.dpop_nonce().and_then(|n| n.parse().ok()) {
        res.headers_mut().insert("dpop-nonce", nonce);
    }
    res
}

async fn metadata<T: TokenAuth>(State(app): State<Legacy<T>>) -> Response {
    let i = &app.issuer;
    let mut doc = serde_json::json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    });
    // What `/token` accepts, which is what the layer accepts at `/par`.
    if app.fapi {
        doc["token_endpoint_auth_methods_supported"] = serde_json::json!(["private_key_jwt"]);
        doc["token_endpoint_auth_signing_alg_values_supported"] =
            serde_json::json!(["PS256", "ES256", "EdDSA"]);
        doc["dpop_signing_alg_values_supported"] = serde_json::json!(["PS256", "ES256", "EdDSA"]);
    } else {
        let mut methods = vec!["client_secret_basic", "client_secret_post", "none"];
        if app.tokens.verifies_jwt() {
            methods.extend(["private_key_jwt", "client_secret_jwt"]);
            // `/token` enforces the DPoP binding of codes (DPOP-11), so DPoP
            // is advertised; the layer puts in the algorithms it verifies.
            doc["dpop_signing_alg_values_supported"] = serde_json::json!([
                "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"
            ]);
        }
        doc["token_endpoint_auth_methods_supported"] = serde_json::json!(methods);
    }
    Json(doc).into_response()
}

/// `application/x-www-form-urlencoded` serialization (the WHATWG URL
/// byte serializer: ASCII alphanumerics and `*-._` as they are, space as
/// `+`, every other byte percent-encoded).
fn form_encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    fn push(out: &mut String, s: &str) {
        for &b in s.as_bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(char::from(b))
                }
                b' ' => out.push('+'),
                _ => {
                    const HEX: &[u8; 16] = b"0123456789ABCDEF";
                    out.push('%');
                    out.push(char::from(HEX[usize::from(b >> 4)]));
                    out.push(char::from(HEX[usize::from(b & 0xf)]));
                }
            }
        }
    }
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        push(&mut out, name);
        out.push('=');
        push(&mut out, value);
    }
    out
}
