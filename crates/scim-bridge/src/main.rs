//! `scim-bridge`: the SCIM 2.0 provisioning bridge between identity providers and Coder.

mod audit_webhook;
mod build;
mod commands;
mod config;
mod confirm;
mod exit;
mod logging;
mod output;
mod sync;
mod tokens_file;

use clap::{Parser, Subcommand};

use commands::{
    audit::AuditAction, client::ClientAction, outbox::OutboxAction, token::TokenAction,
};

// Each request allocates many small, short-lived objects across threads (actix workers and the
// database's connection threads); mimalloc's thread-local free lists serve them faster than
// glibc malloc and keep the heap from fragmenting.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "scim-bridge",
    version = build::VERSION_LINE,
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
    /// Serve the SCIM API (under /scim/v2), /healthz, /readyz and /metrics (on SCIM_BRIDGE_OPS_LISTEN when set), and run the outbox worker.
    Serve,
    /// Apply the database migrations; with --copy-from, then copy an SQLite store into PostgreSQL.
    Migrate(commands::migrate::MigrateArgs),
    /// Bearer tokens for IdPs.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// OAuth 2.0 clients for IdPs that use the client credentials grant (Entra's gallery apps).
    Client {
        #[command(subcommand)]
        action: ClientAction,
    },
    /// The queue of resources waiting to be synced to Coder.
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Agents' Coder service accounts: short-lived scoped API tokens.
    Agent {
        #[command(subcommand)]
        action: commands::agent::AgentAction,
    },
    /// The hash-chained audit trail.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Why a user or group is (or is not) in Coder as it is: the SCIM record, the rule behind
    /// every role and the login type, Coder's state, outbox rows, sync issues and audit records;
    /// why an agent is active or suspended (exit 1 when it is suspended).
    Explain {
        #[command(subcommand)]
        kind: commands::explain::ExplainKind,
    },
    /// Evidence for access reviews and audits: who holds which Coder role and why (with the
    /// accounts no SCIM resource manages), and per-user offboarding; `-o table|csv|json`.
    Report {
        #[command(subcommand)]
        kind: commands::report::ReportKind,
    },
    /// Compare the stored state with Coder and queue the fixes (drift repair).
    Reconcile(commands::reconcile::ReconcileArgs),
    /// Coder capabilities and conflicts, the outbox, and open sync issues (exit 1 when something needs a person).
    Status(commands::status::StatusArgs),
    /// Try it in one command: SQLite and a Coder fake in process, an Okta-style push, then keep serving.
    Demo(commands::demo::DemoArgs),
    /// Check every setting and the mapping rules, then exit.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Ask the local server whether it is healthy (/healthz) or ready (/readyz), for images
    /// without curl: exit 0 when it answers 200, 1 otherwise.
    Healthcheck(commands::healthcheck::HealthcheckArgs),
    /// Print a shell completion script: `scim-bridge completions bash > /etc/bash_completion.d/scim-bridge`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (secrets redacted) with the source of every value,
    /// warnings, and every error (exit 3 when there is one).
    Check {
        #[command(flatten)]
        output: output::OutputArgs,
    },
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => exit::Exit::Ok.into(),
        Ok(false) => exit::Exit::No.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::code_of(&e).into()
        }
    }
}

/// Every configuration error as one error (a line each, `main` prefixes the first with
/// `error: `), exiting with the configuration code; `None` when there is none.
fn config_errors(check: &config::check::Check) -> Option<anyhow::Error> {
    if check.valid {
        return None;
    }
    let lines: Vec<String> = check
        .errors
        .iter()
        .map(|p| format!("{}: {}", p.setting, p.problem))
        .collect();
    Some(exit::with(
        exit::Exit::Config,
        anyhow::anyhow!("{}", lines.join("\nerror: ")),
    ))
}

fn run() -> anyhow::Result<bool> {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
        .map_err(|e| e.exit())
        .unwrap_or_else(|never| never);
    let from_command_line = config::check::from_command_line(&matches);
    if let Command::Completions { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        // Generated into memory: clap_complete panics on a write error (a closed pipe).
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, "scim-bridge", &mut script);
        std::io::Write::write_all(&mut std::io::stdout(), &script)?;
        return Ok(true);
    }
    if let Command::Config {
        action: ConfigAction::Check { output },
    } = &cli.command
    {
        let (check, _) =
            config::check::check(&cli.settings, &from_command_line, &config::ProcessEnv);
        output::print(output.output, &check)?;
        return match config_errors(&check) {
            None => Ok(true),
            Some(errors) => Err(errors),
        };
    }
    let loaded = config::Settings::load(&cli.settings, &config::ProcessEnv)
        .map_err(anyhow::Error::from)
        .and_then(|settings| {
            // The mapping rules too, so a mistake there is named by its key and line here.
            reconcile::Policy::from_toml(&settings.rules)?;
            Ok(settings)
        });
    let settings = match loaded {
        Ok(settings) => settings,
        Err(first) => {
            // Every problem, each under the name the operator used, not just the first.
            let (check, _) =
                config::check::check(&cli.settings, &from_command_line, &config::ProcessEnv);
            return Err(
                config_errors(&check).unwrap_or_else(|| exit::with(exit::Exit::Config, first))
            );
        }
    };
    // The demo's own lines are the point on a terminal: logs below warn only when asked for.
    let log_level = match cli.command {
        Command::Demo(_) if cli.settings.log_level.is_none() && settings.log_level == "info" => {
            "warn"
        }
        _ => settings.log_level.as_str(),
    };
    logging::init(settings.log_format, log_level).map_err(|e| exit::with(exit::Exit::Config, e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve => commands::serve::run(&settings).await.map(|_| true),
            Command::Migrate(args) => commands::migrate::run(&settings, &args).await.map(|_| true),
            Command::Token { action } => {
                commands::token::run(&settings, action).await.map(|_| true)
            }
            Command::Client { action } => {
                commands::client::run(&settings, action).await.map(|_| true)
            }
            Command::Outbox { action } => {
                commands::outbox::run(&settings, action).await.map(|_| true)
            }
            Command::Audit { action } => commands::audit::run(&settings, action).await,
            Command::Agent { action } => {
                commands::agent::run(&settings, action).await.map(|_| true)
            }
            Command::Explain { kind } => commands::explain::run(&settings, kind).await,
            Command::Report { kind } => commands::report::run(&settings, kind).await,
            Command::Reconcile(args) => commands::reconcile::run(&settings, args)
                .await
                .map(|_| true),
            Command::Status(args) => commands::status::run(&settings, args).await,
            Command::Demo(args) => commands::demo::run(&settings, args).await,
            Command::Healthcheck(args) => commands::healthcheck::run(&settings, args).await,
            Command::Completions { .. } => Ok(true),
            Command::Config { .. } => Ok(true),
        }
    })
}
