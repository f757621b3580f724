//! The public listener and everything around it: TLS and optional client
//! certificates (RFC 8705), the `Connection` and `ClientCertificate`
//! request extensions, RFC 9440 `Client-Cert` from trusted front proxies,
//! `/healthz` and `/readyz`, the Prometheus listener, one log line per
//! request, and the graceful shutdown.
//!
//! [`run`] serves a configuration. [`serve_with`] is the same server around
//! any inner service (tests and benchmarks use it):
//!
//! ```no_run
//! use std::convert::Infallible;
//! use par_proxy::server::{serve_with, ServeOptions};
//!
//! # async fn example() -> Result<(), String> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
//! let inner = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
//!     Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from("hello"))))
//! });
//! serve_with(listener, ServeOptions::new(), inner, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
//!
//! What happens to a request, in order:
//!
//! 1. `GET /healthz` (liveness, `200 ok`) and `GET /readyz` (`200` when
//!    the readiness check passes, else `503` with a short reason) are
//!    answered here and never reach the layer or the upstream.
//! 2. Client certificates: the certificate of the TLS handshake becomes
//!    the `ClientCertificate` extension; without one, RFC 9440
//!    `Client-Cert` / `Client-Cert-Chain` from a peer in `trusted_proxies`
//!    does; from any other peer those headers are removed (AUTH-24).
//! 3. The [`Connection`] extension (peer, local
//!    address, TLS, trusted) is added, and the inner service is called.
//! 4. One log line (target [`ACCESS_TARGET`]): method, path without the
//!    query, status, duration in ms, peer; and the request metrics
//!    ([`REQUESTS_TOTAL`], [`REQUEST_DURATION`]) by status class.
//!
//! `/readyz` answers are reused for [`READINESS_CACHE`]. A connection that
//! has not started a request within [`DEFAULT_FIRST_REQUEST_TIMEOUT`] of
//! its accept is closed, and so is one with no request in progress for
//! [`DEFAULT_IDLE_TIMEOUT`]; HTTP/2 connections are kept alive by PINGs
//! and limited in streams, and at most [`DEFAULT_MAX_CONNECTIONS`] are
//! open.
//!
//! On shutdown the listener is closed at once (new connections are
//! refused), requests in flight finish, idle connections are closed, and
//! after [`DEFAULT_SHUTDOWN_TIMEOUT`] what is still open is dropped.

mod accept;
mod front;
mod logging;
mod metrics;
mod tls;
mod trusted;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;

pub use logging::{env_filter, init_logging, subscriber, ACCESS_TARGET};
pub use metrics::{install_recorder, serve_metrics, REQUESTS_TOTAL, REQUEST_DURATION};
pub use tls::server_config as tls_server_config;
pub use trusted::TrustedProxies;

use tower_par::ClientCertificate;

use crate::config::ProxyConfig;
use crate::Connection;

/// The error type of the server's services (hyper's bound).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long in-flight requests get to finish after shutdown is signalled.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a `/readyz` answer is reused (see [`ServeOptions::readiness`]).
pub const READINESS_CACHE: Duration = Duration::from_secs(1);

/// How long a connection may go without starting a request (see
/// [`ServeOptions::first_request_timeout`]).
pub const DEFAULT_FIRST_REQUEST_TIMEOUT: Duration = accept::DEFAULT_FIRST_REQUEST_TIMEOUT;

/// How long a connection may stay idle after its first request before it
/// is closed (see [`ServeOptions::idle_timeout`]).
pub const DEFAULT_IDLE_TIMEOUT: Duration = accept::DEFAULT_IDLE_TIMEOUT;

/// How many connections the public listener holds open at most (see
/// [`ServeOptions::max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = accept::DEFAULT_MAX_CONNECTIONS;

/// What [`serve_with`] needs besides the listener and the inner service.
///
/// ```
/// use std::time::Duration;
/// use par_proxy::server::{ServeOptions, TrustedProxies};
///
/// let options = ServeOptions::new()
///     .trusted_proxies(TrustedProxies::parse(["127.0.0.1"]).unwrap())
///     .readiness(|| async { Ok(()) })
///     .shutdown_timeout(Duration::from_secs(5));
/// # let _ = options;
/// ```
#[derive(Clone)]
#[must_use]
pub struct ServeOptions {
    tls: Option<Arc<rustls::ServerConfig>>,
    trusted: TrustedProxies,
    readiness: Option<front::ReadinessCheck>,
    shutdown_timeout: Duration,
    limits: accept::Limits,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("tls", &self.tls.is_some())
            .field("trusted", &self.trusted)
            .field("readiness", &self.readiness.is_some())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("first_request_timeout", &self.limits.first_request)
            .field("max_connections", &self.limits.max_connections)
            .field("idle_timeout", &self.limits.idle)
            .finish()
    }
}

impl ServeOptions {
    /// Plain HTTP, no trusted proxy, `/readyz` always ready, the default
    /// shutdown deadline.
    pub fn new() -> Self {
        Self {
            tls: None,
            trusted: TrustedProxies::none(),
            readiness: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            limits: accept::Limits::default(),
        }
    }

    /// Terminates TLS with this configuration (see [`tls_server_config`]);
    /// client certificates the handshake accepted become the
    /// `ClientCertificate` extension.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The peers whose `X-Forwarded-*`, `Forwarded` and `Client-Cert`
    /// headers are believed (`Connection::trusted`).
    pub fn trusted_proxies(mut self, trusted: TrustedProxies) -> Self {
        self.trusted = trusted;
        self
    }

    /// What `/readyz` checks: `Ok(())` is ready, `Err(reason)` answers
    /// `503 not ready: <reason>` (keep the reason short and free of
    /// internals). Bounded at 5 seconds. The answer is kept for
    /// [`READINESS_CACHE`]: `/readyz` calls within that time (and calls
    /// while a check runs) share one check.
    pub fn readiness<F, Fut>(mut self, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        type Last = Option<(tokio::time::Instant, Result<(), String>)>;
        let check = Arc::new(check);
        let last: Arc<tokio::sync::Mutex<Last>> = Arc::default();
        self.readiness = Some(Arc::new(move || {
            let check = check.clone();
            let last = last.clone();
            // The check runs on its own task holding the lock, so a caller
            // that goes away (a client hanging up) neither cancels it nor
            // leaves the answer uncached for the next one.
            let task = tokio::spawn(async move {
                let mut last = last.lock().await;
                if let Some((at, result)) = last.as_ref() {
                    if at.elapsed() < READINESS_CACHE {
                        return result.clone();
                    }
                }
                let result = tokio::time::timeout(front::READINESS_TIMEOUT, check())
                    .await
                    .unwrap_or_else(|_| Err("timeout".to_owned()));
                *last = Some((tokio::time::Instant::now(), result.clone()));
                result
            });
            Box::pin(async move {
                task.await
                    .unwrap_or_else(|_| Err("readiness check failed".to_owned()))
            })
        }));
        self
    }

    /// How long in-flight requests get after shutdown is signalled.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long a connection may go, from its accept (TLS handshake
    /// included), without starting a request before it is closed; default
    /// [`DEFAULT_FIRST_REQUEST_TIMEOUT`].
    pub fn first_request_timeout(mut self, timeout: Duration) -> Self {
        // A day at most: the deadline is added to the accept instant.
        self.limits.first_request = timeout.min(Duration::from_secs(86_400));
        self
    }

    /// How long a connection may stay open after a request with no request
    /// in progress (an idle HTTP/2 connection answers keep-alive PINGs for
    /// ever); default [`DEFAULT_IDLE_TIMEOUT`], at most a day.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.limits.idle = timeout.min(Duration::from_secs(86_400));
        self
    }

    /// How many connections are open at most; beyond that, accepting
    /// waits until one closes. Default [`DEFAULT_MAX_CONNECTIONS`]; `0`
    /// counts as `1`.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.limits.max_connections = max.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        self
    }
}

/// Serves `inner` on `listener` behind the server's front (health routes,
/// client certificates, `Connection`, logs, metrics; see the module docs)
/// until `shutdown` completes, then drains in-flight requests within the
/// shutdown deadline and returns.
///
/// HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN `h2` with TLS). The inner
/// service is cloned per connection.
pub async fn serve_with<S, B>(
    listener: TcpListener,
    options: ServeOptions,
    inner: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let ServeOptions {
        tls,
        trusted,
        readiness,
        shutdown_timeout,
        limits,
    } = options;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let make_service = move |accepted: &accept::Accepted| front::Front {
        inner: inner.clone(),
        connection: Connection {
            peer: accepted.peer,
            local: accepted.local,
            tls: accepted.tls,
            trusted: trusted.contains(accepted.peer.ip()),
        },
        certificate: accepted.chain.as_ref().and_then(|chain| {
            ClientCertificate::from_der_chain(
                chain.iter().map(|der| Bytes::copy_from_slice(der.as_ref())),
            )
        }),
        readiness: readiness.clone(),
    };
    accept::serve(
        listener,
        acceptor,
        make_service,
        shutdown,
        shutdown_timeout,
        limits,
    )
    .await
}

/// Serves `config` until `shutdown` completes, then drains (see the module
/// docs): binds `listen` (TLS with `[tls] cert`/`key`) and `[metrics]
/// listen`, and
/// composes the health routes, client-certificate handling, per-request
/// logging and metrics, the `ParLayer` the configuration describes and
/// the forwarder to `upstream`. `/readyz` checks the store and that the
/// upstream answers.
///
/// Errors (configuration that cannot be served, an address that cannot be
/// bound) name the key they concern.
pub async fn run(
    config: ProxyConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    use tower::Layer;

    let trusted = TrustedProxies::parse(&config.trusted_proxies)?;
    // `[tls]` with only `client_ca`: plain HTTP behind a TLS terminator.
    let tls = config
        .tls
        .as_ref()
        .filter(|tls| tls.server_identity().is_some())
        .map(tls_server_config)
        .transpose()?;
    let (layer, store) = crate::layer::build(&config).await.map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let forwarder = crate::forward::Forwarder::from_config(&config)?;
    let metrics = match &config.metrics {
        None => None,
        Some(section) => {
            let handle = install_recorder()?;
            let listener = TcpListener::bind(section.listen)
                .await
                .map_err(|e| format!("metrics.listen: cannot listen on {}: {e}", section.listen))?;
            Some((listener, handle))
        }
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("listen: cannot listen on {}: {e}", config.listen))?;

    let readiness = {
        let forwarder = forwarder.clone();
        move || {
            let store = store.clone();
            let forwarder = forwarder.clone();
            async move {
                // Which part is not ready, never why: the reasons can
                // name hosts and ports.
                if store.ready().await.is_err() {
                    tracing::warn!(target: "par_proxy::server", "readiness: the store is unavailable");
                    return Err("store unavailable".to_owned());
                }
                if forwarder.probe().await.is_err() {
                    tracing::warn!(target: "par_proxy::server", "readiness: the upstream does not answer");
                    return Err("upstream unreachable".to_owned());
                }
                Ok(())
            }
        }
    };
    let mut options = ServeOptions::new()
        .trusted_proxies(trusted)
        .readiness(readiness);
    let terminates_tls = tls.is_some();
    if let Some(tls) = tls {
        options = options.tls(tls);
    }
    let service = layer.layer(forwarder);

    // One shutdown signal for both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let signal = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };

    let metrics_addr = metrics
        .as_ref()
        .and_then(|(listener, _)| listener.local_addr().ok());
    let metrics_task = metrics.map(|(listener, handle)| {
        tokio::spawn(serve_metrics(listener, handle, signal(stopped.clone())))
    });
    tracing::info!(
        target: "par_proxy::server",
        listen = %config.listen,
        tls = terminates_tls,
        client_certificates = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        metrics = ?metrics_addr,
        "par-proxy listening"
    );
    let result = serve_with(listener, options, service, signal(stopped.clone())).await;
    if let Some(task) = metrics_task {
        match task.await {
            Ok(Err(e)) => {
                tracing::warn!(target: "par_proxy::server", error = %e, "metrics listener failed")
            }
            Err(e) => {
                tracing::warn!(target: "par_proxy::server", error = %e, "metrics listener task failed")
            }
            Ok(Ok(())) => {}
        }
    }
    tracing::info!(target: "par_proxy::server", "par-proxy stopped");
    result
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!(target: "par_proxy::server", "shutdown signal received; draining");
}
