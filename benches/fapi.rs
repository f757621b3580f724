//! The cost of FAPI 2.0 client authentication at the PAR endpoint: a push
//! authenticated with `private_key_jwt` (ES256, PS256), with and without a
//! DPoP proof, against the same push with `client_secret_basic`, in one
//! run. Each iteration's assertion and proof are signed in the setup (not
//! timed): what is measured is the layer's work, verification included.
//!
//! `cargo bench --bench fapi`; `bench/fapi.sh` turns the result into µs
//! per push and ratios against the Basic push.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use futures::executor::block_on;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::json;
use tower::{Layer, Service};
use tower_par::{
    AuthMethod, Client, Jwks, MemoryStore, MemoryStoreConfig, ParLayer, StaticClients,
};

const ISSUER: &str = "http://127.0.0.1:3001";
const PAR_URL: &str = "http://127.0.0.1:3001/par";
const FORM: &str = "response_type=code\
&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb&scope=openid+profile+email+phone\
&state=af0ifjsldkjNbqYx3B8dJb4WkE2nR5tL0pZc7vH9gMs6uQeTa1yXoDiKwF2jU8lV\
&nonce=n-0S6_WzA2Mjx7Rq4Pk9Lm3Ht6Yb1Vc8Nd5Jf2Gs0Ke7Ua4Xi9Oz3Wp6Ey1Tr8Q\
&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";

#[derive(Clone, Copy)]
struct Inner;

impl<B> Service<Request<B>> for Inner {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    }
}

struct Key {
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: serde_json::Value,
}

fn key(alg: Algorithm) -> Key {
    let pem = match alg {
        Algorithm::ES256 => p256::SecretKey::generate()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .to_string(),
        _ => {
            let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
            let sk = rsa::PrivateKey::new(&mut rng, 2048).unwrap();
            rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&sk, LineEnding::LF)
                .unwrap()
                .to_string()
        }
    };
    let encoding = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .unwrap();
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).unwrap()).unwrap();
    jwk.as_object_mut().unwrap().remove("alg");
    Key { alg, encoding, jwk }
}

fn jti() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    URL_SAFE_NO_PAD.encode(b)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn layer(es256: &Key, ps256: &Key) -> ParLayer {
    let mut clients = StaticClients::new()
        .with_client(
            Client::new("basic", AuthMethod::ClientSecretBasic)
                .redirect_uri("http://127.0.0.1:8080/cb"),
            Some("demo-secret"),
        )
        .unwrap();
    for (id, k) in [("es256", es256), ("ps256", ps256)] {
        let mut jwk = k.jwk.clone();
        jwk["kid"] = json!("k1");
        let jwks = Jwks::from_value(json!({ "keys": [jwk] })).unwrap();
        clients = clients
            .with_client(
                Client::new(id, AuthMethod::PrivateKeyJwt)
                    .jwks(jwks)
                    .redirect_uri("http://127.0.0.1:8080/cb"),
                None,
            )
            .unwrap();
    }
    ParLayer::new(clients)
        .issuer(ISSUER)
        .unwrap()
        .with_store(MemoryStore::with_config(
            MemoryStoreConfig::default()
                .max_pending(10_000_000)
                .max_pending_per_client(10_000_000)
                .max_in_flow_per_client(10_000_000)
                .max_pending_bytes(usize::MAX),
        ))
}

fn request(body: String, headers: &[(&'static str, String)]) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from(body)));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = "/par".parse().unwrap();
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    for (name, value) in headers {
        req.headers_mut()
            .insert(*name, HeaderValue::from_str(value).unwrap());
    }
    req
}

fn basic_push() -> Request<Full<Bytes>> {
    request(
        format!("client_id=basic&{FORM}"),
        &[("authorization", "Basic YmFzaWM6ZGVtby1zZWNyZXQ=".to_owned())],
    )
}

/// A push authenticated with a fresh assertion by `key` for client `id`,
/// with a fresh DPoP proof by `dpop` if given.
fn jwt_push(id: &str, key: &Key, dpop: Option<&Key>) -> Request<Full<Bytes>> {
    let t = now();
    let mut header = Header::new(key.alg);
    header.kid = Some("k1".into());
    let assertion = jsonwebtoken::encode(
        &header,
        &json!({"iss": id, "sub": id, "aud": ISSUER, "iat": t, "exp": t + 60, "jti": jti()}),
        &key.encoding,
    )
    .unwrap();
    let body = format!(
        "client_id={id}&{FORM}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    );
    let mut headers = Vec::new();
    if let Some(d) = dpop {
        let mut h = Header::new(d.alg);
        h.typ = Some("dpop+jwt".into());
        h.jwk = Some(serde_json::from_value(d.jwk.clone()).unwrap());
        let proof = jsonwebtoken::encode(
            &h,
            &json!({"jti": jti(), "htm": "POST", "htu": PAR_URL, "iat": t}),
            &d.encoding,
        )
        .unwrap();
        headers.push(("dpop", proof));
    }
    request(body, &headers)
}

fn call<S, R>(svc: &mut S, req: R) -> S::Response
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    block_on(std::future::poll_fn(|cx| svc.poll_ready(cx))).unwrap();
    block_on(svc.call(req)).unwrap()
}

fn push(c: &mut Criterion) {
    let es256 = key(Algorithm::ES256);
    let ps256 = key(Algorithm::PS256);
    let dpop = key(Algorithm::ES256);
    let mut svc = layer(&es256, &ps256).layer(Inner);
    let mut g = c.benchmark_group("fapi_push");
    let mut case = |name: &str, make: &dyn Fn() -> Request<Full<Bytes>>| {
        let res = call(&mut svc, make());
        assert_eq!(res.status(), StatusCode::CREATED, "{name}");
        g.bench_function(name, |b| {
            b.iter_batched(
                make,
                |req| {
                    let res = call(&mut svc, req);
                    assert_eq!(res.status(), StatusCode::CREATED);
                    res
                },
                BatchSize::SmallInput,
            )
        });
    };
    case("basic", &basic_push);
    case("private_key_jwt_es256", &|| jwt_push("es256", &es256, None));
    case("private_key_jwt_ps256", &|| jwt_push("ps256", &ps256, None));
    case("private_key_jwt_es256_dpop", &|| {
        jwt_push("es256", &es256, Some(&dpop))
    });
    case("private_key_jwt_ps256_dpop", &|| {
        jwt_push("ps256", &ps256, Some(&dpop))
    });
    case("basic_again", &basic_push);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = push
}
criterion_main!(benches);
