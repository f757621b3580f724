//! The three places the layer acts: the PAR endpoint, the authorization
//! endpoint and the discovery documents.

pub(crate) mod authorize;
pub(crate) mod compact;
pub(crate) mod metadata;
pub(crate) mod push;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};

use crate::body::ParResponseBody;
use crate::error::OAuthError;

/// Why a body could not be read.
pub(crate) enum ReadError {
    TooLarge,
    Failed,
    /// Not complete within the deadline (feature `tokio`).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    TimedOut,
}

impl ReadError {
    pub(crate) fn into_oauth(self, limit: usize) -> OAuthError {
        match self {
            // PAR-20: 413 when the request is larger than allowed.
            Self::TooLarge => OAuthError::new(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("request body is larger than {limit} bytes"),
            ),
            Self::Failed => OAuthError::invalid_request("request body could not be read"),
            // A stalled body would hold its connection (and a task) for as
            // long as the client likes.
            Self::TimedOut => OAuthError::new(
                http::StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                "request body not received in time",
            ),
        }
    }
}

/// Reads a body, refusing more than `limit` bytes without buffering them.
pub(crate) async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes>,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) || body.size_hint().lower() > limit as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ReadError::Failed)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let total = first.as_ref().map_or(0, Bytes::len) + buf.len() + data.len();
        if total > limit {
            return Err(ReadError::TooLarge);
        }
        // The common case is a single frame: keep it without copying.
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            Some(f) => {
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&data);
            }
            None => buf.extend_from_slice(&data),
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// Like [`read_body`], giving up after `deadline` with
/// [`ReadError::TimedOut`]. The deadline needs the `tokio` feature and a
/// tokio runtime with timers; elsewhere the body is read without one (the
/// layer is runtime-agnostic: on another executor, or when polled by hand,
/// the server's own timeouts apply).
pub(crate) async fn read_body_within<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes>,
{
    #[cfg(feature = "tokio")]
    if tokio::runtime::Handle::try_current().is_ok() {
        return tokio::time::timeout(deadline, read_body(headers, body, limit))
            .await
            .unwrap_or(Err(ReadError::TimedOut));
    }
    #[cfg(not(feature = "tokio"))]
    let _ = deadline;
    read_body(headers, body, limit).await
}

/// Whether the request declares a form body (OA-9), read as RFC 9110
/// §8.3.1 says: exactly one `Content-Type`, type and subtype compared
/// case-insensitively, then at most a well-formed `charset` parameter. A value that
/// merely starts with the form type
/// (`application/x-www-form-urlencoded-x`,
/// `application/x-www-form-urlencoded, text/plain`) is not a form, and
/// neither is one in a charset other than UTF-8 (or its subset US-ASCII),
/// since the layer reads the body as UTF-8.
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v
            .to_str()
            .is_ok_and(|v| is_media_type(v, "application", "x-www-form-urlencoded")),
        _ => false,
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §8.3.1: `type "/" subtype *( OWS ";" OWS [ parameter ] )`,
/// `parameter = token "=" ( token / quoted-string )`.
fn is_media_type(value: &str, ty: &str, subtype: &str) -> bool {
    let b = value.as_bytes();
    let mut i = 0;
    let ows = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> &[u8] {
        let start = *i;
        while *i < b.len() && is_tchar(b[*i]) {
            *i += 1;
        }
        &b[start..*i]
    };
    ows(&mut i);
    if !token(&mut i).eq_ignore_ascii_case(ty.as_bytes()) || b.get(i) != Some(&b'/') {
        return false;
    }
    i += 1;
    if !token(&mut i).eq_ignore_ascii_case(subtype.as_bytes()) {
        return false;
    }
    let mut seen_charset = false;
    loop {
        ows(&mut i);
        if i == b.len() {
            return true;
        }
        if b[i] != b';' {
            return false;
        }
        i += 1;
        ows(&mut i);
        if i == b.len() || b[i] == b';' {
            continue;
        }
        let name = token(&mut i);
        if name.is_empty() || b.get(i) != Some(&b'=') {
            return false;
        }
        i += 1;
        let mut val = Vec::new();
        if b.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match b.get(i) {
                    None => return false,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let Some(&c) = b.get(i + 1) else { return false };
                        val.push(c);
                        i += 2;
                    }
                    Some(&c) => {
                        val.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            let t = token(&mut i);
            if t.is_empty() {
                return false;
            }
            val.extend_from_slice(t);
        }
        // The form type defines no parameters; some parsers find a charset
        // anywhere in the value (`x-charset=utf-16be`), so only one
        // `charset`, UTF-8 or its subset US-ASCII, is read as the layer
        // reads the body.
        let utf8 = val.eq_ignore_ascii_case(b"utf-8") || val.eq_ignore_ascii_case(b"us-ascii");
        if !name.eq_ignore_ascii_case(b"charset") || !utf8 || seen_charset {
            return false;
        }
        seen_charset = true;
    }
}

/// Whether the request carries a body (declared, or still to come).
pub(crate) fn has_body<B: Body>(headers: &HeaderMap, body: &B) -> bool {
    let declared_empty = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    headers.contains_key(header::TRANSFER_ENCODING)
        || (!declared_empty && headers.contains_key(header::CONTENT_LENGTH))
        || !(body.is_end_stream() || body.size_hint().exact() == Some(0))
}

/// Whether the body is sent with a content coding (RFC 9110 §8.4), or a
/// transfer coding other than `chunked` that the server leaves in place
/// (`Transfer-Encoding: gzip, chunked`, RFC 9112 §6.1).
pub(crate) fn is_encoded(headers: &HeaderMap) -> bool {
    let content = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let transfer = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|c| c.trim_ascii())
        .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"chunked"));
    content || transfer
}

pub(crate) fn own<ResB>(res: Response<Full<Bytes>>) -> Response<ParResponseBody<ResB>> {
    res.map(ParResponseBody::own)
}

/// Appends `n` in decimal, without going through `format!`.
pub(crate) fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|&d| char::from(d)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(ct: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for v in ct {
            h.append(header::CONTENT_TYPE, v.parse().unwrap());
        }
        is_form(&h)
    }

    #[test]
    fn oa9_form_media_type_is_matched_exactly() {
        for ok in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-URLEncoded",
            "application/x-www-form-urlencoded;charset=UTF-8",
            "application/x-www-form-urlencoded ; charset=\"utf-8\"",
            "application/x-www-form-urlencoded; ;",
        ] {
            assert!(form(&[ok]), "{ok}");
        }
        for bad in [
            "application/x-www-form-urlencoded-anything",
            "application/x-www-form-urlencoded, text/plain",
            "application/x-www-form-urlencoded text/plain",
            "application/x-www-form-urlencodedx",
            "application/x-www-form-urlencoded; charset=utf-16",
            "application/x-www-form-urlencoded; charset",
            "application/x-www-form-urlencoded; foo=bar",
            "application/x-www-form-urlencoded; x-charset=utf-16be",
            "application/x-www-form-urlencoded; x=\"charset=ibm037;\"",
            "application/x-www-form-urlencoded; charset=utf-8; charset=utf-16",
            "application/x-www-form-urlencoded; charset=\"utf-8",
            "application/json",
            "multipart/form-data; boundary=x",
            "application /x-www-form-urlencoded",
            "",
        ] {
            assert!(!form(&[bad]), "{bad}");
        }
        assert!(!form(&[]));
        assert!(!form(&[
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded"
        ]));
    }
}
