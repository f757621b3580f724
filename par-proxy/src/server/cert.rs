//! Stand-in for `tower_par::ClientCertificate` until the library's type is
//! available: the same constructors, so the server switches by one `use`.

use base64::Engine;
use bytes::Bytes;
use http::HeaderValue;

/// A client's X.509 certificate chain (DER, end entity first), as a
/// request extension.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    chain: Vec<Bytes>,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("certificates", &self.chain.len())
            .finish()
    }
}

impl ClientCertificate {
    /// From DER certificates, end entity first; `None` when empty.
    pub fn from_der_chain<I, T>(chain: I) -> Option<Self>
    where
        I: IntoIterator<Item = T>,
        T: Into<Bytes>,
    {
        let chain: Vec<Bytes> = chain.into_iter().map(Into::into).collect();
        if chain.is_empty() || chain.iter().any(Bytes::is_empty) {
            return None;
        }
        Some(Self { chain })
    }

    /// From RFC 9440 `Client-Cert` and `Client-Cert-Chain` field values.
    pub fn from_rfc9440(cert: &HeaderValue, chain: Option<&HeaderValue>) -> Option<Self> {
        let mut all = vec![binary_item(cert.to_str().ok()?.trim())?];
        if let Some(chain) = chain {
            for item in chain.to_str().ok()?.split(',') {
                all.push(binary_item(item.trim())?);
            }
        }
        Self::from_der_chain(all)
    }

    /// The DER certificates, end entity first.
    pub fn chain(&self) -> &[Bytes] {
        &self.chain
    }
}

fn binary_item(s: &str) -> Option<Bytes> {
    let inner = s.strip_prefix(':')?.strip_suffix(':')?;
    base64::engine::general_purpose::STANDARD
        .decode(inner)
        .ok()
        .map(Bytes::from)
}
