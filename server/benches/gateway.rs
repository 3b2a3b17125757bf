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
        serde_json::json!({"model": MODEL, "stream": true, "max_tokens": 64, "messages": [{"role": "user", "content": "bench"}]})
    } else {
        serde_json::json!({"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "bench"}]})
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
    litellm: Option<LiteLlm>,
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
            let (cells, within) = compared(stream, rate, &d, &g);
            if !stream {
                if within && !broken {
                    sustained = rate;
                } else {
                    broken = true;
                }
            }
            rows.push_str(&format!("| {backend:?} {cells}"));
        }
    }
    let rss_peak_kib = common::memory(&pid).hwm_kib;
    let _ = server.kill().await;
    // LiteLLM does not depend on our database: once, in the first engine's round.
    let litellm = match std::env::var("ORO_BENCH_LITELLM") {
        Ok(bin) if backend == databases()[0] => Some(litellm(&bin, &dir, &sim.chutes_llm_base(), &direct).await),
        _ => None,
    };
    let _ = std::fs::remove_dir_all(&dir);
    Outcome { rows, sustained, rss_idle_kib, rss_peak_kib, litellm }
}

/// LiteLLM's proxy in front of the same upstream, at the same rates until the first that does
/// not pass (past it, a rate only takes longer to fail), measured against `direct` as the
/// gateway is. Without a database: its virtual keys and budgets need Prisma, whose engines
/// cannot be fetched here, so it runs with a master key only, which is less work per request
/// than a virtual key with a budget (a lookup and spend tracking): its rate here is an upper
/// bound on what it sustains with them.
async fn litellm(bin: &str, dir: &std::path::Path, upstream: &str, direct: &Target) -> LiteLlm {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      model: openai/{MODEL}\n      api_base: {upstream}\n      api_key: {key}\n\
             general_settings:\n  master_key: {LITELLM_KEY}\nlitellm_settings:\n  telemetry: false\n  set_verbose: false\n",
            key = direct.token,
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("litellm.log")).unwrap();
    let mut proxy = tokio::process::Command::new(bin)
        // As many workers as cores, as our server has (its default is one).
        .args([
            "--config",
            &config.display().to_string(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--num_workers",
            &cores().to_string(),
        ])
        .env("LITELLM_LOG", "ERROR")
        .env("LITELLM_TELEMETRY", "False")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        // Its own process group: its workers are processes of their own, which a kill of the
        // CLI's process would leave running (a gigabyte, idle).
        .process_group(0)
        .spawn()
        .expect("start LiteLLM's proxy (ORO_BENCH_LITELLM names its `litellm` executable)");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !matches!(reqwest::get(format!("{base}/health/liveliness")).await, Ok(r) if r.status() == 200) {
        assert!(proxy.try_wait().unwrap().is_none(), "LiteLLM's proxy exited; see {}", dir.join("litellm.log").display());
        assert!(Instant::now() < deadline, "LiteLLM's proxy did not start within 2 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let target = Target { url: format!("{base}/v1/chat/completions"), token: LITELLM_KEY.into() };
    let pid = proxy.id().unwrap().to_string();
    let rss_idle_kib = family_rss_kib(&pid);
    let (mut rows, mut sustained, mut keeps_pace) = (String::new(), 0, 0);
    let mut row = |stream: bool, rate: u32, d: &Run, l: &Run| {
        let (cells, within) = compared(stream, rate, d, l);
        rows.push_str(&cells);
        (within, l.failed == 0 && l.p99 <= KEEPS_PACE)
    };
    let mut within = true;
    for &rate in &LITELLM_RATES {
        let d = load(direct, rate, false).await;
        let l = load(&target, rate, false).await;
        let (passed, kept) = row(false, rate, &d, &l);
        within &= passed;
        if within {
            sustained = rate;
        }
        if !kept {
            // Past this rate its queue only grows: each further row takes longer to fail.
            break;
        }
        keeps_pace = rate;
    }
    let rate = keeps_pace.max(LITELLM_RATES[0]);
    let d = load(direct, rate, true).await;
    let l = load(&target, rate, true).await;
    row(true, rate, &d, &l);
    let rss_after_kib = family_rss_kib(&pid);
    let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
    let _ = proxy.kill().await;
    LiteLlm { rows, sustained, keeps_pace, rss_idle_kib, rss_after_kib }
}

/// A table row's cells from the kind on (`| kind | rate | ... |` and its newline), and whether
/// the proxied load passed: no failure, and p99 overhead within OVERHEAD_LIMIT.
fn compared(stream: bool, rate: u32, direct: &Run, proxied: &Run) -> (String, bool) {
    let (o50, o99) = (proxied.p50.saturating_sub(direct.p50), proxied.p99.saturating_sub(direct.p99));
    let cells = format!(
        "| {} | {rate} | {} ({} failed) | {} | {} | {} ({} failed) | {} | {} | {} | {} |\n",
        if stream { "streaming, first byte" } else { "non-streaming" },
        direct.sent,
        direct.failed,
        ms(direct.p50),
        ms(direct.p99),
        proxied.sent,
        proxied.failed,
        ms(proxied.p50),
        ms(proxied.p99),
        ms(o50),
        ms(o99),
    );
    (cells, proxied.failed == 0 && o99 <= OVERHEAD_LIMIT)
}

/// The resident memory of a process and its children (LiteLLM's workers are processes).
fn family_rss_kib(pid: &str) -> u64 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    common::memory(pid).rss_kib + children.split_whitespace().map(family_rss_kib).sum::<u64>()
}

const MODEL: &str = "deepseek-ai/DeepSeek-V3.2-TEE";
/// LiteLLM's ladder starts lower than ours: a Python proxy on these 2 cores tops out far below 500 req/s.
const LITELLM_RATES: [u32; 9] = [25, 50, 100, 200, 300, 500, 1000, 2000, 5000];
/// A p99 latency past which a proxy is not keeping up with the rate (its queue grows).
const KEEPS_PACE: Duration = Duration::from_secs(1);
const LITELLM_KEY: &str = "sk-bench-litellm-master";

struct LiteLlm {
    rows: String,
    /// The highest rate up to which every rate had p99 overhead within OVERHEAD_LIMIT.
    sustained: u32,
    /// The highest rate it answered with every request's latency within KEEPS_PACE: it kept
    /// up, if slowly.
    keeps_pace: u32,
    rss_idle_kib: u64,
    rss_after_kib: u64,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut table = String::from(
        "| database | kind | rate (req/s) | direct: sent | direct p50 | direct p99 | gateway: sent | gateway p50 | gateway p99 | overhead p50 | overhead p99 |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut summary = String::from(
        "| database | highest rate up to which every rate had p99 overhead ≤ 5 ms and no failure | server RSS idle | server RSS peak |\n|---|---|---|---|\n",
    );
    let (mut ours, mut theirs) = (Vec::new(), None);
    for backend in databases() {
        let o = runtime.block_on(bench(backend));
        table.push_str(&o.rows);
        summary.push_str(&format!("| {backend:?} | {} req/s | {} | {} |\n", o.sustained, mib(o.rss_idle_kib), mib(o.rss_peak_kib)));
        ours.push((backend, o.sustained));
        theirs = theirs.or(o.litellm);
    }
    let litellm = match theirs {
        None => {
            "LiteLLM's proxy was not run (`ORO_BENCH_LITELLM=<its litellm executable>` runs it; `bench/run.sh` installs it).\n".to_owned()
        }
        Some(l) => {
            let over = |theirs: u32| -> String {
                ours.iter()
                    .map(|(backend, rate)| match theirs {
                        0 => format!("{backend:?} {rate} req/s against none"),
                        theirs => format!("{backend:?} {:.0}x", *rate as f64 / theirs as f64),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let ratios = format!(
                "over the rate it sustains by the same rule (p99 overhead ≤ 5 ms), {}; over the highest rate it keeps pace with \
                 (p99 latency ≤ {} s), {}",
                over(l.sustained),
                KEEPS_PACE.as_secs(),
                over(l.keeps_pace)
            );
            format!(
                "### LiteLLM's proxy, same upstream, same load\n\n\
                 `litellm[proxy]` from PyPI ({version}), started by its CLI with {workers} workers (one per core, as our server has; its default is one), in front of the same simulator with the same \
                 Chutes token, measured against the same direct calls. It runs without a database: its virtual keys and budgets need \
                 its Prisma client, whose CLI fetches its engines from binaries.prisma.sh on first use, and that host is unreachable \
                 from this machine. With a master key only, it does less per request than with a virtual key and a budget (no key \
                 lookup, no spend tracking), so its rate here is an upper bound for the configuration the comparison asks for. \
                 Rates stop at the first it does not keep pace with. RSS: the process the CLI started and its workers, \
                 idle after start-up and after the last row.\n\n\
                 | kind | rate (req/s) | direct: sent | direct p50 | direct p99 | LiteLLM: sent | LiteLLM p50 | LiteLLM p99 | overhead p50 | overhead p99 |\n\
                 |---|---|---|---|---|---|---|---|---|---|\n{rows}\n\
                 | | highest rate up to which every rate had p99 overhead ≤ 5 ms and no failure | highest rate with p99 latency ≤ {pace} s | RSS idle | RSS after the load |\n\
                 |---|---|---|---|---|\n\
                 | LiteLLM's proxy | {sustained} req/s | {keeps} req/s | {idle} | {after} |\n\n\
                 Our gateway's sustained rate (the table above) {ratios}.\n",
                workers = cores(),
                version = std::env::var("ORO_BENCH_LITELLM_VERSION").unwrap_or_else(|_| "version not given".into()),
                rows = l.rows,
                sustained = l.sustained,
                keeps = l.keeps_pace,
                pace = KEEPS_PACE.as_secs(),
                idle = mib(l.rss_idle_kib),
                after = mib(l.rss_after_kib),
                ratios = ratios,
            )
        }
    };
    let out = format!(
        "## The run gateway's overhead\n\n\
         `cargo bench -p server --bench gateway`. The release `server` binary's gateway in front of the provider simulator's Chutes \
         chat completions (which answers at once), next to the same requests sent straight to the simulator, in the same run. Open-loop \
         at fixed rates over {CONNECTIONS} kept-alive connections, each with its own schedule; latency from the scheduled send time to the \
         end of the body (streaming: the first body byte); {warm} s warm-up, then {measure} s measured per row. Every gateway request is \
         the real path: bearer token, allowlist, the reservation against the run's cap (from this replica's allowance, leased from \
         the token's row 32 worst cases at a time by one conditional statement, refilled ahead of need), the miner's cached \
         Chutes token, forwarding, and the settlement (into the allowance, written back with its next statement). The load generator and the simulator share this machine's \
         {cores} cores with the server, so these are figures for all three together.\n\n{table}\n{summary}\n{litellm}",
        warm = WARM_UP.as_secs(),
        measure = MEASURE.as_secs(),
        cores = cores(),
    );
    write_fragment("gateway", &out);
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
