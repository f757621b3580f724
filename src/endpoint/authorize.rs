//! The authorization endpoint (RFC 9126 §4): resolve the `request_uri`,
//! then hand the wrapped service exactly the stored request.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tower_service::Service;

use super::compact::{compact_location, compact_query, compact_refresh, is_authorization_response};
use super::{is_form, own, read_body};
use crate::body::{ParRequestBody, ParResponseBody};
use crate::client::{AuthMethod, ClientAuthenticator};
use crate::config::{Config, Redemption};
use crate::error::OAuthError;
use crate::params::{decode, Params};
use crate::store::{Completion, ParStore, PushedRequest, RedeemMode, RedeemOutcome};
use crate::RequestUri;

/// Attached to every request the layer rewrote from a pushed request.
///
/// The wrapped service can rely on it: only this crate can build one, and
/// the layer inserts it only after the `request_uri` was redeemed by the
/// client it was issued to. Requests the layer passes through do not carry
/// one.
///
/// ```
/// use tower_par::PushedAuthorization;
///
/// fn handler(req: &http::Request<()>) -> bool {
///     match req.extensions().get::<PushedAuthorization>() {
///         // Pushed: the client authenticated at the PAR endpoint and the
///         // layer already validated redirect_uri and PKCE.
///         Some(par) => par.client_id() == "demo-client",
///         None => false,
///     }
/// }
/// # assert!(!handler(&http::Request::new(())));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PushedAuthorization {
    client_id: String,
    auth_method: AuthMethod,
    request_uri: RequestUri,
    pushed_at: SystemTime,
    expires_at: SystemTime,
    compact_url: String,
    reentry: bool,
}

impl PushedAuthorization {
    /// The client the request was pushed by.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// How that client authenticated at the PAR endpoint.
    pub fn auth_method(&self) -> AuthMethod {
        self.auth_method
    }

    /// The `request_uri` that was redeemed.
    pub fn request_uri(&self) -> &RequestUri {
        &self.request_uri
    }

    /// When the request was pushed.
    pub fn pushed_at(&self) -> SystemTime {
        self.pushed_at
    }

    /// When the `request_uri` would have expired had it not been redeemed.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The compact form of this authorization request,
    /// `{authorize_path}?client_id=..&request_uri=..`: use it as the return
    /// URL of a login or consent step instead of the expanded request, so
    /// that pushed parameters never travel through the browser. The same
    /// browser can re-enter it while its flow lasts
    /// ([`Redemption::FlowBound`](crate::Redemption::FlowBound)).
    pub fn compact_authorize_url(&self) -> &str {
        &self.compact_url
    }

    /// Whether this is a re-entry of a flow already in progress (reload,
    /// login bounce) rather than its first redemption.
    pub fn is_reentry(&self) -> bool {
        self.reentry
    }
}

impl fmt::Debug for PushedAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushedAuthorization")
            .field("client_id", &self.client_id)
            .field("auth_method", &self.auth_method)
            .field("request_uri", &self.request_uri)
            .field("pushed_at", &self.pushed_at)
            .field("reentry", &self.reentry)
            .finish()
    }
}

/// A redeemed request on its way through the wrapped service.
struct Flow {
    uri: RequestUri,
    client_id: String,
    redirect_uri: Option<String>,
    form_post: bool,
    /// Digest of the browser binding (flow-bound redemptions only).
    binding: Option<[u8; 32]>,
    /// `Set-Cookie` for a browser that had no binding cookie yet.
    set_cookie: Option<HeaderValue>,
    pushed_at: SystemTime,
}

enum Resolved<B> {
    Pass(Request<ParRequestBody<B>>),
    Flow(Request<ParRequestBody<B>>, Box<Flow>),
}

pub(crate) async fn handle<S, C, St, B, ResB>(
    cfg: Arc<Config<C, St>>,
    mut inner: S,
    req: Request<B>,
) -> Result<Response<ParResponseBody<ResB>>, S::Error>
where
    S: Service<Request<ParRequestBody<B>>, Response = Response<ResB>>,
    C: ClientAuthenticator,
    St: ParStore,
    B: Body<Data = Bytes>,
    ResB: Body<Data = Bytes>,
{
    let accept = req.headers().get(header::ACCEPT).cloned();
    match resolve(&cfg, req).await {
        Ok(Resolved::Pass(req)) => Ok(inner.call(req).await?.map(ParResponseBody::inner)),
        Ok(Resolved::Flow(req, flow)) => {
            let res = inner.call(req).await?;
            Ok(finish(&cfg, *flow, res, accept.as_ref()).await)
        }
        Err(e) => {
            crate::trace::rejected("authorize", &e);
            // OA-5: answered to the browser, never redirected.
            Ok(own(e.browser_response(accept.as_ref())))
        }
    }
}

/// Looks at the wrapped service's answer to a redeemed request: completes
/// the flow on the authorization response, otherwise keeps the expanded
/// request out of redirects (M-3).
async fn finish<C, St, ResB>(
    cfg: &Config<C, St>,
    flow: Flow,
    res: Response<ResB>,
    accept: Option<&HeaderValue>,
) -> Response<ParResponseBody<ResB>>
where
    St: ParStore,
    ResB: Body<Data = Bytes>,
{
    let (mut parts, body) = res.into_parts();
    let mut body = ParResponseBody::inner(body);
    let mut completes = parts.status.is_redirection()
        && match (
            header_str(&parts.headers, header::LOCATION),
            &flow.redirect_uri,
        ) {
            (Some(location), Some(redirect_uri)) => {
                is_authorization_response(location, redirect_uri)
            }
            _ => false,
        };
    if !completes && flow.form_post && flow.binding.is_some() {
        match form_post_response(&parts, body, flow.redirect_uri.as_deref()).await {
            Ok((is_response, own_body)) => {
                completes = is_response;
                body = own_body;
            }
            Err(()) => {
                return own(OAuthError::server_error(
                    "the authorization response could not be read",
                )
                .browser_response(accept));
            }
        }
    }
    if completes {
        if let Some(binding) = &flow.binding {
            // RFC 9126 §4, FAPI 2.0 note 3: one-time use "at the point of
            // authorization". Of two tabs completing at once, one wins.
            match cfg.store.complete(&flow.uri, binding).await {
                Ok(Completion::Completed) => {
                    crate::trace::completed(&flow.client_id, &flow.uri, flow.pushed_at);
                }
                Ok(_) => {
                    let e = OAuthError::invalid_request_uri(
                        "this authorization request has already been completed",
                    );
                    crate::trace::rejected("authorize", &e);
                    return own(e.browser_response(accept));
                }
                Err(_) => {
                    // Fail closed: an authorization response whose request
                    // cannot be marked used is not delivered.
                    return own(OAuthError::temporarily_unavailable(
                        "authorization requests cannot be updated right now, please retry",
                        5,
                    )
                    .browser_response(accept));
                }
            }
        }
    } else if flow.binding.is_some() {
        compact_headers(&mut parts.headers, &cfg.authorize_path, &flow);
    }
    if let Some(cookie) = flow.set_cookie {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    Response::from_parts(parts, body)
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// M-3: replace the expanded request embedded in `Location` / `Refresh`
/// with the compact one. Only headers: bodies are never rewritten.
fn compact_headers(headers: &mut HeaderMap, path: &str, flow: &Flow) {
    let id = flow.client_id.as_str();
    let compact = compact_query(id, &flow.uri.to_string());
    let compact = compact.as_str();
    let new_location =
        header_str(headers, header::LOCATION).and_then(|l| compact_location(l, path, id, compact));
    if let Some(v) = new_location.and_then(|l| HeaderValue::try_from(l).ok()) {
        headers.insert(header::LOCATION, v);
    }
    let refresh = header::HeaderName::from_static("refresh");
    let new_refresh =
        header_str(headers, refresh.clone()).and_then(|r| compact_refresh(r, path, id, compact));
    if let Some(v) = new_refresh.and_then(|r| HeaderValue::try_from(r).ok()) {
        headers.insert(refresh, v);
    }
}

/// Largest `form_post` page inspected for the end of a flow.
const MAX_FORM_POST_PAGE: u64 = 256 * 1024;

/// For `response_mode=form_post`: whether the page is the auto-submitting
/// form that carries the authorization response to the `redirect_uri`.
async fn form_post_response<ResB>(
    parts: &http::response::Parts,
    body: ParResponseBody<ResB>,
    redirect_uri: Option<&str>,
) -> Result<(bool, ParResponseBody<ResB>), ()>
where
    ResB: Body<Data = Bytes>,
{
    let html = header_str(&parts.headers, header::CONTENT_TYPE)
        .is_some_and(|t| t.starts_with("text/html"));
    let small = body
        .size_hint()
        .upper()
        .is_some_and(|n| n <= MAX_FORM_POST_PAGE);
    let plain = parts.headers.get(header::CONTENT_ENCODING).is_none();
    let Some(redirect_uri) = redirect_uri else {
        return Ok((false, body));
    };
    if parts.status != StatusCode::OK || !html || !small || !plain {
        return Ok((false, body));
    }
    let bytes = body.collect().await.map_err(|_| ())?.to_bytes();
    let page = String::from_utf8_lossy(&bytes);
    let escaped = redirect_uri.replace('&', "&amp;");
    let targets_client = page.contains(redirect_uri) || page.contains(&escaped);
    let carries_response = [
        "name=\"code\"",
        "name='code'",
        "name=\"error\"",
        "name='error'",
    ]
    .iter()
    .any(|n| page.contains(n));
    Ok((
        targets_client && carries_response,
        ParResponseBody::own(Full::new(bytes)),
    ))
}

/// The browser-binding secret from the flow cookie, if well-formed.
fn flow_cookie(headers: &HeaderMap, name: &str) -> Option<[u8; 32]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| {
            let mut secret = [0u8; 32];
            match URL_SAFE_NO_PAD.decode_slice(v.trim_matches('"'), &mut secret) {
                Ok(32) => Some(secret),
                _ => None,
            }
        })
}

fn set_cookie<C, St>(cfg: &Config<C, St>, secret: &[u8; 32]) -> Option<HeaderValue> {
    let c = &cfg.flow_cookie;
    let mut v = String::with_capacity(c.name.len() + cfg.authorize_path.len() + 110);
    v.push_str(&c.name);
    v.push('=');
    let mut b64 = [0u8; 43];
    let n = URL_SAFE_NO_PAD.encode_slice(secret, &mut b64).ok()?;
    v.extend(b64[..n].iter().map(|&b| char::from(b)));
    v.push_str("; Path=");
    v.push_str(&cfg.authorize_path);
    v.push_str("; Max-Age=");
    v.push_str(itoa_u64(cfg.flow_window.as_secs(), &mut [0u8; 20]));
    v.push_str("; HttpOnly; SameSite=Lax");
    if c.secure {
        v.push_str("; Secure");
    }
    HeaderValue::try_from(v).ok()
}

/// `n` in decimal, written into `buf`.
fn itoa_u64(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

const NOT_FOUND: &str = "request_uri is unknown, expired or already used";

/// M-2: look up, check the client, consume, rewrite.
async fn resolve<C, St, B>(cfg: &Config<C, St>, req: Request<B>) -> Result<Resolved<B>, OAuthError>
where
    C: ClientAuthenticator,
    St: ParStore,
    B: Body<Data = Bytes>,
{
    let (parts, body) = req.into_parts();
    // OA-2: GET carries the query; POST a form body.
    let (posted, body) = if parts.method == Method::POST && is_form(&parts.headers) {
        let bytes = read_body(&parts.headers, body, cfg.max_body)
            .await
            .map_err(|e| e.into_oauth(cfg.max_body))?;
        (Some(bytes.clone()), ParRequestBody::rewritten(bytes))
    } else {
        (None, ParRequestBody::original(body))
    };
    let raw: &[u8] = match &posted {
        Some(bytes) => bytes,
        None => parts.uri.query().unwrap_or_default().as_bytes(),
    };
    let params = match Params::parse(raw) {
        Ok(p) => p,
        Err(e) => {
            // Not ours to judge, unless PAR is required for any client the
            // request names (a repeated parameter must not hide client_id).
            for id in lenient_values(raw, "client_id") {
                if par_required(cfg, Some(&id)).await {
                    return Err(OAuthError::invalid_request(e.to_string()));
                }
            }
            if cfg.require_par {
                return Err(OAuthError::invalid_request(e.to_string()));
            }
            return Ok(Resolved::Pass(Request::from_parts(parts, body)));
        }
    };
    if parts.method == Method::HEAD {
        if params.contains("request_uri") {
            // Redeeming is a state change: never on HEAD.
            return Err(OAuthError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "use GET or POST to redeem a request_uri",
            )
            .with_allow("GET, POST"));
        }
        return passthrough_or_require(cfg, &params, parts, body)
            .await
            .map(Resolved::Pass);
    }
    let from_query;
    let raw_uri = match params.get("request_uri") {
        Some(uri) => uri,
        None if parts.method == Method::POST => {
            from_query = parts
                .uri
                .query()
                .and_then(|q| Params::parse(q.as_bytes()).ok());
            match from_query.as_ref().and_then(|p| p.get("request_uri")) {
                Some(uri) => uri,
                None => {
                    return passthrough_or_require(cfg, &params, parts, body)
                        .await
                        .map(Resolved::Pass)
                }
            }
        }
        None => {
            return passthrough_or_require(cfg, &params, parts, body)
                .await
                .map(Resolved::Pass)
        }
    };

    let Some(uri) = RequestUri::parse(raw_uri) else {
        // M-1: a request_uri this layer did not issue.
        if cfg.pass_foreign_request_uris && !par_required(cfg, params.get("client_id")).await {
            return Ok(Resolved::Pass(Request::from_parts(parts, body)));
        }
        return Err(OAuthError::invalid_request_uri(NOT_FOUND));
    };
    // PAR-27: client_id is required next to request_uri.
    let client_id = params
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_request("client_id is required with request_uri"))?;
    // PAR-28: strict one-time use, or a flow bound to this browser.
    let presented = flow_cookie(&parts.headers, &cfg.flow_cookie.name);
    let (mode, secret) = match cfg.redemption {
        Redemption::Strict => (RedeemMode::Consume, None),
        Redemption::FlowBound => {
            let secret = presented.unwrap_or_else(|| {
                let mut s = [0u8; 32];
                // OS-seeded ChaCha12: a CSPRNG without a system call.
                rand::thread_rng().fill_bytes(&mut s);
                s
            });
            let binding = Sha256::digest(secret).into();
            (
                RedeemMode::Bind {
                    binding,
                    window: cfg.flow_window,
                },
                Some((secret, binding)),
            )
        }
    };
    let (stored, reentry) = match cfg.store.redeem(&uri, client_id, mode).await {
        Ok(RedeemOutcome::Redeemed(stored)) => {
            crate::trace::redeemed(&stored.client_id, &uri);
            (stored, false)
        }
        Ok(RedeemOutcome::Reentered(stored)) => {
            crate::trace::reentered(&stored.client_id, &uri);
            (stored, true)
        }
        // PAR-29, PAR-28: unknown, expired, used, or another browser's.
        Ok(RedeemOutcome::NotFound) => return Err(OAuthError::invalid_request_uri(NOT_FOUND)),
        // PAR-15: bound to another client; the entry stays usable.
        Ok(RedeemOutcome::WrongClient) => {
            return Err(OAuthError::invalid_request(
                "client_id does not match the client the request_uri was issued to",
            ))
        }
        Err(_) => {
            return Err(OAuthError::temporarily_unavailable(
                "authorization requests cannot be looked up right now, please retry",
                5,
            ))
        }
    };
    let flow = Flow {
        uri,
        client_id: stored.client_id.clone(),
        redirect_uri: stored.redirect_uri.clone(),
        form_post: form_value(&stored.params, "response_mode").as_deref() == Some("form_post"),
        binding: secret.map(|(_, b)| b),
        set_cookie: match (secret, presented) {
            (Some((s, _)), None) => set_cookie(cfg, &s),
            _ => None,
        },
        pushed_at: stored.pushed_at,
    };
    let compact_url = compact_url(&cfg.authorize_path, &stored.client_id, &uri);
    let req = rewrite(parts, body, uri, stored, compact_url, reentry)?;
    Ok(Resolved::Flow(req, Box::new(flow)))
}

/// The first non-empty value of `name` in a stored form (which was
/// validated when it was pushed: no repeats), without parsing all of it.
fn form_value<'a>(form: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    form.split('&')
        .filter_map(|seg| seg.split_once('='))
        .filter(|(n, v)| !v.is_empty() && decode(n).is_ok_and(|n| n == name))
        .find_map(|(_, v)| decode(v).ok().filter(|v| !v.is_empty()))
}

/// `{authorize_path}?client_id=..&request_uri=..`, the compact form of a
/// flow's request, built in one allocation.
fn compact_url(authorize_path: &str, client_id: &str, uri: &RequestUri) -> String {
    let mut out = String::with_capacity(
        authorize_path.len() + client_id.len() * 3 + RequestUri::URN_LEN + 40,
    );
    out.push_str(authorize_path);
    out.push_str("?client_id=");
    push_component(&mut out, client_id);
    out.push_str("&request_uri=");
    let start = out.len();
    uri.push_to(&mut out);
    // The URN is ASCII; only its `:` need escaping.
    let urn = out.split_off(start);
    push_component(&mut out, &urn);
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters (as
/// `compact::compact_query` does).
fn push_component(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// Every decodable value of `name` in a form that failed strict parsing.
fn lenient_values(raw: &[u8], name: &str) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .split('&')
        .filter_map(|seg| seg.split_once('='))
        .filter(|(n, _)| decode(n).is_ok_and(|n| n == name))
        .filter_map(|(_, v)| decode(v).ok().map(|v| v.into_owned()))
        .filter(|v| !v.is_empty())
        .collect()
}

async fn passthrough_or_require<C, St, B>(
    cfg: &Config<C, St>,
    params: &Params,
    parts: Parts,
    body: ParRequestBody<B>,
) -> Result<Request<ParRequestBody<B>>, OAuthError>
where
    C: ClientAuthenticator,
{
    // PAR-31: when PAR is required, only pushed requests get through.
    if par_required(cfg, params.get("client_id")).await {
        return Err(OAuthError::invalid_request(
            "pushed authorization request required",
        ));
    }
    Ok(Request::from_parts(parts, body))
}

async fn par_required<C, St>(cfg: &Config<C, St>, client_id: Option<&str>) -> bool
where
    C: ClientAuthenticator,
{
    if cfg.require_par {
        return true;
    }
    let Some(id) = client_id else { return false };
    if cfg.require_par_clients.contains(id) {
        return true;
    }
    cfg.clients.client(id).await.is_some_and(|c| c.require_par)
}

/// PAR-32: the wrapped service receives only the stored parameters; every
/// front-channel parameter (including `request_uri`) is dropped.
fn rewrite<B>(
    mut parts: Parts,
    body: ParRequestBody<B>,
    uri: RequestUri,
    stored: PushedRequest,
    compact_url: String,
    reentry: bool,
) -> Result<Request<ParRequestBody<B>>, OAuthError> {
    let rebuild_failed = || OAuthError::server_error("stored request could not be rebuilt");
    let path = parts.uri.path();
    let body = if parts.method == Method::POST {
        let path_only = PathAndQuery::try_from(path).map_err(|_| rebuild_failed())?;
        parts.uri = with_path_and_query(&parts.uri, path_only).ok_or_else(rebuild_failed)?;
        let h = &mut parts.headers;
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        h.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(stored.params.len()),
        );
        h.remove(header::TRANSFER_ENCODING);
        ParRequestBody::rewritten(Bytes::from(stored.params.clone()))
    } else {
        let mut pq = String::with_capacity(path.len() + 1 + stored.params.len());
        pq.push_str(path);
        pq.push('?');
        pq.push_str(&stored.params);
        let pq = PathAndQuery::try_from(pq).map_err(|_| rebuild_failed())?;
        parts.uri = with_path_and_query(&parts.uri, pq).ok_or_else(rebuild_failed)?;
        body
    };
    // Never trust one that arrived some other way.
    parts.extensions.insert(PushedAuthorization {
        client_id: stored.client_id,
        auth_method: stored.auth_method,
        request_uri: uri,
        pushed_at: stored.pushed_at,
        expires_at: stored.expires_at,
        compact_url,
        reentry,
    });
    Ok(Request::from_parts(parts, body))
}

fn with_path_and_query(uri: &Uri, pq: PathAndQuery) -> Option<Uri> {
    let mut p = uri.clone().into_parts();
    p.path_and_query = Some(pq);
    Uri::from_parts(p).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_url_matches_compact_query() {
        let uri = RequestUri::generate();
        for id in ["demo-client", "c 1/é:x"] {
            assert_eq!(
                compact_url("/authorize", id, &uri),
                format!("/authorize?{}", compact_query(id, &uri.to_string()))
            );
        }
    }

    #[test]
    fn form_value_reads_the_first_non_empty_value() {
        let form = "a=1&response%5Fmode=form%5Fpost&b=2";
        assert_eq!(
            form_value(form, "response_mode").as_deref(),
            Some("form_post")
        );
        assert_eq!(form_value("response_mode=&x=1", "response_mode"), None);
        assert_eq!(form_value("x=1", "response_mode"), None);
    }

    #[test]
    fn set_cookie_decimal() {
        assert_eq!(itoa_u64(0, &mut [0; 20]), "0");
        assert_eq!(itoa_u64(600, &mut [0; 20]), "600");
        assert_eq!(itoa_u64(u64::MAX, &mut [0; 20]), u64::MAX.to_string());
    }
}
