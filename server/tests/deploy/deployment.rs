//! Brings up the deployment of docs/OPERATING.md on loopback: a fresh PostgreSQL database, the
//! provider simulator in this process, replicas of the `server` binary configured from
//! `deploy/env/`, and nginx running `deploy/nginx/oro-inference.conf` as
//! `deploy/nginx/render.sh` renders it. Every child process is killed when the deployment is
//! dropped, a panic included; on a panic the logs are printed first.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use service::db::Backend;
use service::db::testing::TestDatabase;

/// The public names the rendered configuration serves (resolved to loopback by the clients).
pub const API_NAME: &str = "api.oro.test";
pub const GATEWAY_NAME: &str = "gateway.oro.test";
/// The per-IP sign-in limit the replicas run with: small, so the test can exhaust it.
pub const SIGN_IN_PER_IP: usize = 6;
/// Its window, in seconds (`6/h`).
pub const SIGN_IN_WINDOW_SECS: i64 = 3600;
pub const METRICS_TOKEN: &str = "deploy-test-metrics-token";
const CHUTES_CLIENT_SECRET: &str = "deploy-test-chutes-secret";
/// How docs/OPERATING.md makes the master key file (`umask 077; ... > FILE`): one `<id> <64 hex
/// digits>` line, mode 0600.
const MASTER_KEY_SCRIPT: &str = r#"umask 077; printf 'mk-%s %s\n' "$(openssl rand -hex 6)" "$(openssl rand -hex 32)""#;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace holds the server crate").to_path_buf()
}

/// `N` distinct free loopback ports, for children that will listen on them, and the listeners
/// that hold them until the caller drops them. Each port is held while the next is picked: a
/// port bound and at once released can come back from the very next `bind(0)` (CI once gave
/// nginx the same port for two `listen`s).
pub fn free_ports<const N: usize>() -> ([u16; N], Vec<TcpListener>) {
    let held: Vec<TcpListener> = (0..N).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let ports = std::array::from_fn(|i| held[i].local_addr().unwrap().port());
    (ports, held)
}

#[path = "../support/wallet.rs"]
mod wallet;
pub use wallet::TestWallet as Wallet;

/// A child process, killed (SIGKILL) and reaped when dropped; its output goes to `log`.
pub struct Process {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Process {
    fn spawn(name: &str, mut command: Command, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).unwrap();
        command.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process { name: name.to_owned(), log, child: Some(child) }
    }

    /// SIGKILL, as a crash or the OOM killer would; answers how it ended.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the process is running");
        child.kill().unwrap();
        child.wait().unwrap()
    }

    /// Panics (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
            panic!("{} exited ({status}):\n{}", self.name, tail(&self.log, 60));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Reads a systemd EnvironmentFile as the examples in `deploy/env/` are written: `KEY=value`
/// lines, `#` comments.
fn env_file(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{}: not KEY=value: {l}", path.display()));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// One replica: its ports and its process (`None` once killed).
pub struct Replica {
    pub name: String,
    pub api_port: u16,
    pub gateway_port: u16,
    pub log: PathBuf,
    pub process: Option<Process>,
}

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.api_port)
    }
}

pub struct Deployment {
    pub dir: PathBuf,
    pub replicas: Vec<Replica>,
    nginx: Option<Process>,
    nginx_bin: PathBuf,
    nginx_conf: PathBuf,
    pub access_log: PathBuf,
    /// `http://127.0.0.1:PORT`: the plain loopback listeners of the API and of the gateway.
    pub api: String,
    pub gateway: String,
    pub https_port: u16,
    pub http_port: u16,
    /// The settings every replica runs with, but for its own ports.
    pub shared_vars: HashMap<String, String>,
    pub validators: Vec<Wallet>,
    pub sim: simulator::RunningSimulator,
    pub db: TestDatabase,
}

fn find_tool(name: &str, what: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    found.unwrap_or_else(|| panic!("{name} is not installed ({what}): `./dev test` installs it (apt-get install -y {name})"))
}

impl Deployment {
    /// Everything up and answering; `validators` hotkeys are in ORO_VALIDATOR_HOTKEYS.
    pub async fn start(validators: usize) -> Self {
        let nginx_bin = find_tool("nginx", "the deployment test runs Debian's nginx in front of the replicas");
        let openssl = find_tool("openssl", "the deployment test makes a throw-away TLS certificate");
        let dir = std::env::temp_dir().join(format!("oro-deploy-{}", uuid::Uuid::new_v4().simple()));
        // 0755 (the default umask): nginx's workers run as nobody when the test runs as root,
        // and write their temporary files in here.
        std::fs::create_dir_all(&dir).unwrap();
        let db = TestDatabase::create(Backend::Postgres).await;
        let validators: Vec<Wallet> = (0..validators).map(|_| Wallet::new()).collect();

        // Every port of the deployment at once, held until the simulator has its own (it binds
        // port 0 too) and released just before the children that listen on them start.
        let ([nginx_api_port, nginx_gateway_port, https_port, http_port, api_1, gateway_1, api_2, gateway_2], held_ports) = free_ports();
        let api = format!("http://127.0.0.1:{nginx_api_port}");
        let gateway = format!("http://127.0.0.1:{nginx_gateway_port}");

        // The providers: one simulator in this process that both replicas reach, as they would
        // reach Chutes and OpenRouter.
        let defaults = service::Settings::from_vars(&HashMap::new()).unwrap();
        let sim = simulator::spawn(
            "127.0.0.1:0".parse().unwrap(),
            simulator::SimulatorConfig {
                chutes_client_id: defaults.chutes_client_id.clone(),
                chutes_client_secret: CHUTES_CLIENT_SECRET.into(),
                chutes_redirect_uris: vec![format!("{api}/oauth/chutes/callback"), service::config::CLI_LOOPBACK_REDIRECT_URI.to_owned()],
                ..Default::default()
            },
        )
        .await
        .unwrap();

        // One master key file for every replica, made before they start (production never
        // generates it) by the command docs/OPERATING.md gives.
        let key_file = dir.join("master.key");
        let made = Command::new("sh").arg("-c").arg(format!("{MASTER_KEY_SCRIPT} > \"$0\"")).arg(&key_file).output().unwrap();
        assert!(made.status.success(), "making the master key: {}", String::from_utf8_lossy(&made.stderr));
        service::vault::MasterKeys::load(&key_file, false).expect("the service reads the key file made as documented");

        // The shared production settings of deploy/env/, with what is particular to a machine
        // replaced by this test's: each of these must be in the example, so the two stay in step.
        let mut shared_vars: HashMap<String, String> = env_file(&workspace().join("deploy/env/oro-inference.env")).into_iter().collect();
        assert_eq!(shared_vars.get("ORO_ENV").map(String::as_str), Some("production"), "the example is a production configuration");
        assert_eq!(shared_vars.get("ORO_TRUST_FORWARDED_FOR").map(String::as_str), Some("1"), "replicas behind nginx trust it");
        let replaced = [
            ("DATABASE_URL", secrecy::ExposeSecret::expose_secret(&db.url).to_owned()),
            ("ORO_MASTER_KEY_FILE", key_file.display().to_string()),
            ("ORO_PUBLIC_URL", api.clone()),
            ("ORO_GATEWAY_PUBLIC_URL", gateway.clone()),
            ("ORO_CHUTES_CLIENT_SECRET", CHUTES_CLIENT_SECRET.into()),
            ("ORO_METRICS_TOKEN", METRICS_TOKEN.into()),
            ("ORO_VALIDATOR_HOTKEYS", validators.iter().map(|v| v.hotkey.clone()).collect::<Vec<_>>().join(",")),
        ];
        for (name, value) in replaced {
            assert!(shared_vars.contains_key(name), "deploy/env/oro-inference.env sets {name}");
            shared_vars.insert(name.into(), value);
        }
        for (name, value) in [
            // The public URL is the plain loopback listener here (https in production).
            ("ORO_ALLOW_INSECURE_PUBLIC_URL", "1".to_owned()),
            ("ORO_OPENROUTER_API_BASE", sim.openrouter_api_base()),
            ("ORO_CHUTES_API_BASE", sim.chutes_api_base()),
            ("ORO_CHUTES_LLM_BASE", sim.chutes_llm_base()),
            ("ORO_PROVIDER_TIMEOUT_SECS", "5".into()),
            ("ORO_SUBMIT_COOLDOWN_SECS", "0".into()),
            ("ORO_RATE_LIMIT_SIGN_IN_PER_IP", format!("{SIGN_IN_PER_IP}/h")),
            // Every miner of the test submits from 127.0.0.1.
            ("ORO_RATE_LIMIT_SUBMIT_PER_IP", "1000/h".into()),
            ("ORO_LOG_FORMAT", "pretty".into()),
        ] {
            shared_vars.insert(name.into(), value);
        }

        // Both replicas start at once on the empty database, as `systemctl start
        // oro-inference@1 oro-inference@2` starts them: migrations and the first data key race.
        let mut replicas = Vec::new();
        drop(held_ports);
        for (instance, api_port, gateway_port) in [("1", api_1, gateway_1), ("2", api_2, gateway_2)] {
            let example = env_file(&workspace().join(format!("deploy/env/{instance}.env")));
            let names: Vec<&str> = example.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(names, ["ORO_BIND", "ORO_GATEWAY_BIND"], "deploy/env/{instance}.env holds the replica's own listeners");
            let mut vars = shared_vars.clone();
            vars.insert("ORO_BIND".into(), format!("127.0.0.1:{api_port}"));
            vars.insert("ORO_GATEWAY_BIND".into(), format!("127.0.0.1:{gateway_port}"));
            let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
            command.env_clear().envs(&vars).current_dir(&dir);
            let name = format!("replica {instance}");
            let log = dir.join(format!("replica-{instance}.log"));
            let process = Process::spawn(&name, command, log.clone());
            replicas.push(Replica { name, api_port, gateway_port, log, process: Some(process) });
        }

        let tls_cert = dir.join("tls.crt");
        let tls_key = dir.join("tls.key");
        let made = Command::new(openssl)
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", &format!("/CN={API_NAME}")])
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:{API_NAME},DNS:{GATEWAY_NAME}"))
            .arg("-keyout")
            .arg(&tls_key)
            .arg("-out")
            .arg(&tls_cert)
            .output()
            .unwrap();
        assert!(made.status.success(), "openssl: {}", String::from_utf8_lossy(&made.stderr));

        // The operator's template, rendered by the operator's script.
        let access_log = dir.join("access.log");
        let site = dir.join("oro-inference.conf");
        let list = |ports: Vec<u16>| ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(" ");
        let rendered = Command::new("sh")
            .arg(workspace().join("deploy/nginx/render.sh"))
            .arg(&site)
            .env("ORO_NGINX_API_SERVER_NAME", API_NAME)
            .env("ORO_NGINX_GATEWAY_SERVER_NAME", GATEWAY_NAME)
            .env("ORO_NGINX_TLS_CERTIFICATE", &tls_cert)
            .env("ORO_NGINX_TLS_CERTIFICATE_KEY", &tls_key)
            .env("ORO_NGINX_API_REPLICAS", list(replicas.iter().map(|r| r.api_port).collect()))
            .env("ORO_NGINX_GATEWAY_REPLICAS", list(replicas.iter().map(|r| r.gateway_port).collect()))
            .env("ORO_NGINX_HTTPS_LISTEN", format!("127.0.0.1:{https_port}"))
            .env("ORO_NGINX_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
            .env("ORO_NGINX_LOOPBACK_API_LISTEN", format!("127.0.0.1:{nginx_api_port}"))
            .env("ORO_NGINX_LOOPBACK_GATEWAY_LISTEN", format!("127.0.0.1:{nginx_gateway_port}"))
            .env("ORO_NGINX_ACCESS_LOG", &access_log)
            .output()
            .unwrap();
        assert!(rendered.status.success(), "deploy/nginx/render.sh: {}", String::from_utf8_lossy(&rendered.stderr));
        let text = std::fs::read_to_string(&site).unwrap();
        assert!(!text.contains("{{"), "every placeholder is filled:\n{text}");
        for r in &replicas {
            assert!(text.contains(&format!("server 127.0.0.1:{} ", r.api_port)), "replica {} is in the upstream", r.name);
        }

        // What Debian's /etc/nginx/nginx.conf puts around a site, with every path in this
        // test's directory so that nginx runs without touching the system's.
        let nginx_conf = dir.join("nginx.conf");
        let d = dir.display();
        std::fs::write(
            &nginx_conf,
            format!(
                "worker_processes 1;\nevents {{ worker_connections 1024; }}\nhttp {{\n    default_type application/octet-stream;\n    \
                 client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
                 uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    include {};\n}}\n",
                site.display()
            ),
        )
        .unwrap();

        let mut deployment = Deployment {
            dir: dir.clone(),
            replicas,
            nginx: None,
            nginx_bin,
            nginx_conf,
            access_log,
            api,
            gateway,
            https_port,
            http_port,
            shared_vars,
            validators,
            sim,
            db,
        };
        let checked = Command::new(&deployment.nginx_bin).args(deployment.nginx_args(false)).arg("-t").output().unwrap();
        assert!(checked.status.success(), "nginx -t:\n{}", String::from_utf8_lossy(&checked.stderr));
        let mut nginx = Command::new(&deployment.nginx_bin);
        nginx.args(deployment.nginx_args(true));
        deployment.nginx = Some(Process::spawn("nginx", nginx, dir.join("nginx-error.log")));

        for i in 0..deployment.replicas.len() {
            deployment.wait_ready(i).await;
        }
        // Through nginx, on both of its plain listeners.
        let client = reqwest::Client::new();
        for url in [format!("{}/health/ready", deployment.api), format!("{}/v1/models", deployment.gateway)] {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                deployment.nginx.as_mut().unwrap().assert_running();
                match client.get(&url).send().await {
                    // The gateway asks for a run token: any answer of its own shows the way through.
                    Ok(r) if r.status() == 200 || r.status() == 401 => break,
                    other => assert!(Instant::now() < deadline, "nginx does not pass {url} on: {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        deployment
    }

    fn nginx_args(&self, serve: bool) -> Vec<String> {
        let daemon = if serve { "daemon off; " } else { "" };
        vec![
            "-p".into(),
            format!("{}/", self.dir.display()),
            "-c".into(),
            self.nginx_conf.display().to_string(),
            "-g".into(),
            format!("{daemon}pid {}/nginx.pid; error_log stderr;", self.dir.display()),
        ]
    }

    /// Waits until replica `i` answers readiness (its database reachable), for at most a minute.
    async fn wait_ready(&mut self, i: usize) {
        let url = self.replicas[i].url("/health/ready");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.replicas[i].process.as_mut().expect("running").assert_running();
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "{} is not ready after a minute:\n{}", self.replicas[i].name, self.logs_of(i));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn logs_of(&self, i: usize) -> String {
        tail(&self.replicas[i].log, 40)
    }

    /// SIGKILLs replica `i`.
    pub fn kill(&mut self, i: usize) -> ExitStatus {
        self.replicas[i].process.take().expect("running").kill()
    }

    /// nginx's error log (its stderr) so far.
    pub fn nginx_errors(&self) -> String {
        std::fs::read_to_string(self.dir.join("nginx-error.log")).unwrap_or_default()
    }

    /// The access log's lines so far.
    pub fn access_lines(&self) -> Vec<AccessLine> {
        std::fs::read_to_string(&self.access_log).unwrap_or_default().lines().filter_map(AccessLine::parse).collect()
    }

    /// The service layer in this process, on the same database and key file, for what only
    /// time would do (the reaper after a lease runs out).
    pub async fn services(&self) -> service::Services {
        let mut vars = self.shared_vars.clone();
        vars.insert("ORO_BIND".into(), "127.0.0.1:0".into());
        let settings = service::Settings::from_vars(&vars).unwrap();
        let db = service::Db::connect(&settings.database_url).await.unwrap();
        service::Services::build(settings, db).await.unwrap()
    }
}

/// One line of the `oro_inference` access log format.
#[derive(Debug, Clone)]
pub struct AccessLine {
    pub client: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Every replica nginx tried, in order (`-` when it answered itself).
    pub upstreams: Vec<String>,
}

impl AccessLine {
    fn parse(line: &str) -> Option<Self> {
        let client = line.split_whitespace().next()?.to_owned();
        let request = line.split('"').nth(1)?;
        let mut words = request.split_whitespace();
        let (method, path) = (words.next()?.to_owned(), words.next()?.to_owned());
        let status = line.split('"').nth(2)?.split_whitespace().next()?.parse().ok()?;
        let upstream = line.split(" upstream=").nth(1)?.split(" upstream_status=").next()?;
        let upstreams = upstream.split(", ").map(str::to_owned).collect();
        Some(AccessLine { client, method, path, status, upstreams })
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "\n==== nginx error log ====\n{}", self.nginx_errors());
            let _ = writeln!(err, "==== nginx access log (last 40 lines) ====\n{}", tail(&self.access_log, 40));
            for r in &self.replicas {
                let _ = writeln!(err, "==== {} (last 40 lines) ====\n{}", r.name, tail(&r.log, 40));
            }
            let _ = writeln!(err, "(everything is kept in {})", self.dir.display());
        }
        // nginx stops its workers on SIGTERM (`-s stop`); SIGKILL of the master would leave them.
        if let Some(mut nginx) = self.nginx.take() {
            let _ = Command::new(&self.nginx_bin).args(self.nginx_args(false)).args(["-s", "stop"]).output();
            let deadline = Instant::now() + Duration::from_secs(5);
            while nginx.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None))) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for r in &mut self.replicas {
            r.process.take();
        }
        if !failed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A client whose connections leave from `source` (127.0.0.2, 127.0.0.3: other loopback
/// addresses, which Linux routes to `lo` without any set-up).
pub fn client_from(source: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(source))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A client for the TLS listener: the public names resolve to loopback, and the throw-away
/// certificate is accepted (what is tested is nginx's TLS server block, not the PKI).
pub fn tls_client(https_port: u16) -> reqwest::Client {
    let at = SocketAddr::from(([127, 0, 0, 1], https_port));
    reqwest::Client::builder()
        .resolve(API_NAME, at)
        .resolve(GATEWAY_NAME, at)
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}
