//! `private_key_jwt` and `client_secret_jwt` (RFC 7523, OIDC Core §9,
//! RFC 9126 §2): reading a client assertion off the request, then
//! verifying its signature and claims (feature `jwt`).
//!
//! The order keeps failures indistinguishable for whoever cannot sign as
//! the client (AUTH-1): what depends only on the request (the assertion's
//! shape, its algorithm against the profile, the layer's issuer) is checked
//! first and refused with a precise description; what depends on the
//! client's registration (does it exist, its method, its pinned algorithm,
//! its keys or secret) gives one description, [`NOT_VERIFIED`], after the
//! same signature work, whether or not the client exists; the claims are
//! checked, with precise descriptions again, only once the signature has
//! verified, since only the client can then see them.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::KeysError;
use super::{AuthMethod, Client, ClientAuthError, ClientAuthenticator, ClientCredentials, Secret};
use crate::config::Config;
use crate::error::OAuthError;
use crate::jose::{self, Alg, Jwt};
use crate::params::Params;
use crate::store::{ParStore, StoreError};

/// RFC 7523 §2.2: the one accepted `client_assertion_type` (AUTH-11).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Prefix of the replay-cache keys of client assertions (AUTH-13); the
/// rest is a digest, so a key's length does not depend on the `jti`.
const REPLAY_PREFIX: &str = "tower-par:client-assertion-jti:";

/// The description of every failure that depends on the client's
/// registration before the signature has verified (AUTH-1): unknown
/// client, another registered method (AUTH-4), another pinned algorithm
/// (AUTH-15), no key or secret, unknown `kid`, bad signature.
pub(crate) const NOT_VERIFIED: &str = "the client assertion could not be verified: expected a JWT \
     signed with a key registered for this client (or, for client_secret_jwt, MACed with its \
     secret), with the algorithm and authentication method it is registered for";

fn refused(description: impl Into<Cow<'static, str>>) -> OAuthError {
    OAuthError::invalid_client(description)
}

fn unavailable() -> OAuthError {
    OAuthError::temporarily_unavailable("client database unavailable", 5)
}

/// Reads `client_assertion` and `client_assertion_type` (AUTH-11): which
/// client the request claims to be and which JWT method it uses. Only the
/// caller's "one method per request" check (AUTH-3) comes before.
///
/// The client is the body `client_id`, else the assertion's `sub`, read
/// unverified only to find the client; when both are present they must
/// agree (AUTH-9, RFC 7521 §4.2). The method follows from the algorithm:
/// HMAC for `client_secret_jwt`, asymmetric for `private_key_jwt`.
pub(crate) fn read_assertion(
    params: &Params,
    body_id: Option<&str>,
) -> Result<ClientCredentials, OAuthError> {
    match params.get("client_assertion_type") {
        None => {
            return Err(refused(format!(
                "client_assertion_type is required with client_assertion; expected {JWT_BEARER}"
            )))
        }
        Some(t) if t != JWT_BEARER => {
            return Err(refused(format!(
                "client_assertion_type must be {JWT_BEARER}"
            )))
        }
        Some(_) => {}
    }
    let assertion = params
        .get("client_assertion")
        .ok_or_else(|| refused("client_assertion is required with client_assertion_type"))?;
    // AUTH-11: a single JWT, in compact serialization.
    if !assertion
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(refused(
            "client_assertion must be one JWT in compact serialization \
             (base64url parts separated by dots)",
        ));
    }
    let peeked = jose::peek(assertion).map_err(|e| malformed(assertion, e))?;
    let client_id = match (body_id, peeked.str_claim("sub")) {
        (Some(id), Some(sub)) if id != sub => {
            return Err(refused(
                "client_id does not match the client assertion's sub",
            ))
        }
        (Some(id), _) => id,
        (None, Some(sub)) => sub,
        (None, None) => {
            return Err(refused(
                "the client assertion has no sub naming the client, and no client_id was sent",
            ))
        }
    };
    let method = if jose::HMAC.contains(&peeked.header.alg) {
        AuthMethod::ClientSecretJwt
    } else {
        AuthMethod::PrivateKeyJwt
    };
    Ok(ClientCredentials {
        client_id: client_id.to_owned(),
        method,
        secret: None,
        assertion: Some(Secret::new(assertion)),
    })
}

/// The refusal of an assertion that cannot even be read.
fn malformed(token: &str, e: jose::JoseError) -> OAuthError {
    if jose::is_unsecured(token) {
        // AUTH-15, FAPI-25.
        return refused("the client assertion must be signed: alg none is not accepted");
    }
    refused(format!("client_assertion: {e}"))
}

/// Verifies the assertion of `credentials` (a JWT method, as read by
/// [`read_assertion`]) and returns the client (AUTH-11..17, PAR-6, FAPI-8,
/// FAPI-13, FAPI-25).
pub(crate) async fn authenticate<C, St>(
    cfg: &Config<C, St>,
    credentials: &ClientCredentials,
) -> Result<Arc<Client>, OAuthError>
where
    C: ClientAuthenticator,
    St: ParStore,
{
    let token = credentials
        .assertion
        .as_ref()
        .map(Secret::expose)
        .ok_or_else(|| refused("client_assertion is required"))?;
    let header = jose::peek(token).map_err(|e| malformed(token, e))?.header;
    check_typ(header.typ.as_deref())?;
    let alg = header.alg;
    let hmac = jose::HMAC.contains(&alg);
    // The method follows from the algorithm; credentials built otherwise
    // must agree with it.
    let method_of_alg = if hmac {
        AuthMethod::ClientSecretJwt
    } else {
        AuthMethod::PrivateKeyJwt
    };
    if credentials.method != method_of_alg {
        return Err(refused(format!(
            "alg {} is not used with {}",
            jose::alg_name(alg),
            credentials.method
        )));
    }
    // AUTH-15, FAPI-25: the profile's algorithms; HMAC only for
    // client_secret_jwt, which FAPI-5 refuses altogether.
    let allowed: &[Alg] = match (hmac, cfg.is_fapi()) {
        (true, false) => jose::HMAC,
        (true, true) => &[],
        (false, _) => cfg.asymmetric_algs(),
    };
    if !allowed.contains(&alg) {
        return Err(refused(if allowed.is_empty() {
            format!(
                "{} is not accepted by this server",
                AuthMethod::ClientSecretJwt
            )
        } else {
            format!(
                "alg {} is not accepted for {}; expected one of {}",
                jose::alg_name(alg),
                credentials.method,
                jose::alg_list(allowed)
            )
        }));
    }
    // AUTH-12: without its own identifier the server cannot check `aud`.
    let issuer = cfg.issuer.as_deref().ok_or_else(|| {
        refused(
            "JWT client authentication is not available: the server has no issuer configured, \
             so the assertion's aud cannot be checked",
        )
    })?;

    let client_id = credentials.client_id.as_str();
    let not_verified = |reason: ClientAuthError| {
        // AUTH-1: the work of a verification, whatever was missing.
        jose::verify_for_timing(token, alg);
        crate::trace::auth_failed(client_id, &reason);
        refused(NOT_VERIFIED)
    };
    let client = match cfg.clients.client_for_authentication(client_id).await {
        Ok(Some(client)) if client.client_id == client_id => client,
        Ok(_) => return Err(not_verified(ClientAuthError::UnknownClient)),
        Err(ClientAuthError::Unavailable(_)) => return Err(unavailable()),
        Err(reason) => return Err(not_verified(reason)),
    };
    // AUTH-4: the registered method; AUTH-15: the registered algorithm.
    let pinned_ok = client
        .token_endpoint_auth_signing_alg
        .as_deref()
        .is_none_or(|name| jose::parse_alg(name) == Some(alg));
    if client.auth_method != credentials.method || !pinned_ok {
        return Err(not_verified(ClientAuthError::MethodNotAllowed));
    }

    let verified = if hmac {
        let secret = match cfg.clients.client_secret(client_id).await {
            Ok(Some(secret)) => secret,
            Ok(None) => return Err(not_verified(ClientAuthError::BadCredentials)),
            Err(ClientAuthError::Unavailable(_)) => return Err(unavailable()),
            Err(reason) => return Err(not_verified(reason)),
        };
        jose::verify_with_secret(token, secret.expose().as_bytes(), &[alg])
    } else {
        // Only the registered keys: `jku`, `x5u`, `x5c` and `jwk` in the
        // header are never followed (AUTH-15).
        let jwks = match cfg
            .client_keys
            .keys_for(&client, header.kid.as_deref(), alg)
            .await
        {
            Ok(jwks) => jwks,
            // AUTH-1: a key lookup that failed tells nothing more than a bad
            // signature would (the detail goes to the log); a full cache is
            // the server's problem, not the client's.
            Err(KeysError::CacheFull) => return Err(unavailable()),
            Err(e) => {
                crate::trace::keys_unavailable(client_id, &e.description());
                return Err(not_verified(ClientAuthError::BadCredentials));
            }
        };
        jose::verify_with_keys(token, &jwks.keys, &[alg])
    };
    // The verification failed on its own: no dummy work needed.
    let jwt = verified.map_err(|_| {
        crate::trace::auth_failed(client_id, &ClientAuthError::BadCredentials);
        refused(NOT_VERIFIED)
    })?;

    let now = unix_now();
    let (exp, jti) = check_claims(cfg, &jwt, client_id, issuer, now)?;
    mark_used(cfg, client_id, jti, exp, now).await?;
    Ok(client)
}

/// AUTH-17 (RFC 9101 §10.8): a JWT typed as another kind of token is not
/// a client assertion. Media types compare case-insensitively, with or
/// without `application/` (RFC 7515 §4.1.9).
fn check_typ(typ: Option<&str>) -> Result<(), OAuthError> {
    let Some(typ) = typ else { return Ok(()) };
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    for (other, what) in [
        ("oauth-authz-req+jwt", "a request object"),
        ("dpop+jwt", "a DPoP proof"),
    ] {
        if bare.eq_ignore_ascii_case(other) {
            return Err(refused(format!(
                "{what} (typ {other}) cannot be used as a client assertion"
            )));
        }
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// AUTH-12, AUTH-13, FAPI-13: `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`,
/// `jti`. Returns `exp` and `jti`.
fn check_claims<'j, C, St>(
    cfg: &Config<C, St>,
    jwt: &'j Jwt,
    client_id: &str,
    issuer: &str,
    now: u64,
) -> Result<(u64, &'j str), OAuthError> {
    for name in ["iss", "sub"] {
        match jwt.str_claim(name) {
            None => {
                return Err(refused(format!(
                    "the client assertion has no {name}; expected the client_id"
                )))
            }
            Some(v) if v != client_id => {
                return Err(refused(format!(
                    "the client assertion's {name} must be the client_id"
                )))
            }
            Some(_) => {}
        }
    }
    check_aud(cfg, jwt.claims.get("aud"), issuer)?;

    let leeway = cfg.jwt_leeway().as_secs();
    let max = cfg.jwt.max_assertion_lifetime.as_secs();
    let time = |name: &str| {
        jwt.time_claim(name)
            .map_err(|e| refused(format!("the client assertion's {e}")))
    };
    let exp = time("exp")?.ok_or_else(|| refused("the client assertion has no exp (required)"))?;
    if now > exp.saturating_add(leeway) {
        return Err(refused("the client assertion has expired"));
    }
    if exp > now.saturating_add(max).saturating_add(leeway) {
        return Err(refused(format!(
            "the client assertion's exp is more than {max} s ahead; \
             client assertions may live at most {max} s"
        )));
    }
    if let Some(nbf) = time("nbf")? {
        if nbf > now.saturating_add(leeway) {
            return Err(refused(format!(
                "the client assertion is not valid yet: its nbf is more than {leeway} s ahead"
            )));
        }
    }
    if let Some(iat) = time("iat")? {
        if iat > now.saturating_add(leeway) {
            return Err(refused(format!(
                "the client assertion's iat is more than {leeway} s in the future"
            )));
        }
        if exp > iat.saturating_add(max).saturating_add(leeway) {
            return Err(refused(format!(
                "the client assertion's exp is more than {max} s after its iat; \
                 client assertions may live at most {max} s"
            )));
        }
    }
    let jti = jwt
        .str_claim("jti")
        .filter(|j| !j.is_empty())
        .ok_or_else(|| {
            refused("the client assertion has no jti (required: each assertion is used once)")
        })?;
    Ok((exp, jti))
}

/// PAR-6, AUTH-12: the issuer, the token endpoint or the PAR endpoint, as
/// a string or in an array; FAPI-8: only the issuer, as a string.
fn check_aud<C, St>(
    cfg: &Config<C, St>,
    aud: Option<&Value>,
    issuer: &str,
) -> Result<(), OAuthError> {
    if cfg.is_fapi() {
        return match aud {
            Some(Value::String(s)) if s == issuer => Ok(()),
            _ => Err(refused(format!(
                "the client assertion's aud must be the issuer identifier {issuer}, \
                 as a single string"
            ))),
        };
    }
    // The token endpoint URL only when configured: a URL guessed from the
    // issuer's origin could be another tenant's on the same host.
    let accepted = [
        Some(issuer.to_owned()),
        cfg.token_endpoint_url.clone(),
        cfg.advertised_par_endpoint(),
    ];
    let names_us = |s: &str| accepted.iter().flatten().any(|a| a == s);
    let ok = match aud {
        Some(Value::String(s)) => names_us(s),
        // RFC 7519 §4.1.3: an array of strings, one of which names us.
        Some(Value::Array(items)) => {
            items.iter().all(Value::is_string)
                && items.iter().filter_map(Value::as_str).any(names_us)
        }
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let mut expected = format!("the issuer {issuer}");
    if let Some(token) = &accepted[1] {
        expected.push_str(&format!(", the token endpoint {token}"));
    }
    if let Some(par) = &accepted[2] {
        expected.push_str(&format!(", the PAR endpoint {par}"));
    }
    Err(refused(format!(
        "the client assertion's aud must be, or be an array containing, one of: {expected}"
    )))
}

/// AUTH-13: each `jti` once per client until the assertion expires,
/// through the layer's store, so that instances sharing it (Redis) refuse
/// each other's replays.
async fn mark_used<C, St: ParStore>(
    cfg: &Config<C, St>,
    client_id: &str,
    jti: &str,
    exp: u64,
    now: u64,
) -> Result<(), OAuthError> {
    let leeway = cfg.jwt_leeway().as_secs();
    // One second more: acceptance compares whole seconds, so an assertion
    // is accepted until just before `exp + leeway + 1`.
    let ttl = Duration::from_secs(
        exp.saturating_add(leeway)
            .saturating_add(1)
            .saturating_sub(now)
            .max(1),
    );
    match cfg.store.mark_once(&replay_key(client_id, jti), ttl).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(refused(
            "the client assertion was already used: its jti must be new for every request",
        )),
        Err(StoreError::Full { retry_after }) | Err(StoreError::ClientLimit { retry_after }) => {
            Err(OAuthError::temporarily_unavailable(
                "too many recent client assertions, retry later",
                retry_after,
            ))
        }
        Err(_) => Err(OAuthError::temporarily_unavailable(
            "the client assertion replay cache is unavailable",
            5,
        )),
    }
}

/// A fixed prefix and the SHA-256 of the length-prefixed client id and the
/// `jti`: bounded length, and no two (client, jti) pairs share a key.
fn replay_key(client_id: &str, jti: &str) -> String {
    let mut h = Sha256::new();
    h.update((client_id.len() as u64).to_be_bytes());
    h.update(client_id.as_bytes());
    h.update(jti.as_bytes());
    let mut key = String::with_capacity(REPLAY_PREFIX.len() + 43);
    key.push_str(REPLAY_PREFIX);
    URL_SAFE_NO_PAD.encode_string(h.finalize(), &mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_keys_are_bounded_and_distinct() {
        let a = replay_key("ab", "c");
        let b = replay_key("a", "bc");
        assert_ne!(a, b);
        assert_eq!(a.len(), REPLAY_PREFIX.len() + 43);
        assert_eq!(replay_key("a", &"x".repeat(10_000)).len(), a.len());
    }

    #[test]
    fn auth17_other_token_types_are_refused() {
        assert!(check_typ(None).is_ok());
        assert!(check_typ(Some("JWT")).is_ok());
        assert!(check_typ(Some("client-authentication+jwt")).is_ok());
        for typ in [
            "oauth-authz-req+jwt",
            "application/oauth-authz-req+jwt",
            "Application/OAuth-Authz-Req+JWT",
            "dpop+jwt",
        ] {
            assert!(check_typ(Some(typ)).is_err(), "{typ}");
        }
    }
}
