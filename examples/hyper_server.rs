//! The PAR layer over a plain hyper 1.x `service_fn`.
//!
//! The inner service is trivial on purpose (it is also the benchmark
//! target): `/authorize` answers `302` to the `redirect_uri` it receives
//! with a fixed `code` and the `state`; every other path answers `200 ok`.
//!
//! ```text
//! cargo run --release --example hyper_server
//! ```
//!
//! Environment:
//! - `ADDR` (default `127.0.0.1:3001`)
//! - `WORKERS`: tokio worker threads (default: one per core)
//! - `RUNTIME=per-thread`: instead of one multi-threaded runtime, `WORKERS`
//!   threads each with a single-threaded runtime and its own listening
//!   socket on `ADDR` (`SO_REUSEPORT`; the kernel spreads connections), so
//!   no request ever moves between threads
//! - `PAR_LAYER=0`: serve the same handler without the layer (baseline)
//! - `PAR_LAYER=ceiling`: no layer, and `POST /par` answers a fixed `201`
//!   JSON body: what bare hyper does with trivial work, the ceiling the
//!   benchmarks compare the layer against (`bench/run.sh`)
//! - `PAR_MAX_PENDING`, `PAR_MAX_PENDING_PER_CLIENT`: memory store bounds
//!   (the per-client one also bounds flows; with `PAR_MAX_PENDING` the byte
//!   budget is off unless `PAR_MAX_PENDING_BYTES` sets it)
//! - `PAR_LIFETIME`: `request_uri` lifetime in seconds (default 60)
//!
//! Clients: the same demo clients as `legacy_server` (`demo-client` /
//! `demo-secret` with Basic, `demo-post-client` / `demo-post-secret` with
//! client_secret_post, `demo-public`), redirect `http://127.0.0.1:8080/cb`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tower::Layer;
use tower_par::{AuthMethod, Client, MemoryStore, MemoryStoreConfig, ParLayer, StaticClients};

const REDIRECT: &str = "http://127.0.0.1:8080/cb";

/// The wrapped "authorization server": PAR-unaware and trivial.
async fn handler<B>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/authorize" {
        return Ok(Response::new(Full::new(Bytes::from_static(b"ok\n"))));
    }
    let mut redirect_uri = None;
    let mut state = None;
    for pair in req.uri().query().unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("redirect_uri", v)) => redirect_uri = Some(v),
            Some(("state", v)) => state = Some(v),
            _ => {}
        }
    }
    let target = match redirect_uri {
        // Only the registered URI is ever redirected to.
        Some("http%3A%2F%2F127.0.0.1%3A8080%2Fcb") | Some(REDIRECT) | None => REDIRECT,
        Some(_) => {
            let mut res = Response::new(Full::new(Bytes::from_static(
                b"unregistered redirect_uri\n",
            )));
            *res.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(res);
        }
    };
    let mut location = String::with_capacity(96);
    location.push_str(target);
    location.push_str("?code=fixed-demo-code");
    if let Some(state) = state {
        location.push_str("&state=");
        location.push_str(state);
    }
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::FOUND;
    if let Ok(v) = location.parse() {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// The ceiling: what the PAR endpoint would cost if it did nothing but
/// answer. Same headers as the layer's `201`.
async fn ceiling<B>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/par" {
        return handler(req).await;
    }
    const BODY: &[u8] = b"{\"request_uri\":\"urn:ietf:params:oauth:request_uri:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"expires_in\":60}";
    let mut res = Response::new(Full::new(Bytes::from_static(BODY)));
    *res.status_mut() = StatusCode::CREATED;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    Ok(res)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Layer,
    Bare,
    Ceiling,
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3001".into())
        .parse()?;
    if std::env::var("RUNTIME").as_deref() == Ok("per-thread") {
        let n = env_usize("WORKERS")
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1)
            .max(1);
        // One layer (one store) shared by every thread.
        let layer = build_layer(addr)?;
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let layer = layer.clone();
                std::thread::spawn(move || -> Result<(), String> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    rt.block_on(async move {
                        let socket = tokio::net::TcpSocket::new_v4()?;
                        socket.set_reuseport(true)?;
                        socket.bind(addr)?;
                        serve(socket.listen(1024)?, layer).await
                    })
                    .map_err(|e| e.to_string())
                })
            })
            .collect();
        for t in threads {
            t.join().map_err(|_| "server thread panicked")??;
        }
        return Ok(());
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = env_usize("WORKERS") {
        rt.worker_threads(n.max(1));
    }
    let layer = build_layer(addr)?;
    rt.enable_all().build()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        serve(listener, layer).await
    })
}

type DemoLayer = ParLayer<StaticClients, MemoryStore>;

fn build_layer(addr: SocketAddr) -> Result<DemoLayer, Box<dyn std::error::Error>> {
    let clients = StaticClients::new()
        .with_client(
            Client::new("demo-client", AuthMethod::ClientSecretBasic).redirect_uri(REDIRECT),
            Some("demo-secret"),
        )?
        .with_client(
            Client::new("demo-post-client", AuthMethod::ClientSecretPost).redirect_uri(REDIRECT),
            Some("demo-post-secret"),
        )?
        .with_client(
            Client::new("demo-public", AuthMethod::None).redirect_uri(REDIRECT),
            None,
        )?;
    let mut bounds = MemoryStoreConfig::default();
    if let Some(n) = env_usize("PAR_MAX_PENDING") {
        bounds.max_pending = n;
    }
    if let Some(n) = env_usize("PAR_MAX_PENDING_PER_CLIENT") {
        bounds.max_pending_per_client = n;
        bounds.max_in_flow_per_client = n;
    }
    // Sized by count for load runs: bytes bounded only when asked.
    bounds.max_pending_bytes = match env_usize("PAR_MAX_PENDING_BYTES") {
        Some(n) => n,
        None if env_usize("PAR_MAX_PENDING").is_some() => usize::MAX,
        None => bounds.max_pending_bytes,
    };
    let mut layer = ParLayer::new(clients)
        .issuer(format!("http://{addr}"))?
        .with_store(MemoryStore::with_config(bounds));
    if let Some(secs) = env_usize("PAR_LIFETIME") {
        layer = layer.request_uri_lifetime(Duration::from_secs(secs as u64))?;
    }
    Ok(layer)
}

async fn serve(
    listener: tokio::net::TcpListener,
    layer: DemoLayer,
) -> Result<(), Box<dyn std::error::Error>> {
    let addr = listener.local_addr()?;
    let mode = match std::env::var("PAR_LAYER").as_deref() {
        Ok("0") => Mode::Bare,
        Ok("ceiling") => Mode::Ceiling,
        _ => Mode::Layer,
    };
    println!(
        "hyper_server listening on http://{addr} (PAR layer {})",
        match mode {
            Mode::Layer => "on",
            Mode::Bare => "off",
            Mode::Ceiling => "off, ceiling /par",
        }
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        let builder = auto::Builder::new(TokioExecutor::new());
        if mode == Mode::Layer {
            let svc = TowerToHyperService::new(layer.layer(tower::service_fn(
                handler::<tower_par::ParRequestBody<Incoming>>,
            )));
            tokio::spawn(async move {
                let _ = builder.serve_connection(io, svc).await;
            });
        } else if mode == Mode::Ceiling {
            tokio::spawn(async move {
                let _ = builder
                    .serve_connection(io, service_fn(ceiling::<Incoming>))
                    .await;
            });
        } else {
            tokio::spawn(async move {
                let _ = builder
                    .serve_connection(io, service_fn(handler::<Incoming>))
                    .await;
            });
        }
    }
}
