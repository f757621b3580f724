//! The proxy's configuration: a TOML file whose key names are a contract,
//! every value overridable from the environment.
//!
//! [`load`] reads the file, applies the environment overrides, resolves
//! `env:NAME` secret references and validates everything, reporting every
//! problem at once as a [`Problem`] that names the key (`par.lifetime_secs`,
//! `PAR_PROXY_PAR_LIFETIME_SECS`, `tls.cert`) and what is wrong with it.
//! Unknown keys are errors, so that a typo never silently means a default.
//!
//! # Keys and defaults
//!
//! | Key | Default | Meaning |
//! |---|---|---|
//! | `listen` | `"127.0.0.1:8000"` | address the proxy listens on |
//! | `upstream` | required | the authorization server behind the proxy: an `http://` or `https://` URL without a query (a path prefix is allowed) |
//! | `public_url` | `http://<listen>` (`https://<listen>` with `[tls] cert`/`key`) | the issuer / base URL clients see; its scheme is lower-cased |
//! | `preserve_host` | `true` | send the client's `Host` upstream (`false`: the upstream's own) |
//! | `trusted_proxies` | `[]` | IP addresses or CIDR ranges whose `X-Forwarded-*`, `Forwarded` and `Client-Cert` headers are believed |
//! | `upstream_timeout_secs` | `30` | seconds (at least 1) before an upstream request is answered `504` |
//! | `max_body_bytes` | `10485760` | largest request body forwarded upstream (at least 1); larger bodies get `413` |
//! | `[par] path` | `"/par"` | the PAR endpoint's path |
//! | `[par] authorize_path` | `"/authorize"` | the upstream's authorization endpoint path |
//! | `[par] lifetime_secs` | `60` | `request_uri` lifetime, 1..=600 seconds |
//! | `[par] require` | `false` | refuse authorization requests that do not use PAR |
//! | `[par] profile` | `"rfc9126"` | `"rfc9126"` or `"fapi2"` |
//! | `[par] redemption` | `"flow-bound"` | `"flow-bound"` or `"strict"` |
//! | `[par] flow_paths` | `[]` (the authorize path and below) | paths where the authorization response may come from after the upstream's own login steps |
//! | `[par] forward_as` | `"auto"` | `"auto"`, `"get"` or `"post"`: how the rebuilt authorization request reaches the upstream |
//! | `[par] max_upstream_url` | `8192` | longest request target sent as a GET under `forward_as = "auto"` (at least 1) |
//! | `[par] metadata` | `true` | add the PAR members to the upstream's discovery documents |
//! | `[store] redis_url` | absent: in memory | `redis://`, `rediss://`, `redis+unix://` or `unix://` URL; may be `env:NAME` |
//! | `[store] secret` | absent | the `RedisStore` secret shared by every instance (at least 32 bytes); may be `env:NAME` |
//! | `[store] max_pending` | `100000` | in memory: requests waiting for redemption, then `503` |
//! | `[store] max_pending_per_client` | `1000` | in memory: the same per client, then `429` |
//! | `[store] max_pending_bytes` | `268435456` | in memory: bytes of waiting requests, then `503` |
//! | `[clients] file` | required | the clients file, JSON or TOML (by extension, `.toml` for TOML), the library's format; `client_secret` values may be `env:NAME` |
//! | `[tls] cert` | absent: plain HTTP | PEM certificate chain; given together with `key`, the listener terminates TLS |
//! | `[tls] key` | absent | PEM private key; given together with `cert` |
//! | `[tls] client_ca` | absent | PEM CA certificates `tls_client_auth` client certificates must chain to; with `cert`/`key` client certificates are requested in the handshake, without them (plain HTTP behind a TLS terminator) they come as RFC 9440 `Client-Cert` from `trusted_proxies` |
//! | `[log] format` | `"text"` | `"text"` or `"json"` |
//! | `[metrics] listen` | absent: off | where Prometheus scrapes `/metrics`; never the public `listen` |
//!
//! Relative file paths (`clients.file`, `tls.*`) are relative to the
//! directory of the configuration file, wherever they were given.
//!
//! # Environment overrides
//!
//! Every key can be set from the environment as `PAR_PROXY_<SECTION>_<KEY>`
//! (`PAR_PROXY_PAR_LIFETIME_SECS=120`, `PAR_PROXY_TLS_CERT=/etc/cert.pem`)
//! or, at the top level, `PAR_PROXY_<KEY>` (`PAR_PROXY_UPSTREAM=...`). An
//! override wins over the file and creates its section when the file has
//! none. Booleans are `true` or `false`, integers are TOML integers, lists
//! are comma-separated (`10.0.0.0/8,192.168.0.1`) or a TOML array literal
//! (`["10.0.0.0/8"]`); everything else is taken as written. An unknown
//! `PAR_PROXY_*` variable is a problem, like an unknown key.
//!
//! # Secrets
//!
//! `store.redis_url` (whose password is a secret) and the `client_secret`
//! values in the clients file may be written `env:NAME`, read from the
//! environment variable `NAME`. A variable that is unset or empty is a
//! problem naming the key and the variable; a secret's value never appears
//! in a problem or in `Debug` output.
//!
//! ```
//! use par_proxy::config::{load_with_env, Environment};
//!
//! let dir = std::env::temp_dir().join(format!("par-proxy-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! std::fs::write(
//!     dir.join("clients.json"),
//!     r#"{"clients":[{"client_id":"app","client_secret":"env:APP_SECRET",
//!         "redirect_uris":["https://app.example/cb"]}]}"#,
//! )
//! .unwrap();
//! let file = dir.join("proxy.toml");
//! std::fs::write(&file, "upstream = \"http://127.0.0.1:9000\"\n[clients]\nfile = \"clients.json\"\n").unwrap();
//!
//! let env = Environment::from_vars([
//!     ("APP_SECRET", "s3cret"),
//!     ("PAR_PROXY_PAR_LIFETIME_SECS", "90"),
//! ]);
//! let config = load_with_env(&file, &env).unwrap();
//! assert_eq!(config.par.lifetime_secs, 90);
//! assert_eq!(config.public_url(), "http://127.0.0.1:8000");
//!
//! let problems = load_with_env(&file, &Environment::from_vars([("PAR_PROXY_PAR_LIFETIME", "1")]))
//!     .unwrap_err();
//! let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
//! assert!(lines.iter().any(|l| l.starts_with("PAR_PROXY_PAR_LIFETIME: unknown")));
//! assert!(lines.iter().any(|l| l.contains("APP_SECRET")));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tower_par::{StaticClients, StaticClientsError};

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
    /// `https://<listen>` with `[tls] cert`/`key`); its scheme is
    /// lower-cased at load.
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
    /// TLS on the public listener (`cert`/`key`; absent: plain HTTP) and
    /// the CA `tls_client_auth` certificates chain to (`client_ca`).
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

impl ProfileName {
    /// The name as written in the file (`"rfc9126"`, `"fapi2"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rfc9126 => "rfc9126",
            Self::Fapi2 => "fapi2",
        }
    }
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

impl RedemptionName {
    /// The name as written in the file (`"flow-bound"`, `"strict"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlowBound => "flow-bound",
            Self::Strict => "strict",
        }
    }
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

/// `[store]` (`Debug` hides the Redis password)
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `redis://` or `rediss://` URL (absent: in memory). May be an
    /// `env:NAME` reference.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// The `RedisStore` secret every instance sharing the Redis database
    /// is given (at least 32 bytes; with it, entries written to Redis by
    /// anyone else are refused). May be an `env:NAME` reference.
    #[serde(default)]
    pub secret: Option<String>,
    /// The in-memory store's bound on requests waiting for redemption
    /// (default 100 000; full: `503` with `Retry-After`).
    #[serde(default)]
    pub max_pending: Option<usize>,
    /// The in-memory store's bound per client (default 1 000; over it: `429`).
    #[serde(default)]
    pub max_pending_per_client: Option<usize>,
    /// The in-memory store's bound on the bytes of waiting requests
    /// (default 256 MiB; full: `503` with `Retry-After`).
    #[serde(default)]
    pub max_pending_bytes: Option<usize>,
}

impl fmt::Debug for StoreSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSection")
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("max_pending", &self.max_pending)
            .field("max_pending_per_client", &self.max_pending_per_client)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .finish()
    }
}

/// A URL without the credentials before its `@`.
fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://***{}", &url[at..]),
        _ => url.to_owned(),
    }
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
    /// PEM certificate chain; with `key`, the listener terminates TLS.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key; given together with `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// PEM CA certificates `tls_client_auth` client certificates must
    /// chain to. With `cert`/`key`, client certificates are requested in
    /// the handshake; without them (a plain-HTTP listener behind a TLS
    /// terminator), they come as RFC 9440 `Client-Cert` from
    /// `trusted_proxies`.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

impl TlsSection {
    /// The certificate and key, when both are given: the public listener
    /// terminates TLS.
    pub fn server_identity(&self) -> Option<(&Path, &Path)> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => None,
        }
    }
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

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// One thing wrong with the configuration: the key it concerns and what
/// is wrong. `Display` is `<key>: <message>`, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key as written in the file (`par.lifetime_secs`, `tls.cert`),
    /// or the environment variable that set it
    /// (`PAR_PROXY_PAR_LIFETIME_SECS`).
    pub key: String,
    /// What is wrong, never carrying a secret's value.
    pub message: String,
}

impl Problem {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for Problem {}

/// The environment variables the configuration reads: the
/// `PAR_PROXY_*` overrides and the targets of `env:NAME` references.
/// `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The process environment (variables whose name or value is not
    /// UTF-8 are left out).
    pub fn process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment made of exactly these variables (for tests, and for
    /// embedding the proxy without touching the process environment).
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Resolves a value that may be an `env:NAME` reference: the variable's
    /// value (unset or empty is an error naming the variable), or `value`
    /// itself when it is not a reference.
    pub fn resolve(&self, value: &str) -> Result<String, String> {
        match value.strip_prefix(ENV_REF) {
            None => Ok(value.to_owned()),
            Some("") => Err("`env:` reference without a variable name".into()),
            Some(name) => match self.get(name) {
                Some(v) if !v.is_empty() => Ok(v.to_owned()),
                Some(_) => Err(format!("environment variable {name} is empty")),
                None => Err(format!("environment variable {name} is not set")),
            },
        }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The prefix of secret references.
const ENV_REF: &str = "env:";
/// The prefix of environment overrides.
const ENV_PREFIX: &str = "PAR_PROXY_";

/// Reads the configuration at `path` with the process environment: the
/// file, the `PAR_PROXY_*` overrides, `env:NAME` references resolved, and
/// every value validated (the clients file and the PEM files are read).
/// All problems are reported, not only the first.
pub fn load(path: &Path) -> Result<ProxyConfig, Vec<Problem>> {
    load_with_env(path, &Environment::process())
}

/// [`load`] with the given environment instead of the process's.
pub fn load_with_env(path: &Path, env: &Environment) -> Result<ProxyConfig, Vec<Problem>> {
    let file_key = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Problem::new(&file_key, format!("cannot read: {e}"))])?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        vec![Problem::new(
            &file_key,
            format!("not valid TOML: {}", one_line(e.message())),
        )]
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    from_table(table, base, env)
}

/// Validates an already parsed file (`base`: the directory relative paths
/// are resolved against).
fn from_table(
    mut table: toml::Table,
    base: &Path,
    env: &Environment,
) -> Result<ProxyConfig, Vec<Problem>> {
    let mut cx = Checker::default();
    cx.apply_env(&mut table, env);
    cx.check_shape(&mut table);
    let mut config = match ProxyConfig::deserialize(toml::Value::Table(table)) {
        Ok(config) => config,
        Err(e) => {
            // The shape check leaves only values serde accepts; this is a
            // safety net that still names what it can.
            cx.problem("config", one_line(e.message()));
            return Err(cx.problems);
        }
    };
    cx.check_values(&mut config, base, env);
    if cx.problems.is_empty() {
        Ok(config)
    } else {
        Err(cx.problems)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The type a key's value must have.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Path,
    Bool,
    Int,
    StrList,
    Addr,
    OneOf(&'static [&'static str]),
}

type Keys = &'static [(&'static str, Kind)];

const TOP_KEYS: Keys = &[
    ("listen", Kind::Addr),
    ("upstream", Kind::Str),
    ("public_url", Kind::Str),
    ("preserve_host", Kind::Bool),
    ("trusted_proxies", Kind::StrList),
    ("upstream_timeout_secs", Kind::Int),
    ("max_body_bytes", Kind::Int),
];

const SECTIONS: &[(&str, Keys)] = &[
    (
        "par",
        &[
            ("path", Kind::Str),
            ("authorize_path", Kind::Str),
            ("lifetime_secs", Kind::Int),
            ("require", Kind::Bool),
            ("profile", Kind::OneOf(&["rfc9126", "fapi2"])),
            ("redemption", Kind::OneOf(&["flow-bound", "strict"])),
            ("flow_paths", Kind::StrList),
            ("forward_as", Kind::OneOf(&["auto", "get", "post"])),
            ("max_upstream_url", Kind::Int),
            ("metadata", Kind::Bool),
        ],
    ),
    (
        "store",
        &[
            ("redis_url", Kind::Str),
            ("secret", Kind::Str),
            ("max_pending", Kind::Int),
            ("max_pending_per_client", Kind::Int),
            ("max_pending_bytes", Kind::Int),
        ],
    ),
    ("clients", &[("file", Kind::Path)]),
    (
        "tls",
        &[
            ("cert", Kind::Path),
            ("key", Kind::Path),
            ("client_ca", Kind::Path),
        ],
    ),
    ("log", &[("format", Kind::OneOf(&["text", "json"]))]),
    ("metrics", &[("listen", Kind::Addr)]),
];

/// `url` with its scheme in lower case (`HTTPS://a` -> `https://a`).
fn lower_case_scheme(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None => url.to_owned(),
    }
}

/// Keys that must be present (section, key); a section's keys only when
/// the section is.
const REQUIRED: &[(Option<&str>, &str)] = &[
    (None, "upstream"),
    (Some("clients"), "file"),
    (Some("metrics"), "listen"),
];

/// Collects problems while remembering which keys came from the
/// environment (their problems name the variable) and which are already
/// known to be wrong (not checked again).
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
    /// dotted key -> the variable that set it.
    origin: BTreeMap<String, String>,
    /// dotted keys already reported.
    bad: BTreeSet<String>,
}

fn dotted(section: Option<&str>, key: &str) -> String {
    match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_owned(),
    }
}

fn env_name(section: Option<&str>, key: &str) -> String {
    match section {
        Some(s) => format!("{ENV_PREFIX}{}_{}", s.to_uppercase(), key.to_uppercase()),
        None => format!("{ENV_PREFIX}{}", key.to_uppercase()),
    }
}

impl Checker {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(key, message));
    }

    /// Reports a problem with the dotted key `key`, named as the variable
    /// that set it when it came from the environment.
    fn wrong(&mut self, key: &str, message: impl Into<String>) {
        let message = message.into();
        let named = match self.origin.get(key) {
            Some(var) => Problem::new(var, format!("{message} (overrides {key})")),
            None => Problem::new(key, message),
        };
        self.problems.push(named);
        self.bad.insert(key.to_owned());
    }

    fn ok(&self, key: &str) -> bool {
        !self.bad.contains(key)
    }

    fn apply_env(&mut self, table: &mut toml::Table, env: &Environment) {
        let mut known: BTreeMap<String, (Option<&'static str>, &'static str, Kind)> =
            BTreeMap::new();
        for &(key, kind) in TOP_KEYS {
            known.insert(env_name(None, key), (None, key, kind));
        }
        for &(section, keys) in SECTIONS {
            for &(key, kind) in keys {
                known.insert(env_name(Some(section), key), (Some(section), key, kind));
            }
        }
        for (var, raw) in env.vars.range(ENV_PREFIX.to_owned()..) {
            if !var.starts_with(ENV_PREFIX) {
                break;
            }
            let Some(&(section, key, kind)) = known.get(var) else {
                self.problem(
                    var,
                    "unknown configuration variable (PAR_PROXY_* names a configuration key)",
                );
                continue;
            };
            let value = match env_value(raw, kind) {
                Ok(v) => v,
                Err(msg) => {
                    self.problem(var, format!("{msg} (overrides {})", dotted(section, key)));
                    self.bad.insert(dotted(section, key));
                    continue;
                }
            };
            let target = match section {
                None => &mut *table,
                Some(s) => {
                    let entry = table
                        .entry(s.to_owned())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    match entry {
                        toml::Value::Table(t) => t,
                        // The shape check reports the section itself.
                        _ => continue,
                    }
                }
            };
            target.insert(key.to_owned(), value);
            self.origin.insert(dotted(section, key), var.clone());
        }
    }

    /// Unknown keys, wrong types, missing required keys. Wrong values are
    /// removed (and required ones replaced by a placeholder) so that the
    /// rest can still be deserialised and checked.
    fn check_shape(&mut self, table: &mut toml::Table) {
        let names: Vec<String> = table.keys().cloned().collect();
        for name in names {
            if let Some(&(_, kind)) = TOP_KEYS.iter().find(|(k, _)| *k == name) {
                self.check_kind(table, None, &name, kind);
            } else if let Some(&(section, keys)) = SECTIONS.iter().find(|(s, _)| *s == name) {
                match table.get_mut(section) {
                    Some(toml::Value::Table(inner)) => {
                        let inner_names: Vec<String> = inner.keys().cloned().collect();
                        for key in inner_names {
                            match keys.iter().find(|(k, _)| *k == key) {
                                Some(&(_, kind)) => {
                                    self.check_kind(inner, Some(section), &key, kind)
                                }
                                None => {
                                    self.wrong(&dotted(Some(section), &key), "unknown key");
                                    inner.remove(&key);
                                }
                            }
                        }
                    }
                    _ => {
                        self.wrong(section, "must be a table ([".to_owned() + section + "])");
                        table.remove(section);
                    }
                }
            } else {
                self.wrong(&name, "unknown key");
                table.remove(&name);
            }
        }
        if !table.contains_key("clients") {
            table.insert("clients".into(), toml::Value::Table(toml::Table::new()));
        }
        for &(section, key) in REQUIRED {
            let holder = match section {
                None => Some(&mut *table),
                Some(s) => match table.get_mut(s) {
                    Some(toml::Value::Table(t)) => Some(t),
                    _ => None,
                },
            };
            let Some(holder) = holder else { continue };
            if !holder.contains_key(key) {
                let full = dotted(section, key);
                if self.ok(&full) {
                    self.wrong(&full, "missing (required)");
                }
                holder.insert(key.to_owned(), placeholder(key));
            }
        }
    }

    fn check_kind(
        &mut self,
        table: &mut toml::Table,
        section: Option<&str>,
        key: &str,
        kind: Kind,
    ) {
        let full = dotted(section, key);
        let Some(value) = table.get(key) else { return };
        let verdict: Result<(), String> = match (kind, value) {
            (Kind::Str | Kind::Path, toml::Value::String(_)) => Ok(()),
            (Kind::Str | Kind::Path, v) => {
                Err(format!("expected a string, found {}", v.type_str()))
            }
            (Kind::Bool, toml::Value::Boolean(_)) => Ok(()),
            (Kind::Bool, v) => Err(format!("expected true or false, found {}", v.type_str())),
            (Kind::Int, toml::Value::Integer(i)) if *i >= 0 => Ok(()),
            (Kind::Int, toml::Value::Integer(_)) => Err("must not be negative".into()),
            (Kind::Int, v) => Err(format!("expected an integer, found {}", v.type_str())),
            (Kind::StrList, toml::Value::Array(items)) => {
                match items.iter().position(|v| !v.is_str()) {
                    None => Ok(()),
                    Some(i) => Err(format!("item {i} is not a string")),
                }
            }
            (Kind::StrList, v) => Err(format!(
                "expected a list of strings, found {}",
                v.type_str()
            )),
            (Kind::Addr, toml::Value::String(s)) => match s.parse::<SocketAddr>() {
                Ok(_) => Ok(()),
                Err(_) => Err(format!("'{s}' is not an address like 127.0.0.1:8000")),
            },
            (Kind::Addr, v) => Err(format!(
                "expected an address like \"127.0.0.1:8000\", found {}",
                v.type_str()
            )),
            (Kind::OneOf(names), toml::Value::String(s)) if names.contains(&s.as_str()) => Ok(()),
            (Kind::OneOf(names), _) => Err(format!(
                "must be one of {}",
                names
                    .iter()
                    .map(|n| format!("\"{n}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        if let Err(message) = verdict {
            self.wrong(&full, message);
            table.remove(key);
            if REQUIRED.contains(&(section, key)) {
                table.insert(key.to_owned(), placeholder(key));
            }
        }
    }

    /// The rules on values: URLs, paths, ranges, files, secrets.
    fn check_values(&mut self, config: &mut ProxyConfig, base: &Path, env: &Environment) {
        if self.ok("upstream") {
            if let Err(e) = check_http_url(&config.upstream) {
                self.wrong("upstream", e);
            }
        }
        if let Some(url) = &mut config.public_url {
            if self.ok("public_url") {
                match check_http_url(url) {
                    Err(e) => self.wrong("public_url", e),
                    Ok(()) => *url = lower_case_scheme(url),
                }
            }
        }
        // The parser the server uses, so that what passes here is served.
        for (i, entry) in config.trusted_proxies.iter().enumerate() {
            if crate::server::TrustedProxies::parse([entry]).is_err() {
                self.wrong(
                    "trusted_proxies",
                    format!("item {i}: '{entry}' is not an IP address or CIDR range"),
                );
            }
        }
        if config.upstream_timeout_secs < 1 && self.ok("upstream_timeout_secs") {
            self.wrong("upstream_timeout_secs", "must be at least 1");
        }
        if config.max_body_bytes < 1 && self.ok("max_body_bytes") {
            self.wrong("max_body_bytes", "must be at least 1");
        }

        let par = &config.par;
        for (key, path) in [
            ("par.path", &par.path),
            ("par.authorize_path", &par.authorize_path),
        ] {
            if self.ok(key) && !path.starts_with('/') {
                self.wrong(key, "must start with '/'");
            }
        }
        if self.ok("par.path") && self.ok("par.authorize_path") && par.path == par.authorize_path {
            self.wrong("par.path", "must differ from par.authorize_path");
        }
        if let Some(i) = par.flow_paths.iter().position(|p| !p.starts_with('/')) {
            self.wrong("par.flow_paths", format!("item {i} must start with '/'"));
        }
        if !(1..=600).contains(&par.lifetime_secs) && self.ok("par.lifetime_secs") {
            self.wrong("par.lifetime_secs", "must be between 1 and 600 seconds");
        }
        if par.max_upstream_url < 1 && self.ok("par.max_upstream_url") {
            self.wrong("par.max_upstream_url", "must be at least 1");
        }

        if let Some(url) = config.store.redis_url.clone() {
            match env.resolve(&url) {
                Err(e) => self.wrong("store.redis_url", e),
                Ok(resolved) => {
                    if !REDIS_SCHEMES.iter().any(|s| resolved.starts_with(s)) {
                        self.wrong(
                            "store.redis_url",
                            "must be a redis://, rediss://, redis+unix:// or unix:// URL",
                        );
                    }
                    config.store.redis_url = Some(resolved);
                }
            }
        }

        if let Some(secret) = config.store.secret.clone() {
            match env.resolve(&secret) {
                Err(e) => self.wrong("store.secret", e),
                Ok(resolved) => {
                    if config.store.redis_url.is_none() {
                        self.wrong("store.secret", "is only used with store.redis_url");
                    } else if resolved.len() < 32 {
                        self.wrong("store.secret", "must be at least 32 bytes");
                    }
                    config.store.secret = Some(resolved);
                }
            }
        }
        for (key, value) in [
            ("store.max_pending", config.store.max_pending),
            (
                "store.max_pending_per_client",
                config.store.max_pending_per_client,
            ),
        ] {
            if let Some(n) = value {
                if config.store.redis_url.is_some() {
                    self.wrong(
                        key,
                        "applies to the in-memory store only (no store.redis_url)",
                    );
                } else if n < 1 && self.ok(key) {
                    self.wrong(key, "must be at least 1");
                }
            }
        }

        if let Some(file) = config.clients.file.take() {
            let file = base.join(file);
            if self.ok("clients.file") {
                if let Err(e) = read_clients(&file, env) {
                    self.wrong("clients.file", e);
                }
            }
            config.clients.file = Some(file);
        }

        if let Some(tls) = &mut config.tls {
            match (&tls.cert, &tls.key) {
                (Some(_), None) if self.ok("tls.key") => {
                    self.wrong("tls.key", "missing (required with tls.cert)");
                }
                (None, Some(_)) if self.ok("tls.cert") => {
                    self.wrong("tls.cert", "missing (required with tls.key)");
                }
                (None, None) if tls.client_ca.is_none() && self.ok("tls.cert") => {
                    self.wrong(
                        "tls.cert",
                        "[tls] needs cert and key, or client_ca, or both",
                    );
                }
                _ => {}
            }
            if let Some(cert) = tls.cert.take() {
                let cert = base.join(cert);
                if self.ok("tls.cert") {
                    if let Err(e) = read_certificates(&cert) {
                        self.wrong("tls.cert", e);
                    }
                }
                tls.cert = Some(cert);
            }
            if let Some(key) = tls.key.take() {
                let key = base.join(key);
                if self.ok("tls.key") {
                    if let Err(e) = read_private_key(&key) {
                        self.wrong("tls.key", e);
                    }
                }
                tls.key = Some(key);
            }
            if let Some(ca) = tls.client_ca.take() {
                let ca = base.join(ca);
                if let Err(e) = read_certificates(&ca) {
                    self.wrong("tls.client_ca", e);
                }
                tls.client_ca = Some(ca);
            }
        }

        if let Some(metrics) = &config.metrics {
            let (m, l) = (metrics.listen, config.listen);
            // Port 0 picks a free port for each; an unspecified address
            // (`0.0.0.0`) also holds the port on every other one.
            let same_ip = m.ip() == l.ip() || m.ip().is_unspecified() || l.ip().is_unspecified();
            if self.ok("metrics.listen")
                && self.ok("listen")
                && m.port() == l.port()
                && m.port() != 0
                && same_ip
            {
                self.wrong(
                    "metrics.listen",
                    "must differ from listen (the public port)",
                );
            }
        }
    }
}

const REDIS_SCHEMES: &[&str] = &["redis://", "rediss://", "redis+unix://", "unix://"];

/// A value that lets a config with a reported problem still deserialise.
fn placeholder(key: &str) -> toml::Value {
    match key {
        "listen" => toml::Value::String("127.0.0.1:0".into()),
        _ => toml::Value::String(String::new()),
    }
}

/// An environment override as the value its key needs.
fn env_value(raw: &str, kind: Kind) -> Result<toml::Value, String> {
    match kind {
        Kind::Str | Kind::Path | Kind::Addr | Kind::OneOf(_) => Ok(toml::Value::String(raw.into())),
        Kind::Bool => match raw.trim() {
            "true" => Ok(toml::Value::Boolean(true)),
            "false" => Ok(toml::Value::Boolean(false)),
            _ => Err("expected true or false".into()),
        },
        Kind::Int => match toml_scalar(raw) {
            Some(toml::Value::Integer(i)) => Ok(toml::Value::Integer(i)),
            _ => Err("expected an integer".into()),
        },
        Kind::StrList => {
            let raw = raw.trim();
            if raw.starts_with('[') {
                match toml_scalar(raw) {
                    Some(v @ toml::Value::Array(_)) => Ok(v),
                    _ => Err("expected a TOML array or a comma-separated list".into()),
                }
            } else {
                Ok(toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_owned()))
                        .collect(),
                ))
            }
        }
    }
}

/// Parses `raw` as one TOML value.
fn toml_scalar(raw: &str) -> Option<toml::Value> {
    let mut table: toml::Table = format!("v = {}", raw.trim()).parse().ok()?;
    table.remove("v")
}

/// An `http://` or `https://` URL with a host and without a query or
/// fragment.
fn check_http_url(url: &str) -> Result<(), String> {
    const WANT: &str = "must be an http:// or https:// URL with a host and without a query";
    let uri: http::Uri = url.parse().map_err(|_| WANT.to_owned())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if !scheme_ok || !host_ok || uri.query().is_some() || url.contains('#') {
        return Err(WANT.into());
    }
    Ok(())
}

/// Reads a clients file (JSON, or TOML when its name ends in `.toml`),
/// resolving `env:NAME` references in `client_secret` values against
/// `env`. The error never carries a secret.
pub fn read_clients(path: &Path, env: &Environment) -> Result<StaticClients, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut value: serde_json::Value = if path.extension().is_some_and(|e| e == "toml") {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| format!("not valid TOML: {}", one_line(e.message())))?;
        serde_json::to_value(table).map_err(|e| format!("not valid TOML: {e}"))?
    } else {
        serde_json::from_str(&text).map_err(|e| format!("not valid JSON: {e}"))?
    };
    let mut missing = Vec::new();
    if let Some(clients) = value.get_mut("clients").and_then(|c| c.as_array_mut()) {
        for (i, client) in clients.iter_mut().enumerate() {
            let Some(secret) = client.get_mut("client_secret") else {
                continue;
            };
            let Some(text) = secret.as_str() else {
                continue;
            };
            if text.starts_with(ENV_REF) {
                match env.resolve(text) {
                    Ok(v) => *secret = serde_json::Value::String(v),
                    Err(e) => missing.push(format!("clients[{i}].client_secret: {e}")),
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(missing.join("; "));
    }
    StaticClients::from_json(&value.to_string()).map_err(|e| match e {
        StaticClientsError::Parse(msg) => format!("cannot parse the clients: {}", one_line(&msg)),
        other => other.to_string(),
    })
}

/// Reads a PEM file holding at least one certificate (DER, in order).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

/// Reads a PEM file holding a private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            format!("{}: no PEM private key found", path.display())
        }
        e => pem_error(path, e),
    })
}

fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => format!("cannot read {}: {io}", path.display()),
        e => format!("{}: not valid PEM ({e})", path.display()),
    }
}

impl ProxyConfig {
    /// The issuer / base URL clients see: `public_url`, or
    /// `http://<listen>` (`https://<listen>` with `[tls]`).
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.clone(),
            None if self
                .tls
                .as_ref()
                .is_some_and(|t| t.server_identity().is_some()) =>
            {
                format!("https://{}", self.listen)
            }
            None => format!("http://{}", self.listen),
        }
    }

    /// `trusted_proxies` parsed, as the server uses them (entries that do
    /// not parse, which [`load`] refuses, are left out).
    pub fn trusted_proxies(&self) -> crate::server::TrustedProxies {
        let valid = self
            .trusted_proxies
            .iter()
            .filter(|e| crate::server::TrustedProxies::parse([e]).is_ok());
        crate::server::TrustedProxies::parse(valid).unwrap_or_default()
    }

    /// Whether `ip` is one of `trusted_proxies`.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies().contains(ip)
    }
}
