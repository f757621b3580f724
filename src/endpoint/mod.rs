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

/// Whether the request declares a form body (OA-9).
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
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
