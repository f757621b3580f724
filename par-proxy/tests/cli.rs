//! The `par-proxy` binary's command line: `--version`, `--check-config`
//! (exit 0, or 2 with one line per problem naming the key) and usage
//! errors (exit 2 with the usage).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const CLIENTS: &str = r#"{"clients":[{"client_id":"app","client_secret":"env:CLI_TEST_SECRET",
  "token_endpoint_auth_method":"client_secret_basic","redirect_uris":["https://app.example/cb"]}]}"#;

struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "par-proxy-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("clients.json"), CLIENTS).unwrap();
        std::fs::write(
            dir.join("garbage.pem"),
            "-----BEGIN CERTIFICATE-----\nnot base64!\n",
        )
        .unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.join("server.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("server-key.pem"), cert.key_pair.serialize_pem()).unwrap();
        Self(dir)
    }

    fn config(&self, text: &str) -> PathBuf {
        let path = self.0.join("proxy.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const GOOD: &str = "upstream = \"http://127.0.0.1:9000\"\n[clients]\nfile = \"clients.json\"\n";

/// Runs the binary with exactly these variables in its environment.
fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_par-proxy"))
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("run par-proxy")
}

fn check(path: &std::path::Path, vars: &[(&str, &str)]) -> (i32, String, String) {
    let out = run(&["--check-config", path.to_str().unwrap()], vars);
    (
        out.status.code().expect("exit status"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const SECRET: (&str, &str) = ("CLI_TEST_SECRET", "cli-secret-value");

#[test]
fn version_prints_the_name_and_version() {
    let out = run(&["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("par-proxy {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = Dir::new();
    let (code, stdout, stderr) = check(&dir.config(GOOD), &[SECRET]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ok"), "{stdout}");
    assert!(stdout.contains("clients     1"), "{stdout}");
    assert!(!stdout.contains(SECRET.1) && !stderr.contains(SECRET.1));
}

#[test]
fn check_config_with_tls_accepts_good_pem() {
    let dir = Dir::new();
    let path = dir.config(&format!(
        "{GOOD}[tls]\ncert = \"server.pem\"\nkey = \"server-key.pem\"\n"
    ));
    let (code, stdout, stderr) = check(&path, &[SECRET]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("https://127.0.0.1:8000"), "{stdout}");
}

#[test]
fn an_unknown_key_exits_2_naming_it() {
    let dir = Dir::new();
    let (code, stdout, stderr) = check(
        &dir.config(&format!("upstream_timout_secs = 5\n{GOOD}")),
        &[SECRET],
    );
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    assert_eq!(stderr, "upstream_timout_secs: unknown key\n");
}

#[test]
fn a_bad_lifetime_exits_2_naming_the_key() {
    let dir = Dir::new();
    let (code, _, stderr) = check(
        &dir.config(&format!("{GOOD}[par]\nlifetime_secs = 3600\n")),
        &[SECRET],
    );
    assert_eq!(code, 2);
    assert!(stderr.starts_with("par.lifetime_secs: "), "{stderr}");
    // The same from the environment names the variable.
    let (code, _, stderr) = check(
        &dir.config(GOOD),
        &[SECRET, ("PAR_PROXY_PAR_LIFETIME_SECS", "0")],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("PAR_PROXY_PAR_LIFETIME_SECS: "),
        "{stderr}"
    );
}

#[test]
fn a_missing_clients_file_exits_2_naming_clients_file() {
    let dir = Dir::new();
    let path =
        dir.config("upstream = \"http://127.0.0.1:9000\"\n[clients]\nfile = \"nowhere.json\"\n");
    let (code, _, stderr) = check(&path, &[SECRET]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("clients.file: cannot read"), "{stderr}");
    // An unset secret variable names the key and the variable.
    let (code, _, stderr) = check(&dir.config(GOOD), &[]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("clients.file: "), "{stderr}");
    assert!(stderr.contains("CLI_TEST_SECRET"), "{stderr}");
}

#[test]
fn bad_pem_exits_2_naming_the_tls_key() {
    let dir = Dir::new();
    let path = dir.config(&format!(
        "{GOOD}[tls]\ncert = \"garbage.pem\"\nkey = \"server.pem\"\n"
    ));
    let (code, _, stderr) = check(&path, &[SECRET]);
    assert_eq!(code, 2);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("tls.cert: "), "{stderr}");
    assert!(lines[1].starts_with("tls.key: "), "{stderr}");
}

#[test]
fn several_problems_are_one_line_each() {
    let dir = Dir::new();
    let path = dir.config("upstream = \"ftp://x\"\ncolour = 1\n[par]\npath = \"par\"\n[clients]\nfile = \"clients.json\"\n");
    let (code, _, stderr) = check(&path, &[SECRET, ("PAR_PROXY_BOGUS", "1")]);
    assert_eq!(code, 2);
    let keys: Vec<&str> = stderr
        .lines()
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(keys.len(), 4, "{stderr}");
    for key in ["PAR_PROXY_BOGUS", "colour", "upstream", "par.path"] {
        assert!(keys.contains(&key), "{key} missing: {stderr}");
    }
}

#[test]
fn a_secret_never_appears_in_problems() {
    let dir = Dir::new();
    let path = dir.config(&format!(
        "{GOOD}[store]\nredis_url = \"env:CLI_TEST_REDIS\"\n"
    ));
    let (code, _, stderr) = check(
        &path,
        &[SECRET, ("CLI_TEST_REDIS", "http://:hunter2@cache")],
    );
    assert_eq!(code, 2);
    assert!(stderr.starts_with("store.redis_url: "), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn check_config_refuses_what_run_refuses_naming_the_key() {
    let dir = Dir::new();
    // Credentials in the upstream URL: the forwarder refuses them.
    let path = dir
        .config("upstream = \"http://u:p@127.0.0.1:9000\"\n[clients]\nfile = \"clients.json\"\n");
    let (code, _, stderr) = check(&path, &[SECRET]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("upstream: "), "{stderr}");
    assert!(!stderr.contains("u:p"), "{stderr}");
    let out = run(&["--config", path.to_str().unwrap()], &[SECRET]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("upstream: "), "{stderr}");

    // A key that is readable but not the certificate's.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.0.join("other-key.pem"), other.key_pair.serialize_pem()).unwrap();
    let path = dir.config(&format!(
        "{GOOD}[tls]\ncert = \"server.pem\"\nkey = \"other-key.pem\"\n"
    ));
    let (code, _, stderr) = check(&path, &[SECRET]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("tls.key: "), "{stderr}");
}

#[test]
fn check_config_with_only_client_ca_reports_a_plain_listener() {
    let dir = Dir::new();
    let ca = rcgen::generate_simple_self_signed(vec!["clients-ca".into()]).unwrap();
    std::fs::write(dir.0.join("ca.pem"), ca.cert.pem()).unwrap();
    let path = dir.config(&format!(
        "trusted_proxies = [\"127.0.0.1\"]\n{GOOD}[tls]\nclient_ca = \"ca.pem\"\n"
    ));
    let (code, stdout, stderr) = check(&path, &[SECRET]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("http://127.0.0.1:8000"), "{stdout}");
    assert!(
        stdout.contains("tls         off (behind a TLS terminator)"),
        "{stdout}"
    );
}

#[test]
fn config_with_problems_exits_2_before_serving() {
    let dir = Dir::new();
    let path = dir.config("[par]\nlifetime_secs = 0\n");
    let out = run(&["--config", path.to_str().unwrap()], &[SECRET]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("upstream: missing"), "{stderr}");
    assert!(stderr.contains("par.lifetime_secs: "), "{stderr}");
}

#[test]
fn no_arguments_exit_2_with_the_usage() {
    let out = run(&[], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("Usage: par-proxy"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--listen", "127.0.0.1:8000"][..],
        &["--demo", "--check-config", "x.toml"],
        &["--check-config"],
        &["--demo", "--listen", "not-an-address"],
        &["--frobnicate"],
    ] {
        let out = run(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn demo_with_a_bad_environment_exits_2_naming_the_variable() {
    let out = run(
        &["--demo", "--listen", "127.0.0.1:0"],
        &[("PAR_TTL_SECS", "abc")],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("PAR_TTL_SECS"), "{stderr}");
}

/// `GET path` over a fresh connection; the status line, or `None` when
/// nothing answers.
fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.lines().next().map(str::to_owned)
}

#[test]
fn config_runs_the_proxy_until_sigterm() {
    use std::time::{Duration, Instant};
    let dir = Dir::new();
    let port = free_port();
    let path = dir.config(&format!("listen = \"127.0.0.1:{port}\"\n{GOOD}"));
    let mut running = spawn_config(&path);
    wait_healthy(&mut running, port);
    assert_eq!(get(port, "/healthz").as_deref(), Some("HTTP/1.1 200 OK"));
    let child = &mut running.0;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the proxy did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

/// SIGTERM while a request is in flight: the proxy stops accepting, the
/// request still gets the upstream's answer, then the process exits 0.
#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    // A slow upstream: answers each request 1.5 s after reading its head.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_port = upstream.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in upstream.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                std::thread::sleep(Duration::from_millis(1500));
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow",
                );
            });
        }
    });
    let dir = Dir::new();
    let port = free_port();
    let path = dir.config(&format!(
        "listen = \"127.0.0.1:{port}\"\nupstream = \"http://127.0.0.1:{upstream_port}\"\n[clients]\nfile = \"clients.json\"\n"
    ));
    let mut running = spawn_config(&path);
    wait_healthy(&mut running, port);
    let child = &mut running.0;
    // The request in flight, on its own thread.
    let in_flight = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        write!(
            stream,
            "GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    });
    // Let it reach the upstream, then SIGTERM.
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // New connections are refused soon after the signal.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let response = in_flight.join().unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("slow"), "{response}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the proxy did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

/// A child process killed when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `par-proxy --config path` with only the clients' secret in its
/// environment, its output discarded.
fn spawn_config(path: &std::path::Path) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_par-proxy"))
            .args(["--config", path.to_str().unwrap()])
            .env_clear()
            .envs([SECRET])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits (bounded) until `port` answers `/healthz`.
fn wait_healthy(child: &mut Running, port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get(port, "/healthz").is_none() {
        assert!(
            std::time::Instant::now() < deadline && child.0.try_wait().unwrap().is_none(),
            "par-proxy did not come up on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// `par-proxy --demo --listen ADDR` as the README starts it: the demo
/// server behind the proxy, with its clients, `PAR_TTL_SECS` and
/// `PAR_REQUIRED`: discovery names the PAR endpoint, a push, the
/// authorization request reaching the demo server as a plain request (303
/// to the redirect URI with a code), the token exchange, and a classic
/// request refused because PAR is required.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_a_par_flow_through_the_proxy() {
    let port = free_port();
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_par-proxy"))
            .args(["--demo", "--listen", &format!("127.0.0.1:{port}")])
            .env_clear()
            .envs([("PAR_TTL_SECS", "42"), ("PAR_REQUIRED", "1")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    tokio::task::block_in_place(|| wait_healthy(&mut child, port));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let meta: serde_json::Value = http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(meta["issuer"], base);
    assert_eq!(
        meta["pushed_authorization_request_endpoint"],
        format!("{base}/par")
    );
    assert_eq!(meta["require_pushed_authorization_requests"], true);

    let push = http
        .post(format!("{base}/par"))
        .basic_auth("demo-client", Some("demo-secret"))
        .form(&[
            ("response_type", "code"),
            ("redirect_uri", "http://127.0.0.1:8080/cb"),
            ("state", "st-1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 201);
    let pushed: serde_json::Value = serde_json::from_str(&push.text().await.unwrap()).unwrap();
    assert_eq!(pushed["expires_in"], 42);
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();

    let auth = http
        .get(format!("{base}/authorize"))
        .query(&[("client_id", "demo-client"), ("request_uri", &request_uri)])
        .send()
        .await
        .unwrap();
    assert_eq!(auth.status(), 303);
    let location = auth.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("http://127.0.0.1:8080/cb?"),
        "{location}"
    );
    let url = reqwest::Url::parse(&location).unwrap();
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some("st-1"));
    assert_eq!(param("iss").as_deref(), Some(base.as_str()));
    let code = param("code").expect("a code");

    let token = http
        .post(format!("{base}/token"))
        .basic_auth("demo-client", Some("demo-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:8080/cb"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let token: serde_json::Value = serde_json::from_str(&token.text().await.unwrap()).unwrap();
    assert!(token["access_token"].is_string(), "{token}");

    // PAR_REQUIRED=1: a classic request is refused at the proxy.
    let classic = http
        .get(format!("{base}/authorize"))
        .query(&[
            ("client_id", "demo-client"),
            ("response_type", "code"),
            ("redirect_uri", "http://127.0.0.1:8080/cb"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(classic.status(), 400);
}

/// `[metrics] listen`: the layer's counters (`tower_par_*`), the
/// forwarder's and the server's appear in Prometheus text on their own
/// listener, and the public port does not serve them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listener_serves_the_layers_and_the_proxys_metrics() {
    let dir = Dir::new();
    let (port, metrics_port) = (free_port(), free_port());
    // An upstream that answers 404 to everything.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for _ in 0..16 {
            let Ok((mut stream, _)) = upstream.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    let path = dir.config(&format!(
        "listen = \"127.0.0.1:{port}\"\nupstream = \"http://{upstream_addr}\"\n[clients]\nfile = \"clients.json\"\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
    ));
    let mut child = spawn_config(&path);
    tokio::task::block_in_place(|| wait_healthy(&mut child, port));
    let http = reqwest::Client::new();
    let push = http
        .post(format!("http://127.0.0.1:{port}/par"))
        .basic_auth("app", Some(SECRET.1))
        .form(&[
            ("response_type", "code"),
            ("redirect_uri", "https://app.example/cb"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 201);
    let forwarded = http
        .get(format!("http://127.0.0.1:{port}/somewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 404);

    let text = http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "tower_par_pushed_total",
        "par_proxy_upstream_responses_total",
        "par_proxy_requests_total",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    // Never on the public port: there /metrics is the upstream's (404).
    let public = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
}
