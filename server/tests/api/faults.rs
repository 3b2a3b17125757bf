//! Fault tests: the database restarting under a claim load, the providers failing (5xx, 429,
//! timeouts, dropped connections) during connect, claim and disconnect, and the process killed
//! in the middle of a master-key rotation.
//!
//! Already covered elsewhere and not repeated here: OpenRouter `/key` 500/429/slow at connect
//! (status and provider name), Chutes' token endpoint 502 when a connection already exists,
//! one `POST /keys` 503 at claim, Chutes chat 429/502 at preflight, and a disconnect with
//! `PATCH /keys` or Chutes revoke answering 5xx (see connections.rs and runs.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use service::domain::Hotkey;
use service::vault::{MasterKeys, Vault};
use simulator::{Fault, FaultKind, FaultTarget};
use wire::Provider;

use crate::both_engines;
use crate::helpers::*;

const AGENT: &[u8] = b"def run(task):\n    return 'hello'\n";
/// Longer than the tests' provider timeout (`ORO_PROVIDER_TIMEOUT_SECS=2` in helpers.rs).
const SLOW: FaultKind = FaultKind::Delay(Duration::from_secs(3));

fn hotkey(wallet: &TestWallet) -> Hotkey {
    Hotkey::parse(&wallet.hotkey).unwrap()
}

async fn claim(app: &TestApp) -> (u16, serde_json::Value) {
    let response = app.signed(&app.validator, Method::POST, "/v1/validator/work/claim").send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

async fn count_for(app: &TestApp, table: &str, hotkey: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table} WHERE hotkey = $1"))
        .bind(hotkey)
        .fetch_one(app.services.db.pool())
        .await
        .unwrap();
    n
}

/// A failed connect leaves no trace of the miner: no connection (so nothing sealed), no miner
/// row, no audit event, nothing queued for revocation.
async fn assert_nothing_stored(app: &TestApp, miner: &TestWallet, what: &str) {
    for table in ["connections", "miners", "audit_events", "pending_revocations"] {
        assert_eq!(count_for(app, table, &miner.hotkey).await, 0, "{what}: {table} holds a row for a miner whose connect failed");
    }
}

/// Run keys minted with this management key that still work at OpenRouter.
fn live_keys(app: &TestApp, management_key: &str) -> Vec<simulator::OpenRouterKeyInfo> {
    app.sim.list_openrouter_keys(management_key).into_iter().filter(|k| !k.disabled && !k.deleted).collect()
}

// ---------------------------------------------------------------- providers failing at connect

/// OpenRouter's `/key` and Chutes' token exchange failing (5xx, 429, too slow, connection
/// dropped) on a first connect: an error that names the provider and says it is temporary,
/// within the provider timeout, and nothing stored; no grant left alive at Chutes.
async fn connect_faults_store_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    // `GET /key` is retried twice on 429, 5xx and resets (it only reads): a fault that lasts
    // three answers is reported; a slow answer is not retried (the miner already waited).
    for (kind, expect) in [(FaultKind::Status(502), 503), (FaultKind::Status(429), 503), (SLOW, 504), (FaultKind::Reset, 503)] {
        let lasts = if kind == SLOW { 1 } else { 1 + service::connections::CONNECT_RETRIES };
        app.sim.set_fault(Fault::new(FaultTarget::OpenRouterKey, kind, Some(lasts)));
        let started = Instant::now();
        let (status, text) = detail(app.connect_openrouter(&miner, &key).await).await;
        assert!(app.sim.faults().is_empty(), "{kind:?} was hit");
        assert_eq!(status, expect, "{kind:?}: {text}");
        assert!(text.contains("OpenRouter") && text.contains("try again"), "{kind:?}: {text}");
        assert!(started.elapsed() < Duration::from_secs(8), "{kind:?}: bounded by the provider timeout");
        assert_nothing_stored(&app, &miner, &format!("OpenRouter {kind:?}")).await;
    }
    // A blip that lasts fewer answers than the retries is absorbed.
    app.sim.set_fault(Fault::new(FaultTarget::OpenRouterKey, FaultKind::Status(503), Some(service::connections::CONNECT_RETRIES)));
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200, "connects through a short blip");
    assert!(app.sim.faults().is_empty(), "the blip was hit, and retried past");

    let chutes_miner = TestWallet::new();
    for (kind, expect) in
        [(FaultKind::Status(500), 503), (FaultKind::Status(503), 503), (FaultKind::Status(429), 503), (SLOW, 504), (FaultKind::Reset, 503)]
    {
        app.sim.set_fault(Fault::new(FaultTarget::ChutesToken, kind, Some(1)));
        let started = Instant::now();
        let (status, text) = detail(app.connect_chutes(&chutes_miner, "lena").await).await;
        assert!(app.sim.faults().is_empty(), "{kind:?} was hit");
        assert_eq!(status, expect, "{kind:?}: {text}");
        assert!(text.contains("Chutes") && text.contains("try again"), "{kind:?}: {text}");
        assert!(started.elapsed() < Duration::from_secs(8), "{kind:?}: bounded by the provider timeout");
        assert_nothing_stored(&app, &chutes_miner, &format!("Chutes {kind:?}")).await;
        assert_eq!(app.sim.chutes_refresh_tokens_alive("lena"), 0, "{kind:?}: no grant left alive at Chutes");
    }
    assert_eq!(app.connect_chutes(&chutes_miner, "lena").await.status(), 200, "connects once Chutes is back");
    assert_eq!(app.sim.chutes_refresh_tokens_alive("lena"), 1);
}

// ---------------------------------------------------------------- providers failing at claim

/// The run row as the claim left it: status, failure reason, not_before, claim_retries.
async fn run_row(app: &TestApp, miner: &TestWallet) -> (String, Option<String>, i64, i64) {
    sqlx::query_as("SELECT status, failure_reason, not_before, claim_retries FROM eval_runs WHERE hotkey = $1 ORDER BY seq LIMIT 1")
        .bind(&miner.hotkey)
        .fetch_one(app.services.db.pool())
        .await
        .unwrap()
}

/// Every step of minting an OpenRouter run key failing in turn (the credits check, `POST
/// /keys`, the new key's own check): the run goes back to the queue with a growing backoff,
/// never fails, no key is left enabled at OpenRouter, and the next claim after the fault
/// clears hands out exactly one live key.
async fn openrouter_mint_faults_requeue(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(50.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    app.services.submit_agent(&hotkey(&miner), "a", "a.py", AGENT).await.unwrap();

    let faults = [
        (FaultTarget::OpenRouterCredits, FaultKind::Status(502)),
        (FaultTarget::OpenRouterCredits, SLOW),
        (FaultTarget::OpenRouterKeysCreate, FaultKind::Status(429)),
        (FaultTarget::OpenRouterKeysCreate, FaultKind::Status(500)),
        (FaultTarget::OpenRouterKeysCreate, SLOW),
        (FaultTarget::OpenRouterKeysCreate, FaultKind::Reset),
        // Minted, then the key's own check fails: it is disabled before anyone sees it.
        (FaultTarget::OpenRouterKey, FaultKind::Status(503)),
        (FaultTarget::OpenRouterKey, SLOW),
    ];
    for (retries, (target, kind)) in faults.into_iter().enumerate() {
        app.sim.set_fault(Fault::new(target, kind, Some(1)));
        let started = Instant::now();
        let (status, body) = claim(&app).await;
        assert!(app.sim.faults().is_empty(), "{target:?} {kind:?} was hit");
        assert_eq!(status, 204, "{target:?} {kind:?}: the only run went back to the queue: {body}");
        assert!(started.elapsed() < Duration::from_secs(10), "{target:?} {kind:?}: bounded by the provider timeout");
        let (state, reason, not_before, claim_retries) = run_row(&app, &miner).await;
        assert_eq!((state.as_str(), reason), ("queued", None), "{target:?} {kind:?}: requeued, not failed");
        assert_eq!(claim_retries, retries as i64 + 1);
        let backoff = (30_i64 << retries.min(5)).min(900);
        assert!(not_before >= app.services.clock.now() + backoff - 2, "{target:?} {kind:?}: backs off {backoff} s at least");
        assert!(live_keys(&app, &key).is_empty(), "{target:?} {kind:?}: no run key left enabled at OpenRouter");
        // The backoff passes.
        app.services.clock.advance(not_before - app.services.clock.now() + 1);
    }

    let (status, work) = claim(&app).await;
    assert_eq!(status, 200, "claims again once OpenRouter is back: {work}");
    let live = live_keys(&app, &key);
    assert_eq!(live.len(), 1, "exactly one live key: the one handed out");
    assert!(live[0].name.contains(work["eval_run_id"].as_str().unwrap()));

    // The key's check fails and so does disabling it: the reaper's sweep disables it later.
    app.services.submit_agent(&hotkey(&miner), "b", "b.py", AGENT).await.unwrap();
    app.sim.set_fault(Fault::new(FaultTarget::OpenRouterKey, FaultKind::Status(503), Some(1)));
    app.sim.set_fault(Fault::new(FaultTarget::OpenRouterKeysPatch, FaultKind::Status(503), Some(1)));
    assert_eq!(claim(&app).await.0, 204);
    assert_eq!(live_keys(&app, &key).len(), 2, "the failed run's key could not be disabled yet");
    app.services.reap_runs().await.unwrap();
    let live = live_keys(&app, &key);
    assert_eq!(live.len(), 1, "the sweep disabled it");
    assert!(live[0].name.contains(work["eval_run_id"].as_str().unwrap()), "the handed-out key is untouched");
}

/// Chutes' token endpoint failing when a claim refreshes the miner's grant: the run is
/// requeued, the connection stays connected with its one live refresh token and no lease
/// left on it, and the next claim after the fault clears gets a Chutes token.
async fn chutes_refresh_faults_requeue(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    assert_eq!(app.connect_chutes(&miner, "mona").await.status(), 200);
    app.services.submit_agent(&hotkey(&miner), "a", "a.py", AGENT).await.unwrap();
    for kind in [FaultKind::Status(502), FaultKind::Status(429), SLOW, FaultKind::Reset] {
        app.sim.set_fault(Fault::new(FaultTarget::ChutesToken, kind, Some(1)));
        let (status, body) = claim(&app).await;
        assert!(app.sim.faults().is_empty(), "{kind:?} was hit");
        assert_eq!(status, 204, "{kind:?}: {body}");
        let (state, reason, not_before, _) = run_row(&app, &miner).await;
        assert_eq!((state.as_str(), reason), ("queued", None), "{kind:?}: requeued, not failed");
        assert!(not_before > app.services.clock.now(), "{kind:?}: with a backoff");
        let (conn_state, lock): (String, i64) = sqlx::query_as("SELECT state, refresh_lock_until FROM connections WHERE hotkey = $1")
            .bind(&miner.hotkey)
            .fetch_one(app.services.db.pool())
            .await
            .unwrap();
        assert_eq!((conn_state.as_str(), lock), ("connected", 0), "{kind:?}: still connected, refresh lease released");
        assert_eq!(app.sim.chutes_refresh_tokens_alive("mona"), 1, "{kind:?}: the stored grant is still the live one");
        app.services.clock.advance(not_before - app.services.clock.now() + 1);
    }
    let (status, work) = claim(&app).await;
    assert_eq!(status, 200, "{work}");
    assert_eq!(work["inference_token"]["provider"], "chutes");
    assert_eq!(app.sim.chutes_refresh_tokens_alive("mona"), 1);
}

// ---------------------------------------------------------------- providers failing at disconnect

async fn pending(app: &TestApp, miner: &TestWallet) -> Vec<(i64, i64)> {
    sqlx::query_as("SELECT attempts, next_try_at FROM pending_revocations WHERE hotkey = $1")
        .bind(&miner.hotkey)
        .fetch_all(app.services.db.pool())
        .await
        .unwrap()
}

async fn make_due(app: &TestApp) {
    sqlx::query("UPDATE pending_revocations SET next_try_at = 0").execute(app.services.db.pool()).await.unwrap();
}

/// Disconnect while revocation times out, is rate limited, or loses its connection: the miner
/// is disconnected at once (within the provider timeout), the revocation is queued and retried
/// with growing pauses (not before it is due), partial progress is kept, and it is done once
/// the provider answers: every run key disabled (not deleted), the Chutes grant revoked.
async fn disconnect_faults_revoke_later(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(50.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    for name in ["a", "b"] {
        app.services.submit_agent(&hotkey(&miner), name, "a.py", AGENT).await.unwrap();
        assert_eq!(claim(&app).await.0, 200);
    }
    assert_eq!(live_keys(&app, &key).len(), 2);

    // The first PATCH answers, the second is too slow: one key disabled, the other queued.
    app.sim.set_fault(Fault::new(FaultTarget::OpenRouterKeysPatch, FaultKind::Delay(Duration::ZERO), Some(1)));
    app.sim.set_fault(Fault::new(FaultTarget::OpenRouterKeysPatch, SLOW, Some(1)));
    let started = Instant::now();
    let response = app.signed(&miner, Method::DELETE, "/v1/miner/inference-auth/openrouter").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(8), "the disconnect waits at most the provider timeout");
    assert_eq!(app.status(&miner).await["providers"].as_array().unwrap().iter().filter(|p| p["connected"] == true).count(), 0);
    assert_eq!(count_for(&app, "connections", &miner.hotkey).await, 0, "forgotten locally");
    assert_eq!(live_keys(&app, &key).len(), 1, "one key disabled before the provider slowed down");
    assert_eq!(pending(&app, &miner).await.len(), 1);

    // Not due yet: not tried.
    assert_eq!(app.services.retry_pending_revocations().await.unwrap(), 0);
    assert_eq!(pending(&app, &miner).await[0].0, 1);
    // Due, and OpenRouter rate limits, then drops the connection: kept, backing off further.
    let mut last_pause = 0;
    for (attempt, kind) in [(2, FaultKind::Status(429)), (3, FaultKind::Reset)] {
        app.sim.set_fault(Fault::new(FaultTarget::OpenRouterKeysPatch, kind, Some(1)));
        make_due(&app).await;
        assert_eq!(app.services.retry_pending_revocations().await.unwrap(), 0, "{kind:?}");
        let (attempts, next) = pending(&app, &miner).await[0];
        assert_eq!(attempts, attempt);
        let pause = next - service::clock::system_now();
        assert!(pause > last_pause && pause >= 60, "{kind:?}: backs off ({pause} s after {last_pause} s)");
        last_pause = pause;
        assert_eq!(live_keys(&app, &key).len(), 1);
    }
    make_due(&app).await;
    assert_eq!(app.services.retry_pending_revocations().await.unwrap(), 1);
    assert!(live_keys(&app, &key).is_empty(), "every run key disabled");
    assert!(app.sim.list_openrouter_keys(&key).iter().all(|k| k.disabled && !k.deleted), "disabled, not deleted");
    assert!(pending(&app, &miner).await.is_empty());
    let (undisabled,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM run_keys WHERE hotkey = $1 AND disabled_at IS NULL")
        .bind(&miner.hotkey)
        .fetch_one(app.services.db.pool())
        .await
        .unwrap();
    assert_eq!(undisabled, 0);

    // Chutes: revoke too slow, then rate limited, then back.
    let chutes_miner = TestWallet::new();
    assert_eq!(app.connect_chutes(&chutes_miner, "nina").await.status(), 200);
    app.sim.set_fault(Fault::new(FaultTarget::ChutesRevoke, SLOW, Some(1)));
    let started = Instant::now();
    let response = app.signed(&chutes_miner, Method::DELETE, "/v1/miner/inference-auth/chutes").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(count_for(&app, "connections", &chutes_miner.hotkey).await, 0, "forgotten locally");
    assert_eq!(pending(&app, &chutes_miner).await.len(), 1);
    app.sim.set_fault(Fault::new(FaultTarget::ChutesRevoke, FaultKind::Status(429), Some(1)));
    make_due(&app).await;
    assert_eq!(app.services.retry_pending_revocations().await.unwrap(), 0);
    assert_eq!(app.sim.chutes_refresh_tokens_alive("nina"), 1, "not revoked while Chutes refuses");
    make_due(&app).await;
    assert_eq!(app.services.retry_pending_revocations().await.unwrap(), 1);
    assert_eq!(app.sim.chutes_refresh_tokens_alive("nina"), 0, "revoked once Chutes answered");
    assert!(pending(&app, &chutes_miner).await.is_empty());
}

/// OpenRouter mints the key but its answer comes after the claim gave up (the provider
/// timeout is 2 s here): the run is requeued, and the key nobody recorded is found by its name
/// and disabled.
async fn key_minted_after_the_claim_gave_up_is_disabled(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    app.services.submit_agent(&hotkey(&miner), "late", "late.py", AGENT).await.unwrap();
    app.sim.set_fault(Fault::new(FaultTarget::OpenRouterKeysCreate, FaultKind::DelayAnswer(Duration::from_secs(3)), Some(1)));
    assert_eq!(claim(&app).await.0, 204, "no credential came back: nothing handed out");
    let minted: Vec<_> = app.sim.list_openrouter_keys(&key).into_iter().filter(|k| k.name.starts_with("oro-run-")).collect();
    assert_eq!(minted.len(), 1, "OpenRouter did mint it");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !live_keys(&app, &key).is_empty() {
        assert!(Instant::now() < deadline, "the stray key is still live");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stray = app.sim.list_openrouter_keys(&key).into_iter().find(|k| k.hash == minted[0].hash).unwrap();
    assert!(stray.disabled && !stray.deleted, "disabled, not deleted");
    let events: serde_json::Value = app.get_signed(&miner, "/v1/miner/inference-auth/events").await.json().await.unwrap();
    assert!(events.to_string().contains("minted after the claim had given up"), "{events}");
}

/// The replica claiming a run dies after OpenRouter minted its key and before the key was
/// recorded: the run is left running, under an expiring lease, and no row names the key. The
/// reaper disables the key by its name before the run goes back to the queue (it says so in
/// the miner's audit log), and the next claim's own key is left alone.
async fn key_of_a_claim_lost_before_recording_is_disabled_by_the_reaper(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    let submitted = app.services.submit_agent(&hotkey(&miner), "lost", "lost.py", AGENT).await.unwrap();
    let run = submitted.eval_run_id.unwrap();
    // What the dead claim left: the run reserved and pinned, no key recorded, and the key it
    // had OpenRouter mint (through OpenRouter's own API, with the miner's management key).
    sqlx::query("UPDATE eval_runs SET status = 'running', provider = 'openrouter', validator_hotkey = $1, lease_expires_at = 0, claimed_at = 0 WHERE id = $2")
        .bind(&app.validator.hotkey)
        .bind(&run)
        .execute(app.services.db.pool())
        .await
        .unwrap();
    let minted = app
        .client
        .post(format!("{}/keys", app.services.settings.openrouter_api_base.trim_end_matches('/')))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": format!("oro-run-{run}"), "limit": 5.0}))
        .send()
        .await
        .unwrap();
    assert!(minted.status().is_success(), "{}", minted.text().await.unwrap());
    assert_eq!(live_keys(&app, &key).len(), 1);

    assert_eq!(app.services.reap_runs().await.unwrap(), 1);
    assert!(live_keys(&app, &key).is_empty(), "the lost claim's key is still live");
    let (status,): (String,) =
        sqlx::query_as("SELECT status FROM eval_runs WHERE id = $1").bind(&run).fetch_one(app.services.db.pool()).await.unwrap();
    assert_eq!(status, "queued");
    let events: serde_json::Value = app.get_signed(&miner, "/v1/miner/inference-auth/events").await.json().await.unwrap();
    assert!(events.to_string().contains("minted by a claim that ended before recording it"), "{events}");

    // The run's next claim mints a key of the same name, which stays live.
    let (code, answer) = claim(&app).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["eval_run_id"], run.as_str());
    let live = live_keys(&app, &key);
    assert_eq!(live.len(), 1, "the new claim's key");
    assert_eq!(live[0].name, format!("oro-run-{run}"));
}

both_engines!(
    key_of_a_claim_lost_before_recording_is_disabled_by_the_reaper,
    connect_faults_store_nothing,
    openrouter_mint_faults_requeue,
    chutes_refresh_faults_requeue,
    disconnect_faults_revoke_later,
    key_minted_after_the_claim_gave_up_is_disabled
);

// ---------------------------------------------------------------- PostgreSQL restarted under load

/// A throwaway PostgreSQL cluster of this test's own (the machine's shared one serves the
/// other tests): `initdb` and `pg_ctl` run as the `postgres` OS user, trust auth, on a free
/// port. Dropping it stops the server and removes its files, also when the test fails.
struct PrivatePostgres {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// The newest `/usr/lib/postgresql/*/bin` with `initdb` and `pg_ctl`. Missing is a failure,
    /// not a skip: this test must run everywhere the suite runs.
    fn bin_dir() -> PathBuf {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_string_lossy().split('.').next()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
            })
            .collect();
        found.sort();
        found
            .pop()
            .map(|(_, bin)| bin)
            .expect("this test needs PostgreSQL's initdb and pg_ctl under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    }

    fn start() -> Self {
        let bin = Self::bin_dir();
        let root = std::env::temp_dir().join(format!("oro-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // From here on, Drop cleans up.
        let pg = PrivatePostgres { bin, root, port };
        let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&pg.root).status().expect("chown");
        assert!(chown.success(), "chown the cluster directory to postgres");
        pg.run("initdb", &["-D", &pg.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
        pg.start_server();
        pg
    }

    fn data(&self) -> String {
        self.root.join("data").display().to_string()
    }

    /// Runs a PostgreSQL program as the `postgres` user (it refuses to run as root).
    fn as_postgres(&self, program: &str, args: &[&str]) -> std::process::Output {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .output()
            .expect("runuser")
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.as_postgres(program, args);
        let log = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}\nserver log:\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_server(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c fsync=off -c max_connections=60",
            self.port,
            self.root.display()
        );
        let log = self.root.join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &options, "-w", "-t", "60", "start"]);
    }

    /// `fast`: clients are disconnected and their transactions rolled back, as in a restart.
    fn stop_server(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "-t", "60", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.as_postgres("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One claim answer as a validator saw it.
struct Claimed {
    validator: String,
    status: u16,
    body: serde_json::Value,
    sent: Instant,
    took: Duration,
}

/// PostgreSQL stopped (fast) while eight validators claim 48 runs, for longer than twice the
/// pool's wait for a connection (so a claim caught half-way fails, and so does putting its run
/// back at once), then started: no run handed out twice, none lost (every run handed out
/// within 20 s of the restart, not after a provider backoff or a 5-minute lease), every error
/// a clean JSON 500/503 in bounded time, no run key left live at OpenRouter but the handed-out
/// ones, readiness 503 while down and 200 after, and claims succeed again without restarting
/// the application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_during_a_claim_load() {
    const MINERS: usize = 6;
    const RUNS_EACH: usize = 8;
    const TOTAL: usize = MINERS * RUNS_EACH;
    const VALIDATORS: usize = 8;
    /// Longer than twice the pool's acquire timeout (10 s): requests fail rather than wait,
    /// and so does a first attempt to clean up after them.
    const OUTAGE: Duration = Duration::from_secs(21);
    /// After the restart, every run is handed out within this.
    const RECOVERY: Duration = Duration::from_secs(20);

    let pg = PrivatePostgres::start();
    // `database` points the app at the private cluster (the backend argument is then unused).
    let app = spawn_app_with(Backend::Sqlite, AppOptions { database: Some(pg.url()), ..Default::default() }).await;
    let mut management_keys = Vec::new();
    for m in 0..MINERS {
        let miner = hotkey(&TestWallet::new());
        let key = app.sim.create_openrouter_account(1_000.0);
        app.services.connect_openrouter(&miner, &SecretString::from(key.clone())).await.unwrap();
        management_keys.push(key);
        for i in 0..RUNS_EACH {
            app.services.submit_agent(&miner, &format!("agent{m}-{i}"), "agent.py", AGENT).await.unwrap();
        }
    }
    let mut validators = vec![app.validator.clone()];
    for _ in 1..VALIDATORS {
        let v = TestWallet::new();
        app.add_validator(&v.hotkey, "").await;
        validators.push(v);
    }

    // Minting takes a while, as it does at OpenRouter: when the database goes away, claims
    // are caught half-way (run reserved, key being minted), not only between two requests.
    app.sim.set_fault(Fault::new(FaultTarget::OpenRouterKeysCreate, FaultKind::Delay(Duration::from_millis(300)), None));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(40)).build().unwrap();
    let claim_url = app.url("/v1/validator/work/claim");
    let claimed = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(Vec::<Claimed>::new()));
    // Claiming stops once every run is out, or RECOVERY after the restart.
    let deadline = Arc::new(Mutex::new(Instant::now() + Duration::from_secs(120)));
    let mut tasks = Vec::new();
    for (i, v) in validators.into_iter().enumerate() {
        let (client, url, claimed, answers, deadline) =
            (client.clone(), claim_url.clone(), claimed.clone(), answers.clone(), deadline.clone());
        tasks.push(tokio::spawn(async move {
            // Staggered, so that whenever the database goes away some claims are at each step.
            tokio::time::sleep(Duration::from_millis(45 * i as u64)).await;
            while claimed.load(Ordering::SeqCst) < TOTAL && Instant::now() < *deadline.lock().unwrap() {
                let mut request = client.post(&url);
                for (name, value) in v.headers() {
                    request = request.header(name, value);
                }
                let sent = Instant::now();
                let response = request.send().await;
                let took = sent.elapsed();
                let (status, body) = match response {
                    Ok(r) => (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap_or(serde_json::Value::Null)),
                    // A hang past the client timeout, or no answer at all.
                    Err(e) => (0, serde_json::json!({"client_error": e.to_string()})),
                };
                if status == 200 {
                    claimed.fetch_add(1, Ordering::SeqCst);
                }
                answers.lock().unwrap().push(Claimed { validator: v.hotkey.clone(), status, body, sent, took });
                // Spread the load over time, so the outage lands in the middle of it.
                tokio::time::sleep(Duration::from_millis(if status == 200 { 60 } else { 250 })).await;
            }
        }));
    }

    // A quarter in, the database goes away.
    let load_started = Instant::now();
    while claimed.load(Ordering::SeqCst) < TOTAL / 4 {
        assert!(load_started.elapsed() < Duration::from_secs(30), "the load never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopped = Instant::now();
    pg.stop_server();
    let claimed_before = claimed.load(Ordering::SeqCst);
    assert!(claimed_before < TOTAL, "the outage must land in the middle of the load");
    let probe = client
        .get(app.url("/health/ready"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("readiness answers while the database is down");
    let probe_took = stopped.elapsed();
    assert_eq!(probe.status(), 503, "not ready while the database is down");
    let body: serde_json::Value = probe.json().await.unwrap();
    assert_eq!(body["detail"], "database unreachable");
    tokio::time::sleep(OUTAGE.saturating_sub(stopped.elapsed())).await;
    pg.start_server();
    let restarted = Instant::now();
    *deadline.lock().unwrap() = restarted + RECOVERY;

    // Ready again without restarting the application: the pool reconnects by itself.
    loop {
        let ready = client
            .get(app.url("/health/ready"))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string());
        if ready == Ok(200) {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(20), "not ready again 20 s after the restart ({ready:?})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let mut errors = 0;
    for a in &answers {
        assert!(a.took < Duration::from_secs(35), "a claim hung for {:?}", a.took);
        match a.status {
            200 | 204 => {}
            500 | 503 => {
                errors += 1;
                let text = a.body["detail"].as_str().unwrap_or_else(|| panic!("a {} without a JSON detail: {}", a.status, a.body));
                assert!(!text.contains("panicked") && !text.contains("task failed"), "{text}");
            }
            other => panic!("unexpected answer {other}: {}", a.body),
        }
    }
    assert!(errors > 0, "the outage was felt by the claims (else this test tests nothing)");
    let ids: Vec<&str> = answers.iter().filter(|a| a.status == 200).map(|a| a.body["eval_run_id"].as_str().unwrap()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no run handed out twice");
    let stranded: Vec<(String, String, i64)> = sqlx::query_as::<_, (String, String, i64)>("SELECT id, status, not_before FROM eval_runs")
        .fetch_all(app.services.db.pool())
        .await
        .unwrap()
        .into_iter()
        .filter(|(id, ..)| !ids.contains(&id.as_str()))
        .collect();
    assert_eq!(ids.len(), TOTAL, "every run handed out within {RECOVERY:?} of the restart; not handed out: {stranded:?}");
    assert!(answers.iter().any(|a| a.status == 200 && a.sent > restarted), "claims succeed after the restart");
    // The database agrees: each run is running, held by the validator that was told so.
    for a in answers.iter().filter(|a| a.status == 200) {
        let (status, holder): (String, Option<String>) = sqlx::query_as("SELECT status, validator_hotkey FROM eval_runs WHERE id = $1")
            .bind(a.body["eval_run_id"].as_str().unwrap())
            .fetch_one(app.services.db.pool())
            .await
            .unwrap();
        assert_eq!((status.as_str(), holder.as_deref()), ("running", Some(a.validator.as_str())));
    }
    // Keys minted by claims that then failed are disabled (at once, or by the sweep): at
    // OpenRouter, one live key per handed-out run and no other.
    app.services.reap_runs().await.unwrap();
    let live: usize = management_keys.iter().map(|k| live_keys(&app, k).len()).sum();
    assert_eq!(live, TOTAL, "one live key per handed-out run");
    eprintln!(
        "postgres restart: {claimed_before} claimed before the outage, {errors} clean errors during it, readiness 503 after {probe_took:?}, {} answers in all",
        answers.len()
    );
}

/// PostgreSQL going away while a claim refreshes a miner's Chutes grant. Chutes refresh tokens
/// rotate: once Chutes answers, the token we spent is dead and the one in its answer is the
/// miner's only grant. Kept down past the pool's wait, then started: the rotated token is
/// stored once the database is back, the miner stays connected with one live grant, and the
/// run is handed out with a Chutes token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_while_a_chutes_grant_rotates() {
    let pg = PrivatePostgres::start();
    let app = spawn_app_with(Backend::Sqlite, AppOptions { database: Some(pg.url()), ..Default::default() }).await;
    let miner = TestWallet::new();
    assert_eq!(app.connect_chutes(&miner, "olga").await.status(), 200);
    app.services.submit_agent(&hotkey(&miner), "a", "a.py", AGENT).await.unwrap();

    // The refresh is slow: the database goes away while Chutes is rotating the token.
    app.sim.set_fault(Fault::new(FaultTarget::ChutesToken, FaultKind::Delay(Duration::from_millis(1500)), Some(1)));
    let request = app.signed(&app.validator, Method::POST, "/v1/validator/work/claim").timeout(Duration::from_secs(60));
    let first = tokio::spawn(async move {
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json::<serde_json::Value>().await.unwrap_or_default())
    });
    let started = Instant::now();
    while !app.sim.faults().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the claim never reached Chutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped = Instant::now();
    pg.stop_server();
    // Down for longer than Chutes' answer plus the pool's 10 s wait for a connection.
    tokio::time::sleep(Duration::from_secs(14).saturating_sub(stopped.elapsed())).await;
    pg.start_server();
    let (status, body) = first.await.unwrap();
    assert!(status == 200 || status == 500, "a clean answer: {status} {body}");
    assert_eq!(app.sim.chutes_refresh_tokens_alive("olga"), 1, "the rotated grant is alive at Chutes");

    let work = if status == 200 {
        body
    } else {
        // Put back at once (our trouble, not the provider's): claimable again now.
        let (status, body) = claim(&app).await;
        assert_eq!(status, 200, "handed out after the restart: {body}");
        body
    };
    assert_eq!(work["inference_token"]["provider"], "chutes");
    let (state,): (String,) = sqlx::query_as("SELECT state FROM connections WHERE hotkey = $1")
        .bind(&miner.hotkey)
        .fetch_one(app.services.db.pool())
        .await
        .unwrap();
    assert_eq!(state, "connected", "the miner is still connected");
    assert_eq!(app.sim.chutes_refresh_tokens_alive("olga"), 1);
    // And the stored grant is the live one: it refreshes.
    app.services.chutes_access_token(&hotkey(&miner)).await.expect("the stored refresh token is the live one");
}

// ---------------------------------------------------------------- rotation killed half-way

/// Credentials seeded for the rotation test, each under its own data key, so that re-wrapping
/// takes long enough to be killed half-way.
const ROTATION_KEYS: usize = 4_000;

struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `(hotkey, plaintext, ciphertext)` of every seeded credential.
type Seeded = Vec<(String, String, Vec<u8>)>;

/// Seeds `ROTATION_KEYS` data keys wrapped by the current master key, and one OpenRouter
/// credential sealed with each. The keys are made by `Vault::open` on an empty scratch
/// database (it creates one whenever it finds none), then copied in bulk.
async fn seed_vault(db: &service::Db, masters: &MasterKeys, scratch_dir: &Path) -> Seeded {
    let scratch = service::Db::connect(&SecretString::from(format!("sqlite://{}/scratch.db", scratch_dir.display()))).await.unwrap();
    let mut data_keys: Vec<(String, String, Vec<u8>, i64)> = Vec::new();
    let mut seeded = Vec::new();
    for i in 0..ROTATION_KEYS {
        sqlx::query("DELETE FROM vault_data_keys").execute(scratch.pool()).await.unwrap();
        let vault = Vault::open(&scratch, masters, service::clock::system_now()).await.unwrap();
        data_keys.push(
            sqlx::query_as("SELECT id, master_key_id, wrapped_key, created_at FROM vault_data_keys")
                .fetch_one(scratch.pool())
                .await
                .unwrap(),
        );
        let hotkey = format!("5Rotation{i:06}");
        let secret = format!("sk-or-v1-{:064x}", 0xfeed_0000_0000_u128 + i as u128);
        let sealed = vault.seal(&Vault::credential_context(&hotkey, Provider::OpenRouter), &SecretString::from(secret.clone()));
        seeded.push((hotkey, secret, sealed));
    }
    scratch.close().await;
    let mut tx = db.pool().begin().await.unwrap();
    for chunk in data_keys.chunks(250) {
        let values: Vec<String> =
            (0..chunk.len()).map(|i| format!("(${}, ${}, ${}, ${})", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4)).collect();
        let sql = format!("INSERT INTO vault_data_keys (id, master_key_id, wrapped_key, created_at) VALUES {}", values.join(", "));
        let mut query = sqlx::query(&sql);
        for (id, master, wrapped, created) in chunk {
            query = query.bind(id).bind(master).bind(wrapped).bind(created);
        }
        query.execute(&mut *tx).await.unwrap();
    }
    for chunk in seeded.chunks(250) {
        let values: Vec<String> =
            (0..chunk.len()).map(|i| format!("(${}, 'openrouter', 'connected', 'seeded', ${}, 0, 0, 0)", 2 * i + 1, 2 * i + 2)).collect();
        let sql = format!(
            "INSERT INTO connections (hotkey, provider, state, label, ciphertext, connected_at, updated_at, refresh_lock_until) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (hotkey, _, sealed) in chunk {
            query = query.bind(hotkey).bind(sealed);
        }
        query.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    seeded
}

/// Every stored credential opens with what the key file holds now, and is what was sealed.
async fn assert_every_credential_opens(db: &service::Db, key_file: &Path, seeded: &Seeded, when: &str) {
    let masters = MasterKeys::load(key_file, false).unwrap_or_else(|e| panic!("{when}: the key file does not load: {e}"));
    let vault = Vault::open(db, &masters, service::clock::system_now())
        .await
        .unwrap_or_else(|e| panic!("{when}: a data key does not open with the key file: {e}"));
    let stored: std::collections::HashMap<String, Vec<u8>> =
        sqlx::query_as::<_, (String, Vec<u8>)>("SELECT hotkey, ciphertext FROM connections")
            .fetch_all(db.pool())
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(stored.len(), seeded.len());
    for (hotkey, secret, _) in seeded {
        let opened = vault
            .open_sealed(&Vault::credential_context(hotkey, Provider::OpenRouter), &stored[hotkey])
            .unwrap_or_else(|e| panic!("{when}: {hotkey}: {e}"));
        assert_eq!(opened.expose_secret(), secret, "{when}: {hotkey} carries its own plaintext");
    }
}

/// The real `server` binary's operator command, on this database and key file.
pub(crate) fn operator_command(database_url: &str, key_file: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("ORO_MASTER_KEY_FILE", key_file)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// The data key new values are sealed with (the newest), and how many stored credentials it seals.
async fn resealed(db: &service::Db) -> (String, usize) {
    let (newest,): (String,) =
        sqlx::query_as("SELECT id FROM vault_data_keys ORDER BY created_at DESC, id DESC LIMIT 1").fetch_one(db.pool()).await.unwrap();
    let stored: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT ciphertext FROM connections").fetch_all(db.pool()).await.unwrap();
    let n = stored.iter().filter(|(c,)| service::vault::parse_envelope(c).is_ok_and(|e| e.data_key_id == newest)).count();
    (newest, n)
}

/// `server vault rotate-master-key` SIGKILLed half-way through re-sealing: every credential
/// still opens (some under an old data key, some under the new one); run again, it continues
/// the same rotation to the end, every credential under the one new data key and every old
/// data key deleted; `retire-master-keys` then removes the old master key, and all still opens.
async fn rotation_killed_half_way_resumes(backend: Backend) {
    let test_db = service::db::testing::TestDatabase::create(backend).await;
    let db = test_db.connect().await;
    let url = test_db.url.expose_secret().to_owned();
    let dir = std::env::temp_dir().join(format!("oro-rotate-{}", uuid::Uuid::new_v4().simple()));
    let _cleanup = RemoveDir(dir.clone());
    let key_file = dir.join("master.key");
    let masters = MasterKeys::load(&key_file, true).unwrap();
    let old_master = masters.current_id().to_owned();
    let seeded = seed_vault(&db, &masters, &dir.join("scratch")).await;
    drop(masters);
    assert_every_credential_opens(&db, &key_file, &seeded, "before the rotation").await;
    let rotate = ["vault", "rotate-master-key", "--replica-wait-secs", "0"];

    // Kill it once a quarter of the credentials are re-sealed.
    let mut child = operator_command(&url, &key_file, &rotate).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    loop {
        if resealed(&db).await.1 >= ROTATION_KEYS / 4 {
            child.kill().unwrap();
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the rotation ended ({status}) before it could be killed half-way: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the rotation made no progress");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");
    #[cfg(unix)]
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "SIGKILL");
    let (new_data_key, done) = resealed(&db).await;
    eprintln!("rotation killed after {:?} with {done} of {ROTATION_KEYS} credentials re-sealed", started.elapsed());
    assert!(done > 0 && done < ROTATION_KEYS, "killed half-way ({done} of {ROTATION_KEYS} re-sealed)");
    let ids = MasterKeys::load(&key_file, false).unwrap().ids();
    assert_eq!(ids.len(), 2, "the new master key was saved before any row used it");
    assert_eq!(ids[0], old_master);
    let new_master = ids[1].clone();
    let (under_new,): (String,) =
        sqlx::query_as("SELECT master_key_id FROM vault_data_keys WHERE id = $1").bind(&new_data_key).fetch_one(db.pool()).await.unwrap();
    assert_eq!(under_new, new_master, "the new data key is under the new master key");
    assert_every_credential_opens(&db, &key_file, &seeded, "after the kill").await;

    // Started again: it continues the same rotation (no third key) to the end.
    let out = operator_command(&url, &key_file, &rotate).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&new_master) && stdout.contains("continuing an unfinished rotation") && stdout.contains(" 0 left"), "{stdout}");
    assert!(stdout.contains(&format!("retired {ROTATION_KEYS} old data key(s)")), "{stdout}");
    assert_eq!(MasterKeys::load(&key_file, false).unwrap().ids(), vec![old_master.clone(), new_master.clone()]);
    assert_eq!(resealed(&db).await, (new_data_key.clone(), ROTATION_KEYS), "every credential under the new data key");
    let (keys,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM vault_data_keys").fetch_one(db.pool()).await.unwrap();
    assert_eq!(keys, 1, "the old data keys are gone");
    assert_every_credential_opens(&db, &key_file, &seeded, "after the resumed rotation").await;
    let out = operator_command(&url, &key_file, &["vault", "status"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("data key {new_data_key} (master key {new_master}"))
            && stdout.contains(&format!("seals {ROTATION_KEYS} value(s)")),
        "{stdout}"
    );

    let out = operator_command(&url, &key_file, &["vault", "retire-master-keys"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("retired 1 master key(s): {old_master}")), "{stdout}");
    assert_eq!(MasterKeys::load(&key_file, false).unwrap().ids(), vec![new_master]);
    assert_every_credential_opens(&db, &key_file, &seeded, "after retiring the old key").await;
    db.close().await;
}

both_engines!(rotation_killed_half_way_resumes);

/// Shutdown waits for what requests left running in the background (a run put back, a
/// stream's settlement, a revocation; here a stand-in that finishes after 300 ms) before the
/// database closes, within `ORO_SHUTDOWN_GRACE_SECS`; past the grace it stops waiting.
async fn shutdown_waits_for_background_work(backend: Backend) {
    for (grace, work, finishes) in [(5, Duration::from_millis(300), true), (1, Duration::from_secs(30), false)] {
        let options = AppOptions { extra: vec![("ORO_SHUTDOWN_GRACE_SECS", grace.to_string())], ..Default::default() };
        let mut app = spawn_app_with(backend, options).await;
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        app.services.spawn_background(async move {
            tokio::time::sleep(work).await;
            flag.store(true, Ordering::SeqCst);
        });
        assert_eq!(app.services.background_work(), 1);
        let started = Instant::now();
        app.shut_down().await;
        assert_eq!(done.load(Ordering::SeqCst), finishes, "grace {grace} s, work {work:?}");
        if !finishes {
            assert!(started.elapsed() < Duration::from_secs(10), "it stopped waiting after the grace: {:?}", started.elapsed());
        }
    }
}

both_engines!(shutdown_waits_for_background_work);

/// A disconnect while a claim waits on its fresh key's check. The claim records its key under
/// the miner's lock after checking the connection is still there, and the disconnect deletes
/// the connection under the same lock and then sweeps the keys recorded meanwhile: whichever
/// goes first, no key minted with the gone credential stays live, and the run is not handed out.
async fn disconnect_during_a_claim_leaves_no_live_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    app.services.submit_agent(&hotkey(&miner), "a", "a.py", AGENT).await.unwrap();
    app.sim.set_fault(Fault::new(FaultTarget::OpenRouterKey, FaultKind::Delay(Duration::from_millis(1500)), Some(1)));
    let claiming = tokio::spawn(app.signed(&app.validator, Method::POST, "/v1/validator/work/claim").send());
    let started = Instant::now();
    while app.sim.list_openrouter_keys(&key).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the claim minted no key");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gone = app.signed(&miner, Method::DELETE, "/v1/miner/inference-auth/openrouter").send().await.unwrap();
    assert_eq!(gone.status(), 200);
    let claimed = claiming.await.unwrap().unwrap();
    assert_eq!(claimed.status(), 204, "{}", claimed.text().await.unwrap());
    assert!(app.sim.faults().is_empty(), "the key's check was held back");
    assert_eq!(app.sim.list_openrouter_keys(&key).len(), 1);
    assert!(live_keys(&app, &key).is_empty(), "the key minted during the disconnect is disabled");
    let (status,): (String,) = sqlx::query_as("SELECT status FROM eval_runs WHERE hotkey = $1")
        .bind(&miner.hotkey)
        .fetch_one(app.services.db.pool())
        .await
        .unwrap();
    assert_eq!(status, "queued", "back in the queue, where its next claim finds no provider");
}

both_engines!(disconnect_during_a_claim_leaves_no_live_key);
