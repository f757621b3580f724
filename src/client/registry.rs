//! `StaticClients`: a client registry built in code or loaded from a file.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthMethod, Client, ClientAuthError, ClientAuthenticator, ClientCredentials};

/// Digest compared against when the client is unknown, so that an unknown
/// client costs the same as a wrong secret (AUTH-1: flat timing).
const DUMMY_DIGEST: [u8; 32] = [0x5a; 32];

#[derive(Clone)]
struct Entry {
    client: Arc<Client>,
    secret_sha256: Option<[u8; 32]>,
}

/// An immutable, in-memory client registry.
///
/// Secrets are kept only as SHA-256 digests and compared in constant time;
/// `Debug` lists client ids and methods, never digests. Client secrets are
/// expected to be high-entropy random strings (as OAuth servers issue them),
/// for which a fast digest is the right tool; do not use human passwords.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
        self.insert(client, digest)
    }

    /// Adds a client whose secret is given as its SHA-256 digest.
    pub fn with_client_digest(
        self,
        client: Client,
        secret_sha256: [u8; 32],
    ) -> Result<Self, StaticClientsError> {
        self.insert(client, Some(secret_sha256))
    }

    fn insert(
        mut self,
        client: Client,
        secret_sha256: Option<[u8; 32]>,
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
            (false, true) => return Err(invalid("a public client has no secret".into())),
            _ => {}
        }
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
            },
        );
        Ok(self)
    }

    /// Parses the JSON format shown above.
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
            clients = clients.insert(client, digest)?;
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
        let entry = self.clients.get(&credentials.client_id);
        let presented: [u8; 32] = match &credentials.secret {
            Some(s) => Sha256::digest(s.expose().as_bytes()).into(),
            None => [0; 32],
        };
        // Same work whether or not the client exists (AUTH-1).
        let expected = entry.and_then(|e| e.secret_sha256).unwrap_or(DUMMY_DIGEST);
        let secret_ok: bool = presented.ct_eq(&expected).into();
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
