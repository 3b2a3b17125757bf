//! `cargo bench -p server --bench http`: the public model list under load, and signed-request
//! verification, each next to its physical ceiling measured in the same run.
//!
//! 1. `GET /v1/public/inference/models`: 64 kept-alive connections for a fixed time, against
//!    (a) the real `Application` in this process (SQLite), (b) a bare axum handler returning
//!    the very same bytes and headers, and (c) the real `server` binary in its own process,
//!    whose resident memory can be read apart from the load generator's.
//! 2. Signed requests: raw `schnorrkel` `verify_simple(b"substrate", ...)` on pre-parsed keys,
//!    the service's `signature::verify`, the pure `signed_request::check`, and the full
//!    `signed_request::verify` with its nonce insert on SQLite and PostgreSQL.
//!
//! Writes `target/bench/http.md`.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Request, header};
use common::{Figures, Memory, Signed, Wallet, figures, memory, mib, ms, reset_peak, write_fragment};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use server::startup::Application;
use service::auth::signed_request::{self, SignedHeaders};
use service::db::Backend;
use service::db::testing::TestDatabase;

const MODELS: &str = "/v1/public/inference/models";
const CONNECTIONS: usize = 64;
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
/// Each server gets this many loads, the servers taking turns.
const ROUNDS: usize = 3;
/// How long each CPU-only verification loop runs.
const CPU_LOOP: Duration = Duration::from_secs(2);
/// Signed requests (fresh nonces) per database verification run.
const DB_VERIFICATIONS: usize = 10_000;
const SKEW_SECS: i64 = 300;

// ---------------------------------------------------------------------------------------
// Load generator: CONNECTIONS hyper HTTP/1.1 connections, each sending its next request as
// soon as the previous response body is in. Requests started during the warm-up are not
// counted; throughput is requests started in the measuring window over its length.

async fn connection(addr: SocketAddr, expect: Bytes, warm_end: Instant, end: Instant) -> Vec<Duration> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut latencies = Vec::with_capacity(16_384);
    let mut checked = false;
    loop {
        let t = Instant::now();
        if t >= end {
            break;
        }
        let request = Request::get(MODELS).header(header::HOST, "127.0.0.1").body(Empty::<Bytes>::new()).unwrap();
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        if !checked {
            assert_eq!(body, expect, "both servers must answer the same bytes");
            checked = true;
        }
        assert_eq!(body.len(), expect.len());
        if t >= warm_end {
            latencies.push(t.elapsed());
        }
    }
    latencies
}

async fn drive(addr: SocketAddr, expect: Bytes) -> Figures {
    let warm_end = Instant::now() + WARM_UP;
    let end = warm_end + MEASURE;
    let tasks: Vec<_> = (0..CONNECTIONS).map(|_| tokio::spawn(connection(addr, expect.clone(), warm_end, end))).collect();
    let latencies = common::gather(tasks).await;
    figures(latencies, MEASURE)
}

/// One load on its own runtime (so the generator never runs on the server's workers), with
/// the memory of `pid` sampled before and after; the peak is reset first.
fn load(load_rt: &tokio::runtime::Runtime, port: u16, expect: &Bytes, pid: &str) -> (Figures, Memory, Memory, bool) {
    let before = memory(pid);
    let reset = reset_peak(pid);
    let figures = load_rt.block_on(drive(SocketAddr::from(([127, 0, 0, 1], port)), expect.clone()));
    (figures, before, memory(pid), reset)
}

// ---------------------------------------------------------------------------------------
// The servers.

struct Models {
    body: Bytes,
    headers: HeaderMap,
}

async fn fetch_models(port: u16) -> Models {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{MODELS}")).await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    Models { body: response.bytes().await.unwrap(), headers }
}

/// The ceiling: axum answering the same bytes with the same content headers, nothing else.
async fn spawn_bare(models: &Models) -> u16 {
    let mut headers = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL, header::ETAG] {
        if let Some(v) = models.headers.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    assert_eq!(headers.get(header::CONTENT_TYPE), Some(&HeaderValue::from_static("application/json")));
    let body = models.body.clone();
    let router = axum::Router::new().route(MODELS, axum::routing::get(move || std::future::ready((headers.clone(), body.clone()))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // The real server sets TCP_NODELAY too.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    port
}

fn settings_vars(db: &TestDatabase, dir: &std::path::Path, bind: &str) -> HashMap<String, String> {
    HashMap::from([
        ("ORO_BIND".into(), bind.into()),
        ("ORO_GATEWAY_BIND".into(), "127.0.0.1:0".into()),
        ("DATABASE_URL".into(), secrecy::ExposeSecret::expose_secret(&db.url).to_owned()),
        ("ORO_MASTER_KEY_FILE".into(), dir.join("master.key").display().to_string()),
    ])
}

/// The release `server` binary (built by `cargo bench` with this bench), on a free port.
fn spawn_binary(vars: &HashMap<String, String>, dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .envs(vars)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start target/release/server")
}

async fn wait_healthy(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/health")).await
            && r.status() == 200
        {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server binary exited: {status}");
        }
        assert!(Instant::now() < deadline, "the server binary did not become healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------
// Signed requests.

/// Calls `f` for CPU_LOOP (after a short warm-up) and returns calls per second.
fn per_second(mut f: impl FnMut(usize)) -> f64 {
    let warm = Instant::now();
    let mut i = 0;
    while warm.elapsed() < Duration::from_millis(200) {
        f(i);
        i += 1;
    }
    let started = Instant::now();
    let mut n = 0;
    loop {
        for _ in 0..64 {
            f(n);
            n += 1;
        }
        if started.elapsed() >= CPU_LOOP {
            break;
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn headers(s: &Signed) -> SignedHeaders<'_> {
    SignedHeaders { hotkey: Some(&s.hotkey), timestamp: Some(&s.timestamp), nonce: Some(&s.nonce), signature: Some(&s.signature) }
}

/// `signed_request::verify` (checks, then the nonce insert) over fresh signed requests, from
/// `callers` tasks at once.
async fn verify_on(backend: Backend, callers: usize, wallet: &Wallet) -> Figures {
    let test_db = TestDatabase::create(backend).await;
    let db = test_db.connect().await;
    let now = service::clock::system_now();
    let requests: Arc<Vec<Signed>> = Arc::new((0..DB_VERIFICATIONS).map(|_| wallet.signed(now)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (db, requests, next) = (db.clone(), requests.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(s) = requests.get(i) else { break };
                    let t = Instant::now();
                    signed_request::verify(&db, SKEW_SECS, &headers(s), now).await.unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let latencies = common::gather(tasks).await;
    let result = figures(latencies, started.elapsed());
    db.close().await;
    result
}

fn signatures(server_rt: &tokio::runtime::Runtime) -> String {
    let wallet = Wallet::new(7);
    let now = service::clock::system_now();
    let set: Vec<Signed> = (0..1024).map(|_| wallet.signed(now)).collect();
    let public = wallet.pair.public;
    let public_bytes = public.to_bytes();
    let parsed = common::parsed(&set);

    let raw = per_second(|i| {
        let (message, signature, _) = &parsed[i % parsed.len()];
        assert!(std::hint::black_box(public.verify_simple(b"substrate", message.as_bytes(), signature)).is_ok());
    });
    let service_verify = per_second(|i| {
        let (message, _, bytes) = &parsed[i % parsed.len()];
        assert!(std::hint::black_box(service::auth::signature::verify(&public_bytes, message.as_bytes(), bytes)));
    });
    let check = per_second(|i| {
        assert!(std::hint::black_box(signed_request::check(SKEW_SECS, &headers(&set[i % set.len()]), now)).is_ok());
    });

    let mut rows = vec![
        (
            "raw `schnorrkel` `PublicKey::verify_simple(b\"substrate\", ...)`, key and signature parsed beforehand (baseline)".to_owned(),
            raw,
            None,
        ),
        ("`service::auth::signature::verify` (parses key and signature, then verifies)".to_owned(), service_verify, None),
        ("`signed_request::check` (headers, ss58 hotkey, clock, hex signature, message, verify; no database)".to_owned(), check, None),
    ];
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for callers in [1, 16] {
            let f = server_rt.block_on(verify_on(backend, callers, &wallet));
            rows.push((
                format!("`signed_request::verify` with the nonce insert, {backend:?}, {callers} concurrent caller(s)"),
                f.per_second,
                Some(f),
            ));
        }
    }
    let mut out = String::from(
        "| path | verifications/s | µs per verification (1 / rate) | p50 | p99 | rate ratio to raw schnorrkel |\n|---|---|---|---|---|---|\n",
    );
    for (name, per_second, latency) in rows {
        let (p50, p99) = latency.map(|f| (ms(f.p50), ms(f.p99))).unwrap_or(("".into(), "".into()));
        out.push_str(&format!("| {name} | {per_second:.0} | {:.1} | {p50} | {p99} | {:.3} |\n", 1e6 / per_second, per_second / raw));
    }
    out
}

// ---------------------------------------------------------------------------------------

/// The loads of one server across rounds.
#[derive(Default)]
struct Series {
    rounds: Vec<Figures>,
    before: Option<Memory>,
    after: Memory,
    peak_kib: u64,
    peaks_reset: bool,
}

impl Series {
    fn add(&mut self, (figures, before, after, reset): (Figures, Memory, Memory, bool)) {
        self.rounds.push(figures);
        self.before.get_or_insert(before);
        self.after = after;
        self.peak_kib = self.peak_kib.max(after.hwm_kib);
        self.peaks_reset = reset && (self.peaks_reset || self.rounds.len() == 1);
    }

    /// The round with the median throughput.
    fn median(&self) -> &Figures {
        let mut by_rate: Vec<&Figures> = self.rounds.iter().collect();
        by_rate.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
        by_rate[by_rate.len() / 2]
    }

    fn range(&self) -> String {
        let rates = self.rounds.iter().map(|f| f.per_second);
        format!("{:.0} to {:.0}", rates.clone().fold(f64::INFINITY, f64::min), rates.fold(0.0, f64::max))
    }
}

/// The model list straight from `Services`, no HTTP: CONNECTIONS callers at once for 2 s.
async fn catalog_only(services: service::Services) -> Figures {
    let end = Instant::now() + CPU_LOOP;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let services = services.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    std::hint::black_box(services.catalog_json(wire::Provider::Chutes, false).await.unwrap());
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let latencies = common::gather(tasks).await;
    figures(latencies, CPU_LOOP)
}

fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let server_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // `ORO_BENCH_ONLY=signatures`: the signature table alone, to compare two builds quickly.
    if std::env::var("ORO_BENCH_ONLY").as_deref() == Ok("signatures") {
        println!("{}", signatures(&server_rt));
        return;
    }
    let load_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();

    // The real binary in its own process, on its own SQLite database.
    let bin_db = server_rt.block_on(TestDatabase::create(Backend::Sqlite));
    let bin_dir = std::env::temp_dir().join(format!("oro-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin_port = free_port();
    let mut child = spawn_binary(&settings_vars(&bin_db, &bin_dir, &format!("127.0.0.1:{bin_port}")), &bin_dir);
    server_rt.block_on(wait_healthy(bin_port, &mut child));
    let pid = child.id().to_string();
    let bin_idle = memory(&pid);

    // The real Application in this process, and the bare handler with its bytes.
    let db = server_rt.block_on(TestDatabase::create(Backend::Sqlite));
    let dir = std::env::temp_dir().join(format!("oro-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (app_port, services) = server_rt.block_on(async {
        let app = Application::build(service::Settings::from_vars(&settings_vars(&db, &dir, "127.0.0.1:0")).unwrap()).await.unwrap();
        let (port, services) = (app.port(), app.services().clone());
        tokio::spawn(app.run_until(std::future::pending()));
        (port, services)
    });
    let models = server_rt.block_on(fetch_models(app_port));
    let bin_models = server_rt.block_on(fetch_models(bin_port));
    assert_eq!(bin_models.body, models.body, "the binary serves the same model list");
    let bare_port = server_rt.block_on(spawn_bare(&models));

    // Rounds in turn, so that a slow patch of the machine does not land on one server only.
    let (mut bare, mut real, mut binary) = (Series::default(), Series::default(), Series::default());
    for _ in 0..ROUNDS {
        bare.add(load(&load_rt, bare_port, &models.body, "self"));
        real.add(load(&load_rt, app_port, &models.body, "self"));
        binary.add(load(&load_rt, bin_port, &models.body, &pid));
    }
    let catalog = server_rt.block_on(catalog_only(services));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&bin_dir);

    let base = bare.median();
    let mut speed = String::from(
        "| server | req/s (median round) | req/s, all rounds | p50 | p99 | req/s ratio to bare | p99 ratio to bare |\n|---|---|---|---|---|---|---|\n",
    );
    for (name, series) in [
        ("bare axum handler, same bytes and headers, in the bench process (baseline)", &bare),
        ("real `Application` in the bench process (SQLite)", &real),
        ("real `server` binary, own process (SQLite)", &binary),
    ] {
        let f = series.median();
        speed.push_str(&format!(
            "| {name} | {:.0} | {} | {} | {} | {:.3} | {:.2}x |\n",
            f.per_second,
            series.range(),
            ms(f.p50),
            ms(f.p99),
            f.per_second / base.per_second,
            f.p99.as_secs_f64() / base.p99.as_secs_f64()
        ));
    }
    speed.push_str(&format!(
        "| diagnostic: `Services::catalog_json` alone (the handler's database read and JSON), {CONNECTIONS} callers in the bench process, no HTTP | {:.0} | | {} | {} | {:.3} | |\n",
        catalog.per_second,
        ms(catalog.p50),
        ms(catalog.p99),
        catalog.per_second / base.per_second,
    ));
    let mut rss = String::from(
        "| process, load | RSS before the first round | RSS after the last round | highest peak of a round |\n|---|---|---|---|\n",
    );
    for (name, series) in [
        ("bench process (in-process servers + load generator), bare rounds", &bare),
        ("bench process (same), real `Application` rounds", &real),
        ("`server` binary alone, its rounds", &binary),
    ] {
        let before = series.before.unwrap_or_default();
        rss.push_str(&format!("| {name} | {} | {} | {} |\n", mib(before.rss_kib), mib(series.after.rss_kib), mib(series.peak_kib)));
    }
    let peak_note = if bare.peaks_reset && real.peaks_reset && binary.peaks_reset {
        "the peak is `VmHWM`, reset through `/proc/<pid>/clear_refs` just before each round"
    } else {
        "the kernel refused to reset `VmHWM`, so a peak is the process's peak since it started"
    };
    let body_len = models.body.len();
    let signatures = signatures(&server_rt);
    drop(db);
    drop(bin_db);

    let out = format!(
        "## `GET {MODELS}` under load\n\n\
         `cargo bench -p server --bench http`. {CONNECTIONS} kept-alive HTTP/1.1 connections on loopback (hyper client), each sending its next \
         request when the previous body is in; {}s warm-up, then {}s measured; latency from sending to the end of the body; {ROUNDS} rounds, \
         the three servers taking turns, and the round with the median throughput reported. The body is {body_len} bytes of JSON. The baseline is a bare axum route returning exactly the bytes the real service answered, with the same \
         `Content-Type`, `Cache-Control` and `ETag`. The real service answers from its in-memory copy of the catalog (refreshed from the database \
         every 5 s) and runs the public routes' stack (the edge layer: metrics, the size guard and the security headers; the tracing \
         span; the timeout; the public guard: a request slot and the NUL check); the diagnostic row is the uncached database read. \
         **The load generator runs on the same {cores} cores** (its own tokio runtime, {cores} workers; the in-process servers have another \
         runtime with {cores} workers), so these are figures for client and server together on this machine, not a server-only ceiling.\n\n\
         {speed}\n\
         Resident memory ({peak_note}). The first two rows are the bench process, which holds the in-process server, the bare server, \
         the load generator and its latency samples, so they say little about the server; the last row is the `server` binary alone, \
         which had {} resident when idle after start-up:\n\n{rss}\n\
         ## Signed-request verification\n\n\
         One thread for the CPU-only rows ({}s each, 1024 distinct signed messages in turn); the database rows spend {DB_VERIFICATIONS} fresh \
         nonces each, on a fresh database, with the service's pools (SQLite: one connection; PostgreSQL: up to 16). The message is the one \
         the service verifies: `{{hotkey}}:{{timestamp}}:{{nonce}}` signed with context `substrate`.\n\n{signatures}",
        WARM_UP.as_secs(),
        MEASURE.as_secs(),
        mib(bin_idle.rss_kib),
        CPU_LOOP.as_secs(),
    );
    write_fragment("http", &out);
    load_rt.shutdown_background();
    server_rt.shutdown_background();
}
