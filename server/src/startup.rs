//! Builds the application from settings: storage, the optional provider simulator, the
//! REST API, the Leptos pages, sessions and housekeeping. `Application::build` binds first and
//! reports the port, so tests run the real thing on port 0.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use service::session_store::DbSessionStore;
use service::{Db, Services, Settings};
use tokio::net::TcpListener;
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use crate::http;

/// What every handler and server function can reach. One `Arc`: axum clones the state for
/// every request, and a `LeptosOptions` is a dozen strings (its clone and drop were a tenth of
/// the server's own time on the model list).
#[derive(Clone)]
pub struct AppState(std::sync::Arc<AppParts>);

pub struct AppParts {
    pub leptos_options: LeptosOptions,
    pub services: Services,
    /// The browser bundle under its hashed names (`http/assets.rs`).
    pub assets: std::sync::Arc<http::assets::SiteAssets>,
}

impl AppState {
    pub fn new(parts: AppParts) -> AppState {
        AppState(std::sync::Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> LeptosOptions {
        state.leptos_options.clone()
    }
}

impl FromRef<AppState> for Services {
    fn from_ref(state: &AppState) -> Services {
        state.services.clone()
    }
}

impl FromRef<AppState> for std::sync::Arc<http::assets::SiteAssets> {
    fn from_ref(state: &AppState) -> std::sync::Arc<http::assets::SiteAssets> {
        state.assets.clone()
    }
}

pub struct Application {
    listener: TcpListener,
    gateway_listener: TcpListener,
    router: Router,
    services: Services,
    simulator: Option<simulator::RunningSimulator>,
    housekeeping: tokio::task::JoinHandle<()>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.bind).await?;
        let mut settings = settings.with_bound_port(listener.local_addr()?.port());
        // The simulator only changes where the service's provider clients point: the same
        // code path as production, aimed at a local stand-in.
        let simulator = if settings.simulate_providers {
            let sim_config = simulator::SimulatorConfig {
                chutes_client_id: settings.chutes_client_id.clone(),
                chutes_client_secret: secrecy::ExposeSecret::expose_secret(&settings.chutes_client_secret).to_owned(),
                chutes_redirect_uris: settings.allowed_chutes_redirect_uris(),
                ..Default::default()
            };
            let bind: SocketAddr = std::env::var("ORO_SIMULATOR_BIND")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
            let sim = simulator::spawn(bind, sim_config).await?;
            settings.chutes_api_base = sim.chutes_api_base();
            settings.chutes_llm_base = sim.chutes_llm_base();
            settings.openrouter_api_base = sim.openrouter_api_base();
            tracing::info!(simulator = %sim.root_url(), "provider simulator running; demo accounts at {}/_sim/", sim.root_url());
            Some(sim)
        } else {
            None
        };

        // The run gateway's own listener; validators' sandboxes reach it at its public URL.
        let gateway_listener = TcpListener::bind(settings.gateway_bind).await?;
        settings.gateway_bind = gateway_listener.local_addr()?;

        // Installed before anything records.
        http::metrics::handle();
        let db = Db::connect(&settings.database_url).await?;
        let services = Services::build(settings, db).await?;
        let mut leptos_options = leptos_options(&listener)?;
        let assets = std::sync::Arc::new(http::assets::SiteAssets::load(std::path::Path::new(leptos_options.site_root.as_ref())));
        // The island loader asks for `<output name>.js` and `.wasm`: the hashed names.
        if let Some(name) = &assets.bundle_name {
            leptos_options.output_name = name.as_str().into();
        }
        let state = AppState::new(AppParts { leptos_options, services: services.clone(), assets });
        let router = router(state);
        let housekeeping = tokio::spawn(housekeeping(services.clone()));
        Ok(Application { listener, gateway_listener, router, services, simulator, housekeeping })
    }

    /// The run gateway's port.
    pub fn gateway_port(&self) -> u16 {
        self.gateway_listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    pub fn simulator(&self) -> Option<&simulator::RunningSimulator> {
        self.simulator.as_ref()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Application { listener, gateway_listener, router, services, simulator, housekeeping } = self;
        let (stop_gateway, gateway_stopped) = tokio::sync::watch::channel(false);
        let gateway = tokio::spawn({
            let router = crate::gateway::router(services.clone());
            let mut stopped = gateway_stopped;
            async move {
                let listener = axum::serve::ListenerExt::tap_io(gateway_listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            }
        });
        let retirements = tokio::spawn({
            let (services, stopped) = (services.clone(), stop_gateway.subscribe());
            async move { services.listen_for_retirements(stopped).await }
        });
        // Pages stream in chunks: without TCP_NODELAY a kept-alive connection waits on the
        // peer's delayed ACK (about 40 ms) between them.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let result =
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(shutdown).await;
        let _ = stop_gateway.send(true);
        let _ = gateway.await;
        let _ = retirements.await;
        housekeeping.abort();
        // Requests are answered; what they started in the background finishes before the
        // database closes under it.
        services.drain_background_work().await;
        services.db.close().await;
        drop(simulator);
        result
    }
}

/// cargo-leptos passes the site layout in `LEPTOS_*` variables; without them (tests, a plain
/// `cargo run`) the same layout is assumed: `target/site` with the bundle under `pkg/oro*`.
fn leptos_options(listener: &TcpListener) -> anyhow::Result<LeptosOptions> {
    let addr = listener.local_addr()?;
    if std::env::var("LEPTOS_OUTPUT_NAME").is_ok() {
        let mut conf = get_configuration(None)?.leptos_options;
        conf.site_addr = addr;
        return Ok(conf);
    }
    let site_root = std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site".into());
    Ok(LeptosOptions::builder().output_name("oro").site_root(site_root).site_pkg_dir("pkg").site_addr(addr).build())
}

pub fn router(state: AppState) -> Router {
    let services = state.services.clone();
    let routes = generate_route_list(app::App);
    let session_layer = SessionManagerLayer::new(DbSessionStore::new(services.db.clone(), services.clock.clone()))
        .with_name("oro_session")
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(services.settings.secure_cookies())
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(services.settings.session_ttl_secs)));

    let pages = Router::new()
        .leptos_routes_with_context(
            &state,
            routes,
            {
                let services = services.clone();
                let paths = state.assets.paths.clone();
                move || {
                    provide_context(services.clone());
                    provide_context(paths.clone());
                }
            },
            {
                let options = state.leptos_options.clone();
                move || app::shell(options.clone())
            },
        )
        // Bodies are read (for the NUL check) only on routes that exist.
        .route_layer(axum::middleware::from_fn(http::guards::refuse_nul_characters))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        .layer(axum::middleware::from_fn_with_state(services.clone(), http::guards::refuse_cross_site));

    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(services.settings.max_concurrent_requests));
    let signed_and_pages = Router::new()
        .merge(http::api_router(services.clone()))
        .merge(pages)
        .layer(session_layer)
        .layer(axum::middleware::from_fn_with_state(services.clone(), http::guards::limit_by_client_ip))
        .layer(axum::middleware::from_fn_with_state(slots.clone(), http::guards::shed_load))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(http::guards::Door::new(services.clone())),
            http::guards::refuse_at_the_door,
        ));
    // The public routes take the same request slots, and nothing else of the above: no
    // session to load, no per-IP window to count, no signature to hold at the door.
    let public = http::public_router(&services, &state.assets).layer(http::edge::PublicGuardLayer { slots });
    let router = public.merge(signed_and_pages);
    http::guards::apply_common_layers(router, services.settings.secure_cookies()).with_state(state)
}

/// Periodic clean-up of what expires (nonces, challenges, sessions), retried revocations, the
/// reaper, and the vault's data keys. The first pass comes a minute after start, not at once:
/// nothing has expired in a process that just started, and a reaper racing the first requests
/// only makes their outcome depend on scheduling.
async fn housekeeping(services: Services) {
    let period = Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        if let Err(e) = services.housekeeping().await {
            tracing::warn!(error = %e, "housekeeping pass failed; will retry");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
