//! `scim-bridge agent token|tokens|revoke` and `scim-bridge explain agent`: short-lived scoped
//! Coder API tokens for agents' service accounts, and why an agent is active or suspended.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Settings;
use crate::confirm::ConfirmArgs;
use crate::output::{self, Fields, OutputArgs, Row, Table, View};

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
        #[command(flatten)]
        output: OutputArgs,
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
    #[command(flatten)]
    pub output: OutputArgs,
}

/// One of an agent's Coder API tokens (`agent tokens`), never its value.
#[derive(Debug, Serialize)]
struct TokenRow {
    id: String,
    name: String,
    scopes: Vec<String>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl Row for TokenRow {
    const HEADERS: &'static [&'static str] = &["ID", "NAME", "SCOPES", "CREATED", "EXPIRES"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.scopes.join(","),
            output::time(self.created_at),
            output::time(self.expires_at),
        ]
    }
}

/// `agent tokens`: the service account and its tokens.
#[derive(Debug, Serialize)]
struct AgentTokens {
    agent: String,
    coder_username: String,
    coder_user_id: uuid::Uuid,
    tokens: Vec<TokenRow>,
}

impl View for AgentTokens {
    fn table(&self) -> String {
        let mut text = format!(
            "agent {}: Coder service account {} ({})\n",
            self.agent, self.coder_username, self.coder_user_id
        );
        let mut table = Table::new(TokenRow::HEADERS);
        for token in &self.tokens {
            table.row(token.cells());
        }
        text.push_str(&table.to_string());
        text
    }
}

#[derive(Debug, Serialize)]
struct OwnerView {
    id: String,
    /// `active`, `inactive` or `deleted`.
    state: &'static str,
}

#[derive(Debug, Serialize)]
struct IssueView {
    issue_type: String,
    detail: String,
}

/// `explain agent`: the agent, its service account, its owners and why it is as it is.
#[derive(Debug, Serialize)]
struct AgentView {
    agent: String,
    kind: &'static str,
    scim_id: String,
    coder_username: String,
    coder_user_id: uuid::Uuid,
    suspended: bool,
    own_active: bool,
    owners: Vec<OwnerView>,
    why: String,
    sync_issues: Vec<IssueView>,
}

impl View for AgentView {
    fn table(&self) -> String {
        let mut f = Fields::new();
        f.field(
            "agent",
            format!("{} ({} {})", self.agent, self.kind, self.scim_id),
        )
        .field(
            "coder",
            format!(
                "service account {} ({}), {}",
                self.coder_username,
                self.coder_user_id,
                if self.suspended {
                    "SUSPENDED"
                } else {
                    "active"
                }
            ),
        )
        .field("own active", self.own_active);
        if self.owners.is_empty() {
            f.field("owners", "none (the agent follows only its own active)");
        } else {
            f.field("owners", self.owners.len());
            for owner in &self.owners {
                f.note(format!("- {} {}", owner.id, owner.state));
            }
        }
        f.field("why", &self.why);
        for issue in &self.sync_issues {
            f.field("issue", format!("{}: {}", issue.issue_type, issue.detail));
        }
        f.to_string()
    }
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
        AgentAction::Tokens { agent, output } => {
            let (account, keys) = reconciler.agent_tokens(&agent).await?;
            let view = AgentTokens {
                agent,
                coder_username: account.coder_user.username.clone(),
                coder_user_id: account.coder_user.id,
                tokens: keys
                    .into_iter()
                    .map(|key| TokenRow {
                        id: key.id,
                        name: key.token_name,
                        scopes: key.scopes,
                        created_at: key.created_at,
                        expires_at: key.expires_at,
                    })
                    .collect(),
            };
            output::print(output.output, &view)?;
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
    let store = super::open_store(settings).await?;
    let reconciler = crate::sync::reconciler(settings, &store, None)?;
    let e = reconciler.explain_agent(&target.name).await?;
    let view = agent_view(target.name, e);
    output::print(target.output.output, &view)?;
    Ok(!view.suspended)
}

fn agent_view(name: String, e: reconcile::agent_tokens::AgentExplanation) -> AgentView {
    let user = &e.account.coder_user;
    let suspended = user.status == coder::types::UserStatus::Suspended;
    let why = match (&e.cascade, e.own_active, suspended) {
        (Some((since, detail)), _, _) => format!("{detail} (since {})", output::time(*since)),
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
    AgentView {
        agent: name,
        kind: e.account.resource.kind.name(),
        scim_id: e.account.resource.id.clone(),
        coder_username: user.username.clone(),
        coder_user_id: user.id,
        suspended,
        own_active: e.own_active,
        owners: e
            .owners
            .iter()
            .map(|owner| OwnerView {
                id: owner.id.clone(),
                state: match owner.active {
                    Some(true) => "active",
                    Some(false) => "inactive",
                    None => "deleted",
                },
            })
            .collect(),
        why,
        sync_issues: e
            .issues
            .into_iter()
            .map(|(issue_type, detail)| IssueView { issue_type, detail })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Format, render};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn tokens() -> AgentTokens {
        AgentTokens {
            agent: "build-bot".into(),
            coder_username: "build-bot".into(),
            coder_user_id: uuid::Uuid::from_u128(0x0a1b_2c3d),
            tokens: vec![
                TokenRow {
                    id: "k1A2b3C4d5".into(),
                    name: "scim-bridge-20261203T101500Z".into(),
                    scopes: vec!["coder:workspaces.access".into()],
                    created_at: at("2026-12-03T10:15:00Z"),
                    expires_at: at("2026-12-03T14:15:00Z"),
                },
                TokenRow {
                    id: "Zz9Yy8Xx7W".into(),
                    name: "ci".into(),
                    scopes: vec!["workspace:read".into(), "template:read".into()],
                    created_at: at("2026-12-02T08:00:00.123Z"),
                    expires_at: at("2026-12-02T12:00:00Z"),
                },
            ],
        }
    }

    fn explained() -> AgentView {
        AgentView {
            agent: "build-bot".into(),
            kind: "Agent",
            scim_id: "7c1e0f2a-agent".into(),
            coder_username: "build-bot".into(),
            coder_user_id: uuid::Uuid::from_u128(0x0a1b_2c3d),
            suspended: true,
            own_active: true,
            owners: vec![
                OwnerView {
                    id: "u-alice".into(),
                    state: "inactive",
                },
                OwnerView {
                    id: "u-bob".into(),
                    state: "deleted",
                },
            ],
            why: "suspended: every owner is inactive or deleted (since 2026-12-03T09:00:00Z)"
                .into(),
            sync_issues: vec![IssueView {
                issue_type: "owners_inactive".into(),
                detail: "every owner is inactive or deleted".into(),
            }],
        }
    }

    crate::output::snapshot_tests! {
        agent_tokens_table => render(Format::Table, &tokens()).unwrap();
        agent_tokens_json => render(Format::Json, &tokens()).unwrap();
        explain_agent_table => render(Format::Table, &explained()).unwrap();
        explain_agent_json => render(Format::Json, &explained()).unwrap();
    }
}
