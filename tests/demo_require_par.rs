//! Per-client require-PAR (PAR-31) against the demo as users start it:
//! `legacy_server --clients FILE`, one client registered with
//! `require_pushed_authorization_requests: true`. Every way a framework
//! could read an authorization request that the layer does not read is
//! refused before the legacy endpoint issues a code.

mod demo;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};

use demo::{http, start, Demo};

const CB: &str = "https://app.example/cb";

fn clients_file() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tower-par-require-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("clients.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"clients":[
  {{"client_id":"par-only","client_secret":"s1","redirect_uris":["{CB}"],
    "require_pushed_authorization_requests":true}},
  {{"client_id":"classic","client_secret":"s2","redirect_uris":["{CB}"]}}
]}}"#
        ),
    )
    .unwrap();
    file
}

fn demo() -> Demo {
    start(&["--clients", clients_file().to_str().unwrap()], &[])
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

async fn send(req: Request<Full<Bytes>>) -> Answer {
    let res = tokio::time::timeout(std::time::Duration::from_secs(5), http().request(req))
        .await
        .unwrap()
        .unwrap();
    let status = res.status();
    let location = res
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        location,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn classic_form(client_id: &str) -> String {
    serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("state", "s1"),
    ])
    .unwrap()
}

fn request(
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(uri);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

fn assert_refused(a: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {}", a.body);
    assert!(a.body.contains("invalid_request"), "{what}: {}", a.body);
    assert!(
        !a.location.as_deref().is_some_and(|l| l.contains("code=")),
        "{what}: a code was issued: {:?}",
        a.location
    );
}

#[tokio::test]
async fn par31_requests_the_layer_cannot_read_are_refused_for_a_par_only_client() {
    let demo = demo();
    let url = format!("{}/authorize", demo.base);
    let form = classic_form("par-only");

    // The demo does issue codes through the front channel to a client that
    // does not require PAR: what is refused below is refused by the layer.
    let classic = send(request(
        Method::GET,
        &format!("{url}?{}", classic_form("classic")),
        &[],
        "",
    ))
    .await;
    assert!(
        classic
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with(CB) && l.contains("code=")),
        "{:?}",
        classic.location
    );

    let json = r#"{"response_type":"code","client_id":"par-only","redirect_uri":"https://app.example/cb"}"#;
    let multipart = "--b\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\npar-only\r\n--b\r\nContent-Disposition: form-data; name=\"response_type\"\r\n\r\ncode\r\n--b--\r\n";
    let cases: Vec<(&str, Request<Full<Bytes>>)> = vec![
        (
            "form type with a suffix",
            request(
                Method::POST,
                &url,
                &[("content-type", "application/x-www-form-urlencoded-anything")],
                &form,
            ),
        ),
        (
            "form type then another type",
            request(
                Method::POST,
                &url,
                &[(
                    "content-type",
                    "application/x-www-form-urlencoded, text/plain",
                )],
                &form,
            ),
        ),
        (
            "form in a charset the layer does not read",
            request(
                Method::POST,
                &url,
                &[(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-16",
                )],
                &form,
            ),
        ),
        ("no content type", request(Method::POST, &url, &[], &form)),
        (
            "compressed form",
            request(
                Method::POST,
                &url,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("content-encoding", "gzip"),
                ],
                &form,
            ),
        ),
        (
            "GET with a form body",
            request(
                Method::GET,
                &url,
                &[("content-type", "application/x-www-form-urlencoded")],
                &form,
            ),
        ),
        (
            "PUT with a form body",
            request(
                Method::PUT,
                &url,
                &[("content-type", "application/x-www-form-urlencoded")],
                &form,
            ),
        ),
        (
            "PATCH with a form body",
            request(
                Method::PATCH,
                &url,
                &[("content-type", "application/x-www-form-urlencoded")],
                &form,
            ),
        ),
        (
            "a media-type parameter other parsers read a charset from",
            request(
                Method::POST,
                &url,
                &[(
                    "content-type",
                    "application/x-www-form-urlencoded; x-charset=utf-16be",
                )],
                &form,
            ),
        ),
        (
            "JSON body",
            request(
                Method::POST,
                &url,
                &[("content-type", "application/json")],
                json,
            ),
        ),
        (
            "multipart body",
            request(
                Method::POST,
                &url,
                &[("content-type", "multipart/form-data; boundary=b")],
                multipart,
            ),
        ),
        (
            "another spelling of the path, with a body",
            request(
                Method::POST,
                &format!("{}/Authorize", demo.base),
                &[("content-type", "application/x-www-form-urlencoded")],
                &form,
            ),
        ),
        (
            "the exact form type",
            request(
                Method::POST,
                &url,
                &[("content-type", "application/x-www-form-urlencoded")],
                &form,
            ),
        ),
    ];
    for (what, req) in cases {
        assert_refused(&send(req).await, what);
    }
}

#[tokio::test]
async fn par31_a_redeemable_request_uri_gets_an_unreadable_body_in() {
    let demo = demo();
    let push = request(
        Method::POST,
        &format!("{}/par", demo.base),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            (
                "authorization",
                &format!("Basic {}", STANDARD.encode("par-only:s1")),
            ),
        ],
        "response_type=code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=pushed",
    );
    let pushed = send(push).await;
    assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.body);
    let v: serde_json::Value = serde_json::from_str(&pushed.body).unwrap();
    let q = serde_urlencoded::to_string([
        ("client_id", "par-only"),
        ("request_uri", v["request_uri"].as_str().unwrap()),
    ])
    .unwrap();
    // The body is replaced by the stored request.
    let redeemed = send(request(
        Method::POST,
        &format!("{}/authorize?{q}", demo.base),
        &[("content-type", "application/json")],
        r#"{"state":"front"}"#,
    ))
    .await;
    let location = redeemed.location.unwrap_or_default();
    assert!(
        location.starts_with(CB)
            && location.contains("code=")
            && location.ends_with("state=pushed"),
        "{location} {}",
        redeemed.body
    );
}

#[tokio::test]
async fn par31_names_and_paths_other_parsers_read_as_the_authorization_request_are_refused() {
    let demo = demo();
    let base = &demo.base;
    let rest = "response_type=code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb";
    // Names PHP, Rails, Express, Java or C parsers read as client_id.
    for name in [
        "client.id",
        "client+id",
        "client%20id",
        "client_id%5B%5D",
        "client_id%5B0%5D",
        "client_id%00x",
        "Client_Id",
        "cl%C4%B1ent_id",
        "CL%C4%B0ENT_ID",
    ] {
        let uri = format!("{base}/authorize?{name}=par-only&{rest}");
        let a = send(request(Method::GET, &uri, &[], "")).await;
        assert_refused(&a, name);
        assert!(
            a.body.contains("could be read as a checked parameter"),
            "{name}: {}",
            a.body
        );
        let a = send(request(
            Method::POST,
            &format!("{base}/authorize"),
            &[("content-type", "application/x-www-form-urlencoded")],
            &format!("{name}=par-only&{rest}"),
        ))
        .await;
        assert_refused(&a, name);
        assert!(
            a.body.contains("could be read as a checked parameter"),
            "{name}: {}",
            a.body
        );
    }
    // A client_id in another charset, or that a service would trim.
    for value in ["par%E9only", "par-only%20"] {
        let uri = format!("{base}/authorize?client_id={value}&{rest}");
        let a = send(request(Method::GET, &uri, &[], "")).await;
        assert_refused(&a, value);
        assert!(
            a.body.contains("error: <code>invalid_request</code>"),
            "{value}: {}",
            a.body
        );
    }
    // Paths that format routes, suffix matching or IIS map onto /authorize.
    for path in [
        "/authorize.json",
        "/authorize.",
        "/authorize%20",
        "/%2Fauthorize",
        "/authorize%5C",
    ] {
        let uri = format!("{base}{path}?client_id=par-only&{rest}");
        let a = send(request(Method::GET, &uri, &[], "")).await;
        assert_refused(&a, path);
        assert!(
            a.body.contains("pushed authorization request required"),
            "{path}: {}",
            a.body
        );
    }
}
