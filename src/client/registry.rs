//! `StaticClients`: a client registry built in code or loaded from a file.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    AuthMethod, Client, ClientAuthError, ClientAuthenticator, ClientCredentials, Jwks, Secret,
    TlsClientAuthSubject,
};

/// Digest compared against when the client is unknown, so that an unknown
/// client costs the same as a wrong secret (AUTH-1: flat timing).
const DUMMY_DIGEST: [u8; 32] = [0x5a; 32];

#[derive(Clone)]
struct Entry {
    client: Arc<Client>,
    secret_sha256: Option<[u8; 32]>,
    /// The secret itself, kept only for `client_secret_jwt` clients: it is
    /// the key of their HMAC assertions (OIDC Core §9).
    hmac_secret: Option<Secret>,
}

/// An immutable, in-memory client registry.
///
/// Secrets are kept only as SHA-256 digests and compared in constant time;
/// `Debug` lists client ids and methods, never digests. Client secrets are
/// expected to be high-entropy random strings (as OAuth servers issue them),
/// for which a fast digest is the right tool; do not use human passwords.
///
/// The exception is `client_secret_jwt`: its assertions are MACed with the
/// secret itself, so for such clients the registry keeps the secret (never
/// shown by `Debug`) and a digest cannot be registered. Prefer
/// `private_key_jwt`, which keeps no secret on the server at all.
///
/// Built in code:
///
/// ```
/// use tower_par::{AuthMethod, Client, StaticClients};
///
/// let clients = StaticClients::new()
///     .with_client(
///         Client::new("demo-client", AuthMethod::ClientSecretBasic)
///             .redirect_uri("http://127.0.0.1:8080/cb"),
///         Some("demo-secret"),
///     )?
///     .with_client(
///         Client::new("demo-public", AuthMethod::None).redirect_uri("http://127.0.0.1:8080/cb"),
///         None,
///     )?;
/// assert_eq!(clients.len(), 2);
/// # Ok::<(), tower_par::StaticClientsError>(())
/// ```
///
/// Or loaded from JSON (or TOML with the `toml` feature) with RFC 7591 member
/// names. A secret is given either in clear (`client_secret`) or as the hex
/// SHA-256 of the secret (`client_secret_sha256`):
///
/// ```
/// use tower_par::StaticClients;
///
/// let clients = StaticClients::from_json(r#"{
///   "clients": [{
///     "client_id": "app",
///     "token_endpoint_auth_method": "client_secret_post",
///     "client_secret_sha256": "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b",
///     "redirect_uris": ["https://app.example/cb"],
///     "response_types": ["code"],
///     "scope": "openid profile",
///     "require_pushed_authorization_requests": true,
///     "request_uri_lifetime": 90
///   }]
/// }"#)?;
/// assert!(clients.get("app").unwrap().require_par);
/// # Ok::<(), tower_par::StaticClientsError>(())
/// ```
#[derive(Clone, Default)]
pub struct StaticClients {
    clients: Arc<HashMap<String, Entry>>,
    /// Whether any registered client requires PAR (kept at insert, so the
    /// authorization endpoint does not scan the registry per request).
    any_require_par: bool,
}

/// A registry that could not be built.
///
/// ```
/// use tower_par::{AuthMethod, Client, StaticClients, StaticClientsError};
///
/// // A confidential method with no secret is inconsistent.
/// let err = StaticClients::new()
///     .with_client(Client::new("app", AuthMethod::ClientSecretBasic), None)
///     .unwrap_err();
/// match err {
///     StaticClientsError::Invalid { client_id, .. } => assert_eq!(client_id, "app"),
///     other => panic!("unexpected {other}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum StaticClientsError {
    /// A client's configuration is inconsistent.
    Invalid {
        /// The client concerned.
        client_id: String,
        /// What is wrong.
        reason: String,
    },
    /// The file could not be read.
    Io(std::io::Error),
    /// The file could not be parsed.
    Parse(String),
}

impl fmt::Display for StaticClientsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid { client_id, reason } => write!(f, "client '{client_id}': {reason}"),
            Self::Io(e) => write!(f, "cannot read clients file: {e}"),
            Self::Parse(e) => write!(f, "cannot parse clients file: {e}"),
        }
    }
}

impl std::error::Error for StaticClientsError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    clients: Vec<FileClient>,
}

/// RFC 7591 / OIDC Registration members a client file may carry that the
/// layer has no use for: accepted and ignored, so that a file written for
/// another server loads. Any other unknown name is refused, to catch typos.
const IGNORED_MEMBERS: &[&str] = &[
    "grant_types",
    "client_name",
    "client_uri",
    "logo_uri",
    "contacts",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
    "software_statement",
    "application_type",
    "id_token_signed_response_alg",
    "userinfo_signed_response_alg",
    "subject_type",
    "sector_identifier_uri",
    "post_logout_redirect_uris",
    "default_max_age",
    "require_auth_time",
    "client_id_issued_at",
    "client_secret_expires_at",
];

#[derive(Deserialize)]
struct FileClient {
    client_id: String,
    #[serde(default = "default_method")]
    token_endpoint_auth_method: String,
    client_secret: Option<String>,
    client_secret_sha256: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
    #[serde(default)]
    require_pushed_authorization_requests: bool,
    request_uri_lifetime: Option<u64>,
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
    token_endpoint_auth_signing_alg: Option<String>,
    request_object_signing_alg: Option<String>,
    #[serde(default)]
    require_signed_request_object: bool,
    #[serde(default)]
    dpop_bound_access_tokens: bool,
    tls_client_auth_subject_dn: Option<String>,
    tls_client_auth_san_dns: Option<String>,
    tls_client_auth_san_uri: Option<String>,
    tls_client_auth_san_ip: Option<String>,
    tls_client_auth_san_email: Option<String>,
    /// Every other member: checked against [`IGNORED_MEMBERS`].
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde_json::Value>,
}

fn default_method() -> String {
    "client_secret_basic".to_owned()
}

impl StaticClients {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a client with its secret (`None` for public clients).
    ///
    /// Fails if the method and the secret disagree, if a redirect URI is not
    /// absolute or has a fragment (OA-3), if the lifetime is outside 1 to
    /// 600 seconds, or if the id is already registered.
    pub fn with_client(
        self,
        client: Client,
        secret: Option<&str>,
    ) -> Result<Self, StaticClientsError> {
        let digest = secret.map(|s| Sha256::digest(s.as_bytes()).into());
        let hmac = secret
            .filter(|_| client.auth_method == AuthMethod::ClientSecretJwt)
            .map(Secret::new);
        self.insert(client, digest, hmac)
    }

    /// Adds a client whose secret is given as its SHA-256 digest.
    pub fn with_client_digest(
        self,
        client: Client,
        secret_sha256: [u8; 32],
    ) -> Result<Self, StaticClientsError> {
        self.insert(client, Some(secret_sha256), None)
    }

    fn insert(
        mut self,
        client: Client,
        secret_sha256: Option<[u8; 32]>,
        hmac_secret: Option<Secret>,
    ) -> Result<Self, StaticClientsError> {
        let invalid = |reason: String| StaticClientsError::Invalid {
            client_id: client.client_id.clone(),
            reason,
        };
        if client.client_id.is_empty() {
            return Err(invalid("client_id is empty".into()));
        }
        match (client.auth_method.uses_secret(), secret_sha256.is_some()) {
            (true, false) => return Err(invalid(format!("{} needs a secret", client.auth_method))),
            (false, true) => {
                return Err(invalid(format!(
                    "a {} client has no secret",
                    client.auth_method
                )))
            }
            _ => {}
        }
        if client.auth_method == AuthMethod::ClientSecretJwt && hmac_secret.is_none() {
            return Err(invalid(
                "client_secret_jwt needs the secret itself (its assertions are MACed with it), \
                 not its digest"
                    .into(),
            ));
        }
        // RFC 7518 §3.2: an HMAC key at least as long as the hash output, or
        // one captured assertion lets the secret be guessed offline.
        if let Some(secret) = &hmac_secret {
            let min = match client.token_endpoint_auth_signing_alg.as_deref() {
                Some("HS384") => 48,
                Some("HS512") => 64,
                _ => 32,
            };
            if secret.expose().len() < min {
                return Err(invalid(format!(
                    "a client_secret_jwt secret must be at least {min} bytes"
                )));
            }
        }
        check_key_members(&client).map_err(invalid)?;
        for uri in &client.redirect_uris {
            let parsed: Option<http::Uri> = uri.parse().ok();
            if uri.contains('#')
                || parsed.is_none_or(|u| u.scheme().is_none() || u.authority().is_none())
            {
                return Err(invalid(format!(
                    "redirect URI '{uri}' must be absolute, without fragment"
                )));
            }
        }
        if let Some(l) = client.request_uri_lifetime {
            if !(1..=600).contains(&l.as_secs()) || l.subsec_nanos() != 0 {
                return Err(invalid(
                    "request_uri lifetime must be 1 to 600 whole seconds".into(),
                ));
            }
        }
        let map = Arc::make_mut(&mut self.clients);
        if map.contains_key(&client.client_id) {
            return Err(invalid("registered twice".into()));
        }
        self.any_require_par |= client.require_par;
        map.insert(
            client.client_id.clone(),
            Entry {
                client: Arc::new(client),
                secret_sha256,
                hmac_secret,
            },
        );
        Ok(self)
    }

    /// Parses the JSON format shown above.
    ///
    /// ```
    /// use tower_par::{AuthMethod, StaticClients, StaticClientsError};
    ///
    /// let clients = StaticClients::from_json(
    ///     r#"{"clients":[{"client_id":"spa","token_endpoint_auth_method":"none",
    ///        "redirect_uris":["https://spa.example/cb"]}]}"#,
    /// )?;
    /// assert_eq!(clients.get("spa").unwrap().auth_method, AuthMethod::None);
    ///
    /// let err = StaticClients::from_json("{").unwrap_err();
    /// assert!(matches!(err, StaticClientsError::Parse(_)));
    /// # Ok::<(), StaticClientsError>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Self, StaticClientsError> {
        let file: FileFormat =
            serde_json::from_str(text).map_err(|e| StaticClientsError::Parse(e.to_string()))?;
        Self::from_file_format(file)
    }

    /// Parses the same format written as TOML (`[[clients]]` tables).
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Self, StaticClientsError> {
        let file: FileFormat =
            toml::from_str(text).map_err(|e| StaticClientsError::Parse(e.to_string()))?;
        Self::from_file_format(file)
    }

    /// Loads a `.json` file, or (with the `toml` feature) a `.toml` file.
    ///
    /// ```
    /// use tower_par::{StaticClients, StaticClientsError};
    ///
    /// let path = std::env::temp_dir().join(format!("tower-par-doc-{}.json", std::process::id()));
    /// std::fs::write(&path, r#"{"clients":[{"client_id":"app",
    ///   "token_endpoint_auth_method":"none","redirect_uris":["https://app.example/cb"]}]}"#)?;
    /// let clients = StaticClients::from_path(&path)?;
    /// std::fs::remove_file(&path)?;
    /// assert_eq!(clients.len(), 1);
    ///
    /// // A missing file is an I/O error.
    /// let err = StaticClients::from_path(&path).unwrap_err();
    /// assert!(matches!(err, StaticClientsError::Io(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, StaticClientsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(StaticClientsError::Io)?;
        #[cfg(feature = "toml")]
        if path.extension().is_some_and(|e| e == "toml") {
            return Self::from_toml(&text);
        }
        Self::from_json(&text)
    }

    fn from_file_format(file: FileFormat) -> Result<Self, StaticClientsError> {
        let mut clients = Self::new();
        for c in file.clients {
            let invalid = |reason: String| StaticClientsError::Invalid {
                client_id: c.client_id.clone(),
                reason,
            };
            if let Some(name) = c
                .other
                .keys()
                .find(|k| !IGNORED_MEMBERS.contains(&k.as_str()))
            {
                return Err(invalid(format!("unknown client member '{name}'")));
            }
            let method: AuthMethod = c.token_endpoint_auth_method.parse().map_err(invalid)?;
            let mut client = Client::new(c.client_id.clone(), method);
            client.redirect_uris = c.redirect_uris;
            if let Some(rt) = c.response_types {
                client.response_types = rt;
            }
            client.scopes = c.scope.map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            });
            client.require_par = c.require_pushed_authorization_requests;
            client.request_uri_lifetime = c.request_uri_lifetime.map(Duration::from_secs);
            client.jwks = c.jwks.map(Jwks::from_value).transpose().map_err(invalid)?;
            client.jwks_uri = c.jwks_uri;
            client.token_endpoint_auth_signing_alg = c.token_endpoint_auth_signing_alg;
            client.request_object_signing_alg = c.request_object_signing_alg;
            client.require_signed_request_object = c.require_signed_request_object;
            client.dpop_bound_access_tokens = c.dpop_bound_access_tokens;
            client.tls_client_auth_subject = file_subject(
                c.tls_client_auth_subject_dn,
                c.tls_client_auth_san_dns,
                c.tls_client_auth_san_uri,
                c.tls_client_auth_san_ip,
                c.tls_client_auth_san_email,
            )
            .map_err(invalid)?;
            let hmac = match (&c.client_secret, method) {
                (Some(s), AuthMethod::ClientSecretJwt) => Some(Secret::new(s.clone())),
                _ => None,
            };
            let digest =
                match (c.client_secret, c.client_secret_sha256) {
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            "give client_secret or client_secret_sha256, not both".into(),
                        ))
                    }
                    (Some(s), None) => Some(Sha256::digest(s.as_bytes()).into()),
                    (None, Some(hex)) => Some(parse_hex32(&hex).ok_or_else(|| {
                        invalid("client_secret_sha256 must be 64 hex digits".into())
                    })?),
                    (None, None) => None,
                };
            clients = clients.insert(client, digest, hmac)?;
        }
        Ok(clients)
    }

    /// The registered client with this id.
    pub fn get(&self, client_id: &str) -> Option<&Client> {
        self.clients.get(client_id).map(|e| &*e.client)
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether the registry is empty.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    fn check(&self, credentials: &ClientCredentials) -> Result<Arc<Client>, ClientAuthError> {
        // JWT assertions and client certificates are verified by the
        // layer, with `client()` and `client_secret()`; a registry asked
        // to check one refuses it.
        if credentials.method.uses_assertion() || credentials.method.uses_certificate() {
            return Err(ClientAuthError::MethodNotAllowed);
        }
        let entry = self.clients.get(&credentials.client_id);
        let presented = credentials.secret.as_ref().map_or("", |s| s.expose());
        // Same work whether or not the client exists (AUTH-1).
        let expected = entry.and_then(|e| e.secret_sha256).unwrap_or(DUMMY_DIGEST);
        let secret_ok =
            crate::verify_secret_sha256(presented, &expected) & credentials.secret.is_some();
        let entry = entry.ok_or(ClientAuthError::UnknownClient)?;
        if entry.client.auth_method != credentials.method {
            return Err(ClientAuthError::MethodNotAllowed);
        }
        if entry.secret_sha256.is_some() && !secret_ok {
            return Err(ClientAuthError::BadCredentials);
        }
        Ok(entry.client.clone())
    }
}

/// RFC 8705 §2.1.2: at most one subject member (the method check wants
/// exactly one for `tls_client_auth`).
fn file_subject(
    dn: Option<String>,
    dns: Option<String>,
    uri: Option<String>,
    ip: Option<String>,
    email: Option<String>,
) -> Result<Option<TlsClientAuthSubject>, String> {
    let ip = ip
        .map(|ip| {
            ip.parse::<std::net::IpAddr>()
                .map_err(|_| format!("tls_client_auth_san_ip '{ip}' is not an IP address"))
        })
        .transpose()?;
    let mut given = [
        dn.map(TlsClientAuthSubject::SubjectDn),
        dns.map(TlsClientAuthSubject::SanDns),
        uri.map(TlsClientAuthSubject::SanUri),
        ip.map(TlsClientAuthSubject::SanIp),
        email.map(TlsClientAuthSubject::SanEmail),
    ]
    .into_iter()
    .flatten();
    let first = given.next();
    if let Some(second) = given.next() {
        return Err(format!(
            "give one of the tls_client_auth_* members, not both {} and {} (RFC 8705 §2.1.2)",
            first.as_ref().map_or("", TlsClientAuthSubject::member_name),
            second.member_name()
        ));
    }
    Ok(first)
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

impl ClientAuthenticator for StaticClients {
    async fn authenticate(
        &self,
        credentials: &ClientCredentials,
        _request: &http::request::Parts,
    ) -> Result<Arc<Client>, ClientAuthError> {
        self.check(credentials)
    }

    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, ClientAuthError> {
        Ok(self.clients.get(client_id).map(|e| e.client.clone()))
    }

    fn may_require_par(&self) -> bool {
        self.any_require_par
    }

    async fn client_secret(&self, client_id: &str) -> Result<Option<Secret>, ClientAuthError> {
        Ok(self
            .clients
            .get(client_id)
            .and_then(|e| e.hmac_secret.clone()))
    }
}

/// The key and algorithm members must fit the method: `private_key_jwt`
/// needs `jwks` or `jwks_uri` (not both, RFC 7591 §2), the pinned
/// algorithms must be ones the layer verifies for that method.
fn check_key_members(client: &Client) -> Result<(), String> {
    let method = client.auth_method;
    if client.jwks.is_some() && client.jwks_uri.is_some() {
        return Err("give jwks or jwks_uri, not both (RFC 7591 §2)".into());
    }
    if method == AuthMethod::PrivateKeyJwt && client.jwks.is_none() && client.jwks_uri.is_none() {
        return Err("private_key_jwt needs jwks or jwks_uri".into());
    }
    if let Some(uri) = &client.jwks_uri {
        check_jwks_uri(uri)?;
    }
    if let Some(jwks) = &client.jwks {
        if jwks.is_empty() {
            return Err("jwks has no key".into());
        }
    }
    check_mtls_members(client)?;
    #[cfg(feature = "jwt")]
    {
        use crate::jose;
        if let Some(alg) = &client.token_endpoint_auth_signing_alg {
            let parsed = jose::parse_alg(alg).ok_or_else(|| {
                format!("token_endpoint_auth_signing_alg '{alg}' is not a JWS algorithm")
            })?;
            let fits = match method {
                AuthMethod::PrivateKeyJwt => jose::ASYMMETRIC.contains(&parsed),
                AuthMethod::ClientSecretJwt => jose::HMAC.contains(&parsed),
                _ => true,
            };
            if !fits {
                return Err(format!(
                    "token_endpoint_auth_signing_alg '{alg}' does not fit {method}"
                ));
            }
        }
        if let Some(alg) = &client.request_object_signing_alg {
            let ok = jose::parse_alg(alg).is_some_and(|a| jose::ASYMMETRIC.contains(&a));
            if !ok {
                return Err(format!(
                    "request_object_signing_alg '{alg}' must be an asymmetric JWS algorithm"
                ));
            }
        }
    }
    Ok(())
}

/// RFC 8705: `tls_client_auth` needs exactly one subject member, with a
/// value that names something (see `TlsClientAuthSubject::check_value`),
/// `self_signed_tls_client_auth` an inline `jwks` with its certificate or
/// key; the subject members belong to `tls_client_auth` only. Both need
/// the `mtls` feature, which verifies them.
fn check_mtls_members(client: &Client) -> Result<(), String> {
    let method = client.auth_method;
    if method.uses_certificate() && !cfg!(feature = "mtls") {
        return Err(format!(
            "{method} needs tower-par's `mtls` feature, which verifies client certificates"
        ));
    }
    match (method, &client.tls_client_auth_subject) {
        (AuthMethod::TlsClientAuth, None) => {
            return Err("tls_client_auth needs one of tls_client_auth_subject_dn, \
                 tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, \
                 tls_client_auth_san_email (RFC 8705 §2.1.2)"
                .into())
        }
        (AuthMethod::TlsClientAuth, Some(subject)) => subject.check_value()?,
        (_, Some(subject)) => {
            return Err(format!(
                "{} is for tls_client_auth clients, not {method}",
                subject.member_name()
            ))
        }
        (_, None) => {}
    }
    if method == AuthMethod::SelfSignedTlsClientAuth {
        if client.jwks_uri.is_some() {
            return Err(
                "self_signed_tls_client_auth needs its certificate or key inline in jwks, \
                 not jwks_uri"
                    .into(),
            );
        }
        if client.jwks.is_none() {
            return Err(
                "self_signed_tls_client_auth needs jwks with the client's certificate (x5c) \
                 or public key (RFC 8705 §2.2)"
                    .into(),
            );
        }
    }
    #[cfg(feature = "mtls")]
    super::mtls::check_registration(client)?;
    Ok(())
}

/// `jwks_uri`: an absolute `https` URL, or `http` to a loopback host (for
/// development), without fragment.
pub(crate) fn check_jwks_uri(uri: &str) -> Result<(), String> {
    let parsed: http::Uri = uri
        .parse()
        .map_err(|_| format!("jwks_uri '{uri}' is not a URL"))?;
    let host = parsed.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let ok = match parsed.scheme_str() {
        Some("https") => true,
        Some("http") => loopback,
        _ => false,
    };
    if !ok || parsed.authority().is_none() || uri.contains('#') {
        return Err(format!(
            "jwks_uri '{uri}' must be an absolute https URL (http only to a loopback host)"
        ));
    }
    Ok(())
}

impl fmt::Debug for StaticClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self
            .clients
            .values()
            .map(|e| (e.client.client_id.as_str(), e.client.auth_method.as_str()))
            .collect();
        ids.sort_unstable();
        f.debug_struct("StaticClients")
            .field("clients", &ids)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Secret;

    fn creds(id: &str, method: AuthMethod, secret: Option<&str>) -> ClientCredentials {
        ClientCredentials {
            client_id: id.into(),
            method,
            secret: secret.map(Secret::new),
            assertion: None,
        }
    }

    fn registry() -> StaticClients {
        StaticClients::new()
            .with_client(
                Client::new("c", AuthMethod::ClientSecretBasic)
                    .redirect_uri("https://c.example/cb"),
                Some("s3cr+t %x"),
            )
            .unwrap()
            .with_client(
                Client::new("p", AuthMethod::None).redirect_uri("https://p.example/cb"),
                None,
            )
            .unwrap()
    }

    #[test]
    fn auth1_outcomes() {
        let r = registry();
        assert!(r
            .check(&creds(
                "c",
                AuthMethod::ClientSecretBasic,
                Some("s3cr+t %x")
            ))
            .is_ok());
        assert_eq!(
            r.check(&creds("c", AuthMethod::ClientSecretBasic, Some("wrong"))),
            Err(ClientAuthError::BadCredentials)
        );
        assert_eq!(
            r.check(&creds("nobody", AuthMethod::ClientSecretBasic, Some("x"))),
            Err(ClientAuthError::UnknownClient)
        );
        // AUTH-4: registered method enforced.
        assert_eq!(
            r.check(&creds("c", AuthMethod::ClientSecretPost, Some("s3cr+t %x"))),
            Err(ClientAuthError::MethodNotAllowed)
        );
        assert!(r.check(&creds("p", AuthMethod::None, None)).is_ok());
        assert_eq!(
            r.check(&creds("c", AuthMethod::None, None)),
            Err(ClientAuthError::MethodNotAllowed)
        );
    }

    #[test]
    fn debug_redacts_digests() {
        let d = format!("{:?}", registry());
        assert!(d.contains("\"c\"") && !d.contains("s3cr"));
        let hex: String = Sha256::digest(b"s3cr+t %x")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!d.contains(&hex[..16]));
    }

    #[test]
    fn rejects_inconsistent_clients() {
        let e =
            StaticClients::new().with_client(Client::new("x", AuthMethod::ClientSecretPost), None);
        assert!(e.is_err());
        let e = StaticClients::new().with_client(Client::new("x", AuthMethod::None), Some("s"));
        assert!(e.is_err());
        let e = StaticClients::new().with_client(
            Client::new("x", AuthMethod::None).redirect_uri("https://a.example/cb#frag"),
            None,
        );
        assert!(e.is_err());
        let e = StaticClients::new().with_client(
            Client::new("x", AuthMethod::None).redirect_uri("/relative"),
            None,
        );
        assert!(e.is_err());
        let e = StaticClients::new().with_client(
            Client::new("x", AuthMethod::None).request_uri_lifetime(Duration::from_secs(601)),
            None,
        );
        assert!(e.is_err());
        let twice = registry().with_client(Client::new("p", AuthMethod::None), None);
        assert!(twice.is_err());
    }

    #[test]
    fn loads_json_and_toml_with_digest_or_clear_secret() {
        let json = r#"{"clients":[
            {"client_id":"a","client_secret":"sa","redirect_uris":["https://a.example/cb"]},
            {"client_id":"b","token_endpoint_auth_method":"none","redirect_uris":["https://b.example/cb"],
             "require_pushed_authorization_requests":true,"request_uri_lifetime":30,"scope":"openid  email"}
        ]}"#;
        let r = StaticClients::from_json(json).unwrap();
        assert!(r
            .check(&creds("a", AuthMethod::ClientSecretBasic, Some("sa")))
            .is_ok());
        let b = r.get("b").unwrap();
        assert!(b.require_par);
        assert_eq!(b.request_uri_lifetime, Some(Duration::from_secs(30)));
        assert_eq!(
            b.scopes.as_deref(),
            Some(&["openid".to_owned(), "email".to_owned()][..])
        );

        assert!(StaticClients::from_json(r#"{"clients":[{"client_id":"x","bogus":1}]}"#).is_err());
        assert!(StaticClients::from_json(r#"{"clients":[{"client_id":"x","token_endpoint_auth_method":"private_key_jwt","client_secret":"s"}]}"#).is_err());
    }

    const ED_JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    #[test]
    fn loads_rfc7591_key_members() {
        let json = format!(
            r#"{{"clients":[
            {{"client_id":"fapi","token_endpoint_auth_method":"private_key_jwt","jwks":{ED_JWKS},
             "token_endpoint_auth_signing_alg":"EdDSA","request_object_signing_alg":"EdDSA",
             "require_signed_request_object":true,"dpop_bound_access_tokens":true,
             "redirect_uris":["https://fapi.example/cb"],"client_name":"FAPI app",
             "grant_types":["authorization_code"]}},
            {{"client_id":"remote","token_endpoint_auth_method":"private_key_jwt",
             "jwks_uri":"https://remote.example/jwks.json","redirect_uris":["https://remote.example/cb"]}},
            {{"client_id":"hs","token_endpoint_auth_method":"client_secret_jwt","client_secret":"hs-secret-0123456789-0123456789-0123456789-0123456789-0123456789",
             "token_endpoint_auth_signing_alg":"HS512","redirect_uris":["https://hs.example/cb"]}}
        ]}}"#
        );
        let r = StaticClients::from_json(&json).unwrap();
        let f = r.get("fapi").unwrap();
        assert_eq!(f.auth_method, AuthMethod::PrivateKeyJwt);
        assert_eq!(f.jwks.as_ref().map(Jwks::len), Some(1));
        assert_eq!(f.token_endpoint_auth_signing_alg.as_deref(), Some("EdDSA"));
        assert!(f.require_signed_request_object && f.dpop_bound_access_tokens);
        assert_eq!(
            r.get("remote").unwrap().jwks_uri.as_deref(),
            Some("https://remote.example/jwks.json")
        );
        // client_secret_jwt keeps the secret itself, for the HMAC key.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let secret = rt.block_on(r.client_secret("hs")).unwrap();
        assert_eq!(
            secret.as_ref().map(Secret::expose),
            Some("hs-secret-0123456789-0123456789-0123456789-0123456789-0123456789")
        );
        assert_eq!(rt.block_on(r.client_secret("fapi")).unwrap(), None);
        // A registry never verifies an assertion itself.
        assert_eq!(
            r.check(&creds("hs", AuthMethod::ClientSecretJwt, Some("hs-secret"))),
            Err(ClientAuthError::MethodNotAllowed)
        );
        assert!(!format!("{r:?}").contains("hs-secret"));
    }

    #[test]
    fn refuses_inconsistent_key_members() {
        let bad = [
            // private_key_jwt without keys
            r#"{"client_id":"x","token_endpoint_auth_method":"private_key_jwt"}"#.to_owned(),
            // both jwks and jwks_uri
            format!(r#"{{"client_id":"x","token_endpoint_auth_method":"private_key_jwt","jwks":{ED_JWKS},"jwks_uri":"https://x.example/j"}}"#),
            // plain http to a non-loopback host
            r#"{"client_id":"x","token_endpoint_auth_method":"private_key_jwt","jwks_uri":"http://x.example/j"}"#.to_owned(),
            // a secret for private_key_jwt
            format!(r#"{{"client_id":"x","token_endpoint_auth_method":"private_key_jwt","jwks":{ED_JWKS},"client_secret":"s"}}"#),
            // client_secret_jwt with only a digest
            r#"{"client_id":"x","token_endpoint_auth_method":"client_secret_jwt","client_secret_sha256":"2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"}"#.to_owned(),
            // an HMAC alg pinned for private_key_jwt, none, an unknown alg
            format!(r#"{{"client_id":"x","token_endpoint_auth_method":"private_key_jwt","jwks":{ED_JWKS},"token_endpoint_auth_signing_alg":"HS256"}}"#),
            format!(r#"{{"client_id":"x","token_endpoint_auth_method":"private_key_jwt","jwks":{ED_JWKS},"token_endpoint_auth_signing_alg":"none"}}"#),
            format!(r#"{{"client_id":"x","token_endpoint_auth_method":"private_key_jwt","jwks":{ED_JWKS},"request_object_signing_alg":"HS256"}}"#),
            r#"{"client_id":"x","token_endpoint_auth_method":"client_secret_jwt","client_secret":"0123456789abcdef0123456789abcdef","token_endpoint_auth_signing_alg":"ES256"}"#.to_owned(),
            // a secret too short for its hash
            r#"{"client_id":"x","token_endpoint_auth_method":"client_secret_jwt","client_secret":"short"}"#.to_owned(),
            r#"{"client_id":"x","token_endpoint_auth_method":"client_secret_jwt","client_secret":"0123456789abcdef0123456789abcdef","token_endpoint_auth_signing_alg":"HS512"}"#.to_owned(),
            // a private key in the set
            r#"{"client_id":"x","token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}}"#.to_owned(),
            // a typo
            format!(r#"{{"client_id":"x","token_endpoint_auth_method":"private_key_jwt","jwks":{ED_JWKS},"jwks_url":"https://x.example/j"}}"#),
        ];
        for c in bad {
            let json = format!(r#"{{"clients":[{c}]}}"#);
            assert!(StaticClients::from_json(&json).is_err(), "{c}");
        }
    }

    /// RFC 8705 clients load only with the feature that verifies them;
    /// a registry never authenticates a certificate method itself.
    #[test]
    fn mtls_clients_need_the_mtls_feature() {
        let json = r#"{"clients":[{"client_id":"m","token_endpoint_auth_method":"tls_client_auth",
            "tls_client_auth_san_dns":"m.example","redirect_uris":["https://m.example/cb"]}]}"#;
        let loaded = StaticClients::from_json(json);
        if cfg!(feature = "mtls") {
            let r = loaded.unwrap();
            assert_eq!(
                r.check(&creds("m", AuthMethod::TlsClientAuth, None)),
                Err(ClientAuthError::MethodNotAllowed)
            );
            assert_eq!(
                r.check(&creds("m", AuthMethod::None, None)),
                Err(ClientAuthError::MethodNotAllowed)
            );
        } else {
            let err = loaded.unwrap_err().to_string();
            assert!(err.contains("`mtls` feature"), "{err}");
        }
    }

    #[cfg(feature = "toml")]
    #[test]
    fn loads_toml_with_a_digest() {
        let toml = r#"
            [[clients]]
            client_id = "t"
            token_endpoint_auth_method = "client_secret_post"
            client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
            redirect_uris = ["https://t.example/cb"]
        "#;
        let r = StaticClients::from_toml(toml).unwrap();
        // 2bb8..a25b is SHA-256("secret").
        assert!(r
            .check(&creds("t", AuthMethod::ClientSecretPost, Some("secret")))
            .is_ok());
    }
}
