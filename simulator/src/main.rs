//! `oro-simulator [--bind 127.0.0.1:4000]`: the provider simulator as its own process.

use std::net::SocketAddr;

use simulator::{SimulatorConfig, spawn};

const USAGE: &str = "usage: oro-simulator [--bind ADDR:PORT] [--redirect-uri URI]... [--propagation-401s N]

Serves a local stand-in for the Chutes IdP and inference API and the OpenRouter API.
Environment: ORO_CHUTES_CLIENT_ID, ORO_CHUTES_CLIENT_SECRET (defaults oro-sim-client / oro-sim-secret).";

fn parse_args() -> Result<(SocketAddr, SimulatorConfig), String> {
    let mut bind: SocketAddr = "127.0.0.1:4000".parse().expect("valid default address");
    let mut config = SimulatorConfig::default();
    let mut extra_redirects = Vec::new();
    if let Ok(id) = std::env::var("ORO_CHUTES_CLIENT_ID") {
        config.chutes_client_id = id;
    }
    if let Ok(secret) = std::env::var("ORO_CHUTES_CLIENT_SECRET") {
        config.chutes_client_secret = secret;
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| inline.clone().or_else(|| args.next()).ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--bind" => bind = value("--bind")?.parse().map_err(|e| format!("--bind: {e}"))?,
            "--redirect-uri" => extra_redirects.push(value("--redirect-uri")?),
            "--propagation-401s" => {
                config.openrouter_propagation_401s = value("--propagation-401s")?.parse().map_err(|e| format!("--propagation-401s: {e}"))?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    config.chutes_redirect_uris.extend(extra_redirects);
    Ok((bind, config))
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let (bind, config) = match parse_args() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("oro-simulator: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let sim = match spawn(bind, config).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("oro-simulator: cannot bind {bind}: {e}");
            std::process::exit(1);
        }
    };
    println!("oro-simulator listening on {}", sim.root_url());
    println!("  ORO_CHUTES_API_BASE={}", sim.chutes_api_base());
    println!("  ORO_CHUTES_LLM_BASE={}", sim.chutes_llm_base());
    println!("  ORO_OPENROUTER_API_BASE={}", sim.openrouter_api_base());
    println!("  developer page: {}/_sim/", sim.root_url());
    println!("  demo OpenRouter management key: {}", simulator::DEMO_OPENROUTER_MANAGEMENT_KEY);
    println!("  demo Chutes user: {}", simulator::DEMO_CHUTES_USERNAME);
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
}
