//! The `request_uri` handed to clients: a URN around 256 random bits.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Fills `buf` from the OS CSPRNG: request_uris, flow secrets and nonces.
/// One system call (well under a microsecond for 32 bytes) instead of a
/// user-space generator that would have to be reseeded after `fork`.
pub(crate) fn fill_random(buf: &mut [u8]) {
    if let Err(err) = getrandom::fill(buf) {
        // No fallback exists that would still be unpredictable.
        panic!("the operating system's random source failed: {err}");
    }
}

/// The URN prefix registered by RFC 9126 §9.3.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Length of the base64url reference: 32 bytes without padding.
const REFERENCE_LEN: usize = 43;

/// A request URI issued by the PAR endpoint.
///
/// RFC 9126 §2.2 and RFC 6749 §10.10 require a value that cannot be guessed;
/// this one carries 256 bits from a cryptographically secure generator
/// seeded by the operating system (PAR-14, PAR-38, OA-10) and is always a
/// URN (RFC 9101 §5.2). `Debug` prints only a
/// short fingerprint, so a log line never holds a usable reference.
///
/// ```
/// use tower_par::RequestUri;
///
/// let uri = RequestUri::generate();
/// let text = uri.to_string();
/// assert!(text.starts_with("urn:ietf:params:oauth:request_uri:"));
/// assert_eq!(RequestUri::parse(&text), Some(uri));
/// assert_eq!(RequestUri::parse("urn:ietf:params:oauth:request_uri:guess"), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestUri([u8; 32]);

impl RequestUri {
    /// A fresh reference from the operating system's CSPRNG (`getrandom`
    /// on Linux).
    ///
    /// # Panics
    ///
    /// If the operating system has no random source to offer, as a
    /// user-space CSPRNG would when seeding; a server that cannot draw
    /// random bytes must not issue references.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        Self(bytes)
    }

    /// Parses a value issued by [`RequestUri::generate`]; anything else
    /// (another prefix, a shorter or longer reference, non-base64url) is
    /// `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let reference = s.strip_prefix(REQUEST_URI_PREFIX)?;
        if reference.len() != REFERENCE_LEN {
            return None;
        }
        let mut bytes = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(reference, &mut bytes) {
            Ok(32) => Some(Self(bytes)),
            _ => None,
        }
    }

    /// The random reference bytes (stores key by these or by a hash of them).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Appends the URN to `out`, without going through `fmt`.
    pub(crate) fn push_to(&self, out: &mut String) {
        let mut buf = [0u8; REFERENCE_LEN];
        out.push_str(REQUEST_URI_PREFIX);
        if let Ok(n) = URL_SAFE_NO_PAD.encode_slice(self.0, &mut buf) {
            // base64url output is ASCII.
            out.extend(buf[..n].iter().map(|&b| char::from(b)));
        }
    }

    /// Length of the URN: the prefix and 43 characters of base64url.
    pub(crate) const URN_LEN: usize = REQUEST_URI_PREFIX.len() + REFERENCE_LEN;

    /// A short, non-reversible fingerprint for logs and error correlation.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0);
        URL_SAFE_NO_PAD.encode(&digest[..6])
    }
}

impl fmt::Display for RequestUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; REFERENCE_LEN];
        let n = URL_SAFE_NO_PAD
            .encode_slice(self.0, &mut buf)
            .map_err(|_| fmt::Error)?;
        f.write_str(REQUEST_URI_PREFIX)?;
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for RequestUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestUri(#{})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn par14_unique_urn_with_256_bits() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let s = RequestUri::generate().to_string();
            assert!(s.starts_with("urn:"));
            assert!(s.len() <= 512);
            assert_eq!(s.len(), REQUEST_URI_PREFIX.len() + 43);
            assert!(seen.insert(s));
        }
    }

    #[test]
    fn parse_rejects_foreign_and_malformed() {
        let good = RequestUri::generate().to_string();
        assert!(RequestUri::parse(&good).is_some());
        assert!(RequestUri::parse(&good[..good.len() - 1]).is_none());
        assert!(RequestUri::parse(&format!("{good}A")).is_none());
        assert!(RequestUri::parse(&good.replace("urn:ietf", "urn:other")).is_none());
        let bad = format!("{REQUEST_URI_PREFIX}{}", "!".repeat(43));
        assert!(RequestUri::parse(&bad).is_none());
    }

    #[test]
    fn push_to_matches_display() {
        let uri = RequestUri::generate();
        let mut s = String::from("x");
        uri.push_to(&mut s);
        assert_eq!(&s[1..], uri.to_string());
        assert_eq!(s.len() - 1, RequestUri::URN_LEN);
    }

    #[test]
    fn debug_does_not_reveal_reference() {
        let uri = RequestUri::generate();
        let text = uri.to_string();
        let reference = &text[REQUEST_URI_PREFIX.len()..];
        assert!(!format!("{uri:?}").contains(reference));
    }
}
