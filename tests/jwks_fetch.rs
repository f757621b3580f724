//! Clients registered with a `jwks_uri` (RFC 7591): the built-in
//! `HttpJwksFetcher` against a real hyper server on 127.0.0.1 that serves
//! the client's JWK Set and counts its requests, behind the layer's cache:
//! caching, key rotation, `max-age` within bounds, refusals of bad answers,
//! failures that do not hang, and headers that are never followed.
#![cfg(feature = "jwks-fetch")]

mod common;
mod keys;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use jsonwebtoken::Header;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower_par::{
    AuthMethod, BoxFuture, Client, FetchedJwks, HttpJwksFetcher, Jwks, JwksCacheConfig,
    JwksFetchError, JwksFetcher, ParLayer, StaticClients,
};

use common::*;
use keys::*;

const ISS: &str = "https://as.example";
const K: &str = "k-remote";
const CB: &str = "https://k.example/cb";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What the JWKS server answers.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: Bytes,
    cache_control: Option<&'static str>,
    /// Send the body in chunks, without `Content-Length`.
    chunked: bool,
    delay: Duration,
}

impl Reply {
    fn jwks(set: Value) -> Self {
        Self {
            status: 200,
            body: Bytes::from(set.to_string()),
            cache_control: None,
            chunked: false,
            delay: Duration::ZERO,
        }
    }
}

/// A JWKS endpoint on 127.0.0.1 that counts the requests it answers.
struct JwksServer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    reply: Arc<Mutex<Reply>>,
}

impl JwksServer {
    async fn start(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let reply = Arc::new(Mutex::new(reply));
        let (h, r) = (hits.clone(), reply.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (h, r) = (h.clone(), r.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                        let (h, r) = (h.clone(), r.clone());
                        async move {
                            let reply = r.lock().unwrap().clone();
                            tokio::time::sleep(reply.delay).await;
                            h.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(respond(reply))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, hits, reply }
    }

    fn uri(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }
}

fn respond(reply: Reply) -> Response<BoxBody<Bytes, Infallible>> {
    let body = if reply.chunked {
        let chunks: Vec<Result<Frame<Bytes>, Infallible>> = reply
            .body
            .chunks(1024)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        BoxBody::new(StreamBody::new(futures::stream::iter(chunks)))
    } else {
        BoxBody::new(Full::new(reply.body))
    };
    let mut res = Response::builder()
        .status(reply.status)
        .header("content-type", "application/jwk-set+json");
    if let Some(cc) = reply.cache_control {
        res = res.header("cache-control", cc);
    }
    res.body(body).unwrap()
}

fn clients(jwks_uri: &str) -> StaticClients {
    StaticClients::new()
        .with_client(
            Client::new(K, AuthMethod::PrivateKeyJwt)
                .redirect_uri(CB)
                .jwks_uri(jwks_uri),
            None,
        )
        .unwrap()
}

fn layer(jwks_uri: &str) -> ParLayer {
    ParLayer::new(clients(jwks_uri)).issuer(ISS).unwrap()
}

fn signed(key: &TestKey, kid: &str) -> String {
    let h = Header {
        kid: Some(kid.into()),
        ..Header::default()
    };
    key.sign(h, &assertion_claims(K, json!(ISS)))
}

fn push(assertion: &str) -> Request<Full<Bytes>> {
    let body = format!(
        "{}&{}",
        base_body_for(K, CB),
        form(&[
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ])
    );
    form_post("/par", body, &[])
}

/// The status and description of a push.
async fn outcome<S>(svc: &S, assertion: &str) -> (u16, String)
where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = Response<tower_par::ParResponseBody<Full<Bytes>>>,
            Error = Infallible,
        > + Clone,
{
    let res = send(svc, push(assertion)).await;
    let status = res.status().as_u16();
    let json = body_json(res).await;
    let desc = json["error_description"].as_str().unwrap_or_default();
    assert!(!desc.contains(assertion));
    (status, desc.to_owned())
}

/// Cache settings short enough to test.
fn quick_cache(min: u64, default: u64, max: u64, refetch: u64) -> JwksCacheConfig {
    let mut c = JwksCacheConfig::default();
    c.min_ttl = Duration::from_secs(min);
    c.default_ttl = Duration::from_secs(default);
    c.max_ttl = Duration::from_secs(max);
    c.refetch_interval = Duration::from_secs(refetch);
    c
}

/// AUTH-13 (`jwks_uri`): the set is fetched once and then served from the
/// cache.
#[tokio::test]
async fn jwks_uri_is_fetched_once_and_cached() {
    let key = TestKey::es256();
    let server = JwksServer::start(Reply::jwks(key.jwks("k1"))).await;
    let (svc, _) = layered(&layer(&server.uri()));
    for _ in 0..3 {
        assert_eq!(outcome(&svc, &signed(&key, "k1")).await.0, 201);
    }
    assert_eq!(server.hits(), 1);
    // Another key type in the same published set: Ed25519 next to an
    // encryption key that is skipped, not fatal.
    let ed = TestKey::ed25519();
    let mut enc = json!({"kty":"EC","crv":"P-256","use":"enc","kid":"e1"});
    enc["x"] = key.public["x"].clone();
    enc["y"] = key.public["y"].clone();
    let server =
        JwksServer::start(Reply::jwks(json!({"keys": [enc, ed.jwk_with_kid("k1")]}))).await;
    let (svc, _) = layered(&layer(&server.uri()));
    assert_eq!(outcome(&svc, &signed(&ed, "k1")).await.0, 201);
}

/// Key rotation: a `kid` missing from the cached set causes one refetch,
/// and further unknown `kid`s within the refetch interval cause none.
#[tokio::test]
async fn unknown_kid_refetches_once_per_interval() {
    let old = TestKey::es256();
    let new = TestKey::es256();
    let server = JwksServer::start(Reply::jwks(old.jwks("old"))).await;
    let layer = layer(&server.uri())
        .jwks_cache(quick_cache(60, 300, 3600, 1))
        .unwrap();
    let (svc, _) = layered(&layer);
    assert_eq!(outcome(&svc, &signed(&old, "old")).await.0, 201);
    assert_eq!(server.hits(), 1);

    // Within the interval: the rotated key is not looked for yet.
    server.set(Reply::jwks(json!({"keys": [new.jwk_with_kid("new")]})));
    assert_eq!(outcome(&svc, &signed(&new, "new")).await.0, 401);
    assert_eq!(server.hits(), 1, "refetched within the interval");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(outcome(&svc, &signed(&new, "new")).await.0, 201);
    assert_eq!(server.hits(), 2, "one refetch for the new kid");
    // The old key is gone from the new set.
    assert_eq!(outcome(&svc, &signed(&old, "old")).await.0, 401);
    // Made-up kids right after: no more fetches.
    for i in 0..5 {
        let (status, _) = outcome(&svc, &signed(&new, &format!("made-up-{i}"))).await;
        assert_eq!(status, 401);
    }
    assert_eq!(server.hits(), 2, "unknown kids are rate-limited");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(outcome(&svc, &signed(&new, "made-up")).await.0, 401);
    assert_eq!(server.hits(), 3, "one refetch per interval");
}

/// `Cache-Control: max-age` decides how long the set is kept, held within
/// the configured bounds.
#[tokio::test]
async fn max_age_is_honoured_within_bounds() {
    let key = TestKey::es256();
    // max-age=1 with a 1 s floor: refetched after a second.
    let mut reply = Reply::jwks(key.jwks("k1"));
    reply.cache_control = Some("public, max-age=1");
    let server = JwksServer::start(reply.clone()).await;
    let (svc, _) = layered(
        &layer(&server.uri())
            .jwks_cache(quick_cache(1, 2, 3, 60))
            .unwrap(),
    );
    assert_eq!(outcome(&svc, &signed(&key, "k1")).await.0, 201);
    assert_eq!(outcome(&svc, &signed(&key, "k1")).await.0, 201);
    assert_eq!(server.hits(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(outcome(&svc, &signed(&key, "k1")).await.0, 201);
    assert_eq!(server.hits(), 2, "max-age=1 expired");

    // max-age of a day, capped at max_ttl = 2 s.
    reply.cache_control = Some("max-age=86400");
    let server = JwksServer::start(reply.clone()).await;
    let (svc, _) = layered(
        &layer(&server.uri())
            .jwks_cache(quick_cache(1, 1, 2, 60))
            .unwrap(),
    );
    assert_eq!(outcome(&svc, &signed(&key, "k1")).await.0, 201);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(outcome(&svc, &signed(&key, "k1")).await.0, 201);
    assert_eq!(server.hits(), 1, "still within max_ttl");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(outcome(&svc, &signed(&key, "k1")).await.0, 201);
    assert_eq!(server.hits(), 2, "max_ttl reached");

    // no-store and max-age=1 under the default 60 s floor: kept.
    for cc in ["no-store", "max-age=1"] {
        reply.cache_control = Some(cc);
        let server = JwksServer::start(reply.clone()).await;
        let (svc, _) = layered(&layer(&server.uri()));
        assert_eq!(outcome(&svc, &signed(&key, "k1")).await.0, 201);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(outcome(&svc, &signed(&key, "k1")).await.0, 201);
        assert_eq!(server.hits(), 1, "{cc}: min_ttl applies");
    }
}

/// Bodies over the limit (declared or streamed), invalid sets, private
/// keys and error statuses are refused with a clear description.
#[tokio::test]
async fn bad_answers_are_refused_cleanly() {
    let key = TestKey::es256();
    let mut big = key.jwks("k1");
    big["padding"] = json!("x".repeat(70 * 1024));
    let private = {
        let mut jwk = key.jwk_with_kid("k1");
        jwk["d"] = json!("AAAA");
        json!({"keys": [jwk]})
    };
    let mut cases = vec![
        (Reply::jwks(big.clone()), "larger than 65536 bytes"),
        (
            Reply {
                chunked: true,
                ..Reply::jwks(big)
            },
            "larger than 65536 bytes",
        ),
        (
            Reply {
                body: Bytes::from_static(b"<html>not json</html>"),
                ..Reply::jwks(json!({}))
            },
            "valid JWK Set",
        ),
        (Reply::jwks(json!({"no": "keys"})), "valid JWK Set"),
        (Reply::jwks(private), "private key member"),
        (
            Reply {
                status: 500,
                ..Reply::jwks(key.jwks("k1"))
            },
            "HTTP 500",
        ),
        (
            Reply {
                status: 302,
                ..Reply::jwks(key.jwks("k1"))
            },
            "HTTP 302",
        ),
    ];
    for (reply, expected) in cases.drain(..) {
        let server = JwksServer::start(reply).await;
        let (svc, _) = layered(&layer(&server.uri()));
        let (status, desc) = outcome(&svc, &signed(&key, "k1")).await;
        assert_eq!(status, 401, "{expected}");
        // AUTH-1: the client is told what a bad signature tells it; why
        // the keys could not be had ("{expected}") goes to the log only,
        // or the answer would tell which clients exist and use a jwks_uri.
        assert!(desc.contains("could not be verified"), "{desc}");
        assert!(
            !desc.contains(expected) && !desc.contains("jwks_uri"),
            "{desc}"
        );
        // A failure is remembered briefly: no second fetch right away.
        let (status, _) = outcome(&svc, &signed(&key, "k1")).await;
        assert_eq!(status, 401);
        assert_eq!(server.hits(), 1, "{expected}");
        // The fetcher itself says what went wrong (for the log).
        let err = HttpJwksFetcher::new()
            .fetch(&server.uri())
            .await
            .unwrap_err();
        assert!(
            err.description().contains(expected),
            "expected '{expected}' in: {err}"
        );
    }
}

/// An unreachable or silent `jwks_uri` fails within the timeout. (A
/// non-loopback plain-http URI is never fetched: the fetcher's unit tests.)
#[tokio::test]
async fn unreachable_jwks_uri_fails_fast_with_a_clear_description() {
    let key = TestKey::es256();
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (svc, _) = layered(&layer(&format!("http://{closed}/jwks")));
    let (status, desc) = outcome(&svc, &signed(&key, "k1")).await;
    assert_eq!(status, 401);
    assert!(desc.contains("could not be verified"), "{desc}");
    let err = HttpJwksFetcher::new()
        .fetch(&format!("http://{closed}/jwks"))
        .await
        .unwrap_err();
    assert!(
        err.description().contains("connection to jwks_uri failed"),
        "{err}"
    );

    // A server that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let silent_layer = layer(&format!("http://{addr}/jwks"))
        .jwks_fetcher(HttpJwksFetcher::new().timeout(Duration::from_millis(300)));
    let (svc, _) = layered(&silent_layer);
    let started = Instant::now();
    let (status, desc) = outcome(&svc, &signed(&key, "k1")).await;
    assert_eq!(status, 401);
    assert!(desc.contains("could not be verified"), "{desc}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let err = HttpJwksFetcher::new()
        .timeout(Duration::from_millis(300))
        .fetch(&format!("http://{addr}/jwks"))
        .await
        .unwrap_err();
    assert!(err.description().contains("within 300 ms"), "{err}");
}

/// Concurrent misses for one URI share one fetch.
#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let key = TestKey::es256();
    let server = JwksServer::start(Reply {
        delay: Duration::from_millis(200),
        ..Reply::jwks(key.jwks("k1"))
    })
    .await;
    let (svc, _) = layered(&layer(&server.uri()));
    let pushes = (0..8).map(|_| {
        let svc = svc.clone();
        let a = signed(&key, "k1");
        tokio::spawn(async move { send(&svc, push(&a)).await.status().as_u16() })
    });
    for status in futures::future::join_all(pushes).await {
        assert_eq!(status.unwrap(), 201);
    }
    assert_eq!(server.hits(), 1);
}

/// AUTH-15: `jku`, `x5u` and a header `jwk` are never followed, even when
/// they point at a set holding the signing key.
#[tokio::test]
async fn jku_x5u_and_header_jwk_are_never_followed() {
    let registered = TestKey::es256();
    let attacker = TestKey::es256();
    let evil = JwksServer::start(Reply::jwks(attacker.jwks("k1"))).await;
    let clients = StaticClients::new()
        .with_client(
            Client::new(K, AuthMethod::PrivateKeyJwt)
                .redirect_uri(CB)
                .jwks(Jwks::from_value(registered.jwks("k1")).unwrap()),
            None,
        )
        .unwrap();
    let (svc, _) = layered(&ParLayer::new(clients).issuer(ISS).unwrap());
    let claims = assertion_claims(K, json!(ISS));
    for header in [
        json!({"kid": "k1", "jku": evil.uri()}),
        json!({"kid": "k1", "x5u": evil.uri()}),
        json!({"kid": "k1", "jwk": attacker.public}),
    ] {
        let a = attacker.sign_raw(header.clone(), &claims);
        assert_eq!(outcome(&svc, &a).await.0, 401, "{header}");
    }
    assert_eq!(evil.hits(), 0);
    // The registered key still works.
    assert_eq!(outcome(&svc, &signed(&registered, "k1")).await.0, 201);
}

/// A fetcher of the user's own replaces the built-in one.
#[tokio::test]
async fn a_custom_fetcher_is_used() {
    struct Fixed(Value, Arc<AtomicUsize>);
    impl JwksFetcher for Fixed {
        fn fetch<'a>(
            &'a self,
            jwks_uri: &'a str,
        ) -> BoxFuture<'a, Result<FetchedJwks, JwksFetchError>> {
            Box::pin(async move {
                self.1.fetch_add(1, Ordering::SeqCst);
                if jwks_uri != "https://k.example/jwks" {
                    return Err(JwksFetchError::new("unexpected uri"));
                }
                let jwks =
                    Jwks::from_published(&self.0.to_string()).map_err(JwksFetchError::new)?;
                Ok(FetchedJwks::new(jwks, None))
            })
        }
    }
    let key = TestKey::ed25519();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = layer("https://k.example/jwks").jwks_fetcher(Fixed(key.jwks("k1"), calls.clone()));
    let (svc, _) = layered(&layer);
    assert_eq!(outcome(&svc, &signed(&key, "k1")).await.0, 201);
    assert_eq!(outcome(&svc, &signed(&key, "k1")).await.0, 201);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Cache settings are checked when the layer is built.
#[test]
fn jwks_cache_settings_are_checked() {
    let layer = || ParLayer::new(StaticClients::new());
    assert!(layer().jwks_cache(quick_cache(1, 2, 3, 1)).is_ok());
    assert!(layer().jwks_cache(quick_cache(0, 2, 3, 1)).is_err());
    assert!(layer().jwks_cache(quick_cache(5, 2, 3, 1)).is_err());
    assert!(layer().jwks_cache(quick_cache(1, 2, 3, 0)).is_err());
}
