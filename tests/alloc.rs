//! Pass-through costs nothing: a request the layer does not handle (not the
//! PAR endpoint, not the authorization endpoint, not a discovery document)
//! makes exactly the allocations the wrapped service makes on its own.
//!
//! A counting global allocator counts the allocations of this thread while
//! one request is called and its future polled to completion, once on the
//! inner service directly and once through the layer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use tower::{Layer, Service};
use tower_par::{AuthMethod, Client, ParLayer, StaticClients};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter is a const-initialised thread-local without destructor.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// The wrapped service: answers from static data, so that it allocates as
/// little as a service can (a `Response`'s header map stays unallocated).
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
        drop(req);
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    }
}

/// Allocations made by `poll_ready`, `call` and polling the response future
/// to completion; the request is built before counting starts.
fn allocations_of<S, R>(svc: &mut S, req: Request<Full<Bytes>>) -> u64
where
    S: Service<Request<Full<Bytes>>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
{
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let before = allocations();
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let mut fut = pin!(svc.call(req));
    let res = loop {
        if let Poll::Ready(res) = fut.as_mut().poll(&mut cx) {
            break res;
        }
    };
    let after = allocations();
    let res = res.expect("response");
    drop(res);
    after - before
}

fn layer() -> ParLayer {
    let clients = StaticClients::new()
        .with_client(
            Client::new("app", AuthMethod::ClientSecretBasic)
                .redirect_uri("https://app.example/cb"),
            Some("app-secret"),
        )
        .expect("client");
    ParLayer::new(clients)
        .issuer("https://as.example")
        .expect("issuer")
        // Discovery on: its route check is on the pass-through path too.
        .metadata(true)
}

fn request(method: Method, uri: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from_static(body)));
    *req.method_mut() = method;
    *req.uri_mut() = uri.parse().expect("uri");
    req
}

/// A push of `form` by client `app` with Basic credentials.
fn push_request(form: &'static [u8]) -> Request<Full<Bytes>> {
    let mut req = request(Method::POST, "/par", form);
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    req.headers_mut().insert(
        http::header::AUTHORIZATION,
        // app:app-secret
        http::HeaderValue::from_static("Basic YXBwOmFwcC1zZWNyZXQ="),
    );
    req
}

/// The pass-through requests: other paths, other methods, paths that only
/// look like the layer's own.
fn passthrough_requests() -> Vec<(Method, &'static str, &'static [u8])> {
    vec![
        (Method::GET, "/", b""),
        (Method::GET, "/userinfo?access_token=x", b""),
        (
            Method::POST,
            "/token",
            b"grant_type=authorization_code&code=c",
        ),
        (Method::GET, "/parx", b""),
        (Method::GET, "/authorize/extra", b""),
        // (Other methods on the authorize path are checked against the
        // require-PAR policy, M-4: not pass-through.)
        (Method::DELETE, "/authorizer", b""),
        (Method::GET, "/.well-known/jwks.json", b""),
    ]
}

#[test]
fn passthrough_adds_no_allocation() {
    let mut direct = Inner;
    let mut layered = layer().layer(Inner);
    for (method, uri, body) in passthrough_requests() {
        // Warm up lazily initialised state (thread-locals, statics) on both.
        allocations_of(&mut direct, request(method.clone(), uri, body));
        allocations_of(&mut layered, request(method.clone(), uri, body));

        let alone = allocations_of(&mut direct, request(method.clone(), uri, body));
        let through = allocations_of(&mut layered, request(method.clone(), uri, body));
        assert_eq!(
            through, alone,
            "{method} {uri}: {through} allocations through the layer, {alone} without"
        );
    }
}

/// The counter does see allocations: a push through the layer allocates
/// (parsing, storing, answering), so the test above could fail.
#[test]
fn the_counter_sees_the_layers_own_work() {
    let mut layered = layer().layer(Inner);
    let push = push_request(b"response_type=code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256");
    let n = allocations_of(&mut layered, push);
    assert!(n > 0, "a push allocated nothing?");
    let direct = allocations_of(&mut Inner, request(Method::GET, "/", b""));
    let through = allocations_of(&mut layered, request(Method::GET, "/authorize", b""));
    assert!(
        through > direct,
        "the authorization endpoint is handled by the layer: {through} vs {direct}"
    );
}

/// The push path's allocation budget: parsing, the stored entry, the
/// response. A push made 25 allocations before the allocation work listed
/// in BENCHMARKS.md and 12 after it (13 when the push grows its store
/// partition's table); this fails if one is added.
#[test]
fn a_push_stays_within_its_allocation_budget() {
    const BUDGET: u64 = 13;
    let mut layered = layer().layer(Inner);
    let push = || {
        push_request(b"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid+profile&state=af0ifjsldkj&nonce=n-0S6_WzA2Mj&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256")
    };
    // Warm up: thread-locals, the client's counter.
    for _ in 0..3 {
        allocations_of(&mut layered, push());
    }
    let counts: Vec<u64> = (0..50)
        .map(|_| allocations_of(&mut layered, push()))
        .collect();
    let most = counts.iter().copied().max().unwrap_or(0);
    assert!(
        most <= BUDGET,
        "a push made {most} allocations (budget {BUDGET}): {counts:?}"
    );
    assert!(
        counts.iter().all(|&n| n >= 10),
        "counter broken? {counts:?}"
    );
}
