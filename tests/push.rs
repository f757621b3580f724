//! The PAR endpoint (RFC 9126 §2) through HTTP: `POST /par` against the
//! layer wrapped around an echo service.
//!
//! Test names carry the requirement they check (see
//! `par-requirements.md`, test matrix rows in comments). Every test that
//! talks to `/par` also proves the wrapped service was never called.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};
use tower_par::{
    validator_fn, AuthMethod, Client, MemoryStore, MemoryStoreConfig, OAuthError, ParLayer,
    Profile, PushContext, Redemption, StaticClients, Validator, REQUEST_URI_PREFIX,
};

use common::*;

const PAR: &str = "/par";

fn c_basic() -> String {
    basic(C, C_SECRET)
}

/// `POST /par` as `C` with valid Basic credentials.
fn push_as_c(body: impl Into<String>) -> http::Request<http_body_util::Full<Bytes>> {
    form_post(PAR, body, &[("authorization", &c_basic())])
}

/// The base body with `name=value` (raw, already encoded) replaced.
fn base_with(name: &str, raw_value: &str) -> String {
    base_body()
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((n, _)) if n == name => format!("{n}={raw_value}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The base body without `name`.
fn base_without(name: &str) -> String {
    base_body()
        .split('&')
        .filter(|pair| pair.split_once('=').map(|(n, _)| n) != Some(name))
        .collect::<Vec<_>>()
        .join("&")
}

// ---------------------------------------------------------------------------
// Success (PAR-13, PAR-14, PAR-16)
// ---------------------------------------------------------------------------

/// T1, T2, T4: `201`, JSON with exactly `request_uri` and `expires_in`
/// (default 60), `no-store`; the wrapped service is not involved.
#[tokio::test]
async fn par13_base_body_is_created_with_request_uri_and_default_expires_in() {
    let (svc, calls) = layered(&default_layer());
    let res = send(&svc, push_as_c(base_body())).await;
    let uri = assert_created(res, 60).await;
    let reference = &uri[REQUEST_URI_PREFIX.len()..];
    assert!(!reference.is_empty());
    assert_eq!(calls.count(), 0, "inner service called for /par");
}

/// PAR-13: a client's own `request_uri_lifetime` is its `expires_in`.
#[tokio::test]
async fn par13_expires_in_is_the_client_override() {
    let (svc, _) = layered(&default_layer());
    let body = base_body_for(LONG, LONG_REDIRECT);
    let res = send(
        &svc,
        form_post(PAR, body, &[("authorization", &basic(LONG, LONG_SECRET))]),
    )
    .await;
    assert_created(res, LONG_LIFETIME_SECS).await;
}

/// PAR-13: the layer's `request_uri_lifetime` applies to clients without an
/// override; the client override still wins.
#[tokio::test]
async fn par13_expires_in_is_the_layer_lifetime() {
    let layer = default_layer()
        .request_uri_lifetime(Duration::from_secs(120))
        .unwrap();
    let (svc, _) = layered(&layer);
    assert_created(send(&svc, push_as_c(base_body())).await, 120).await;
    let body = base_body_for(LONG, LONG_REDIRECT);
    let res = send(
        &svc,
        form_post(PAR, body, &[("authorization", &basic(LONG, LONG_SECRET))]),
    )
    .await;
    assert_created(res, LONG_LIFETIME_SECS).await;
}

/// T3, PAR-14, OA-10: pushes get distinct request URIs whose random part is
/// at least 43 base64url characters (256 bits).
#[tokio::test]
async fn par14_request_uris_are_distinct_with_a_long_random_part() {
    let (svc, calls) = layered(&default_layer());
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let uri = assert_created(send(&svc, push_as_c(base_body())).await, 60).await;
        let reference = &uri[REQUEST_URI_PREFIX.len()..];
        assert!(reference.len() >= 43, "random part too short: {reference}");
        assert!(
            reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "not base64url: {reference}"
        );
        assert!(seen.insert(uri), "request_uri issued twice");
    }
    assert_eq!(calls.count(), 0);
}

/// PAR-9, PAR-15: a Basic client may omit the body `client_id`; the stored
/// request gets it (first), and only that client can redeem it.
#[tokio::test]
async fn par9_client_id_from_basic_is_added_to_the_stored_request() {
    let (svc, calls) = layered(&default_layer());
    let body = base_without("client_id");
    let uri = assert_created(send(&svc, push_as_c(body.clone())).await, 60).await;
    assert_eq!(calls.count(), 0);
    let echo = redeem(&svc, C, &uri).await;
    assert_eq!(echo["query"], format!("client_id=C&{body}"));
    assert_eq!(echo["pushed_client_id"], C);
    assert_eq!(calls.count(), 1);
}

/// A custom PAR path is served; the default `/par` is then the wrapped
/// service's.
#[tokio::test]
async fn par_path_setting_moves_the_endpoint() {
    let layer = default_layer().par_path("/as/par").unwrap();
    let (svc, calls) = layered(&layer);
    let res = send(
        &svc,
        form_post("/as/par", base_body(), &[("authorization", &c_basic())]),
    )
    .await;
    assert_created(res, 60).await;
    assert_eq!(calls.count(), 0);
    let res = send(&svc, push_as_c(base_body())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get(ECHO_HEADER).is_some());
    assert_eq!(calls.count(), 1);
}

// ---------------------------------------------------------------------------
// Method, content type, body size (PAR-1, PAR-7, PAR-20, OA-9)
// ---------------------------------------------------------------------------

/// T6, PAR-20: any method but POST is `405` with `Allow: POST`, as a JSON
/// error with `no-store`.
#[tokio::test]
async fn par20_non_post_is_405_with_allow_post() {
    let (svc, calls) = layered(&default_layer());
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let res = send(&svc, request(method, PAR)).await;
        assert_eq!(header_str(res.headers(), "allow"), Some("POST"), "{method}");
        assert_oauth_error(res, 405, "invalid_request").await;
    }
    // A GET carrying a full authorization request in the query is no
    // different.
    let res = send(&svc, get(&format!("{PAR}?{}", base_body()))).await;
    assert_eq!(header_str(res.headers(), "allow"), Some("POST"));
    assert_oauth_error(res, 405, "invalid_request").await;
    assert_eq!(calls.count(), 0);
}

/// T7, PAR-7: `request_uri` must not be pushed.
#[tokio::test]
async fn par7_request_uri_in_body_is_invalid_request() {
    let (svc, calls) = layered(&default_layer());
    let res = send(
        &svc,
        push_as_c(format!("{}&request_uri=urn%3Ax", base_body())),
    )
    .await;
    let description = assert_oauth_error(res, 400, "invalid_request").await;
    assert!(description.contains("request_uri"), "{description}");
    assert_eq!(calls.count(), 0);
}

/// PAR-11: the client is authenticated before anything about the request
/// is judged (`request_uri`, redirect URI).
#[tokio::test]
async fn par11_authentication_comes_before_request_checks() {
    let (svc, _) = layered(&default_layer());
    let wrong = basic(C, "wrong");
    let body = format!("{}&request_uri=urn%3Ax", base_body());
    let res = send(&svc, form_post(PAR, body, &[("authorization", &wrong)])).await;
    assert_oauth_error(res, 401, "invalid_client").await;
    let body = base_with("redirect_uri", "https%3A%2F%2Fevil.example%2Fcb");
    let res = send(&svc, form_post(PAR, body, &[("authorization", &wrong)])).await;
    assert_oauth_error(res, 401, "invalid_client").await;
}

/// T54, OA-9: a JSON body is refused.
#[tokio::test]
async fn oa9_json_body_is_invalid_request() {
    let (svc, calls) = layered(&default_layer());
    let json_body = json!({
        "response_type": "code", "client_id": C, "redirect_uri": C_REDIRECT,
        "scope": "openid", "state": "s1",
        "code_challenge": S256_CHALLENGE, "code_challenge_method": "S256",
    })
    .to_string();
    let mut req = post_with_type(PAR, "application/json", json_body);
    req.headers_mut()
        .insert("authorization", c_basic().parse().unwrap());
    let res = send(&svc, req).await;
    assert_oauth_error(res, 400, "invalid_request").await;
    assert_eq!(calls.count(), 0);
}

/// OA-9: a form body without a form content type is refused.
#[tokio::test]
async fn oa9_missing_or_wrong_content_type_is_invalid_request() {
    let (svc, _) = layered(&default_layer());
    let mut req = push_as_c(base_body());
    req.headers_mut().remove("content-type");
    assert_oauth_error(send(&svc, req).await, 400, "invalid_request").await;
    let mut req = push_as_c(base_body());
    req.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    assert_oauth_error(send(&svc, req).await, 400, "invalid_request").await;
}

/// PAR-1: the form media type is matched with parameters and in any case.
#[tokio::test]
async fn par1_form_content_type_with_charset_is_accepted() {
    let (svc, _) = layered(&default_layer());
    for ct in [
        "application/x-www-form-urlencoded; charset=UTF-8",
        "Application/X-WWW-Form-Urlencoded",
    ] {
        let mut req = push_as_c(base_body());
        req.headers_mut()
            .insert("content-type", ct.parse().unwrap());
        assert_created(send(&svc, req).await, 60).await;
    }
}

/// T55, PAR-20: a body over `max_body_size` declared by `Content-Length`
/// is `413`.
#[tokio::test]
async fn par20_body_over_limit_with_content_length_is_413() {
    let layer = default_layer().max_body_size(256);
    let (svc, calls) = layered(&layer);
    let body = format!("{}&pad={}", base_body(), "a".repeat(256));
    let res = send(&svc, push_as_c(body)).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_headers(res.headers());
    assert_error_shape(&body_json(res).await);
    assert_eq!(calls.count(), 0);
}

/// T55, PAR-20: a body over the limit is `413` even when it arrives in
/// several frames with neither `Content-Length` nor a size hint.
#[tokio::test]
async fn par20_streamed_body_over_limit_without_length_is_413() {
    let layer = default_layer().max_body_size(256);
    let (svc, calls) = layered(&layer);
    let body = format!("{}&pad={}", base_body(), "a".repeat(256));
    let chunks: Vec<Bytes> = body
        .as_bytes()
        .chunks(50)
        .map(Bytes::copy_from_slice)
        .collect();
    assert!(chunks.len() > 2);
    let req = chunked_form_post(PAR, chunks, &[("authorization", &c_basic())]);
    assert!(req.headers().get("content-length").is_none());
    let res = send(&svc, req).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_headers(res.headers());
    assert_error_shape(&body_json(res).await);
    assert_eq!(calls.count(), 0);
}

/// PAR-20 boundary: a body of exactly `max_body_size` bytes is accepted,
/// whether sent in one piece or streamed in frames that split parameters;
/// the reassembled body is what gets stored.
#[tokio::test]
async fn par20_body_of_exactly_the_limit_is_accepted_and_reassembled() {
    let body = format!("{}&foo=bar", base_body());
    let layer = default_layer().max_body_size(body.len());
    let (svc, calls) = layered(&layer);
    assert_created(send(&svc, push_as_c(body.clone())).await, 60).await;

    let chunks: Vec<Bytes> = body
        .as_bytes()
        .chunks(7)
        .map(Bytes::copy_from_slice)
        .collect();
    // Same layer (same store), over an inner service for streamed bodies.
    let (streamed, streamed_calls) = layered(&layer);
    let req = chunked_form_post(PAR, chunks, &[("authorization", &c_basic())]);
    let uri = assert_created(send(&streamed, req).await, 60).await;
    assert_eq!(calls.count() + streamed_calls.count(), 0);
    assert_eq!(redeem(&svc, C, &uri).await["query"], body);

    let one_more = format!("{body}x");
    let res = send(&svc, push_as_c(one_more)).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

// ---------------------------------------------------------------------------
// Client authentication (AUTH-*, PAR-5, PAR-9)
// ---------------------------------------------------------------------------

/// T9, AUTH-1: a confidential client that presents no credentials gets
/// `invalid_client` (400 or 401).
#[tokio::test]
async fn auth1_confidential_client_without_credentials_is_invalid_client() {
    let (svc, calls) = layered(&default_layer());
    let res = send(&svc, form_post(PAR, base_body(), &[])).await;
    let status = res.status().as_u16();
    assert!(status == 400 || status == 401, "status {status}");
    assert_oauth_error(res, status, "invalid_client").await;
    assert_eq!(calls.count(), 0);
}

/// T10, AUTH-7, AUTH-2: a wrong Basic secret is `401` with a Basic
/// challenge that has a realm.
#[tokio::test]
async fn auth7_wrong_basic_secret_is_401_with_basic_challenge() {
    let (svc, calls) = layered(&default_layer());
    let res = send(
        &svc,
        form_post(PAR, base_body(), &[("authorization", &basic(C, "wrong"))]),
    )
    .await;
    let challenge = header_str(res.headers(), "www-authenticate")
        .expect("WWW-Authenticate")
        .to_owned();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    assert_oauth_error(res, 401, "invalid_client").await;
    assert_eq!(calls.count(), 0);
}

/// AUTH-1: an unknown client, a wrong secret and a method the client is not
/// registered for are answered identically (status, headers, bytes).
#[tokio::test]
async fn auth1_unknown_client_and_wrong_secret_are_indistinguishable() {
    let (svc, _) = layered(&default_layer());

    // Basic.
    let wrong_secret = send(
        &svc,
        form_post(PAR, base_body(), &[("authorization", &basic(C, "wrong"))]),
    )
    .await;
    let body = base_body().replace("client_id=C", "client_id=NOBODY");
    let unknown = send(
        &svc,
        form_post(PAR, body, &[("authorization", &basic("NOBODY", "wrong"))]),
    )
    .await;
    let body = base_body_for(POST, POST_REDIRECT);
    let wrong_method = send(
        &svc,
        form_post(PAR, body, &[("authorization", &basic(POST, POST_SECRET))]),
    )
    .await;
    assert_eq!(wrong_secret.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_secret.headers(), unknown.headers());
    assert_eq!(wrong_secret.headers(), wrong_method.headers());
    let a = body_bytes(wrong_secret).await;
    assert_eq!(a, body_bytes(unknown).await);
    assert_eq!(a, body_bytes(wrong_method).await);
    assert_error_shape(&serde_json::from_slice(&a).unwrap());

    // client_secret_post.
    let post = |id: &str, secret: &str| {
        let body = format!(
            "{}&client_secret={}",
            base_body_for(id, POST_REDIRECT),
            form_encode(secret)
        );
        form_post(PAR, body, &[])
    };
    let wrong_secret = send(&svc, post(POST, "wrong")).await;
    let unknown = send(&svc, post("NOBODY", "wrong")).await;
    let wrong_method = send(&svc, post(C, C_SECRET)).await;
    assert_eq!(wrong_secret.status(), unknown.status());
    assert_eq!(wrong_secret.status(), wrong_method.status());
    assert_eq!(wrong_secret.headers(), unknown.headers());
    assert_eq!(wrong_secret.headers(), wrong_method.headers());
    let a = body_bytes(wrong_secret).await;
    assert_eq!(a, body_bytes(unknown).await);
    assert_eq!(a, body_bytes(wrong_method).await);
    let json: Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(json["error"], "invalid_client");
}

/// T11, AUTH-6: the Basic halves are form-url-decoded, so `s3cr+t %x` is
/// sent as `s3cr%2Bt+%25x`.
#[tokio::test]
async fn auth6_form_encoded_basic_secret_is_accepted() {
    let (svc, _) = layered(&default_layer());
    let header = basic_raw("C:s3cr%2Bt+%25x");
    assert_eq!(header, c_basic(), "helper encodes like the spec");
    let res = send(
        &svc,
        form_post(PAR, base_body(), &[("authorization", &header)]),
    )
    .await;
    assert_created(res, 60).await;
}

/// T12, AUTH-6: the raw secret decodes to another value and fails.
#[tokio::test]
async fn auth6_raw_basic_secret_is_invalid_client() {
    let (svc, _) = layered(&default_layer());
    let header = basic_raw("C:s3cr+t %x");
    let res = send(
        &svc,
        form_post(PAR, base_body(), &[("authorization", &header)]),
    )
    .await;
    assert!(header_str(res.headers(), "www-authenticate").is_some());
    assert_oauth_error(res, 401, "invalid_client").await;
}

/// AUTH-6, AUTH-7: an undecodable Basic credential is `invalid_client` with
/// a Basic challenge.
#[tokio::test]
async fn auth7_malformed_basic_header_is_invalid_client_with_challenge() {
    let (svc, _) = layered(&default_layer());
    for header in [
        "Basic !!!not-base64".to_owned(),
        basic_raw("no-colon"),
        basic_raw("C:%zz"),
    ] {
        let res = send(
            &svc,
            form_post(PAR, base_body(), &[("authorization", &header)]),
        )
        .await;
        let challenge = header_str(res.headers(), "www-authenticate").map(str::to_owned);
        assert!(
            challenge.is_some_and(|c| c.starts_with("Basic realm=")),
            "{header}"
        );
        assert_oauth_error(res, 401, "invalid_client").await;
    }
}

/// T13, AUTH-3: Basic and a body secret at once is `400 invalid_request`.
#[tokio::test]
async fn auth3_basic_and_body_secret_is_invalid_request() {
    let (svc, calls) = layered(&default_layer());
    let body = format!("{}&client_secret=s3cr%2Bt+%25x", base_body());
    let res = send(&svc, push_as_c(body)).await;
    assert_oauth_error(res, 400, "invalid_request").await;
    assert_eq!(calls.count(), 0);
}

/// AUTH-3: Basic together with a client assertion is two methods.
#[tokio::test]
async fn auth3_basic_and_client_assertion_is_invalid_request() {
    let (svc, _) = layered(&default_layer());
    let body = format!(
        "{}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJ.eyJ.sig",
        base_body()
    );
    let res = send(&svc, push_as_c(body)).await;
    assert_oauth_error(res, 400, "invalid_request").await;
}

/// AUTH-3 (RFC 6749 §5.2 "includes multiple credentials"): two
/// `Authorization` headers are two credentials, whichever comes first.
#[tokio::test]
async fn auth3_two_authorization_headers_is_invalid_request() {
    let (svc, calls) = layered(&default_layer());
    let mut req = push_as_c(base_body());
    req.headers_mut()
        .append("authorization", basic(OTHER, OTHER_SECRET).parse().unwrap());
    let res = send(&svc, req).await;
    assert_oauth_error(res, 400, "invalid_request").await;
    let mut req = push_as_c(base_body());
    req.headers_mut()
        .append("authorization", c_basic().parse().unwrap());
    let res = send(&svc, req).await;
    assert_oauth_error(res, 400, "invalid_request").await;
    assert_eq!(calls.count(), 0);
}

/// AUTH-1, AUTH-11: client assertions are not supported, so one is an
/// authentication failure.
#[tokio::test]
async fn auth1_client_assertion_is_unsupported_invalid_client() {
    let (svc, calls) = layered(&default_layer());
    let body = format!(
        "{}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJ.eyJ.sig",
        base_body()
    );
    let res = send(&svc, form_post(PAR, body, &[])).await;
    let status = res.status().as_u16();
    assert!(status == 400 || status == 401, "status {status}");
    assert_oauth_error(res, status, "invalid_client").await;
    assert_eq!(calls.count(), 0);
}

/// T14, AUTH-8: a `client_secret_post` client authenticates in the body.
#[tokio::test]
async fn auth8_client_secret_post_is_accepted() {
    let (svc, calls) = layered(&default_layer());
    let body = format!(
        "{}&client_secret={}",
        base_body_for(POST, POST_REDIRECT),
        form_encode(POST_SECRET)
    );
    assert_created(send(&svc, form_post(PAR, body, &[])).await, 60).await;
    assert_eq!(calls.count(), 0);
}

/// T15, AUTH-8: credentials in the query string are refused, whatever the
/// body holds.
#[tokio::test]
async fn auth8_credentials_in_the_query_are_rejected() {
    let (svc, calls) = layered(&default_layer());
    // Secret only in the query (a post client).
    let uri = format!("{PAR}?client_secret={}", form_encode(POST_SECRET));
    let res = send(
        &svc,
        form_post(&uri, base_body_for(POST, POST_REDIRECT), &[]),
    )
    .await;
    assert_oauth_error(res, 400, "invalid_request").await;
    // Valid Basic plus a secret in the query.
    let uri = format!("{PAR}?client_secret=s3cr%2Bt+%25x");
    let res = send(
        &svc,
        form_post(&uri, base_body(), &[("authorization", &c_basic())]),
    )
    .await;
    assert_oauth_error(res, 400, "invalid_request").await;
    // An assertion in the query, with the name percent-encoded.
    let uri = format!("{PAR}?x=1&client%5Fassertion=eyJ");
    let res = send(
        &svc,
        form_post(&uri, base_body(), &[("authorization", &c_basic())]),
    )
    .await;
    assert_oauth_error(res, 400, "invalid_request").await;
    assert_eq!(calls.count(), 0);
}

/// T16, AUTH-9: a body `client_id` that names another client than the Basic
/// credentials is `invalid_client`, even when that client exists.
#[tokio::test]
async fn auth9_body_client_id_differing_from_basic_is_invalid_client() {
    let (svc, calls) = layered(&default_layer());
    let body = base_body().replace("client_id=C", "client_id=OTHER");
    let res = send(&svc, push_as_c(body)).await;
    assert!(header_str(res.headers(), "www-authenticate").is_some());
    assert_oauth_error(res, 401, "invalid_client").await;
    // The other way round: OTHER's credentials, body says C.
    let res = send(
        &svc,
        form_post(
            PAR,
            base_body(),
            &[("authorization", &basic(OTHER, OTHER_SECRET))],
        ),
    )
    .await;
    assert_oauth_error(res, 401, "invalid_client").await;
    assert_eq!(calls.count(), 0);
}

/// T17, AUTH-4: the registered method is enforced both ways.
#[tokio::test]
async fn auth4_client_using_another_method_is_invalid_client() {
    let (svc, _) = layered(&default_layer());
    // C is client_secret_basic and tries client_secret_post.
    let body = format!("{}&client_secret=s3cr%2Bt+%25x", base_body());
    let res = send(&svc, form_post(PAR, body, &[])).await;
    let status = res.status().as_u16();
    assert!(status == 400 || status == 401, "status {status}");
    assert_oauth_error(res, status, "invalid_client").await;
    // The post client tries Basic with its right secret.
    let res = send(
        &svc,
        form_post(
            PAR,
            base_body_for(POST, POST_REDIRECT),
            &[("authorization", &basic(POST, POST_SECRET))],
        ),
    )
    .await;
    assert_oauth_error(res, 401, "invalid_client").await;
    // The public client presents a secret.
    let body = format!("{}&client_secret=x", base_body_for(P, P_REDIRECT));
    let res = send(&svc, form_post(PAR, body, &[])).await;
    let status = res.status().as_u16();
    assert!(status == 400 || status == 401, "status {status}");
    assert_oauth_error(res, status, "invalid_client").await;
    // And a confidential client presents nothing but its id.
    let res = send(
        &svc,
        form_post(PAR, base_body_for(TWO, TWO_REDIRECT_1), &[]),
    )
    .await;
    let status = res.status().as_u16();
    assert!(status == 400 || status == 401, "status {status}");
    assert_oauth_error(res, status, "invalid_client").await;
}

/// T18, PAR-9, AUTH-10: without Basic and without `client_id` nobody is
/// identified.
#[tokio::test]
async fn par9_public_client_without_client_id_is_rejected() {
    let (svc, calls) = layered(&default_layer());
    let body = base_body_for(P, P_REDIRECT).replace("client_id=P&", "");
    assert!(!body.contains("client_id"));
    let res = send(&svc, form_post(PAR, body, &[])).await;
    let status = res.status().as_u16();
    assert!(status == 400 || status == 401, "status {status}");
    let headers = res.headers().clone();
    let json = body_json(res).await;
    assert_error_headers(&headers);
    assert_error_shape(&json);
    assert!(
        json["error"] == "invalid_client" || json["error"] == "invalid_request",
        "{json}"
    );
    assert_eq!(calls.count(), 0);
}

/// T19, AUTH-10: a public client pushes with its `client_id` alone.
#[tokio::test]
async fn auth10_public_client_is_created() {
    let (svc, calls) = layered(&default_layer());
    let body = base_body_for(P, P_REDIRECT);
    let uri = assert_created(send(&svc, form_post(PAR, body.clone(), &[])).await, 60).await;
    assert_eq!(calls.count(), 0);
    let echo = redeem(&svc, P, &uri).await;
    assert_eq!(echo["query"], body);
}

/// AUTH-2: an `Authorization` header of another scheme is not accepted.
#[tokio::test]
async fn auth2_non_basic_authorization_is_invalid_client() {
    let (svc, calls) = layered(&default_layer());
    let res = send(
        &svc,
        form_post(PAR, base_body(), &[("authorization", "Bearer abc")]),
    )
    .await;
    let status = res.status().as_u16();
    assert!(status == 400 || status == 401, "status {status}");
    assert_oauth_error(res, status, "invalid_client").await;
    assert_eq!(calls.count(), 0);
}

/// AUTH-2 (RFC 9110 §15.5.2): every `401` carries a `WWW-Authenticate`
/// challenge, including failures where the credentials were in the body or
/// missing (otherwise the answer must be `400`).
#[tokio::test]
async fn auth2_every_401_carries_a_challenge() {
    let (svc, _) = layered(&default_layer());
    let fapi = default_layer().profile(Profile::Fapi2);
    let (fapi_svc, _) = layered(&fapi);
    let cases = [
        ("no credentials for C", form_post(PAR, base_body(), &[])),
        (
            "wrong post secret",
            form_post(
                PAR,
                format!("{}&client_secret=wrong", base_body_for(POST, POST_REDIRECT)),
                &[],
            ),
        ),
        (
            "no client_id at all",
            form_post(PAR, base_without("client_id"), &[]),
        ),
        (
            "Bearer scheme",
            form_post(PAR, base_body(), &[("authorization", "Bearer abc")]),
        ),
        (
            "Basic scheme without credentials",
            form_post(PAR, base_body(), &[("authorization", "Basic")]),
        ),
    ];
    let mut missing = Vec::new();
    for (name, req) in cases {
        let res = send(&svc, req).await;
        if res.status() == StatusCode::UNAUTHORIZED
            && res.headers().get("www-authenticate").is_none()
        {
            missing.push(name);
        }
    }
    let res = send(&fapi_svc, form_post(PAR, base_body_for(P, P_REDIRECT), &[])).await;
    if res.status() == StatusCode::UNAUTHORIZED && res.headers().get("www-authenticate").is_none() {
        missing.push("FAPI public client");
    }
    assert!(
        missing.is_empty(),
        "401 without WWW-Authenticate: {missing:?}"
    );
}

// ---------------------------------------------------------------------------
// Parameter syntax (OA-1, OA-9)
// ---------------------------------------------------------------------------

/// T35, OA-1: a repeated parameter is `invalid_request`.
#[tokio::test]
async fn oa1_repeated_scope_is_invalid_request() {
    let (svc, calls) = layered(&default_layer());
    let res = send(&svc, push_as_c(format!("{}&scope=profile", base_body()))).await;
    let description = assert_oauth_error(res, 400, "invalid_request").await;
    assert!(description.contains("scope"), "{description}");
    // The same value twice is still a repetition.
    let res = send(&svc, push_as_c(format!("{}&state=s1", base_body()))).await;
    assert_oauth_error(res, 400, "invalid_request").await;
    assert_eq!(calls.count(), 0);
}

/// T36, OA-1, RFC 8707: `resource` may be repeated; both values are kept in
/// order.
#[tokio::test]
async fn oa1_repeated_resource_is_accepted_and_kept() {
    let (svc, _) = layered(&default_layer());
    let body = format!(
        "{}&resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb",
        base_body()
    );
    let uri = assert_created(send(&svc, push_as_c(body.clone())).await, 60).await;
    let echo = redeem(&svc, C, &uri).await;
    assert_eq!(echo["query"], body);
}

/// T37, OA-1: an empty `response_type` counts as missing.
#[tokio::test]
async fn oa1_empty_response_type_is_invalid_request() {
    let (svc, _) = layered(&default_layer());
    let res = send(&svc, push_as_c(base_with("response_type", ""))).await;
    let description = assert_oauth_error(res, 400, "invalid_request").await;
    assert!(description.contains("response_type"), "{description}");
    let res = send(&svc, push_as_c(base_without("response_type"))).await;
    assert_oauth_error(res, 400, "invalid_request").await;
}

/// T38, OA-1: an unknown parameter is accepted and stored as sent.
#[tokio::test]
async fn oa1_unknown_parameter_is_accepted_and_stored() {
    let (svc, calls) = layered(&default_layer());
    let body = format!("{}&foo=bar", base_body());
    let uri = assert_created(send(&svc, push_as_c(body.clone())).await, 60).await;
    assert_eq!(calls.count(), 0);
    let echo = redeem(&svc, C, &uri).await;
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/authorize");
    assert_eq!(echo["query"], body);
    assert!(echo["query"].as_str().unwrap().ends_with("&foo=bar"));
    assert_eq!(calls.count(), 1);
}

/// OA-9: malformed percent-encoding and non-UTF-8 are refused, not repaired.
#[tokio::test]
async fn oa9_malformed_encoding_is_invalid_request() {
    let (svc, calls) = layered(&default_layer());
    for bad in ["state=%zz", "state=%4", "state=%FF", "=x"] {
        let body = format!("{}&{bad}", base_without("state"));
        let res = send(&svc, push_as_c(body)).await;
        assert_oauth_error(res, 400, "invalid_request").await;
    }
    assert_eq!(calls.count(), 0);
}

// ---------------------------------------------------------------------------
// Validation (PAR-11 step 3: OA-3, OA-4, OA-12, PKCE-*, OIDC-*)
// ---------------------------------------------------------------------------

/// T39, T40, OA-4: a redirect URI that is not registered is refused, for a
/// public and for an authenticated client (no per-request URIs).
#[tokio::test]
async fn oa4_unregistered_redirect_uri_is_invalid_request() {
    let (svc, calls) = layered(&default_layer());
    let body = base_body_for(P, "https://evil.example/cb");
    let res = send(&svc, form_post(PAR, body, &[])).await;
    let description = assert_oauth_error(res, 400, "invalid_request").await;
    assert!(description.contains("redirect_uri"), "{description}");
    let res = send(&svc, push_as_c(base_body_for(C, "https://evil.example/cb"))).await;
    assert_oauth_error(res, 400, "invalid_request").await;
    // Simple string comparison: a trailing slash or another case differs.
    for near in [
        "https://c.example/cb/",
        "https://C.example/cb",
        "https://c.example/cb?x=1",
    ] {
        let res = send(&svc, push_as_c(base_body_for(C, near))).await;
        assert_oauth_error(res, 400, "invalid_request").await;
    }
    assert_eq!(calls.count(), 0);
}

/// T41, OA-3: a redirect URI with a fragment is refused.
#[tokio::test]
async fn oa3_redirect_uri_with_fragment_is_invalid_request() {
    let (svc, _) = layered(&default_layer());
    let res = send(&svc, push_as_c(base_body_for(C, "https://c.example/cb#x"))).await;
    let description = assert_oauth_error(res, 400, "invalid_request").await;
    assert!(description.contains("fragment"), "{description}");
}

/// T42, OA-4: `redirect_uri` may be omitted only when exactly one is
/// registered.
#[tokio::test]
async fn oa4_missing_redirect_uri_needs_exactly_one_registered() {
    let (svc, _) = layered(&default_layer());
    let two = base_body_for(TWO, TWO_REDIRECT_1).replace(
        &format!("&redirect_uri={}", form_encode(TWO_REDIRECT_1)),
        "",
    );
    assert!(!two.contains("redirect_uri"));
    let res = send(
        &svc,
        form_post(PAR, two, &[("authorization", &basic(TWO, TWO_SECRET))]),
    )
    .await;
    let description = assert_oauth_error(res, 400, "invalid_request").await;
    assert!(description.contains("redirect_uri"), "{description}");
    // Either registered URI is fine when given.
    for uri in [TWO_REDIRECT_1, TWO_REDIRECT_2] {
        let res = send(
            &svc,
            form_post(
                PAR,
                base_body_for(TWO, uri),
                &[("authorization", &basic(TWO, TWO_SECRET))],
            ),
        )
        .await;
        assert_created(res, 60).await;
    }
    let res = send(&svc, push_as_c(base_without("redirect_uri"))).await;
    assert_created(res, 60).await;
}

/// T43, OA-12: a scope outside the client's allowed set is `invalid_scope`;
/// the allowed ones pass.
#[tokio::test]
async fn oa12_disallowed_scope_is_invalid_scope() {
    let (svc, calls) = layered(&default_layer());
    let res = send(&svc, push_as_c(base_with("scope", "openid+admin"))).await;
    let description = assert_oauth_error(res, 400, "invalid_scope").await;
    assert!(description.contains("admin"), "{description}");
    let res = send(&svc, push_as_c(base_with("scope", "openid+profile"))).await;
    assert_created(res, 60).await;
    assert_eq!(calls.count(), 0);
}

/// T44, OA-12: `response_type=token` is not allowed for the client.
#[tokio::test]
async fn oa12_response_type_token_is_unsupported_response_type() {
    let (svc, _) = layered(&default_layer());
    let res = send(&svc, push_as_c(base_with("response_type", "token"))).await;
    assert_oauth_error(res, 400, "unsupported_response_type").await;
}

/// T50, OIDC-4: a hybrid response type needs a `nonce`; the set's order
/// does not matter (OA-12).
#[tokio::test]
async fn oidc4_hybrid_response_type_without_nonce_is_invalid_request() {
    let clients = StaticClients::new()
        .with_client(
            Client::new("H", AuthMethod::None)
                .redirect_uri("https://h.example/cb")
                .response_types(["code id_token"]),
            None,
        )
        .unwrap();
    let (svc, _) = layered(&ParLayer::new(clients));
    let body = base_body_for("H", "https://h.example/cb")
        .replace("response_type=code", "response_type=id_token+code");
    let res = send(&svc, form_post(PAR, body.clone(), &[])).await;
    let description = assert_oauth_error(res, 400, "invalid_request").await;
    assert!(description.contains("nonce"), "{description}");
    let res = send(&svc, form_post(PAR, format!("{body}&nonce=n1"), &[])).await;
    assert_created(res, 60).await;
}

/// T45, PKCE-6: with PKCE required, a push without `code_challenge` is
/// `invalid_request`.
#[tokio::test]
async fn pkce6_required_challenge_missing_is_invalid_request() {
    let layer = default_layer().require_pkce(true);
    let (svc, _) = layered(&layer);
    let body = base_without("code_challenge").replace("&code_challenge_method=S256", "");
    assert!(!body.contains("code_challenge"));
    let res = send(&svc, push_as_c(body.clone())).await;
    let description = assert_oauth_error(res, 400, "invalid_request").await;
    assert!(description.contains("challenge"), "{description}");
    assert_created(send(&svc, push_as_c(base_body())).await, 60).await;
    // Without the requirement, PKCE stays optional.
    let (svc, _) = layered(&default_layer());
    assert_created(send(&svc, push_as_c(body)).await, 60).await;
}

/// PKCE-4: a method without a challenge is refused.
#[tokio::test]
async fn pkce4_method_without_challenge_is_invalid_request() {
    let (svc, _) = layered(&default_layer());
    let res = send(&svc, push_as_c(base_without("code_challenge"))).await;
    assert_oauth_error(res, 400, "invalid_request").await;
}

/// T46, PKCE-6: an unknown transform is `invalid_request`.
#[tokio::test]
async fn pkce6_unknown_method_s512_is_invalid_request() {
    let (svc, _) = layered(&default_layer());
    let res = send(&svc, push_as_c(base_with("code_challenge_method", "S512"))).await;
    assert_oauth_error(res, 400, "invalid_request").await;
}

/// T48, PKCE-1: a challenge that is too short or outside the unreserved
/// alphabet is refused.
#[tokio::test]
async fn pkce1_malformed_challenge_is_invalid_request() {
    let (svc, _) = layered(&default_layer());
    let short = &S256_CHALLENGE[..42];
    let plus = format!("{}%2B", &S256_CHALLENGE[..42]);
    let pad = format!("{}%3D", &S256_CHALLENGE[..42]);
    let long = format!("{S256_CHALLENGE}A");
    for bad in [short, plus.as_str(), pad.as_str(), long.as_str()] {
        let res = send(&svc, push_as_c(base_with("code_challenge", bad))).await;
        assert_oauth_error(res, 400, "invalid_request").await;
    }
}

/// T49, PKCE-3: method names are case-sensitive.
#[tokio::test]
async fn pkce3_lower_case_s256_is_invalid_request() {
    let (svc, _) = layered(&default_layer());
    let res = send(&svc, push_as_c(base_with("code_challenge_method", "s256"))).await;
    assert_oauth_error(res, 400, "invalid_request").await;
}

/// T47, PKCE-3, PKCE-4: `plain` (explicit, or implied by a missing method)
/// is refused by default and accepted with `allow_plain_pkce(true)`.
#[tokio::test]
async fn pkce3_plain_is_refused_by_default_and_allowed_on_request() {
    let plain = base_with("code_challenge_method", "plain");
    let implied = base_without("code_challenge_method");
    let (svc, _) = layered(&default_layer());
    for body in [&plain, &implied] {
        let res = send(&svc, push_as_c(body.clone())).await;
        assert_oauth_error(res, 400, "invalid_request").await;
    }
    let (svc, _) = layered(&default_layer().allow_plain_pkce(true));
    for body in [&plain, &implied] {
        assert_created(send(&svc, push_as_c(body.clone())).await, 60).await;
    }
    // A plain challenge may be up to 128 characters.
    let long = base_with("code_challenge", &"a".repeat(128))
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    assert_created(send(&svc, push_as_c(long)).await, 60).await;
}

/// T51, OIDC-5: `prompt=none` cannot be combined.
#[tokio::test]
async fn oidc5_prompt_none_with_login_is_invalid_request() {
    let (svc, _) = layered(&default_layer());
    for prompt in ["none+login", "login+none"] {
        let res = send(&svc, push_as_c(format!("{}&prompt={prompt}", base_body()))).await;
        assert_oauth_error(res, 400, "invalid_request").await;
    }
    let res = send(
        &svc,
        push_as_c(format!("{}&prompt=login+consent", base_body())),
    )
    .await;
    assert_created(res, 60).await;
}

/// T52, PAR-18: `prompt=none` is fine at push time (no `login_required`).
#[tokio::test]
async fn par18_prompt_none_is_created() {
    let (svc, _) = layered(&default_layer());
    let res = send(&svc, push_as_c(format!("{}&prompt=none", base_body()))).await;
    assert_created(res, 60).await;
}

/// T53, PAR-8: client credentials and token-endpoint parameters are not
/// stored; everything else is forwarded in order, byte for byte, including
/// a repeated `resource` and a JSON `claims` value.
#[tokio::test]
async fn par8_credentials_and_token_params_are_dropped_the_rest_forwarded_verbatim() {
    let (svc, calls) = layered(&default_layer());
    let claims = r#"{"id_token":{"acr":{"essential":true,"values":["urn:a b"]}},"userinfo":null}"#;
    let encoded_claims = form_encode(claims);
    let redirect = form_encode(POST_REDIRECT);
    let body = format!(
        "response_type=code&client_id=POSTC&client_secret={}&grant_type=authorization_code\
         &redirect_uri={redirect}&code=x&claims={encoded_claims}\
         &resource=https%3A%2F%2Fb.example&scope=openid&code_verifier=abc\
         &resource=https%3A%2F%2Fa.example&refresh_token=r&state=s%2B1&foo=bar",
        form_encode(POST_SECRET)
    );
    let expected = format!(
        "response_type=code&client_id=POSTC&redirect_uri={redirect}&claims={encoded_claims}\
         &resource=https%3A%2F%2Fb.example&scope=openid\
         &resource=https%3A%2F%2Fa.example&state=s%2B1&foo=bar"
    );
    let uri = assert_created(send(&svc, form_post(PAR, body, &[])).await, 60).await;
    assert_eq!(calls.count(), 0);
    let echo = redeem(&svc, POST, &uri).await;
    let query = echo["query"].as_str().unwrap();
    assert_eq!(query, expected);
    for dropped in [
        "client_secret",
        "grant_type",
        "code=",
        "code_verifier",
        "refresh_token",
    ] {
        assert!(
            !query.split('&').any(|p| p.starts_with(dropped)),
            "{dropped} forwarded: {query}"
        );
    }
    // The claims value decodes to the same JSON.
    let forwarded: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    let forwarded_claims = &forwarded.iter().find(|(n, _)| n == "claims").unwrap().1;
    assert_eq!(forwarded_claims, claims);
    assert_eq!(echo["pushed_client_id"], POST);
}

/// T53 with Basic: `grant_type` and `code` are dropped for a Basic client
/// too, and nothing else changes.
#[tokio::test]
async fn par8_token_params_are_dropped_for_a_basic_client() {
    let (svc, _) = layered(&default_layer());
    let body = format!("{}&grant_type=authorization_code&code=x", base_body());
    let uri = assert_created(send(&svc, push_as_c(body)).await, 60).await;
    let echo = redeem(&svc, C, &uri).await;
    assert_eq!(echo["query"], base_body());
}

// FAPI-17, FAPI-18 and FAPI-16 under `Profile::Fapi2` are in
// tests/jwt_auth.rs: FAPI-5 admits private_key_jwt clients only.

/// FAPI-3, T19 (FAPI mode): public clients are refused.
#[tokio::test]
async fn fapi3_public_client_is_invalid_client() {
    let (svc, calls) = layered(&default_layer().profile(Profile::Fapi2));
    let res = send(&svc, form_post(PAR, base_body_for(P, P_REDIRECT), &[])).await;
    assert_oauth_error(res, 401, "invalid_client").await;
    assert_eq!(calls.count(), 0);
    // Same client, RFC 9126 mode: accepted (the FAPI rule is what refused it).
    let (svc, _) = layered(&default_layer());
    let res = send(&svc, form_post(PAR, base_body_for(P, P_REDIRECT), &[])).await;
    assert_created(res, 60).await;
}

// ---------------------------------------------------------------------------
// Custom validators (PAR-11 step 3, after the built-in rules)
// ---------------------------------------------------------------------------

/// `validator_fn`: its error is the JSON response, with its own status and
/// code; it sees the authenticated client and the pushed parameters.
#[tokio::test]
async fn validator_fn_error_is_returned_with_its_status_and_code() {
    let layer = default_layer().validator(validator_fn(|ctx| {
        match (ctx.client.client_id.as_str(), ctx.params.get("acr_values")) {
            ("C", Some("urn:weak")) => Err(OAuthError::new(
                StatusCode::FORBIDDEN,
                "access_denied",
                "acr urn:weak is not accepted",
            )),
            _ => Ok(()),
        }
    }));
    let (svc, calls) = layered(&layer);
    let res = send(
        &svc,
        push_as_c(format!("{}&acr_values=urn%3Aweak", base_body())),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_error_headers(res.headers());
    assert_eq!(
        body_json(res).await,
        json!({"error": "access_denied", "error_description": "acr urn:weak is not accepted"})
    );
    // Another acr, or another client with the same acr: accepted.
    let res = send(
        &svc,
        push_as_c(format!("{}&acr_values=urn%3Astrong", base_body())),
    )
    .await;
    assert_created(res, 60).await;
    let body = format!("{}&acr_values=urn%3Aweak", base_body_for(P, P_REDIRECT));
    assert_created(send(&svc, form_post(PAR, body, &[])).await, 60).await;
    assert_eq!(calls.count(), 0);
}

/// A `Validator` whose body awaits; its `invalid_scope` is returned.
struct AsyncScopePolicy {
    calls: Arc<AtomicUsize>,
}

impl Validator for AsyncScopePolicy {
    async fn validate(&self, ctx: &PushContext<'_>) -> Result<(), OAuthError> {
        tokio::task::yield_now().await;
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        let wants_profile = ctx
            .params
            .get("scope")
            .is_some_and(|s| s.split(' ').any(|s| s == "profile"));
        if wants_profile && ctx.request.headers.get("x-allow-profile").is_none() {
            return Err(OAuthError::invalid_scope("profile needs approval"));
        }
        Ok(())
    }
}

/// A `Validator` with an async body: its error is the JSON response, it
/// sees the request headers, and it runs once per push that reaches it.
#[tokio::test]
async fn async_validator_error_is_returned_as_json() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = default_layer().validator(AsyncScopePolicy {
        calls: calls.clone(),
    });
    let (svc, inner) = layered(&layer);
    let body = base_with("scope", "openid+profile");
    let res = send(&svc, push_as_c(body.clone())).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_error_headers(res.headers());
    assert_eq!(
        body_json(res).await,
        json!({"error": "invalid_scope", "error_description": "profile needs approval"})
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The validator sees the request headers.
    let req = form_post(
        PAR,
        body,
        &[("authorization", &c_basic()), ("x-allow-profile", "1")],
    );
    assert_created(send(&svc, req).await, 60).await;
    assert_created(send(&svc, push_as_c(base_body())).await, 60).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(inner.count(), 0);
}

/// PAR-11: the custom validator runs only once authentication, the
/// `request_uri` check and every built-in rule have passed.
#[tokio::test]
async fn validator_runs_only_after_builtin_checks_pass() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let layer = default_layer().validator(validator_fn(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
        Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "custom_rejected",
            "custom rule",
        ))
    }));
    let (svc, _) = layered(&layer);
    let rejected_earlier = [
        (
            form_post(PAR, base_body(), &[("authorization", &basic(C, "x"))]),
            401,
            "invalid_client",
        ),
        (
            push_as_c(format!("{}&request_uri=urn%3Ax", base_body())),
            400,
            "invalid_request",
        ),
        (
            push_as_c(base_body_for(C, "https://evil.example/cb")),
            400,
            "invalid_request",
        ),
        (push_as_c(base_with("scope", "admin")), 400, "invalid_scope"),
        (
            push_as_c(base_with("code_challenge_method", "S512")),
            400,
            "invalid_request",
        ),
        (
            push_as_c(base_with("response_type", "token")),
            400,
            "unsupported_response_type",
        ),
    ];
    for (req, status, code) in rejected_earlier {
        assert_oauth_error(send(&svc, req).await, status, code).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "validator ran too early");
    let res = send(&svc, push_as_c(base_body())).await;
    assert_oauth_error(res, 400, "custom_rejected").await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A validator's rejection stores nothing.
#[tokio::test]
async fn validator_rejection_stores_nothing() {
    let layer = default_layer().validator(validator_fn(|_| Err(OAuthError::invalid_request("no"))));
    let store = layer.store().clone();
    let (svc, _) = layered(&layer);
    assert_oauth_error(
        send(&svc, push_as_c(base_body())).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(store.pending(), 0);
}

// ---------------------------------------------------------------------------
// Store bounds through HTTP (PAR-20)
// ---------------------------------------------------------------------------

/// A full store is `503 temporarily_unavailable` with `Retry-After`; a
/// redemption frees a slot.
#[tokio::test]
async fn store_full_is_503_with_retry_after() {
    // Strict redemption frees the slot at once; under the default flow-bound
    // policy an entry in flow keeps counting until its flow completes.
    let layer =
        default_layer()
            .redemption(Redemption::Strict)
            .with_store(MemoryStore::with_config(
                MemoryStoreConfig::default().max_pending(2),
            ));
    let (svc, calls) = layered(&layer);
    let first = assert_created(send(&svc, push_as_c(base_body())).await, 60).await;
    assert_created(send(&svc, push_as_c(base_body())).await, 60).await;
    let res = send(&svc, push_as_c(base_body())).await;
    let retry = header_str(res.headers(), "retry-after")
        .expect("Retry-After")
        .to_owned();
    assert!(
        retry.parse::<u64>().is_ok_and(|s| s > 0),
        "Retry-After: {retry}"
    );
    assert_oauth_error(res, 503, "temporarily_unavailable").await;
    // Another client is refused as well: the bound is global.
    let res = send(&svc, form_post(PAR, base_body_for(P, P_REDIRECT), &[])).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.count(), 0);
    redeem(&svc, C, &first).await;
    assert_created(send(&svc, push_as_c(base_body())).await, 60).await;
}

/// Over the per-client cap a client gets `429` with `Retry-After`; other
/// clients are unaffected.
#[tokio::test]
async fn per_client_cap_is_429_with_retry_after() {
    // Strict redemption frees the slot at once; under the default flow-bound
    // policy an entry in flow keeps counting until its flow completes.
    let layer =
        default_layer()
            .redemption(Redemption::Strict)
            .with_store(MemoryStore::with_config(
                MemoryStoreConfig::default().max_pending_per_client(2),
            ));
    let (svc, calls) = layered(&layer);
    let first = assert_created(send(&svc, push_as_c(base_body())).await, 60).await;
    assert_created(send(&svc, push_as_c(base_body())).await, 60).await;
    let res = send(&svc, push_as_c(base_body())).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = header_str(res.headers(), "retry-after")
        .expect("Retry-After")
        .to_owned();
    assert!(
        retry.parse::<u64>().is_ok_and(|s| s > 0),
        "Retry-After: {retry}"
    );
    assert_error_headers(res.headers());
    assert_error_shape(&body_json(res).await);
    let res = send(&svc, form_post(PAR, base_body_for(P, P_REDIRECT), &[])).await;
    assert_created(res, 60).await;
    assert_eq!(calls.count(), 0);
    // Refusals do not consume the allowance; a redemption frees a slot.
    let res = send(&svc, push_as_c(base_body())).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    redeem(&svc, C, &first).await;
    assert_created(send(&svc, push_as_c(base_body())).await, 60).await;
    let res = send(&svc, push_as_c(base_body())).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

// ---------------------------------------------------------------------------
// The wrapped service and /par
// ---------------------------------------------------------------------------

/// The wrapped service is never called for `/par`, whatever the outcome,
/// while other paths do reach it.
#[tokio::test]
async fn inner_service_is_never_called_for_par() {
    let (svc, calls) = layered(&default_layer());
    let requests = vec![
        push_as_c(base_body()),
        push_as_c(format!("{}&request_uri=urn%3Ax", base_body())),
        form_post(PAR, base_body(), &[]),
        form_post(PAR, "", &[]),
        post_with_type(PAR, "application/json", "{}"),
        get(PAR),
        request("OPTIONS", PAR),
        push_as_c(format!("{}&scope=x", base_body())),
    ];
    for req in requests {
        let res = send(&svc, req).await;
        assert!(res.headers().get(ECHO_HEADER).is_none());
        let cache = header_str(res.headers(), "cache-control").map(str::to_owned);
        assert!(cache.is_some_and(|c| c.contains("no-store")));
    }
    assert_eq!(calls.count(), 0);
    // The harness itself works: another path is passed through.
    let res = send(&svc, form_post("/token", base_body(), &[])).await;
    assert_eq!(res.status(), StatusCode::OK);
    let echo = body_json(res).await;
    assert_eq!(echo["path"], "/token");
    assert_eq!(echo["body"], base_body());
    assert_eq!(calls.count(), 1);
}

// ---------------------------------------------------------------------------
// Parameter names other parsers read differently (PAR-8, PAR-11)
// ---------------------------------------------------------------------------

/// PAR-8, PAR-11: a name that Java's `equalsIgnoreCase` (Unicode case:
/// U+0131, U+017F), PHP's name mangling (`.`, space, `[]`), a
/// NUL-truncating parser or a case-insensitive one reads as a parameter the
/// layer checks or drops is refused with `invalid_request` naming it
/// (sanitised), instead of being stored and forwarded unchecked.
#[tokio::test]
async fn par11_names_other_parsers_fold_onto_checked_ones_are_refused() {
    let (svc, calls) = layered(&default_layer());
    let evil = form_encode("https://evil.example/cb");
    for (name, shown) in [
        ("red\u{131}rect_uri", "red?rect_uri"),
        ("\u{17f}cope", "?cope"),
        ("\u{212a}ey", "?ey"),
        ("redirect.uri", "redirect.uri"),
        ("redirect uri", "redirect?uri"),
        ("redirect_uri[]", "redirect_uri[]"),
        ("redirect_uri\0", "redirect_uri?"),
        ("Client_Secret", "Client_Secret"),
        ("GRANT_TYPE", "GRANT_TYPE"),
        ("Response_Mode", "Response_Mode"),
    ] {
        let body = format!("{}&{}={evil}", base_body(), form_encode(name));
        let res = send(&svc, push_as_c(body)).await;
        let description = assert_oauth_error(res, 400, "invalid_request").await;
        assert!(
            description.contains(&format!("'{shown}'")),
            "{name:?}: {description}"
        );
    }
    assert_eq!(calls.count(), 0);
}

/// OA-1: extension parameters with ordinary names are still accepted and
/// forwarded as sent.
#[tokio::test]
async fn oa1_ordinary_extension_names_pass_the_names_check() {
    let (svc, _) = layered(&default_layer());
    let body = format!(
        "{}&claims=%7B%7D&authorization_details=%5B%5D&ui_locales=de&x-custom=1\
         &acr_values=urn%3Aa&login_hint=alice",
        base_body()
    );
    let uri = assert_created(send(&svc, push_as_c(body.clone())).await, 60).await;
    assert_eq!(redeem(&svc, C, &uri).await["query"], body);
}

/// OA-1, OA-7: a repeated parameter's name is client-chosen; the error
/// shows at most a bounded, printable-ASCII prefix of it.
#[tokio::test]
async fn oa1_repeated_name_is_not_echoed_beyond_a_bound() {
    let (svc, _) = layered(&default_layer());
    let name = format!("<script>\u{131}\u{1}{}", "n".repeat(5000));
    let pair = format!("{}=1", form_encode(&name));
    let body = format!("{}&{pair}&{pair}", base_body());
    let res = send(&svc, push_as_c(body)).await;
    let description = assert_oauth_error(res, 400, "invalid_request").await;
    assert!(description.len() < 100, "{description}");
    assert!(!description.contains(&"n".repeat(41)), "{description}");
    assert!(
        description.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "{description}"
    );
}

// ---------------------------------------------------------------------------
// What the authorization endpoint could not rebuild (PAR-20, PAR-41)
// ---------------------------------------------------------------------------

/// `http::Uri`'s limit (the http crate's `uri::MAX_LEN`).
const MAX_URI_LEN: usize = 65_534;

/// `base_body()` (or `base` as given) padded with `&pad=..` to `len` bytes.
fn padded(base: &str, len: usize) -> String {
    let head = format!("{base}&pad=");
    format!("{head}{}", "a".repeat(len - head.len()))
}

/// PAR-20: the longest form that fits `GET /authorize/?{form}` is pushed
/// and redeems (with and without the trailing slash); one byte more is
/// refused at push with `413`, instead of a `201` followed by a `500` at
/// every redemption.
#[tokio::test]
async fn par20_push_that_could_not_be_redeemed_by_get_is_413() {
    let (svc, calls) = layered(&default_layer());
    let longest = MAX_URI_LEN - "/authorize/?".len();
    let body = padded(&base_body(), longest);
    for path in ["/authorize", "/authorize/"] {
        let uri = assert_created(send(&svc, push_as_c(body.clone())).await, 60).await;
        let q = form(&[("client_id", C), ("request_uri", &uri)]);
        let res = send(&svc, get(&format!("{path}?{q}"))).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(body_json(res).await["query"], body.as_str());
    }
    assert_eq!(calls.count(), 2);

    let res = send(&svc, push_as_c(padded(&base_body(), longest + 1))).await;
    let description = assert_oauth_error(res, 413, "invalid_request").await;
    assert!(description.contains(&longest.to_string()), "{description}");
    assert_eq!(calls.count(), 2);
}

/// PAR-9, PAR-20: the `client_id` added for a Basic client counts towards
/// the stored length.
#[tokio::test]
async fn par20_client_id_added_for_basic_counts_towards_the_limit() {
    let (svc, _) = layered(&default_layer());
    let longest = MAX_URI_LEN - "/authorize/?".len();
    let added = format!("client_id={C}&").len();
    let base = base_without("client_id");
    let uri = assert_created(
        send(&svc, push_as_c(padded(&base, longest - added))).await,
        60,
    )
    .await;
    let seen = redeem(&svc, C, &uri).await;
    assert_eq!(seen["query"].as_str().unwrap().len(), longest);
    let res = send(&svc, push_as_c(padded(&base, longest - added + 1))).await;
    assert_oauth_error(res, 413, "invalid_request").await;
}

/// PAR-41: the stored form is parsed again at redemption; a Basic client
/// that pushes the most parameters without `client_id` would get one more
/// once it is added, so the push is refused rather than failing with a
/// `500` at every redemption.
#[tokio::test]
async fn par41_push_whose_stored_form_has_too_many_parameters_is_refused() {
    let (svc, calls) = layered(&default_layer());
    let base = base_without("client_id");
    let have = base.split('&').count();
    let fill = |n: usize| (0..n).map(|i| format!("&p{i}=1")).collect::<String>();
    let full = format!("{base}{}", fill(tower_par::Params::MAX_PARAMS - have));
    let res = send(&svc, push_as_c(full)).await;
    let description = assert_oauth_error(res, 400, "invalid_request").await;
    assert!(description.contains("256"), "{description}");
    // One fewer fits, client_id included, and redeems.
    let fits = format!("{base}{}", fill(tower_par::Params::MAX_PARAMS - have - 1));
    let uri = assert_created(send(&svc, push_as_c(fits)).await, 60).await;
    redeem(&svc, C, &uri).await;
    assert_eq!(calls.count(), 1);
}

/// The PAR body deadline is a fallible setting: 1 ms to 300 s.
#[test]
fn par_body_timeout_range() {
    for ok in [1, 300_000] {
        assert!(default_layer()
            .par_body_timeout(Duration::from_millis(ok))
            .is_ok());
    }
    for bad in [
        Duration::ZERO,
        Duration::from_micros(999),
        Duration::from_millis(300_001),
    ] {
        assert!(default_layer().par_body_timeout(bad).is_err(), "{bad:?}");
    }
}
