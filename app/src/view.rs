//! What the pages show, already in words: the server turns the service's figures (dollars as
//! `f64`, timestamps) into the sentences and amounts a miner reads, so the browser bundle
//! carries no float formatting or parsing, and the islands receive exactly what they render.

use serde::{Deserialize, Serialize};
use wire::Provider;
use wire::api::{AuditEvents, InferenceAuthList};

/// One allowlisted model, as the models page lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRow {
    pub chutes_name: String,
    pub openrouter_name: String,
    pub is_default: bool,
    /// "$0.27 in · $0.41 out".
    pub price: String,
}

/// One run on the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub eval_run_id: String,
    pub agent_name: String,
    pub agent_version_id: String,
    /// "version 1a2b3c4d…, submitted 2026-12-01 10:00:00 UTC".
    pub version_line: String,
    pub status: String,
    /// The provider, or for a queued run the one its claim will use.
    pub provider: String,
    pub failure_reason: Option<String>,
    /// "$0.0012 / $5.00".
    pub spend_of_cap: String,
    /// Running with a cap: its spend is live and it can be stopped.
    pub live: bool,
    /// Live, but its inference was already stopped: nothing left to stop.
    pub stopped: bool,
}

/// What changes in a run's row while it runs: the live figures the dashboard fetches again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    pub eval_run_id: String,
    pub status: String,
    pub spend_of_cap: String,
    pub live: bool,
    pub stopped: bool,
}

impl From<RunRow> for RunFigures {
    fn from(r: RunRow) -> Self {
        RunFigures { eval_run_id: r.eval_run_id, status: r.status, spend_of_cap: r.spend_of_cap, live: r.live, stopped: r.stopped }
    }
}

/// The runs panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunsView {
    pub runs: Vec<RunRow>,
    /// "This month: Chutes $0.0012", or that nothing was spent.
    pub month_spend: String,
    /// What a validator holds for each provider's runs, and whether it is capped.
    pub protection: Option<String>,
}

/// The monthly budget panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    /// "$3.00 of $25.00 committed in 2026-12 by runs (each commits its cap)."
    pub state: String,
    /// "Each run commits its cap of $5.00 when it starts."
    pub run_cap: Option<String>,
    pub warning: Option<String>,
    pub has_ceiling: bool,
    /// The field's starting value: the ceiling, "25.00", or empty.
    pub ceiling_input: String,
}

/// A saved budget and the sentence that says what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetSaved {
    pub budget: BudgetView,
    pub message: String,
}

/// Whether a connected account can pay the next run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalanceView {
    pub can_pay_a_run: bool,
    pub message: String,
    /// What is left, for the API's readers; the page shows `message` and the browser never
    /// reads this (`api::call::check_balance`).
    pub balance_usd: Option<f64>,
}

/// Everything the signed-in dashboard shows, read in one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardView {
    pub providers: Result<InferenceAuthList, crate::error::AppError>,
    pub runs: Result<RunsView, crate::error::AppError>,
    pub budget: Result<BudgetView, crate::error::AppError>,
    pub audit: Result<AuditEvents, crate::error::AppError>,
    /// How the change that reloaded the page went, said once.
    pub said: Option<Said>,
}

/// A part of the dashboard a miner changes things in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Panel {
    /// A provider's row: connect, default, disconnect.
    Provider(Provider),
    Budget,
}

impl Panel {
    /// The ids of the panels' headings, which take the focus after a change.
    pub const HEADINGS: [&'static str; 2] = ["providers-heading", "budget-heading"];

    pub fn heading_id(self) -> &'static str {
        match self {
            Panel::Provider(_) => Self::HEADINGS[0],
            Panel::Budget => Self::HEADINGS[1],
        }
    }
}

/// What a change came to, kept in the session by the server function that made it and shown
/// by the next render of the dashboard (which the change's island asks for by reloading).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Said {
    pub panel: Panel,
    pub text: String,
}

impl DashboardView {
    /// The sentence for `panel`, if the last change was made there.
    pub fn said_in(&self, panel: Panel) -> Option<String> {
        self.said.as_ref().filter(|s| s.panel == panel).map(|s| s.text.clone())
    }
}

#[cfg(feature = "ssr")]
/// A dollar amount: gateway spend moves in fractions of a cent (a short answer costs
/// millionths), so small amounts keep their digits.
pub fn money(v: Option<f64>) -> String {
    match v {
        Some(v) if v > 0.0 && v < 0.01 => format!("${v:.6}"),
        Some(v) if v > 0.0 && v < 1.0 => format!("${v:.4}"),
        Some(v) => format!("${v:.2}"),
        None => "—".into(),
    }
}

#[cfg(feature = "ssr")]
mod from_service {
    use wire::api::{Budget, CatalogEntry, ProviderBalance, RunCredentialKind, RunList, RunProtection, RunSummary};

    use super::*;

    impl From<CatalogEntry> for ModelRow {
        fn from(e: CatalogEntry) -> Self {
            ModelRow {
                price: format!("${:.2} in · ${:.2} out", e.input_usd_per_mtok, e.output_usd_per_mtok),
                chutes_name: e.chutes_name,
                openrouter_name: e.openrouter_name,
                is_default: e.is_default,
            }
        }
    }

    /// One sentence per provider: what a validator holds, and whether a thief is capped.
    fn protection_text(p: &RunProtection) -> String {
        let cap = format!("${:.2}", p.run_cap_usd);
        let chutes = match p.chutes {
            RunCredentialKind::ProviderToken => {
                "Chutes runs: the validator gets your Chutes access token itself, good for an hour on any model and not capped (this service hands out Chutes tokens directly).".to_string()
            }
            _ => format!(
                "Chutes runs: the validator gets a token for this service's run gateway, which can spend at most {cap} on the allowed models and stops working when the run ends; your Chutes token never leaves the service."
            ),
        };
        let openrouter = match p.openrouter {
            RunCredentialKind::Gateway => format!(
                "OpenRouter runs: the validator gets a run gateway token ({cap} at most); the run's own key, capped at {cap} by OpenRouter, stays here."
            ),
            _ => format!("OpenRouter runs: the validator gets a key OpenRouter caps at {cap}, disabled when the run ends."),
        };
        format!("{chutes} {openrouter}")
    }

    fn run_row(run: RunSummary, default_provider: Option<Provider>) -> RunRow {
        let version: String = run.agent_version_id.chars().take(8).collect();
        let submitted = run.created_at.replace('T', " ").replace("+00:00", " UTC");
        // Not claimed yet: the provider is chosen at the claim, from the default then.
        let provider = match (run.provider, run.status.as_str(), default_provider) {
            (Some(p), ..) => p.display_name().to_string(),
            (None, "queued", Some(d)) => format!("will use {} (your default)", d.display_name()),
            (None, "queued", None) => "none connected: connect a provider".to_string(),
            (None, ..) => "—".to_string(),
        };
        let live = run.status == "running" && run.cap_usd.is_some();
        RunRow {
            version_line: format!("version {version}…, submitted {submitted}"),
            spend_of_cap: format!("{} / {}", money(run.spend_usd), money(run.cap_usd)),
            live,
            stopped: live && run.inference_stopped,
            eval_run_id: run.eval_run_id,
            agent_name: run.agent_name,
            agent_version_id: run.agent_version_id,
            status: run.status,
            provider,
            failure_reason: run.failure_reason,
        }
    }

    impl From<RunList> for RunsView {
        fn from(list: RunList) -> Self {
            let month_spend = if list.month_spend_usd.is_empty() {
                "No recorded spend this month.".to_string()
            } else {
                let parts: Vec<String> = list
                    .month_spend_usd
                    .iter()
                    .map(|(p, v)| {
                        let name = p.parse::<Provider>().map(|p| p.display_name()).unwrap_or(p.as_str());
                        format!("{name} {}", money(Some(*v)))
                    })
                    .collect();
                format!("This month: {}", parts.join(", "))
            };
            RunsView {
                protection: list.protection.as_ref().map(protection_text),
                runs: list.runs.into_iter().map(|r| run_row(r, list.default_provider)).collect(),
                month_spend,
            }
        }
    }

    impl From<Budget> for BudgetView {
        fn from(b: Budget) -> Self {
            BudgetView {
                state: match b.monthly_usd {
                    Some(v) => format!("${:.2} of ${v:.2} committed in {} by runs (each commits its cap).", b.committed_usd, b.month),
                    None => format!("No ceiling. ${:.2} committed in {} by runs.", b.committed_usd, b.month),
                },
                run_cap: b.run_cap_usd.map(|cap| format!("Each run commits its cap of ${cap:.2} when it starts.")),
                warning: b.warning(),
                has_ceiling: b.monthly_usd.is_some(),
                ceiling_input: b.monthly_usd.map(|v| format!("{v:.2}")).unwrap_or_default(),
            }
        }
    }

    impl From<Budget> for BudgetSaved {
        fn from(b: Budget) -> Self {
            let said = match b.monthly_usd {
                Some(v) => format!("Monthly budget set to ${v:.2}."),
                None => "Ceiling removed: runs are no longer limited by a monthly budget.".to_string(),
            };
            let message = match b.warning() {
                Some(w) => format!("{said} {w}"),
                None => said,
            };
            BudgetSaved { budget: b.into(), message }
        }
    }

    impl From<ProviderBalance> for BalanceView {
        fn from(b: ProviderBalance) -> Self {
            BalanceView { can_pay_a_run: b.can_pay_a_run, message: b.message, balance_usd: b.balance_usd }
        }
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::money;

    #[test]
    fn small_amounts_keep_their_digits() {
        assert_eq!(money(None), "—");
        assert_eq!(money(Some(0.0)), "$0.00");
        assert_eq!(money(Some(0.000012)), "$0.000012");
        assert_eq!(money(Some(0.25)), "$0.2500");
        assert_eq!(money(Some(5.0)), "$5.00");
    }
}
