//! The [`ParLayer`] the configuration describes, and the store behind it.
//!
//! [`build`] turns a loaded [`ProxyConfig`] into the layer that runs in
//! front of the forwarder: the PAR endpoint at `par.path`, `request_uri`
//! rewriting at `par.authorize_path`, the require-PAR policy, the profile,
//! the redemption policy, metadata augmentation of the upstream's
//! discovery documents (`par.metadata`, on by default), with the clients
//! from `clients.file`, the CA certificates of `tls.client_ca` as the
//! roots `tls_client_auth` client certificates must chain to, and the
//! store `store.redis_url` names (in memory when absent). Every failure is a [`Problem`] naming the configuration
//! key it comes from.

use std::time::Duration;

use tower_par::{
    Completion, ConfigError, MemoryStore, MemoryStoreConfig, Metadata, ParLayer, ParStore, Profile,
    PushedRequest, RedeemMode, RedeemOutcome, Redemption, RedisStore, RedisStoreConfig, RequestUri,
    Setting, StaticClients, StoreError,
};

use crate::config::{self, Environment, Problem, ProfileName, ProxyConfig, RedemptionName};

/// How the proxy authenticates clients: the clients file.
pub type ProxyClients = StaticClients;

/// The layer the proxy runs in front of the forwarder.
pub type ProxyLayer = ParLayer<ProxyClients, ProxyStore>;

/// How often the in-memory store drops expired entries.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Where pushed requests are kept: in memory, or in Redis (shared by every
/// instance of the proxy). Clones share the store.
#[derive(Clone, Debug)]
pub struct ProxyStore {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl ProxyStore {
    /// An in-memory store.
    pub fn memory(store: MemoryStore) -> Self {
        Self {
            backend: Backend::Memory(store),
        }
    }

    /// A Redis store.
    pub fn redis(store: RedisStore) -> Self {
        Self {
            backend: Backend::Redis(store),
        }
    }

    /// `"memory"` or `"redis"`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Whether the store can serve requests now (for `/readyz`): always
    /// for memory; for Redis, one cheap write of a random key with a short
    /// expiry. The error says what failed, never a URL or password.
    pub async fn ready(&self) -> Result<(), String> {
        match &self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(store) => {
                let mut nonce = [0u8; 16];
                getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
                let key: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
                store
                    .mark_once(&format!("par-proxy-ready:{key}"), Duration::from_secs(1))
                    .await
                    .map(|_| ())
                    .map_err(|e| describe_store_error(&e))
            }
        }
    }
}

/// The store error and its cause (the library's causes name the failure,
/// never the URL).
fn describe_store_error(e: &StoreError) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

impl ParStore for ProxyStore {
    async fn insert(
        &self,
        uri: &RequestUri,
        request: PushedRequest,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Memory(s) => s.insert(uri, request, ttl).await,
            Backend::Redis(s) => s.insert(uri, request, ttl).await,
        }
    }

    async fn redeem(
        &self,
        uri: &RequestUri,
        client_id: &str,
        mode: RedeemMode,
    ) -> Result<RedeemOutcome, StoreError> {
        match &self.backend {
            Backend::Memory(s) => s.redeem(uri, client_id, mode).await,
            Backend::Redis(s) => s.redeem(uri, client_id, mode).await,
        }
    }

    async fn complete(
        &self,
        uri: &RequestUri,
        binding: &[u8; 32],
    ) -> Result<Completion, StoreError> {
        match &self.backend {
            Backend::Memory(s) => s.complete(uri, binding).await,
            Backend::Redis(s) => s.complete(uri, binding).await,
        }
    }

    async fn in_flow(
        &self,
        uri: &RequestUri,
        client_id: &str,
        binding: &[u8; 32],
    ) -> Result<Option<PushedRequest>, StoreError> {
        match &self.backend {
            Backend::Memory(s) => s.in_flow(uri, client_id, binding).await,
            Backend::Redis(s) => s.in_flow(uri, client_id, binding).await,
        }
    }

    async fn mark_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Memory(s) => s.mark_once(key, ttl).await,
            Backend::Redis(s) => s.mark_once(key, ttl).await,
        }
    }
}

/// Builds the layer and its store from `config`: reads the clients file
/// (resolving `env:NAME` secrets from the process environment), connects
/// to Redis when `store.redis_url` is set, trusts the `tls.client_ca`
/// certificates for `tls_client_auth` clients, and applies every `[par]`
/// setting. Must run inside a Tokio runtime (the in-memory store's
/// sweeper is a task).
pub async fn build(config: &ProxyConfig) -> Result<(ProxyLayer, ProxyStore), Vec<Problem>> {
    let env = Environment::process();
    let mut problems = Vec::new();

    let clients = match &config.clients.file {
        None => {
            problems.push(Problem::new("clients.file", "missing (required)"));
            None
        }
        Some(path) => match config::read_clients(path, &env) {
            Ok(clients) => Some(clients),
            Err(e) => {
                problems.push(Problem::new("clients.file", e));
                None
            }
        },
    };

    let store = match &config.store.redis_url {
        None => {
            let mut limits = MemoryStoreConfig::new();
            if let Some(n) = config.store.max_pending {
                limits = limits.max_pending(n);
            }
            if let Some(n) = config.store.max_pending_per_client {
                limits = limits.max_pending_per_client(n);
            }
            if let Some(n) = config.store.max_pending_bytes {
                limits = limits.max_pending_bytes(n);
            }
            let memory = MemoryStore::with_config(limits);
            memory.spawn_sweeper(SWEEP_EVERY);
            Some(ProxyStore::memory(memory))
        }
        Some(url) => match env.resolve(url) {
            Err(e) => {
                problems.push(Problem::new("store.redis_url", e));
                None
            }
            Ok(url) => match RedisStore::connect(redis_config(url, config, &env)).await {
                Ok(redis) => Some(ProxyStore::redis(redis)),
                Err(e) => {
                    problems.push(Problem::new("store.redis_url", describe_store_error(&e)));
                    None
                }
            },
        },
    };

    // `tls.client_ca`: the roots `tls_client_auth` certificates chain to
    // (RFC 8705 §2.1).
    let client_roots = match config.tls.as_ref().and_then(|t| t.client_ca.as_deref()) {
        None => Some(None),
        Some(path) => match config::read_certificates(path) {
            Ok(certs) => Some(Some(certs)),
            Err(e) => {
                problems.push(Problem::new("tls.client_ca", e));
                None
            }
        },
    };

    let (Some(clients), Some(store), Some(client_roots)) = (clients, store, client_roots) else {
        return Err(problems);
    };
    let mut layer = ParLayer::new(clients).with_store(store.clone());
    if let Some(roots) = client_roots {
        layer = layer
            .tls_client_roots(roots.iter().map(|der| der.to_vec()))
            .map_err(|e| vec![problem_for(&e)])?;
    }
    let layer = configure(layer, config).map_err(|e| vec![problem_for(&e)])?;
    Ok((layer, store))
}

/// The `[par]` settings, in the builder's terms.
fn configure(layer: ProxyLayer, config: &ProxyConfig) -> Result<ProxyLayer, ConfigError> {
    let par = &config.par;
    let public_url = config.public_url();
    let profile = match par.profile {
        ProfileName::Rfc9126 => Profile::Rfc9126,
        ProfileName::Fapi2 => Profile::Fapi2,
    };
    let redemption = match par.redemption {
        RedemptionName::FlowBound => Redemption::FlowBound,
        RedemptionName::Strict => Redemption::Strict,
    };
    let metadata = if par.metadata {
        Metadata::Augment
    } else {
        Metadata::Off
    };
    layer
        .par_path(par.path.as_str())?
        .authorize_path(par.authorize_path.as_str())?
        .request_uri_lifetime(Duration::from_secs(par.lifetime_secs))?
        .issuer(public_url.as_str())?
        .require_par(par.require)
        .profile(profile)
        .redemption(redemption)
        .metadata_mode(metadata)
        // Empty: the layer's default (the authorize path and below).
        .flow_paths(par.flow_paths.iter().map(String::as_str))?
        // A `Secure` cookie never reaches a plain-HTTP public URL.
        .flow_cookie_secure(is_https(&public_url))
        .build()
}

/// Whether `url`'s scheme is `https`, in any case.
fn is_https(url: &str) -> bool {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.scheme_str().map(|s| s.eq_ignore_ascii_case("https")))
        .unwrap_or(false)
}

/// The configuration key a builder setting comes from.
fn key_for(setting: Setting) -> &'static str {
    match setting {
        Setting::ParPath => "par.path",
        Setting::AuthorizePath => "par.authorize_path",
        Setting::Issuer | Setting::ParEndpointUrl => "public_url",
        Setting::RequestUriLifetime => "par.lifetime_secs",
        Setting::Metadata => "par.metadata",
        Setting::Profile => "par.profile",
        Setting::FlowPaths => "par.flow_paths",
        Setting::TlsClientRoots => "tls.client_ca",
        _ => "par",
    }
}

fn problem_for(e: &ConfigError) -> Problem {
    Problem::new(key_for(e.setting()), e.to_string())
}

/// The `RedisStore` settings: the URL, and the secret every instance shares.
fn redis_config(url: String, config: &ProxyConfig, env: &config::Environment) -> RedisStoreConfig {
    let mut redis = RedisStoreConfig::new(url);
    if let Some(secret) = config
        .store
        .secret
        .as_deref()
        .and_then(|s| env.resolve(s).ok())
    {
        redis = redis.secret(secret);
    }
    redis
}
