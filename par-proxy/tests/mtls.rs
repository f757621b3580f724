//! mTLS on the public listener (RFC 8705 §2) with certificates generated
//! here (rcgen): real TLS handshakes from a reqwest client with and without
//! a client certificate, and what reaches the inner service.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use par_proxy::config::TlsSection;
use par_proxy::server::{self, ServeOptions, TrustedProxies};
use par_proxy::Connection;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_par::ClientCertificate;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    fn issue(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf { cert, key }
    }

    fn client(&self, common_name: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }
}

struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Leaf {
    fn identity(&self) -> reqwest::Identity {
        let pem = format!("{}{}", self.key.serialize_pem(), self.cert.pem());
        reqwest::Identity::from_pem(pem.as_bytes()).unwrap()
    }
}

/// A private folder for the PEM files of one test.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "par-proxy-mtls-{}-{}-{}",
        std::process::id(),
        name,
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Pki {
    server_ca: Ca,
    client_ca: Ca,
    tls: TlsSection,
}

fn pki(name: &str, with_client_ca: bool) -> Pki {
    let dir = scratch(name);
    let server_ca = Ca::new("par-proxy test server CA");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_ca.issue(params);
    let client_ca = Ca::new("par-proxy test client CA");
    std::fs::write(dir.join("server.pem"), server.cert.pem()).unwrap();
    std::fs::write(dir.join("server-key.pem"), server.key.serialize_pem()).unwrap();
    std::fs::write(dir.join("clients-ca.pem"), client_ca.cert.pem()).unwrap();
    let tls = TlsSection {
        cert: Some(dir.join("server.pem")),
        key: Some(dir.join("server-key.pem")),
        client_ca: with_client_ca.then(|| dir.join("clients-ca.pem")),
    };
    Pki {
        server_ca,
        client_ca,
        tls,
    }
}

fn client(pki: &Pki, identity: Option<reqwest::Identity>, addr: SocketAddr) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(pki.server_ca.cert.pem().as_bytes()).unwrap(),
        )
        .resolve("localhost", addr);
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().unwrap()
}

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), String>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.addr.port(), path)
    }

    async fn shutdown(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// Reports the `ClientCertificate` extension (base64 DER chain) and the
/// `Connection` extension.
async fn start(options: ServeOptions) -> Running {
    let inner = tower::service_fn(|req: Request<Incoming>| async move {
        let connection = req.extensions().get::<Connection>().copied().unwrap();
        let certificate = req.extensions().get::<ClientCertificate>().map(|c| {
            c.chain()
                .iter()
                .map(|der| base64::engine::general_purpose::STANDARD.encode(der))
                .collect::<Vec<_>>()
        });
        let body = serde_json::json!({
            "tls": connection.tls,
            "trusted": connection.trusted,
            "certificate": certificate,
            "client_cert_header": req.headers().get("client-cert").is_some(),
        });
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve_with(listener, options, inner, async {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
) -> (http::Version, serde_json::Value) {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let version = res.version();
    (
        version,
        serde_json::from_str(&res.text().await.unwrap()).unwrap(),
    )
}

fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

#[tokio::test]
async fn the_handshake_certificate_becomes_the_extension() {
    let pki = pki("cert", true);
    let config = server::tls_server_config(&pki.tls).unwrap();
    let server = start(ServeOptions::new().tls(config)).await;
    let leaf = pki.client_ca.client("client-1");
    let client = client(&pki, Some(leaf.identity()), server.addr);

    let (version, body) = get(&client, &server.url("/par"), &[]).await;
    // ALPN h2 is offered and taken.
    assert_eq!(version, http::Version::HTTP_2);
    assert_eq!(body["tls"], true);
    assert_eq!(
        body["certificate"],
        serde_json::json!([b64(leaf.cert.der())])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_client_certificate_the_connection_goes_on_without_the_extension() {
    let pki = pki("none", true);
    let config = server::tls_server_config(&pki.tls).unwrap();
    let server = start(ServeOptions::new().tls(config)).await;
    let (_, body) = get(&client(&pki, None, server.addr), &server.url("/par"), &[]).await;
    assert_eq!(body["tls"], true);
    assert_eq!(body["certificate"], serde_json::Value::Null);
    server.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_gets_through_the_handshake_for_the_layer_to_judge() {
    // The chain is judged by tls_client_auth (RFC 8705 §2.1) against its
    // roots, and self-signed certificates are matched by
    // self_signed_tls_client_auth (§2.2): the handshake only proves the key.
    let pki = pki("other-ca", true);
    let config = server::tls_server_config(&pki.tls).unwrap();
    let server = start(ServeOptions::new().tls(config)).await;
    let stranger = Ca::new("someone else").client("client-1");
    let (_, body) = get(
        &client(&pki, Some(stranger.identity()), server.addr),
        &server.url("/par"),
        &[],
    )
    .await;
    assert_eq!(
        body["certificate"],
        serde_json::json!([b64(stranger.cert.der())])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_client_ca_no_certificate_is_requested() {
    let pki = pki("no-ca", false);
    let config = server::tls_server_config(&pki.tls).unwrap();
    let server = start(ServeOptions::new().tls(config)).await;
    let leaf = pki.client_ca.client("client-1");
    let (_, body) = get(
        &client(&pki, Some(leaf.identity()), server.addr),
        &server.url("/par"),
        &[],
    )
    .await;
    assert_eq!(body["tls"], true);
    assert_eq!(body["certificate"], serde_json::Value::Null);
    server.shutdown().await;
}

#[tokio::test]
async fn client_cert_header_is_stripped_over_tls_from_an_untrusted_peer() {
    let pki = pki("header-untrusted", true);
    let config = server::tls_server_config(&pki.tls).unwrap();
    let server = start(ServeOptions::new().tls(config)).await;
    let forged = pki.client_ca.client("client-1");
    let header = format!(":{}:", b64(forged.cert.der()));
    let (_, body) = get(
        &client(&pki, None, server.addr),
        &server.url("/par"),
        &[("client-cert", header)],
    )
    .await;
    assert_eq!(body["trusted"], false);
    assert_eq!(body["certificate"], serde_json::Value::Null);
    assert_eq!(body["client_cert_header"], false);
    server.shutdown().await;
}

#[tokio::test]
async fn the_handshake_certificate_wins_over_a_header_from_a_trusted_peer() {
    let pki = pki("header-trusted", true);
    let config = server::tls_server_config(&pki.tls).unwrap();
    let options = ServeOptions::new()
        .tls(config)
        .trusted_proxies(TrustedProxies::parse(["127.0.0.1"]).unwrap());
    let server = start(options).await;
    let own = pki.client_ca.client("front-proxy");
    let other = pki.client_ca.client("client-1");
    let header = format!(":{}:", b64(other.cert.der()));
    let client = client(&pki, Some(own.identity()), server.addr);
    let (_, body) = get(
        &client,
        &server.url("/par"),
        &[("client-cert", header.clone())],
    )
    .await;
    assert_eq!(body["trusted"], true);
    assert_eq!(
        body["certificate"],
        serde_json::json!([b64(own.cert.der())])
    );
    assert_eq!(body["client_cert_header"], false);

    // Without a handshake certificate the trusted peer's header counts.
    let client = self::client(&pki, None, server.addr);
    let (_, body) = get(&client, &server.url("/par"), &[("client-cert", header)]).await;
    assert_eq!(
        body["certificate"],
        serde_json::json!([b64(other.cert.der())])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_answer_and_the_server_goes_on() {
    let pki = pki("plain", true);
    let config = server::tls_server_config(&pki.tls).unwrap();
    let server = start(ServeOptions::new().tls(config)).await;
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(plain
        .get(format!("http://127.0.0.1:{}/par", server.addr.port()))
        .send()
        .await
        .is_err());
    let (_, body) = get(&client(&pki, None, server.addr), &server.url("/par"), &[]).await;
    assert_eq!(body["tls"], true);
    server.shutdown().await;
}

#[test]
fn tls_configuration_errors_name_the_key() {
    let pki = pki("errors", true);
    let dir = pki.tls.cert.as_ref().unwrap().parent().unwrap().to_owned();
    let missing = TlsSection {
        cert: Some(dir.join("missing.pem")),
        ..pki.tls.clone()
    };
    assert!(server::tls_server_config(&missing)
        .unwrap_err()
        .starts_with("tls.cert: "));

    // A certificate file given as the key.
    let wrong_key = TlsSection {
        key: pki.tls.cert.clone(),
        ..pki.tls.clone()
    };
    assert!(server::tls_server_config(&wrong_key)
        .unwrap_err()
        .starts_with("tls.key: "));

    // A key that is not the certificate's.
    let other_key = dir.join("other-key.pem");
    std::fs::write(&other_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let mismatched = TlsSection {
        key: Some(other_key),
        ..pki.tls.clone()
    };
    let err = server::tls_server_config(&mismatched).unwrap_err();
    assert!(err.starts_with("tls.key: "), "{err}");

    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let bad_ca = TlsSection {
        client_ca: Some(garbage),
        ..pki.tls.clone()
    };
    let err = server::tls_server_config(&bad_ca).unwrap_err();
    assert!(err.starts_with("tls.client_ca: "), "{err}");

    // A certificate without its key, and no certificate at all.
    let no_key = TlsSection {
        key: None,
        ..pki.tls.clone()
    };
    let err = server::tls_server_config(&no_key).unwrap_err();
    assert!(err.starts_with("tls.key: "), "{err}");
    let client_ca_only = TlsSection {
        cert: None,
        key: None,
        ..pki.tls.clone()
    };
    let err = server::tls_server_config(&client_ca_only).unwrap_err();
    assert!(err.starts_with("tls.cert: "), "{err}");
    // The key's bytes never appear in an error.
    let key_pem = std::fs::read_to_string(pki.tls.key.as_ref().unwrap()).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap();
    assert!(!server::tls_server_config(&wrong_key)
        .unwrap_err()
        .contains(key_body));
}

/// Presents a certificate with a key that is not its own.
#[derive(Debug)]
struct WrongKey(std::sync::Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for WrongKey {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_certificate_without_its_private_key_fails_the_handshake() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let pki = pki("wrong-key", true);
    let config = server::tls_server_config(&pki.tls).unwrap();
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let inner = tower::service_fn(move |_req: Request<Incoming>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"reached")))) }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve_with(
        listener,
        ServeOptions::new().tls(config),
        inner,
        async {
            let _ = stopped.await;
        },
    ));

    let victim = pki.client_ca.client("client-1");
    let thief_key = KeyPair::generate().unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            thief_key.serialize_der(),
        )))
        .unwrap();
    let certified = rustls::sign::CertifiedKey::new(
        vec![CertificateDer::from(victim.cert.der().to_vec())],
        signing_key,
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.server_ca.cert.der().to_vec()))
        .unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(std::sync::Arc::new(WrongKey(std::sync::Arc::new(
            certified,
        ))));
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_config));

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    // TLS 1.3: the client may finish its side before the server refuses
    // its CertificateVerify; then the refusal shows on the first read.
    let answered = match tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .unwrap()
    {
        Err(_) => false,
        Ok(mut tls) => {
            let _ = tls
                .write_all(b"GET /par HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf))
                .await
                .unwrap();
            buf.starts_with(b"HTTP/")
        }
    };
    assert!(
        !answered,
        "a connection whose certificate key was not proven is answered"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

// ---------------------------------------------------------------------
// Through the PAR layer: tls_client_auth (RFC 8705 §2.1, AUTH-18..21, AUTH-24)
// ---------------------------------------------------------------------

const REDIRECT_URI: &str = "https://app.example/cb";
const BANK_APP_DN: &str = "CN=bank-app,O=Example Bank,C=DE";

impl Ca {
    fn client_dn(&self, dn: &[(DnType, &str)]) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // rcgen's default subject (CN=rcgen self signed cert) would keep
        // the first place.
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in dn {
            params.distinguished_name.push(kind.clone(), *value);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    /// Subject `C=DE, O=Example Bank, CN=bank-app` in certificate order,
    /// which RFC 4514 writes the other way round: `BANK_APP_DN`.
    fn bank_app(&self) -> Leaf {
        self.client_dn(&[
            (DnType::CountryName, "DE"),
            (DnType::OrganizationName, "Example Bank"),
            (DnType::CommonName, "bank-app"),
        ])
    }
}

/// The proxy's composition with a pass-through inner service: a
/// `tls_client_auth` client registered by subject DN, the client CA as
/// `tls_client_roots`.
async fn start_layer(options: ServeOptions, client_ca: &Ca) -> Running {
    use tower::Layer;

    let clients = tower_par::StaticClients::from_json(&format!(
        r#"{{"clients":[{{
            "client_id": "bank-app",
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "{BANK_APP_DN}",
            "redirect_uris": ["{REDIRECT_URI}"]
        }}]}}"#
    ))
    .unwrap();
    let layer = tower_par::ParLayer::new(clients)
        .tls_client_roots([client_ca.cert.der().to_vec()])
        .unwrap()
        .build()
        .unwrap();
    let upstream = tower::service_fn(|_req: Request<tower_par::ParRequestBody<Incoming>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"upstream"))))
    });
    let service = layer.layer(upstream);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve_with(listener, options, service, async {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

/// Pushes for `bank-app` (PKCE S256); the status and the JSON answer.
async fn push(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
) -> (StatusCode, serde_json::Value) {
    let body = "client_id=bank-app&response_type=code&state=s1\
                &redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
                &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
    let mut req = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = tokio::time::timeout(Duration::from_secs(20), req.send())
        .await
        .unwrap()
        .unwrap();
    let status = res.status();
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(res.headers()["cache-control"], "no-store");
    }
    let body = serde_json::from_str(&res.text().await.unwrap()).unwrap_or(serde_json::Value::Null);
    (status, body)
}

#[track_caller]
fn assert_invalid_client((status, body): &(StatusCode, serde_json::Value)) {
    assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
}

async fn tls_layer_server(name: &str) -> (Pki, Running) {
    let pki = pki(name, true);
    let config = server::tls_server_config(&pki.tls).unwrap();
    let server = start_layer(ServeOptions::new().tls(config), &pki.client_ca).await;
    (pki, server)
}

#[tokio::test]
async fn tls_client_auth_with_the_right_certificate_is_created() {
    let (pki, server) = tls_layer_server("layer-right").await;
    let client = client(&pki, Some(pki.client_ca.bank_app().identity()), server.addr);
    let (status, body) = push(&client, &server.url("/par"), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["request_uri"]
        .as_str()
        .unwrap()
        .starts_with("urn:ietf:params:oauth:request_uri:"));
    server.shutdown().await;
}

#[tokio::test]
async fn tls_client_auth_with_the_wrong_subject_is_invalid_client() {
    let (pki, server) = tls_layer_server("layer-subject").await;
    let other = pki.client_ca.client_dn(&[
        (DnType::CountryName, "DE"),
        (DnType::OrganizationName, "Example Bank"),
        (DnType::CommonName, "other-app"),
    ]);
    let client = client(&pki, Some(other.identity()), server.addr);
    assert_invalid_client(&push(&client, &server.url("/par"), &[]).await);
    server.shutdown().await;
}

#[tokio::test]
async fn tls_client_auth_without_a_certificate_is_invalid_client() {
    let (pki, server) = tls_layer_server("layer-none").await;
    let client = client(&pki, None, server.addr);
    assert_invalid_client(&push(&client, &server.url("/par"), &[]).await);
    server.shutdown().await;
}

#[tokio::test]
async fn tls_client_auth_with_the_right_subject_from_another_ca_is_invalid_client() {
    let (pki, server) = tls_layer_server("layer-other-ca").await;
    let impostor = Ca::new("par-proxy test client CA").bank_app();
    let client = client(&pki, Some(impostor.identity()), server.addr);
    assert_invalid_client(&push(&client, &server.url("/par"), &[]).await);
    server.shutdown().await;
}

#[tokio::test]
async fn client_cert_header_from_an_untrusted_peer_does_not_authenticate() {
    let (pki, server) = tls_layer_server("layer-header").await;
    // The right certificate's DER is public: sent as a header it proves nothing.
    let right = pki.client_ca.bank_app();
    let header = format!(":{}:", b64(right.cert.der()));
    let client = client(&pki, None, server.addr);
    assert_invalid_client(&push(&client, &server.url("/par"), &[("client-cert", header)]).await);
    server.shutdown().await;
}

#[tokio::test]
async fn client_cert_header_from_a_trusted_front_proxy_authenticates() {
    // A TLS-terminating front proxy at 127.0.0.1 that verified the client's
    // certificate passes it on as RFC 9440 Client-Cert.
    let client_ca = Ca::new("par-proxy test client CA");
    let options =
        ServeOptions::new().trusted_proxies(TrustedProxies::parse(["127.0.0.1"]).unwrap());
    let server = start_layer(options, &client_ca).await;
    let url = format!("http://127.0.0.1:{}/par", server.addr.port());
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let right = client_ca.bank_app();
    let chain = format!(":{}:", b64(client_ca.cert.der()));
    let headers = [
        ("client-cert", format!(":{}:", b64(right.cert.der()))),
        ("client-cert-chain", chain),
    ];
    let (status, body) = push(&plain, &url, &headers).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let wrong = client_ca.client("other-app");
    let (status, _) = push(
        &plain,
        &url,
        &[("client-cert", format!(":{}:", b64(wrong.cert.der())))],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.shutdown().await;
}

// ---------------------------------------------------------------------
// run: a whole configuration with [tls] client_ca
// ---------------------------------------------------------------------

#[tokio::test]
async fn run_with_client_ca_authenticates_tls_client_auth_clients_end_to_end() {
    let pki = pki("run", true);
    let dir = pki.tls.cert.as_ref().unwrap().parent().unwrap().to_owned();
    let clients = dir.join("clients.json");
    std::fs::write(
        &clients,
        format!(
            r#"{{"clients":[{{"client_id":"bank-app","token_endpoint_auth_method":"tls_client_auth",
                "tls_client_auth_subject_dn":"{BANK_APP_DN}","redirect_uris":["{REDIRECT_URI}"]}}]}}"#
        ),
    )
    .unwrap();
    // The upstream: any HTTP server.
    let upstream = start(ServeOptions::new()).await;
    let listen = {
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        probe.local_addr().unwrap()
    };
    let text = format!(
        "listen = \"{listen}\"\nupstream = \"http://{}\"\n\n[clients]\nfile = {:?}\n\n[tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n",
        upstream.addr,
        clients.display().to_string(),
        pki.tls.cert.as_ref().unwrap().display().to_string(),
        pki.tls.key.as_ref().unwrap().display().to_string(),
        pki.tls.client_ca.as_ref().unwrap().display().to_string(),
    );
    let config: par_proxy::config::ProxyConfig = toml::from_str(&text).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let proxy = tokio::spawn(server::run(config, async {
        let _ = stopped.await;
    }));
    let proxy_running = Running {
        addr: listen,
        stop,
        task: proxy,
    };

    let with_cert = client(&pki, Some(pki.client_ca.bank_app().identity()), listen);
    let mut up = false;
    for _ in 0..200 {
        if let Ok(res) = with_cert.get(proxy_running.url("/healthz")).send().await {
            up = res.status() == StatusCode::OK;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the proxy comes up");
    let (status, body) = push(&with_cert, &proxy_running.url("/par"), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let without = client(&pki, None, listen);
    assert_invalid_client(&push(&without, &proxy_running.url("/par"), &[]).await);
    let wrong = client(
        &pki,
        Some(pki.client_ca.client("bank-app").identity()),
        listen,
    );
    assert_invalid_client(&push(&wrong, &proxy_running.url("/par"), &[]).await);

    proxy_running.shutdown().await;
    upstream.shutdown().await;
}

#[tokio::test]
async fn run_with_only_client_ca_serves_plain_http_and_trusts_client_cert_from_a_front_proxy() {
    // Behind a TLS-terminating front proxy at 127.0.0.1: the listener is
    // plain HTTP and `client_ca` verifies the RFC 9440 certificates.
    let pki = pki("client-ca-only", true);
    let dir = pki.tls.cert.as_ref().unwrap().parent().unwrap().to_owned();
    let clients = dir.join("clients.json");
    std::fs::write(
        &clients,
        format!(
            r#"{{"clients":[{{"client_id":"bank-app","token_endpoint_auth_method":"tls_client_auth",
                "tls_client_auth_subject_dn":"{BANK_APP_DN}","redirect_uris":["{REDIRECT_URI}"]}}]}}"#
        ),
    )
    .unwrap();
    let upstream = start(ServeOptions::new()).await;
    let listen = {
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        probe.local_addr().unwrap()
    };
    let file = dir.join("proxy.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"{listen}\"\nupstream = \"http://{}\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n[clients]\nfile = \"clients.json\"\n\n[tls]\nclient_ca = \"clients-ca.pem\"\n",
            upstream.addr,
        ),
    )
    .unwrap();
    let config =
        par_proxy::config::load_with_env(&file, &par_proxy::config::Environment::default())
            .unwrap();
    assert_eq!(config.public_url(), format!("http://{listen}"));
    let (stop, stopped) = oneshot::channel::<()>();
    let proxy = tokio::spawn(server::run(config, async {
        let _ = stopped.await;
    }));
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{listen}");
    let mut up = false;
    for _ in 0..200 {
        if let Ok(res) = plain.get(format!("{base}/healthz")).send().await {
            up = res.status() == StatusCode::OK;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the proxy comes up over plain HTTP");

    let right = pki.client_ca.bank_app();
    let header = [("client-cert", format!(":{}:", b64(right.cert.der())))];
    let (status, body) = push(&plain, &format!("{base}/par"), &header).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let stranger = Ca::new("someone else").bank_app();
    let header = [("client-cert", format!(":{}:", b64(stranger.cert.der())))];
    assert_invalid_client(&push(&plain, &format!("{base}/par"), &header).await);
    assert_invalid_client(&push(&plain, &format!("{base}/par"), &[]).await);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), proxy)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    upstream.shutdown().await;
}
