//! The real server (SQLite, provider simulator) on port 0, wallets written by Python's
//! `bittensor_wallet`, and the built `oro` binary run against them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use server::startup::Application;
use service::db::Backend;
use service::db::testing::TestDatabase;
use service::{Services, Settings};
use simulator::Control;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub const OROBIN: &str = env!("CARGO_BIN_EXE_oro");
pub const ENCRYPTED_PASSWORD: &str = "Correct-Horse-9";
/// The loopback port's lock, shared with the Python CLI's test suite.
pub const LOOPBACK_LOCK: &str = "/tmp/oro-loopback-8765.lock";

/// The Python that has `bittensor_wallet`: `ORO_SDK_PYTHON`, else the shared dependencies of
/// the repo's oro-sdk venvs (`.venv-oro/base`, made by `server/tests/oro_sdk/install.sh`).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ORO_SDK_PYTHON") {
        return PathBuf::from(p);
    }
    let candidates = [Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-oro/base/bin/python")];
    candidates.into_iter().find(|p| p.exists()).unwrap_or_else(|| {
        panic!(
            "these tests need a Python with bittensor_wallet: set ORO_SDK_PYTHON, or run server/tests/oro_sdk/install.sh (./dev test does)"
        )
    })
}

/// Wallets made once per test run by bittensor_wallet: `plain/h1` (clear JSON) and `enc/h1`
/// (`$NACL`, password [`ENCRYPTED_PASSWORD`]).
pub struct Wallets {
    pub dir: PathBuf,
    pub plain_ss58: String,
    pub encrypted_ss58: String,
}

pub fn wallets() -> &'static Wallets {
    static WALLETS: OnceLock<Wallets> = OnceLock::new();
    WALLETS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("oro-cli-wallets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = r#"
import sys
from bittensor_wallet import Wallet
path, password = sys.argv[1], sys.argv[2]
plain = Wallet(name="plain", hotkey="h1", path=path)
plain.create_if_non_existent(coldkey_use_password=False, hotkey_use_password=False, suppress=True)
enc = Wallet(name="enc", hotkey="h1", path=path)
enc.create_if_non_existent(coldkey_use_password=False, hotkey_use_password=True, hotkey_password=password, suppress=True)
print("PLAIN", plain.hotkey.ss58_address)
print("ENC", enc.hotkeypub.ss58_address)
"#;
        let output = std::process::Command::new(python())
            .arg("-c")
            .arg(script)
            .arg(&dir)
            .arg(ENCRYPTED_PASSWORD)
            .stdin(Stdio::null())
            .output()
            .expect("run Python to create the test wallets");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "bittensor_wallet failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        let find = |tag: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(tag).map(|s| s.trim().to_owned()))
                .unwrap_or_else(|| panic!("no {tag} line in {stdout}"))
        };
        let wallets = Wallets { plain_ss58: find("PLAIN "), encrypted_ss58: find("ENC "), dir };
        let encrypted = std::fs::read(wallets.dir.join("enc/hotkeys/h1")).unwrap();
        assert!(encrypted.starts_with(b"$NACL"), "bittensor wrote an encrypted hotkey");
        wallets
    })
}

pub struct TestApp {
    pub address: String,
    pub services: Services,
    pub sim: Control,
    key_file: PathBuf,
    _db: TestDatabase,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
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

pub async fn spawn_app() -> TestApp {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let key_file = std::env::temp_dir().join(format!("oro-cli-app-{}", uuid::Uuid::new_v4().simple())).join("master.key");
    let vars: HashMap<String, String> = HashMap::from([
        ("ORO_BIND".into(), "127.0.0.1:0".into()),
        ("ORO_GATEWAY_BIND".into(), "127.0.0.1:0".into()),
        ("DATABASE_URL".into(), secrecy::ExposeSecret::expose_secret(&db.url).to_owned()),
        ("ORO_MASTER_KEY_FILE".into(), key_file.display().to_string()),
        ("ORO_SIMULATE_PROVIDERS".into(), "1".into()),
        ("ORO_PROVIDER_TIMEOUT_SECS".into(), "2".into()),
        ("ORO_SUBMIT_COOLDOWN_SECS".into(), "0".into()),
        // Our CLI signs every request bound to it: every test here runs where the routes that
        // can refuse plain signatures do.
        ("ORO_REQUIRE_BOUND_SIGNATURES".into(), "claim,submit,disconnect,budget".into()),
    ]);
    let settings = Settings::from_vars(&vars).expect("test settings");
    let app = Application::build(settings).await.expect("the application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let services = app.services().clone();
    let sim = app.simulator().expect("simulator on").control();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp { address, services, sim, key_file, _db: db, shutdown: Some(tx) }
}

impl TestApp {
    /// `oro ARGS` against this server with the test wallet `plain/h1`.
    pub fn oro(&self, args: &[&str]) -> OroCommand {
        oro_against(&self.address, args)
    }

    /// The simulated Chutes IdP base (`https://api.chutes.ai` stand-in).
    pub fn chutes_base(&self) -> String {
        self.services.settings.chutes_api_base.clone()
    }
}

/// An `oro` command line to run: the test's arguments plus the global options.
pub struct OroCommand {
    args: Vec<String>,
    base_url: String,
    wallet_path: PathBuf,
    wallet_name: String,
    wallet_hotkey: String,
    envs: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    terminal: bool,
}

/// `oro ARGS --base-url BASE --wallet-path <test wallets> --wallet-name plain --wallet-hotkey h1`.
pub fn oro_against(base_url: &str, args: &[&str]) -> OroCommand {
    OroCommand {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        base_url: base_url.to_owned(),
        wallet_path: wallets().dir.clone(),
        wallet_name: "plain".into(),
        wallet_hotkey: "h1".into(),
        envs: Vec::new(),
        stdin: None,
        terminal: false,
    }
}

impl OroCommand {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn wallet(mut self, path: &Path, name: &str, hotkey: &str) -> Self {
        self.wallet_path = path.to_owned();
        self.wallet_name = name.to_owned();
        self.wallet_hotkey = hotkey.to_owned();
        self
    }

    /// The wallet from `ORO_WALLET_NAME` and `ORO_WALLET_HOTKEY` instead of the options.
    pub fn wallet_from_env(mut self) -> Self {
        self.envs.push(("ORO_WALLET_NAME".into(), std::mem::take(&mut self.wallet_name)));
        self.envs.push(("ORO_WALLET_HOTKEY".into(), std::mem::take(&mut self.wallet_hotkey)));
        self
    }

    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// Runs `oro` on a pseudo-terminal (util-linux `script`), as a person at a shell would:
    /// stdin and stdout are a terminal, and stdout carries stderr too.
    pub fn in_terminal(mut self) -> Self {
        self.terminal = true;
        self
    }

    /// The process, in an environment cleared of the variables `oro` reads.
    fn command(&self) -> Command {
        let mut line: Vec<String> = vec![OROBIN.to_owned()];
        line.extend(self.args.iter().cloned());
        line.extend(["--base-url".into(), self.base_url.clone(), "--wallet-path".into(), self.wallet_path.display().to_string()]);
        if !self.wallet_name.is_empty() {
            line.extend(["--wallet-name".into(), self.wallet_name.clone(), "--wallet-hotkey".into(), self.wallet_hotkey.clone()]);
        }
        let mut command = if self.terminal {
            let quoted: Vec<String> = line.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
            let mut script = Command::new("script");
            script.args(["-qefc", &quoted.join(" "), "/dev/null"]);
            script
        } else {
            let mut direct = Command::new(&line[0]);
            direct.args(&line[1..]);
            direct
        };
        for var in [
            "ORO_API_URL",
            "BT_WALLET_PATH",
            "ORO_WALLET_PASSWORD",
            "BROWSER",
            "CHUTES_CLIENT_ID",
            "ORO_CHUTES_API_BASE",
            "ORO_WALLET_NAME",
            "ORO_WALLET_HOTKEY",
        ] {
            command.env_remove(var);
        }
        // Times print in the local zone: UTC unless a test says otherwise.
        command.env("TZ", "UTC0");
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        // A terminal's input stays open (script ends the session when its stdin does).
        let stdin = if self.stdin.is_some() || self.terminal { Stdio::piped() } else { Stdio::null() };
        command.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        command
    }

    /// Runs to the end (at most 120 s).
    pub async fn run(self) -> Outcome {
        let mut child = self.command().spawn().expect("start oro");
        if let Some(bytes) = &self.stdin {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(bytes).await.unwrap();
            drop(stdin);
        }
        let output =
            tokio::time::timeout(Duration::from_secs(120), child.wait_with_output()).await.expect("oro finishes within 120 s").unwrap();
        Outcome {
            code: output.status.code().expect("oro exits normally"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn spawn(self) -> RunningOro {
        let mut child = self.command().spawn().expect("start oro");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        RunningOro { child, stdout, seen: String::new() }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "oro failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// No Rust panic or backtrace on either stream.
    #[track_caller]
    pub fn assert_clean(&self) -> &Self {
        for text in [&self.stdout, &self.stderr] {
            assert!(!text.contains("panicked") && !text.contains("RUST_BACKTRACE"), "{text}");
        }
        self
    }
}

/// An `oro` still running (the Chutes flow), its stdout read line by line.
pub struct RunningOro {
    child: Child,
    stdout: BufReader<tokio::process::ChildStdout>,
    pub seen: String,
}

impl RunningOro {
    /// Types into the terminal (`in_terminal`): `\x03` is Ctrl-C.
    pub async fn type_keys(&mut self, keys: &[u8]) {
        let stdin = self.child.stdin.as_mut().expect("oro runs with a stdin to type into");
        stdin.write_all(keys).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Reads stdout until a line contains `needle`; returns that line.
    pub async fn line_containing(&mut self, needle: &str) -> String {
        let read = async {
            loop {
                let mut line = String::new();
                let n = self.stdout.read_line(&mut line).await.unwrap();
                assert!(n > 0, "oro closed stdout before printing {needle:?}; it printed: {}", self.seen);
                self.seen.push_str(&line);
                if line.contains(needle) {
                    return line;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read).await.expect("oro prints the line in time")
    }

    pub async fn finish(mut self) -> Outcome {
        let mut rest = String::new();
        let mut stderr = String::new();
        let mut err_pipe = self.child.stderr.take().unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            self.stdout.read_to_string(&mut rest).await.unwrap();
            err_pipe.read_to_string(&mut stderr).await.unwrap();
            self.child.wait().await.unwrap()
        })
        .await
        .expect("oro finishes within 60 s");
        Outcome { code: waited.code().expect("oro exits normally"), stdout: format!("{}{rest}", self.seen), stderr }
    }
}

/// The exclusive lock on the loopback port 8765, held for a test's duration.
pub struct LoopbackLock(#[allow(dead_code)] std::fs::File);

pub async fn lock_loopback_port() -> LoopbackLock {
    tokio::task::spawn_blocking(|| {
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(LOOPBACK_LOCK).expect("open the loopback lock file");
        file.lock().expect("lock the loopback port");
        LoopbackLock(file)
    })
    .await
    .unwrap()
}

/// The URL `oro` printed in a line.
pub fn url_in(line: &str) -> String {
    line.split_whitespace().find(|w| w.starts_with("http")).expect("a URL in the line").to_owned()
}

/// The query parameters of a URL.
pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(30)).build().unwrap()
}

/// What a person does on the (simulated) Chutes consent page: open the authorize URL, then
/// press Allow or Deny. Returns where the IdP sends the browser (the loopback callback).
pub async fn consent(chutes_base: &str, authorize_url: &str, username: &str, decision: &str) -> String {
    let client = http();
    let page = client.get(authorize_url).send().await.unwrap();
    assert_eq!(page.status(), 200, "the IdP accepts the authorize URL");
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("name=\"decision\" value=\"{decision}\"")), "{html}");
    let mut form = query_of(authorize_url);
    form.insert("username".into(), username.into());
    form.insert("decision".into(), decision.into());
    let answer = client.post(format!("{chutes_base}/idp/authorize")).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), 302, "{:?}", answer.text().await);
    answer.headers()["location"].to_str().unwrap().to_owned()
}

/// A GET as the browser makes it, to the loopback listener: status and page.
pub async fn browser_get(url: &str) -> (u16, String) {
    let response = http().get(url).send().await.expect("the loopback listener answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
