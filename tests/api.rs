//! The builder's and the extension points' public API: typed configuration
//! errors, combination checks at build, the discovery mode, `Debug`,
//! several validators, error sources, `Client::redirect_uris`, the
//! constant-time secret helper, the browser error page hook and the
//! `test-util` push helper. Each test drives the real layer over the echo
//! service.

mod common;

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;
use tower_par::{
    secret_sha256, test_util, validator_fn, verify_secret_sha256, AuthMethod, Client,
    ClientAuthError, ClientAuthenticator, ClientCredentials, ConfigErrorKind, Metadata, OAuthError,
    ParLayer, Profile, Redemption, Setting, StaticClients, StoreError, REQUEST_URI_PREFIX,
};

use common::*;

const AS_METADATA: &str = "/.well-known/oauth-authorization-server";

#[test]
fn config_errors_name_the_setting_and_what_is_wrong() {
    let cases = [
        (
            default_layer().issuer("as.example").unwrap_err(),
            Setting::Issuer,
            ConfigErrorKind::Invalid,
        ),
        (
            default_layer().par_path("par").unwrap_err(),
            Setting::ParPath,
            ConfigErrorKind::Invalid,
        ),
        (
            default_layer()
                .request_uri_lifetime(Duration::from_secs(601))
                .unwrap_err(),
            Setting::RequestUriLifetime,
            ConfigErrorKind::OutOfRange,
        ),
        (
            default_layer().flow_cookie_name("a b").unwrap_err(),
            Setting::FlowCookieName,
            ConfigErrorKind::Invalid,
        ),
        (
            default_layer().flow_window(Duration::ZERO).unwrap_err(),
            Setting::FlowWindow,
            ConfigErrorKind::OutOfRange,
        ),
    ];
    for (err, setting, kind) in cases {
        assert_eq!((err.setting(), err.kind()), (setting, kind), "{err}");
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(Setting::RequestUriLifetime.name(), "request_uri_lifetime");
}

#[test]
fn build_checks_combinations_once() {
    let err = default_layer().metadata_document(true).build().unwrap_err();
    assert_eq!(err.setting(), Setting::Metadata);
    assert_eq!(err.kind(), ConfigErrorKind::Requires);
    // Adding the issuer afterwards (order does not matter) fixes it.
    let ok = default_layer()
        .metadata_document(true)
        .issuer("https://as.example")
        .unwrap()
        .build();
    assert!(ok.is_ok());
    assert!(default_layer().build().is_ok());

    let err = default_layer().profile(Profile::Fapi2).build().unwrap_err();
    assert_eq!(
        (err.setting(), err.kind()),
        (Setting::Profile, ConfigErrorKind::Requires)
    );
    let fapi = default_layer()
        .profile(Profile::Fapi2)
        .issuer("https://as.example");
    assert!(fapi.unwrap().build().is_ok());
    #[cfg(feature = "jwt")]
    {
        let err = default_layer()
            .require_signed_request_object(true)
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), Setting::RequireSignedRequestObject);
    }
}

/// The bool shorthands write one `Metadata`, whatever their order: with
/// `metadata_document(true)` the layer serves its own document on a 404.
#[tokio::test]
async fn metadata_shorthands_do_not_depend_on_order() {
    let base = || default_layer().issuer("https://as.example").unwrap();
    for layer in [
        base().metadata(true).metadata_document(true),
        base().metadata_document(true).metadata(true),
        base().metadata_document(true).metadata(false),
        base().metadata_mode(Metadata::AugmentOrServe),
    ] {
        let layer = layer.build().unwrap();
        let svc = tower::Layer::layer(&layer, not_found_service());
        let res = send(&svc, get(AS_METADATA)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let doc = body_json(res).await;
        assert_eq!(
            doc["pushed_authorization_request_endpoint"],
            "https://as.example/par"
        );
    }
    // Augment only: the wrapped service's 404 stays.
    let layer = base().metadata_mode(Metadata::Augment).build().unwrap();
    let svc = tower::Layer::layer(&layer, not_found_service());
    assert_eq!(
        send(&svc, get(AS_METADATA)).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn debug_shows_every_security_switch_and_no_secret() {
    let layer = default_layer()
        .pass_foreign_request_uris(true)
        .profile(Profile::Fapi2)
        .require_par(true)
        .redemption(Redemption::Strict);
    #[cfg(feature = "jwt")]
    let layer = layer.dpop_nonce_secret([0x42; 32]).unwrap();
    let debug = format!("{layer:?}");
    for shown in [
        "pass_foreign_request_uris: true",
        "profile: Fapi2",
        "require_par: true",
        "redemption: Strict",
        "metadata: Off",
        "validators: 0",
        #[cfg(feature = "jwt")]
        "dpop_nonces: true",
    ] {
        assert!(debug.contains(shown), "{shown} missing from {debug}");
    }
    assert!(!debug.contains("66, 66"), "nonce key shown: {debug}");
}

/// Several `.validator()` calls: all run, in order; the first refusal
/// answers and the later ones do not run.
#[tokio::test]
async fn validators_run_in_the_order_they_were_added() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = |name: &'static str, refuse: bool| {
        let seen = seen.clone();
        validator_fn(move |_ctx| {
            seen.lock().unwrap().push(name);
            if refuse {
                Err(OAuthError::invalid_request(name))
            } else {
                Ok(())
            }
        })
    };
    let layer = default_layer()
        .validator(record("first", false))
        .validator(record("second", true))
        .validator(record("third", false));
    let (svc, calls) = layered(&layer);
    let res = send(&svc, push_as_c()).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(res).await["error_description"], "second");
    assert_eq!(*seen.lock().unwrap(), ["first", "second"]);
    assert_eq!(calls.count(), 0);
}

/// A registry whose database is down: the cause stays reachable as the
/// error's source and never reaches the client.
#[derive(Clone)]
struct DownDb;

impl ClientAuthenticator for DownDb {
    async fn authenticate(
        &self,
        _credentials: &ClientCredentials,
        _request: &http::request::Parts,
    ) -> Result<Arc<Client>, ClientAuthError> {
        Err(ClientAuthError::unavailable(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "db at 10.0.0.7 refused",
        )))
    }

    async fn client(&self, _client_id: &str) -> Result<Option<Arc<Client>>, ClientAuthError> {
        Err(ClientAuthError::unavailable("db down"))
    }
}

#[tokio::test]
async fn unavailable_errors_keep_their_source_and_do_not_show_it() {
    let err = ClientAuthError::unavailable(std::io::Error::other("refused"));
    let source = err.source().expect("source kept");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
    assert!(!err.to_string().contains("refused"));
    let err = StoreError::unavailable(std::io::Error::other("redis gone"));
    assert_eq!(err.source().unwrap().to_string(), "redis gone");
    assert_eq!(StoreError::unavailable("x"), StoreError::unavailable("x"));

    let (svc, _) = layered(&ParLayer::new(DownDb));
    let res = send(&svc, push_as_c()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = body_string(res).await;
    assert!(body.contains("temporarily_unavailable"), "{body}");
    assert!(!body.contains("10.0.0.7"), "{body}");
}

#[tokio::test]
async fn redirect_uris_registers_each_uri() {
    let clients = StaticClients::new()
        .with_client(
            Client::new("app", AuthMethod::ClientSecretBasic)
                .redirect_uris(["https://app.example/a", "https://app.example/b"]),
            Some("app-secret"),
        )
        .unwrap();
    let layer = ParLayer::new(clients);
    for uri in ["https://app.example/a", "https://app.example/b"] {
        let params = [("response_type", "code"), ("redirect_uri", uri)];
        assert!(test_util::push(&layer, "app", Some("app-secret"), &params)
            .await
            .is_ok());
    }
    let params = [
        ("response_type", "code"),
        ("redirect_uri", "https://app.example/c"),
    ];
    let refused = test_util::push(&layer, "app", Some("app-secret"), &params)
        .await
        .unwrap_err();
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
}

/// A database-backed registry of one's own on `verify_secret_sha256`.
#[derive(Clone)]
struct DigestDb(Arc<Rows>);

/// Client id -> (client, SHA-256 digest of its secret).
type Rows = HashMap<String, (Arc<Client>, [u8; 32])>;

impl ClientAuthenticator for DigestDb {
    async fn authenticate(
        &self,
        credentials: &ClientCredentials,
        _request: &http::request::Parts,
    ) -> Result<Arc<Client>, ClientAuthError> {
        let row = self.0.get(&credentials.client_id);
        let presented = credentials.secret.as_ref().map_or("", |s| s.expose());
        let ok = verify_secret_sha256(presented, row.map_or(&[0; 32], |(_, d)| d));
        let (client, _) = row.ok_or(ClientAuthError::UnknownClient)?;
        if !ok || credentials.secret.is_none() {
            return Err(ClientAuthError::BadCredentials);
        }
        Ok(client.clone())
    }

    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, ClientAuthError> {
        Ok(self.0.get(client_id).map(|(c, _)| c.clone()))
    }
}

#[tokio::test]
async fn verify_secret_sha256_backs_a_registry_of_ones_own() {
    let client = Client::new("db-app", AuthMethod::ClientSecretBasic).redirect_uri(C_REDIRECT);
    let db = DigestDb(Arc::new(HashMap::from([(
        "db-app".to_owned(),
        (Arc::new(client), secret_sha256("db secret")),
    )])));
    let layer = ParLayer::new(db);
    let params = [("response_type", "code")];
    let uri = test_util::push(&layer, "db-app", Some("db secret"), &params)
        .await
        .unwrap();
    assert!(uri.starts_with(REQUEST_URI_PREFIX));
    let refused = test_util::push(&layer, "db-app", Some("db secreT"), &params)
        .await
        .unwrap_err();
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(!verify_secret_sha256("db secret", &secret_sha256("other")));
}

/// OA-5 with the user's renderer: the page is theirs, `no-store` is added.
#[tokio::test]
async fn error_page_hook_renders_the_browser_errors() {
    let layer = default_layer().redemption(Redemption::Strict).error_page(
        |status: StatusCode, code: &str, _description: &str| {
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Full::new(Bytes::from(format!("custom {code}"))))
                .unwrap()
        },
    );
    let (svc, calls) = layered(&layer);
    let unknown = format!("{REQUEST_URI_PREFIX}unknown");
    let res = send(&svc, authorize_with(C, &unknown)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/plain");
    assert_eq!(body_string(res).await, "custom invalid_request_uri");
    assert_eq!(calls.count(), 0);
}

/// `test_util::push` hands back a `request_uri` the authorization endpoint
/// resolves to the pushed request (PAR-13).
#[tokio::test]
async fn test_util_push_returns_a_redeemable_request_uri() {
    let layer = default_layer().redemption(Redemption::Strict);
    let uri = test_util::push(
        &layer,
        C,
        Some(C_SECRET),
        &[
            ("response_type", "code"),
            ("redirect_uri", C_REDIRECT),
            ("state", "s1"),
        ],
    )
    .await
    .unwrap();
    let (svc, calls) = layered(&layer);
    let res = send(&svc, authorize_with(C, &uri)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let echo = body_json(res).await;
    assert!(
        echo["query"].as_str().unwrap().contains("state=s1"),
        "{echo}"
    );
    assert_eq!(echo["pushed_client_id"], C);
    assert_eq!(calls.count(), 1);
}

fn push_as_c() -> http::Request<Full<Bytes>> {
    form_post(
        "/par",
        base_body(),
        &[("authorization", &basic(C, C_SECRET))],
    )
}

fn not_found_service() -> impl EchoService<Full<Bytes>> {
    tower::service_fn(|_req| -> EchoFuture {
        Box::pin(async {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::NOT_FOUND;
            Ok(res)
        })
    })
}
