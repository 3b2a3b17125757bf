use clap::Parser;
use server::operator::{self, Command};
use server::startup::{Application, shutdown_signal};
use server::telemetry;
use service::Settings;

/// The ORO inference-provider service. Configuration comes from environment variables
/// (see the README); with no subcommand it serves.
#[derive(Debug, Parser)]
#[command(name = "server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            // One line, naming the variable; never its (possibly secret) value.
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    telemetry::init(settings.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        other => operator::run(other, settings).await,
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let public_url = app.services().settings.public_url.clone();
    tracing::info!(port = app.port(), "oro-inference listening; open {public_url}");
    app.run_until(shutdown_signal()).await?;
    Ok(())
}
