//! `oro inference status|connect|set-default|disconnect`.

use std::io::BufRead;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use wire::Provider;
use wire::api::{ExchangeCode, InferenceAuthList, SetDefault};

use crate::chutes_flow::{self, LoopbackListener, Pkce};
use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::{Output, body_json, local_datetime};

const STATUS_PATH: &str = "/v1/miner/inference-auth";
const EXCHANGE_CODE_PATH: &str = "/v1/miner/chutes/exchange-code";

pub const NO_PROVIDERS: &str = "No providers connected. Run `oro inference connect <provider>` first.";

/// `oro inference status`.
pub fn status(client: &ApiClient, wallet_name: &str, out: Output) -> Result<(), CliError> {
    out.inference_header(wallet_name, client.hotkey().ss58(), None, client.base_url());
    let response = client.expect(client.get(STATUS_PATH)?, &[200])?;
    let list: InferenceAuthList = client.parse(&response, "an inference-auth list ({providers, default_provider})")?;
    if out.json {
        out.json_value(&body_json(&response.body));
        return Ok(());
    }
    for line in status_table(&list) {
        println!("{line}");
    }
    Ok(())
}

/// oro-sdk's table (`Provider`, `Connected`, `Default`, `Updated`) with our `State` and
/// `Label` after it; the hint line when nothing is connected.
pub fn status_table(list: &InferenceAuthList) -> Vec<String> {
    if list.providers.is_empty() {
        return vec![NO_PROVIDERS.to_owned()];
    }
    let mut lines = vec![
        format!("{:<14} {:<10} {:<8} {:<25} {:<15} {}", "Provider", "Connected", "Default", "Updated", "State", "Label")
            .trim_end()
            .to_owned(),
        "─".repeat(60),
    ];
    for p in &list.providers {
        let is_default = if list.default_provider == Some(p.provider) || p.is_default { "yes" } else { "" };
        let updated = p.updated_at.as_deref().map(|t| local_datetime(t, 'T')).unwrap_or_default();
        let state = p
            .state
            .map(|s| serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
            .unwrap_or_default();
        let label = p.label.as_deref().map(crate::client::printable).unwrap_or_default();
        let row = format!(
            "{:<14} {:<10} {:<8} {:<25} {:<15} {}",
            p.provider.as_str(),
            if p.connected { "yes" } else { "no" },
            is_default,
            updated,
            state,
            label
        );
        lines.push(row.trim_end().to_owned());
    }
    if !list.providers.iter().any(|p| p.connected) {
        lines.push(String::new());
        lines.push(NO_PROVIDERS.to_owned());
    }
    lines
}

/// Where `--api-key` comes from: the argument, or stdin's first line with `-`.
pub fn read_api_key(argument: &str, stdin: &mut dyn BufRead) -> Result<SecretString, CliError> {
    if argument != "-" {
        let key = argument.trim();
        if key.is_empty() {
            return Err(CliError::Usage("--api-key is empty".into()));
        }
        return Ok(SecretString::from(key.to_owned()));
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    stdin.read_line(&mut line).map_err(|_| CliError::Usage("--api-key -: cannot read the key from standard input".into()))?;
    let key = line.trim();
    if key.is_empty() {
        return Err(CliError::Usage("--api-key -: standard input held no key (put it on the first line)".into()));
    }
    Ok(SecretString::from(key.to_owned()))
}

/// `--api-key-file PATH`: the key on the file's first line.
pub fn read_api_key_file(path: &std::path::Path) -> Result<SecretString, CliError> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("--api-key-file {}: {e}", path.display())))?,
    );
    let key = text.lines().next().unwrap_or_default().trim();
    if key.is_empty() {
        return Err(CliError::Usage(format!("--api-key-file {}: the first line holds no key", path.display())));
    }
    Ok(SecretString::from(key.to_owned()))
}

/// No `--api-key` on a terminal: ask for it without echoing what is pasted.
pub fn prompt_api_key() -> Result<SecretString, CliError> {
    let key = zeroize::Zeroizing::new(
        rpassword::prompt_password("Paste your OpenRouter management key (input hidden): ")
            .map_err(|e| CliError::Usage(format!("cannot read the key from the terminal: {e}")))?,
    );
    let key = key.trim();
    if key.is_empty() {
        return Err(CliError::Usage("no key was pasted".into()));
    }
    Ok(SecretString::from(key.to_owned()))
}

/// `oro inference connect openrouter --api-key KEY`.
pub fn connect_openrouter(client: &ApiClient, wallet_name: &str, api_key: &SecretString, out: Output) -> Result<(), CliError> {
    out.inference_header(wallet_name, client.hotkey().ss58(), Some(Provider::OpenRouter.as_str()), client.base_url());
    #[derive(serde::Serialize)]
    struct Credential<'a> {
        credential: &'a str,
    }
    let path = format!("/v1/miner/inference-auth/{}", Provider::OpenRouter.as_str());
    let response = client.post_json(&path, &Credential { credential: api_key.expose_secret() })?;
    let response = client.expect(response, &[200])?;
    let answer: Option<wire::api::ConnectionChanged> = serde_json::from_slice(&response.body).ok();
    // The server's sentence names the masked key: "Connected OpenRouter (sk-or-v1-...abcd)."
    let connected = answer
        .as_ref()
        .map(|a| a.message.trim_end_matches('.').to_owned())
        .filter(|m| m.starts_with("Connected"))
        .unwrap_or_else(|| format!("Connected {}", Provider::OpenRouter.display_name()));
    out.line(&format!("{connected}; {}", default_clause(Provider::OpenRouter, answer.and_then(|a| a.default_provider))));
    out.json_value(&body_json(&response.body));
    Ok(())
}

/// The IdP, client and scopes to sign in with: what the options say, else what the server is
/// configured with (its exchange holds the client's secret), else oro-sdk's defaults (a server
/// from before `/v1/public/chutes-oauth`).
fn chutes_oauth(client: &ApiClient, options: &ChutesConnectOptions) -> (String, String, String) {
    let server: Option<wire::api::ChutesOAuthInfo> = if options.idp_base.is_some() && options.client_id.is_some() {
        None
    } else {
        client.get("/v1/public/chutes-oauth").ok().filter(|r| r.status == 200).and_then(|r| serde_json::from_slice(&r.body).ok())
    };
    let idp_base = options
        .idp_base
        .clone()
        .or_else(|| server.as_ref().map(|s| s.authorize_base.clone()))
        .unwrap_or_else(|| chutes_flow::DEFAULT_CHUTES_IDP_BASE.to_owned());
    let client_id = options
        .client_id
        .clone()
        .or_else(|| server.as_ref().map(|s| s.client_id.clone()))
        .unwrap_or_else(|| chutes_flow::DEFAULT_CHUTES_CLIENT_ID.to_owned());
    let scopes = options.scopes.clone().or_else(|| server.map(|s| s.scopes)).unwrap_or_else(|| chutes_flow::SCOPE.to_owned());
    (idp_base, client_id, scopes)
}

/// After a connect: whether the provider just connected is the one the next run uses.
fn default_clause(connected: Provider, default: Option<Provider>) -> String {
    match default {
        Some(d) if d == connected => "it is your default.".to_owned(),
        Some(d) => format!("your default stays {} (`oro inference set-default {}` to switch).", d.display_name(), connected.as_str()),
        None => "it is not your default yet (`oro inference set-default` to choose).".to_owned(),
    }
}

/// What `connect chutes` needs besides the client.
pub struct ChutesConnectOptions {
    /// `None`: as the server is configured (`/v1/public/chutes-oauth`).
    pub idp_base: Option<String>,
    pub client_id: Option<String>,
    pub scopes: Option<String>,
    pub open_browser: bool,
    pub timeout: Duration,
}

/// `oro inference connect chutes`: PKCE through the browser, then the code exchange.
pub fn connect_chutes(client: &ApiClient, wallet_name: &str, options: &ChutesConnectOptions, out: Output) -> Result<(), CliError> {
    let pkce = Pkce::generate();
    let state = chutes_flow::random_state();
    // Listen before the browser can come back.
    let listener = LoopbackListener::bind()?;
    let (idp_base, client_id, scopes) = chutes_oauth(client, options);
    let url = chutes_flow::authorize_url(&idp_base, &client_id, &scopes, &state, &pkce.challenge);
    if options.open_browser {
        out.notice("Opening browser for Chutes authentication...");
        let opened = chutes_flow::open_browser(&url);
        if opened {
            out.notice(&format!("If the browser doesn't open, visit: {url}"));
        } else {
            out.notice(&format!("Could not open a browser; open this URL to authorize: {url}"));
        }
    } else {
        out.notice(&format!("Open this URL in your browser to authorize: {url}"));
        // Chutes sends the browser back to this machine's loopback port: from another
        // computer that needs a tunnel.
        let port = url::Url::parse(chutes_flow::REDIRECT_URI).ok().and_then(|u| u.port()).unwrap_or(8765);
        out.notice(&format!(
            "On a remote machine, first run `ssh -L {port}:localhost:{port} <this host>` on the computer with the browser, then open the URL there; or connect Chutes from the dashboard ({}/dashboard).",
            client.base_url()
        ));
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("Waiting up to {} s for the Chutes callback on {} ...", options.timeout.as_secs(), chutes_flow::REDIRECT_URI);
    }
    let code = listener.wait_for_code(&state, options.timeout)?;
    drop(listener);

    out.inference_header(wallet_name, client.hotkey().ss58(), Some(Provider::Chutes.as_str()), client.base_url());
    let exchange = ExchangeCode {
        code: code.expose_secret().to_owned(),
        code_verifier: pkce.verifier.expose_secret().to_owned(),
        redirect_uri: chutes_flow::REDIRECT_URI.to_owned(),
    };
    let response = client.post_json(EXCHANGE_CODE_PATH, &exchange);
    // The body held the code and the verifier: wipe our copy.
    let ExchangeCode { code, code_verifier, .. } = exchange;
    drop((zeroize::Zeroizing::new(code), zeroize::Zeroizing::new(code_verifier)));
    let response = client.expect(response?, &[200])?;
    let answer: Option<wire::api::ExchangeCodeAnswer> = serde_json::from_slice(&response.body).ok();
    out.line(&format!(
        "Connected {}; {}",
        Provider::Chutes.display_name(),
        default_clause(Provider::Chutes, answer.and_then(|a| a.default_provider))
    ));
    out.json_value(&body_json(&response.body));
    Ok(())
}

/// `oro inference set-default P`.
pub fn set_default(client: &ApiClient, wallet_name: &str, provider: Provider, out: Output) -> Result<(), CliError> {
    out.inference_header(wallet_name, client.hotkey().ss58(), Some(provider.as_str()), client.base_url());
    let response = client.patch_json("/v1/miner/inference-auth/default", &SetDefault { provider })?;
    let response = client.expect(response, &[200, 204])?;
    out.line(&format!(
        "{} is now your default: the next evaluation claimed uses it (runs already going finish where they started).",
        provider.display_name()
    ));
    out.json_value(&body_json(&response.body));
    Ok(())
}

/// `oro inference disconnect P`.
pub fn disconnect(client: &ApiClient, wallet_name: &str, provider: Provider, out: Output) -> Result<(), CliError> {
    out.inference_header(wallet_name, client.hotkey().ss58(), Some(provider.as_str()), client.base_url());
    let response = client.delete(&format!("/v1/miner/inference-auth/{}", provider.as_str()))?;
    if response.status == 404 && crate::client::refusal(&response).to_string().contains("is not connected") {
        // Already the state asked for: nothing to undo.
        out.line(&format!("{} was not connected; nothing to do.", provider.display_name()));
        out.json_value(&body_json(&response.body));
        return Ok(());
    }
    let response = client.expect(response, &[200, 204])?;
    let answer: Option<wire::api::ConnectionChanged> = serde_json::from_slice(&response.body).ok();
    let then = match answer.map(|a| a.default_provider) {
        Some(Some(other)) if other != provider => format!(" {} is your default now.", other.display_name()),
        Some(None) => " No provider is connected now: connect one before your next submission.".to_owned(),
        _ => String::new(),
    };
    out.line(&format!("Disconnected {}.{then}", provider.display_name()));
    out.json_value(&body_json(&response.body));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::api::{ConnectionState, ProviderStatus};

    fn row(provider: Provider, connected: bool) -> ProviderStatus {
        ProviderStatus {
            provider,
            connected,
            updated_at: connected.then(|| "2025-01-02T03:04:05+00:00".to_owned()),
            state: Some(if connected { ConnectionState::Connected } else { ConnectionState::NotConnected }),
            label: connected.then(|| "sk-or-v1-...3f2a".to_owned()),
            is_default: false,
        }
    }

    #[test]
    fn the_status_table_starts_with_oro_sdks_columns() {
        let list = InferenceAuthList {
            providers: vec![row(Provider::OpenRouter, true), row(Provider::Chutes, false)],
            default_provider: Some(Provider::OpenRouter),
        };
        let lines = status_table(&list);
        assert_eq!(&lines[0][..42], "Provider       Connected  Default  Updated");
        assert_eq!(lines[1], "─".repeat(60));
        assert!(lines[2].starts_with("openrouter     yes        yes      2025-01-02T03:04:05+00:00"), "{}", lines[2]);
        assert!(lines[2].ends_with("connected       sk-or-v1-...3f2a"), "{}", lines[2]);
        assert!(lines[3].starts_with("chutes         no"), "{}", lines[3]);
        assert_eq!(lines.len(), 4);

        let none = InferenceAuthList { providers: vec![], default_provider: None };
        assert_eq!(status_table(&none), vec![NO_PROVIDERS.to_owned()]);
        let unconnected = InferenceAuthList { providers: vec![row(Provider::Chutes, false)], default_provider: None };
        assert_eq!(status_table(&unconnected).last().unwrap(), NO_PROVIDERS);
    }

    #[test]
    fn api_keys_come_from_the_argument_or_stdin() {
        let mut empty: &[u8] = b"";
        assert_eq!(read_api_key("sk-or-v1-abc", &mut empty).unwrap().expose_secret(), "sk-or-v1-abc");
        let mut stdin: &[u8] = b"  sk-or-v1-from-stdin  \nsecond line\n";
        assert_eq!(read_api_key("-", &mut stdin).unwrap().expose_secret(), "sk-or-v1-from-stdin");
        let mut blank: &[u8] = b"\n";
        assert!(matches!(read_api_key("-", &mut blank), Err(CliError::Usage(_))));
        assert!(matches!(read_api_key("  ", &mut empty), Err(CliError::Usage(_))));
    }
}
