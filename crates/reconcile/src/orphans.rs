//! Coder accounts no SCIM resource manages ("orphans"): found by drift repair, and reported or
//! suspended as `[orphans]` says.
//!
//! An account is managed when a SCIM User or Agent is mapped to it, or when a stored SCIM User
//! has its email (its reconcile maps or adopts it, or says why not). Whatever the action, these
//! are never suspended: the account behind the bridge's own token, accounts on the allow-list
//! (break-glass), and accounts already suspended. Coder itself refuses to suspend an `owner`;
//! that refusal is audited like any other outcome.
//!
//! Orphans have no SCIM resource and so no outbox row and no reconcile: drift repair is their
//! only writer. It suspends and never activates, so a SCIM User that later claims the account
//! (by email, adoption) is converged by that User's reconcile as usual.

use crate::error::ReconcileResult;
use crate::policy::PolicyError;
use crate::reconciler::{AUDIT_ACTOR, Reconciler};
use coder::types::{User, UserStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;
use store::AuditEntry;
use uuid::Uuid;

/// The audit `resource_type` of what drift repair does to an unmanaged Coder account.
pub const AUDIT_RESOURCE_TYPE: &str = "CoderUser";
/// The audit `operation` of an orphan's suspension.
pub const AUDIT_OPERATION: &str = "suspend orphan";

/// `[orphans] action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrphanAction {
    /// List them (`reconcile --dry-run`, `report access`, the worker's status); change nothing.
    #[default]
    Report,
    /// Suspend them at each drift repair.
    Suspend,
}

impl OrphanAction {
    pub fn as_str(self) -> &'static str {
        match self {
            OrphanAction::Report => "report",
            OrphanAction::Suspend => "suspend",
        }
    }
}

/// `[orphans]`: what drift repair does with Coder accounts no SCIM resource manages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrphanPolicy {
    pub action: OrphanAction,
    /// Coder usernames or emails (lower case) never suspended: break-glass accounts.
    pub allow: Vec<String>,
}

impl OrphanPolicy {
    /// Whether the account with this username and email is on the allow-list (ignoring case).
    pub fn allows(&self, username: &str, email: &str) -> bool {
        self.allow
            .iter()
            .any(|a| a.eq_ignore_ascii_case(username) || a.eq_ignore_ascii_case(email))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrphansFile {
    action: Option<OrphanAction>,
    #[serde(default)]
    allow: Vec<String>,
}

impl OrphansFile {
    pub(crate) fn validate(self) -> Result<OrphanPolicy, PolicyError> {
        Ok(OrphanPolicy {
            action: self.action.unwrap_or_default(),
            allow: crate::policy::account_names("orphans.allow", &self.allow)?,
        })
    }
}

/// What drift repair does with one orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanDisposition {
    /// `[orphans] action = "suspend"`: suspended at this drift repair.
    Suspend,
    /// `action = "report"`: listed, left alone.
    Report,
    /// On `[orphans] allow`: never suspended.
    AllowListed,
    /// The account behind the bridge's own Coder token: never suspended.
    BridgeAccount,
    /// Suspended already; nothing to do.
    AlreadySuspended,
}

impl OrphanDisposition {
    pub fn as_str(self) -> &'static str {
        match self {
            OrphanDisposition::Suspend => "suspend",
            OrphanDisposition::Report => "report only",
            OrphanDisposition::AllowListed => "allow-listed",
            OrphanDisposition::BridgeAccount => "the bridge's own account",
            OrphanDisposition::AlreadySuspended => "already suspended",
        }
    }
}

/// A Coder account no SCIM resource manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub user: User,
    pub disposition: OrphanDisposition,
}

/// The accounts of `coder_users` that no mapping (`managed`, Coder ids) and no stored SCIM
/// User's email (`claimed`, lower case) accounts for, each with what drift repair does with it,
/// by username.
pub fn find(
    policy: &OrphanPolicy,
    coder_users: impl IntoIterator<Item = User>,
    managed: &HashSet<Uuid>,
    claimed: &HashSet<String>,
    bridge_account: Uuid,
) -> Vec<Orphan> {
    let mut orphans: Vec<Orphan> = coder_users
        .into_iter()
        .filter(|u| !managed.contains(&u.id) && !claimed.contains(&u.email.to_ascii_lowercase()))
        .map(|user| {
            let disposition = if user.id == bridge_account {
                OrphanDisposition::BridgeAccount
            } else if policy.allows(&user.username, &user.email) {
                OrphanDisposition::AllowListed
            } else if user.status == UserStatus::Suspended {
                OrphanDisposition::AlreadySuspended
            } else if policy.action == OrphanAction::Suspend {
                OrphanDisposition::Suspend
            } else {
                OrphanDisposition::Report
            };
            Orphan { user, disposition }
        })
        .collect();
    orphans.sort_by(|a, b| a.user.username.cmp(&b.user.username));
    orphans
}

/// Suspend the orphans marked [`OrphanDisposition::Suspend`], one audit record each, and report
/// the count to the observer and the status. Returns how many Coder suspended.
pub async fn apply(reconciler: &Reconciler, orphans: &[Orphan]) -> ReconcileResult<u64> {
    let reported = orphans
        .iter()
        .filter(|o| o.disposition == OrphanDisposition::Report)
        .count() as u64;
    reconciler.observer.orphans(orphans.len() as u64);
    reconciler.status.update(|s| s.orphans_reported = reported);
    if reported > 0 {
        tracing::warn!(
            count = reported,
            "Coder accounts that no SCIM resource manages ([orphans] action = \"report\"); `scim-bridge report access` lists them"
        );
    }
    let mut suspended = 0;
    for orphan in orphans
        .iter()
        .filter(|o| o.disposition == OrphanDisposition::Suspend)
    {
        let user = &orphan.user;
        // Checked again just before acting: a create whose mapping was saved after the plan
        // read the mappings is managed now, not an orphan.
        if reconciler
            .store
            .coder_map
            .user_by_coder_id(user.id)
            .await?
            .is_some()
        {
            continue;
        }
        let result = reconciler.client.suspend_user(user.id).await;
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        let entry = AuditEntry {
            request_id: format!("drift-{}", reconciler.ids.uuid_v4()),
            actor: Some(AUDIT_ACTOR.to_owned()),
            source_addr: None,
            operation: AUDIT_OPERATION.to_owned(),
            resource_type: Some(AUDIT_RESOURCE_TYPE.to_owned()),
            resource_id: Some(user.id.to_string()),
            change: json!({
                "coder_calls": [{
                    "call": "suspend_user",
                    "target": { "user": user.id, "username": user.username, "email": user.email },
                    "outcome": outcome,
                }],
                "notes": ["no SCIM resource manages this Coder account; [orphans] action = \"suspend\""],
            }),
            result: outcome.clone(),
        };
        reconciler.store.audit.append(&entry).await?;
        match result {
            Ok(_) => {
                suspended += 1;
                reconciler.observer.orphan_suspended();
                tracing::info!(username = %user.username, "suspended a Coder account no SCIM resource manages");
            }
            // Coder refuses to suspend an owner (400): audited, and left to a person.
            Err(e) => {
                tracing::warn!(username = %user.username, error = %e, "could not suspend an orphaned Coder account")
            }
        }
    }
    Ok(suspended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn user(n: u128, username: &str, status: UserStatus) -> User {
        User {
            id: Uuid::from_u128(n),
            username: username.into(),
            email: format!("{username}@corp.example"),
            name: String::new(),
            status,
            login_type: coder::types::LoginType::Oidc,
            organization_ids: Vec::new(),
            roles: Vec::new(),
            created_at: chrono::Utc.timestamp_opt(0, 0).unwrap(),
            is_service_account: false,
        }
    }

    #[test]
    fn only_unmanaged_unclaimed_accounts_are_orphans_and_protected_ones_are_never_suspended() {
        let policy = OrphanPolicy {
            action: OrphanAction::Suspend,
            allow: vec!["breakglass".into()],
        };
        let users = vec![
            user(1, "bridge", UserStatus::Active),
            user(2, "alice", UserStatus::Active),
            user(3, "claimed", UserStatus::Active),
            user(4, "BreakGlass", UserStatus::Active),
            user(5, "gone", UserStatus::Suspended),
            user(6, "stray", UserStatus::Dormant),
        ];
        let managed = HashSet::from([Uuid::from_u128(2)]);
        let claimed = HashSet::from(["claimed@corp.example".to_owned()]);
        let found: Vec<(String, OrphanDisposition)> =
            find(&policy, users, &managed, &claimed, Uuid::from_u128(1))
                .into_iter()
                .map(|o| (o.user.username, o.disposition))
                .collect();
        assert_eq!(
            found,
            vec![
                ("BreakGlass".into(), OrphanDisposition::AllowListed),
                ("bridge".into(), OrphanDisposition::BridgeAccount),
                ("gone".into(), OrphanDisposition::AlreadySuspended),
                ("stray".into(), OrphanDisposition::Suspend),
            ]
        );
    }

    #[test]
    fn report_is_the_default_and_an_empty_allow_entry_is_refused() {
        assert_eq!(
            OrphansFile::default().validate().unwrap().action,
            OrphanAction::Report
        );
        let e = OrphansFile {
            action: None,
            allow: vec![" ".into()],
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.key, "orphans.allow[0]");
    }
}
