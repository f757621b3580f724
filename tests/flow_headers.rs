//! What the layer reads from and rewrites in the wrapped service's answer
//! to a redeemed request: the end of the flow (PAR-28, FAPI 2.0 note 3)
//! and the compaction of login bounces (M-3), for both redemption policies.

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use tower::util::BoxCloneService;
use tower::{service_fn, ServiceExt};
use tower_par::{ParLayer, ParRequestBody, Redemption};

use support::{authorize_uri, form_encode, get, into_parts, layer, push_c, CHALLENGE, C_ID};

type Inner =
    BoxCloneService<Request<ParRequestBody<Full<Bytes>>>, Response<Full<Bytes>>, Infallible>;

/// A legacy authorization endpoint that answers every request with a
/// redirect built from the URL it received.
fn redirecting(status: StatusCode, header_name: &'static str, to: fn(&str) -> String) -> Inner {
    BoxCloneService::new(service_fn(
        move |req: Request<ParRequestBody<Full<Bytes>>>| {
            let received = req.uri().to_string();
            let mut res = Response::new(Full::default());
            *res.status_mut() = status;
            res.headers_mut()
                .insert(header_name, to(&received).parse().unwrap());
            async move { Ok::<_, Infallible>(res) }
        },
    ))
}

type Svc = tower_par::Par<Inner>;

async fn send(svc: &Svc, uri: &str, cookie: Option<&str>) -> (http::response::Parts, Bytes) {
    let mut req = get(uri);
    if let Some(c) = cookie {
        req.headers_mut().insert(header::COOKIE, c.parse().unwrap());
    }
    into_parts(svc.clone().oneshot(req).await.unwrap()).await
}

fn flow_cookie(parts: &http::response::Parts) -> String {
    let c = parts.headers[header::SET_COOKIE].to_str().unwrap();
    c.split(';').next().unwrap().to_owned()
}

fn service(layer: ParLayer, inner: Inner) -> Svc {
    tower::Layer::layer(&layer, inner)
}

#[tokio::test]
async fn par28_a_normalised_redirect_to_the_redirect_uri_completes_the_flow() {
    // The pushed redirect_uri is https://c.example/cb; the legacy server
    // rebuilds it (RFC 3986 §6.2.2 / §6.2.3 equivalent forms).
    let variants: [fn(&str) -> String; 4] = [
        |_| "HTTPS://C.Example/cb?code=1&state=s1".into(),
        |_| "https://c.example:443/cb?code=1&state=s1".into(),
        |_| "https://C.EXAMPLE:443/cb#code=1".into(),
        |_| "https://c.example:/cb?error=access_denied".into(),
    ];
    for to in variants {
        let svc = service(layer(), redirecting(StatusCode::FOUND, "location", to));
        let request_uri = push_c(&svc).await;
        let uri = authorize_uri(C_ID, &request_uri);
        let (first, _) = send(&svc, &uri, None).await;
        assert_eq!(first.status, StatusCode::FOUND);
        let cookie = flow_cookie(&first);
        // Consumed: the same browser cannot collect another response.
        let (again, body) = send(&svc, &uri, Some(&cookie)).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "{:?}", to(""));
        assert!(String::from_utf8_lossy(&body).contains("invalid_request_uri"));
        assert!(again.headers.get(header::LOCATION).is_none());
    }
}

#[tokio::test]
async fn par28_a_redirect_elsewhere_on_the_clients_host_leaves_the_flow_open() {
    // The control for the test above: re-entry works while the flow is open.
    let variants: [fn(&str) -> String; 3] = [
        |_| "https://c.example/CB?code=1".into(),
        |_| "https://c.example:8443/cb?code=1".into(),
        |_| "https://u@c.example/cb?code=1".into(),
    ];
    for to in variants {
        let svc = service(layer(), redirecting(StatusCode::FOUND, "location", to));
        let request_uri = push_c(&svc).await;
        let uri = authorize_uri(C_ID, &request_uri);
        let (first, _) = send(&svc, &uri, None).await;
        let cookie = flow_cookie(&first);
        let (again, _) = send(&svc, &uri, Some(&cookie)).await;
        assert_eq!(again.status, StatusCode::FOUND, "{:?}", to(""));
    }
}

/// Percent-decodes `s` once (`+` is a space).
fn decoded(s: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={}", s.replace('&', "%26")))
        .unwrap()
        .remove(0)
        .1
}

fn login_bounce(received: &str) -> String {
    format!("/login?return_to={}", form_encode(received))
}

fn login_refresh(received: &str) -> String {
    format!("0; url=/login?next={}", form_encode(received))
}

#[tokio::test]
async fn m3_strict_redemption_compacts_the_login_bounce_too() {
    let strict = layer().redemption(Redemption::Strict);
    for (name, to) in [
        ("location", login_bounce as fn(&str) -> String),
        ("refresh", login_refresh),
    ] {
        let svc = service(strict.clone(), redirecting(StatusCode::SEE_OTHER, name, to));
        let request_uri = push_c(&svc).await;
        let (parts, _) = send(&svc, &authorize_uri(C_ID, &request_uri), None).await;
        assert_eq!(parts.status, StatusCode::SEE_OTHER);
        let value = parts.headers[name].to_str().unwrap().to_owned();
        let twice = decoded(&decoded(&value));
        assert!(
            twice.contains(&format!("request_uri={request_uri}")),
            "{twice}"
        );
        for pushed in [
            CHALLENGE,
            "s1",
            "c.example",
            "code_challenge",
            "claims",
            "scope",
        ] {
            assert!(!twice.contains(pushed), "{pushed} in {name}: {value}");
        }
        // Strict: no binding cookie.
        assert!(parts.headers.get(header::SET_COOKIE).is_none());
    }
}

#[tokio::test]
async fn m3_a_redirect_that_would_still_carry_pushed_values_is_not_sent() {
    // Forms compaction cannot know: the request under a mount prefix, a
    // pushed value copied into a parameter of its own or into a fragment.
    let leaking: [fn(&str) -> String; 4] = [
        |received| format!("/login?next={}", form_encode(&format!("/oauth{received}"))),
        |_| format!("/login?challenge={CHALLENGE}"),
        |_| format!("/login#cc={}", form_encode(&form_encode(CHALLENGE))),
        |received| {
            format!(
                "/sso?u={}",
                form_encode(&format!("https://as.example/oauth{received}"))
            )
        },
    ];
    for to in leaking {
        let svc = service(layer(), redirecting(StatusCode::FOUND, "location", to));
        let request_uri = push_c(&svc).await;
        let (parts, body) = send(&svc, &authorize_uri(C_ID, &request_uri), None).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert!(parts.headers.get(header::LOCATION).is_none());
        assert!(!body.contains(CHALLENGE), "{body}");
    }
    // A bounce without pushed values, and one compaction handles, go out.
    let fine: [fn(&str) -> String; 2] = [
        |_| "/login?theme=dark".into(),
        |received| format!("/login?return_to={}", form_encode(received)),
    ];
    for to in fine {
        let svc = service(layer(), redirecting(StatusCode::FOUND, "location", to));
        let request_uri = push_c(&svc).await;
        let (parts, _) = send(&svc, &authorize_uri(C_ID, &request_uri), None).await;
        assert_eq!(parts.status, StatusCode::FOUND);
        let location = parts.headers[header::LOCATION].to_str().unwrap();
        assert!(!location.contains(CHALLENGE), "{location}");
    }
}
