//! The upstream forwarder: every request the layer lets through (and every
//! authorization request it rebuilt from a pushed one) goes to the
//! authorization server behind the proxy.
//!
//! - Pooled connections through hyper-util's client, HTTP/1.1 to `http://`
//!   upstreams, HTTP/2 or HTTP/1.1 (ALPN) to `https://` ones, verified
//!   against the webpki roots.
//! - Bodies stream both ways, frame by frame; nothing is buffered except
//!   the rebuilt authorization request sent as a form POST.
//! - Hop-by-hop fields are removed in both directions, including those
//!   `Connection` names (RFC 9110 §7.6.1).
//! - `Host` is the client's (`preserve_host`, the default) or the
//!   upstream's; `X-Forwarded-For/Proto/Host` and `Forwarded` (RFC 7239)
//!   describe this hop. From a peer that is not a trusted proxy, incoming
//!   forwarding fields (`X-Forwarded-*`, `X-Real-IP`, `X-Original-URL`
//!   and the like, see `headers::FORWARDING`) and the RFC 9440
//!   `Client-Cert` fields are dropped.
//! - Fields whose name contains `_` are dropped from every peer (nginx's
//!   `underscores_in_headers off`): CGI-style servers read `X_Forwarded_For`
//!   as `X-Forwarded-For`.
//! - The layer's flow-binding cookies ([`FLOW_COOKIE_NAME`]`_*` and
//!   `__Host-par_flow_*`) are removed from `Cookie`; the other cookies go
//!   through in order, and a `Cookie` line left empty is dropped.
//! - A request path with a `.` or `..` segment (literal or `%2e`), a `\`
//!   or `%5c`, or a leading `//` is `400`, never forwarded: the upstream
//!   would resolve it past the `upstream` path prefix and the layer's
//!   endpoint matching (a `/../as/authorize` under prefix `/as` is the
//!   authorization endpoint without `require` PAR).
//! - Every failure is an HTTP answer with an OAuth-shaped JSON body and
//!   `Cache-Control: no-store`, never an upstream error text or address:
//!   `502` when the upstream cannot be reached or drops the connection,
//!   `504` when its response head takes longer than
//!   `upstream_timeout_secs`, `413` over `max_body_bytes`, `501` for
//!   `Upgrade` and `CONNECT`, `400` for a malformed request target.
//! - `[par] forward_as`: a rebuilt authorization request (one carrying
//!   [`tower_par::PushedAuthorization`]) that arrives as a GET goes out as
//!   a form POST to the same path when `post`, or under `auto` when its
//!   request target would be longer than `max_upstream_url` (OIDC Core
//!   §3.1.2.1 requires an authorization server to accept POST there).
//! - Metrics: `par_proxy_upstream_responses_total{class}` and
//!   `par_proxy_upstream_duration_seconds{class}`, `class` one of `2xx`,
//!   `3xx`, `4xx`, `5xx` or `error`.
//!
//! # Deployment caveats
//!
//! - Connections are pooled per upstream, so the request URI always names
//!   the upstream: over HTTP/2 the `:authority` is the upstream's and the
//!   preserved `Host` travels as a header next to it. Servers that take
//!   the host from `:authority` alone (Go's `net/http`) see the upstream's;
//!   they still get the public host in `X-Forwarded-Host` and `Forwarded`.
//! - The timeout bounds the wait for the response head, counted from the
//!   start of the request: a client uploading slowly to an upstream that
//!   reads the whole body before answering can reach it.
//! - `Upgrade` (WebSocket) is not proxied.

mod body;
mod headers;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use body::ProxyBody;
use body::UpstreamBody;
use headers::Hop;

use crate::config::{ForwardAs, ProxyConfig};

/// Sends requests to the upstream authorization server; a
/// [`tower::Service`] whose every failure is an HTTP response.
///
/// ```no_run
/// # async fn run() -> Result<(), String> {
/// let config: par_proxy::config::ProxyConfig =
///     toml::from_str(r#"upstream = "http://127.0.0.1:9000""#).map_err(|e| e.to_string())?;
/// let forwarder = par_proxy::forward::Forwarder::from_config(&config)?;
/// forwarder.probe().await?; // the upstream answers
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<HttpsConnector<HttpConnector>, UpstreamBody>,
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
    /// The path of `upstream`, without its trailing `/` (often empty).
    prefix: String,
    preserve_host: bool,
    timeout: Duration,
    max_body: u64,
    forward_as: ForwardAs,
    max_upstream_url: usize,
}

impl Forwarder {
    /// The forwarder `config` describes: `upstream`, `preserve_host`,
    /// `upstream_timeout_secs`, `max_body_bytes`, `[par] forward_as` and
    /// `max_upstream_url`. Fails on an `upstream` that is not an `http://`
    /// or `https://` URL without query or credentials.
    pub fn from_config(config: &ProxyConfig) -> Result<Self, String> {
        let bad = |why: &str| format!("upstream: {why}");
        let uri: Uri = config
            .upstream
            .parse()
            .map_err(|_| bad("not a URL (expected http://host:port or https://host)"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| bad("a host is required"))?;
        if authority.as_str().contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        if uri.query().is_some() {
            return Err(bad("a query is not allowed"));
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| bad("invalid host"))?;
        let prefix = uri.path().trim_end_matches('/').to_owned();
        if config.upstream_timeout_secs == 0 {
            return Err("upstream_timeout_secs: must be at least 1".into());
        }
        let timeout = Duration::from_secs(config.upstream_timeout_secs);

        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("upstream: TLS setup failed: {e}"))?;
        let client = client(tls, timeout);

        Ok(Self {
            inner: Arc::new(Inner {
                client,
                scheme,
                authority,
                host,
                prefix,
                preserve_host: config.preserve_host,
                timeout,
                max_body: config.max_body_bytes,
                forward_as: config.par.forward_as,
                max_upstream_url: config.par.max_upstream_url,
            }),
        })
    }

    /// Verifies an `https://` upstream against `roots` (DER CA
    /// certificates) instead of the webpki roots: an authorization server
    /// with a private CA. Fails when none of `roots` is a usable CA.
    pub fn with_upstream_roots<I>(self, roots: I) -> Result<Self, String>
    where
        I: IntoIterator,
        I::Item: Into<rustls_pki_types::CertificateDer<'static>>,
    {
        let mut store = rustls::RootCertStore::empty();
        let (added, _ignored) = store.add_parsable_certificates(roots.into_iter().map(Into::into));
        if added == 0 {
            return Err("upstream roots: no usable CA certificate".into());
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("upstream: TLS setup failed: {e}"))?
        .with_root_certificates(store)
        .with_no_client_auth();
        let i = &self.inner;
        Ok(Self {
            inner: Arc::new(Inner {
                client: client(
                    hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls),
                    i.timeout,
                ),
                scheme: i.scheme.clone(),
                authority: i.authority.clone(),
                host: i.host.clone(),
                prefix: i.prefix.clone(),
                preserve_host: i.preserve_host,
                timeout: i.timeout,
                max_body: i.max_body,
                forward_as: i.forward_as,
                max_upstream_url: i.max_upstream_url,
            }),
        })
    }

    /// Whether the upstream answers: any HTTP response to `GET` of the
    /// upstream's base path within `upstream_timeout_secs` is `Ok` (for
    /// `/readyz`). The error says what failed without upstream internals.
    pub async fn probe(&self) -> Result<(), String> {
        let inner = &self.inner;
        let uri = inner
            .uri(&format!("{}/", inner.prefix))
            .ok_or("upstream URL could not be built")?;
        let mut req = Request::new(body::full(Bytes::new()));
        *req.uri_mut() = uri;
        req.headers_mut().insert(header::HOST, inner.host.clone());
        match tokio::time::timeout(inner.timeout, inner.client.request(req)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err("upstream unreachable".into()),
            Err(_) => Err("upstream did not answer in time".into()),
        }
    }
}

impl fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Forwarder")
            .field(
                "upstream",
                &format_args!("{}://{}{}", i.scheme, i.authority, i.prefix),
            )
            .field("preserve_host", &i.preserve_host)
            .field("timeout", &i.timeout)
            .field("max_body", &i.max_body)
            .field("forward_as", &i.forward_as)
            .field("max_upstream_url", &i.max_upstream_url)
            .finish()
    }
}

impl<B> tower::Service<Request<B>> for Forwarder
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { Ok(inner.forward(req).await) })
    }
}

impl Inner {
    /// `scheme://authority` of the upstream with `path_and_query`.
    fn uri(&self, path_and_query: &str) -> Option<Uri> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .ok()
    }

    async fn forward<B>(&self, req: Request<B>) -> Response<ProxyBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if req.method() == Method::CONNECT {
            return refusal(
                StatusCode::NOT_IMPLEMENTED,
                "invalid_request",
                "the CONNECT method is not supported by this proxy",
            );
        }
        if headers::wants_upgrade(req.headers()) {
            return refusal(
                StatusCode::NOT_IMPLEMENTED,
                "invalid_request",
                "protocol upgrades (such as WebSocket) are not supported by this proxy",
            );
        }
        // RFC 9112 §3.2: more than one Host is a bad request; forwarding
        // either would let the layer and the upstream disagree.
        if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
            return bad_request("more than one Host header");
        }
        let declared = match req.headers().get(header::CONTENT_LENGTH) {
            None => None,
            Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(n) => Some(n),
                None => return bad_request("invalid Content-Length"),
            },
        };
        if declared.is_some_and(|n| n > self.max_body) {
            return too_large();
        }

        let conn = req.extensions().get::<crate::Connection>().copied();
        let client_host = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        // An absolute-form target without a path (`http://host`) is `/`.
        let (path, query) = match req.uri().path_and_query() {
            Some(pq) => (pq.path(), pq.query()),
            None => (req.uri().path(), None),
        };
        if !path.starts_with('/') {
            return bad_request("the request target must be an absolute path");
        }
        // The upstream resolves what the layer did not: a dot segment
        // climbs out of `prefix` (and past the layer's endpoint matching),
        // a leading `//` reads as a host to `new URL(path, base)`.
        if let Some(why) = unsafe_path(path) {
            return bad_request(why);
        }

        // OIDC Core §3.1.2.1: the authorization endpoint accepts POST, so
        // a rebuilt request too long for the upstream's request line goes
        // out as a form instead.
        let target_len = self.prefix.len() + path.len() + query.map_or(0, |q| q.len() + 1);
        let as_post = req.method() == Method::GET
            && req
                .extensions()
                .get::<tower_par::PushedAuthorization>()
                .is_some()
            && query.is_some()
            && match self.forward_as {
                ForwardAs::Get => false,
                ForwardAs::Post => true,
                ForwardAs::Auto => target_len > self.max_upstream_url,
            };

        let mut target = String::with_capacity(target_len);
        target.push_str(&self.prefix);
        target.push_str(path);
        let form = match query {
            Some(q) if as_post => Some(Bytes::copy_from_slice(q.as_bytes())),
            Some(q) => {
                target.push('?');
                target.push_str(q);
                None
            }
            None => None,
        };
        let Some(uri) = self.uri(&target) else {
            return if target.len() > u16::MAX as usize - 1 {
                refusal(
                    StatusCode::URI_TOO_LONG,
                    "invalid_request",
                    "the request target is too long",
                )
            } else {
                bad_request("invalid request target")
            };
        };

        let (parts, incoming) = req.into_parts();
        let mut headers = parts.headers;
        headers::remove_hop_by_hop(&mut headers);
        headers::remove_underscored(&mut headers);
        headers::remove_flow_cookies(&mut headers, FLOW_COOKIE_NAME);
        headers::add_forwarding(
            &mut headers,
            &Hop {
                peer: conn.map(|c| c.peer),
                tls: conn.is_some_and(|c| c.tls),
                host: client_host.as_ref(),
                trusted: conn.is_some_and(|c| c.trusted),
            },
        );
        let host = match client_host {
            Some(h) if self.preserve_host => h,
            _ => self.host.clone(),
        };
        headers.insert(header::HOST, host);

        let exceeded = Arc::new(AtomicBool::new(false));
        let (method, up_body) = match form {
            Some(form) => {
                drop(incoming);
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(form.len()));
                headers.remove(header::CONTENT_ENCODING);
                (Method::POST, body::full(form))
            }
            None => (
                parts.method,
                body::limited(incoming, self.max_body, Arc::clone(&exceeded)),
            ),
        };
        let mut up = Request::new(up_body);
        *up.method_mut() = method;
        *up.uri_mut() = uri;
        // The client picks HTTP/1.1 or HTTP/2 per upstream connection.
        *up.version_mut() = Version::HTTP_11;
        *up.headers_mut() = headers;

        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, self.client.request(up)).await;
        let elapsed = started.elapsed().as_secs_f64();
        match outcome {
            Err(_) => {
                record("error", elapsed);
                tracing::warn!(
                    timeout_secs = self.timeout.as_secs(),
                    "upstream response timed out"
                );
                refusal(
                    StatusCode::GATEWAY_TIMEOUT,
                    "temporarily_unavailable",
                    "the authorization server did not answer in time",
                )
            }
            Ok(Err(e)) => {
                record("error", elapsed);
                if exceeded.load(Ordering::Relaxed) {
                    return too_large();
                }
                tracing::warn!(
                    connect = e.is_connect(),
                    error = %Chain(&e),
                    "upstream request failed"
                );
                unavailable()
            }
            Ok(Ok(res)) => {
                let status = res.status();
                let class = match status.as_u16() {
                    200..=299 => "2xx",
                    300..=399 => "3xx",
                    400..=499 => "4xx",
                    500..=599 => "5xx",
                    _ => "error",
                };
                record(class, elapsed);
                if class == "error" {
                    // 101 was never asked for; 6xx is not HTTP.
                    tracing::warn!(status = status.as_u16(), "unexpected upstream status");
                    return unavailable();
                }
                let (mut parts, incoming) = res.into_parts();
                headers::remove_hop_by_hop(&mut parts.headers);
                parts.extensions = http::Extensions::new();
                Response::from_parts(parts, ProxyBody::upstream(incoming))
            }
        }
    }
}

/// The base name of the layer's browser-binding cookies (tower-par's
/// default, which the proxy's layer keeps): the cookies named
/// `<name>_<tag>` and `__Host-<name>_<tag>` carry a flow secret for the
/// layer alone and are removed from `Cookie` before the upstream.
pub const FLOW_COOKIE_NAME: &str = "par_flow";

/// Why `path` (a request path starting with `/`) is not forwarded, if it
/// is not: a `.` or `..` segment, literal or percent-encoded (`%2e` in any
/// case and mix, and also before a `;` parameter, which servlet containers
/// drop before resolving), a `\` or `%5c` (which some servers read as
/// `/`), or an empty first segment (`//host/...`).
fn unsafe_path(path: &str) -> Option<&'static str> {
    if path.starts_with("//") {
        return Some("the request path must not start with //");
    }
    let bytes = path.as_bytes();
    if bytes.contains(&b'\\')
        || bytes
            .windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'5' && w[2].eq_ignore_ascii_case(&b'c'))
    {
        return Some("the request path must not contain a backslash");
    }
    // An encoded slash separates segments too for upstreams that decode
    // before resolving dot segments (`/..%2fadmin`).
    let decoded_slashes;
    let path = if bytes
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f'))
    {
        decoded_slashes = path.replace("%2f", "/").replace("%2F", "/");
        decoded_slashes.as_str()
    } else {
        path
    };
    for segment in path.split('/') {
        let segment = segment.split(';').next().unwrap_or(segment);
        if is_dot_segment(segment.as_bytes()) {
            return Some("the request path must not contain . or .. segments");
        }
    }
    None
}

/// Whether `segment` is `.` or `..`, each dot literal or `%2e`/`%2E`.
fn is_dot_segment(mut segment: &[u8]) -> bool {
    let mut dots = 0;
    while !segment.is_empty() {
        if segment[0] == b'.' {
            segment = &segment[1..];
        } else if segment.len() >= 3
            && segment[0] == b'%'
            && segment[1] == b'2'
            && segment[2].eq_ignore_ascii_case(&b'e')
        {
            segment = &segment[3..];
        } else {
            return false;
        }
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    dots > 0
}

/// The pooled upstream client: plain HTTP/1.1 for `http://`, ALPN `h2`
/// then `http/1.1` for `https://`.
fn client(
    tls: hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes>,
    timeout: Duration,
) -> Client<HttpsConnector<HttpConnector>, UpstreamBody> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(timeout));
    let https = tls
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(https)
}

/// An error and its sources on one line, for the operator's log (the
/// client never sees it).
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        // Bounded: error chains are short, but never trust a cycle.
        for _ in 0..8 {
            let Some(e) = source else { break };
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

fn record(class: &'static str, seconds: f64) {
    metrics::counter!("par_proxy_upstream_responses_total", "class" => class).increment(1);
    metrics::histogram!("par_proxy_upstream_duration_seconds", "class" => class).record(seconds);
}

fn unavailable() -> Response<ProxyBody> {
    refusal(
        StatusCode::BAD_GATEWAY,
        "temporarily_unavailable",
        "the authorization server could not be reached",
    )
}

fn too_large() -> Response<ProxyBody> {
    refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        "the request body is larger than this server accepts",
    )
}

fn bad_request(description: &str) -> Response<ProxyBody> {
    refusal(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// An answer of the proxy's own: `{"error","error_description"}` JSON,
/// never cached.
fn refusal(status: StatusCode, error: &str, description: &str) -> Response<ProxyBody> {
    let json = serde_json::json!({ "error": error, "error_description": description });
    let mut res = Response::new(ProxyBody::own(Bytes::from(json.to_string())));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_backslashes_and_a_leading_double_slash_are_refused() {
        for bad in [
            "/..",
            "/.",
            "/../as/authorize",
            "/a/./b",
            "/a/../b",
            "/a/..",
            "/%2e%2e/x",
            "/%2E%2e/x",
            "/.%2E/x",
            "/%2e./x",
            "/%2e/x",
            "/..;x/as/authorize",
            "/.;/x",
            "/..%2fas/authorize",
            "/%2e%2e%2Fadmin",
            "/a%2F..%2fb",
            "/a\\b",
            "/a%5cb",
            "/a%5Cb",
            "//evil.example/x",
            "//",
        ] {
            assert!(unsafe_path(bad).is_some(), "{bad}");
        }
        for good in [
            "/",
            "/authorize",
            "/a/b/",
            "/...",
            "/.well-known/openid-configuration",
            "/a..b/c.d",
            "/%2e%2e%2e",
            "/a/.x",
            "/a//b",
            "/%2f",
            "/%25%32%65",
            "/a;b",
        ] {
            assert!(unsafe_path(good).is_none(), "{good}");
        }
    }
}
