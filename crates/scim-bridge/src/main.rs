//! `scim-bridge`: the SCIM 2.0 provisioning bridge between identity providers and Coder.

mod config;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "scim-bridge",
    version,
    about = "SCIM 2.0 provisioning bridge from Okta, Entra ID and other IdPs to Coder"
)]
struct Cli {
    #[command(flatten)]
    settings: config::SettingsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every setting and the mapping rules, then exit.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Validate the configuration and print it with secrets redacted.
    Check,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let settings = config::Settings::load(&cli.settings, &config::ProcessEnv)?;
            println!("{settings:#?}");
            println!("configuration is valid");
        }
    }
    Ok(())
}
