//! The demo's login step over real HTTP, against the built `legacy_server`
//! binary started as the README does: pushed values never ride the login
//! bounce (M-3), in flow-bound and in strict redemption (PAR-28), and the
//! login step is no open redirect.

mod demo;

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};

const CB: &str = "http://127.0.0.1:8080/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const STATE: &str = "st4te-9f3a1c";
const LOGIN_HINT: &str = "alice@mail.example";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// One user agent: its cookie jar, and every header value and page it got.
#[derive(Default)]
struct Browser {
    jar: HashMap<String, String>,
    seen: Vec<String>,
}

impl Browser {
    async fn send(&mut self, method: &str, url: &str, form: Option<&str>) -> Answer {
        let mut req = Request::builder().method(method).uri(url);
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header(header::COOKIE, cookies.join("; "));
        }
        if form.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let req = req
            .body(Full::new(Bytes::from(form.unwrap_or_default().to_owned())))
            .unwrap();
        let res =
            tokio::time::timeout(std::time::Duration::from_secs(5), demo::http().request(req))
                .await
                .unwrap()
                .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        for c in headers.get_all(header::SET_COOKIE) {
            let pair = c.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
        for name in [header::LOCATION, header::HeaderName::from_static("refresh")] {
            if let Some(v) = headers.get(name) {
                self.seen.push(v.to_str().unwrap().to_owned());
            }
        }
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        self.seen.push(body.clone());
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, url: &str) -> Answer {
        self.send("GET", url, None).await
    }
}

fn location(a: &Answer) -> String {
    a.headers[header::LOCATION].to_str().unwrap().to_owned()
}

fn absolute(base: &str, url: &str) -> String {
    if url.starts_with('/') {
        format!("{base}{url}")
    } else {
        url.to_owned()
    }
}

/// Percent-decodes `s` once (`+` is a space).
fn decoded(s: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={}", s.replace('&', "%26")))
        .ok()
        .and_then(|mut v| v.pop())
        .map_or_else(|| s.to_owned(), |(_, v)| v)
}

fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)]).unwrap()[2..].to_owned()
}

/// The values of the pushed request that must never reach the browser,
/// and the request itself: every URL in it unencoded, as the README's curl
/// sends `redirect_uri`.
const PUSHED_ONLY: [&str; 6] = [
    CHALLENGE,
    STATE,
    LOGIN_HINT,
    "rs.example",
    "ext.example",
    "127.0.0.1:8080",
];

fn pushed_form() -> String {
    format!(
        "response_type=code&redirect_uri={CB}&state={STATE}&scope=openid\
         &code_challenge={CHALLENGE}&code_challenge_method=S256\
         &login_hint={LOGIN_HINT}&resource=https://rs.example/api\
         &x_return=https://ext.example/v"
    )
}

async fn push(base: &str) -> String {
    let req = Request::post(format!("{base}/par"))
        .header(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("demo-client:demo-secret")),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(pushed_form())))
        .unwrap();
    let (status, body) = demo::call(req).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let request_uri = v["request_uri"].as_str().unwrap().to_owned();
    format!(
        "{base}/authorize?client_id=demo-client&request_uri={}",
        enc(&request_uri)
    )
}

/// Asserts that no pushed value is in `text`, raw or decoded up to twice.
fn assert_absent(text: &str, what: &str) {
    for form in [text.to_owned(), decoded(text), decoded(&decoded(text))] {
        for pushed in PUSHED_ONLY {
            assert!(!form.contains(pushed), "{pushed} in {what}: {text}");
        }
    }
}

async fn token(base: &str, code: &str) -> StatusCode {
    let req = Request::post(format!("{base}/token"))
        .header(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("demo-client:demo-secret")),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}",
            enc(code),
            enc(CB)
        ))))
        .unwrap();
    demo::call(req).await.0
}

fn code_of(callback: &str) -> String {
    assert!(callback.ends_with(&format!("&state={STATE}")), "{callback}");
    let rest = callback.strip_prefix(&format!("{CB}?code="));
    rest.and_then(|r| r.split('&').next())
        .unwrap_or_else(|| panic!("no code in {callback}"))
        .to_owned()
}

#[tokio::test]
async fn m3_pushed_values_holding_unencoded_urls_never_ride_the_login_bounce() {
    let server = demo::start(&["--login"], &[]);
    let authorize = push(&server.base).await;
    let mut b = Browser::default();
    let bounce = b.get(&authorize).await;
    assert_eq!(bounce.status, StatusCode::SEE_OTHER, "{}", bounce.body);
    let login = location(&bounce);
    assert!(login.starts_with("/login?return_to="), "{login}");
    assert!(
        decoded(&decoded(&login)).contains("request_uri=urn:ietf:params:oauth:request_uri:"),
        "{login}"
    );
    assert_absent(&login, "the login bounce");
    let page = b.get(&absolute(&server.base, &login)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_absent(&page.body, "the login page");
    let posted = b
        .send(
            "POST",
            &absolute(&server.base, &login),
            Some("username=demo&password=demo"),
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    let back = location(&posted);
    assert_absent(&back, "the return from login");
    let done = b.get(&absolute(&server.base, &back)).await;
    let callback = location(&done);
    assert_eq!(
        token(&server.base, &code_of(&callback)).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn m3_par28_strict_login_keeps_the_request_server_side_and_completes() {
    let server = demo::start(&["--login"], &[("PAR_REDEMPTION", "strict")]);
    let authorize = push(&server.base).await;
    let mut b = Browser::default();
    let bounce = b.get(&authorize).await;
    assert_eq!(bounce.status, StatusCode::SEE_OTHER, "{}", bounce.body);
    let login = location(&bounce);
    assert!(login.starts_with("/login?pending="), "{login}");
    // Strict: the request_uri is spent, the compact form is of no use.
    let reentry = b.get(&authorize).await;
    assert_eq!(reentry.status, StatusCode::BAD_REQUEST);
    assert!(reentry.body.contains("invalid_request_uri"));
    let page = b.get(&absolute(&server.base, &login)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // A wrong password keeps the request waiting.
    let wrong = b
        .send(
            "POST",
            &absolute(&server.base, &login),
            Some("username=demo&password=nope"),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let posted = b
        .send(
            "POST",
            &absolute(&server.base, &login),
            Some("username=demo&password=demo"),
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    let callback = location(&posted);
    // Everything the browser got before the authorization response.
    let before = &b.seen[..b.seen.len() - 2];
    assert!(before.iter().any(|s| s.contains("Sign in")));
    for text in before {
        assert_absent(text, "a header or page before the callback");
    }
    let code = code_of(&callback);
    assert!(!callback.contains(CHALLENGE) && !callback.contains("alice"));
    assert_eq!(token(&server.base, &code).await, StatusCode::OK);
    // The kept request is used up too.
    let again = b
        .send(
            "POST",
            &absolute(&server.base, &login),
            Some("username=demo&password=demo"),
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.headers.get(header::LOCATION).is_none());
}

#[tokio::test]
async fn strict_kept_request_belongs_to_the_browser_that_started_it() {
    let server = demo::start(&["--login"], &[("PAR_REDEMPTION", "strict")]);
    let authorize = push(&server.base).await;
    let mut owner = Browser::default();
    let login = location(&owner.get(&authorize).await);
    let mut other = Browser::default();
    let url = absolute(&server.base, &login);
    assert_eq!(other.get(&url).await.status, StatusCode::BAD_REQUEST);
    let stolen = other
        .send("POST", &url, Some("username=demo&password=demo"))
        .await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST);
    assert!(stolen.headers.get(header::LOCATION).is_none());
    let posted = owner
        .send("POST", &url, Some("username=demo&password=demo"))
        .await;
    code_of(&location(&posted));
}

#[tokio::test]
async fn login_return_to_is_never_an_off_site_redirect() {
    let server = demo::start(&["--login"], &[]);
    for evil in [
        "/\\evil.example/x",
        "/\t/evil.example",
        "//evil.example",
        "https://evil.example",
        "http:/evil.example",
        "/\\/evil.example",
        "\\/evil.example",
        "/x\\evil.example",
        " /evil.example",
        "/evil.example\n",
        "/\u{7f}/evil.example",
        "/é",
        "javascript:alert(1)",
        "evil.example",
        "",
    ] {
        for query in [enc(evil), evil.replace('\t', "%09")] {
            let url = format!("{}/login?return_to={query}", server.base);
            // Raw bytes a URI cannot hold are sent encoded only.
            if url.parse::<http::Uri>().is_err() {
                continue;
            }
            let mut b = Browser::default();
            let form = b.get(&url).await;
            assert_eq!(form.status, StatusCode::BAD_REQUEST, "GET {evil:?}");
            let posted = b
                .send("POST", &url, Some("username=demo&password=demo"))
                .await;
            assert_eq!(posted.status, StatusCode::BAD_REQUEST, "POST {evil:?}");
            assert!(posted.headers.get(header::LOCATION).is_none(), "{evil:?}");
            // In the form body as well.
            let body = format!("username=demo&password=demo&return_to={}", enc(evil));
            let posted = b
                .send("POST", &format!("{}/login", server.base), Some(&body))
                .await;
            assert_eq!(posted.status, StatusCode::BAD_REQUEST, "form {evil:?}");
        }
    }
    // `/%2F/evil` arrives as `//evil`; one more encoding is a plain path.
    let mut b = Browser::default();
    let url = format!("{}/login?return_to=/%2F/evil.example", server.base);
    assert_eq!(b.get(&url).await.status, StatusCode::BAD_REQUEST);
    let url = format!("{}/login?return_to=/%252F/evil.example", server.base);
    let posted = b
        .send("POST", &url, Some("username=demo&password=demo"))
        .await;
    assert_eq!(location(&posted), "/%2F/evil.example");
    // Paths of this server pass as they are.
    for ok in [
        "/authorize?client_id=demo-client&request_uri=x",
        "/",
        "/a/b?c=%2F#f",
    ] {
        let url = format!("{}/login?return_to={}", server.base, enc(ok));
        let mut b = Browser::default();
        assert_eq!(b.get(&url).await.status, StatusCode::OK, "{ok}");
        let posted = b
            .send("POST", &url, Some("username=demo&password=demo"))
            .await;
        assert_eq!(posted.status, StatusCode::SEE_OTHER, "{ok}");
        assert_eq!(location(&posted), ok);
    }
}
