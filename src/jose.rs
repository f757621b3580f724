//! The one place that talks to the JOSE crate (`jsonwebtoken`, RustCrypto
//! backend): algorithm names, JWK import, signature verification and
//! RFC 7638 thumbprints. Everything above this module sees verified headers
//! and claims as JSON, and checks claims itself, so that every refusal can
//! say exactly what was expected.
//!
//! Rules kept here, for every caller:
//! - `alg: none` cannot even be parsed (the crate has no such algorithm);
//! - the algorithm must be in the caller's allow-list, and must fit the key:
//!   an RSA key only verifies `RS*`/`PS*`, P-256 only `ES256`, P-384 only
//!   `ES384`, Ed25519 only `EdDSA`; an HMAC algorithm is only ever checked
//!   with a client secret, never with a public key (RFC 8725 §3.1,
//!   algorithm confusion);
//! - a JWK's own `alg` and `use` are honoured;
//! - RSA keys shorter than 2048 bits are refused (FAPI-25);
//! - `crit` is refused by the crate unless it is the `b64` extension, which
//!   this module refuses too;
//! - `jku`, `x5u` and `x5c` are never followed.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{DecodingKey, Header, Validation};
use serde_json::{Map, Value};

pub(crate) use jsonwebtoken::Algorithm as Alg;

/// Every asymmetric algorithm the layer can verify.
pub(crate) const ASYMMETRIC: &[Alg] = &[
    Alg::PS256,
    Alg::PS384,
    Alg::PS512,
    Alg::RS256,
    Alg::RS384,
    Alg::RS512,
    Alg::ES256,
    Alg::ES384,
    Alg::EdDSA,
];

/// The HMAC algorithms (`client_secret_jwt` only).
pub(crate) const HMAC: &[Alg] = &[Alg::HS256, Alg::HS384, Alg::HS512];

/// FAPI 2.0 §5.4.1 (FAPI-25): PS256, ES256 and EdDSA only.
pub(crate) const FAPI: &[Alg] = &[Alg::PS256, Alg::ES256, Alg::EdDSA];

/// The shortest RSA modulus accepted (FAPI-25, RFC 7518 §3.3).
const MIN_RSA_BITS: usize = 2048;
/// The longest: bounds the cost of one verification.
const MAX_RSA_BITS: usize = 4096;
/// The most keys a client's JWK Set may hold.
pub(crate) const MAX_KEYS: usize = 32;
/// The most keys one signature is tried against when the header has no
/// `kid` (each try is a signature verification).
const MAX_CANDIDATES: usize = 4;

fn b64_member(name: &str, value: &str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD
        .decode(value.as_bytes())
        .map_err(|_| JoseError::new(format!("the JWK's '{name}' is not base64url")))
}

/// Parses a JWA algorithm name (`"PS256"`). `none` is never an algorithm.
pub(crate) fn parse_alg(name: &str) -> Option<Alg> {
    name.parse().ok()
}

/// The JWA name of an algorithm.
pub(crate) fn alg_name(alg: Alg) -> &'static str {
    match alg {
        Alg::HS256 => "HS256",
        Alg::HS384 => "HS384",
        Alg::HS512 => "HS512",
        Alg::ES256 => "ES256",
        Alg::ES384 => "ES384",
        Alg::RS256 => "RS256",
        Alg::RS384 => "RS384",
        Alg::RS512 => "RS512",
        Alg::PS256 => "PS256",
        Alg::PS384 => "PS384",
        Alg::PS512 => "PS512",
        Alg::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

/// Space-separated names, for error descriptions.
pub(crate) fn alg_list(algs: &[Alg]) -> String {
    algs.iter()
        .map(|a| alg_name(*a))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a JWT or a key was refused. The text is safe to show to the client:
/// it names what was expected, never what the token held beyond its
/// header's algorithm and key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoseError(pub(crate) String);

impl JoseError {
    fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for JoseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of key a JWK holds, and so which algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn fits(self, alg: Alg) -> bool {
        match self {
            Self::Rsa => matches!(
                alg,
                Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512
            ),
            Self::P256 => alg == Alg::ES256,
            Self::P384 => alg == Alg::ES384,
            Self::Ed25519 => alg == Alg::EdDSA,
        }
    }
}

/// One imported public key.
#[derive(Clone)]
pub(crate) struct PublicKey {
    kid: Option<String>,
    alg: Option<Alg>,
    kind: KeyKind,
    key: DecodingKey,
    thumbprint: String,
}

impl PublicKey {
    /// Imports a public JWK. Refuses private members, symmetric keys, keys
    /// for another use, unknown curves and short RSA keys.
    pub(crate) fn from_json(value: &Value) -> Result<Self, JoseError> {
        let obj = value
            .as_object()
            .ok_or_else(|| JoseError::new("a JWK must be a JSON object"))?;
        if let Some(member) = private_member(obj) {
            return Err(JoseError::new(format!(
                "the JWK holds the private key member '{member}'; only public keys are accepted"
            )));
        }
        let jwk: Jwk = serde_json::from_value(value.clone())
            .map_err(|_| JoseError::new("the JWK is not a valid RSA, EC or OKP public key"))?;
        Self::from_jwk(&jwk)
    }

    fn from_jwk(jwk: &Jwk) -> Result<Self, JoseError> {
        if let Some(u) = &jwk.common.public_key_use {
            if *u != PublicKeyUse::Signature {
                return Err(JoseError::new("the JWK's use is not 'sig'"));
            }
        }
        if let Some(ops) = &jwk.common.key_operations {
            if !ops.contains(&KeyOperations::Verify) {
                return Err(JoseError::new("the JWK's key_ops do not include 'verify'"));
            }
        }
        // Canonical members only (RFC 7518 §6.2.1, §6.3.1; RFC 8037 §2):
        // exact coordinate lengths and no leading zero octets, so that one
        // key has one thumbprint and the crate never sees a short key.
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => {
                let n = b64_member("n", &rsa.n)?;
                let e = b64_member("e", &rsa.e)?;
                if n.first().is_none_or(|b| *b == 0) || e.first().is_none_or(|b| *b == 0) {
                    return Err(JoseError::new(
                        "the RSA key's 'n' and 'e' must be unsigned integers without leading zero octets",
                    ));
                }
                let bits = n.len() * 8 - n[0].leading_zeros() as usize;
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                    return Err(JoseError::new(format!(
                        "RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
                    )));
                }
                // An even or tiny exponent is no RSA public key.
                let odd = e.last().is_some_and(|b| b & 1 == 1);
                if e.len() > 8 || !odd || (e.len() == 1 && e[0] < 3) {
                    return Err(JoseError::new("the RSA key's 'e' is not a valid exponent"));
                }
                KeyKind::Rsa
            }
            AlgorithmParameters::EllipticCurve(ec) => {
                let (kind, len) = match ec.curve {
                    EllipticCurve::P256 => (KeyKind::P256, 32),
                    EllipticCurve::P384 => (KeyKind::P384, 48),
                    _ => return Err(JoseError::new("EC keys must be on P-256 or P-384")),
                };
                if b64_member("x", &ec.x)?.len() != len || b64_member("y", &ec.y)?.len() != len {
                    return Err(JoseError::new(format!(
                        "the EC key's 'x' and 'y' must be {len} octets each"
                    )));
                }
                kind
            }
            AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
                EllipticCurve::Ed25519 => {
                    if b64_member("x", &okp.x)?.len() != 32 {
                        return Err(JoseError::new("the Ed25519 key's 'x' must be 32 octets"));
                    }
                    KeyKind::Ed25519
                }
                _ => return Err(JoseError::new("OKP keys must be Ed25519")),
            },
            AlgorithmParameters::OctetKey(_) => {
                return Err(JoseError::new(
                    "symmetric (oct) keys are not accepted in a JWK Set",
                ))
            }
            _ => return Err(JoseError::new("unsupported key type")),
        };
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(ka) => {
                let alg = parse_alg(&ka.to_string())
                    .ok_or_else(|| JoseError::new("the JWK's alg is not a signature algorithm"))?;
                if !kind.fits(alg) {
                    return Err(JoseError::new("the JWK's alg does not fit its key type"));
                }
                Some(alg)
            }
        };
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|_| JoseError::new("the JWK could not be imported"))?;
        let thumbprint = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| JoseError::new("the JWK has no thumbprint"))?;
        Ok(Self {
            kid: jwk.common.key_id.clone(),
            alg,
            kind,
            key,
            thumbprint,
        })
    }

    fn accepts(&self, alg: Alg) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The members of a JWK that only a private (or symmetric) key has.
fn private_member(obj: &Map<String, Value>) -> Option<&'static str> {
    ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
        .into_iter()
        .find(|m| obj.contains_key(*m))
}

/// A parsed JWK Set: a client's registered keys.
#[derive(Clone, Debug)]
pub(crate) struct KeySet {
    keys: Arc<[PublicKey]>,
}

impl KeySet {
    /// Parses `{"keys":[..]}`, each key on its own: a set with one bad key
    /// is refused as a whole, naming the key, rather than half-used.
    pub(crate) fn from_json(value: &Value) -> Result<Self, JoseError> {
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JoseError::new("a JWK Set must be an object with a 'keys' array"))?;
        if keys.len() > MAX_KEYS {
            return Err(JoseError::new(format!(
                "a JWK Set may hold at most {MAX_KEYS} keys"
            )));
        }
        let mut parsed = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            parsed.push(
                PublicKey::from_json(k).map_err(|e| JoseError::new(format!("key {i}: {e}")))?,
            );
        }
        Ok(Self {
            keys: parsed.into(),
        })
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether [`verify_with_keys`] would find a key to try for a token
    /// with this `kid` (if any) and `alg`: when not, the set may be stale
    /// (key rotation) and a fetched set is worth refetching.
    pub(crate) fn has_key_for(&self, kid: Option<&str>, alg: Alg) -> bool {
        self.keys
            .iter()
            .any(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)) && k.accepts(alg))
    }

    /// Parses a JWK Set as published at a `jwks_uri`, where a client may
    /// list keys for other purposes too (encryption keys, key types this
    /// module does not verify): those are skipped rather than refusing the
    /// set. A private key member still refuses the whole set (the
    /// publisher leaked a private key), and so does a set with more than
    /// `max_keys` keys. Returns the set and the number of keys skipped.
    pub(crate) fn from_published_json(
        value: &Value,
        max_keys: usize,
    ) -> Result<(Self, usize), JoseError> {
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JoseError::new("a JWK Set must be an object with a 'keys' array"))?;
        if keys.len() > max_keys {
            return Err(JoseError::new(format!(
                "the JWK Set has more than {max_keys} keys"
            )));
        }
        let mut parsed = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            if let Some(member) = k.as_object().and_then(private_member) {
                return Err(JoseError::new(format!(
                    "key {i} holds the private key member '{member}'; only public keys may be published"
                )));
            }
            if let Ok(key) = PublicKey::from_json(k) {
                parsed.push(key);
            }
        }
        if parsed.len() > MAX_KEYS {
            return Err(JoseError::new(format!(
                "the JWK Set has more than {MAX_KEYS} signature keys"
            )));
        }
        let skipped = keys.len() - parsed.len();
        Ok((
            Self {
                keys: parsed.into(),
            },
            skipped,
        ))
    }
}

/// A JWT's header and claims. Only ever built from a token whose signature
/// was verified, except by [`peek`].
#[derive(Debug, Clone)]
pub(crate) struct Jwt {
    /// The parsed protected header.
    pub(crate) header: Header,
    /// The claims object.
    pub(crate) claims: Map<String, Value>,
}

impl Jwt {
    /// A string claim.
    pub(crate) fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim (RFC 7519 §2), as whole seconds; fractions are
    /// truncated, negative and non-numeric values are `Err`, and so are
    /// values beyond [`MAX_TIME`], so that callers can add and subtract
    /// durations without overflow.
    pub(crate) fn time_claim(&self, name: &str) -> Result<Option<u64>, JoseError> {
        match self.claims.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| *f >= 0.0 && f.is_finite())
                        .map(|f| f as u64)
                })
                .filter(|t| *t <= MAX_TIME)
                .map(Some)
                .ok_or_else(|| JoseError::new(format!("'{name}' must be a NumericDate"))),
        }
    }
}

/// The latest NumericDate accepted (year 5138).
pub(crate) const MAX_TIME: u64 = 100_000_000_000;

/// The most a JWT may weigh: bounds every parse and signature check.
pub(crate) const MAX_JWT_LEN: usize = 16 * 1024;

/// Reads a compact JWS without verifying it: to find which client and key
/// it names before verification. Nothing read here may be trusted.
pub(crate) fn peek(token: &str) -> Result<Jwt, JoseError> {
    shape(token)?;
    let data = jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token)
        .map_err(|_| JoseError::new("not a well-formed signed JWT"))?;
    check_header(&data.header)?;
    Ok(Jwt {
        header: data.header,
        claims: data.claims,
    })
}

/// A compact JWS is three base64url parts; a JWE (five parts) is named as
/// such so that the caller can say it is not supported.
fn shape(token: &str) -> Result<(), JoseError> {
    if token.len() > MAX_JWT_LEN {
        return Err(JoseError::new(format!(
            "the JWT is longer than {MAX_JWT_LEN} bytes"
        )));
    }
    match token.bytes().filter(|b| *b == b'.').count() {
        2 => Ok(()),
        4 => Err(JoseError::new(
            "encrypted JWTs (JWE) are not supported; send a signed JWT",
        )),
        _ => Err(JoseError::new(
            "not a compact JWS (three dot-separated parts)",
        )),
    }
}

fn check_header(header: &Header) -> Result<(), JoseError> {
    if header.crit.is_some() {
        return Err(JoseError::new("the 'crit' header is not supported"));
    }
    if header.enc.is_some() {
        return Err(JoseError::new(
            "encrypted JWTs (JWE) are not supported; send a signed JWT",
        ));
    }
    Ok(())
}

fn signature_only(alg: Alg) -> Validation {
    let mut v = Validation::new(alg);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

fn allowed(alg: Alg, allowed: &[Alg]) -> Result<(), JoseError> {
    if allowed.contains(&alg) {
        Ok(())
    } else {
        Err(JoseError::new(format!(
            "alg {} is not allowed here; expected one of {}",
            alg_name(alg),
            alg_list(allowed)
        )))
    }
}

fn decode(token: &str, key: &DecodingKey, alg: Alg) -> Result<Jwt, JoseError> {
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &signature_only(alg))
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                JoseError::new("the signature does not verify")
            }
            _ => JoseError::new("not a well-formed signed JWT"),
        })?;
    check_header(&data.header)?;
    Ok(Jwt {
        header: data.header,
        claims: data.claims,
    })
}

/// Verifies `token` with one of `keys` (JAR-5, AUTH-12): the key named by
/// `kid` if the header has one, otherwise each key that fits the algorithm.
/// Only algorithms in `allowed` that are asymmetric are accepted.
pub(crate) fn verify_with_keys(
    token: &str,
    keys: &KeySet,
    allowed_algs: &[Alg],
) -> Result<Jwt, JoseError> {
    let peeked = peek(token)?;
    let alg = peeked.header.alg;
    allowed(alg, allowed_algs)?;
    if !ASYMMETRIC.contains(&alg) {
        return Err(JoseError::new(format!(
            "alg {} needs a shared secret; expected an asymmetric algorithm",
            alg_name(alg)
        )));
    }
    let kid = peeked.header.kid.as_deref();
    let candidates: Vec<&PublicKey> = keys
        .keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
        .filter(|k| k.accepts(alg))
        .take(MAX_CANDIDATES + 1)
        .collect();
    if candidates.is_empty() || candidates.len() > MAX_CANDIDATES {
        // As much work as a wrong key (AUTH-1: a random kid must not tell
        // a known client from an unknown one by its speed).
        verify_for_timing(token, alg);
        return Err(JoseError::new(match (kid, candidates.is_empty()) {
            (Some(_), true) => "no registered key has the header's kid and fits its alg",
            (None, true) => "no registered key fits the header's alg",
            _ => "several registered keys fit the header's alg: the header needs a kid",
        }));
    }
    let mut last = JoseError::new("the signature does not verify");
    for k in candidates {
        match decode(token, &k.key, alg) {
            Ok(jwt) => return Ok(jwt),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Verifies an HMAC-signed `token` with a client secret (`client_secret_jwt`,
/// OIDC Core §9). Only HMAC algorithms in `allowed` are accepted.
pub(crate) fn verify_with_secret(
    token: &str,
    secret: &[u8],
    allowed_algs: &[Alg],
) -> Result<Jwt, JoseError> {
    let peeked = peek(token)?;
    let alg = peeked.header.alg;
    allowed(alg, allowed_algs)?;
    if !HMAC.contains(&alg) {
        return Err(JoseError::new(format!(
            "alg {} is not an HMAC algorithm; expected one of {}",
            alg_name(alg),
            alg_list(HMAC)
        )));
    }
    // RFC 7518 §3.2: a key at least as long as the hash output.
    let min = match alg {
        Alg::HS384 => 48,
        Alg::HS512 => 64,
        _ => 32,
    };
    if secret.len() < min {
        return Err(JoseError::new(format!(
            "the client secret is too short for {} (at least {min} bytes)",
            alg_name(alg)
        )));
    }
    let key =
        DecodingKey::from_secret(secret).map_err(|_| JoseError::new("the secret is empty"))?;
    decode(token, &key, alg)
}

/// Verifies a token signed by the key in its own `jwk` header (DPoP,
/// RFC 9449 §4.3): checks the raw header for private key members (the
/// crate's JWK type drops them silently), then returns the claims and the
/// key's thumbprint.
pub(crate) fn verify_with_embedded_jwk(
    token: &str,
    allowed_algs: &[Alg],
) -> Result<(Jwt, String), JoseError> {
    shape(token)?;
    let header_json = raw_header(token)?;
    let jwk_json = header_json
        .get("jwk")
        .ok_or_else(|| JoseError::new("the header has no 'jwk'"))?;
    let key = PublicKey::from_json(jwk_json)?;
    let peeked = peek(token)?;
    let alg = peeked.header.alg;
    allowed(alg, allowed_algs)?;
    if !ASYMMETRIC.contains(&alg) {
        return Err(JoseError::new(format!(
            "alg {} is symmetric; expected an asymmetric algorithm",
            alg_name(alg)
        )));
    }
    if !key.accepts(alg) {
        return Err(JoseError::new("the header's jwk does not fit its alg"));
    }
    let jwt = decode(token, &key.key, alg)?;
    Ok((jwt, key.thumbprint))
}

/// The protected header as JSON, for checks the crate's typed header
/// cannot express (members it drops).
fn raw_header(token: &str) -> Result<Map<String, Value>, JoseError> {
    let b64 = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(b64.as_bytes())
        .map_err(|_| JoseError::new("the header is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| JoseError::new("the header is not a JSON object"))
}

/// Whether `token` is an unsecured JWT (`alg: none`, RFC 7519 §6), which
/// the crate cannot even parse: so that callers can name the refusal.
pub(crate) fn is_unsecured(token: &str) -> bool {
    token.len() <= MAX_JWT_LEN
        && raw_header(token).is_ok_and(|h| {
            h.get("alg")
                .and_then(Value::as_str)
                .is_some_and(|a| a.eq_ignore_ascii_case("none"))
        })
}

/// Does the work of one failed verification for `alg`, for a client that
/// does not exist, so that its failure takes as long as a wrong key's
/// (AUTH-1: timing tells nothing).
pub(crate) fn verify_for_timing(token: &str, alg: Alg) {
    if shape(token).is_err() {
        return;
    }
    let key = match alg.family() {
        jsonwebtoken::AlgorithmFamily::Hmac => DecodingKey::from_secret(&[0x5a; 32]).ok(),
        _ => dummy_key(alg),
    };
    if let Some(key) = key {
        let _ = jsonwebtoken::decode::<Value>(token, &key, &signature_only(alg));
    }
}

fn dummy_key(alg: Alg) -> Option<DecodingKey> {
    // Public keys only, generated for this purpose: verifying against them
    // costs what verifying against a client's key costs.
    let jwk = match alg.family() {
        jsonwebtoken::AlgorithmFamily::Rsa => DUMMY_RSA,
        jsonwebtoken::AlgorithmFamily::Ec if alg == Alg::ES384 => DUMMY_P384,
        jsonwebtoken::AlgorithmFamily::Ec => DUMMY_P256,
        jsonwebtoken::AlgorithmFamily::Ed => DUMMY_ED25519,
        _ => return None,
    };
    let jwk: Jwk = serde_json::from_str(jwk).ok()?;
    DecodingKey::from_jwk(&jwk).ok()
}

const DUMMY_RSA: &str = r#"{"kty":"RSA","e":"AQAB","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"}"#;
const DUMMY_P256: &str = r#"{"kty":"EC","crv":"P-256","x":"0GFB9Y3EfEDr_wakY4zCoBoimudor-G60Jz8ADbcqCk","y":"4GjDBh8yhogv9cfA6JvrGi0j-wIo48Aew4lLAPHgeWo"}"#;
const DUMMY_P384: &str = r#"{"kty":"EC","crv":"P-384","x":"Nh3MKuI9ycA7bz1_AoPlnjhHMgoDpXV5d71yRLNSE55Qnel5t56wufipaA4atyX3","y":"MZAH-E-_mnEuV0ICe-ynXUo_onLZSjxcRcM_6bubvoCEfnMAcpw_nrRoJyzsWXiF"}"#;
const DUMMY_ED25519: &str =
    r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

/// The RFC 7638 SHA-256 thumbprint of a public JWK given as JSON.
#[cfg(test)]
pub(crate) fn thumbprint(jwk: &Value) -> Result<String, JoseError> {
    PublicKey::from_json(jwk).map(|k| k.thumbprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn none_and_unknown_algorithms_do_not_parse() {
        assert_eq!(parse_alg("PS256"), Some(Alg::PS256));
        assert_eq!(parse_alg("none"), None);
        assert_eq!(parse_alg("ps256"), None);
        assert_eq!(parse_alg("RSA-OAEP"), None);
    }

    #[test]
    fn dummy_keys_import() {
        for alg in ASYMMETRIC.iter().chain(HMAC) {
            assert!(
                alg.family() == jsonwebtoken::AlgorithmFamily::Hmac || dummy_key(*alg).is_some(),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn private_and_symmetric_keys_are_refused() {
        let ed =
            json!({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert!(PublicKey::from_json(&ed).is_ok());
        let mut private = ed.clone();
        private["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
        assert!(PublicKey::from_json(&private)
            .unwrap_err()
            .0
            .contains("'d'"));
        assert!(PublicKey::from_json(&json!({"kty":"oct","k":"c2VjcmV0"})).is_err());
        let mut enc = ed.clone();
        enc["use"] = json!("enc");
        assert!(PublicKey::from_json(&enc).is_err());
        let mut wrong_alg = ed;
        wrong_alg["alg"] = json!("ES256");
        assert!(PublicKey::from_json(&wrong_alg).is_err());
    }

    #[test]
    fn short_rsa_keys_are_refused() {
        // A 1024-bit modulus.
        let n = URL_SAFE_NO_PAD.encode([0xc3u8; 128]);
        let err = PublicKey::from_json(&json!({"kty":"RSA","e":"AQAB","n":n})).unwrap_err();
        assert!(err.0.contains("2048"), "{err}");
        assert!(PublicKey::from_json(&serde_json::from_str(DUMMY_RSA).unwrap()).is_ok());
    }

    #[test]
    fn non_canonical_keys_are_refused() {
        let x = URL_SAFE_NO_PAD.encode([7u8; 32]);
        // Short, long, and coordinates moved between x and y.
        for bad in [
            json!({"kty":"OKP","crv":"Ed25519","x":"AA"}),
            json!({"kty":"OKP","crv":"Ed25519","x":URL_SAFE_NO_PAD.encode([7u8; 47])}),
            json!({"kty":"EC","crv":"P-256","x":URL_SAFE_NO_PAD.encode([7u8; 64]),"y":""}),
            json!({"kty":"EC","crv":"P-256","x":"AA","y":"AA"}),
            json!({"kty":"EC","crv":"P-384","x":x,"y":x}),
            json!({"kty":"OKP","crv":"Ed25519","x":x,"key_ops":["encrypt"]}),
        ] {
            assert!(PublicKey::from_json(&bad).is_err(), "{bad}");
        }
        assert!(PublicKey::from_json(
            &json!({"kty":"OKP","crv":"Ed25519","x":x,"key_ops":["verify"]})
        )
        .is_ok());
        let rsa: Value = serde_json::from_str(DUMMY_RSA).unwrap();
        let n = rsa["n"].as_str().unwrap();
        let mut padded = vec![0u8];
        padded.extend(URL_SAFE_NO_PAD.decode(n).unwrap());
        for (n, e) in [
            (URL_SAFE_NO_PAD.encode(&padded), "AQAB".to_owned()),
            (n.to_owned(), "AAEAAQ".to_owned()),
            (n.to_owned(), "AQ".to_owned()),
            (n.to_owned(), "Ag".to_owned()),
            (n.to_owned(), String::new()),
            (URL_SAFE_NO_PAD.encode([0xc3u8; 1025]), "AQAB".to_owned()),
        ] {
            let key = json!({"kty":"RSA","n":n,"e":e});
            assert!(PublicKey::from_json(&key).is_err(), "{key}");
        }
    }

    #[test]
    fn time_claims_are_bounded() {
        let jwt = Jwt {
            header: Header::default(),
            claims: serde_json::from_value(
                json!({"a": 1e300, "b": -1, "c": "1", "d": 1700000000.5, "e": 1700000000}),
            )
            .unwrap(),
        };
        assert!(jwt.time_claim("a").is_err());
        assert!(jwt.time_claim("b").is_err());
        assert!(jwt.time_claim("c").is_err());
        assert_eq!(jwt.time_claim("d"), Ok(Some(1_700_000_000)));
        assert_eq!(jwt.time_claim("e"), Ok(Some(1_700_000_000)));
        assert_eq!(jwt.time_claim("f"), Ok(None));
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let jwk = json!({"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29",
            "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn jwe_and_garbage_are_named() {
        assert!(peek("a.b.c.d.e").unwrap_err().0.contains("JWE"));
        assert!(peek("nope").is_err());
        assert!(peek(&"a".repeat(MAX_JWT_LEN + 1)).is_err());
    }
}
