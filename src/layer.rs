//! `ParLayer`: the builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::client::{ClientAuthenticator, StaticClients};
use crate::config::{
    check_path, check_url, Config, ConfigError, ConfigErrorKind, Metadata, PkcePolicy, Profile,
    Redemption, Setting,
};
use crate::service::Par;
use crate::store::{MemoryStore, ParStore};
use crate::validate::Validator;

/// Adds Pushed Authorization Requests (RFC 9126) to the wrapped service.
///
/// Builder methods consume and return the layer. A setting that can be
/// wrong on its own returns `Result<Self, ConfigError>`; settings that are
/// only wrong together (discovery without an issuer to advertise) are
/// checked by [`build`](Self::build), the last call of the chain. Either
/// way the error is a typed [`ConfigError`] naming the [`Setting`], and
/// nothing fails once the layer serves requests. Clones share the store
/// and the configuration.
///
/// ```
/// use std::time::Duration;
/// use tower_par::{AuthMethod, Client, ParLayer, StaticClients};
///
/// let clients = StaticClients::new().with_client(
///     Client::new("app", AuthMethod::ClientSecretBasic).redirect_uri("https://app.example/cb"),
///     Some("app-secret"),
/// )?;
/// let layer = ParLayer::new(clients)
///     .issuer("https://as.example")?
///     .request_uri_lifetime(Duration::from_secs(90))?
///     .require_par(true)
///     .require_pkce(true)
///     .metadata(true)
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct ParLayer<C = StaticClients, St = MemoryStore> {
    config: Arc<Config<C, St>>,
}

impl<C: Clone, St: Clone> Clone for ParLayer<C, St> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<C> ParLayer<C, MemoryStore>
where
    C: ClientAuthenticator,
{
    /// A layer that authenticates clients with `clients` and keeps pushed
    /// requests in a [`MemoryStore`] with default bounds.
    pub fn new(clients: C) -> Self {
        Self {
            config: Arc::new(Config::new(clients, MemoryStore::new())),
        }
    }
}

impl<C, St> ParLayer<C, St>
where
    C: ClientAuthenticator,
    St: ParStore,
{
    fn config_mut(&mut self) -> &mut Config<C, St> {
        Arc::make_mut(&mut self.config)
    }

    /// Uses another store (a bounded [`MemoryStore`], a shared backend).
    pub fn with_store<St2: ParStore>(self, store: St2) -> ParLayer<C, St2> {
        let config = Arc::try_unwrap(self.config).unwrap_or_else(|arc| (*arc).clone());
        ParLayer {
            config: Arc::new(config.with_store(store)),
        }
    }

    /// Path of the PAR endpoint (default `/par`).
    pub fn par_path(mut self, path: impl Into<String>) -> Result<Self, ConfigError> {
        let path = path.into();
        check_path(Setting::ParPath, &path)?;
        self.config_mut().par_path = path;
        Ok(self)
    }

    /// Path of the authorization endpoint (default `/authorize`).
    pub fn authorize_path(mut self, path: impl Into<String>) -> Result<Self, ConfigError> {
        let path = path.into();
        check_path(Setting::AuthorizePath, &path)?;
        self.config_mut().authorize_path = path;
        Ok(self)
    }

    /// The issuer identifier (RFC 8414), an absolute URL. The advertised
    /// endpoints are built from its origin and the configured paths.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Result<Self, ConfigError> {
        let issuer = issuer.into();
        check_url(Setting::Issuer, &issuer)?;
        self.config_mut().issuer = Some(issuer);
        Ok(self)
    }

    /// The PAR endpoint URL to advertise when it is not the issuer's origin
    /// plus [`par_path`](Self::par_path) (behind a path-rewriting proxy).
    pub fn par_endpoint_url(mut self, url: impl Into<String>) -> Result<Self, ConfigError> {
        let url = url.into();
        check_url(Setting::ParEndpointUrl, &url)?;
        self.config_mut().par_endpoint_url = Some(url);
        Ok(self)
    }

    /// The token endpoint URL: advertised in the document that
    /// [`metadata_document`](Self::metadata_document) serves (default: the
    /// issuer's origin + `/token`), the `htu` of DPoP proofs at
    /// [`TokenEndpoint`](crate::TokenEndpoint), and, once set, an accepted
    /// client-assertion `aud` outside FAPI (RFC 9126 §2). Without it, only
    /// the issuer and the PAR endpoint URL are accepted audiences: a URL
    /// guessed from the issuer's origin could be another tenant's.
    pub fn token_endpoint_url(mut self, url: impl Into<String>) -> Result<Self, ConfigError> {
        let url = url.into();
        check_url(Setting::TokenEndpointUrl, &url)?;
        self.config_mut().token_endpoint_url = Some(url);
        Ok(self)
    }

    /// Lifetime of a `request_uri` (`expires_in`), 1 to 600 whole seconds
    /// (default 60). Clients may override it ([`Client::request_uri_lifetime`](crate::Client)).
    pub fn request_uri_lifetime(mut self, lifetime: Duration) -> Result<Self, ConfigError> {
        if !(1..=600).contains(&lifetime.as_secs()) || lifetime.subsec_nanos() != 0 {
            return Err(ConfigError::out_of_range(
                Setting::RequestUriLifetime,
                "request_uri lifetime must be 1 to 600 whole seconds",
            ));
        }
        self.config_mut().lifetime = lifetime;
        Ok(self)
    }

    /// Largest accepted PAR body, in bytes (default 64 KiB); larger → 413.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.config_mut().max_body = bytes;
        self
    }

    /// How long the PAR endpoint waits for a request body once the headers
    /// are in: 1 ms to 300 s (default 10 s). A body that has not fully
    /// arrived by then (a client sending `Content-Length: 100` and a byte a
    /// second) is answered `408 invalid_request` with `Connection: close`,
    /// so it cannot hold its connection indefinitely. The same deadline
    /// applies to form POSTs the authorization endpoint reads.
    ///
    /// The deadline needs the `tokio` feature (on by default) and a tokio
    /// runtime with timers enabled. Without the feature, or on another
    /// executor, there is no body deadline: use the server's own timeouts.
    /// The headers are read before the layer is involved; bound them in the
    /// server, e.g. with hyper:
    ///
    /// ```no_run
    /// use std::convert::Infallible;
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use hyper::body::Incoming;
    /// use hyper_util::rt::{TokioIo, TokioTimer};
    /// use hyper_util::service::TowerToHyperService;
    /// use tower_par::{ParLayer, ParRequestBody, StaticClients};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = ParLayer::new(StaticClients::new()).par_body_timeout(Duration::from_secs(5))?;
    /// let app = tower::service_fn(|_req: Request<ParRequestBody<Incoming>>| async {
    ///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"legacy"))))
    /// });
    /// let svc = TowerToHyperService::new(tower::Layer::layer(&layer, app));
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// let (stream, _) = listener.accept().await?;
    /// hyper::server::conn::http1::Builder::new()
    ///     .timer(TokioTimer::new())
    ///     .header_read_timeout(Duration::from_secs(5))
    ///     .serve_connection(TokioIo::new(stream), svc)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn par_body_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout < Duration::from_millis(1) || timeout > Duration::from_secs(300) {
            return Err(ConfigError::out_of_range(
                Setting::ParBodyTimeout,
                "PAR body timeout must be 1 millisecond to 300 seconds",
            ));
        }
        self.config_mut().par_body_timeout = timeout;
        Ok(self)
    }

    /// Requires PAR for every client (PAR-31): authorization requests
    /// without a `request_uri` are refused with `invalid_request`, and the
    /// metadata says `require_pushed_authorization_requests: true`.
    pub fn require_par(mut self, required: bool) -> Self {
        self.config_mut().require_par = required;
        self
    }

    /// Requires PAR for one client, in addition to clients registered with
    /// `require_par`.
    pub fn require_par_for(mut self, client_id: impl Into<String>) -> Self {
        self.config_mut()
            .require_par_clients
            .insert(client_id.into());
        self
    }

    /// Rejects pushes without a PKCE `code_challenge` (default: off).
    pub fn require_pkce(mut self, required: bool) -> Self {
        self.config_mut().pkce.required = required;
        self
    }

    /// Accepts `code_challenge_method=plain` (default: off, S256 only).
    pub fn allow_plain_pkce(mut self, allowed: bool) -> Self {
        self.config_mut().pkce.allow_plain = allowed;
        self
    }

    /// Sets the whole PKCE policy.
    pub fn pkce(mut self, policy: PkcePolicy) -> Self {
        self.config_mut().pkce = policy;
        self
    }

    /// Applies a rule set, e.g. [`Profile::Fapi2`].
    pub fn profile(mut self, profile: Profile) -> Self {
        self.config_mut().profile = profile;
        self
    }

    /// How the layer touches the discovery documents (default
    /// [`Metadata::Off`]). Every other mode needs [`issuer`](Self::issuer)
    /// or [`par_endpoint_url`](Self::par_endpoint_url); [`build`](Self::build)
    /// refuses the combination otherwise.
    ///
    /// `GET` and `HEAD` are handled (a `HEAD` gets the augmented document's
    /// headers, asked of the wrapped service as a `GET`). When the layer
    /// requires PKCE ([`require_pkce`](Self::require_pkce),
    /// [`Profile::Fapi2`]), `code_challenge_methods_supported` lists `S256`;
    /// the rest of the document is the wrapped service's.
    ///
    /// ```
    /// use tower_par::{Metadata, ParLayer, StaticClients};
    ///
    /// let layer = ParLayer::new(StaticClients::new())
    ///     .issuer("https://as.example")?
    ///     .metadata_mode(Metadata::Augment)
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_par::ConfigError>(())
    /// ```
    pub fn metadata_mode(mut self, mode: Metadata) -> Self {
        let settings = self.config_mut();
        (settings.metadata_augment, settings.metadata_serve) = match mode {
            Metadata::Off => (false, false),
            Metadata::Augment => (true, false),
            Metadata::AugmentOrServe => (true, true),
        };
        self
    }

    /// Shorthand: `true` adds the PAR members to the wrapped service's
    /// discovery documents ([`Metadata::Augment`]). With
    /// [`metadata_document`](Self::metadata_document), in either order:
    /// `metadata_document(true)` wins ([`Metadata::AugmentOrServe`]).
    pub fn metadata(mut self, enabled: bool) -> Self {
        self.config_mut().metadata_augment = enabled;
        self
    }

    /// Shorthand: `true` selects [`Metadata::AugmentOrServe`] (augment, and
    /// serve a minimal RFC 8414 document when the wrapped service answers
    /// 404 on the discovery paths) whatever [`metadata`](Self::metadata)
    /// says; `false` leaves what `metadata` says.
    pub fn metadata_document(mut self, enabled: bool) -> Self {
        self.config_mut().metadata_serve = enabled;
        self
    }

    /// Passes `request_uri` values that this layer did not issue to the
    /// wrapped service unchanged (default: off; they are refused with
    /// `invalid_request_uri`). Turn on only if the wrapped service resolves
    /// JAR `request_uri`s itself (M-1). Never applies when PAR is required.
    pub fn pass_foreign_request_uris(mut self, pass: bool) -> Self {
        self.config_mut().pass_foreign_request_uris = pass;
        self
    }

    /// How a `request_uri` may be used (default [`Redemption::FlowBound`]).
    pub fn redemption(mut self, policy: Redemption) -> Self {
        self.config_mut().redemption = policy;
        self
    }

    /// How long a flow may last after its first redemption under
    /// [`Redemption::FlowBound`]: 1 second to 1 hour (default 10 minutes).
    pub fn flow_window(mut self, window: Duration) -> Result<Self, ConfigError> {
        if !(1..=3600).contains(&window.as_secs()) {
            return Err(ConfigError::out_of_range(
                Setting::FlowWindow,
                "flow window must be 1 second to 1 hour",
            ));
        }
        self.config_mut().flow_window = window;
        Ok(self)
    }

    /// Base name of the browser-binding cookies (default `par_flow`). Each
    /// flow has its own cookie, `<name>_<tag>` with a tag derived from its
    /// `request_uri`, behind the `__Host-` prefix (and `Path=/`) while the
    /// cookie is `Secure`.
    pub fn flow_cookie_name(mut self, name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        // RFC 6265 §4.1.1: a cookie name is an RFC 9110 token.
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(ConfigError::new(
                Setting::FlowCookieName,
                ConfigErrorKind::Invalid,
                format!("'{name}' is not a valid cookie name"),
            ));
        }
        self.config_mut().flow_cookie.name = name;
        Ok(self)
    }

    /// Paths where a later step of a flow can end it (default: none beyond
    /// the authorization endpoint and the paths below it, which are always
    /// watched). Each entry is a path prefix, matched segment-wise: `/auth`
    /// covers `/auth` and `/auth/x`, not `/authx`. Replaces the list of an
    /// earlier call.
    ///
    /// Authorization servers answer the browser from another path after
    /// their own login step: oidc-provider resumes at `/auth/<uid>` when its
    /// authorization endpoint is `/auth` (covered by default), Keycloak
    /// sends the authorization response from
    /// `/realms/<realm>/login-actions/...`, outside its authorization
    /// endpoint `/realms/<realm>/protocol/openid-connect/auth`. Under
    /// [`Redemption::FlowBound`], any response on a watched path, to a
    /// browser presenting a flow's binding cookie, that sends that browser
    /// to the flow's pushed `redirect_uri` (a redirect, `Refresh`, or the
    /// auto-submitting page of `response_mode=form_post`) completes the
    /// flow, as on the authorization endpoint itself: the same browser
    /// re-entering the `request_uri` afterwards gets `400`, never a second
    /// authorization response.
    ///
    /// The binding cookie's `Path` is the longest common segment prefix of
    /// the authorization endpoint and these paths, so that the browser
    /// presents it on each of them; a `__Host-` cookie keeps `Path=/`.
    ///
    /// An entry must start with `/` and have no query, fragment, space,
    /// control character, `%`, `;`, `\`, empty (`//`) or dot segment (a
    /// path no browser request arrives with), else a [`ConfigError`] naming
    /// [`Setting::FlowPaths`]; at most 64 entries.
    ///
    /// ```
    /// use tower_par::{ParLayer, Setting, StaticClients};
    ///
    /// // Keycloak: the authorization response comes from login-actions.
    /// let layer = ParLayer::new(StaticClients::new())
    ///     .authorize_path("/realms/demo/protocol/openid-connect/auth")?
    ///     .flow_paths(["/realms/demo/login-actions"])?;
    /// assert!(format!("{layer:?}").contains("/realms/demo/login-actions"));
    ///
    /// let err = ParLayer::new(StaticClients::new()).flow_paths(["login-actions"]).unwrap_err();
    /// assert_eq!(err.setting(), Setting::FlowPaths);
    /// assert_eq!(err.setting().name(), "flow_paths");
    /// # Ok::<(), tower_par::ConfigError>(())
    /// ```
    pub fn flow_paths(
        mut self,
        paths: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, ConfigError> {
        const MAX_FLOW_PATHS: usize = 64;
        let mut checked = Vec::new();
        for path in paths {
            let path = path.into();
            if checked.len() == MAX_FLOW_PATHS {
                return Err(ConfigError::new(
                    Setting::FlowPaths,
                    ConfigErrorKind::OutOfRange,
                    format!("flow_paths takes at most {MAX_FLOW_PATHS} entries"),
                ));
            }
            let path = crate::config::check_flow_path(&path)?.to_owned();
            if !checked.contains(&path) {
                checked.push(path);
            }
        }
        self.config_mut().flow_paths = checked;
        Ok(self)
    }

    /// Whether the binding cookie is `Secure` (default `true`), and so a
    /// `__Host-` cookie with `Path=/` that neither a sibling subdomain nor a
    /// plain-HTTP page can set. Set `false` only for plain-HTTP development
    /// on a loopback address: the cookie is then `<name>_<tag>`, scoped to
    /// the authorization path (or what covers it and the
    /// [`flow_paths`](Self::flow_paths)).
    pub fn flow_cookie_secure(mut self, secure: bool) -> Self {
        self.config_mut().flow_cookie.secure = secure;
        self
    }

    /// Clock skew allowed on JWT `exp`, `nbf` and `iat` (client assertions,
    /// DPoP proofs, request objects); default 30 s, at most 300 s. Under
    /// [`Profile::Fapi2`] it is held within 10 to 60 s (FAPI-13).
    #[cfg(feature = "jwt")]
    pub fn jwt_leeway(mut self, leeway: Duration) -> Result<Self, ConfigError> {
        if leeway > Duration::from_secs(300) {
            return Err(ConfigError::out_of_range(
                Setting::JwtLeeway,
                "jwt_leeway must be at most 300 s",
            ));
        }
        self.config_mut().jwt.leeway = leeway;
        Ok(self)
    }

    /// The longest a client assertion may live (its `exp` at most this far
    /// ahead); default 300 s, 1 s to 1 hour. Used `jti`s are remembered
    /// this long at most.
    #[cfg(feature = "jwt")]
    pub fn max_assertion_lifetime(mut self, lifetime: Duration) -> Result<Self, ConfigError> {
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&lifetime) {
            return Err(ConfigError::out_of_range(
                Setting::MaxAssertionLifetime,
                "max_assertion_lifetime must be 1 s to 1 hour",
            ));
        }
        self.config_mut().jwt.max_assertion_lifetime = lifetime;
        Ok(self)
    }

    /// How old a DPoP proof may be (its `iat`, RFC 9449 §11.1); default
    /// 60 s, 1 s to 10 minutes.
    #[cfg(feature = "jwt")]
    pub fn dpop_proof_max_age(mut self, max_age: Duration) -> Result<Self, ConfigError> {
        if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&max_age) {
            return Err(ConfigError::out_of_range(
                Setting::DpopProofMaxAge,
                "dpop_proof_max_age must be 1 s to 10 minutes",
            ));
        }
        self.config_mut().jwt.dpop_max_age = max_age;
        Ok(self)
    }

    /// Requires server-issued DPoP nonces (RFC 9449 §8) and sets their key.
    /// Nonces are stateless (a MAC over a time step), so every instance
    /// given the same secret accepts the others' nonces. At least 32 bytes.
    #[cfg(feature = "jwt")]
    pub fn dpop_nonce_secret(mut self, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        if secret.len() < 32 {
            return Err(ConfigError::out_of_range(
                Setting::DpopNonceSecret,
                "dpop_nonce_secret must be at least 32 bytes",
            ));
        }
        self.config_mut().jwt.dpop_nonce_secret = Some(secret.into());
        Ok(self)
    }

    /// How long one DPoP nonce time step lasts (default 60 s, 1 s to 1
    /// hour). A nonce is accepted during the step it was issued in and the
    /// next one, so it lives between one and two steps.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_par::{ParLayer, StaticClients};
    ///
    /// let layer = ParLayer::new(StaticClients::new())
    ///     .dpop_nonce_secret([0x42; 32])?
    ///     .dpop_nonce_step(Duration::from_secs(30))?;
    /// # let _ = layer;
    /// # Ok::<(), tower_par::ConfigError>(())
    /// ```
    #[cfg(feature = "jwt")]
    pub fn dpop_nonce_step(mut self, step: Duration) -> Result<Self, ConfigError> {
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&step)
            || step.subsec_nanos() != 0
        {
            return Err(ConfigError::out_of_range(
                Setting::DpopNonceStep,
                "dpop_nonce_step must be 1 s to 1 hour, in whole seconds",
            ));
        }
        self.config_mut().jwt.dpop_nonce_step = step;
        Ok(self)
    }

    /// Requires a signed request object in every push
    /// (`require_signed_request_object`, RFC 9101 §10.5); per client with
    /// [`Client::require_signed_request_object`](crate::Client::require_signed_request_object).
    /// A plain push is then refused with `400 invalid_request` (PAR-19).
    ///
    /// Request objects are verified with the client's inline `jwks` and
    /// its `request_object_signing_alg` (asymmetric algorithms only), and
    /// their `aud` must contain the [`issuer`](Self::issuer). Encrypted
    /// request objects (JWE) are not supported: they are refused with
    /// `400 invalid_request_object`.
    #[cfg(feature = "jwt")]
    pub fn require_signed_request_object(mut self, required: bool) -> Self {
        self.config_mut().jwt.require_signed_request_object = required;
        self
    }

    /// Fetches the keys of clients registered with a `jwks_uri` through
    /// `fetcher` (default with the `jwks-fetch` feature:
    /// [`HttpJwksFetcher`](crate::HttpJwksFetcher); without it, such
    /// clients cannot authenticate until a fetcher is set). Fetched sets
    /// are cached per URI as [`jwks_cache`](Self::jwks_cache) says.
    #[cfg(feature = "jwt")]
    pub fn jwks_fetcher(mut self, fetcher: impl crate::JwksFetcher) -> Self {
        let keys = self.config.client_keys.with_fetcher(Arc::new(fetcher));
        self.config_mut().client_keys = keys;
        self
    }

    /// How fetched JWK Sets are cached (default
    /// [`JwksCacheConfig::default`](crate::JwksCacheConfig)).
    #[cfg(feature = "jwt")]
    pub fn jwks_cache(mut self, cache: crate::JwksCacheConfig) -> Result<Self, ConfigError> {
        cache.check()?;
        let keys = self.config.client_keys.with_settings(cache);
        self.config_mut().client_keys = keys;
        Ok(self)
    }

    /// The CA certificates (DER) that `tls_client_auth` clients'
    /// certificates must chain to (RFC 8705 §2.1), replacing any set
    /// before. The chain is verified from the
    /// [`ClientCertificate`](crate::ClientCertificate) request extension:
    /// signatures up to one of these roots, validity at the time of the
    /// request, and the client-authentication extended key usage when the
    /// certificate lists usages; then the registered subject is matched
    /// (see [`TlsClientAuthSubject`](crate::TlsClientAuthSubject)). Without
    /// roots, `tls_client_auth` clients never authenticate
    /// (`401 invalid_client`, with a `tracing` warning).
    ///
    /// Setting it, even to an empty set, also says that this deployment
    /// takes client certificates: the discovery documents then advertise
    /// `self_signed_tls_client_auth`, and `tls_client_auth` when the set is
    /// not empty.
    ///
    /// ```
    /// use tower_par::{ParLayer, Setting, StaticClients};
    ///
    /// let err = ParLayer::new(StaticClients::new())
    ///     .tls_client_roots([b"not a certificate".to_vec()])
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), Setting::TlsClientRoots);
    /// assert!(err.to_string().starts_with("tls_client_roots"));
    /// ```
    #[cfg(feature = "mtls")]
    pub fn tls_client_roots<I, T>(mut self, roots: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<bytes::Bytes>,
    {
        let roots = crate::client::mtls::TrustRoots::from_der(roots).map_err(|message| {
            ConfigError::new(Setting::TlsClientRoots, ConfigErrorKind::Invalid, message)
        })?;
        self.config_mut().tls_client_roots = Some(Arc::new(roots));
        Ok(self)
    }

    /// Client authentication for your own token endpoint, with this
    /// layer's registry, profile, key cache and replay cache: see
    /// [`TokenEndpoint`](crate::TokenEndpoint). Build it from the finished
    /// layer (later builder calls do not reach it).
    pub fn token_endpoint(&self) -> crate::TokenEndpoint<C, St> {
        crate::TokenEndpoint::new(self.config.clone())
    }

    /// Adds your own push-time rules; they run after the built-in ones.
    /// Each call adds one more: validators run in the order they were
    /// added, and the first refusal answers the push.
    ///
    /// ```
    /// use tower_par::{validator_fn, OAuthError, ParLayer, StaticClients};
    ///
    /// let layer = ParLayer::new(StaticClients::new())
    ///     .validator(validator_fn(|ctx| match ctx.params.get("scope") {
    ///         Some(s) if s.split(' ').any(|s| s == "admin") => Err(OAuthError::invalid_scope("no admin")),
    ///         _ => Ok(()),
    ///     }))
    ///     // Runs second, when the first accepted.
    ///     .validator(validator_fn(|ctx| match ctx.params.get("prompt") {
    ///         Some("none") => Err(OAuthError::invalid_request("prompt=none is not offered")),
    ///         _ => Ok(()),
    ///     }));
    /// # let _ = layer;
    /// ```
    pub fn validator(mut self, validator: impl Validator) -> Self {
        self.config_mut()
            .validators
            .push(Arc::new(crate::validate::Boxed(validator)));
        self
    }

    /// Renders the error pages the authorization endpoint answers the
    /// browser with (unknown or expired `request_uri`, PAR required, a
    /// client mismatch: OA-5, never redirected). `render` gets the status,
    /// the OAuth error code and its description, and returns the whole
    /// response; the layer adds `Cache-Control: no-store` when it is
    /// missing. Default: a short English HTML page, or JSON when the
    /// browser asks for `application/json`.
    ///
    /// The description is plain text: escape it when writing HTML.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{header, Response, StatusCode};
    /// use http_body_util::Full;
    /// use tower_par::{ParLayer, StaticClients};
    ///
    /// let layer = ParLayer::new(StaticClients::new()).error_page(
    ///     |status: StatusCode, code: &str, _description: &str| {
    ///         // A redirect to the application's own error route.
    ///         Response::builder()
    ///             .status(StatusCode::SEE_OTHER)
    ///             .header(header::LOCATION, format!("/oops?error={code}&status={}", status.as_u16()))
    ///             .body(Full::new(Bytes::new()))
    ///             .unwrap_or_default()
    ///     },
    /// );
    /// # let _ = layer;
    /// ```
    pub fn error_page<F>(mut self, render: F) -> Self
    where
        F: Fn(http::StatusCode, &str, &str) -> http::Response<http_body_util::Full<bytes::Bytes>>
            + Send
            + Sync
            + 'static,
    {
        self.config_mut().error_page = Some(Arc::new(render));
        self
    }

    /// Checks the combination of settings and returns the layer. Refused
    /// (all [`ConfigErrorKind::Requires`]):
    ///
    /// - discovery without an `issuer` or `par_endpoint_url` to advertise
    ///   ([`Setting::Metadata`]);
    /// - [`Profile::Fapi2`] without an `issuer`, the only accepted client
    ///   assertion `aud` ([`Setting::Profile`]);
    /// - `require_signed_request_object(true)` without an `issuer`, the
    ///   request objects' audience ([`Setting::RequireSignedRequestObject`]).
    ///
    /// The single-setting checks happened in the fallible setters; this is
    /// the one place where settings that are only wrong together are
    /// refused, before the layer serves a request.
    ///
    /// ```
    /// use tower_par::{ConfigErrorKind, ParLayer, Setting, StaticClients};
    ///
    /// let err = ParLayer::new(StaticClients::new()).metadata(true).build().unwrap_err();
    /// assert_eq!((err.setting(), err.kind()), (Setting::Metadata, ConfigErrorKind::Requires));
    /// ```
    pub fn build(self) -> Result<Self, ConfigError> {
        self.config.settings.check()?;
        Ok(self)
    }

    /// The PAR endpoint's path, for the `test-util` helpers.
    #[cfg(feature = "test-util")]
    pub(crate) fn par_path_str(&self) -> &str {
        &self.config.par_path
    }

    /// The store this layer uses.
    pub fn store(&self) -> &St {
        &self.config.store
    }

    /// The client registry this layer uses.
    pub fn clients(&self) -> &C {
        &self.config.clients
    }
}

impl<S, C, St> Layer<S> for ParLayer<C, St>
where
    C: ClientAuthenticator,
    St: ParStore,
{
    type Service = Par<S, C, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Par::new(inner, self.config.clone())
    }
}

impl<C, St> fmt::Debug for ParLayer<C, St>
where
    C: fmt::Debug,
    St: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("ParLayer")
            .field("settings", &c.settings)
            .field("clients", &c.clients)
            .field("store", &c.store)
            .finish()
    }
}
