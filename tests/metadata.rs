//! Discovery documents: the PAR members the layer adds to what the wrapped
//! service publishes (RFC 9126 §5, META-*), and everything it leaves alone.

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Map, Value};
use tower::util::BoxCloneService;
use tower::{service_fn, ServiceExt};
use tower_par::{ParLayer, ParRequestBody};

use support::{get, into_parts, layer};

const AS_METADATA: &str = "/.well-known/oauth-authorization-server";
const OIDC_METADATA: &str = "/.well-known/openid-configuration";

/// The upstream document, compact, in a deliberate member order.
const DOC: &str = concat!(
    r#"{"issuer":"https://as.example","#,
    r#""authorization_endpoint":"https://as.example/authorize","#,
    r#""token_endpoint":"https://as.example/token","#,
    r#""response_types_supported":["code"],"#,
    r#""grant_types_supported":["authorization_code"],"#,
    r#""code_challenge_methods_supported":["S256"],"#,
    r#""token_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","none"],"#,
    r#""request_uri_parameter_supported":false,"#,
    r#""service_documentation":"https://as.example/docs?a=1&b=%2F""#,
    "}"
);

/// [`DOC`] with the PAR members appended, as the layer must serialise it:
/// with the `jwt` feature, also the signing algorithms it verifies for
/// client assertions and request objects.
fn augmented(par_endpoint: &str, required: bool) -> String {
    format!(
        "{},\"pushed_authorization_request_endpoint\":\"{par_endpoint}\",\
         \"require_pushed_authorization_requests\":{required}{}}}",
        &DOC[..DOC.len() - 1],
        jwt_members()
    )
}

#[cfg(feature = "jwt")]
fn jwt_members() -> &'static str {
    concat!(
        r#","token_endpoint_auth_signing_alg_values_supported":["PS256","PS384","PS512","RS256","RS384","RS512","ES256","ES384","EdDSA","HS256","HS384","HS512"]"#,
        r#","request_object_signing_alg_values_supported":["PS256","PS384","PS512","RS256","RS384","RS512","ES256","ES384","EdDSA"]"#,
    )
}

#[cfg(not(feature = "jwt"))]
fn jwt_members() -> &'static str {
    ""
}

/// The members the `jwt` feature adds when the wrapped document has none.
const JWT_MEMBERS: [&str; 4] = [
    "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "request_object_signing_alg_values_supported",
    "dpop_signing_alg_values_supported",
];

/// A document without the members of [`JWT_MEMBERS`], serialised compactly
/// in its order: for tests about the PAR members alone.
fn without_jwt_members(body: &[u8]) -> String {
    let mut doc: Map<String, Value> = serde_json::from_slice(body).unwrap();
    for m in JWT_MEMBERS {
        doc.shift_remove(m);
    }
    Value::Object(doc).to_string()
}

type Upstream =
    BoxCloneService<Request<ParRequestBody<Full<Bytes>>>, Response<Full<Bytes>>, Infallible>;

/// An upstream that answers every request with the same response, and
/// records the paths it was asked for.
fn upstream(
    status: StatusCode,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> (Upstream, Arc<Mutex<Vec<String>>>) {
    let body: Bytes = body.into();
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let svc = service_fn(move |req: Request<ParRequestBody<Full<Bytes>>>| {
        record.lock().unwrap().push(req.uri().path().to_owned());
        let mut res = Response::new(Full::new(body.clone()));
        *res.status_mut() = status;
        *res.headers_mut() = map.clone();
        async move { Ok::<_, Infallible>(res) }
    });
    (BoxCloneService::new(svc), seen)
}

/// The usual JSON upstream: [`DOC`] with a validator and a cache lifetime.
fn json_upstream() -> (Upstream, Arc<Mutex<Vec<String>>>) {
    let len = DOC.len().to_string();
    upstream(
        StatusCode::OK,
        &[
            ("content-type", "application/json"),
            ("content-length", &len),
            ("etag", "\"v1\""),
            ("cache-control", "max-age=300"),
            ("x-upstream", "1"),
        ],
        DOC,
    )
}

fn metadata_layer() -> ParLayer {
    layer().issuer("https://as.example").unwrap().metadata(true)
}

async fn fetch(
    layer: &ParLayer,
    inner: Upstream,
    req: Request<Full<Bytes>>,
) -> (http::response::Parts, Bytes) {
    let svc = tower::Layer::layer(layer, inner);
    let res = svc.oneshot(req).await.unwrap();
    into_parts(res).await
}

fn assert_augmented_headers(parts: &http::response::Parts, body: &Bytes) {
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[header::CONTENT_TYPE], "application/json");
    // META-15: the length is the new one, the old validator is gone, the
    // rest of the upstream headers stay.
    assert_eq!(
        parts.headers[header::CONTENT_LENGTH],
        body.len().to_string().as_str()
    );
    assert!(parts.headers.get(header::ETAG).is_none());
    assert_eq!(parts.headers[header::CACHE_CONTROL], "max-age=300");
    assert_eq!(parts.headers["x-upstream"], "1");
    assert_eq!(
        parts.headers.get_all(header::CONTENT_LENGTH).iter().count(),
        1
    );
}

/// Asserts that the upstream response came through byte for byte.
fn assert_untouched(
    parts: &http::response::Parts,
    body: &Bytes,
    status: StatusCode,
    expected: &[u8],
) {
    assert_eq!(parts.status, status);
    assert_eq!(&body[..], expected);
    assert_eq!(parts.headers[header::ETAG], "\"v1\"");
    assert_eq!(parts.headers["x-upstream"], "1");
}

// ---------------------------------------------------------------------------
// Augmented documents
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rfc8414_document_gets_par_members_and_keeps_the_rest_t83_meta7_meta14() {
    let (inner, seen) = json_upstream();
    let (parts, body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
    assert_augmented_headers(&parts, &body);
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        augmented("https://as.example/par", false)
    );
    // The upstream document was asked for, not replaced.
    assert_eq!(*seen.lock().unwrap(), [AS_METADATA]);
}

#[tokio::test]
async fn openid_configuration_gets_the_same_members_t85_meta2() {
    let tenant = layer()
        .issuer("https://as.example/t1")
        .unwrap()
        .metadata(true);
    for (layer, path) in [
        (metadata_layer(), OIDC_METADATA),
        (tenant, "/t1/.well-known/openid-configuration"),
    ] {
        let (inner, _) = json_upstream();
        let (parts, body) = fetch(&layer, inner, get(path)).await;
        assert_augmented_headers(&parts, &body);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            augmented("https://as.example/par", false),
            "{path}"
        );
    }
}

/// The documents of issuers other than the configured one, on the same host.
const OTHER_TENANTS: [&str; 6] = [
    "/.well-known/oauth-authorization-server/t2",
    "/t2/.well-known/openid-configuration",
    "/t1/t2/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server/t1/t2",
    "/.well-known/oauth-authorization-server/",
    "//.well-known/openid-configuration",
];

#[tokio::test]
async fn meta1_meta2_another_tenants_documents_pass_through_untouched() {
    for issuer in ["https://as.example", "https://as.example/t1"] {
        let layer = layer().issuer(issuer).unwrap().metadata(true);
        let mut others = OTHER_TENANTS.to_vec();
        if issuer.ends_with("/t1") {
            // A path issuer owns its own documents, not the root ones.
            others.extend([AS_METADATA, OIDC_METADATA]);
        } else {
            others.extend([
                "/.well-known/oauth-authorization-server/t1",
                "/t1/.well-known/openid-configuration",
            ]);
        }
        for path in others {
            let (inner, seen) = json_upstream();
            let (parts, body) = fetch(&layer, inner, get(path)).await;
            assert_untouched(&parts, &body, StatusCode::OK, DOC.as_bytes());
            assert_eq!(*seen.lock().unwrap(), [path], "{issuer} {path}");
            let req = Request::head(path).body(Full::default()).unwrap();
            let (inner, _) = json_upstream();
            let (parts, _) = fetch(&layer, inner, req).await;
            assert_eq!(
                parts.headers[header::CONTENT_LENGTH],
                DOC.len().to_string().as_str(),
                "HEAD {issuer} {path}"
            );
        }
    }
}

#[tokio::test]
async fn meta1_meta2_the_issuers_exact_documents_are_augmented() {
    let cases = [
        ("https://as.example", AS_METADATA),
        ("https://as.example", OIDC_METADATA),
        ("https://as.example/", AS_METADATA),
        (
            "https://as.example/t1",
            "/.well-known/oauth-authorization-server/t1",
        ),
        (
            "https://as.example/t1/",
            "/t1/.well-known/openid-configuration",
        ),
        (
            "https://as.example/a/b",
            "/.well-known/oauth-authorization-server/a/b",
        ),
        (
            "https://as.example/a/b",
            "/a/b/.well-known/openid-configuration",
        ),
    ];
    for (issuer, path) in cases {
        let layer = layer().issuer(issuer).unwrap().metadata(true);
        let (inner, _) = json_upstream();
        let (parts, body) = fetch(&layer, inner, get(path)).await;
        assert_augmented_headers(&parts, &body);
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            doc["pushed_authorization_request_endpoint"], "https://as.example/par",
            "{issuer} {path}"
        );
    }
}

#[tokio::test]
async fn metadata_document_is_not_served_for_another_tenant() {
    for issuer in ["https://as.example", "https://as.example/t1"] {
        let layer = layer().issuer(issuer).unwrap().metadata_document(true);
        for path in OTHER_TENANTS {
            let (inner, seen) = upstream(
                StatusCode::NOT_FOUND,
                &[("content-type", "text/plain")],
                "nope",
            );
            let (parts, body) = fetch(&layer, inner, get(path)).await;
            assert_eq!(parts.status, StatusCode::NOT_FOUND, "{issuer} {path}");
            assert_eq!(&body[..], b"nope");
            assert_eq!(*seen.lock().unwrap(), [path]);
        }
    }
}

#[tokio::test]
async fn without_an_issuer_only_the_root_documents_are_augmented() {
    let layer = layer()
        .par_endpoint_url("https://as.example/par")
        .unwrap()
        .metadata(true);
    for path in [AS_METADATA, OIDC_METADATA] {
        let (inner, _) = json_upstream();
        let (parts, body) = fetch(&layer, inner, get(path)).await;
        assert_augmented_headers(&parts, &body);
    }
    for path in [
        "/.well-known/oauth-authorization-server/t1",
        "/t1/.well-known/openid-configuration",
    ] {
        let (inner, _) = json_upstream();
        let (parts, body) = fetch(&layer, inner, get(path)).await;
        assert_untouched(&parts, &body, StatusCode::OK, DOC.as_bytes());
    }
}

#[tokio::test]
async fn path_issuer_document_is_augmented_t87_meta1() {
    let layer = layer()
        .issuer("https://as.example/t1")
        .unwrap()
        .metadata(true);
    let (inner, _) = json_upstream();
    let (parts, body) = fetch(&layer, inner, get(&format!("{AS_METADATA}/t1"))).await;
    assert_augmented_headers(&parts, &body);
    // The layer serves /par at the origin, whatever the issuer's path.
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        augmented("https://as.example/par", false)
    );
}

#[tokio::test]
async fn require_par_is_advertised_as_a_json_boolean_t84_meta7() {
    let layer = metadata_layer().require_par(true);
    let (inner, _) = json_upstream();
    let (parts, body) = fetch(&layer, inner, get(AS_METADATA)).await;
    assert_augmented_headers(&parts, &body);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        doc["require_pushed_authorization_requests"],
        Value::Bool(true)
    );
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        augmented("https://as.example/par", true)
    );
}

#[tokio::test]
async fn per_client_requirement_is_not_advertised_globally_meta7_par37() {
    let layer = metadata_layer().require_par_for("P");
    let (inner, _) = json_upstream();
    let (_, body) = fetch(&layer, inner, get(AS_METADATA)).await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        doc["require_pushed_authorization_requests"],
        Value::Bool(false)
    );
}

#[tokio::test]
async fn host_and_forwarded_headers_do_not_change_the_advertised_url_meta16() {
    let (inner, _) = json_upstream();
    let req = Request::get(format!("http://evil.example{AS_METADATA}"))
        .header(header::HOST, "evil.example")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "http")
        .header("forwarded", "host=evil.example;proto=http")
        .body(Full::default())
        .unwrap();
    let (_, body) = fetch(&metadata_layer(), inner, req).await;
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        augmented("https://as.example/par", false)
    );
}

#[tokio::test]
async fn configured_par_endpoint_url_and_path_are_advertised_meta16() {
    let layer = metadata_layer()
        .par_endpoint_url("https://public.example/oauth/par")
        .unwrap();
    let (inner, _) = json_upstream();
    let (_, body) = fetch(&layer, inner, get(AS_METADATA)).await;
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        augmented("https://public.example/oauth/par", false)
    );

    let layer = metadata_layer().par_path("/oauth2/par").unwrap();
    let (inner, _) = json_upstream();
    let (_, body) = fetch(&layer, inner, get(AS_METADATA)).await;
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        augmented("https://as.example/oauth2/par", false)
    );
}

#[tokio::test]
async fn existing_par_members_are_overridden_in_place_meta17() {
    let doc = r#"{"issuer":"https://as.example","pushed_authorization_request_endpoint":"http://stale.example/par","require_pushed_authorization_requests":"true","token_endpoint":"https://as.example/token"}"#;
    let (inner, _) = upstream(
        StatusCode::OK,
        &[("content-type", "application/json"), ("etag", "\"v1\"")],
        doc,
    );
    let (parts, body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(
        without_jwt_members(&body),
        r#"{"issuer":"https://as.example","pushed_authorization_request_endpoint":"https://as.example/par","require_pushed_authorization_requests":false,"token_endpoint":"https://as.example/token"}"#
    );
    assert!(parts.headers.get(header::ETAG).is_none());
}

#[tokio::test]
async fn issuer_and_member_types_are_kept_byte_for_byte_t86_meta4() {
    // The upstream's issuer differs from the configured one: still never
    // rewritten. Pretty-printed input, numbers, nulls, nested objects.
    let doc = r#"{
      "issuer": "https://upstream.example/tenant",
      "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.example/token"},
      "max_age": 3600,
      "ratio": 0.5,
      "op_policy_uri": null,
      "claims_supported": ["sub", "email"]
    }"#;
    let (inner, _) = upstream(StatusCode::OK, &[("content-type", "application/json")], doc);
    let (parts, body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
    assert_eq!(
        parts.headers[header::CONTENT_LENGTH],
        body.len().to_string().as_str()
    );
    let out: Value = serde_json::from_str(&without_jwt_members(&body)).unwrap();
    let keys: Vec<&str> = out
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "issuer",
            "mtls_endpoint_aliases",
            "max_age",
            "ratio",
            "op_policy_uri",
            "claims_supported",
            "pushed_authorization_request_endpoint",
            "require_pushed_authorization_requests",
        ]
    );
    let mut expected: Value = serde_json::from_str(doc).unwrap();
    expected["pushed_authorization_request_endpoint"] = json!("https://as.example/par");
    expected["require_pushed_authorization_requests"] = json!(false);
    assert_eq!(out, expected);
}

#[tokio::test]
async fn json_with_parameters_or_a_suffix_type_is_augmented_meta12() {
    for content_type in ["application/json; charset=utf-8", "application/jrd+json"] {
        let (inner, _) = upstream(StatusCode::OK, &[("content-type", content_type)], DOC);
        let (parts, body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
        assert_eq!(parts.headers[header::CONTENT_TYPE], content_type);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            augmented("https://as.example/par", false),
            "{content_type}"
        );
    }
}

#[tokio::test]
async fn chunked_upstream_gets_a_content_length_instead_meta15() {
    let (inner, _) = upstream(
        StatusCode::OK,
        &[
            ("content-type", "application/json"),
            ("transfer-encoding", "chunked"),
        ],
        DOC,
    );
    let (parts, body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
    assert!(parts.headers.get(header::TRANSFER_ENCODING).is_none());
    assert_eq!(
        parts.headers[header::CONTENT_LENGTH],
        body.len().to_string().as_str()
    );
}

// ---------------------------------------------------------------------------
// Left untouched (META-13)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn non_200_document_is_untouched_meta13() {
    for status in [
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::NOT_MODIFIED,
        StatusCode::NOT_FOUND,
        StatusCode::CREATED,
    ] {
        let (inner, _) = upstream(
            status,
            &[
                ("content-type", "application/json"),
                ("etag", "\"v1\""),
                ("x-upstream", "1"),
            ],
            DOC,
        );
        let (parts, body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
        assert_untouched(&parts, &body, status, DOC.as_bytes());
    }
}

#[tokio::test]
async fn non_json_document_is_untouched_meta13() {
    for content_type in ["text/html", "text/plain", "application/jsonp"] {
        let (inner, _) = upstream(
            StatusCode::OK,
            &[
                ("content-type", content_type),
                ("etag", "\"v1\""),
                ("x-upstream", "1"),
            ],
            DOC,
        );
        let (parts, body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
        assert_untouched(&parts, &body, StatusCode::OK, DOC.as_bytes());
    }
    // No content type at all.
    let (inner, _) = upstream(
        StatusCode::OK,
        &[("etag", "\"v1\""), ("x-upstream", "1")],
        DOC,
    );
    let (parts, body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
    assert_untouched(&parts, &body, StatusCode::OK, DOC.as_bytes());
}

#[tokio::test]
async fn json_that_is_not_an_object_is_untouched_meta13() {
    for doc in [r#"["issuer"]"#, "{not json", "\"text\"", ""] {
        let (inner, _) = upstream(
            StatusCode::OK,
            &[
                ("content-type", "application/json"),
                ("content-length", &doc.len().to_string()),
                ("etag", "\"v1\""),
                ("x-upstream", "1"),
            ],
            doc,
        );
        let (parts, body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
        assert_untouched(&parts, &body, StatusCode::OK, doc.as_bytes());
        assert_eq!(
            parts.headers[header::CONTENT_LENGTH],
            doc.len().to_string().as_str()
        );
    }
}

#[tokio::test]
async fn compressed_document_is_untouched_meta13() {
    // Not real gzip, and it must not matter: the bytes are not looked at.
    let bytes: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03not-really";
    for encoding in ["gzip", "br", "deflate"] {
        let (inner, _) = upstream(
            StatusCode::OK,
            &[
                ("content-type", "application/json"),
                ("content-encoding", encoding),
                ("etag", "\"v1\""),
                ("x-upstream", "1"),
            ],
            Bytes::from_static(bytes),
        );
        let (parts, body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
        assert_untouched(&parts, &body, StatusCode::OK, bytes);
        assert_eq!(parts.headers[header::CONTENT_ENCODING], encoding);
    }
}

#[tokio::test]
async fn oversized_document_is_untouched() {
    let big = format!(
        r#"{{"issuer":"https://as.example","pad":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let (inner, _) = upstream(
        StatusCode::OK,
        &[
            ("content-type", "application/json"),
            ("etag", "\"v1\""),
            ("x-upstream", "1"),
        ],
        big.clone(),
    );
    let (parts, body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
    assert_untouched(&parts, &body, StatusCode::OK, big.as_bytes());
}

#[tokio::test]
async fn metadata_is_off_by_default() {
    let layer = layer().issuer("https://as.example").unwrap();
    let (inner, _) = json_upstream();
    let (parts, body) = fetch(&layer, inner, get(AS_METADATA)).await;
    assert_untouched(&parts, &body, StatusCode::OK, DOC.as_bytes());
    assert_eq!(
        parts.headers[header::CONTENT_LENGTH],
        DOC.len().to_string().as_str()
    );
}

#[test]
fn metadata_without_an_issuer_or_endpoint_url_is_refused_at_build() {
    for layer in [
        layer().metadata(true),
        layer().metadata_document(true),
        layer().metadata_mode(tower_par::Metadata::Augment),
    ] {
        let err = layer.build().unwrap_err();
        assert_eq!(err.setting(), tower_par::Setting::Metadata);
        assert_eq!(err.kind(), tower_par::ConfigErrorKind::Requires);
    }
    assert!(layer()
        .par_endpoint_url("https://as.example/par")
        .unwrap()
        .metadata(true)
        .build()
        .is_ok());
}

#[tokio::test]
async fn other_paths_and_methods_are_untouched_meta12() {
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-serverX",
        "/.well-known/oauth-protected-resource",
        "/config",
    ] {
        let (inner, _) = json_upstream();
        let (parts, body) = fetch(&metadata_layer(), inner, get(path)).await;
        assert_untouched(&parts, &body, StatusCode::OK, DOC.as_bytes());
    }
    let (inner, _) = json_upstream();
    let req = Request::post(AS_METADATA).body(Full::default()).unwrap();
    let (parts, body) = fetch(&metadata_layer(), inner, req).await;
    assert_untouched(&parts, &body, StatusCode::OK, DOC.as_bytes());
}

// ---------------------------------------------------------------------------
// The layer's own document
// ---------------------------------------------------------------------------

const OWN_DOC: &str = concat!(
    r#"{"issuer":"https://as.example","#,
    r#""authorization_endpoint":"https://as.example/authorize","#,
    r#""token_endpoint":"https://as.example/token","#,
    r#""response_types_supported":["code"],"#,
    r#""code_challenge_methods_supported":["S256"],"#,
    r#""pushed_authorization_request_endpoint":"https://as.example/par","#,
    r#""require_pushed_authorization_requests":false}"#
);

#[tokio::test]
async fn metadata_document_is_served_when_the_upstream_has_none() {
    let layer = layer()
        .issuer("https://as.example")
        .unwrap()
        .metadata_document(true);
    for path in [AS_METADATA, OIDC_METADATA] {
        let (inner, seen) = upstream(
            StatusCode::NOT_FOUND,
            &[("content-type", "text/plain")],
            "nope",
        );
        let (parts, body) = fetch(&layer, inner, get(path)).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            parts.headers[header::CONTENT_LENGTH],
            body.len().to_string().as_str()
        );
        assert_eq!(without_jwt_members(&body), OWN_DOC);
        assert_eq!(*seen.lock().unwrap(), [path]);
    }
}

#[tokio::test]
async fn metadata_document_mode_still_augments_an_upstream_document() {
    let layer = layer()
        .issuer("https://as.example")
        .unwrap()
        .metadata_document(true);
    let (inner, _) = json_upstream();
    let (parts, body) = fetch(&layer, inner, get(AS_METADATA)).await;
    assert_augmented_headers(&parts, &body);
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        augmented("https://as.example/par", false)
    );
}

#[tokio::test]
async fn augment_only_mode_passes_an_upstream_404_through() {
    let (inner, _) = upstream(
        StatusCode::NOT_FOUND,
        &[
            ("content-type", "text/plain"),
            ("etag", "\"v1\""),
            ("x-upstream", "1"),
        ],
        "nope",
    );
    let (parts, body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
    assert_untouched(&parts, &body, StatusCode::NOT_FOUND, b"nope");
}

#[tokio::test]
async fn own_document_has_the_rfc8414_required_members_meta5() {
    let layer = layer()
        .issuer("https://as.example")
        .unwrap()
        .metadata_document(true);
    let (inner, _) = upstream(StatusCode::NOT_FOUND, &[], "");
    let (_, body) = fetch(&layer, inner, get(AS_METADATA)).await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    for member in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "response_types_supported",
    ] {
        assert!(doc.get(member).is_some(), "missing {member}: {doc}");
    }
}

// ---------------------------------------------------------------------------
// HEAD (META-12) and PKCE methods (META-11)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn head_gets_the_augmented_documents_headers_without_a_body_meta12() {
    let (inner, _) = json_upstream();
    let (get_parts, get_body) = fetch(&metadata_layer(), inner, get(AS_METADATA)).await;
    assert_augmented_headers(&get_parts, &get_body);

    // The wrapped service is asked with GET (what a HEAD handler answers
    // from), whatever it would have done with HEAD.
    let methods = Arc::new(Mutex::new(Vec::new()));
    let record = methods.clone();
    let inner = BoxCloneService::new(service_fn(
        move |req: Request<ParRequestBody<Full<Bytes>>>| {
            record.lock().unwrap().push(req.method().clone());
            let mut res = Response::new(Full::new(Bytes::from_static(DOC.as_bytes())));
            res.headers_mut()
                .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            res.headers_mut()
                .insert(header::ETAG, "\"v1\"".parse().unwrap());
            async move { Ok::<_, Infallible>(res) }
        },
    ));
    let req = Request::head(AS_METADATA).body(Full::default()).unwrap();
    let (parts, body) = fetch(&metadata_layer(), inner, req).await;
    assert_eq!(*methods.lock().unwrap(), [http::Method::GET]);
    assert_eq!(parts.status, StatusCode::OK);
    assert!(body.is_empty(), "a HEAD answer has no body");
    assert_eq!(
        parts.headers[header::CONTENT_LENGTH],
        get_body.len().to_string().as_str(),
        "HEAD and GET agree on the length of the augmented document"
    );
    assert!(parts.headers.get(header::ETAG).is_none());
}

#[tokio::test]
async fn head_of_a_document_left_alone_keeps_its_headers_meta12() {
    let (inner, _) = upstream(
        StatusCode::SERVICE_UNAVAILABLE,
        &[("content-type", "text/plain"), ("content-length", "5")],
        "down\n",
    );
    let req = Request::head(OIDC_METADATA).body(Full::default()).unwrap();
    let (parts, body) = fetch(&metadata_layer(), inner, req).await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(parts.headers[header::CONTENT_LENGTH], "5");
    assert!(body.is_empty());
}

/// [`DOC`] with its `code_challenge_methods_supported` replaced (or removed
/// with `None`).
fn doc_with_pkce_methods(methods: Option<&str>) -> String {
    let member = r#""code_challenge_methods_supported":["S256"],"#;
    match methods {
        Some(m) => DOC.replace(
            member,
            &format!(r#""code_challenge_methods_supported":{m},"#),
        ),
        None => DOC.replace(member, ""),
    }
}

async fn pkce_methods_seen(layer: &ParLayer, upstream_methods: Option<&str>) -> Option<Value> {
    let doc = doc_with_pkce_methods(upstream_methods);
    let (inner, _) = upstream(StatusCode::OK, &[("content-type", "application/json")], doc);
    let (parts, body) = fetch(layer, inner, get(AS_METADATA)).await;
    assert_eq!(parts.status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert!(doc.get("pushed_authorization_request_endpoint").is_some());
    doc.get("code_challenge_methods_supported").cloned()
}

#[tokio::test]
async fn s256_is_advertised_when_the_layer_requires_pkce_meta11() {
    let requiring = metadata_layer().require_pkce(true);
    assert_eq!(
        pkce_methods_seen(&requiring, None).await,
        Some(json!(["S256"]))
    );
    assert_eq!(
        pkce_methods_seen(&requiring, Some(r#"["plain"]"#)).await,
        Some(json!(["S256", "plain"]))
    );
    assert_eq!(
        pkce_methods_seen(&requiring, Some(r#"["plain","S256"]"#)).await,
        Some(json!(["plain", "S256"]))
    );
    // A member of another type is left as it is (META-14).
    assert_eq!(
        pkce_methods_seen(&requiring, Some(r#""S256""#)).await,
        Some(json!("S256"))
    );
    // FAPI 2.0 requires PKCE.
    let fapi = metadata_layer().profile(tower_par::Profile::Fapi2);
    assert_eq!(pkce_methods_seen(&fapi, None).await, Some(json!(["S256"])));
    // Without the requirement, the wrapped server's list is its own.
    let optional = metadata_layer();
    assert_eq!(pkce_methods_seen(&optional, None).await, None);
    assert_eq!(
        pkce_methods_seen(&optional, Some(r#"["plain"]"#)).await,
        Some(json!(["plain"]))
    );
}

// ---------------------------------------------------------------------------
// What the JWT features enforce (META-9, META-10, FAPI-5, FAPI-25)
// ---------------------------------------------------------------------------

#[cfg(feature = "jwt")]
async fn augmented_doc(layer: &ParLayer, doc: &str) -> Value {
    let (inner, _) = upstream(
        StatusCode::OK,
        &[("content-type", "application/json")],
        doc.to_owned(),
    );
    let (parts, body) = fetch(layer, inner, get(AS_METADATA)).await;
    assert_eq!(parts.status, StatusCode::OK);
    serde_json::from_slice(&body).unwrap()
}

#[cfg(feature = "jwt")]
#[tokio::test]
async fn fapi_advertises_exactly_the_methods_and_algorithms_it_enforces() {
    let fapi = metadata_layer().profile(tower_par::Profile::Fapi2);
    let doc = augmented_doc(&fapi, DOC).await;
    // The wrapped server's list is replaced: FAPI-5 allows private_key_jwt only.
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    let fapi_algs = json!(["PS256", "ES256", "EdDSA"]);
    assert_eq!(
        doc["token_endpoint_auth_signing_alg_values_supported"],
        fapi_algs
    );
    assert_eq!(
        doc["request_object_signing_alg_values_supported"],
        fapi_algs
    );
    // FAPI-4: DPoP is how tokens are sender-constrained without mTLS.
    assert_eq!(doc["dpop_signing_alg_values_supported"], fapi_algs);
    assert_eq!(doc["require_pushed_authorization_requests"], json!(true));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert!(doc.get("require_signed_request_object").is_none());
}

#[cfg(feature = "jwt")]
#[tokio::test]
async fn default_profile_keeps_the_wrapped_servers_auth_members_and_dpop_choice() {
    let layer = metadata_layer();
    let doc = augmented_doc(&layer, DOC).await;
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    // DPOP-11: a wrapped server that does not advertise DPoP may not bind
    // codes to a key, so the layer does not advertise it either.
    assert!(doc.get("dpop_signing_alg_values_supported").is_none());
    let with_dpop = DOC.replace(
        r#""request_uri_parameter_supported""#,
        r#""dpop_signing_alg_values_supported":["RS256","HS256"],"request_uri_parameter_supported""#,
    );
    let doc = augmented_doc(&layer, &with_dpop).await;
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        json!(["PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"])
    );
    // META-10: a global requirement is advertised.
    let signed = metadata_layer().require_signed_request_object(true);
    let doc = augmented_doc(&signed, DOC).await;
    assert_eq!(doc["require_signed_request_object"], json!(true));
}
