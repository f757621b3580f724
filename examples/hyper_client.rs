//! A hyper client that walks the whole PAR flow against a running server.
//!
//! ```text
//! cargo run --example legacy_server &
//! cargo run --example hyper_client                     # http://127.0.0.1:3000
//! cargo run --example hyper_client -- http://127.0.0.1:4000
//! ```
//!
//! Steps, each printed: push the authorization request to `/par` with
//! `client_secret_basic` (`demo-client` / `demo-secret`), open
//! `/authorize?client_id=..&request_uri=..` as a browser would, read the
//! code from the redirect, exchange it at `/token` with the PKCE verifier.
//! `PAR_CLIENT_ID` / `PAR_CLIENT_SECRET` change the client and
//! `PAR_CLIENT_AUTH` (`basic`, `post` or `none`) how it authenticates, e.g.
//! `PAR_CLIENT_ID=demo-post-client PAR_CLIENT_SECRET=demo-post-secret
//! PAR_CLIENT_AUTH=post`. The token step needs a server with a real
//! `/token` (`legacy_server`); against `hyper_server` the flow stops after
//! the code.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{header, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::RngCore;
use sha2::{Digest, Sha256};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

const REDIRECT: &str = "http://127.0.0.1:8080/cb";

fn random() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).expect("strings always encode")
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

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:3000".into())
        .trim_end_matches('/')
        .to_owned();
    let client_id = std::env::var("PAR_CLIENT_ID").unwrap_or_else(|_| "demo-client".into());
    let secret = std::env::var("PAR_CLIENT_SECRET").unwrap_or_else(|_| "demo-secret".into());
    let auth = std::env::var("PAR_CLIENT_AUTH").unwrap_or_else(|_| "basic".into());
    if !matches!(auth.as_str(), "basic" | "post" | "none") {
        return Err("PAR_CLIENT_AUTH must be basic, post or none".into());
    }
    let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    // RFC 6749 §2.3.1: both halves are form-url-encoded before base64.
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{}:{}",
            &form(&[("", &client_id)])[1..],
            &form(&[("", &secret)])[1..]
        ))
    );

    let verifier = random();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random();

    // Client authentication, as the token endpoint expects it too.
    let authenticated =
        |pairs: &[(&str, &str)], uri: String| -> Result<Request<Full<Bytes>>, BoxError> {
            let mut pairs = pairs.to_vec();
            if auth != "basic" {
                pairs.push(("client_id", &client_id));
            }
            if auth == "post" {
                pairs.push(("client_secret", &secret));
            }
            let mut req = Request::builder()
                .method(Method::POST)
                .uri(uri)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            if auth == "basic" {
                req = req.header(header::AUTHORIZATION, &basic);
            }
            Ok(req.body(Full::new(Bytes::from(form(&pairs))))?)
        };

    println!("1. POST {base}/par  ({auth} client authentication as {client_id})");
    let req = authenticated(
        &[
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "profile"),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        format!("{base}/par"),
    )?;
    let (res, text) = send(&http, req).await?;
    println!("   <- {} {text}", res.status());
    if res.status() != 201 {
        return Err("push failed".into());
    }
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let request_uri = json["request_uri"]
        .as_str()
        .ok_or("no request_uri")?
        .to_owned();

    let authorize = format!(
        "{base}/authorize?{}",
        form(&[("client_id", &client_id), ("request_uri", &request_uri)])
    );
    println!("2. GET {authorize}");
    let (res, text) = send(&http, Request::get(&authorize).body(Full::default())?).await?;
    let location = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    println!(
        "   <- {} Location: {}",
        res.status(),
        location.as_deref().unwrap_or("(none)")
    );
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
    let code = get("code").ok_or("no code in the redirect")?;
    println!("   code received, state matches");

    println!("3. POST {base}/token  (authorization_code + PKCE verifier)");
    let req = authenticated(
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
        format!("{base}/token"),
    )?;
    let (res, text) = send(&http, req).await?;
    println!("   <- {} {text}", res.status());
    let token: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if res.status() != 200 || !token["access_token"].is_string() {
        return Err("token exchange failed: no access_token".into());
    }

    println!("4. GET the same authorize URL again (one-time use)");
    let (res, _) = send(&http, Request::get(&authorize).body(Full::default())?).await?;
    println!("   <- {} (expected 400 invalid_request_uri)", res.status());
    if res.status() != 400 {
        return Err("request_uri was accepted twice".into());
    }
    println!("PAR flow complete.");
    Ok(())
}
