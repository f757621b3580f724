//! A bounded HTTP/1.1 load generator for the `hyper_server` example.
//!
//! Keeps a fixed number of keep-alive connections busy for a fixed time (or
//! until a request count is reached, whichever comes first) and prints the
//! rate and the latency percentiles. Loopback only: the target must be a
//! `127.0.0.0/8` or `[::1]` address.
//!
//! ```text
//! cargo run --release --example loadgen -- --scenario push --conns 32 --secs 5
//! ```
//!
//! Scenarios:
//! - `pass`: `GET /hello`, a request the layer passes through (expects 200);
//! - `push`: `POST /par` with Basic client authentication and a typical
//!   authorization request (8 parameters, ~350 bytes), expects 201;
//! - `flow`: push, then `GET /authorize?client_id=..&request_uri=..`
//!   (expects 302); one flow is the unit of rate and latency;
//! - `fill`: as `push`, but runs until `--max` pushes are stored (for memory
//!   measurements), ignoring `--secs` up to a hard limit of 10 minutes.
//!
//! Options (all bounded): `--addr` (127.0.0.1:3001), `--conns` (32),
//! `--secs` (5, at most 600), `--warmup` (1: seconds not recorded),
//! `--max` (20 000 000 requests), `--threads` (1: client runtime threads),
//! `--timeline` (print requests and p99 per second), `--json` (one JSON line).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// `demo-client:demo-secret`, form-url-encoded then base64 (RFC 6749 §2.3.1).
const BASIC: &str = "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=";

/// A typical pushed request: 8 parameters, ~350 bytes.
const PUSH_FORM: &str = concat!(
    "response_type=code",
    "&client_id=demo-client",
    "&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb",
    "&scope=openid+profile+email+phone",
    "&state=af0ifjsldkjNbqYx3B8dJb4WkE2nR5tL0pZc7vH9gMs6uQeTa1yXoDiKwF2jU8lV",
    "&nonce=n-0S6_WzA2Mjx7Rq4Pk9Lm3Ht6Yb1Vc8Nd5Jf2Gs0Ke7Ua4Xi9Oz3Wp6Ey1Tr8Q",
    "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "&code_challenge_method=S256",
);

/// Hard limits, whatever the command line says.
const MAX_SECS: u64 = 600;
const MAX_CONNS: usize = 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    Pass,
    Push,
    Flow,
    Fill,
}

#[derive(Clone, Debug)]
struct Opts {
    addr: SocketAddr,
    scenario: Scenario,
    conns: usize,
    secs: u64,
    warmup: u64,
    max: u64,
    threads: usize,
    timeline: bool,
    json: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:3001".parse().map_err(|e| format!("{e}"))?,
        scenario: Scenario::Pass,
        conns: 32,
        secs: 5,
        warmup: 1,
        max: 20_000_000,
        threads: 1,
        timeline: false,
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--addr" => o.addr = val()?.parse().map_err(|e| format!("--addr: {e}"))?,
            "--scenario" => {
                o.scenario = match val()?.as_str() {
                    "pass" => Scenario::Pass,
                    "push" => Scenario::Push,
                    "flow" => Scenario::Flow,
                    "fill" => Scenario::Fill,
                    other => return Err(format!("unknown scenario {other}")),
                }
            }
            "--conns" => o.conns = val()?.parse().map_err(|e| format!("--conns: {e}"))?,
            "--secs" => o.secs = val()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--warmup" => o.warmup = val()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--max" => o.max = val()?.parse().map_err(|e| format!("--max: {e}"))?,
            "--threads" => o.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--timeline" => o.timeline = true,
            "--json" => o.json = true,
            "-h" | "--help" => {
                return Err(
                    "usage: loadgen [--addr A] [--scenario pass|push|flow|fill] \
                     [--conns N] [--secs S] [--warmup S] [--max N] [--threads N] \
                     [--timeline] [--json]"
                        .into(),
                )
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !o.addr.ip().is_loopback() {
        return Err(format!("{} is not a loopback address", o.addr));
    }
    o.conns = o.conns.clamp(1, MAX_CONNS);
    o.secs = o.secs.clamp(1, MAX_SECS);
    o.warmup = o.warmup.min(o.secs.saturating_sub(1));
    o.threads = o.threads.clamp(1, 64);
    if o.scenario == Scenario::Fill {
        o.warmup = 0;
        o.secs = MAX_SECS;
    }
    Ok(o)
}

/// One recorded unit: when it finished (ms since start) and how long it
/// took (µs).
type Sample = (u32, u32);

#[derive(Default)]
struct ConnResult {
    samples: Vec<Sample>,
    /// Units completed, warm-up included.
    completed: u64,
    errors: u64,
    first_error: Option<String>,
}

struct Shared {
    opts: Opts,
    start: Instant,
    deadline: Instant,
    record_from: Instant,
    issued: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    /// Claims the right to send one more unit of work.
    fn claim(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            return false;
        }
        if self.issued.fetch_add(1, Ordering::Relaxed) >= self.opts.max {
            self.stop.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = if opts.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.threads)
            .enable_all()
            .build()
    };
    let rt = rt.expect("tokio runtime");
    let code = rt.block_on(run(opts));
    std::process::exit(code);
}

async fn run(opts: Opts) -> i32 {
    let start = Instant::now();
    let shared = Arc::new(Shared {
        deadline: start + Duration::from_secs(opts.secs),
        record_from: start + Duration::from_secs(opts.warmup),
        start,
        issued: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        opts: opts.clone(),
    });
    let mut tasks = Vec::with_capacity(opts.conns);
    for _ in 0..opts.conns {
        tasks.push(tokio::spawn(connection(shared.clone())));
    }
    let mut all = ConnResult::default();
    for t in tasks {
        match t.await {
            Ok(r) => {
                all.samples.extend(r.samples);
                all.completed += r.completed;
                all.errors += r.errors;
                if all.first_error.is_none() {
                    all.first_error = r.first_error;
                }
            }
            Err(e) => {
                all.errors += 1;
                all.first_error.get_or_insert(format!("task: {e}"));
            }
        }
    }
    let elapsed = start.elapsed();
    report(&opts, &mut all, elapsed);
    if all.samples.is_empty() {
        1
    } else {
        0
    }
}

async fn connect(addr: SocketAddr) -> Result<http1::SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn connection(shared: Arc<Shared>) -> ConnResult {
    let mut out = ConnResult::default();
    let addr = shared.opts.addr;
    let host = HeaderValue::from_str(&addr.to_string()).expect("host header");
    let mut sender = None;
    while shared.claim() {
        let s = match &mut sender {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    out.errors += 1;
                    out.first_error.get_or_insert(e);
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let t0 = Instant::now();
        let result = tokio::time::timeout(REQUEST_TIMEOUT, unit(&shared, s, &host)).await;
        let result = result.unwrap_or_else(|_| Err("request timed out".into()));
        match result {
            Ok(()) => {
                out.completed += 1;
                let now = Instant::now();
                if now >= shared.record_from {
                    let at = now.duration_since(shared.start).as_millis() as u32;
                    let took = now.duration_since(t0).as_micros().min(u128::from(u32::MAX)) as u32;
                    out.samples.push((at, took));
                }
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
                // The connection may be broken: start a new one.
                sender = None;
            }
        }
    }
    out
}

/// One unit of work of the scenario.
async fn unit(
    shared: &Shared,
    s: &mut http1::SendRequest<Full<Bytes>>,
    host: &HeaderValue,
) -> Result<(), String> {
    match shared.opts.scenario {
        Scenario::Pass => {
            let req = get("/hello", host);
            expect(s, req, StatusCode::OK).await.map(drop)
        }
        Scenario::Push | Scenario::Fill => {
            expect(s, push(host), StatusCode::CREATED).await.map(drop)
        }
        Scenario::Flow => {
            let body = expect(s, push(host), StatusCode::CREATED).await?;
            let uri = request_uri(&body).ok_or("no request_uri in the push response")?;
            let mut path = String::with_capacity(160);
            path.push_str("/authorize?client_id=demo-client&request_uri=");
            for b in uri.bytes() {
                if b == b':' {
                    path.push_str("%3A");
                } else {
                    path.push(char::from(b));
                }
            }
            expect(s, get(&path, host), StatusCode::FOUND)
                .await
                .map(drop)
        }
    }
}

fn get(path: &str, host: &HeaderValue) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = path.parse().expect("path");
    req.headers_mut().insert(header::HOST, host.clone());
    req
}

fn push(host: &HeaderValue) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from_static(PUSH_FORM.as_bytes())));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = http::Uri::from_static("/par");
    let h = req.headers_mut();
    h.insert(header::HOST, host.clone());
    h.insert(header::AUTHORIZATION, HeaderValue::from_static(BASIC));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    req
}

async fn expect(
    s: &mut http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
    status: StatusCode,
) -> Result<Bytes, String> {
    s.ready().await.map_err(|e| format!("ready: {e}"))?;
    let res = s
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let got = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if got != status {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(format!("expected {status}, got {got}: {text}"));
    }
    Ok(body)
}

fn request_uri(json: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(json).ok()?;
    let start = text.find("\"request_uri\":\"")? + 15;
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn report(opts: &Opts, all: &mut ConnResult, elapsed: Duration) {
    let recorded = elapsed.as_secs_f64() - opts.warmup as f64;
    let n = all.samples.len();
    let mut lat: Vec<u32> = all.samples.iter().map(|s| s.1).collect();
    lat.sort_unstable();
    let rate = if recorded > 0.0 {
        n as f64 / recorded
    } else {
        0.0
    };
    let (p50, p99, p999, max) = (
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        lat.last().copied().unwrap_or(0),
    );
    if opts.timeline {
        all.samples.sort_unstable_by_key(|s| s.0);
        let mut i = 0;
        while i < all.samples.len() {
            let sec = all.samples[i].0 / 1000;
            let j = all.samples[i..]
                .iter()
                .position(|s| s.0 / 1000 != sec)
                .map_or(all.samples.len(), |k| i + k);
            let mut l: Vec<u32> = all.samples[i..j].iter().map(|s| s.1).collect();
            l.sort_unstable();
            println!(
                "t={sec:>4}s  n={:>7}  p50={:>6}us  p99={:>6}us  max={:>7}us",
                j - i,
                percentile(&l, 0.5),
                percentile(&l, 0.99),
                l.last().copied().unwrap_or(0)
            );
            i = j;
        }
    }
    println!(
        "{:?} conns={} secs={:.2} n={} rate={:.0}/s p50={}us p99={}us p99.9={}us max={}us errors={}",
        opts.scenario, opts.conns, recorded, n, rate, p50, p99, p999, max, all.errors
    );
    if let Some(e) = &all.first_error {
        eprintln!("first error: {e}");
    }
    if opts.json {
        println!(
            "{{\"scenario\":\"{:?}\",\"conns\":{},\"secs\":{:.3},\"n\":{},\"total\":{},\"rate\":{:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"errors\":{}}}",
            opts.scenario, opts.conns, recorded, n, all.completed, rate, p50, p99, p999, max, all.errors
        );
    }
}
