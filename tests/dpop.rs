//! DPoP proofs at the PAR endpoint (RFC 9449 §10.1, §4.3, §8, §11):
//! real proofs signed by keys generated for the run, pushed through the
//! layer in-process, and the bound key checked where the wrapped service
//! sees it (the stored `dpop_jkt` and `PushedAuthorization::dpop_jkt()`)
//! after a redemption at `/authorize`.
#![cfg(feature = "jwt")]

mod common;
mod keys;

use std::convert::Infallible;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::Header;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tower::util::BoxCloneService;
use tower::{service_fn, Layer};
use tower_par::{
    AuthMethod, Client, Jwks, Par, ParLayer, ParRequestBody, Profile, PushedAuthorization,
    StaticClients,
};

use common::*;
use keys::{dpop_proof, jti, now, TestKey};

const ISSUER: &str = "https://as.example";
const PAR_URL: &str = "https://as.example/par";
const NONCE_SECRET: [u8; 32] = [0x5c; 32];

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

type Inner =
    BoxCloneService<Request<ParRequestBody<Full<Bytes>>>, Response<Full<Bytes>>, Infallible>;
type Svc = Par<Inner>;

/// Answers with what it received: `{"query", "dpop_jkt", "pushed_client_id"}`,
/// `dpop_jkt` read from the `PushedAuthorization` extension.
fn inner() -> Inner {
    BoxCloneService::new(service_fn(
        |req: Request<ParRequestBody<Full<Bytes>>>| async move {
            let par = req.extensions().get::<PushedAuthorization>();
            let seen = json!({
                "query": req.uri().query(),
                "dpop_jkt": par.and_then(|p| p.dpop_jkt()),
                "pushed_client_id": par.map(|p| p.client_id()),
            });
            let res = Response::builder()
                .header(ECHO_HEADER, "1")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(seen.to_string())))
                .unwrap();
            Ok::<_, Infallible>(res)
        },
    ))
}

fn svc(layer: &ParLayer) -> Svc {
    layer.layer(inner())
}

fn layer() -> ParLayer {
    ParLayer::new(spec_clients()).issuer(ISSUER).unwrap()
}

/// FAPI-5: a FAPI layer authenticates `private_key_jwt` clients only; `F`
/// is one, next to the spec clients.
const F: &str = "F";
const F_REDIRECT: &str = "https://f.example/cb";

fn f_key() -> &'static TestKey {
    static KEY: std::sync::OnceLock<TestKey> = std::sync::OnceLock::new();
    KEY.get_or_init(TestKey::es256)
}

fn fapi_layer() -> ParLayer {
    let clients = spec_clients()
        .with_client(
            Client::new(F, AuthMethod::PrivateKeyJwt)
                .redirect_uri(F_REDIRECT)
                .jwks(Jwks::from_value(f_key().jwks("f1")).unwrap()),
            None,
        )
        .unwrap();
    ParLayer::new(clients)
        .issuer(ISSUER)
        .unwrap()
        .profile(Profile::Fapi2)
}

/// `POST /par` as `F` (private_key_jwt) with the base body and `proof`.
fn fapi_push(proof: &str) -> Request<Full<Bytes>> {
    let header = Header {
        kid: Some("f1".into()),
        ..Header::default()
    };
    let assertion = f_key().sign(header, &keys::assertion_claims(F, json!(ISSUER)));
    let body = format!(
        "{}&{}",
        base_body_for(F, F_REDIRECT),
        form(&[
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            ),
            ("client_assertion", &assertion),
        ])
    );
    form_post("/par", body, &[("dpop", proof)])
}

/// The push of `proof` for the layer's profile: as `C` (Basic), or as `F`
/// under FAPI; with the client that redeems.
fn push_for(profile: &str, proof: &str) -> (Request<Full<Bytes>>, &'static str) {
    if profile == "fapi2" {
        (fapi_push(proof), F)
    } else {
        (push(proof), C)
    }
}

fn nonce_layer(secret: &[u8]) -> ParLayer {
    layer().dpop_nonce_secret(secret).unwrap()
}

/// `POST /par` as `C` (Basic) with `body` and the given `DPoP` headers.
fn push_with(body: &str, proofs: &[&str]) -> Request<Full<Bytes>> {
    let auth = basic(C, C_SECRET);
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(proofs.iter().map(|p| ("dpop", *p)));
    form_post("/par", body, &headers)
}

fn push(proof: &str) -> Request<Full<Bytes>> {
    push_with(&base_body(), &[proof])
}

/// A valid proof for the PAR endpoint.
fn proof(key: &TestKey) -> String {
    dpop_proof(key, "POST", PAR_URL, Map::new())
}

/// A proof with `claims` (merged over valid ones; `null` removes one).
fn proof_with(key: &TestKey, claims: Value) -> String {
    let mut all = json!({"jti": jti(), "htm": "POST", "htu": PAR_URL, "iat": now()});
    for (k, v) in claims.as_object().unwrap() {
        if v.is_null() {
            all.as_object_mut().unwrap().remove(k);
        } else {
            all[k] = v.clone();
        }
    }
    key.sign_raw(json!({"typ": "dpop+jwt", "jwk": key.public}), &all)
}

/// The RFC 7638 thumbprint, computed here from the required members in
/// lexicographic order.
fn thumbprint(jwk: &Value) -> String {
    let required: &[&str] = match jwk["kty"].as_str().unwrap() {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        other => panic!("kty {other}"),
    };
    let members: Vec<String> = required
        .iter()
        .map(|m| format!("\"{m}\":\"{}\"", jwk[*m].as_str().unwrap()))
        .collect();
    let canonical = format!("{{{}}}", members.join(","));
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Asserts `400 invalid_dpop_proof` whose description contains `expect`
/// and does not echo the proof.
async fn assert_refused<B>(res: Response<B>, proof: &str, expect: &str)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let description = assert_oauth_error(res, 400, "invalid_dpop_proof").await;
    assert!(
        description.contains(expect),
        "description {description:?} should contain {expect:?}"
    );
    for part in proof.split('.') {
        assert!(
            part.len() < 8 || !description.contains(part),
            "the proof is echoed"
        );
    }
}

async fn created_uri<B>(res: Response<B>) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    assert_created(res, 60).await
}

fn dpop_nonces(res: &Response<impl http_body::Body>) -> Vec<String> {
    res.headers()
        .get_all("dpop-nonce")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// Accepted proofs (DPOP-2, DPOP-11, FAPI-12)
// ---------------------------------------------------------------------------

/// DPOP-2 (b), DPOP-11, T65: a valid proof's key thumbprint is stored as
/// `dpop_jkt`; the wrapped service sees it as a parameter and in
/// `PushedAuthorization::dpop_jkt()`.
#[tokio::test]
async fn dpop2_valid_proofs_bind_the_request_to_their_key() {
    for (layer, profile) in [(layer(), "rfc9126"), (fapi_layer(), "fapi2")] {
        let svc = svc(&layer);
        for key in [TestKey::es256(), TestKey::ps256(), TestKey::ed25519()] {
            let (req, client) = push_for(profile, &proof(&key));
            let uri = created_uri(send(&svc, req).await).await;
            let seen = redeem(&svc, client, &uri).await;
            let jkt = thumbprint(&key.public);
            assert_eq!(seen["dpop_jkt"], jkt, "{profile} {:?}", key.alg);
            let query = seen["query"].as_str().unwrap();
            assert!(
                query.ends_with(&format!("&dpop_jkt={jkt}")),
                "{profile}: {query}"
            );
            assert_eq!(query.matches("dpop_jkt=").count(), 1);
        }
    }
}

/// DPOP-5: ES384 and RS256 are accepted in the default profile.
#[tokio::test]
async fn dpop5_other_asymmetric_algorithms_outside_fapi() {
    let svc = svc(&layer());
    for key in [
        TestKey::es384(),
        TestKey::rsa(jsonwebtoken::Algorithm::RS256, 2048),
    ] {
        created_uri(send(&svc, push(&proof(&key))).await).await;
    }
}

/// The validator sees the effective `dpop_jkt` too (DPOP-2: "as if sent").
#[tokio::test]
async fn dpop2_the_validator_sees_the_proof_key_as_dpop_jkt() {
    let key = TestKey::es256();
    let expected = thumbprint(&key.public);
    let layer = layer().validator(tower_par::validator_fn(move |ctx| {
        if ctx.params.get("dpop_jkt") == Some(expected.as_str()) {
            Ok(())
        } else {
            Err(tower_par::OAuthError::invalid_request("no dpop_jkt"))
        }
    }));
    let svc = svc(&layer);
    created_uri(send(&svc, push(&proof(&key))).await).await;
}

/// DPOP-3, T68: a pushed `dpop_jkt` equal to the proof key is accepted
/// (and stored once); another key's is refused.
#[tokio::test]
async fn dpop3_pushed_dpop_jkt_must_match_the_proof_key() {
    let svc = svc(&layer());
    let key = TestKey::es256();
    let jkt = thumbprint(&key.public);
    let body = format!("{}&dpop_jkt={jkt}", base_body());
    let uri = created_uri(send(&svc, push_with(&body, &[&proof(&key)])).await).await;
    let seen = redeem(&svc, C, &uri).await;
    assert_eq!(seen["dpop_jkt"], jkt);
    assert_eq!(
        seen["query"].as_str().unwrap().matches("dpop_jkt=").count(),
        1
    );

    let other = thumbprint(&TestKey::es256().public);
    let body = format!("{}&dpop_jkt={other}", base_body());
    let p = proof(&key);
    let res = send(&svc, push_with(&body, &[&p])).await;
    assert_refused(res, &p, "does not match the pushed dpop_jkt").await;
}

/// DPOP-3, PAR-11: a name that other parsers read as `dpop_jkt` cannot
/// carry a second binding past the comparison with the proof key.
#[tokio::test]
async fn dpop3_names_that_fold_onto_dpop_jkt_are_refused() {
    let svc = svc(&layer());
    let key = TestKey::es256();
    let other = thumbprint(&TestKey::es256().public);
    for name in ["DPOP_JKT", "DPoP_jkt", "dpop.jkt", "dpop_jkt[]"] {
        let body = format!("{}&{name}={other}", base_body());
        let res = send(&svc, push_with(&body, &[&proof(&key)])).await;
        let d = assert_oauth_error(res, 400, "invalid_request").await;
        assert!(
            d.contains("could be read as a checked parameter"),
            "{name}: {d}"
        );
        // Without a proof too: the format check cannot be sidestepped.
        let body = format!("{}&{name}=garbage", base_body());
        let res = send(&svc, push_with(&body, &[])).await;
        assert_oauth_error(res, 400, "invalid_request").await;
    }
}

/// DPOP-2 (a), T69: `dpop_jkt` alone is stored as pushed; a malformed one
/// is refused.
#[tokio::test]
async fn dpop1_pushed_dpop_jkt_without_proof_is_kept_and_checked() {
    let svc = svc(&layer());
    let jkt = thumbprint(&TestKey::ed25519().public);
    let uri = push_c_body(&svc, &format!("{}&dpop_jkt={jkt}", base_body())).await;
    assert_eq!(redeem(&svc, C, &uri).await["dpop_jkt"], jkt);
    // Without any, nothing is bound.
    let uri = push_c_body(&svc, &base_body()).await;
    assert_eq!(redeem(&svc, C, &uri).await["dpop_jkt"], Value::Null);

    for bad in ["short", &format!("{jkt}A"), &format!("{}%2B", &jkt[..42])] {
        let res = send(
            &svc,
            push_with(&format!("{}&dpop_jkt={bad}", base_body()), &[]),
        )
        .await;
        let d = assert_oauth_error(res, 400, "invalid_request").await;
        assert!(d.contains("43"), "{d}");
    }
}

async fn push_c_body(svc: &Svc, body: &str) -> String {
    created_uri(send(svc, push_with(body, &[])).await).await
}

// ---------------------------------------------------------------------------
// Refused proofs (DPOP-4, DPOP-5, DPOP-6, DPOP-9)
// ---------------------------------------------------------------------------

/// DPOP-4 item 1, T67.
#[tokio::test]
async fn dpop4_two_dpop_headers_are_refused() {
    let svc = svc(&layer());
    let key = TestKey::es256();
    let (a, b) = (proof(&key), proof(&key));
    let res = send(&svc, push_with(&base_body(), &[&a, &b])).await;
    assert_refused(res, &a, "exactly one DPoP header").await;
}

/// DPOP-4 item 4, T66: `typ` must be `dpop+jwt`.
#[tokio::test]
async fn dpop4_wrong_or_missing_typ_is_refused() {
    let svc = svc(&layer());
    let key = TestKey::es256();
    let claims = json!({"jti": jti(), "htm": "POST", "htu": PAR_URL, "iat": now()});
    for header in [
        json!({"typ": "JWT", "jwk": key.public}),
        json!({"jwk": key.public}),
    ] {
        let p = key.sign_raw(header, &claims);
        assert_refused(send(&svc, push(&p)).await, &p, "typ must be dpop+jwt").await;
    }
    // Media types compare without case (RFC 7515 §4.1.9).
    let p = key.sign_raw(json!({"typ": "DPoP+JWT", "jwk": key.public}), &claims);
    created_uri(send(&svc, push(&p)).await).await;
}

/// DPOP-5, T66: a MAC algorithm is never a proof algorithm.
#[tokio::test]
async fn dpop5_hs256_is_refused() {
    let svc = svc(&layer());
    let key = TestKey::es256();
    let claims = json!({"jti": jti(), "htm": "POST", "htu": PAR_URL, "iat": now()});
    let p = key.sign_raw(
        json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.public}),
        &claims,
    );
    assert_refused(send(&svc, push(&p)).await, &p, "alg HS256 is not allowed").await;
    // alg none, unsigned.
    let h = URL_SAFE_NO_PAD
        .encode(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.public}).to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let p = format!("{h}.{c}.");
    assert_oauth_error(send(&svc, push(&p)).await, 400, "invalid_dpop_proof").await;
}

/// FAPI-25 (via DPOP-4 item 5): under FAPI 2.0 only PS256, ES256, EdDSA.
#[tokio::test]
async fn fapi25_proof_algorithms_outside_the_fapi_set_are_refused() {
    let svc = svc(&fapi_layer());
    for key in [
        TestKey::es384(),
        TestKey::rsa(jsonwebtoken::Algorithm::RS256, 2048),
    ] {
        let p = proof(&key);
        assert_refused(
            send(&svc, fapi_push(&p)).await,
            &p,
            "expected one of PS256, ES256, EdDSA",
        )
        .await;
    }
}

/// DPOP-4 item 7, DPOP-5: the header's `jwk` must be public.
#[tokio::test]
async fn dpop4_private_key_in_jwk_is_refused() {
    let svc = svc(&layer());
    let key = TestKey::es256();
    let mut jwk = key.public.clone();
    jwk["d"] = json!(URL_SAFE_NO_PAD.encode([1u8; 32]));
    let claims = json!({"jti": jti(), "htm": "POST", "htu": PAR_URL, "iat": now()});
    let p = key.sign_raw(json!({"typ": "dpop+jwt", "jwk": jwk}), &claims);
    assert_refused(send(&svc, push(&p)).await, &p, "private key member 'd'").await;
    // No jwk at all.
    let p = key.sign_raw(json!({"typ": "dpop+jwt"}), &claims);
    assert_refused(send(&svc, push(&p)).await, &p, "no 'jwk'").await;
}

/// DPOP-4 item 3: `jti`, `htm`, `htu` and `iat` are required.
#[tokio::test]
async fn dpop4_missing_claims_are_refused() {
    let svc = svc(&layer());
    let key = TestKey::es256();
    for claim in ["jti", "htm", "htu", "iat"] {
        let p = proof_with(&key, json!({ claim: null }));
        assert_refused(send(&svc, push(&p)).await, &p, &format!(" {claim} claim")).await;
    }
    let p = proof_with(&key, json!({"iat": "yesterday"}));
    assert_refused(send(&svc, push(&p)).await, &p, "NumericDate").await;
}

/// DPOP-4 item 8, T66: `htm` is the request method.
#[tokio::test]
async fn dpop4_htm_other_than_post_is_refused() {
    let svc = svc(&layer());
    let key = TestKey::es256();
    for htm in ["GET", "post"] {
        let p = proof_with(&key, json!({ "htm": htm }));
        assert_refused(send(&svc, push(&p)).await, &p, "htm must be POST").await;
    }
}

/// DPOP-4 item 9, T66: `htu` is the PAR endpoint URL of the configuration.
#[tokio::test]
async fn dpop4_htu_must_be_the_configured_par_url() {
    let svc = svc(&layer());
    let key = TestKey::es256();
    for htu in [
        "https://other.example/par",
        "https://as.example/token",
        "https://as.example/par/x",
        "https://as.example:8443/par",
        "http://as.example/par",
        "/par",
        // Not RFC 3986 authorities: a second port, a colon in a reg-name.
        "https://as.example:443:443/par",
        "https://as.example:0443:/par",
        "https://as.example\\@evil.example/par",
    ] {
        let p = proof_with(&key, json!({ "htu": htu }));
        assert_refused(
            send(&svc, push(&p)).await,
            &p,
            "htu must be https://as.example/par",
        )
        .await;
    }
    // Equal after RFC 3986 normalisation, query and fragment ignored.
    for htu in [
        "HTTPS://AS.example:443/par",
        "https://as.example/%70ar",
        "https://as.example/par?x=1#f",
    ] {
        let p = proof_with(&key, json!({ "htu": htu }));
        created_uri(send(&svc, push(&p)).await).await;
    }
}

/// DPOP-4 item 9, META-16: the URL comes from configuration, not `Host`:
/// `par_endpoint_url` when set; nothing configured, nothing accepted.
#[tokio::test]
async fn dpop4_htu_is_taken_from_configuration_only() {
    let key = TestKey::es256();
    let svc1 = svc(&layer()
        .par_endpoint_url("https://par.as.example/oauth/par")
        .unwrap());
    let p = proof_with(&key, json!({"htu": "https://par.as.example/oauth/par"}));
    created_uri(send(&svc1, push(&p)).await).await;
    let p = proof(&key);
    let mut req = push(&p);
    req.headers_mut()
        .insert("host", "as.example".parse().unwrap());
    assert_refused(send(&svc1, req).await, &p, "htu must be").await;

    let unconfigured = svc(&ParLayer::new(spec_clients()));
    let p = proof(&key);
    assert_refused(
        send(&unconfigured, push(&p)).await,
        &p,
        "neither an issuer nor a par_endpoint_url",
    )
    .await;
}

/// DPOP-9, FAPI-13, T71: `iat` within the window: not older than the
/// maximum age plus leeway, not further ahead than the leeway.
#[tokio::test]
async fn dpop9_iat_outside_the_window_is_refused() {
    let key = TestKey::es256();
    for (layer, name) in [(layer(), "rfc9126"), (fapi_layer(), "fapi2")] {
        let svc = svc(&layer);
        for iat in [now() - 3600, now() - 60 - 30 - 5] {
            let p = proof_with(&key, json!({ "iat": iat }));
            assert_refused(send(&svc, push_for(name, &p).0).await, &p, "too old").await;
        }
        let p = proof_with(&key, json!({"iat": now() + 120}));
        assert_refused(send(&svc, push_for(name, &p).0).await, &p, "in the future").await;
        // FAPI-13: 0 to 10 s ahead is accepted, and so is a proof a
        // little older than the maximum age (the leeway).
        for iat in [now() + 5, now() - 65] {
            let p = proof_with(&key, json!({ "iat": iat }));
            let res = send(&svc, push_for(name, &p).0).await;
            assert_eq!(res.status(), StatusCode::CREATED, "{name} iat {iat}");
        }
    }
}

/// DPOP-9, DPOP-4: a proof is used once (`jti` replay cache).
#[tokio::test]
async fn dpop9_a_replayed_proof_is_refused() {
    let svc = svc(&layer());
    let key = TestKey::es256();
    let p = proof(&key);
    created_uri(send(&svc, push(&p)).await).await;
    assert_refused(send(&svc, push(&p)).await, &p, "already used").await;
    // Another jti from the same key is fine.
    created_uri(send(&svc, push(&proof(&key))).await).await;
}

/// DPOP-4 item 6: the signature must verify with the header's key.
#[tokio::test]
async fn dpop4_bad_signature_is_refused() {
    let svc = svc(&layer());
    let key = TestKey::es256();
    let other = TestKey::es256();
    let claims = json!({"jti": jti(), "htm": "POST", "htu": PAR_URL, "iat": now()});
    let p = other.sign_raw(json!({"typ": "dpop+jwt", "jwk": key.public}), &claims);
    assert_refused(send(&svc, push(&p)).await, &p, "signature does not verify").await;
    // Claims changed after signing.
    let good = proof(&key);
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD
        .encode(json!({"jti": jti(), "htm": "POST", "htu": PAR_URL, "iat": now() + 1}).to_string());
    let p = parts.join(".");
    assert_refused(send(&svc, push(&p)).await, &p, "signature does not verify").await;
    // Not a JWS at all.
    assert_refused(send(&svc, push("abc")).await, "abc", "compact JWS").await;
}

/// DPOP-6: the wrapped service is never called for a push, refused or not.
#[tokio::test]
async fn dpop6_refusals_are_json_and_never_reach_the_wrapped_service() {
    let (svc, calls) = layered(&layer());
    let key = TestKey::es256();
    let p = proof_with(&key, json!({"htm": "GET"}));
    let res = send(&svc, push(&p)).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("dpop-nonce").is_none());
    assert_oauth_error(res, 400, "invalid_dpop_proof").await;
    assert_eq!(calls.count(), 0);
}

// ---------------------------------------------------------------------------
// Server nonces (DPOP-7, DPOP-8)
// ---------------------------------------------------------------------------

/// DPOP-7, T70: without a nonce, `400 use_dpop_nonce` with exactly one
/// `DPoP-Nonce` header; the client's retry with that nonce is accepted,
/// and the 201 carries a nonce for the next proof.
#[tokio::test]
async fn dpop7_nonce_retry_as_a_client_does_it() {
    let svc = svc(&nonce_layer(&NONCE_SECRET));
    let key = TestKey::es256();
    let res = send(&svc, push(&proof(&key))).await;
    let nonces = dpop_nonces(&res);
    assert_eq!(nonces.len(), 1, "exactly one DPoP-Nonce");
    // Readable by a browser client's script (Fetch: exposed headers).
    assert_eq!(res.headers()["access-control-expose-headers"], "DPoP-Nonce");
    let d = assert_oauth_error(res, 400, "use_dpop_nonce").await;
    assert!(d.contains("requires a nonce"), "{d}");

    let nonce = &nonces[0];
    let p = proof_with(&key, json!({ "nonce": nonce }));
    let res = send(&svc, push(&p)).await;
    assert_eq!(dpop_nonces(&res).len(), 1, "a nonce for the next proof");
    assert_eq!(res.headers()["access-control-expose-headers"], "DPoP-Nonce");
    let uri = created_uri(res).await;
    assert_eq!(
        redeem(&svc, C, &uri).await["dpop_jkt"],
        thumbprint(&key.public)
    );
}

/// DPOP-7 with a client assertion: the nonce is asked for before the
/// assertion's `jti` is spent, so a client that retries with the same
/// assertion and a new proof gets in, and the assertion is single use
/// from then on (AUTH-13).
#[tokio::test]
async fn dpop7_the_nonce_retry_can_reuse_the_client_assertion() {
    let svc = svc(&fapi_layer().dpop_nonce_secret(NONCE_SECRET).unwrap());
    let key = TestKey::es256();
    let first = fapi_push(&proof(&key));
    let (parts, body) = first.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    let again = |proof: &str| {
        let mut req = Request::from_parts(parts.clone(), Full::new(body.clone()));
        req.headers_mut().insert("dpop", proof.parse().unwrap());
        req
    };
    let res = send(&svc, again(&proof(&key))).await;
    let nonces = dpop_nonces(&res);
    assert_oauth_error(res, 400, "use_dpop_nonce").await;
    let with_nonce = |nonce: &str| proof_with(&key, json!({ "nonce": nonce }));
    let res = send(&svc, again(&with_nonce(&nonces[0]))).await;
    let next = dpop_nonces(&res);
    let uri = created_uri(res).await;
    assert_eq!(
        redeem(&svc, F, &uri).await["dpop_jkt"],
        thumbprint(&key.public)
    );
    // The same assertion a third time: spent.
    let res = send(&svc, again(&with_nonce(&next[0]))).await;
    let d = assert_oauth_error(res, 401, "invalid_client").await;
    assert!(d.contains("already used"), "{d}");
}

/// DPOP-7: a nonce the server did not issue (forged, from another
/// secret) is refused with a fresh nonce; DPOP-8: so is a proof without
/// one, even after nonces were handed out.
#[tokio::test]
async fn dpop7_forged_and_foreign_nonces_are_refused() {
    let svc = svc(&nonce_layer(&NONCE_SECRET));
    let foreign = svc_nonce(&nonce_layer(&[0x11; 32])).await;
    let key = TestKey::es256();
    for nonce in [
        "forged".to_owned(),
        URL_SAFE_NO_PAD.encode([0u8; 24]),
        foreign,
    ] {
        let p = proof_with(&key, json!({ "nonce": nonce }));
        let res = send(&svc, push(&p)).await;
        let fresh = dpop_nonces(&res);
        assert_eq!(fresh.len(), 1);
        assert_ne!(fresh[0], nonce);
        let d = assert_oauth_error(res, 400, "use_dpop_nonce").await;
        assert!(d.contains("not a recent nonce"), "{d}");
    }
    let res = send(&svc, push(&proof(&key))).await;
    assert_oauth_error(res, 400, "use_dpop_nonce").await;
}

/// The nonce a layer hands out, read from its `use_dpop_nonce` answer.
async fn svc_nonce(layer: &ParLayer) -> String {
    let res = send(&svc(layer), push(&proof(&TestKey::es256()))).await;
    let nonces = dpop_nonces(&res);
    assert_eq!(res.status(), 400);
    nonces.into_iter().next().expect("a DPoP-Nonce")
}

/// DPOP-7 (stateless nonces): a second instance with the same secret
/// accepts the first one's nonce.
#[tokio::test]
async fn dpop7_instances_with_the_same_secret_accept_each_others_nonces() {
    let first = nonce_layer(&NONCE_SECRET);
    let nonce = svc_nonce(&first).await;
    let second = svc(&nonce_layer(&NONCE_SECRET));
    let key = TestKey::ed25519();
    let p = proof_with(&key, json!({ "nonce": nonce }));
    created_uri(send(&second, push(&p)).await).await;
}

/// Without nonces configured, a `nonce` claim is not required nor
/// checked, and no `DPoP-Nonce` is sent.
#[tokio::test]
async fn dpop7_without_a_nonce_secret_no_nonce_is_involved() {
    let svc = svc(&layer());
    let key = TestKey::es256();
    let res = send(&svc, push(&proof_with(&key, json!({"nonce": "x"})))).await;
    assert!(res.headers().get("dpop-nonce").is_none());
    created_uri(res).await;
}

// ---------------------------------------------------------------------------
// With a request object (DPOP-3 with JAR-6)
// ---------------------------------------------------------------------------

/// The proof binds a request pushed as a signed request object; a
/// `dpop_jkt` claim of another key is refused (DPOP-3).
#[tokio::test]
async fn dpop3_with_a_request_object() {
    let signer = TestKey::es256();
    let clients = StaticClients::new()
        .with_client(
            Client::new("J", AuthMethod::ClientSecretBasic)
                .redirect_uri("https://j.example/cb")
                .jwks(Jwks::from_value(signer.jwks("k1")).unwrap()),
            Some("j-secret"),
        )
        .unwrap();
    let svc = svc(&ParLayer::new(clients).issuer(ISSUER).unwrap());
    let dpop = TestKey::ed25519();
    let object = |extra: Value| {
        let mut claims = json!({
            "iss": "J", "aud": ISSUER, "client_id": "J", "response_type": "code",
            "redirect_uri": "https://j.example/cb", "scope": "openid",
            "code_challenge": S256_CHALLENGE, "code_challenge_method": "S256",
            "exp": now() + 300, "nbf": now(),
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let mut h = Header::new(signer.alg);
        h.kid = Some("k1".into());
        signer.sign(h, &claims)
    };
    let push_object = |request: String, p: String| {
        let body = form(&[("request", &request)]);
        form_post(
            "/par",
            body,
            &[("authorization", &basic("J", "j-secret")), ("dpop", &p)],
        )
    };
    let uri = created_uri(send(&svc, push_object(object(json!({})), proof(&dpop))).await).await;
    let seen = redeem(&svc, "J", &uri).await;
    assert_eq!(seen["dpop_jkt"], thumbprint(&dpop.public));

    let other = thumbprint(&TestKey::es256().public);
    let p = proof(&dpop);
    let res = send(
        &svc,
        push_object(object(json!({ "dpop_jkt": other })), p.clone()),
    )
    .await;
    assert_refused(res, &p, "does not match the pushed dpop_jkt").await;
}
