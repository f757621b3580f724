//! OAuth errors and how they are answered.
//!
//! PAR endpoint errors use the token endpoint format (RFC 9126 §2.3, RFC 6749
//! §5.2): a JSON object with `error` and `error_description`, always with
//! `Cache-Control: no-store` (PAR-16, OA-8). Errors at the authorization
//! endpoint are answered to the browser directly, as an HTML page or JSON by
//! `Accept`, and never redirected (OA-5).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// The user's renderer of browser-facing error pages: status, error code,
/// description.
pub(crate) type ErrorPageFn =
    std::sync::Arc<dyn Fn(StatusCode, &str, &str) -> Response<Full<Bytes>> + Send + Sync + 'static>;

/// RFC 9449 §8.
const DPOP_NONCE: &str = "dpop-nonce";

/// An OAuth error: code, description and the HTTP status it is sent with.
///
/// Used by validators and client authenticators to reject a request:
///
/// ```
/// use tower_par::OAuthError;
///
/// let e = OAuthError::invalid_scope("scope 'admin' is not allowed for this client");
/// assert_eq!(e.code(), "invalid_scope");
/// assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthError {
    status: StatusCode,
    code: Cow<'static, str>,
    description: Cow<'static, str>,
    basic_challenge: bool,
    retry_after: Option<u64>,
    allow: Option<&'static str>,
    dpop_nonce: Option<String>,
}

impl OAuthError {
    /// A new error with any code (extension codes included).
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
            allow: None,
            dpop_nonce: None,
        }
    }

    /// `400 invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// `401 invalid_client` (AUTH-1, AUTH-2).
    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    /// `400 invalid_scope`.
    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// `400 unauthorized_client`.
    pub fn unauthorized_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    /// `400 unsupported_response_type`.
    pub fn unsupported_response_type(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
            description,
        )
    }

    /// `400 invalid_request_uri` (RFC 9101 §7).
    pub fn invalid_request_uri(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_uri", description)
    }

    /// `400 invalid_request_object` (RFC 9101 §7, JAR-7): the `request`
    /// parameter holds an invalid request object.
    pub fn invalid_request_object(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_object",
            description,
        )
    }

    /// `400 invalid_dpop_proof` (RFC 9449 §5, DPOP-6).
    pub fn invalid_dpop_proof(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
    }

    /// `503 temporarily_unavailable` with `Retry-After`.
    pub fn temporarily_unavailable(
        description: impl Into<Cow<'static, str>>,
        retry_after_secs: u64,
    ) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            description,
        );
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// `500 server_error`.
    pub fn server_error(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            description,
        )
    }

    /// Adds `WWW-Authenticate: Basic` (AUTH-7: the client tried Basic).
    #[must_use]
    pub fn with_basic_challenge(mut self) -> Self {
        self.basic_challenge = true;
        self
    }

    /// Adds `Retry-After` (seconds).
    #[must_use]
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Adds `Allow` (with 405 Method Not Allowed).
    #[must_use]
    pub fn with_allow(mut self, methods: &'static str) -> Self {
        self.allow = Some(methods);
        self
    }

    /// Adds a `DPoP-Nonce` header (RFC 9449 §8): the nonce the client must
    /// put in its next DPoP proof. One error carries at most one nonce
    /// (DPOP-7); a value that is not a valid header value is not sent.
    ///
    /// ```
    /// use tower_par::OAuthError;
    ///
    /// let e = OAuthError::new(http::StatusCode::BAD_REQUEST, "use_dpop_nonce", "nonce required")
    ///     .with_dpop_nonce("eyJ7S_zG.7i6Y");
    /// assert_eq!(e.dpop_nonce(), Some("eyJ7S_zG.7i6Y"));
    /// ```
    #[must_use]
    pub fn with_dpop_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.dpop_nonce = Some(nonce.into());
        self
    }

    /// The `DPoP-Nonce` this error is sent with, if any: for a token
    /// endpoint that renders errors itself.
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.dpop_nonce.as_deref()
    }

    /// The `error` code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The `error_description`.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The RFC 6749 §5.2 JSON body.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "error": self.code,
            "error_description": sanitize(&self.description),
        })
        .to_string()
    }

    /// The token-endpoint style response (RFC 6749 §5.2): this status, the
    /// JSON body of [`to_json`](Self::to_json), `Cache-Control: no-store`,
    /// and the headers the error carries (`WWW-Authenticate` on a `401`,
    /// `Retry-After`, `Allow`). For a token endpoint of your own, with
    /// [`TokenEndpoint`](crate::TokenEndpoint).
    ///
    /// ```
    /// use tower_par::OAuthError;
    ///
    /// let res = OAuthError::temporarily_unavailable("try again", 5).to_response();
    /// assert_eq!(res.status(), 503);
    /// assert_eq!(res.headers()["content-type"], "application/json");
    /// assert_eq!(res.headers()["cache-control"], "no-store");
    /// assert_eq!(res.headers()["retry-after"], "5");
    /// ```
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        self.json_response()
    }

    /// The token-endpoint style response: JSON, `no-store`.
    pub(crate) fn json_response(&self) -> Response<Full<Bytes>> {
        let mut res = no_store_response(self.status, "application/json", self.to_json().into());
        let headers = res.headers_mut();
        // AUTH-2, RFC 9110 §15.5.2: every 401 carries a challenge, naming
        // the scheme the PAR endpoint supports.
        if self.basic_challenge || self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tower-par\", charset=\"UTF-8\""),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        // DPOP-7: insert, never append: at most one `DPoP-Nonce`.
        if let Some(nonce) = self
            .dpop_nonce
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            headers.insert(DPOP_NONCE, nonce);
        }
        res
    }

    /// The authorization-endpoint response: the user's page
    /// ([`ParLayer::error_page`](crate::ParLayer::error_page)), or an HTML
    /// page, or JSON when the user agent asks for JSON and not HTML. Never a
    /// redirect to a client's `redirect_uri` (OA-5).
    pub(crate) fn browser_response(
        &self,
        page: Option<&ErrorPageFn>,
        accept: Option<&HeaderValue>,
    ) -> Response<Full<Bytes>> {
        if let Some(render) = page {
            let mut res = render(self.status, &self.code, &self.description);
            let headers = res.headers_mut();
            // The page describes one request: never cached (OA-8).
            if !headers.contains_key(header::CACHE_CONTROL) {
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            if let Some(secs) = self.retry_after {
                headers
                    .entry(header::RETRY_AFTER)
                    .or_insert(HeaderValue::from(secs));
            }
            if let Some(allow) = self.allow {
                headers
                    .entry(header::ALLOW)
                    .or_insert(HeaderValue::from_static(allow));
            }
            return res;
        }
        let wants_json = accept
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
        if wants_json {
            return self.json_response();
        }
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Authorization request rejected</title></head>\n<body>\
             <h1>Authorization request rejected</h1>\n<p>error: <code>{}</code></p>\n\
             <p>{}</p>\n</body></html>\n",
            html_escape(&self.code),
            html_escape(&self.description),
        );
        let mut res = no_store_response(self.status, "text/html; charset=utf-8", page.into());
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        res
    }
}

impl fmt::Debug for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthError")
            .field("status", &self.status.as_u16())
            .field("error", &self.code)
            .field("error_description", &self.description)
            .field("dpop_nonce", &self.dpop_nonce.is_some())
            .finish()
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for OAuthError {}

/// A response with `Cache-Control: no-store` and `Pragma: no-cache`.
pub(crate) fn no_store_response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let len = body.len();
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_LENGTH, content_length(len));
    res
}

/// `Content-Length` in one allocation (`HeaderValue::from(usize)` takes two).
fn content_length(len: usize) -> HeaderValue {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&digits[i..]).unwrap_or_else(|_| HeaderValue::from(len))
}

/// OA-7: `error_description` is limited to `%x20-21 / %x23-5B / %x5D-7E`.
fn sanitize(s: &str) -> Cow<'_, str> {
    let ok = |c: char| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e');
    if s.chars().all(ok) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(
            s.chars()
                .map(|c| {
                    if c == '"' {
                        '\''
                    } else if ok(c) {
                        c
                    } else {
                        '?'
                    }
                })
                .collect(),
        )
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_string(res: Response<Full<Bytes>>) -> String {
        let b = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn oa7_json_error_shape_and_no_store() {
        let res = OAuthError::invalid_client("bad")
            .with_basic_challenge()
            .json_response();
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert!(res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm="));
        let v: serde_json::Value = serde_json::from_str(&body_string(res).await).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":"invalid_client","error_description":"bad"})
        );
    }

    #[test]
    fn auth2_every_401_has_a_challenge_and_400_has_none() {
        let res = OAuthError::invalid_client("no credentials").json_response();
        assert!(res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("realm="));
        let res = OAuthError::invalid_request("x").json_response();
        assert!(res.headers().get("www-authenticate").is_none());
    }

    #[test]
    fn dpop7_one_dpop_nonce_header_and_only_a_valid_one() {
        let e = OAuthError::new(StatusCode::BAD_REQUEST, "use_dpop_nonce", "retry")
            .with_dpop_nonce("first")
            .with_dpop_nonce("second");
        let res = e.json_response();
        let nonces: Vec<_> = res.headers().get_all("dpop-nonce").iter().collect();
        assert_eq!(nonces, ["second"]);
        let res = OAuthError::invalid_dpop_proof("x")
            .with_dpop_nonce("bad\nvalue")
            .json_response();
        assert!(res.headers().get("dpop-nonce").is_none());
        assert!(OAuthError::invalid_request("x")
            .json_response()
            .headers()
            .get("dpop-nonce")
            .is_none());
    }

    #[tokio::test]
    async fn oa7_description_characters_are_restricted() {
        let e = OAuthError::invalid_request("a \"quoted\" \\ é\n");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error_description"], "a 'quoted' ? ??");
    }

    #[tokio::test]
    async fn browser_error_is_escaped_html_unless_json_asked() {
        let e = OAuthError::invalid_request_uri("<script>");
        let res = e.browser_response(None, None);
        assert_eq!(res.status(), 400);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let page = body_string(res).await;
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));
        let json = HeaderValue::from_static("application/json");
        let res = e.browser_response(None, Some(&json));
        assert_eq!(res.headers()["content-type"], "application/json");
    }
}
