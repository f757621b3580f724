//! The FAPI 2.0 demo as users start it (`legacy_server --profile fapi2`,
//! with `--clients FILE` or its built-in `demo-fapi` client), driven over
//! HTTP on 127.0.0.1 with real client assertions and DPoP proofs signed by
//! keys generated here: push (with DPoP) → authorize → token (with DPoP).
#![cfg(feature = "jwt")]

mod demo;
mod keys;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use demo::{demo_binary, example_binary, http, start, start_reading_banner, Demo};
use keys::TestKey;

const CB: &str = "http://127.0.0.1:8080/cb";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("tower-par-demo-fapi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_clients(dir: &Path, clients: Value) -> String {
    let file = dir.join("clients.json");
    std::fs::write(&file, json!({ "clients": clients }).to_string()).unwrap();
    file.to_str().unwrap().to_owned()
}

/// A `private_key_jwt` client entry (RFC 7591 names) for `key`.
fn key_client(id: &str, key: &TestKey, dpop_bound: bool) -> Value {
    json!({
        "client_id": id,
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": keys::alg_name(key.alg),
        "jwks": key.jwks(&format!("{id}-key")),
        "redirect_uris": [CB],
        "dpop_bound_access_tokens": dpop_bound,
    })
}

fn thumbprint(key: &TestKey) -> String {
    let jwk: Jwk = serde_json::from_value(key.public.clone()).unwrap();
    jwk.thumbprint(ThumbprintHash::SHA256).unwrap()
}

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

async fn send(req: Request<Full<Bytes>>) -> Answer {
    let res = tokio::time::timeout(Duration::from_secs(5), http().request(req))
        .await
        .expect("the demo answered in time")
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A client of the demo: its key and id, and the last DPoP nonce it got.
struct Party {
    base: String,
    client_id: String,
    key: TestKey,
    kid: String,
    nonce: Option<String>,
    /// Whether a request was answered `use_dpop_nonce` and retried.
    nonce_retried: bool,
}

impl Party {
    fn new(demo: &Demo, client_id: &str, key: TestKey, kid: &str) -> Self {
        Self {
            base: demo.base.clone(),
            client_id: client_id.into(),
            key,
            kid: kid.into(),
            nonce: None,
            nonce_retried: false,
        }
    }

    /// A new client assertion: `aud` the issuer as a string (FAPI-8).
    fn assertion(&self) -> String {
        let mut header = Header::new(self.key.alg);
        header.kid = Some(self.kid.clone());
        self.key.sign(
            header,
            &keys::assertion_claims(&self.client_id, json!(self.base)),
        )
    }

    /// POSTs `pairs` plus a new assertion to `path`, with a DPoP proof by
    /// `dpop` for that URL; one retry on `use_dpop_nonce` (RFC 9449 §8).
    async fn post(&mut self, path: &str, pairs: &[(&str, &str)], dpop: Option<&TestKey>) -> Answer {
        let url = format!("{}{path}", self.base);
        let mut retried = false;
        loop {
            let assertion = self.assertion();
            let mut all = pairs.to_vec();
            all.extend([
                ("client_id", self.client_id.as_str()),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ]);
            let mut req = Request::post(&url)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            if let Some(key) = dpop {
                let mut extra = Map::new();
                if let Some(nonce) = &self.nonce {
                    extra.insert("nonce".into(), json!(nonce));
                }
                req = req.header("dpop", keys::dpop_proof(key, "POST", &url, extra));
            }
            let body = serde_urlencoded::to_string(&all).unwrap();
            let answer = send(req.body(Full::new(Bytes::from(body))).unwrap()).await;
            if let Some(nonce) = answer.headers.get("dpop-nonce") {
                self.nonce = Some(nonce.to_str().unwrap().to_owned());
            }
            if answer.error() == "use_dpop_nonce" && dpop.is_some() && !retried {
                assert!(
                    answer.headers.contains_key("dpop-nonce"),
                    "use_dpop_nonce without a DPoP-Nonce header"
                );
                retried = true;
                self.nonce_retried = true;
                continue;
            }
            return answer;
        }
    }

    /// A valid FAPI push plus `extra`, with a proof by `dpop`.
    async fn push(&mut self, extra: &[(&str, &str)], dpop: Option<&TestKey>) -> Answer {
        let challenge = challenge();
        let mut pairs = vec![
            ("response_type", "code"),
            ("redirect_uri", CB),
            ("scope", "profile"),
            ("state", "st-1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        pairs.extend_from_slice(extra);
        self.post("/par", &pairs, dpop).await
    }

    /// Redeems a pushed request at `/authorize`: the code of its 303.
    async fn authorize(&self, pushed: &Answer) -> String {
        assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.body);
        let request_uri = pushed.json()["request_uri"].as_str().unwrap().to_owned();
        let query = serde_urlencoded::to_string([
            ("client_id", self.client_id.as_str()),
            ("request_uri", &request_uri),
        ])
        .unwrap();
        let res = send(
            Request::get(format!("{}/authorize?{query}", self.base))
                .body(Full::default())
                .unwrap(),
        )
        .await;
        // FAPI-22: 303 See Other, never 307.
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let location = res.headers[header::LOCATION].to_str().unwrap().to_owned();
        let (target, query) = location.split_once('?').unwrap();
        assert_eq!(target, CB);
        let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        // FAPI-19, RFC 9207: the issuer in the authorization response.
        assert_eq!(
            get("iss").as_deref(),
            Some(self.base.as_str()),
            "{location}"
        );
        assert_eq!(get("state").as_deref(), Some("st-1"));
        get("code").expect("a code in the redirect")
    }

    /// Push, then authorize: the code.
    async fn code(&mut self, extra: &[(&str, &str)], dpop: Option<&TestKey>) -> String {
        let pushed = self.push(extra, dpop).await;
        self.authorize(&pushed).await
    }

    async fn token(&mut self, code: &str, dpop: Option<&TestKey>) -> Answer {
        self.post(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", CB),
                ("code_verifier", VERIFIER),
            ],
            dpop,
        )
        .await
    }
}

fn assert_dpop_token(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let token = answer.json();
    assert_eq!(token["token_type"], "DPoP", "{}", answer.body);
    assert!(token["access_token"]
        .as_str()
        .is_some_and(|t| t.len() >= 32));
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
}

fn assert_refused(answer: &Answer, status: StatusCode, error: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.error(), error, "{}", answer.body);
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
}

/// A FAPI demo with one ES256 `private_key_jwt` client from a file.
fn fapi_demo(dir: &Path, key: &TestKey, env: &[(&str, &str)], flag: bool) -> Demo {
    let file = write_clients(dir, json!([key_client("fapi-app", key, false)]));
    if flag {
        start(&["--profile", "fapi2", "--clients", &file], env)
    } else {
        let mut env = env.to_vec();
        env.extend([("PAR_PROFILE", "fapi2"), ("PAR_CLIENTS", file.as_str())]);
        start(&[], &env)
    }
}

/// FAPI-5, FAPI-12, FAPI-19, FAPI-21, FAPI-22, DPOP-2, DPOP-7: the whole
/// flow with `private_key_jwt` and DPoP, server nonces on (the `fapi2`
/// default).
#[tokio::test]
async fn fapi_flow_with_private_key_jwt_and_dpop_end_to_end() {
    let dir = scratch("flow");
    let key = TestKey::es256();
    let demo = fapi_demo(&dir, &key, &[], true);
    let mut app = Party::new(&demo, "fapi-app", key, "fapi-app-key");
    let dpop = TestKey::es256();

    let pushed = app.push(&[], Some(&dpop)).await;
    assert!(app.nonce_retried, "nonces are on by default under fapi2");
    let code = app.authorize(&pushed).await;
    assert_dpop_token(&app.token(&code, Some(&dpop)).await);
    // FAPI-21: once only.
    assert_refused(
        &app.token(&code, Some(&dpop)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// DPOP-2 (b), FAPI-12, FAPI-4: a code bound by the push's proof is
/// exchanged only with that key; a request without a proof or with
/// another key is refused and leaves the code to its holder.
#[tokio::test]
async fn a_token_request_without_the_bound_dpop_key_fails() {
    let dir = scratch("bound");
    let key = TestKey::es256();
    let demo = fapi_demo(&dir, &key, &[], true);
    let mut app = Party::new(&demo, "fapi-app", key, "fapi-app-key");
    let (dpop, other) = (TestKey::es256(), TestKey::ed25519());

    let pushed = app.push(&[], Some(&dpop)).await;
    let code = app.authorize(&pushed).await;
    let none = app.token(&code, None).await;
    assert_refused(&none, StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    let wrong = app.token(&code, Some(&other)).await;
    assert_refused(&wrong, StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    assert!(wrong.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("not the one this code is bound to"));
    assert_dpop_token(&app.token(&code, Some(&dpop)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

/// DPOP-2 (a), DPOP-10 and the default profile: a pushed `dpop_jkt` binds
/// the code like a proof does; a `dpop_bound_access_tokens` client needs a
/// proof at `/token`; other tokens stay `Bearer`. `/token` authenticates
/// `private_key_jwt` as `/par` does.
#[tokio::test]
async fn dpop_jkt_and_dpop_bound_clients_under_the_default_profile() {
    let dir = scratch("rfc9126");
    let (free_key, bound_key) = (TestKey::es256(), TestKey::ps256());
    let file = write_clients(
        &dir,
        json!([
            key_client("free-app", &free_key, false),
            key_client("bound-app", &bound_key, true),
        ]),
    );
    let demo = start(&["--clients", &file], &[]);
    let dpop = TestKey::es256();

    // dpop_jkt pushed, no proof: the code is bound to that key.
    let mut free = Party::new(&demo, "free-app", free_key, "free-app-key");
    let jkt = thumbprint(&dpop);
    let code = free.code(&[("dpop_jkt", &jkt)], None).await;
    assert_refused(
        &free.token(&code, None).await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    );
    assert_refused(
        &free.token(&code, Some(&TestKey::es256())).await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    );
    assert_dpop_token(&free.token(&code, Some(&dpop)).await);

    // No binding, no proof: a Bearer token, as before DPoP.
    let code = free.code(&[], None).await;
    let bearer = free.token(&code, None).await;
    assert_eq!(bearer.status, StatusCode::OK, "{}", bearer.body);
    assert_eq!(bearer.json()["token_type"], "Bearer");

    // DPOP-10: this client's token requests need a proof, bound or not.
    let mut bound = Party::new(&demo, "bound-app", bound_key, "bound-app-key");
    let code = bound.code(&[], None).await;
    let refused = bound.token(&code, None).await;
    assert_refused(&refused, StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    assert!(refused.body.contains("DPoP-bound"), "{}", refused.body);
    assert_dpop_token(&bound.token(&code, Some(&dpop)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

/// FAPI-5, FAPI-3: under FAPI, Basic, post and public clients are
/// refused at `/par`, and at `/token` too (the same authentication).
#[tokio::test]
async fn basic_post_and_public_clients_are_refused_under_fapi() {
    let dir = scratch("secrets");
    let file = write_clients(
        &dir,
        json!([
            {"client_id": "basic-app", "client_secret": "s-basic", "redirect_uris": [CB]},
            {"client_id": "post-app", "token_endpoint_auth_method": "client_secret_post",
             "client_secret": "s-post", "redirect_uris": [CB]},
            {"client_id": "public-app", "token_endpoint_auth_method": "none", "redirect_uris": [CB]},
        ]),
    );
    let demo = start(&["--profile", "fapi2", "--clients", &file], &[]);
    let form = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("redirect_uri", CB),
        ("code_challenge", &challenge()),
        ("code_challenge_method", "S256"),
    ])
    .unwrap();
    let basic = format!("Basic {}", STANDARD.encode("basic-app:s-basic"));
    for path in ["/par", "/token"] {
        let url = format!("{}{path}", demo.base);
        let form_req = |body: String| {
            Request::post(&url)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        };
        let mut with_basic = form_req(form.clone());
        with_basic
            .headers_mut()
            .insert(header::AUTHORIZATION, basic.parse().unwrap());
        let answers = [
            send(with_basic).await,
            send(form_req(format!(
                "{form}&client_id=post-app&client_secret=s-post"
            )))
            .await,
            send(form_req(format!("{form}&client_id=public-app"))).await,
        ];
        for answer in &answers {
            assert_refused(answer, StatusCode::UNAUTHORIZED, "invalid_client");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// FAPI-16, FAPI-18: PKCE with S256 and `redirect_uri` are required.
#[tokio::test]
async fn pkce_s256_and_redirect_uri_are_required() {
    let dir = scratch("pkce");
    let key = TestKey::es256();
    let demo = fapi_demo(&dir, &key, &[("PAR_DPOP_NONCES", "0")], true);
    let mut app = Party::new(&demo, "fapi-app", key, "fapi-app-key");
    let dpop = TestKey::es256();
    let challenge = challenge();
    let base = [("response_type", "code"), ("state", "s")];
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        ("no code_challenge", vec![("redirect_uri", CB)]),
        (
            "plain PKCE",
            vec![
                ("redirect_uri", CB),
                ("code_challenge", VERIFIER),
                ("code_challenge_method", "plain"),
            ],
        ),
        (
            "no redirect_uri",
            vec![
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
        ),
    ];
    for (case, extra) in cases {
        let mut pairs = base.to_vec();
        pairs.extend(extra);
        let answer = app.post("/par", &pairs, Some(&dpop)).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            answer.body
        );
        assert_eq!(answer.error(), "invalid_request", "{case}: {}", answer.body);
    }
    // With both, the same push is accepted.
    assert_eq!(app.push(&[], Some(&dpop)).await.status, StatusCode::CREATED);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `PAR_PROFILE=fapi2` (and `PAR_CLIENTS`) does what `--profile fapi2`
/// does; an unknown profile stops the demo with a message and exit 2.
#[tokio::test]
async fn par_profile_environment_variable_is_the_flag() {
    let dir = scratch("env");
    let key = TestKey::ps256();
    let demo = fapi_demo(&dir, &key, &[], false);
    let doc = send(
        Request::get(format!(
            "{}/.well-known/oauth-authorization-server",
            demo.base
        ))
        .body(Full::default())
        .unwrap(),
    )
    .await
    .json();
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(doc["require_pushed_authorization_requests"], true);
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    let mut app = Party::new(&demo, "fapi-app", key, "fapi-app-key");
    let dpop = TestKey::es256();
    let code = app.code(&[], Some(&dpop)).await;
    assert_dpop_token(&app.token(&code, Some(&dpop)).await);

    // A classic, unpushed request is refused: PAR is required (FAPI-15).
    let classic = send(
        Request::get(format!(
            "{}/authorize?response_type=code&client_id=fapi-app&redirect_uri={}",
            demo.base, "http%3A%2F%2F127.0.0.1%3A8080%2Fcb"
        ))
        .body(Full::default())
        .unwrap(),
    )
    .await;
    assert_eq!(classic.status, StatusCode::BAD_REQUEST);

    for (args, env, message) in [
        (
            vec![],
            vec![("PAR_PROFILE", "fapi3")],
            "unknown profile 'fapi3'",
        ),
        (
            vec!["--profile", "FAPI2"],
            vec![],
            "unknown profile 'FAPI2'",
        ),
        (
            vec!["--fapi-key", "k.json"],
            vec![],
            "--fapi-key needs --profile fapi2",
        ),
    ] {
        let out = Command::new(demo_binary())
            .args(["--addr", "127.0.0.1:0"])
            .args(&args)
            .env_remove("PAR_CLIENTS")
            .env_remove("PAR_PROFILE")
            .envs(env)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads the demo's private JWK back as a signing key, checking that its
/// public members are those of its private key.
fn load_private_jwk(path: &Path) -> (Value, TestKey) {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let jwk: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let d = URL_SAFE_NO_PAD.decode(jwk["d"].as_str().unwrap()).unwrap();
    let pem = p256::SecretKey::from_slice(&d)
        .unwrap()
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap()
        .to_string();
    let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    let derived =
        serde_json::to_value(Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap()).unwrap();
    assert_eq!((&derived["x"], &derived["y"]), (&jwk["x"], &jwk["y"]));
    let public = json!({"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]});
    let key = TestKey {
        alg: Algorithm::ES256,
        encoding,
        public,
        pem,
    };
    (jwk, key)
}

#[cfg(unix)]
fn assert_owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
}

#[cfg(not(unix))]
fn assert_owner_only(_path: &Path) {}

/// The built-in `demo-fapi` client: its private JWK is written (mode 0600,
/// with `kid`, `alg`, `use`) to `--fapi-key FILE`, or to a temporary file
/// whose path the banner prints, and runs the flow.
#[tokio::test]
async fn the_built_in_demo_fapi_key_file_is_written_and_usable() {
    let dir = scratch("builtin");
    let file = dir.join("demo-fapi.jwk");
    // An existing file is narrowed to 0600 before the key goes in.
    std::fs::write(&file, "old").unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let demo = start(
        &["--profile", "fapi2", "--fapi-key", file.to_str().unwrap()],
        &[],
    );
    assert_owner_only(&file);
    let (jwk, key) = load_private_jwk(&file);
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kid"], thumbprint(&key));
    let kid = jwk["kid"].as_str().unwrap();
    let mut app = Party::new(&demo, "demo-fapi", key, kid);
    let dpop = TestKey::es256();
    let code = app.code(&[], Some(&dpop)).await;
    assert_dpop_token(&app.token(&code, Some(&dpop)).await);
    drop(demo);

    // Without --fapi-key: a new file, named in the banner with the
    // hyper_client command that uses it.
    let (demo, banner) = start_reading_banner(&["--profile", "fapi2"], &[]);
    let path = banner
        .iter()
        .find_map(|l| l.strip_prefix("Its private key (JWK): "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no key path in {banner:#?}"));
    assert!(path.starts_with(std::env::temp_dir()), "{}", path.display());
    assert_owner_only(&path);
    assert!(
        banner.iter().any(|l| l.contains(&format!(
            "hyper_client -- --key {} --dpop {}",
            path.display(),
            demo.base
        ))),
        "{banner:#?}"
    );
    let (_, key) = load_private_jwk(&path);
    let kid = thumbprint(&key);
    let mut app = Party::new(&demo, "demo-fapi", key, &kid);
    let code = app.code(&[], Some(&dpop)).await;
    assert_dpop_token(&app.token(&code, Some(&dpop)).await);
    // That file goes when the demo stops (SIGTERM, as Ctrl-C).
    #[cfg(unix)]
    {
        let mut demo = demo;
        let pid = demo.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while demo.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the demo did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!path.exists(), "{} left behind", path.display());
    }
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&dir);
}

fn run_hyper_client(args: &[&str]) -> (bool, String) {
    let out = Command::new(example_binary("hyper_client"))
        .args(args)
        .env_remove("PAR_CLIENT_ID")
        .env_remove("PAR_CLIENT_SECRET")
        .env_remove("PAR_CLIENT_AUTH")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The two commands of the README: `legacy_server --profile fapi2`, then
/// `hyper_client --key FILE --dpop` with the file it wrote. The client
/// meets the server's DPoP nonce and retries. Its default mode still runs
/// against the default demo.
#[tokio::test]
async fn hyper_client_runs_the_fapi_flow_with_the_written_key() {
    let dir = scratch("hyper");
    let file = dir.join("demo-fapi.jwk");
    let key = file.to_str().unwrap();
    let demo = start(&["--profile", "fapi2", "--fapi-key", key], &[]);
    let (ok, out) = run_hyper_client(&["--key", key, "--dpop", &demo.base]);
    assert!(ok, "{out}");
    assert!(out.contains("use_dpop_nonce: retrying"), "{out}");
    assert!(out.contains("token_type: DPoP"), "{out}");
    assert!(out.contains("PAR flow complete."), "{out}");
    // No secret in the output: the access token and the JWTs stay out.
    assert!(!out.contains("access_token"), "{out}");
    assert!(!out.contains("eyJ"), "{out}");

    // Without --dpop the FAPI demo refuses the token (FAPI-4).
    let (ok, out) = run_hyper_client(&["--key", key, &demo.base]);
    assert!(!ok, "{out}");
    assert!(out.contains("invalid_dpop_proof"), "{out}");
    drop(demo);

    let demo = start(&[], &[]);
    let (ok, out) = run_hyper_client(&[&demo.base]);
    assert!(ok, "{out}");
    assert!(out.contains("token_type: Bearer"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
