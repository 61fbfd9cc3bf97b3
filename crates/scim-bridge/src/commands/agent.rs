//! `scim-bridge agent token|tokens|revoke` and `scim-bridge explain agent`: short-lived scoped
//! Coder API tokens for agents' service accounts, and why an agent is active or suspended.

use crate::config::Settings;
use crate::confirm::ConfirmArgs;

#[derive(Debug, clap::Subcommand)]
pub enum AgentAction {
    /// Mint a Coder API token for the agent's service account; printed once, as the last line.
    Token {
        /// The agent: its agentUserName or name, or its Coder username.
        #[arg(long)]
        agent: String,
        /// How long the token lives, at most [agents] max_token_lifetime (default 4h).
        #[arg(long, default_value = "4h")]
        lifetime: String,
        /// Coder API key scopes, comma or space separated, each in [agents] token_scopes
        /// (default coder:workspaces.access).
        #[arg(long)]
        scopes: Option<String>,
        /// The token's name in Coder (unique for the agent); default scim-bridge-<time>.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the agent's tokens (never their values).
    Tokens {
        #[arg(long)]
        agent: String,
    },
    /// Delete one of the agent's tokens (by id or name), or all of them with --all.
    Revoke {
        #[arg(long)]
        agent: String,
        /// The token's id or name.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        token: Option<String>,
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
}

/// `explain agent NAME`.
#[derive(Debug, clap::Args)]
pub struct AgentTarget {
    /// The agent: its agentUserName or name, or its Coder username.
    pub name: String,
}

fn split_scopes(raw: &str) -> Vec<String> {
    raw.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub async fn run(settings: &Settings, action: AgentAction) -> anyhow::Result<()> {
    // Asked before anything is opened, as `token revoke` does: a script without --yes is
    // refused (exit 2) whatever the state of the database or Coder.
    if let AgentAction::Revoke {
        agent,
        token,
        all,
        confirm,
    } = &action
    {
        let which = match (token, all) {
            (Some(token), false) => format!("token '{token}'"),
            _ => "every token".to_owned(),
        };
        confirm.ask(&format!(
            "Revoke {which} of agent {agent}? Whatever uses it can no longer reach Coder."
        ))?;
    }
    // A lifetime or scope the configuration does not allow is a mistake on the command line:
    // refused before anything is opened, with the usage exit code, and nothing is minted.
    let mint = match &action {
        AgentAction::Token {
            lifetime, scopes, ..
        } => {
            let lifetime = humantime::parse_duration(lifetime).map_err(|e| {
                crate::exit::usage(format!(
                    "--lifetime: '{lifetime}' is not a duration such as 4h: {e}"
                ))
            })?;
            let scopes = scopes.as_deref().map(split_scopes).unwrap_or_default();
            let scopes = crate::sync::policy(settings)?
                .agents
                .check_mint(lifetime, scopes)
                .map_err(crate::exit::usage)?;
            Some((lifetime, scopes))
        }
        _ => None,
    };
    let store = super::open_store(settings).await?;
    let reconciler = crate::sync::reconciler(settings, &store, None)?;
    match action {
        AgentAction::Token { agent, name, .. } => {
            let (lifetime, scopes) = mint.unwrap_or_default();
            let minted = reconciler
                .mint_agent_token(&agent, lifetime, scopes, name)
                .await?;
            println!(
                "token '{}' (id {}) for agent {agent} with scopes {}; it expires at {}",
                minted.token_name,
                minted.key_id,
                minted.scopes.join(","),
                minted.expires_at.to_rfc3339()
            );
            println!("{}", minted.secret);
        }
        AgentAction::Tokens { agent } => {
            let (account, keys) = reconciler.agent_tokens(&agent).await?;
            println!(
                "agent {agent}: Coder service account {} ({})",
                account.coder_user.username, account.coder_user.id
            );
            println!(
                "{:<12} {:<32} {:<40} {:<26} EXPIRES",
                "ID", "NAME", "SCOPES", "CREATED"
            );
            for key in keys {
                println!(
                    "{:<12} {:<32} {:<40} {:<26} {}",
                    key.id,
                    key.token_name,
                    key.scopes.join(","),
                    key.created_at.to_rfc3339(),
                    key.expires_at.to_rfc3339()
                );
            }
        }
        AgentAction::Revoke {
            agent,
            token,
            all,
            confirm: _,
        } => {
            let revoked = reconciler
                .revoke_agent_tokens(&agent, if all { None } else { token.as_deref() })
                .await?;
            println!("revoked {} token(s) of agent {agent}", revoked.len());
            for id in revoked {
                println!("  {id}");
            }
        }
    }
    Ok(())
}

/// `scim-bridge explain agent NAME`. Ok(false) when the agent is suspended.
pub async fn explain(settings: &Settings, target: AgentTarget) -> anyhow::Result<bool> {
    let name = target.name;
    let store = super::open_store(settings).await?;
    let reconciler = crate::sync::reconciler(settings, &store, None)?;
    let e = reconciler.explain_agent(&name).await?;
    let user = &e.account.coder_user;
    let suspended = user.status == coder::types::UserStatus::Suspended;
    println!(
        "agent:        {name} ({} {})",
        e.account.resource.kind.name(),
        e.account.resource.id
    );
    println!(
        "coder:        service account {} ({}), {}",
        user.username,
        user.id,
        if suspended { "SUSPENDED" } else { "active" }
    );
    println!("own active:   {}", e.own_active);
    if e.owners.is_empty() {
        println!("owners:       none (the agent follows only its own active)");
    } else {
        println!("owners:");
        for owner in &e.owners {
            let state = match owner.active {
                Some(true) => "active",
                Some(false) => "inactive",
                None => "deleted",
            };
            println!("  - {} {state}", owner.id);
        }
    }
    let why = match (&e.cascade, e.own_active, suspended) {
        (Some((since, detail)), _, _) => format!(
            "{detail} (since {})",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        (None, false, _) => "suspended: the IdP set the agent inactive".to_owned(),
        (None, true, true) => {
            "suspended in Coder while the IdP says active: the worker has not converged yet (see `scim-bridge outbox status`)".to_owned()
        }
        (None, true, false) => {
            if e.owners.is_empty() {
                "active: the IdP says active".to_owned()
            } else {
                "active: the IdP says active and an owner is active".to_owned()
            }
        }
    };
    println!("why:          {why}");
    for (issue_type, detail) in &e.issues {
        println!("issue:        {issue_type}: {detail}");
    }
    Ok(!suspended)
}
