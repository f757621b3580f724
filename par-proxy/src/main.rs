//! `par-proxy`: OAuth 2.0 Pushed Authorization Requests (RFC 9126) in
//! front of any authorization server.
//!
//! ```text
//! par-proxy --config FILE          run the proxy
//! par-proxy --check-config FILE    validate FILE: exit 0, or 2 with one line per problem
//! par-proxy --demo [--listen ADDR] the demo authorization server behind the proxy
//! par-proxy --version              print the version
//! ```
//!
//! Usage errors and configuration problems exit with status 2; a proxy
//! that fails while running exits with status 1.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser};

use par_proxy::config::{self, Problem, ProxyConfig};
use par_proxy::{demo, layer, server};

/// Where `--demo` listens without `--listen`.
const DEMO_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8000);

/// PAR (RFC 9126) in front of any authorization server.
#[derive(Debug, Parser)]
#[command(name = "par-proxy", version, about, long_about = None)]
#[command(group(ArgGroup::new("mode").required(true).args(["config", "check_config", "demo"])))]
struct Cli {
    /// Run the proxy with this configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate this configuration file and exit: 0 when it is good, 2
    /// with one line per problem otherwise.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
    /// Run the demo authorization server with the proxy in front of it.
    #[arg(long)]
    demo: bool,
    /// Where the demo proxy listens (default 127.0.0.1:8000).
    #[arg(long, value_name = "ADDR", requires = "demo")]
    listen: Option<SocketAddr>,
}

/// Exit status for usage errors and configuration problems.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("par-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    if let Some(path) = cli.check_config {
        return check_config(&path).await;
    }
    if let Some(path) = cli.config {
        let config = match config::load(&path) {
            Ok(config) => config,
            Err(problems) => return report(&problems),
        };
        if let Err(problems) = preflight(&config) {
            return report(&problems);
        }
        return serve(config).await;
    }
    // The argument group leaves `--demo` as the only other mode.
    let listen = cli.listen.unwrap_or(DEMO_LISTEN);
    let (upstream, config) = match demo::start(listen).await {
        Ok(started) => started,
        Err(e) => {
            eprintln!("par-proxy --demo: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    println!("{}", demo::banner(&config, &upstream));
    let status = serve(config).await;
    upstream.shutdown().await;
    status
}

/// Runs the proxy until SIGTERM or SIGINT.
async fn serve(config: ProxyConfig) -> ExitCode {
    server::init_logging(&config.log);
    match server::run(config, server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("par-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `run` builds besides the layer, built once to report what it
/// refuses as problems: the forwarder to `upstream` and, with `[tls]
/// cert`/`key`, the TLS server configuration.
fn preflight(config: &ProxyConfig) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    if let Err(e) = par_proxy::forward::Forwarder::from_config(config) {
        problems.push(problem_from(&e, "upstream"));
    }
    if let Some(tls) = config
        .tls
        .as_ref()
        .filter(|tls| tls.server_identity().is_some())
    {
        if let Err(e) = server::tls_server_config(tls) {
            problems.push(problem_from(&e, "tls"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `key: message` as a [`Problem`] (`fallback` when there is no key).
fn problem_from(error: &str, fallback: &str) -> Problem {
    match error.split_once(": ") {
        Some((key, message)) if !key.is_empty() && !key.contains(' ') => Problem::new(key, message),
        _ => Problem::new(fallback, error),
    }
}

/// `--check-config`: loads the file, builds the layer (connecting to Redis
/// only when it is configured), the forwarder and the TLS configuration,
/// and prints a summary.
async fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(problems) => return report(&problems),
    };
    let (layer, store) = match layer::build(&config).await {
        Ok(built) => built,
        Err(problems) => return report(&problems),
    };
    if let Err(problems) = preflight(&config) {
        return report(&problems);
    }
    println!("ok: {}", path.display());
    println!("  listen      {}", config.listen);
    println!("  public_url  {}", config.public_url());
    println!("  upstream    {}", origin(&config.upstream));
    println!(
        "  par         {} (authorize {}), lifetime {} s, profile {}, redemption {}, require {}",
        config.par.path,
        config.par.authorize_path,
        config.par.lifetime_secs,
        config.par.profile.as_str(),
        config.par.redemption.as_str(),
        config.par.require,
    );
    println!("  clients     {}", layer.clients().len());
    println!("  store       {}", store.kind());
    println!(
        "  tls         {}",
        match &config.tls {
            None => "off",
            Some(tls) => match (tls.server_identity().is_some(), tls.client_ca.is_some()) {
                (true, true) => "on, client certificates requested",
                (true, false) => "on",
                (false, true) =>
                    "off (behind a TLS terminator), client certificates from trusted_proxies",
                (false, false) => "off",
            },
        }
    );
    match &config.metrics {
        Some(m) => println!("  metrics     {}", m.listen),
        None => println!("  metrics     off"),
    }
    ExitCode::SUCCESS
}

/// The scheme and host of a URL, without credentials or path.
fn origin(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("http"),
            uri.host().unwrap_or(""),
            uri.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => String::from("(invalid)"),
    }
}

/// One line per problem on stderr; exit status 2.
fn report(problems: &[Problem]) -> ExitCode {
    for problem in problems {
        eprintln!("{problem}");
    }
    ExitCode::from(EXIT_CONFIG)
}
