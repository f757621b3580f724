//! The accept loop shared by the public and the metrics listener: TCP
//! accept, optional TLS handshake, hyper-util's auto (HTTP/1.1 + HTTP/2)
//! connection, and the graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
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
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::BoxError;

/// A TLS handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that has not sent its request head by then is dropped
/// (HTTP/1.1; slow-loris bound).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

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
    builder.http2().timer(TokioTimer::new());
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
    )
    .await
}

/// Accepts until `shutdown`, then stops accepting (the listener is
/// closed), lets open connections finish their requests, and after
/// `deadline` closes whatever is left.
pub(crate) async fn serve<M, S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    make_service: M,
    shutdown: impl Future<Output = ()> + Send + 'static,
    deadline: Duration,
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
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set stays as large as what is open.
        while connections.try_join_next().is_some() {}
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
        connections.spawn(async move {
            let result = match tls {
                None => {
                    let service = make_service(&Accepted {
                        peer,
                        local,
                        tls: false,
                        chain: None,
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(target: "par_proxy::server", peer = %peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(target: "par_proxy::server", peer = %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let chain = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .filter(|chain| !chain.is_empty())
                        .map(<[CertificateDer<'static>]>::to_vec);
                    let service = make_service(&Accepted {
                        peer,
                        local,
                        tls: true,
                        chain,
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
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
