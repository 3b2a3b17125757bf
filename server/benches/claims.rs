//! `cargo bench -p server --bench claims`: claims per second and p50/p99 latency of
//! `POST /v1/validator/work/claim` with OpenRouter key minting against the in-process
//! simulator (which answers instantly), on SQLite and on PostgreSQL, next to a baseline: a
//! bare reserve-one-row UPDATE ... RETURNING on the same database, the floor under a claim.
//! Writes a Markdown table to `target/bench/claims.md` (and prints it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use schnorrkel::{ExpansionMode, MiniSecretKey};
use server::startup::Application;
use service::db::testing::TestDatabase;
use service::db::Backend;

const RUNS: usize = 400;
const CONCURRENCY: usize = 16;

struct Wallet {
    pair: schnorrkel::Keypair,
    hotkey: String,
}

impl Wallet {
    fn new(seed: u8) -> Self {
        let pair = MiniSecretKey::from_bytes(&[seed; 32]).unwrap().expand_to_keypair(ExpansionMode::Ed25519);
        let hotkey = wire::ss58::encode(&pair.public.to_bytes());
        Wallet { pair, hotkey }
    }

    fn sign(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let ts = service::clock::now().to_string();
        let nonce = uuid::Uuid::new_v4().to_string();
        let message = wire::signing::request_message(&self.hotkey, &ts, &nonce);
        let signature = format!("0x{}", hex::encode(self.pair.sign_simple(b"substrate", message.as_bytes()).to_bytes()));
        request.header("X-Hotkey", &self.hotkey).header("X-Timestamp", ts).header("X-Nonce", nonce).header("X-Signature", signature)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Figures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn figures(mut latencies: Vec<Duration>, wall: Duration) -> Figures {
    latencies.sort();
    Figures { per_second: latencies.len() as f64 / wall.as_secs_f64(), p50: percentile(&latencies, 0.5), p99: percentile(&latencies, 0.99) }
}

async fn bench(backend: Backend) -> (Figures, Figures) {
    let db = TestDatabase::create(backend).await;
    let dir = std::env::temp_dir().join(format!("oro-bench-{}", uuid::Uuid::new_v4().simple()));
    let validators: Vec<Wallet> = (0..CONCURRENCY as u8).map(|i| Wallet::new(100 + i)).collect();
    let vars: HashMap<String, String> = HashMap::from([
        ("ORO_BIND".into(), "127.0.0.1:0".into()),
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
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::new();

    // Miners with OpenRouter connected, and RUNS queued runs.
    let miners: Vec<Wallet> = (0..20).map(|i| Wallet::new(i + 1)).collect();
    for m in &miners {
        let key = sim.create_openrouter_account(1_000.0);
        let hotkey = service::domain::Hotkey::parse(&m.hotkey).unwrap();
        services.connect_openrouter(&hotkey, &secrecy::SecretString::from(key)).await.unwrap();
    }
    for i in 0..RUNS {
        let m = &miners[i % miners.len()];
        let hotkey = service::domain::Hotkey::parse(&m.hotkey).unwrap();
        services.submit_agent(&hotkey, &format!("agent{i}"), "agent.py", b"def run(t):\n    return 1\n").await.unwrap();
    }

    // Claims: each validator claims, completes, claims again (a validator holds at most 8).
    let started = Instant::now();
    let mut tasks = Vec::new();
    for v in validators {
        let client = client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let t = Instant::now();
                let response = v.sign(client.post(format!("{base}/v1/validator/work/claim"))).send().await.unwrap();
                let status = response.status().as_u16();
                if status == 204 {
                    break;
                }
                assert_eq!(status, 200);
                latencies.push(t.elapsed());
                let body: serde_json::Value = response.json().await.unwrap();
                let id = body["eval_run_id"].as_str().unwrap();
                let done = v
                    .sign(client.post(format!("{base}/v1/validator/evaluation-runs/{id}/complete")))
                    .json(&serde_json::json!({"terminal_status": "SUCCESS", "validator_score": 1.0}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(done.status(), 200);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let claim_wall = started.elapsed();
    assert_eq!(latencies.len(), RUNS);
    let claims = figures(latencies, claim_wall);

    // Baseline: the same reservation as a bare statement (no HTTP, auth, minting or vault).
    for i in 0..RUNS {
        sqlx::query("INSERT INTO eval_runs (id, seq, agent_version_id, hotkey, suite_id, status, attempts, not_before, created_at, updated_at) VALUES ($1, $2, 'v', 'h', 1, 'queued', 0, 0, 0, 0)")
            .bind(format!("bench-{i}"))
            .bind(i as i64)
            .execute(services.db.pool())
            .await
            .unwrap();
    }
    let pick = match backend {
        Backend::Postgres => "SELECT id FROM eval_runs WHERE status = 'queued' ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "SELECT id FROM eval_runs WHERE status = 'queued' ORDER BY seq LIMIT 1",
    };
    let sql = format!("UPDATE eval_runs SET status = 'running', validator_hotkey = $1 WHERE id = ({pick}) RETURNING id, hotkey, agent_version_id, suite_id");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONCURRENCY {
        let pool = services.db.pool().clone();
        let sql = sql.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let t = Instant::now();
                let row: Option<(String, String, String, i64)> = sqlx::query_as(&sql).bind(format!("v{c}")).fetch_optional(&pool).await.unwrap();
                if row.is_none() {
                    break;
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
    let baseline = figures(latencies, started.elapsed());
    let _ = std::fs::remove_dir_all(dir);
    (claims, baseline)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut out = format!(
        "# claim_work benchmark\n\n{RUNS} runs, {CONCURRENCY} validators claiming concurrently (claim, then complete, until 204), OpenRouter key minted per claim against the in-process simulator; {cores} cores; debug={}.\n\n| database | claims/s | p50 | p99 | baseline reserve/s | baseline p50 | baseline p99 | claim/baseline throughput |\n|---|---|---|---|---|---|---|---|\n",
        cfg!(debug_assertions)
    );
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (claims, base) = bench(backend).await;
        out.push_str(&format!(
            "| {backend:?} | {:.0} | {} | {} | {:.0} | {} | {} | {:.3} |\n",
            claims.per_second,
            ms(claims.p50),
            ms(claims.p99),
            base.per_second,
            ms(base.p50),
            ms(base.p99),
            claims.per_second / base.per_second
        ));
    }
    println!("{out}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("claims.md"), &out).unwrap();
}
