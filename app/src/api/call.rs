//! The islands' calls to the server functions above, made with the browser's own `fetch` and
//! `JSON` instead of server_fn's client. The request is the one server_fn's client sends (a
//! URL-encoded POST to the function's path, asking for JSON) and so is the answer (JSON; a 4xx
//! or 5xx carries the `AppError`), so the server functions are unchanged. What this saves is
//! the client's machinery in the bundle: gloo-net, wasm-streams, serde_qs and a serde_json
//! decoder per answer (docs/bundle-size.md).
//!
//! The form is the server function's own argument struct (so a renamed argument does not
//! compile), encoded flat; `a_form_is_what_its_server_function_reads` decodes each kind of
//! field as the server does. The answers are read field by field:
//! `the_answers_have_the_fields_the_browser_reads` holds their names.

use wire::Provider;

use super::{
    BeginChutesConnect, BeginSignIn, CheckBalance, ConnectOpenrouter, DisconnectProvider, FinishChutesConnect, FinishSignIn, LoadRuns,
    SaveBudget, SetDefaultProvider, SignOut, StopRun,
};
use crate::error::AppError;
use crate::view::{BalanceView, RunFigures};
use leptos::server_fn::ServerFn;

pub async fn begin_sign_in(address: String) -> Result<String, AppError> {
    text(post(BeginSignIn { address }).await?)
}

pub async fn finish_sign_in(message: String, signature: String) -> Result<(), AppError> {
    post(FinishSignIn { message, signature }).await.map(drop)
}

pub async fn sign_out() -> Result<(), AppError> {
    post(SignOut {}).await.map(drop)
}

pub async fn connect_openrouter(credential: String) -> Result<(), AppError> {
    post(ConnectOpenrouter { credential }).await.map(drop)
}

/// Where to send the browser for Chutes consent.
pub async fn begin_chutes_connect() -> Result<String, AppError> {
    text(post(BeginChutesConnect {}).await?)
}

pub async fn finish_chutes_connect(state: String, code: Option<String>, error: Option<String>) -> Result<(), AppError> {
    post(FinishChutesConnect { state, code, error }).await.map(drop)
}

pub async fn set_default_provider(provider: Provider) -> Result<(), AppError> {
    post(SetDefaultProvider { provider }).await.map(drop)
}

pub async fn disconnect_provider(provider: Provider) -> Result<(), AppError> {
    post(DisconnectProvider { provider }).await.map(drop)
}

pub async fn check_balance(provider: Provider) -> Result<BalanceView, AppError> {
    let answer = post(CheckBalance { provider }).await?;
    Ok(BalanceView { can_pay_a_run: json::flag(&answer, "can_pay_a_run"), message: json::text(&answer, "message"), balance_usd: None })
}

pub async fn load_runs() -> Result<Vec<RunFigures>, AppError> {
    let answer = post(LoadRuns {}).await?;
    Ok(json::items(&answer)
        .into_iter()
        .map(|run| RunFigures {
            eval_run_id: json::text(&run, "eval_run_id"),
            status: json::text(&run, "status"),
            spend_of_cap: json::text(&run, "spend_of_cap"),
            live: json::flag(&run, "live"),
            stopped: json::flag(&run, "stopped"),
        })
        .collect())
}

/// The sentence to show.
pub async fn stop_run(eval_run_id: String) -> Result<String, AppError> {
    text(post(StopRun { eval_run_id }).await?)
}

pub async fn save_budget(monthly_usd: String) -> Result<(), AppError> {
    post(SaveBudget { monthly_usd }).await.map(drop)
}

/// An answer that is a JSON string.
fn text(answer: json::Value) -> Result<String, AppError> {
    answer.as_string().ok_or_else(|| AppError::Transport("the answer was not the text expected".into()))
}

/// The server function's own argument struct, URL-encoded (flat: strings, a provider, absent
/// options left out), posted to its path.
async fn post<F: ServerFn + serde::Serialize>(args: F) -> Result<json::Value, AppError> {
    let form = serde_urlencoded::to_string(&args).map_err(|e| AppError::Transport(e.to_string()))?;
    #[cfg(feature = "hydrate")]
    {
        fetch::post(F::PATH, form).await
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = form;
        Err(AppError::Transport(format!("{} is called from the browser only", F::PATH)))
    }
}

#[cfg(feature = "hydrate")]
mod json {
    pub type Value = wasm_bindgen::JsValue;

    pub fn text(value: &Value, name: &str) -> String {
        crate::browser::field_text(value, name).unwrap_or_default()
    }

    pub fn flag(value: &Value, name: &str) -> bool {
        js_sys::Reflect::get(value, &name.into()).ok().and_then(|v| v.as_bool()).unwrap_or(false)
    }

    pub fn items(value: &Value) -> Vec<Value> {
        wasm_bindgen::JsCast::dyn_ref::<js_sys::Array>(value).map(|a| a.to_vec()).unwrap_or_default()
    }
}

/// Off the browser nothing is ever decoded (`post` answers an error first).
#[cfg(not(feature = "hydrate"))]
mod json {
    #[derive(Debug)]
    pub struct Value;

    impl Value {
        pub fn as_string(&self) -> Option<String> {
            None
        }
    }

    pub fn text(_: &Value, _: &str) -> String {
        String::new()
    }

    pub fn flag(_: &Value, _: &str) -> bool {
        false
    }

    pub fn items(_: &Value) -> Vec<Value> {
        Vec::new()
    }
}

#[cfg(feature = "hydrate")]
mod fetch {
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    use super::json;
    use crate::error::AppError;

    fn transport(e: JsValue) -> AppError {
        AppError::Transport(crate::browser::error_text(&e).unwrap_or_else(|| "no answer".into()))
    }

    /// As server_fn's client: the form URL-encoded, JSON asked for (not HTML, which would make
    /// the server answer as to a form posted without JavaScript: a redirect), the session's
    /// cookie sent (same origin).
    pub async fn post(path: &str, form: String) -> Result<json::Value, AppError> {
        let headers = web_sys::Headers::new().map_err(transport)?;
        headers.set("Content-Type", "application/x-www-form-urlencoded").map_err(transport)?;
        headers.set("Accept", "application/json").map_err(transport)?;
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body(&JsValue::from(form));
        let window = web_sys::window().ok_or_else(|| AppError::Transport("no window".into()))?;
        let response: web_sys::Response =
            JsFuture::from(window.fetch_with_str_and_init(path, &init)).await.map_err(transport)?.unchecked_into();
        let status = response.status();
        let text = JsFuture::from(response.text().map_err(transport)?).await.map_err(transport)?.as_string().unwrap_or_default();
        let answer = js_sys::JSON::parse(&text);
        if (400..600).contains(&status) {
            return Err(answer.map(|a| failure(&a)).unwrap_or_else(|_| AppError::Transport(format!("the server answered {status}"))));
        }
        answer.map_err(|_| AppError::Transport("the answer was not JSON".into()))
    }

    /// The `AppError` a failed server function answers, as serde writes it: `"NotSignedIn"`,
    /// `{"Refused": "…"}` or `{"Transport": "…"}`.
    fn failure(answer: &json::Value) -> AppError {
        if answer.as_string().as_deref() == Some("NotSignedIn") {
            return AppError::NotSignedIn;
        }
        match (crate::browser::field_text(answer, "Refused"), crate::browser::field_text(answer, "Transport")) {
            (Some(text), _) => AppError::Refused(text),
            (None, Some(text)) => AppError::Transport(text),
            (None, None) => AppError::Transport("the server's answer said no more".into()),
        }
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    //! Each kind of field, encoded as `post` encodes it and decoded as the server does
    //! (server_fn's `PostUrl`: serde_qs, not strict, into the function's argument struct); and
    //! the answers' fields read by name, as the server writes them.

    use super::super::*;

    fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(args: T) -> T {
        let form = serde_urlencoded::to_string(&args).unwrap();
        serde_qs::Config::new(5, false).deserialize_str(&form).unwrap_or_else(|e| panic!("{form}: {e}"))
    }

    #[test]
    fn a_form_is_what_its_server_function_reads() {
        // Text with what needs escaping: line breaks (the sign-in message), `&`, `=`, `+`, `%`.
        let message = "Sign in to ORO\nnonce: a+b=c&d 100%".to_string();
        let FinishSignIn { message: decoded, signature } = round_trip(FinishSignIn { message: message.clone(), signature: "0xab".into() });
        assert_eq!((decoded, signature.as_str()), (message, "0xab"));
        // Absent options stay absent; an empty state stays an empty state.
        let FinishChutesConnect { state, code, error } =
            round_trip(FinishChutesConnect { state: "s1".into(), code: Some("c1".into()), error: None });
        assert_eq!((state.as_str(), code.as_deref(), error), ("s1", Some("c1"), None));
        let FinishChutesConnect { state, code, error } =
            round_trip(FinishChutesConnect { state: String::new(), code: None, error: Some("access_denied".into()) });
        assert_eq!((state.as_str(), code, error.as_deref()), ("", None, Some("access_denied")));
        for provider in Provider::ALL {
            let SetDefaultProvider { provider: decoded } = round_trip(SetDefaultProvider { provider });
            assert_eq!(decoded, provider);
        }
        // No arguments at all.
        let _: SignOut = round_trip(SignOut {});
        let SaveBudget { monthly_usd } = round_trip(SaveBudget { monthly_usd: "$25".into() });
        assert_eq!(monthly_usd, "$25");
    }

    /// `load_runs` and `check_balance` are read field by field in the browser: a renamed field
    /// would read as empty (and a live run as over), so the names are checked here.
    #[test]
    fn the_answers_have_the_fields_the_browser_reads() {
        let figures = RunFigures {
            eval_run_id: "r1".into(),
            status: "running".into(),
            spend_of_cap: "$0.01 / $5.00".into(),
            live: true,
            stopped: true,
        };
        let figures = serde_json::to_value(vec![figures]).unwrap();
        assert_eq!(figures[0]["eval_run_id"], "r1");
        assert_eq!(figures[0]["status"], "running");
        assert_eq!(figures[0]["spend_of_cap"], "$0.01 / $5.00");
        assert_eq!(figures[0]["live"], true);
        assert_eq!(figures[0]["stopped"], true);
        let balance =
            serde_json::to_value(BalanceView { can_pay_a_run: true, message: "Balance: $50.00".into(), balance_usd: Some(50.0) }).unwrap();
        assert_eq!(balance["can_pay_a_run"], true);
        assert_eq!(balance["message"], "Balance: $50.00");
    }
}
