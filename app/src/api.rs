//! Server functions: the browser's way into the service layer. Each finds the signed-in
//! miner from the session, calls one service function, and maps its typed error.

use leptos::prelude::*;
use wire::Provider;
use wire::api::ExchangeCodeAnswer;

use crate::error::AppError;
use crate::view::{BalanceView, DashboardView, ModelRow, RunFigures};

pub mod call;

#[cfg(feature = "ssr")]
mod server {
    use service::Services;
    use service::domain::Hotkey;
    use tower_sessions::Session;

    use crate::error::AppError;

    pub const SESSION_HOTKEY: &str = "hotkey";
    /// The outcome of the last change, until the dashboard shows it.
    const SESSION_SAID: &str = "said";

    pub fn services() -> Result<Services, AppError> {
        leptos::prelude::use_context::<Services>().ok_or_else(|| AppError::Refused("service not available".into()))
    }

    /// Internals of a failure stay in the log; the page gets a sentence.
    pub fn session_failed(e: impl std::fmt::Display) -> AppError {
        tracing::error!(error = %e, "browser session unavailable");
        AppError::Refused("Your session could not be read; reload the page and sign in again.".into())
    }

    pub async fn session() -> Result<Session, AppError> {
        leptos_axum::extract::<Session>().await.map_err(session_failed)
    }

    /// The signed-in miner, re-checked against bans and the allowlist on every call.
    pub async fn miner() -> Result<(Services, Hotkey), AppError> {
        let services = services()?;
        let session = session().await?;
        let hotkey: Option<String> = session.get(SESSION_HOTKEY).await.map_err(session_failed)?;
        let hotkey = hotkey.and_then(|h| Hotkey::parse(&h).ok()).ok_or_else(|| {
            crate::error::answer_with(401);
            AppError::NotSignedIn
        })?;
        let caller = services.caller(hotkey).await?;
        services.require_miner(&caller).await?;
        Ok((services, caller.hotkey))
    }

    /// Keeps what a change came to for the dashboard's next render. The change is made; a
    /// session that cannot keep the sentence only loses the sentence (logged).
    pub async fn say(panel: crate::view::Panel, text: &str) {
        let said = crate::view::Said { panel, text: text.to_owned() };
        match session().await {
            Ok(session) => {
                if let Err(e) = session.insert(SESSION_SAID, said).await {
                    tracing::warn!(error = %e, "could not keep a change's outcome for the next page");
                }
            }
            Err(_) => tracing::warn!("could not keep a change's outcome for the next page"),
        }
    }

    /// The outcome kept by `say`, shown once.
    pub async fn take_said() -> Option<crate::view::Said> {
        let session = session().await.ok()?;
        session.remove::<crate::view::Said>(SESSION_SAID).await.ok().flatten()
    }
}

/// The signed-in miner's address, if any.
#[server(endpoint = "current_miner")]
pub async fn current_miner() -> Result<Option<String>, AppError> {
    let session = server::session().await?;
    session.get::<String>(server::SESSION_HOTKEY).await.map_err(server::session_failed)
}

/// Step 1 of wallet sign-in: the message the wallet will sign.
#[server(endpoint = "begin_sign_in")]
pub async fn begin_sign_in(address: String) -> Result<String, AppError> {
    let services = server::services()?;
    let message = services.begin_web_sign_in(&address).await?;
    Ok(message.to_text())
}

/// Step 2: the signed message opens a session (with a fresh id: no fixation).
#[server(endpoint = "finish_sign_in")]
pub async fn finish_sign_in(message: String, signature: String) -> Result<String, AppError> {
    let services = server::services()?;
    let hotkey = services.finish_web_sign_in(&message, &signature).await?;
    // Counted once the signature has proved the hotkey (per-IP limits apply before).
    services.limit_hotkey(service::rate_limit::Action::SignIn, &hotkey).await?;
    let caller = services.caller(hotkey).await?;
    services.require_miner(&caller).await?;
    let session = server::session().await?;
    session.cycle_id().await.map_err(server::session_failed)?;
    session.insert(server::SESSION_HOTKEY, caller.hotkey.to_string()).await.map_err(server::session_failed)?;
    Ok(caller.hotkey.to_string())
}

#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    let session = server::session().await?;
    session.flush().await.map_err(server::session_failed)
}

// The changes below answer nothing but success: the page is loaded again and shows the new
// state, with the sentence kept by `say` (and the browser decodes no answer it would not use).

#[server(endpoint = "connect_openrouter")]
pub async fn connect_openrouter(credential: String) -> Result<(), AppError> {
    let (services, hotkey) = server::miner().await?;
    services.limit_hotkey(service::rate_limit::Action::Connect, &hotkey).await?;
    let credential = secrecy::SecretString::from(credential);
    let changed = services.connect_openrouter(&hotkey, &credential).await?;
    server::say(crate::view::Panel::Provider(Provider::OpenRouter), &changed.message).await;
    Ok(())
}

/// Where to send the browser for Chutes consent.
#[server(endpoint = "begin_chutes_connect")]
pub async fn begin_chutes_connect() -> Result<String, AppError> {
    let (services, hotkey) = server::miner().await?;
    services.limit_hotkey(service::rate_limit::Action::Connect, &hotkey).await?;
    let (url, _state) = services.begin_chutes_authorization(&hotkey).await?;
    Ok(url)
}

/// The landing page's exchange; with no state (the page reloaded), whether Chutes is connected.
#[server(endpoint = "finish_chutes_connect")]
pub async fn finish_chutes_connect(state: String, code: Option<String>, error: Option<String>) -> Result<ExchangeCodeAnswer, AppError> {
    let (services, hotkey) = server::miner().await?;
    // No answer to exchange (a reload of the landing page): say what is, not what is missing.
    if state.is_empty() {
        let status = services.inference_auth_status(&hotkey).await?;
        if status.providers.iter().any(|p| p.provider == Provider::Chutes && p.connected) {
            return Ok(ExchangeCodeAnswer { ok: true, default_provider: status.default_provider });
        }
        crate::error::answer_with(400);
        return Err(AppError::Refused(
            "This page needs the answer from Chutes (state and code are missing). Start again from the dashboard.".into(),
        ));
    }
    match services.finish_chutes_authorization(&hotkey, &state, code.as_deref(), error.as_deref()).await {
        // A spent state (the back button, a second tab) after a connection that went through:
        // the truth is "connected", not "already used".
        Err(service::connections::ConnectionError::OAuthStateInvalid) => {
            let status = services.inference_auth_status(&hotkey).await?;
            if status.providers.iter().any(|p| p.provider == Provider::Chutes && p.connected) {
                Ok(ExchangeCodeAnswer { ok: true, default_provider: status.default_provider })
            } else {
                Err(service::connections::ConnectionError::OAuthStateInvalid.into())
            }
        }
        other => Ok(other?),
    }
}

#[server(endpoint = "set_default_provider")]
pub async fn set_default_provider(provider: Provider) -> Result<(), AppError> {
    let (services, hotkey) = server::miner().await?;
    let changed = services.set_default_provider(&hotkey, provider).await?;
    server::say(crate::view::Panel::Provider(provider), &changed.message).await;
    Ok(())
}

#[server(endpoint = "disconnect_provider")]
pub async fn disconnect_provider(provider: Provider) -> Result<(), AppError> {
    let (services, hotkey) = server::miner().await?;
    let changed = services.disconnect(&hotkey, provider).await?;
    server::say(crate::view::Panel::Provider(provider), &changed.message).await;
    Ok(())
}

/// Everything the signed-in dashboard shows, in one round trip, for its render on the server
/// (after a change too: the page is loaded again), with what the last change came to.
#[server(endpoint = "load_dashboard")]
pub async fn load_dashboard() -> Result<DashboardView, AppError> {
    let (services, hotkey) = server::miner().await?;
    // One after another: on SQLite they would queue for its one connection anyway. A panel
    // that cannot be read says so in its place; the answer itself stays a 200 (a failed status
    // would make the browser drop the panels that were read).
    let providers = services.inference_auth_status(&hotkey).await.map_err(AppError::of);
    let runs = services.miner_runs(&hotkey, 20).await.map(crate::view::RunsView::from).map_err(AppError::of);
    let budget = services.budget(&hotkey).await.map(Into::into).map_err(AppError::of);
    let audit = services.audit_events(&hotkey, 50).await.map_err(AppError::of);
    let said = server::take_said().await;
    Ok(DashboardView { providers, runs, budget, audit, said })
}

/// The figures of the miner's recent runs that change while they run.
#[server(endpoint = "load_runs")]
pub async fn load_runs() -> Result<Vec<RunFigures>, AppError> {
    let (services, hotkey) = server::miner().await?;
    let runs: crate::view::RunsView = services.miner_runs(&hotkey, 20).await?.into();
    Ok(runs.runs.into_iter().map(RunFigures::from).collect())
}

/// Whether a connected account can pay for the next run.
#[server(endpoint = "check_balance")]
pub async fn check_balance(provider: Provider) -> Result<BalanceView, AppError> {
    let (services, hotkey) = server::miner().await?;
    Ok(services.provider_balance(&hotkey, provider).await?.into())
}

/// Stop inference: the run's credential dies at once. The answer is the sentence to show.
#[server(endpoint = "stop_run")]
pub async fn stop_run(eval_run_id: String) -> Result<String, AppError> {
    let (services, hotkey) = server::miner().await?;
    Ok(services.stop_run_inference(&hotkey, &eval_run_id).await?.message)
}

/// `monthly_usd` empty: no ceiling.
#[server(endpoint = "save_budget")]
pub async fn save_budget(monthly_usd: String) -> Result<(), AppError> {
    let (services, hotkey) = server::miner().await?;
    let text = monthly_usd.trim().trim_start_matches('$');
    let value = if text.is_empty() {
        None
    } else {
        Some(text.parse::<f64>().map_err(|_| {
            crate::error::answer_with(422);
            AppError::Refused("Enter the budget in dollars, e.g. 25, or leave it empty for no ceiling.".into())
        })?)
    };
    let saved = services.set_budget(&hotkey, value).await.map(crate::view::BudgetSaved::from).map_err(|e| match e {
        // The API's sentence names its JSON field; a person gets the amounts.
        service::budget::BudgetError::Invalid => {
            crate::error::answer_with(422);
            AppError::Refused("Enter an amount from $0.01 to $1,000,000 (whole cents), or use Remove ceiling for none.".into())
        }
        e => e.into(),
    })?;
    server::say(crate::view::Panel::Budget, &saved.message).await;
    Ok(())
}

/// The public model list, priced in words.
#[server(endpoint = "model_catalog")]
pub async fn model_catalog() -> Result<Vec<ModelRow>, AppError> {
    let services = server::services()?;
    Ok(services.catalog().await?.into_iter().map(ModelRow::from).collect())
}
