//! The proxy's configuration: a TOML file whose key names are a contract
//! (see the README), every value overridable from the environment as
//! `PAR_PROXY_<SECTION>_<KEY>` (top level: `PAR_PROXY_<KEY>`).
//!
//! The types here are the parsed form. Loading, environment overrides,
//! `env:NAME` secret references and validation live next to them.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Where the proxy listens (`127.0.0.1:8000`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The authorization server behind the proxy, `http://` or `https://`
    /// origin (a path prefix is allowed).
    pub upstream: String,
    /// The issuer / base URL clients see (default `http://<listen>`, or
    /// `https://<listen>` with `[tls]`).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Send the client's `Host` to the upstream (default), or the
    /// upstream's own authority (`false`).
    #[serde(default = "yes")]
    pub preserve_host: bool,
    /// Peers (IP addresses or CIDR ranges) whose `X-Forwarded-*`,
    /// `Forwarded` and `Client-Cert` headers are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Seconds before a request to the upstream gets `504` (default 30).
    #[serde(default = "default_upstream_timeout")]
    pub upstream_timeout_secs: u64,
    /// Largest request body forwarded to the upstream, in bytes (default
    /// 10 MiB); larger bodies get `413`.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// The PAR layer.
    #[serde(default)]
    pub par: ParSection,
    /// Where pushed requests are kept.
    #[serde(default)]
    pub store: StoreSection,
    /// The registered clients.
    #[serde(default)]
    pub clients: ClientsSection,
    /// TLS on the public listener (absent: plain HTTP).
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// Logging.
    #[serde(default)]
    pub log: LogSection,
    /// The Prometheus listener (absent: off).
    #[serde(default)]
    pub metrics: Option<MetricsSection>,
}

/// `[par]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParSection {
    /// The PAR endpoint's path (`/par`).
    #[serde(default = "default_par_path")]
    pub path: String,
    /// The upstream's authorization endpoint path (`/authorize`).
    #[serde(default = "default_authorize_path")]
    pub authorize_path: String,
    /// `request_uri` lifetime in seconds, 1..=600 (60).
    #[serde(default = "default_lifetime")]
    pub lifetime_secs: u64,
    /// Refuse authorization requests that do not use PAR.
    #[serde(default)]
    pub require: bool,
    /// `rfc9126` or `fapi2`.
    #[serde(default)]
    pub profile: ProfileName,
    /// `flow-bound` or `strict`.
    #[serde(default)]
    pub redemption: RedemptionName,
    /// Paths (prefixes) where the authorization response may come from
    /// after the upstream's own login steps, e.g. Keycloak's
    /// `/realms/x/login-actions`; empty: the authorize path and below.
    #[serde(default)]
    pub flow_paths: Vec<String>,
    /// How the rebuilt authorization request reaches the upstream.
    #[serde(default)]
    pub forward_as: ForwardAs,
    /// Longest request target sent as a GET under `forward_as = "auto"`
    /// (8192 bytes).
    #[serde(default = "default_max_upstream_url")]
    pub max_upstream_url: usize,
    /// Add the PAR members to the upstream's discovery documents (true).
    #[serde(default = "yes")]
    pub metadata: bool,
}

impl Default for ParSection {
    fn default() -> Self {
        Self {
            path: default_par_path(),
            authorize_path: default_authorize_path(),
            lifetime_secs: default_lifetime(),
            require: false,
            profile: ProfileName::default(),
            redemption: RedemptionName::default(),
            flow_paths: Vec::new(),
            forward_as: ForwardAs::default(),
            max_upstream_url: default_max_upstream_url(),
            metadata: true,
        }
    }
}

/// `[par] profile`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileName {
    /// RFC 9126 as written.
    #[default]
    Rfc9126,
    /// FAPI 2.0 Security Profile.
    Fapi2,
}

/// `[par] redemption`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedemptionName {
    /// Reload-safe, bound to the browser by a cookie.
    #[default]
    FlowBound,
    /// One redemption per `request_uri`.
    Strict,
}

/// `[par] forward_as`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardAs {
    /// GET while the request target fits `max_upstream_url`, else a form POST.
    #[default]
    Auto,
    /// Always GET.
    Get,
    /// Always a form POST (OIDC Core §3.1.2.1).
    Post,
}

/// `[store]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `redis://` or `rediss://` URL (absent: in memory). May be an
    /// `env:NAME` reference.
    #[serde(default)]
    pub redis_url: Option<String>,
}

/// `[clients]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientsSection {
    /// The clients file (JSON or TOML, the library's format, RFC 7591
    /// member names); `client_secret` values may be `env:NAME` references.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// `[tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates: client certificates are requested, and
    /// `tls_client_auth` clients must chain to one of them.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// `[log]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `text` or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

/// `[log] format`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Where Prometheus scrapes `/metrics` (never the public port).
    pub listen: SocketAddr,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8000))
}
fn yes() -> bool {
    true
}
fn default_upstream_timeout() -> u64 {
    30
}
fn default_max_body() -> u64 {
    10 * 1024 * 1024
}
fn default_par_path() -> String {
    "/par".into()
}
fn default_authorize_path() -> String {
    "/authorize".into()
}
fn default_lifetime() -> u64 {
    60
}
fn default_max_upstream_url() -> usize {
    8192
}
