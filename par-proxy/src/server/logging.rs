//! `[log]`: the tracing subscriber, and the one line logged per request.

use std::time::Duration;

use http::{Method, StatusCode};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSection};

/// The tracing target of the per-request lines (`par_proxy::access`).
pub const ACCESS_TARGET: &str = "par_proxy::access";

/// Longest path logged; longer ones are cut (the line stays bounded).
const MAX_LOGGED_PATH: usize = 256;

/// Installs the global subscriber per `[log]`: text or JSON lines on
/// stdout, filtered by `RUST_LOG` (default `info`). A second call, or a
/// subscriber installed before, leaves the first one in place.
pub fn init_logging(log: &LogSection) {
    let filter = env_filter();
    let _ =
        tracing::subscriber::set_global_default(subscriber(log.format, filter, std::io::stdout));
}

/// `RUST_LOG`, or `info` when it is unset or does not parse (said on
/// stderr, since no subscriber is there yet to say it).
pub fn env_filter() -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("par-proxy: RUST_LOG does not parse ({e}); logging at info");
            EnvFilter::new("info")
        }),
        _ => EnvFilter::new("info"),
    }
}

/// The subscriber [`init_logging`] installs, writing to `writer`: tests
/// capture the lines with it, embedders route them where they like.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(false).finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

/// One line per request: method, path (never the query: it carries
/// `request_uri`, codes, state), status, duration and peer.
pub(crate) fn access(
    method: &Method,
    path: &str,
    status: StatusCode,
    elapsed: Duration,
    peer: std::net::SocketAddr,
) {
    let path = truncate(path);
    let duration_ms = millis(elapsed);
    tracing::info!(
        target: ACCESS_TARGET,
        method = %method,
        path,
        status = status.as_u16(),
        duration_ms,
        peer = %peer,
        "request"
    );
}

/// The request failed below the server (the connection is closed without
/// a response).
pub(crate) fn access_failed(
    method: &Method,
    path: &str,
    elapsed: Duration,
    peer: std::net::SocketAddr,
) {
    let path = truncate(path);
    let duration_ms = millis(elapsed);
    tracing::warn!(
        target: ACCESS_TARGET,
        method = %method,
        path,
        duration_ms,
        peer = %peer,
        "request failed without a response"
    );
}

/// The client went away (or the connection was closed at the shutdown
/// deadline) before the response.
pub(crate) fn access_cancelled(
    method: &Method,
    path: &str,
    elapsed: Duration,
    peer: std::net::SocketAddr,
) {
    let path = truncate(path);
    let duration_ms = millis(elapsed);
    tracing::info!(
        target: ACCESS_TARGET,
        method = %method,
        path,
        duration_ms,
        peer = %peer,
        "request cancelled before the response"
    );
}

/// Milliseconds, to the microsecond.
fn millis(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

fn truncate(path: &str) -> &str {
    if path.len() <= MAX_LOGGED_PATH {
        return path;
    }
    // Paths are ASCII (http::Uri), but cut on a char boundary regardless.
    let mut end = MAX_LOGGED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}
