//! Short-lived, scoped Coder API tokens for agents' service accounts, and the account view that
//! `scim-bridge explain agent` prints.
//!
//! A token is minted only for a service account the bridge manages (an Agent's, or an agent
//! user's), only within `[agents] max_token_lifetime` and `token_scopes`, and never for a
//! suspended agent. The secret goes to the caller once and never into the audit log or the store.

use crate::agents::{ISSUE_OWNERS_INACTIVE, OwnerState};
use crate::error::{ReconcileError, ReconcileResult};
use crate::reconciler::{AUDIT_ACTOR_CLI, Reconciler};
use chrono::{DateTime, Utc};
use coder::types::{ApiKey, CreateTokenRequest, User, UserStatus};
use scim::ResourceKind;
use serde_json::json;
use std::time::Duration;
use store::{AuditEntry, CoderUser, GetOptions, StoredResource};

/// An agent's service account, found by name.
#[derive(Debug, Clone)]
pub struct AgentAccount {
    /// The SCIM resource: an Agent, or a User an `[[agents.users]]` rule marks.
    pub resource: StoredResource,
    pub mapping: CoderUser,
    pub coder_user: User,
}

/// A token just minted; `secret` is the only copy.
#[derive(Clone)]
pub struct MintedToken {
    pub secret: String,
    pub key_id: String,
    pub token_name: String,
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("key_id", &self.key_id)
            .field("token_name", &self.token_name)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why an agent's account is what it is, for `scim-bridge explain agent`.
#[derive(Debug, Clone)]
pub struct AgentExplanation {
    pub account: AgentAccount,
    /// The agent's own `active`.
    pub own_active: bool,
    pub owners: Vec<OwnerState>,
    /// The open `owners_inactive` issue, if any: since when, and why.
    pub cascade: Option<(DateTime<Utc>, String)>,
    /// Every open sync issue on the agent (type, detail).
    pub issues: Vec<(String, String)>,
}

fn refused(message: String) -> ReconcileError {
    ReconcileError::Unappliable(message)
}

impl Reconciler {
    /// The agent called `name`: an Agent by `agentUserName` or `name`, else the service account
    /// the bridge gave that Coder username. Only service accounts of agents are answered.
    pub async fn agent_account(&self, name: &str) -> ReconcileResult<AgentAccount> {
        let mapping = match self.agent_by_name(name).await? {
            Some(agent) => self.store.coder_map.user_get(&agent.id).await?.ok_or_else(|| {
                refused(format!(
                    "agent {name:?} has no Coder service account yet (see `scim-bridge status` for its sync issues)"
                ))
            })?,
            None => self
                .store
                .coder_map
                .user_by_username(name)
                .await?
                .ok_or_else(|| refused(format!("no agent is called {name:?}")))?,
        };
        let resource = self
            .stored(ResourceKind::Agent, &mapping.scim_id, GetOptions::default())
            .await?;
        let resource = match resource {
            Some(found) => found,
            None => self
                .stored(ResourceKind::User, &mapping.scim_id, GetOptions::default())
                .await?
                .ok_or_else(|| refused(format!("no agent is called {name:?}")))?,
        };
        let coder_user = self
            .find_mapped(&mapping)
            .await?
            .ok_or_else(|| refused(format!("the Coder account of agent {name:?} is gone")))?;
        // Tokens are for agents only: never mint one for a person's account.
        if !coder_user.is_service_account {
            return Err(refused(format!(
                "{name:?} is not an agent: its Coder account {} is not a service account",
                coder_user.username
            )));
        }
        Ok(AgentAccount {
            resource,
            mapping,
            coder_user,
        })
    }

    async fn agent_by_name(&self, name: &str) -> ReconcileResult<Option<StoredResource>> {
        let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
        let filter = scim::filter::parse(&format!(
            "agentUserName eq \"{quoted}\" or name eq \"{quoted}\""
        ))
        .map_err(|e| refused(e.to_string()))?;
        let query = scim::query::ListQuery {
            filter: Some(filter),
            sort_by: None,
            sort_order: scim::query::SortOrder::default(),
            start_index: 1,
            count: Some(2),
            projection: scim::projection::Projection::default(),
            cursor: None,
            after: None,
        };
        let page = self
            .store
            .resources
            .list(ResourceKind::Agent, &query, GetOptions::BARE)
            .await?;
        Ok(page.items.into_iter().next())
    }

    /// Mint a token for agent `name`: `lifetime` at most `[agents] max_token_lifetime`, `scopes`
    /// (empty: the default) all in `[agents] token_scopes`. The mint is audited, the token not.
    pub async fn mint_agent_token(
        &self,
        name: &str,
        lifetime: Duration,
        scopes: Vec<String>,
        token_name: Option<String>,
    ) -> ReconcileResult<MintedToken> {
        let scopes = self
            .policy
            .agents
            .check_mint(lifetime, scopes)
            .map_err(refused)?;
        let account = self.agent_account(name).await?;
        if account.coder_user.status == UserStatus::Suspended {
            return Err(refused(format!(
                "agent {name:?} is suspended in Coder (see `scim-bridge explain agent {name}`): no token is minted for it"
            )));
        }
        let now = self.now();
        let token_name = token_name
            .unwrap_or_else(|| format!("scim-bridge-{}", now.format("%Y%m%dT%H%M%S%.3fZ")));
        let request = CreateTokenRequest::new(&token_name, lifetime, scopes.clone());
        let user = account.coder_user.id;
        let result = self.client.create_api_token(user, &request).await;
        let key_id = result
            .as_ref()
            .ok()
            .and_then(|k| k.key.split('-').next().map(str::to_owned));
        let expires_at = now + chrono::Duration::from_std(lifetime).unwrap_or_default();
        self.audit_cli(
            "agent.token.mint",
            &account,
            json!({
                "coder_user": user,
                "username": account.coder_user.username,
                "token_name": token_name,
                "key_id": key_id,
                "scopes": scopes,
                "lifetime_seconds": lifetime.as_secs(),
            }),
            result.as_ref().map(|_| ()).map_err(ToString::to_string),
        )
        .await?;
        let generated = result?;
        Ok(MintedToken {
            key_id: key_id.unwrap_or_default(),
            secret: generated.key,
            token_name,
            scopes,
            expires_at,
        })
    }

    /// The agent's tokens as Coder lists them.
    pub async fn agent_tokens(&self, name: &str) -> ReconcileResult<(AgentAccount, Vec<ApiKey>)> {
        let account = self.agent_account(name).await?;
        let keys = self.client.api_tokens(account.coder_user.id).await?;
        Ok((account, keys))
    }

    /// Revoke the agent's token whose id or name is `token`, or every token when `None`.
    /// Returns the ids deleted.
    pub async fn revoke_agent_tokens(
        &self,
        name: &str,
        token: Option<&str>,
    ) -> ReconcileResult<Vec<String>> {
        let (account, keys) = self.agent_tokens(name).await?;
        let chosen: Vec<ApiKey> = keys
            .into_iter()
            .filter(|k| token.is_none_or(|t| k.id == t || k.token_name == t))
            .collect();
        if let (Some(token), true) = (token, chosen.is_empty()) {
            return Err(refused(format!("agent {name:?} has no token {token:?}")));
        }
        let user = account.coder_user.id;
        let mut revoked = Vec::new();
        for key in chosen {
            let result = match self.client.delete_api_key(user, &key.id).await {
                Err(e) if e.is_not_found() => Ok(()),
                other => other,
            };
            self.audit_cli(
                "agent.token.revoke",
                &account,
                json!({ "coder_user": user, "key_id": key.id, "token_name": key.token_name }),
                result.as_ref().map(|_| ()).map_err(ToString::to_string),
            )
            .await?;
            result?;
            revoked.push(key.id);
        }
        Ok(revoked)
    }

    /// Owners, cascade and issues of agent `name`.
    pub async fn explain_agent(&self, name: &str) -> ReconcileResult<AgentExplanation> {
        let account = self.agent_account(name).await?;
        let mut owners = Vec::new();
        for id in scim::resource::agent_owner_ids(&account.resource.attrs) {
            let active = self
                .stored(ResourceKind::User, &id, GetOptions::BARE)
                .await?
                .map(|u| scim::resource::active(&u.attrs));
            owners.push(OwnerState { id, active });
        }
        let open: Vec<store::SyncIssue> = self
            .store
            .sync_issues
            .list(false)
            .await?
            .into_iter()
            .filter(|i| i.resource_id == account.resource.id)
            .collect();
        let cascade = open
            .iter()
            .find(|i| i.issue_type == ISSUE_OWNERS_INACTIVE)
            .map(|i| (i.created_at, i.detail.clone()));
        Ok(AgentExplanation {
            own_active: scim::resource::active(&account.resource.attrs),
            owners,
            cascade,
            issues: open.into_iter().map(|i| (i.issue_type, i.detail)).collect(),
            account,
        })
    }

    async fn audit_cli(
        &self,
        operation: &str,
        account: &AgentAccount,
        change: serde_json::Value,
        result: Result<(), String>,
    ) -> ReconcileResult<()> {
        let entry = AuditEntry {
            request_id: format!("cli-{}", self.ids.uuid_v4()),
            actor: Some(AUDIT_ACTOR_CLI.to_owned()),
            source_addr: None,
            operation: operation.to_owned(),
            resource_type: Some(account.resource.kind.name().to_owned()),
            resource_id: Some(account.resource.id.clone()),
            change,
            result: match result {
                Ok(()) => "ok".to_owned(),
                Err(e) => e,
            },
        };
        self.store.audit.append(&entry).await?;
        Ok(())
    }
}
