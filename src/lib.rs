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

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod client;
mod config;
#[cfg(feature = "jwt")]
mod dpop;
mod endpoint;
mod error;
mod future;
#[cfg(feature = "jwt")]
mod jar;
#[cfg(feature = "jwt")]
mod jose;
mod layer;
mod names;
mod params;
mod request_uri;
mod service;
mod store;
mod token;
mod trace;
mod validate;

pub use body::{ParRequestBody, ParResponseBody};
#[cfg(feature = "jwks-fetch")]
pub use client::HttpJwksFetcher;
pub use client::{
    AuthMethod, CachingClients, Client, ClientAuthError, ClientAuthenticator, ClientCredentials,
    Jwks, Secret, StaticClients, StaticClientsError,
};
#[cfg(feature = "jwt")]
pub use client::{FetchedJwks, JwksCacheConfig, JwksFetchError, JwksFetcher};
pub use config::{ConfigError, PkcePolicy, Profile, Redemption};
pub use endpoint::authorize::PushedAuthorization;
pub use error::OAuthError;
pub use future::ResponseFuture;
pub use layer::ParLayer;
pub use params::{Params, ParamsError};
pub use request_uri::{RequestUri, REQUEST_URI_PREFIX};
pub use service::Par;
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
