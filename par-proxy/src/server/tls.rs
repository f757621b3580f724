//! `[tls]`: the rustls server configuration, and the client-certificate
//! verifier behind `client_ca`.
//!
//! With `client_ca`, client certificates are requested but optional: a
//! client without one still gets a connection (public clients, browsers),
//! and the PAR layer's `tls_client_auth` decides per request whether the
//! certificate chains to the configured CA and matches the client's
//! registered subject (RFC 8705 §2.1). The handshake proves possession of
//! the certificate's private key (the `CertificateVerify` signature is
//! checked here); the chain is not judged at the handshake, so that
//! `self_signed_tls_client_auth` certificates (RFC 8705 §2.2) get through
//! too.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::config::TlsSection;

/// Builds the public listener's rustls configuration from `[tls]`: the
/// certificate chain and key (PEM), ALPN `h2` and `http/1.1`, and with
/// `client_ca` optional client certificates (see the module docs).
///
/// Errors name the key (`tls.cert`, `tls.key`, `tls.client_ca`) and what
/// is wrong; they never quote key material.
pub fn server_config(tls: &TlsSection) -> Result<Arc<ServerConfig>, String> {
    let (cert_path, key_path) = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => return Err("tls.key: required with tls.cert".into()),
        (None, _) => return Err("tls.cert: required to terminate TLS".into()),
    };
    let certs = read_certs(cert_path).map_err(|e| format!("tls.cert: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert: no certificate in {}",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        format!(
            "tls.key: no usable private key in {}: {}",
            key_path.display(),
            pem_error(&e)
        )
    })?;
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = read_certs(ca).map_err(|e| format!("tls.client_ca: {e}"))?;
            let verifier =
                OptionalClientCert::new(&roots, provider.signature_verification_algorithms)
                    .map_err(|e| format!("tls.client_ca: {e}"))?;
            builder.with_client_cert_verifier(Arc::new(verifier))
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls.key: does not fit tls.cert or is not supported: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads every `CERTIFICATE` block of a PEM file.
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            format!(
                "cannot read PEM certificates from {}: {}",
                path.display(),
                pem_error(&e)
            )
        })
}

// The PEM error's own Display is fine except that it can carry bytes of
// the file (a malformed section); keep to the kind of failure.
fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no PEM section found".into(),
        Error::MissingSectionEnd { .. } => "a PEM section does not end".into(),
        Error::IllegalSectionStart { .. } => "malformed PEM section start".into(),
        Error::Base64Decode(_) => "malformed base64 in a PEM section".into(),
        _ => "malformed PEM".into(),
    }
}

/// Requests a client certificate, lets the connection go on without one,
/// and accepts any chain once the handshake signature proves the key.
#[derive(Debug)]
struct OptionalClientCert {
    subjects: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl OptionalClientCert {
    fn new(
        roots: &[CertificateDer<'static>],
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Result<Self, String> {
        if roots.is_empty() {
            return Err("no CA certificate in the file".into());
        }
        let mut store = RootCertStore::empty();
        for (i, root) in roots.iter().enumerate() {
            store.add(root.clone()).map_err(|e| {
                format!("certificate #{} is not a usable CA certificate: {e}", i + 1)
            })?;
        }
        Ok(Self {
            subjects: store.subjects(),
            algorithms,
        })
    }
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The chain and the subject are judged per request by the layer's
        // `tls_client_auth` (RFC 8705 §2.1) against its `tls_client_roots`,
        // or matched against the client's `jwks` (§2.2).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
