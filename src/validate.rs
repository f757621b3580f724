//! Push-time validation: the built-in rules and the user's own policy.
//!
//! RFC 9126 §2.1 (PAR-11) has the AS validate a pushed request as it would a
//! front-channel one. The layer checks what it can check without knowing
//! the wrapped service: `response_type`, `redirect_uri`, PKCE, `prompt`,
//! `scope` against the client's allowed list, `nonce` for ID-token response
//! types. Everything else (user-facing policy, consent, the legacy
//! endpoint's own rules) still runs at the authorization endpoint, which
//! receives the full stored request. A [`Validator`] adds your own rules and
//! runs last.

use std::future::Future;
use std::pin::Pin;

use crate::client::Client;
use crate::config::PkcePolicy;
use crate::error::OAuthError;
use crate::params::Params;

/// A boxed, `Send` future, as returned by `JwksFetcher::fetch` (feature
/// `jwt`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a [`Validator`] sees of a pushed request.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_par::{validator_fn, AuthMethod, Client, OAuthError, ParLayer, ParRequestBody, StaticClients};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clients = StaticClients::new().with_client(
///     Client::new("app", AuthMethod::None).redirect_uri("https://app.example/cb"),
///     None,
/// )?;
/// // The context: the authenticated client, the pushed parameters, the HTTP request.
/// let layer = ParLayer::new(clients).validator(validator_fn(|ctx| {
///     let tenant = ctx.request.headers.get("x-tenant").and_then(|v| v.to_str().ok());
///     match (ctx.client.client_id.as_str(), tenant) {
///         ("app", Some("acme")) if ctx.params.get("response_type") == Some("code") => Ok(()),
///         _ => Err(OAuthError::invalid_request("wrong tenant")),
///     }
/// }));
/// let svc = ServiceBuilder::new().layer(layer).service_fn(
///     |_: Request<ParRequestBody<Full<Bytes>>>| async {
///         Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
///     },
/// );
/// let push = |tenant: &'static str| {
///     Request::post("/par")
///         .header("content-type", "application/x-www-form-urlencoded")
///         .header("x-tenant", tenant)
///         .body(Full::new(Bytes::from_static(b"client_id=app&response_type=code")))
/// };
/// assert_eq!(svc.clone().oneshot(push("acme")?).await?.status(), 201);
/// assert_eq!(svc.oneshot(push("other")?).await?.status(), 400);
/// # Ok(()) }
/// ```
#[non_exhaustive]
pub struct PushContext<'a> {
    /// The authenticated client.
    pub client: &'a Client,
    /// The pushed parameters (client credentials included, as sent).
    pub params: &'a Params<'a>,
    /// The PAR request's method, URI, headers and extensions.
    pub request: &'a http::request::Parts,
}

impl std::fmt::Debug for PushContext<'_> {
    // Parameter values and headers (Authorization!) are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushContext")
            .field("client_id", &self.client.client_id)
            .field("params", &self.params)
            .field("method", &self.request.method)
            .field("uri", &self.request.uri.path())
            .finish_non_exhaustive()
    }
}

/// Your own rules for pushed requests, run after the built-in ones.
///
/// It is async (`async fn` in the trait, like
/// [`ClientAuthenticator`](crate::ClientAuthenticator) and
/// [`ParStore`](crate::ParStore)), so it can consult a database. Return an
/// [`OAuthError`] to reject the push; it is sent as the JSON error
/// response. Several validators may be added with
/// [`ParLayer::validator`](crate::ParLayer::validator): they run in the
/// order they were added, and the first refusal answers the push.
///
/// ```
/// use tower_par::{OAuthError, PushContext, Validator};
///
/// /// Allows `offline_access` only to clients listed in a (here: static) table.
/// struct OfflineAccess { allowed: Vec<String> }
///
/// impl Validator for OfflineAccess {
///     async fn validate(&self, ctx: &PushContext<'_>) -> Result<(), OAuthError> {
///         let wants = ctx.params.get("scope").is_some_and(|s| s.split(' ').any(|s| s == "offline_access"));
///         if wants && !self.allowed.contains(&ctx.client.client_id) {
///             return Err(OAuthError::invalid_scope("offline_access is not allowed for this client"));
///         }
///         Ok(())
///     }
/// }
/// ```
///
/// A plain function or closure works for synchronous rules, see
/// [`validator_fn`].
pub trait Validator: Send + Sync + 'static {
    /// Accepts or rejects a pushed request.
    fn validate(
        &self,
        ctx: &PushContext<'_>,
    ) -> impl Future<Output = Result<(), OAuthError>> + Send;
}

/// The object-safe form the layer keeps (`Arc<dyn DynValidator>`).
pub(crate) trait DynValidator: Send + Sync + 'static {
    fn validate_boxed<'a>(
        &'a self,
        ctx: &'a PushContext<'a>,
    ) -> BoxFuture<'a, Result<(), OAuthError>>;
}

/// Boxes a [`Validator`]'s future.
pub(crate) struct Boxed<V>(pub(crate) V);

impl<V: Validator> DynValidator for Boxed<V> {
    fn validate_boxed<'a>(
        &'a self,
        ctx: &'a PushContext<'a>,
    ) -> BoxFuture<'a, Result<(), OAuthError>> {
        Box::pin(self.0.validate(ctx))
    }
}

/// A [`Validator`] from a synchronous function.
///
/// ```
/// use tower_par::{validator_fn, OAuthError};
///
/// let v = validator_fn(|ctx| match ctx.params.get("acr_values") {
///     Some("urn:weak") => Err(OAuthError::invalid_request("acr_values urn:weak is not accepted")),
///     _ => Ok(()),
/// });
/// # let _ = v;
/// ```
pub fn validator_fn<F>(f: F) -> FnValidator<F>
where
    F: Fn(&PushContext<'_>) -> Result<(), OAuthError> + Send + Sync + 'static,
{
    FnValidator(f)
}

/// See [`validator_fn`].
///
/// ```
/// use tower_par::{validator_fn, FnValidator, OAuthError, ParLayer, PushContext, StaticClients};
///
/// fn no_login_hint(ctx: &PushContext<'_>) -> Result<(), OAuthError> {
///     match ctx.params.get("login_hint") {
///         Some(_) => Err(OAuthError::invalid_request("login_hint is not accepted")),
///         None => Ok(()),
///     }
/// }
///
/// // A named type, for a struct field or a function signature.
/// type Rule = fn(&PushContext<'_>) -> Result<(), OAuthError>;
/// let validator: FnValidator<Rule> = validator_fn(no_login_hint as Rule);
/// let layer = ParLayer::new(StaticClients::new()).validator(validator.clone());
/// assert_eq!(format!("{validator:?}"), "FnValidator");
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct FnValidator<F>(F);

impl<F> std::fmt::Debug for FnValidator<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnValidator")
    }
}

impl<F> Validator for FnValidator<F>
where
    F: Fn(&PushContext<'_>) -> Result<(), OAuthError> + Send + Sync + 'static,
{
    fn validate(
        &self,
        ctx: &PushContext<'_>,
    ) -> impl Future<Output = Result<(), OAuthError>> + Send {
        std::future::ready((self.0)(ctx))
    }
}

/// The rules the layer applies to every push, configured on the builder.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) pkce: PkcePolicy,
    pub(crate) require_redirect_uri: bool,
    pub(crate) code_only: bool,
}

/// Runs the built-in checks (PAR-11 step 3).
pub(crate) fn check(rules: &Rules, client: &Client, params: &Params) -> Result<(), OAuthError> {
    check_response_type(rules, client, params)?;
    check_redirect_uri(rules, client, params)?;
    check_pkce(rules.pkce, params)?;
    check_prompt(params)?;
    check_scope(client, params)?;
    Ok(())
}

fn same_set(a: &str, b: &str) -> bool {
    if a == b {
        // The common case (`code`), without allocating.
        return true;
    }
    let mut x: Vec<&str> = a.split(' ').filter(|s| !s.is_empty()).collect();
    let mut y: Vec<&str> = b.split(' ').filter(|s| !s.is_empty()).collect();
    x.sort_unstable();
    y.sort_unstable();
    x == y
}

fn check_response_type(rules: &Rules, client: &Client, params: &Params) -> Result<(), OAuthError> {
    let rt = params
        .get("response_type")
        .ok_or_else(|| OAuthError::invalid_request("response_type is required"))?;
    // OA-12: a space-delimited set; order does not matter.
    if rules.code_only && rt != "code" {
        return Err(OAuthError::unsupported_response_type(
            "only response_type=code is allowed",
        ));
    }
    if !client
        .response_types
        .iter()
        .any(|allowed| same_set(allowed, rt))
    {
        return Err(OAuthError::unsupported_response_type(
            "response_type is not allowed for this client",
        ));
    }
    // OIDC-4: response types that return an ID token need a nonce.
    if rt.split(' ').any(|t| t == "id_token") && !params.contains("nonce") {
        return Err(OAuthError::invalid_request(
            "nonce is required for this response_type",
        ));
    }
    Ok(())
}

fn check_redirect_uri(rules: &Rules, client: &Client, params: &Params) -> Result<(), OAuthError> {
    match params.get("redirect_uri") {
        Some(uri) => {
            // OA-3: no fragment.
            if uri.contains('#') {
                return Err(OAuthError::invalid_request(
                    "redirect_uri must not contain a fragment",
                ));
            }
            // OA-4: simple string comparison with a registered URI.
            if !client.redirect_uris.iter().any(|r| r == uri) {
                return Err(OAuthError::invalid_request(
                    "redirect_uri is not registered for this client",
                ));
            }
            Ok(())
        }
        // OA-4: optional only when exactly one URI is registered
        // (FAPI-18: always required).
        None if rules.require_redirect_uri || client.redirect_uris.len() != 1 => {
            Err(OAuthError::invalid_request("redirect_uri is required"))
        }
        None => Ok(()),
    }
}

fn check_pkce(policy: PkcePolicy, params: &Params) -> Result<(), OAuthError> {
    let challenge = params.get("code_challenge");
    let method = params.get("code_challenge_method");
    let Some(challenge) = challenge else {
        if method.is_some() {
            return Err(OAuthError::invalid_request(
                "code_challenge_method without code_challenge",
            ));
        }
        if policy.required {
            // PKCE-6
            return Err(OAuthError::invalid_request("code challenge required"));
        }
        return Ok(());
    };
    // PKCE-1: 43 to 128 unreserved characters.
    let syntax_ok = (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !syntax_ok {
        return Err(OAuthError::invalid_request(
            "code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~]",
        ));
    }
    // PKCE-3, PKCE-4: case-sensitive; absent means plain.
    match method {
        Some("S256") if challenge.len() == 43 => Ok(()),
        Some("S256") => Err(OAuthError::invalid_request(
            "an S256 code_challenge is exactly 43 characters",
        )),
        Some("plain") | None if policy.allow_plain => Ok(()),
        Some("plain") => Err(OAuthError::invalid_request(
            "code_challenge_method plain is not allowed, use S256",
        )),
        None => Err(OAuthError::invalid_request(
            "code_challenge_method is required (S256); plain is not allowed",
        )),
        Some(_) => Err(OAuthError::invalid_request(
            "transform algorithm not supported",
        )),
    }
}

fn check_prompt(params: &Params) -> Result<(), OAuthError> {
    if let Some(prompt) = params.get("prompt") {
        let mut values = prompt.split(' ').filter(|s| !s.is_empty());
        // OIDC-5
        if prompt.split(' ').any(|p| p == "none") && values.nth(1).is_some() {
            return Err(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            ));
        }
    }
    Ok(())
}

fn check_scope(client: &Client, params: &Params) -> Result<(), OAuthError> {
    if let (Some(allowed), Some(scope)) = (&client.scopes, params.get("scope")) {
        if let Some(bad) = scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .find(|s| !allowed.iter().any(|a| a == s))
        {
            return Err(OAuthError::invalid_scope(format!(
                "scope '{bad}' is not allowed for this client"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::AuthMethod;

    const S256: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn rules() -> Rules {
        Rules {
            pkce: PkcePolicy::default(),
            require_redirect_uri: false,
            code_only: false,
        }
    }

    fn client() -> Client {
        Client::new("c", AuthMethod::ClientSecretBasic)
            .redirect_uri("https://c.example/cb")
            .scopes(["openid", "profile"])
            .response_types(["code", "code id_token"])
    }

    fn run(rules: &Rules, client: &Client, body: &str) -> Result<(), String> {
        let p = Params::parse(body.as_bytes()).unwrap();
        check(rules, client, &p).map_err(|e| format!("{}: {}", e.code(), e.description()))
    }

    fn base(extra: &str) -> String {
        format!("response_type=code&client_id=c&redirect_uri=https%3A%2F%2Fc.example%2Fcb&scope=openid&state=s1&code_challenge={S256}&code_challenge_method=S256{extra}")
    }

    #[test]
    fn base_body_passes() {
        assert_eq!(run(&rules(), &client(), &base("")), Ok(()));
    }

    #[test]
    fn response_type_rules() {
        let r = rules();
        let c = client();
        assert!(run(&r, &c, "client_id=c")
            .unwrap_err()
            .starts_with("invalid_request"));
        let e = run(
            &r,
            &c,
            &base("").replace("response_type=code", "response_type=token"),
        )
        .unwrap_err();
        assert!(e.starts_with("unsupported_response_type"), "{e}");
        // OA-12: order does not matter; OIDC-4: nonce required.
        let hybrid = base("").replace("response_type=code", "response_type=id_token+code");
        assert!(run(&r, &c, &hybrid).unwrap_err().contains("nonce"));
        assert_eq!(run(&r, &c, &format!("{hybrid}&nonce=n")), Ok(()));
        let fapi = Rules {
            code_only: true,
            ..rules()
        };
        assert!(run(&fapi, &c, &format!("{hybrid}&nonce=n")).is_err());
    }

    #[test]
    fn redirect_uri_rules() {
        let r = rules();
        let c = client();
        let evil = base("").replace("c.example", "evil.example");
        assert!(run(&r, &c, &evil).unwrap_err().contains("not registered"));
        let frag = base("").replace("%2Fcb", "%2Fcb%23x");
        assert!(run(&r, &c, &frag).unwrap_err().contains("fragment"));
        let none = base("").replace("&redirect_uri=https%3A%2F%2Fc.example%2Fcb", "");
        assert_eq!(run(&r, &c, &none), Ok(()));
        let two = client().redirect_uri("https://c.example/cb2");
        assert!(run(&r, &two, &none)
            .unwrap_err()
            .contains("redirect_uri is required"));
        let fapi = Rules {
            require_redirect_uri: true,
            ..rules()
        };
        assert!(run(&fapi, &c, &none).is_err());
    }

    #[test]
    fn pkce_rules() {
        let r = rules();
        let c = client();
        let strip = |s: String| {
            s.replace(
                &format!("&code_challenge={S256}&code_challenge_method=S256"),
                "",
            )
        };
        assert_eq!(run(&r, &c, &strip(base(""))), Ok(()));
        let required = Rules {
            pkce: PkcePolicy {
                required: true,
                allow_plain: false,
            },
            ..rules()
        };
        assert!(run(&required, &c, &strip(base("")))
            .unwrap_err()
            .contains("code challenge required"));
        assert!(run(
            &r,
            &c,
            &format!("{}&code_challenge_method=S256", strip(base("")))
        )
        .is_err());
        for bad in ["S512", "s256"] {
            let body = base("").replace("method=S256", &format!("method={bad}"));
            assert!(run(&r, &c, &body).is_err(), "{bad}");
        }
        let short = base("").replace(S256, &S256[..42]);
        assert!(run(&r, &c, &short).is_err());
        let plus = base("").replace(S256, &format!("{}%2B", &S256[..42]));
        assert!(run(&r, &c, &plus).is_err());
        let plain = base("").replace("method=S256", "method=plain");
        assert!(run(&r, &c, &plain).unwrap_err().contains("plain"));
        let missing = base("").replace("&code_challenge_method=S256", "");
        assert!(run(&r, &c, &missing).is_err());
        let allow = Rules {
            pkce: PkcePolicy {
                required: false,
                allow_plain: true,
            },
            ..rules()
        };
        assert_eq!(run(&allow, &c, &plain), Ok(()));
        assert_eq!(run(&allow, &c, &missing), Ok(()));
        let long_plain = plain.replace(S256, &"a".repeat(128));
        assert_eq!(run(&allow, &c, &long_plain), Ok(()));
        assert!(run(&allow, &c, &plain.replace(S256, &"a".repeat(129))).is_err());
    }

    #[test]
    fn prompt_and_scope_rules() {
        let r = rules();
        let c = client();
        assert!(run(&r, &c, &base("&prompt=none+login")).is_err());
        assert_eq!(run(&r, &c, &base("&prompt=none")), Ok(()));
        assert_eq!(run(&r, &c, &base("&prompt=login+consent")), Ok(()));
        let admin = base("").replace("scope=openid", "scope=openid+admin");
        assert!(run(&r, &c, &admin)
            .unwrap_err()
            .starts_with("invalid_scope"));
    }
}
