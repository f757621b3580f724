//! `tracing` events and `metrics` for push, redeem, complete and reject,
//! never carrying parameter values, secrets or the full `request_uri`.

#![cfg(all(feature = "tracing", feature = "metrics"))]

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{Layer, ServiceExt};
use tower_par::{AuthMethod, Client, ParLayer, ParRequestBody, StaticClients};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const CB: &str = "https://c.example/cb";

#[tokio::test]
async fn events_and_metrics_without_values_or_secrets() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let clients = StaticClients::new()
        .with_client(
            Client::new("app", AuthMethod::ClientSecretBasic).redirect_uri(CB),
            Some("hunter2-secret"),
        )
        .unwrap();
    let svc = ParLayer::new(clients).layer(tower::service_fn(
        |_: Request<ParRequestBody<Full<Bytes>>>| async {
            let res = Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, format!("{CB}?code=c&state=S7"))
                .body(Full::<Bytes>::default())
                .unwrap();
            Ok::<_, Infallible>(res)
        },
    ));

    let push = |secret: &str| {
        Request::post("/par")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(
                header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(format!("app:{secret}"))),
            )
            .body(Full::new(Bytes::from_static(
                b"response_type=code&state=S7&login_hint=alice%40example.com",
            )))
            .unwrap()
    };
    let res = svc.clone().oneshot(push("hunter2-secret")).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let request_uri = json["request_uri"].as_str().unwrap().to_owned();
    let authorize = || {
        let q = serde_urlencoded::to_string([
            ("client_id", "app"),
            ("request_uri", request_uri.as_str()),
        ])
        .unwrap();
        Request::get(format!("/authorize?{q}"))
            .body(Full::default())
            .unwrap()
    };
    assert_eq!(
        svc.clone().oneshot(authorize()).await.unwrap().status(),
        StatusCode::FOUND
    );
    assert_eq!(
        svc.clone().oneshot(authorize()).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        svc.clone().oneshot(push("wrong")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for event in [
        "pushed authorization request stored",
        "request_uri redeemed",
        "flow completed",
        "request rejected",
        "client authentication failed",
    ] {
        assert!(text.contains(event), "missing '{event}' in:\n{text}");
    }
    let reference = request_uri.rsplit(':').next().unwrap();
    for secret in ["alice", "example.com", "S7", "hunter2", "wrong", reference] {
        assert!(!text.contains(secret), "'{secret}' logged:\n{text}");
    }

    let metrics: Vec<(String, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
        .collect();
    let counter = |name: &str| {
        metrics
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| match v {
                DebugValue::Counter(c) => *c,
                _ => 0,
            })
            .sum::<u64>()
    };
    assert_eq!(counter("tower_par_pushed_total"), 1);
    assert_eq!(counter("tower_par_redeemed_total"), 1);
    assert_eq!(counter("tower_par_completed_total"), 1);
    assert_eq!(counter("tower_par_rejected_total"), 2);
    assert!(metrics
        .iter()
        .any(|(n, v)| n == "tower_par_flow_duration_seconds"
            && matches!(v, DebugValue::Histogram(h) if h.len() == 1)));
}
