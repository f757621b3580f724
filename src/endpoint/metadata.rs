//! Discovery documents (RFC 8414, OIDC Discovery): add the PAR members to
//! what the wrapped service publishes (RFC 9126 §5, META-12..17).
//!
//! Only the configured issuer's documents (META-1, META-2): one layer
//! advertises one PAR endpoint for one issuer, so on a multi-tenant host
//! another tenant's document is passed through as it is.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value};
use tower_service::Service;

use super::own;
use crate::body::{ParRequestBody, ParResponseBody};
use crate::config::{Config, Metadata};
use crate::error::no_store_response;

/// Documents larger than this are passed through untouched.
const MAX_DOCUMENT: u64 = 1024 * 1024;

const AS_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
const OIDC_WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// Whether `path` may be a discovery document: the RFC 8414 inserted form
/// or the OIDC appended form, for some issuer. A cheap first filter for
/// routing; [`is_issuer_metadata_path`] decides.
pub(crate) fn is_metadata_path(path: &str) -> bool {
    path.ends_with(OIDC_WELL_KNOWN)
        || path
            .strip_prefix(AS_WELL_KNOWN)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `path` is exactly one of the configured issuer's discovery
/// documents: META-1 (RFC 8414 §3.1) inserts the well-known segment before
/// the issuer's path, META-2 (OIDC Discovery §4) appends it. Another
/// tenant's document on the same host (`/t2/.well-known/..`) is not ours
/// to change: its issuer is not the one the layer advertises for. Without
/// an issuer, only the root documents.
fn is_issuer_metadata_path(issuer: Option<&str>, path: &str) -> bool {
    let issuer_path = issuer
        .and_then(|i| i.parse::<http::Uri>().ok())
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    path.strip_prefix(AS_WELL_KNOWN) == Some(issuer_path.as_str())
        || path.strip_suffix(OIDC_WELL_KNOWN) == Some(issuer_path.as_str())
}

/// META-12: `GET` and `HEAD`. A `HEAD` is answered from the document a
/// `GET` would get (asked of the wrapped service as a `GET`), without its
/// body, so that both agree on the headers, `Content-Length` included.
pub(crate) async fn handle<S, C, St, B, ResB>(
    cfg: Arc<Config<C, St>>,
    mut inner: S,
    mut req: Request<B>,
) -> Result<Response<ParResponseBody<ResB>>, S::Error>
where
    S: Service<Request<ParRequestBody<B>>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
{
    if !is_issuer_metadata_path(cfg.issuer.as_deref(), req.uri().path()) {
        return Ok(inner
            .call(req.map(ParRequestBody::original))
            .await?
            .map(ParResponseBody::inner));
    }
    let head = req.method() == Method::HEAD;
    if head {
        *req.method_mut() = Method::GET;
    }
    let res = document(cfg, inner, req).await?;
    if !head {
        return Ok(res);
    }
    let (parts, _body) = res.into_parts();
    Ok(Response::from_parts(
        parts,
        ParResponseBody::own(Full::new(Bytes::new())),
    ))
}

/// Replaces the request's `Accept-Encoding` with `identity`, for a request
/// whose answer the layer reads (META-13, and the `form_post` page of a
/// flow): the wrapped service, or a compression layer inside this one, then
/// answers unencoded; a compression layer outside still compresses what
/// the browser gets.
pub(crate) fn ask_unencoded(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
}

async fn document<S, C, St, B, ResB>(
    cfg: Arc<Config<C, St>>,
    mut inner: S,
    mut req: Request<B>,
) -> Result<Response<ParResponseBody<ResB>>, S::Error>
where
    S: Service<Request<ParRequestBody<B>>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
{
    // META-13: ask for the document unencoded, so that a compression layer
    // inside this one cannot hide it; one outside still compresses the
    // result.
    ask_unencoded(req.headers_mut());
    let res = inner.call(req.map(ParRequestBody::original)).await?;
    let Some(par_endpoint) = cfg.advertised_par_endpoint() else {
        return Ok(res.map(ParResponseBody::inner));
    };
    if res.status() == StatusCode::NOT_FOUND && cfg.metadata_mode() == Metadata::AugmentOrServe {
        return Ok(own(own_document(&cfg, par_endpoint)));
    }
    if !is_json_document(&res) {
        // META-13: non-200 or non-JSON answers are left as they are.
        return Ok(res.map(ParResponseBody::inner));
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let mut res = no_store_response(
                StatusCode::BAD_GATEWAY,
                "text/plain",
                Bytes::from_static(b"metadata unavailable\n"),
            );
            res.headers_mut().remove(header::PRAGMA);
            return Ok(own(res));
        }
    };
    let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Response::from_parts(
            parts,
            ParResponseBody::own(Full::new(bytes)),
        ));
    };
    add_par_members(&cfg, &mut doc, par_endpoint);
    let out = Bytes::from(Value::Object(doc).to_string());
    // META-15: the length changed and the old validator no longer applies.
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    parts.headers.remove(header::ETAG);
    parts.headers.remove(header::TRANSFER_ENCODING);
    Ok(Response::from_parts(
        parts,
        ParResponseBody::own(Full::new(out)),
    ))
}

fn is_json_document<B: Body>(res: &Response<B>) -> bool {
    let h = res.headers();
    let json = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            let t = t.trim();
            t.eq_ignore_ascii_case("application/json") || t.ends_with("+json")
        });
    let identity = h
        .get(header::CONTENT_ENCODING)
        .is_none_or(|v| v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let bounded = res
        .body()
        .size_hint()
        .upper()
        .is_some_and(|n| n <= MAX_DOCUMENT);
    res.status() == StatusCode::OK && json && identity && bounded
}

/// META-7: the PAR endpoint, and the global requirement as a JSON boolean.
fn add_par_members<C, St>(cfg: &Config<C, St>, doc: &mut Map<String, Value>, par_endpoint: String) {
    doc.insert(
        "pushed_authorization_request_endpoint".into(),
        Value::String(par_endpoint),
    );
    doc.insert(
        "require_pushed_authorization_requests".into(),
        Value::Bool(cfg.require_par || cfg.is_fapi()),
    );
    add_jwt_members(cfg, doc);
    // META-11: when the layer requires PKCE, S256 is listed. The rest of
    // the wrapped server's list stays (META-14): it describes its
    // authorization endpoint for requests that do not go through PAR too.
    if cfg.rules().pkce.required {
        const MEMBER: &str = "code_challenge_methods_supported";
        match doc.get_mut(MEMBER) {
            Some(Value::Array(methods)) => {
                if !methods.iter().any(|m| m == "S256") {
                    methods.insert(0, Value::String("S256".into()));
                }
            }
            // A member of another type is the wrapped server's to fix.
            Some(_) => {}
            None => {
                doc.insert(MEMBER.into(), serde_json::json!(["S256"]));
            }
        }
    }
}

/// What the layer enforces at the PAR endpoint for client authentication,
/// request objects and DPoP (META-9, META-10).
///
/// - Client authentication: under FAPI the layer decides it (FAPI-5,
///   FAPI-25), so its members replace the wrapped server's; otherwise the
///   wrapped server's token endpoint may accept more or less than the PAR
///   endpoint, and its members are kept when present. The mTLS methods
///   (feature `mtls`) are listed when `tls_client_roots` is set.
/// - Request objects at the PAR endpoint are the layer's alone: the member
///   says what it verifies.
/// - DPoP: the layer verifies proofs at the PAR endpoint and binds the
///   request to the key, but only a token endpoint that enforces the
///   binding makes tokens sender-constrained (DPOP-11). So the member is
///   advertised under FAPI (which requires sender-constrained tokens,
///   FAPI-4) and, otherwise, only when the wrapped server already
///   advertises DPoP; its value is then what the layer verifies.
#[cfg(feature = "jwt")]
fn add_jwt_members<C, St>(cfg: &Config<C, St>, doc: &mut Map<String, Value>) {
    use crate::jose;
    let names = |algs: &[jose::Alg]| -> Value {
        algs.iter()
            .map(|a| Value::String(jose::alg_name(*a).into()))
            .collect()
    };
    let fapi = cfg.is_fapi();
    let (mut methods, auth_algs) = if fapi {
        (serde_json::json!(["private_key_jwt"]), names(jose::FAPI))
    } else {
        let mut algs = jose::ASYMMETRIC.to_vec();
        algs.extend_from_slice(jose::HMAC);
        (
            serde_json::json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "client_secret_jwt",
                "none"
            ]),
            names(&algs),
        )
    };
    if let Value::Array(list) = &mut methods {
        list.extend(mtls_methods(cfg).iter().map(|m| Value::String((*m).into())));
    }
    for (member, value) in [
        ("token_endpoint_auth_methods_supported", methods),
        (
            "token_endpoint_auth_signing_alg_values_supported",
            auth_algs,
        ),
    ] {
        if fapi || !doc.contains_key(member) {
            doc.insert(member.into(), value);
        }
    }
    let asymmetric = names(cfg.asymmetric_algs());
    doc.insert(
        "request_object_signing_alg_values_supported".into(),
        asymmetric.clone(),
    );
    const DPOP: &str = "dpop_signing_alg_values_supported";
    if fapi || doc.contains_key(DPOP) {
        doc.insert(DPOP.into(), asymmetric);
    }
    if cfg.jwt.require_signed_request_object {
        doc.insert("require_signed_request_object".into(), Value::Bool(true));
    }
}

/// RFC 8705 §2.1, §2.2: the mTLS methods, when the deployment takes client
/// certificates (`ParLayer::tls_client_roots` was set); `tls_client_auth`
/// only with CAs to verify it.
#[cfg(all(feature = "jwt", feature = "mtls"))]
fn mtls_methods<C, St>(cfg: &Config<C, St>) -> &'static [&'static str] {
    match cfg.tls_client_roots.as_deref() {
        Some(roots) if !roots.is_empty() => &["tls_client_auth", "self_signed_tls_client_auth"],
        Some(_) => &["self_signed_tls_client_auth"],
        None => &[],
    }
}

#[cfg(all(feature = "jwt", not(feature = "mtls")))]
fn mtls_methods<C, St>(_cfg: &Config<C, St>) -> &'static [&'static str] {
    &[]
}

#[cfg(not(feature = "jwt"))]
fn add_jwt_members<C, St>(_cfg: &Config<C, St>, _doc: &mut Map<String, Value>) {}

fn own_document<C, St>(cfg: &Config<C, St>, par_endpoint: String) -> Response<Full<Bytes>> {
    let mut doc = Map::new();
    if let Some(issuer) = &cfg.issuer {
        doc.insert("issuer".into(), Value::String(issuer.clone()));
    }
    if let Some(authorize) = cfg.advertised_authorize_endpoint() {
        doc.insert("authorization_endpoint".into(), Value::String(authorize));
    }
    // META-5: required unless only the implicit grant is supported.
    if let Some(token) = cfg.advertised_token_endpoint() {
        doc.insert("token_endpoint".into(), Value::String(token));
    }
    doc.insert(
        "response_types_supported".into(),
        serde_json::json!(["code"]),
    );
    doc.insert(
        "code_challenge_methods_supported".into(),
        serde_json::json!(["S256"]),
    );
    add_par_members(cfg, &mut doc, par_endpoint);
    let body = Bytes::from(Value::Object(doc).to_string());
    let len = body.len();
    let mut res = Response::new(Full::new(body));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta1_meta2_paths() {
        assert!(is_metadata_path("/.well-known/oauth-authorization-server"));
        assert!(is_metadata_path(
            "/.well-known/oauth-authorization-server/t1"
        ));
        assert!(is_metadata_path("/.well-known/openid-configuration"));
        assert!(is_metadata_path("/t1/.well-known/openid-configuration"));
        assert!(!is_metadata_path(
            "/.well-known/oauth-authorization-serverX"
        ));
        assert!(!is_metadata_path("/.well-known/jwks.json"));
    }

    #[test]
    fn meta1_meta2_only_the_issuers_own_documents() {
        let root = [AS_WELL_KNOWN, OIDC_WELL_KNOWN];
        for issuer in [
            None,
            Some("https://as.example"),
            Some("https://as.example/"),
        ] {
            for p in root {
                assert!(is_issuer_metadata_path(issuer, p), "{issuer:?} {p}");
            }
            for p in [
                "/.well-known/oauth-authorization-server/t1",
                "/t1/.well-known/openid-configuration",
                "/.well-known/oauth-authorization-server/",
                "//.well-known/openid-configuration",
            ] {
                assert!(!is_issuer_metadata_path(issuer, p), "{issuer:?} {p}");
            }
        }
        for issuer in [
            Some("https://as.example/t1"),
            Some("https://as.example/t1/"),
        ] {
            assert!(is_issuer_metadata_path(
                issuer,
                "/.well-known/oauth-authorization-server/t1"
            ));
            assert!(is_issuer_metadata_path(
                issuer,
                "/t1/.well-known/openid-configuration"
            ));
            for p in [
                AS_WELL_KNOWN,
                OIDC_WELL_KNOWN,
                "/.well-known/oauth-authorization-server/t2",
                "/t2/.well-known/openid-configuration",
                "/.well-known/oauth-authorization-server/t1/x",
                "/x/t1/.well-known/openid-configuration",
                "/.well-known/oauth-authorization-server/T1",
            ] {
                assert!(!is_issuer_metadata_path(issuer, p), "{issuer:?} {p}");
            }
        }
    }
}
