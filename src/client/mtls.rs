//! mTLS client authentication (RFC 8705): the [`ClientCertificate`]
//! request extension, and (feature `mtls`) the verification of
//! `tls_client_auth` and `self_signed_tls_client_auth` clients.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The certificate chain a client presented on its TLS connection (DER,
/// end-entity first): the credential of the RFC 8705 methods
/// (`tls_client_auth`, `self_signed_tls_client_auth`).
///
/// The layer never sees the TLS handshake: whatever terminates TLS puts
/// this value in the request's extensions, and the layer reads it from
/// there at the PAR endpoint and in [`TokenEndpoint`](crate::TokenEndpoint).
/// Insert it only from a certificate the TLS stack itself verified the
/// possession of (the handshake's `CertificateVerify` signature): a rustls
/// server with a client certificate verifier does that. The layer then
/// checks the chain and the registered subject (feature `mtls`).
///
/// With hyper or axum behind your own rustls acceptor: read the peer
/// certificates once per connection, after the handshake
/// (`tls_stream.get_ref().1.peer_certificates()` with tokio-rustls), and
/// add the value to every request of that connection before the layer
/// sees it:
///
/// ```
/// use bytes::Bytes;
/// use tower_par::ClientCertificate;
///
/// /// From rustls' `peer_certificates()` (`Option<&[CertificateDer]>`;
/// /// anything that derefs to DER bytes).
/// fn from_peer<D: AsRef<[u8]>>(peer_certs: Option<&[D]>) -> Option<ClientCertificate> {
///     ClientCertificate::from_der_chain(
///         peer_certs?.iter().map(|c| Bytes::copy_from_slice(c.as_ref())),
///     )
/// }
///
/// /// In the per-connection service (`hyper::service::service_fn`, or an
/// /// axum `Router` served with `hyper_util`), before `ParLayer`'s service.
/// fn tag<B>(mut req: http::Request<B>, cert: &Option<ClientCertificate>) -> http::Request<B> {
///     if let Some(cert) = cert {
///         req.extensions_mut().insert(cert.clone());
///     }
///     req
/// }
///
/// let der = vec![0x30, 0x03, 0x02, 0x01, 0x01];
/// let cert = from_peer(Some(&[der][..]));
/// let req = tag(http::Request::post("/par").body(())?, &cert);
/// let seen = req.extensions().get::<ClientCertificate>().unwrap();
/// assert_eq!(seen.chain().len(), 1);
/// assert_eq!(from_peer::<Vec<u8>>(None), None);
/// # Ok::<(), http::Error>(())
/// ```
///
/// Behind a TLS-terminating front proxy, the certificate arrives in the
/// RFC 9440 `Client-Cert` header instead: see
/// [`from_rfc9440`](Self::from_rfc9440).
///
/// `Debug` shows the number of certificates and a SHA-256 fingerprint
/// prefix of the end-entity certificate, nothing else.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    chain: Arc<[Bytes]>,
}

/// Standard base64, padding optional (RFC 8941 §4.2.7: parsers accept
/// binary items without padding).
const SF_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl ClientCertificate {
    /// The most certificates a chain may hold (end-entity included).
    pub const MAX_CHAIN_LEN: usize = 8;

    /// The largest DER certificate accepted, in bytes.
    pub const MAX_CERT_LEN: usize = 16 * 1024;

    /// A chain as the TLS stack gives it: DER certificates, end-entity
    /// first. `None` when it is empty, longer than
    /// [`MAX_CHAIN_LEN`](Self::MAX_CHAIN_LEN), or holds an empty
    /// certificate or one over [`MAX_CERT_LEN`](Self::MAX_CERT_LEN) bytes.
    /// The bytes are not parsed here.
    ///
    /// ```
    /// use tower_par::ClientCertificate;
    ///
    /// let cert = ClientCertificate::from_der_chain([vec![0x30, 0x00], vec![0x30, 0x00]]).unwrap();
    /// assert_eq!(cert.end_entity(), &[0x30, 0x00]);
    /// assert_eq!(cert.chain().len(), 2);
    /// assert!(format!("{cert:?}").starts_with("ClientCertificate { certificates: 2, sha256: \""));
    /// assert!(ClientCertificate::from_der_chain(Vec::<Vec<u8>>::new()).is_none());
    /// assert!(ClientCertificate::from_der_chain(vec![vec![0x30, 0x00]; 9]).is_none());
    /// ```
    pub fn from_der_chain<I, T>(chain: I) -> Option<Self>
    where
        I: IntoIterator<Item = T>,
        T: Into<Bytes>,
    {
        let mut certs = Vec::new();
        for cert in chain {
            if certs.len() == Self::MAX_CHAIN_LEN {
                return None;
            }
            let cert: Bytes = cert.into();
            if cert.is_empty() || cert.len() > Self::MAX_CERT_LEN {
                return None;
            }
            certs.push(cert);
        }
        if certs.is_empty() {
            return None;
        }
        Some(Self {
            chain: certs.into(),
        })
    }

    /// Reads the RFC 9440 headers a TLS-terminating front proxy sends:
    /// `Client-Cert` (an RFC 8941 byte sequence, `:base64-DER:`) and
    /// optionally `Client-Cert-Chain` (a list of byte sequences, the
    /// certificates after the end-entity one). `None` on anything
    /// malformed: not a single byte sequence, bad base64, parameters on an
    /// item, an empty certificate, or more than the size and count limits
    /// of [`from_der_chain`](Self::from_der_chain). A `Client-Cert-Chain`
    /// sent as several field lines is one list: join the lines with `, `
    /// before calling this (RFC 9110 §5.3); more than one `Client-Cert`
    /// line is malformed, and should be refused by the caller.
    ///
    /// **Believe these headers only from a front proxy you trust, that
    /// verified the client's certificate in the TLS handshake and removes
    /// any `Client-Cert` a client sent itself.** From anyone else they are
    /// whatever the sender chose: a client certificate is then no proof of
    /// anything, and an attacker who knows a client's certificate (it is
    /// public) would authenticate as that client. Strip the headers from
    /// requests that do not come from the trusted proxy (by its address,
    /// or by the connection it uses) before calling this.
    ///
    /// ```
    /// use http::HeaderValue;
    /// use tower_par::ClientCertificate;
    ///
    /// let cert = HeaderValue::from_static(":MAA=:");
    /// let chain = HeaderValue::from_static(":MAE=:, :MAI=:");
    /// let parsed = ClientCertificate::from_rfc9440(&cert, Some(&chain)).unwrap();
    /// assert_eq!(parsed.end_entity(), &[0x30, 0x00]);
    /// assert_eq!(parsed.chain().len(), 3);
    ///
    /// for bad in ["MAA=", ":MAA=", ":M A=:", ":MAA=:;a=1", "::", ":MAA=:, :MAE=:"] {
    ///     assert!(ClientCertificate::from_rfc9440(&HeaderValue::from_static(bad), None).is_none());
    /// }
    /// ```
    pub fn from_rfc9440(
        cert: &http::HeaderValue,
        chain: Option<&http::HeaderValue>,
    ) -> Option<Self> {
        // Base64 of the largest certificate, with the colons.
        const MAX_ITEM: usize = ClientCertificate::MAX_CERT_LEN.div_ceil(3) * 4 + 2;
        const MAX_LIST: usize = (MAX_ITEM + 2) * (ClientCertificate::MAX_CHAIN_LEN - 1);
        if cert.len() > MAX_ITEM + 16 || chain.is_some_and(|c| c.len() > MAX_LIST + 16) {
            return None;
        }
        let mut certs = vec![sf_binary(trim_ows(cert.as_bytes()))?];
        if let Some(chain) = chain {
            let list = trim_ows(chain.as_bytes());
            if list.is_empty() {
                return None;
            }
            for member in list.split(|b| *b == b',') {
                if certs.len() == Self::MAX_CHAIN_LEN {
                    return None;
                }
                certs.push(sf_binary(trim_ows(member))?);
            }
        }
        Self::from_der_chain(certs)
    }

    /// The end-entity (the client's own) certificate, DER.
    pub fn end_entity(&self) -> &[u8] {
        &self.chain[0]
    }

    /// The whole chain as presented, end-entity first.
    pub fn chain(&self) -> &[Bytes] {
        &self.chain
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = Sha256::digest(self.end_entity());
        let prefix: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        f.debug_struct("ClientCertificate")
            .field("certificates", &self.chain.len())
            .field("sha256", &prefix)
            .finish_non_exhaustive()
    }
}

/// Strips optional whitespace (RFC 9110 OWS: spaces and tabs).
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// An RFC 8941 byte sequence without parameters: `:` base64 `:`.
fn sf_binary(item: &[u8]) -> Option<Bytes> {
    let inner = item.strip_prefix(b":")?.strip_suffix(b":")?;
    if inner.is_empty()
        || !inner
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return None;
    }
    SF_BASE64.decode(inner).ok().map(Bytes::from)
}

/// What a `tls_client_auth` client's certificate must carry (RFC 8705
/// §2.1.2): exactly one of the registration members
/// `tls_client_auth_subject_dn`, `tls_client_auth_san_dns`,
/// `tls_client_auth_san_uri`, `tls_client_auth_san_ip`,
/// `tls_client_auth_san_email`.
///
/// How each is compared with the certificate:
///
/// - [`SubjectDn`](Self::SubjectDn): the registered string is read as an
///   RFC 4514 distinguished name (`CN=app,O=Example Corp,C=DE`, most
///   significant RDN last, `\`-escapes and `\XX` hex escapes, `+` for
///   multi-valued RDNs; spaces around `,`, `+` and `=` are allowed) and
///   compared with the certificate's subject RDN by RDN, in order.
///   Attribute types are compared by OID: the RFC 4514 names (`CN`, `L`,
///   `ST`, `O`, `OU`, `C`, `STREET`, `DC`, `UID`), `SERIALNUMBER`, `SN`,
///   `GIVENNAME`, `TITLE`, `emailAddress` (or `E`), `organizationIdentifier`,
///   `businessCategory`, or a dotted OID. Values are compared
///   case-insensitively (Unicode lowercase) after trimming and collapsing
///   runs of whitespace; the attributes of a multi-valued RDN in any
///   order. A subject value in an encoding other than UTF8String,
///   PrintableString, IA5String or NumericString never matches; the
///   `#hex` (BER) form of a value is not accepted in a registration.
/// - [`SanDns`](Self::SanDns): a `dNSName` of the subject alternative
///   names, compared ASCII case-insensitively.
/// - [`SanUri`](Self::SanUri): a `uniformResourceIdentifier`, compared
///   exactly.
/// - [`SanIp`](Self::SanIp): an `iPAddress`, compared as an address.
/// - [`SanEmail`](Self::SanEmail): an `rfc822Name`, the local part exactly
///   and the domain ASCII case-insensitively.
///
/// A registration whose value names nothing is refused, and such a value
/// never matches a certificate: an empty or whitespace-only value, a DNS
/// name that is not a host name of letter-digit-hyphen labels (a wildcard,
/// a trailing dot), a URI without a scheme, an email address without a
/// local part, `@` and a domain, or a value holding spaces or control
/// characters.
///
/// ```
/// use tower_par::{AuthMethod, Client, TlsClientAuthSubject};
///
/// let client = Client::new("app", AuthMethod::TlsClientAuth)
///     .redirect_uri("https://app.example/cb")
///     .tls_client_auth_subject(TlsClientAuthSubject::SubjectDn("CN=app,O=Example,C=DE".into()));
/// assert_eq!(
///     client.tls_client_auth_subject.as_ref().map(TlsClientAuthSubject::member_name),
///     Some("tls_client_auth_subject_dn")
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsClientAuthSubject {
    /// `tls_client_auth_subject_dn`: the subject distinguished name, RFC
    /// 4514 string form.
    SubjectDn(String),
    /// `tls_client_auth_san_dns`: a `dNSName` SAN entry.
    SanDns(String),
    /// `tls_client_auth_san_uri`: a `uniformResourceIdentifier` SAN entry.
    SanUri(String),
    /// `tls_client_auth_san_ip`: an `iPAddress` SAN entry.
    SanIp(IpAddr),
    /// `tls_client_auth_san_email`: an `rfc822Name` SAN entry.
    SanEmail(String),
}

impl TlsClientAuthSubject {
    /// The registration member's name, e.g. `tls_client_auth_san_dns`.
    pub fn member_name(&self) -> &'static str {
        match self {
            Self::SubjectDn(_) => "tls_client_auth_subject_dn",
            Self::SanDns(_) => "tls_client_auth_san_dns",
            Self::SanUri(_) => "tls_client_auth_san_uri",
            Self::SanIp(_) => "tls_client_auth_san_ip",
            Self::SanEmail(_) => "tls_client_auth_san_email",
        }
    }

    /// Checks a registered value, so that it can only match what it names:
    /// none is empty or whitespace; a DNS name is a host name of LDH labels
    /// (no wildcard, no trailing dot); a URI is absolute (has a scheme); an
    /// email address has a local part, `@` and a domain; none holds spaces
    /// or control characters. (A subject DN is parsed as well, with the
    /// `mtls` feature.)
    pub(crate) fn check_value(&self) -> Result<(), String> {
        let (value, ok) = match self {
            Self::SanIp(_) => return Ok(()),
            Self::SubjectDn(dn) => (dn, !dn.trim().is_empty()),
            Self::SanDns(dns) => (dns, is_dns_name(dns)),
            Self::SanUri(uri) => (uri, plain(uri) && has_scheme(uri)),
            Self::SanEmail(email) => (
                email,
                plain(email)
                    && email
                        .rsplit_once('@')
                        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty()),
            ),
        };
        if ok {
            return Ok(());
        }
        let what = match self {
            Self::SubjectDn(_) => "a distinguished name",
            Self::SanDns(_) => "a DNS name (no wildcard)",
            Self::SanUri(_) => "an absolute URI",
            _ => "an email address",
        };
        Err(format!(
            "{} '{}' is not {what} (RFC 8705 §2.1.2)",
            self.member_name(),
            value.escape_debug()
        ))
    }
}

/// Not empty, and without whitespace or control characters.
fn plain(value: &str) -> bool {
    !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A host name: 1 to 253 bytes of dot-separated labels of 1 to 63 ASCII
/// letters, digits and `-`, a label neither starting nor ending with `-`.
fn is_dns_name(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// RFC 3986 §3.1: `scheme ":"` and something after it.
fn has_scheme(uri: &str) -> bool {
    uri.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    })
}

#[cfg(feature = "mtls")]
pub(crate) use verify::{authenticate, check_registration, TrustRoots};

#[cfg(feature = "mtls")]
mod verify {
    use std::sync::Arc;
    use std::time::{SystemTime, UNIX_EPOCH};

    use base64::Engine as _;
    use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
    use serde_json::Value;
    use x509_parser::asn1_rs::Oid;
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    use x509_parser::public_key::PublicKey;
    use x509_parser::x509::SubjectPublicKeyInfo;

    use super::{ClientCertificate, TlsClientAuthSubject};
    use crate::client::{
        AuthMethod, Client, ClientAuthError, ClientAuthenticator, ClientCredentials,
    };
    use crate::config::Config;

    /// The CA certificates `tls_client_auth` chains must lead to
    /// (`ParLayer::tls_client_roots`).
    #[derive(Clone)]
    pub(crate) struct TrustRoots {
        anchors: Vec<TrustAnchor<'static>>,
    }

    impl TrustRoots {
        pub(crate) fn from_der<I, T>(roots: I) -> Result<Self, String>
        where
            I: IntoIterator<Item = T>,
            T: Into<bytes::Bytes>,
        {
            let mut anchors = Vec::new();
            for (i, der) in roots.into_iter().enumerate() {
                let der: bytes::Bytes = der.into();
                let cert = CertificateDer::from(&der[..]);
                let anchor = webpki::anchor_from_trusted_cert(&cert).map_err(|e| {
                    format!(
                        "tls_client_roots: certificate {i} is not a DER X.509 certificate ({e})"
                    )
                })?;
                anchors.push(anchor.to_owned());
            }
            Ok(Self { anchors })
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.anchors.is_empty()
        }
    }

    impl std::fmt::Debug for TrustRoots {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "TrustRoots(<{} CAs>)", self.anchors.len())
        }
    }

    /// Authenticates a client by its certificate (AUTH-20..22, RFC 8705
    /// §2): `Ok(None)`
    /// when the named client is not registered for an mTLS method (the
    /// caller then authenticates the request as usual).
    pub(crate) async fn authenticate<C: ClientAuthenticator, St>(
        cfg: &Config<C, St>,
        credentials: &ClientCredentials,
        cert: &ClientCertificate,
    ) -> Result<Option<Arc<Client>>, ClientAuthError> {
        let Some(client) = cfg
            .clients
            .client_for_authentication(&credentials.client_id)
            .await?
        else {
            return Ok(None);
        };
        let ok = match client.auth_method {
            AuthMethod::TlsClientAuth => {
                let roots = cfg.tls_client_roots.as_deref().filter(|r| !r.is_empty());
                match roots {
                    Some(roots) => chains_and_matches(&client, cert, roots, SystemTime::now()),
                    None => {
                        no_roots(&client.client_id);
                        false
                    }
                }
            }
            AuthMethod::SelfSignedTlsClientAuth => self_signed_matches(&client, cert),
            _ => return Ok(None),
        };
        if !ok || client.client_id != credentials.client_id {
            return Err(ClientAuthError::BadCredentials);
        }
        Ok(Some(client))
    }

    fn no_roots(client_id: &str) {
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "tower_par",
            client_id,
            "tls_client_auth client refused: no tls_client_roots configured"
        );
        #[cfg(not(feature = "tracing"))]
        let _ = client_id;
    }

    /// `tls_client_auth`: the chain leads to a configured CA (client-auth
    /// extended key usage when the certificate lists usages, valid at
    /// `now`), and the end-entity certificate carries the registered
    /// subject.
    pub(crate) fn chains_and_matches(
        client: &Client,
        cert: &ClientCertificate,
        roots: &TrustRoots,
        now: SystemTime,
    ) -> bool {
        let Some(subject) = &client.tls_client_auth_subject else {
            return false;
        };
        let ee_der = CertificateDer::from(cert.end_entity());
        let Ok(ee) = webpki::EndEntityCert::try_from(&ee_der) else {
            return false;
        };
        let intermediates: Vec<CertificateDer<'_>> = cert.chain()[1..]
            .iter()
            .map(|c| CertificateDer::from(&c[..]))
            .collect();
        let Ok(since_epoch) = now.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let verified = ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &roots.anchors,
            &intermediates,
            UnixTime::since_unix_epoch(since_epoch),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        );
        if verified.is_err() {
            return false;
        }
        let Ok((_, x509)) = X509Certificate::from_der(cert.end_entity()) else {
            return false;
        };
        subject_matches(&x509, subject)
    }

    fn subject_matches(cert: &X509Certificate<'_>, subject: &TlsClientAuthSubject) -> bool {
        // A value that names nothing (a client a registry built without
        // the registration checks) matches nothing.
        if subject.check_value().is_err() {
            return false;
        }
        if let TlsClientAuthSubject::SubjectDn(dn) = subject {
            let Ok(registered) = parse_dn(dn) else {
                return false;
            };
            return certificate_dn(cert).is_some_and(|presented| presented == registered);
        }
        let Ok(Some(san)) = cert.subject_alternative_name() else {
            return false;
        };
        san.value
            .general_names
            .iter()
            .any(|name| match (subject, name) {
                (TlsClientAuthSubject::SanDns(d), GeneralName::DNSName(n)) => {
                    d.eq_ignore_ascii_case(n)
                }
                (TlsClientAuthSubject::SanUri(u), GeneralName::URI(n)) => u == n,
                (TlsClientAuthSubject::SanIp(ip), GeneralName::IPAddress(bytes)) => {
                    ip_of(bytes).is_some_and(|presented| presented == *ip)
                }
                (TlsClientAuthSubject::SanEmail(e), GeneralName::RFC822Name(n)) => email_eq(e, n),
                _ => false,
            })
    }

    fn ip_of(bytes: &[u8]) -> Option<std::net::IpAddr> {
        match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
            16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
            _ => None,
        }
    }

    /// RFC 5280 §4.2.1.6: the local part exactly, the domain without case.
    fn email_eq(registered: &str, presented: &str) -> bool {
        match (registered.rsplit_once('@'), presented.rsplit_once('@')) {
            (Some((rl, rd)), Some((pl, pd))) => rl == pl && rd.eq_ignore_ascii_case(pd),
            _ => false,
        }
    }

    /// One RDN: its (OID, normalised value) pairs, sorted.
    type Rdn = Vec<(String, String)>;

    /// The certificate's subject in RFC 4514 order (most significant RDN
    /// last); `None` when a value is not a string type.
    fn certificate_dn(cert: &X509Certificate<'_>) -> Option<Vec<Rdn>> {
        let mut rdns = Vec::new();
        for rdn in cert.subject().iter() {
            let mut attrs = Vec::new();
            for attr in rdn.iter() {
                let value = attr.as_str().ok()?;
                attrs.push((attr.attr_type().to_id_string(), normalise(value)));
            }
            attrs.sort();
            rdns.push(attrs);
        }
        rdns.reverse();
        Some(rdns)
    }

    /// Trimmed, whitespace runs collapsed to one space, lowercase.
    fn normalise(value: &str) -> String {
        value
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    }

    /// Attribute type names and their OIDs (RFC 4514 §3, and the ones
    /// certificates for FAPI and Open Banking commonly carry).
    const ATTRIBUTE_TYPES: &[(&str, &str)] = &[
        ("cn", "2.5.4.3"),
        ("l", "2.5.4.7"),
        ("st", "2.5.4.8"),
        ("o", "2.5.4.10"),
        ("ou", "2.5.4.11"),
        ("c", "2.5.4.6"),
        ("street", "2.5.4.9"),
        ("dc", "0.9.2342.19200300.100.1.25"),
        ("uid", "0.9.2342.19200300.100.1.1"),
        ("serialnumber", "2.5.4.5"),
        ("sn", "2.5.4.4"),
        ("givenname", "2.5.4.42"),
        ("title", "2.5.4.12"),
        ("emailaddress", "1.2.840.113549.1.9.1"),
        ("e", "1.2.840.113549.1.9.1"),
        ("organizationidentifier", "2.5.4.97"),
        ("businesscategory", "2.5.4.15"),
    ];

    fn attribute_oid(name: &str) -> Result<String, String> {
        let name = name.trim();
        let lower = name.to_ascii_lowercase();
        let numeric = lower.strip_prefix("oid.").unwrap_or(&lower);
        if let Some((_, oid)) = ATTRIBUTE_TYPES.iter().find(|(n, _)| *n == lower) {
            return Ok((*oid).to_owned());
        }
        let is_oid = numeric.split('.').count() >= 2
            && numeric
                .split('.')
                .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
        if is_oid {
            // Canonical form, as the certificate's OID prints it.
            if let Ok(oid) = numeric.parse::<Oid<'static>>() {
                return Ok(oid.to_id_string());
            }
        }
        Err(format!("unknown attribute type '{name}'"))
    }

    /// Parses an RFC 4514 distinguished name into RDNs, in string order.
    pub(crate) fn parse_dn(dn: &str) -> Result<Vec<Rdn>, String> {
        const MAX_DN: usize = 4096;
        if dn.len() > MAX_DN {
            return Err(format!("the subject DN is longer than {MAX_DN} bytes"));
        }
        let mut rdns: Vec<Rdn> = Vec::new();
        let mut rdn: Rdn = Vec::new();
        let mut attr_type = String::new();
        let mut value: Vec<u8> = Vec::new();
        let mut in_value = false;
        let bytes = dn.as_bytes();
        let mut i = 0;
        let finish_attr =
            |attr_type: &mut String, value: &mut Vec<u8>, rdn: &mut Rdn| -> Result<(), String> {
                let oid = attribute_oid(attr_type)?;
                let text = String::from_utf8(std::mem::take(value))
                    .map_err(|_| "a value's escapes are not UTF-8".to_owned())?;
                let text = normalise(&text);
                if text.is_empty() {
                    return Err(format!(
                        "attribute '{}' has an empty value",
                        attr_type.trim()
                    ));
                }
                rdn.push((oid, text));
                attr_type.clear();
                Ok(())
            };
        while i < bytes.len() {
            let b = bytes[i];
            if !in_value {
                match b {
                    b'=' => {
                        in_value = true;
                        // Spaces after '=' are not part of the value.
                        while bytes.get(i + 1) == Some(&b' ') {
                            i += 1;
                        }
                        if bytes.get(i + 1) == Some(&b'#') {
                            return Err(
                                "hex-encoded (#...) attribute values are not supported".into()
                            );
                        }
                    }
                    b',' | b'+' | b'\\' | b'"' | b';' => {
                        return Err(format!("unexpected '{}' in an attribute type", b as char))
                    }
                    _ => attr_type.push(b as char),
                }
                i += 1;
                continue;
            }
            match b {
                b'\\' => {
                    let next = *bytes.get(i + 1).ok_or("a value ends with '\\'")?;
                    let hex = |c: u8| (c as char).to_digit(16);
                    if let (Some(h), Some(l)) = (hex(next), bytes.get(i + 2).and_then(|c| hex(*c)))
                    {
                        value.push((h * 16 + l) as u8);
                        i += 3;
                    } else if b" \"#+,;<=>\\".contains(&next) {
                        value.push(next);
                        i += 2;
                    } else {
                        return Err(format!("invalid escape '\\{}'", next as char));
                    }
                    continue;
                }
                b',' | b'+' => {
                    finish_attr(&mut attr_type, &mut value, &mut rdn)?;
                    if b == b',' {
                        rdn.sort();
                        rdns.push(std::mem::take(&mut rdn));
                    }
                    in_value = false;
                }
                b'"' | b';' | b'<' | b'>' => {
                    return Err(format!(
                        "'{}' must be escaped in an attribute value",
                        b as char
                    ))
                }
                _ => value.push(b),
            }
            i += 1;
        }
        if !in_value {
            return Err(
                if rdns.is_empty() && rdn.is_empty() && attr_type.trim().is_empty() {
                    "the subject DN is empty".into()
                } else {
                    "an attribute has no '=' and value".into()
                },
            );
        }
        finish_attr(&mut attr_type, &mut value, &mut rdn)?;
        rdn.sort();
        rdns.push(rdn);
        Ok(rdns)
    }

    /// `self_signed_tls_client_auth`: the end-entity certificate is a
    /// registered `x5c[0]`, or its public key is a key of the client's
    /// `jwks`. No chain, no validity period (RFC 8705 §2.2).
    pub(crate) fn self_signed_matches(client: &Client, cert: &ClientCertificate) -> bool {
        let Some(jwks) = &client.jwks else {
            return false;
        };
        let Some(keys) = jwks.as_json().get("keys").and_then(Value::as_array) else {
            return false;
        };
        let Ok((_, x509)) = X509Certificate::from_der(cert.end_entity()) else {
            return false;
        };
        let spki = x509.public_key();
        keys.iter().any(|jwk| {
            let x5c_match = jwk
                .get("x5c")
                .and_then(Value::as_array)
                .and_then(|chain| chain.first())
                .and_then(Value::as_str)
                .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
                .is_some_and(|der| der == cert.end_entity());
            x5c_match || key_matches(jwk, spki)
        })
    }

    fn b64url(jwk: &Value, member: &str) -> Option<Vec<u8>> {
        let text = jwk.get(member)?.as_str()?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()
    }

    fn strip_zeros(bytes: &[u8]) -> &[u8] {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        &bytes[first..]
    }

    /// Whether a public JWK is the key of this SubjectPublicKeyInfo: RSA
    /// (`n`, `e`), EC P-256/P-384/P-521 (`x`, `y`) or Ed25519/Ed448 (`x`).
    fn key_matches(jwk: &Value, spki: &SubjectPublicKeyInfo<'_>) -> bool {
        let alg = spki.algorithm.algorithm.to_id_string();
        let key_bits: &[u8] = &spki.subject_public_key.data;
        match jwk.get("kty").and_then(Value::as_str) {
            Some("RSA") if alg == "1.2.840.113549.1.1.1" => {
                let (Some(n), Some(e)) = (b64url(jwk, "n"), b64url(jwk, "e")) else {
                    return false;
                };
                match spki.parsed() {
                    Ok(PublicKey::RSA(rsa)) => {
                        !n.is_empty()
                            && strip_zeros(rsa.modulus) == strip_zeros(&n)
                            && strip_zeros(rsa.exponent) == strip_zeros(&e)
                    }
                    _ => false,
                }
            }
            Some("EC") if alg == "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| Oid::try_from(p).ok())
                    .map(|o| o.to_id_string());
                let expected = match jwk.get("crv").and_then(Value::as_str) {
                    Some("P-256") => ("1.2.840.10045.3.1.7", 32),
                    Some("P-384") => ("1.3.132.0.34", 48),
                    Some("P-521") => ("1.3.132.0.35", 66),
                    _ => return false,
                };
                let (Some(x), Some(y)) = (b64url(jwk, "x"), b64url(jwk, "y")) else {
                    return false;
                };
                curve.as_deref() == Some(expected.0)
                    && x.len() == expected.1
                    && y.len() == expected.1
                    && key_bits.len() == 1 + 2 * expected.1
                    && key_bits[0] == 0x04
                    && key_bits[1..=expected.1] == x[..]
                    && key_bits[1 + expected.1..] == y[..]
            }
            Some("OKP") => {
                let expected = match jwk.get("crv").and_then(Value::as_str) {
                    Some("Ed25519") => "1.3.101.112",
                    Some("Ed448") => "1.3.101.113",
                    _ => return false,
                };
                alg == expected && b64url(jwk, "x").is_some_and(|x| !x.is_empty() && x == key_bits)
            }
            _ => false,
        }
    }

    /// Checks a registration's mTLS members when the client is added
    /// (the subject DN must parse).
    pub(crate) fn check_registration(client: &Client) -> Result<(), String> {
        if let Some(TlsClientAuthSubject::SubjectDn(dn)) = &client.tls_client_auth_subject {
            parse_dn(dn).map_err(|e| format!("tls_client_auth_subject_dn: {e}"))?;
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn oid(s: &str) -> String {
            s.to_owned()
        }

        #[test]
        fn rfc4514_dns_parse_in_string_order() {
            let dn = parse_dn(r"CN=Jane  Doe\, Jr.,OU=Sales+O=Example\2C Inc,C=de").unwrap();
            assert_eq!(
                dn,
                vec![
                    vec![(oid("2.5.4.3"), "jane doe, jr.".into())],
                    vec![
                        (oid("2.5.4.10"), "example, inc".into()),
                        (oid("2.5.4.11"), "sales".into())
                    ],
                    vec![(oid("2.5.4.6"), "de".into())],
                ]
            );
            // Spaces around separators, dotted OIDs, UTF-8 escapes.
            assert_eq!(
                parse_dn("cn = a , 2.5.4.10=b").unwrap(),
                parse_dn("CN=A,O=B").unwrap()
            );
            assert_eq!(
                parse_dn(r"CN=J\C3\BCrgen").unwrap(),
                parse_dn("CN=jürgen").unwrap()
            );
            for bad in [
                "",
                "CN",
                "CN=",
                "CN=a,",
                "XX=a",
                "CN=#0403616263",
                "CN=a;b",
                r"CN=a\",
                r"CN=\zz",
                r"CN=\FF",
                "=a",
            ] {
                assert!(parse_dn(bad).is_err(), "{bad}");
            }
        }
    }
}
