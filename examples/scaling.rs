//! How the layer's own work scales with threads, without sockets.
//!
//! One `Par` service (one shared `MemoryStore`), called directly from 1,
//! then 2, ... OS threads, each running pushes (or push + redemption
//! flows) back to back for a fixed time. If per-request work is
//! independent (no lock or counter that every request waits for), the
//! throughput of N threads is close to N times that of one, up to the
//! number of cores. Over HTTP on a 2-core machine the load generator and
//! the kernel's loopback work take the second core, so this is where the
//! layer's scaling is visible (`bench/run.sh`, part `scaling`).
//!
//! ```text
//! cargo run --release --example scaling -- [--secs 3] [--threads 2] [--rounds 3]
//! ```
//!
//! Bounded: at most 60 s per run and 16 threads; no network.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::executor::block_on;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service};
use tower_par::{AuthMethod, Client, MemoryStore, MemoryStoreConfig, ParLayer, StaticClients};

const FORM: &str = concat!(
    "response_type=code",
    "&client_id=demo-client",
    "&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb",
    "&scope=openid+profile+email+phone",
    "&state=af0ifjsldkjNbqYx3B8dJb4WkE2nR5tL0pZc7vH9gMs6uQeTa1yXoDiKwF2jU8lV",
    "&nonce=n-0S6_WzA2Mjx7Rq4Pk9Lm3Ht6Yb1Vc8Nd5Jf2Gs0Ke7Ua4Xi9Oz3Wp6Ey1Tr8Q",
    "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "&code_challenge_method=S256",
);
const MAX_SECS: u64 = 60;
const MAX_THREADS: usize = 16;

/// The trivial authorization endpoint of `hyper_server`: `302` to the
/// callback with a fixed code.
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
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = StatusCode::FOUND;
        res.headers_mut().insert(
            header::LOCATION,
            HeaderValue::from_static("http://127.0.0.1:8080/cb?code=fixed-demo-code"),
        );
        ready(Ok(res))
    }
}

fn push_request() -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from_static(FORM.as_bytes())));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = http::Uri::from_static("/par");
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

fn call<S>(svc: &mut S, req: Request<Full<Bytes>>) -> S::Response
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    block_on(std::future::poll_fn(|cx| svc.poll_ready(cx))).expect("ready");
    block_on(svc.call(req)).expect("infallible")
}

/// One push, and for a flow the redemption of its `request_uri`.
fn one<S, B>(svc: &mut S, flow: bool) -> bool
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
{
    let res = call(svc, push_request());
    if res.status() != StatusCode::CREATED {
        return false;
    }
    if !flow {
        return true;
    }
    let Ok(body) = block_on(res.into_body().collect()) else {
        return false;
    };
    let body = body.to_bytes();
    let Some(urn) = std::str::from_utf8(&body)
        .ok()
        .and_then(|t| t.split('"').nth(3))
    else {
        return false;
    };
    let uri = format!(
        "/authorize?client_id=demo-client&request_uri={}",
        urn.replace(':', "%3A")
    );
    let mut req = Request::new(Full::new(Bytes::new()));
    let Ok(uri) = uri.parse() else { return false };
    *req.uri_mut() = uri;
    call(svc, req).status() == StatusCode::FOUND
}

/// Operations per second of `threads` threads over `secs` seconds.
fn run(threads: usize, secs: u64, flow: bool) -> Result<f64, String> {
    let clients = StaticClients::new()
        .with_client(
            Client::new("demo-client", AuthMethod::ClientSecretBasic)
                .redirect_uri("http://127.0.0.1:8080/cb"),
            Some("demo-secret"),
        )
        .map_err(|e| e.to_string())?;
    let store = MemoryStore::with_config(
        MemoryStoreConfig::default()
            .max_pending(50_000_000)
            .max_pending_per_client(50_000_000)
            .max_in_flow_per_client(50_000_000)
            .max_pending_bytes(usize::MAX),
    );
    let svc = ParLayer::new(clients)
        .issuer("http://127.0.0.1:3001")
        .map_err(|e| e.to_string())?
        .with_store(store)
        .layer(Inner);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mut svc = svc.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    if one(&mut svc, flow) {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for h in handles {
        let (ok, failed) = h.join().map_err(|_| "a thread panicked".to_string())?;
        if failed > 0 {
            return Err(format!("{failed} operations failed"));
        }
        total += ok;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn main() -> Result<(), String> {
    let (mut secs, mut threads, mut rounds) = (3u64, 2usize, 3usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{a} needs a number"))
        };
        match a.as_str() {
            "--secs" => secs = val()?.clamp(1, MAX_SECS),
            "--threads" => threads = (val()? as usize).clamp(1, MAX_THREADS),
            "--rounds" => rounds = (val()? as usize).clamp(1, 20),
            other => return Err(format!("unknown option {other}")),
        }
    }
    println!(
        "{} cores; {secs} s per run, {rounds} rounds, interleaved",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (name, flow) in [("push", false), ("flow", true)] {
        // rates[t - 1]: one rate per round.
        let mut rates = vec![Vec::new(); threads];
        for _ in 0..rounds {
            for t in 1..=threads {
                rates[t - 1].push(run(t, secs, flow)?);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let one_thread = median(&mut rates[0].clone());
        for (i, r) in rates.iter_mut().enumerate() {
            let m = median(r);
            println!(
                "{name}: {} thread(s) {m:>9.0}/s  ratio to 1 thread {:.2}  (runs: {})",
                i + 1,
                m / one_thread,
                r.iter()
                    .map(|x| format!("{x:.0}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    Ok(())
}
