//! Signed request objects (RFC 9101, JAR) pushed to the PAR endpoint
//! (RFC 9126 §3).
//!
//! A `request` parameter is verified with the authenticated client's
//! registered keys and algorithm, its claims are checked, and its claims
//! alone become the pushed request (JAR-6): form parameters outside it are
//! ignored, except `client_id`, which must agree. The claims are turned
//! back into a form so that they go through exactly the pipeline of a plain
//! push (parameter names, built-in validation, the user's validator,
//! storage).
//!
//! Encrypted request objects (JWE, RFC 9101 §6.1) are refused with
//! `invalid_request_object`: the JOSE crate the layer uses does not
//! decrypt them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::client::Client;
use crate::config::Config;
use crate::error::OAuthError;
use crate::jose;
use crate::params::{append_pair, Params};

/// Registered JWT claims that are not authorization request parameters:
/// checked, then left out of the stored request.
const JWT_CLAIMS: &[&str] = &["iss", "aud", "exp", "nbf", "iat", "jti"];

/// A verified request object, as the form of the request it carries.
#[derive(Debug)]
pub(crate) struct RequestObject {
    /// The object's claims as `application/x-www-form-urlencoded`.
    pub(crate) form: String,
    /// Its `exp`, in seconds since the epoch.
    pub(crate) exp: Option<u64>,
}

fn invalid(description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::invalid_request_object(description)
}

/// Verifies the pushed `request` of `client` (RFC 9101 §6, RFC 9126 §3)
/// and returns the request it carries. `outer` is the push's own form.
pub(crate) async fn verify<C, St>(
    cfg: &Config<C, St>,
    client: &Client,
    outer: &Params<'_>,
    token: &str,
) -> Result<RequestObject, OAuthError> {
    // JAR-3, JAR-8: an unsigned object is no request object.
    if jose::is_unsecured(token) {
        return Err(invalid(
            "request objects must be signed; alg none is refused",
        ));
    }
    let allowed = allowed_algs(cfg, client)?;
    // JAR-4 (JWE refused, with its own message), JAR-5 (signature, kid,
    // the client's keys, inline or at its jwks_uri, and algorithm).
    let jwt = cfg
        .client_keys
        .verify_with_client_keys(client, token, &allowed)
        .await
        .map_err(|e| invalid(format!("the request object was refused: {e}")))?;
    let claims = &jwt.claims;
    // AUTH-17, JAR-10: a JWT typed for another purpose (a client assertion,
    // a DPoP proof, an access token) is not a request object, whoever
    // signed it. Untyped and `JWT`/`oauth-authz-req+jwt` objects pass.
    if let Some(typ) = jwt.header.typ.as_deref() {
        let t = typ.to_ascii_lowercase();
        let t = t.strip_prefix("application/").unwrap_or(&t);
        if !matches!(t, "jwt" | "oauth-authz-req+jwt") {
            return Err(invalid(
                "the request object's typ must be oauth-authz-req+jwt, JWT, or absent",
            ));
        }
    }

    // PAR-26 step 3, JAR-6, JAR-9: one client everywhere.
    let claim_id = jwt.str_claim("client_id").ok_or_else(|| {
        invalid("the request object must have a client_id claim naming the client")
    })?;
    if claim_id != client.client_id {
        return Err(invalid(
            "the request object's client_id must be the authenticated client",
        ));
    }
    if outer.get("client_id").is_some_and(|id| id != claim_id) {
        return Err(invalid(
            "the client_id parameter must equal the request object's client_id claim",
        ));
    }
    // PAR-26: the issuer, when present, is the client.
    if let Some(iss) = claims.get("iss") {
        if iss.as_str() != Some(claim_id) {
            return Err(invalid(
                "the request object's iss must be the client_id of the client",
            ));
        }
    }
    check_audience(cfg, claims.get("aud"))?;
    let exp = check_times(cfg, &jwt, unix_now())?;
    // JAR-1, JAR-9: no reference to another object inside the object.
    for nested in ["request", "request_uri"] {
        if claims.contains_key(nested) {
            return Err(invalid(format!(
                "a request object must not contain a {nested} claim"
            )));
        }
    }
    Ok(RequestObject {
        form: claims_form(claims),
        exp,
    })
}

/// The algorithms a request object of `client` may use (JAR-5, JAR-8):
/// its registered `request_object_signing_alg` when it has one, which must
/// itself be one the profile allows; otherwise the profile's asymmetric
/// algorithms. HMAC and `none` never.
fn allowed_algs<C, St>(cfg: &Config<C, St>, client: &Client) -> Result<Vec<jose::Alg>, OAuthError> {
    let profile = cfg.asymmetric_algs();
    match client.request_object_signing_alg.as_deref() {
        None => Ok(profile.to_vec()),
        Some(name) => match jose::parse_alg(name) {
            Some(alg) if profile.contains(&alg) => Ok(vec![alg]),
            _ => Err(invalid(format!(
                "the client's registered request_object_signing_alg is not one this \
                 server accepts; expected one of {}",
                jose::alg_list(profile)
            ))),
        },
    }
}

/// `aud` must be, or contain, the issuer (RFC 9101 §4, JAR-2).
fn check_audience<C, St>(cfg: &Config<C, St>, aud: Option<&Value>) -> Result<(), OAuthError> {
    let issuer = cfg.issuer.as_deref().ok_or_else(|| {
        invalid(
            "request objects cannot be accepted: the server has no issuer configured \
             to check their aud against",
        )
    })?;
    let ok = match aud {
        Some(Value::String(a)) => a == issuer,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(issuer)),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "the request object's aud must be the issuer {issuer}"
        )))
    }
}

/// `exp`, `nbf` and `iat` with the leeway (JAR-11); under FAPI 2.0
/// (Message Signing) `exp` and `nbf` are required and at most
/// `request_object_max_lifetime` apart. Returns `exp`.
fn check_times<C, St>(
    cfg: &Config<C, St>,
    jwt: &jose::Jwt,
    now: u64,
) -> Result<Option<u64>, OAuthError> {
    let time = |name| {
        jwt.time_claim(name)
            .map_err(|e| invalid(format!("the request object's {e}")))
    };
    let exp = time("exp")?;
    let nbf = time("nbf")?;
    let iat = time("iat")?;
    let leeway = cfg.jwt_leeway().as_secs();
    if let Some(exp) = exp {
        if now > exp.saturating_add(leeway) {
            return Err(invalid(
                "the request object has expired; expected an exp in the future",
            ));
        }
    }
    for (name, value) in [("nbf", nbf), ("iat", iat)] {
        if value.is_some_and(|t| t > now.saturating_add(leeway)) {
            return Err(invalid(format!(
                "the request object's {name} is in the future; at most {leeway} s of \
                 clock skew is accepted"
            )));
        }
    }
    if cfg.is_fapi() {
        let (Some(exp), Some(nbf)) = (exp, nbf) else {
            return Err(invalid(
                "the request object must have exp and nbf claims (FAPI 2.0 Message Signing)",
            ));
        };
        let max = cfg.jwt.request_object_max_lifetime.as_secs();
        if exp < nbf || exp - nbf > max {
            return Err(invalid(format!(
                "the request object's exp must be at most {max} s after its nbf \
                 (FAPI 2.0 Message Signing)"
            )));
        }
    }
    Ok(exp)
}

/// The claims as a form (JAR-1): strings as they are, numbers as their
/// decimal text, booleans as `true`/`false`, objects and arrays as their
/// JSON text (`claims`, `authorization_details`), except a `resource` array
/// of strings, which becomes repeated `resource` parameters (RFC 8707).
/// `null` claims and the registered JWT claims are left out.
fn claims_form(claims: &serde_json::Map<String, Value>) -> String {
    let mut form = String::new();
    for (name, value) in claims {
        if JWT_CLAIMS.contains(&name.as_str()) {
            continue;
        }
        match value {
            Value::Null => {}
            Value::String(s) => append_pair(&mut form, name, s),
            Value::Bool(b) => append_pair(&mut form, name, if *b { "true" } else { "false" }),
            Value::Number(n) => append_pair(&mut form, name, &n.to_string()),
            Value::Array(items) if name == "resource" && items.iter().all(Value::is_string) => {
                for item in items.iter().filter_map(Value::as_str) {
                    append_pair(&mut form, name, item);
                }
            }
            Value::Array(_) | Value::Object(_) => {
                append_pair(&mut form, name, &value.to_string());
            }
        }
    }
    form
}

/// How long the pushed request may live when its object expires at `exp`
/// (seconds since the epoch): at most `lifetime`, at least one second.
pub(crate) fn shortened_lifetime(lifetime: Duration, exp: Option<u64>) -> Duration {
    match exp {
        None => lifetime,
        Some(exp) => {
            let left = Duration::from_secs(exp.saturating_sub(unix_now()));
            lifetime.min(left.max(Duration::from_secs(1)))
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jar1_claims_become_a_form_of_text_values() {
        let claims = json!({
            "iss": "c", "aud": "https://as.example", "exp": 1, "nbf": 0, "iat": 0, "jti": "j",
            "client_id": "c", "scope": "openid profile", "max_age": 300, "x_flag": true,
            "claims": {"id_token": {"acr": {"essential": true}}},
            "authorization_details": [{"type": "payment"}],
            "resource": ["https://a.example", "https://b.example"],
            "gone": null, "ratio": 1.5,
        });
        let form = claims_form(claims.as_object().unwrap());
        let p = Params::parse(form.as_bytes()).unwrap();
        let names: Vec<_> = p.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "client_id",
                "scope",
                "max_age",
                "x_flag",
                "claims",
                "authorization_details",
                "resource",
                "resource",
                "ratio"
            ]
        );
        assert_eq!(p.get("scope"), Some("openid profile"));
        assert_eq!(p.get("max_age"), Some("300"));
        assert_eq!(p.get("x_flag"), Some("true"));
        assert_eq!(
            p.get("claims"),
            Some(r#"{"id_token":{"acr":{"essential":true}}}"#)
        );
        assert_eq!(
            p.get("authorization_details"),
            Some(r#"[{"type":"payment"}]"#)
        );
        assert_eq!(p.get_all("resource").count(), 2);
        assert_eq!(p.get("ratio"), Some("1.5"));
    }

    #[test]
    fn exp_shortens_the_lifetime_but_not_below_one_second() {
        let minute = Duration::from_secs(60);
        assert_eq!(shortened_lifetime(minute, None), minute);
        let soon = unix_now() + 20;
        let l = shortened_lifetime(minute, Some(soon));
        assert!(l <= Duration::from_secs(20) && l >= Duration::from_secs(19));
        assert_eq!(shortened_lifetime(minute, Some(unix_now() + 3600)), minute);
        assert_eq!(
            shortened_lifetime(minute, Some(unix_now() - 5)),
            Duration::from_secs(1)
        );
    }
}
