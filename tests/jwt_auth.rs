//! JWT client authentication at the PAR endpoint and through
//! `TokenEndpoint` (RFC 7523, OIDC Core §9, RFC 9126 §2): `private_key_jwt`
//! and `client_secret_jwt` with real JWTs, signed by keys generated for
//! this run. Each valid variant is accepted; each defect is refused with
//! `401 invalid_client` and a description that never quotes the assertion.
#![cfg(feature = "jwt")]

mod common;
mod keys;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use jsonwebtoken::{Algorithm, Header};
use serde_json::{json, Value};
use tower_par::{
    AuthMethod, Client, ClientAuthError, ClientAuthenticator, ClientCredentials, Jwks, MemoryStore,
    ParLayer, Params, Profile, Secret, StaticClients,
};

use common::*;
use keys::*;

const ISS: &str = "https://as.example";
const TOKEN_URL: &str = "https://as.example/token";
const PAR_URL: &str = "https://as.example/par";
const CB: &str = "https://k.example/cb";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `private_key_jwt` clients, one per algorithm, registered with `kid` k1.
const K_ES256: &str = "k-es256";
const K_ES384: &str = "k-es384";
const K_PS256: &str = "k-ps256";
const K_RS256: &str = "k-rs256";
const K_EDDSA: &str = "k-eddsa";
/// ES256 key, but registered for ES384 assertions only.
const K_PINNED: &str = "k-pinned";
/// `client_secret_jwt` clients.
const S_256: &str = "s-hs256";
const S_384: &str = "s-hs384";
const S_512: &str = "s-hs512";
/// 64 bytes: long enough for HS512 (RFC 7518 §3.2).
const S_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// A `client_secret_basic` client.
const B: &str = "b-basic";
const B_SECRET: &str = "b-secret";

struct Keys {
    es256: TestKey,
    es384: TestKey,
    ps256: TestKey,
    rs256: TestKey,
    eddsa: TestKey,
    /// Registered nowhere.
    stranger: TestKey,
}

/// RSA key generation is the slow part: once per test binary.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        es256: TestKey::es256(),
        es384: TestKey::es384(),
        ps256: TestKey::ps256(),
        rs256: TestKey::rsa(Algorithm::RS256, 2048),
        eddsa: TestKey::ed25519(),
        stranger: TestKey::es256(),
    })
}

/// A registry of the user's own that hands out a secret of its choosing
/// for `client_secret_jwt` (the trait allows it), over `StaticClients`.
#[derive(Clone)]
struct WithSecret {
    inner: StaticClients,
    secret: &'static str,
}

impl ClientAuthenticator for WithSecret {
    async fn authenticate(
        &self,
        credentials: &ClientCredentials,
        request: &http::request::Parts,
    ) -> Result<Arc<Client>, ClientAuthError> {
        self.inner.authenticate(credentials, request).await
    }

    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, ClientAuthError> {
        self.inner.client(client_id).await
    }

    async fn client_secret(&self, _client_id: &str) -> Result<Option<Secret>, ClientAuthError> {
        Ok(Some(Secret::new(self.secret)))
    }
}

fn jwks(key: &TestKey) -> Jwks {
    Jwks::from_value(key.jwks("k1")).unwrap()
}

/// `StaticClients`, which keeps the secret itself of `client_secret_jwt`
/// clients.
fn registry() -> StaticClients {
    let k = keys();
    let mut clients = StaticClients::new();
    for (id, key) in [
        (K_ES256, &k.es256),
        (K_ES384, &k.es384),
        (K_PS256, &k.ps256),
        (K_RS256, &k.rs256),
        (K_EDDSA, &k.eddsa),
    ] {
        clients = clients
            .with_client(
                Client::new(id, AuthMethod::PrivateKeyJwt)
                    .redirect_uri(CB)
                    .jwks(jwks(key)),
                None,
            )
            .unwrap();
    }
    clients = clients
        .with_client(
            Client::new(K_PINNED, AuthMethod::PrivateKeyJwt)
                .redirect_uri(CB)
                .jwks(jwks(&k.es256))
                .token_endpoint_auth_signing_alg("ES384"),
            None,
        )
        .unwrap()
        .with_client(
            Client::new(B, AuthMethod::ClientSecretBasic).redirect_uri(CB),
            Some(B_SECRET),
        )
        .unwrap();
    for id in [S_256, S_384, S_512] {
        clients = clients
            .with_client(
                Client::new(id, AuthMethod::ClientSecretJwt).redirect_uri(CB),
                Some(S_SECRET),
            )
            .unwrap();
    }
    clients
}

fn layer() -> ParLayer {
    ParLayer::new(registry())
        .issuer(ISS)
        .unwrap()
        .token_endpoint_url(TOKEN_URL)
        .unwrap()
}

fn fapi_layer() -> ParLayer {
    layer().profile(Profile::Fapi2)
}

/// Header with `kid` k1.
fn k1() -> Header {
    Header {
        kid: Some("k1".into()),
        ..Header::default()
    }
}

/// A valid assertion for `client_id` signed by `key` (kid k1), `aud` the
/// issuer, with `edit` applied to the claims.
fn assertion(client_id: &str, key: &TestKey, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = assertion_claims(client_id, json!(ISS));
    edit(&mut claims);
    key.sign(k1(), &claims)
}

fn hmac_assertion(client_id: &str, alg: Algorithm, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = assertion_claims(client_id, json!(ISS));
    edit(&mut claims);
    sign_hmac(alg, S_SECRET.as_bytes(), &claims)
}

/// The base body for `client_id` with the assertion; `with_client_id`
/// keeps the body's `client_id`.
fn assertion_body(client_id: &str, assertion: &str, with_client_id: bool) -> String {
    let base = base_body_for(client_id, CB);
    let base = if with_client_id {
        base
    } else {
        base.split('&')
            .filter(|p| !p.starts_with("client_id="))
            .collect::<Vec<_>>()
            .join("&")
    };
    format!(
        "{base}&{}",
        form(&[
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ])
    )
}

fn push(client_id: &str, assertion: &str) -> Request<http_body_util::Full<Bytes>> {
    form_post("/par", assertion_body(client_id, assertion, true), &[])
}

/// `401 invalid_client`, with a description that quotes neither the
/// assertion nor any of its parts, nor any of `values`. Returns the
/// description.
async fn assert_refused<B>(res: http::Response<B>, assertion: &str, values: &[&str]) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let desc = assert_oauth_error(res, 401, "invalid_client").await;
    assert!(!desc.is_empty());
    for part in assertion.split('.').filter(|p| p.len() > 8) {
        assert!(
            !desc.contains(part),
            "description quotes the assertion: {desc}"
        );
    }
    for v in values {
        assert!(!desc.contains(v), "description quotes '{v}': {desc}");
    }
    desc
}

// ---------------------------------------------------------------------------
// Accepted variants
// ---------------------------------------------------------------------------

/// AUTH-12, AUTH-13, FAPI-25 (default profile): each asymmetric algorithm
/// verifies with the client's registered key; the stored request keeps no
/// client-authentication parameter (PAR-8) and records the method.
#[tokio::test]
async fn auth12_private_key_jwt_each_algorithm_is_accepted() {
    let k = keys();
    let (svc, calls) = layered(&layer());
    for (id, key) in [
        (K_ES256, &k.es256),
        (K_ES384, &k.es384),
        (K_PS256, &k.ps256),
        (K_RS256, &k.rs256),
        (K_EDDSA, &k.eddsa),
    ] {
        let a = assertion(id, key, |_| {});
        let uri = assert_created(send(&svc, push(id, &a)).await, 60).await;
        let echo = redeem(&svc, id, &uri).await;
        let query = echo["query"].as_str().unwrap();
        assert!(!query.contains("client_assertion"), "{id}: {query}");
        assert_eq!(echo["pushed_client_id"], id, "{echo}");
    }
    assert_eq!(calls.count(), 5, "only the redemptions reach the service");
}

/// PAR-6, AUTH-12: in the default profile the issuer, the token endpoint
/// URL and the PAR endpoint URL are all accepted, as a string or inside an
/// array.
#[tokio::test]
async fn par6_aud_issuer_token_and_par_urls_string_or_array_are_accepted() {
    let k = keys();
    let (svc, _) = layered(&layer());
    for aud in [
        json!(ISS),
        json!(TOKEN_URL),
        json!(PAR_URL),
        json!([ISS]),
        json!(["https://other.example", PAR_URL]),
    ] {
        let a = assertion(K_ES256, &k.es256, |c| c["aud"] = aud.clone());
        let res = send(&svc, push(K_ES256, &a)).await;
        assert_eq!(res.status(), StatusCode::CREATED, "aud {aud}");
    }
}

/// OIDC Core §9, AUTH-13: `client_secret_jwt` with HS256, HS384, HS512,
/// keyed with the client secret.
#[tokio::test]
async fn auth13_client_secret_jwt_hs256_hs384_hs512_are_accepted() {
    let (svc, _) = layered(&layer());
    for (id, alg) in [
        (S_256, Algorithm::HS256),
        (S_384, Algorithm::HS384),
        (S_512, Algorithm::HS512),
    ] {
        let a = hmac_assertion(id, alg, |_| {});
        let uri = assert_created(send(&svc, push(id, &a)).await, 60).await;
        let echo = redeem(&svc, id, &uri).await;
        assert_eq!(echo["pushed_client_id"], id, "{echo}");
    }
}

/// The wrapped service learns how the client authenticated
/// (`PushedAuthorization::auth_method`).
#[tokio::test]
async fn pushed_authorization_records_the_jwt_method() {
    use tower::{Layer, ServiceExt};
    use tower_par::{ParRequestBody, PushedAuthorization};
    let k = keys();
    let svc = layer().layer(tower::service_fn(
        |req: Request<ParRequestBody<http_body_util::Full<Bytes>>>| async move {
            let method = req
                .extensions()
                .get::<PushedAuthorization>()
                .map(|p| p.auth_method().as_str())
                .unwrap_or("none seen");
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                Bytes::from(method),
            )))
        },
    ));
    for (id, a) in [
        (K_ES256, assertion(K_ES256, &k.es256, |_| {})),
        (S_256, hmac_assertion(S_256, Algorithm::HS256, |_| {})),
    ] {
        let res = svc.clone().oneshot(push(id, &a)).await.unwrap();
        let uri = assert_created(res, 60).await;
        let res = svc.clone().oneshot(authorize_with(id, &uri)).await.unwrap();
        let seen = body_string(res).await;
        let expected = if id == S_256 {
            "client_secret_jwt"
        } else {
            "private_key_jwt"
        };
        assert_eq!(seen, expected);
    }
}

/// AUTH-11: `client_id` is optional next to an assertion; the client is
/// then the assertion's `sub`, and the stored request gets its
/// `client_id`.
#[tokio::test]
async fn auth11_body_client_id_may_be_absent() {
    let k = keys();
    let (svc, _) = layered(&layer());
    let a = assertion(K_ES256, &k.es256, |_| {});
    let res = send(
        &svc,
        form_post("/par", assertion_body(K_ES256, &a, false), &[]),
    )
    .await;
    let uri = assert_created(res, 60).await;
    let echo = redeem(&svc, K_ES256, &uri).await;
    assert!(echo["query"]
        .as_str()
        .unwrap()
        .starts_with(&format!("client_id={K_ES256}&")));
}

// ---------------------------------------------------------------------------
// Refused assertions
// ---------------------------------------------------------------------------

/// AUTH-9, RFC 7521 §4.2: a body `client_id` naming another client than
/// the assertion is refused.
#[tokio::test]
async fn auth9_body_client_id_must_match_the_assertion() {
    let k = keys();
    let (svc, calls) = layered(&layer());
    let a = assertion(K_ES256, &k.es256, |_| {});
    let body = assertion_body(K_ES384, &a, true);
    let desc = assert_refused(send(&svc, form_post("/par", body, &[])).await, &a, &[]).await;
    assert!(desc.contains("client_id"), "{desc}");
    assert_eq!(calls.count(), 0);
}

/// AUTH-12 item 8, T29: a bad signature, another key, an unknown `kid`
/// and a key given in the header itself are all refused with the same
/// description.
#[tokio::test]
async fn auth12_signatures_not_made_with_a_registered_key_are_refused() {
    let k = keys();
    let (svc, _) = layered(&layer());
    let good = assertion(K_ES256, &k.es256, |_| {});
    let (input, sig) = good.rsplit_once('.').unwrap();
    let mut sig = sig.as_bytes().to_vec();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{input}.{}", String::from_utf8(sig).unwrap());
    let other_key = assertion(K_ES256, &k.stranger, |_| {});
    let unknown_kid = Header {
        kid: Some("k2".into()),
        ..Header::default()
    };
    let unknown_kid = k
        .es256
        .sign(unknown_kid, &assertion_claims(K_ES256, json!(ISS)));
    // AUTH-15: a `jwk` in the header is never used.
    let embedded = k.stranger.sign_raw(
        json!({"kid": "k1", "jwk": k.stranger.public}),
        &assertion_claims(K_ES256, json!(ISS)),
    );
    let mut descriptions = Vec::new();
    for a in [&tampered, &other_key, &unknown_kid, &embedded] {
        descriptions.push(assert_refused(send(&svc, push(K_ES256, a)).await, a, &[]).await);
    }
    descriptions.dedup();
    assert_eq!(descriptions.len(), 1, "{descriptions:?}");
}

/// AUTH-1: an unknown client gets exactly the answer of a known client
/// whose signature does not verify.
#[tokio::test]
async fn auth1_unknown_client_is_answered_like_a_bad_signature() {
    let k = keys();
    let (svc, _) = layered(&layer());
    let unknown = assertion("nobody", &k.es256, |_| {});
    let d1 = assert_refused(
        send(&svc, push("nobody", &unknown)).await,
        &unknown,
        &["nobody"],
    )
    .await;
    let bad = assertion(K_ES256, &k.stranger, |_| {});
    let d2 = assert_refused(send(&svc, push(K_ES256, &bad)).await, &bad, &[]).await;
    assert_eq!(d1, d2);
    // The same for the HMAC method.
    let unknown = sign_hmac(
        Algorithm::HS256,
        S_SECRET.as_bytes(),
        &assertion_claims("nobody", json!(ISS)),
    );
    let d3 = assert_refused(send(&svc, push("nobody", &unknown)).await, &unknown, &[]).await;
    assert_eq!(d1, d3);
}

/// AUTH-15, FAPI-25: `alg: none` (unsigned, empty signature) is refused,
/// saying why.
#[tokio::test]
async fn auth15_alg_none_is_refused() {
    let k = keys();
    let (svc, _) = layered(&layer());
    let signed = k.es256.sign_raw(
        json!({"alg": "none"}),
        &assertion_claims(K_ES256, json!(ISS)),
    );
    let unsigned = format!("{}.", signed.rsplit_once('.').unwrap().0);
    let desc = assert_refused(send(&svc, push(K_ES256, &unsigned)).await, &unsigned, &[]).await;
    assert!(desc.contains("alg none"), "{desc}");
}

/// AUTH-15: an algorithm other than the client's
/// `token_endpoint_auth_signing_alg` is refused, even with its own key.
#[tokio::test]
async fn auth15_alg_other_than_the_registered_one_is_refused() {
    let k = keys();
    let (svc, _) = layered(&layer());
    let a = assertion(K_PINNED, &k.es256, |_| {});
    let desc = assert_refused(send(&svc, push(K_PINNED, &a)).await, &a, &[]).await;
    assert!(
        !desc.contains("ES384"),
        "the registration is not disclosed: {desc}"
    );
}

/// RFC 8725 §3.1, AUTH-4: HS256 keyed with the client's public key
/// (algorithm confusion) is refused: the client is registered for
/// private_key_jwt, and its public key is never an HMAC key.
#[tokio::test]
async fn auth15_hmac_keyed_with_the_public_key_is_refused() {
    let k = keys();
    let (svc, _) = layered(&layer());
    let claims = assertion_claims(K_ES256, json!(ISS));
    let as_json = serde_json::to_vec(&k.es256.jwk_with_kid("k1")).unwrap();
    for secret in [as_json.as_slice(), k.es256.pem.as_bytes()] {
        let a = sign_hmac(Algorithm::HS256, secret, &claims);
        assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &[]).await;
    }
}

/// AUTH-4: a `client_secret_jwt` client cannot use `private_key_jwt`
/// (and the other way round, above); a Basic client cannot use either.
#[tokio::test]
async fn auth4_registered_method_is_enforced() {
    let k = keys();
    let (svc, _) = layered(&layer());
    let a = assertion(S_256, &k.es256, |_| {});
    assert_refused(send(&svc, push(S_256, &a)).await, &a, &[]).await;
    let a = hmac_assertion(B, Algorithm::HS256, |_| {});
    assert_refused(send(&svc, push(B, &a)).await, &a, &[]).await;
}

/// AUTH-12 item 4: `exp` required, not past (beyond the leeway), and not
/// more than the maximum lifetime ahead.
#[tokio::test]
async fn auth12_exp_is_required_and_bounded() {
    let k = keys();
    let (svc, _) = layered(&layer());
    let now = now();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: [(&str, Edit, &str); 4] = [
        (
            "expired",
            Box::new(move |c| c["exp"] = json!(now - 31)),
            "expired",
        ),
        (
            "too far",
            Box::new(move |c| c["exp"] = json!(now + 3600)),
            "300 s",
        ),
        (
            "missing",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "exp",
        ),
        (
            "not a number",
            Box::new(|c| c["exp"] = json!("soon")),
            "NumericDate",
        ),
    ];
    for (name, edit, expected) in cases {
        let a = assertion(K_ES256, &k.es256, edit);
        let desc = assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &["soon"]).await;
        assert!(desc.contains(expected), "{name}: {desc}");
    }
    // Within the leeway (30 s): accepted.
    let a = assertion(K_ES256, &k.es256, |c| c["exp"] = json!(now - 5));
    assert_created(send(&svc, push(K_ES256, &a)).await, 60).await;
}

/// AUTH-12 items 5, 6: `nbf` and `iat` more than the leeway ahead are
/// refused.
#[tokio::test]
async fn auth12_nbf_and_iat_in_the_future_are_refused() {
    let k = keys();
    let (svc, _) = layered(&layer());
    let now = now();
    for claim in ["nbf", "iat"] {
        let a = assertion(K_ES256, &k.es256, |c| c[claim] = json!(now + 45));
        let desc = assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &[]).await;
        assert!(desc.contains(claim), "{desc}");
        let a = assertion(K_ES256, &k.es256, |c| c[claim] = json!(now + 20));
        assert_created(send(&svc, push(K_ES256, &a)).await, 60).await;
    }
}

/// AUTH-12 items 1, 2, AUTH-13: `iss`, `sub` and `jti` are required, and
/// `iss` = `sub` = `client_id`.
#[tokio::test]
async fn auth13_iss_sub_jti_are_required_and_iss_is_the_client() {
    let k = keys();
    let (svc, _) = layered(&layer());
    for claim in ["iss", "jti"] {
        let a = assertion(K_ES256, &k.es256, |c| {
            c.as_object_mut().unwrap().remove(claim);
        });
        let desc = assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &[]).await;
        assert!(desc.contains(claim), "{desc}");
    }
    // No sub: the body's client_id finds the client, the claim check fails.
    let a = assertion(K_ES256, &k.es256, |c| {
        c.as_object_mut().unwrap().remove("sub");
    });
    let desc = assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &[]).await;
    assert!(desc.contains("sub"), "{desc}");
    // No sub and no client_id: nothing names the client.
    let res = send(
        &svc,
        form_post("/par", assertion_body(K_ES256, &a, false), &[]),
    )
    .await;
    assert_refused(res, &a, &[]).await;
    // iss ≠ sub.
    let a = assertion(K_ES256, &k.es256, |c| c["iss"] = json!("EVIL-ISSUER"));
    let desc = assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &["EVIL-ISSUER"]).await;
    assert!(desc.contains("iss"), "{desc}");
}

/// AUTH-12 item 3, T24: an audience that does not name the server.
#[tokio::test]
async fn auth12_foreign_audience_is_refused() {
    let k = keys();
    let (svc, _) = layered(&layer());
    for aud in [
        json!("https://EVIL.example"),
        json!(["https://EVIL.example"]),
        json!([]),
        json!([ISS, 7]),
        json!(7),
    ] {
        let a = assertion(K_ES256, &k.es256, |c| c["aud"] = aud.clone());
        let desc = assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &["EVIL"]).await;
        assert!(desc.contains(ISS), "{aud}: {desc}");
    }
    let a = assertion(K_ES256, &k.es256, |c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &[]).await;
}

/// AUTH-13, T26: a `jti` is single use.
#[tokio::test]
async fn auth13_replayed_jti_is_refused() {
    let k = keys();
    let (svc, _) = layered(&layer());
    let a = assertion(K_ES256, &k.es256, |_| {});
    assert_created(send(&svc, push(K_ES256, &a)).await, 60).await;
    let desc = assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &[]).await;
    assert!(desc.contains("already used"), "{desc}");
    // A new jti from the same client is fine; the same jti from another
    // client is another assertion.
    let jti = jti();
    let a = assertion(K_ES256, &k.es256, |c| c["jti"] = json!(jti));
    assert_created(send(&svc, push(K_ES256, &a)).await, 60).await;
    let b = assertion(K_ES384, &k.es384, |c| c["jti"] = json!(jti));
    assert_created(send(&svc, push(K_ES384, &b)).await, 60).await;
}

/// AUTH-13: the replay cache is the store, so two instances sharing one
/// refuse each other's replays.
#[tokio::test]
async fn auth13_replay_is_refused_across_layers_sharing_a_store() {
    let k = keys();
    let store = MemoryStore::new();
    let (one, _) = layered(&layer().with_store(store.clone()));
    let (two, _) = layered(&layer().with_store(store));
    let a = assertion(K_ES256, &k.es256, |_| {});
    assert_created(send(&one, push(K_ES256, &a)).await, 60).await;
    assert_refused(send(&two, push(K_ES256, &a)).await, &a, &[]).await;
    let h = hmac_assertion(S_256, Algorithm::HS256, |_| {});
    assert_created(send(&two, push(S_256, &h)).await, 60).await;
    assert_refused(send(&one, push(S_256, &h)).await, &h, &[]).await;
}

/// AUTH-11, T30: `client_assertion_type` must be the JWT bearer URN, and
/// each of the two parameters needs the other.
#[tokio::test]
async fn auth11_assertion_type_must_be_jwt_bearer() {
    let k = keys();
    let (svc, _) = layered(&layer());
    let a = assertion(K_ES256, &k.es256, |_| {});
    let base = base_body_for(K_ES256, CB);
    for (extra, expected) in [
        (
            form(&[
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                ),
                ("client_assertion", &a),
            ]),
            JWT_BEARER,
        ),
        (form(&[("client_assertion", &a)]), "client_assertion_type"),
        (
            form(&[("client_assertion_type", JWT_BEARER)]),
            "client_assertion is required",
        ),
        (
            form(&[
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &format!("{a} {a}")),
            ]),
            "one JWT",
        ),
    ] {
        let res = send(&svc, form_post("/par", format!("{base}&{extra}"), &[])).await;
        let desc = assert_refused(res, &a, &[]).await;
        assert!(desc.contains(expected), "{desc}");
    }
}

/// AUTH-3, T13: an assertion together with Basic or `client_secret` is
/// `400 invalid_request`.
#[tokio::test]
async fn auth3_assertion_with_another_method_is_invalid_request() {
    let k = keys();
    let (svc, _) = layered(&layer());
    let a = assertion(K_ES256, &k.es256, |_| {});
    let with_basic = form_post(
        "/par",
        assertion_body(K_ES256, &a, true),
        &[("authorization", &basic(K_ES256, "x"))],
    );
    assert_oauth_error(send(&svc, with_basic).await, 400, "invalid_request").await;
    let with_post = form_post(
        "/par",
        format!("{}&client_secret=x", assertion_body(K_ES256, &a, true)),
        &[],
    );
    assert_oauth_error(send(&svc, with_post).await, 400, "invalid_request").await;
}

/// AUTH-17, T32: a JWT typed as a request object (or a DPoP proof) is not
/// a client assertion.
#[tokio::test]
async fn auth17_request_object_typ_is_refused() {
    let k = keys();
    let (svc, _) = layered(&layer());
    for typ in [
        "oauth-authz-req+jwt",
        "application/oauth-authz-req+jwt",
        "dpop+jwt",
    ] {
        let mut h = k1();
        h.typ = Some(typ.into());
        let a = k.es256.sign(h, &assertion_claims(K_ES256, json!(ISS)));
        let desc = assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &[]).await;
        assert!(
            desc.contains("cannot be used as a client assertion"),
            "{desc}"
        );
    }
    // The explicit type for client assertions (AUTH-16) is welcome.
    let mut h = k1();
    h.typ = Some("client-authentication+jwt".into());
    let a = k.es256.sign(h, &assertion_claims(K_ES256, json!(ISS)));
    assert_created(send(&svc, push(K_ES256, &a)).await, 60).await;
}

/// AUTH-12: without an issuer the audience cannot be checked, so JWT
/// authentication is refused, saying so.
#[tokio::test]
async fn auth12_without_issuer_assertions_are_refused() {
    let k = keys();
    let (svc, _) = layered(&ParLayer::new(registry()));
    let a = assertion(K_ES256, &k.es256, |_| {});
    let desc = assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &[]).await;
    assert!(desc.contains("issuer"), "{desc}");
}

/// `CachingClients` hands the wrapped registry's secret through, so
/// `client_secret_jwt` works behind it.
#[tokio::test]
async fn auth13_client_secret_jwt_through_caching_clients() {
    let cached = tower_par::CachingClients::new(registry(), Duration::from_secs(60), 16);
    let (svc, _) = layered(&ParLayer::new(cached).issuer(ISS).unwrap());
    let a = hmac_assertion(S_384, Algorithm::HS384, |_| {});
    assert_created(send(&svc, push(S_384, &a)).await, 60).await;
}

/// RFC 7518 §3.2: an HMAC key shorter than the hash is refused, even
/// when a registry of the user's own hands one out (`StaticClients`
/// refuses it at registration).
#[tokio::test]
async fn auth13_hmac_secret_shorter_than_the_hash_is_refused() {
    let short = WithSecret {
        inner: registry(),
        secret: "short-secret",
    };
    let (svc, _) = layered(&ParLayer::new(short).issuer(ISS).unwrap());
    let a = sign_hmac(
        Algorithm::HS256,
        b"short-secret",
        &assertion_claims(S_256, json!(ISS)),
    );
    assert_refused(send(&svc, push(S_256, &a)).await, &a, &[]).await;
    // The registry's answer is the key: with the registered secret, the
    // wrapper's assertions fail; with its own (long enough), they pass.
    let other = WithSecret {
        inner: registry(),
        secret: "another-secret-another-secret-another-secret",
    };
    let (svc, _) = layered(&ParLayer::new(other).issuer(ISS).unwrap());
    let a = hmac_assertion(S_256, Algorithm::HS256, |_| {});
    assert_refused(send(&svc, push(S_256, &a)).await, &a, &[]).await;
    let a = sign_hmac(
        Algorithm::HS256,
        b"another-secret-another-secret-another-secret",
        &assertion_claims(S_256, json!(ISS)),
    );
    assert_created(send(&svc, push(S_256, &a)).await, 60).await;
}

// ---------------------------------------------------------------------------
// FAPI 2.0
// ---------------------------------------------------------------------------

/// FAPI-8, T21..T23: only the issuer, as a string.
#[tokio::test]
async fn fapi8_aud_is_the_issuer_as_a_string_only() {
    let k = keys();
    let (svc, _) = layered(&fapi_layer());
    for aud in [json!([ISS]), json!(PAR_URL), json!(TOKEN_URL)] {
        let a = assertion(K_ES256, &k.es256, |c| c["aud"] = aud.clone());
        let desc = assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &[]).await;
        assert!(desc.contains("single string"), "{aud}: {desc}");
    }
    let a = assertion(K_ES256, &k.es256, |_| {});
    assert_created(send(&svc, push(K_ES256, &a)).await, 60).await;
}

/// FAPI-5: under FAPI only private_key_jwt and, with the `mtls` feature,
/// the mTLS methods authenticate (tests/mtls.rs has the mTLS side); the
/// secret-based methods are refused, and the answer names the accepted
/// ones.
#[tokio::test]
async fn fapi5_only_private_key_jwt_or_mtls_authenticates() {
    let (svc, calls) = layered(&fapi_layer());
    let res = send(
        &svc,
        form_post(
            "/par",
            base_body_for(B, CB),
            &[("authorization", &basic(B, B_SECRET))],
        ),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let desc = assert_oauth_error(res, 401, "invalid_client").await;
    assert!(desc.contains("private_key_jwt"), "{desc}");
    #[cfg(feature = "mtls")]
    assert!(
        desc.contains("tls_client_auth") && desc.contains("self_signed_tls_client_auth"),
        "{desc}"
    );
    let post = form_post(
        "/par",
        format!("{}&client_secret={B_SECRET}", base_body_for(B, CB)),
        &[],
    );
    assert_oauth_error(send(&svc, post).await, 401, "invalid_client").await;
    let a = hmac_assertion(S_256, Algorithm::HS256, |_| {});
    let desc = assert_refused(send(&svc, push(S_256, &a)).await, &a, &[]).await;
    assert!(desc.contains("private_key_jwt"), "{desc}");
    assert_eq!(calls.count(), 0);
    // The same clients are fine in the default profile.
    let (svc, _) = layered(&layer());
    let res = send(
        &svc,
        form_post(
            "/par",
            base_body_for(B, CB),
            &[("authorization", &basic(B, B_SECRET))],
        ),
    )
    .await;
    assert_created(res, 60).await;
}

/// FAPI-25: PS256, ES256 and EdDSA only; RS256 and ES384 are refused.
#[tokio::test]
async fn fapi25_only_ps256_es256_eddsa_are_accepted() {
    let k = keys();
    let (svc, _) = layered(&fapi_layer());
    for (id, key) in [(K_RS256, &k.rs256), (K_ES384, &k.es384)] {
        let a = assertion(id, key, |_| {});
        let desc = assert_refused(send(&svc, push(id, &a)).await, &a, &[]).await;
        assert!(desc.contains("PS256, ES256, EdDSA"), "{desc}");
    }
    for (id, key) in [
        (K_PS256, &k.ps256),
        (K_ES256, &k.es256),
        (K_EDDSA, &k.eddsa),
    ] {
        let a = assertion(id, key, |_| {});
        assert_created(send(&svc, push(id, &a)).await, 60).await;
    }
}

/// FAPI-13, T31: `iat`/`nbf` 10 s ahead accepted, 61 s refused, whatever
/// leeway is configured (it is held within 10..=60 s).
#[tokio::test]
async fn fapi13_iat_and_nbf_10s_ahead_accepted_61s_refused() {
    let k = keys();
    for leeway in [0, 30, 300] {
        let layer = layer()
            .jwt_leeway(Duration::from_secs(leeway))
            .unwrap()
            .profile(Profile::Fapi2);
        let (svc, _) = layered(&layer);
        for claim in ["iat", "nbf"] {
            let a = assertion(K_ES256, &k.es256, |c| c[claim] = json!(now() + 10));
            assert_created(send(&svc, push(K_ES256, &a)).await, 60).await;
            let a = assertion(K_ES256, &k.es256, |c| c[claim] = json!(now() + 61));
            let desc = assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &[]).await;
            assert!(desc.contains(claim), "leeway {leeway}: {desc}");
        }
    }
}

/// FAPI-17 (moved here from push.rs with FAPI-5: FAPI clients use
/// private_key_jwt): `expires_in` stays below 600.
#[tokio::test]
async fn fapi17_expires_in_is_below_600() {
    let k = keys();
    let layer = layer()
        .request_uri_lifetime(Duration::from_secs(600))
        .unwrap()
        .profile(Profile::Fapi2);
    let (svc, _) = layered(&layer);
    let a = assertion(K_ES256, &k.es256, |_| {});
    assert_created(send(&svc, push(K_ES256, &a)).await, 599).await;
}

/// FAPI-18, T42 (moved from push.rs): `redirect_uri` is required even with
/// a single registered URI.
#[tokio::test]
async fn fapi18_missing_redirect_uri_is_invalid_request() {
    let k = keys();
    let (svc, _) = layered(&fapi_layer());
    let a = assertion(K_ES256, &k.es256, |_| {});
    let body = assertion_body(K_ES256, &a, true)
        .split('&')
        .filter(|p| !p.starts_with("redirect_uri="))
        .collect::<Vec<_>>()
        .join("&");
    let res = send(&svc, form_post("/par", body, &[])).await;
    assert_oauth_error(res, 400, "invalid_request").await;
}

/// FAPI-16, T47 (moved from push.rs): PKCE with S256 is mandatory, even
/// if the layer was told to allow plain.
#[tokio::test]
async fn fapi16_pkce_s256_is_required() {
    let k = keys();
    let layer = layer().allow_plain_pkce(true).profile(Profile::Fapi2);
    let (svc, _) = layered(&layer);
    let edits: [fn(&str) -> bool; 3] = [
        |p| p.starts_with("code_challenge"),
        |p| p == "code_challenge_method=S256",
        |_| false,
    ];
    for (i, drop) in edits.into_iter().enumerate() {
        let a = assertion(K_ES256, &k.es256, |_| {});
        let mut body = assertion_body(K_ES256, &a, true)
            .split('&')
            .filter(|p| !drop(p))
            .collect::<Vec<_>>()
            .join("&");
        if i == 2 {
            body = body.replace("code_challenge_method=S256", "code_challenge_method=plain");
        }
        let res = send(&svc, form_post("/par", body, &[])).await;
        assert_oauth_error(res, 400, "invalid_request").await;
    }
}

// ---------------------------------------------------------------------------
// TokenEndpoint
// ---------------------------------------------------------------------------

fn token_request(body: &str, headers: &[(&str, &str)]) -> (http::request::Parts, Bytes) {
    let (parts, body) = form_post("/token", body.to_owned(), headers).into_parts();
    let bytes = futures::executor::block_on(http_body_util::BodyExt::collect(body))
        .unwrap()
        .to_bytes();
    (parts, bytes)
}

/// PAR-5: the token endpoint authenticates with the same methods and
/// rules (aud = the token endpoint URL here).
#[tokio::test]
async fn token_endpoint_authenticates_like_the_par_endpoint() {
    let k = keys();
    let tokens = layer().token_endpoint();
    let a = assertion(K_PS256, &k.ps256, |c| c["aud"] = json!(TOKEN_URL));
    let body = format!(
        "grant_type=authorization_code&code=c&{}",
        form(&[
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &a)
        ])
    );
    let (parts, bytes) = token_request(&body, &[]);
    let client = tokens
        .authenticate(&parts, &Params::parse(&bytes).unwrap())
        .await
        .unwrap();
    assert_eq!(client.client_id, K_PS256);

    let h = hmac_assertion(S_512, Algorithm::HS512, |_| {});
    let body = format!(
        "grant_type=authorization_code&code=c&client_id={S_512}&{}",
        form(&[
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &h)
        ])
    );
    let (parts, bytes) = token_request(&body, &[]);
    let client = tokens
        .authenticate(&parts, &Params::parse(&bytes).unwrap())
        .await
        .unwrap();
    assert_eq!(client.client_id, S_512);

    let (parts, bytes) = token_request(
        "grant_type=authorization_code&code=c",
        &[("authorization", &basic(B, B_SECRET))],
    );
    let client = tokens
        .authenticate(&parts, &Params::parse(&bytes).unwrap())
        .await
        .unwrap();
    assert_eq!(client.client_id, B);

    // A wrong secret: the RFC 6749 §5.2 response, with the Basic challenge.
    let (parts, bytes) = token_request(
        "grant_type=authorization_code&code=c",
        &[("authorization", &basic(B, "wrong"))],
    );
    let err = tokens
        .authenticate(&parts, &Params::parse(&bytes).unwrap())
        .await
        .unwrap_err();
    let res = err.to_response();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let desc = assert_oauth_error(res, 401, "invalid_client").await;
    assert!(!desc.contains("wrong"));

    // Credentials in the query string: refused.
    let (mut parts, bytes) = token_request("grant_type=authorization_code", &[]);
    parts.uri = "/token?client_secret=x".parse().unwrap();
    let err = tokens
        .authenticate(&parts, &Params::parse(&bytes).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_request");
}

/// AUTH-13, PAR-5: the PAR endpoint and the token endpoint share the
/// replay cache: an assertion used at one is refused at the other.
#[tokio::test]
async fn token_endpoint_shares_the_replay_cache_with_the_par_endpoint() {
    let k = keys();
    let layer = layer();
    let tokens = layer.token_endpoint();
    let (svc, _) = layered(&layer);
    let a = assertion(K_ES256, &k.es256, |_| {});
    assert_created(send(&svc, push(K_ES256, &a)).await, 60).await;
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &a),
    ]);
    let (parts, bytes) = token_request(&body, &[]);
    let err = tokens
        .authenticate(&parts, &Params::parse(&bytes).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_client");
    assert!(err.description().contains("already used"), "{err}");
    assert!(!err.description().contains(&a));

    // And the other way round.
    let b = assertion(K_ES256, &k.es256, |c| c["aud"] = json!(TOKEN_URL));
    let body = form(&[
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &b),
    ]);
    let (parts, bytes) = token_request(&body, &[]);
    tokens
        .authenticate(&parts, &Params::parse(&bytes).unwrap())
        .await
        .unwrap();
    assert_refused(send(&svc, push(K_ES256, &b)).await, &b, &[]).await;
}

/// FAPI-5, FAPI-8 at the token endpoint too.
#[tokio::test]
async fn token_endpoint_applies_the_fapi_profile() {
    let k = keys();
    let tokens = fapi_layer().token_endpoint();
    let (parts, bytes) = token_request(
        "grant_type=authorization_code",
        &[("authorization", &basic(B, B_SECRET))],
    );
    let err = tokens
        .authenticate(&parts, &Params::parse(&bytes).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_client");
    let a = assertion(K_ES256, &k.es256, |c| c["aud"] = json!(TOKEN_URL));
    let body = form(&[
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &a),
    ]);
    let (parts, bytes) = token_request(&body, &[]);
    let err = tokens
        .authenticate(&parts, &Params::parse(&bytes).unwrap())
        .await
        .unwrap_err();
    assert!(err.description().contains("single string"), "{err}");
    assert!(format!("{tokens:?}").contains("Fapi2"));
}

/// PAR-6: the token endpoint URL is an accepted `aud` only when it is
/// configured: one guessed from the issuer's origin could be another
/// tenant's on the same host.
#[tokio::test]
async fn par6_a_token_url_guessed_from_the_issuer_is_not_an_audience() {
    let k = keys();
    let (svc, _) = layered(
        &ParLayer::new(registry())
            .issuer("https://as.example/tenant-a")
            .unwrap(),
    );
    for aud in ["https://as.example/token", "https://as.example/tenant-b"] {
        let a = assertion(K_ES256, &k.es256, |c| c["aud"] = json!(aud));
        assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &[]).await;
    }
    let a = assertion(K_ES256, &k.es256, |c| {
        c["aud"] = json!("https://as.example/tenant-a")
    });
    assert_eq!(send(&svc, push(K_ES256, &a)).await.status(), 201);
}

/// DPOP-9 without credentials: a token request's proof is recorded only
/// once its client has authenticated, so requests without credentials
/// cannot fill the replay cache; the same proof then still works once.
#[tokio::test]
async fn token_endpoint_records_a_dpop_proof_only_for_an_authenticated_client() {
    let tokens = layer().token_endpoint();
    let dpop = TestKey::es256();
    let proof = keys::dpop_proof(&dpop, "POST", TOKEN_URL, Default::default());
    let (parts, bytes) = token_request(
        "grant_type=authorization_code&code=c",
        &[("authorization", &basic(B, "wrong")), ("dpop", &proof)],
    );
    let err = tokens
        .authenticate_with_dpop(&parts, &Params::parse(&bytes).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_client");
    let (parts, bytes) = token_request(
        "grant_type=authorization_code&code=c",
        &[("authorization", &basic(B, B_SECRET)), ("dpop", &proof)],
    );
    let (client, jkt) = tokens
        .authenticate_with_dpop(&parts, &Params::parse(&bytes).unwrap())
        .await
        .unwrap();
    assert_eq!(client.client_id, B);
    assert_eq!(jkt.as_deref().map(str::len), Some(43));
    // Now it is spent.
    let err = tokens
        .authenticate_with_dpop(&parts, &Params::parse(&bytes).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_dpop_proof");
}

/// A registry whose clients can be removed while the layer runs.
#[derive(Clone)]
struct Mutable(std::sync::Arc<std::sync::Mutex<StaticClients>>);

impl ClientAuthenticator for Mutable {
    async fn authenticate(
        &self,
        credentials: &ClientCredentials,
        request: &http::request::Parts,
    ) -> Result<std::sync::Arc<Client>, ClientAuthError> {
        let inner = self.0.lock().unwrap().clone();
        inner.authenticate(credentials, request).await
    }

    async fn client(&self, id: &str) -> Result<Option<std::sync::Arc<Client>>, ClientAuthError> {
        let inner = self.0.lock().unwrap().clone();
        inner.client(id).await
    }
}

/// `CachingClients` answers lookups from memory, but JWT authentication
/// asks the wrapped registry: a removed client stops authenticating at
/// once, not when its cache entry expires.
#[tokio::test]
async fn a_removed_client_stops_authenticating_through_caching_clients() {
    let k = keys();
    let registry = Mutable(std::sync::Arc::new(std::sync::Mutex::new(registry())));
    let cached =
        tower_par::CachingClients::new(registry.clone(), std::time::Duration::from_secs(3600), 100);
    let (svc, _) = layered(&ParLayer::new(cached).issuer(ISS).unwrap());
    let a = assertion(K_ES256, &k.es256, |_| {});
    assert_eq!(send(&svc, push(K_ES256, &a)).await.status(), 201);
    *registry.0.lock().unwrap() = StaticClients::new();
    let a = assertion(K_ES256, &k.es256, |_| {});
    assert_refused(send(&svc, push(K_ES256, &a)).await, &a, &[]).await;
}
