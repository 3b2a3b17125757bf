//! `cargo bench -p server --bench flood`: a validator's claim latency, quiet and while another
//! address floods the service with garbage signed requests (issue 16, item 5).
//!
//! Three processes, as in production: the release `server` binary on its own; this process,
//! which holds the provider simulator (OpenRouter, answering at once) and the validator's
//! client; and the flooder, this same executable started again with `ORO_BENCH_FLOOD_URL`,
//! which sends 2,000 signed requests with a well-formed hotkey and a wrong signature from one
//! address (32 in flight) and exits. The server sits behind a trusted proxy
//! (`ORO_TRUST_FORWARDED_FOR=1`), so the two clients are told apart by `X-Forwarded-For`.
//!
//! Rounds alternate: claims with nothing else running, then claims while one flood runs. Each
//! flood comes from a fresh address, so every flood meets the per-IP limit on signed requests
//! with its whole allowance unspent (the service's default, 1,200 a minute): the first 1,200
//! garbage requests cost a signature check each, the rest a counter. Claims are sequential,
//! one at a time, as ORO's validator claims. Writes `target/bench/flood.md`.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Figures, Wallet, figures, ms, write_fragment};
use service::db::Backend;
use service::db::testing::TestDatabase;
use tokio::io::{AsyncBufReadExt, BufReader};

const FLOOD_REQUESTS: usize = 2000;
const ROUNDS: usize = 4;
/// A flood ends after this even if it has not sent all its requests (refusals held back by
/// the server slow it down: that is the defence at work).
const FLOOD_LONGEST: Duration = Duration::from_secs(5);
const QUIET_CLAIMS_PER_ROUND: usize = 15;
/// At most this many claims per flood, so the queue lasts.
const FLOODED_CLAIMS_PER_ROUND: usize = 40;
/// Between two claims, quiet or not, as a validator does other work between them.
const PAUSE: Duration = Duration::from_millis(20);
/// Enough queued runs for every claim of every round (a flood lasts well under a second).
const RUNS: usize = 600;
const VALIDATORS: usize = RUNS.div_ceil(service::runs::MAX_RUNS_PER_VALIDATOR as usize - 1);
const MINERS: usize = 10;
const VALIDATOR_ADDRESS: &str = "198.51.100.7";

/// What one flood process saw.
#[derive(Default, Clone, Copy)]
struct Flood {
    unauthorized: usize,
    limited: usize,
    other: usize,
    secs: f64,
}

/// The flooder: `FLOOD_REQUESTS` garbage signed requests to `url` from the address in
/// `ORO_BENCH_FLOOD_ADDRESS`. Prints `ready` before the first request, then one line of
/// counts: `401s 429s others seconds`.
fn flood_process(url: String) {
    let address = std::env::var("ORO_BENCH_FLOOD_ADDRESS").expect("ORO_BENCH_FLOOD_ADDRESS");
    let in_flight: usize = std::env::var("ORO_BENCH_FLOOD_IN_FLIGHT").expect("ORO_BENCH_FLOOD_IN_FLIGHT").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(in_flight).build().unwrap();
        let garbage = Arc::new(Wallet::new(250));
        let next = Arc::new(AtomicUsize::new(0));
        println!("ready");
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..in_flight {
            let (client, url, address, garbage, next) = (client.clone(), url.clone(), address.clone(), garbage.clone(), next.clone());
            workers.spawn(async move {
                let mut seen = Flood::default();
                while started.elapsed() < FLOOD_LONGEST && next.fetch_add(1, Ordering::Relaxed) < FLOOD_REQUESTS {
                    let s = garbage.signed(service::clock::system_now());
                    let status = client
                        .get(&url)
                        .header("x-forwarded-for", &address)
                        .header("X-Hotkey", s.hotkey)
                        .header("X-Timestamp", s.timestamp)
                        .header("X-Nonce", s.nonce)
                        .header("X-Signature", format!("0x{}", "ab".repeat(64)))
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    match status {
                        401 => seen.unauthorized += 1,
                        429 => seen.limited += 1,
                        _ => seen.other += 1,
                    }
                }
                seen
            });
        }
        let mut total = Flood::default();
        while let Some(seen) = workers.join_next().await {
            let seen = seen.unwrap();
            total.unauthorized += seen.unauthorized;
            total.limited += seen.limited;
            total.other += seen.other;
        }
        println!("{} {} {} {}", total.unauthorized, total.limited, total.other, started.elapsed().as_secs_f64());
    });
}

struct Outcome {
    quiet: Figures,
    flooded: Figures,
    floods: Vec<Flood>,
}

async fn bench(backend: Backend, hold_ms: u64, in_flight: usize) -> Outcome {
    let db = TestDatabase::create(backend).await;
    let dir = std::env::temp_dir().join(format!("oro-flood-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let sim = common::simulator_for_the_service().await;
    let validators: Vec<Wallet> = (0..VALIDATORS).map(|i| Wallet::new(100 + i as u8)).collect();
    let mut vars = common::settings_beside(&db, &dir, &sim, &validators.iter().collect::<Vec<_>>());
    vars.insert("ORO_TRUST_FORWARDED_FOR".into(), "1".into());
    vars.insert("ORO_REFUSAL_HOLD_MS".into(), hold_ms.to_string());

    // Seed through the service itself, in this process, before the binary starts: miners with
    // OpenRouter connected and RUNS queued runs.
    {
        let app = server::startup::Application::build(service::Settings::from_vars(&vars).unwrap()).await.unwrap();
        let services = app.services().clone();
        for i in 0..MINERS {
            let miner = Wallet::new(i as u8 + 1);
            let hotkey = service::domain::Hotkey::parse(&miner.hotkey).unwrap();
            let key = sim.control().create_openrouter_account(1_000.0);
            services.connect_openrouter(&hotkey, &secrecy::SecretString::from(key)).await.unwrap();
        }
        for i in 0..RUNS {
            let hotkey = service::domain::Hotkey::parse(&Wallet::new((i % MINERS) as u8 + 1).hotkey).unwrap();
            services.submit_agent(&hotkey, &format!("agent{i}"), "agent.py", b"def run(t):\n    return 1\n").await.unwrap();
        }
    }

    let (mut server, base) = common::start_server(vars, &dir).await;

    let client = reqwest::Client::new();
    let mut turn = 0usize;
    let mut claim = async || {
        let v = &validators[turn % validators.len()];
        turn += 1;
        let started = Instant::now();
        let response = v
            .sign(client.post(format!("{base}/v1/validator/work/claim")).header("x-forwarded-for", VALIDATOR_ADDRESS))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        started.elapsed()
    };
    // Warm-up: the first claims open the connection pools on both sides.
    for _ in 0..5 {
        claim().await;
    }

    let (mut quiet, mut flooded, mut floods) = (Vec::new(), Vec::new(), Vec::new());
    let (mut quiet_wall, mut flooded_wall) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..QUIET_CLAIMS_PER_ROUND {
            quiet.push(claim().await);
            tokio::time::sleep(PAUSE).await;
        }
        quiet_wall += started.elapsed();

        let mut flooder = tokio::process::Command::new(std::env::current_exe().unwrap())
            .env_clear()
            .env("ORO_BENCH_FLOOD_URL", format!("{base}/v1/miner/inference-auth"))
            .env("ORO_BENCH_FLOOD_ADDRESS", format!("203.0.113.{}", round + 1))
            .env("ORO_BENCH_FLOOD_IN_FLIGHT", in_flight.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the flooder");
        let mut lines = BufReader::new(flooder.stdout.take().unwrap()).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ready"));
        // Claims while the flood lasts; one that starts after the flood's last answer is not
        // counted.
        let result = tokio::spawn(async move { lines.next_line().await.unwrap() });
        let started = Instant::now();
        for _ in 0..FLOODED_CLAIMS_PER_ROUND {
            if result.is_finished() {
                break;
            }
            flooded.push(claim().await);
            tokio::time::sleep(PAUSE).await;
        }
        flooded_wall += started.elapsed();
        let counts = result.await.unwrap().expect("the flooder's counts");
        let f: Vec<f64> = counts.split(' ').map(|x| x.parse().unwrap()).collect();
        floods.push(Flood { unauthorized: f[0] as usize, limited: f[1] as usize, other: f[2] as usize, secs: f[3] });
        assert!(flooder.wait().await.unwrap().success());
    }
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    Outcome { quiet: figures(quiet, quiet_wall), flooded: figures(flooded, flooded_wall), floods }
}

fn main() {
    if let Ok(url) = std::env::var("ORO_BENCH_FLOOD_URL") {
        return flood_process(url);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut table = String::from(
        "| database | refusals held | flood in flight | quiet claims | quiet p50 | quiet p99 | claims during floods | flooded p50 | flooded p99 | p50 flooded/quiet | p99 flooded/quiet | garbage answered 401 / 429 / other | flood rate |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for (hold_ms, in_flight) in [(1000, 32), (1000, FLOOD_REQUESTS), (0, 32)] {
            let o = runtime.block_on(bench(backend, hold_ms, in_flight));
            let (q, f) = (&o.quiet, &o.flooded);
            let sum = |g: fn(&Flood) -> usize| o.floods.iter().map(g).sum::<usize>();
            let secs: f64 = o.floods.iter().map(|f| f.secs).sum();
            let sent = sum(|f| f.unauthorized + f.limited + f.other);
            table.push_str(&format!(
            "| {backend:?} | {} | {in_flight} | {} | {} | {} | {} | {} | {} | {:.2}x | {:.2}x | {} / {} / {} | {:.0} req/s over {:.2} s |\n",
            if hold_ms == 0 { "no (`ORO_REFUSAL_HOLD_MS=0`)".to_owned() } else { format!("{hold_ms} ms (default)") },
            q.count,
            ms(q.p50),
            ms(q.p99),
            f.count,
            ms(f.p50),
            ms(f.p99),
            f.p50.as_secs_f64() / q.p50.as_secs_f64(),
            f.p99.as_secs_f64() / q.p99.as_secs_f64(),
            sum(|f| f.unauthorized),
            sum(|f| f.limited),
            sum(|f| f.other),
            sent as f64 / secs,
            secs,
        ));
        }
    }
    let out = format!(
        "## A validator's claims under a flood of garbage signed requests\n\n\
         `cargo bench -p server --bench flood`. Three processes on the same {cores} cores: the release `server` binary; the bench process \
         (the OpenRouter simulator, answering at once, and the validator's client); and a flooder process. {ROUNDS} rounds, each: \
         {QUIET_CLAIMS_PER_ROUND} claims with nothing else running (quiet), then up to {FLOODED_CLAIMS_PER_ROUND} claims while one flood runs; {pause} ms between claims. A flood is \
         {FLOOD_REQUESTS} `GET /v1/miner/inference-auth` with a real hotkey, a fresh timestamp and nonce, and a wrong signature, 32 in flight \
         (or all {FLOOD_REQUESTS} at once, each on its own connection), from one address that is new to the server, ending early after {longest} s. The defaults apply: once an address has failed \
         authentication 30 times in a minute, its signed requests are refused before any signature check, and each refusal is held back a \
         second (`ORO_REFUSAL_HOLD_MS`), so the flooder's connections wait; the rows without the hold show what the limit alone does. \
         Claims are one at a \
         time, as ORO's validator claims, each the real `POST /v1/validator/work/claim` with OpenRouter key minting; latency from sending the \
         request to the end of the body. The server trusts `X-Forwarded-For` (as behind nginx), which tells the two clients apart. \
         Target: the claims' latency under the flood within 2x of quiet.\n\n{table}",
        longest = FLOOD_LONGEST.as_secs(),
        pause = PAUSE.as_millis(),
        cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    );
    write_fragment("flood", &out);
}
