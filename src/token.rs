//! `TokenEndpoint`: the layer's client authentication, for a token
//! endpoint of your own.
//!
//! RFC 9126 §2 has the PAR endpoint authenticate clients as the token
//! endpoint does (PAR-5). The layer does not serve the token endpoint, but
//! it lends it the same rules: one method per request (AUTH-3), the
//! registered method (AUTH-4), `private_key_jwt` and `client_secret_jwt`
//! with the same audiences, algorithms and profile (AUTH-11..17, FAPI-5,
//! FAPI-8), and the same `jti` replay cache, so an assertion used at the
//! PAR endpoint is refused at the token endpoint and the other way round.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
#[cfg(feature = "jwt")]
use http::Method;

use crate::client::{Client, ClientAuthenticator, StaticClients};
use crate::config::Config;
use crate::endpoint::push::{authenticate, read_credentials, reject_query_credentials};
use crate::error::OAuthError;
use crate::params::Params;
use crate::store::{MemoryStore, ParStore};

/// Client authentication for a token endpoint, with the layer's registry,
/// key cache, replay cache and profile; from
/// [`ParLayer::token_endpoint`](crate::ParLayer::token_endpoint). Clones
/// share everything.
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use tower_par::{AuthMethod, Client, OAuthError, ParLayer, Params, StaticClients};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clients = StaticClients::new().with_client(
///     Client::new("app", AuthMethod::ClientSecretPost).redirect_uri("https://app.example/cb"),
///     Some("app-secret"),
/// )?;
/// let layer = ParLayer::new(clients).issuer("https://as.example")?;
/// let tokens = layer.token_endpoint();
///
/// // In the token endpoint's handler:
/// let req = Request::post("/token")
///     .header("content-type", "application/x-www-form-urlencoded")
///     .body(Full::new(Bytes::from_static(
///         b"grant_type=authorization_code&code=abc&client_id=app&client_secret=app-secret",
///     )))?;
/// let (parts, body) = req.into_parts();
/// let body = http_body_util::BodyExt::collect(body).await?.to_bytes();
/// let params = Params::parse(&body)?;
/// let client = tokens.authenticate(&parts, &params).await?;
/// assert_eq!(client.client_id, "app");
///
/// let wrong = Params::parse(b"grant_type=authorization_code&client_id=app&client_secret=nope")?;
/// let err: OAuthError = tokens.authenticate(&parts, &wrong).await.unwrap_err();
/// // The RFC 6749 §5.2 answer, ready to send.
/// let res = err.to_response();
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers()["cache-control"], "no-store");
/// # Ok(()) }
/// ```
pub struct TokenEndpoint<C = StaticClients, St = MemoryStore> {
    config: Arc<Config<C, St>>,
}

impl<C, St> TokenEndpoint<C, St> {
    pub(crate) fn new(config: Arc<Config<C, St>>) -> Self {
        Self { config }
    }
}

impl<C, St> Clone for TokenEndpoint<C, St> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<C, St> fmt::Debug for TokenEndpoint<C, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("issuer", &self.config.issuer)
            .field("profile", &self.config.profile)
            .finish_non_exhaustive()
    }
}

impl<C, St> TokenEndpoint<C, St>
where
    C: ClientAuthenticator,
    St: ParStore,
{
    /// Authenticates the client of a token request from its head (the
    /// `Authorization` header, the query string) and its form parameters.
    ///
    /// Accepts what the PAR endpoint accepts: `client_secret_basic`,
    /// `client_secret_post`, `none`, and with the `jwt` feature
    /// `private_key_jwt` and `client_secret_jwt`, whose assertions may name
    /// the issuer, the token endpoint URL or the PAR endpoint URL as `aud`
    /// (only the issuer, as a string, under
    /// [`Profile::Fapi2`](crate::Profile::Fapi2), which also accepts
    /// `private_key_jwt` only). An assertion's `jti` is remembered in the
    /// layer's store, shared with the PAR endpoint.
    ///
    /// The error is ready to send with [`OAuthError::to_response`]:
    /// `401 invalid_client` for a failed authentication, `400
    /// invalid_request` for credentials sent twice or in the query string,
    /// `503` when the client database or the store cannot answer.
    pub async fn authenticate(
        &self,
        parts: &Parts,
        params: &Params<'_>,
    ) -> Result<Arc<Client>, OAuthError> {
        // AUTH-8, OA-13: credentials never travel in the URL.
        reject_query_credentials(parts.uri.query())?;
        let credentials = read_credentials(&parts.headers, params)?;
        authenticate(&self.config, &credentials, parts).await
    }

    /// Authenticates the client like [`authenticate`](Self::authenticate)
    /// and verifies the token request's `DPoP` proof (RFC 9449 §4.3, §5)
    /// with the PAR endpoint's rules, replay cache and nonces: `htm`
    /// `POST`, `htu` the token endpoint URL of the configuration
    /// ([`ParLayer::token_endpoint_url`](crate::ParLayer::token_endpoint_url),
    /// or the issuer's origin + `/token`). Returns the client and, when the
    /// request has a `DPoP` header, the proof key's RFC 7638 thumbprint.
    ///
    /// The order protects the client and the server: a proof without a
    /// recent nonce (when the layer requires nonces) is answered `400
    /// use_dpop_nonce`, with a `DPoP-Nonce` header, before the client
    /// assertion's `jti` is spent, so the retry can reuse it; the proof's
    /// `jti` is recorded only once the client has authenticated, so that
    /// nobody can fill the replay cache without credentials.
    ///
    /// A code pushed with a `dpop_jkt` (the parameter the wrapped service
    /// received, or [`PushedAuthorization::dpop_jkt`](crate::PushedAuthorization::dpop_jkt))
    /// must only be exchanged with a proof whose thumbprint equals it
    /// (RFC 9449 §10, DPOP-1, DPOP-11): compare, and answer a mismatch or a
    /// missing proof with `400 invalid_dpop_proof`. Send
    /// `dpop_nonce` (feature `jwt`) with a successful response. Without
    /// the `jwt` feature a request with a `DPoP` header is refused.
    pub async fn authenticate_with_dpop(
        &self,
        parts: &Parts,
        params: &Params<'_>,
    ) -> Result<(Arc<Client>, Option<String>), OAuthError> {
        #[cfg(feature = "jwt")]
        {
            crate::dpop::precheck_nonce(&self.config, parts)?;
            let proof = match parts.headers.contains_key(crate::dpop::DPOP_HEADER) {
                false => None,
                true => {
                    let htu = self.config.advertised_token_endpoint().ok_or_else(|| {
                        OAuthError::invalid_dpop_proof(
                            "DPoP proofs cannot be checked here: the server is configured \
                             with neither an issuer nor a token_endpoint_url",
                        )
                    })?;
                    crate::dpop::check_request_proof(&self.config, parts, &Method::POST, &htu)?
                }
            };
            let client = self.authenticate(parts, params).await?;
            let jkt = match proof {
                Some(proof) => Some(proof.record(&self.config.store).await?),
                None => None,
            };
            Ok((client, jkt))
        }
        #[cfg(not(feature = "jwt"))]
        {
            if parts.headers.contains_key("dpop") {
                return Err(OAuthError::invalid_dpop_proof(
                    "DPoP proofs cannot be checked: this build has no jwt feature",
                ));
            }
            Ok((self.authenticate(parts, params).await?, None))
        }
    }

    /// A fresh `DPoP-Nonce` value for the client's next proof, when the
    /// layer requires nonces ([`ParLayer::dpop_nonce_secret`](crate::ParLayer::dpop_nonce_secret)).
    #[cfg(feature = "jwt")]
    pub fn dpop_nonce(&self) -> Option<String> {
        crate::dpop::current_nonce(&self.config)
    }
}
