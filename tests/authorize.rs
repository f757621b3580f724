//! The authorization endpoint: redeeming a `request_uri` (RFC 9126 §4),
//! the require-PAR policy, and everything the layer must leave alone.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::{Service, ServiceExt};
use tower_par::{ParLayer, ParRequestBody, RequestUri, REQUEST_URI_PREFIX};

use support::*;

// ---------------------------------------------------------------------------
// Redemption by GET and POST
// ---------------------------------------------------------------------------

#[tokio::test]
async fn get_redemption_forwards_only_the_pushed_params_in_pushed_order_par32_t79() {
    let (svc, calls) = service(layer());
    let request_uri = push_c(&svc).await;

    // Front-channel extras that must not reach the inner service (T79).
    let uri = format!(
        "{}&scope=openid%20admin&redirect_uri=https://evil.example/cb&state=evil&prompt=none",
        authorize_uri(C_ID, &request_uri)
    );
    let seen = call_echo(&svc, get(&uri)).await;

    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["uri"], format!("/authorize?{}", c_form()));
    assert_eq!(seen["body"], "");
    assert_eq!(hits(&calls), 1);
}

#[tokio::test]
async fn get_redemption_never_forwards_request_uri_itself_m2() {
    let (svc, _) = service(layer());
    let request_uri = push_c(&svc).await;
    let seen = call_echo(&svc, get(&authorize_uri(C_ID, &request_uri))).await;
    let forwarded = seen["uri"].as_str().unwrap();
    assert!(!forwarded.contains("request_uri"), "{forwarded}");
    assert!(!forwarded.contains(&request_uri), "{forwarded}");
}

#[tokio::test]
async fn get_redemption_attaches_pushed_authorization_extension_par15() {
    let (svc, _) = service(layer());
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request_uri = push_c(&svc).await;
    let seen = call_echo(&svc, get(&authorize_uri(C_ID, &request_uri))).await;

    let par = &seen["par"];
    assert_eq!(par["client_id"], "C");
    assert_eq!(par["auth_method"], "client_secret_basic");
    assert_eq!(par["request_uri"], request_uri.as_str());
    // The default lifetime (PAR-13 `expires_in`).
    assert_eq!(par["lifetime_secs"], 60);
    let pushed_at = par["pushed_at_unix"].as_u64().unwrap();
    assert!(
        pushed_at >= before && pushed_at <= before + 5,
        "{pushed_at}"
    );
}

#[tokio::test]
async fn extension_reports_post_and_none_auth_methods_and_secret_is_not_forwarded_par8() {
    let (svc, _) = service(layer());

    let post_form = format!("{}&client_secret={Q_SECRET}", public_form(Q_ID, Q_REDIRECT));
    let q_uri = push(&svc, None, &post_form).await;
    let seen = call_echo(&svc, get(&authorize_uri(Q_ID, &q_uri))).await;
    assert_eq!(seen["par"]["client_id"], "Q");
    assert_eq!(seen["par"]["auth_method"], "client_secret_post");
    assert_eq!(
        seen["uri"],
        format!("/authorize?{}", public_form(Q_ID, Q_REDIRECT))
    );

    let p_uri = push(&svc, None, &public_form(P_ID, P_REDIRECT)).await;
    let seen = call_echo(&svc, get(&authorize_uri(P_ID, &p_uri))).await;
    assert_eq!(seen["par"]["client_id"], "P");
    assert_eq!(seen["par"]["auth_method"], "none");
}

#[tokio::test]
async fn basic_push_without_body_client_id_forwards_client_id_first_par9() {
    let (svc, _) = service(layer());
    let form = format!(
        "response_type=code&redirect_uri={}&state=s1&code_challenge={CHALLENGE}&code_challenge_method=S256",
        form_encode(C_REDIRECT)
    );
    let request_uri = push(&svc, Some(&c_basic()), &form).await;
    let seen = call_echo(&svc, get(&authorize_uri(C_ID, &request_uri))).await;
    assert_eq!(seen["uri"], format!("/authorize?client_id=C&{form}"));
}

#[tokio::test]
async fn get_redemption_accepts_an_unencoded_request_uri_par27() {
    let (svc, _) = service(layer());
    let request_uri = push_c(&svc).await;
    let uri = format!("/authorize?request_uri={request_uri}&client_id=C");
    let seen = call_echo(&svc, get(&uri)).await;
    assert_eq!(seen["uri"], format!("/authorize?{}", c_form()));
    assert_eq!(seen["par"]["request_uri"], request_uri.as_str());
}

#[tokio::test]
async fn get_redemption_keeps_scheme_and_authority_of_an_absolute_uri() {
    let (svc, _) = service(layer());
    let request_uri = push_c(&svc).await;
    let uri = format!("https://as.example{}", authorize_uri(C_ID, &request_uri));
    let seen = call_echo(&svc, get(&uri)).await;
    assert_eq!(
        seen["uri"],
        format!("https://as.example/authorize?{}", c_form())
    );
}

#[tokio::test]
async fn get_redemption_keeps_other_request_headers() {
    let (svc, _) = service(layer());
    let request_uri = push_c(&svc).await;
    let mut req = get(&authorize_uri(C_ID, &request_uri));
    req.headers_mut()
        .insert(header::COOKIE, "session=abc".parse().unwrap());
    req.headers_mut()
        .insert("x-request-id", "r-1".parse().unwrap());
    let seen = call_echo(&svc, req).await;
    assert_eq!(seen["headers"]["cookie"], "session=abc");
    assert_eq!(seen["headers"]["x-request-id"], "r-1");
}

#[tokio::test]
async fn post_form_redemption_sends_stored_params_as_the_body_oa2_par32() {
    let (svc, calls) = service(layer());
    let request_uri = push_c(&svc).await;
    let body = format!(
        "client_id=C&request_uri={}&scope=openid+admin&redirect_uri=https%3A%2F%2Fevil.example",
        form_encode(&request_uri)
    );
    let mut req = post_form("/authorize?scope=admin&state=evil", body.clone());
    req.headers_mut()
        .insert(header::CONTENT_LENGTH, body.len().into());
    let seen = call_echo(&svc, req).await;

    let stored = c_form();
    assert_eq!(seen["method"], "POST");
    // No query: the stored request travels in the body only.
    assert_eq!(seen["uri"], "/authorize");
    assert_eq!(seen["body"], stored.as_str());
    assert_eq!(seen["headers"]["content-type"], FORM);
    assert_eq!(
        seen["headers"]["content-length"],
        stored.len().to_string().as_str()
    );
    assert_eq!(seen["par"]["client_id"], "C");
    assert_eq!(seen["par"]["request_uri"], request_uri.as_str());
    assert_eq!(hits(&calls), 1);
}

#[tokio::test]
async fn post_form_redemption_drops_transfer_encoding_and_normalises_content_type_oa2() {
    let (svc, _) = service(layer());
    let request_uri = push_c(&svc).await;
    let body = format!("client_id=C&request_uri={}", form_encode(&request_uri));
    let req = Request::post("/authorize")
        .header(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let seen = call_echo(&svc, req).await;
    assert!(seen["headers"].get("transfer-encoding").is_none(), "{seen}");
    assert_eq!(seen["headers"]["content-type"], FORM);
    assert_eq!(
        seen["headers"]["content-length"],
        c_form().len().to_string().as_str()
    );
    assert_eq!(seen["body"], c_form().as_str());
}

// ---------------------------------------------------------------------------
// Refused redemptions: never redirected (OA-5), never reach the inner service
// ---------------------------------------------------------------------------

#[tokio::test]
async fn guessed_malformed_and_unknown_request_uris_are_invalid_request_uri_t78_par14() {
    let (svc, calls) = service(layer());
    let issued = push_c(&svc).await;
    // Flip the last character of a real one.
    let mut tampered = issued.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });

    let candidates = [
        format!("{REQUEST_URI_PREFIX}guess"),
        format!("{REQUEST_URI_PREFIX}{}", "A".repeat(44)),
        format!("{REQUEST_URI_PREFIX}{}", "!".repeat(43)),
        RequestUri::generate().to_string(),
        tampered,
        "urn:ietf:params:oauth:request_uri:".to_owned(),
    ];
    for candidate in candidates {
        let res = call(&svc, get(&authorize_uri(C_ID, &candidate))).await;
        assert_html_error(
            res,
            StatusCode::BAD_REQUEST,
            "invalid_request_uri",
            NOT_FOUND,
        )
        .await;
    }
    assert_eq!(hits(&calls), 0);
    // None of those attempts touched the real entry.
    call_echo(&svc, get(&authorize_uri(C_ID, &issued))).await;
}

#[tokio::test]
async fn unknown_request_uri_error_is_json_when_the_user_agent_asks_for_json_oa5() {
    let (svc, _) = service(layer());
    let uri = authorize_uri(C_ID, &RequestUri::generate().to_string());
    let res = call(&svc, with_accept(get(&uri), "application/json")).await;
    assert_json_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn unknown_request_uri_error_is_html_when_html_is_acceptable_too_oa5() {
    let (svc, _) = service(layer());
    let uri = authorize_uri(C_ID, &RequestUri::generate().to_string());
    let res = call(
        &svc,
        with_accept(get(&uri), "text/html,application/json;q=0.9"),
    )
    .await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn unknown_request_uri_by_post_form_is_refused_t78() {
    let (svc, calls) = service(layer());
    let body = format!(
        "client_id=C&request_uri={}",
        form_encode(&RequestUri::generate().to_string())
    );
    let res = call(&svc, post_form("/authorize", body)).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;
    assert_eq!(hits(&calls), 0);
}

#[tokio::test]
async fn request_uri_is_refused_after_a_successful_redemption_t76_par28() {
    let (svc, calls) = service(layer());
    let request_uri = push_c(&svc).await;
    call_echo(&svc, get(&authorize_uri(C_ID, &request_uri))).await;

    // A reload (T77: the second load is rejected), by GET and by POST.
    let res = call(&svc, get(&authorize_uri(C_ID, &request_uri))).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;
    let body = format!("client_id=C&request_uri={}", form_encode(&request_uri));
    let res = call(&svc, post_form("/authorize", body)).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;
    assert_eq!(hits(&calls), 1);
}

#[tokio::test]
async fn expired_request_uri_is_refused_t75_par29() {
    let layer = layer()
        .request_uri_lifetime(Duration::from_secs(1))
        .unwrap();
    let (svc, calls) = service(layer);
    let fresh = push_c(&svc).await;
    let stale = push_c(&svc).await;

    // Within its lifetime a request_uri works ...
    let seen = call_echo(&svc, get(&authorize_uri(C_ID, &fresh))).await;
    assert_eq!(seen["par"]["lifetime_secs"], 1);

    // ... and once `expires_in` has passed it is gone.
    tokio::time::sleep(Duration::from_millis(1_250)).await;
    let res = call(&svc, get(&authorize_uri(C_ID, &stale))).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;
    assert_eq!(hits(&calls), 1);
}

#[tokio::test]
async fn missing_client_id_is_refused_and_does_not_burn_the_request_uri_t74_par27() {
    let (svc, calls) = service(layer());
    let request_uri = push_c(&svc).await;

    let uri = format!("/authorize?request_uri={}", form_encode(&request_uri));
    let res = call(&svc, get(&uri)).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "client_id is required with request_uri",
    )
    .await;
    // An empty client_id is an absent one (OA-1).
    let res = call(
        &svc,
        with_accept(get(&format!("{uri}&client_id=")), "application/json"),
    )
    .await;
    assert_json_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "client_id is required with request_uri",
    )
    .await;
    assert_eq!(hits(&calls), 0);

    let seen = call_echo(&svc, get(&authorize_uri(C_ID, &request_uri))).await;
    assert_eq!(seen["par"]["client_id"], "C");
}

#[tokio::test]
async fn foreign_client_id_is_refused_and_does_not_burn_the_request_uri_t73_par15() {
    let (svc, calls) = service(layer());
    let request_uri = push_c(&svc).await;
    let unknown = tower_par::RequestUri::generate().to_string();

    // A registered client, an unknown one, and one that differs only in
    // case: answered exactly as an unknown request_uri is, so a caller
    // cannot tell a live request_uri from a made-up one.
    for other in [P_ID, "OTHER", "c"] {
        let live = call(&svc, get(&authorize_uri(other, &request_uri))).await;
        let made_up = call(&svc, get(&authorize_uri(other, &unknown))).await;
        let (live_status, live_body) = (live.status(), body_string(live).await);
        assert_eq!(live_status, made_up.status());
        assert_eq!(live_body, body_string(made_up).await);
        assert!(live_body.contains("invalid_request_uri") && live_body.contains(NOT_FOUND));
    }
    let body = format!("client_id=P&request_uri={}", form_encode(&request_uri));
    let res = call(
        &svc,
        with_accept(post_form("/authorize", body), "application/json"),
    )
    .await;
    assert_json_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;
    assert_eq!(hits(&calls), 0);

    // The rightful client can still redeem it.
    let seen = call_echo(&svc, get(&authorize_uri(C_ID, &request_uri))).await;
    assert_eq!(seen["par"]["client_id"], "C");
    assert_eq!(seen["uri"], format!("/authorize?{}", c_form()));
}

// ---------------------------------------------------------------------------
// Pass-through
// ---------------------------------------------------------------------------

#[tokio::test]
async fn authorize_get_without_request_uri_passes_through_unchanged_m1() {
    let (svc, calls) = service(layer());
    let uri = "/authorize?response_type=code&client_id=C&scope=openid%20profile&state=xyz";
    let mut req = get(uri);
    req.headers_mut().insert("x-custom", "1".parse().unwrap());
    let seen = call_echo(&svc, req).await;
    assert_eq!(
        seen,
        json!({
            "method": "GET",
            "uri": uri,
            "headers": {"x-custom": "1"},
            "body": "",
            "par": null,
        })
    );
    assert_eq!(hits(&calls), 1);
}

#[tokio::test]
async fn authorize_post_form_without_request_uri_passes_through_unchanged_m1() {
    let (svc, _) = service(layer());
    let body = "response_type=code&client_id=C&state=xyz&scope=openid+profile";
    let mut req = post_form("/authorize?keep=1", body);
    req.headers_mut()
        .insert(header::CONTENT_LENGTH, body.len().into());
    let seen = call_echo(&svc, req).await;
    assert_eq!(
        seen,
        json!({
            "method": "POST",
            "uri": "/authorize?keep=1",
            "headers": {"content-type": FORM, "content-length": body.len().to_string()},
            "body": body,
            "par": null,
        })
    );
}

#[tokio::test]
async fn authorize_post_with_other_content_type_passes_through_with_body_intact() {
    // No client requires PAR: what the layer does not read is not its to judge.
    let (svc, _) = service(ParLayer::new(optional_clients()));
    let body = r#"{"client_id":"C","request_uri":"urn:x"}"#;
    let req = Request::post("/authorize")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let seen = call_echo(&svc, req).await;
    assert_eq!(seen["body"], body);
    assert_eq!(seen["headers"]["content-type"], "application/json");
    assert_eq!(seen["par"], Value::Null);
}

#[tokio::test]
async fn unparseable_authorize_query_is_left_to_the_inner_service_when_par_is_optional() {
    let (svc, _) = service(layer());
    for uri in [
        "/authorize?client_id=C&scope=a&scope=b",
        "/authorize?client_id=C&state=%zz",
    ] {
        let seen = call_echo(&svc, get(uri)).await;
        assert_eq!(seen["uri"], uri);
        assert_eq!(seen["par"], Value::Null);
    }
}

#[tokio::test]
async fn other_paths_and_methods_pass_through_untouched_with_their_body() {
    let (svc, calls) = service(ParLayer::new(optional_clients()));
    let request_uri = push_c(&svc).await;

    let seen = call_echo(&svc, get("/health?verbose=1")).await;
    assert_eq!(
        seen,
        json!({"method": "GET", "uri": "/health?verbose=1", "headers": {}, "body": "", "par": null})
    );

    // PUT /authorize with a request_uri is not an authorization request.
    let put_uri = authorize_uri(C_ID, &request_uri);
    let req = Request::put(put_uri.as_str())
        .header(header::CONTENT_TYPE, FORM)
        .body(Full::new(Bytes::from_static(b"hello=world")))
        .unwrap();
    let seen = call_echo(&svc, req).await;
    assert_eq!(
        seen,
        json!({
            "method": "PUT",
            "uri": put_uri,
            "headers": {"content-type": FORM},
            "body": "hello=world",
            "par": null,
        })
    );

    // A token request that happens to carry a request_uri.
    let token_body = format!(
        "grant_type=authorization_code&code=abc&request_uri={}",
        form_encode(&request_uri)
    );
    let seen = call_echo(&svc, post_form("/token", token_body.clone())).await;
    assert_eq!(seen["uri"], "/token");
    assert_eq!(seen["body"], token_body.as_str());
    assert_eq!(seen["par"], Value::Null);

    // Paths that only start with the authorization path.
    let uri = format!("/authorize-legacy?client_id=C&request_uri={request_uri}");
    let seen = call_echo(&svc, get(&uri)).await;
    assert_eq!(seen["uri"], uri.as_str());
    assert_eq!(seen["par"], Value::Null);

    assert_eq!(hits(&calls), 4);
    // None of it consumed the pushed request.
    let seen = call_echo(&svc, get(&authorize_uri(C_ID, &request_uri))).await;
    assert_eq!(seen["par"]["client_id"], "C");
}

#[tokio::test]
async fn inner_response_is_returned_as_is_on_redemption_m3() {
    // The layer does not answer with a redirect of its own: whatever the
    // inner service answers (here a 302 to the client) is the response.
    let inner = tower::service_fn(|req: Request<ParRequestBody<Full<Bytes>>>| async move {
        let query = req.uri().query().unwrap_or_default().to_owned();
        let res = Response::builder()
            .status(StatusCode::FOUND)
            .header(
                header::LOCATION,
                format!("https://c.example/cb?code=xyz&from={}", query.len()),
            )
            .header("x-legacy", "1")
            .body(Full::new(Bytes::from_static(b"redirecting")))
            .unwrap();
        Ok::<_, Infallible>(res)
    });
    let svc = tower::Layer::layer(&layer(), inner);
    let request_uri = push_c(&svc).await;
    let res = svc
        .clone()
        .oneshot(get(&authorize_uri(C_ID, &request_uri)))
        .await
        .unwrap();
    let (parts, body) = into_parts(res).await;
    assert_eq!(parts.status, StatusCode::FOUND);
    assert_eq!(
        parts.headers[header::LOCATION],
        format!("https://c.example/cb?code=xyz&from={}", c_form().len()).as_str()
    );
    assert_eq!(parts.headers["x-legacy"], "1");
    assert_eq!(body, "redirecting");
}

// ---------------------------------------------------------------------------
// Foreign request_uri values (M-1)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn non_urn_request_uri_is_refused_by_default_m1() {
    let (svc, calls) = service(layer());
    let res = call(&svc, get(&authorize_uri(C_ID, "https://x/y"))).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;
    assert_eq!(hits(&calls), 0);
}

#[tokio::test]
async fn non_urn_request_uri_passes_through_with_pass_foreign_request_uris_m1() {
    let (svc, _) = service(layer().pass_foreign_request_uris(true));
    let uri = authorize_uri(C_ID, "https://x/y");
    let seen = call_echo(&svc, get(&uri)).await;
    assert_eq!(seen["uri"], uri.as_str());
    assert_eq!(seen["par"], Value::Null);

    // Only foreign values: an unknown URN of ours is still refused.
    let res = call(
        &svc,
        get(&authorize_uri(C_ID, &RequestUri::generate().to_string())),
    )
    .await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn pass_foreign_request_uris_never_applies_when_par_is_required_par31() {
    let (svc, calls) = service(layer().pass_foreign_request_uris(true).require_par(true));
    let res = call(&svc, get(&authorize_uri(C_ID, "https://x/y"))).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;

    // Nor for a client that requires PAR on its own.
    let (svc2, calls2) = service(layer().pass_foreign_request_uris(true));
    let res = call(&svc2, get(&authorize_uri(R_ID, "https://x/y"))).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;
    assert_eq!(hits(&calls) + hits(&calls2), 0);
}

// ---------------------------------------------------------------------------
// Require PAR (PAR-31, M-4)
// ---------------------------------------------------------------------------

const REQUIRED: &str = "pushed authorization request required";
const UNREADABLE: &str = "pushed authorization request required: the request body is not an application/x-www-form-urlencoded form; use GET or POST /authorize with client_id and request_uri";

#[tokio::test]
async fn require_par_refuses_front_channel_get_t80_par31() {
    let (svc, calls) = service(layer().require_par(true));
    let uri = front_channel_request(C_ID, C_REDIRECT);
    let res = call(&svc, get(&uri)).await;
    assert_html_error(res, StatusCode::BAD_REQUEST, "invalid_request", REQUIRED).await;
    let res = call(&svc, with_accept(get(&uri), "application/json")).await;
    assert_json_error(res, StatusCode::BAD_REQUEST, "invalid_request", REQUIRED).await;
    // No client_id at all, or an unparseable query: refused as well.
    let res = call(&svc, get("/authorize")).await;
    assert_html_error(res, StatusCode::BAD_REQUEST, "invalid_request", REQUIRED).await;
    let res = call(&svc, get("/authorize?client_id=C&state=%zz")).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "malformed percent-encoding",
    )
    .await;
    assert_eq!(hits(&calls), 0);
}

#[tokio::test]
async fn require_par_refuses_front_channel_post_form_t81_m4() {
    let (svc, calls) = service(layer().require_par(true));
    let body = front_channel_request(C_ID, C_REDIRECT)
        .trim_start_matches("/authorize?")
        .to_owned();
    let res = call(&svc, post_form("/authorize", body.clone())).await;
    assert_html_error(res, StatusCode::BAD_REQUEST, "invalid_request", REQUIRED).await;

    // A POST whose body the layer does not read as a form is refused too.
    let req = Request::post("/authorize")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let res = call(&svc, req).await;
    assert_html_error(res, StatusCode::BAD_REQUEST, "invalid_request", UNREADABLE).await;
    assert_eq!(hits(&calls), 0);
}

#[tokio::test]
async fn require_par_refuses_the_trailing_slash_variant_t81_m4() {
    let (svc, calls) = service(layer().require_par(true));
    let uri = front_channel_request(C_ID, C_REDIRECT).replace("/authorize?", "/authorize/?");
    let res = call(&svc, get(&uri)).await;
    assert_html_error(res, StatusCode::BAD_REQUEST, "invalid_request", REQUIRED).await;
    let body = uri.split_once('?').unwrap().1.to_owned();
    let res = call(&svc, post_form("/authorize/", body)).await;
    assert_html_error(res, StatusCode::BAD_REQUEST, "invalid_request", REQUIRED).await;
    assert_eq!(hits(&calls), 0);
}

#[tokio::test]
async fn require_par_refuses_head_authorize_t81_m4() {
    let (svc, calls) = service(layer().require_par(true));
    let uri = front_channel_request(C_ID, C_REDIRECT);
    let req = Request::head(uri.as_str()).body(Full::default()).unwrap();
    let res = call(&svc, req).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(hits(&calls), 0);
}

#[tokio::test]
async fn require_par_still_accepts_pushed_requests_par31() {
    let (svc, _) = service(layer().require_par(true));
    let request_uri = push_c(&svc).await;
    let seen = call_echo(&svc, get(&authorize_uri(C_ID, &request_uri))).await;
    assert_eq!(seen["uri"], format!("/authorize?{}", c_form()));
}

#[tokio::test]
async fn client_registered_with_require_par_is_refused_without_request_uri_par31() {
    let (svc, calls) = service(layer());
    let res = call(&svc, get(&front_channel_request(R_ID, R_REDIRECT))).await;
    assert_html_error(res, StatusCode::BAD_REQUEST, "invalid_request", REQUIRED).await;
    let body = format!("response_type=code&client_id={R_ID}");
    let res = call(&svc, post_form("/authorize", body)).await;
    assert_html_error(res, StatusCode::BAD_REQUEST, "invalid_request", REQUIRED).await;
    assert_eq!(hits(&calls), 0);

    // Other clients are not affected.
    let uri = front_channel_request(P_ID, P_REDIRECT);
    let seen = call_echo(&svc, get(&uri)).await;
    assert_eq!(seen["uri"], uri.as_str());

    // And R itself can use PAR.
    let request_uri = push(&svc, None, &public_form(R_ID, R_REDIRECT)).await;
    let seen = call_echo(&svc, get(&authorize_uri(R_ID, &request_uri))).await;
    assert_eq!(seen["par"]["client_id"], "R");
}

#[tokio::test]
async fn require_par_for_affects_only_that_client_par31() {
    let (svc, calls) = service(layer().require_par_for(P_ID));
    let res = call(&svc, get(&front_channel_request(P_ID, P_REDIRECT))).await;
    assert_html_error(res, StatusCode::BAD_REQUEST, "invalid_request", REQUIRED).await;
    assert_eq!(hits(&calls), 0);

    let uri = front_channel_request(C_ID, C_REDIRECT);
    let seen = call_echo(&svc, get(&uri)).await;
    assert_eq!(seen["uri"], uri.as_str());

    let request_uri = push(&svc, None, &public_form(P_ID, P_REDIRECT)).await;
    let seen = call_echo(&svc, get(&authorize_uri(P_ID, &request_uri))).await;
    assert_eq!(seen["par"]["client_id"], "P");
}

#[tokio::test]
async fn per_client_require_par_cannot_be_bypassed_with_a_repeated_parameter_par31() {
    let (svc, calls) = service(layer().require_par_for(P_ID));
    let uri = format!("{}&state=again", front_channel_request(P_ID, P_REDIRECT));
    let res = call(&svc, get(&uri)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let uri = format!("{}&state=again", front_channel_request(R_ID, R_REDIRECT));
    let res = call(&svc, get(&uri)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(hits(&calls), 0);
}

// ---------------------------------------------------------------------------
// Tower contract: poll_ready
// ---------------------------------------------------------------------------

/// An inner service that is ready only while `open`, counts `poll_ready`,
/// and refuses to be called unless `poll_ready` succeeded on that very
/// instance (a clone starts unready, like a `Buffer` handle).
struct Gate {
    open: Arc<AtomicBool>,
    polls: Arc<AtomicUsize>,
    ready: bool,
}

impl Clone for Gate {
    fn clone(&self) -> Self {
        Self {
            open: self.open.clone(),
            polls: self.polls.clone(),
            ready: false,
        }
    }
}

impl Service<Request<ParRequestBody<Full<Bytes>>>> for Gate {
    type Response = Response<Full<Bytes>>;
    type Error = String;
    type Future = std::future::Ready<Result<Self::Response, String>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.open.load(Ordering::SeqCst) {
            self.ready = true;
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, req: Request<ParRequestBody<Full<Bytes>>>) -> Self::Future {
        if !std::mem::replace(&mut self.ready, false) {
            return std::future::ready(Err("called without poll_ready".to_owned()));
        }
        let body = Bytes::from(req.uri().to_string());
        std::future::ready(Ok(Response::new(Full::new(body))))
    }
}

fn gate(open: bool) -> (Gate, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let open = Arc::new(AtomicBool::new(open));
    let polls = Arc::new(AtomicUsize::new(0));
    let gate = Gate {
        open: open.clone(),
        polls: polls.clone(),
        ready: false,
    };
    (gate, open, polls)
}

#[tokio::test]
async fn poll_ready_is_forwarded_to_the_inner_service() {
    let (inner, open, polls) = gate(false);
    let mut svc = tower::Layer::layer(&layer(), inner);

    let waited = tokio::time::timeout(Duration::from_millis(50), svc.ready()).await;
    assert!(
        waited.is_err(),
        "the layer was ready while the inner service was not"
    );
    assert!(polls.load(Ordering::SeqCst) >= 1);

    open.store(true, Ordering::SeqCst);
    let waited = tokio::time::timeout(Duration::from_millis(50), svc.ready()).await;
    assert!(matches!(waited, Ok(Ok(_))));
}

#[tokio::test]
async fn poll_ready_errors_of_the_inner_service_are_returned() {
    let inner = tower::service_fn(|_req: Request<ParRequestBody<Full<Bytes>>>| async {
        Ok::<_, String>(Response::new(Full::<Bytes>::default()))
    });
    struct Failing<S>(S);
    impl<S: Service<R, Error = String>, R> Service<R> for Failing<S> {
        type Response = S::Response;
        type Error = String;
        type Future = S::Future;
        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), String>> {
            Poll::Ready(Err("overloaded".to_owned()))
        }
        fn call(&mut self, req: R) -> S::Future {
            self.0.call(req)
        }
    }
    impl<S: Clone> Clone for Failing<S> {
        fn clone(&self) -> Self {
            Self(self.0.clone())
        }
    }
    let mut svc = tower::Layer::layer(&layer(), Failing(inner));
    let err = svc.ready().await.err();
    assert_eq!(err.as_deref(), Some("overloaded"));
}

#[tokio::test]
async fn the_inner_service_made_ready_is_the_one_that_is_called() {
    let (inner, _open, _) = gate(true);
    let layer = layer().issuer("https://as.example").unwrap().metadata(true);
    let mut svc = tower::Layer::layer(&layer, inner);
    let request_uri = push_c(&svc).await;

    let requests = [
        get(&authorize_uri(C_ID, &request_uri)),
        get("/authorize?response_type=code&client_id=C"),
        get("/health"),
        get("/.well-known/oauth-authorization-server"),
    ];
    for req in requests {
        let uri = req.uri().clone();
        let res = svc.ready().await.unwrap().call(req).await;
        let res = res.unwrap_or_else(|e| panic!("{uri}: {e}"));
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
    }
    // And twice in a row on the same clone, after a redemption.
    let request_uri = push_c(&svc).await;
    for uri in [authorize_uri(C_ID, &request_uri), "/health".to_owned()] {
        let res = svc.ready().await.unwrap().call(get(&uri)).await;
        assert!(res.is_ok(), "{uri}");
    }
}

// ---------------------------------------------------------------------------
// Concurrency (T82, M-2)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_redemptions_of_one_request_uri_reach_the_inner_service_once_t82_m2() {
    let (svc, calls) = service(layer());
    let request_uri = push_c(&svc).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(100));

    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let svc = svc.clone();
            let barrier = barrier.clone();
            let uri = authorize_uri(C_ID, &request_uri);
            tokio::spawn(async move {
                let req = with_accept(get(&uri), "application/json");
                barrier.wait().await;
                let res = svc.oneshot(req).await.unwrap();
                let status = res.status();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                (status, body)
            })
        })
        .collect();

    let mut ok = 0;
    let mut refused = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::BAD_REQUEST => {
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["error"], "invalid_request_uri");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, refused), (1, 99));
    assert_eq!(hits(&calls), 1);
}

#[tokio::test]
async fn authorize_method_routing_covers_get_and_post_only_oa2() {
    // Sanity check of the routing table used above: GET and POST are
    // authorization requests, other methods are not.
    let (svc, _) = service(layer());
    for method in [Method::GET, Method::POST] {
        let req = Request::builder()
            .method(method.clone())
            .uri(authorize_uri(
                C_ID,
                "urn:ietf:params:oauth:request_uri:guess",
            ))
            .body(Full::default())
            .unwrap();
        let res = call(&svc, req).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{method}");
    }
    for method in [Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
        let req = Request::builder()
            .method(method.clone())
            .uri(authorize_uri(
                C_ID,
                "urn:ietf:params:oauth:request_uri:guess",
            ))
            .body(Full::default())
            .unwrap();
        let seen = call_echo(&svc, req).await;
        assert_eq!(seen["method"], method.as_str());
    }
}

// ---------------------------------------------------------------------------
// PAR-41: the client's current registration at redemption
// ---------------------------------------------------------------------------

/// Two servers sharing one store (two instances, or one restarted with a
/// new client configuration): the request is pushed through the first
/// and redeemed through the second, whose registration of C is `c`.
async fn redeem_after_policy_change(c: Option<tower_par::Client>) -> (StatusCode, String, usize) {
    use tower_par::{MemoryStore, StaticClients};
    let store = MemoryStore::new();
    let (before, _) = service(layer().with_store(store.clone()));
    let request_uri = push_c(&before).await;

    let mut now = StaticClients::new();
    if let Some(c) = c {
        now = now.with_client(c, Some(C_SECRET)).unwrap();
    }
    let (after, calls) = service(tower_par::ParLayer::new(now).with_store(store));
    let res = call(
        &after,
        with_accept(get(&authorize_uri(C_ID, &request_uri)), "application/json"),
    )
    .await;
    let status = res.status();
    let cache = res.headers().get(header::CACHE_CONTROL).cloned();
    let body = body_string(res).await;
    if status != StatusCode::OK {
        assert_eq!(cache.unwrap(), "no-store");
    }
    (status, body, hits(&calls))
}

#[tokio::test]
async fn redemption_checks_the_clients_current_registration_par41() {
    use tower_par::{AuthMethod, Client};
    // Unchanged registration: redeemed.
    let same = Client::new(C_ID, AuthMethod::ClientSecretBasic)
        .redirect_uri(C_REDIRECT)
        .scopes(["openid", "profile"]);
    let (status, _, calls) = redeem_after_policy_change(Some(same)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(calls, 1);

    // The pushed redirect URI is no longer registered.
    let moved = Client::new(C_ID, AuthMethod::ClientSecretBasic)
        .redirect_uri("https://c.example/new-cb")
        .scopes(["openid", "profile"]);
    let (status, body, calls) = redeem_after_policy_change(Some(moved)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"], "invalid_request", "{body}");
    assert_eq!(calls, 0, "nothing reaches the wrapped service");

    // The pushed scope is no longer allowed.
    let narrowed = Client::new(C_ID, AuthMethod::ClientSecretBasic)
        .redirect_uri(C_REDIRECT)
        .scopes(["profile"]);
    let (status, body, calls) = redeem_after_policy_change(Some(narrowed)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"], "invalid_scope", "{body}");
    assert_eq!(calls, 0);

    // The client is gone: its request_uri is as good as unknown.
    let (status, body, calls) = redeem_after_policy_change(None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"], "invalid_request_uri", "{body}");
    assert_eq!(calls, 0);
}
