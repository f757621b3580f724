//! Signed request objects at the PAR endpoint (RFC 9101, RFC 9126 §3):
//! real JWTs signed by keys generated for the run, pushed through the layer
//! in-process, and what the wrapped service receives checked through a
//! redemption at `/authorize`.
#![cfg(feature = "jwt")]

mod common;
mod keys;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::Response;
use jsonwebtoken::{Algorithm, Header};
use serde_json::{json, Value};
use tower_par::{
    validator_fn, AuthMethod, BoxFuture, Client, FetchedJwks, Jwks, JwksFetchError, JwksFetcher,
    OAuthError, ParLayer, Profile, StaticClients,
};

use common::*;
use keys::{jti, now, sign_hmac, TestKey};

const ISSUER: &str = "https://as.example";
/// A Basic client whose request objects are verified with its `jwks`.
const J: &str = "J";
const J_SECRET: &str = "j-secret";
const J_REDIRECT: &str = "https://j.example/cb";
/// Registered with `request_object_signing_alg` ES256.
const PIN: &str = "PIN";
/// Registered with `require_signed_request_object`.
const SIGNED: &str = "SIGNED";
/// Keys only at a `jwks_uri`.
const URI_ONLY: &str = "URI_ONLY";

/// The keys of the run: J signs with `es`, and holds `ed` under `k2`
/// too; PIN holds both an ES256 and a PS256 key.
struct Keys {
    es: TestKey,
    ed: TestKey,
    ps: TestKey,
}

fn keys() -> Keys {
    Keys {
        es: TestKey::es256(),
        ed: TestKey::ed25519(),
        ps: TestKey::ps256(),
    }
}

fn clients(k: &Keys) -> StaticClients {
    let two = Jwks::from_value(json!({"keys": [k.es.jwk_with_kid("k1"), k.ed.jwk_with_kid("k2")]}))
        .unwrap();
    let pin = Jwks::from_value(json!({"keys": [k.es.jwk_with_kid("k1"), k.ps.jwk_with_kid("k3")]}))
        .unwrap();
    let client = |id: &str| Client::new(id, AuthMethod::ClientSecretBasic).redirect_uri(J_REDIRECT);
    let secret = |id: &str| format!("{id}-secret").to_lowercase();
    StaticClients::new()
        .with_client(client(J).jwks(two.clone()), Some(J_SECRET))
        .and_then(|r| {
            r.with_client(
                client(PIN).jwks(pin).request_object_signing_alg("ES256"),
                Some(&secret(PIN)),
            )
        })
        .and_then(|r| {
            r.with_client(
                client(SIGNED).jwks(two).require_signed_request_object(true),
                Some(&secret(SIGNED)),
            )
        })
        .and_then(|r| {
            r.with_client(
                client(URI_ONLY).jwks_uri("https://j.example/jwks.json"),
                Some(&secret(URI_ONLY)),
            )
        })
        .and_then(|r| r.with_client(client(C), Some(C_SECRET)))
        .unwrap()
}

/// The keys published at [`URI_ONLY`]'s `jwks_uri`, as a JWKS endpoint
/// would serve them (no network: the layer's fetcher is this one).
struct Published(Value);

impl JwksFetcher for Published {
    fn fetch<'a>(
        &'a self,
        jwks_uri: &'a str,
    ) -> BoxFuture<'a, Result<FetchedJwks, JwksFetchError>> {
        Box::pin(async move {
            if jwks_uri != "https://j.example/jwks.json" {
                return Err(JwksFetchError::new("no such jwks_uri"));
            }
            let jwks = Jwks::from_value(self.0.clone()).map_err(JwksFetchError::new)?;
            Ok(FetchedJwks::new(jwks, None))
        })
    }
}

fn layer(k: &Keys) -> ParLayer {
    ParLayer::new(clients(k))
        .issuer(ISSUER)
        .unwrap()
        .jwks_fetcher(Published(json!({"keys": [k.es.jwk_with_kid("k1")]})))
}

fn auth(id: &str) -> String {
    let secret = if id == J {
        J_SECRET.to_owned()
    } else if id == C {
        C_SECRET.to_owned()
    } else {
        format!("{id}-secret").to_lowercase()
    };
    basic(id, &secret)
}

/// The claims of a valid request object of `client_id`.
fn claims(client_id: &str) -> Value {
    json!({
        "iss": client_id, "aud": ISSUER, "client_id": client_id,
        "response_type": "code", "redirect_uri": J_REDIRECT, "scope": "openid",
        "state": "s1", "code_challenge": S256_CHALLENGE, "code_challenge_method": "S256",
        "iat": now(), "nbf": now(), "exp": now() + 300, "jti": jti(),
    })
}

/// `claims` with `changes` merged in (`null` removes a claim).
fn claims_with(client_id: &str, changes: Value) -> Value {
    let mut c = claims(client_id);
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(key: &TestKey, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(key.alg);
    h.kid = Some(kid.into());
    h.typ = Some("oauth-authz-req+jwt".into());
    key.sign(h, claims)
}

/// `POST /par` as `client_id` (Basic) with `request` and other pairs.
fn push_object(
    client_id: &str,
    request: &str,
    extra: &[(&str, &str)],
) -> http::Request<http_body_util::Full<Bytes>> {
    let mut pairs = vec![("request", request)];
    pairs.extend_from_slice(extra);
    form_post("/par", form(&pairs), &[("authorization", &auth(client_id))])
}

/// Asserts `400 invalid_request_object` whose description contains
/// `expect` and does not echo the object.
async fn assert_refused<B>(res: Response<B>, token: &str, expect: &str)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let d = assert_oauth_error(res, 400, "invalid_request_object").await;
    assert!(
        d.contains(expect),
        "description {d:?} should contain {expect:?}"
    );
    for part in token.split('.') {
        assert!(part.len() < 8 || !d.contains(part), "the object is echoed");
    }
}

/// The query the wrapped service received, as decoded pairs.
fn pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(query).unwrap()
}

// ---------------------------------------------------------------------------
// Accepted objects (PAR-24..26, JAR-1, JAR-6)
// ---------------------------------------------------------------------------

/// T57, T64, JAR-6, PAR-25: only the object's claims are stored: a form
/// parameter outside it never reaches the wrapped service; the registered
/// JWT claims are left out; numbers, booleans and JSON claims arrive as
/// their text (JAR-1).
#[tokio::test]
async fn jar6_only_the_objects_claims_are_stored() {
    let k = keys();
    let (svc, calls) = layered(&layer(&k));
    let object = sign(
        &k.es,
        "k1",
        &claims_with(
            J,
            json!({
                "max_age": 300,
                "x_flag": true,
                "claims": {"id_token": {"acr": {"essential": true, "values": ["urn:a"]}}},
                "authorization_details": [{"type": "payment_initiation", "amount": 12.5}],
            }),
        ),
    );
    let res = send(
        &svc,
        push_object(
            J,
            &object,
            &[
                ("client_id", J),
                ("scope", "openid admin"),
                ("login_hint", "mallory"),
                ("redirect_uri", "https://evil.example/cb"),
            ],
        ),
    )
    .await;
    let uri = assert_created(res, 60).await;
    assert_eq!(calls.count(), 0);
    let seen = redeem(&svc, J, &uri).await;
    let got = pairs(seen["query"].as_str().unwrap());
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "client_id",
            "response_type",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
            "max_age",
            "x_flag",
            "claims",
            "authorization_details",
        ]
    );
    let get = |n: &str| got.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get("scope"), Some("openid"));
    assert_eq!(get("redirect_uri"), Some(J_REDIRECT));
    assert_eq!(get("max_age"), Some("300"));
    assert_eq!(get("x_flag"), Some("true"));
    let claims: Value = serde_json::from_str(get("claims").unwrap()).unwrap();
    assert_eq!(claims["id_token"]["acr"]["values"][0], "urn:a");
    assert_eq!(
        get("authorization_details"),
        Some(r#"[{"type":"payment_initiation","amount":12.5}]"#)
    );
    assert_eq!(seen["pushed_client_id"], J);
}

/// JAR-5: `kid` selects the key; a set's second key verifies objects that
/// name it, and an object without `kid` is tried against the keys that fit.
#[tokio::test]
async fn jar5_kid_selects_the_key() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    let object = sign(&k.ed, "k2", &claims(J));
    assert_created(send(&svc, push_object(J, &object, &[])).await, 60).await;
    let object = k.es.sign(Header::new(Algorithm::ES256), &claims(J));
    assert_created(send(&svc, push_object(J, &object, &[])).await, 60).await;
    // The kid of another key of the client: refused.
    let object = sign(&k.ed, "k1", &claims(J));
    assert_refused(
        send(&svc, push_object(J, &object, &[])).await,
        &object,
        "kid",
    )
    .await;
}

/// PAR-11 via JAR: the object's request goes through the same validation
/// as a plain push: built-in rules and the user's validator, which sees the
/// object's parameters.
#[tokio::test]
async fn jar6_the_objects_request_is_validated_like_a_plain_push() {
    let k = keys();
    let layer = layer(&k).validator(validator_fn(|ctx| {
        if ctx.params.get("scope") == Some("openid") && !ctx.params.contains("request") {
            Ok(())
        } else {
            Err(OAuthError::invalid_scope("the validator saw the form"))
        }
    }));
    let (svc, _) = layered(&layer);
    let object = sign(&k.es, "k1", &claims(J));
    let res = send(&svc, push_object(J, &object, &[("scope", "openid admin")])).await;
    assert_created(res, 60).await;
    // A redirect URI the client did not register, inside the object.
    let object = sign(
        &k.es,
        "k1",
        &claims_with(J, json!({"redirect_uri": "https://evil.example/cb"})),
    );
    let res = send(&svc, push_object(J, &object, &[])).await;
    assert_oauth_error(res, 400, "invalid_request").await;
    // A confusable parameter name inside the object.
    let object = sign(&k.es, "k1", &claims_with(J, json!({"Redirect_Uri": "x"})));
    let res = send(&svc, push_object(J, &object, &[])).await;
    assert_oauth_error(res, 400, "invalid_request").await;
}

/// A request object whose `exp` comes before the lifetime shortens
/// `expires_in` (and the stored lifetime).
#[tokio::test]
async fn jar11_exp_shortens_expires_in() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    let object = sign(&k.es, "k1", &claims_with(J, json!({"exp": now() + 20})));
    let res = send(&svc, push_object(J, &object, &[])).await;
    assert_eq!(res.status(), 201);
    let body = body_json(res).await;
    let expires_in = body["expires_in"].as_u64().unwrap();
    assert!((19..=20).contains(&expires_in), "expires_in {expires_in}");
    // A later exp leaves the layer's lifetime.
    let object = sign(&k.es, "k1", &claims_with(J, json!({"exp": now() + 3000})));
    assert_created(send(&svc, push_object(J, &object, &[])).await, 60).await;
}

// ---------------------------------------------------------------------------
// Refused objects (JAR-3..9, PAR-26, FAPI 2.0 Message Signing)
// ---------------------------------------------------------------------------

/// JAR-6, JAR-9, PAR-26, T60: the form's `client_id`, the claim and the
/// authenticated client are one client.
#[tokio::test]
async fn jar9_client_id_mismatches_are_refused() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    let object = sign(&k.es, "k1", &claims(J));
    // The form's client_id disagrees with Basic: refused before the object
    // is read (AUTH-9).
    let res = send(&svc, push_object(J, &object, &[("client_id", C)])).await;
    assert_oauth_error(res, 401, "invalid_client").await;
    // Authenticated as J, object of PIN (signed with a key J holds).
    let object = sign(&k.es, "k1", &claims_with(J, json!({"client_id": PIN})));
    assert_refused(
        send(&svc, push_object(J, &object, &[])).await,
        &object,
        "must be the authenticated client",
    )
    .await;
    // No client_id claim at all.
    let object = sign(&k.es, "k1", &claims_with(J, json!({"client_id": null})));
    assert_refused(
        send(&svc, push_object(J, &object, &[])).await,
        &object,
        "must have a client_id claim",
    )
    .await;
}

/// JAR-9: a form `client_id` that differs from the claim, for a client
/// authenticated without Basic (the form names it).
#[tokio::test]
async fn jar9_form_client_id_must_equal_the_claim() {
    let k = keys();
    let client = Client::new("PUB", AuthMethod::None)
        .redirect_uri(J_REDIRECT)
        .jwks(Jwks::from_value(k.es.jwks("k1")).unwrap());
    let clients = StaticClients::new().with_client(client, None).unwrap();
    let (svc, _) = layered(&ParLayer::new(clients).issuer(ISSUER).unwrap());
    let object = sign(
        &k.es,
        "k1",
        &claims_with("PUB", json!({"client_id": "OTHER"})),
    );
    let res = send(
        &svc,
        form_post(
            "/par",
            form(&[("client_id", "PUB"), ("request", &object)]),
            &[],
        ),
    )
    .await;
    assert_refused(res, &object, "must be the authenticated client").await;
    let object = sign(&k.es, "k1", &claims("PUB"));
    let res = send(
        &svc,
        form_post(
            "/par",
            form(&[("client_id", "PUB"), ("request", &object)]),
            &[],
        ),
    )
    .await;
    assert_created(res, 60).await;
}

/// PAR-26: `iss`, when present, is the client; absent is accepted.
#[tokio::test]
async fn par26_iss_must_be_the_client() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    for iss in [json!(PIN), json!(ISSUER), json!(["J"])] {
        let object = sign(&k.es, "k1", &claims_with(J, json!({ "iss": iss })));
        assert_refused(
            send(&svc, push_object(J, &object, &[])).await,
            &object,
            "iss must be the client_id",
        )
        .await;
    }
    let object = sign(&k.es, "k1", &claims_with(J, json!({"iss": null})));
    assert_created(send(&svc, push_object(J, &object, &[])).await, 60).await;
}

/// JAR-2: `aud` is, or contains, the issuer; a layer without issuer
/// cannot check it and says so.
#[tokio::test]
async fn jar2_aud_must_name_the_issuer() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    for aud in [
        json!("https://other.example"),
        json!(["https://other.example"]),
        json!("https://as.example/par"),
        json!(null),
    ] {
        let object = sign(&k.es, "k1", &claims_with(J, json!({ "aud": aud })));
        assert_refused(
            send(&svc, push_object(J, &object, &[])).await,
            &object,
            "aud must be the issuer https://as.example",
        )
        .await;
    }
    let object = sign(
        &k.es,
        "k1",
        &claims_with(J, json!({"aud": ["https://other.example", ISSUER]})),
    );
    assert_created(send(&svc, push_object(J, &object, &[])).await, 60).await;

    let (no_issuer, _) = layered(&ParLayer::new(clients(&k)));
    let object = sign(&k.es, "k1", &claims(J));
    assert_refused(
        send(&no_issuer, push_object(J, &object, &[])).await,
        &object,
        "no issuer configured",
    )
    .await;
}

/// JAR-11: `exp` and `nbf` with the leeway; `iat` not ahead either.
#[tokio::test]
async fn jar11_expired_and_not_yet_valid_objects_are_refused() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    for (changes, expect) in [
        (json!({"exp": now() - 120}), "has expired"),
        (json!({"nbf": now() + 120}), "nbf is in the future"),
        (json!({"iat": now() + 120}), "iat is in the future"),
        (json!({"exp": "tomorrow"}), "NumericDate"),
    ] {
        let object = sign(&k.es, "k1", &claims_with(J, changes));
        assert_refused(
            send(&svc, push_object(J, &object, &[])).await,
            &object,
            expect,
        )
        .await;
    }
    // Within the leeway, and without exp or nbf outside FAPI.
    for changes in [
        json!({"exp": now() - 10, "nbf": now() + 10}),
        json!({"exp": null, "nbf": null}),
    ] {
        let object = sign(&k.es, "k1", &claims_with(J, changes));
        let res = send(&svc, push_object(J, &object, &[])).await;
        assert_eq!(res.status(), 201);
    }
}

/// FAPI 2.0 Message Signing: `exp` and `nbf` required, at most 60 minutes
/// apart.
#[tokio::test]
async fn fapi_request_objects_need_exp_and_nbf_within_an_hour() {
    let k = keys();
    // FAPI-5: under FAPI, J authenticates with private_key_jwt (its key k1).
    let two = Jwks::from_value(json!({"keys": [k.es.jwk_with_kid("k1"), k.ed.jwk_with_kid("k2")]}))
        .unwrap();
    let fapi_clients = StaticClients::new()
        .with_client(
            Client::new(J, AuthMethod::PrivateKeyJwt)
                .redirect_uri(J_REDIRECT)
                .jwks(two),
            None,
        )
        .unwrap();
    let fapi = ParLayer::new(fapi_clients)
        .issuer(ISSUER)
        .unwrap()
        .profile(Profile::Fapi2);
    let (svc, _) = layered(&fapi);
    let push_object = |client_id: &str, object: &str, _extra: &[(&str, &str)]| {
        let mut h = Header::new(k.es.alg);
        h.kid = Some("k1".into());
        let assertion =
            k.es.sign(h, &keys::assertion_claims(client_id, json!(ISSUER)));
        let body = form(&[
            ("request", object),
            ("client_id", client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ]);
        form_post("/par", body, &[])
    };
    for (changes, expect) in [
        (
            json!({"exp": now() + 3700, "nbf": now() - 10}),
            "at most 3600 s after its nbf",
        ),
        (json!({"exp": null}), "must have exp and nbf"),
        (json!({"nbf": null}), "must have exp and nbf"),
    ] {
        let object = sign(&k.es, "k1", &claims_with(J, changes));
        assert_refused(
            send(&svc, push_object(J, &object, &[])).await,
            &object,
            expect,
        )
        .await;
    }
    let object = sign(
        &k.es,
        "k1",
        &claims_with(J, json!({"exp": now() + 3590, "nbf": now() - 5})),
    );
    assert_created(send(&svc, push_object(J, &object, &[])).await, 60).await;
    // FAPI-25: ES256, PS256, EdDSA only; an ES384 key would not verify.
    let object = sign(&k.ed, "k2", &claims(J));
    assert_created(send(&svc, push_object(J, &object, &[])).await, 60).await;
}

/// JAR-1, JAR-9, T61: no `request` or `request_uri` inside the object.
#[tokio::test]
async fn jar1_request_and_request_uri_claims_are_refused() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    for claim in ["request", "request_uri"] {
        let object = sign(
            &k.es,
            "k1",
            &claims_with(J, json!({ claim: "urn:ietf:params:oauth:request_uri:x" })),
        );
        assert_refused(
            send(&svc, push_object(J, &object, &[])).await,
            &object,
            &format!("must not contain a {claim} claim"),
        )
        .await;
    }
}

/// JAR-3, T59: an unsigned object (`alg: none`) is refused.
#[tokio::test]
async fn jar3_alg_none_is_refused() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let c = URL_SAFE_NO_PAD.encode(claims(J).to_string());
    let object = format!("{h}.{c}.");
    assert_refused(
        send(&svc, push_object(J, &object, &[])).await,
        &object,
        "alg none is refused",
    )
    .await;
}

/// AUTH-17, JAR-10: a JWT typed for another purpose (a client assertion, a
/// DPoP proof) is refused as a request object even when the client signed
/// it; untyped and `JWT` objects are accepted.
#[tokio::test]
async fn jar10_jwts_typed_for_another_purpose_are_refused() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    for typ in [
        "client-authentication+jwt",
        "dpop+jwt",
        "at+jwt",
        "application/dpop+jwt",
    ] {
        let mut h = Header::new(k.es.alg);
        h.kid = Some("k1".into());
        h.typ = Some(typ.into());
        let object = k.es.sign(h, &claims(J));
        assert_refused(
            send(&svc, push_object(J, &object, &[])).await,
            &object,
            "typ must be oauth-authz-req+jwt",
        )
        .await;
    }
    for typ in [None, Some("JWT"), Some("application/oauth-authz-req+jwt")] {
        let mut h = Header::new(k.es.alg);
        h.kid = Some("k1".into());
        h.typ = typ.map(str::to_owned);
        let object = k.es.sign(h, &claims(J));
        let res = send(&svc, push_object(J, &object, &[])).await;
        assert_eq!(res.status(), 201, "{typ:?}");
    }
}

/// JAR-5, RFC 8725 §3.1: HMAC objects are refused (the layer verifies
/// request objects with the client's public keys only).
#[tokio::test]
async fn jar5_hs256_is_refused() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    let object = sign_hmac(Algorithm::HS256, J_SECRET.as_bytes(), &claims(J));
    assert_refused(
        send(&svc, push_object(J, &object, &[])).await,
        &object,
        "alg HS256 is not allowed",
    )
    .await;
}

/// JAR-5, JAR-8: a client registered for one algorithm gets only that one.
#[tokio::test]
async fn jar5_only_the_registered_algorithm_is_accepted() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    let object = sign(&k.ps, "k3", &claims(PIN));
    assert_refused(
        send(&svc, push_object(PIN, &object, &[])).await,
        &object,
        "alg PS256 is not allowed here; expected one of ES256",
    )
    .await;
    let object = sign(&k.es, "k1", &claims(PIN));
    assert_created(send(&svc, push_object(PIN, &object, &[])).await, 60).await;
}

/// JAR-5, T58: a key that is not the client's, or a broken signature.
#[tokio::test]
async fn jar5_wrong_key_and_bad_signature_are_refused() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    let stranger = TestKey::es256();
    let object = sign(&stranger, "k1", &claims(J));
    assert_refused(
        send(&svc, push_object(J, &object, &[])).await,
        &object,
        "signature does not verify",
    )
    .await;
    let object = stranger.sign(Header::new(Algorithm::ES256), &claims(J));
    assert_refused(
        send(&svc, push_object(J, &object, &[])).await,
        &object,
        "signature does not verify",
    )
    .await;
    // A client with no keys at all.
    let object = sign(&k.es, "k1", &claims(C));
    assert_refused(
        send(&svc, push_object(C, &object, &[])).await,
        &object,
        "no registered keys",
    )
    .await;
    // Keys at a jwks_uri are used (JAR-5), and only those.
    let object = sign(&k.es, "k1", &claims(URI_ONLY));
    let res = send(&svc, push_object(URI_ONLY, &object, &[])).await;
    assert_eq!(res.status(), 201);
    let object = sign(&k.ed, "k2", &claims(URI_ONLY));
    assert_refused(
        send(&svc, push_object(URI_ONLY, &object, &[])).await,
        &object,
        "no registered key",
    )
    .await;
}

/// JAR-4, T62: encrypted objects (JWE) are refused, saying so.
#[tokio::test]
async fn jar4_encrypted_objects_are_refused() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RSA-OAEP-256","enc":"A256GCM"}"#);
    let object = format!("{h}.a2V5.aXY.Y2lwaGVydGV4dA.dGFn");
    assert_refused(
        send(&svc, push_object(J, &object, &[])).await,
        &object,
        "encrypted JWTs (JWE) are not supported",
    )
    .await;
}

// ---------------------------------------------------------------------------
// require_signed_request_object (PAR-19, JAR-8)
// ---------------------------------------------------------------------------

/// PAR-19, JAR-8, T63: per client: a plain push gets `400
/// invalid_request`; the same request as an object is accepted.
#[tokio::test]
async fn par19_a_client_that_requires_signed_objects_cannot_push_plain() {
    let k = keys();
    let (svc, _) = layered(&layer(&k));
    let plain = base_body_for(SIGNED, J_REDIRECT);
    let res = send(
        &svc,
        form_post("/par", plain, &[("authorization", &auth(SIGNED))]),
    )
    .await;
    let d = assert_oauth_error(res, 400, "invalid_request").await;
    assert!(d.contains("signed request object"), "{d}");
    let object = sign(&k.es, "k1", &claims(SIGNED));
    assert_created(send(&svc, push_object(SIGNED, &object, &[])).await, 60).await;
    // Other clients still push plain requests.
    let res = send(
        &svc,
        form_post(
            "/par",
            base_body_for(J, J_REDIRECT),
            &[("authorization", &auth(J))],
        ),
    )
    .await;
    assert_created(res, 60).await;
}

/// PAR-19, JAR-8: globally: every plain push is refused.
#[tokio::test]
async fn par19_the_server_can_require_signed_objects_for_everyone() {
    let k = keys();
    let (svc, _) = layered(&layer(&k).require_signed_request_object(true));
    let res = send(
        &svc,
        form_post(
            "/par",
            base_body_for(C, J_REDIRECT),
            &[("authorization", &auth(C))],
        ),
    )
    .await;
    assert_oauth_error(res, 400, "invalid_request").await;
    let object = sign(&k.es, "k1", &claims(J));
    assert_created(send(&svc, push_object(J, &object, &[])).await, 60).await;
}
