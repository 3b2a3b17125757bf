use std::collections::HashMap;
use std::path::PathBuf;

use reqwest::{Method, RequestBuilder, Response};
use server::startup::Application;
pub use service::db::Backend;
use service::db::testing::TestDatabase;
use service::{Services, Settings};
pub use simulator::Control;

/// Writes `mod NAME { sqlite, postgres }` test pairs around `async fn NAME(Backend)`.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() { super::$name($crate::helpers::Backend::Sqlite).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() { super::$name($crate::helpers::Backend::Postgres).await }
            }
        )*
    };
}

#[path = "../support/wallet.rs"]
mod wallet;
pub use wallet::TestWallet;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub services: Services,
    pub sim: Control,
    pub key_file: PathBuf,
    pub validator: TestWallet,
    _db: TestDatabase,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(dir) = self.key_file.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[derive(Default)]
pub struct AppOptions {
    pub database: Option<String>,
    pub key_file: Option<PathBuf>,
    pub extra: Vec<(&'static str, String)>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, AppOptions::default()).await
}

/// Every test's logs, at debug level, kept in memory so a test can search them for secrets.
static LOGS: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();

struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        // ORO_TEST_LOG=1 shows the server's logs while debugging a test.
        if std::env::var_os("ORO_TEST_LOG").is_some() {
            let _ = std::io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || LogBuffer(writer.clone()))
            .try_init();
        buffer
    });
}

pub fn captured_logs() -> String {
    LOGS.get().map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned()).unwrap_or_default()
}

pub async fn spawn_app_with(backend: Backend, options: AppOptions) -> TestApp {
    capture_logs();
    let db = TestDatabase::create(backend).await;
    let key_file = options
        .key_file
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("oro-app-{}", uuid::Uuid::new_v4().simple())).join("master.key"));
    let validator = TestWallet::new();
    let database_url = options.database.clone().unwrap_or_else(|| secrecy::ExposeSecret::expose_secret(&db.url).to_owned());
    let mut vars: HashMap<String, String> = HashMap::from([
        ("ORO_BIND".into(), "127.0.0.1:0".into()),
        ("ORO_GATEWAY_BIND".into(), "127.0.0.1:0".into()),
        ("DATABASE_URL".into(), database_url),
        ("ORO_MASTER_KEY_FILE".into(), key_file.display().to_string()),
        ("ORO_SIMULATE_PROVIDERS".into(), "1".into()),
        ("ORO_PROVIDER_TIMEOUT_SECS".into(), "2".into()),
        ("ORO_VALIDATOR_HOTKEYS".into(), validator.hotkey.clone()),
        ("ORO_SUBMIT_COOLDOWN_SECS".into(), "0".into()),
    ]);
    for (k, v) in options.extra {
        vars.insert(k.into(), v);
    }
    let settings = Settings::from_vars(&vars).expect("test settings");
    let app = Application::build(settings).await.expect("the application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let services = app.services().clone();
    let sim = app.simulator().expect("simulator on").control();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap();
    TestApp { address, client, services, sim, key_file, validator, _db: db, shutdown: Some(tx), running: Some(running) }
}

impl TestApp {
    /// Shuts the server down as SIGTERM does, and returns once `run_until` has.
    pub async fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(running) = self.running.take() {
            running.await.expect("the server task").expect("the server stops cleanly");
        }
    }

    /// Everything the service stored, as text, for tests that look for a planted secret.
    /// SQLite: the database files themselves, byte for byte (WAL included); PostgreSQL: every
    /// row of every table.
    pub async fn everything_stored(&self, backend: Backend) -> String {
        let mut seen = String::new();
        match backend {
            Backend::Sqlite => {
                let url = secrecy::ExposeSecret::expose_secret(&self.services.settings.database_url).to_owned();
                let path = std::path::PathBuf::from(url.trim_start_matches("sqlite://").split('?').next().unwrap());
                for entry in std::fs::read_dir(path.parent().unwrap()).unwrap() {
                    seen.push_str(&String::from_utf8_lossy(&std::fs::read(entry.unwrap().path()).unwrap()));
                }
            }
            Backend::Postgres => {
                let tables: Vec<(String,)> =
                    sqlx::query_as("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
                        .fetch_all(self.services.db.pool())
                        .await
                        .unwrap();
                assert!(tables.len() > 5);
                for (table,) in tables {
                    let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT row_to_json(t)::text FROM {table} t"))
                        .fetch_all(self.services.db.pool())
                        .await
                        .unwrap();
                    for (row,) in rows {
                        seen.push_str(&row);
                    }
                }
            }
        }
        seen
    }

    /// Puts `hotkey` (SS58) in the validator set, as `server validators add` does.
    pub async fn add_validator(&self, hotkey: &str, note: &str) {
        let hotkey = service::domain::Hotkey::parse(hotkey).unwrap();
        service::auth::roles::grant(&self.services.db, &hotkey, service::auth::roles::Grant::Validator, note, self.services.clock.now())
            .await
            .unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A request signed by `wallet` (a fresh nonce every time), at the service's time: a test
    /// that moves the service's clock moves its clients' with it.
    pub fn signed(&self, wallet: &TestWallet, method: Method, path: &str) -> RequestBuilder {
        let mut request = self.client.request(method, self.url(path));
        for (name, value) in wallet.headers_at(self.services.clock.now(), &uuid::Uuid::new_v4().to_string()) {
            request = request.header(name, value);
        }
        request
    }

    pub async fn get_signed(&self, wallet: &TestWallet, path: &str) -> Response {
        self.signed(wallet, Method::GET, path).send().await.unwrap()
    }

    pub async fn connect_openrouter(&self, wallet: &TestWallet, key: &str) -> Response {
        self.signed(wallet, Method::POST, "/v1/miner/inference-auth/openrouter")
            .json(&serde_json::json!({"credential": key}))
            .send()
            .await
            .unwrap()
    }

    /// Connects Chutes the way oro-sdk's `connect chutes` ends: a code from the IdP and the
    /// PKCE verifier sent to `/v1/miner/chutes/exchange-code`.
    pub async fn connect_chutes(&self, wallet: &TestWallet, username: &str) -> Response {
        self.connect_chutes_with_scope(wallet, username, "chutes:invoke").await
    }

    /// The same, the consent given to `scope`.
    pub async fn connect_chutes_with_scope(&self, wallet: &TestWallet, username: &str, scope: &str) -> Response {
        let pkce = service::providers::chutes::pkce();
        let verifier = secrecy::ExposeSecret::expose_secret(&pkce.verifier).to_owned();
        let redirect = service::config::CLI_LOOPBACK_REDIRECT_URI;
        self.sim.create_chutes_user(username, 25.0, false);
        let code = self.sim.issue_chutes_code(username, &self.services.settings.chutes_client_id, redirect, &pkce.challenge, scope);
        self.signed(wallet, Method::POST, "/v1/miner/chutes/exchange-code")
            .json(&serde_json::json!({"code": code, "code_verifier": verifier, "redirect_uri": redirect}))
            .send()
            .await
            .unwrap()
    }

    /// Signs `wallet` in the way the dashboard does (server functions, `<Bytes>`-wrapped
    /// signature); the client's cookie jar then holds the session.
    pub async fn sign_in_browser(&self, wallet: &TestWallet) {
        self.sign_in_browser_with(&self.client, wallet).await
    }

    /// The same, through a given client (its own cookie jar).
    pub async fn sign_in_browser_with(&self, browser: &reqwest::Client, wallet: &TestWallet) {
        let message = self.begin_sign_in(browser, wallet).await;
        assert_eq!(self.finish_sign_in(browser, wallet, message).await.status(), 200);
    }

    /// The dashboard's sign-in, step 1: the message the wallet is asked to sign.
    pub async fn begin_sign_in(&self, browser: &reqwest::Client, wallet: &TestWallet) -> String {
        browser
            .post(self.url("/api/begin_sign_in"))
            .header("sec-fetch-site", "same-origin")
            .form(&[("address", wallet.hotkey.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Step 2: `message` signed by `wallet` as a browser wallet signs (`<Bytes>`-wrapped).
    pub async fn finish_sign_in(&self, browser: &reqwest::Client, wallet: &TestWallet, message: String) -> Response {
        let signature = wallet.sign(&wire::signing::wrap_bytes(message.as_bytes()));
        browser
            .post(self.url("/api/finish_sign_in"))
            .header("sec-fetch-site", "same-origin")
            .form(&[("message", message), ("signature", signature)])
            .send()
            .await
            .unwrap()
    }

    pub async fn status(&self, wallet: &TestWallet) -> serde_json::Value {
        let response = self.get_signed(wallet, "/v1/miner/inference-auth").await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

pub async fn detail(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["detail"].as_str().map(str::to_owned).unwrap_or_else(|| body["detail"].to_string()))
}

/// Bittensor wallets (hotkey `h1`) made by a venv's own `bittensor_wallet` under `home`, as a
/// miner or validator makes them; their hotkeys, in order.
pub async fn bittensor_wallets(python: &std::path::Path, home: &std::path::Path, names: &[&str]) -> Vec<String> {
    let mut hotkeys = Vec::new();
    for name in names {
        let script = format!(
            "from bittensor_wallet import Wallet\nw = Wallet(name='{name}', hotkey='h1', path='{}/.bittensor/wallets')\nw.create_if_non_existent(coldkey_use_password=False, hotkey_use_password=False, suppress=True)\nprint(w.hotkey.ss58_address)\n",
            home.display()
        );
        let out = tokio::process::Command::new(python).arg("-c").arg(script).env("HOME", home).output().await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        hotkeys.push(String::from_utf8(out.stdout).unwrap().trim().to_owned());
    }
    hotkeys
}
