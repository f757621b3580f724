//! A deliberately PAR-unaware authorization server, given PAR by `ParLayer`.
//!
//! The server below knows nothing of pushed requests: `/authorize`
//! auto-approves a classic query-string request and redirects (303) to the
//! client's `redirect_uri` with a `code`, `state` and `iss` (RFC 9207);
//! `/token` exchanges the code with PKCE (S256), authenticating the client
//! exactly as `/par` does ([`ParLayer::token_endpoint`]), and binds the
//! token to a DPoP key when the code is; it publishes an RFC 8414 document.
//! Wrapped in `ParLayer`, it gains `/par`, `request_uri` support at
//! `/authorize` and the PAR metadata members.
//!
//! ```text
//! cargo run --example legacy_server                # 127.0.0.1:3000
//! cargo run --example legacy_server -- --addr 127.0.0.1:4000 --clients clients.json
//! cargo run --example legacy_server -- --profile fapi2   # FAPI 2.0, built-in demo-fapi client
//! ```
//!
//! Environment: `ADDR`, `PAR_ISSUER` (public base URL: the issuer, and the
//! only client-assertion `aud` under FAPI), `PAR_CLIENTS` (clients file),
//! `PAR_PROFILE` (`rfc9126` or `fapi2`, same as `--profile`),
//! `PAR_FAPI_KEY` (same as `--fapi-key FILE`), `PAR_DPOP_NONCES=0|1` (server
//! DPoP nonces, on by default under `fapi2`), `PAR_DPOP_NONCE_SECRET` (their
//! key, at least 32 bytes, shared by instances), `PAR_REQUIRED=1`,
//! `PAR_TTL_SECS`, `PAR_METADATA=0`, `PAR_DEMO_LOGIN=1` (same as `--login`),
//! `PAR_REDEMPTION=strict`, `PAR_FLOW_WINDOW_SECS` (default 600),
//! `PAR_REDIS_URL` (same as `--redis URL`: keep pushed requests in Redis,
//! shared by instances), `PAR_REDIS_SECRET` (the `RedisStore` secret every
//! instance shares).
//!
//! `--profile fapi2` sets [`Profile::Fapi2`] on the layer: `private_key_jwt`
//! only, the issuer as the only `aud`, PS256/ES256/EdDSA, PKCE S256 and
//! `redirect_uri` required, PAR required. Clients come from `--clients FILE`
//! (RFC 7591 names: `token_endpoint_auth_method` `private_key_jwt`, `jwks`
//! or `jwks_uri`, `token_endpoint_auth_signing_alg`,
//! `dpop_bound_access_tokens`, ...). Without `--clients` it registers one
//! client, `demo-fapi` (`private_key_jwt` with an ES256 key generated at
//! start, DPoP-bound tokens, redirect `http://127.0.0.1:8080/cb`), and
//! writes its private JWK (`kid`, `alg`, `use: sig`), mode 0600, to
//! `--fapi-key FILE` or to a new file in the temporary directory, whose path
//! it prints (that one is removed when the demo stops on Ctrl-C or
//! SIGTERM); `hyper_client --key FILE --dpop` then runs the whole flow.
//!
//! The token endpoint: a code whose request carried a DPoP key (a `DPoP`
//! proof at `/par`, or `dpop_jkt`) is only exchanged with a DPoP proof made
//! with that key (RFC 9449 §10, DPOP-2, FAPI-12); a missing or other key
//! gets `400 invalid_dpop_proof` and leaves the code for its rightful
//! holder. A client registered with `dpop_bound_access_tokens` needs a
//! proof on every token request (DPOP-10), and so does every client under
//! `fapi2` (FAPI-4: sender-constrained tokens; the demo has no mTLS). With
//! a proof the token is `token_type: DPoP`, without one `Bearer`. Codes are one-time and live
//! 60 s (FAPI-11, FAPI-21).
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

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use tower_par::{
    AuthMethod, Client, Jwks, MemoryStore, OAuthError, ParLayer, Params, Profile, Redemption,
    StaticClients, TokenEndpoint,
};
#[cfg(feature = "redis")]
use tower_par::{RedisStore, RedisStoreConfig};

const DEMO_REDIRECT: &str = "http://127.0.0.1:8080/cb";
/// The built-in FAPI 2.0 client (`--profile fapi2` without `--clients`).
const DEMO_FAPI_CLIENT: &str = "demo-fapi";

const USAGE: &str = "\
usage: legacy_server [--addr HOST:PORT] [--clients FILE] [--profile rfc9126|fapi2]
                     [--fapi-key FILE] [--login] [--redis URL]

  --addr HOST:PORT   listen address (default 127.0.0.1:3000; env ADDR)
  --clients FILE     clients file, JSON or TOML, RFC 7591 member names
                     (token_endpoint_auth_method, jwks, jwks_uri,
                     token_endpoint_auth_signing_alg, dpop_bound_access_tokens, ...;
                     env PAR_CLIENTS)
  --profile NAME     rfc9126 (default) or fapi2: the FAPI 2.0 Security Profile,
                     private_key_jwt only, PKCE S256, PAR required (env PAR_PROFILE)
  --fapi-key FILE    fapi2 without --clients: where the built-in demo-fapi client's
                     private JWK is written, mode 0600 (env PAR_FAPI_KEY; default a
                     new temporary file, printed at start, removed at exit)
  --login            a login step (demo / demo) in front of /authorize (env PAR_DEMO_LOGIN=1)
  --redis URL        keep pushed requests in Redis (env PAR_REDIS_URL)

env: PAR_ISSUER (issuer; the only client-assertion aud under fapi2)
     PAR_DPOP_NONCES=0|1 (server DPoP nonces; on by default under fapi2)
     PAR_DPOP_NONCE_SECRET (their key, 32+ bytes, shared by instances)
     PAR_REQUIRED=1 PAR_TTL_SECS PAR_METADATA=0 PAR_REDEMPTION=strict
     PAR_FLOW_WINDOW_SECS PAR_REDIS_SECRET";

struct Settings {
    addr: SocketAddr,
    demo: DemoOptions,
    profile: ProfileOptions,
    /// Where the built-in `demo-fapi` client's private key was written.
    fapi_key: Option<PathBuf>,
    /// Whether that file is one the demo made up (removed if it cannot
    /// start).
    fapi_key_made: bool,
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

/// The rule set of the demo: [`app`] uses the defaults (RFC 9126, no DPoP
/// nonces), [`app_with`] these.
#[derive(Clone, Default)]
pub struct ProfileOptions {
    /// [`Profile::Fapi2`] for `--profile fapi2`.
    pub profile: Profile,
    /// The key of the stateless DPoP nonces; `Some` makes `/par` and
    /// `/token` require them (RFC 9449 §8, DPOP-7).
    pub dpop_nonce_secret: Option<Vec<u8>>,
}

impl ProfileOptions {
    fn is_fapi(&self) -> bool {
        self.profile == Profile::Fapi2
    }
}

fn parse_profile(name: &str) -> Result<Profile, String> {
    match name {
        "rfc9126" => Ok(Profile::Rfc9126),
        "fapi2" => Ok(Profile::Fapi2),
        other => Err(format!("unknown profile '{other}': use rfc9126 or fapi2")),
    }
}

fn settings() -> Result<Settings, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|s| !s.is_empty());
    let mut args = std::env::args().skip(1);
    let mut addr = env("ADDR");
    let mut clients_file = env("PAR_CLIENTS");
    let mut profile = env("PAR_PROFILE");
    let mut fapi_key = env("PAR_FAPI_KEY").map(PathBuf::from);
    let mut login = false;
    let mut redis = env("PAR_REDIS_URL");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = Some(args.next().ok_or("--addr needs a value")?),
            "--clients" => clients_file = Some(args.next().ok_or("--clients needs a value")?),
            "--profile" => profile = Some(args.next().ok_or("--profile needs rfc9126 or fapi2")?),
            "--fapi-key" => {
                fapi_key = Some(args.next().ok_or("--fapi-key needs a file")?.into());
            }
            "--login" => login = true,
            "--redis" => redis = Some(args.next().ok_or("--redis needs a URL")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}' (try --help)")),
        }
    }
    let profile = match profile.as_deref() {
        None => Profile::Rfc9126,
        Some(name) => parse_profile(name)?,
    };
    let fapi = profile == Profile::Fapi2;
    #[cfg(not(feature = "jwt"))]
    if fapi {
        return Err("--profile fapi2 needs the `jwt` feature (on by default)".into());
    }
    let addr: SocketAddr = addr
        .as_deref()
        .unwrap_or("127.0.0.1:3000")
        .parse()
        .map_err(|e| format!("bad address: {e}"))?;
    let issuer = env("PAR_ISSUER")
        .map(|s| s.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{addr}"));
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
    let nonce_secret = env("PAR_DPOP_NONCE_SECRET");
    let dpop_nonce_secret = flag("PAR_DPOP_NONCES", fapi || nonce_secret.is_some())
        .then(|| nonce_secret.map_or_else(|| random_bytes::<32>().to_vec(), String::into_bytes));
    // Last: the key file is written only once every other setting is good.
    let fapi_key_arg = fapi_key.clone();
    let (clients, fapi_key) = match (clients_file, fapi) {
        (Some(path), _) => {
            if fapi_key.is_some() {
                return Err(
                    "--fapi-key is for the built-in demo-fapi client: not with --clients".into(),
                );
            }
            let clients = StaticClients::from_path(&path).map_err(|e| format!("{path}: {e}"))?;
            (clients, None)
        }
        (None, true) => {
            let (clients, path) = demo_fapi_client(fapi_key.as_deref())?;
            (clients, Some(path))
        }
        (None, false) => {
            if fapi_key.is_some() {
                return Err("--fapi-key needs --profile fapi2".into());
            }
            (demo_clients().map_err(|e| e.to_string())?, None)
        }
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
        profile: ProfileOptions {
            profile,
            dpop_nonce_secret,
        },
        fapi_key_made: fapi_key.is_some() && fapi_key_arg.is_none(),
        fapi_key,
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

/// The `demo-fapi` client, with a key pair made now; its private JWK is
/// written to `path`, or to a new file in the temporary directory.
fn demo_fapi_client(path: Option<&Path>) -> Result<(StaticClients, PathBuf), String> {
    let (public, private) = generate_fapi_key()?;
    let jwks = Jwks::from_value(serde_json::json!({ "keys": [public] }))?;
    let clients = StaticClients::new()
        .with_client(
            Client::new(DEMO_FAPI_CLIENT, AuthMethod::PrivateKeyJwt)
                .redirect_uri(DEMO_REDIRECT)
                .jwks(jwks)
                .token_endpoint_auth_signing_alg("ES256")
                .dpop_bound_access_tokens(true),
            None,
        )
        .map_err(|e| e.to_string())?;
    let text = format!("{private:#}\n");
    let path = match path {
        Some(path) => {
            write_private(path, &text, false)?;
            path.to_owned()
        }
        None => {
            let name = format!(
                "tower-par-demo-fapi-{}.jwk.json",
                URL_SAFE_NO_PAD.encode(random_bytes::<9>())
            );
            let path = std::env::temp_dir().join(name);
            write_private(&path, &text, true)?;
            path
        }
    };
    Ok((clients, path))
}

/// Writes a private key readable by its owner only. `new`: the file must
/// not exist yet (a random name in a shared directory).
fn write_private(path: &Path, text: &str, new: bool) -> Result<(), String> {
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
        .map_err(|e| format!("cannot write the demo-fapi key to {shown}: {e}"))?;
    // An existing file keeps its mode on open: narrow it before writing.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {shown}: {e}"))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write the demo-fapi key to {shown}: {e}"))
}

fn random_bytes<const N: usize>() -> [u8; N] {
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
enum Tokens {
    Memory(TokenEndpoint<StaticClients, MemoryStore>),
    #[cfg(feature = "redis")]
    Redis(TokenEndpoint<StaticClients, RedisStore>),
}

impl Tokens {
    /// Client authentication and the request's DPoP proof (htm POST, htu
    /// the token endpoint URL), as the key thumbprint; `None` without a
    /// `DPoP` header.
    async fn authenticate_with_dpop(
        &self,
        parts: &http::request::Parts,
        params: &Params<'_>,
    ) -> Result<(Arc<Client>, Option<String>), OAuthError> {
        match self {
            Self::Memory(t) => t.authenticate_with_dpop(parts, params).await,
            #[cfg(feature = "redis")]
            Self::Redis(t) => t.authenticate_with_dpop(parts, params).await,
        }
    }

    /// A fresh `DPoP-Nonce` for the client's next proof, when nonces are on.
    #[cfg(feature = "jwt")]
    fn dpop_nonce(&self) -> Option<String> {
        match self {
            Self::Memory(t) => t.dpop_nonce(),
            #[cfg(feature = "redis")]
            Self::Redis(t) => t.dpop_nonce(),
        }
    }

    #[cfg(not(feature = "jwt"))]
    fn dpop_nonce(&self) -> Option<String> {
        None
    }
}

#[derive(Clone)]
struct Legacy {
    issuer: String,
    fapi: bool,
    clients: StaticClients,
    tokens: Tokens,
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

impl Legacy {
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
/// or an error, at the client's redirect URI, with `iss` (RFC 9207,
/// FAPI-19), as a 303 (FAPI-22: never a 307, which would resend a POSTed
/// request to the client).
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
    target.push_str(&serde_urlencoded::to_string(&response).unwrap_or_default());
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
async fn token(State(app): State<Legacy>, request: axum::extract::Request) -> Response {
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

async fn metadata(State(app): State<Legacy>) -> Response {
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
        if cfg!(feature = "jwt") {
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

/// The demo application: the legacy server wrapped with the PAR layer,
/// under the default rules (RFC 9126).
pub async fn app(opts: &DemoOptions) -> Result<Router, String> {
    app_with(opts, &ProfileOptions::default()).await
}

/// The demo application under `profile` (`--profile fapi2`: FAPI 2.0).
pub async fn app_with(opts: &DemoOptions, profile: &ProfileOptions) -> Result<Router, String> {
    let mut par = ParLayer::new(opts.clients.clone())
        .issuer(opts.issuer.clone())
        .map_err(|e| format!("PAR_ISSUER: {e}"))?
        // The `htu` of token-request DPoP proofs: the URL advertised below.
        .token_endpoint_url(format!("{}/token", opts.issuer))
        .map_err(|e| format!("PAR_ISSUER: {e}"))?
        .profile(profile.profile)
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
    if let Some(secret) = &profile.dpop_nonce_secret {
        #[cfg(feature = "jwt")]
        {
            par = par
                .dpop_nonce_secret(secret)
                .map_err(|e| format!("PAR_DPOP_NONCE_SECRET: {e}"))?;
        }
        #[cfg(not(feature = "jwt"))]
        {
            let _ = secret;
            return Err("DPoP nonces need the `jwt` feature (on by default)".into());
        }
    }
    // Combinations of settings are checked once, before serving.
    let par = par
        .build()
        .map_err(|e| format!("{}: {e}", e.setting().name()))?;
    let legacy = |tokens: Tokens| Legacy {
        issuer: opts.issuer.clone(),
        fapi: profile.is_fapi(),
        clients: opts.clients.clone(),
        tokens,
        codes: Arc::default(),
        sessions: opts.login.then(Arc::default),
        pending: (opts.login && opts.strict).then(Arc::default),
    };
    // `layer`, not `route_layer`: /par has no route of its own.
    match &opts.redis {
        None => {
            let router = routes(opts, legacy(Tokens::Memory(par.token_endpoint())));
            Ok(router.layer(par))
        }
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
            let par = par.with_store(store);
            let router = routes(opts, legacy(Tokens::Redis(par.token_endpoint())));
            Ok(router.layer(par))
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => Err(
            "--redis needs the `redis` feature: cargo run --features redis --example legacy_server -- --redis URL"
                .into(),
        ),
    }
}

fn routes(opts: &DemoOptions, legacy: Legacy) -> Router {
    let mut router = Router::new()
        .route("/authorize", get(authorize_get).post(authorize_post))
        .route("/token", post(token))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata));
    if opts.login {
        router = router.route("/login", get(login_form).post(login_submit));
    }
    router.with_state(legacy)
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
    let fail = |code: i32, message: String| -> ! {
        eprintln!("legacy_server: {message}");
        if let Some(key) = s.fapi_key.as_ref().filter(|_| s.fapi_key_made) {
            let _ = std::fs::remove_file(key);
        }
        std::process::exit(code)
    };
    let app = match app_with(&s.demo, &s.profile).await {
        Ok(app) => app,
        Err(e) => fail(2, e),
    };
    let listener = match tokio::net::TcpListener::bind(s.addr).await {
        Ok(l) => l,
        Err(e) => fail(1, format!("cannot listen on {}: {e}", s.addr)),
    };
    let i = &s.demo.issuer;
    let fapi = s.profile.is_fapi();
    println!(
        "legacy_server listening on http://{} (issuer {i}, profile: {}, PAR required: {}, login step: {}, store: {})",
        s.addr,
        if fapi { "fapi2" } else { "rfc9126" },
        s.demo.required || fapi,
        s.demo.login,
        if s.demo.redis.is_some() { "redis" } else { "memory" }
    );
    if fapi {
        print_fapi_banner(&s);
    } else {
        println!("Try it (demo-client / demo-secret, client_secret_basic):");
        println!("  curl -s -u demo-client:demo-secret {i}/par \\");
        println!("    -d response_type=code -d redirect_uri={DEMO_REDIRECT} -d state=xyz \\");
        println!("    -d code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM -d code_challenge_method=S256");
        println!(
            "  curl -si '{i}/authorize?client_id=demo-client&request_uri=<request_uri from above>'"
        );
        println!(
            "  curl -s -u demo-client:demo-secret {i}/token -d grant_type=authorization_code \\"
        );
        println!("    -d code=<code from Location> -d redirect_uri={DEMO_REDIRECT} \\");
        println!("    -d code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        println!("  cargo run --example hyper_client -- {i}");
    }
    println!("  curl -s {i}/.well-known/oauth-authorization-server");
    if s.demo.login {
        println!("Login step on: /authorize first sends the browser to /login (demo / demo);");
        println!("  open the authorize URL in a browser, or use curl -c jar -b jar -L.");
    }
    let served = match s.fapi_key.as_ref().filter(|_| s.fapi_key_made) {
        None => axum::serve(listener, app).await,
        // The key file the demo made up goes when the demo goes (Ctrl-C,
        // SIGTERM): its client exists only in this process.
        Some(key) => {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop_signal())
                .await;
            let _ = std::fs::remove_file(key);
            served
        }
    };
    if let Err(e) = served {
        eprintln!("legacy_server: {e}");
    }
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn print_fapi_banner(s: &Settings) {
    let i = &s.demo.issuer;
    println!(
        "FAPI 2.0: private_key_jwt only (aud = {i}), PS256/ES256/EdDSA, PKCE S256 and redirect_uri \
         required, PAR required, codes bound to the push's DPoP key, DPoP nonces {}.",
        if s.profile.dpop_nonce_secret.is_some() { "on" } else { "off" }
    );
    match &s.fapi_key {
        Some(key) => {
            println!(
                "Built-in client {DEMO_FAPI_CLIENT} (private_key_jwt, ES256, DPoP-bound tokens, redirect {DEMO_REDIRECT})."
            );
            println!("Its private key (JWK): {}", key.display());
            println!("Run the FAPI flow (push with DPoP, authorize, token with DPoP):");
            println!(
                "  cargo run --example hyper_client -- --key {} --dpop {i}",
                key.display()
            );
        }
        None => {
            println!(
                "Clients from the clients file. With a private_key_jwt client and its private JWK:"
            );
            println!(
                "  cargo run --example hyper_client -- --key KEY.jwk --client-id CLIENT_ID --dpop {i}"
            );
        }
    }
}
