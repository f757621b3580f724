//! The SQLite example's store and client database (`examples/sqlite/db.rs`)
//! against real SQLite files: the generic store conformance suite, and the
//! whole flow over real HTTP on 127.0.0.1 with clients from the table.

mod conformance;
#[path = "../examples/sqlite/db.rs"]
mod db;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HttpClient};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqlitePool;
use sqlx::Row;
use tower::Layer;
use tower_par::{
    AuthMethod, CachingClients, Client, ClientAuthError, ClientAuthenticator, ParLayer,
    ParRequestBody, RequestUri,
};

use db::{SqliteClients, SqliteStore};

/// A database file for one test, removed (with its WAL files) at the end.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "tower-par-test-{}-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            RequestUri::generate().fingerprint()
        );
        Self(std::env::temp_dir().join(name))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A fresh database for each store the suites ask for (they expect empty
/// stores); the files live until the suite ends.
fn fresh_store(files: &Mutex<Vec<TempDb>>) -> SqliteStore {
    let file = TempDb::new();
    let pool = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(db::open(file.path()))
    })
    .expect("open a fresh SQLite database");
    files.lock().unwrap().push(file);
    SqliteStore::new(pool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_conforms() {
    let files = Mutex::new(Vec::new());
    conformance::conformance(|| fresh_store(&files)).await;
}

/// PAR-20 (429 only for a client over its own rate): the in-flow allowance
/// ends the oldest flows, never refuses a new user. (No push bound here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_allowances_conform() {
    let files = Mutex::new(Vec::new());
    conformance::allowance_conformance(|a| {
        fresh_store(&files).max_in_flow_per_client(a.in_flow_per_client)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_file_and_its_tables_are_created_and_reopened() {
    let file = TempDb::new();
    assert!(!file.path().exists());
    let pool = db::open(file.path()).await.unwrap();
    let clients = SqliteClients::new(pool.clone());
    clients
        .register(
            &Client::new("app", AuthMethod::ClientSecretBasic)
                .redirect_uri("https://a/cb")
                .redirect_uri("https://a/cb2")
                .require_par(true),
            Some("s3cret"),
        )
        .await
        .unwrap();
    pool.close().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the database is private: {mode:o}");
    }
    // Reopening keeps what was there (CREATE TABLE IF NOT EXISTS).
    let pool = db::open(file.path()).await.unwrap();
    let client = SqliteClients::new(pool.clone())
        .client("app")
        .await
        .unwrap()
        .expect("registered before the reopen");
    assert_eq!(client.auth_method, AuthMethod::ClientSecretBasic);
    assert_eq!(client.redirect_uris, ["https://a/cb", "https://a/cb2"]);
    assert!(client.require_par);
    // Only the digest of the secret is stored.
    let row = sqlx::query("SELECT secret_sha256 FROM clients WHERE client_id = 'app'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let digest: Vec<u8> = row.get(0);
    assert_eq!(digest, Sha256::digest(b"s3cret").to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_lookup_tells_unknown_from_unavailable() {
    let file = TempDb::new();
    let pool = db::open(file.path()).await.unwrap();
    let clients = SqliteClients::new(pool.clone());
    assert_eq!(clients.client("nobody").await.unwrap(), None);
    pool.close().await;
    assert!(matches!(
        clients.client("nobody").await,
        Err(ClientAuthError::Unavailable(_))
    ));
}

// --- over real HTTP ---------------------------------------------------------------

const REDIRECT: &str = "https://app.example/cb";
const S256_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The wrapped authorization endpoint: a "login page" echoing the query it
/// received, until the browser says it logged in (`x-login: done`); then
/// the authorization response, a redirect to the registered URI.
async fn authorization_server(
    req: Request<ParRequestBody<hyper::body::Incoming>>,
    calls: Arc<AtomicUsize>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    calls.fetch_add(1, Ordering::SeqCst);
    let query = req.uri().query().unwrap_or_default().to_owned();
    if req.headers().get("x-login").is_some_and(|v| v == "done") {
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = StatusCode::FOUND;
        res.headers_mut().insert(
            header::LOCATION,
            format!("{REDIRECT}?code=c0de&state=s1").parse().unwrap(),
        );
        return Ok(res);
    }
    Ok(Response::new(Full::new(Bytes::from(query))))
}

struct Server {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
}

/// The layer over `authorization_server`, with its clients and its store
/// in the database behind `pool`, served on 127.0.0.1.
async fn serve(pool: SqlitePool) -> Server {
    let clients = CachingClients::new(
        SqliteClients::new(pool.clone()),
        Duration::from_secs(5),
        100,
    );
    let layer = ParLayer::new(clients)
        .flow_cookie_secure(false)
        .with_store(SqliteStore::new(pool));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let inner_calls = calls.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let calls = inner_calls.clone();
            let svc = TowerToHyperService::new(layer.layer(tower::service_fn(move |req| {
                authorization_server(req, calls.clone())
            })));
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Server { addr, calls }
}

fn http() -> HttpClient<HttpConnector, Full<Bytes>> {
    HttpClient::builder(TokioExecutor::new()).build_http()
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

async fn send(req: Request<Full<Bytes>>) -> Answer {
    let res = tokio::time::timeout(Duration::from_secs(10), http().request(req))
        .await
        .expect("answered in time")
        .expect("an HTTP answer");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn push(addr: SocketAddr, basic: Option<(&str, &str)>, form: &str) -> Answer {
    let mut req = Request::post(format!("http://{addr}/par"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        req = req.header(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        );
    }
    send(req.body(Full::new(Bytes::from(form.to_owned()))).unwrap()).await
}

fn request_form() -> String {
    format!(
        "response_type=code&redirect_uri={}&scope=openid&state=s1\
         &code_challenge={S256_CHALLENGE}&code_challenge_method=S256",
        REDIRECT.replace(':', "%3A").replace('/', "%2F")
    )
}

async fn authorize(
    addr: SocketAddr,
    client_id: &str,
    request_uri: &str,
    cookie: Option<&str>,
    logged_in: bool,
) -> Answer {
    let mut req = Request::get(format!(
        "http://{addr}/authorize?client_id={client_id}&request_uri={}",
        request_uri.replace(':', "%3A")
    ))
    .header(header::ACCEPT, "application/json");
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    if logged_in {
        req = req.header("x-login", "done");
    }
    send(req.body(Full::new(Bytes::new())).unwrap()).await
}

async fn pushed_uri(addr: SocketAddr) -> String {
    let answer = push(addr, Some(("app", "s3cret")), &request_form()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.json()["request_uri"].as_str().unwrap().to_owned()
}

async fn registered(pool: &SqlitePool) {
    let clients = SqliteClients::new(pool.clone());
    clients
        .register(
            &Client::new("app", AuthMethod::ClientSecretBasic).redirect_uri(REDIRECT),
            Some("s3cret"),
        )
        .await
        .unwrap();
    clients
        .register(
            &Client::new("public-app", AuthMethod::None).redirect_uri(REDIRECT),
            None,
        )
        .await
        .unwrap();
}

/// PAR-13, PAR-28, RFC 9126 §4: pushed by a client from the table, the
/// request lives in the table under a digest, reaches the wrapped service
/// at its first redemption and again at the same browser's re-entry, and is
/// consumed by the authorization response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_redeem_over_http_with_clients_from_the_table() {
    let file = TempDb::new();
    let pool = db::open(file.path()).await.unwrap();
    registered(&pool).await;
    let server = serve(pool.clone()).await;
    let addr = server.addr;

    let request_uri = pushed_uri(addr).await;
    let uri = RequestUri::parse(&request_uri).expect("the layer's own reference");
    // The row is keyed by a digest; the reference itself is stored nowhere.
    let rows: Vec<(Vec<u8>, String)> = sqlx::query_as("SELECT key, client_id FROM pushed_requests")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        rows,
        [(Sha256::digest(uri.as_bytes()).to_vec(), "app".to_owned())]
    );
    let reference = request_uri.rsplit(':').next().unwrap().as_bytes();
    for suffix in ["", "-wal"] {
        let mut path = file.path().to_owned().into_os_string();
        path.push(suffix);
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes.windows(reference.len()).any(|w| w == reference),
            "the reference is in the database file{suffix}"
        );
    }

    // First redemption: the login page sees exactly the pushed request.
    let first = authorize(addr, "app", &request_uri, None, false).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert!(first.body.contains("state=s1"), "{}", first.body);
    assert!(first.body.contains("code_challenge="), "{}", first.body);
    assert!(!first.body.contains("request_uri"), "{}", first.body);
    let cookie = first
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the flow's binding cookie")
        .to_owned();

    // Another browser (no cookie) cannot use it; the same browser re-enters.
    let other = authorize(addr, "app", &request_uri, None, false).await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert_eq!(other.error(), "invalid_request_uri");
    let again = authorize(addr, "app", &request_uri, Some(&cookie), false).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, first.body);

    // The authorization response completes the flow in the table.
    let done = authorize(addr, "app", &request_uri, Some(&cookie), true).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    assert_eq!(
        done.headers.get(header::LOCATION).unwrap(),
        &format!("{REDIRECT}?code=c0de&state=s1")
    );
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM pushed_requests")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "consumed at the authorization response");
    let calls = server.calls.load(Ordering::SeqCst);
    let after = authorize(addr, "app", &request_uri, Some(&cookie), false).await;
    assert_eq!(after.status, StatusCode::BAD_REQUEST);
    assert_eq!(after.error(), "invalid_request_uri");
    assert_eq!(server.calls.load(Ordering::SeqCst), calls);

    // A public client from the table pushes with its client_id alone.
    let public = push(
        addr,
        None,
        &format!("client_id=public-app&{}", request_form()),
    )
    .await;
    assert_eq!(public.status, StatusCode::CREATED, "{}", public.body);
}

/// AUTH-1: an unknown client, a wrong secret and a method the client is not
/// registered for are all the same `401 invalid_client`; the wrapped
/// service never sees a push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_not_in_the_table_or_with_a_wrong_secret_get_401() {
    let file = TempDb::new();
    let pool = db::open(file.path()).await.unwrap();
    registered(&pool).await;
    let server = serve(pool.clone()).await;
    let form = request_form();
    for (basic, body) in [
        (Some(("stranger", "s3cret")), form.clone()),
        (Some(("app", "wrong")), form.clone()),
        (Some(("app", "")), form.clone()),
        // `app` is registered for client_secret_basic, not _post.
        (None, format!("client_id=app&client_secret=s3cret&{form}")),
        // A public client from the table cannot claim a secret one.
        (None, format!("client_id=stranger&{form}")),
    ] {
        let answer = push(server.addr, basic, &body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{basic:?}: {}",
            answer.body
        );
        assert_eq!(answer.error(), "invalid_client");
    }
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM pushed_requests")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(server.calls.load(Ordering::SeqCst), 0);
}

/// A database that stops answering: pushes (client authentication) and
/// redemptions (the store) are answered `503 temporarily_unavailable`,
/// never `401` or "not found", so clients retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_database_is_503_temporarily_unavailable() {
    let file = TempDb::new();
    let pool = db::open(file.path()).await.unwrap();
    registered(&pool).await;
    let server = serve(pool.clone()).await;
    let addr = server.addr;
    let request_uri = pushed_uri(addr).await;
    // The client lookup of a redemption is now cached; the store is not.
    let pending = pushed_uri(addr).await;
    let first = authorize(addr, "app", &request_uri, None, false).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);

    pool.close().await;
    let answer = push(addr, Some(("app", "s3cret")), &request_form()).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(answer.error(), "temporarily_unavailable");
    let answer = authorize(addr, "app", &pending, None, false).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(answer.error(), "temporarily_unavailable");
}

/// PAR-29: dead rows (past their deadline) are refused on read, and the
/// sweep deletes them, and only them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_dead_rows_only() {
    use std::time::SystemTime;
    use tower_par::{ParStore, PushedRequest, RedeemMode, RedeemOutcome};
    let file = TempDb::new();
    let store = SqliteStore::new(db::open(file.path()).await.unwrap());
    let request =
        |lifetime| PushedRequest::new("C", AuthMethod::None, "a=1", SystemTime::now(), lifetime);
    let short = Duration::from_millis(50);
    let (dead, live) = (RequestUri::generate(), RequestUri::generate());
    store.insert(&dead, request(short), short).await.unwrap();
    store
        .insert(
            &live,
            request(Duration::from_secs(60)),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(store.mark_once("jti-dead", short).await.unwrap());
    assert!(store
        .mark_once("jti-live", Duration::from_secs(60))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.sweep_expired().await.unwrap(), 2);
    assert_eq!(store.sweep_expired().await.unwrap(), 0);
    assert!(!store
        .mark_once("jti-live", Duration::from_secs(60))
        .await
        .unwrap());
    assert!(matches!(
        store.redeem(&live, "C", RedeemMode::Consume).await.unwrap(),
        RedeemOutcome::Redeemed(_)
    ));
}

/// PAR-31: a client whose row says `require_par` cannot use the front
/// channel; a client whose row does not passes through to the wrapped
/// service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_par_comes_from_the_table_par31() {
    let file = TempDb::new();
    let pool = db::open(file.path()).await.unwrap();
    registered(&pool).await;
    SqliteClients::new(pool.clone())
        .register(
            &Client::new("strict-app", AuthMethod::None)
                .redirect_uri(REDIRECT)
                .require_par(true),
            None,
        )
        .await
        .unwrap();
    let server = serve(pool).await;
    let front_channel = |client_id: &str| {
        Request::get(format!(
            "http://{}/authorize?client_id={client_id}&response_type=code&state=s1",
            server.addr
        ))
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .unwrap()
    };
    let refused = send(front_channel("strict-app")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.error(), "invalid_request");
    assert_eq!(server.calls.load(Ordering::SeqCst), 0);
    let passed = send(front_channel("public-app")).await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    assert_eq!(
        passed.body,
        "client_id=public-app&response_type=code&state=s1"
    );
    assert_eq!(server.calls.load(Ordering::SeqCst), 1);
}
