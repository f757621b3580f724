//! The accept loop shared by the public and the metrics listener: TCP
//! accept, optional TLS handshake, hyper-util's auto (HTTP/1.1 + HTTP/2)
//! connection, and the graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
use pin_project_lite::pin_project;
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

/// How long a connection may stay open with no request in progress (no
/// response head pending, no response body being sent) after its first
/// request: HTTP/2 connections answer keep-alive PINGs for ever, and an
/// idle one would otherwise hold a connection slot for good.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
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
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub(crate) idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            first_request: DEFAULT_FIRST_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// What a connection's requests are doing: whether one has started, how
/// many are in progress (from `call` until the response body is dropped),
/// and when the last one ended.
struct Activity {
    started: AtomicBool,
    busy: AtomicUsize,
    /// Milliseconds after `since` at which the connection last became idle.
    idle_at: AtomicU64,
    since: tokio::time::Instant,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            idle_at: AtomicU64::new(0),
            since: tokio::time::Instant::now(),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.started.store(true, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(self))
    }

    /// When the connection may be closed for idleness, if it is idle now.
    fn idle_until(&self, idle: Duration) -> Option<tokio::time::Instant> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let at = Duration::from_millis(self.idle_at.load(Ordering::Acquire));
        Some(self.since + at.saturating_add(idle))
    }
}

/// One request in progress; its end (drop) makes the connection idle when
/// it was the last.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_at.store(now, Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The service of one connection, recording its requests' [`Activity`].
#[derive(Clone)]
struct Started<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, R, B> tower::Service<R> for Started<S>
where
    S: tower::Service<R, Response = Response<B>>,
{
    type Response = Response<Tracked<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let busy = self.activity.begin();
        TrackedFuture {
            inner: self.inner.call(req),
            busy: Some(busy),
        }
    }
}

pin_project! {
    /// A response future whose request stays in progress until its body
    /// is dropped.
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        busy: Option<Busy>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Tracked<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let busy = this.busy.take();
        Poll::Ready(result.map(|res| {
            res.map(|body| Tracked {
                inner: body,
                _busy: busy,
            })
        }))
    }
}

pin_project! {
    /// A response body that keeps its request in progress while it lives.
    struct Tracked<B> {
        #[pin]
        inner: B,
        _busy: Option<Busy>,
    }
}

impl<B: http_body::Body> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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
            let activity = Arc::new(Activity::new());
            let result = match tls {
                None => {
                    let service = Started {
                        inner: make_service(&Accepted {
                            peer,
                            local,
                            tls: false,
                            chain: None,
                        }),
                        activity: activity.clone(),
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    drive(watcher.watch(conn.into_owned()), &activity, first_request, limits.idle, peer).await
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
                        activity: activity.clone(),
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    drive(watcher.watch(conn.into_owned()), &activity, first_request, limits.idle, peer).await
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

/// Drives `conn`; drops it (closing the connection) and returns `None`
/// when `deadline` passes before a request has started on it, or when it
/// has had no request in progress for `idle` since.
async fn drive<F, E>(
    conn: F,
    activity: &Activity,
    deadline: tokio::time::Instant,
    idle: Duration,
    peer: SocketAddr,
) -> Option<Result<(), E>>
where
    F: Future<Output = Result<(), E>>,
{
    tokio::pin!(conn);
    loop {
        // Idle: at the end of the idle time. Busy, or before the first
        // request: look again after `idle` (but not past the first-request
        // deadline).
        let now = tokio::time::Instant::now();
        let wake = match activity.idle_until(idle) {
            Some(until) if activity.started.load(Ordering::Relaxed) => until,
            _ if activity.started.load(Ordering::Relaxed) => now + idle,
            _ => deadline.min(now + idle),
        };
        tokio::select! {
            result = &mut conn => return Some(result),
            () = tokio::time::sleep_until(wake) => {}
        }
        if !activity.started.load(Ordering::Relaxed) {
            if tokio::time::Instant::now() >= deadline {
                tracing::debug!(target: "par_proxy::server", peer = %peer, "no request before the first-request deadline");
                return None;
            }
            continue;
        }
        if activity
            .idle_until(idle)
            .is_some_and(|until| until <= tokio::time::Instant::now())
        {
            tracing::debug!(target: "par_proxy::server", peer = %peer, "idle connection closed");
            return None;
        }
    }
}
