//! `par_proxy::config` and `par_proxy::layer`: the TOML file, the
//! `PAR_PROXY_*` overrides, `env:NAME` secrets, validation (every problem
//! named by its key, all at once), and the layer built from the result,
//! exercised over real HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use par_proxy::config::{
    load_with_env, Environment, ForwardAs, LogFormat, Problem, ProfileName, ProxyConfig,
    RedemptionName,
};

const CLIENTS_JSON: &str = r#"{"clients":[
  {"client_id":"app","client_secret":"env:CFG_TEST_APP_SECRET",
   "token_endpoint_auth_method":"client_secret_basic",
   "redirect_uris":["https://app.example/cb"]},
  {"client_id":"spa","token_endpoint_auth_method":"none",
   "redirect_uris":["https://spa.example/cb"]}
]}"#;

const CLIENTS_TOML: &str = r#"
[[clients]]
client_id = "app"
client_secret = "plain-secret"
token_endpoint_auth_method = "client_secret_post"
redirect_uris = ["https://app.example/cb"]
"#;

/// A private directory per test, with a clients file and PEM files.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "par-proxy-config-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("clients.json"), CLIENTS_JSON).unwrap();
        std::fs::write(dir.join("clients.toml"), CLIENTS_TOML).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.join("server.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("server-key.pem"), cert.key_pair.serialize_pem()).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["clients-ca".into()]).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
        std::fs::write(dir.join("garbage.pem"), "not a pem file\n").unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A file with `text` after the required keys.
    fn config(&self, text: &str) -> PathBuf {
        self.file(
            "proxy.toml",
            &format!("upstream = \"http://127.0.0.1:9000\"\n{text}\n[clients]\nfile = \"clients.json\"\n"),
        )
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env(vars: &[(&str, &str)]) -> Environment {
    let mut all = vec![("CFG_TEST_APP_SECRET", "app-secret")];
    all.extend_from_slice(vars);
    Environment::from_vars(all)
}

fn ok(path: &Path, vars: &[(&str, &str)]) -> ProxyConfig {
    match load_with_env(path, &env(vars)) {
        Ok(config) => config,
        Err(problems) => panic!("unexpected problems: {problems:#?}"),
    }
}

fn problems(path: &Path, vars: &[(&str, &str)]) -> Vec<String> {
    match load_with_env(path, &env(vars)) {
        Ok(config) => panic!("expected problems, loaded {config:?}"),
        Err(problems) => problems.iter().map(Problem::to_string).collect(),
    }
}

/// Exactly one problem, starting with `prefix`.
fn one_problem(path: &Path, vars: &[(&str, &str)], prefix: &str) -> String {
    let found = problems(path, vars);
    assert_eq!(found.len(), 1, "expected one problem: {found:#?}");
    assert!(
        found[0].starts_with(prefix),
        "expected `{prefix}…`, got {found:#?}"
    );
    found[0].clone()
}

#[test]
fn a_minimal_file_gets_every_default() {
    let dir = Dir::new();
    let c = ok(&dir.config(""), &[]);
    assert_eq!(c.listen, "127.0.0.1:8000".parse::<SocketAddr>().unwrap());
    assert_eq!(c.upstream, "http://127.0.0.1:9000");
    assert_eq!(c.public_url, None);
    assert_eq!(c.public_url(), "http://127.0.0.1:8000");
    assert!(c.preserve_host);
    assert!(c.trusted_proxies.is_empty());
    assert_eq!(c.upstream_timeout_secs, 30);
    assert_eq!(c.max_body_bytes, 10 * 1024 * 1024);
    assert_eq!(c.par.path, "/par");
    assert_eq!(c.par.authorize_path, "/authorize");
    assert_eq!(c.par.lifetime_secs, 60);
    assert!(!c.par.require);
    assert_eq!(c.par.profile, ProfileName::Rfc9126);
    assert_eq!(c.par.redemption, RedemptionName::FlowBound);
    assert!(c.par.flow_paths.is_empty());
    assert_eq!(c.par.forward_as, ForwardAs::Auto);
    assert_eq!(c.par.max_upstream_url, 8192);
    assert!(c.par.metadata);
    assert_eq!(c.store.redis_url, None);
    assert_eq!(c.clients.file, Some(dir.0.join("clients.json")));
    assert!(c.tls.is_none());
    assert_eq!(c.log.format, LogFormat::Text);
    assert!(c.metrics.is_none());
}

#[test]
fn every_key_is_parsed() {
    let dir = Dir::new();
    let path = dir.file(
        "full.toml",
        r#"
listen = "127.0.0.1:8443"
upstream = "https://auth.internal:9443/base"
public_url = "https://as.example"
preserve_host = false
trusted_proxies = ["10.0.0.0/8", "192.168.1.7", "::1", "fd00::/8"]
upstream_timeout_secs = 5
max_body_bytes = 4096

[par]
path = "/oauth/par"
authorize_path = "/oauth/authorize"
lifetime_secs = 90
require = true
profile = "fapi2"
redemption = "strict"
flow_paths = ["/oauth/authorize", "/login-actions"]
forward_as = "post"
max_upstream_url = 4000
metadata = false

[store]
redis_url = "redis://127.0.0.1:6379/0"

[clients]
file = "clients.toml"

[tls]
cert = "server.pem"
key = "server-key.pem"
client_ca = "ca.pem"

[log]
format = "json"

[metrics]
listen = "127.0.0.1:9100"
"#,
    );
    let c = ok(&path, &[]);
    assert_eq!(c.listen.port(), 8443);
    assert_eq!(c.upstream, "https://auth.internal:9443/base");
    assert_eq!(c.public_url(), "https://as.example");
    assert!(!c.preserve_host);
    assert_eq!(c.trusted_proxies.len(), 4);
    assert!(c.is_trusted("10.1.2.3".parse().unwrap()));
    assert!(c.is_trusted("::ffff:192.168.1.7".parse().unwrap()));
    assert!(!c.is_trusted("192.168.1.8".parse().unwrap()));
    assert_eq!(c.upstream_timeout_secs, 5);
    assert_eq!(c.max_body_bytes, 4096);
    assert_eq!(c.par.path, "/oauth/par");
    assert_eq!(c.par.authorize_path, "/oauth/authorize");
    assert_eq!(c.par.lifetime_secs, 90);
    assert!(c.par.require);
    assert_eq!(c.par.profile, ProfileName::Fapi2);
    assert_eq!(c.par.redemption, RedemptionName::Strict);
    assert_eq!(c.par.flow_paths, ["/oauth/authorize", "/login-actions"]);
    assert_eq!(c.par.forward_as, ForwardAs::Post);
    assert_eq!(c.par.max_upstream_url, 4000);
    assert!(!c.par.metadata);
    assert_eq!(
        c.store.redis_url.as_deref(),
        Some("redis://127.0.0.1:6379/0")
    );
    assert_eq!(c.clients.file, Some(dir.0.join("clients.toml")));
    let tls = c.tls.as_ref().unwrap();
    assert_eq!(tls.cert, Some(dir.0.join("server.pem")));
    assert_eq!(tls.key, Some(dir.0.join("server-key.pem")));
    assert_eq!(tls.client_ca, Some(dir.0.join("ca.pem")));
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.metrics.as_ref().unwrap().listen.port(), 9100);
}

#[test]
fn public_url_defaults_to_https_with_tls() {
    let dir = Dir::new();
    let c = ok(
        &dir.config(
            "listen = \"127.0.0.1:8443\"\n[tls]\ncert = \"server.pem\"\nkey = \"server-key.pem\"",
        ),
        &[],
    );
    assert_eq!(c.public_url(), "https://127.0.0.1:8443");
}

#[test]
fn environment_overrides_a_top_level_key() {
    let dir = Dir::new();
    let c = ok(
        &dir.config(""),
        &[("PAR_PROXY_UPSTREAM", "http://127.0.0.1:9999")],
    );
    assert_eq!(c.upstream, "http://127.0.0.1:9999");
    let c = ok(&dir.config(""), &[("PAR_PROXY_LISTEN", "127.0.0.1:8001")]);
    assert_eq!(c.listen.port(), 8001);
}

#[test]
fn environment_overrides_a_section_key() {
    let dir = Dir::new();
    let c = ok(
        &dir.config("[par]\npath = \"/from-file\""),
        &[
            ("PAR_PROXY_PAR_PATH", "/from-env"),
            ("PAR_PROXY_PAR_PROFILE", "fapi2"),
        ],
    );
    assert_eq!(c.par.path, "/from-env");
    assert_eq!(c.par.profile, ProfileName::Fapi2);
}

#[test]
fn environment_creates_a_section_the_file_lacks() {
    let dir = Dir::new();
    let c = ok(
        &dir.config(""),
        &[
            ("PAR_PROXY_METRICS_LISTEN", "127.0.0.1:9101"),
            ("PAR_PROXY_STORE_REDIS_URL", "redis://127.0.0.1:6390/1"),
            ("PAR_PROXY_LOG_FORMAT", "json"),
        ],
    );
    assert_eq!(c.metrics.unwrap().listen.port(), 9101);
    assert_eq!(
        c.store.redis_url.as_deref(),
        Some("redis://127.0.0.1:6390/1")
    );
    assert_eq!(c.log.format, LogFormat::Json);

    let c = ok(
        &dir.config(""),
        &[
            ("PAR_PROXY_TLS_CERT", "server.pem"),
            ("PAR_PROXY_TLS_KEY", "server-key.pem"),
        ],
    );
    assert_eq!(c.tls.unwrap().cert, Some(dir.0.join("server.pem")));
}

#[test]
fn environment_sets_a_bool() {
    let dir = Dir::new();
    let c = ok(
        &dir.config("preserve_host = true"),
        &[
            ("PAR_PROXY_PRESERVE_HOST", "false"),
            ("PAR_PROXY_PAR_REQUIRE", "true"),
        ],
    );
    assert!(!c.preserve_host);
    assert!(c.par.require);
    one_problem(
        &dir.config(""),
        &[("PAR_PROXY_PAR_REQUIRE", "yes")],
        "PAR_PROXY_PAR_REQUIRE: expected true or false",
    );
}

#[test]
fn environment_sets_an_integer() {
    let dir = Dir::new();
    let c = ok(
        &dir.config(""),
        &[
            ("PAR_PROXY_PAR_LIFETIME_SECS", "120"),
            ("PAR_PROXY_UPSTREAM_TIMEOUT_SECS", "7"),
        ],
    );
    assert_eq!(c.par.lifetime_secs, 120);
    assert_eq!(c.upstream_timeout_secs, 7);
    one_problem(
        &dir.config(""),
        &[("PAR_PROXY_PAR_LIFETIME_SECS", "two")],
        "PAR_PROXY_PAR_LIFETIME_SECS: expected an integer",
    );
    // A valid integer out of range is named by the variable that set it.
    let line = one_problem(
        &dir.config(""),
        &[("PAR_PROXY_PAR_LIFETIME_SECS", "601")],
        "PAR_PROXY_PAR_LIFETIME_SECS: must be between 1 and 600",
    );
    assert!(line.contains("par.lifetime_secs"), "{line}");
}

#[test]
fn environment_sets_a_list_comma_separated_or_as_toml() {
    let dir = Dir::new();
    let c = ok(
        &dir.config(""),
        &[
            ("PAR_PROXY_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            (
                "PAR_PROXY_PAR_FLOW_PATHS",
                r#"["/authorize", "/login-actions"]"#,
            ),
        ],
    );
    assert_eq!(c.trusted_proxies, ["10.0.0.0/8", "127.0.0.1"]);
    assert_eq!(c.par.flow_paths, ["/authorize", "/login-actions"]);
    one_problem(
        &dir.config(""),
        &[("PAR_PROXY_PAR_FLOW_PATHS", "[/authorize")],
        "PAR_PROXY_PAR_FLOW_PATHS: expected a TOML array",
    );
}

#[test]
fn an_unknown_environment_variable_is_a_problem() {
    let dir = Dir::new();
    one_problem(
        &dir.config(""),
        &[("PAR_PROXY_PAR_LIFETIME", "90")],
        "PAR_PROXY_PAR_LIFETIME: unknown",
    );
}

#[test]
fn redis_url_may_be_an_env_reference() {
    let dir = Dir::new();
    let path = dir.config("[store]\nredis_url = \"env:CFG_TEST_REDIS\"");
    let c = ok(
        &path,
        &[("CFG_TEST_REDIS", "redis://:hunter2@127.0.0.1:6379/0")],
    );
    assert_eq!(
        c.store.redis_url.as_deref(),
        Some("redis://:hunter2@127.0.0.1:6379/0")
    );
    // Debug output never shows the password.
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("127.0.0.1:6379"), "{debug}");

    let line = one_problem(&path, &[], "store.redis_url:");
    assert!(line.contains("CFG_TEST_REDIS"), "{line}");
    assert!(line.contains("not set"), "{line}");

    let line = one_problem(
        &path,
        &[("CFG_TEST_REDIS", "http://hunter2@cache")],
        "store.redis_url:",
    );
    assert!(!line.contains("hunter2"), "the value never appears: {line}");
}

#[test]
fn client_secret_may_be_an_env_reference() {
    let dir = Dir::new();
    let path = dir.config("");
    // `env()` sets CFG_TEST_APP_SECRET.
    ok(&path, &[]);
    let found = match load_with_env(&path, &Environment::from_vars([("OTHER", "x")])) {
        Ok(_) => panic!("the secret's variable is unset"),
        Err(p) => p,
    };
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].key, "clients.file");
    assert!(
        found[0].message.contains("CFG_TEST_APP_SECRET"),
        "{}",
        found[0]
    );
    assert!(found[0].message.contains("client_secret"), "{}", found[0]);
}

#[test]
fn an_unknown_key_is_a_problem_naming_it() {
    let dir = Dir::new();
    one_problem(
        &dir.config("upstream_timeout = 5"),
        &[],
        "upstream_timeout: unknown key",
    );
    one_problem(
        &dir.config("[par]\nlifetime = 5"),
        &[],
        "par.lifetime: unknown key",
    );
    one_problem(&dir.config("[cache]\nsize = 5"), &[], "cache: unknown key");
    one_problem(
        &dir.config("[tls]\ncert = \"server.pem\"\nkey = \"server-key.pem\"\nca = \"ca.pem\""),
        &[],
        "tls.ca: unknown key",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let dir = Dir::new();
    let path = dir.file(
        "bad.toml",
        r#"
upstream = "ftp://somewhere"
colour = "blue"
upstream_timeout_secs = 0
trusted_proxies = ["10.0.0.0/33"]
[par]
lifetime_secs = 0
path = "par"
profile = "fapi3"
require = "yes"
[clients]
file = "missing.json"
[tls]
cert = "garbage.pem"
"#,
    );
    let found = problems(&path, &[("PAR_PROXY_NOPE", "1")]);
    let keys: Vec<&str> = found.iter().map(|l| l.split(':').next().unwrap()).collect();
    for key in [
        "PAR_PROXY_NOPE",
        "colour",
        "upstream",
        "upstream_timeout_secs",
        "trusted_proxies",
        "par.lifetime_secs",
        "par.path",
        "par.profile",
        "par.require",
        "clients.file",
        "tls.cert",
        "tls.key",
    ] {
        assert!(keys.contains(&key), "no problem for {key}: {found:#?}");
    }
    assert_eq!(found.len(), 12, "{found:#?}");
    assert!(found.iter().all(|l| !l.contains('\n')));
}

#[test]
fn a_file_that_is_not_toml_is_one_problem() {
    let dir = Dir::new();
    let path = dir.file("broken.toml", "upstream = \n[par");
    let found = problems(&path, &[]);
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("not valid TOML"), "{found:?}");
    let missing = dir.0.join("absent.toml");
    assert!(problems(&missing, &[])[0].contains("cannot read"));
}

#[test]
fn a_wrong_type_names_the_key() {
    let dir = Dir::new();
    one_problem(
        &dir.config("preserve_host = \"no\""),
        &[],
        "preserve_host: expected true or false",
    );
    one_problem(
        &dir.config("upstream_timeout_secs = \"30\""),
        &[],
        "upstream_timeout_secs: expected an integer",
    );
    one_problem(
        &dir.config("max_body_bytes = -1"),
        &[],
        "max_body_bytes: must not be negative",
    );
    one_problem(
        &dir.config("trusted_proxies = \"10.0.0.1\""),
        &[],
        "trusted_proxies: expected a list",
    );
    one_problem(
        &dir.config("listen = \"localhost\""),
        &[],
        "listen: 'localhost' is not an address",
    );
    one_problem(
        &dir.config("[log]\nformat = \"xml\""),
        &[],
        "log.format: must be one of",
    );
    one_problem(&dir.config("par = 1"), &[], "par: must be a table");
}

#[test]
fn upstream_must_be_an_http_url_without_query() {
    let dir = Dir::new();
    for bad in [
        "ftp://x",
        "127.0.0.1:9000",
        "http://x/?a=b",
        "http://",
        "http://x/#f",
    ] {
        let path = dir.config("");
        let found = problems(&path, &[("PAR_PROXY_UPSTREAM", bad)]);
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert!(
            found[0].starts_with("PAR_PROXY_UPSTREAM: must be an http"),
            "{found:?}"
        );
    }
    ok(
        &dir.config(""),
        &[("PAR_PROXY_UPSTREAM", "https://as.internal/prefix")],
    );
    let path = dir.file("noup.toml", "[clients]\nfile = \"clients.json\"\n");
    one_problem(&path, &[], "upstream: missing");
}

#[test]
fn public_url_must_be_an_http_url() {
    let dir = Dir::new();
    one_problem(
        &dir.config("public_url = \"as.example\""),
        &[],
        "public_url: must be an http",
    );
    one_problem(
        &dir.config("public_url = \"https://as.example/?x=1\""),
        &[],
        "public_url: must be an http",
    );
    ok(
        &dir.config("public_url = \"https://as.example/tenant\""),
        &[],
    );
}

#[test]
fn paths_must_start_with_a_slash() {
    let dir = Dir::new();
    one_problem(
        &dir.config("[par]\npath = \"par\""),
        &[],
        "par.path: must start with '/'",
    );
    one_problem(
        &dir.config("[par]\nauthorize_path = \"authorize\""),
        &[],
        "par.authorize_path: must start with '/'",
    );
    one_problem(
        &dir.config("[par]\nflow_paths = [\"/ok\", \"login\"]"),
        &[],
        "par.flow_paths: item 1 must start",
    );
    one_problem(
        &dir.config("[par]\npath = \"/authorize\""),
        &[],
        "par.path: must differ",
    );
}

#[test]
fn lifetime_is_between_1_and_600_seconds() {
    let dir = Dir::new();
    one_problem(
        &dir.config("[par]\nlifetime_secs = 0"),
        &[],
        "par.lifetime_secs: must be between 1 and 600",
    );
    one_problem(
        &dir.config("[par]\nlifetime_secs = 601"),
        &[],
        "par.lifetime_secs: must be between 1 and 600",
    );
    assert_eq!(
        ok(&dir.config("[par]\nlifetime_secs = 1"), &[])
            .par
            .lifetime_secs,
        1
    );
    assert_eq!(
        ok(&dir.config("[par]\nlifetime_secs = 600"), &[])
            .par
            .lifetime_secs,
        600
    );
}

#[test]
fn upstream_timeout_is_at_least_one_second() {
    let dir = Dir::new();
    one_problem(
        &dir.config("upstream_timeout_secs = 0"),
        &[],
        "upstream_timeout_secs: must be at least 1",
    );
    ok(&dir.config("upstream_timeout_secs = 1"), &[]);
}

#[test]
fn trusted_proxies_are_ips_or_cidrs() {
    let dir = Dir::new();
    for bad in ["10.0.0.0/33", "proxy.internal", "::1/129", "10.0.0.1/"] {
        let found = problems(&dir.config(&format!("trusted_proxies = [\"{bad}\"]")), &[]);
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert!(found[0].starts_with("trusted_proxies: item 0"), "{found:?}");
    }
    // What passes here is what the server trusts.
    let c = ok(
        &dir.config("trusted_proxies = [\"10.1.0.0/16\", \"0.0.0.0/0\", \"fd00::/8\"]"),
        &[],
    );
    let trusted = c.trusted_proxies();
    assert!(trusted.contains("10.1.255.1".parse().unwrap()));
    assert!(trusted.contains("8.8.8.8".parse().unwrap()));
    assert!(trusted.contains("fdab::1".parse().unwrap()));
    assert!(!trusted.contains("::1".parse().unwrap()));
}

#[test]
fn tls_files_must_be_readable_pem() {
    let dir = Dir::new();
    let tls = |cert: &str, key: &str, ca: Option<&str>| {
        let ca = ca
            .map(|c| format!("client_ca = \"{c}\"\n"))
            .unwrap_or_default();
        dir.config(&format!("[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n{ca}"))
    };
    ok(&tls("server.pem", "server-key.pem", Some("ca.pem")), &[]);
    let line = one_problem(
        &tls("garbage.pem", "server-key.pem", None),
        &[],
        "tls.cert:",
    );
    assert!(line.contains("no PEM certificate"), "{line}");
    // A key file holds no certificate; a certificate file holds no key.
    one_problem(
        &tls("server-key.pem", "server-key.pem", None),
        &[],
        "tls.cert: ",
    );
    let line = one_problem(&tls("server.pem", "server.pem", None), &[], "tls.key:");
    assert!(line.contains("no PEM private key"), "{line}");
    let line = one_problem(&tls("server.pem", "absent.pem", None), &[], "tls.key:");
    assert!(line.contains("cannot read"), "{line}");
    one_problem(
        &tls("server.pem", "server-key.pem", Some("garbage.pem")),
        &[],
        "tls.client_ca:",
    );
    one_problem(
        &dir.config("[tls]\ncert = \"server.pem\""),
        &[],
        "tls.key: missing",
    );
    one_problem(
        &dir.config("[tls]\nkey = \"server-key.pem\""),
        &[],
        "tls.cert: missing",
    );
    one_problem(&dir.config("[tls]"), &[], "tls.cert: ");
}

#[test]
fn tls_with_only_client_ca_is_a_plain_listener_verifying_forwarded_certificates() {
    let dir = Dir::new();
    let c = ok(&dir.config("[tls]\nclient_ca = \"ca.pem\""), &[]);
    let tls = c.tls.as_ref().unwrap();
    assert_eq!(tls.cert, None);
    assert_eq!(tls.key, None);
    assert!(tls.server_identity().is_none());
    assert_eq!(tls.client_ca, Some(dir.0.join("ca.pem")));
    // Plain HTTP on the listener: public_url defaults to http.
    assert_eq!(c.public_url(), "http://127.0.0.1:8000");
    one_problem(
        &dir.config("[tls]\nclient_ca = \"garbage.pem\""),
        &[],
        "tls.client_ca:",
    );
}

#[test]
fn public_url_scheme_is_lower_cased() {
    let dir = Dir::new();
    let c = ok(
        &dir.config("public_url = \"HTTPS://as.example/Tenant\""),
        &[],
    );
    assert_eq!(c.public_url(), "https://as.example/Tenant");
    let c = ok(&dir.config("public_url = \"Http://as.example\""), &[]);
    assert_eq!(c.public_url(), "http://as.example");
}

#[test]
fn clients_file_is_required_and_must_load() {
    let dir = Dir::new();
    let path = dir.file("noclients.toml", "upstream = \"http://127.0.0.1:9000\"\n");
    one_problem(&path, &[], "clients.file: missing");

    let path = dir.file(
        "c.toml",
        "upstream = \"http://127.0.0.1:9000\"\n[clients]\nfile = \"absent.json\"\n",
    );
    let line = one_problem(&path, &[], "clients.file:");
    assert!(line.contains("cannot read"), "{line}");

    dir.file("broken.json", "{\"clients\": [");
    let path = dir.file(
        "c.toml",
        "upstream = \"http://127.0.0.1:9000\"\n[clients]\nfile = \"broken.json\"\n",
    );
    one_problem(&path, &[], "clients.file: not valid JSON");

    dir.file(
        "typo.json",
        r#"{"clients":[{"client_id":"a","redirect_uri":["https://a/cb"]}]}"#,
    );
    let path = dir.file(
        "c.toml",
        "upstream = \"http://127.0.0.1:9000\"\n[clients]\nfile = \"typo.json\"\n",
    );
    one_problem(
        &path,
        &[],
        "clients.file: client 'a': unknown client member 'redirect_uri'",
    );

    let path = dir.file(
        "c.toml",
        "upstream = \"http://127.0.0.1:9000\"\n[clients]\nfile = \"clients.toml\"\n",
    );
    ok(&path, &[]);
}

#[test]
fn store_limits_and_the_redis_secret_are_checked() {
    let dir = Dir::new();
    let config = ok(
        &dir.config(
            "[store]\nmax_pending = 5000\nmax_pending_per_client = 7\nmax_pending_bytes = 1048576",
        ),
        &[],
    );
    assert_eq!(config.store.max_pending, Some(5000));
    assert_eq!(config.store.max_pending_per_client, Some(7));
    assert_eq!(config.store.max_pending_bytes, Some(1 << 20));
    one_problem(
        &dir.config("[store]\nmax_pending_per_client = 0"),
        &[],
        "store.max_pending_per_client: must be at least 1",
    );
    one_problem(
        &dir.config("[store]\nsecret = \"0123456789abcdef0123456789abcdef\""),
        &[],
        "store.secret: is only used with store.redis_url",
    );
    one_problem(
        &dir.config("[store]\nredis_url = \"redis://127.0.0.1:1/0\"\nmax_pending = 10"),
        &[],
        "store.max_pending: applies to the in-memory store only",
    );
    // A short secret is named, never printed.
    let found = one_problem(
        &dir.config(
            "[store]\nredis_url = \"redis://127.0.0.1:1/0\"\nsecret = \"env:CFG_TEST_SHORT\"",
        ),
        &[("CFG_TEST_SHORT", "short-redis-secret")],
        "store.secret: must be at least 32 bytes",
    );
    assert!(!found.contains("short-redis-secret"), "{found}");
    let config = ok(
        &dir.config(
            "[store]\nredis_url = \"redis://127.0.0.1:1/0\"\nsecret = \"env:CFG_TEST_LONG\"",
        ),
        &[("CFG_TEST_LONG", "a-redis-secret-of-at-least-32-bytes")],
    );
    assert_eq!(
        config.store.secret.as_deref(),
        Some("a-redis-secret-of-at-least-32-bytes")
    );
    assert!(
        !format!("{config:?}").contains("a-redis-secret"),
        "Debug shows the secret"
    );
}

#[test]
fn metrics_listen_differs_from_listen() {
    let dir = Dir::new();
    one_problem(
        &dir.config("listen = \"127.0.0.1:8000\"\n[metrics]\nlisten = \"127.0.0.1:8000\""),
        &[],
        "metrics.listen: must differ from listen",
    );
    one_problem(&dir.config("[metrics]\n"), &[], "metrics.listen: missing");
    one_problem(
        &dir.config("listen = \"0.0.0.0:8000\"\n[metrics]\nlisten = \"127.0.0.1:8000\""),
        &[],
        "metrics.listen: must differ from listen",
    );
    ok(
        &dir.config("listen = \"127.0.0.1:8000\"\n[metrics]\nlisten = \"127.0.0.1:9100\""),
        &[],
    );
    ok(
        &dir.config("listen = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\""),
        &[],
    );
}

// ---------------------------------------------------------------------------
// The layer built from a configuration
// ---------------------------------------------------------------------------

mod layer {
    use super::*;

    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    use par_proxy::layer::{build, ProxyLayer};
    use tower::Layer;

    /// Serves `layer` in front of an inner service that answers "inner",
    /// on a loopback port; the task ends with the runtime.
    const DISCOVERY: &str = r#"{"issuer":"http://127.0.0.1:8000","authorization_endpoint":"http://127.0.0.1:8000/authorize","token_endpoint":"http://127.0.0.1:8000/token","response_types_supported":["code"]}"#;

    /// The upstream's discovery document as the layer passes it on.
    async fn discovery(addr: SocketAddr) -> serde_json::Value {
        let text = reqwest::get(format!(
            "http://{addr}/.well-known/oauth-authorization-server"
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    async fn serve(layer: ProxyLayer) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The upstream's discovery document (JSON) at the well-known path,
        // "inner" everywhere else.
        let inner = tower::service_fn(|req: http::Request<_>| async move {
            let response = if req.uri().path().starts_with("/.well-known/") {
                http::Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(DISCOVERY.as_bytes())))
                    .unwrap()
            } else {
                http::Response::new(Full::new(Bytes::from_static(b"inner")))
            };
            Ok::<_, Infallible>(response)
        });
        let service = layer.layer(inner);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let service = TowerToHyperService::new(service.clone());
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }

    async fn push(addr: SocketAddr, secret: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/par"))
            .basic_auth("app", Some(secret))
            .form(&[
                ("response_type", "code"),
                ("client_id", "app"),
                ("redirect_uri", "https://app.example/cb"),
                ("scope", "openid"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    #[tokio::test]
    async fn the_built_layer_authenticates_with_the_env_secret() {
        let dir = Dir::new();
        std::fs::write(
            dir.0.join("clients.json"),
            CLIENTS_JSON.replace("CFG_TEST_APP_SECRET", "CFG_TEST_LAYER_SECRET"),
        )
        .unwrap();
        // A variable no other test reads or writes.
        std::env::set_var("CFG_TEST_LAYER_SECRET", "layer-secret");
        let config = load_with_env(
            &dir.config("[par]\nlifetime_secs = 42"),
            &Environment::process(),
        )
        .unwrap();
        let (layer, store) = build(&config).await.unwrap();
        assert_eq!(store.kind(), "memory");
        store.ready().await.unwrap();
        assert_eq!(layer.clients().len(), 2);

        let addr = serve(layer).await;
        let (status, body) = push(addr, "layer-secret").await;
        assert_eq!(status, 201, "{body}");
        assert!(body.contains("\"expires_in\":42"), "{body}");
        let (status, body) = push(addr, "env:CFG_TEST_LAYER_SECRET").await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("invalid_client"), "{body}");
    }

    #[tokio::test]
    async fn the_memory_store_bounds_reach_the_layer() {
        let dir = Dir::new();
        std::fs::write(
            dir.0.join("clients.json"),
            CLIENTS_JSON.replace("CFG_TEST_APP_SECRET", "CFG_TEST_BOUND_SECRET"),
        )
        .unwrap();
        std::env::set_var("CFG_TEST_BOUND_SECRET", "bound-secret");
        let config = load_with_env(
            &dir.config("[store]\nmax_pending_per_client = 2"),
            &Environment::process(),
        )
        .unwrap();
        let (layer, _store) = build(&config).await.unwrap();
        let addr = serve(layer).await;
        assert_eq!(push(addr, "bound-secret").await.0, 201);
        assert_eq!(push(addr, "bound-secret").await.0, 201);
        let (status, body) = push(addr, "bound-secret").await;
        assert_eq!(status, 429, "{body}");
    }

    #[tokio::test]
    async fn the_built_layer_serves_the_configured_paths() {
        let dir = Dir::new();
        std::fs::write(dir.0.join("clients.json"), CLIENTS_TOML_AS_JSON).unwrap();
        let config = load_with_env(
            &dir.config("[par]\npath = \"/oauth/par\"\nauthorize_path = \"/oauth/authorize\"\nrequire = true"),
            &Environment::default(),
        )
        .unwrap();
        let (layer, _store) = build(&config).await.unwrap();
        let addr = serve(layer).await;
        let client = reqwest::Client::new();
        // The PAR endpoint moved: /par reaches the inner service.
        let inner = client
            .post(format!("http://{addr}/par"))
            .send()
            .await
            .unwrap();
        assert_eq!(inner.text().await.unwrap(), "inner");
        let push = client
            .post(format!("http://{addr}/oauth/par"))
            .form(&[
                ("client_id", "app"),
                ("client_secret", "plain-secret"),
                ("response_type", "code"),
                ("redirect_uri", "https://app.example/cb"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(push.status(), 201);
        // `par.require`: a plain authorization request is refused.
        let plain = client
            .get(format!(
                "http://{addr}/oauth/authorize?client_id=app&response_type=code"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), 400);
        // `par.metadata` is on by default: the upstream's document gains
        // the PAR endpoint.
        let doc = discovery(addr).await;
        assert_eq!(
            doc["pushed_authorization_request_endpoint"], "http://127.0.0.1:8000/oauth/par",
            "{doc}"
        );
        assert_eq!(doc["require_pushed_authorization_requests"], true, "{doc}");
    }

    const CLIENTS_TOML_AS_JSON: &str = r#"{"clients":[{"client_id":"app","client_secret":"plain-secret",
        "token_endpoint_auth_method":"client_secret_post","redirect_uris":["https://app.example/cb"]}]}"#;

    #[tokio::test]
    async fn fapi2_profile_builds() {
        let dir = Dir::new();
        std::fs::write(dir.0.join("clients.json"), CLIENTS_TOML_AS_JSON).unwrap();
        let config = load_with_env(
            &dir.config("public_url = \"https://as.example\"\n[par]\nprofile = \"fapi2\"\nredemption = \"strict\""),
            &Environment::default(),
        )
        .unwrap();
        let (layer, _store) = build(&config).await.unwrap();
        // FAPI 2.0 refuses client secrets at the PAR endpoint (FAPI-3).
        let addr = serve(layer).await;
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/par"))
            .form(&[
                ("client_id", "app"),
                ("client_secret", "plain-secret"),
                ("response_type", "code"),
                ("redirect_uri", "https://app.example/cb"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }

    /// Pushes for `app` and opens the authorization URL; the
    /// `Set-Cookie` headers of the answer.
    async fn flow_cookies(addr: SocketAddr) -> Vec<String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let push = client
            .post(format!("http://{addr}/par"))
            .form(&[
                ("client_id", "app"),
                ("client_secret", "plain-secret"),
                ("response_type", "code"),
                ("redirect_uri", "https://app.example/cb"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(push.status(), 201);
        let pushed: serde_json::Value = serde_json::from_str(&push.text().await.unwrap()).unwrap();
        let request_uri = pushed["request_uri"].as_str().unwrap();
        let res = client
            .get(format!("http://{addr}/authorize"))
            .query(&[("client_id", "app"), ("request_uri", request_uri)])
            .send()
            .await
            .unwrap();
        res.headers()
            .get_all(http::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn an_upper_case_https_public_url_gives_a_secure_flow_cookie() {
        for (public_url, secure) in [
            ("HTTPS://as.example", true),
            ("https://as.example", true),
            ("http://as.example", false),
        ] {
            let dir = Dir::new();
            std::fs::write(dir.0.join("clients.json"), CLIENTS_TOML_AS_JSON).unwrap();
            let config = load_with_env(
                &dir.config(&format!("public_url = \"{public_url}\"")),
                &Environment::default(),
            )
            .unwrap();
            let (layer, _store) = build(&config).await.unwrap();
            let addr = serve(layer).await;
            let cookies = flow_cookies(addr).await;
            assert!(!cookies.is_empty(), "{public_url}: no flow cookie");
            for cookie in &cookies {
                assert_eq!(
                    cookie.to_ascii_lowercase().contains("; secure"),
                    secure,
                    "{public_url}: {cookie}"
                );
            }
        }
    }

    #[tokio::test]
    async fn flow_paths_reach_the_layer() {
        let dir = Dir::new();
        std::fs::write(dir.0.join("clients.json"), CLIENTS_TOML_AS_JSON).unwrap();
        let config = load_with_env(
            &dir.config("[par]\nflow_paths = [\"/realms/demo/login-actions\"]"),
            &Environment::default(),
        )
        .unwrap();
        let (layer, _store) = build(&config).await.unwrap();
        assert!(format!("{layer:?}").contains("/realms/demo/login-actions"));

        // What only the layer refuses is still named by its key.
        let config = load_with_env(
            &dir.config("[par]\nflow_paths = [\"/login actions\"]"),
            &Environment::default(),
        )
        .unwrap();
        let problems = build(&config).await.unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "par.flow_paths", "{problems:?}");
    }

    #[tokio::test]
    async fn metadata_false_leaves_discovery_untouched() {
        let dir = Dir::new();
        std::fs::write(dir.0.join("clients.json"), CLIENTS_TOML_AS_JSON).unwrap();
        let config = load_with_env(
            &dir.config("[par]\nmetadata = false"),
            &Environment::default(),
        )
        .unwrap();
        let (layer, _store) = build(&config).await.unwrap();
        let doc = discovery(serve(layer).await).await;
        assert_eq!(
            doc,
            serde_json::from_str::<serde_json::Value>(DISCOVERY).unwrap()
        );
    }

    #[tokio::test]
    async fn client_ca_makes_tls_client_auth_available() {
        let dir = Dir::new();
        std::fs::write(dir.0.join("clients.json"), CLIENTS_TOML_AS_JSON).unwrap();
        // Without `tls.client_ca`, no mTLS method is advertised.
        let config = load_with_env(&dir.config(""), &Environment::default()).unwrap();
        let (layer, _store) = build(&config).await.unwrap();
        let doc = discovery(serve(layer).await).await;
        let methods = doc["token_endpoint_auth_methods_supported"].to_string();
        assert!(!methods.contains("tls_client_auth"), "{doc}");

        // The proxy's own listener is TLS, so `public_url` is set to the
        // document's issuer to keep it the issuer's document.
        let config = load_with_env(
            &dir.config(
                "public_url = \"http://127.0.0.1:8000\"\n\
                 [tls]\ncert = \"server.pem\"\nkey = \"server-key.pem\"\nclient_ca = \"ca.pem\"",
            ),
            &Environment::default(),
        )
        .unwrap();
        let (layer, _store) = build(&config).await.unwrap();
        let doc = discovery(serve(layer).await).await;
        let methods = doc["token_endpoint_auth_methods_supported"].to_string();
        assert!(methods.contains("\"tls_client_auth\""), "{doc}");
        assert!(methods.contains("\"self_signed_tls_client_auth\""), "{doc}");

        // A CA file that went bad after loading is named at build time.
        std::fs::write(dir.0.join("ca.pem"), "garbage").unwrap();
        let problems = build(&config).await.unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "tls.client_ca", "{problems:?}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_a_problem_naming_store_redis_url() {
        let dir = Dir::new();
        std::fs::write(dir.0.join("clients.json"), CLIENTS_TOML_AS_JSON).unwrap();
        let port = free_port();
        let config = load_with_env(
            &dir.config(&format!(
                "[store]\nredis_url = \"redis://:hunter2@127.0.0.1:{port}/0\""
            )),
            &Environment::default(),
        )
        .unwrap();
        let problems = build(&config).await.unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "store.redis_url");
        assert!(
            !problems[0].to_string().contains("hunter2"),
            "{}",
            problems[0]
        );
    }

    #[tokio::test]
    async fn a_redis_store_is_ready_while_redis_answers() {
        let Some(mut redis) = Redis::start() else {
            return;
        };
        let dir = Dir::new();
        std::fs::write(dir.0.join("clients.json"), CLIENTS_TOML_AS_JSON).unwrap();
        std::env::set_var(
            "CFG_TEST_REDIS_URL",
            format!("redis://127.0.0.1:{}/0", redis.port),
        );
        let config = load_with_env(
            &dir.config("[store]\nredis_url = \"env:CFG_TEST_REDIS_URL\""),
            &Environment::process(),
        )
        .unwrap();
        let (layer, store) = build(&config).await.unwrap();
        assert_eq!(store.kind(), "redis");
        store.ready().await.unwrap();
        // Pushed requests go to Redis.
        let addr = serve(layer).await;
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/par"))
            .form(&[
                ("client_id", "app"),
                ("client_secret", "plain-secret"),
                ("response_type", "code"),
                ("redirect_uri", "https://app.example/cb"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        redis.stop();
        assert!(store.ready().await.is_err());
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A throw-away `redis-server` on a free loopback port, when one is
    /// installed.
    struct Redis {
        port: u16,
        child: Option<Child>,
    }

    impl Redis {
        fn start() -> Option<Self> {
            let installed = Command::new("redis-server")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !installed {
                eprintln!("skipped: no redis-server");
                return None;
            }
            let port = free_port();
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server");
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(Self {
                port,
                child: Some(child),
            })
        }

        fn stop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            self.stop();
        }
    }
}
