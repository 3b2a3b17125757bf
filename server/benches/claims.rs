//! `cargo bench -p server --bench claims`: claims per second and p50/p99 latency of
//! `POST /v1/validator/work/claim` with OpenRouter key minting against the in-process
//! simulator (which answers instantly), on SQLite and on PostgreSQL, next to a baseline run
//! with the same concurrency on the same database: one bare transaction per claim that
//! selects a queued run and writes the rows a claim writes (the spent nonce, the `run_keys`
//! row, the run's new state). Also samples this process's resident memory around each load
//! (the server runs in-process here). Writes `target/bench/claims.md`.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::{Figures, Memory, Wallet, databases, figures, memory, mib, ms, reset_peak, write_fragment};
use server::startup::Application;
use service::db::Backend;
use service::db::testing::TestDatabase;

const RUNS: usize = 1000;
/// Claims in flight at once.
const CONCURRENCY: usize = 16;
/// The workers take validators in turn from one list, long enough that nobody reaches the
/// per-validator cap before the queue is empty (the last claims, answered 204, included), so
/// the loop measures claims only, with no `complete` calls in between.
const VALIDATORS: usize = (RUNS + CONCURRENCY).div_ceil(service::runs::MAX_RUNS_PER_VALIDATOR as usize - 1);
const MINERS: usize = 20;
/// Rounds per database (the median one reported).
const ROUNDS: usize = 3;

struct Outcome {
    claims: Figures,
    baseline: Figures,
    /// The bare transaction, then the claim's three OpenRouter calls (diagnostic).
    with_calls: Figures,
    seeded: Memory,
    after_claims: Memory,
    after_baseline: Memory,
    peaks_reset: bool,
}

async fn bench(backend: Backend) -> Outcome {
    let db = TestDatabase::create(backend).await;
    let dir = std::env::temp_dir().join(format!("oro-bench-{}", uuid::Uuid::new_v4().simple()));
    let validators: Vec<Wallet> = (0..VALIDATORS).map(|i| Wallet::new(100 + i as u8)).collect();
    let vars: HashMap<String, String> = HashMap::from([
        ("ORO_BIND".into(), "127.0.0.1:0".into()),
        ("ORO_GATEWAY_BIND".into(), "127.0.0.1:0".into()),
        ("DATABASE_URL".into(), secrecy::ExposeSecret::expose_secret(&db.url).to_owned()),
        ("ORO_MASTER_KEY_FILE".into(), dir.join("master.key").display().to_string()),
        ("ORO_SIMULATE_PROVIDERS".into(), "1".into()),
        ("ORO_SUBMIT_COOLDOWN_SECS".into(), "0".into()),
        ("ORO_VALIDATOR_HOTKEYS".into(), validators.iter().map(|v| v.hotkey.clone()).collect::<Vec<_>>().join(",")),
    ]);
    let app = Application::build(service::Settings::from_vars(&vars).unwrap()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let services = app.services().clone();
    let sim = app.simulator().unwrap().control();
    // Stopped at the end, so that the next round's server does not share the cores with it.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    // Miners with OpenRouter connected, and RUNS queued runs.
    let miners: Vec<Wallet> = (0..MINERS).map(|i| Wallet::new(i as u8 + 1)).collect();
    let mut management_keys = HashMap::new();
    for m in &miners {
        let key = secrecy::SecretString::from(sim.create_openrouter_account(1_000.0));
        let hotkey = service::domain::Hotkey::parse(&m.hotkey).unwrap();
        services.connect_openrouter(&hotkey, &key).await.unwrap();
        management_keys.insert(m.hotkey.clone(), key);
    }
    for i in 0..RUNS {
        let m = &miners[i % miners.len()];
        let hotkey = service::domain::Hotkey::parse(&m.hotkey).unwrap();
        services.submit_agent(&hotkey, &format!("agent{i}"), "agent.py", b"def run(t):\n    return 1\n").await.unwrap();
    }

    // Claims until the queue is empty (204), CONCURRENCY at a time.
    let seeded = memory("self");
    profile_claims(true);
    let peaks_reset = reset_peak("self");
    let started = Instant::now();
    let mut tasks = Vec::new();
    let validators = std::sync::Arc::new(validators);
    let turn = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..CONCURRENCY {
        let (validators, turn) = (validators.clone(), turn.clone());
        let client = client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let v = &validators[turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % validators.len()];
                let t = Instant::now();
                let response = v.sign(client.post(format!("{base}/v1/validator/work/claim"))).send().await.unwrap();
                let status = response.status().as_u16();
                if status == 204 {
                    break;
                }
                let body = response.text().await.unwrap();
                assert_eq!(status, 200, "{body}");
                latencies.push(t.elapsed());
                let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert!(body["inference_token"]["access_token"].is_string(), "{body}");
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let claims = figures(latencies, started.elapsed());
    profile_claims(false);
    assert_eq!(claims.count, RUNS);
    let after_claims = memory("self");

    // Baseline: per claim, one transaction with the same reads and writes and nothing else
    // (no HTTP, signature, vault, provider calls or key preflight).
    let baseline = bare_transactions(&services, backend, &miners, 0, None).await;
    let after_baseline = memory("self");
    // Diagnostic: the same, then the three calls a claim makes to OpenRouter, by the
    // service's own client to the same simulator: what a claim costs that no database
    // design can save.
    let with_calls = bare_transactions(&services, backend, &miners, RUNS, Some(std::sync::Arc::new(management_keys))).await;
    let _ = stop.send(());
    let _ = serving.await;
    let _ = std::fs::remove_dir_all(dir);
    Outcome { claims, baseline, with_calls, seeded, after_claims, after_baseline, peaks_reset }
}

/// The baseline: RUNS runs queued (ids `bench-N`, from `first`) and taken by bare
/// transactions, CONCURRENCY at a time. With `calls` (each miner's management key), each transaction is
/// followed by a claim's three OpenRouter calls: credits, create key, the new key's preflight.
async fn bare_transactions(
    services: &service::Services,
    backend: Backend,
    miners: &[Wallet],
    first: usize,
    calls: Option<std::sync::Arc<HashMap<String, secrecy::SecretString>>>,
) -> Figures {
    for i in first..first + RUNS {
        sqlx::query("INSERT INTO eval_runs (id, seq, agent_version_id, hotkey, suite_id, status, attempts, not_before, created_at, updated_at) VALUES ($1, $2, 'v', $3, 1, 'queued', 0, 0, 0, 0)")
            .bind(format!("bench-{i}"))
            .bind(i as i64)
            .bind(&miners[i % miners.len()].hotkey)
            .execute(services.db.pool())
            .await
            .unwrap();
    }
    // The peak covers the transactions, not the seeding.
    reset_peak("self");
    let pick = match backend {
        Backend::Postgres => {
            "SELECT id, hotkey FROM eval_runs WHERE status = 'queued' AND not_before <= $1 ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED"
        }
        Backend::Sqlite => "SELECT id, hotkey FROM eval_runs WHERE status = 'queued' AND not_before <= $1 ORDER BY seq LIMIT 1",
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONCURRENCY {
        let (pool, openrouter, calls) = (services.db.pool().clone(), services.openrouter.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            let validator = format!("validator-{c}");
            let mut latencies = Vec::new();
            loop {
                let t = Instant::now();
                let now = service::clock::system_now();
                let mut tx = pool.begin().await.unwrap();
                let row: Option<(String, String)> = sqlx::query_as(pick).bind(now).fetch_optional(&mut *tx).await.unwrap();
                let Some((run_id, miner)) = row else { break };
                let key_hash = uuid::Uuid::new_v4().simple().to_string();
                sqlx::query("INSERT INTO used_nonces (hotkey, nonce, expires_at) VALUES ($1, $2, $3) ON CONFLICT (hotkey, nonce) DO NOTHING")
                    .bind(&validator)
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(now + 301)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query("INSERT INTO run_keys (key_hash, hotkey, eval_run_id, minted_by, cap_usd, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(&key_hash)
                    .bind(&miner)
                    .bind(&run_id)
                    .bind("000000000000000000000000")
                    .bind(1.0_f64)
                    .bind(now + 3600)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(
                    "UPDATE eval_runs SET status = 'running', validator_hotkey = $1, claimed_at = $2, lease_expires_at = $2 + 300, provider = 'openrouter',
                        cap_usd = 1.0, key_hash = $3, token_expires_at = $2 + 3600, updated_at = $2 WHERE id = $4 AND status = 'queued'",
                )
                .bind(&validator)
                .bind(now)
                .bind(&key_hash)
                .bind(&run_id)
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
                if let Some(keys) = &calls {
                    let key = &keys[&miner];
                    let credits = openrouter.credits(key).await.unwrap();
                    assert!(credits.total_credits > credits.total_usage);
                    let expires = service::clock::rfc3339_utc_z(now + 3600);
                    let minted = openrouter.create_key(key, &format!("oro-run-{run_id}"), 1.0, &expires).await.unwrap();
                    openrouter.key_info(&minted.key).await.unwrap();
                }
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let figures = figures(latencies, started.elapsed());
    assert_eq!(figures.count, RUNS);
    figures
}

/// With `ORO_BENCH_PERF_CTL=<fifo>` (`perf record --control fifo:<fifo> --delay=-1 ...`), a
/// profile that covers the claims alone: no seeding, no baseline.
fn profile_claims(on: bool) {
    if let Ok(fifo) = std::env::var("ORO_BENCH_PERF_CTL") {
        std::fs::write(fifo, if on { "enable\n" } else { "disable\n" }).expect("perf's control fifo takes the command");
    }
}

fn main() {
    // `ORO_BENCH_LOG=warn` (any filter) shows the service's log, for a claim that failed.
    if let Ok(filter) = std::env::var("ORO_BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut speed = String::from(
        "| database | claims/s | p50 | p99 | baseline tx/s | baseline p50 | baseline p99 | throughput claim/baseline | p99 claim/baseline |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut rss = String::from(
        "| database | RSS before claims | RSS after claims | peak during claims | RSS after baseline | peak during baseline |\n|---|---|---|---|---|---|\n",
    );
    let mut diagnostic = String::from(
        "| database | claims/s | bare transaction + the three OpenRouter calls, per s | p50 | p99 | throughput claim/this |\n|---|---|---|---|---|---|\n",
    );
    let mut peaks_reset = true;
    let mut spread = String::new();
    for backend in databases() {
        // A round is short (about a second of claims), and one fsync-heavy stretch of the
        // disk moves it by half: ROUNDS rounds, each on a fresh database, and the round with
        // the median ratio reported, with the range of all.
        let mut rounds: Vec<Outcome> = (0..ROUNDS).map(|_| runtime.block_on(bench(backend))).collect();
        let ratio = |o: &Outcome| o.claims.per_second / o.baseline.per_second;
        rounds.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
        let with_calls = |o: &Outcome| o.claims.per_second / o.with_calls.per_second;
        let ratios: Vec<String> = rounds
            .iter()
            .map(|o| {
                format!(
                    "{:.3} ({:.0} against {:.0}; {:.3} against {:.0} with the calls)",
                    ratio(o),
                    o.claims.per_second,
                    o.baseline.per_second,
                    with_calls(o),
                    o.with_calls.per_second
                )
            })
            .collect();
        spread.push_str(&format!("- {backend:?}: {}\n", ratios.join(", ")));
        let o = rounds.swap_remove(ROUNDS / 2);
        peaks_reset &= o.peaks_reset;
        let (c, b) = (&o.claims, &o.baseline);
        speed.push_str(&format!(
            "| {backend:?} | {:.0} | {} | {} | {:.0} | {} | {} | {:.3} | {:.1}x |\n",
            c.per_second,
            ms(c.p50),
            ms(c.p99),
            b.per_second,
            ms(b.p50),
            ms(b.p99),
            c.per_second / b.per_second,
            c.p99.as_secs_f64() / b.p99.as_secs_f64(),
        ));
        let w = &o.with_calls;
        diagnostic.push_str(&format!(
            "| {backend:?} | {:.0} | {:.0} | {} | {} | {:.3} |\n",
            c.per_second,
            w.per_second,
            ms(w.p50),
            ms(w.p99),
            c.per_second / w.per_second
        ));
        rss.push_str(&format!(
            "| {backend:?} | {} | {} | {} | {} | {} |\n",
            mib(o.seeded.rss_kib),
            mib(o.after_claims.rss_kib),
            mib(o.after_claims.hwm_kib),
            mib(o.after_baseline.rss_kib),
            mib(o.after_baseline.hwm_kib),
        ));
    }
    let peak_note = if peaks_reset {
        "the peak is `VmHWM`, reset through `/proc/self/clear_refs` just before each load"
    } else {
        "the kernel refused to reset `VmHWM`, so each peak is the process's peak since it started"
    };
    let out = format!(
        "## claim_work with key minting\n\n\
         `cargo bench -p server --bench claims`. {RUNS} queued runs from {MINERS} miners with OpenRouter connected; {CONCURRENCY} claims in flight \
         ({CONCURRENCY} workers taking {VALIDATORS} validators in turn, so that none reaches the cap of {cap} runs) until the queue is empty. \
         Each claim is the real `POST /v1/validator/work/claim` over loopback HTTP (reqwest client in the same process): signature check and nonce \
         write, reservation, vault, budget lock, and three calls to the in-process OpenRouter simulator (credits, create key, key preflight), which \
         answers at once. Latency runs from sending the request to the end of the response body. Server runtime: {workers} tokio workers.\n\n\
         Baseline, with the same concurrency on the same database: one transaction per claim that selects the oldest queued run \
         (`FOR UPDATE SKIP LOCKED` on PostgreSQL), inserts the `used_nonces` row and the `run_keys` row, and updates the run with every column \
         the claim sets; SQLite runs it on the service's own pool (one connection, so transactions queue in-process, as claims do).\n\n\
         {ROUNDS} rounds, each on a fresh database with a fresh server: the table gives the round with the median ratio; the ratios of all \
         rounds, lowest first, with claims/s against baseline tx/s, then against the diagnostic below:\n\n{spread}\n\
         {speed}\n\
         Diagnostic, same round: the bare transaction followed by the claim's three OpenRouter calls (credits, create key, the new key's \
         preflight), made by the service's own OpenRouter client to the same simulator, outside the transaction: what a claim costs that no \
         database design saves (no HTTP route, signature, vault or audit line).\n\n{diagnostic}\n\
         Resident memory of the bench process, which holds the server, the simulator and the client ({peak_note}):\n\n{rss}",
        cap = service::runs::MAX_RUNS_PER_VALIDATOR,
    );
    write_fragment("claims", &out);
}
