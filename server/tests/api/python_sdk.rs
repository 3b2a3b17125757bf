//! ORO's own Python CLI (oro-sdk 4.0.1, installed by `./dev test` into `.venv-oro`) against
//! our server: every `oro inference` command and `oro submit`, unchanged, with a wallet made
//! by `bittensor_wallet`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::both_engines;
use crate::helpers::*;

fn venv_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("ORO_SDK_BIN")
        .map(|oro| PathBuf::from(oro).parent().unwrap().to_path_buf())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-oro/4.0.1/bin"));
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: `./dev test` installs oro-sdk 4.0.1 into .venv-oro/4.0.1 (or set ORO_SDK_BIN)", path.display());
    path
}

/// A Bittensor wallet made by Python's bittensor_wallet, under a throw-away HOME.
async fn make_wallet(home: &Path) -> String {
    bittensor_wallets(&venv_bin("python"), home, &["test"]).await.remove(0)
}

async fn oro(app: &TestApp, home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(venv_bin("oro"))
        .args(args)
        .args(["--base-url", &app.address, "--wallet-name", "test", "--wallet-hotkey", "h1"])
        .env("HOME", home)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The loopback port 8765 is shared with the Rust CLI's tests: one user at a time.
fn loopback_lock() -> std::fs::File {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open("/tmp/oro-loopback-8765.lock").unwrap();
    file.lock().unwrap();
    file
}

async fn python_cli_against_our_api(backend: Backend) {
    let app = spawn_app(backend).await;
    let home = std::env::temp_dir().join(format!("oro-sdk-home-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&home).unwrap();
    let hotkey = make_wallet(&home).await;

    let (code, out, err) = oro(&app, &home, &["inference", "status"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("Wallet:   test ({hotkey})")), "{out}");
    assert!(out.contains("No providers connected."), "{out}");

    // submit refuses locally while nothing is connected.
    let agent = home.join("agent.py");
    std::fs::write(&agent, "def run(task):\n    return 'ok'\n").unwrap();
    let agent = agent.display().to_string();
    let (code, _, err) = oro(&app, &home, &["submit", "--agent-name", "sdk-agent", "--agent-file", &agent]).await;
    assert_eq!(code, 1);
    assert!(err.contains("No inference provider connected"), "{err}");

    let key = app.sim.create_openrouter_account(10.0);
    let (code, out, err) = oro(&app, &home, &["inference", "connect", "openrouter", "--api-key", &key]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Connected openrouter."), "{out}");
    assert!(!out.contains(&key) && !err.contains(&key));

    // A refused key: the server's detail, exit 1.
    let inference_key = app.sim.create_openrouter_inference_key(1.0);
    let (code, _, err) = oro(&app, &home, &["inference", "connect", "openrouter", "--api-key", &inference_key]).await;
    assert_eq!(code, 1);
    assert!(err.contains("Error (HTTP 400)") && err.contains("not a management key"), "{err}");

    // connect chutes: the SDK runs PKCE with its loopback listener and opens
    // https://api.chutes.ai (unreachable here). We play the browser: take the state and
    // challenge from the printed URL, get a code from the simulated IdP for them, and call
    // the loopback like Chutes' redirect would.
    {
        let _lock = loopback_lock();
        let mut child = Command::new(venv_bin("oro"))
            .args(["inference", "connect", "chutes", "--base-url", &app.address, "--wallet-name", "test", "--wallet-hotkey", "h1"])
            .env("HOME", &home)
            .env("BROWSER", "true")
            .env("PYTHONUNBUFFERED", "1")
            .env("CHUTES_CLIENT_ID", &app.services.settings.chutes_client_id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = String::new();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                printed.push_str(&line);
                printed.push('\n');
                if let Some(start) = line.find("https://api.chutes.ai/idp/authorize?") {
                    return line[start..].trim().to_owned();
                }
            }
            panic!("no authorize URL printed: {printed}");
        })
        .await
        .expect("the SDK prints the authorize URL");
        let url = url::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["redirect_uri"], "http://localhost:8765/callback");
        assert_eq!(q["code_challenge_method"], "S256");
        let code = app.sim.issue_chutes_code("sdk-user", &q["client_id"], &q["redirect_uri"], &q["code_challenge"], &q["scope"]);
        let callback = format!("http://127.0.0.1:8765/callback?code={code}&state={}", q["state"]);
        let mut answered = false;
        for _ in 0..50 {
            if reqwest::get(&callback).await.is_ok() {
                answered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(answered, "the SDK's loopback listener answered");
        let rest = tokio::time::timeout(Duration::from_secs(30), async {
            let mut rest = String::new();
            while let Some(line) = lines.next_line().await.unwrap() {
                rest.push_str(&line);
                rest.push('\n');
            }
            rest
        })
        .await
        .unwrap();
        let status = child.wait().await.unwrap();
        assert!(status.success(), "{printed}{rest}");
        assert!(rest.contains("Connected chutes."), "{rest}");
    }

    let (code, out, _) = oro(&app, &home, &["inference", "status"]).await;
    assert_eq!(code, 0);
    let row = |name: &str| out.lines().find(|l| l.starts_with(name)).map(|l| l.split_whitespace().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(row("openrouter")[..3], ["openrouter", "yes", "yes"], "{out}");
    assert_eq!(row("chutes")[..2], ["chutes", "yes"], "{out}");

    let (code, out, _) = oro(&app, &home, &["inference", "set-default", "chutes"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("Default provider set to chutes. Applies to next claimed eval."), "{out}");
    let (code, _, err) = oro(&app, &home, &["inference", "set-default", "anthropic"]).await;
    assert_ne!(code, 0, "{err}");

    let (code, out, err) = oro(&app, &home, &["submit", "--agent-name", "sdk-agent", "--agent-file", &agent]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Status:  ACCEPTED"), "{out}");
    assert!(out.contains("Inference: connected=chutes, openrouter, default=chutes"), "{out}");

    let (code, out, _) = oro(&app, &home, &["inference", "disconnect", "openrouter"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("Disconnected openrouter."), "{out}");
    let (code, _, err) = oro(&app, &home, &["inference", "disconnect", "openrouter"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("Error (HTTP 404): OpenRouter is not connected"), "{err}");

    // The server agrees (read through the service layer: only the Python wallet can sign).
    let state = app.services.inference_auth_status(&service::domain::Hotkey::parse(&hotkey).unwrap()).await.unwrap();
    assert_eq!(state.default_provider, Some(wire::Provider::Chutes));
    assert!(state.providers.iter().any(|p| p.provider == wire::Provider::Chutes && p.connected));
    assert!(state.providers.iter().any(|p| p.provider == wire::Provider::OpenRouter && !p.connected));
    let _ = std::fs::remove_dir_all(&home);
}

both_engines!(python_cli_against_our_api);
