//! The layer as a Tower service: pass-through against the bare inner
//! service, a push, and a redemption with its rewrite into the stored
//! request.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use futures::executor::block_on;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service};
use tower_par::{AuthMethod, Client, MemoryStore, MemoryStoreConfig, ParLayer, StaticClients};

const FORM: &str = "response_type=code&client_id=demo-client\
&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb&scope=openid+profile+email+phone\
&state=af0ifjsldkjNbqYx3B8dJb4WkE2nR5tL0pZc7vH9gMs6uQeTa1yXoDiKwF2jU8lV\
&nonce=n-0S6_WzA2Mjx7Rq4Pk9Lm3Ht6Yb1Vc8Nd5Jf2Gs0Ke7Ua4Xi9Oz3Wp6Ey1Tr8Q\
&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";

/// A trivial inner service: `302` to the callback for `/authorize`, `200`
/// otherwise.
#[derive(Clone, Copy)]
struct Inner;

impl<B> Service<Request<B>> for Inner {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
        if req.uri().path() == "/authorize" {
            *res.status_mut() = StatusCode::FOUND;
            res.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_static("http://127.0.0.1:8080/cb?code=c&state=s"),
            );
        }
        ready(Ok(res))
    }
}

fn layer() -> ParLayer {
    let clients = StaticClients::new()
        .with_client(
            Client::new("demo-client", AuthMethod::ClientSecretBasic)
                .redirect_uri("http://127.0.0.1:8080/cb"),
            Some("demo-secret"),
        )
        .unwrap();
    ParLayer::new(clients)
        .issuer("http://127.0.0.1:3001")
        .unwrap()
        .with_store(MemoryStore::with_config(
            MemoryStoreConfig::default()
                .max_pending(10_000_000)
                .max_pending_per_client(10_000_000)
                .max_in_flow_per_client(10_000_000)
                .max_pending_bytes(usize::MAX),
        ))
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = uri.parse().unwrap();
    req
}

fn push_request() -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from_static(FORM.as_bytes())));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = "/par".parse().unwrap();
    let h = req.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ="),
    );
    req
}

fn passthrough(c: &mut Criterion) {
    let mut g = c.benchmark_group("passthrough");
    g.bench_function("inner_alone", |b| {
        let mut svc = Inner;
        b.iter_batched(
            || get("/userinfo?x=1"),
            |req| call(&mut svc, req),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("through_layer", |b| {
        let mut svc = layer().layer(Inner);
        b.iter_batched(
            || get("/userinfo?x=1"),
            |req| call(&mut svc, req),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// `poll_ready` then `call`, as a server does.
fn call<S, R>(svc: &mut S, req: R) -> S::Response
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    block_on(std::future::poll_fn(|cx| svc.poll_ready(cx))).unwrap();
    block_on(svc.call(req)).unwrap()
}

fn push(c: &mut Criterion) {
    let mut svc = layer().layer(Inner);
    c.bench_function("push/basic_typical", |b| {
        b.iter_batched(
            push_request,
            |req| {
                let res = call(&mut svc, req);
                assert_eq!(res.status(), StatusCode::CREATED);
                res
            },
            BatchSize::SmallInput,
        )
    });
}

/// The redemption alone: each iteration's push happens in the setup.
fn authorize(c: &mut Criterion) {
    let mut svc = layer().layer(Inner);
    // A clone shares the store: it pushes while `svc` redeems.
    let mut pusher = svc.clone();
    c.bench_function("authorize/redeem_rewrite_complete", |b| {
        b.iter_batched(
            || {
                let res = call(&mut pusher, push_request());
                let body = block_on(res.into_body().collect()).unwrap().to_bytes();
                let text = std::str::from_utf8(&body).unwrap();
                let start = text.find("urn:").unwrap();
                let urn = &text[start..start + text[start..].find('"').unwrap()];
                get(&format!(
                    "/authorize?client_id=demo-client&request_uri={}",
                    urn.replace(':', "%3A")
                ))
            },
            |req| {
                let res = call(&mut svc, req);
                assert_eq!(res.status(), StatusCode::FOUND);
                black_box(res)
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, passthrough, push, authorize);
criterion_main!(benches);
