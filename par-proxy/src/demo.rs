//! `par-proxy --demo`: the demo authorization server, run standalone on a
//! loopback port, and the configuration of the proxy in front of it.
//!
//! The demo authorization server is the one `tower-par`'s `legacy_server`
//! example wraps in `ParLayer` (one source, `examples/demo_as/`): it
//! knows nothing of PAR. Here it runs without the layer; the proxy in
//! front of it adds `/par`, `request_uri` support at `/authorize`, the
//! require-PAR policy and the PAR members of its discovery document.
//!
//! ```no_run
//! # async fn run() -> Result<(), String> {
//! let listen = "127.0.0.1:8000".parse().unwrap();
//! // The upstream (on 127.0.0.1:0) and the proxy configuration naming it,
//! // its clients file included.
//! let (upstream, config) = par_proxy::demo::start(listen).await?;
//! assert_eq!(config.upstream, format!("http://{}", upstream.addr));
//! // ... serve `config`; dropping `upstream` stops the demo server and
//! // removes its files.
//! # Ok(())
//! # }
//! ```
//!
//! What differs from `legacy_server`, where the layer runs in process:
//!
//! - `/token` authenticates clients with a `TokenEndpoint` of its own (the
//!   same clients, issuer and rules), not the proxy layer's: the `jti` of
//!   a client assertion used at the proxy's `/par` is not remembered at
//!   `/token`, and `/token` asks for no DPoP nonces.
//! - The key a code is bound to reaches the server as the forwarded
//!   `dpop_jkt` parameter (the layer stores the push's proof key under
//!   that name); the `PushedAuthorization` request extension does not
//!   cross HTTP, and the demo server does not read it in either mode.
//! - The clients are the three of `legacy_server` (`demo-client` /
//!   `demo-secret`, `demo-post-client` / `demo-post-secret`,
//!   `demo-public`) plus `demo-fapi` (`private_key_jwt`, ES256, with a key
//!   made at start whose private JWK is [`DemoUpstream::fapi_key`]), all
//!   with the redirect URI [`DEMO_REDIRECT`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tower_par::{Client, MemoryStore, OAuthError, ParLayer, Params, StaticClients, TokenEndpoint};

use crate::config::{
    ClientsSection, ForwardAs, LogSection, ParSection, ProfileName, ProxyConfig, RedemptionName,
    StoreSection,
};

#[path = "../../examples/demo_as/mod.rs"]
mod demo_as;

pub use demo_as::{demo_clients, DEMO_FAPI_CLIENT, DEMO_REDIRECT};

/// The standalone demo server's client authentication at `/token`.
impl demo_as::TokenAuth for TokenEndpoint<StaticClients, MemoryStore> {
    async fn authenticate_with_dpop(
        &self,
        parts: &http::request::Parts,
        params: &Params<'_>,
    ) -> Result<(Arc<Client>, Option<String>), OAuthError> {
        TokenEndpoint::authenticate_with_dpop(self, parts, params).await
    }

    fn dpop_nonce(&self) -> Option<String> {
        TokenEndpoint::dpop_nonce(self)
    }

    fn verifies_jwt(&self) -> bool {
        true
    }
}

/// The demo authorization server running on a loopback port, from
/// [`start_upstream`]. Dropping it stops the server (gracefully: it stops
/// accepting and lets requests in flight finish) and removes its clients
/// file and key file.
#[derive(Debug)]
pub struct DemoUpstream {
    /// Where it listens: `127.0.0.1` and a port the system chose.
    pub addr: SocketAddr,
    clients_file: PathBuf,
    fapi_key: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DemoUpstream {
    /// The demo clients in the library's clients-file format (JSON, RFC
    /// 7591 member names; the `demo-fapi` client with the public key of
    /// [`fapi_key`](Self::fapi_key)): what `[clients] file` of the proxy
    /// in front names, so that the proxy and the server register the same
    /// clients. Mode 0600, in the temporary directory.
    pub fn clients_file(&self) -> &Path {
        &self.clients_file
    }

    /// The `demo-fapi` client's private JWK (`kid`, `alg` ES256, `use:
    /// sig`), mode 0600, in the temporary directory: what `hyper_client
    /// --key FILE --client-id demo-fapi --dpop` signs with.
    pub fn fapi_key(&self) -> &Path {
        &self.fapi_key
    }

    /// Stops the server and waits, at most 10 seconds, for the requests in
    /// flight to finish; then removes its files (as dropping it does,
    /// without the wait).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for DemoUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_file(&self.clients_file);
        let _ = std::fs::remove_file(&self.fapi_key);
    }
}

/// The demo clients in the library's clients-file format (JSON, RFC 7591
/// member names): the three of `legacy_server`'s default profile
/// (`demo-client`, `demo-post-client`, `demo-public`), and with
/// `fapi_public_jwk` the `demo-fapi` client (`private_key_jwt` with that
/// ES256 key, DPoP-bound tokens).
pub fn demo_clients_json(fapi_public_jwk: Option<&serde_json::Value>) -> String {
    let mut file = demo_as::demo_clients_value();
    if let (Some(jwk), Some(clients)) = (fapi_public_jwk, file["clients"].as_array_mut()) {
        clients.push(demo_as::demo_fapi_client_value(jwk));
    }
    format!("{file:#}\n")
}

/// Starts the demo authorization server, without the layer, on
/// `127.0.0.1:0`, with `issuer` (the public URL of the proxy in front, so
/// that its metadata and the `iss` of its authorization responses name
/// the proxy; a trailing `/` is dropped). Generates the `demo-fapi` key
/// and writes the clients file and the key file (see
/// [`DemoUpstream::clients_file`]). Its `/token` checks client assertions'
/// `aud` and DPoP proofs' `htu` against `issuer` and `<issuer>/token`.
///
/// Errors: a bad issuer URL, the loopback port cannot be bound, the files
/// cannot be written. Must be called within a tokio runtime.
pub async fn start_upstream(issuer: &str) -> Result<DemoUpstream, String> {
    let issuer = issuer.trim_end_matches('/');
    let (public, private) = demo_as::generate_fapi_key()?;
    let clients_json = demo_clients_json(Some(&public));
    let clients =
        StaticClients::from_json(&clients_json).map_err(|e| format!("demo clients: {e}"))?;
    let tokens = standalone_tokens(clients.clone(), issuer)?;
    let router = demo_as::router(
        &demo_as::AsOptions {
            issuer: issuer.to_owned(),
            clients,
            fapi: false,
            login: false,
            strict: false,
        },
        tokens,
    );
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| format!("demo authorization server: cannot listen on 127.0.0.1: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("demo authorization server: {e}"))?;
    let fapi_key = demo_as::write_fapi_key(&private, None)?;
    let clients_file = demo_as::temp_path("par-proxy-demo-clients", ".json");
    if let Err(e) = demo_as::write_private("the demo clients", &clients_file, &clients_json, true) {
        let _ = std::fs::remove_file(&fapi_key);
        return Err(e);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                // A send or a dropped sender: both mean stop.
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "demo authorization server stopped");
        }
    });
    Ok(DemoUpstream {
        addr,
        clients_file,
        fapi_key,
        stop: Some(stop),
        task: Some(task),
    })
}

/// The standalone server's token endpoint: client authentication from a
/// `ParLayer` built for that purpose with `clients` and `issuer`, never
/// applied as a layer (the proxy in front has its own).
fn standalone_tokens(
    clients: StaticClients,
    issuer: &str,
) -> Result<TokenEndpoint<StaticClients, MemoryStore>, String> {
    let par = ParLayer::new(clients)
        .issuer(issuer.to_owned())
        .map_err(|e| format!("demo issuer '{issuer}': {e}"))?
        // The `htu` of token-request DPoP proofs: the URL the metadata
        // advertises, through the proxy.
        .token_endpoint_url(format!("{issuer}/token"))
        .map_err(|e| format!("demo issuer '{issuer}': {e}"))?
        .build()
        .map_err(|e| format!("{}: {e}", e.setting().name()))?;
    Ok(par.token_endpoint())
}

/// The public URL of the proxy listening on `listen`, as `--demo` has it.
fn public_url(listen: SocketAddr) -> String {
    format!("http://{listen}")
}

/// The value of an environment variable; unset and empty are `None`.
fn env_value(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

/// The configuration of the proxy for `--demo`: listening on `listen`
/// (public URL `http://<listen>`), in front of the demo server at
/// `upstream` (`http://<upstream>`), with the defaults of a configuration
/// file but `[par] authorize_path = "/authorize"`, `lifetime_secs` from
/// `PAR_TTL_SECS` (1 to 600, default 60) and `require` from `PAR_REQUIRED`
/// (`1`/`true`/`yes` or `0`/`false`/`no`, default off).
///
/// `[clients] file` is left empty: it is the upstream's
/// [`DemoUpstream::clients_file`] ([`start`] sets it).
///
/// Errors name the variable: `PAR_TTL_SECS 'abc': not a number of
/// seconds`, `PAR_TTL_SECS '601': must be 1 to 600 seconds`,
/// `PAR_REQUIRED 'maybe': use 1 or 0`.
pub fn demo_config(listen: SocketAddr, upstream: SocketAddr) -> Result<ProxyConfig, String> {
    let lifetime_secs = match env_value("PAR_TTL_SECS")? {
        None => 60,
        Some(v) => match v.trim().parse::<u64>() {
            Ok(secs) if (1..=600).contains(&secs) => secs,
            Ok(_) => return Err(format!("PAR_TTL_SECS '{v}': must be 1 to 600 seconds")),
            Err(_) => return Err(format!("PAR_TTL_SECS '{v}': not a number of seconds")),
        },
    };
    let require = match env_value("PAR_REQUIRED")?.as_deref().map(str::trim) {
        None => false,
        Some("1" | "true" | "yes") => true,
        Some("0" | "false" | "no") => false,
        Some(other) => return Err(format!("PAR_REQUIRED '{other}': use 1 or 0")),
    };
    Ok(ProxyConfig {
        listen,
        upstream: format!("http://{upstream}"),
        public_url: Some(public_url(listen)),
        preserve_host: true,
        trusted_proxies: Vec::new(),
        upstream_timeout_secs: 30,
        max_body_bytes: 10 * 1024 * 1024,
        par: ParSection {
            path: "/par".into(),
            authorize_path: "/authorize".into(),
            lifetime_secs,
            require,
            profile: ProfileName::Rfc9126,
            redemption: RedemptionName::FlowBound,
            flow_paths: Vec::new(),
            forward_as: ForwardAs::Auto,
            max_upstream_url: 8192,
            metadata: true,
        },
        store: StoreSection::default(),
        clients: ClientsSection { file: None },
        tls: None,
        log: LogSection::default(),
        metrics: None,
    })
}

/// `--demo` in one call: checks the environment ([`demo_config`]), starts
/// the demo server ([`start_upstream`] with the proxy's public URL as its
/// issuer) and returns it with the proxy's configuration, whose `[clients]
/// file` is the server's clients file. Keep the [`DemoUpstream`] for as
/// long as the proxy runs.
pub async fn start(listen: SocketAddr) -> Result<(DemoUpstream, ProxyConfig), String> {
    // The environment first: a bad value starts nothing.
    demo_config(listen, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    let upstream = start_upstream(&public_url(listen)).await?;
    let mut config = demo_config(listen, upstream.addr)?;
    config.clients.file = Some(upstream.clients_file().to_owned());
    Ok((upstream, config))
}

/// What `--demo` prints at start: where the proxy and the demo server
/// listen, the demo clients, the `demo-fapi` key file, and the commands
/// that run a PAR flow through the proxy. No secret but the demo clients'
/// published ones (`demo-secret`).
pub fn banner(config: &ProxyConfig, upstream: &DemoUpstream) -> String {
    let i = config
        .public_url
        .clone()
        .unwrap_or_else(|| public_url(config.listen));
    let i = i.trim_end_matches('/');
    let key = upstream.fapi_key().display();
    format!(
        "par-proxy --demo: proxy on {i} (PAR required: {required}, request_uri lifetime {ttl} s), \
         demo authorization server on http://{addr} (no layer)
Clients: demo-client / demo-secret (client_secret_basic), demo-post-client / demo-post-secret \
         (client_secret_post), demo-public (none), {DEMO_FAPI_CLIENT} (private_key_jwt, ES256, \
         DPoP-bound tokens; its private JWK: {key}); redirect {DEMO_REDIRECT}
Try it:
  curl -s -u demo-client:demo-secret {i}/par \\
    -d response_type=code -d redirect_uri={DEMO_REDIRECT} -d state=xyz \\
    -d code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM -d code_challenge_method=S256
  curl -si '{i}/authorize?client_id=demo-client&request_uri=<request_uri from above>'
  curl -s -u demo-client:demo-secret {i}/token -d grant_type=authorization_code \\
    -d code=<code from Location> -d redirect_uri={DEMO_REDIRECT} \\
    -d code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk
  cargo run --example hyper_client -- --key {key} --client-id {DEMO_FAPI_CLIENT} --dpop {i}
  curl -s {i}/.well-known/oauth-authorization-server
",
        required = config.par.require,
        ttl = config.par.lifetime_secs,
        addr = upstream.addr,
    )
}
