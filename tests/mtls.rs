//! mTLS client authentication (RFC 8705) over real TLS: a hyper server on
//! a loopback socket behind a tokio-rustls acceptor that asks for client
//! certificates (and verifies the handshake signature, so the client holds
//! the key), puts the presented chain in the request as a
//! `ClientCertificate`, and serves `ParLayer` around a trivial service. The
//! certificates are generated here with rcgen.

#![cfg(feature = "mtls")]

#[cfg(feature = "jwt")]
mod keys;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime,
};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{DigitallySignedStruct, DistinguishedName as TlsName, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tower::{service_fn, Service, ServiceExt};
use tower_par::{
    AuthMethod, Client, ClientAuthError, ClientAuthenticator, ClientCertificate, ClientCredentials,
    ConfigErrorKind, ParLayer, ParRequestBody, Params, Profile, PushedAuthorization, Setting,
    StaticClients, TlsClientAuthSubject,
};

const CB: &str = "https://app.example/cb";
/// Bounds every network step of a test.
const STEP: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, as a TLS client presents them.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
    public_key_raw: Vec<u8>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

fn dn(pairs: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (t, v) in pairs {
        dn.push(t.clone(), *v);
    }
    dn
}

fn client_params(subject: DistinguishedName, sans: Vec<SanType>) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = subject;
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params
}

/// A client certificate issued by `ca`.
fn issued(ca: &Ca, subject: DistinguishedName, sans: Vec<SanType>) -> Identity {
    let key = KeyPair::generate().unwrap();
    let cert = client_params(subject, sans)
        .signed_by(&key, &ca.cert, &ca.key)
        .unwrap();
    Identity {
        chain: vec![cert.der().clone(), ca.cert.der().clone()],
        key: key.serialize_der(),
        public_key_raw: key.public_key_raw().to_vec(),
    }
}

/// A self-signed client certificate (P-256).
fn self_signed(cn: &str) -> Identity {
    self_signed_with(cn, KeyPair::generate().unwrap())
}

fn self_signed_with(cn: &str, key: KeyPair) -> Identity {
    let cert = client_params(dn(&[(DnType::CommonName, cn)]), vec![])
        .self_signed(&key)
        .unwrap();
    Identity {
        chain: vec![cert.der().clone()],
        key: key.serialize_der(),
        public_key_raw: key.public_key_raw().to_vec(),
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The P-256 public JWK of an identity (rcgen's default key type).
fn ec_jwk(id: &Identity) -> serde_json::Value {
    let point = &id.public_key_raw;
    assert_eq!((point.len(), point[0]), (65, 0x04));
    serde_json::json!({
        "kty": "EC", "crv": "P-256",
        "x": b64url(&point[1..33]), "y": b64url(&point[33..]),
    })
}

fn main_dn() -> DistinguishedName {
    dn(&[
        (DnType::CountryName, "DE"),
        (DnType::OrganizationName, "Example Corp"),
        (DnType::CommonName, "client-one"),
    ])
}

// ---------------------------------------------------------------------
// The TLS server and client
// ---------------------------------------------------------------------

/// Asks for a client certificate, accepts any chain (the layer checks it)
/// but verifies the handshake signature with the presented key.
#[derive(Debug)]
struct AnyClientCert(Arc<rustls::crypto::CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[TlsName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

struct Server {
    addr: SocketAddr,
    server_cert: CertificateDer<'static>,
}

/// The trivial service behind the layer: `200` with the pushed
/// authorization's method, when there is one.
async fn inner(
    req: Request<ParRequestBody<Incoming>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req
        .extensions()
        .get::<PushedAuthorization>()
        .map_or("-".to_owned(), |p| p.auth_method().to_string());
    Ok(Response::builder()
        .header("x-auth-method", method)
        .body(Full::default())
        .unwrap())
}

/// Serves `layer` over TLS on 127.0.0.1, for up to 64 connections.
async fn serve<C: ClientAuthenticator>(layer: ParLayer<C>) -> Server {
    let layer = layer.build().unwrap();
    let key = KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = provider();
    let config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(Arc::new(AnyClientCert(provider)))
        .with_single_cert(
            vec![server_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = tower::ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(inner));
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let svc = svc.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) = tokio::time::timeout(STEP, acceptor.accept(tcp)).await else {
                    return;
                };
                // Once per connection: the chain the handshake verified.
                let certificate = tls.get_ref().1.peer_certificates().and_then(|certs| {
                    ClientCertificate::from_der_chain(
                        certs.iter().map(|c| Bytes::copy_from_slice(c.as_ref())),
                    )
                });
                let hyper_svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    if let Some(cert) = &certificate {
                        req.extensions_mut().insert(cert.clone());
                    }
                    svc.clone().oneshot(req)
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), hyper_svc)
                    .await;
            });
        }
    });
    Server {
        addr,
        server_cert: server_cert.der().clone(),
    }
}

/// What a push answered.
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: serde_json::Value,
}

/// One HTTPS request to the server, presenting `identity` (or no
/// certificate).
async fn send(
    server: &Server,
    identity: Option<&Identity>,
    method: http::Method,
    path_and_query: &str,
    body: String,
) -> Answer {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.server_cert.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(
                id.chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key.clone())),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = TlsConnector::from(Arc::new(config));
    let exchange = async {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("host", "localhost")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        }
    };
    tokio::time::timeout(STEP, exchange).await.expect("in time")
}

fn push_body(client_id: &str) -> String {
    serde_urlencoded::to_string([
        ("client_id", client_id),
        ("response_type", "code"),
        ("redirect_uri", CB),
        ("state", "s1"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
    ])
    .unwrap()
}

async fn push(server: &Server, identity: Option<&Identity>, client_id: &str) -> Answer {
    send(
        server,
        identity,
        http::Method::POST,
        "/par",
        push_body(client_id),
    )
    .await
}

#[track_caller]
fn assert_invalid_client(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert_eq!(answer.body["error"], "invalid_client", "{}", answer.body);
    assert_eq!(answer.headers["cache-control"], "no-store");
}

#[track_caller]
fn assert_created(answer: &Answer) -> String {
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body["request_uri"].as_str().unwrap().to_owned()
}

fn tls_client(id: &str, subject: TlsClientAuthSubject) -> Client {
    Client::new(id, AuthMethod::TlsClientAuth)
        .redirect_uri(CB)
        .tls_client_auth_subject(subject)
}

fn der_of(ca: &Ca) -> Vec<u8> {
    ca.cert.der().to_vec()
}

// ---------------------------------------------------------------------
// tls_client_auth
// ---------------------------------------------------------------------

/// AUTH-21 (RFC 8705 §2.1): a certificate from the configured CA with the
/// registered subject DN authenticates the client (compared per RFC 4514:
/// case, spacing and the written form of the DN do not matter); the
/// stored request and the redemption carry `tls_client_auth`.
#[tokio::test]
async fn tls_client_auth_right_subject_dn_is_created_and_redeemed() {
    let ca = ca("Clients CA");
    let clients = StaticClients::new()
        .with_client(
            tls_client(
                "one",
                TlsClientAuthSubject::SubjectDn("CN=client-one,O=Example Corp,C=DE".into()),
            ),
            None,
        )
        .unwrap()
        .with_client(
            tls_client(
                "one-spelled",
                TlsClientAuthSubject::SubjectDn(
                    "cn = CLIENT-ONE , o=example   corp,2.5.4.6=de".into(),
                ),
            ),
            None,
        )
        .unwrap();
    let layer = ParLayer::new(clients)
        .tls_client_roots([der_of(&ca)])
        .unwrap();
    let server = serve(layer).await;
    let id = issued(&ca, main_dn(), vec![]);
    let request_uri = assert_created(&push(&server, Some(&id), "one").await);
    assert_created(&push(&server, Some(&id), "one-spelled").await);

    // The redemption sees the method the certificate was verified for.
    let query =
        serde_urlencoded::to_string([("client_id", "one"), ("request_uri", &request_uri)]).unwrap();
    let res = send(
        &server,
        Some(&id),
        http::Method::GET,
        &format!("/authorize?{query}"),
        String::new(),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.headers["x-auth-method"], "tls_client_auth");
}

/// AUTH-20, T34: a certificate from the right CA whose subject is another one's, and a
/// registered DN that differs in one RDN or in their order: `401
/// invalid_client` (AUTH-1).
#[tokio::test]
async fn tls_client_auth_wrong_subject_is_invalid_client() {
    let ca = ca("Clients CA");
    let clients = StaticClients::new()
        .with_client(
            tls_client(
                "one",
                TlsClientAuthSubject::SubjectDn("CN=client-one,O=Example Corp,C=DE".into()),
            ),
            None,
        )
        .unwrap()
        .with_client(
            tls_client(
                "reordered",
                TlsClientAuthSubject::SubjectDn("C=DE,O=Example Corp,CN=client-one".into()),
            ),
            None,
        )
        .unwrap()
        .with_client(
            tls_client(
                "more",
                TlsClientAuthSubject::SubjectDn(
                    "CN=client-one,OU=Payments,O=Example Corp,C=DE".into(),
                ),
            ),
            None,
        )
        .unwrap();
    let layer = ParLayer::new(clients)
        .tls_client_roots([der_of(&ca)])
        .unwrap();
    let server = serve(layer).await;
    let other = issued(
        &ca,
        dn(&[
            (DnType::CountryName, "DE"),
            (DnType::OrganizationName, "Example Corp"),
            (DnType::CommonName, "client-two"),
        ]),
        vec![],
    );
    assert_invalid_client(&push(&server, Some(&other), "one").await);
    let right = issued(&ca, main_dn(), vec![]);
    assert_invalid_client(&push(&server, Some(&right), "reordered").await);
    assert_invalid_client(&push(&server, Some(&right), "more").await);
    assert_created(&push(&server, Some(&right), "one").await);
}

/// AUTH-19/20, T33 (RFC 8705 §2): no certificate, no authentication; the bare `client_id`
/// of an mTLS client is not a public client's.
#[tokio::test]
async fn tls_client_auth_without_certificate_is_invalid_client() {
    let ca = ca("Clients CA");
    let clients = StaticClients::new()
        .with_client(
            tls_client(
                "one",
                TlsClientAuthSubject::SubjectDn("CN=client-one,O=Example Corp,C=DE".into()),
            ),
            None,
        )
        .unwrap();
    let layer = ParLayer::new(clients)
        .tls_client_roots([der_of(&ca)])
        .unwrap();
    let server = serve(layer).await;
    assert_invalid_client(&push(&server, None, "one").await);
    // A certificate but another client's id: unknown client, same answer.
    let id = issued(&ca, main_dn(), vec![]);
    assert_invalid_client(&push(&server, Some(&id), "nobody").await);
}

/// AUTH-21 (RFC 8705 §2.1): the chain must lead to a configured CA. A certificate
/// with the right subject from another CA (same CA name, other key), a
/// self-signed one with the right subject, an expired one, one for TLS
/// servers only (extended key usage), and any certificate when no CA is
/// configured (fail closed) are refused.
#[tokio::test]
async fn tls_client_auth_certificate_not_chaining_to_the_ca_is_invalid_client() {
    let ca_real = ca("Clients CA");
    let rogue = ca("Clients CA");
    let registry = || {
        StaticClients::new()
            .with_client(
                tls_client(
                    "one",
                    TlsClientAuthSubject::SubjectDn("CN=client-one,O=Example Corp,C=DE".into()),
                ),
                None,
            )
            .unwrap()
    };
    let server = serve(
        ParLayer::new(registry())
            .tls_client_roots([der_of(&ca_real)])
            .unwrap(),
    )
    .await;
    let forged = issued(&rogue, main_dn(), vec![]);
    assert_invalid_client(&push(&server, Some(&forged), "one").await);
    let key = KeyPair::generate().unwrap();
    let cert = client_params(main_dn(), vec![]).self_signed(&key).unwrap();
    let own = Identity {
        chain: vec![cert.der().clone()],
        key: key.serialize_der(),
        public_key_raw: Vec::new(),
    };
    assert_invalid_client(&push(&server, Some(&own), "one").await);
    // The right CA and subject, but expired.
    let key = KeyPair::generate().unwrap();
    let mut params = client_params(main_dn(), vec![]);
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let cert = params.signed_by(&key, &ca_real.cert, &ca_real.key).unwrap();
    let expired = Identity {
        chain: vec![cert.der().clone(), ca_real.cert.der().clone()],
        key: key.serialize_der(),
        public_key_raw: Vec::new(),
    };
    assert_invalid_client(&push(&server, Some(&expired), "one").await);
    // A server certificate (serverAuth only) with the right subject.
    let key = KeyPair::generate().unwrap();
    let mut params = client_params(main_dn(), vec![]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca_real.cert, &ca_real.key).unwrap();
    let server_only = Identity {
        chain: vec![cert.der().clone(), ca_real.cert.der().clone()],
        key: key.serialize_der(),
        public_key_raw: Vec::new(),
    };
    assert_invalid_client(&push(&server, Some(&server_only), "one").await);
    assert_created(&push(&server, Some(&issued(&ca_real, main_dn(), vec![])), "one").await);

    // No roots configured: nothing chains.
    let server = serve(ParLayer::new(registry())).await;
    let right = issued(&ca_real, main_dn(), vec![]);
    assert_invalid_client(&push(&server, Some(&right), "one").await);
}

/// AUTH-21 (RFC 8705 §2.1.2): each SAN kind matches its own entry (dNSName without
/// case, URI exactly, iPAddress as an address, rfc822Name with the domain
/// without case) and nothing else.
#[tokio::test]
async fn tls_client_auth_each_san_kind_matches_and_mismatches() {
    let ca = ca("Clients CA");
    let cases: Vec<(&str, TlsClientAuthSubject, bool)> = vec![
        (
            "dns-ok",
            TlsClientAuthSubject::SanDns("APP.Example.com".into()),
            true,
        ),
        (
            "dns-no",
            TlsClientAuthSubject::SanDns("other.example.com".into()),
            false,
        ),
        (
            "uri-ok",
            TlsClientAuthSubject::SanUri("https://app.example.com/client".into()),
            true,
        ),
        (
            "uri-no",
            TlsClientAuthSubject::SanUri("https://app.example.com/CLIENT".into()),
            false,
        ),
        (
            "ip-ok",
            TlsClientAuthSubject::SanIp("2001:db8::0:1".parse().unwrap()),
            true,
        ),
        (
            "ip4-ok",
            TlsClientAuthSubject::SanIp(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            true,
        ),
        (
            "ip-no",
            TlsClientAuthSubject::SanIp("2001:db8::2".parse().unwrap()),
            false,
        ),
        (
            "mail-ok",
            TlsClientAuthSubject::SanEmail("ops@APP.example.com".into()),
            true,
        ),
        (
            "mail-no",
            TlsClientAuthSubject::SanEmail("OPS@app.example.com".into()),
            false,
        ),
        // (A DNS name registered as a URI is refused at registration:
        // auth21_registration_refuses_subject_values_that_name_nothing.)
    ];
    let mut clients = StaticClients::new();
    for (id, subject, _) in &cases {
        clients = clients
            .with_client(tls_client(id, subject.clone()), None)
            .unwrap();
    }
    let server = serve(
        ParLayer::new(clients)
            .tls_client_roots([der_of(&ca)])
            .unwrap(),
    )
    .await;
    let identity = issued(
        &ca,
        dn(&[(DnType::CommonName, "san-client")]),
        vec![
            SanType::DnsName("app.example.com".try_into().unwrap()),
            SanType::URI("https://app.example.com/client".try_into().unwrap()),
            SanType::IpAddress("2001:db8::1".parse().unwrap()),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            SanType::Rfc822Name("ops@app.example.com".try_into().unwrap()),
        ],
    );
    for (id, _, ok) in &cases {
        let answer = push(&server, Some(&identity), id).await;
        if *ok {
            assert_created(&answer);
        } else {
            assert_invalid_client(&answer);
        }
    }
}

// ---------------------------------------------------------------------
// self_signed_tls_client_auth
// ---------------------------------------------------------------------

/// AUTH-22 (RFC 8705 §2.2): the certificate's public key in the client's `jwks`, or
/// the certificate itself as `x5c`, authenticates (P-256 and Ed25519
/// keys); another key does not. No CA is involved.
#[tokio::test]
async fn self_signed_matching_key_is_created_other_key_is_invalid_client() {
    let mine = self_signed("self-one");
    let x5c_only = self_signed("self-two");
    let stranger = self_signed("self-one");
    let by_x5c = serde_json::json!({
        "keys": [{
            "kty": "EC", "crv": "P-256",
            "x": ec_jwk(&x5c_only)["x"], "y": ec_jwk(&x5c_only)["y"],
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&x5c_only.chain[0])],
        }]
    });
    let ed = self_signed_with(
        "self-ed",
        KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
    );
    let ed_jwk =
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(&ed.public_key_raw)});
    let clients = StaticClients::from_json(
        &serde_json::json!({"clients": [
            {"client_id": "self", "token_endpoint_auth_method": "self_signed_tls_client_auth",
             "jwks": {"keys": [ec_jwk(&mine)]}, "redirect_uris": [CB]},
            {"client_id": "ed", "token_endpoint_auth_method": "self_signed_tls_client_auth",
             "jwks": {"keys": [ed_jwk]}, "redirect_uris": [CB]},
            {"client_id": "x5c", "token_endpoint_auth_method": "self_signed_tls_client_auth",
             "jwks": by_x5c, "redirect_uris": [CB]},
        ]})
        .to_string(),
    )
    .unwrap();
    // Self-signed clients need no roots.
    let server = serve(ParLayer::new(clients)).await;
    assert_created(&push(&server, Some(&mine), "self").await);
    assert_created(&push(&server, Some(&x5c_only), "x5c").await);
    assert_created(&push(&server, Some(&ed), "ed").await);
    assert_invalid_client(&push(&server, Some(&mine), "ed").await);
    assert_invalid_client(&push(&server, Some(&ed), "self").await);
    assert_invalid_client(&push(&server, Some(&stranger), "self").await);
    assert_invalid_client(&push(&server, Some(&mine), "x5c").await);
    assert_invalid_client(&push(&server, None, "self").await);
}

/// AUTH-22 with an RSA key: the JWK's `n` and `e` are the certificate's
/// modulus and exponent (which DER writes with a leading zero octet).
#[cfg(feature = "jwt")]
#[tokio::test]
async fn self_signed_rsa_key_matches_its_jwk() {
    let rsa = keys::TestKey::rsa(jsonwebtoken::Algorithm::RS256, 2048);
    let key = KeyPair::from_pem_and_sign_algo(&rsa.pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mine = self_signed_with("self-rsa", key);
    let other = self_signed("self-rsa");
    let clients = StaticClients::from_json(
        &serde_json::json!({"clients": [
            {"client_id": "rsa", "token_endpoint_auth_method": "self_signed_tls_client_auth",
             "jwks": {"keys": [rsa.public]}, "redirect_uris": [CB]},
        ]})
        .to_string(),
    )
    .unwrap();
    let server = serve(ParLayer::new(clients)).await;
    assert_created(&push(&server, Some(&mine), "rsa").await);
    assert_invalid_client(&push(&server, Some(&other), "rsa").await);
}

// ---------------------------------------------------------------------
// FAPI 2.0
// ---------------------------------------------------------------------

/// FAPI 2.0 SP §5.3.2.1 (FAPI-5): `tls_client_auth` is a confidential
/// method the profile accepts; a public client presenting a certificate
/// is still refused (FAPI-3).
#[tokio::test]
async fn fapi2_accepts_tls_client_auth_and_self_signed() {
    let ca = ca("Clients CA");
    let mine = self_signed("self-one");
    let clients = StaticClients::new()
        .with_client(
            tls_client(
                "one",
                TlsClientAuthSubject::SubjectDn("CN=client-one,O=Example Corp,C=DE".into()),
            ),
            None,
        )
        .unwrap()
        .with_client(
            Client::new("self", AuthMethod::SelfSignedTlsClientAuth)
                .redirect_uri(CB)
                .jwks(
                    tower_par::Jwks::from_value(serde_json::json!({"keys": [ec_jwk(&mine)]}))
                        .unwrap(),
                ),
            None,
        )
        .unwrap()
        .with_client(
            Client::new("public", AuthMethod::None).redirect_uri(CB),
            None,
        )
        .unwrap();
    let layer = ParLayer::new(clients)
        .issuer("https://as.example")
        .unwrap()
        .profile(Profile::Fapi2)
        .tls_client_roots([der_of(&ca)])
        .unwrap();
    let server = serve(layer).await;
    let id = issued(&ca, main_dn(), vec![]);
    assert_created(&push(&server, Some(&id), "one").await);
    assert_created(&push(&server, Some(&mine), "self").await);
    assert_invalid_client(&push(&server, Some(&id), "public").await);
    let refused = push(&server, None, "one").await;
    assert_invalid_client(&refused);
    let desc = refused.body["error_description"].as_str().unwrap();
    assert!(desc.contains("tls_client_auth"), "{desc}");
}

// ---------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------

#[cfg(feature = "jwt")]
async fn advertised_methods(layer: ParLayer) -> Vec<String> {
    let svc = tower::ServiceBuilder::new()
        .layer(layer.metadata_document(true).build().unwrap())
        .service(service_fn(
            |_req: Request<ParRequestBody<Full<Bytes>>>| async {
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(404)
                        .body(Full::<Bytes>::default())
                        .unwrap(),
                )
            },
        ));
    let req = Request::get("/.well-known/oauth-authorization-server")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .map(|a| a.iter().map(|m| m.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// RFC 8705 §2.1, §2.2, FAPI-1: the mTLS methods are advertised once the
/// deployment takes client certificates (`tls_client_roots`), under FAPI
/// too; `tls_client_auth` only with a CA to verify it.
#[cfg(feature = "jwt")]
#[tokio::test]
async fn discovery_advertises_the_mtls_methods_with_tls_client_roots() {
    let ca = ca("Clients CA");
    let base = || {
        ParLayer::new(StaticClients::new())
            .issuer("https://as.example")
            .unwrap()
    };
    let plain = advertised_methods(base()).await;
    assert!(!plain.iter().any(|m| m.contains("tls")), "{plain:?}");
    let with_ca = advertised_methods(base().tls_client_roots([der_of(&ca)]).unwrap()).await;
    assert!(
        with_ca.contains(&"tls_client_auth".to_owned()),
        "{with_ca:?}"
    );
    assert!(with_ca.contains(&"self_signed_tls_client_auth".to_owned()));
    let no_ca = advertised_methods(base().tls_client_roots(Vec::<Vec<u8>>::new()).unwrap()).await;
    assert!(!no_ca.contains(&"tls_client_auth".to_owned()), "{no_ca:?}");
    assert!(no_ca.contains(&"self_signed_tls_client_auth".to_owned()));
    let fapi = advertised_methods(
        base()
            .profile(Profile::Fapi2)
            .tls_client_roots([der_of(&ca)])
            .unwrap(),
    )
    .await;
    assert_eq!(
        fapi,
        [
            "private_key_jwt",
            "tls_client_auth",
            "self_signed_tls_client_auth"
        ]
    );
}

// ---------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------

/// PAR-5: the token endpoint authenticates mTLS clients as the PAR
/// endpoint does, from the same request extension.
#[tokio::test]
async fn token_endpoint_authenticates_tls_client_auth() {
    let ca = ca("Clients CA");
    let clients = StaticClients::new()
        .with_client(
            tls_client(
                "one",
                TlsClientAuthSubject::SanDns("app.example.com".into()),
            ),
            None,
        )
        .unwrap();
    let layer = ParLayer::new(clients)
        .tls_client_roots([der_of(&ca)])
        .unwrap();
    let tokens = layer.token_endpoint();
    let params = Params::parse(b"grant_type=authorization_code&code=c&client_id=one").unwrap();
    let request = |cert: Option<&Identity>| {
        let mut req = Request::post("/token").body(()).unwrap();
        if let Some(id) = cert {
            req.extensions_mut().insert(
                ClientCertificate::from_der_chain(id.chain.iter().map(|c| c.to_vec())).unwrap(),
            );
        }
        req.into_parts().0
    };
    let right = issued(
        &ca,
        dn(&[(DnType::CommonName, "x")]),
        vec![SanType::DnsName("app.example.com".try_into().unwrap())],
    );
    let client = tokens
        .authenticate(&request(Some(&right)), &params)
        .await
        .unwrap();
    assert_eq!(client.auth_method, AuthMethod::TlsClientAuth);
    let err = tokens
        .authenticate(&request(None), &params)
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    let wrong = issued(
        &ca,
        dn(&[(DnType::CommonName, "x")]),
        vec![SanType::DnsName("evil.example.com".try_into().unwrap())],
    );
    let err = tokens
        .authenticate(&request(Some(&wrong)), &params)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_client");
}

// ---------------------------------------------------------------------
// Registration and configuration
// ---------------------------------------------------------------------

/// AUTH-21 (RFC 8705 §2.1.2): exactly one subject member for `tls_client_auth`;
/// §2.2: an inline `jwks` for `self_signed_tls_client_auth`; the members
/// belong to their method; a DN that does not parse is refused at load.
#[test]
fn registry_refuses_zero_or_two_subject_members() {
    let bad = [
        r#"{"client_id":"x","token_endpoint_auth_method":"tls_client_auth","redirect_uris":["https://a.example/cb"]}"#,
        r#"{"client_id":"x","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN=a","tls_client_auth_san_dns":"a.example"}"#,
        r#"{"client_id":"x","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_uri":"https://a.example","tls_client_auth_san_email":"a@a.example"}"#,
        r#"{"client_id":"x","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_ip":"not-an-ip"}"#,
        r#"{"client_id":"x","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN=a;O=b"}"#,
        r#"{"client_id":"x","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"XYZ=a"}"#,
        r#"{"client_id":"x","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN=a","client_secret":"s"}"#,
        r#"{"client_id":"x","token_endpoint_auth_method":"none","tls_client_auth_san_dns":"a.example"}"#,
        r#"{"client_id":"x","token_endpoint_auth_method":"self_signed_tls_client_auth"}"#,
        r#"{"client_id":"x","token_endpoint_auth_method":"self_signed_tls_client_auth","jwks_uri":"https://a.example/jwks"}"#,
        r#"{"client_id":"x","token_endpoint_auth_method":"self_signed_tls_client_auth","tls_client_auth_san_dns":"a.example","jwks":{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}}"#,
    ];
    for c in bad {
        let json = format!(r#"{{"clients":[{c}]}}"#);
        let err = StaticClients::from_json(&json).expect_err(c);
        assert!(
            matches!(err, tower_par::StaticClientsError::Invalid { .. }),
            "{c}: {err}"
        );
    }
    let two = StaticClients::from_json(
        r#"{"clients":[{"client_id":"x","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN=a","tls_client_auth_san_dns":"a.example"}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        two.contains("tls_client_auth_subject_dn") && two.contains("tls_client_auth_san_dns"),
        "{two}"
    );

    let good = StaticClients::from_json(
        r#"{"clients":[
          {"client_id":"dn","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN=a,O=b","redirect_uris":["https://a.example/cb"]},
          {"client_id":"ip","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_ip":"192.0.2.1","redirect_uris":["https://a.example/cb"]}
        ]}"#,
    )
    .unwrap();
    assert_eq!(
        good.get("ip").unwrap().tls_client_auth_subject,
        Some(TlsClientAuthSubject::SanIp("192.0.2.1".parse().unwrap()))
    );
    // In code too.
    assert!(StaticClients::new()
        .with_client(Client::new("x", AuthMethod::TlsClientAuth), None)
        .is_err());
}

/// AUTH-21 (RFC 8705 §2.1.2): a subject member must name something, in
/// the clients file and in code alike: no empty or whitespace-only value,
/// a DNS name of host-name labels (no wildcard), an absolute URI, an email
/// address with a local part and a domain.
#[test]
fn auth21_registration_refuses_subject_values_that_name_nothing() {
    let bad = [
        ("tls_client_auth_san_dns", ""),
        ("tls_client_auth_san_dns", " "),
        ("tls_client_auth_san_dns", "*.example.com"),
        ("tls_client_auth_san_dns", "app.example.com."),
        ("tls_client_auth_san_dns", "app..example.com"),
        ("tls_client_auth_san_dns", "-app.example.com"),
        ("tls_client_auth_san_dns", "app example.com"),
        ("tls_client_auth_san_uri", ""),
        ("tls_client_auth_san_uri", "\t"),
        // A DNS name registered as a URI.
        ("tls_client_auth_san_uri", "app.example.com"),
        ("tls_client_auth_san_uri", "app.example.com/client"),
        ("tls_client_auth_san_uri", "https:"),
        ("tls_client_auth_san_uri", "1https://app.example.com"),
        ("tls_client_auth_san_uri", "https://app.example.com/a b"),
        ("tls_client_auth_san_email", ""),
        ("tls_client_auth_san_email", "  "),
        ("tls_client_auth_san_email", "ops.example.com"),
        ("tls_client_auth_san_email", "@example.com"),
        ("tls_client_auth_san_email", "ops@"),
        ("tls_client_auth_san_email", "o ps@example.com"),
        ("tls_client_auth_subject_dn", ""),
        ("tls_client_auth_subject_dn", "   "),
        ("tls_client_auth_san_ip", ""),
        ("tls_client_auth_san_ip", " "),
    ];
    for (member, value) in bad {
        let json = serde_json::json!({"clients": [{
            "client_id": "x",
            "token_endpoint_auth_method": "tls_client_auth",
            "redirect_uris": [CB],
            member: value,
        }]});
        let err = StaticClients::from_json(&json.to_string()).expect_err(&json.to_string());
        assert!(
            matches!(err, tower_par::StaticClientsError::Invalid { .. }),
            "{member}={value:?}: {err}"
        );
        assert!(err.to_string().contains(member), "{err}");
        let subject = match member {
            "tls_client_auth_san_dns" => TlsClientAuthSubject::SanDns(value.into()),
            "tls_client_auth_san_uri" => TlsClientAuthSubject::SanUri(value.into()),
            "tls_client_auth_san_email" => TlsClientAuthSubject::SanEmail(value.into()),
            "tls_client_auth_subject_dn" => TlsClientAuthSubject::SubjectDn(value.into()),
            _ => continue,
        };
        assert!(
            StaticClients::new()
                .with_client(tls_client("x", subject), None)
                .is_err(),
            "{member}={value:?}"
        );
    }
    for subject in [
        TlsClientAuthSubject::SanDns("app-1.Example.com".into()),
        TlsClientAuthSubject::SanUri("spiffe://example.org/client".into()),
        TlsClientAuthSubject::SanUri("urn:example:client".into()),
        TlsClientAuthSubject::SanEmail("ops+par@example.com".into()),
    ] {
        assert!(
            StaticClients::new()
                .with_client(tls_client("x", subject.clone()), None)
                .is_ok(),
            "{subject:?}"
        );
    }
}

/// A registry that hands the layer its client as it is, without the
/// registration checks of `StaticClients`.
#[derive(Clone)]
struct Unchecked(Vec<Arc<Client>>);

impl ClientAuthenticator for Unchecked {
    async fn authenticate(
        &self,
        _: &ClientCredentials,
        _: &http::request::Parts,
    ) -> Result<Arc<Client>, ClientAuthError> {
        Err(ClientAuthError::MethodNotAllowed)
    }

    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, ClientAuthError> {
        Ok(self.0.iter().find(|c| c.client_id == client_id).cloned())
    }
}

/// AUTH-20, AUTH-21: a registered subject value that names nothing (from
/// a registry that does not check registrations) matches no certificate:
/// a certificate from the right CA carrying an empty `dNSName`,
/// `uniformResourceIdentifier` or `rfc822Name` is `invalid_client` for a
/// client registered with the empty value, over TLS; a client registered
/// with a real name is still matched by its own entry in that certificate.
#[tokio::test]
async fn auth20_an_empty_registered_san_matches_no_certificate() {
    let ca = ca("Clients CA");
    let registry = Unchecked(
        [
            ("dns", TlsClientAuthSubject::SanDns(String::new())),
            ("uri", TlsClientAuthSubject::SanUri(String::new())),
            ("mail", TlsClientAuthSubject::SanEmail(String::new())),
            ("blank", TlsClientAuthSubject::SanDns(" ".into())),
            ("real", TlsClientAuthSubject::SanDns("evil.example".into())),
        ]
        .map(|(id, subject)| Arc::new(tls_client(id, subject)))
        .into(),
    );
    let layer = ParLayer::new(registry)
        .tls_client_roots([der_of(&ca)])
        .unwrap();
    let server = serve(layer).await;
    let other = issued(
        &ca,
        dn(&[(DnType::CommonName, "someone-else")]),
        vec![
            SanType::DnsName("".try_into().unwrap()),
            SanType::DnsName(" ".try_into().unwrap()),
            SanType::URI("".try_into().unwrap()),
            SanType::Rfc822Name("".try_into().unwrap()),
            SanType::DnsName("evil.example".try_into().unwrap()),
        ],
    );
    for id in ["dns", "uri", "mail", "blank"] {
        assert_invalid_client(&push(&server, Some(&other), id).await);
    }
    assert_created(&push(&server, Some(&other), "real").await);
}

/// The TOML clients file takes the same members.
#[cfg(feature = "toml")]
#[test]
fn registry_loads_tls_client_auth_from_toml() {
    let clients = StaticClients::from_toml(
        r#"
        [[clients]]
        client_id = "t"
        token_endpoint_auth_method = "tls_client_auth"
        tls_client_auth_san_email = "ops@t.example"
        redirect_uris = ["https://t.example/cb"]
        "#,
    )
    .unwrap();
    assert_eq!(
        clients.get("t").unwrap().auth_method,
        AuthMethod::TlsClientAuth
    );
}

#[test]
fn tls_client_roots_refuses_invalid_der() {
    let err = ParLayer::new(StaticClients::new())
        .tls_client_roots([vec![0x30, 0x03, 0x02, 0x01, 0x01]])
        .unwrap_err();
    assert_eq!(err.setting(), Setting::TlsClientRoots);
    assert_eq!(err.kind(), ConfigErrorKind::Invalid);
    assert!(err.to_string().contains("tls_client_roots"), "{err}");
}

// ---------------------------------------------------------------------
// RFC 9440 headers
// ---------------------------------------------------------------------

/// AUTH-24, RFC 9440 §2: `Client-Cert` and `Client-Cert-Chain` carry the DER
/// certificates as RFC 8941 byte sequences; what the layer reads is what
/// the client presented. Malformed values are refused, never a panic.
#[test]
fn from_rfc9440_round_trips_and_refuses_malformed_headers() {
    let ca = ca("Clients CA");
    let id = issued(&ca, main_dn(), vec![]);
    let std = base64::engine::general_purpose::STANDARD;
    let cert = HeaderValue::from_str(&format!(":{}:", std.encode(&id.chain[0]))).unwrap();
    let chain = HeaderValue::from_str(&format!(":{}:", std.encode(&id.chain[1]))).unwrap();
    let parsed = ClientCertificate::from_rfc9440(&cert, Some(&chain)).unwrap();
    assert_eq!(parsed.end_entity(), id.chain[0].as_ref());
    assert_eq!(parsed.chain().len(), 2);
    assert_eq!(parsed.chain()[1].as_ref(), id.chain[1].as_ref());
    let alone = ClientCertificate::from_rfc9440(&cert, None).unwrap();
    assert_eq!(alone.chain().len(), 1);
    // Without padding and with surrounding whitespace (RFC 8941 §4.2.7).
    let unpadded = format!("  :{}:\t", std.encode(&id.chain[0]).trim_end_matches('='));
    let parsed = ClientCertificate::from_rfc9440(&HeaderValue::from_str(&unpadded).unwrap(), None);
    assert_eq!(parsed.unwrap().end_entity(), id.chain[0].as_ref());
    // Debug: a count and a fingerprint prefix, not the certificate.
    let shown = format!("{alone:?}");
    assert!(
        shown.contains("certificates: 1") && shown.len() < 120,
        "{shown}"
    );
    assert!(!shown.contains(&std.encode(&id.chain[0])[..20]));

    let huge = format!(":{}:", "A".repeat(200_000));
    let many = vec![format!(":{}:", std.encode(b"x")); 9].join(", ");
    let malformed: Vec<&[u8]> = vec![
        b"",
        b":",
        b"::",
        b"MAA=",
        b":MAA=",
        b"MAA=:",
        b":MA A=:",
        b":MAA=:;param=1",
        b"(:MAA=:)",
        b":MAA=:, :MAE=:",
        b":-_-_:",
        b":====:",
        b":M===:",
        b"\"MAA=\"",
        huge.as_bytes(),
        b"\x80\xff:",
    ];
    for bad in &malformed {
        let Ok(value) = HeaderValue::from_bytes(bad) else {
            continue;
        };
        assert!(
            ClientCertificate::from_rfc9440(&value, None).is_none(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    for bad_chain in [
        "",
        ",",
        ":MAA=:,",
        ":MAA=:,,:MAA=:",
        ":MAA=: :MAA=:",
        "MAA=",
        many.as_str(),
    ] {
        let value = HeaderValue::from_str(bad_chain).unwrap();
        assert!(
            ClientCertificate::from_rfc9440(&cert, Some(&value)).is_none(),
            "{bad_chain}"
        );
    }
}

/// AUTH-24: behind a trusted TLS-terminating proxy, the certificate arrives as
/// `Client-Cert` and authenticates like one from the handshake.
#[tokio::test]
async fn rfc9440_header_from_a_trusted_proxy_authenticates() {
    let ca = ca("Clients CA");
    let clients = StaticClients::new()
        .with_client(
            tls_client(
                "one",
                TlsClientAuthSubject::SubjectDn("CN=client-one,O=Example Corp,C=DE".into()),
            ),
            None,
        )
        .unwrap();
    let layer = ParLayer::new(clients)
        .tls_client_roots([der_of(&ca)])
        .unwrap()
        .build()
        .unwrap();
    let mut svc = tower::ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(
            |_req: Request<ParRequestBody<Full<Bytes>>>| async {
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            },
        ));
    let id = issued(&ca, main_dn(), vec![]);
    let std = base64::engine::general_purpose::STANDARD;
    let header = HeaderValue::from_str(&format!(":{}:", std.encode(&id.chain[0]))).unwrap();
    let chain = HeaderValue::from_str(&format!(":{}:", std.encode(&id.chain[1]))).unwrap();
    let mut req = Request::post("/par")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(push_body("one"))))
        .unwrap();
    let certificate = ClientCertificate::from_rfc9440(&header, Some(&chain)).unwrap();
    req.extensions_mut().insert(certificate);
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}
