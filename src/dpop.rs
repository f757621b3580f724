//! DPoP proofs (RFC 9449) at the PAR endpoint, and for a token endpoint
//! that uses the same rules, replay cache and nonces.
//!
//! A proof is checked in full (RFC 9449 §4.3, DPOP-4): one `DPoP` header
//! holding one compact JWS, `typ: dpop+jwt`, an asymmetric algorithm the
//! profile allows, a public `jwk` in the header that verifies the
//! signature, the claims `jti`, `htm`, `htu` and `iat`, `htm` equal to the
//! request method, `htu` equal to the endpoint URL taken from the layer's
//! configuration (never from `Host`) after RFC 3986 normalisation, `iat`
//! within the accepted window, a single-use `jti` (through
//! [`ParStore::mark_once`], so replays are refused across instances that
//! share a store) and, when the layer requires them, a fresh server nonce.
//!
//! Nonces (RFC 9449 §8, DPOP-7) are stateless: the base64url of a time
//! step (big-endian `u64`) followed by a truncated HMAC-SHA256, keyed with
//! the layer's nonce secret, of a domain-separation label and that step.
//! A nonce is good during its step and the next one; every instance given
//! the same secret issues and accepts the same nonces.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::request::Parts;
use http::{Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::OAuthError;
use crate::jose;
use crate::store::{ParStore, StoreError};

/// The request header that carries a proof (RFC 9449 §4.1).
pub(crate) const DPOP_HEADER: &str = "dpop";

/// The response header that carries a server nonce (RFC 9449 §8).
pub(crate) const DPOP_NONCE_HEADER: &str = "dpop-nonce";

/// The JOSE `typ` of a proof (RFC 9449 §4.2).
const PROOF_TYP: &str = "dpop+jwt";

/// Separates nonce MACs from every other use of the secret.
const NONCE_LABEL: &[u8] = b"tower-par DPoP nonce v1\0";

/// Bytes of the MAC kept in a nonce: 128 bits, unguessable.
const NONCE_TAG_LEN: usize = 16;

/// Prefix of the replay-cache keys of proofs.
const REPLAY_PREFIX: &str = "dpop-jti:";

fn invalid(description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::invalid_dpop_proof(description)
}

/// The proof of a push, if it carries one (RFC 9449 §10.1, DPOP-2): checked
/// against the PAR endpoint URL from configuration, not yet recorded.
/// [`Proof::record`] spends its `jti` once the push has passed validation,
/// so that refused pushes do not fill the replay cache.
pub(crate) fn check_push_proof<C, St>(
    cfg: &Config<C, St>,
    parts: &Parts,
) -> Result<Option<Proof>, OAuthError> {
    if !parts.headers.contains_key(DPOP_HEADER) {
        return Ok(None);
    }
    // DPOP-4 item 9: the URL the client sees, never one built from `Host`.
    let htu = cfg.advertised_par_endpoint().ok_or_else(|| {
        invalid(
            "DPoP proofs cannot be checked here: the server is configured with \
             neither an issuer nor a par_endpoint_url, so it does not know the URL \
             a proof's htu must name",
        )
    })?;
    check_request_proof(cfg, parts, &Method::POST, &htu)
}

/// A proof that passed every check but the replay one.
#[derive(Debug)]
pub(crate) struct Proof {
    /// The proof key's RFC 7638 thumbprint.
    pub(crate) jkt: String,
    replay_key: String,
    ttl: std::time::Duration,
}

impl Proof {
    /// DPOP-9: records the proof's `jti`, refusing a replay.
    pub(crate) async fn record<St: ParStore>(self, store: &St) -> Result<String, OAuthError> {
        match store.mark_once(&self.replay_key, self.ttl).await {
            Ok(true) => Ok(self.jkt),
            Ok(false) => Err(invalid(
                "the DPoP proof was already used; expected a fresh proof with a new jti",
            )),
            Err(StoreError::Full { retry_after }) => Err(OAuthError::temporarily_unavailable(
                "too many recent DPoP proofs, retry later",
                retry_after,
            )),
            Err(_) => Err(OAuthError::temporarily_unavailable(
                "DPoP proofs cannot be checked for replay right now, retry later",
                5,
            )),
        }
    }
}

/// Every check of a request's DPoP proof but the replay one.
pub(crate) fn check_request_proof<C, St>(
    cfg: &Config<C, St>,
    parts: &Parts,
    htm: &Method,
    htu: &str,
) -> Result<Option<Proof>, OAuthError> {
    let mut values = parts.headers.get_all(DPOP_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    // DPOP-4 item 1.
    if values.next().is_some() {
        return Err(invalid("expected exactly one DPoP header"));
    }
    let token = value
        .to_str()
        .map_err(|_| invalid("the DPoP header must be a compact JWS in ASCII"))?;
    let expected_htu = normalize_url(htu)
        .ok_or_else(|| OAuthError::server_error("the endpoint URL for DPoP is not a URL"))?;
    let now = unix_now();
    let checked = check_proof(cfg, token, htm, &expected_htu, now)?;
    // DPOP-9: a jti is used once while its proof could be accepted: up to
    // `leeway` ahead, then `max_age + leeway` after its `iat`; one second
    // more, as acceptance compares whole seconds.
    let leeway = cfg.jwt_leeway();
    let ttl = cfg.jwt.dpop_max_age + leeway + leeway + std::time::Duration::from_secs(1);
    Ok(Some(Proof {
        jkt: checked.jkt,
        replay_key: replay_key(&expected_htu, &checked.jti),
        ttl,
    }))
}

/// What a good proof yields.
struct Checked {
    jti: String,
    jkt: String,
}

/// Every check of DPOP-4 but the replay one, at `now` (seconds).
fn check_proof<C, St>(
    cfg: &Config<C, St>,
    token: &str,
    htm: &Method,
    expected_htu: &str,
    now: u64,
) -> Result<Checked, OAuthError> {
    // DPOP-4 items 2, 5, 6, 7; DPOP-5: one JWS, an asymmetric algorithm of
    // the profile, verified with the public `jwk` of its header.
    let (jwt, jkt) = jose::verify_with_embedded_jwk(token, cfg.asymmetric_algs())
        .map_err(|e| invalid(format!("the DPoP proof was refused: {e}")))?;
    // DPOP-4 item 4 (media types compare case-insensitively, RFC 7515 §4.1.9).
    if !jwt
        .header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYP))
    {
        return Err(invalid("the DPoP proof's typ must be dpop+jwt"));
    }
    // DPOP-4 item 3.
    let jti = jwt
        .str_claim("jti")
        .filter(|j| !j.is_empty())
        .ok_or_else(|| invalid("the DPoP proof must have a jti claim (a string)"))?;
    let proof_htm = jwt
        .str_claim("htm")
        .ok_or_else(|| invalid("the DPoP proof must have an htm claim (a string)"))?;
    let proof_htu = jwt
        .str_claim("htu")
        .ok_or_else(|| invalid("the DPoP proof must have an htu claim (a string)"))?;
    let iat = jwt
        .time_claim("iat")
        .map_err(|e| invalid(format!("the DPoP proof's {e}")))?
        .ok_or_else(|| invalid("the DPoP proof must have an iat claim"))?;
    // DPOP-4 item 8.
    if proof_htm != htm.as_str() {
        return Err(invalid(format!(
            "the DPoP proof's htm must be {}",
            htm.as_str()
        )));
    }
    // DPOP-4 item 9: both sides normalised, without query and fragment.
    if normalize_url(proof_htu).as_deref() != Some(expected_htu) {
        return Err(invalid(format!(
            "the DPoP proof's htu must be {expected_htu}"
        )));
    }
    // DPOP-4 item 11, DPOP-9 (FAPI-13 through the leeway).
    let leeway = cfg.jwt_leeway().as_secs();
    let max_age = cfg.jwt.dpop_max_age.as_secs();
    if iat > now.saturating_add(leeway) {
        return Err(invalid(format!(
            "the DPoP proof's iat is in the future; at most {leeway} s of clock skew is accepted"
        )));
    }
    if now > iat.saturating_add(max_age).saturating_add(leeway) {
        return Err(invalid(format!(
            "the DPoP proof is too old; expected an iat within the last {max_age} s"
        )));
    }
    // DPOP-4 item 10, DPOP-7, DPOP-8: once nonces are on, every proof
    // needs a recent one.
    if let Some(secret) = &cfg.jwt.dpop_nonce_secret {
        let step = cfg.jwt.dpop_nonce_step.as_secs().max(1);
        let fresh = jwt
            .str_claim("nonce")
            .is_some_and(|n| nonce_is_fresh(secret, step, n, now));
        if !fresh {
            let description = if jwt.claims.contains_key("nonce") {
                "the DPoP proof's nonce is not a recent nonce of this server; \
                 retry with the nonce in the DPoP-Nonce header"
            } else {
                "this server requires a nonce in DPoP proofs; \
                 retry with the nonce in the DPoP-Nonce header"
            };
            return Err(use_nonce(description, issue_nonce(secret, step, now)));
        }
    }
    Ok(Checked {
        jti: jti.to_owned(),
        jkt,
    })
}

/// Asks for a nonce before anything else is done with the request
/// (DPOP-7): a proof without a recent nonce is going to be refused, so it
/// is refused before client authentication records the client
/// assertion's `jti`, and the client's retry may carry the same assertion
/// with a new proof. Only the nonce is read here, unverified: answering
/// `use_dpop_nonce` reveals nothing, and every other check follows on the
/// retry.
pub(crate) fn precheck_nonce<C, St>(cfg: &Config<C, St>, parts: &Parts) -> Result<(), OAuthError> {
    let Some(secret) = &cfg.jwt.dpop_nonce_secret else {
        return Ok(());
    };
    let mut values = parts.headers.get_all(DPOP_HEADER).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Ok(());
    };
    let Some(proof) = value.to_str().ok().and_then(|t| jose::peek(t).ok()) else {
        return Ok(());
    };
    let now = unix_now();
    let step = cfg.jwt.dpop_nonce_step.as_secs().max(1);
    match proof.str_claim("nonce") {
        Some(n) if nonce_is_fresh(secret, step, n, now) => Ok(()),
        Some(_) => Err(use_nonce(
            "the DPoP proof's nonce is not a recent nonce of this server; \
             retry with the nonce in the DPoP-Nonce header",
            issue_nonce(secret, step, now),
        )),
        None => Err(use_nonce(
            "this server requires a nonce in DPoP proofs; \
             retry with the nonce in the DPoP-Nonce header",
            issue_nonce(secret, step, now),
        )),
    }
}

/// `400 use_dpop_nonce` with the nonce to retry with (DPOP-7: exactly one
/// `DPoP-Nonce` header).
fn use_nonce(description: &'static str, nonce: String) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "use_dpop_nonce", description).with_dpop_nonce(nonce)
}

/// The replay-cache key of a proof: bounded whatever the `jti` holds, and
/// per target URI (RFC 9449 §11.1).
fn replay_key(htu: &str, jti: &str) -> String {
    let mut h = Sha256::new();
    h.update(htu.as_bytes());
    h.update([0]);
    h.update(jti.as_bytes());
    let mut key = String::with_capacity(REPLAY_PREFIX.len() + 43);
    key.push_str(REPLAY_PREFIX);
    URL_SAFE_NO_PAD.encode_string(h.finalize(), &mut key);
    key
}

/// The nonce to hand out now, when the layer requires nonces.
pub(crate) fn current_nonce<C, St>(cfg: &Config<C, St>) -> Option<String> {
    let secret = cfg.jwt.dpop_nonce_secret.as_ref()?;
    let step = cfg.jwt.dpop_nonce_step.as_secs().max(1);
    Some(issue_nonce(secret, step, unix_now()))
}

/// The nonce of the time step `now` falls in.
pub(crate) fn issue_nonce(secret: &[u8], step_secs: u64, now: u64) -> String {
    let step = now / step_secs;
    let mut raw = [0u8; 8 + NONCE_TAG_LEN];
    raw[..8].copy_from_slice(&step.to_be_bytes());
    raw[8..].copy_from_slice(&nonce_mac(secret, step).finalize().into_bytes()[..NONCE_TAG_LEN]);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Whether `nonce` was issued with `secret` for the current or the
/// previous time step; the MAC is compared in constant time.
pub(crate) fn nonce_is_fresh(secret: &[u8], step_secs: u64, nonce: &str, now: u64) -> bool {
    // 24 bytes are 32 base64url characters; anything else is not ours.
    if nonce.len() != 32 {
        return false;
    }
    let mut raw = [0u8; 8 + NONCE_TAG_LEN];
    if URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) != Ok(raw.len()) {
        return false;
    }
    let mut step_bytes = [0u8; 8];
    step_bytes.copy_from_slice(&raw[..8]);
    let step = u64::from_be_bytes(step_bytes);
    let current = now / step_secs;
    if step != current && step.checked_add(1) != Some(current) {
        return false;
    }
    nonce_mac(secret, step)
        .verify_truncated_left(&raw[8..])
        .is_ok()
}

fn nonce_mac(secret: &[u8], step: u64) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(NONCE_LABEL);
    mac.update(&step.to_be_bytes());
    mac
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// RFC 3986 §6.2.2 (syntax-based) and §6.2.3 (scheme-based) normalisation
/// of an absolute `http(s)` URL, without its query and fragment (RFC 9449
/// §4.3): scheme and host in lower case, the default port dropped, an
/// empty path as `/`, percent-encodings in upper case and decoded where
/// they stand for unreserved characters, dot segments removed. `None` for
/// anything else.
pub(crate) fn normalize_url(url: &str) -> Option<String> {
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return None;
    }
    let url = url.split(['#', '?']).next().unwrap_or_default();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    // Userinfo has no place in an endpoint URL.
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        authority.split_at(end + 1)
    } else {
        match authority.rfind(':') {
            Some(i) => authority.split_at(i),
            None => (authority, ""),
        }
    };
    let host = normalize_percent(host)?.to_ascii_lowercase();
    // RFC 3986 §3.2.2: a reg-name or IPv4 address holds no ':' (an IPv6
    // literal is bracketed) and no other gen-delim.
    let bracketed = host.starts_with('[') && host.ends_with(']');
    let inner = if bracketed {
        &host[1..host.len() - 1]
    } else {
        &host[..]
    };
    if inner.is_empty()
        || inner.contains(['[', ']', '@', '\\'])
        || (!bracketed && inner.contains(':'))
    {
        return None;
    }
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return None,
        Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            let p: u16 = p.parse().ok()?;
            (p != default_port).then_some(p)
        }
        Some(_) => return None,
    };
    let path = remove_dot_segments(&normalize_percent(if path.is_empty() {
        "/"
    } else {
        path
    })?);
    let mut out = String::with_capacity(scheme.len() + 3 + host.len() + 6 + path.len());
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&host);
    if let Some(p) = port {
        out.push(':');
        out.push_str(&p.to_string());
    }
    out.push_str(&path);
    Some(out)
}

/// RFC 3986 §6.2.2.1–6.2.2.2: `%xx` in upper case, and decoded when it
/// encodes an unreserved character. `None` for a malformed escape.
fn normalize_percent(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(b as char);
            i += 1;
            continue;
        }
        let hi = (*bytes.get(i + 1)? as char).to_digit(16)?;
        let lo = (*bytes.get(i + 2)? as char).to_digit(16)?;
        let decoded = (hi * 16 + lo) as u8;
        if decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'.' | b'_' | b'~') {
            out.push(decoded as char);
        } else {
            out.push('%');
            out.push_str(&format!("{decoded:02X}"));
        }
        i += 3;
    }
    Some(out)
}

/// RFC 3986 §5.2.4 for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut ends_in_dir = false;
    for seg in path.split('/').skip(1) {
        ends_in_dir = false;
        match seg {
            "." => ends_in_dir = true,
            ".." => {
                out.pop();
                ends_in_dir = true;
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if ends_in_dir || s.is_empty() {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpop4_htu_normalisation() {
        let n = |u| normalize_url(u);
        let canonical = Some("https://as.example/par".to_owned());
        for same in [
            "https://as.example/par",
            "HTTPS://AS.example:443/par",
            "https://as.example:/par",
            "https://as.example/par?x=1",
            "https://as.example/par#frag",
            "https://as.example/%70ar",
            "https://as.example/a/../par",
            "https://as.example/./par",
        ] {
            assert_eq!(n(same), canonical, "{same}");
        }
        assert_eq!(n("https://as.example"), Some("https://as.example/".into()));
        assert_eq!(
            n("http://as.example:80/"),
            Some("http://as.example/".into())
        );
        assert_eq!(
            n("https://as.example:8443/p%2fq"),
            Some("https://as.example:8443/p%2Fq".into())
        );
        assert_eq!(n("https://[::1]:443/par"), Some("https://[::1]/par".into()));
        for other in [
            "https://as.example/Par",
            "https://other.example/par",
            "https://as.example:8443/par",
            "http://as.example/par",
        ] {
            assert_ne!(n(other), canonical, "{other}");
        }
        for bad in [
            "as.example/par",
            "ftp://as.example/par",
            "https://user@as.example/par",
            "https:///par",
            "https://as.example:x/par",
            "https://as.example/%zz",
            "https://as.example/p ar",
        ] {
            assert_eq!(n(bad), None, "{bad}");
        }
    }

    #[test]
    fn dpop7_nonces_last_two_steps_and_need_the_secret() {
        let secret = [7u8; 32];
        let nonce = issue_nonce(&secret, 60, 6_000);
        assert_eq!(nonce.len(), 32);
        assert!(nonce_is_fresh(&secret, 60, &nonce, 6_000));
        assert!(nonce_is_fresh(&secret, 60, &nonce, 6_059));
        // The next step still accepts it, the one after does not.
        assert!(nonce_is_fresh(&secret, 60, &nonce, 6_119));
        assert!(!nonce_is_fresh(&secret, 60, &nonce, 6_120));
        // Not before it was issued either.
        assert!(!nonce_is_fresh(&secret, 60, &nonce, 5_999));
        // Another secret, a tampered step, garbage.
        assert!(!nonce_is_fresh(&[8u8; 32], 60, &nonce, 6_000));
        let mut raw = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        raw[7] ^= 1;
        assert!(!nonce_is_fresh(
            &secret,
            60,
            &URL_SAFE_NO_PAD.encode(&raw),
            6_060
        ));
        assert!(!nonce_is_fresh(&secret, 60, "not-a-nonce", 6_000));
        assert!(!nonce_is_fresh(&secret, 60, &"A".repeat(32), 6_000));
        // Same secret, same nonce: instances agree.
        assert_eq!(nonce, issue_nonce(&secret, 60, 6_030));
    }

    #[test]
    fn replay_keys_are_bounded_and_per_target() {
        let long = "j".repeat(10_000);
        let k = replay_key("https://as.example/par", &long);
        assert_eq!(k.len(), REPLAY_PREFIX.len() + 43);
        assert_ne!(k, replay_key("https://as.example/token", &long));
    }
}
