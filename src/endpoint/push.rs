//! The PAR endpoint (RFC 9126 §2), top to bottom:
//! method → content type → body → parameters → client authentication →
//! `request_uri` check → request object (JAR) → DPoP proof → validation →
//! store → `201`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;

use super::compact::push_component;
use super::{is_form, own, push_decimal, read_body_within};
use crate::body::ParResponseBody;
use crate::client::{
    decode_basic, is_basic, AuthMethod, Client, ClientAuthError, ClientAuthenticator,
    ClientCredentials, Secret,
};
use crate::config::Config;
use crate::error::{no_store_response, OAuthError};
use crate::names;
use crate::params::{decode, Params, ParamsError};
use crate::store::{ParStore, PushedRequest, StoreError};
use crate::validate::{self, PushContext};
use crate::RequestUri;

/// Client-authentication parameters: used to authenticate, never stored.
const CLIENT_AUTH_PARAMS: &[&str] = &["client_secret", "client_assertion", "client_assertion_type"];

/// PAR-8: parameters of the token endpoint that mean nothing in an
/// authorization request; dropped rather than forwarded.
const TOKEN_ENDPOINT_PARAMS: &[&str] = &["grant_type", "code", "code_verifier", "refresh_token"];

/// The PAR endpoint's response future. It takes the request in parts so
/// that the future holds them once (an `async` function keeps its
/// arguments for its whole life, so taking the `Request` and splitting it
/// inside would hold both).
pub(crate) async fn handle<C, St, B, ResB, E>(
    cfg: Arc<Config<C, St>>,
    parts: Parts,
    body: B,
) -> Result<Response<ParResponseBody<ResB>>, E>
where
    C: ClientAuthenticator,
    St: ParStore,
    B: Body<Data = Bytes>,
{
    let mut res = match push(&cfg, &parts, body).await {
        Ok(res) => res,
        Err(e) => {
            crate::trace::rejected("push", &e);
            let mut res = e.json_response();
            if e.status() == StatusCode::REQUEST_TIMEOUT {
                // The rest of the body may still arrive: the connection
                // cannot carry another request (RFC 9110 §15.5.9).
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            res
        }
    };
    expose_dpop_nonce(&mut res);
    Ok(own(res))
}

/// A browser client reads `DPoP-Nonce` from a cross-origin response only
/// when the response exposes it (Fetch, CORS-safelisted response headers).
fn expose_dpop_nonce<B>(res: &mut Response<B>) {
    if res.headers().contains_key("dpop-nonce") {
        res.headers_mut().append(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("DPoP-Nonce"),
        );
    }
}

async fn push<C, St, B>(
    cfg: &Config<C, St>,
    parts: &Parts,
    body: B,
) -> Result<Response<Full<Bytes>>, OAuthError>
where
    C: ClientAuthenticator,
    St: ParStore,
    B: Body<Data = Bytes>,
{
    // PAR-1, PAR-20: POST only, 405 with `Allow`.
    if parts.method != Method::POST {
        return Err(OAuthError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "the pushed authorization request endpoint accepts POST only",
        )
        .with_allow("POST"));
    }
    // OA-9: a form body, nothing else.
    if !is_form(&parts.headers) {
        return Err(OAuthError::invalid_request(
            "content type must be application/x-www-form-urlencoded",
        ));
    }
    // AUTH-8, OA-13: credentials never travel in the URL.
    reject_query_credentials(parts.uri.query())?;
    let bytes = read_body_within(&parts.headers, body, cfg.max_body, cfg.par_body_timeout)
        .await
        .map_err(|e| e.into_oauth(cfg.max_body))?;
    let params = Params::parse(&bytes).map_err(|e| OAuthError::invalid_request(e.to_string()))?;

    // DPOP-7: a proof that lacks a recent nonce is answered before the
    // client assertion's `jti` is spent, so the retry can reuse it.
    #[cfg(feature = "jwt")]
    crate::dpop::precheck_nonce(cfg, parts)?;

    // PAR-11 step 1: authenticate the client as the token endpoint would.
    let credentials = read_credentials(&parts.headers, &params)?;
    let client = authenticate(cfg, &credentials, parts).await?;

    // PAR-11 step 2, PAR-7.
    if params.contains("request_uri") {
        return Err(OAuthError::invalid_request(
            "request_uri must not be pushed",
        ));
    }
    // PAR-24..26, JAR-6: a request object's claims are the whole request;
    // `object_form` holds them for as long as `params` borrows it.
    let object_form: String;
    let mut object_exp = None;
    let params = match params.get("request") {
        Some(token) => {
            let (form, exp) = request_object(cfg, &client, &params, token).await?;
            object_form = form;
            object_exp = exp;
            Params::parse(object_form.as_bytes()).map_err(|e| {
                OAuthError::invalid_request_object(format!(
                    "the request object's claims are not a valid request: {e}"
                ))
            })?
        }
        // PAR-19, JAR-8: a client (or a server) that requires signed
        // request objects accepts nothing else.
        None if client.require_signed_request_object || requires_signed_objects(cfg) => {
            return Err(OAuthError::invalid_request(
                "this client must push its authorization request as a signed request \
                 object (the request parameter)",
            ));
        }
        None => params,
    };
    // DPOP-2, DPOP-11: the key the code is bound to, from a verified proof
    // or from the pushed `dpop_jkt`.
    let proof = dpop_proof(cfg, parts)?;
    let proof_jkt = proof.as_ref().map(|p| p.jkt.clone());
    let pushed_jkt = params.get("dpop_jkt");
    if pushed_jkt.is_some_and(|jkt| !is_jkt(jkt)) {
        return Err(OAuthError::invalid_request(
            "dpop_jkt must be a base64url SHA-256 JWK thumbprint (43 characters)",
        ));
    }
    // DPOP-3: two keys for one request.
    if let (Some(proof), Some(pushed)) = (&proof_jkt, pushed_jkt) {
        if proof != pushed {
            return Err(OAuthError::invalid_dpop_proof(
                "the DPoP proof's key does not match the pushed dpop_jkt",
            ));
        }
    }
    // DPOP-2 (b): as if the proof key's thumbprint had been pushed, for
    // the validators as much as for the wrapped service.
    let jkt_form: String;
    let params = match proof_jkt.as_deref().filter(|_| pushed_jkt.is_none()) {
        Some(jkt) => {
            jkt_form = with_pair(&params, "dpop_jkt", jkt);
            Params::parse(jkt_form.as_bytes())
                .map_err(|e| OAuthError::invalid_request(e.to_string()))?
        }
        None => params,
    };
    // A name another parser folds onto one the layer checks or drops would
    // reach that parser as the checked parameter, unchecked (PAR-8, PAR-11).
    if let Some((name, _)) = params.iter().find(|(n, _)| names::confusable(n)) {
        let shown = names::sanitized(name);
        return Err(OAuthError::invalid_request(if names::printable(name) {
            format!("parameter name '{shown}' could be read as a checked parameter")
        } else {
            format!("parameter name '{shown}' is not printable ASCII")
        }));
    }

    // PAR-11 step 3: built-in rules, then the user's.
    validate::check(&cfg.rules(), &client, &params)?;
    if !cfg.validators.is_empty() {
        let ctx = PushContext {
            client: &client,
            params: &params,
            request: parts,
        };
        // In the order they were added; the first refusal answers.
        for validator in &cfg.validators {
            validator.validate_boxed(&ctx).await?;
        }
    }

    // PAR-13, PAR-15: store, bound to the client, and hand out the reference.
    // A request object that expires sooner shortens the lifetime.
    let lifetime = shortened_lifetime(cfg.lifetime_for(client.request_uri_lifetime), object_exp);
    let uri = RequestUri::generate();
    let redirect_uri = effective_redirect_uri(&client, &params);
    // Room for the redirect URI after the form: a store that keeps both in
    // one buffer (`MemoryStore`) then does not reallocate.
    let room = redirect_uri.as_ref().map_or(0, String::len);
    let form = stored_form(&params, &client.client_id, room);
    redeemable(cfg, &params, &form)?;
    // The authenticated client_id (equal to `client.client_id`), moved.
    // An mTLS client reads as `none` (a bare client_id): its method is
    // the registered one the certificate was verified for.
    let method = if client.auth_method.uses_certificate() {
        client.auth_method
    } else {
        credentials.method
    };
    let stored = PushedRequest::new(
        credentials.client_id,
        method,
        form,
        SystemTime::now(),
        lifetime,
    )
    .with_redirect_uri(redirect_uri);
    // DPOP-9: the proof's jti is spent only by a push that passed every
    // check, so refused pushes do not fill the replay cache.
    if let Some(proof) = proof {
        record_proof(cfg, proof).await?;
    }
    cfg.store
        .insert(&uri, stored, lifetime)
        .await
        .map_err(store_error)?;
    crate::trace::pushed(&client.client_id, &uri);
    let mut res = created(&uri, lifetime.as_secs());
    if proof_jkt.is_some() {
        // RFC 9449 §8.2: the nonce for the client's next proof.
        add_dpop_nonce(cfg, &mut res);
    }
    Ok(res)
}

/// Verifies the `request` parameter (feature `jwt`): the stored form it
/// carries and its `exp`.
#[cfg(feature = "jwt")]
async fn request_object<C, St>(
    cfg: &Config<C, St>,
    client: &Client,
    params: &Params<'_>,
    token: &str,
) -> Result<(String, Option<u64>), OAuthError> {
    let object = crate::jar::verify(cfg, client, params, token).await?;
    Ok((object.form, object.exp))
}

/// Without the `jwt` feature a request object cannot be verified: refused
/// rather than forwarded unchecked (PAR-24..26).
#[cfg(not(feature = "jwt"))]
async fn request_object<C, St>(
    _cfg: &Config<C, St>,
    _client: &Client,
    _params: &Params<'_>,
    _token: &str,
) -> Result<(String, Option<u64>), OAuthError> {
    Err(OAuthError::new(
        StatusCode::BAD_REQUEST,
        "request_not_supported",
        "request objects are not supported at this endpoint",
    ))
}

#[cfg(feature = "jwt")]
fn requires_signed_objects<C, St>(cfg: &Config<C, St>) -> bool {
    cfg.jwt.require_signed_request_object
}

#[cfg(not(feature = "jwt"))]
fn requires_signed_objects<C, St>(_cfg: &Config<C, St>) -> bool {
    false
}

#[cfg(feature = "jwt")]
fn shortened_lifetime(lifetime: Duration, exp: Option<u64>) -> Duration {
    crate::jar::shortened_lifetime(lifetime, exp)
}

#[cfg(not(feature = "jwt"))]
fn shortened_lifetime(lifetime: Duration, _exp: Option<u64>) -> Duration {
    lifetime
}

/// The push's DPoP proof, verified (feature `jwt`): its key's thumbprint.
#[cfg(feature = "jwt")]
fn dpop_proof<C, St>(cfg: &Config<C, St>, parts: &Parts) -> Result<Option<Proof>, OAuthError> {
    crate::dpop::check_push_proof(cfg, parts)
}

#[cfg(feature = "jwt")]
use crate::dpop::Proof;

#[cfg(feature = "jwt")]
async fn record_proof<C, St: ParStore>(
    cfg: &Config<C, St>,
    proof: Proof,
) -> Result<(), OAuthError> {
    proof.record(&cfg.store).await.map(drop)
}

/// Without the `jwt` feature no proof is ever accepted.
#[cfg(not(feature = "jwt"))]
struct Proof {
    jkt: String,
}

#[cfg(not(feature = "jwt"))]
async fn record_proof<C, St>(_cfg: &Config<C, St>, _proof: Proof) -> Result<(), OAuthError> {
    Ok(())
}

/// DPOP-3: without the `jwt` feature a proof cannot be verified, and must
/// not be dropped silently; `dpop_jkt` is forwarded like any other
/// parameter.
#[cfg(not(feature = "jwt"))]
fn dpop_proof<C, St>(_cfg: &Config<C, St>, parts: &Parts) -> Result<Option<Proof>, OAuthError> {
    if parts.headers.contains_key("dpop") {
        return Err(OAuthError::invalid_dpop_proof(
            "DPoP proofs are not supported at this endpoint; send dpop_jkt instead",
        ));
    }
    Ok(None)
}

#[cfg(feature = "jwt")]
fn add_dpop_nonce<C, St>(cfg: &Config<C, St>, res: &mut Response<Full<Bytes>>) {
    if let Some(nonce) =
        crate::dpop::current_nonce(cfg).and_then(|n| HeaderValue::from_str(&n).ok())
    {
        res.headers_mut()
            .insert(crate::dpop::DPOP_NONCE_HEADER, nonce);
    }
}

#[cfg(not(feature = "jwt"))]
fn add_dpop_nonce<C, St>(_cfg: &Config<C, St>, _res: &mut Response<Full<Bytes>>) {}

/// DPOP-1: a SHA-256 JWK thumbprint is 32 bytes, 43 base64url characters.
fn is_jkt(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The pushed pairs as sent, then `name=value`.
fn with_pair(params: &Params, name: &str, value: &str) -> String {
    let mut form = String::with_capacity(params.raw_len() + 1 + name.len() + 1 + value.len() * 3);
    params.encode_filtered_into(&mut form, |_| true);
    crate::params::append_pair(&mut form, name, value);
    form
}

/// `http::Uri`'s limit on a URI (`u16::MAX - 1` bytes: the http crate's
/// private `uri::MAX_LEN`), which the rebuilt `GET` redemption must fit.
const MAX_URI_LEN: usize = u16::MAX as usize - 1;

/// Refuses at push what the authorization endpoint could not rebuild
/// later, so a `201` is never followed by a `500` at every redemption.
fn redeemable<C, St>(cfg: &Config<C, St>, params: &Params, form: &str) -> Result<(), OAuthError> {
    // The stored form is parsed again at redemption (PAR-41): with a
    // `client_id` added for a Basic client it must still be within the
    // parameter count.
    let pairs = params.iter().filter(|(n, _)| is_stored(n)).count()
        + usize::from(!params.contains("client_id"));
    if pairs > Params::MAX_PARAMS {
        return Err(OAuthError::invalid_request(
            ParamsError::TooMany.to_string(),
        ));
    }
    // A `GET` redemption becomes `{authorize_path}?{form}`, or
    // `{authorize_path}/?{form}` when redeemed with the trailing slash
    // (routed the same, M-4).
    let limit = MAX_URI_LEN - (cfg.authorize_path.len() + 2);
    if form.len() > limit {
        return Err(OAuthError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!(
                "the stored authorization request would be longer than {limit} bytes, \
                 the most a GET {} can carry",
                cfg.authorize_path
            ),
        ));
    }
    Ok(())
}

pub(crate) fn reject_query_credentials(query: Option<&str>) -> Result<(), OAuthError> {
    let Some(query) = query else { return Ok(()) };
    for segment in query.split('&') {
        let name = segment.split('=').next().unwrap_or_default();
        let name = decode(name).unwrap_or_default();
        if CLIENT_AUTH_PARAMS.contains(&name.as_ref()) {
            return Err(OAuthError::invalid_request(
                "client credentials must not be sent in the query string",
            ));
        }
    }
    Ok(())
}

/// Reads which client the request claims to be and how it proves it
/// (RFC 6749 §2.3), enforcing one method per request (AUTH-3) and a body
/// `client_id` that agrees with the Basic one or the assertion's (AUTH-9).
/// Shared with [`TokenEndpoint`](crate::TokenEndpoint).
pub(crate) fn read_credentials(
    headers: &http::HeaderMap,
    params: &Params,
) -> Result<ClientCredentials, OAuthError> {
    // RFC 6749 §5.2: multiple credentials are an invalid request.
    if headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let authorization = headers.get(header::AUTHORIZATION);
    let basic = authorization.filter(|v| is_basic(v));
    if authorization.is_some() && basic.is_none() {
        return Err(OAuthError::invalid_client(
            "unsupported Authorization scheme",
        ));
    }
    let post_secret = params.get("client_secret");
    let assertion = params.contains("client_assertion") || params.contains("client_assertion_type");
    let methods =
        usize::from(basic.is_some()) + usize::from(post_secret.is_some()) + usize::from(assertion);
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "more than one client authentication method used",
        ));
    }
    let body_id = params.get("client_id");
    // AUTH-11: private_key_jwt, client_secret_jwt.
    #[cfg(feature = "jwt")]
    if assertion {
        return crate::client::jwt::read_assertion(params, body_id);
    }
    #[cfg(not(feature = "jwt"))]
    if assertion {
        return Err(OAuthError::invalid_client(
            "client assertion authentication is not supported",
        ));
    }
    if let Some(header) = basic {
        let (client_id, secret) = decode_basic(header).ok_or_else(|| {
            OAuthError::invalid_client("malformed Basic credentials").with_basic_challenge()
        })?;
        if body_id.is_some_and(|id| id != client_id) {
            return Err(OAuthError::invalid_client(
                "client_id does not match the authenticated client",
            )
            .with_basic_challenge());
        }
        return Ok(ClientCredentials {
            client_id,
            method: AuthMethod::ClientSecretBasic,
            secret: Some(Secret::new(secret)),
            assertion: None,
        });
    }
    // PAR-9: without Basic, the body names the client.
    let client_id = body_id
        .ok_or_else(|| OAuthError::invalid_client("client authentication required"))?
        .to_owned();
    Ok(match post_secret {
        Some(secret) => ClientCredentials {
            client_id,
            method: AuthMethod::ClientSecretPost,
            secret: Some(Secret::new(secret)),
            assertion: None,
        },
        None => ClientCredentials {
            client_id,
            method: AuthMethod::None,
            secret: None,
            assertion: None,
        },
    })
}

/// Checks the credentials: the JWT methods here (feature `jwt`), the
/// others through the [`ClientAuthenticator`]. Shared with
/// [`TokenEndpoint`](crate::TokenEndpoint).
pub(crate) async fn authenticate<C, St>(
    cfg: &Config<C, St>,
    credentials: &ClientCredentials,
    parts: &http::request::Parts,
) -> Result<Arc<Client>, OAuthError>
where
    C: ClientAuthenticator,
    St: ParStore,
{
    let with_challenge = |e: OAuthError| {
        // AUTH-7: a Basic challenge when Basic was tried.
        if credentials.method == AuthMethod::ClientSecretBasic {
            e.with_basic_challenge()
        } else {
            e
        }
    };
    // AUTH-1: one answer for every failure.
    let failed = || with_challenge(OAuthError::invalid_client("client authentication failed"));
    // AUTH-19 (RFC 8705 §2): a client certificate and a bare client_id
    // may be an mTLS client; which one, only its registration says.
    let certificate = parts
        .extensions
        .get::<crate::ClientCertificate>()
        .filter(|_| credentials.method == AuthMethod::None);
    // FAPI-5: private_key_jwt or mTLS only. The method comes from the
    // request, not the client: refusing it first tells nothing about the
    // client.
    if cfg.is_fapi() && credentials.method != AuthMethod::PrivateKeyJwt && certificate.is_none() {
        return Err(with_challenge(OAuthError::invalid_client(format!(
            "{} is not accepted under the FAPI 2.0 profile; clients authenticate with \
             private_key_jwt{}",
            credentials.method,
            if cfg!(feature = "mtls") {
                ", tls_client_auth or self_signed_tls_client_auth"
            } else {
                ""
            }
        ))));
    }
    #[cfg(feature = "jwt")]
    if credentials.method.uses_assertion() {
        return crate::client::jwt::authenticate(cfg, credentials).await;
    }
    #[cfg(feature = "mtls")]
    if let Some(certificate) = certificate {
        match crate::client::mtls::authenticate(cfg, credentials, certificate).await {
            Ok(Some(client)) => return Ok(client),
            // Not an mTLS client: authenticated as the request reads.
            Ok(None) => {}
            Err(ClientAuthError::Unavailable(_why)) => {
                return Err(OAuthError::temporarily_unavailable(
                    "client database unavailable",
                    5,
                ))
            }
            Err(reason) => {
                crate::trace::auth_failed(&credentials.client_id, &reason);
                return Err(failed());
            }
        }
    }
    #[cfg(not(feature = "mtls"))]
    let _ = certificate;
    match cfg.clients.authenticate(credentials, parts).await {
        Ok(client) if client.client_id != credentials.client_id => Err(failed()),
        // The layer alone verifies certificates (feature `mtls`, above).
        Ok(client) if client.auth_method.uses_certificate() => Err(failed()),
        // FAPI-3: confidential clients only.
        Ok(client) if cfg.is_fapi() && client.auth_method == AuthMethod::None => Err(failed()),
        Ok(client) => Ok(client),
        Err(ClientAuthError::Unavailable(_why)) => Err(OAuthError::temporarily_unavailable(
            "client database unavailable",
            5,
        )),
        Err(_reason) => {
            crate::trace::auth_failed(&credentials.client_id, &_reason);
            Err(failed())
        }
    }
}

/// Where the authorization response will go: the pushed `redirect_uri`, or
/// the client's only registered one (validation made sure one of the two
/// exists when it matters).
fn effective_redirect_uri(client: &Client, params: &Params) -> Option<String> {
    match params.get("redirect_uri") {
        Some(uri) => Some(uri.to_owned()),
        None => match client.redirect_uris.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        },
    }
}

/// The stored form: the pushed pairs as sent, without client credentials
/// and token-endpoint parameters (PAR-8), with `client_id` added when the
/// client sent it only in the Basic header, since the authorization
/// endpoint needs it. `room` more bytes are reserved after the form.
fn stored_form(params: &Params, client_id: &str, room: usize) -> String {
    let keep = is_stored;
    if params.contains("client_id") {
        let mut form = String::with_capacity(params.raw_len() + room);
        params.encode_filtered_into(&mut form, keep);
        return form;
    }
    // One allocation: the client_id pair, then the pushed pairs as sent.
    let mut form = String::with_capacity(11 + client_id.len() * 3 + params.raw_len() + 1 + room);
    form.push_str("client_id=");
    push_component(&mut form, client_id);
    params.encode_filtered_into(&mut form, keep);
    form
}

/// Whether a pushed parameter is part of the stored request (PAR-8).
fn is_stored(name: &str) -> bool {
    !CLIENT_AUTH_PARAMS.contains(&name) && !TOKEN_ENDPOINT_PARAMS.contains(&name)
}

fn store_error(e: StoreError) -> OAuthError {
    match e {
        StoreError::Full { retry_after } => OAuthError::temporarily_unavailable(
            "too many pending authorization requests, retry later",
            retry_after,
        ),
        StoreError::ClientLimit { retry_after } => OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "too many pending authorization requests for this client",
        )
        .with_retry_after(retry_after),
        StoreError::Exists => OAuthError::server_error("request_uri collision, retry"),
        StoreError::Unavailable(_) => {
            OAuthError::temporarily_unavailable("authorization request store unavailable", 5)
        }
    }
}

/// PAR-13: `201` with exactly `request_uri` and `expires_in`.
fn created(uri: &RequestUri, expires_in: u64) -> Response<Full<Bytes>> {
    // The URI is base64url in a fixed URN: nothing to escape.
    // Exact capacity: a `Bytes` made from a full `Vec` needs no extra
    // allocation.
    let digits = expires_in.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut body = String::with_capacity(16 + RequestUri::URN_LEN + 15 + digits + 1);
    body.push_str("{\"request_uri\":\"");
    uri.push_to(&mut body);
    body.push_str("\",\"expires_in\":");
    push_decimal(&mut body, expires_in);
    body.push('}');
    debug_assert_eq!(body.len(), body.capacity());
    no_store_response(StatusCode::CREATED, "application/json", Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_drops_credentials_and_adds_client_id() {
        let p = Params::parse(b"response_type=code&client_secret=s&grant_type=x&code=c&claims=%7B%7D&resource=a&resource=b").unwrap();
        assert_eq!(
            stored_form(&p, "c 1", 0),
            "client_id=c%201&response_type=code&claims=%7B%7D&resource=a&resource=b"
        );
        let p = Params::parse(b"client_id=c&scope=openid").unwrap();
        assert_eq!(stored_form(&p, "c", 0), "client_id=c&scope=openid");
        // Room reserved for what a store appends.
        assert_eq!(
            stored_form(&p, "c", 7).capacity(),
            "client_id=c&scope=openid".len() + 7
        );
    }

    #[test]
    fn created_body_is_the_rfc_9126_object_with_exact_capacity() {
        for n in [0, 7, 60, 600, u64::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        let uri = RequestUri::generate();
        let res = created(&uri, 90);
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn query_credentials_are_refused() {
        assert!(reject_query_credentials(Some("client_secret=x")).is_err());
        assert!(reject_query_credentials(Some("a=1&client%5Fassertion=x")).is_err());
        assert!(reject_query_credentials(Some("a=1")).is_ok());
        assert!(reject_query_credentials(None).is_ok());
    }
}
