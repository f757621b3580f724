//! The layer behind a real hyper 1.x server on a loopback socket, driven by
//! a real HTTP client: push, redeem, reuse, over HTTP/1.1 and HTTP/2, and
//! with hand-written chunked requests.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::util::BoxCloneService;
use tower::{service_fn, ServiceExt};
use tower_par::{ParLayer, ParRequestBody, PushedAuthorization};

use support::*;

type LegacyRequest = Request<ParRequestBody<Incoming>>;
type Legacy = BoxCloneService<LegacyRequest, Response<Full<Bytes>>, Infallible>;

/// A PAR-unaware authorization server: `/authorize` redirects to the
/// requested `redirect_uri` with a fresh code and the `state`; `/token`
/// echoes its body; `/health` answers `ok`.
fn legacy(codes: Arc<AtomicUsize>) -> Legacy {
    BoxCloneService::new(service_fn(move |req: LegacyRequest| {
        let codes = codes.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect().await.expect("request body").to_bytes();
            let pushed_by = parts
                .extensions
                .get::<PushedAuthorization>()
                .map_or("-".to_owned(), |p| p.client_id().to_owned());
            let mut res = Response::builder().header("x-pushed-by", pushed_by);
            let res = match parts.uri.path() {
                "/authorize" => {
                    let form = if parts.method == Method::POST {
                        let declared = parts
                            .headers
                            .get(header::CONTENT_LENGTH)
                            .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned());
                        res = res
                            .header("x-received-content-length", declared)
                            .header("x-received-body-length", bytes.len());
                        bytes.clone()
                    } else {
                        Bytes::from(parts.uri.query().unwrap_or_default().to_owned())
                    };
                    let params: Vec<(String, String)> =
                        serde_urlencoded::from_bytes(&form).unwrap_or_default();
                    let param = |name: &str| {
                        params
                            .iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, v)| v.clone())
                    };
                    match param("redirect_uri") {
                        Some(redirect) => {
                            let n = codes.fetch_add(1, Ordering::SeqCst) + 1;
                            let query = serde_urlencoded::to_string([
                                ("code", format!("code-{n}")),
                                ("state", param("state").unwrap_or_default()),
                            ])
                            .unwrap();
                            res.status(StatusCode::FOUND)
                                .header(header::LOCATION, format!("{redirect}?{query}"))
                                .body(Full::default())
                        }
                        None => res
                            .status(StatusCode::BAD_REQUEST)
                            .body(Full::new(Bytes::from_static(b"legacy: no redirect_uri"))),
                    }
                }
                "/token" => res.body(Full::new(bytes)),
                "/health" => res.body(Full::new(Bytes::from_static(b"ok"))),
                _ => res.status(StatusCode::NOT_FOUND).body(Full::default()),
            };
            Ok::<_, Infallible>(res.unwrap())
        }
    }))
}

/// Serves `layer` over [`legacy`] on `127.0.0.1:0` (HTTP/1.1 and h2c).
async fn serve(layer: ParLayer) -> (SocketAddr, Arc<AtomicUsize>) {
    let codes = Arc::new(AtomicUsize::new(0));
    let svc = tower::Layer::layer(&layer, legacy(codes.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, codes)
}

fn location(res: &Response<Incoming>) -> &str {
    res.headers()[header::LOCATION].to_str().unwrap()
}

async fn push_redeem_reuse(http2: bool) {
    let (addr, codes) = serve(layer()).await;
    let http = client(addr, http2);

    // Push with client_secret_basic (RFC 9126 §2).
    let res = send(&http, push_request(Some(&c_basic()), &c_form())).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let created: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let request_uri = created["request_uri"].as_str().unwrap().to_owned();
    assert_eq!(created["expires_in"], 60);

    // Redeem: the legacy endpoint redirects to the pushed redirect_uri.
    let res = send(&http, get(&authorize_uri(C_ID, &request_uri))).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(location(&res), "https://c.example/cb?code=code-1&state=s1");
    assert_eq!(res.headers()["x-pushed-by"], "C");

    // Reuse: refused by the layer, nothing reaches the legacy endpoint.
    let res = send(&http, get(&authorize_uri(C_ID, &request_uri))).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_uri",
        NOT_FOUND,
    )
    .await;
    assert_eq!(codes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn push_then_authorize_redirects_with_code_and_reuse_is_refused_http1_t72_t76() {
    push_redeem_reuse(false).await;
}

#[tokio::test]
async fn push_then_authorize_redirects_with_code_and_reuse_is_refused_http2_t72_t76() {
    push_redeem_reuse(true).await;
}

#[tokio::test]
async fn front_channel_extras_do_not_reach_the_legacy_endpoint_over_tcp_t79() {
    let (addr, _) = serve(layer()).await;
    let http = client(addr, false);
    let request_uri = push_c(&http).await;
    let uri = format!(
        "{}&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=evil",
        authorize_uri(C_ID, &request_uri)
    );
    let res = send(&http, get(&uri)).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(location(&res), "https://c.example/cb?code=code-1&state=s1");
}

#[tokio::test]
async fn post_redemption_over_tcp_delivers_the_stored_body_with_its_length_oa2() {
    let (addr, _) = serve(layer()).await;
    let http = client(addr, false);
    let request_uri = push_c(&http).await;
    let body = format!("client_id=C&request_uri={}", form_encode(&request_uri));
    let res = send(&http, post_form("/authorize", body)).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(location(&res), "https://c.example/cb?code=code-1&state=s1");
    let len = c_form().len().to_string();
    assert_eq!(res.headers()["x-received-content-length"], len.as_str());
    assert_eq!(res.headers()["x-received-body-length"], len.as_str());
}

#[tokio::test]
async fn pass_through_over_tcp_streams_bodies_unchanged() {
    let (addr, _) = serve(layer()).await;
    let http = client(addr, false);
    // Larger than the layer's PAR body limit: pass-through is not limited.
    let big: String = (0..100_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let body = format!("grant_type=authorization_code&code=x&pad={big}");
    let res = send(&http, post_form("/token", body.clone())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-pushed-by"], "-");
    let echoed = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed, body.as_bytes());

    let res = send(&http, get("/health")).await;
    assert_eq!(body_string(res).await, "ok");

    // A classic authorization request still works when PAR is optional.
    let uri = format!(
        "/authorize?response_type=code&client_id=C&redirect_uri={}&state=classic",
        form_encode(C_REDIRECT)
    );
    let res = send(&http, get(&uri)).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        location(&res),
        "https://c.example/cb?code=code-1&state=classic"
    );
    assert_eq!(res.headers()["x-pushed-by"], "-");
}

#[tokio::test]
async fn require_par_over_tcp_refuses_the_classic_request_t80() {
    let (addr, codes) = serve(layer().require_par(true)).await;
    let http = client(addr, false);
    let uri = format!(
        "/authorize?response_type=code&client_id=C&redirect_uri={}&state=classic",
        form_encode(C_REDIRECT)
    );
    let res = send(&http, get(&uri)).await;
    assert_html_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "pushed authorization request required",
    )
    .await;
    assert_eq!(codes.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redemptions_over_tcp_issue_one_code_t82() {
    let (addr, codes) = serve(layer()).await;
    let http = client(addr, false);
    let request_uri = push_c(&http).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let http = http.clone();
            let uri = authorize_uri(C_ID, &request_uri);
            tokio::spawn(async move { http.oneshot(get(&uri)).await.unwrap().status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let found = statuses.iter().filter(|s| **s == StatusCode::FOUND).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    assert_eq!((found, refused), (1, 31));
    assert_eq!(codes.load(Ordering::SeqCst), 1);
}

/// Sends raw bytes on a fresh connection and reads until the server closes.
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    String::from_utf8(out).unwrap()
}

/// A chunked HTTP/1.1 request with `Connection: close`, `body` in two chunks.
fn chunked(head: &str, body: &str) -> Vec<u8> {
    let (a, b) = body.split_at(body.len() / 2);
    format!(
        "{head}\r\nHost: localhost\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    )
    .into_bytes()
}

fn header_value<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next().unwrap();
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn chunked_push_and_chunked_post_redemption_over_a_raw_socket() {
    let (addr, _) = serve(layer()).await;

    let head = format!("POST /par HTTP/1.1\r\nAuthorization: {}", c_basic());
    let response = raw_exchange(addr, &chunked(&head, &c_form())).await;
    assert!(response.starts_with("HTTP/1.1 201 "), "{response}");
    assert_eq!(header_value(&response, "cache-control"), Some("no-store"));
    let body = response.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(
        header_value(&response, "content-length"),
        Some(body.len().to_string().as_str())
    );
    let created: serde_json::Value = serde_json::from_str(body).unwrap();
    let request_uri = created["request_uri"].as_str().unwrap();

    let form = format!("client_id=C&request_uri={}", form_encode(request_uri));
    let response = raw_exchange(addr, &chunked("POST /authorize HTTP/1.1", &form)).await;
    assert!(response.starts_with("HTTP/1.1 302 "), "{response}");
    assert_eq!(
        header_value(&response, "location"),
        Some("https://c.example/cb?code=code-1&state=s1")
    );
    // The stored request reached the legacy endpoint with a Content-Length
    // instead of the client's chunked framing.
    let len = c_form().len().to_string();
    assert_eq!(
        header_value(&response, "x-received-content-length"),
        Some(len.as_str())
    );
    assert_eq!(
        header_value(&response, "x-received-body-length"),
        Some(len.as_str())
    );
}

/// Reads one HTTP/1.1 response (head, then `Content-Length` bytes of body)
/// or whatever arrives before the server closes.
#[cfg(feature = "tokio")]
async fn read_response(reader: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let complete = std::str::from_utf8(&out).ok().and_then(|text| {
            let (_, body) = text.split_once("\r\n\r\n")?;
            let len: usize = header_value(text, "content-length")?.parse().ok()?;
            Some(body.len() >= len)
        });
        if complete == Some(true) {
            break;
        }
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// PAR-20: a PAR body that trickles in (`Content-Length: 100`, a byte every
/// 100 ms, so 10 s in all) is answered `408 invalid_request` with
/// `Connection: close` once the configured 300 ms deadline passes, instead
/// of holding the connection until the client is done. The deadline needs
/// the `tokio` feature.
#[cfg(feature = "tokio")]
#[tokio::test]
async fn par20_stalled_push_body_gets_408_and_the_connection_is_closed() {
    let head = format!(
        "POST /par HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\
         Content-Type: {FORM}\r\nContent-Length: 100\r\n\r\n",
        c_basic()
    );
    let response = stalled_body_answer(&head).await;
    let body = response.split_once("\r\n\r\n").unwrap().1;
    let error: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(error["error"], "invalid_request");
    assert_eq!(
        error["error_description"],
        "request body not received in time"
    );
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn a_stalled_authorization_form_gets_408_and_the_connection_is_closed() {
    let head = format!(
        "POST /authorize HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\
         Content-Type: {FORM}\r\nContent-Length: 100\r\n\r\n"
    );
    let response = stalled_body_answer(&head).await;
    assert!(
        response.contains("request body not received in time"),
        "{response}"
    );
}

/// Sends `head`, then its 100-byte body one byte every 100 ms, to a layer
/// with a 300 ms body deadline; returns the answer after checking it is a
/// 408 that closes the connection, without the wrapped service.
#[cfg(feature = "tokio")]
async fn stalled_body_answer(head: &str) -> String {
    let layer = layer()
        .par_body_timeout(std::time::Duration::from_millis(300))
        .unwrap();
    let (addr, codes) = serve(layer).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for b in b"response_type=code&".iter().cycle().take(100) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if writer.write_all(&[*b]).await.is_err() {
                return;
            }
        }
    });
    // Well before the 10 s the body would take.
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        read_response(&mut reader),
    )
    .await
    .expect("no answer while the body was still arriving");
    trickle.abort();
    assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
    assert_eq!(header_value(&response, "connection"), Some("close"));
    // The server closes its side: nothing more arrives on this connection.
    let rest = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reader.read(&mut [0u8; 64]),
    )
    .await
    .expect("connection left open");
    assert!(matches!(rest, Ok(0) | Err(_)), "{rest:?}");
    assert_eq!(codes.load(Ordering::SeqCst), 0);
    response
}
