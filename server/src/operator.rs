//! Operator commands: the validator set, bans, the miner allowlist, the model catalog and
//! master-key rotation. They work on the configured database directly (the same service
//! layer the API uses), so they need no running server.

use clap::Subcommand;
use service::auth::roles::{self, Grant};
use service::domain::Hotkey;
use service::{Db, Services, Settings};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (the default).
    Serve,
    /// The hotkeys that may claim work as validators.
    Validators {
        #[command(subcommand)]
        action: RoleAction,
    },
    /// Hotkeys refused everywhere.
    Bans {
        #[command(subcommand)]
        action: RoleAction,
    },
    /// The optional miner allowlist (off by default: any valid hotkey may act as a miner).
    Miners {
        #[command(subcommand)]
        action: MinerAction,
    },
    /// The allowlisted models.
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// The credential vault.
    Vault {
        #[command(subcommand)]
        action: VaultAction,
    },
    /// Print the OpenAPI document this deployment serves at /openapi.json (no database needed).
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum RoleAction {
    Add {
        hotkey: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    Remove {
        hotkey: String,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum MinerAction {
    /// Turn the allowlist on: only listed hotkeys may act as miners.
    AllowlistOn,
    AllowlistOff,
    Add {
        hotkey: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    Remove {
        hotkey: String,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum CatalogAction {
    List,
    Add {
        chutes_name: String,
        openrouter_name: String,
    },
    Remove {
        chutes_name: String,
    },
    /// The model a run's sandbox gets by default.
    SetDefault {
        chutes_name: String,
    },
    /// What the run gateway charges for a model (either name), in USD per million tokens.
    Price {
        name: String,
        #[arg(value_name = "INPUT_USD_PER_MTOK")]
        input: f64,
        #[arg(value_name = "OUTPUT_USD_PER_MTOK")]
        output: f64,
    },
}

#[derive(Debug, Subcommand)]
pub enum VaultAction {
    /// Add a new master key and a new data key under it, re-seal every stored secret with the
    /// new data key, and delete the data keys nothing is sealed with any more. Safe to
    /// interrupt and run again.
    RotateMasterKey {
        /// Stop after re-sealing this many values (for staged rotations and tests).
        #[arg(long)]
        stop_after: Option<usize>,
        /// Seconds to wait, after adding the data key, for running replicas to load it (they
        /// look every minute) before any value is sealed with it.
        #[arg(long, default_value_t = 120)]
        replica_wait_secs: u64,
    },
    /// Remove master keys that no stored data key uses any more.
    RetireMasterKeys,
    /// Which data key (under which master key) seals how many stored values.
    Status,
}

fn hotkey(text: &str) -> anyhow::Result<Hotkey> {
    Hotkey::parse(text.trim()).map_err(|e| anyhow::anyhow!("{text:.16}: not a Bittensor hotkey ({e})"))
}

async fn role_action(db: &Db, role: Grant, action: RoleAction) -> anyhow::Result<()> {
    match action {
        RoleAction::Add { hotkey: h, note } => {
            roles::grant(db, &hotkey(&h)?, role, &note, service::clock::system_now()).await?;
            println!("added {h} ({role})");
        }
        RoleAction::Remove { hotkey: h } => {
            if roles::revoke(db, &hotkey(&h)?, role).await? {
                println!("removed {h} ({role})");
            } else {
                println!("{h} did not have the role {role}");
            }
        }
        RoleAction::List => {
            for (h, note) in roles::list(db, role).await? {
                println!("{h}\t{note}");
            }
        }
    }
    Ok(())
}

pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    if let Command::Openapi = command {
        println!("{}", crate::http::openapi::document(&settings).to_pretty_json()?);
        return Ok(());
    }
    let db = Db::connect(&settings.database_url).await?;
    match command {
        Command::Serve | Command::Openapi => unreachable!("handled before the database opens"),
        Command::Validators { action } => role_action(&db, Grant::Validator, action).await?,
        Command::Bans { action } => role_action(&db, Grant::Banned, action).await?,
        Command::Miners { action } => match action {
            MinerAction::AllowlistOn => {
                roles::set_allowlist_enabled(&db, true).await?;
                println!("miner allowlist is ON: only listed hotkeys may act as miners");
            }
            MinerAction::AllowlistOff => {
                roles::set_allowlist_enabled(&db, false).await?;
                println!("miner allowlist is OFF: any valid hotkey may act as a miner");
            }
            MinerAction::Add { hotkey: h, note } => role_action(&db, Grant::Miner, RoleAction::Add { hotkey: h, note }).await?,
            MinerAction::Remove { hotkey: h } => role_action(&db, Grant::Miner, RoleAction::Remove { hotkey: h }).await?,
            MinerAction::List => {
                let on = roles::allowlist_enabled(&db).await?;
                println!("# allowlist {}", if on { "on" } else { "off" });
                role_action(&db, Grant::Miner, RoleAction::List).await?;
            }
        },
        Command::Catalog { action } => {
            let services = Services::build(settings, db.clone()).await?;
            match action {
                CatalogAction::List => {
                    let catalog = services.catalog().await?;
                    for m in services.priced_models().await?.iter() {
                        let default = catalog.iter().any(|e| e.is_default && e.chutes_name == m.chutes_name);
                        println!(
                            "{}\t{}\t${}/${} per M tokens{}",
                            m.chutes_name,
                            m.openrouter_name,
                            m.input_usd_per_mtok,
                            m.output_usd_per_mtok,
                            if default { "\t(default)" } else { "" }
                        );
                    }
                }
                CatalogAction::Price { name, input, output } => {
                    services.catalog_set_price(&name, input, output).await?;
                    println!(
                        "{name} now costs ${input} per million input tokens and ${output} per million output tokens through the run gateway"
                    );
                }
                CatalogAction::Add { chutes_name, openrouter_name } => {
                    services.catalog_add(&chutes_name, &openrouter_name).await?;
                    println!("added {chutes_name} = {openrouter_name}");
                }
                CatalogAction::Remove { chutes_name } => {
                    services.catalog_remove(&chutes_name).await?;
                    println!("removed {chutes_name}");
                }
                CatalogAction::SetDefault { chutes_name } => {
                    services.catalog_set_default(&chutes_name).await?;
                    println!("{chutes_name} is now the default model");
                }
            }
        }
        Command::Vault { action } => match action {
            VaultAction::RotateMasterKey { stop_after, replica_wait_secs } => {
                let wait = std::time::Duration::from_secs(replica_wait_secs);
                let report = service::vault::rotate_master_key(&db, &settings.master_key_file, stop_after, wait).await?;
                println!(
                    "master key {}{}, data key {}: re-sealed {} value(s), {} left, retired {} old data key(s){}",
                    report.new_master_key_id,
                    if report.added_key { " added" } else { " (continuing an unfinished rotation)" },
                    report.data_key_id,
                    report.resealed,
                    report.remaining,
                    report.retired_data_keys,
                    if report.remaining == 0 {
                        "; `vault retire-master-keys` now removes the old master key from the key file"
                    } else {
                        "; run again to finish"
                    }
                );
            }
            VaultAction::Status => {
                for (data_key, master_key, created_at, sealed) in service::vault::status(&db).await? {
                    println!(
                        "data key {data_key} (master key {master_key}, created {}): seals {sealed} value(s)",
                        service::clock::rfc3339(created_at)
                    );
                }
            }
            VaultAction::RetireMasterKeys => {
                let retired = service::vault::retire_unused_master_keys(&db, &settings.master_key_file).await?;
                println!("retired {} master key(s): {}", retired.len(), retired.join(", "));
            }
        },
    }
    db.close().await;
    Ok(())
}
