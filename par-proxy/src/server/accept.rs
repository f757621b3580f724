//! The accept loop shared by the public and the metrics listener: TCP
//! accept, optional TLS handshake, hyper-util's auto (HTTP/1.1 + HTTP/2)
//! connection, and the graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::BoxError;

/// A TLS handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that has not sent its request head by then is dropped
/// (HTTP/1.1; slow-loris bound).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection that has not started its first request by then (counted
/// from the accept, TLS handshake included) is dropped: it bounds clients
/// that send nothing or stall in HTTP version detection.
pub(crate) const DEFAULT_FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How many connections one listener holds open at most; beyond that,
/// accepting waits until one closes.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// HTTP/2 PING interval, and how long a PING may go unanswered before the
/// connection is closed.
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Concurrent HTTP/2 streams per connection.
const H2_MAX_CONCURRENT_STREAMS: u32 = 200;

/// Per-listener connection limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// See [`DEFAULT_FIRST_REQUEST_TIMEOUT`].
    pub(crate) first_request: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub(crate) max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            first_request: DEFAULT_FIRST_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The service of one connection, noting that a request has started.
#[derive(Clone)]
struct Started<S> {
    inner: S,
    started: Arc<AtomicBool>,
}

impl<S, R> tower::Service<R> for Started<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.started.store(true, Ordering::Relaxed);
        self.inner.call(req)
    }
}

/// What is known about an accepted connection when its service is made.
pub(crate) struct Accepted {
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) tls: bool,
    /// The client's certificate chain (end entity first), when it sent one.
    pub(crate) chain: Option<Vec<CertificateDer<'static>>>,
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS);
    builder
}

/// Serves one service (cloned per connection) over plain TCP.
pub(crate) async fn serve_plain<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
    deadline: Duration,
) -> Result<(), String>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    serve(
        listener,
        None,
        move |_: &Accepted| service.clone(),
        shutdown,
        deadline,
        Limits::default(),
    )
    .await
}

/// Accepts until `shutdown`, then stops accepting (the listener is
/// closed), lets open connections finish their requests, and after
/// `deadline` closes whatever is left. At most `limits.max_connections`
/// are open at once; one that has not started a request within
/// `limits.first_request` of its accept is closed.
pub(crate) async fn serve<M, S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    make_service: M,
    shutdown: impl Future<Output = ()> + Send + 'static,
    deadline: Duration,
    limits: Limits,
) -> Result<(), String>
where
    M: Fn(&Accepted) -> S + Send + Sync + 'static,
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listen_addr = listener
        .local_addr()
        .map_err(|e| format!("listen: no local address: {e}"))?;
    let builder = builder();
    let make_service = Arc::new(make_service);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set stays as large as what is open.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(target: "par_proxy::server", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let local = stream.local_addr().unwrap_or(listen_addr);
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let make_service = make_service.clone();
        let tls = tls.clone();
        let first_request = tokio::time::Instant::now() + limits.first_request;
        connections.spawn(async move {
            let _permit = permit;
            let started = Arc::new(AtomicBool::new(false));
            let result = match tls {
                None => {
                    let service = Started {
                        inner: make_service(&Accepted {
                            peer,
                            local,
                            tls: false,
                            chain: None,
                        }),
                        started: started.clone(),
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    until_first_request(watcher.watch(conn.into_owned()), &started, first_request, peer).await
                }
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = match tokio::time::timeout_at(first_request, handshake).await {
                        Err(_) => {
                            tracing::debug!(target: "par_proxy::server", peer = %peer, "no request before the first-request deadline");
                            return;
                        }
                        Ok(handshake) => match handshake {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(target: "par_proxy::server", peer = %peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(target: "par_proxy::server", peer = %peer, "TLS handshake timed out");
                                return;
                            }
                        },
                    };
                    let chain = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .filter(|chain| !chain.is_empty())
                        .map(<[CertificateDer<'static>]>::to_vec);
                    let service = Started {
                        inner: make_service(&Accepted {
                            peer,
                            local,
                            tls: true,
                            chain,
                        }),
                        started: started.clone(),
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    until_first_request(watcher.watch(conn.into_owned()), &started, first_request, peer).await
                }
            };
            if let Some(Err(e)) = result {
                tracing::debug!(target: "par_proxy::server", peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    // Stop accepting: new connections are refused from here on.
    drop(listener);
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            target: "par_proxy::server",
            open = connections.len(),
            "shutdown deadline passed; closing the connections still open"
        );
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Drives `conn`; when `deadline` passes before a request has started on
/// it, drops it (closing the connection) and returns `None`.
async fn until_first_request<F, E>(
    conn: F,
    started: &AtomicBool,
    deadline: tokio::time::Instant,
    peer: SocketAddr,
) -> Option<Result<(), E>>
where
    F: Future<Output = Result<(), E>>,
{
    tokio::pin!(conn);
    tokio::select! {
        result = &mut conn => return Some(result),
        () = tokio::time::sleep_until(deadline) => {}
    }
    if !started.load(Ordering::Relaxed) {
        tracing::debug!(target: "par_proxy::server", peer = %peer, "no request before the first-request deadline");
        return None;
    }
    Some(conn.await)
}
