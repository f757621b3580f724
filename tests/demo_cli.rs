//! The `legacy_server` demo as users start it: its command-line flags and
//! environment variables, checked over HTTP against the built binary.

mod demo;

use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::Full;

use demo::{call, demo_binary, start};

async fn push(base: &str, id: &str, secret: &str) -> (StatusCode, String) {
    let req = Request::post(format!("{base}/par"))
        .header(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from("response_type=code&state=s1")))
        .unwrap();
    call(req).await
}

#[tokio::test]
async fn defaults_ttl_and_issuer_from_the_environment() {
    let demo = start(
        &[],
        &[("PAR_TTL_SECS", "7"), ("PAR_ISSUER", "https://as.example")],
    );
    let (status, body) = push(&demo.base, "demo-client", "demo-secret").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.ends_with("\"expires_in\":7}"), "{body}");
    let (_, doc) = call(
        Request::get(format!(
            "{}/.well-known/oauth-authorization-server",
            demo.base
        ))
        .body(Full::default())
        .unwrap(),
    )
    .await;
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(
        doc["pushed_authorization_request_endpoint"],
        "https://as.example/par"
    );
    assert_eq!(doc["require_pushed_authorization_requests"], false);
}

#[tokio::test]
async fn par_required_and_metadata_off() {
    let demo = start(&[], &[("PAR_REQUIRED", "1"), ("PAR_METADATA", "0")]);
    let classic = format!(
        "{}/authorize?response_type=code&client_id=demo-client&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb",
        demo.base
    );
    let (status, page) = call(Request::get(classic).body(Full::default()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("pushed authorization request required"));
    let (_, doc) = call(
        Request::get(format!("{}/.well-known/openid-configuration", demo.base))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert!(
        !doc.contains("pushed_authorization_request_endpoint"),
        "{doc}"
    );
}

#[tokio::test]
async fn clients_file_replaces_the_built_in_clients() {
    let dir = std::env::temp_dir().join(format!("tower-par-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("clients.json");
    std::fs::write(
        &json,
        r#"{"clients":[{"client_id":"file-app","client_secret":"file-secret","redirect_uris":["https://app.example/cb"]}]}"#,
    )
    .unwrap();
    let demo = start(&["--clients", json.to_str().unwrap()], &[]);
    assert_eq!(
        push(&demo.base, "file-app", "file-secret").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        push(&demo.base, "demo-client", "demo-secret").await.0,
        StatusCode::UNAUTHORIZED
    );
    drop(demo);
    // The same through PAR_CLIENTS, as TOML.
    #[cfg(feature = "toml")]
    {
        let toml = dir.join("clients.toml");
        std::fs::write(&toml, "[[clients]]\nclient_id = \"toml-app\"\nclient_secret = \"t\"\nredirect_uris = [\"https://app.example/cb\"]\n").unwrap();
        let demo = start(&[], &[("PAR_CLIENTS", toml.to_str().unwrap())]);
        assert_eq!(
            push(&demo.base, "toml-app", "t").await.0,
            StatusCode::CREATED
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bad_settings_stop_the_demo_with_a_message() {
    let out = Command::new(demo_binary())
        .args(["--addr", "127.0.0.1:0"])
        .env("PAR_TTL_SECS", "601")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PAR_TTL_SECS"));
}
