//! The demo authorization server of `par-proxy --demo`, standalone (no
//! layer in this process): started with `start_upstream` on 127.0.0.1 and
//! driven over real HTTP as the proxy would forward to it. Its issuer is
//! the proxy's public URL, which nothing listens on here: the requests go
//! to the upstream directly, but every URL a client signs (`aud`, `htu`)
//! names the issuer, as it does through the proxy. The last test puts
//! `ParLayer` and a plain forwarder in front, over HTTP, as the proxy does.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use par_proxy::demo::{demo_config, start, start_upstream, DemoUpstream, DEMO_REDIRECT};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tower_par::{ParLayer, StaticClients};

const ISSUER: &str = "http://127.0.0.1:8000";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }

    fn location(&self) -> String {
        self.headers[header::LOCATION].to_str().unwrap().to_owned()
    }
}

async fn send(req: Request<Full<Bytes>>) -> Answer {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("the demo server answered in time")
        .expect("the demo server answered");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn enc(s: &str) -> String {
    url_encode(s.as_bytes())
}

fn url_encode(b: &[u8]) -> String {
    b.iter()
        .map(|&c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(c).to_string()
            }
            _ => format!("%{c:02X}"),
        })
        .collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

/// A classic (unpushed) authorization request straight to the upstream,
/// plus `extra`: the authorization response's query parameters.
async fn authorize(
    up: &DemoUpstream,
    client_id: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let challenge = challenge();
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", DEMO_REDIRECT),
        ("state", "st-1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    pairs.extend_from_slice(extra);
    let url = format!("http://{}/authorize?{}", up.addr, form(&pairs));
    let res = send(Request::get(url).body(Full::default()).unwrap()).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let location = res.location();
    let query = location
        .strip_prefix(&format!("{DEMO_REDIRECT}?"))
        .unwrap_or_else(|| panic!("not the redirect_uri: {location}"));
    query
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_owned(), decode(v))
        })
        .collect()
}

fn decode(v: &str) -> String {
    let v = v.replace('+', " ");
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn param<'a>(response: &'a [(String, String)], name: &str) -> Option<&'a str> {
    response
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A token request to the upstream with `pairs`, and optionally HTTP
/// Basic credentials and a `DPoP` header.
async fn token(
    up: &DemoUpstream,
    basic: Option<(&str, &str)>,
    dpop: Option<String>,
    pairs: &[(&str, &str)],
) -> Answer {
    let mut req = Request::post(format!("http://{}/token", up.addr))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        let credentials = STANDARD.encode(format!("{id}:{secret}"));
        req = req.header(header::AUTHORIZATION, format!("Basic {credentials}"));
    }
    if let Some(proof) = dpop {
        req = req.header("dpop", proof);
    }
    send(req.body(Full::new(Bytes::from(form(pairs)))).unwrap()).await
}

fn code_grant(code: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", DEMO_REDIRECT),
        ("code_verifier", VERIFIER),
    ]
}

/// The standalone mode: a classic request is approved (303 to the
/// redirect URI with `code`, `state` and `iss` naming the issuer it was
/// given), and `/token` exchanges the code with PKCE, authenticating the
/// client itself (no layer in this process); the code is one-time.
#[tokio::test]
async fn a_classic_code_flow_works_without_the_layer() {
    let up = start_upstream(ISSUER).await.unwrap();
    assert!(up.addr.ip().is_loopback());
    let response = authorize(&up, "demo-client", &[("scope", "profile")]).await;
    assert_eq!(param(&response, "state"), Some("st-1"));
    assert_eq!(param(&response, "iss"), Some(ISSUER));
    let code = param(&response, "code").expect("a code").to_owned();

    // A wrong secret: RFC 6749 §5.2, and the code stays usable.
    let wrong = token(&up, Some(("demo-client", "nope")), None, &code_grant(&code)).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert_eq!(wrong.json()["error"], "invalid_client");

    let ok = token(
        &up,
        Some(("demo-client", "demo-secret")),
        None,
        &code_grant(&code),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.headers[header::CACHE_CONTROL], "no-store");
    let body = ok.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "profile");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));

    let again = token(
        &up,
        Some(("demo-client", "demo-secret")),
        None,
        &code_grant(&code),
    )
    .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"], "invalid_grant");

    // The client_secret_post and public demo clients too.
    let response = authorize(&up, "demo-post-client", &[]).await;
    let code = param(&response, "code").unwrap().to_owned();
    let mut pairs = code_grant(&code);
    pairs.extend([
        ("client_id", "demo-post-client"),
        ("client_secret", "demo-post-secret"),
    ]);
    assert_eq!(token(&up, None, None, &pairs).await.status, StatusCode::OK);
    let response = authorize(&up, "demo-public", &[]).await;
    let code = param(&response, "code").unwrap().to_owned();
    let mut pairs = code_grant(&code);
    pairs.push(("client_id", "demo-public"));
    assert_eq!(token(&up, None, None, &pairs).await.status, StatusCode::OK);
    up.shutdown().await;
}

/// The discovery document is served as is: the issuer the server was
/// given, and no PAR member (the proxy in front adds them).
#[tokio::test]
async fn discovery_is_served_without_par_members() {
    let up = start_upstream(&format!("{ISSUER}/")).await.unwrap();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let res = send(
            Request::get(format!("http://{}{path}", up.addr))
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK);
        let doc = res.json();
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(doc["authorization_endpoint"], format!("{ISSUER}/authorize"));
        assert_eq!(doc["token_endpoint"], format!("{ISSUER}/token"));
        assert!(doc.get("pushed_authorization_request_endpoint").is_none());
        assert!(doc.get("require_pushed_authorization_requests").is_none());
    }
    // No `/par` of its own.
    let res = send(
        Request::post(format!("http://{}/par", up.addr))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
}

struct Es256 {
    encoding: EncodingKey,
    public: Jwk,
}

impl Es256 {
    fn from_d(d: &[u8]) -> Self {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let pem = p256::SecretKey::from_slice(d)
            .unwrap()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        let public = Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
        Self { encoding, public }
    }

    fn generate() -> Self {
        use p256::elliptic_curve::Generate;
        Self::from_d(&p256::SecretKey::generate().to_bytes())
    }

    fn thumbprint(&self) -> String {
        self.public.thumbprint(ThumbprintHash::SHA256).unwrap()
    }

    fn sign(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// A DPoP proof for `POST htu` (RFC 9449 §4.2).
    fn dpop(&self, htu: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.public.clone());
        self.sign(
            header,
            &json!({"jti": jti(), "htm": "POST", "htu": htu, "iat": now()}),
        )
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jti() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    URL_SAFE_NO_PAD.encode(b)
}

/// `demo-fapi` through the standalone server: the clients file the proxy
/// loads registers the key whose private JWK the key file holds (both
/// 0600, both removed with the server); a classic request carrying
/// `dpop_jkt` (what the layer forwards for a push made with a DPoP proof)
/// binds the code, so `/token` refuses it without a proof or with another
/// key's (the code staying for its holder), and exchanges it for a DPoP
/// token with the `private_key_jwt` assertion (`aud` the issuer) and a
/// proof for `<issuer>/token` by the bound key.
#[tokio::test]
async fn demo_fapi_and_the_dpop_jkt_parameter() {
    let up = start_upstream(ISSUER).await.unwrap();
    let clients = StaticClients::from_path(up.clients_file()).unwrap();
    for id in [
        "demo-client",
        "demo-post-client",
        "demo-public",
        "demo-fapi",
    ] {
        assert!(clients.get(id).is_some(), "{id}");
    }
    #[cfg(unix)]
    for file in [up.clients_file(), up.fapi_key()] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    let jwk: Value =
        serde_json::from_str(&std::fs::read_to_string(up.fapi_key()).unwrap()).unwrap();
    let key = Es256::from_d(&URL_SAFE_NO_PAD.decode(jwk["d"].as_str().unwrap()).unwrap());
    assert_eq!(jwk["kid"], key.thumbprint());
    let kid = jwk["kid"].as_str().unwrap().to_owned();
    let assertion = || {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        let now = now();
        key.sign(
            header,
            &json!({
                "iss": "demo-fapi", "sub": "demo-fapi", "aud": ISSUER,
                "iat": now, "exp": now + 60, "jti": jti(),
            }),
        )
    };

    let dpop = Es256::generate();
    let jkt = dpop.thumbprint();
    let response = authorize(&up, "demo-fapi", &[("dpop_jkt", &jkt)]).await;
    let code = param(&response, "code").unwrap().to_owned();
    let htu = format!("{ISSUER}/token");
    let exchange = |proof: Option<String>| {
        let assertion = assertion();
        let code = code.clone();
        let up = &up;
        async move {
            let mut pairs = code_grant(&code);
            pairs.extend([
                ("client_id", "demo-fapi"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion.as_str()),
            ]);
            token(up, None, proof, &pairs).await
        }
    };
    let missing = exchange(None).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.body);
    assert_eq!(missing.json()["error"], "invalid_dpop_proof");
    let other = exchange(Some(Es256::generate().dpop(&htu))).await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST, "{}", other.body);
    assert_eq!(other.json()["error"], "invalid_dpop_proof");
    let ok = exchange(Some(dpop.dpop(&htu))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.json()["token_type"], "DPoP");

    let files = (up.clients_file().to_owned(), up.fapi_key().to_owned());
    let addr = up.addr;
    drop(up);
    assert!(!files.0.exists() && !files.1.exists());
    // Stopped: nothing accepts on its port any more (bounded wait).
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the demo server still accepts on {addr}");
}

/// `demo_config`: the proxy in front of the upstream, `PAR_TTL_SECS` and
/// `PAR_REQUIRED` honoured, bad values refused naming the variable; and
/// `start` hands over a configuration whose clients file is the
/// upstream's. (One test: the environment is the process's.)
#[tokio::test]
async fn demo_config_from_the_environment() {
    let listen: SocketAddr = "127.0.0.1:8000".parse().unwrap();
    let upstream: SocketAddr = "127.0.0.1:9999".parse().unwrap();
    std::env::remove_var("PAR_TTL_SECS");
    std::env::remove_var("PAR_REQUIRED");
    let config = demo_config(listen, upstream).unwrap();
    assert_eq!(config.listen, listen);
    assert_eq!(config.upstream, "http://127.0.0.1:9999");
    assert_eq!(config.public_url.as_deref(), Some("http://127.0.0.1:8000"));
    assert_eq!(config.par.authorize_path, "/authorize");
    assert_eq!(config.par.path, "/par");
    assert_eq!(config.par.lifetime_secs, 60);
    assert!(!config.par.require);
    assert!(config.par.metadata);
    assert!(config.tls.is_none() && config.store.redis_url.is_none());

    std::env::set_var("PAR_TTL_SECS", "7");
    std::env::set_var("PAR_REQUIRED", "1");
    let config = demo_config(listen, upstream).unwrap();
    assert_eq!(config.par.lifetime_secs, 7);
    assert!(config.par.require);
    std::env::set_var("PAR_REQUIRED", "true");
    assert!(demo_config(listen, upstream).unwrap().par.require);
    std::env::set_var("PAR_REQUIRED", "0");
    assert!(!demo_config(listen, upstream).unwrap().par.require);

    for (name, value, message) in [
        ("PAR_TTL_SECS", "abc", "PAR_TTL_SECS 'abc': not a number"),
        (
            "PAR_TTL_SECS",
            "601",
            "PAR_TTL_SECS '601': must be 1 to 600",
        ),
        ("PAR_TTL_SECS", "0", "PAR_TTL_SECS '0': must be 1 to 600"),
        ("PAR_REQUIRED", "maybe", "PAR_REQUIRED 'maybe'"),
    ] {
        std::env::set_var("PAR_TTL_SECS", "7");
        std::env::set_var("PAR_REQUIRED", "1");
        std::env::set_var(name, value);
        let err = demo_config(listen, upstream).unwrap_err();
        assert!(err.contains(message), "{err}");
        // Nothing is started on a bad value.
        assert!(start(listen).await.unwrap_err().contains(message));
    }

    std::env::remove_var("PAR_TTL_SECS");
    std::env::remove_var("PAR_REQUIRED");
    let (up, config) = start(listen).await.unwrap();
    assert_eq!(config.upstream, format!("http://{}", up.addr));
    assert_eq!(config.clients.file.as_deref(), Some(up.clients_file()));
    // The upstream names the proxy as its issuer.
    let response = authorize(&up, "demo-client", &[]).await;
    assert_eq!(param(&response, "iss"), Some("http://127.0.0.1:8000"));
    let banner = par_proxy::demo::banner(&config, &up);
    assert!(
        banner.contains("proxy on http://127.0.0.1:8000"),
        "{banner}"
    );
    assert!(banner.contains(&format!("http://{}", up.addr)), "{banner}");
    assert!(
        banner.contains(&up.fapi_key().display().to_string()),
        "{banner}"
    );
    assert!(
        banner.contains("http://127.0.0.1:8000/par \\\n"),
        "{banner}"
    );
    up.shutdown().await;
}

/// A stand-in for the proxy: `ParLayer` in front of a plain HTTP
/// forwarder to the upstream (path, query, headers and body as they are).
async fn forward(
    State(upstream): State<SocketAddr>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (mut parts, body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    parts.uri = format!("http://{upstream}{target}").parse().unwrap();
    let body = body.collect().await.unwrap().to_bytes();
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let res = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}

/// Behind the layer over HTTP, as behind the proxy: the discovery
/// document gains the PAR members; a push with a DPoP proof binds the code
/// through the forwarded `dpop_jkt` (the `PushedAuthorization` extension
/// does not reach the upstream), so `/token` refuses the code without the
/// push's key and gives a DPoP token with it.
#[tokio::test]
async fn behind_the_layer_over_http_the_push_s_dpop_key_binds_the_code() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let issuer = format!("http://{proxy}");
    let up = start_upstream(&issuer).await.unwrap();
    let clients = StaticClients::from_path(up.clients_file()).unwrap();
    let par = ParLayer::new(clients)
        .issuer(issuer.clone())
        .unwrap()
        .flow_cookie_secure(false)
        .metadata(true)
        .build()
        .unwrap();
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(up.addr)
        .layer(par);
    let served = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let doc = send(
        Request::get(format!("{issuer}/.well-known/oauth-authorization-server"))
            .body(Full::default())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(
        doc["pushed_authorization_request_endpoint"],
        format!("{issuer}/par")
    );

    let key = Es256::generate();
    let challenge = challenge();
    let push = send(
        Request::post(format!("{issuer}/par"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(
                header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode("demo-client:demo-secret")),
            )
            .header("dpop", key.dpop(&format!("{issuer}/par")))
            .body(Full::new(Bytes::from(form(&[
                ("response_type", "code"),
                ("redirect_uri", DEMO_REDIRECT),
                ("state", "st-2"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ]))))
            .unwrap(),
    )
    .await;
    assert_eq!(push.status, StatusCode::CREATED, "{}", push.body);
    let request_uri = push.json()["request_uri"].as_str().unwrap().to_owned();
    let res = send(
        Request::get(format!(
            "{issuer}/authorize?client_id=demo-client&request_uri={}",
            enc(&request_uri)
        ))
        .body(Full::default())
        .unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let location = res.location();
    let code = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .unwrap_or_else(|| panic!("no code: {location}"))
        .to_owned();
    assert!(
        location.starts_with(&format!("{DEMO_REDIRECT}?")),
        "{location}"
    );

    let exchange = |proof: Option<String>| {
        let code = code.clone();
        let issuer = issuer.clone();
        async move {
            let mut req = Request::post(format!("{issuer}/token"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(
                    header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode("demo-client:demo-secret")),
                );
            if let Some(proof) = proof {
                req = req.header("dpop", proof);
            }
            send(
                req.body(Full::new(Bytes::from(form(&code_grant(&code)))))
                    .unwrap(),
            )
            .await
        }
    };
    let htu = format!("{issuer}/token");
    let missing = exchange(None).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.body);
    assert_eq!(missing.json()["error"], "invalid_dpop_proof");
    let ok = exchange(Some(key.dpop(&htu))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.json()["token_type"], "DPoP");
    served.abort();
}
