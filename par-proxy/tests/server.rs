//! par-proxy's server over real HTTP on 127.0.0.1, around an inner service
//! that reports what reached it: health routes, the access log, graceful
//! shutdown, the metrics listener, `Connection` and RFC 9440 `Client-Cert`
//! handling (AUTH-24).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use par_proxy::config::LogFormat;
use par_proxy::server::{self, ServeOptions, TrustedProxies};
use par_proxy::Connection;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tower_par::ClientCertificate;
use tracing_subscriber::fmt::MakeWriter;

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), String>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn shutdown(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the server stops")
            .expect("the server task does not panic")
    }
}

async fn start<S>(options: ServeOptions, inner: S) -> Running
where
    S: tower::Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve_with(listener, options, inner, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Reports what reached it, as JSON.
fn echo(
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(move |req: Request<Incoming>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let connection = req.extensions().get::<Connection>().copied();
            let certificate = req.extensions().get::<ClientCertificate>().map(|c| {
                c.chain()
                    .iter()
                    .map(|der| base64::engine::general_purpose::STANDARD.encode(der))
                    .collect::<Vec<_>>()
            });
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap_or("").to_owned())
            };
            let body = serde_json::json!({
                "path": req.uri().path(),
                "connection": connection.map(|c| serde_json::json!({
                    "peer": c.peer.to_string(), "local": c.local.to_string(), "tls": c.tls, "trusted": c.trusted,
                })),
                "certificate": certificate,
                "client_cert_header": header("client-cert"),
                "client_cert_chain_header": header("client-cert-chain"),
            });
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
        }
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn get_json(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> serde_json::Value {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    serde_json::from_str(&res.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn healthz_is_answered_by_the_server_and_never_forwarded() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = start(ServeOptions::new(), echo(calls.clone())).await;
    let client = client();

    let res = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.text().await.unwrap(), "ok\n");

    let res = client.head(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Not forwarded with any other method either.
    let res = client
        .post(server.url("/healthz"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Everything else reaches the inner service, query and all.
    let body = get_json(&client, &server.url("/healthz/x?a=b"), &[]).await;
    assert_eq!(body["path"], "/healthz/x");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn readyz_follows_the_readiness_check_without_internals() {
    let calls = Arc::new(AtomicUsize::new(0));
    let ready = Arc::new(AtomicBool::new(true));
    let flag = ready.clone();
    let options = ServeOptions::new().readiness(move || {
        let ready = flag.load(Ordering::SeqCst);
        async move {
            if ready {
                Ok(())
            } else {
                Err("store unavailable".to_owned())
            }
        }
    });
    let server = start(options, echo(calls.clone())).await;
    let client = client();

    let res = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "ready\n");

    ready.store(false, Ordering::SeqCst);
    // The previous answer is reused for a second.
    tokio::time::sleep(server::READINESS_CACHE + Duration::from_millis(200)).await;
    let res = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.text().await.unwrap(), "not ready: store unavailable\n");

    // Liveness does not depend on readiness.
    let res = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn readyz_answers_within_a_second_share_one_check() {
    let checks = Arc::new(AtomicUsize::new(0));
    let counted = checks.clone();
    let options = ServeOptions::new().readiness(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    let server = start(options, echo(Arc::default())).await;
    let client = client();
    for _ in 0..2 {
        let res = client.get(server.url("/readyz")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(checks.load(Ordering::SeqCst), 1);
    tokio::time::sleep(server::READINESS_CACHE + Duration::from_millis(200)).await;
    let res = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(checks.load(Ordering::SeqCst), 2);
    server.shutdown().await.unwrap();
}

/// Reads until the server closes the connection; `false` when it is
/// still open after `bound`.
async fn closed_within(stream: &mut tokio::net::TcpStream, bound: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(bound, read_to_end).await.is_ok()
}

#[tokio::test]
async fn connections_without_a_request_are_closed_after_the_first_request_deadline() {
    use tokio::io::AsyncWriteExt;
    let calls = Arc::new(AtomicUsize::new(0));
    let options = ServeOptions::new().first_request_timeout(Duration::from_millis(300));
    let server = start(options, echo(calls.clone())).await;

    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // Half an HTTP/2 preface: hyper-util's version detection waits for more.
    let mut preface = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    // Half an HTTP/1.1 request head.
    let mut partial = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    partial.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();

    for (name, stream) in [
        ("silent", &mut silent),
        ("h2 preface", &mut preface),
        ("partial head", &mut partial),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(10)).await,
            "{name}: still open"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // A connection that started a request stays usable past the deadline.
    let client = client();
    let res = client.get(server.url("/x")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let res = client.get(server.url("/y")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_for_a_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let options = ServeOptions::new().max_connections(1);
    let server = start(options, echo(Arc::default())).await;
    let request = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";

    let mut first = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    first.write_all(request).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    // The second waits in the backlog while the first is open...
    let mut second = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    second.write_all(request).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buf)).await;
    assert!(waiting.is_err(), "served beyond max_connections");
    // ...and is served once it closes.
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    drop(second);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn readyz_without_a_check_is_ready() {
    let server = start(ServeOptions::new(), echo(Arc::default())).await;
    let res = client().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server.shutdown().await.unwrap();
}

/// Collects what a subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

const SECRET_QUERY: &str =
    "/authorize?client_id=app&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3AsecretRef123&state=st4te";

async fn requests_for_the_log(server: &Running) {
    let client = client();
    get_json(
        &client,
        &server.url(SECRET_QUERY),
        &[("cookie", "par_flow=c00kieValue")],
    )
    .await;
    let res = client
        .post(server.url("/token?code=c0de"))
        .header("authorization", "Basic YXBwOnMzY3JldA==")
        .body("grant_type=authorization_code&code=c0de&client_assertion=eyJhbGciOi")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = client
        .get(server.url("/healthz?probe=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

fn assert_nothing_secret(out: &str) {
    for secret in [
        "request_uri",
        "secretRef123",
        "st4te",
        "c00kieValue",
        "c0de",
        "YXBwOnMzY3JldA",
        "s3cret",
        "eyJhbGciOi",
        "?",
    ] {
        assert!(!out.contains(secret), "{secret:?} is in the log:\n{out}");
    }
}

/// Makes `capture` this thread's subscriber.
///
/// tracing-core computes a callsite's interest from the current thread's
/// subscriber alone while just one scoped subscriber is registered, so a
/// test on another thread could turn this thread's callsites off. A second
/// registered dispatcher that lives as long as the process keeps the
/// interest computed from all of them.
async fn capture_on_this_thread(
    _server: &Running,
    format: LogFormat,
    capture: &Capture,
) -> tracing::subscriber::DefaultGuard {
    static KEEPER: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    KEEPER.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    tracing::subscriber::set_default(server::subscriber(
        format,
        "info".parse().unwrap(),
        capture.clone(),
    ))
}

// The subscriber is the thread's default; the current-thread runtime of
// `#[tokio::test]` runs the server's tasks on this thread too.
#[tokio::test]
async fn one_json_log_line_per_request_without_the_query() {
    let capture = Capture::default();
    let server = start(ServeOptions::new(), echo(Arc::default())).await;
    let _guard = capture_on_this_thread(&server, LogFormat::Json, &capture).await;
    requests_for_the_log(&server).await;
    server.shutdown().await.unwrap();

    let out = capture.text();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["target"] == server::ACCESS_TARGET)
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["method"], "GET");
    assert_eq!(lines[0]["path"], "/authorize");
    assert_eq!(lines[0]["status"], 200);
    assert!(lines[0]["duration_ms"].is_number());
    assert!(lines[0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(lines[1]["method"], "POST");
    assert_eq!(lines[1]["path"], "/token");
    assert_eq!(lines[2]["path"], "/healthz");
    assert_nothing_secret(&out);
}

#[tokio::test]
async fn one_text_log_line_per_request_without_the_query() {
    let capture = Capture::default();
    let server = start(ServeOptions::new(), echo(Arc::default())).await;
    let _guard = capture_on_this_thread(&server, LogFormat::Text, &capture).await;
    requests_for_the_log(&server).await;
    server.shutdown().await.unwrap();

    let out = capture.text();
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(server::ACCESS_TARGET))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains("method=GET")
            && lines[0].contains("path=\"/authorize\"")
            && lines[0].contains("status=200"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("method=POST") && lines[1].contains("path=\"/token\""),
        "{}",
        lines[1]
    );
    assert_nothing_secret(&out);
}

#[tokio::test]
async fn a_request_abandoned_by_its_client_still_gets_its_line() {
    use tokio::io::AsyncWriteExt;

    let capture = Capture::default();
    let slow = Slow {
        entered: Arc::new(Notify::new()),
        release: Arc::new(Notify::new()),
    };
    let server = start(ServeOptions::new(), slow.clone()).await;
    let _guard = capture_on_this_thread(&server, LogFormat::Json, &capture).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /slow?request_uri=urn%3Asecret HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), slow.entered.notified())
        .await
        .unwrap();
    drop(tcp);

    let mut line = None;
    for _ in 0..500 {
        line = capture
            .text()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["target"] == server::ACCESS_TARGET);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let line = line.expect("a line for the abandoned request");
    assert_eq!(line["message"], "request cancelled before the response");
    assert_eq!(line["path"], "/slow");
    assert!(line.get("status").is_none());
    assert_nothing_secret(&capture.text());
    server.shutdown().await.unwrap();
}

/// `/slow` waits until released; everything else answers at once.
#[derive(Clone)]
struct Slow {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

impl tower::Service<Request<Incoming>> for Slow {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if req.uri().path() == "/slow" {
                this.entered.notify_one();
                this.release.notified().await;
            }
            Ok(Response::new(Full::new(Bytes::from_static(b"done"))))
        })
    }
}

async fn wait_until_refused(addr: SocketAddr) {
    for _ in 0..200 {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("the listener still accepts after shutdown");
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight_and_refuses_new_connections() {
    let slow = Slow {
        entered: Arc::new(Notify::new()),
        release: Arc::new(Notify::new()),
    };
    let mut server = start(ServeOptions::new(), slow.clone()).await;
    let addr = server.addr;
    let in_flight = tokio::spawn(client().get(server.url("/slow")).send());
    tokio::time::timeout(Duration::from_secs(10), slow.entered.notified())
        .await
        .expect("the request reaches the inner service");

    let _ = server.stop.take().unwrap().send(());
    wait_until_refused(addr).await;
    assert!(
        !server.task.is_finished(),
        "the server waits for the request in flight"
    );

    slow.release.notify_one();
    let res = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "done");
    server.shutdown().await.unwrap();
    // Still refused once the server has returned.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_is_bounded_by_its_deadline() {
    let slow = Slow {
        entered: Arc::new(Notify::new()),
        release: Arc::new(Notify::new()),
    };
    let options = ServeOptions::new().shutdown_timeout(Duration::from_millis(200));
    let server = start(options, slow.clone()).await;
    let in_flight = tokio::spawn(client().get(server.url("/slow")).send());
    tokio::time::timeout(Duration::from_secs(10), slow.entered.notified())
        .await
        .unwrap();
    // Never released: the deadline closes the connection and run returns.
    server.shutdown().await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .unwrap()
        .unwrap();
    assert!(outcome.is_err(), "the unfinished request is cut off");
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_hold_up_shutdown() {
    let server = start(ServeOptions::new(), echo(Arc::default())).await;
    let client = client();
    // Leaves a pooled keep-alive connection open.
    get_json(&client, &server.url("/a"), &[]).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let server = start(ServeOptions::new(), echo(Arc::default())).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = client.get(server.url("/over-h2")).send().await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    let body: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["path"], "/over-h2");
    let res = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_have_their_own_listener_and_the_public_port_forwards_metrics_paths() {
    let handle = server::install_recorder().unwrap();
    // Installing again returns the same recorder.
    server::install_recorder().unwrap();
    let metrics_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics_listener.local_addr().unwrap();
    let (stop_metrics, metrics_stopped) = oneshot::channel::<()>();
    let metrics_task = tokio::spawn(server::serve_metrics(metrics_listener, handle, async {
        let _ = metrics_stopped.await;
    }));

    let calls = Arc::new(AtomicUsize::new(0));
    let server = start(ServeOptions::new(), echo(calls.clone())).await;
    let client = client();
    // On the public port `/metrics` is the upstream's path like any other.
    let body = get_json(&client, &server.url("/metrics"), &[]).await;
    assert_eq!(body["path"], "/metrics");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let res = client.post(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);

    let res = client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = res.text().await.unwrap();
    assert!(
        text.contains("# TYPE par_proxy_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains("par_proxy_requests_total{status_class=\"2xx\"}"),
        "{text}"
    );
    assert!(
        text.contains("par_proxy_requests_total{status_class=\"4xx\"}"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE par_proxy_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(
            "par_proxy_request_duration_seconds_bucket{status_class=\"2xx\",le=\"0.005\"}"
        ),
        "{text}"
    );

    let res = client
        .get(format!("http://{metrics_addr}/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    server.shutdown().await.unwrap();
    let _ = stop_metrics.send(());
    tokio::time::timeout(Duration::from_secs(30), metrics_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A real certificate (the header's value need not chain anywhere: the
/// layer's `tls_client_auth` judges that).
fn certificate_der() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "client-1");
    params.self_signed(&key).unwrap().der().to_vec()
}

fn sf_binary(der: &[u8]) -> String {
    format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

#[tokio::test]
async fn client_cert_from_an_untrusted_peer_is_stripped() {
    let der = certificate_der();
    let server = start(ServeOptions::new(), echo(Arc::default())).await;
    let body = get_json(
        &client(),
        &server.url("/par"),
        &[
            ("client-cert", &sf_binary(&der)),
            ("client-cert-chain", &sf_binary(&der)),
        ],
    )
    .await;
    assert_eq!(body["certificate"], serde_json::Value::Null);
    assert_eq!(body["client_cert_header"], serde_json::Value::Null);
    assert_eq!(body["client_cert_chain_header"], serde_json::Value::Null);
    assert_eq!(body["connection"]["trusted"], false);
    assert_eq!(body["connection"]["tls"], false);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_cert_from_a_trusted_peer_becomes_the_extension() {
    let leaf = certificate_der();
    let intermediate = certificate_der();
    let trusted = TrustedProxies::parse(["192.0.2.0/24", "127.0.0.0/8"]).unwrap();
    let server = start(
        ServeOptions::new().trusted_proxies(trusted),
        echo(Arc::default()),
    )
    .await;
    let client = client();
    let body = get_json(
        &client,
        &server.url("/par"),
        &[
            ("client-cert", &sf_binary(&leaf)),
            ("client-cert-chain", &sf_binary(&intermediate)),
        ],
    )
    .await;
    let b64 = |der: &[u8]| base64::engine::general_purpose::STANDARD.encode(der);
    assert_eq!(
        body["certificate"],
        serde_json::json!([b64(&leaf), b64(&intermediate)])
    );
    assert_eq!(body["connection"]["trusted"], true);
    assert_eq!(
        body["connection"]["peer"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("127.0.0.1")
    );
    assert_eq!(body["connection"]["local"], server.addr.to_string());

    // No header, no certificate; a malformed one is no certificate either.
    let body = get_json(&client, &server.url("/par"), &[]).await;
    assert_eq!(body["certificate"], serde_json::Value::Null);
    let body = get_json(
        &client,
        &server.url("/par"),
        &[("client-cert", "not-a-certificate")],
    )
    .await;
    assert_eq!(body["certificate"], serde_json::Value::Null);
    server.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------
// run: a whole configuration
// ---------------------------------------------------------------------

async fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn clients_file() -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "par-proxy-server-clients-{}-{}.json",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(
        &path,
        r#"{"clients":[{"client_id":"app","token_endpoint_auth_method":"none","redirect_uris":["https://app.example/cb"]}]}"#,
    )
    .unwrap();
    path
}

fn config(listen: SocketAddr, upstream: SocketAddr, extra: &str) -> par_proxy::config::ProxyConfig {
    let text = format!(
        "listen = \"{listen}\"\nupstream = \"http://{upstream}\"\n{extra}\n[clients]\nfile = {:?}\n",
        clients_file().display().to_string()
    );
    toml::from_str(&text).unwrap()
}

async fn wait_until_up(client: &reqwest::Client, url: &str) {
    for _ in 0..200 {
        if let Ok(res) = client.get(url).send().await {
            if res.status() == StatusCode::OK {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} does not come up");
}

#[tokio::test]
async fn run_serves_health_readiness_metrics_and_forwards_everything_else() {
    let calls = Arc::new(AtomicUsize::new(0));
    let upstream = start(ServeOptions::new(), echo(calls.clone())).await;
    let listen = free_port().await;
    let metrics = free_port().await;
    let config = config(
        listen,
        upstream.addr,
        &format!("[metrics]\nlisten = \"{metrics}\"\n"),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let proxy = tokio::spawn(server::run(config, async {
        let _ = stopped.await;
    }));
    let client = client();
    wait_until_up(&client, &format!("http://{listen}/healthz")).await;

    let res = client
        .get(format!("http://{listen}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The public port forwards `/metrics` to the upstream like any path.
    let body = get_json(&client, &format!("http://{listen}/metrics"), &[]).await;
    assert_eq!(body["path"], "/metrics");

    let text = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("par_proxy_requests_total{status_class=\"2xx\"}"),
        "{text}"
    );

    // Upstream gone: not ready, and the reason names no host or port
    // (once the cached answer has expired).
    upstream.shutdown().await.unwrap();
    tokio::time::sleep(server::READINESS_CACHE + Duration::from_millis(200)).await;
    let res = client
        .get(format!("http://{listen}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.text().await.unwrap(),
        "not ready: upstream unreachable\n"
    );
    let res = client
        .get(format!("http://{listen}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), proxy)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(listen).await.is_err());
    assert!(tokio::net::TcpStream::connect(metrics).await.is_err());
}

#[tokio::test]
async fn run_refuses_what_it_cannot_serve_naming_the_key() {
    let upstream = free_port().await;
    let listen = free_port().await;
    let bad_trusted = config(listen, upstream, "trusted_proxies = [\"10.0.0.0/99\"]");
    let err = server::run(bad_trusted, async {}).await.unwrap_err();
    assert!(err.starts_with("trusted_proxies[0]: "), "{err}");

    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let in_use = config(taken.local_addr().unwrap(), upstream, "");
    let err = server::run(in_use, async {}).await.unwrap_err();
    assert!(err.starts_with("listen: "), "{err}");

    let missing_tls = config(
        listen,
        upstream,
        "[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"",
    );
    let err = server::run(missing_tls, async {}).await.unwrap_err();
    assert!(err.starts_with("tls.cert: "), "{err}");
}

/// After its first request, a connection with nothing in progress is
/// closed after the idle timeout, HTTP/2 included (its keep-alive PINGs
/// would otherwise keep it, and its connection slot, for ever); a request
/// that takes longer than the idle timeout is not cut off.
#[tokio::test]
async fn idle_connections_are_closed_but_slow_requests_finish() {
    let inner = tower::service_fn(|req: Request<Incoming>| async move {
        if req.uri().path() == "/slow" {
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
    });
    let options = ServeOptions::new()
        .first_request_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_millis(300));
    let server = start(options, inner).await;

    // HTTP/2 with prior knowledge: one request, then idle.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let res = sender
        .send_request(
            Request::get(server.url("/slow"))
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    // 1.2 s in progress, four idle timeouts long, and answered.
    assert_eq!(res.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"done");
    // Then nothing in progress: the server closes the connection.
    let closed = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(closed.is_ok(), "an idle HTTP/2 connection stayed open");

    // An HTTP/1.1 keep-alive connection likewise.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut h1 = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    h1.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), h1.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    assert!(
        closed_within(&mut h1, Duration::from_secs(10)).await,
        "an idle HTTP/1.1 connection stayed open"
    );
    server.shutdown().await.unwrap();
}
