//! `cargo bench -p server --bench gateway`: what the run gateway adds to a request, at fixed
//! rates, next to the same requests sent straight to the upstream in the same run.
//!
//! Two processes: the release `server` binary (its gateway listener), and this bench, which
//! holds the provider simulator (the upstream, answering at once) and the load generator. The
//! load is open-loop over 64 kept-alive connections: each connection has its own schedule at
//! rate/64, and a request's latency runs from its scheduled time (so a late start counts,
//! no coordinated omission) to the end of its body (or, streaming, to the first body byte).
//! Overhead = the gateway's percentile minus the direct percentile at the same rate.
//! Writes `target/bench/gateway.md`.

mod common;

use std::time::{Duration, Instant};

use common::{Wallet, databases, mib, ms, write_fragment};
use service::db::Backend;
use service::db::testing::TestDatabase;

const CONNECTIONS: usize = 64;
const RATES: [u32; 10] = [500, 1000, 2000, 3000, 5000, 8000, 12000, 16000, 24000, 32000];
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(3);
const OVERHEAD_LIMIT: Duration = Duration::from_millis(5);

struct Target {
    url: String,
    token: String,
}

struct Run {
    sent: usize,
    failed: usize,
    p50: Duration,
    p99: Duration,
}

/// One fixed-rate load: `rate` requests a second for WARM_UP + MEASURE over CONNECTIONS.
async fn load(target: &Target, rate: u32, stream: bool) -> Run {
    let body = if stream {
        serde_json::json!({"model": "deepseek-ai/DeepSeek-V3.2-TEE", "stream": true, "max_tokens": 64, "messages": [{"role": "user", "content": "bench"}]})
    } else {
        serde_json::json!({"model": "deepseek-ai/DeepSeek-V3.2-TEE", "max_tokens": 64, "messages": [{"role": "user", "content": "bench"}]})
    };
    let body = axum::body::Bytes::from(serde_json::to_vec(&body).unwrap());
    let period = Duration::from_secs_f64(CONNECTIONS as f64 / rate as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).tcp_nodelay(true).build().unwrap();
        let (url, token, body) = (target.url.clone(), target.token.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            // Connections start spread over one period, so the load is even.
            let first = start + period.mul_f64(c as f64 / CONNECTIONS as f64);
            let end = start + WARM_UP + MEASURE;
            let (mut latencies, mut failed) = (Vec::new(), 0usize);
            let mut at = first;
            while at < end {
                tokio::time::sleep_until(at.into()).await;
                let response =
                    client.post(&url).bearer_auth(&token).header("content-type", "application/json").body(body.clone()).send().await;
                let ok = match response {
                    Ok(mut r) if r.status().is_success() => {
                        if stream {
                            r.chunk().await.ok().flatten().is_some()
                        } else {
                            r.bytes().await.is_ok()
                        }
                    }
                    _ => false,
                };
                let took = at.elapsed();
                if at >= start + WARM_UP {
                    if ok { latencies.push(took) } else { failed += 1 }
                }
                at += period;
            }
            (latencies, failed)
        }));
    }
    let (mut all, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (l, f) = t.await.unwrap();
        all.extend(l);
        failed += f;
    }
    all.sort();
    let at = |p: f64| all.get(((all.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default();
    Run { sent: all.len() + failed, failed, p50: at(0.5), p99: at(0.99) }
}

struct Outcome {
    rows: String,
    sustained: u32,
    rss_idle_kib: u64,
    rss_peak_kib: u64,
}

async fn bench(backend: Backend) -> Outcome {
    let db = TestDatabase::create(backend).await;
    let dir = std::env::temp_dir().join(format!("oro-gw-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let sim = common::simulator_for_the_service().await;
    let validator = Wallet::new(200);
    let gateway_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut vars = common::settings_beside(&db, &dir, &sim, &[&validator]);
    vars.insert("ORO_RUN_KEY_CAP_USD".into(), "10000".into());

    // A miner with Chutes connected and one claimed run, through the service in this process.
    let (token, direct_token) = {
        let app = server::startup::Application::build(service::Settings::from_vars(&vars).unwrap()).await.unwrap();
        let services = app.services().clone();
        let miner = Wallet::new(1);
        let hotkey = service::domain::Hotkey::parse(&miner.hotkey).unwrap();
        let control = sim.control();
        control.create_chutes_user("bench", 1_000_000.0, false);
        let pkce = service::providers::chutes::pkce();
        let redirect = service::config::CLI_LOOPBACK_REDIRECT_URI;
        let code = control.issue_chutes_code("bench", &services.settings.chutes_client_id, redirect, &pkce.challenge, "chutes:invoke");
        services.connect_chutes_with_code(&hotkey, &code, &pkce.verifier, redirect).await.unwrap();
        services.submit_agent(&hotkey, "bench", "agent.py", b"def run(t):\n    return 1\n").await.unwrap();
        let caller = service::domain::Caller { hotkey: service::domain::Hotkey::parse(&validator.hotkey).unwrap(), is_validator: true };
        let work = services.claim_work(&caller, None).await.unwrap().expect("a claimed run");
        let token = work.inference_token.expect("a run credential").access_token;
        // The direct baseline calls the upstream with a Chutes token of the same miner.
        let direct = services.chutes_access_token(&hotkey).await.unwrap();
        (token, secrecy::ExposeSecret::expose_secret(&direct.access_token).to_owned())
    };

    vars.insert("ORO_GATEWAY_BIND".into(), format!("127.0.0.1:{gateway_port}"));
    vars.insert("RUST_LOG".into(), "warn".into());
    let (mut server, _) = common::start_server(vars, &dir).await;
    let gateway = Target { url: format!("http://127.0.0.1:{gateway_port}/v1/chat/completions"), token };
    let direct = Target { url: format!("{}/chat/completions", sim.chutes_llm_base()), token: direct_token };
    let pid = server.id().unwrap().to_string();
    let rss_idle_kib = common::memory(&pid).rss_kib;

    let mut rows = String::new();
    // The highest rate up to which every rate passed: a rate that passes after one that
    // failed (a spike) does not count as sustained.
    let (mut sustained, mut broken) = (0, false);
    // `ORO_BENCH_RATES=2000,5000` runs those rates only (a profile, a quick look).
    let only: Vec<u32> = std::env::var("ORO_BENCH_RATES").unwrap_or_default().split(',').filter_map(|r| r.trim().parse().ok()).collect();
    for (stream, rates) in [(false, &RATES[..]), (true, &[500, 2000][..])] {
        for &rate in rates.iter().filter(|r| only.is_empty() || only.contains(r)) {
            let d = load(&direct, rate, stream).await;
            let g = load(&gateway, rate, stream).await;
            let (o50, o99) = (g.p50.saturating_sub(d.p50), g.p99.saturating_sub(d.p99));
            if !stream {
                if g.failed == 0 && o99 <= OVERHEAD_LIMIT && !broken {
                    sustained = rate;
                } else {
                    broken = true;
                }
            }
            rows.push_str(&format!(
                "| {backend:?} | {} | {rate} | {} ({} failed) | {} | {} | {} ({} failed) | {} | {} | {} | {} |\n",
                if stream { "streaming, first byte" } else { "non-streaming" },
                d.sent,
                d.failed,
                ms(d.p50),
                ms(d.p99),
                g.sent,
                g.failed,
                ms(g.p50),
                ms(g.p99),
                ms(o50),
                ms(o99),
            ));
        }
    }
    let rss_peak_kib = common::memory(&pid).hwm_kib;
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    Outcome { rows, sustained, rss_idle_kib, rss_peak_kib }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut table = String::from(
        "| database | kind | rate (req/s) | direct: sent | direct p50 | direct p99 | gateway: sent | gateway p50 | gateway p99 | overhead p50 | overhead p99 |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut summary = String::from(
        "| database | highest rate up to which every rate had p99 overhead ≤ 5 ms and no failure | server RSS idle | server RSS peak |\n|---|---|---|---|\n",
    );
    for backend in databases() {
        let o = runtime.block_on(bench(backend));
        table.push_str(&o.rows);
        summary.push_str(&format!("| {backend:?} | {} req/s | {} | {} |\n", o.sustained, mib(o.rss_idle_kib), mib(o.rss_peak_kib)));
    }
    let out = format!(
        "## The run gateway's overhead\n\n\
         `cargo bench -p server --bench gateway`. The release `server` binary's gateway in front of the provider simulator's Chutes \
         chat completions (which answers at once), next to the same requests sent straight to the simulator, in the same run. Open-loop \
         at fixed rates over {CONNECTIONS} kept-alive connections, each with its own schedule; latency from the scheduled send time to the \
         end of the body (streaming: the first body byte); {warm} s warm-up, then {measure} s measured per row. Every gateway request is \
         the real path: bearer token, allowlist, the reservation against the run's cap (from this replica's allowance, leased from \
         the token's row 32 worst cases at a time by one conditional statement, refilled ahead of need), the miner's cached \
         Chutes token, forwarding, and the settlement (into the allowance, written back with its next statement). The load generator and the simulator share this machine's \
         {cores} cores with the server, so these are figures for all three together. LiteLLM's proxy is not in this table: `litellm[proxy]` \
         installs from PyPI here, but its virtual keys and budgets need its Prisma client, whose CLI fetches its engines from \
         binaries.prisma.sh on first use, and that host is unreachable from this machine (tried: `getaddrinfo ENOTFOUND`).\n\n{table}\n{summary}",
        warm = WARM_UP.as_secs(),
        measure = MEASURE.as_secs(),
        cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    );
    write_fragment("gateway", &out);
}
