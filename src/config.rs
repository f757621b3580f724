//! Settings shared by every clone of the layer, fixed once built.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::validate::{DynValidator, Rules};

/// A rule set for pushed requests, set with
/// [`ParLayer::profile`](crate::ParLayer::profile).
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_par::{AuthMethod, Client, ParLayer, ParRequestBody, Profile, StaticClients};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// assert_eq!(Profile::default(), Profile::Rfc9126);
/// let clients = StaticClients::new().with_client(
///     Client::new("spa", AuthMethod::None).redirect_uri("https://spa.example/cb"),
///     None,
/// )?;
/// let push = || {
///     Request::post("/par")
///         .header("content-type", "application/x-www-form-urlencoded")
///         .body(Full::new(Bytes::from_static(b"client_id=spa&response_type=code")))
/// };
/// for (profile, accepted) in [(Profile::Rfc9126, true), (Profile::Fapi2, false)] {
///     let svc = ServiceBuilder::new()
///         .layer(ParLayer::new(clients.clone()).issuer("https://as.example")?.profile(profile))
///         .service_fn(|_: Request<ParRequestBody<Full<Bytes>>>| async {
///             Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
///         });
///     // FAPI 2.0 refuses public clients at the PAR endpoint.
///     let res = svc.oneshot(push()?).await?;
///     assert_eq!(res.status() == 201, accepted);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Profile {
    /// RFC 9126 with the layer's defaults.
    #[default]
    Rfc9126,
    /// FAPI 2.0 Security Profile (final), at the PAR endpoint and the
    /// authorization endpoint the layer fronts. What it changes:
    ///
    /// | Rule | [`Profile::Rfc9126`] | `Fapi2` | Clause |
    /// |---|---|---|---|
    /// | Client authentication | `client_secret_basic`, `client_secret_post`, `none`, `private_key_jwt`, `client_secret_jwt`, `tls_client_auth`, `self_signed_tls_client_auth` (as registered) | `private_key_jwt`, `tls_client_auth` or `self_signed_tls_client_auth` (feature `mtls`); public clients refused | FAPI 2.0 SP §5.3.2.1 items 3, 6 (FAPI-3, FAPI-5) |
    /// | Client assertion `aud` | issuer, token endpoint URL or PAR endpoint URL; string or array | the issuer, as a string | §5.3.2.1 item 8 (FAPI-8) |
    /// | JWT `iat`/`nbf` ahead of the clock | up to `ParLayer::jwt_leeway` (30 s) | leeway held within 10..=60 s: 10 s ahead accepted, over 60 s refused | §5.3.2.1 item 13 (FAPI-13) |
    /// | JWS algorithms (assertions, request objects, DPoP proofs) | RS256/384/512, PS256/384/512, ES256, ES384, EdDSA; HS256/384/512 for `client_secret_jwt` | PS256, ES256, EdDSA | §5.4.1 (FAPI-25) |
    /// | PKCE | per [`PkcePolicy`] | `S256` required, `plain` refused | §5.3.2.2 item 5 (FAPI-16) |
    /// | `redirect_uri` in the push | optional when one is registered | required | §5.3.2.2 item 6 (FAPI-18) |
    /// | `response_type` | as registered | `code` only | §5.3.2.2 item 1 (FAPI-14) |
    /// | `request_uri` lifetime | 1 to 600 s | capped at 599 s (`expires_in` < 600) | §5.3.2.2 item 12 (FAPI-17) |
    /// | PAR at the authorization endpoint | optional ([`require_par`](crate::ParLayer::require_par)) | required for every client | §5.3.2.2 items 2–4 (FAPI-15) |
    /// | Request object `exp`/`nbf` | enforced when present | both required, `exp - nbf` ≤ 60 min | FAPI 2.0 Message Signing §5.3.1 (JAR-11) |
    /// | Discovery | wrapped server's auth members kept | `token_endpoint_auth_methods_supported: ["private_key_jwt"]`, FAPI algorithms, DPoP algorithms advertised | §5.3.2.1 item 1 (FAPI-1) |
    ///
    /// Left to the wrapped service: sender-constrained tokens at its token
    /// endpoint (FAPI-4: bind codes to the pushed `dpop_jkt`, see
    /// [`TokenEndpoint`](crate::TokenEndpoint)), `iss` in the authorization
    /// response (FAPI-19), code lifetime (FAPI-11) and TLS (FAPI-26).
    Fapi2,
}

/// PKCE requirements at push time, set with
/// [`ParLayer::pkce`](crate::ParLayer::pkce).
///
/// ```
/// use tower_par::{ParLayer, PkcePolicy, StaticClients};
///
/// let mut policy = PkcePolicy::default();
/// assert!(!policy.required && !policy.allow_plain); // optional, S256 only
/// policy.required = true;
/// let layer = ParLayer::new(StaticClients::new()).pkce(policy);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PkcePolicy {
    /// Reject pushes without `code_challenge` (PKCE-6).
    pub required: bool,
    /// Accept `code_challenge_method=plain` (and a missing method, which
    /// means plain, PKCE-4). Off by default: S256 only.
    pub allow_plain: bool,
}

/// How a `request_uri` may be used at the authorization endpoint.
///
/// RFC 9126 §4 says a `request_uri` SHOULD be one-time use and MAY be
/// reused when the user reloads the page; FAPI 2.0 (note 3) enforces
/// one-time use "at the point of authorization". The two policies trade
/// these off differently.
///
/// ```
/// use tower_par::{ParLayer, Redemption, StaticClients};
///
/// assert_eq!(Redemption::default(), Redemption::FlowBound);
/// // One redemption per `request_uri`, no flow cookie.
/// let layer = ParLayer::new(StaticClients::new()).redemption(Redemption::Strict);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Redemption {
    /// The default. The first redemption (within `expires_in`) moves the
    /// request to "in flow" and binds it to that browser with a random
    /// `HttpOnly` cookie of its own (`__Host-par_flow_<tag>` by default).
    /// While the flow lasts (the flow window, 10 minutes by default) the same browser may come back to
    /// `/authorize?client_id=..&request_uri=..` any number of times (reload,
    /// back button, login bounce) and gets the same request; any other
    /// browser gets `invalid_request_uri`. The request is consumed when the
    /// wrapped service sends the authorization response to the client (a
    /// redirect to the pushed `redirect_uri` with `code` or `error`, or a
    /// `form_post` page), or when the window ends. That response may come
    /// from a later step of the flow as well, on the authorization path or
    /// below it, or on a path given to
    /// [`ParLayer::flow_paths`](crate::ParLayer::flow_paths) (Keycloak's
    /// `login-actions`), as long as the browser presents the flow's cookie
    /// there.
    ///
    /// Defends against: replay of a leaked `request_uri` by another user
    /// agent (no cookie, no redemption), double completion (two tabs: one
    /// authorization response reaches the client), and login flows killed
    /// by a short `expires_in` (the lifetime bounds the first use only).
    #[default]
    FlowBound,
    /// Consume at the first redemption: a reload or a login bounce back to
    /// `/authorize?request_uri=..` fails with `invalid_request_uri`.
    ///
    /// Defends against: any second use at all, including by the same
    /// browser, and needs no cookie. Suits deployments whose authorization
    /// endpoint completes in one request, or where a cookie is not wanted.
    ///
    /// A login or consent step must therefore keep the authorization
    /// request server-side and continue from it, rather than bounce the
    /// browser back through the authorization endpoint: keep what the
    /// wrapped service received (in its session, or under a random id bound
    /// to the browser), log the user in, then answer from the kept request.
    /// The layer still rewrites a login bounce in `Location` or `Refresh`
    /// to the compact `authorize_path?client_id=..&request_uri=..` (M-3: the
    /// pushed values stay out of the browser), but in strict mode that URL
    /// cannot be re-entered.
    Strict,
}

/// The browser-binding cookie of [`Redemption::FlowBound`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlowCookie {
    pub(crate) name: String,
    pub(crate) secure: bool,
}

/// Settings of the JWT-based features (client assertions, DPoP, request
/// objects). Present without the `jwt` feature too, unused there.
#[derive(Clone)]
#[cfg_attr(not(feature = "jwt"), allow(dead_code))]
pub(crate) struct JwtSettings {
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub(crate) leeway: Duration,
    /// The longest a client assertion may live: `exp` at most this far
    /// after now (and after `iat`); also bounds its `jti` replay record.
    pub(crate) max_assertion_lifetime: Duration,
    /// How old a DPoP proof's `iat` may be (RFC 9449 §11.1, DPOP-9).
    pub(crate) dpop_max_age: Duration,
    /// The key of stateless DPoP nonces; `Some` makes nonces required
    /// (RFC 9449 §8, DPOP-7).
    pub(crate) dpop_nonce_secret: Option<Arc<[u8]>>,
    /// How long one nonce time step lasts; a nonce is good for this step
    /// and the next.
    pub(crate) dpop_nonce_step: Duration,
    /// `require_signed_request_object` for every client (RFC 9101 §10.5).
    pub(crate) require_signed_request_object: bool,
    /// The longest `exp - nbf` of a request object (FAPI 2.0 Message
    /// Signing: 60 minutes).
    pub(crate) request_object_max_lifetime: Duration,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            leeway: Duration::from_secs(30),
            max_assertion_lifetime: Duration::from_secs(300),
            dpop_max_age: Duration::from_secs(60),
            dpop_nonce_secret: None,
            dpop_nonce_step: Duration::from_secs(60),
            require_signed_request_object: false,
            request_object_max_lifetime: Duration::from_secs(3600),
        }
    }
}

impl fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSettings")
            .field("leeway", &self.leeway)
            .field("max_assertion_lifetime", &self.max_assertion_lifetime)
            .field("dpop_max_age", &self.dpop_max_age)
            .field("dpop_nonces", &self.dpop_nonce_secret.is_some())
            .field(
                "require_signed_request_object",
                &self.require_signed_request_object,
            )
            .finish_non_exhaustive()
    }
}

/// Whether and how the layer touches the discovery documents (RFC 8414,
/// OpenID Connect Discovery), set with
/// [`ParLayer::metadata_mode`](crate::ParLayer::metadata_mode).
///
/// Every mode but `Off` needs an [`issuer`](crate::ParLayer::issuer) or a
/// [`par_endpoint_url`](crate::ParLayer::par_endpoint_url):
/// [`ParLayer::build`](crate::ParLayer::build) refuses the combination
/// otherwise ([`Setting::Metadata`]).
///
/// ```
/// use tower_par::{Metadata, ParLayer, StaticClients};
///
/// let layer = ParLayer::new(StaticClients::new())
///     .issuer("https://as.example")?
///     .metadata_mode(Metadata::AugmentOrServe)
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), tower_par::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Metadata {
    /// The default: discovery documents pass through untouched.
    #[default]
    Off,
    /// Adds the PAR members to the wrapped service's discovery documents.
    Augment,
    /// Like `Augment`, and serves a minimal RFC 8414 document when the
    /// wrapped service answers 404 on the discovery paths.
    AugmentOrServe,
}

/// The setting a [`ConfigError`] is about, named like its builder method
/// on [`ParLayer`](crate::ParLayer).
///
/// ```
/// use std::time::Duration;
/// use tower_par::{ParLayer, Setting, StaticClients};
///
/// let err = ParLayer::new(StaticClients::new())
///     .request_uri_lifetime(Duration::from_secs(3600))
///     .unwrap_err();
/// assert_eq!(err.setting(), Setting::RequestUriLifetime);
/// assert_eq!(err.setting().name(), "request_uri_lifetime");
/// assert_eq!(Setting::Issuer.to_string(), "issuer");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// [`ParLayer::par_path`](crate::ParLayer::par_path).
    ParPath,
    /// [`ParLayer::authorize_path`](crate::ParLayer::authorize_path).
    AuthorizePath,
    /// [`ParLayer::issuer`](crate::ParLayer::issuer).
    Issuer,
    /// [`ParLayer::par_endpoint_url`](crate::ParLayer::par_endpoint_url).
    ParEndpointUrl,
    /// [`ParLayer::token_endpoint_url`](crate::ParLayer::token_endpoint_url).
    TokenEndpointUrl,
    /// [`ParLayer::request_uri_lifetime`](crate::ParLayer::request_uri_lifetime).
    RequestUriLifetime,
    /// [`ParLayer::par_body_timeout`](crate::ParLayer::par_body_timeout).
    ParBodyTimeout,
    /// [`ParLayer::flow_window`](crate::ParLayer::flow_window).
    FlowWindow,
    /// [`ParLayer::flow_cookie_name`](crate::ParLayer::flow_cookie_name).
    FlowCookieName,
    /// [`ParLayer::flow_paths`](crate::ParLayer::flow_paths).
    FlowPaths,
    /// [`ParLayer::metadata_mode`](crate::ParLayer::metadata_mode) and its
    /// shorthands.
    Metadata,
    /// [`ParLayer::profile`](crate::ParLayer::profile).
    Profile,
    /// `ParLayer::require_signed_request_object` (feature `jwt`).
    RequireSignedRequestObject,
    /// `ParLayer::jwt_leeway` (feature `jwt`).
    JwtLeeway,
    /// `ParLayer::max_assertion_lifetime` (feature `jwt`).
    MaxAssertionLifetime,
    /// `ParLayer::dpop_proof_max_age` (feature `jwt`).
    DpopProofMaxAge,
    /// `ParLayer::dpop_nonce_secret` (feature `jwt`).
    DpopNonceSecret,
    /// `ParLayer::dpop_nonce_step` (feature `jwt`).
    DpopNonceStep,
    /// `ParLayer::jwks_cache` (feature `jwt`).
    JwksCache,
    /// `ParLayer::tls_client_roots` (feature `mtls`).
    TlsClientRoots,
}

impl Setting {
    /// The builder method's name, e.g. `"issuer"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ParPath => "par_path",
            Self::AuthorizePath => "authorize_path",
            Self::Issuer => "issuer",
            Self::ParEndpointUrl => "par_endpoint_url",
            Self::TokenEndpointUrl => "token_endpoint_url",
            Self::RequestUriLifetime => "request_uri_lifetime",
            Self::ParBodyTimeout => "par_body_timeout",
            Self::FlowWindow => "flow_window",
            Self::FlowCookieName => "flow_cookie_name",
            Self::FlowPaths => "flow_paths",
            Self::Metadata => "metadata_mode",
            Self::Profile => "profile",
            Self::RequireSignedRequestObject => "require_signed_request_object",
            Self::JwtLeeway => "jwt_leeway",
            Self::MaxAssertionLifetime => "max_assertion_lifetime",
            Self::DpopProofMaxAge => "dpop_proof_max_age",
            Self::DpopNonceSecret => "dpop_nonce_secret",
            Self::DpopNonceStep => "dpop_nonce_step",
            Self::JwksCache => "jwks_cache",
            Self::TlsClientRoots => "tls_client_roots",
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with a setting.
///
/// ```
/// use std::time::Duration;
/// use tower_par::{ConfigErrorKind, ParLayer, StaticClients};
///
/// let layer = ParLayer::new(StaticClients::new());
/// let too_long = layer.clone().request_uri_lifetime(Duration::from_secs(3600)).unwrap_err();
/// assert_eq!(too_long.kind(), ConfigErrorKind::OutOfRange);
/// let not_a_path = layer.par_path("par").unwrap_err();
/// assert_eq!(not_a_path.kind(), ConfigErrorKind::Invalid);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The value is malformed (not a URL, not a path, not a cookie name).
    Invalid,
    /// The value is outside the allowed range (a duration, a length).
    OutOfRange,
    /// The setting needs another one that is missing (checked by
    /// [`ParLayer::build`](crate::ParLayer::build)).
    Requires,
}

/// A setting that was rejected by the builder: which one
/// ([`setting`](Self::setting)), what is wrong ([`kind`](Self::kind)), and
/// a message for people ([`Display`](fmt::Display)).
///
/// ```
/// use tower_par::{ConfigErrorKind, ParLayer, Setting, StaticClients};
///
/// let err = ParLayer::new(StaticClients::new()).issuer("as.example").unwrap_err();
/// assert_eq!(err.setting(), Setting::Issuer);
/// assert_eq!(err.kind(), ConfigErrorKind::Invalid);
/// assert!(err.to_string().starts_with("issuer 'as.example'"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    setting: Setting,
    kind: ConfigErrorKind,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(setting: Setting, kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        Self {
            setting,
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn out_of_range(setting: Setting, message: impl Into<String>) -> Self {
        Self::new(setting, ConfigErrorKind::OutOfRange, message)
    }

    /// The rejected setting.
    pub fn setting(&self) -> Setting {
        self.setting
    }

    /// What is wrong with it.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every setting of the layer but the registry and the store, so that
/// [`Config::with_store`] moves them in one piece and a new setting is
/// written in one place (here, `Settings::default` and `Debug`).
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) par_path: String,
    pub(crate) authorize_path: String,
    pub(crate) issuer: Option<String>,
    pub(crate) par_endpoint_url: Option<String>,
    pub(crate) token_endpoint_url: Option<String>,
    pub(crate) lifetime: Duration,
    pub(crate) max_body: usize,
    /// How long the PAR endpoint waits for its body (feature `tokio`).
    pub(crate) par_body_timeout: Duration,
    pub(crate) require_par: bool,
    pub(crate) require_par_clients: HashSet<String>,
    pub(crate) profile: Profile,
    pub(crate) pkce: PkcePolicy,
    /// The `metadata(bool)` shorthand: augment the discovery documents.
    pub(crate) metadata_augment: bool,
    /// The `metadata_document(bool)` shorthand: also serve a document on
    /// 404. Two flags, so that the shorthands' order does not matter.
    pub(crate) metadata_serve: bool,
    pub(crate) pass_foreign_request_uris: bool,
    pub(crate) redemption: Redemption,
    pub(crate) flow_window: Duration,
    pub(crate) flow_cookie: FlowCookie,
    /// Path prefixes, besides the authorization endpoint, where a response
    /// to a browser holding a flow's cookie can complete that flow.
    pub(crate) flow_paths: Vec<String>,
    /// The user's push-time rules, run in the order they were added.
    pub(crate) validators: Vec<Arc<dyn DynValidator>>,
    /// Renders the browser-facing error pages of the authorization
    /// endpoint; `None`: the built-in HTML or JSON.
    pub(crate) error_page: Option<crate::error::ErrorPageFn>,
    pub(crate) jwt: JwtSettings,
    /// Clients' keys: inline `jwks`, or `jwks_uri` fetched and cached.
    #[cfg(feature = "jwt")]
    pub(crate) client_keys: crate::client::ClientKeys,
    /// The CAs of `tls_client_auth` certificates (RFC 8705 §2.1); `Some`
    /// also means the deployment takes client certificates.
    #[cfg(feature = "mtls")]
    pub(crate) tls_client_roots: Option<Arc<crate::client::mtls::TrustRoots>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            par_path: "/par".into(),
            authorize_path: "/authorize".into(),
            issuer: None,
            par_endpoint_url: None,
            token_endpoint_url: None,
            lifetime: Duration::from_secs(60),
            max_body: 64 * 1024,
            par_body_timeout: Duration::from_secs(10),
            require_par: false,
            require_par_clients: HashSet::new(),
            profile: Profile::Rfc9126,
            pkce: PkcePolicy::default(),
            metadata_augment: false,
            metadata_serve: false,
            pass_foreign_request_uris: false,
            redemption: Redemption::FlowBound,
            flow_window: Duration::from_secs(600),
            flow_cookie: FlowCookie {
                name: "par_flow".into(),
                secure: true,
            },
            flow_paths: Vec::new(),
            validators: Vec::new(),
            error_page: None,
            jwt: JwtSettings::default(),
            #[cfg(feature = "jwt")]
            client_keys: crate::client::ClientKeys::default_for_layer(),
            #[cfg(feature = "mtls")]
            tls_client_roots: None,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every security switch is shown; secrets (the DPoP nonce key) are
        // shown as present or not.
        let mut d = f.debug_struct("Settings");
        d.field("par_path", &self.par_path)
            .field("authorize_path", &self.authorize_path)
            .field("issuer", &self.issuer)
            .field("par_endpoint_url", &self.par_endpoint_url)
            .field("token_endpoint_url", &self.token_endpoint_url)
            .field("lifetime", &self.lifetime)
            .field("max_body", &self.max_body)
            .field("par_body_timeout", &self.par_body_timeout)
            .field("require_par", &self.require_par)
            .field("require_par_clients", &self.require_par_clients)
            .field("profile", &self.profile)
            .field("pkce", &self.pkce)
            .field("metadata", &self.metadata_mode())
            .field("pass_foreign_request_uris", &self.pass_foreign_request_uris)
            .field("redemption", &self.redemption)
            .field("flow_window", &self.flow_window)
            .field("flow_cookie", &self.flow_cookie)
            .field("flow_paths", &self.flow_paths)
            .field("validators", &self.validators.len())
            .field("error_page", &self.error_page.is_some())
            .field("jwt", &self.jwt);
        #[cfg(feature = "mtls")]
        d.field("tls_client_roots", &self.tls_client_roots);
        d.finish()
    }
}

impl Settings {
    /// Whether a response on `path` may complete a flow (the authorization
    /// endpoint and below, and the configured `flow_paths`). Allocation-free.
    pub(crate) fn watches(&self, path: &str) -> bool {
        path_within(path, &self.authorize_path)
            || self.flow_paths.iter().any(|p| path_within(path, p))
    }

    /// The binding cookie's `Path`: `/` for a `__Host-` cookie, else the
    /// longest common segment prefix of the authorization endpoint and the
    /// flow paths, so that the browser presents it on each of them.
    pub(crate) fn flow_cookie_path(&self) -> &str {
        if self.flow_cookie.secure {
            return "/";
        }
        self.flow_paths
            .iter()
            .fold(self.authorize_path.as_str(), |acc, p| {
                common_segments(acc, p)
            })
    }

    /// The discovery mode the two shorthands or `metadata_mode` selected.
    pub(crate) fn metadata_mode(&self) -> Metadata {
        match (self.metadata_augment, self.metadata_serve) {
            (_, true) => Metadata::AugmentOrServe,
            (true, false) => Metadata::Augment,
            (false, false) => Metadata::Off,
        }
    }

    /// Combinations of settings, checked once by `ParLayer::build`.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.metadata_mode() != Metadata::Off
            && self.issuer.is_none()
            && self.par_endpoint_url.is_none()
        {
            return Err(ConfigError::new(
                Setting::Metadata,
                ConfigErrorKind::Requires,
                "metadata needs an issuer or a par_endpoint_url to advertise",
            ));
        }
        // FAPI-3, FAPI-8: FAPI clients authenticate with private_key_jwt,
        // whose only accepted `aud` is the issuer: without one, none could.
        if self.is_fapi() && self.issuer.is_none() {
            return Err(ConfigError::new(
                Setting::Profile,
                ConfigErrorKind::Requires,
                "Profile::Fapi2 needs an issuer: it is the only accepted client assertion aud",
            ));
        }
        // JAR-2: a request object's `aud` must contain the issuer.
        if self.jwt.require_signed_request_object && self.issuer.is_none() {
            return Err(ConfigError::new(
                Setting::RequireSignedRequestObject,
                ConfigErrorKind::Requires,
                "require_signed_request_object needs an issuer: request objects are addressed to it",
            ));
        }
        Ok(())
    }

    pub(crate) fn is_fapi(&self) -> bool {
        self.profile == Profile::Fapi2
    }

    pub(crate) fn rules(&self) -> Rules {
        let fapi = self.is_fapi();
        Rules {
            pkce: if fapi {
                PkcePolicy {
                    required: true,
                    allow_plain: false,
                }
            } else {
                self.pkce
            },
            require_redirect_uri: fapi,
            code_only: fapi,
        }
    }

    /// The lifetime for a client, with FAPI-17's "< 600 s" applied.
    pub(crate) fn lifetime_for(&self, client_override: Option<Duration>) -> Duration {
        let l = client_override.unwrap_or(self.lifetime);
        if self.is_fapi() {
            l.min(Duration::from_secs(599))
        } else {
            l
        }
    }

    /// The clock-skew leeway for JWTs: under FAPI within 10 to 60 s
    /// (FAPI-13: accept `iat`/`nbf` up to 10 s ahead, refuse more than
    /// 60 s ahead).
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    pub(crate) fn jwt_leeway(&self) -> Duration {
        if self.is_fapi() {
            self.jwt
                .leeway
                .clamp(Duration::from_secs(10), Duration::from_secs(60))
        } else {
            self.jwt.leeway
        }
    }

    /// Asymmetric algorithms allowed for client assertions, request objects
    /// and DPoP proofs: FAPI-25's three under FAPI, all the layer verifies
    /// otherwise.
    #[cfg(feature = "jwt")]
    pub(crate) fn asymmetric_algs(&self) -> &'static [crate::jose::Alg] {
        if self.is_fapi() {
            crate::jose::FAPI
        } else {
            crate::jose::ASYMMETRIC
        }
    }

    /// The absolute PAR endpoint URL to advertise (META-16: from
    /// configuration, never from the request's `Host`).
    pub(crate) fn advertised_par_endpoint(&self) -> Option<String> {
        if let Some(url) = &self.par_endpoint_url {
            return Some(url.clone());
        }
        let issuer = self.issuer.as_deref()?;
        Some(format!("{}{}", origin(issuer), self.par_path))
    }

    /// The token endpoint for the layer's own metadata document.
    pub(crate) fn advertised_token_endpoint(&self) -> Option<String> {
        if let Some(url) = &self.token_endpoint_url {
            return Some(url.clone());
        }
        Some(format!("{}/token", origin(self.issuer.as_deref()?)))
    }

    pub(crate) fn advertised_authorize_endpoint(&self) -> Option<String> {
        let issuer = self.issuer.as_deref()?;
        Some(format!("{}{}", origin(issuer), self.authorize_path))
    }
}

/// The layer's shared state: its settings, registry and store.
#[derive(Clone)]
pub(crate) struct Config<C, St> {
    pub(crate) settings: Settings,
    pub(crate) clients: C,
    pub(crate) store: St,
}

impl<C, St> Config<C, St> {
    pub(crate) fn new(clients: C, store: St) -> Self {
        Self {
            settings: Settings::default(),
            clients,
            store,
        }
    }

    pub(crate) fn with_store<St2>(self, store: St2) -> Config<C, St2> {
        Config {
            settings: self.settings,
            clients: self.clients,
            store,
        }
    }
}

impl<C, St> std::ops::Deref for Config<C, St> {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl<C, St> std::ops::DerefMut for Config<C, St> {
    fn deref_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }
}

/// `scheme://authority` of an absolute URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Checks an absolute `http(s)` URL without query or fragment.
pub(crate) fn check_url(setting: Setting, url: &str) -> Result<(), ConfigError> {
    let name = setting.name();
    let uri: http::Uri = url.parse().map_err(|_| {
        ConfigError::new(
            setting,
            ConfigErrorKind::Invalid,
            format!("{name} '{url}' is not a URL"),
        )
    })?;
    let scheme_ok = matches!(uri.scheme_str(), Some("https") | Some("http"));
    if !scheme_ok || uri.authority().is_none() || uri.query().is_some() || url.contains('#') {
        return Err(ConfigError::new(
            setting,
            ConfigErrorKind::Invalid,
            format!("{name} '{url}' must be an absolute http(s) URL without query or fragment"),
        ));
    }
    Ok(())
}

/// Whether `path` is `prefix` or below it, segment-wise: `/auth` covers
/// `/auth` and `/auth/x`, not `/authx`. `prefix` has no trailing `/`
/// unless it is `/`.
pub(crate) fn path_within(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'),
        None => false,
    }
}

/// The longest common prefix of `a` and `b` made of whole segments: `/`
/// when they share no segment.
pub(crate) fn common_segments<'a>(a: &'a str, b: &str) -> &'a str {
    let mut end = 0;
    let (mut x, mut y) = (a.split('/'), b.split('/'));
    // The first item of both is the empty string before the leading `/`.
    let (_, _) = (x.next(), y.next());
    for (sa, sb) in x.zip(y) {
        if sa != sb || sa.is_empty() {
            break;
        }
        end += 1 + sa.len();
    }
    if end == 0 {
        "/"
    } else {
        &a[..end]
    }
}

/// Checks one [`Setting::FlowPaths`] prefix and returns it without a
/// trailing `/` (`/` itself stays).
pub(crate) fn check_flow_path(path: &str) -> Result<&str, ConfigError> {
    let bad = |why: &str| {
        ConfigError::new(
            Setting::FlowPaths,
            ConfigErrorKind::Invalid,
            format!("flow_paths entry '{}' {why}", path.escape_debug()),
        )
    };
    if !path.starts_with('/') {
        return Err(bad("must be an absolute path starting with /"));
    }
    if path.contains(['?', '#']) {
        return Err(bad("must not have a query or fragment"));
    }
    // As for authorize_path: a prefix is compared with the request path as
    // it arrives, so an escape, a `;` parameter, a `\`, an empty segment or
    // a dot segment would never match what a browser sends.
    if path.contains(['%', ';', '\\']) {
        return Err(bad("must not contain '%', ';' or '\\'"));
    }
    // One trailing `/` is allowed (and dropped below).
    let inner = match path {
        "/" => "",
        p => p.strip_suffix('/').unwrap_or(p),
    };
    let mut segments = inner.split('/').skip(1);
    if segments.any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(bad(
            "must not have empty ('//') or dot ('.', '..') segments",
        ));
    }
    if path.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("must not contain control characters or spaces"));
    }
    if path.len() > 1024 {
        return Err(bad("is longer than 1024 bytes"));
    }
    Ok(match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    })
}

pub(crate) fn check_path(setting: Setting, path: &str) -> Result<(), ConfigError> {
    let name = setting.name();
    if !path.starts_with('/')
        || path.contains(['?', '#', ';', '%'])
        || path.len() < 2
        || path.ends_with('/')
    {
        return Err(ConfigError::new(
            setting,
            ConfigErrorKind::Invalid,
            format!(
                "{name} '{path}' must be an absolute path such as /par, without trailing slash"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_path_prefixes_are_segment_wise() {
        assert!(path_within("/auth", "/auth"));
        assert!(path_within("/auth/x/y", "/auth"));
        assert!(!path_within("/authx", "/auth"));
        assert!(!path_within("/au", "/auth"));
        assert!(path_within("/anything", "/"));
        assert_eq!(common_segments("/authorize", "/login-actions"), "/");
        assert_eq!(common_segments("/authorize", "/authorize"), "/authorize");
        assert_eq!(common_segments("/a/b/c", "/a/b/d"), "/a/b");
        assert_eq!(common_segments("/a/bc", "/a/b"), "/a");
        assert_eq!(common_segments("/a", "/"), "/");
        assert_eq!(
            common_segments(
                "/realms/x/protocol/openid-connect/auth",
                "/realms/x/login-actions"
            ),
            "/realms/x"
        );
        assert_eq!(check_flow_path("/auth/").unwrap(), "/auth");
        assert_eq!(check_flow_path("/").unwrap(), "/");
        assert_eq!(check_flow_path("/a/b.c/").unwrap(), "/a/b.c");
        for bad in [
            "auth", "", "/a?b", "/a#b", "/a\nb", "/a b", "/a%2Fb", "/a;x", "/a\\b", "//a", "/a//b",
            "/a//", "/./a", "/a/..", "/a/../b", "/a/.", "//",
        ] {
            assert_eq!(
                check_flow_path(bad).unwrap_err().setting(),
                Setting::FlowPaths
            );
        }
    }

    #[test]
    fn origin_strips_path() {
        assert_eq!(origin("https://as.example/t1"), "https://as.example");
        assert_eq!(origin("http://127.0.0.1:3000"), "http://127.0.0.1:3000");
    }

    #[test]
    fn url_and_path_checks() {
        assert!(check_url(Setting::Issuer, "https://as.example/t1").is_ok());
        assert!(check_url(Setting::Issuer, "as.example").is_err());
        assert!(check_url(Setting::Issuer, "https://as.example/?x=1").is_err());
        assert!(check_url(Setting::Issuer, "ftp://as.example").is_err());
        assert!(check_path(Setting::ParPath, "/par").is_ok());
        assert!(check_path(Setting::ParPath, "par").is_err());
        assert!(check_path(Setting::ParPath, "/").is_err());
        assert!(check_path(Setting::AuthorizePath, "/oauth/authorize/").is_err());
    }
}
