//! OAuth 2.0 Pushed Authorization Requests ([RFC 9126]) for any HTTP
//! service, as a Tower [`Layer`](tower_layer::Layer).
//!
//! [RFC 9126]: https://www.rfc-editor.org/rfc/rfc9126
//!
//! A client `POST`s its whole authorization request to the PAR endpoint.
//! [`ParLayer`] authenticates the client as a token endpoint would,
//! validates the request, stores it and answers `201` with a one-time
//! `request_uri`. When the browser later arrives at
//! `/authorize?client_id=..&request_uri=..`, the layer redeems the reference
//! and rewrites the request into exactly the stored parameters before the
//! wrapped service sees it. An authorization endpoint that knows nothing of
//! PAR now supports it, and can be made to require it. Everything else
//! passes through untouched.
//!
//! # Example: axum
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tower_par::{AuthMethod, Client, ParLayer, StaticClients};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let clients = StaticClients::new().with_client(
//!     Client::new("demo-client", AuthMethod::ClientSecretBasic)
//!         .redirect_uri("http://127.0.0.1:8080/cb"),
//!     Some("demo-secret"),
//! )?;
//! let par = ParLayer::new(clients).issuer("http://127.0.0.1:3000")?;
//!
//! let app = Router::new()
//!     .route("/authorize", get(|| async { "the legacy authorization endpoint" }))
//!     // `Router::layer`, not `route_layer`: `/par` has no route of its own.
//!     .layer(par);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Example: the layer in a Tower stack
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_par::{AuthMethod, Client, ParLayer, ParRequestBody, StaticClients};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clients = StaticClients::new().with_client(
//!     Client::new("app", AuthMethod::None).redirect_uri("https://app.example/cb"),
//!     None,
//! )?;
//! let svc = ServiceBuilder::new()
//!     .layer(ParLayer::new(clients))
//!     .service_fn(|req: Request<ParRequestBody<Full<Bytes>>>| async move {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(req.uri().to_string()))))
//!     });
//!
//! let push = Request::post("/par")
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .body(Full::new(Bytes::from_static(b"client_id=app&response_type=code")))?;
//! let res = svc.oneshot(push).await?;
//! assert_eq!(res.status(), 201);
//! # Ok(()) }
//! ```
//!
//! # Placement in a stack
//!
//! The layer answers the PAR endpoint itself and edits the discovery
//! documents on their way out: what runs outside it sees every request;
//! what runs inside it sees only what it passes on, never a push. From
//! the outside in:
//!
//! | layer | where | why |
//! |---|---|---|
//! | `TraceLayer` | outside | inside, it never sees `/par`. Its default span records the full URI, `request_uri` included: make the span with [`redacted_uri`] (or `RedactedMakeSpan`, feature `tower-http`) |
//! | `CorsLayer` | outside | inside, it never sees the preflight to `/par`, which the PAR endpoint answers `405` (PAR-20) |
//! | `CompressionLayer` | either | the layer asks for what it reads (discovery documents, META-13; a `form_post` flow's page) with `Accept-Encoding: identity`; outside, its own answers are compressed too |
//! | `TimeoutLayer` | outside | it then bounds the push too: client authentication, JWKS fetches, the store |
//! | `RequestBodyLimitLayer` | either | outside, it also bounds `/par` (`413` for a declared `Content-Length`); [`ParLayer::max_body_size`] bounds `/par` in any case |
//!
//! With [`ServiceBuilder`](https://docs.rs/tower/latest/tower/struct.ServiceBuilder.html)
//! the first `.layer` is the outermost; with axum's `Router::layer` the
//! last call is.
//!
//! The layer does not answer CORS preflights itself: which origins may
//! push is a policy it has no setting for, and most PAR clients are
//! servers, which send none. For a browser-based client, put a
//! `CorsLayer` outside the layer, and keep CORS off the authorization
//! endpoint, which is navigated to, never fetched (FAPI 2.0 forbids CORS
//! there, FAPI-26); `AllowOrigin::predicate` sees the path:
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use http::{header, Method, Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_http::{
//!     compression::CompressionLayer,
//!     cors::{AllowOrigin, CorsLayer},
//!     limit::RequestBodyLimitLayer,
//!     timeout::TimeoutLayer,
//!     trace::TraceLayer,
//! };
//! use tower_par::{redacted_uri, AuthMethod, Client, ParLayer, StaticClients};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clients = StaticClients::new().with_client(
//!     Client::new("spa", AuthMethod::None).redirect_uri("https://spa.example/cb"),
//!     None,
//! )?;
//! let par = ParLayer::new(clients).issuer("https://as.example")?.metadata(true);
//! let cors = CorsLayer::new()
//!     .allow_origin(AllowOrigin::predicate(|origin, parts| {
//!         origin == "https://spa.example" && parts.uri.path() == "/par"
//!     }))
//!     .allow_methods([Method::POST])
//!     .allow_headers([header::CONTENT_TYPE]);
//!
//! let app = Router::new()
//!     .route("/authorize", get(|| async { "your authorization endpoint" }))
//!     // `Router::layer`: the last call is the outermost layer.
//!     .layer(par)
//!     .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(10)))
//!     .layer(RequestBodyLimitLayer::new(64 * 1024))
//!     .layer(CompressionLayer::new())
//!     .layer(cors)
//!     .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
//!         tracing::info_span!("request", method = %req.method(), uri = %redacted_uri(req.uri()))
//!     }));
//!
//! let preflight = Request::options("/par")
//!     .header("origin", "https://spa.example")
//!     .header("access-control-request-method", "POST")
//!     .body(axum::body::Body::empty())?;
//! let res = app.oneshot(preflight).await?;
//! assert_eq!(res.headers()["access-control-allow-origin"], "https://spa.example");
//! # Ok(()) }
//! ```
//!
//! ## Under a path prefix
//!
//! `Router::new().nest("/oauth", routes.layer(par))` answers `404` for
//! `/oauth/par`: `nest` takes over the nested router's routes (each with
//! its layers) under the prefix, and `/par` is not one of them, so the
//! request falls to the outer router's fallback, which the layer does not
//! wrap. Either put the layer outside the nest, with the prefixed paths,
//! or mount the layered router with `nest_service`, which strips the
//! prefix; the layer then still sees `/par`, so tell it the URL it is
//! published at (advertised in the metadata, and the URL that DPoP proofs
//! and client assertions name):
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_par::{ParLayer, StaticClients};
//!
//! # fn main() -> Result<(), tower_par::ConfigError> {
//! fn routes() -> Router {
//!     Router::new().route("/authorize", get(|| async { "your authorization endpoint" }))
//! }
//!
//! // The layer outside the nest: `/oauth/par`, `/oauth/authorize`.
//! let par = ParLayer::new(StaticClients::new())
//!     .issuer("https://as.example")?
//!     .par_path("/oauth/par")?
//!     .authorize_path("/oauth/authorize")?;
//! let app: Router = Router::new().nest("/oauth", routes()).layer(par);
//!
//! // Or `nest_service`: the layer sees `/par` and `/authorize`.
//! let par = ParLayer::new(StaticClients::new())
//!     .issuer("https://as.example")?
//!     .par_endpoint_url("https://as.example/oauth/par")?;
//! let app: Router = Router::new().nest_service("/oauth", routes().layer(par));
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! # What the layer validates
//!
//! At the PAR endpoint (RFC 9126 §2.1): POST with a form body only, no
//! repeated parameters (except `resource`), client authentication
//! (`client_secret_basic`, `client_secret_post`, `none`, and with the `jwt`
//! feature `private_key_jwt` and `client_secret_jwt`, RFC 7523) with one
//! indistinguishable `invalid_client` for every failure, a `DPoP` proof
//! whose key becomes the stored `dpop_jkt` (RFC 9449 §10.1), a signed
//! request object whose claims become the stored request (RFC 9101,
//! RFC 9126 §3), no `request_uri` in the body, `response_type` allowed for the client, `redirect_uri` matched
//! exactly against the registered ones, PKCE syntax and method, `prompt`,
//! allowed scopes, then your [`Validator`]. At the authorization endpoint:
//! the `request_uri` exists, has not expired or been used, and is redeemed
//! by the client it was issued to; then only the stored parameters reach
//! the wrapped service, with a [`PushedAuthorization`] extension.
//!
//! The wrapped service remains responsible for everything that involves the
//! user (login, consent), for issuing codes and for the token endpoint.
//!
//! # Feature flags
//!
//! The defaults (`toml`, `tokio`, `jwt`, `jwks-fetch`) are what a single
//! instance in front of a tokio server needs; `redis`, `tracing` and
//! `metrics` are opt-in. Items behind a feature are marked on docs.rs.
//!
//! - `toml` (default): `StaticClients::from_toml` and `.toml` clients
//!   files.
//! - `tokio` (default): the body-read deadline
//!   (`ParLayer::par_body_timeout`, on a tokio runtime with timers) and
//!   `MemoryStore::spawn_sweeper`, a background expiry task.
//! - `jwt` (default): JWT client authentication (`private_key_jwt`,
//!   `client_secret_jwt`), DPoP proofs and signed request objects, verified
//!   with the `jsonwebtoken` crate on its pure-Rust RustCrypto backend.
//!   Encrypted request objects (JWE) are refused with
//!   `invalid_request_object`.
//! - `jwks-fetch` (default; implies `jwt` and `tokio`): `HttpJwksFetcher`,
//!   which fetches the keys of clients registered with a `jwks_uri` (HTTPS
//!   through rustls with the webpki roots; plain HTTP to loopback only),
//!   cached per URI; without it, set a `JwksFetcher` of your own with
//!   `ParLayer::jwks_fetcher`.
//! - `redis` (opt-in; implies `tokio`): `RedisStore`, pushed requests and
//!   the replay cache shared by several instances through Redis or Valkey,
//!   encrypted at rest. It adds about 50 crates (`redis`, `url`, `idna`).
//! - `tracing` (opt-in): events for pushes, redemptions and rejections
//!   (never with parameter values, secrets or a full `request_uri`).
//! - `metrics` (opt-in): `metrics` counters
//!   `tower_par_{pushed,redeemed,reentered,completed,rejected}_total` and
//!   the histogram `tower_par_flow_duration_seconds`.
//! - `tower-http`: `RedactedMakeSpan`, a `MakeSpan` for tower-http's
//!   `TraceLayer` whose spans carry the URI through [`redacted_uri`].
//! - `test-util`: `tower_par::test_util`, for your tests: push a request
//!   through a layer and get its `request_uri`, and the store conformance
//!   suite to run against a `ParStore` of your own.
//!
//! A token endpoint of your own authenticates clients as the PAR endpoint
//! does, with the same registry and replay cache, through
//! [`ParLayer::token_endpoint`] ([`TokenEndpoint`]).
//!
//! # FAPI 2.0
//!
//! [`Profile::Fapi2`] turns on the FAPI 2.0 Security Profile's rules at
//! the PAR endpoint; its documentation lists each rule it changes, with
//! its clause. A FAPI client authenticates with `private_key_jwt`:
//!
//! ```
//! use tower_par::{AuthMethod, Client, Jwks, ParLayer, Profile, StaticClients};
//!
//! let jwks = Jwks::from_json(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
//!   "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)?;
//! let clients = StaticClients::new().with_client(
//!     Client::new("bank-app", AuthMethod::PrivateKeyJwt)
//!         .jwks(jwks)
//!         .redirect_uri("https://bank-app.example/cb")
//!         .dpop_bound_access_tokens(true),
//!     None,
//! )?;
//! let layer = ParLayer::new(clients)
//!     .issuer("https://as.example")? // the only accepted assertion `aud`
//!     .profile(Profile::Fapi2)
//!     .metadata(true);
//! # let _ = layer;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # mTLS client authentication (RFC 8705)
//!
//! With the feature `mtls`, clients may authenticate with their TLS client
//! certificate: `tls_client_auth` (a certificate from a CA you trust,
//! matched by its registered subject DN or subject alternative name, see
//! [`TlsClientAuthSubject`]) and `self_signed_tls_client_auth` (a
//! certificate or public key registered in the client's `jwks`). The
//! layer does not terminate TLS: the server that does puts the client's
//! certificate chain in the request as a [`ClientCertificate`] extension
//! (or, behind a trusted front proxy, reads it from the RFC 9440
//! `Client-Cert` header with [`ClientCertificate::from_rfc9440`]). The
//! request itself carries only the `client_id`. Both methods count as
//! confidential under [`Profile::Fapi2`].
//!
//! ```
//! # #[cfg(feature = "mtls")] {
//! use tower_par::{ParLayer, StaticClients};
//!
//! let clients = StaticClients::from_json(r#"{"clients":[{
//!   "client_id": "bank-app",
//!   "token_endpoint_auth_method": "tls_client_auth",
//!   "tls_client_auth_subject_dn": "CN=bank-app,O=Example Bank,C=DE",
//!   "redirect_uris": ["https://bank-app.example/cb"]
//! }]}"#)?;
//! let ca_der: Vec<Vec<u8>> = Vec::new(); // the clients' CA certificates, DER
//! let layer = ParLayer::new(clients).tls_client_roots(ca_der)?;
//! # let _ = layer;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
pub mod client;
mod config;
#[cfg(feature = "jwt")]
mod dpop;
mod endpoint;
pub mod error;
mod future;
#[cfg(feature = "jwt")]
mod jar;
#[cfg(feature = "jwt")]
mod jose;
mod layer;
mod names;
mod params;
mod request_uri;
mod secret;
mod service;
mod span;
pub mod store;
#[cfg(feature = "test-util")]
pub mod test_util;
mod token;
mod trace;
pub mod validate;

pub use body::{ParRequestBody, ParResponseBody};
#[cfg(feature = "jwks-fetch")]
pub use client::HttpJwksFetcher;
pub use client::{
    AuthMethod, CachingClients, Client, ClientAuthError, ClientAuthenticator, ClientCertificate,
    ClientCredentials, Jwks, Secret, StaticClients, StaticClientsError, TlsClientAuthSubject,
};
#[cfg(feature = "jwt")]
pub use client::{FetchedJwks, JwksCacheConfig, JwksFetchError, JwksFetcher};
pub use config::{
    ConfigError, ConfigErrorKind, Metadata, PkcePolicy, Profile, Redemption, Setting,
};
pub use endpoint::authorize::PushedAuthorization;
pub use error::OAuthError;
pub use future::ResponseFuture;
pub use layer::ParLayer;
pub use params::{Params, ParamsError};
pub use request_uri::{RequestUri, REQUEST_URI_PREFIX};
pub use secret::{secret_sha256, verify_secret_sha256};
pub use service::Par;
#[cfg(feature = "tower-http")]
pub use span::RedactedMakeSpan;
pub use span::{redacted_uri, REDACTED_PARAMS};
pub use store::{
    Completion, MemoryStore, MemoryStoreConfig, ParStore, PushedRequest, RedeemMode, RedeemOutcome,
    StoreError,
};
#[cfg(feature = "redis")]
pub use store::{RedisStore, RedisStoreConfig};
pub use token::TokenEndpoint;
pub use validate::{validator_fn, BoxFuture, FnValidator, PushContext, Validator};

/// The README's code blocks, compiled as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
