//! Starts the built `legacy_server` demo exactly as the README does (its
//! flags and environment variables) and talks HTTP to it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// `target/<profile>/examples/legacy_server`, next to this test's binary.
pub fn demo_binary() -> PathBuf {
    example_binary("legacy_server")
}

/// `target/<profile>/examples/<name>`, built if missing.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("examples").join(name);
    if !bin.exists() {
        // `cargo test --test demo_cli` alone does not build examples.
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", name])
            .status()
            .expect("cargo build");
        assert!(status.success());
    }
    bin
}

pub struct Demo {
    pub child: Child,
    pub base: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(args: &[&str], env: &[(&str, &str)]) -> Demo {
    start_with(args, env, Stdio::null())
}

/// Starts the demo with its standard output piped: the banner lines it
/// printed by the time it accepts connections, and the demo.
pub fn start_reading_banner(args: &[&str], env: &[(&str, &str)]) -> (Demo, Vec<String>) {
    use std::io::BufRead;
    let mut demo = start_with(args, env, Stdio::piped());
    let stdout = demo.child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    // The banner is printed before the server starts serving; wait for
    // its last line.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let last = line.contains("/.well-known/oauth-authorization-server");
                lines.push(line);
                if last {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    (demo, lines)
}

fn start_with(args: &[&str], env: &[(&str, &str)], stdout: Stdio) -> Demo {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(demo_binary());
    cmd.args(["--addr", &addr])
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::null());
    for var in [
        "PAR_ISSUER",
        "PAR_CLIENTS",
        "PAR_REQUIRED",
        "PAR_TTL_SECS",
        "PAR_METADATA",
        "PAR_DEMO_LOGIN",
        "PAR_REDIS_URL",
        "PAR_REDIS_SECRET",
        "PAR_REDEMPTION",
        "PAR_FLOW_WINDOW_SECS",
        "PAR_PROFILE",
        "PAR_FAPI_KEY",
        "PAR_DPOP_NONCES",
        "PAR_DPOP_NONCE_SECRET",
        "ADDR",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let child = cmd.spawn().expect("start legacy_server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "legacy_server did not start");
        std::thread::sleep(Duration::from_millis(25));
    }
    Demo {
        child,
        base: format!("http://{addr}"),
    }
}

pub fn http() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn call(req: Request<Full<Bytes>>) -> (StatusCode, String) {
    let res = tokio::time::timeout(Duration::from_secs(5), http().request(req))
        .await
        .unwrap()
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
