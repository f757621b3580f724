//! Hostile and unusual inputs: smuggling parameters past the layer,
//! sidestepping require-PAR, features the layer does not verify.

mod common;

use bytes::Bytes;
use common::*;
use http::{header, Request, StatusCode};
use http_body_util::Full;
use tower_par::{validator_fn, OAuthError, Profile};

async fn push_c(
    svc: &(impl tower::Service<
        Request<Full<Bytes>>,
        Response = http::Response<tower_par::ParResponseBody<Full<Bytes>>>,
        Error = std::convert::Infallible,
    > + Clone),
    body: String,
) -> String {
    let res = send(
        svc,
        form_post("/par", body, &[("authorization", &basic(C, C_SECRET))]),
    )
    .await;
    assert_created(res, 60).await
}

#[tokio::test]
async fn par32_get_redemption_drops_a_smuggled_form_body() {
    let (svc, _) = layered(&default_layer());
    let uri = push_c(&svc, base_body()).await;
    let q = form(&[("client_id", C), ("request_uri", &uri)]);
    let req = Request::get(format!("/authorize?{q}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(
            b"acr_values=weak&max_age=999999",
        )))
        .unwrap();
    let seen = body_json(send(&svc, req).await).await;
    assert_eq!(seen["body"], "", "{seen}");
    assert!(seen["content_type"].is_null());
    assert!(!seen["query"].as_str().unwrap().contains("acr_values"));
}

#[tokio::test]
async fn post_redemption_with_request_uri_and_client_id_in_the_query() {
    let (svc, _) = layered(&default_layer());
    let uri = push_c(&svc, base_body()).await;
    let q = form(&[("client_id", C), ("request_uri", &uri)]);
    let seen = body_json(send(&svc, form_post(&format!("/authorize?{q}"), "", &[])).await).await;
    assert_eq!(seen["pushed_client_id"], C, "{seen}");
    assert!(seen["body"].as_str().unwrap().contains("code_challenge="));
}

#[tokio::test]
async fn par31_per_client_requirement_sees_client_id_in_query_of_a_form_post() {
    let (svc, calls) = layered(&default_layer().require_par_for(C));
    let q = form(&[
        ("client_id", C),
        ("response_type", "code"),
        ("redirect_uri", C_REDIRECT),
    ]);
    let res = send(&svc, form_post(&format!("/authorize?{q}"), "x=1", &[])).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Upper-case names and `;` separators, as lenient binders read them.
    for query in [
        format!("CLIENT_ID={C}&response_type=code"),
        format!("x=1;client_id={C}"),
    ] {
        let res = send(&svc, get(&format!("/authorize?{query}"))).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    assert_eq!(calls.count(), 0);
    // Another client is not affected.
    let q = form(&[("client_id", P), ("response_type", "code")]);
    assert_eq!(
        send(&svc, get(&format!("/authorize?{q}"))).await.status(),
        200
    );
}

#[tokio::test]
async fn compressed_authorize_post_is_refused() {
    let (svc, calls) = layered(&default_layer());
    let req = form_post(
        "/authorize",
        "\u{1f}binary",
        &[("content-encoding", "gzip")],
    );
    // PAR-31: a body the layer cannot read is an invalid request.
    assert_eq!(send(&svc, req).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(calls.count(), 0);
}

#[tokio::test]
async fn par31_a_transfer_coding_left_in_place_hides_nothing() {
    // `Transfer-Encoding: gzip, chunked`: the server removes the chunking,
    // the gzip stays for the wrapped service to undo.
    let (svc, calls) = layered(&default_layer().require_par_for(C));
    for te in ["gzip, chunked", "chunked, gzip", "x-custom"] {
        let req = form_post("/authorize", "\u{1f}binary", &[("transfer-encoding", te)]);
        assert_eq!(
            send(&svc, req).await.status(),
            StatusCode::BAD_REQUEST,
            "{te}"
        );
    }
    assert_eq!(calls.count(), 0);
    // Chunked alone is read like any form.
    let q = form(&[("client_id", P), ("response_type", "code")]);
    let req = form_post("/authorize", q, &[("transfer-encoding", "chunked")]);
    assert_eq!(send(&svc, req).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn par26_request_objects_are_refused_not_forwarded_unchecked() {
    let (svc, _) = layered(&default_layer());
    let body = format!(
        "{}&request=eyJhbGciOiJub25lIn0.eyJjbGllbnRfaWQiOiJEIn0.",
        base_body()
    );
    let res = send(
        &svc,
        form_post("/par", body, &[("authorization", &basic(C, C_SECRET))]),
    )
    .await;
    // With the `jwt` feature the object is verified (and this unsigned one
    // refused, JAR-3); without it, request objects are not supported.
    let code = if cfg!(feature = "jwt") {
        "invalid_request_object"
    } else {
        "request_not_supported"
    };
    assert_oauth_error(res, 400, code).await;
}

#[tokio::test]
async fn dpop3_an_unverifiable_dpop_proof_is_refused() {
    let (svc, _) = layered(&default_layer());
    let res = send(
        &svc,
        form_post(
            "/par",
            base_body(),
            &[
                ("authorization", &basic(C, C_SECRET)),
                ("dpop", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.sig"),
            ],
        ),
    )
    .await;
    assert_oauth_error(res, 400, "invalid_dpop_proof").await;
    // dpop_jkt is an ordinary parameter: stored and forwarded.
    let uri = push_c(
        &svc,
        format!(
            "{}&dpop_jkt=0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
            base_body()
        ),
    )
    .await;
    let seen = redeem(&svc, C, &uri).await;
    assert!(seen["query"]
        .as_str()
        .unwrap()
        .contains("dpop_jkt=0ZcOCORZNYy"));
}

#[tokio::test]
async fn case_variants_of_checked_names_are_refused() {
    let (svc, _) = layered(&default_layer());
    for extra in [
        "&CLIENT_ID=D",
        "&Redirect_Uri=https%3A%2F%2Fevil.example%2Fcb",
        "&REQUEST_URI=x",
    ] {
        let res = send(
            &svc,
            form_post(
                "/par",
                format!("{}{extra}", base_body()),
                &[("authorization", &basic(C, C_SECRET))],
            ),
        )
        .await;
        assert_oauth_error(res, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn semicolons_are_not_forwarded_raw() {
    // `x=1;client_id=D` must reach the wrapped service as one value, not as
    // a second client_id for `;`-splitting parsers.
    let (svc, _) = layered(&default_layer());
    let uri = push_c(&svc, format!("{}&x=1;client_id=D", base_body())).await;
    let seen = redeem(&svc, C, &uri).await;
    let query = seen["query"].as_str().unwrap();
    assert!(!query.contains(";client_id"), "{query}");
    assert!(query.contains("x=1%3Bclient_id%3DD"), "{query}");
}

#[tokio::test]
async fn fapi15_fapi2_profile_requires_par() {
    let (svc, calls) = layered(&default_layer().profile(Profile::Fapi2));
    let q = form(&[
        ("client_id", C),
        ("response_type", "code"),
        ("redirect_uri", C_REDIRECT),
    ]);
    let res = send(&svc, get(&format!("/authorize?{q}"))).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(calls.count(), 0);
}

#[tokio::test]
async fn push_context_debug_hides_credentials() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(String::new()));
    let sink = seen.clone();
    let layer = default_layer().validator(validator_fn(move |ctx| {
        *sink.lock().unwrap() = format!("{ctx:?}");
        Ok::<(), OAuthError>(())
    }));
    let (svc, _) = layered(&layer);
    push_c(
        &svc,
        format!("{}&login_hint=alice%40example.com", base_body()),
    )
    .await;
    let debug = seen.lock().unwrap().clone();
    assert!(
        debug.contains("PushContext") && debug.contains(C),
        "{debug}"
    );
    let encoded_credentials = basic(C, C_SECRET);
    let encoded_credentials = encoded_credentials.trim_start_matches("Basic ");
    assert!(
        !debug.contains(encoded_credentials) && !debug.contains("alice"),
        "{debug}"
    );
}

#[tokio::test]
async fn m4_other_methods_and_spellings_cannot_bypass_require_par() {
    let (svc, calls) = layered(&default_layer().require_par(true));
    let q = form(&[
        ("client_id", C),
        ("response_type", "code"),
        ("redirect_uri", C_REDIRECT),
    ]);
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS"] {
        let res = send(&svc, request(method, &format!("/authorize?{q}"))).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{method}");
        assert!(body_string(res)
            .await
            .contains("pushed authorization request required"));
    }
    for path in [
        "/Authorize",
        "/%61uthorize",
        "//authorize",
        "/x/../authorize",
        "/authorize;jsessionid=1",
    ] {
        let res = send(&svc, get(&format!("{path}?{q}"))).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(body_string(res)
            .await
            .contains("pushed authorization request required"));
    }
    assert_eq!(calls.count(), 0);
}

#[tokio::test]
async fn m4_spellings_pass_through_when_par_is_not_required() {
    let (svc, calls) = layered(&default_layer());
    let q = form(&[("client_id", C), ("response_type", "code")]);
    let seen = body_json(send(&svc, get(&format!("/Authorize?{q}"))).await).await;
    assert_eq!(seen["path"], "/Authorize");
    assert_eq!(send(&svc, request("PUT", "/authorize")).await.status(), 200);
    assert_eq!(calls.count(), 2);
}

/// OA-1, OA-5: the authorization endpoint's error page for a repeated
/// parameter shows at most a bounded, printable-ASCII prefix of the
/// client-chosen name (here a 5 000-character one with markup, non-ASCII
/// and control characters).
#[tokio::test]
async fn oa1_repeated_name_on_the_error_page_is_bounded() {
    let (svc, calls) = layered(&default_layer().require_par(true));
    let name = format!("<script>\u{131}\u{1}{}", "n".repeat(5000));
    let pair = format!("{}=1", form_encode(&name));
    let res = send(&svc, get(&format!("/authorize?{pair}&{pair}"))).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = body_string(res).await;
    assert!(page.contains("is repeated"), "{page}");
    assert!(!page.contains(&"n".repeat(41)), "{page}");
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.len() < 1000, "{} bytes", page.len());
    assert_eq!(calls.count(), 0);
}
