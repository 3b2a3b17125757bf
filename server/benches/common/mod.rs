//! What the benchmarks share: test wallets, latency figures, resident-memory samples and the
//! place their Markdown fragments go (`target/bench/`, assembled by `bench/run.sh`).

#![allow(dead_code)] // each bench uses its own part

use std::time::Duration;

use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey};

/// A deterministic sr25519 wallet, signing the way Substrate wallets do.
pub struct Wallet {
    pub pair: Keypair,
    pub hotkey: String,
}

/// The four signed-request header values.
pub struct Signed {
    pub hotkey: String,
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
}

impl Wallet {
    pub fn new(seed: u8) -> Self {
        let pair = MiniSecretKey::from_bytes(&[seed; 32]).unwrap().expand_to_keypair(ExpansionMode::Ed25519);
        let hotkey = wire::ss58::encode(&pair.public.to_bytes());
        Wallet { pair, hotkey }
    }

    pub fn signed(&self, timestamp: i64) -> Signed {
        let timestamp = timestamp.to_string();
        let nonce = uuid::Uuid::new_v4().to_string();
        let message = wire::signing::request_message(&self.hotkey, &timestamp, &nonce);
        let signature = format!("0x{}", hex::encode(self.pair.sign_simple(b"substrate", message.as_bytes()).to_bytes()));
        Signed { hotkey: self.hotkey.clone(), timestamp, nonce, signature }
    }

    pub fn sign(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let s = self.signed(service::clock::system_now());
        request
            .header("X-Hotkey", s.hotkey)
            .header("X-Timestamp", s.timestamp)
            .header("X-Nonce", s.nonce)
            .header("X-Signature", s.signature)
    }
}

/// Each signed request's message, its signature parsed, and its signature's bytes: what the
/// signature paths start from.
pub fn parsed(set: &[Signed]) -> Vec<(String, schnorrkel::Signature, [u8; 64])> {
    set.iter()
        .map(|s| {
            let bytes = service::auth::signature::parse_signature_hex(&s.signature).unwrap();
            (wire::signing::request_message(&s.hotkey, &s.timestamp, &s.nonce), schnorrkel::Signature::from_bytes(&bytes).unwrap(), bytes)
        })
        .collect()
}

pub struct Figures {
    pub count: usize,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Throughput over `wall` and the latency percentiles of `latencies` (nearest rank).
/// Every task's latencies, in one list.
pub async fn gather(tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a load task panicked"));
    }
    latencies
}

pub fn figures(mut latencies: Vec<Duration>, wall: Duration) -> Figures {
    latencies.sort();
    let at = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default();
    Figures { count: latencies.len(), per_second: latencies.len() as f64 / wall.as_secs_f64(), p50: at(0.5), p99: at(0.99) }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `VmRSS` and `VmHWM` of a process, in KiB, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn memory(pid: &str) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory { rss_kib: field("VmRSS:"), hwm_kib: field("VmHWM:") }
}

/// Resets the peak (`VmHWM`) to the current RSS, so that the next sample's peak belongs to
/// the load in between (Linux 4.0+). False when the kernel refuses.
pub fn reset_peak(pid: &str) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Prints the fragment and writes it to `target/bench/<name>.md`.
pub fn write_fragment(name: &str, markdown: &str) {
    println!("{markdown}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("bench");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join(format!("{name}.md")), markdown).unwrap();
}

/// The provider simulator in this process, knowing the service's default OAuth client (as
/// Chutes knows a registered client), for a service configured by [`settings_beside`].
pub async fn simulator_for_the_service() -> simulator::RunningSimulator {
    let defaults = service::Settings::from_vars(&std::collections::HashMap::new()).unwrap();
    let config = simulator::SimulatorConfig {
        chutes_client_id: defaults.chutes_client_id.clone(),
        chutes_client_secret: secrecy::ExposeSecret::expose_secret(&defaults.chutes_client_secret).to_owned(),
        chutes_redirect_uris: defaults.allowed_chutes_redirect_uris(),
        ..Default::default()
    };
    simulator::spawn("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
}

/// Settings for a service on `db` whose providers are the simulator in this process: shared
/// by a seeding instance in the bench process and the `server` binary it then starts.
pub fn settings_beside(
    db: &service::db::testing::TestDatabase,
    dir: &std::path::Path,
    sim: &simulator::RunningSimulator,
    validators: &[&Wallet],
) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        ("ORO_BIND".into(), "127.0.0.1:0".into()),
        ("ORO_GATEWAY_BIND".into(), "127.0.0.1:0".into()),
        ("DATABASE_URL".into(), secrecy::ExposeSecret::expose_secret(&db.url).to_owned()),
        ("ORO_MASTER_KEY_FILE".into(), dir.join("master.key").display().to_string()),
        // The simulator runs in the bench process; the service only gets its addresses.
        ("ORO_SIMULATE_PROVIDERS".into(), "0".into()),
        ("ORO_OPENROUTER_API_BASE".into(), sim.openrouter_api_base()),
        ("ORO_CHUTES_API_BASE".into(), sim.chutes_api_base()),
        ("ORO_CHUTES_LLM_BASE".into(), sim.chutes_llm_base()),
        ("ORO_SUBMIT_COOLDOWN_SECS".into(), "0".into()),
        ("ORO_VALIDATOR_HOTKEYS".into(), validators.iter().map(|v| v.hotkey.clone()).collect::<Vec<_>>().join(",")),
    ])
}

/// Starts the release `server` binary (built by `cargo bench` with the bench) on `vars` and a
/// free port, its log in `dir/server.log`, and waits until it answers `/health`. Answers the
/// process and its base URL.
pub async fn start_server(mut vars: std::collections::HashMap<String, String>, dir: &std::path::Path) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    vars.insert("ORO_BIND".into(), format!("127.0.0.1:{port}"));
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .envs(&vars)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the release server binary");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !matches!(reqwest::get(format!("{base}/health")).await, Ok(r) if r.status() == 200) {
        assert!(server.try_wait().unwrap().is_none(), "the server binary exited; see {}", dir.join("server.log").display());
        assert!(std::time::Instant::now() < deadline, "the server binary did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, base)
}

/// The engines to bench: both, or the one `ORO_BENCH_DATABASES` names (`postgres`, `sqlite`),
/// for a profile or a quick look.
pub fn databases() -> Vec<service::db::Backend> {
    let only = std::env::var("ORO_BENCH_DATABASES").unwrap_or_default().to_ascii_lowercase();
    [service::db::Backend::Sqlite, service::db::Backend::Postgres]
        .into_iter()
        .filter(|b| only.is_empty() || only.contains(&format!("{b:?}").to_ascii_lowercase()))
        .collect()
}
