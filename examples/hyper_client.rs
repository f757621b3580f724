//! A hyper client that walks the whole PAR flow against a running server.
//!
//! ```text
//! cargo run --example legacy_server &
//! cargo run --example hyper_client                     # http://127.0.0.1:3000
//! cargo run --example hyper_client -- http://127.0.0.1:4000
//!
//! cargo run --example legacy_server -- --profile fapi2 &   # prints the key file
//! cargo run --example hyper_client -- --key /tmp/tower-par-demo-fapi-XXXX.jwk.json --dpop
//! ```
//!
//! Steps, each printed: push the authorization request to `/par`, open
//! `/authorize?client_id=..&request_uri=..` as a browser would, read the
//! code from the redirect, exchange it at `/token` with the PKCE verifier.
//!
//! Client authentication, by default `client_secret_basic` (`demo-client` /
//! `demo-secret`): `PAR_CLIENT_ID` / `PAR_CLIENT_SECRET` change the client
//! and `PAR_CLIENT_AUTH` (`basic`, `post` or `none`) how it authenticates,
//! e.g. `PAR_CLIENT_ID=demo-post-client PAR_CLIENT_SECRET=demo-post-secret
//! PAR_CLIENT_AUTH=post`.
//!
//! `--key FILE` switches to `private_key_jwt` (RFC 7523) with the private
//! JWK in `FILE` (EC P-256, RSA or Ed25519; its `alg`, else ES256, PS256 or
//! EdDSA, and its `kid`), as client `demo-fapi` unless `--client-id ID` (or
//! `PAR_CLIENT_ID`) says otherwise. Each request gets a new assertion:
//! `iss` = `sub` = the client id, `aud` = the issuer as a string (FAPI-8),
//! a random `jti`, `iat` now and `exp` 60 s later.
//!
//! `--dpop` binds the flow to a DPoP key made at start (ES256, RFC 9449):
//! the push carries a proof (so the code is bound to that key, §10.1),
//! and so does the token request, whose answer should then say
//! `token_type: DPoP`. A `400 use_dpop_nonce` is retried once with the
//! `DPoP-Nonce` the server sent (§8).
//!
//! With `--key` or `--dpop` the client reads the server's RFC 8414 document
//! first: its `issuer` is the assertion `aud`, its endpoint URLs the proofs'
//! `htu`. The token step needs a server with a real `/token`
//! (`legacy_server`); against `hyper_server` the flow stops after the code.

use std::str::FromStr;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

const REDIRECT: &str = "http://127.0.0.1:8080/cb";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

const USAGE: &str = "\
usage: hyper_client [BASE_URL] [--key FILE [--client-id ID]] [--dpop]

  BASE_URL        the server (default http://127.0.0.1:3000)
  --key FILE      private_key_jwt with the private JWK in FILE (client demo-fapi
                  unless --client-id or PAR_CLIENT_ID)
  --client-id ID  the client id
  --dpop          DPoP-bind the code and the token (a proof at /par and /token)

env: PAR_CLIENT_ID PAR_CLIENT_SECRET PAR_CLIENT_AUTH=basic|post|none (without --key)";

fn random() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source");
    URL_SAFE_NO_PAD.encode(b)
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).expect("strings always encode")
}

/// The first characters of a credential (a `request_uri`, a code), for
/// the output: enough to follow the flow, not enough to use it.
fn abridged(value: &str) -> String {
    let keep = value
        .strip_prefix("urn:ietf:params:oauth:request_uri:")
        .map_or(6, |rest| value.len() - rest.len() + 6);
    match value.get(..keep) {
        Some(head) if keep < value.len() => format!("{head}..."),
        _ => "...".into(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn send(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
) -> Result<(Response<()>, String), BoxError> {
    let res =
        tokio::time::timeout(std::time::Duration::from_secs(10), client.request(req)).await??;
    let (parts, body) = res.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((
        Response::from_parts(parts, ()),
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// A private signing key and the public JWK that goes with it.
struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    kid: Option<String>,
    public: Jwk,
}

/// Members of a JWK that belong to the private key only (RFC 7518 §6).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl Signer {
    /// Reads a private JWK (EC P-256, RSA or Ed25519).
    fn from_jwk_file(path: &str) -> Result<Self, BoxError> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let jwk: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        Self::from_private_jwk(&jwk).map_err(|e| format!("{path}: {e}").into())
    }

    fn from_private_jwk(jwk: &Value) -> Result<Self, String> {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let member = |name: &str| -> Result<Vec<u8>, String> {
            let text = jwk[name]
                .as_str()
                .ok_or_else(|| format!("the JWK has no '{name}' (a private key is needed)"))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| format!("JWK member '{name}' is not base64url"))
        };
        let kty = jwk["kty"].as_str().unwrap_or_default();
        let crv = jwk["crv"].as_str().unwrap_or_default();
        let (default_alg, key) = match (kty, crv) {
            ("EC", "P-256") => {
                let secret = p256::SecretKey::from_slice(&member("d")?)
                    .map_err(|_| "the EC private key 'd' is invalid")?;
                let pem = secret
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| e.to_string())?;
                let key = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
                (Algorithm::ES256, key)
            }
            ("RSA", _) => {
                let n = member("n")?;
                let bits = u32::try_from(n.len() * 8).map_err(|_| "RSA modulus too large")?;
                let uint = |bytes: &[u8], bits: u32| {
                    rsa::BoxedUint::from_be_slice(bytes, bits)
                        .map_err(|_| "an RSA JWK member does not fit its modulus".to_owned())
                };
                let e = member("e")?;
                let e_bits = u32::try_from(e.len() * 8).map_err(|_| "RSA exponent too large")?;
                let secret = rsa::PrivateKey::from_components(
                    uint(&n, bits)?,
                    uint(&e, e_bits)?,
                    uint(&member("d")?, bits)?,
                    vec![uint(&member("p")?, bits)?, uint(&member("q")?, bits)?],
                )
                .map_err(|e| format!("the RSA private key is invalid: {e}"))?;
                let pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&secret, LineEnding::LF)
                    .map_err(|e| e.to_string())?;
                let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
                (Algorithm::PS256, key)
            }
            ("OKP", "Ed25519") => {
                let d: [u8; 32] = member("d")?
                    .try_into()
                    .map_err(|_| "the Ed25519 private key 'd' must be 32 bytes")?;
                let secret = ed25519_dalek::SigningKey::from_bytes(&d);
                let pem =
                    ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_pem(&secret, LineEnding::LF)
                        .map_err(|e| e.to_string())?;
                let key = EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
                (Algorithm::EdDSA, key)
            }
            _ => {
                return Err(format!(
                    "unsupported key (kty '{kty}', crv '{crv}'): use EC P-256, RSA or Ed25519"
                ))
            }
        };
        let alg = match jwk["alg"].as_str() {
            Some(name) => {
                Algorithm::from_str(name).map_err(|_| format!("unknown JWK alg '{name}'"))?
            }
            None => default_alg,
        };
        let mut public = jwk.clone();
        if let Some(members) = public.as_object_mut() {
            for name in PRIVATE_MEMBERS {
                members.remove(*name);
            }
        }
        let public: Jwk =
            serde_json::from_value(public).map_err(|e| format!("the public JWK: {e}"))?;
        Ok(Self {
            alg,
            key,
            kid: jwk["kid"].as_str().map(str::to_owned),
            public,
        })
    }

    /// A new ES256 key, for DPoP proofs.
    fn generate_es256() -> Result<Self, BoxError> {
        use p256::elliptic_curve::Generate;
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let pem = p256::SecretKey::generate().to_pkcs8_pem(LineEnding::LF)?;
        let key = EncodingKey::from_ec_pem(pem.as_bytes())?;
        let public = Jwk::from_encoding_key(&key, Algorithm::ES256)?;
        Ok(Self {
            alg: Algorithm::ES256,
            key,
            kid: None,
            public,
        })
    }

    /// A client assertion (RFC 7523 §3): new `jti`, 60 s lifetime.
    fn assertion(&self, client_id: &str, aud: &str) -> Result<String, BoxError> {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        let iat = now();
        let claims = json!({
            "iss": client_id, "sub": client_id, "aud": aud,
            "jti": random(), "iat": iat, "exp": iat + 60,
        });
        Ok(jsonwebtoken::encode(&header, &claims, &self.key)?)
    }

    /// A DPoP proof (RFC 9449 §4.2) for `htm` `htu`, with the server's
    /// nonce when it gave one.
    fn dpop_proof(&self, htm: &str, htu: &str, nonce: Option<&str>) -> Result<String, BoxError> {
        let mut header = Header::new(self.alg);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.public.clone());
        let mut claims = json!({"jti": random(), "htm": htm, "htu": htu, "iat": now()});
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        Ok(jsonwebtoken::encode(&header, &claims, &self.key)?)
    }
}

/// How this client authenticates.
enum Auth {
    Basic(String),
    Post { secret: String },
    None,
    PrivateKeyJwt(Box<Signer>),
}

impl Auth {
    fn name(&self) -> &'static str {
        match self {
            Self::Basic(_) => "client_secret_basic",
            Self::Post { .. } => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }
}

/// The URLs the server names itself by (RFC 8414), where JWTs need them.
struct Server {
    /// Where requests go (the command-line base URL).
    base: String,
    /// The `aud` of client assertions.
    issuer: String,
    /// The `htu` of push proofs.
    par_endpoint: String,
    /// The `htu` of token-request proofs.
    token_endpoint: String,
}

async fn discover(http: &HttpClient, base: &str) -> Result<Server, BoxError> {
    let url = format!("{base}/.well-known/oauth-authorization-server");
    let (res, text) = send(http, Request::get(&url).body(Full::default())?).await?;
    if res.status() != StatusCode::OK {
        return Err(format!("GET {url}: {}", res.status()).into());
    }
    let doc: Value = serde_json::from_str(&text)?;
    let member = |name: &str| {
        doc[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{url} has no '{name}'"))
    };
    Ok(Server {
        base: base.to_owned(),
        issuer: member("issuer")?,
        par_endpoint: member("pushed_authorization_request_endpoint")?,
        token_endpoint: member("token_endpoint")?,
    })
}

struct Flow {
    http: HttpClient,
    server: Server,
    client_id: String,
    auth: Auth,
    dpop: Option<Signer>,
    /// The last `DPoP-Nonce` the server sent.
    nonce: Option<String>,
}

impl Flow {
    /// A POST of `pairs` to `path`, authenticated, with a DPoP proof for
    /// `htu` in DPoP mode.
    fn request(
        &self,
        path: &str,
        htu: &str,
        pairs: &[(&str, &str)],
    ) -> Result<Request<Full<Bytes>>, BoxError> {
        let mut pairs = pairs.to_vec();
        let assertion;
        match &self.auth {
            Auth::Basic(_) => {}
            Auth::Post { secret } => {
                pairs.push(("client_id", &self.client_id));
                pairs.push(("client_secret", secret));
            }
            Auth::None => pairs.push(("client_id", &self.client_id)),
            Auth::PrivateKeyJwt(signer) => {
                assertion = signer.assertion(&self.client_id, &self.server.issuer)?;
                pairs.push(("client_id", &self.client_id));
                pairs.push(("client_assertion_type", ASSERTION_TYPE));
                pairs.push(("client_assertion", &assertion));
            }
        }
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.server.base))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Auth::Basic(basic) = &self.auth {
            req = req.header(header::AUTHORIZATION, basic);
        }
        if let Some(dpop) = &self.dpop {
            req = req.header("dpop", dpop.dpop_proof("POST", htu, self.nonce.as_deref())?);
        }
        Ok(req.body(Full::new(Bytes::from(form(&pairs))))?)
    }

    /// Sends the request that `path`, `htu` and `pairs` describe; a
    /// `use_dpop_nonce` answer is retried once with the server's nonce
    /// (RFC 9449 §8), with a new assertion and a new proof.
    async fn post(
        &mut self,
        path: &str,
        htu: &str,
        pairs: &[(&str, &str)],
    ) -> Result<(Response<()>, String), BoxError> {
        let mut retried = false;
        loop {
            let (res, text) = send(&self.http, self.request(path, htu, pairs)?).await?;
            let sent_nonce = self.nonce.clone();
            if let Some(nonce) = res
                .headers()
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok())
            {
                self.nonce = Some(nonce.to_owned());
            }
            let error: Value = serde_json::from_str(&text).unwrap_or_default();
            let wants_nonce = res.status() == StatusCode::BAD_REQUEST
                && error["error"] == "use_dpop_nonce"
                && self.dpop.is_some()
                && self.nonce.is_some()
                && self.nonce != sent_nonce;
            if wants_nonce && !retried {
                println!("   <- 400 use_dpop_nonce: retrying with the server's DPoP-Nonce");
                retried = true;
                continue;
            }
            return Ok((res, text));
        }
    }
}

fn settings() -> Result<(String, Option<String>, Option<String>, bool), BoxError> {
    let mut base = None;
    let mut key = None;
    let mut client_id = None;
    let mut dpop = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--key" => key = Some(args.next().ok_or("--key needs a file")?),
            "--client-id" => client_id = Some(args.next().ok_or("--client-id needs a value")?),
            "--dpop" => dpop = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other if other.starts_with('-') => {
                return Err(format!("unknown argument '{other}' (try --help)").into())
            }
            url if base.is_none() => base = Some(url.to_owned()),
            other => return Err(format!("unexpected argument '{other}' (try --help)").into()),
        }
    }
    let base = base
        .unwrap_or_else(|| "http://127.0.0.1:3000".into())
        .trim_end_matches('/')
        .to_owned();
    Ok((base, key, client_id, dpop))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (base, key, client_id, dpop) = settings()?;
    let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let client_id = client_id
        .or_else(|| std::env::var("PAR_CLIENT_ID").ok())
        .unwrap_or_else(|| {
            if key.is_some() {
                "demo-fapi"
            } else {
                "demo-client"
            }
            .into()
        });
    let auth = match &key {
        Some(path) => Auth::PrivateKeyJwt(Box::new(Signer::from_jwk_file(path)?)),
        None => {
            let secret =
                std::env::var("PAR_CLIENT_SECRET").unwrap_or_else(|_| "demo-secret".into());
            match std::env::var("PAR_CLIENT_AUTH")
                .as_deref()
                .unwrap_or("basic")
            {
                // RFC 6749 §2.3.1: both halves are form-url-encoded before base64.
                "basic" => Auth::Basic(format!(
                    "Basic {}",
                    STANDARD.encode(format!(
                        "{}:{}",
                        &form(&[("", &client_id)])[1..],
                        &form(&[("", &secret)])[1..]
                    ))
                )),
                "post" => Auth::Post { secret },
                "none" => Auth::None,
                _ => return Err("PAR_CLIENT_AUTH must be basic, post or none".into()),
            }
        }
    };
    let server = if key.is_some() || dpop {
        println!("0. GET {base}/.well-known/oauth-authorization-server");
        let server = discover(&http, &base).await?;
        println!("   issuer {}", server.issuer);
        server
    } else {
        Server {
            issuer: base.clone(),
            par_endpoint: format!("{base}/par"),
            token_endpoint: format!("{base}/token"),
            base: base.clone(),
        }
    };
    let dpop = if dpop {
        Some(Signer::generate_es256()?)
    } else {
        None
    };
    let mut flow = Flow {
        http,
        server,
        client_id,
        auth,
        dpop,
        nonce: None,
    };

    let verifier = random();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random();

    println!(
        "1. POST {base}/par  ({} client authentication as {}{})",
        flow.auth.name(),
        flow.client_id,
        if flow.dpop.is_some() {
            ", with a DPoP proof"
        } else {
            ""
        }
    );
    let htu = flow.server.par_endpoint.clone();
    let (res, text) = flow
        .post(
            "/par",
            &htu,
            &[
                ("response_type", "code"),
                ("redirect_uri", REDIRECT),
                ("scope", "profile"),
                ("state", &state),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await?;
    if res.status() != StatusCode::CREATED {
        println!("   <- {} {text}", res.status());
        return Err("push failed".into());
    }
    let json: Value = serde_json::from_str(&text)?;
    let request_uri = json["request_uri"]
        .as_str()
        .ok_or("no request_uri")?
        .to_owned();
    println!(
        "   <- {} request_uri {}, expires_in {}",
        res.status(),
        abridged(&request_uri),
        json["expires_in"]
    );

    let authorize = format!(
        "{base}/authorize?{}",
        form(&[
            ("client_id", &flow.client_id),
            ("request_uri", &request_uri)
        ])
    );
    println!(
        "2. GET {base}/authorize?client_id={}&request_uri={}",
        flow.client_id,
        abridged(&request_uri)
    );
    let (res, text) = send(&flow.http, Request::get(&authorize).body(Full::default())?).await?;
    let location = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The code is a credential: shown abridged.
    let shown = location.as_deref().map_or_else(
        || "(none)".to_owned(),
        |l| {
            l.split('&')
                .map(|p| match p.find("code=") {
                    Some(i) => format!("{}code={}", &p[..i], abridged(&p[i + 5..])),
                    None => p.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("&")
        },
    );
    println!("   <- {} Location: {shown}", res.status());
    let Some(location) = location else {
        println!("   {text}");
        return Err("authorize did not redirect".into());
    };
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query)?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("state").as_deref() != Some(state.as_str()) {
        return Err("state did not round-trip".into());
    }
    // RFC 9207: a response naming another issuer is a mix-up attack.
    if let Some(iss) = get("iss") {
        if iss != flow.server.issuer {
            return Err(format!("the response's iss '{iss}' is not the issuer").into());
        }
    }
    let code = get("code").ok_or("no code in the redirect")?;
    println!("   code received, state matches");

    println!(
        "3. POST {base}/token  (authorization_code + PKCE verifier{})",
        if flow.dpop.is_some() {
            " + DPoP proof"
        } else {
            ""
        }
    );
    let htu = flow.server.token_endpoint.clone();
    let (res, text) = flow
        .post(
            "/token",
            &htu,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ],
        )
        .await?;
    let token: Value = serde_json::from_str(&text).unwrap_or_default();
    // The access token itself is a credential: not printed.
    println!(
        "   <- {} token_type: {}, expires_in: {}",
        res.status(),
        token["token_type"].as_str().unwrap_or("(none)"),
        token["expires_in"]
    );
    if res.status() != StatusCode::OK || !token["access_token"].is_string() {
        println!("   {text}");
        return Err("token exchange failed: no access_token".into());
    }
    if flow.dpop.is_some() && token["token_type"] != "DPoP" {
        return Err("the token is not DPoP-bound".into());
    }

    println!("4. GET the same authorize URL again (one-time use)");
    let (res, _) = send(&flow.http, Request::get(&authorize).body(Full::default())?).await?;
    println!("   <- {} (expected 400 invalid_request_uri)", res.status());
    if res.status() != StatusCode::BAD_REQUEST {
        return Err("request_uri was accepted twice".into());
    }
    println!("PAR flow complete.");
    Ok(())
}
