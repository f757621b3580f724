//! Keys generated for each test run, and JWTs signed with them: client
//! assertions, DPoP proofs and request objects, as real clients make them.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{json, Map, Value};

/// A freshly generated signing key with its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    /// The public JWK, without `kid` or `alg`.
    pub public: Value,
    /// The private JWK members (for clients that load a JWK, e.g. the demo).
    pub pem: String,
}

fn rng() -> rsa::rand_core::UnwrapErr<getrandom::SysRng> {
    rsa::rand_core::UnwrapErr(getrandom::SysRng)
}

impl TestKey {
    /// ES256 on P-256.
    pub fn es256() -> Self {
        let sk = p256::SecretKey::generate();
        let pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        Self::from_pem(Algorithm::ES256, pem)
    }

    /// ES384 on P-384.
    pub fn es384() -> Self {
        let sk = p384::SecretKey::generate();
        let pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        Self::from_pem(Algorithm::ES384, pem)
    }

    /// An RSA key of `bits` for `alg` (RS256, PS256, ...).
    pub fn rsa(alg: Algorithm, bits: usize) -> Self {
        let sk = rsa::PrivateKey::new(&mut rng(), bits).unwrap();
        let pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&sk, LineEnding::LF)
            .unwrap()
            .to_string();
        Self::from_pem(alg, pem)
    }

    /// PS256 with a 2048-bit key.
    pub fn ps256() -> Self {
        Self::rsa(Algorithm::PS256, 2048)
    }

    /// EdDSA on Ed25519.
    pub fn ed25519() -> Self {
        let sk = ed25519_dalek::SigningKey::generate(&mut rng());
        let pem = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_pem(&sk, LineEnding::LF)
            .unwrap()
            .to_string();
        let encoding = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
        let x = URL_SAFE_NO_PAD.encode(sk.verifying_key().to_bytes());
        Self {
            alg: Algorithm::EdDSA,
            encoding,
            public: json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
            pem,
        }
    }

    fn from_pem(alg: Algorithm, pem: String) -> Self {
        let encoding = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .unwrap();
        let jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        let mut public = serde_json::to_value(jwk).unwrap();
        public.as_object_mut().unwrap().remove("alg");
        Self {
            alg,
            encoding,
            public,
            pem,
        }
    }

    /// The public JWK with a `kid`.
    pub fn jwk_with_kid(&self, kid: &str) -> Value {
        let mut v = self.public.clone();
        v["kid"] = json!(kid);
        v
    }

    /// `{"keys":[jwk with kid]}`.
    pub fn jwks(&self, kid: &str) -> Value {
        json!({ "keys": [self.jwk_with_kid(kid)] })
    }

    /// Signs `claims` with `header` (whose `alg` is set to this key's).
    pub fn sign(&self, mut header: Header, claims: &Value) -> String {
        header.alg = self.alg;
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// Signs with a header given as JSON (any members, e.g. a `jwk` with
    /// private parts, an unknown `typ`), using this key's algorithm unless
    /// the JSON names another.
    pub fn sign_raw(&self, header: Value, claims: &Value) -> String {
        let mut header = header;
        if header.get("alg").is_none() {
            header["alg"] = json!(alg_name(self.alg));
        }
        let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
        let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
        let input = format!("{h}.{c}");
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg).unwrap();
        format!("{input}.{sig}")
    }
}

/// Signs `claims` with an HMAC secret (`client_secret_jwt`).
pub fn sign_hmac(alg: Algorithm, secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => unreachable!("an algorithm the tests do not use"),
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A random `jti`.
pub fn jti() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    URL_SAFE_NO_PAD.encode(b)
}

/// Claims of a valid client assertion for `client_id` and `aud`.
pub fn assertion_claims(client_id: &str, aud: Value) -> Value {
    let now = now();
    json!({
        "iss": client_id, "sub": client_id, "aud": aud,
        "iat": now, "exp": now + 60, "jti": jti(),
    })
}

/// A DPoP proof for `htm` and `htu` signed by `key`, with extra claims.
pub fn dpop_proof(key: &TestKey, htm: &str, htu: &str, extra: Map<String, Value>) -> String {
    let mut claims = json!({"jti": jti(), "htm": htm, "htu": htu, "iat": now()});
    for (k, v) in extra {
        claims[k] = v;
    }
    key.sign_raw(json!({"typ": "dpop+jwt", "jwk": key.public}), &claims)
}
