//! Settings shared by every clone of the layer, fixed once built.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::validate::{Rules, Validator};

/// A rule set for pushed requests.
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
    /// | Client authentication | `client_secret_basic`, `client_secret_post`, `none`, `private_key_jwt`, `client_secret_jwt` (as registered) | `private_key_jwt` only; public clients refused | FAPI 2.0 SP §5.3.2.1 items 3, 6 (FAPI-3, FAPI-5) |
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

/// PKCE requirements at push time.
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
    /// `form_post` page), or when the window ends.
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

/// Whether and how the layer touches the discovery documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum MetadataMode {
    #[default]
    Off,
    Augment,
    AugmentOrServe,
}

/// A setting that was rejected by the builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub(crate) String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Clone)]
pub(crate) struct Config<C, St> {
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
    pub(crate) metadata: MetadataMode,
    pub(crate) pass_foreign_request_uris: bool,
    pub(crate) redemption: Redemption,
    pub(crate) flow_window: Duration,
    pub(crate) flow_cookie: FlowCookie,
    pub(crate) clients: C,
    pub(crate) store: St,
    pub(crate) validator: Option<Arc<dyn Validator>>,
    pub(crate) jwt: JwtSettings,
    /// Clients' keys: inline `jwks`, or `jwks_uri` fetched and cached.
    #[cfg(feature = "jwt")]
    pub(crate) client_keys: crate::client::ClientKeys,
}

impl<C, St> Config<C, St> {
    pub(crate) fn new(clients: C, store: St) -> Self {
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
            metadata: MetadataMode::Off,
            pass_foreign_request_uris: false,
            redemption: Redemption::FlowBound,
            flow_window: Duration::from_secs(600),
            flow_cookie: FlowCookie {
                name: "par_flow".into(),
                secure: true,
            },
            clients,
            store,
            validator: None,
            jwt: JwtSettings::default(),
            #[cfg(feature = "jwt")]
            client_keys: crate::client::ClientKeys::default_for_layer(),
        }
    }

    pub(crate) fn with_store<St2>(self, store: St2) -> Config<C, St2> {
        Config {
            par_path: self.par_path,
            authorize_path: self.authorize_path,
            issuer: self.issuer,
            par_endpoint_url: self.par_endpoint_url,
            token_endpoint_url: self.token_endpoint_url,
            lifetime: self.lifetime,
            max_body: self.max_body,
            par_body_timeout: self.par_body_timeout,
            require_par: self.require_par,
            require_par_clients: self.require_par_clients,
            profile: self.profile,
            pkce: self.pkce,
            metadata: self.metadata,
            pass_foreign_request_uris: self.pass_foreign_request_uris,
            redemption: self.redemption,
            flow_window: self.flow_window,
            flow_cookie: self.flow_cookie,
            clients: self.clients,
            store,
            validator: self.validator,
            jwt: self.jwt,
            #[cfg(feature = "jwt")]
            client_keys: self.client_keys,
        }
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

/// `scheme://authority` of an absolute URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Checks an absolute `http(s)` URL without query or fragment.
pub(crate) fn check_url(name: &str, url: &str) -> Result<(), ConfigError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ConfigError(format!("{name} '{url}' is not a URL")))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("https") | Some("http"));
    if !scheme_ok || uri.authority().is_none() || uri.query().is_some() || url.contains('#') {
        return Err(ConfigError(format!(
            "{name} '{url}' must be an absolute http(s) URL without query or fragment"
        )));
    }
    Ok(())
}

pub(crate) fn check_path(name: &str, path: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/')
        || path.contains(['?', '#', ';', '%'])
        || path.len() < 2
        || path.ends_with('/')
    {
        return Err(ConfigError(format!(
            "{name} '{path}' must be an absolute path such as /par, without trailing slash"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_strips_path() {
        assert_eq!(origin("https://as.example/t1"), "https://as.example");
        assert_eq!(origin("http://127.0.0.1:3000"), "http://127.0.0.1:3000");
    }

    #[test]
    fn url_and_path_checks() {
        assert!(check_url("issuer", "https://as.example/t1").is_ok());
        assert!(check_url("issuer", "as.example").is_err());
        assert!(check_url("issuer", "https://as.example/?x=1").is_err());
        assert!(check_url("issuer", "ftp://as.example").is_err());
        assert!(check_path("par_path", "/par").is_ok());
        assert!(check_path("par_path", "par").is_err());
        assert!(check_path("par_path", "/").is_err());
        assert!(check_path("authorize_path", "/oauth/authorize/").is_err());
    }
}
