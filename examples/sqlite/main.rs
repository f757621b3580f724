//! The PAR layer with its clients and its pushed requests in SQLite
//! (through `sqlx`), over a trivial authorization endpoint on hyper.
//!
//! ```text
//! cargo run --example sqlite -- [--db PATH] [--addr 127.0.0.1:3003]
//! ```
//!
//! The database file is created (with its tables) if absent; without
//! `--db`, a fresh file in the temporary directory. The demo clients are
//! written to its `clients` table at start-up: `demo-client` /
//! `demo-secret` (Basic), `demo-post-client` / `demo-post-secret`
//! (client_secret_post) and `demo-public`, all redirecting to
//! `http://127.0.0.1:8080/cb`. Add rows to the table to add clients.
//!
//! The store and the client database are in `db.rs`, shared with
//! `tests/sqlite.rs`.

mod db;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tower::Layer;
use tower_par::{AuthMethod, CachingClients, Client, ParLayer, ParRequestBody};

use db::{SqliteClients, SqliteStore};

const REDIRECT: &str = "http://127.0.0.1:8080/cb";

/// The wrapped "authorization server": PAR-unaware. It sees only the pushed
/// parameters and answers with a redirect to the (registered) redirect URI.
async fn authorize<B>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/authorize" {
        return Ok(Response::new(Full::new(Bytes::from_static(b"ok\n"))));
    }
    let state = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("state="));
    let mut location = format!("{REDIRECT}?code=demo-code");
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

struct Args {
    db: PathBuf,
    addr: SocketAddr,
}

fn args() -> Result<Args, String> {
    let mut db = None;
    let mut addr: SocketAddr = "127.0.0.1:3003".parse().map_err(|e| format!("{e}"))?;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--db" => db = Some(PathBuf::from(it.next().ok_or("--db needs a path")?)),
            "--addr" => {
                addr = it
                    .next()
                    .ok_or("--addr needs an address")?
                    .parse()
                    .map_err(|e| format!("--addr: {e}"))?;
            }
            other => {
                return Err(format!(
                    "unknown argument '{other}' (--db PATH, --addr ADDR)"
                ))
            }
        }
    }
    let db = db.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tower-par-sqlite-{}.db", std::process::id()))
    });
    Ok(Args { db, addr })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args { db: path, addr } = args()?;
    let pool = db::open(&path).await?;
    let clients = SqliteClients::new(pool.clone());
    for (client, secret) in [
        (
            Client::new("demo-client", AuthMethod::ClientSecretBasic).redirect_uri(REDIRECT),
            Some("demo-secret"),
        ),
        (
            Client::new("demo-post-client", AuthMethod::ClientSecretPost).redirect_uri(REDIRECT),
            Some("demo-post-secret"),
        ),
        (
            Client::new("demo-public", AuthMethod::None).redirect_uri(REDIRECT),
            None,
        ),
    ] {
        clients.register(&client, secret).await?;
    }
    // At most 1 000 browsers mid-login per client; more end the oldest.
    let store = SqliteStore::new(pool).max_in_flow_per_client(1_000);
    // Dead rows are refused on read anyway; this keeps the table small.
    let sweeper = store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            if let Err(e) = sweeper.sweep_expired().await {
                eprintln!("sweep failed: {e}");
            }
        }
    });
    // `client()` runs on front-channel requests: answer repeats from memory
    // for a few seconds (authentication always reads the table).
    let clients = CachingClients::new(clients, Duration::from_secs(5), 10_000);
    let layer = ParLayer::new(clients)
        .issuer(format!("http://{addr}"))?
        // Plain HTTP on loopback only: a `Secure` cookie would not come back.
        .flow_cookie_secure(false)
        .with_store(store);

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!(
        "sqlite example on http://{addr}, database {}",
        path.display()
    );
    println!();
    println!("Push an authorization request (client_secret_basic):");
    println!(
        "  curl -s -u demo-client:demo-secret http://{addr}/par \\\n    \
         -d response_type=code -d redirect_uri={REDIRECT} -d state=xyz"
    );
    println!("Redeem the request_uri it returns (the answer is a 302 with code and state):");
    println!("  curl -si 'http://{addr}/authorize?client_id=demo-client&request_uri=REQUEST_URI'");
    println!("Look at the tables:");
    println!(
        "  sqlite3 {} 'SELECT client_id, token_endpoint_auth_method FROM clients'",
        path.display()
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let svc = TowerToHyperService::new(layer.layer(tower::service_fn(
            authorize::<ParRequestBody<hyper::body::Incoming>>,
        )));
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
