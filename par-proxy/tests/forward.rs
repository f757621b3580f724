//! The upstream forwarder over real HTTP: hyper upstreams on 127.0.0.1,
//! the `Forwarder` (alone, or behind `tower_par::ParLayer`) served by a
//! hyper server, and a hyper client.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use par_proxy::config::ProxyConfig;
use par_proxy::forward::Forwarder;
use par_proxy::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tower::{Layer as _, ServiceExt as _};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type UpBody = BoxBody<Bytes, BoxError>;

/// Bound on every wait, so that a failure is an error and never a hang.
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- upstreams

/// What an upstream received.
#[derive(Debug)]
struct Seen {
    version: Version,
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

/// Serves `handler` on 127.0.0.1 (HTTP/1.1), at most 64 connections.
async fn serve<H, F>(handler: H) -> SocketAddr
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<UpBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// An upstream that records each request (body read in full) and answers
/// `200 ok` with `extra` response headers.
async fn recording_upstream(
    extra: &'static [(&'static str, &'static str)],
) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel(16);
    let addr = serve(recorder(tx, extra)).await;
    (addr, rx)
}

/// The handler of [`recording_upstream`].
fn recorder(
    tx: mpsc::Sender<Seen>,
    extra: &'static [(&'static str, &'static str)],
) -> impl Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<UpBody>> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    move |req: Request<Incoming>| {
        let tx = tx.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let _ = tx
                .send(Seen {
                    version: parts.version,
                    method: parts.method,
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body,
                })
                .await;
            let mut res = Response::builder().status(200);
            for (k, v) in extra {
                res = res.header(*k, *v);
            }
            res.body(full("ok")).unwrap()
        })
    }
}

/// An upstream that answers with the request body, frame by frame, as it
/// reads it.
async fn echo_upstream() -> SocketAddr {
    serve(|req: Request<Incoming>| async move {
        Response::new(req.into_body().map_err(BoxError::from).boxed())
    })
    .await
}

fn full(s: impl Into<Bytes>) -> UpBody {
    Full::new(s.into()).map_err(|never| match never {}).boxed()
}

async fn next_seen(rx: &mut mpsc::Receiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the upstream was reached in time")
        .expect("the upstream saw a request")
}

// -------------------------------------------------------------------- proxy

fn config(upstream: SocketAddr, extra: &str) -> ProxyConfig {
    config_for(&format!("http://{upstream}"), extra)
}

fn config_for(upstream: &str, extra: &str) -> ProxyConfig {
    toml::from_str(&format!("upstream = \"{upstream}\"\n{extra}")).unwrap()
}

/// How the test server describes each connection to the forwarder.
#[derive(Clone, Copy)]
enum Peer {
    /// No `Connection` extension.
    Unknown,
    /// A `Connection` extension with this `trusted`.
    Known { trusted: bool },
}

/// Serves `svc` on 127.0.0.1 (HTTP/1.1), inserting the `Connection`
/// extension as `peer` says.
async fn serve_proxy<S, B>(svc: S, peer: Peer) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((stream, remote)) = listener.accept().await else {
                return;
            };
            let svc = svc.clone();
            tokio::spawn(async move {
                let hyper_svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    if let Peer::Known { trusted } = peer {
                        req.extensions_mut().insert(Connection {
                            peer: remote,
                            local,
                            tls: false,
                            trusted,
                        });
                    }
                    svc.clone().oneshot(req)
                });
                // HTTP/1.1, or HTTP/2 with prior knowledge.
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(TokioIo::new(stream), hyper_svc)
                .await;
            });
        }
    });
    local
}

async fn forwarder_at(config: &ProxyConfig, peer: Peer) -> SocketAddr {
    serve_proxy(Forwarder::from_config(config).unwrap(), peer).await
}

// ------------------------------------------------------------------- client

/// A fresh HTTP/1.1 connection to `addr`.
async fn connect<B>(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// A response read in full.
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send<B>(addr: SocketAddr, req: Request<B>) -> Got
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    tokio::time::timeout(WAIT, async {
        let mut sender = connect(addr).await;
        let res = sender.send_request(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Got {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
    .await
    .expect("the proxy answered in time")
}

fn get(addr: SocketAddr, path: &str) -> http::request::Builder {
    Request::get(path).header("host", addr.to_string())
}

/// A request body fed through a channel, to send it in steps.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// The next data frame of `body`, bounded in time.
async fn next_data(body: &mut Incoming) -> Option<Bytes> {
    for _ in 0..16 {
        let frame = tokio::time::timeout(WAIT, body.frame())
            .await
            .expect("a frame in time")?
            .expect("a frame, not an error");
        if let Ok(data) = frame.into_data() {
            return Some(data);
        }
    }
    None
}

/// The proxy's own answers: OAuth JSON, not cached, nothing of the
/// upstream in them.
fn assert_own_error(got: &Got, status: StatusCode, error: &str, upstream: SocketAddr) {
    assert_eq!(got.status, status, "{}", got.text());
    assert_eq!(got.headers["cache-control"], "no-store");
    assert_eq!(got.headers["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["error"], error);
    assert!(v["error_description"].is_string());
    let text = got.text().to_ascii_lowercase();
    for leak in [
        upstream.to_string(),
        upstream.port().to_string(),
        "127.0.0.1".into(),
        "hyper".into(),
        "connect".into(),
        "refused".into(),
        "tcp".into(),
        "os error".into(),
    ] {
        assert!(!text.contains(&leak), "{text} mentions {leak}");
    }
}

// -------------------------------------------------------------------- tests

#[tokio::test]
async fn streams_both_ways_frame_by_frame() {
    let proxy = forwarder_at(&config(echo_upstream().await, ""), Peer::Unknown).await;
    let (tx, rx) = mpsc::channel(4);
    let mut sender = connect(proxy).await;
    let req = Request::post("/echo")
        .header("host", "public.example")
        .body(ChannelBody(rx))
        .unwrap();
    let response = tokio::spawn(sender.send_request(req));
    tx.send(Bytes::from_static(b"chunk one")).await.unwrap();
    let res = tokio::time::timeout(WAIT, response)
        .await
        .expect("the response head in time")
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    // The first chunk comes back while the request body is still open:
    // neither direction is buffered.
    assert_eq!(next_data(&mut body).await.unwrap(), "chunk one");
    tx.send(Bytes::from_static(b"chunk two")).await.unwrap();
    assert_eq!(next_data(&mut body).await.unwrap(), "chunk two");
    drop(tx);
    assert_eq!(next_data(&mut body).await, None);
}

#[tokio::test]
async fn a_large_body_round_trips_intact() {
    let upstream = echo_upstream().await;
    let proxy = forwarder_at(
        &config(upstream, "max_body_bytes = 33554432"),
        Peer::Unknown,
    )
    .await;
    let big: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let big = Bytes::from(big);
    let got = send(
        proxy,
        Request::post("/upload")
            .header("host", "x")
            .body(Full::new(big.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body.len(), big.len());
    assert!(got.body == big, "the body came back changed");
}

#[tokio::test]
async fn hop_by_hop_fields_are_removed_both_ways() {
    let (upstream, mut seen) = recording_upstream(&[
        ("connection", "x-up-hop"),
        ("x-up-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-authenticate", "Basic"),
        ("x-up-end", "1"),
    ])
    .await;
    let proxy = forwarder_at(&config(upstream, ""), Peer::Unknown).await;
    let req = get(proxy, "/page?x=1")
        .header("connection", "x-down-hop, keep-alive")
        .header("x-down-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("trailer", "x-t")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("proxy-connection", "keep-alive")
        .header("x-down-end", "1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let got = send(proxy, req).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, "ok");
    for gone in ["x-up-hop", "keep-alive", "proxy-authenticate"] {
        assert!(!got.headers.contains_key(gone), "{gone} reached the client");
    }
    assert!(got
        .headers
        .get_all("connection")
        .iter()
        .all(|v| !v.to_str().unwrap().contains("x-up-hop")));
    assert_eq!(got.headers["x-up-end"], "1");

    let s = next_seen(&mut seen).await;
    assert_eq!(s.uri, "/page?x=1");
    for gone in [
        "x-down-hop",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(!s.headers.contains_key(gone), "{gone} reached the upstream");
    }
    assert!(s
        .headers
        .get_all("connection")
        .iter()
        .all(|v| !v.to_str().unwrap().contains("x-down-hop")));
    assert_eq!(s.headers["x-down-end"], "1");
}

#[tokio::test]
async fn host_is_the_clients_by_default() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, ""), Peer::Unknown).await;
    let req = Request::get("/")
        .header("host", "as.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(send(proxy, req).await.status, 200);
    assert_eq!(next_seen(&mut seen).await.headers["host"], "as.example");
}

#[tokio::test]
async fn host_is_the_upstreams_without_preserve_host() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, "preserve_host = false"), Peer::Unknown).await;
    let req = Request::get("/")
        .header("host", "as.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(send(proxy, req).await.status, 200);
    let s = next_seen(&mut seen).await;
    assert_eq!(s.headers["host"], upstream.to_string().as_str());
    // The client's host still reaches the upstream, as X-Forwarded-Host.
    assert_eq!(s.headers["x-forwarded-host"], "as.example");
}

#[tokio::test]
async fn the_upstream_path_prefix_comes_first() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = serve_proxy(
        Forwarder::from_config(&config_for(&format!("http://{upstream}/base/"), "")).unwrap(),
        Peer::Unknown,
    )
    .await;
    let req = get(proxy, "/a/b?c=d").body(Empty::<Bytes>::new()).unwrap();
    assert_eq!(send(proxy, req).await.status, 200);
    assert_eq!(next_seen(&mut seen).await.uri, "/base/a/b?c=d");
}

/// Forwarding fields a client made up, and an RFC 9440 certificate.
fn spoofed(addr: SocketAddr) -> Request<Empty<Bytes>> {
    let _ = addr;
    Request::get("/")
        .header("host", "as.example")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=203.0.113.9;proto=https")
        .header("client-cert", ":MIIB:")
        .header("client-cert-chain", ":MIIC:")
        .body(Empty::new())
        .unwrap()
}

/// META-16: `Host` and `X-Forwarded-*` from untrusted sources are not
/// believed; AUTH-24: nor is an RFC 9440 `Client-Cert`.
#[tokio::test]
async fn forwarding_fields_are_added_and_an_untrusted_peers_stripped() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, ""), Peer::Known { trusted: false }).await;
    assert_eq!(send(proxy, spoofed(proxy)).await.status, 200);
    let s = next_seen(&mut seen).await;
    let one = |name: &str| {
        let all: Vec<_> = s.headers.get_all(name).iter().collect();
        assert_eq!(all.len(), 1, "{name}: {all:?}");
        all[0].to_str().unwrap().to_owned()
    };
    assert_eq!(one("x-forwarded-for"), "127.0.0.1");
    assert_eq!(one("x-forwarded-proto"), "http");
    assert_eq!(one("x-forwarded-host"), "as.example");
    assert_eq!(one("forwarded"), "for=127.0.0.1;proto=http;host=as.example");
    assert!(!s.headers.contains_key("client-cert"));
    assert!(!s.headers.contains_key("client-cert-chain"));
}

/// META-16, AUTH-24: without the server's word, nothing is trusted.
#[tokio::test]
async fn without_connection_facts_the_client_is_untrusted() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, ""), Peer::Unknown).await;
    assert_eq!(send(proxy, spoofed(proxy)).await.status, 200);
    let s = next_seen(&mut seen).await;
    assert!(!s.headers.contains_key("x-forwarded-for"));
    assert_eq!(
        s.headers["forwarded"],
        "for=unknown;proto=http;host=as.example"
    );
    assert_eq!(s.headers["x-forwarded-host"], "as.example");
    assert!(!s.headers.contains_key("client-cert"));
}

/// AUTH-24: a trusted front proxy's `Client-Cert` reaches the upstream.
#[tokio::test]
async fn a_trusted_peers_forwarding_fields_are_kept_and_appended_to() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, ""), Peer::Known { trusted: true }).await;
    assert_eq!(send(proxy, spoofed(proxy)).await.status, 200);
    let s = next_seen(&mut seen).await;
    assert_eq!(s.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(
        s.headers["forwarded"],
        "for=203.0.113.9;proto=https, for=127.0.0.1;proto=http;host=as.example"
    );
    // What the front proxy said the client used stays.
    assert_eq!(s.headers["x-forwarded-proto"], "https");
    assert_eq!(s.headers["x-forwarded-host"], "evil.example");
    assert_eq!(s.headers["client-cert"], ":MIIB:");
    assert_eq!(s.headers["client-cert-chain"], ":MIIC:");
}

#[tokio::test]
async fn an_upstream_that_is_down_is_502() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let proxy = forwarder_at(&config(closed, ""), Peer::Unknown).await;
    let got = send(proxy, get(proxy, "/").body(Empty::<Bytes>::new()).unwrap()).await;
    assert_own_error(
        &got,
        StatusCode::BAD_GATEWAY,
        "temporarily_unavailable",
        closed,
    );
    let forwarder = Forwarder::from_config(&config(closed, "")).unwrap();
    let err = forwarder.probe().await.unwrap_err();
    assert!(!err.contains(&closed.port().to_string()), "{err}");
}

#[tokio::test]
async fn an_upstream_that_resets_is_502() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..4 {
            if let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        }
    });
    let proxy = forwarder_at(&config(upstream, ""), Peer::Unknown).await;
    let got = send(proxy, get(proxy, "/").body(Empty::<Bytes>::new()).unwrap()).await;
    assert_own_error(
        &got,
        StatusCode::BAD_GATEWAY,
        "temporarily_unavailable",
        upstream,
    );
}

#[tokio::test]
async fn a_slow_upstream_is_504() {
    let upstream = serve(|_req: Request<Incoming>| async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        Response::new(full("late"))
    })
    .await;
    let proxy = forwarder_at(
        &config(upstream, "upstream_timeout_secs = 1"),
        Peer::Unknown,
    )
    .await;
    let got = send(proxy, get(proxy, "/").body(Empty::<Bytes>::new()).unwrap()).await;
    assert_own_error(
        &got,
        StatusCode::GATEWAY_TIMEOUT,
        "temporarily_unavailable",
        upstream,
    );
}

#[tokio::test]
async fn probe_accepts_any_http_answer() {
    let upstream = serve(|_req: Request<Incoming>| async {
        let mut res = Response::new(full("no"));
        *res.status_mut() = StatusCode::NOT_FOUND;
        res
    })
    .await;
    let forwarder = Forwarder::from_config(&config(upstream, "")).unwrap();
    forwarder.probe().await.unwrap();
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_413_before_the_upstream() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, "max_body_bytes = 1024"), Peer::Unknown).await;
    let req = Request::post("/")
        .header("host", "x")
        .body(Full::new(Bytes::from(vec![b'a'; 2048])))
        .unwrap();
    let got = send(proxy, req).await;
    assert_own_error(
        &got,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        upstream,
    );
    assert!(seen.try_recv().is_err(), "the upstream was contacted");
    // At the limit is fine.
    let req = Request::post("/")
        .header("host", "x")
        .body(Full::new(Bytes::from(vec![b'a'; 1024])))
        .unwrap();
    assert_eq!(send(proxy, req).await.status, 200);
    assert_eq!(next_seen(&mut seen).await.body.len(), 1024);
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_413() {
    let (upstream, _seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, "max_body_bytes = 1024"), Peer::Unknown).await;
    let (tx, rx) = mpsc::channel(4);
    let req = Request::post("/")
        .header("host", "x")
        .body(ChannelBody(rx))
        .unwrap();
    let feeder = tokio::spawn(async move {
        for _ in 0..4 {
            if tx.send(Bytes::from(vec![b'a'; 600])).await.is_err() {
                break;
            }
        }
    });
    let got = send(proxy, req).await;
    feeder.abort();
    assert_own_error(
        &got,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        upstream,
    );
}

#[tokio::test]
async fn upgrade_and_connect_are_501() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, ""), Peer::Unknown).await;
    let ws = get(proxy, "/socket")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let got = send(proxy, ws).await;
    assert_own_error(
        &got,
        StatusCode::NOT_IMPLEMENTED,
        "invalid_request",
        upstream,
    );
    let only_option = get(proxy, "/socket")
        .header("connection", "keep-alive, upgrade")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(
        send(proxy, only_option).await.status,
        StatusCode::NOT_IMPLEMENTED
    );
    let connect = Request::connect("127.0.0.1:22")
        .header("host", "127.0.0.1:22")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(
        send(proxy, connect).await.status,
        StatusCode::NOT_IMPLEMENTED
    );
    assert!(seen.try_recv().is_err(), "the upstream was contacted");
}

#[tokio::test]
async fn two_hosts_are_400() {
    // RFC 9112 §3.2: a request with more than one Host is refused.
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, ""), Peer::Unknown).await;
    let req = Request::get("/")
        .header("host", "as.example")
        .header("host", "evil.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let got = send(proxy, req).await;
    assert_own_error(&got, StatusCode::BAD_REQUEST, "invalid_request", upstream);
    assert!(seen.try_recv().is_err(), "the upstream was contacted");
}

#[tokio::test]
async fn an_http2_client_reaches_an_http1_upstream() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, ""), Peer::Known { trusted: false }).await;
    let got = tokio::time::timeout(WAIT, async {
        let stream = TcpStream::connect(proxy).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = Request::post("http://as.example/token")
            .body(Full::new(Bytes::from_static(b"a=b")))
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.version(), Version::HTTP_2);
        let status = res.status();
        (status, res.into_body().collect().await.unwrap().to_bytes())
    })
    .await
    .unwrap();
    assert_eq!(got, (StatusCode::OK, Bytes::from_static(b"ok")));
    let s = next_seen(&mut seen).await;
    assert_eq!(s.version, Version::HTTP_11);
    assert_eq!(s.uri, "/token");
    // HTTP/2 has no Host field: the client's :authority is the host.
    assert_eq!(s.headers["host"], "as.example");
    assert_eq!(s.headers["x-forwarded-host"], "as.example");
    assert_eq!(s.body, "a=b");
}

#[tokio::test]
async fn an_asterisk_target_is_400_not_forwarded() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, ""), Peer::Unknown).await;
    let req = Request::options("*")
        .header("host", "as.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let got = send(proxy, req).await;
    assert_own_error(&got, StatusCode::BAD_REQUEST, "invalid_request", upstream);
    assert!(seen.try_recv().is_err(), "the upstream was contacted");
}

#[tokio::test]
async fn an_absolute_form_target_goes_to_the_upstream_only() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, ""), Peer::Unknown).await;
    let req = Request::get("http://elsewhere.example/x?y=1")
        .header("host", "elsewhere.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(send(proxy, req).await.status, 200);
    assert_eq!(next_seen(&mut seen).await.uri, "/x?y=1");
}

// --------------------------------------------------------------- forward_as

const CLIENT: &str = "app";
const SECRET: &str = "app-secret";
const REDIRECT: &str = "https://app.example/cb";

/// The Forwarder behind the real `ParLayer`, with `forward_as` as given.
async fn par_proxy_at(upstream: SocketAddr, forward_as: &str) -> SocketAddr {
    let config = config(upstream, &format!("[par]\nforward_as = \"{forward_as}\"\n"));
    let clients = tower_par::StaticClients::new()
        .with_client(
            tower_par::Client::new(CLIENT, tower_par::AuthMethod::ClientSecretBasic)
                .redirect_uri(REDIRECT),
            Some(SECRET),
        )
        .unwrap();
    let layer = tower_par::ParLayer::new(clients).build().unwrap();
    let svc = layer.layer(Forwarder::from_config(&config).unwrap());
    serve_proxy(svc, Peer::Known { trusted: false }).await
}

/// Pushes an authorization request with a `state` of `state_len` bytes,
/// redeems it at `/authorize`, and returns what the upstream received.
async fn push_and_redeem(forward_as: &str, state_len: usize) -> (Seen, String) {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = par_proxy_at(upstream, forward_as).await;
    // authorization_details is JSON; `state` carries the bulk so that the
    // form needs no percent-encoding to compare.
    let state: String = (0..state_len)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let form = format!(
        "response_type=code&redirect_uri={}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
         &code_challenge_method=S256&authorization_details=%5B%7B%22type%22%3A%22x%22%7D%5D&state={state}",
        "https%3A%2F%2Fapp.example%2Fcb"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT}:{SECRET}"));
    let push = Request::post("/par")
        .header("host", "as.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Basic {basic}"))
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    let pushed = send(proxy, push).await;
    assert_eq!(pushed.status, 201, "{}", pushed.text());
    let v: serde_json::Value = serde_json::from_slice(&pushed.body).unwrap();
    let request_uri = v["request_uri"].as_str().unwrap().to_owned();
    assert!(seen.try_recv().is_err(), "the push reached the upstream");

    let redeem = Request::get(format!(
        "/authorize?client_id={CLIENT}&request_uri={request_uri}"
    ))
    .header("host", "as.example")
    .body(Empty::<Bytes>::new())
    .unwrap();
    let got = send(proxy, redeem).await;
    assert_eq!(got.status, 200, "{}", got.text());
    (next_seen(&mut seen).await, state)
}

fn form_has(form: &str, name: &str, value: &str) -> bool {
    form.split('&')
        .any(|pair| pair.strip_prefix(name).and_then(|r| r.strip_prefix('=')) == Some(value))
}

#[tokio::test]
async fn auto_posts_a_rebuilt_request_longer_than_max_upstream_url() {
    let (s, state) = push_and_redeem("auto", 40 * 1024).await;
    assert_eq!(s.method, Method::POST);
    assert_eq!(s.uri, "/authorize");
    assert_eq!(
        s.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        s.headers["content-length"],
        s.body.len().to_string().as_str()
    );
    let form = std::str::from_utf8(&s.body).unwrap();
    assert!(form_has(form, "state", &state), "the state was cut");
    assert!(form_has(form, "client_id", CLIENT));
    assert!(form_has(form, "response_type", "code"));
    // PAR-32: only the stored parameters, never the request_uri.
    assert!(!form.contains("request_uri"), "{}", &form[..80]);
}

#[tokio::test]
async fn post_always_posts_the_rebuilt_request() {
    let (s, state) = push_and_redeem("post", 16).await;
    assert_eq!(s.method, Method::POST);
    assert_eq!(s.uri, "/authorize");
    assert!(form_has(
        std::str::from_utf8(&s.body).unwrap(),
        "state",
        &state
    ));
}

#[tokio::test]
async fn auto_keeps_a_short_rebuilt_request_a_get() {
    let (s, state) = push_and_redeem("auto", 16).await;
    assert_eq!(s.method, Method::GET);
    let (path, query) = s.uri.split_once('?').unwrap();
    assert_eq!(path, "/authorize");
    assert!(form_has(query, "state", &state));
    assert!(!query.contains("request_uri"), "PAR-32");
    assert!(s.body.is_empty());
}

#[tokio::test]
async fn get_always_gets_even_a_long_rebuilt_request() {
    let (s, state) = push_and_redeem("get", 40 * 1024).await;
    assert_eq!(s.method, Method::GET);
    let (path, query) = s.uri.split_once('?').unwrap();
    assert_eq!(path, "/authorize");
    assert!(form_has(query, "state", &state));
}

#[tokio::test]
async fn a_plain_long_get_is_never_turned_into_a_post() {
    // Only requests the layer rebuilt from a pushed one are converted.
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(
        &config(upstream, "[par]\nforward_as = \"post\"\n"),
        Peer::Unknown,
    )
    .await;
    let long = format!("/authorize?state={}", "a".repeat(10_000));
    let got = send(
        proxy,
        get(proxy, &long).body(Empty::<Bytes>::new()).unwrap(),
    )
    .await;
    assert_eq!(got.status, 200);
    let s = next_seen(&mut seen).await;
    assert_eq!(s.method, Method::GET);
    assert_eq!(s.uri, long);
}

#[test]
fn bad_upstreams_are_refused() {
    for bad in [
        "ftp://127.0.0.1",
        "127.0.0.1:9000",
        "http://u:p@127.0.0.1",
        "http://127.0.0.1/?q=1",
        "not a url",
    ] {
        let config = config_for(bad, "");
        assert!(Forwarder::from_config(&config).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn upstream_responses_are_counted_by_class() {
    // The one global recorder of this test binary; other tests add to it.
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("no other recorder in this test binary");
    let (upstream, _seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, ""), Peer::Unknown).await;
    assert_eq!(
        send(proxy, get(proxy, "/").body(Empty::<Bytes>::new()).unwrap())
            .await
            .status,
        200
    );
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let down = forwarder_at(&config(closed, ""), Peer::Unknown).await;
    assert_eq!(
        send(down, get(down, "/").body(Empty::<Bytes>::new()).unwrap())
            .await
            .status,
        502
    );
    let text = handle.render();
    for line in [
        "par_proxy_upstream_responses_total{class=\"2xx\"}",
        "par_proxy_upstream_responses_total{class=\"error\"}",
        "par_proxy_upstream_duration_seconds_count{class=\"2xx\"}",
        "par_proxy_upstream_duration_seconds_count{class=\"error\"}",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

// ------------------------------------------------------------ https upstream

/// A recording HTTPS upstream on 127.0.0.1 offering `h2` and `http/1.1`
/// by ALPN, its certificate issued by a CA made here (returned as DER).
async fn tls_upstream() -> (SocketAddr, Vec<u8>, mpsc::Receiver<Seen>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));

    let (tx, rx) = mpsc::channel(16);
    let handler = recorder(tx, &[]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(TokioIo::new(stream), svc)
                .await;
            });
        }
    });
    (addr, ca.der().to_vec(), rx)
}

#[tokio::test]
async fn an_https_upstream_gets_http2_through_alpn() {
    let (upstream, ca, mut seen) = tls_upstream().await;
    let forwarder = Forwarder::from_config(&config_for(&format!("https://{upstream}"), ""))
        .unwrap()
        .with_upstream_roots([rustls_pki_types::CertificateDer::from(ca)])
        .unwrap();
    forwarder.probe().await.unwrap();
    let _probe = next_seen(&mut seen).await;
    let proxy = serve_proxy(forwarder, Peer::Known { trusted: false }).await;
    let req = Request::post("/token?x=1")
        .header("host", "as.example")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"grant_type=x")))
        .unwrap();
    let got = send(proxy, req).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body, "ok");
    let s = next_seen(&mut seen).await;
    assert_eq!(s.version, Version::HTTP_2);
    assert_eq!(s.method, Method::POST);
    assert!(s.uri.ends_with("/token?x=1"), "{}", s.uri);
    assert_eq!(s.headers["host"], "as.example");
    assert_eq!(
        s.headers["forwarded"],
        "for=127.0.0.1;proto=http;host=as.example"
    );
    assert_eq!(s.body, "grant_type=x");
}

#[tokio::test]
async fn an_https_upstream_outside_the_trusted_roots_is_502() {
    let (upstream, _ca, mut seen) = tls_upstream().await;
    // The webpki roots do not include the test CA.
    let config = config_for(&format!("https://{upstream}"), "");
    let proxy = forwarder_at(&config, Peer::Unknown).await;
    let got = send(proxy, get(proxy, "/").body(Empty::<Bytes>::new()).unwrap()).await;
    assert_own_error(
        &got,
        StatusCode::BAD_GATEWAY,
        "temporarily_unavailable",
        upstream,
    );
    assert!(
        seen.try_recv().is_err(),
        "the request reached an unverified upstream"
    );
}

#[tokio::test]
async fn upstream_connections_are_pooled() {
    // An upstream that counts the connections it accepts.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let (count_tx, mut count_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = count_tx.send(());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(full("ok")))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let proxy = forwarder_at(&config(upstream, ""), Peer::Unknown).await;
    for _ in 0..3 {
        let got = send(proxy, get(proxy, "/").body(Empty::<Bytes>::new()).unwrap()).await;
        assert_eq!(got.status, 200);
    }
    let mut connections = 0;
    while count_rx.try_recv().is_ok() {
        connections += 1;
    }
    // Usually one; the pool gets a connection back asynchronously, so
    // only reuse itself is asserted.
    assert!(
        (1..3).contains(&connections),
        "three requests in a row opened {connections} upstream connections"
    );
}

// ------------------------------------------ what the upstream must not see

/// Authorization request parameters of a plain (not pushed) request.
const PLAIN_AUTHORIZE: &str = "client_id=app&response_type=code\
    &redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
    &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";

/// Paths the upstream would resolve out of its prefix, or read as a host.
fn escaping_paths() -> Vec<String> {
    let q = PLAIN_AUTHORIZE;
    vec![
        format!("/../as/authorize?{q}"),
        format!("/x/../../as/authorize?{q}"),
        format!("/%2e%2e/as/authorize?{q}"),
        format!("/%2E./as/authorize?{q}"),
        format!("/.%2e/as/authorize?{q}"),
        format!("/..;/as/authorize?{q}"),
        format!("/..%2fas/authorize?{q}"),
        format!("/%2e%2e%2Fas/authorize?{q}"),
        "/../admin".into(),
        "/./admin".into(),
        "/a/%2e/b".into(),
        "/..%5cadmin".into(),
        "/..%5Cadmin".into(),
        "/..\\admin".into(),
        "/\\evil.example/x".into(),
        "//evil.example/x".into(),
    ]
}

/// A dot segment, a backslash or a leading `//` is the forwarder's own
/// 400: the upstream behind a path prefix never sees it.
#[tokio::test]
async fn paths_that_leave_the_upstream_prefix_are_400_not_forwarded() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(
        &config_for(&format!("http://{upstream}/as"), ""),
        Peer::Unknown,
    )
    .await;
    for path in escaping_paths() {
        let got = send(
            proxy,
            get(proxy, &path).body(Empty::<Bytes>::new()).unwrap(),
        )
        .await;
        assert_own_error(&got, StatusCode::BAD_REQUEST, "invalid_request", upstream);
        assert!(seen.try_recv().is_err(), "{path} reached the upstream");
    }
    // Dots inside a segment, and an empty segment further on, are names.
    for (path, upstream_path) in [
        ("/.well-known/x", "/as/.well-known/x"),
        ("/a..b/...", "/as/a..b/..."),
        ("/a//b", "/as/a//b"),
    ] {
        let got = send(proxy, get(proxy, path).body(Empty::<Bytes>::new()).unwrap()).await;
        assert_eq!(got.status, 200, "{path}: {}", got.text());
        assert_eq!(next_seen(&mut seen).await.uri, upstream_path);
    }
}

/// `require_par`: behind a path prefix, an authorization request that
/// climbs out of it past the layer's `/authorize` matching is still
/// refused, and the upstream is never called.
#[tokio::test]
async fn require_par_cannot_be_bypassed_through_the_upstream_prefix() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let config = config_for(&format!("http://{upstream}/as"), "");
    let clients = tower_par::StaticClients::new()
        .with_client(
            tower_par::Client::new(CLIENT, tower_par::AuthMethod::ClientSecretBasic)
                .redirect_uri(REDIRECT),
            Some(SECRET),
        )
        .unwrap();
    let layer = tower_par::ParLayer::new(clients)
        .require_par(true)
        .build()
        .unwrap();
    let svc = layer.layer(Forwarder::from_config(&config).unwrap());
    let proxy = serve_proxy(svc, Peer::Known { trusted: false }).await;

    // The direct way is the layer's refusal.
    let direct = format!("/authorize?{PLAIN_AUTHORIZE}");
    let got = send(
        proxy,
        get(proxy, &direct).body(Empty::<Bytes>::new()).unwrap(),
    )
    .await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST, "{}", got.text());
    for path in escaping_paths() {
        let got = send(
            proxy,
            get(proxy, &path).body(Empty::<Bytes>::new()).unwrap(),
        )
        .await;
        assert_eq!(
            got.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            got.text()
        );
        assert_eq!(got.headers["cache-control"], "no-store", "{path}");
    }
    assert!(seen.try_recv().is_err(), "the upstream was called");
}

/// Fields named with `_` (`Client_Cert`, which CGI-style servers read as
/// `Client-Cert`) never reach the upstream, even from a trusted proxy;
/// from an untrusted peer neither do `X-Real-IP`, `X-Original-URL` and
/// the other forwarding fields.
#[tokio::test]
async fn underscored_fields_and_an_untrusted_peers_other_forwarding_fields_are_dropped() {
    const OTHER_FORWARDING: [&str; 19] = [
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-ssl",
        "x-forwarded-scheme",
        "x-forwarded-server",
        "x-real-ip",
        "x-original-url",
        "x-rewrite-url",
        "x-original-host",
        "x-forwarded-uri",
        "front-end-https",
        "x-client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "x-cluster-client-ip",
        "fastly-client-ip",
        "x-forwarded-protocol",
        "x-url-scheme",
        "x-host",
    ];
    let request = || {
        let mut req = Request::get("/userinfo")
            .header("host", "as.example")
            .header("Client_Cert", ":AAAA:")
            .header("X_Forwarded_For", "203.0.113.9")
            .header("X_Forwarded_Proto", "https")
            .header("x_custom", "1")
            .header("x-custom", "2");
        for name in OTHER_FORWARDING {
            req = req.header(name, "/evil");
        }
        req.body(Empty::<Bytes>::new()).unwrap()
    };
    for trusted in [false, true] {
        let (upstream, mut seen) = recording_upstream(&[]).await;
        let proxy = forwarder_at(&config(upstream, ""), Peer::Known { trusted }).await;
        assert_eq!(send(proxy, request()).await.status, 200);
        let s = next_seen(&mut seen).await;
        let underscored: Vec<_> = s
            .headers
            .keys()
            .filter(|n| n.as_str().contains('_'))
            .collect();
        assert!(underscored.is_empty(), "trusted {trusted}: {underscored:?}");
        assert_eq!(s.headers["x-custom"], "2");
        assert_eq!(s.headers["x-forwarded-for"], "127.0.0.1");
        for name in OTHER_FORWARDING {
            assert_eq!(
                s.headers.contains_key(name),
                trusted,
                "trusted {trusted}: {name}"
            );
        }
    }
}

/// The layer's flow-binding cookies stay with the layer; the other
/// cookies reach the upstream as sent, in order.
#[tokio::test]
async fn flow_cookies_are_removed_from_cookie() {
    let (upstream, mut seen) = recording_upstream(&[]).await;
    let proxy = forwarder_at(&config(upstream, ""), Peer::Unknown).await;
    let req = get(proxy, "/authorize")
        .header(
            "cookie",
            "session=abc; __Host-par_flow_AbCdEfGhIjKl=flow-secret-1; lang=en",
        )
        .header("cookie", "par_flow_AbCdEfGhIjKl=flow-secret-2")
        .header("cookie", "theme=\"dark\";other=1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(send(proxy, req).await.status, 200);
    let s = next_seen(&mut seen).await;
    let cookies: Vec<_> = s
        .headers
        .get_all("cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["session=abc; lang=en", "theme=\"dark\";other=1"]);

    let req = get(proxy, "/authorize")
        .header("cookie", "__Host-par_flow_AbCdEfGhIjKl=flow-secret")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(send(proxy, req).await.status, 200);
    assert!(!next_seen(&mut seen).await.headers.contains_key("cookie"));
}
