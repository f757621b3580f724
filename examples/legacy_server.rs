//! A deliberately PAR-unaware authorization server, given PAR by `ParLayer`.
//!
//! The server (`examples/demo_as/`, which `par-proxy --demo` runs behind
//! the proxy too) knows nothing of pushed requests: `/authorize`
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

#[path = "demo_as/mod.rs"]
mod demo_as;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tower_par::{
    Client, MemoryStore, OAuthError, ParLayer, Params, Profile, Redemption, StaticClients,
    TokenEndpoint,
};
#[cfg(feature = "redis")]
use tower_par::{RedisStore, RedisStoreConfig};

pub use demo_as::demo_clients;
use demo_as::{AsOptions, DEMO_FAPI_CLIENT, DEMO_REDIRECT};

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
    let dpop_nonce_secret = flag("PAR_DPOP_NONCES", fapi || nonce_secret.is_some()).then(|| {
        nonce_secret.map_or_else(
            || demo_as::random_bytes::<32>().to_vec(),
            String::into_bytes,
        )
    });
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

/// The `demo-fapi` client, with a key pair made now; its private JWK is
/// written to `path`, or to a new file in the temporary directory.
fn demo_fapi_client(path: Option<&Path>) -> Result<(StaticClients, PathBuf), String> {
    let (public, private) = demo_as::generate_fapi_key()?;
    let file = serde_json::json!({ "clients": [demo_as::demo_fapi_client_value(&public)] });
    let clients = StaticClients::from_json(&file.to_string()).map_err(|e| e.to_string())?;
    let path = demo_as::write_fapi_key(&private, path)?;
    Ok((clients, path))
}

/// The layer's token-endpoint view for the store in use.
#[derive(Clone)]
enum Tokens {
    Memory(TokenEndpoint<StaticClients, MemoryStore>),
    #[cfg(feature = "redis")]
    Redis(TokenEndpoint<StaticClients, RedisStore>),
}

impl demo_as::TokenAuth for Tokens {
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

    fn verifies_jwt(&self) -> bool {
        cfg!(feature = "jwt")
    }
}

/// The demo application: the legacy server wrapped with the PAR layer,
/// under the default rules (RFC 9126).
pub async fn app(opts: &DemoOptions) -> Result<axum::Router, String> {
    app_with(opts, &ProfileOptions::default()).await
}

/// The demo application under `profile` (`--profile fapi2`: FAPI 2.0).
pub async fn app_with(
    opts: &DemoOptions,
    profile: &ProfileOptions,
) -> Result<axum::Router, String> {
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
    // The demo authorization server, its `/token` authenticating clients
    // with the layer's rules, store and replay cache.
    let server = AsOptions {
        issuer: opts.issuer.clone(),
        clients: opts.clients.clone(),
        fapi: profile.is_fapi(),
        login: opts.login,
        strict: opts.strict,
    };
    // `layer`, not `route_layer`: /par has no route of its own.
    match &opts.redis {
        None => {
            let router = demo_as::router(&server, Tokens::Memory(par.token_endpoint()));
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
            let router = demo_as::router(&server, Tokens::Redis(par.token_endpoint()));
            Ok(router.layer(par))
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => Err(
            "--redis needs the `redis` feature: cargo run --features redis --example legacy_server -- --redis URL"
                .into(),
        ),
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
