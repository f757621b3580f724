//! URIs fit for logs: credential-bearing query parameters replaced by
//! `[redacted]`, for request spans such as tower-http's `TraceLayer`, whose
//! default span records the full URI (PAR-43: a `request_uri` is a bearer
//! reference until it is redeemed).

use std::fmt::Write as _;

use http::Uri;

use crate::params::decode;

/// The query parameters whose values [`redacted_uri`] replaces: each one is
/// a credential, or a reference that works as one.
///
/// - `request_uri`: redeems a pushed request (RFC 9126 §4).
/// - `code`: exchanged for tokens (RFC 6749 §4.1.2).
/// - `client_secret`, `client_assertion`: client credentials (RFC 6749
///   §2.3.1, RFC 7521 §4.2).
/// - `code_verifier`: the PKCE secret (RFC 7636 §4.5).
/// - `access_token`, `refresh_token`, `id_token`, `id_token_hint`,
///   `token`, `assertion`, `login_hint_token`: tokens (RFC 6750 §2.3,
///   RFC 6749 §6, OIDC Core §3.1.2.1 and §3.2.2.5, RFC 7009 §2.1,
///   RFC 7521 §4.1, CIBA §7.1).
/// - `request`: a request object (RFC 9101), which may carry personal data
///   and can be replayed until it expires.
///
/// `state` and `nonce` are kept: they are opaque values the client chose to
/// correlate a flow, not credentials at this server, and they are what
/// an operator searches logs for.
pub const REDACTED_PARAMS: &[&str] = &[
    "request_uri",
    "code",
    "client_secret",
    "client_assertion",
    "code_verifier",
    "access_token",
    "refresh_token",
    "id_token",
    "id_token_hint",
    "token",
    "assertion",
    "login_hint_token",
    "request",
];

const REDACTED: &str = "[redacted]";

/// `uri` with the values of [`REDACTED_PARAMS`] replaced by `[redacted]`
/// and any user information dropped from the authority; path, parameter
/// names and order are kept.
///
/// Parameter names are compared after form-url-decoding and ignoring case,
/// so `request%5Furi` and `Request_URI` are redacted too; a name that does
/// not decode has its value redacted as well. Use it wherever a request
/// URI is logged, e.g. in a `TraceLayer` span (or use `RedactedMakeSpan`,
/// feature `tower-http`):
///
/// ```
/// use tower_par::redacted_uri;
///
/// let uri: http::Uri = "/authorize?client_id=app&request_uri=urn%3Aietf%3Aparams%3Aoauth\
///     %3Arequest_uri%3Ab2x&state=s1".parse()?;
/// assert_eq!(
///     redacted_uri(&uri),
///     "/authorize?client_id=app&request_uri=[redacted]&state=s1"
/// );
/// # Ok::<(), http::uri::InvalidUri>(())
/// ```
///
/// With `TraceLayer` and a span of your own:
///
/// ```
/// use http::Request;
/// use tower_http::trace::TraceLayer;
/// use tower_par::redacted_uri;
///
/// let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<axum::body::Body>| {
///     tracing::info_span!("request", method = %req.method(), uri = %redacted_uri(req.uri()))
/// });
/// let app: axum::Router = axum::Router::new().layer(trace);
/// # let _ = app;
/// ```
pub fn redacted_uri(uri: &Uri) -> String {
    let mut out = String::with_capacity(uri.path().len() + uri.query().map_or(0, str::len) + 16);
    if let Some(scheme) = uri.scheme_str() {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(authority) = uri.authority() {
        // `user:password@` is a credential too.
        let host = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, host)| host);
        out.push_str(host);
    }
    out.push_str(uri.path());
    if let Some(query) = uri.query() {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let (name, value) = match pair.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (pair, None),
            };
            let secret = match decode(name) {
                Ok(name) => REDACTED_PARAMS
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(name.trim())),
                Err(_) => true,
            };
            match (secret, value) {
                (true, Some(_)) => {
                    let _ = write!(out, "{name}={REDACTED}");
                }
                (true, None) => out.push_str(REDACTED),
                (false, _) => out.push_str(pair),
            }
        }
    }
    out
}

#[cfg(feature = "tower-http")]
pub use make_span::RedactedMakeSpan;

#[cfg(feature = "tower-http")]
mod make_span {
    use http::Request;
    use tracing::{Level, Span};

    use super::redacted_uri;

    /// A [`MakeSpan`](tower_http::trace::MakeSpan) for tower-http's
    /// `TraceLayer`: the fields of its `DefaultMakeSpan` (`method`, `uri`,
    /// `version`; never the headers, which carry `Authorization` and
    /// `DPoP`), with the URI passed through [`redacted_uri`]. Feature
    /// `tower-http`.
    ///
    /// ```
    /// use tower_http::trace::TraceLayer;
    /// use tower_par::RedactedMakeSpan;
    ///
    /// let trace = TraceLayer::new_for_http()
    ///     .make_span_with(RedactedMakeSpan::new().level(tracing::Level::INFO));
    /// # let _ = trace;
    /// ```
    #[derive(Clone, Copy, Debug)]
    pub struct RedactedMakeSpan {
        level: Level,
    }

    impl RedactedMakeSpan {
        /// Spans at `DEBUG`, as tower-http's `DefaultMakeSpan`.
        pub fn new() -> Self {
            Self {
                level: Level::DEBUG,
            }
        }

        /// The level of the spans.
        #[must_use]
        pub fn level(mut self, level: Level) -> Self {
            self.level = level;
            self
        }
    }

    impl Default for RedactedMakeSpan {
        fn default() -> Self {
            Self::new()
        }
    }

    impl<B> tower_http::trace::MakeSpan<B> for RedactedMakeSpan {
        fn make_span(&mut self, request: &Request<B>) -> Span {
            // `tracing::span!` needs a constant level.
            macro_rules! make_span {
                ($level:expr) => {
                    tracing::span!(
                        $level,
                        "request",
                        method = %request.method(),
                        uri = %redacted_uri(request.uri()),
                        version = ?request.version(),
                    )
                };
            }
            match self.level {
                Level::ERROR => make_span!(Level::ERROR),
                Level::WARN => make_span!(Level::WARN),
                Level::INFO => make_span!(Level::INFO),
                Level::DEBUG => make_span!(Level::DEBUG),
                _ => make_span!(Level::TRACE),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uri: &str) -> String {
        redacted_uri(&uri.parse().unwrap())
    }

    #[test]
    fn credential_values_are_redacted_and_the_rest_kept() {
        assert_eq!(
            r("/cb?code=abc&state=s&iss=https%3A%2F%2Fas"),
            "/cb?code=[redacted]&state=s&iss=https%3A%2F%2Fas"
        );
        assert_eq!(
            r("/token?client_assertion=e.y.j&client_secret=x&refresh_token=r&code_verifier=v"),
            "/token?client_assertion=[redacted]&client_secret=[redacted]\
             &refresh_token=[redacted]&code_verifier=[redacted]"
        );
        assert_eq!(r("/par"), "/par");
        assert_eq!(r("/a?"), "/a?");
        assert_eq!(r("/a?x&&y=1"), "/a?x&&y=1");
    }

    #[test]
    fn encoded_or_differently_cased_names_are_redacted() {
        assert_eq!(
            r("/authorize?request%5Furi=urn%3Ax&Request_URI=urn2&code"),
            "/authorize?request%5Furi=[redacted]&Request_URI=[redacted]&[redacted]"
        );
        // A name that does not decode: its value could be anything.
        assert_eq!(r("/a?%ZZ=secret&b=1"), "/a?%ZZ=[redacted]&b=1");
    }

    #[test]
    fn user_information_is_dropped_from_absolute_uris() {
        assert_eq!(
            r("https://u:pw@as.example:8443/authorize?request_uri=x"),
            "https://as.example:8443/authorize?request_uri=[redacted]"
        );
    }
}
