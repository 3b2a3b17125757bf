//! A faithful local stand-in for the providers ORO talks to: the Chutes OAuth identity
//! provider and inference API, and the OpenRouter key-management and inference API
//! (see `CONTRACT.md` sections 2 and 3), plus failure switches for tests.
//!
//! Everything is mounted under path prefixes so that base URLs look like the real ones:
//!
//! | real base | simulator base |
//! |---|---|
//! | `https://api.chutes.ai` | `{root}/chutes` |
//! | `https://llm.chutes.ai/v1` | `{root}/chutes-llm/v1` |
//! | `https://openrouter.ai/api/v1` | `{root}/openrouter/api/v1` |
//!
//! and a control API for tests and a developer page under `{root}/_sim`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = simulator::spawn("127.0.0.1:0".parse().unwrap(), simulator::SimulatorConfig::default()).await?;
//! let management_key = sim.control().create_openrouter_account(10.0);
//! println!("{} {}", sim.openrouter_api_base(), management_key);
//! # Ok(()) }
//! ```

mod chutes;
mod control;
mod fault;
mod idp_variant;
mod models;
mod openrouter;
mod state;
mod util;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;

pub use control::{ChutesUserInfo, Control, ControlError, OpenRouterAccountInfo, OpenRouterKeyInfo};
pub use fault::{Fault, FaultKind, FaultTarget};
pub use idp_variant::{ChutesIdpVariant, ClientAuth};
pub use models::MODELS;
pub use state::{DEMO_CHUTES_BALANCE, DEMO_CHUTES_USERNAME, DEMO_OPENROUTER_CREDITS, DEMO_OPENROUTER_MANAGEMENT_KEY};

/// The Chutes OAuth redirect URIs allowed by default: the `oro` CLI's loopback callback and
/// the service's default web callback.
pub const DEFAULT_CHUTES_REDIRECT_URIS: [&str; 3] =
    ["http://localhost:8765/callback", "http://127.0.0.1:3000/oauth/chutes/callback", "http://localhost:3000/oauth/chutes/callback"];

#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorConfig {
    /// Default `"oro-sim-client"`.
    pub chutes_client_id: String,
    /// Default `"oro-sim-secret"`.
    pub chutes_client_secret: String,
    /// Exact-match allowlist for `/idp/authorize` and the code exchange.
    /// Default [`DEFAULT_CHUTES_REDIRECT_URIS`].
    pub chutes_redirect_uris: Vec<String>,
    /// A freshly minted OpenRouter key answers 401 for its first N uses of
    /// `/chat/completions` and `/key`. Default 0.
    pub openrouter_propagation_401s: u32,
    /// Standard behaviours of the Chutes IdP other than Chutes' own. Default: none.
    pub chutes_idp: ChutesIdpVariant,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            chutes_client_id: "oro-sim-client".to_owned(),
            chutes_client_secret: "oro-sim-secret".to_owned(),
            chutes_redirect_uris: DEFAULT_CHUTES_REDIRECT_URIS.iter().map(|s| (*s).to_owned()).collect(),
            openrouter_propagation_401s: 0,
            chutes_idp: ChutesIdpVariant::default(),
        }
    }
}

/// The whole simulator as a router (provider routes, `/_sim` control API), for mounting in
/// another server at its root. Served this way, a [`FaultKind::Reset`] answers 502 instead of
/// dropping the connection; [`spawn`] does the real thing.
pub fn router(control: Control) -> Router {
    Router::new()
        .merge(chutes::routes())
        .merge(openrouter::routes())
        .merge(control::routes())
        .layer(axum::middleware::from_fn_with_state(control.clone(), fault::log_and_fault))
        .with_state(control)
}

/// A simulator serving in a tokio task. Dropping it (or [`RunningSimulator::shutdown`]) stops it.
pub struct RunningSimulator {
    addr: SocketAddr,
    control: Control,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningSimulator {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stand-in for `https://api.chutes.ai`: `{root}/chutes`.
    pub fn chutes_api_base(&self) -> String {
        format!("{}/chutes", self.root_url())
    }

    /// Stand-in for `https://llm.chutes.ai/v1`: `{root}/chutes-llm/v1`.
    pub fn chutes_llm_base(&self) -> String {
        format!("{}/chutes-llm/v1", self.root_url())
    }

    /// Stand-in for `https://openrouter.ai/api/v1`: `{root}/openrouter/api/v1`.
    pub fn openrouter_api_base(&self) -> String {
        format!("{}/openrouter/api/v1", self.root_url())
    }

    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Stops accepting, drops open connections, and waits for the listener to close.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Binds `bind` (port 0 picks a free port) and serves the simulator in a tokio task.
pub async fn spawn(bind: SocketAddr, config: SimulatorConfig) -> std::io::Result<RunningSimulator> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let control = Control::new(config);
    let app = router(control.clone());
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, app, rx));
    tracing::info!(%addr, "provider simulator listening");
    Ok(RunningSimulator { addr, control, shutdown, task: Some(task) })
}

async fn accept_loop(listener: TcpListener, app: Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        tokio::spawn(serve_connection(stream, app.clone(), shutdown.clone()));
    }
}

/// One HTTP/1.1 connection. A [`FaultKind::Reset`] notifies `kill`, which drops the
/// connection without an answer.
async fn serve_connection(stream: tokio::net::TcpStream, app: Router, mut shutdown: watch::Receiver<bool>) {
    let kill = fault::ConnKill(Arc::new(Notify::new()));
    let conn_kill = kill.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(conn_kill.clone());
        app.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        _ = kill.0.notified() => {}
        _ = stopped(&mut shutdown) => {}
    }
}

/// Resolves once shutdown was asked for (or the sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
