//! The authorization endpoint (RFC 9126 §4): resolve the `request_uri`,
//! then hand the wrapped service exactly the stored request.

use std::borrow::Cow;
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
use sha2::{Digest, Sha256};
use tower_service::Service;

use super::compact::{
    compact_location, compact_refresh, compact_url, encode_component, is_authorization_response,
    refresh_url, resolve_location,
};
use super::metadata::ask_unencoded;
use super::{has_body, is_encoded, is_form, own, push_decimal, read_body_within};
use crate::body::{ParRequestBody, ParResponseBody};
use crate::client::{AuthMethod, Client, ClientAuthenticator};
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
    dpop_jkt: Option<String>,
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

    /// The DPoP key the authorization code must be bound to (RFC 9449
    /// §10.1, DPOP-11): the RFC 7638 thumbprint of the key of the DPoP
    /// proof the push carried, or the `dpop_jkt` that was pushed. It is
    /// also the stored `dpop_jkt` parameter the wrapped service receives.
    /// A token endpoint must then refuse to redeem the code without a DPoP
    /// proof signed by that key.
    ///
    /// ```
    /// use tower_par::PushedAuthorization;
    ///
    /// /// The key to record with the authorization code, if any.
    /// fn code_binding(req: &http::Request<()>) -> Option<String> {
    ///     req.extensions()
    ///         .get::<PushedAuthorization>()
    ///         .and_then(|par| par.dpop_jkt())
    ///         .map(str::to_owned)
    /// }
    /// # assert_eq!(code_binding(&http::Request::new(())), None);
    /// ```
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.dpop_jkt.as_deref()
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
            .field("dpop_jkt", &self.dpop_jkt)
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
    /// This flow's binding cookie (flow-bound redemptions only).
    cookie_name: String,
    /// The stored form, to check that no pushed value leaves in a header.
    pushed_form: Bytes,
    pushed_at: SystemTime,
}

impl Flow {
    /// Whether [`finish`] may read the answer's body: the `form_post` page
    /// of a flow-bound redemption. The wrapped service is then asked for
    /// it unencoded, since an encoded page cannot be checked.
    fn reads_page(&self) -> bool {
        self.form_post && self.binding.is_some()
    }
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
    // A request without request_uri may be a later step of a flow too.
    let presented = presented_flows(&cfg, req.headers());
    match resolve(&cfg, req).await {
        Ok(Resolved::Pass(mut req)) => {
            if reads_pages(&presented) {
                ask_unencoded(req.headers_mut());
            }
            let res = inner.call(req).await?;
            Ok(complete_later(&cfg, &presented, res, accept.as_ref()).await)
        }
        Ok(Resolved::Flow(mut req, flow)) => {
            if flow.reads_page() {
                ask_unencoded(req.headers_mut());
            }
            let res = inner.call(req).await?;
            Ok(finish(&cfg, *flow, res, accept.as_ref()).await)
        }
        Err(e) => {
            crate::trace::rejected("authorize", &e);
            // OA-5: answered to the browser, never redirected.
            let mut res = e.browser_response(cfg.error_page.as_ref(), accept.as_ref());
            if e.status() == StatusCode::REQUEST_TIMEOUT {
                // The rest of the body may still arrive (RFC 9110 §15.5.9).
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(own(res))
        }
    }
}

/// M-4: a request that reaches the authorization endpoint by another
/// method or another spelling of its path (`/Authorize`, `/%61uthorize`,
/// `//authorize`, `/x/../authorize`, `/authorize;jsessionid=1`) never
/// redeems anything, and gets through only when PAR is not required for it.
pub(crate) async fn guard<S, C, St, B, ResB>(
    cfg: Arc<Config<C, St>>,
    mut inner: S,
    req: Request<B>,
) -> Result<Response<ParResponseBody<ResB>>, S::Error>
where
    S: Service<Request<ParRequestBody<B>>, Response = Response<ResB>>,
    C: ClientAuthenticator,
    St: ParStore,
    B: Body,
    ResB: Body<Data = Bytes>,
{
    let accept = req.headers().get(header::ACCEPT).cloned();
    let presented = presented_flows(&cfg, req.headers());
    let (mut parts, body) = req.into_parts();
    // PAR-31: another method, or another spelling of the path, is never
    // read by the layer; a body there could name a client that requires
    // PAR, so it gets through only when no client can.
    let checked = if has_body(&parts.headers, &body) && par_may_be_required(&cfg) {
        Err(unreadable(
            &cfg,
            "a body is not accepted with this method or path",
        ))
    } else {
        require_check(&cfg, &parts, None).await
    };
    match checked {
        Ok(()) => {
            if reads_pages(&presented) {
                ask_unencoded(&mut parts.headers);
            }
            let res = inner
                .call(Request::from_parts(parts, ParRequestBody::original(body)))
                .await?;
            Ok(complete_later(&cfg, &presented, res, accept.as_ref()).await)
        }
        Err(e) if e.status() != StatusCode::BAD_REQUEST => Ok(refuse(&cfg, e, accept.as_ref())),
        Err(_) => {
            // The same answer as a classic request without request_uri
            // (PAR-31), naming the one way in.
            let e = OAuthError::invalid_request(format!(
                "pushed authorization request required: use GET or POST {} with client_id and request_uri",
                cfg.authorize_path
            ));
            Ok(refuse(&cfg, e, accept.as_ref()))
        }
    }
}

/// Whether `path` could reach the authorization endpoint on a server that
/// normalises paths (case, percent-encoding, `;` parameters, empty and dot
/// segments, `\` read as `/`, format suffixes such as `.json`, trailing
/// dots and spaces) although it is not literally `authorize_path`. Cheap
/// and allocation-free for ordinary paths.
pub(crate) fn may_alias(path: &str, authorize_path: &str) -> bool {
    let special = path.bytes().any(|b| matches!(b, b'%' | b';' | b'\\'))
        || path.contains("//")
        || path.split('/').any(|s| s == "." || s == "..");
    if !special {
        return loosely_is(path, authorize_path);
    }
    loosely_is(&normalize_path(path), authorize_path)
}

/// `authorize_path` in any case, then nothing, `/`, or a last-segment
/// suffix that Rails-style format routes (`.json`), Spring suffix matching
/// or IIS (trailing `.` and spaces) would ignore.
fn loosely_is(path: &str, authorize_path: &str) -> bool {
    let Some(head) = path.get(..authorize_path.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(authorize_path) {
        return false;
    }
    let rest = &path[authorize_path.len()..];
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.is_empty() || (rest.starts_with(['.', ' ']) && !rest.contains('/'))
}

fn normalize_path(path: &str) -> String {
    // Decoded first, so that `%2F` and `%5C` separate segments as well.
    let decoded = percent_decode_lossy(path).replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for raw in decoded.split('/') {
        // `;` starts path parameters (servlet containers drop them).
        let seg = raw.split(';').next().unwrap_or_default();
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(seg),
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn percent_decode_lossy(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    let to_client = |url: Option<&str>| match (url, &flow.redirect_uri) {
        (Some(url), Some(redirect_uri)) => sends_to(cfg, url, redirect_uri),
        _ => false,
    };
    let mut completes = {
        let refresh = header_str(&parts.headers, header::HeaderName::from_static("refresh"));
        let location = header_str(&parts.headers, header::LOCATION);
        (parts.status.is_redirection() && to_client(location.as_deref()))
            || to_client(refresh.as_deref().and_then(refresh_url))
    };
    if !completes && flow.reads_page() {
        match form_post_response(&parts, body, flow.redirect_uri.as_deref()).await {
            Ok((is_response, own_body)) => {
                completes = is_response;
                body = own_body;
            }
            Err(why) => return refuse(cfg, OAuthError::server_error(why), accept),
        }
    }
    if completes {
        if let Some(binding) = &flow.binding {
            // RFC 9126 §4, FAPI 2.0 note 3: one-time use "at the point of
            // authorization". Of two tabs completing at once, one wins.
            match cfg.store.complete(&flow.uri, binding).await {
                Ok(Completion::Completed) => {
                    crate::trace::completed(&flow.client_id, &flow.uri, flow.pushed_at);
                    if let Some(clear) = clear_cookie(cfg, &flow.cookie_name) {
                        parts.headers.append(header::SET_COOKIE, clear);
                    }
                }
                Ok(_) => return already_completed(cfg, accept),
                Err(_) => return store_down(cfg, accept),
            }
        }
    } else {
        // M-3, in strict flows too: the compact URL cannot be re-entered
        // there, but the pushed values still stay out of the browser.
        compact_headers(&mut parts.headers, &cfg.authorize_path, &flow);
        // Failing closed: a redirect that still carries a pushed value in a
        // form compaction does not know is not sent to the browser.
        if leaks_pushed_values(&parts.headers, &cfg.authorize_path, &flow) {
            let e = OAuthError::server_error(
                "the authorization server's response would send the pushed request back through the browser",
            );
            return refuse(cfg, e, accept);
        }
    }
    if let Some(cookie) = flow.set_cookie {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    Response::from_parts(parts, body)
}

/// Whether the URL of a `Location` or `Refresh` sends the browser to
/// `redirect_uri`; a relative one is resolved against the issuer's origin.
fn sends_to<C, St>(cfg: &Config<C, St>, url: &str, redirect_uri: &str) -> bool {
    // Only a relative Location needs the issuer's origin.
    let origin = url
        .starts_with('/')
        .then(|| cfg.advertised_authorize_endpoint())
        .flatten()
        .map(|mut u| {
            u.truncate(u.len() - cfg.authorize_path.len());
            u
        });
    is_authorization_response(&resolve_location(url, origin.as_deref()), redirect_uri)
}

/// A flow's binding cookie as a browser presents it on a later step.
///
/// The cookie value is `<secret>.<reference>.<client_id>`, with `.f`
/// appended for a `response_mode=form_post` flow: the 32-byte secret and
/// the `client_id` in base64url, the `request_uri`'s 43-character
/// reference as it is. The browser already has the `request_uri` and the
/// `client_id` in its URL, so the cookie tells it nothing new; on a later
/// step, where the URL names neither, they let the layer find the flow
/// ([`ParStore::in_flow`]), whose stored `redirect_uri` (never one the
/// cookie could carry) decides whether a response ends it. The store
/// answers only for the binding of the presented secret and for that
/// client, so an altered reference or `client_id` finds nothing. Re-entry
/// at the authorization endpoint accepts a value only when all of it
/// agrees with the request and the flow (the name's tag, reference,
/// `client_id`, the form_post mark): a browser that alters its cookie can
/// neither complete nor re-enter. One that withholds it on the later step
/// does not complete there; it keeps only what the flow-bound policy gives
/// the same browser anyway, re-entry until the flow window ends, and never
/// anything for another browser.
struct Presented {
    uri: RequestUri,
    client_id: String,
    /// Digest of the presented secret: the binding the flow must have.
    binding: [u8; 32],
    form_post: bool,
}

/// Whether [`complete_later`] may read the answer's body: a `form_post`
/// flow is presented, so an HTML `200` may be its page. The wrapped service
/// is then asked for it unencoded, since an encoded page cannot be checked;
/// other requests keep their `Accept-Encoding`.
fn reads_pages(presented: &[Presented]) -> bool {
    presented.iter().any(|f| f.form_post)
}

/// The cookie value for a flow (see [`Presented`]).
fn flow_cookie_value(
    fresh: &[u8; 32],
    uri: &RequestUri,
    client_id: &str,
    form_post: bool,
) -> String {
    let mut v = String::with_capacity(43 + 1 + 43 + 1 + client_id.len() * 4 / 3 + 6);
    let mut b64 = [0u8; 43];
    if let Ok(n) = URL_SAFE_NO_PAD.encode_slice(fresh, &mut b64) {
        v.extend(b64[..n].iter().map(|&b| char::from(b)));
    }
    v.push('.');
    let mut urn = String::with_capacity(RequestUri::URN_LEN);
    uri.push_to(&mut urn);
    v.push_str(&urn[crate::REQUEST_URI_PREFIX.len()..]);
    v.push('.');
    URL_SAFE_NO_PAD.encode_string(client_id.as_bytes(), &mut v);
    if form_post {
        v.push_str(".f");
    }
    v
}

/// Reads a flow cookie value: secret, `request_uri`, `client_id`, and
/// whether the flow is `form_post`. `None` for anything malformed.
fn parse_flow_cookie_value(value: &str) -> Option<([u8; 32], RequestUri, String, bool)> {
    let mut fields = value.trim_matches('"').split('.');
    let (secret, reference, client) = (fields.next()?, fields.next()?, fields.next()?);
    let form_post = match fields.next() {
        None => false,
        Some("f") => true,
        Some(_) => return None,
    };
    if fields.next().is_some() || reference.len() != 43 || client.len() > 340 {
        return None;
    }
    let mut bytes = [0u8; 32];
    if URL_SAFE_NO_PAD.decode_slice(secret, &mut bytes) != Ok(32) {
        return None;
    }
    let mut urn = String::with_capacity(RequestUri::URN_LEN);
    urn.push_str(crate::REQUEST_URI_PREFIX);
    urn.push_str(reference);
    let uri = RequestUri::parse(&urn)?;
    let client_id = String::from_utf8(URL_SAFE_NO_PAD.decode(client).ok()?).ok()?;
    if client_id.is_empty() || !plausible_client_id(&client_id) {
        return None;
    }
    Some((bytes, uri, client_id, form_post))
}

/// Whether the `Cookie` headers hold a cookie whose name starts like a
/// flow cookie's (`__Host-par_flow_` or `par_flow_`). Allocation-free: it
/// decides whether a request on a flow path is looked at at all.
pub(crate) fn has_flow_cookie<C, St>(cfg: &Config<C, St>, headers: &HeaderMap) -> bool {
    let name = cfg.flow_cookie.name.as_bytes();
    let host = HOST_PREFIX.as_bytes();
    headers.get_all(header::COOKIE).iter().any(|v| {
        let v = v.as_bytes();
        (0..v.len().saturating_sub(name.len())).any(|i| {
            v[i..].starts_with(name)
                && v.get(i + name.len()) == Some(&b'_')
                && (!cfg.flow_cookie.secure || v[..i].ends_with(host))
        })
    })
}

/// Length of the tag after `<name>_` in a flow cookie's name: 9 bytes of
/// digest in base64url (see [`flow_cookie_name`]).
const FLOW_TAG_LEN: usize = 12;

/// The flows whose binding cookies a request on a watched path presents:
/// well-formed values under the name derived from their own `request_uri`,
/// at most [`MAX_FLOW_SECRETS`] of them. Only such values count toward that
/// cap, so cookies planted under other names, or with malformed values or
/// values of another flow, never crowd out a flow's own; every cookie is
/// looked at, at a cost bounded by the header's bytes (a name of the exact
/// `<name>_<tag>` shape is parsed further, a value that parses costs one
/// digest). Empty (and without allocation) unless the request carries a
/// flow cookie under flow-bound redemption.
fn presented_flows<C, St>(cfg: &Config<C, St>, headers: &HeaderMap) -> Vec<Presented> {
    let mut flows: Vec<Presented> = Vec::new();
    if cfg.redemption != Redemption::FlowBound || !has_flow_cookie(cfg, headers) {
        return flows;
    }
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='));
    let flow_shaped = |name: &str| {
        let name = match cfg.flow_cookie.secure {
            true => name.strip_prefix(HOST_PREFIX),
            false => Some(name),
        };
        name.and_then(|n| n.strip_prefix(cfg.flow_cookie.name.as_str()))
            .and_then(|n| n.strip_prefix('_'))
            .is_some_and(|tag| {
                tag.len() == FLOW_TAG_LEN
                    && tag
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    for (name, value) in cookies.filter(|(n, _)| flow_shaped(n)) {
        let Some((secret, uri, client_id, form_post)) = parse_flow_cookie_value(value) else {
            continue;
        };
        // A value under another flow's name is not that flow's cookie.
        if name != flow_cookie_name(cfg, &uri) {
            continue;
        }
        let binding: [u8; 32] = Sha256::digest(secret).into();
        if flows.iter().any(|f| f.binding == binding) {
            continue;
        }
        flows.push(Presented {
            uri,
            client_id,
            binding,
            form_post,
        });
        if flows.len() == MAX_FLOW_SECRETS {
            break;
        }
    }
    flows
}

/// Serves a request on a flow path outside the authorization endpoint (a
/// login, consent or resume step of the wrapped service) from a browser
/// presenting a flow cookie, and completes the flows the response ends.
pub(crate) async fn watch<S, C, St, B, ResB>(
    cfg: Arc<Config<C, St>>,
    mut inner: S,
    mut req: Request<B>,
) -> Result<Response<ParResponseBody<ResB>>, S::Error>
where
    S: Service<Request<ParRequestBody<B>>, Response = Response<ResB>>,
    St: ParStore,
    ResB: Body<Data = Bytes>,
{
    let accept = req.headers().get(header::ACCEPT).cloned();
    let presented = presented_flows(&cfg, req.headers());
    if reads_pages(&presented) {
        ask_unencoded(req.headers_mut());
    }
    let res = inner.call(req.map(ParRequestBody::original)).await?;
    Ok(complete_later(&cfg, &presented, res, accept.as_ref()).await)
}

/// The `state` of an authorization response URL (query, else fragment), as
/// sent: the first non-empty value of a parameter whose name decodes to
/// `state`.
fn response_state(url: &str) -> Option<&str> {
    let (before_fragment, fragment) = url.split_once('#').unwrap_or((url, ""));
    let query = before_fragment.split_once('?').map_or("", |(_, q)| q);
    [query, fragment].into_iter().find_map(|part| {
        part.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (!value.is_empty() && decode(name).is_ok_and(|n| n == "state")).then_some(value)
        })
    })
}

/// RFC 3986 percent-decoding, `+` left as it is; `None` when an escape is
/// malformed or the result is not UTF-8.
fn percent_decode_strict(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
            let (h, l) = (hex(bytes.get(i + 1))?, hex(bytes.get(i + 2))?);
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether a response that sends the browser to the client could be the
/// one of the flow of `stored`: when both carry a `state`, they agree. So
/// that of two flows of one client in one browser, the one answered ends.
///
/// The states differ only when both readings of the response's `state`
/// differ from the pushed value: form-decoded (`+` is a space) and
/// percent-decoded as an RFC 3986 query (`+` is itself; servers that build
/// the redirect with a URI builder leave it unencoded). A reading that does
/// not decode shows no difference.
fn state_agrees(url: &str, stored: &PushedRequest) -> bool {
    let pushed = Params::parse(stored.params.as_bytes())
        .ok()
        .and_then(|p| p.get("state").map(str::to_owned));
    match (pushed, response_state(url)) {
        (Some(pushed), Some(answered)) => {
            let form_differs = decode(answered).is_ok_and(|form| form != pushed);
            let uri_differs = percent_decode_strict(answered).is_some_and(|uri| uri != pushed);
            !(form_differs && uri_differs)
        }
        _ => true,
    }
}

/// A response on a later step of a flow (not to a request that redeemed a
/// `request_uri`): any response that sends a browser presenting a flow's
/// binding to that flow's pushed `redirect_uri` (3xx `Location`,
/// `Refresh`, or for a `form_post` flow the auto-submitting page)
/// completes the flow as [`finish`] does. The store is asked only when the
/// response could be an authorization response: a redirect, a `Refresh`,
/// or an HTML `200` while a `form_post` flow is presented.
async fn complete_later<C, St, ResB>(
    cfg: &Config<C, St>,
    presented: &[Presented],
    res: Response<ResB>,
    accept: Option<&HeaderValue>,
) -> Response<ParResponseBody<ResB>>
where
    St: ParStore,
    ResB: Body<Data = Bytes>,
{
    if presented.is_empty() {
        return res.map(ParResponseBody::inner);
    }
    let (mut parts, body) = res.into_parts();
    let mut body = ParResponseBody::inner(body);
    let location = parts
        .status
        .is_redirection()
        .then(|| header_str(&parts.headers, header::LOCATION))
        .flatten()
        .map(Cow::into_owned);
    let refresh = header_str(&parts.headers, header::HeaderName::from_static("refresh"))
        .and_then(|r| refresh_url(&r).map(str::to_owned));
    let page = parts.status == StatusCode::OK && is_html(&parts.headers);
    let redirects = location.is_some() || refresh.is_some();
    let (mut completed, mut lost) = (false, false);
    for flow in presented {
        let could_end = redirects || (page && flow.form_post);
        if !could_end {
            continue;
        }
        let stored = match cfg
            .store
            .in_flow(&flow.uri, &flow.client_id, &flow.binding)
            .await
        {
            Ok(Some(stored)) => stored,
            Ok(None) => continue,
            Err(_) => return store_down(cfg, accept),
        };
        let Some(redirect_uri) = stored.redirect_uri.as_deref() else {
            continue;
        };
        let to_client = |url: &Option<String>| {
            url.as_deref()
                .is_some_and(|u| sends_to(cfg, u, redirect_uri) && state_agrees(u, &stored))
        };
        let mut ends = to_client(&location) || to_client(&refresh);
        if !ends && flow.form_post && page {
            match form_post_response(&parts, body, Some(redirect_uri)).await {
                Ok((is_response, own_body)) => {
                    ends = is_response;
                    body = own_body;
                }
                Err(why) => return refuse(cfg, OAuthError::server_error(why), accept),
            }
        }
        if !ends {
            continue;
        }
        // Every flow the response ends is completed: without a `state`,
        // two flows of one client in one browser cannot be told apart, and
        // the one answered must not stay open.
        match cfg.store.complete(&flow.uri, &flow.binding).await {
            Ok(Completion::Completed) => {
                completed = true;
                crate::trace::completed(&stored.client_id, &flow.uri, stored.pushed_at);
                if let Some(clear) = clear_cookie(cfg, &flow_cookie_name(cfg, &flow.uri)) {
                    parts.headers.append(header::SET_COOKIE, clear);
                }
            }
            Ok(_) => lost = true,
            Err(_) => return store_down(cfg, accept),
        }
    }
    if lost && !completed {
        // Another response completed the flow first: one authorization
        // response per flow.
        return already_completed(cfg, accept);
    }
    Response::from_parts(parts, body)
}

/// A refusal at the authorization endpoint, answered to the browser (never
/// redirected, OA-5) and recorded.
fn refuse<C, St, B>(
    cfg: &Config<C, St>,
    e: OAuthError,
    accept: Option<&HeaderValue>,
) -> Response<ParResponseBody<B>> {
    crate::trace::rejected("authorize", &e);
    own(e.browser_response(cfg.error_page.as_ref(), accept))
}

/// The answer when a flow's completion is lost to another response.
fn already_completed<C, St, B>(
    cfg: &Config<C, St>,
    accept: Option<&HeaderValue>,
) -> Response<ParResponseBody<B>> {
    refuse(
        cfg,
        OAuthError::invalid_request_uri("this authorization request has already been completed"),
        accept,
    )
}

/// Fail closed: an authorization response whose request cannot be looked
/// up or marked used is not delivered.
fn store_down<C, St, B>(
    cfg: &Config<C, St>,
    accept: Option<&HeaderValue>,
) -> Response<ParResponseBody<B>> {
    own(OAuthError::temporarily_unavailable(
        "authorization requests cannot be updated right now, please retry",
        5,
    )
    .browser_response(cfg.error_page.as_ref(), accept))
}

/// A header's text; bytes that are not UTF-8 (which `HeaderValue` allows)
/// must not hide a URL from the checks below.
fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<Cow<'_, str>> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
}

/// M-3: replace the expanded request embedded in `Location` / `Refresh`
/// with the compact one. Only headers: bodies are never rewritten.
fn compact_headers(headers: &mut HeaderMap, path: &str, flow: &Flow) {
    let refresh = header::HeaderName::from_static("refresh");
    if !headers.contains_key(header::LOCATION) && !headers.contains_key(&refresh) {
        return;
    }
    let id = flow.client_id.as_str();
    let url = compact_url(path, id, &flow.uri);
    let compact = url.split_once('?').map_or("", |(_, q)| q);
    let new_location =
        header_str(headers, header::LOCATION).and_then(|l| compact_location(&l, path, id, compact));
    if let Some(v) = new_location.and_then(|l| HeaderValue::try_from(l).ok()) {
        headers.insert(header::LOCATION, v);
    }
    let new_refresh =
        header_str(headers, refresh.clone()).and_then(|r| compact_refresh(&r, path, id, compact));
    if let Some(v) = new_refresh.and_then(|r| HeaderValue::try_from(r).ok()) {
        headers.insert(refresh, v);
    }
}

/// Pushed values shorter than this are not looked for: short words
/// (`code`, `login`) appear in URLs by chance.
const MIN_MARK: usize = 12;

/// M-3: whether a `Location` or `Refresh` header (every value) still holds a
/// pushed value of [`MIN_MARK`] characters or more (other than `client_id`
/// and `scope`, which login pages show), as sent or percent-decoded once or
/// twice, outside the compact form of this flow's request.
fn leaks_pushed_values(headers: &HeaderMap, path: &str, flow: &Flow) -> bool {
    let Ok(params) = Params::parse(&flow.pushed_form) else {
        return false;
    };
    let marks: Vec<&str> = params
        .iter()
        .filter(|(n, v)| *n != "client_id" && *n != "scope" && v.len() >= MIN_MARK)
        .map(|(_, v)| v)
        .collect();
    if marks.is_empty() {
        return false;
    }
    let compact = compact_url(path, &flow.client_id, &flow.uri);
    let once = encode_component(&compact);
    let twice = encode_component(&once);
    let refresh = header::HeaderName::from_static("refresh");
    headers
        .get_all(header::LOCATION)
        .iter()
        .chain(headers.get_all(refresh).iter())
        .any(|v| {
            let text = String::from_utf8_lossy(v.as_bytes())
                .replace(&twice, "")
                .replace(&once, "")
                .replace(&compact, "");
            let d1 = form_decode_lossy(&text);
            let d2 = form_decode_lossy(&d1);
            marks
                .iter()
                .any(|m| text.contains(m) || d1.contains(m) || d2.contains(m))
        })
}

/// Percent-decodes what decodes, `+` as a space, invalid UTF-8 replaced.
fn form_decode_lossy(s: &str) -> String {
    percent_decode_lossy(&s.replace('+', " "))
}

/// Largest `form_post` page inspected for the end of a flow.
const MAX_FORM_POST_PAGE: usize = 256 * 1024;

/// Why a response is not delivered when it could end a `form_post` flow
/// but cannot be checked.
const UNREADABLE: &str = "the authorization response could not be read";
const UNCHECKABLE: &str = "the authorization server's response cannot be verified: \
     a response to a form_post flow is checked only when it is not compressed \
     (Content-Encoding) and at most 256 KiB";

/// Whether the media type of `Content-Type` is `text/html` (in any case,
/// parameters ignored).
fn is_html(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE).is_some_and(|t| {
        t.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("text/html")
    })
}

/// Whether the body is sent as it is: no `Content-Encoding`, or only
/// `identity`.
fn identity_encoded(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_ENCODING).iter().all(|v| {
        String::from_utf8_lossy(v.as_bytes()).split(',').all(|c| {
            let c = c.trim();
            c.is_empty() || c.eq_ignore_ascii_case("identity")
        })
    })
}

/// For `response_mode=form_post`: whether the page is the auto-submitting
/// form that carries the authorization response to the `redirect_uri`.
///
/// Every HTML `200` is read, whatever its size hint (a streamed body
/// included), up to [`MAX_FORM_POST_PAGE`]. Fails closed (`Err`, with the
/// reason) on an HTML `200` that cannot be checked: one with a
/// `Content-Encoding` other than `identity`, one larger than that, or a
/// body that fails; the caller answers with a `server_error` page instead.
async fn form_post_response<ResB>(
    parts: &http::response::Parts,
    body: ParResponseBody<ResB>,
    redirect_uri: Option<&str>,
) -> Result<(bool, ParResponseBody<ResB>), &'static str>
where
    ResB: Body<Data = Bytes>,
{
    let Some(redirect_uri) = redirect_uri else {
        return Ok((false, body));
    };
    if parts.status != StatusCode::OK || !is_html(&parts.headers) {
        return Ok((false, body));
    }
    let too_large = body.size_hint().lower() > MAX_FORM_POST_PAGE as u64;
    if !identity_encoded(&parts.headers) || too_large {
        return Err(UNCHECKABLE);
    }
    let limited = http_body_util::Limited::new(
        body.map_err(|_| std::io::Error::other("response body")),
        MAX_FORM_POST_PAGE,
    );
    let bytes = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(UNCHECKABLE),
        Err(_) => return Err(UNREADABLE),
    };
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

/// Values of this flow's cookie read at most: a browser holds one, but a
/// cookie planted for another path or domain comes with it.
const MAX_FLOW_SECRETS: usize = 4;

/// The name of the binding cookie of the flow of `uri`: the configured name
/// (behind `__Host-` when the cookie is `Secure`), then a tag derived from
/// the `request_uri`. One cookie per flow: a redemption never has to repeat
/// another flow's secret (so it never echoes what it did not issue), and
/// values planted under other names cannot crowd out this one.
fn flow_cookie_name<C, St>(cfg: &Config<C, St>, uri: &RequestUri) -> String {
    let c = &cfg.flow_cookie;
    let mut urn = String::with_capacity(RequestUri::URN_LEN);
    uri.push_to(&mut urn);
    let mut h = Sha256::new();
    h.update(b"tower-par flow cookie\0");
    h.update(urn.as_bytes());
    let tag = h.finalize();
    let mut name = String::with_capacity(7 + c.name.len() + 13);
    if c.secure {
        name.push_str(HOST_PREFIX);
    }
    name.push_str(&c.name);
    name.push('_');
    let mut b64 = [0u8; 12];
    if let Ok(n) = URL_SAFE_NO_PAD.encode_slice(&tag[..9], &mut b64) {
        name.extend(b64[..n].iter().map(|&b| char::from(b)));
    }
    name
}

/// RFC 6265bis §4.1.3.2: a `__Host-` cookie is `Secure`, has `Path=/` and no
/// `Domain`, so neither a sibling subdomain nor plain HTTP can set it.
const HOST_PREFIX: &str = "__Host-";

/// The secrets the browser presents in the cookie named `name` for the
/// flow of `uri` and `client_id`, each with its `form_post` mark; values
/// that are malformed or name another flow or client are ignored.
fn flow_secrets(
    headers: &HeaderMap,
    name: &str,
    uri: &RequestUri,
    client_id: &str,
) -> Vec<([u8; 32], bool)> {
    let mut secrets: Vec<([u8; 32], bool)> = Vec::new();
    let values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'));
    for value in values {
        let Some((secret, in_uri, in_client, form_post)) = parse_flow_cookie_value(value) else {
            continue;
        };
        if in_uri != *uri || in_client != client_id {
            continue;
        }
        if !secrets.iter().any(|(s, _)| *s == secret) {
            secrets.push((secret, form_post));
            if secrets.len() == MAX_FLOW_SECRETS {
                break;
            }
        }
    }
    secrets
}

/// The path the binding cookie is scoped to: `/` for a `__Host-` cookie,
/// else what covers the authorization endpoint and the flow paths.
fn cookie_path<C, St>(cfg: &Config<C, St>) -> &str {
    cfg.flow_cookie_path()
}

/// The cookie after a first redemption: this flow's fresh secret, alone,
/// with what finds the flow again on a later step (see [`Presented`]).
fn set_cookie<C, St>(cfg: &Config<C, St>, name: &str, value: &str) -> Option<HeaderValue> {
    let path = cookie_path(cfg);
    let mut v = String::with_capacity(name.len() + value.len() + path.len() + 70);
    v.push_str(name);
    v.push('=');
    v.push_str(value);
    v.push_str("; Path=");
    v.push_str(path);
    v.push_str("; Max-Age=");
    push_decimal(&mut v, cfg.flow_window.as_secs());
    v.push_str("; HttpOnly; SameSite=Lax");
    if cfg.flow_cookie.secure {
        v.push_str("; Secure");
    }
    HeaderValue::try_from(v).ok()
}

/// Removes a completed flow's cookie from the browser.
fn clear_cookie<C, St>(cfg: &Config<C, St>, name: &str) -> Option<HeaderValue> {
    let path = cookie_path(cfg);
    let secure = if cfg.flow_cookie.secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::try_from(format!(
        "{name}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
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
    // OA-2: GET carries the query; POST a form body. A compressed form
    // could hide its client_id from the checks below while the wrapped
    // service decompresses it; browsers never send one.
    if parts.method == Method::POST && is_encoded(&parts.headers) {
        return Err(OAuthError::invalid_request(
            "compressed request bodies are not accepted at the authorization endpoint",
        ));
    }
    let readable_form = parts.method == Method::POST && is_form(&parts.headers);
    let (form, body, unread) = if readable_form {
        // The same deadline as the PAR endpoint's: a stalled form must not
        // hold the connection.
        let bytes = read_body_within(&parts.headers, body, cfg.max_body, cfg.par_body_timeout)
            .await
            .map_err(|e| e.into_oauth(cfg.max_body))?;
        (Some(bytes.clone()), ParRequestBody::rewritten(bytes), false)
    } else {
        let unread = has_body(&parts.headers, &body);
        (None, ParRequestBody::original(body), unread)
    };
    let query = parts.uri.query().unwrap_or_default();
    // PAR-31: a body the layer does not read (another media type, a
    // compressed or multipart form, a body on GET) could name a client that
    // requires PAR to a framework that reads it. Only a redeemable
    // request_uri in the query (whose redemption replaces the body) gets
    // such a request in while PAR may be required for anyone.
    if unread
        && par_may_be_required(cfg)
        && !Params::parse(query.as_bytes()).is_ok_and(|q| q.contains("request_uri"))
    {
        return Err(unreadable(
            cfg,
            "the request body is not an application/x-www-form-urlencoded form",
        ));
    }
    let params = match Params::parse(form.as_deref().unwrap_or(query.as_bytes())) {
        Ok(p) => p,
        Err(e) => {
            // Not ours to judge, unless PAR is required for any client the
            // request names (a repeated parameter must not hide client_id).
            require_check(cfg, &parts, form.as_deref())
                .await
                .map_err(|r| match r.status() {
                    StatusCode::BAD_REQUEST => OAuthError::invalid_request(e.to_string()),
                    _ => r,
                })?;
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
        require_check(cfg, &parts, form.as_deref()).await?;
        return Ok(Resolved::Pass(Request::from_parts(parts, body)));
    }
    // A POST may carry request_uri (and client_id) in its query instead.
    let from_query = match (form.is_some(), params.contains("request_uri")) {
        (true, false) => Params::parse(query.as_bytes()).ok(),
        _ => None,
    };
    let source = match &from_query {
        Some(q) if q.contains("request_uri") => q,
        _ => &params,
    };
    let Some(raw_uri) = source.get("request_uri") else {
        require_check(cfg, &parts, form.as_deref()).await?;
        return Ok(Resolved::Pass(Request::from_parts(parts, body)));
    };

    let Some(uri) = RequestUri::parse(raw_uri) else {
        // M-1: a request_uri this layer did not issue.
        if cfg.pass_foreign_request_uris && !(unread && par_may_be_required(cfg)) {
            match require_check(cfg, &parts, form.as_deref()).await {
                Ok(()) => return Ok(Resolved::Pass(Request::from_parts(parts, body))),
                Err(e) if e.status() != StatusCode::BAD_REQUEST => return Err(e),
                Err(_) => {}
            }
        }
        return Err(OAuthError::invalid_request_uri(NOT_FOUND));
    };
    // PAR-27: client_id is required next to request_uri.
    let client_id = source
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_request("client_id is required with request_uri"))?;
    // PAR-41: the client is looked up before the store is touched, so that
    // a registry outage leaves the request_uri redeemable for a retry.
    // PAR-15, PAR-29: an unknown client, like a client the request_uri was
    // not issued to, gets the answer an unknown request_uri gets.
    let lookup = match plausible_client_id(client_id) {
        true => cfg.clients.client(client_id).await,
        false => Ok(None),
    };
    let client = match lookup {
        Ok(Some(client)) => client,
        Ok(None) => return Err(OAuthError::invalid_request_uri(NOT_FOUND)),
        Err(_) => return Err(registry_unavailable()),
    };
    // PAR-28: strict one-time use, or a flow bound to this browser.
    let cookie_name = flow_cookie_name(cfg, &uri);
    let (outcome, fresh) = match cfg.redemption {
        Redemption::Strict => (
            cfg.store.redeem(&uri, client_id, RedeemMode::Consume).await,
            None,
        ),
        Redemption::FlowBound => {
            // A first redemption binds to a fresh secret, never to one the
            // browser presents (a planted cookie must not claim the flow);
            // presented secrets only re-enter flows already bound to them.
            let mut fresh = [0u8; 32];
            crate::request_uri::fill_random(&mut fresh);
            let binding: [u8; 32] = Sha256::digest(fresh).into();
            // Only the cookie named for this request_uri is read: values
            // planted under other names never crowd it out.
            let presented = flow_secrets(&parts.headers, &cookie_name, &uri, client_id);
            let mut outcome = Ok(RedeemOutcome::NotFound);
            let mut matched = None;
            for (reenter, form_post) in presented
                .iter()
                .map(|(s, f)| (Some(Sha256::digest(s).into()), *f))
                .chain(
                    // Without a cookie: one attempt, which only a pushed entry
                    // can satisfy.
                    presented.is_empty().then_some((None, false)),
                )
            {
                let mode = RedeemMode::Bind {
                    binding,
                    reenter,
                    window: cfg.flow_window,
                };
                let attempt = cfg.store.redeem(&uri, client_id, mode).await;
                // PAR-15: an entry bound to another client answers every
                // attempt alike; trying the rest too keeps the number of
                // store calls the same as for an unknown request_uri.
                if matches!(attempt, Ok(RedeemOutcome::WrongClient)) {
                    outcome = attempt;
                    continue;
                }
                if !matches!(attempt, Ok(RedeemOutcome::NotFound)) {
                    outcome = attempt;
                    matched = reenter.map(|r| (r, form_post));
                    break;
                }
                if !matches!(outcome, Ok(RedeemOutcome::WrongClient)) {
                    outcome = attempt;
                }
            }
            (outcome, Some((fresh, binding, matched)))
        }
    };
    let (stored, reentry, flow_binding, new_secret, marked_form_post) = match outcome {
        Ok(RedeemOutcome::Redeemed(stored)) => {
            crate::trace::redeemed(&stored.client_id, &uri);
            let (binding, secret) = match &fresh {
                Some((secret, binding, _)) => (Some(*binding), Some(*secret)),
                None => (None, None),
            };
            (stored, false, binding, secret, None)
        }
        Ok(RedeemOutcome::Reentered(stored)) => {
            crate::trace::reentered(&stored.client_id, &uri);
            // The binding of this flow is the presented secret that matched.
            let matched = fresh.as_ref().and_then(|(_, _, matched)| *matched);
            (
                stored,
                true,
                matched.map(|(b, _)| b),
                None,
                matched.map(|(_, f)| f),
            )
        }
        // PAR-29, PAR-28: unknown, expired, used, or another browser's.
        // PAR-15: bound to another client (the entry stays usable), told
        // apart from an unknown one by nothing the caller sees.
        Ok(RedeemOutcome::NotFound) | Ok(RedeemOutcome::WrongClient) => {
            return Err(OAuthError::invalid_request_uri(NOT_FOUND))
        }
        Err(_) => {
            return Err(OAuthError::temporarily_unavailable(
                "authorization requests cannot be looked up right now, please retry",
                5,
            ))
        }
    };
    let (form_post, dpop_jkt) = recheck(cfg, &client, &stored)?;
    // A cookie whose form_post mark was altered would keep its flow from
    // completing on a later step: it re-enters nothing either.
    if marked_form_post.is_some_and(|marked| marked != form_post) {
        return Err(OAuthError::invalid_request_uri(NOT_FOUND));
    }
    let set_cookie_value = new_secret.and_then(|secret| {
        let value = flow_cookie_value(&secret, &uri, &stored.client_id, form_post);
        set_cookie(cfg, &cookie_name, &value)
    });
    // Shared by the rewritten POST body and the flow's leak check.
    let mut stored = stored;
    let form = Bytes::from(std::mem::take(&mut stored.params));
    let flow = Flow {
        uri,
        client_id: stored.client_id.clone(),
        redirect_uri: stored.redirect_uri.clone(),
        form_post,
        binding: flow_binding,
        set_cookie: set_cookie_value,
        cookie_name,
        pushed_form: form.clone(),
        pushed_at: stored.pushed_at,
    };
    let compact_url = compact_url(&cfg.authorize_path, &stored.client_id, &uri);
    let mut req = rewrite(parts, body, uri, stored, form, compact_url, reentry)?;
    if let Some(par) = req.extensions_mut().get_mut::<PushedAuthorization>() {
        par.dpop_jkt = dpop_jkt;
    }
    Ok(Resolved::Flow(req, Box::new(flow)))
}

/// PAR-41: client policy can change between the push and the redemption.
/// The stored request is checked again against the client's current
/// registration (redirect URIs, response types, scopes, PKCE, with the
/// layer's rules), looked up before the redemption; a client that is gone
/// gets nothing. The error is shown
/// to the browser, never sent to a redirect URI that may no longer be
/// registered. Returns whether the response goes back by
/// `response_mode=form_post`, and the stored `dpop_jkt` (read from the
/// same parse).
fn recheck<C, St>(
    cfg: &Config<C, St>,
    client: &Client,
    stored: &PushedRequest,
) -> Result<(bool, Option<String>), OAuthError> {
    // The stored form was parsed and checked when it was pushed.
    let params = Params::parse(stored.params.as_bytes())
        .map_err(|_| OAuthError::server_error("stored authorization request unreadable"))?;
    crate::validate::check(&cfg.rules(), client, &params)?;
    let dpop_jkt = params.get("dpop_jkt").map(str::to_owned);
    Ok((is_form_post(&params), dpop_jkt))
}

/// Whether the authorization response goes back by
/// `response_mode=form_post` (names and values decoded).
fn is_form_post(params: &Params) -> bool {
    params.get("response_mode") == Some("form_post")
}

/// Distinct `client_id` values one front-channel request may name before
/// it is refused: each costs a registry lookup while PAR may be required.
const MAX_CLIENT_IDS: usize = 4;

/// Reads a front-channel query or form as lenient parsers would (pairs
/// split on `&` and `;`, names in any case, repeats, malformed pairs) and
/// adds every distinct value they could read as `client_id` to `ids`.
///
/// Refuses (400) what could name a client without the layer seeing it: a
/// parameter name other parsers fold onto a checked one (`Client_Id`,
/// `client.id`, `client_id[]`, `client_id%00x`, `clıent_id`: the rule of the
/// PAR endpoint, [`crate::names`]), a `client_id` value that does not decode
/// as UTF-8 or holds a control character (another charset, or a parser that
/// stops at a NUL, could read it as a client's id), and more than
/// [`MAX_CLIENT_IDS`] distinct values.
fn front_channel_client_ids(raw: &[u8], ids: &mut Vec<String>) -> Result<(), OAuthError> {
    let raw = String::from_utf8_lossy(raw);
    for seg in raw.split(['&', ';']) {
        let (name, value) = seg.split_once('=').unwrap_or((seg, ""));
        let Ok(name) = decode(name) else {
            return Err(OAuthError::invalid_request(format!(
                "parameter name '{}' is not well-formed",
                crate::names::sanitized(name)
            )));
        };
        if name.is_empty() {
            continue;
        }
        if name != "client_id" {
            if crate::names::confusable(&name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter name '{}' could be read as a checked parameter",
                    crate::names::sanitized(&name)
                )));
            }
            continue;
        }
        // A value that does not decode as UTF-8, or holds a control
        // character (C parsers stop at a NUL), could be read as another id.
        let value = match decode(value) {
            Ok(v) if !v.chars().any(char::is_control) => v,
            _ => return Err(OAuthError::invalid_request("client_id is not well-formed")),
        };
        // Services that trim values would find the trimmed client.
        let value = value.trim();
        if value.is_empty() || ids.iter().any(|id| id == value) {
            continue;
        }
        if ids.len() == MAX_CLIENT_IDS {
            return Err(OAuthError::invalid_request(format!(
                "more than {MAX_CLIENT_IDS} different client_id values"
            )));
        }
        ids.push(value.to_owned());
    }
    Ok(())
}

/// Whether a registry could know a client by this id: an RFC 7591
/// `client_id` is a short string. Longer ones, or ones with control
/// characters, are never looked up (nor cached): unknown.
fn plausible_client_id(id: &str) -> bool {
    id.len() <= 255 && !id.chars().any(char::is_control)
}

/// Whether PAR may be required for some request: globally, under FAPI,
/// for a named client, or by the registry.
fn par_may_be_required<C: ClientAuthenticator, St>(cfg: &Config<C, St>) -> bool {
    cfg.require_par
        || cfg.is_fapi()
        || !cfg.require_par_clients.is_empty()
        || cfg.clients.may_require_par()
}

/// PAR-31: refused before the wrapped service sees it, since PAR may be
/// required for a client it names.
fn unreadable<C, St>(cfg: &Config<C, St>, why: &str) -> OAuthError {
    OAuthError::invalid_request(format!(
        "pushed authorization request required: {why}; use GET or POST {} with client_id and request_uri",
        cfg.authorize_path
    ))
}

fn registry_unavailable() -> OAuthError {
    OAuthError::temporarily_unavailable("the client registry is unavailable, please retry", 5)
}

/// PAR-31: a request that redeems nothing gets through only when PAR is
/// required neither globally nor for any client it names, in its query or
/// its form body. When the registry cannot answer, it does not get through
/// (503).
async fn require_check<C, St>(
    cfg: &Config<C, St>,
    parts: &Parts,
    form: Option<&[u8]>,
) -> Result<(), OAuthError>
where
    C: ClientAuthenticator,
{
    if !par_may_be_required(cfg) {
        return Ok(());
    }
    let required = || OAuthError::invalid_request("pushed authorization request required");
    if cfg.require_par || cfg.is_fapi() {
        return Err(required());
    }
    let mut ids = Vec::new();
    front_channel_client_ids(parts.uri.query().unwrap_or_default().as_bytes(), &mut ids)?;
    if let Some(form) = form {
        front_channel_client_ids(form, &mut ids)?;
    }
    for id in &ids {
        if cfg.require_par_clients.contains(id.as_str()) {
            return Err(required());
        }
        if !cfg.clients.may_require_par() || !plausible_client_id(id) {
            continue;
        }
        match cfg.clients.client(id).await {
            Ok(Some(c)) if c.require_par => return Err(required()),
            Ok(_) => {}
            // Fail closed: PAR may be required for this client.
            Err(_) => return Err(registry_unavailable()),
        }
    }
    Ok(())
}

/// PAR-32: the wrapped service receives only the stored parameters; every
/// front-channel parameter (including `request_uri`) is dropped.
fn rewrite<B>(
    mut parts: Parts,
    body: ParRequestBody<B>,
    uri: RequestUri,
    stored: PushedRequest,
    form: Bytes,
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
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(form.len()));
        h.remove(header::TRANSFER_ENCODING);
        ParRequestBody::rewritten(form)
    } else {
        // The stored form was built as UTF-8 at push time.
        let query = std::str::from_utf8(&form).map_err(|_| rebuild_failed())?;
        let mut pq = String::with_capacity(path.len() + 1 + query.len());
        pq.push_str(path);
        pq.push('?');
        pq.push_str(query);
        let pq = PathAndQuery::try_from(pq).map_err(|_| rebuild_failed())?;
        parts.uri = with_path_and_query(&parts.uri, pq).ok_or_else(rebuild_failed)?;
        // PAR-32: a body sent with the GET must not smuggle parameters to
        // a service that reads form bodies on GET.
        drop(body);
        let h = &mut parts.headers;
        h.remove(header::CONTENT_TYPE);
        h.remove(header::TRANSFER_ENCODING);
        h.remove(header::CONTENT_LENGTH);
        ParRequestBody::rewritten(Bytes::new())
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
        dpop_jkt: None,
    });
    Ok(Request::from_parts(parts, body))
}

fn with_path_and_query(uri: &Uri, pq: PathAndQuery) -> Option<Uri> {
    let mut p = uri.clone().into_parts();
    p.path_and_query = Some(pq);
    Uri::from_parts(p).ok()
}

#[cfg(test)]
mod alias_tests {
    use super::may_alias;

    #[test]
    fn m4_other_spellings_of_the_authorize_path() {
        for p in [
            "/Authorize",
            "/AUTHORIZE/",
            "/%61uthorize",
            "//authorize",
            "/authorize//",
            "/./authorize",
            "/x/../authorize",
            "/authorize;jsessionid=1",
            "/%2e/authorize",
            "/authorize.json",
            "/authorize.",
            "/authorize%20",
            "/authorize ",
            "/authorize\\",
            "/\\authorize",
            "/%2Fauthorize",
            "/%5Cauthorize",
            "/x/%2e%2e/authorize",
        ] {
            assert!(may_alias(p, "/authorize"), "{p}");
        }
        for p in [
            "/authorizer",
            "/health",
            "/",
            "/x/authorize",
            "/authorize-legacy",
            "/authorizex.json",
            "/authorize.json/x",
            "/static/app.js",
            "/.well-known/openid-configuration",
        ] {
            assert!(!may_alias(p, "/authorize"), "{p}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_post_is_read_from_the_decoded_first_non_empty_value() {
        let form = Params::parse(b"a=1&response%5Fmode=form%5Fpost&b=2").unwrap();
        assert!(is_form_post(&form));
        assert!(!is_form_post(
            &Params::parse(b"response_mode=&x=1").unwrap()
        ));
        assert!(!is_form_post(&Params::parse(b"x=1").unwrap()));
        assert!(!is_form_post(
            &Params::parse(b"response_mode=query").unwrap()
        ));
    }
}
