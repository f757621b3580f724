//! `[metrics]`: the Prometheus recorder and its own listener.
//!
//! Served only on `[metrics] listen`, never on the public port (where
//! `/metrics` is a path of the upstream like any other). What appears:
//! the layer's `tower_par_*` counters and histograms, the forwarder's
//! metrics, and for every request the server answered:
//!
//! - `par_proxy_requests_total{status_class}` (counter), and
//! - `par_proxy_request_duration_seconds{status_class}` (histogram),
//!
//! with `status_class` one of `1xx` .. `5xx`, `error` (the inner service
//! failed and the connection was closed) or `cancelled` (the client went
//! away, or the shutdown deadline passed, before the response).

use std::convert::Infallible;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// The per-request counter.
pub const REQUESTS_TOTAL: &str = "par_proxy_requests_total";
/// The per-request latency histogram (seconds, to the response head).
pub const REQUEST_DURATION: &str = "par_proxy_request_duration_seconds";

/// Histogram buckets for every `*_duration_seconds` metric.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global `metrics`
/// recorder, once; later calls return the same handle. Fails when another
/// global recorder was installed first.
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), BUCKETS)
                .map_err(|e| format!("metrics: {e}"))?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|_| {
                "metrics: another metrics recorder is already installed".to_string()
            })?;
            Ok(handle)
        })
        .clone()
}

/// Serves `GET /metrics` (Prometheus text format) on `listener` until
/// `shutdown`; any other request gets `404`. Plain HTTP/1.1 and HTTP/2.
pub async fn serve_metrics(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let upkeep = handle.clone();
    let service = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
        let handle = handle.clone();
        async move { Ok::<_, Infallible>(answer(&req, &handle)) }
    });
    let serve =
        super::accept::serve_plain(listener, service, shutdown, super::DEFAULT_SHUTDOWN_TIMEOUT);
    tokio::pin!(serve);
    // Histogram upkeep, between scrapes too (the exporter's own listener
    // does the same); bounded by the server's lifetime.
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            res = &mut serve => return res,
            _ = tick.tick() => upkeep.run_upkeep(),
        }
    }
}

fn answer(
    req: &Request<hyper::body::Incoming>,
    handle: &PrometheusHandle,
) -> Response<Full<Bytes>> {
    let mut res = if req.uri().path() != "/metrics" {
        text(StatusCode::NOT_FOUND, "not found\n".into())
    } else if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
        res.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        res
    } else {
        let mut res = text(StatusCode::OK, handle.render());
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        res
    };
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// Records one answered request.
pub(crate) fn record(status_class: &'static str, elapsed: Duration) {
    metrics::counter!(REQUESTS_TOTAL, "status_class" => status_class).increment(1);
    metrics::histogram!(REQUEST_DURATION, "status_class" => status_class)
        .record(elapsed.as_secs_f64());
}

pub(crate) fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
