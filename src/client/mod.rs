//! Client authentication at the PAR endpoint (RFC 9126 §2, RFC 6749 §2.3).
//!
//! The layer reads the credentials off the request ([`ClientCredentials`]:
//! which method, which client, which secret) and enforces the rules that do
//! not depend on the client database: one method at a time (AUTH-3), no
//! credentials in the query string, a body `client_id` that agrees with the
//! Basic one (AUTH-9). A [`ClientAuthenticator`] then checks them against a
//! client database: [`StaticClients`] for clients known at start-up, or your
//! own implementation.

mod basic;
mod cache;
#[cfg(feature = "jwt")]
mod fetch;
#[cfg(feature = "jwt")]
pub(crate) mod jwt;
mod keys;
pub(crate) mod mtls;
mod registry;

pub(crate) use basic::{decode_basic, is_basic};
pub use cache::CachingClients;
#[cfg(feature = "jwks-fetch")]
pub use fetch::HttpJwksFetcher;
#[cfg(feature = "jwt")]
pub(crate) use fetch::{ClientKeys, KeysError};
#[cfg(feature = "jwt")]
pub use fetch::{FetchedJwks, JwksCacheConfig, JwksFetchError, JwksFetcher};
pub use keys::Jwks;
pub use mtls::{ClientCertificate, TlsClientAuthSubject};
pub use registry::{StaticClients, StaticClientsError};

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a client authenticates (RFC 7591 `token_endpoint_auth_method`).
///
/// ```
/// use tower_par::AuthMethod;
///
/// let method: AuthMethod = "private_key_jwt".parse()?;
/// assert_eq!(method, AuthMethod::PrivateKeyJwt);
/// assert!(method.uses_assertion() && !method.uses_secret());
/// assert_eq!(AuthMethod::ClientSecretPost.to_string(), "client_secret_post");
/// let mtls: AuthMethod = "tls_client_auth".parse()?;
/// assert!(mtls.uses_certificate() && !mtls.uses_secret());
/// assert!("client_secret".parse::<AuthMethod>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMethod {
    /// `Authorization: Basic` with the form-url-encoded id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A public client: `client_id` only (AUTH-10).
    None,
    /// A JWT signed with the client's private key, whose public keys are
    /// registered as `jwks` or `jwks_uri` (RFC 7523, OIDC Core §9).
    PrivateKeyJwt,
    /// A JWT MACed (HS256/384/512) with the client secret (OIDC Core §9).
    ClientSecretJwt,
    /// Mutual TLS with a certificate issued by a trusted CA, matched by
    /// its registered subject (RFC 8705 §2.1): the [`ClientCertificate`]
    /// request extension is the credential, the body names the client.
    /// Verified by the layer with the feature `mtls`.
    TlsClientAuth,
    /// Mutual TLS with a self-signed certificate whose certificate or
    /// public key is registered in the client's `jwks` (RFC 8705 §2.2).
    /// Verified by the layer with the feature `mtls`.
    SelfSignedTlsClientAuth,
}

impl AuthMethod {
    /// The registered name, e.g. `client_secret_basic`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Whether the method involves a client secret.
    pub fn uses_secret(&self) -> bool {
        matches!(
            self,
            Self::ClientSecretBasic | Self::ClientSecretPost | Self::ClientSecretJwt
        )
    }

    /// Whether the client authenticates with a JWT assertion
    /// (`client_assertion`, RFC 7523).
    pub fn uses_assertion(&self) -> bool {
        matches!(self, Self::PrivateKeyJwt | Self::ClientSecretJwt)
    }

    /// Whether the client authenticates with its TLS client certificate
    /// (RFC 8705: `tls_client_auth`, `self_signed_tls_client_auth`).
    pub fn uses_certificate(&self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            "none" => Ok(Self::None),
            "private_key_jwt" => Ok(Self::PrivateKeyJwt),
            "client_secret_jwt" => Ok(Self::ClientSecretJwt),
            "tls_client_auth" => Ok(Self::TlsClientAuth),
            "self_signed_tls_client_auth" => Ok(Self::SelfSignedTlsClientAuth),
            other => Err(format!("unsupported token_endpoint_auth_method '{other}'")),
        }
    }
}

/// A registered client: everything the layer needs to validate its pushed
/// requests. Holds no secret.
///
/// ```
/// use std::time::Duration;
/// use tower_par::{AuthMethod, Client};
///
/// let client = Client::new("app", AuthMethod::ClientSecretBasic)
///     .redirect_uri("https://app.example/cb")
///     .scopes(["openid", "profile"])
///     .require_par(true)
///     .request_uri_lifetime(Duration::from_secs(90));
/// assert_eq!(client.client_id, "app");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Client {
    /// The client identifier.
    pub client_id: String,
    /// Its registered authentication method (AUTH-4).
    pub auth_method: AuthMethod,
    /// Registered redirect URIs, matched by simple string comparison (OA-4).
    pub redirect_uris: Vec<String>,
    /// Allowed `response_type` values; each entry is a space-delimited set.
    pub response_types: Vec<String>,
    /// Allowed scope values; `None` allows any scope.
    pub scopes: Option<Vec<String>>,
    /// Whether this client may only use PAR (RFC 9126 §6, PAR-31).
    pub require_par: bool,
    /// Overrides the layer's `request_uri` lifetime for this client.
    pub request_uri_lifetime: Option<Duration>,
    /// Its public keys, inline (RFC 7591 `jwks`): for `private_key_jwt`
    /// and signed request objects.
    pub jwks: Option<Jwks>,
    /// Where its public keys are published (RFC 7591 `jwks_uri`), fetched
    /// through the layer's `JwksFetcher`.
    pub jwks_uri: Option<String>,
    /// The one JWS algorithm its client assertions must use
    /// (`token_endpoint_auth_signing_alg`); `None` allows every algorithm
    /// the profile allows.
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// The one JWS algorithm its request objects must use
    /// (`request_object_signing_alg`, RFC 9101 §10.5); `None` allows every
    /// algorithm the profile allows.
    pub request_object_signing_alg: Option<String>,
    /// Whether its pushes must carry a signed request object
    /// (`require_signed_request_object`, RFC 9101 §10.5, PAR-19).
    pub require_signed_request_object: bool,
    /// Whether its tokens must be DPoP-bound (`dpop_bound_access_tokens`,
    /// RFC 9449 §5.2): its token requests need a DPoP proof.
    pub dpop_bound_access_tokens: bool,
    /// What a [`TlsClientAuth`](AuthMethod::TlsClientAuth) client's
    /// certificate must carry (RFC 8705 §2.1.2); required for that method
    /// and refused for the others.
    pub tls_client_auth_subject: Option<TlsClientAuthSubject>,
}

impl Client {
    /// A client allowed `response_type=code`, with no redirect URI yet.
    pub fn new(client_id: impl Into<String>, auth_method: AuthMethod) -> Self {
        Self {
            client_id: client_id.into(),
            auth_method,
            redirect_uris: Vec::new(),
            response_types: vec!["code".to_owned()],
            scopes: None,
            require_par: false,
            request_uri_lifetime: None,
            jwks: None,
            jwks_uri: None,
            token_endpoint_auth_signing_alg: None,
            request_object_signing_alg: None,
            require_signed_request_object: false,
            dpop_bound_access_tokens: false,
            tls_client_auth_subject: None,
        }
    }

    /// Adds a registered redirect URI.
    #[must_use]
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// Adds registered redirect URIs, like
    /// [`redirect_uri`](Self::redirect_uri) for each.
    ///
    /// ```
    /// use tower_par::{AuthMethod, Client};
    ///
    /// let client = Client::new("app", AuthMethod::None)
    ///     .redirect_uris(["https://app.example/cb", "https://app.example/cb2"]);
    /// assert_eq!(client.redirect_uris.len(), 2);
    /// ```
    #[must_use]
    pub fn redirect_uris<I, T>(mut self, uris: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.redirect_uris.extend(uris.into_iter().map(Into::into));
        self
    }

    /// Replaces the allowed response types (default: `code`).
    #[must_use]
    pub fn response_types<I, T>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.response_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// Restricts the scopes this client may request.
    #[must_use]
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Requires PAR for this client.
    #[must_use]
    pub fn require_par(mut self, required: bool) -> Self {
        self.require_par = required;
        self
    }

    /// Sets this client's `request_uri` lifetime (1 to 600 seconds; checked
    /// when the client is registered).
    #[must_use]
    pub fn request_uri_lifetime(mut self, lifetime: Duration) -> Self {
        self.request_uri_lifetime = Some(lifetime);
        self
    }

    /// Registers its public keys inline (RFC 7591 `jwks`).
    #[must_use]
    pub fn jwks(mut self, jwks: Jwks) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// Registers the URL of its public keys (RFC 7591 `jwks_uri`).
    #[must_use]
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Pins the algorithm of its client assertions
    /// (`token_endpoint_auth_signing_alg`, e.g. `"PS256"`).
    #[must_use]
    pub fn token_endpoint_auth_signing_alg(mut self, alg: impl Into<String>) -> Self {
        self.token_endpoint_auth_signing_alg = Some(alg.into());
        self
    }

    /// Pins the algorithm of its request objects
    /// (`request_object_signing_alg`, e.g. `"ES256"`).
    #[must_use]
    pub fn request_object_signing_alg(mut self, alg: impl Into<String>) -> Self {
        self.request_object_signing_alg = Some(alg.into());
        self
    }

    /// Requires signed request objects from this client (RFC 9101 §10.5).
    #[must_use]
    pub fn require_signed_request_object(mut self, required: bool) -> Self {
        self.require_signed_request_object = required;
        self
    }

    /// Requires DPoP-bound tokens for this client (RFC 9449 §5.2).
    #[must_use]
    pub fn dpop_bound_access_tokens(mut self, required: bool) -> Self {
        self.dpop_bound_access_tokens = required;
        self
    }

    /// Registers the subject a `tls_client_auth` client's certificate
    /// must carry (RFC 8705 §2.1.2).
    #[must_use]
    pub fn tls_client_auth_subject(mut self, subject: TlsClientAuthSubject) -> Self {
        self.tls_client_auth_subject = Some(subject);
        self
    }
}

/// A client secret. `Debug` never prints it.
///
/// ```
/// use tower_par::Secret;
///
/// let secret = Secret::new("s3cr3t");
/// assert_eq!(secret.expose(), "s3cr3t");
/// assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself; handle with care.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The credentials a request presented, as read by the layer.
///
/// For the JWT methods ([`AuthMethod::PrivateKeyJwt`],
/// [`AuthMethod::ClientSecretJwt`]) the layer verifies the assertion itself
/// (feature `jwt`), with the keys of [`ClientAuthenticator::client`] or the
/// secret of [`ClientAuthenticator::client_secret`];
/// [`ClientAuthenticator::authenticate`] sees only the other methods.
///
/// The mTLS methods (RFC 8705) have no credential in the request body: a
/// request with a [`ClientCertificate`] extension and nothing but a
/// `client_id` reads as [`AuthMethod::None`]. When the client named is
/// registered for [`AuthMethod::TlsClientAuth`] or
/// [`AuthMethod::SelfSignedTlsClientAuth`] (as
/// [`ClientAuthenticator::client_for_authentication`] answers), the layer
/// verifies the certificate itself (feature `mtls`); otherwise the request
/// goes to [`ClientAuthenticator::authenticate`] as a `none` request.
///
/// ```
/// use tower_par::{
///     AuthMethod, Client, ClientAuthError, ClientAuthenticator, ClientCredentials, Secret,
///     StaticClients,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clients = StaticClients::new().with_client(
///     Client::new("app", AuthMethod::ClientSecretPost).redirect_uri("https://app.example/cb"),
///     Some("s3cr3t"),
/// )?;
/// let (parts, ()) = http::Request::post("/par").body(())?.into_parts();
/// let mut credentials = ClientCredentials {
///     client_id: "app".into(),
///     method: AuthMethod::ClientSecretPost,
///     secret: Some(Secret::new("s3cr3t")),
///     assertion: None,
/// };
/// let client = clients.authenticate(&credentials, &parts).await?;
/// assert_eq!(client.client_id, "app");
///
/// credentials.secret = Some(Secret::new("guess"));
/// let err = clients.authenticate(&credentials, &parts).await.unwrap_err();
/// assert_eq!(err, ClientAuthError::BadCredentials);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The client the request claims to be.
    pub client_id: String,
    /// The method the request used.
    pub method: AuthMethod,
    /// The secret, for the secret-based methods.
    pub secret: Option<Secret>,
    /// The `client_assertion`, for the JWT methods (redacted in `Debug`).
    pub assertion: Option<Secret>,
}

/// Why a client could not be authenticated.
///
/// Every variant but [`ClientAuthError::Unavailable`] is answered with the
/// same `401 invalid_client` (AUTH-1), so the response never tells an
/// unknown client from a wrong secret. The variant is kept for logs.
///
/// ```
/// use tower_par::ClientAuthError;
///
/// assert_eq!(ClientAuthError::UnknownClient, ClientAuthError::UnknownClient);
/// assert_ne!(ClientAuthError::UnknownClient, ClientAuthError::BadCredentials);
/// assert!(!ClientAuthError::BadCredentials.to_string().is_empty());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientAuthError {
    /// No such client.
    UnknownClient,
    /// The secret did not match.
    BadCredentials,
    /// The client used a method it is not registered for (AUTH-4).
    MethodNotAllowed,
    /// The client database could not be reached: answered with 503. The
    /// underlying error is kept as the
    /// [`source`](std::error::Error::source), for logs; clients never see
    /// it. Build it with [`ClientAuthError::unavailable`].
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
}

impl ClientAuthError {
    /// The client database failed: keeps `err` as the source.
    ///
    /// ```
    /// use std::error::Error as _;
    /// use tower_par::ClientAuthError;
    ///
    /// let e = ClientAuthError::unavailable("connection refused");
    /// assert_eq!(e.to_string(), "client database unavailable");
    /// assert_eq!(e.source().unwrap().to_string(), "connection refused");
    /// ```
    pub fn unavailable(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unavailable(err.into())
    }
}

/// Variants are equal when they are the same; two `Unavailable` errors when
/// their sources read the same.
impl PartialEq for ClientAuthError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::UnknownClient, Self::UnknownClient)
            | (Self::BadCredentials, Self::BadCredentials)
            | (Self::MethodNotAllowed, Self::MethodNotAllowed) => true,
            (Self::Unavailable(a), Self::Unavailable(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

impl Eq for ClientAuthError {}

impl fmt::Display for ClientAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownClient => f.write_str("unknown client"),
            Self::BadCredentials => f.write_str("bad client credentials"),
            Self::MethodNotAllowed => f.write_str("authentication method not allowed"),
            // The cause is the source: `Display` stays safe to show.
            Self::Unavailable(_) => f.write_str("client database unavailable"),
        }
    }
}

impl std::error::Error for ClientAuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unavailable(e) => Some(&**e),
            _ => None,
        }
    }
}

/// A client database that authenticates clients at the PAR endpoint.
///
/// Implement it to check clients against your own storage. Keep failures
/// indistinguishable in time: compare secrets in constant time, and do the
/// same work for an unknown client as for a wrong secret (AUTH-1, AUTH-5).
///
/// ```
/// use std::sync::Arc;
/// use tower_par::{AuthMethod, Client, ClientAuthError, ClientAuthenticator, ClientCredentials};
///
/// /// Every client whose id starts with "app-" is a public client.
/// #[derive(Clone)]
/// struct PublicApps;
///
/// impl ClientAuthenticator for PublicApps {
///     async fn authenticate(
///         &self,
///         credentials: &ClientCredentials,
///         _request: &http::request::Parts,
///     ) -> Result<Arc<Client>, ClientAuthError> {
///         let client = self.client(&credentials.client_id).await?.ok_or(ClientAuthError::UnknownClient)?;
///         if credentials.method != AuthMethod::None {
///             return Err(ClientAuthError::MethodNotAllowed);
///         }
///         Ok(client)
///     }
///
///     async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, ClientAuthError> {
///         Ok(client_id.starts_with("app-").then(|| {
///             Arc::new(Client::new(client_id, AuthMethod::None)
///                 .redirect_uri(format!("https://{client_id}.example/cb")))
///         }))
///     }
///
///     // No client of this registry requires PAR.
///     fn may_require_par(&self) -> bool {
///         false
///     }
/// }
/// ```
pub trait ClientAuthenticator: Clone + Send + Sync + 'static {
    /// Checks the presented credentials and returns the client.
    ///
    /// `request` gives access to headers and extensions (for example a TLS
    /// client certificate put there by the server).
    fn authenticate(
        &self,
        credentials: &ClientCredentials,
        request: &http::request::Parts,
    ) -> impl Future<Output = Result<Arc<Client>, ClientAuthError>> + Send;

    /// Looks a client up without authenticating it: for the authorization
    /// endpoint's per-client require-PAR policy, and at every redemption,
    /// to check the stored request against the client's current
    /// registration (RFC 9126 §7.4, PAR-41).
    ///
    /// `Ok(None)` means the client does not exist (any more): its pushed
    /// requests are then refused. `Err` means the registry could not answer
    /// (return [`ClientAuthError::Unavailable`]): the layer then answers
    /// `503 temporarily_unavailable`, refuses requests that PAR may be
    /// required for rather than passing them, and leaves pushed requests
    /// redeemable for a retry.
    ///
    /// Cost: at the authorization endpoint, while
    /// [`may_require_par`](Self::may_require_par) is `true`, a request
    /// without `request_uri` costs one call per distinct `client_id` it
    /// names (at most four; more are refused), and a redemption costs one.
    /// Wrap a database-backed registry in
    /// [`CachingClients`] to answer repeats from
    /// memory.
    fn client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<Arc<Client>>, ClientAuthError>> + Send;

    /// Whether any client may require PAR (RFC 9126 §6, PAR-31). While it
    /// is `true`, the authorization endpoint refuses requests it cannot
    /// fully read (a body other than an exact
    /// `application/x-www-form-urlencoded` POST, a compressed body, a
    /// parameter name other parsers would read as a checked one), since the
    /// wrapped service could find in them a client that requires PAR.
    /// Return `false` only when no client can require PAR, to let such
    /// requests through to a legacy endpoint that reads them. The default,
    /// `true`, is the safe answer for registries that cannot tell.
    fn may_require_par(&self) -> bool {
        true
    }

    /// Looks a client up to authenticate it with a JWT assertion: its
    /// method, pinned algorithm and keys. The default is
    /// [`client`](Self::client); a caching wrapper answers from the
    /// registry itself, so that a removed client or key stops
    /// authenticating at once.
    fn client_for_authentication(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<Arc<Client>>, ClientAuthError>> + Send {
        self.client(client_id)
    }

    /// The client secret itself, for a `client_secret_jwt` client: the key
    /// of its HMAC assertions (OIDC Core §9). A registry that keeps only
    /// digests cannot offer this method; the default answers `Ok(None)`,
    /// which fails such clients' authentication.
    fn client_secret(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<Secret>, ClientAuthError>> + Send {
        let _ = client_id;
        std::future::ready(Ok(None))
    }
}
