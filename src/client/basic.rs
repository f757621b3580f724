//! `client_secret_basic`: the `Authorization: Basic` header (RFC 6749 §2.3.1).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderValue;

use crate::params::decode;

/// Decodes an `Authorization` header value into `(client_id, secret)`.
///
/// RFC 6749 §2.3.1 has the client form-url-encode both halves before
/// base64, so after base64 the value is split on the first `:` and each half
/// is form-url-decoded (`+` is a space, AUTH-6). `None` when the header is
/// not a well-formed Basic credential.
pub(crate) fn decode_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = encoded.trim();
    // Typical credentials fit on the stack; longer ones are decoded to the heap.
    let mut stack = [0u8; 192];
    let heap;
    let raw: &[u8] = match STANDARD.decode_slice(encoded, &mut stack) {
        Ok(n) => &stack[..n],
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            heap = STANDARD.decode(encoded).ok()?;
            &heap
        }
        Err(_) => return None,
    };
    let raw = std::str::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let id = decode(id).ok()?;
    let secret = decode(secret).ok()?;
    if id.is_empty() {
        return None;
    }
    Some((id.into_owned(), secret.into_owned()))
}

/// Whether an `Authorization` header uses the Basic scheme at all.
pub(crate) fn is_basic(value: &HeaderValue) -> bool {
    value
        .as_bytes()
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"basic "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user_pass: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(user_pass))).unwrap()
    }

    #[test]
    fn auth6_both_halves_are_form_url_decoded() {
        // T11: secret `s3cr+t %x` is sent as `s3cr%2Bt+%25x`.
        let (id, secret) = decode_basic(&header("C%3A1:s3cr%2Bt+%25x")).unwrap();
        assert_eq!(id, "C:1");
        assert_eq!(secret, "s3cr+t %x");
    }

    #[test]
    fn auth6_raw_secret_decodes_differently() {
        // T12: the raw secret decodes to something else, so it cannot match.
        let decoded = decode_basic(&header("C:s3cr+t %x"));
        assert!(decoded.is_none_or(|(_, secret)| secret != "s3cr+t %x"));
    }

    #[test]
    fn long_credentials_are_decoded_too() {
        let secret = "s".repeat(300);
        let (id, got) = decode_basic(&header(&format!("id:{secret}"))).unwrap();
        assert_eq!((id.as_str(), got.len()), ("id", 300));
    }

    #[test]
    fn splits_on_first_colon_only() {
        let (id, secret) = decode_basic(&header("id:a:b")).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("id", "a:b"));
    }

    #[test]
    fn malformed_headers_are_none() {
        assert!(decode_basic(&HeaderValue::from_static("Basic !!!")).is_none());
        assert!(decode_basic(&HeaderValue::from_static("Bearer abc")).is_none());
        assert!(decode_basic(&header("no-colon")).is_none());
        assert!(decode_basic(&header(":secret")).is_none());
        assert!(decode_basic(&header("id:%zz")).is_none());
        assert!(is_basic(&HeaderValue::from_static("basic abc")));
        assert!(!is_basic(&HeaderValue::from_static("Bearer abc")));
    }
}
