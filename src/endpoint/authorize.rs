//! The authorization endpoint (RFC 9126 §4): resolve the `request_uri`,
//! then hand the wrapped service exactly the stored request.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{header, HeaderValue, Method, Request, Response, Uri};
use http_body::Body;
use tower_service::Service;

use super::{is_form, own, read_body};
use crate::body::{ParRequestBody, ParResponseBody};
use crate::client::{AuthMethod, ClientAuthenticator};
use crate::config::Config;
use crate::error::OAuthError;
use crate::params::Params;
use crate::store::{ParStore, PushedRequest, Redemption};
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

    /// When the `request_uri` would have expired.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

impl fmt::Debug for PushedAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushedAuthorization")
            .field("client_id", &self.client_id)
            .field("auth_method", &self.auth_method)
            .field("request_uri", &self.request_uri)
            .field("pushed_at", &self.pushed_at)
            .finish()
    }
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
{
    let accept = req.headers().get(header::ACCEPT).cloned();
    match resolve(&cfg, req).await {
        Ok(req) => Ok(inner.call(req).await?.map(ParResponseBody::inner)),
        Err(e) => {
            crate::trace::rejected("authorize", &e);
            // OA-5: answered to the browser, never redirected.
            Ok(own(e.browser_response(accept.as_ref())))
        }
    }
}

const NOT_FOUND: &str = "request_uri is unknown, expired or already used";

/// M-2: look up, check the client, consume, rewrite.
async fn resolve<C, St, B>(
    cfg: &Config<C, St>,
    req: Request<B>,
) -> Result<Request<ParRequestBody<B>>, OAuthError>
where
    C: ClientAuthenticator,
    St: ParStore,
    B: Body<Data = Bytes>,
{
    let (parts, body) = req.into_parts();
    // OA-2: GET carries the query; POST a form body.
    let (parsed, body) = if parts.method == Method::POST && is_form(&parts.headers) {
        let bytes = read_body(&parts.headers, body, cfg.max_body)
            .await
            .map_err(|e| e.into_oauth(cfg.max_body))?;
        let parsed = Params::parse(&bytes);
        (parsed, ParRequestBody::rewritten(bytes))
    } else {
        let query = parts.uri.query().unwrap_or_default();
        (
            Params::parse(query.as_bytes()),
            ParRequestBody::original(body),
        )
    };
    let params = match parsed {
        Ok(p) => p,
        // Not ours to judge unless PAR is required.
        Err(_) if !cfg.require_par => return Ok(Request::from_parts(parts, body)),
        Err(e) => return Err(OAuthError::invalid_request(e.to_string())),
    };
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
                None => return passthrough_or_require(cfg, &params, parts, body).await,
            }
        }
        None => return passthrough_or_require(cfg, &params, parts, body).await,
    };

    let Some(uri) = RequestUri::parse(raw_uri) else {
        // M-1: a request_uri this layer did not issue.
        if cfg.pass_foreign_request_uris && !par_required(cfg, params.get("client_id")).await {
            return Ok(Request::from_parts(parts, body));
        }
        return Err(OAuthError::invalid_request_uri(NOT_FOUND));
    };
    // PAR-27: client_id is required next to request_uri.
    let client_id = params
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_request("client_id is required with request_uri"))?;
    match cfg.store.redeem(&uri, client_id).await {
        Ok(Redemption::Redeemed(stored)) => {
            crate::trace::redeemed(&stored.client_id, &uri);
            rewrite(parts, body, uri, stored)
        }
        // PAR-29, PAR-28: unknown, expired or already used.
        Ok(Redemption::NotFound) => Err(OAuthError::invalid_request_uri(NOT_FOUND)),
        // PAR-15: bound to another client; the entry stays usable.
        Ok(Redemption::WrongClient) => Err(OAuthError::invalid_request(
            "client_id does not match the client the request_uri was issued to",
        )),
        Err(_) => Err(OAuthError::temporarily_unavailable(
            "authorization requests cannot be looked up right now, please retry",
            5,
        )),
    }
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
        let pq = PathAndQuery::try_from(format!("{path}?{}", stored.params))
            .map_err(|_| rebuild_failed())?;
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
    });
    Ok(Request::from_parts(parts, body))
}

fn with_path_and_query(uri: &Uri, pq: PathAndQuery) -> Option<Uri> {
    let mut p = uri.clone().into_parts();
    p.path_and_query = Some(pq);
    Uri::from_parts(p).ok()
}
