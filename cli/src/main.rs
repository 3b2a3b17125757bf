//! `oro`: the miner's command line for ORO inference providers, a Rust twin of oro-sdk
//! 4.0.1's `oro inference ...` and `oro submit` (same requests, same success lines, same
//! `Error (HTTP n): detail` refusals).
//!
//! Exit codes: 0 done; 1 refused by the server, server unreachable, or the Chutes browser
//! flow failed; 2 bad usage or a wallet problem.

mod chutes_flow;
mod client;
mod commands;
mod error;
mod output;
mod wallet;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;
use wire::Provider;

use crate::client::ApiClient;
use crate::commands::inference::{self, ChutesConnectOptions};
use crate::error::CliError;
use crate::output::Output;
use crate::wallet::{PasswordSource, WalletLocation};

/// Read by scripts and tests instead of the password prompt.
const PASSWORD_ENV: &str = "ORO_WALLET_PASSWORD";

#[derive(Parser)]
#[command(name = "oro", version, about = "Connect inference providers to your ORO miner hotkey and submit agents.")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: TopCommand,
}

/// Options every command takes.
#[derive(Args)]
struct GlobalArgs {
    /// Wallet name (the folder under the wallet path).
    #[arg(long, global = true, env = "ORO_WALLET_NAME", default_value = "default")]
    wallet_name: String,
    /// Hotkey name: signs every request.
    #[arg(long, global = true, env = "ORO_WALLET_HOTKEY", default_value = "default")]
    wallet_hotkey: String,
    /// Where wallets live.
    #[arg(long, global = true, env = "BT_WALLET_PATH", default_value = "~/.bittensor/wallets")]
    wallet_path: String,
    /// The ORO API.
    #[arg(long, global = true, env = "ORO_API_URL", default_value = "https://api.oroagents.com")]
    base_url: String,
    /// Print the server's JSON answer on stdout (messages go to stderr); an error is
    /// `{"error": {...}}` on stdout too.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum TopCommand {
    /// Manage the inference providers your evaluations run on.
    Inference {
        #[command(subcommand)]
        command: InferenceCommand,
    },
    /// Submit an agent (requires a connected inference provider).
    Submit(SubmitArgs),
    /// The monthly ceiling on what ORO runs may commit on your OpenRouter account.
    Budget {
        #[command(subcommand)]
        command: BudgetCommand,
    },
    /// Your evaluation runs: status, provider, spend; `stop ID` kills a running run's
    /// inference credential at once.
    Runs {
        #[command(subcommand)]
        command: Option<RunsCommand>,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

#[derive(Subcommand)]
enum InferenceCommand {
    /// Show which providers are connected and which one is the default.
    Status,
    /// Connect a provider: `openrouter --api-key KEY` (or `--api-key -` to read it from
    /// stdin), or `chutes` through the browser.
    Connect(ConnectArgs),
    /// Choose the provider the next claimed evaluation uses.
    SetDefault {
        #[arg(value_enum)]
        provider: ProviderArg,
    },
    /// Remove a provider's stored credential.
    Disconnect {
        #[arg(value_enum)]
        provider: ProviderArg,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List your runs, newest first (the default).
    List,
    /// Stop inference: the run's credential (gateway token or OpenRouter run key) stops
    /// working now; the run then fails at the validator.
    Stop {
        #[arg(value_name = "EVAL_RUN_ID")]
        eval_run_id: String,
    },
}

#[derive(Subcommand)]
enum BudgetCommand {
    /// Show the ceiling and what this month's runs have committed.
    Show,
    /// Set the ceiling in USD.
    Set {
        #[arg(value_name = "USD")]
        monthly_usd: f64,
    },
    /// Remove the ceiling.
    Clear,
}

#[derive(Args)]
struct ConnectArgs {
    #[arg(value_enum)]
    provider: ProviderArg,
    /// OpenRouter management key; `-` reads it from the first line of stdin. Better left
    /// out: a key on the command line lands in your shell history and in `ps` for every user
    /// of the machine. Without it, `oro` asks for the key without echoing it.
    #[arg(long, value_name = "KEY", conflicts_with = "api_key_file")]
    api_key: Option<String>,
    /// Read the OpenRouter management key from the first line of this file.
    #[arg(long, value_name = "PATH")]
    api_key_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    chutes: ChutesArgs,
}

/// How the Chutes browser flow runs (`connect chutes`, and `submit` with nothing connected).
#[derive(Args)]
struct ChutesArgs {
    /// Chutes: do not open a browser, only print the URL.
    #[arg(long)]
    no_browser: bool,
    /// Chutes: the identity provider's base URL (default: the one the server is configured
    /// with, from /v1/public/chutes-oauth).
    #[arg(long, env = "ORO_CHUTES_API_BASE")]
    chutes_base: Option<String>,
    /// Chutes: the OAuth client id (oro-sdk reads CHUTES_CLIENT_ID too; default: the server's).
    #[arg(long, env = "CHUTES_CLIENT_ID", hide = true)]
    chutes_client_id: Option<String>,
    /// Chutes: seconds to wait for the browser to come back.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    timeout: u64,
}

impl ChutesArgs {
    fn options(self) -> ChutesConnectOptions {
        ChutesConnectOptions {
            idp_base: self.chutes_base,
            client_id: self.chutes_client_id,
            scopes: None,
            open_browser: !self.no_browser,
            timeout: Duration::from_secs(self.timeout),
        }
    }
}

#[derive(Args)]
#[command(group(ArgGroup::new("agent").required(true).args(["file", "agent_file"])))]
struct SubmitArgs {
    /// The agent's name.
    #[arg(long)]
    agent_name: String,
    /// The agent's Python file.
    file: Option<PathBuf>,
    /// The agent's Python file (oro-sdk's spelling).
    #[arg(long, value_name = "FILE")]
    agent_file: Option<PathBuf>,
    /// With nothing connected, connect Chutes without asking first (on a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    chutes: ChutesArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProviderArg {
    Chutes,
    Openrouter,
}

impl From<ProviderArg> for Provider {
    fn from(p: ProviderArg) -> Self {
        match p {
            ProviderArg::Chutes => Provider::Chutes,
            ProviderArg::Openrouter => Provider::OpenRouter,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

fn main() -> ExitCode {
    output::read_local_offset();
    let cli = Cli::parse();
    let json = cli.global.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", error.report());
            if json {
                println!("{}", error.to_json());
            }
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let global = cli.global;
    let out = Output { json: global.json };
    match cli.command {
        TopCommand::Completions { shell } => {
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut Cli::command(), "oro", &mut std::io::stdout());
            Ok(())
        }
        TopCommand::Inference { command } => match command {
            InferenceCommand::Status => inference::status(&connect(&global)?, &global.wallet_name, out),
            InferenceCommand::Connect(args) => match args.provider {
                ProviderArg::Openrouter => {
                    let key = match (args.api_key.as_deref(), &args.api_key_file) {
                        (Some(argument), _) => inference::read_api_key(argument, &mut std::io::stdin().lock())?,
                        (None, Some(path)) => inference::read_api_key_file(path)?,
                        (None, None) if std::io::stdin().is_terminal() => inference::prompt_api_key()?,
                        (None, None) => {
                            return Err(CliError::Usage(
                                "--api-key is required for openrouter.\n  For OpenRouter, mint a Management API key at \
                                 https://openrouter.ai/settings/management-keys. Standard input is not a terminal, so oro cannot ask for it: \
                                 pass `--api-key -` to read it from stdin, or `--api-key-file PATH`"
                                    .into(),
                            ));
                        }
                    };
                    inference::connect_openrouter(&connect(&global)?, &global.wallet_name, &key, out)
                }
                ProviderArg::Chutes => {
                    if args.api_key.is_some() || args.api_key_file.is_some() {
                        return Err(CliError::Usage(
                            "--api-key is not supported for chutes; the connect flow uses interactive OAuth.".into(),
                        ));
                    }
                    inference::connect_chutes(&connect(&global)?, &global.wallet_name, &args.chutes.options(), out)
                }
            },
            InferenceCommand::SetDefault { provider } => {
                inference::set_default(&connect(&global)?, &global.wallet_name, provider.into(), out)
            }
            InferenceCommand::Disconnect { provider } => {
                inference::disconnect(&connect(&global)?, &global.wallet_name, provider.into(), out)
            }
        },
        TopCommand::Budget { command } => match command {
            BudgetCommand::Show => commands::budget::show(&connect(&global)?, out),
            BudgetCommand::Set { monthly_usd } => commands::budget::set(&connect(&global)?, Some(monthly_usd), out),
            BudgetCommand::Clear => commands::budget::set(&connect(&global)?, None, out),
        },
        TopCommand::Runs { command } => match command.unwrap_or(RunsCommand::List) {
            RunsCommand::List => commands::runs::list(&connect(&global)?, out),
            RunsCommand::Stop { eval_run_id } => commands::runs::stop(&connect(&global)?, &eval_run_id, out),
        },
        TopCommand::Submit(args) => {
            let path = args.file.or(args.agent_file).expect("clap requires one of FILE and --agent-file");
            let agent = commands::submit::read_agent_file(&path)?;
            // A first submission with nothing connected connects Chutes on the way, as ORO's
            // docs promise, but only where a person can answer: never in a pipe or with --json.
            let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal() && !out.json;
            let first_connect = commands::submit::FirstConnect { interactive, ask: !args.yes, chutes: args.chutes.options() };
            commands::submit::submit(&connect(&global)?, &global.wallet_name, &args.agent_name, agent, &first_connect, out)
        }
    }
}

/// Loads the hotkey and opens the API client.
fn connect(global: &GlobalArgs) -> Result<ApiClient, CliError> {
    let location = WalletLocation::new(&global.wallet_path, &global.wallet_name, &global.wallet_hotkey);
    let passwords = match std::env::var(PASSWORD_ENV) {
        Ok(password) => PasswordSource::Given(SecretString::from(password)),
        Err(_) => PasswordSource::Prompt,
    };
    let hotkey = wallet::load_hotkey(&location, &passwords)?;
    Ok(ApiClient::new(&global.base_url, hotkey)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["oro", "inference", "status", "--json", "--wallet-name", "w"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.wallet_name, "w");
        assert!(Cli::try_parse_from(["oro", "inference", "set-default", "anthropic"]).is_err());
        assert!(Cli::try_parse_from(["oro", "submit", "--agent-name", "a"]).is_err());
        assert!(Cli::try_parse_from(["oro", "submit", "--agent-name", "a", "x.py", "--agent-file", "y.py"]).is_err());
    }
}
