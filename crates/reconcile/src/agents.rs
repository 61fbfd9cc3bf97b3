//! Agents as Coder service accounts: the desired state of an Agent resource (and of a SCIM User
//! an `[[agents.users]]` rule marks as an agent), and the owner cascade.
//!
//! An Agent's account follows the same reconcile as a User's (create, rename, suspend, roles,
//! groups, audit); what differs is decided here: the account is a service account (no email,
//! `login_type` `none`), its roles come only from `[agents]`, and it is suspended when every
//! owning User is inactive or gone.
//!
//! The cascade is level-triggered: an open `owners_inactive` sync issue on the Agent records
//! since when its owners have all been inactive. While it is open the agent stays suspended,
//! even once an owner is active again, unless `[agents] reactivate_with_owner = true` or the
//! IdP has changed the Agent since (an administrator's deliberate act). A User's reconcile
//! queues the agents it owns, at offboarding priority when the User is inactive or deleted.

use crate::agent_policy::AgentPolicy;
use crate::desired::{
    DesiredRoles, DesiredUser, GroupIdentity, NotProvisionable, apply_role_rules, desired_user,
    rule_groups,
};
use crate::error::ReconcileResult;
use crate::naming::{self, USER_NAME_MAX};
use crate::policy::{GroupSelector, LoginType, Policy};
use crate::reconciler::{Reconciler, Report, Run};
use chrono::{DateTime, Utc};
use scim::ResourceKind;
use serde_json::{Map, Value};
use store::{GetOptions, OutboxPriority, StoredResource};

/// Open while Coder has no licence for service accounts (Premium).
pub const ISSUE_SERVICE_ACCOUNTS_UNLICENSED: &str = "service_accounts_unlicensed";
/// Open while an agent is suspended because none of its owners is active.
pub const ISSUE_OWNERS_INACTIVE: &str = "owners_inactive";

/// The roles an agent in `groups` holds: `[agents]` site and organization roles plus the
/// matching `[[agents.rules]]`. `[roles]` (for people) never applies to agents.
pub fn agent_roles(policy: &AgentPolicy, groups: &[GroupIdentity]) -> DesiredRoles {
    let mut roles = DesiredRoles::default();
    for role in &policy.site_roles {
        roles.grant_site(role, "[agents] site_roles");
    }
    for (org, names) in &policy.org_roles {
        roles.org.entry(org.clone()).or_default();
        for name in names {
            roles.grant_org(org, name, "[agents] org_roles");
        }
    }
    apply_role_rules(&mut roles, &policy.rules, groups);
    // Validated at start-up already; kept here so no path can hand an agent an admin role.
    if !policy.allow_admin_roles {
        roles
            .site
            .retain(|r| !crate::agent_policy::ADMIN_SITE_ROLES.contains(&r.as_str()));
    }
    roles
}

fn in_group(group: &GroupIdentity, selector: &GroupSelector) -> bool {
    selector.matches(group.display_name.as_deref(), group.external_id.as_deref())
}

/// The service account an agent named `user_name` should be.
fn service_account(
    policy: &Policy,
    scim_id: &str,
    user_name: &str,
    display: Option<String>,
    active: bool,
    groups: &[GroupIdentity],
) -> DesiredUser {
    DesiredUser {
        scim_id: scim_id.to_owned(),
        username_base: naming::username_base(user_name),
        email: String::new(),
        name: display
            .map(|n| naming::bounded_display(&n, USER_NAME_MAX))
            .unwrap_or_default(),
        active,
        login_type: LoginType::None,
        roles: agent_roles(&policy.agents, groups),
        rule_groups: rule_groups(policy, groups),
        service_account: true,
    }
}

/// The desired service account of an Agent resource, `active` as the owner cascade decided.
pub fn desired_agent(
    policy: &Policy,
    scim_id: &str,
    attrs: &Map<String, Value>,
    groups: &[GroupIdentity],
    active: bool,
) -> Result<DesiredUser, NotProvisionable> {
    let user_name = scim::resource::agent_user_name(attrs)
        .ok_or_else(|| NotProvisionable("the agent has neither agentUserName nor name".into()))?;
    let display = scim::resource::display_name(attrs).map(str::to_owned);
    Ok(service_account(
        policy, scim_id, user_name, display, active, groups,
    ))
}

/// The desired account of a SCIM User: a service account when an `[[agents.users]]` rule marks
/// it as an agent, else the person's account.
pub fn desired_account_of_user(
    policy: &Policy,
    scim_id: &str,
    attrs: &Map<String, Value>,
    groups: &[GroupIdentity],
) -> Result<DesiredUser, NotProvisionable> {
    let is_agent = policy.agents.is_agent_user(attrs, &|selector| {
        groups.iter().any(|g| in_group(g, selector))
    });
    if !is_agent {
        return desired_user(policy, scim_id, attrs, groups);
    }
    let user_name = scim::resource::user_name(attrs)
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| NotProvisionable("the agent user has no userName".into()))?;
    let display = scim::resource::name_formatted(attrs)
        .or_else(|| scim::resource::display_name(attrs).map(str::to_owned));
    Ok(service_account(
        policy,
        scim_id,
        user_name,
        display,
        scim::resource::active(attrs),
        groups,
    ))
}

/// One owner as the cascade sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerState {
    pub id: String,
    /// `None`: no such SCIM User (deleted); else its `active`.
    pub active: Option<bool>,
}

/// What the owners mean for an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerVerdict {
    /// Whether the agent's account should be active.
    pub active: bool,
    /// `Some(detail)`: the `owners_inactive` issue stays (or becomes) open with this detail;
    /// `None`: it is resolved.
    pub cascade: Option<String>,
}

/// Decide from the agent's own `active`, its owners, the open cascade (since when) and when the
/// IdP last changed the agent.
pub fn owner_verdict(
    own_active: bool,
    owners: &[OwnerState],
    cascade_since: Option<DateTime<Utc>>,
    agent_changed_at: DateTime<Utc>,
    reactivate_with_owner: bool,
) -> OwnerVerdict {
    if owners.is_empty() {
        return OwnerVerdict {
            active: own_active,
            cascade: None,
        };
    }
    let active_owners: Vec<&str> = owners
        .iter()
        .filter(|o| o.active == Some(true))
        .map(|o| o.id.as_str())
        .collect();
    if active_owners.is_empty() {
        let gone: Vec<String> = owners
            .iter()
            .map(|o| {
                let state = if o.active.is_none() {
                    "deleted"
                } else {
                    "inactive"
                };
                format!("{} ({state})", o.id)
            })
            .collect();
        return OwnerVerdict {
            active: false,
            cascade: Some(format!(
                "suspended: no owner of the agent is active ({})",
                gone.join(", ")
            )),
        };
    }
    match cascade_since {
        Some(since) if !reactivate_with_owner && agent_changed_at <= since => OwnerVerdict {
            active: false,
            cascade: Some(format!(
                "suspended since {} when its last active owner left; owner {} is active again, but [agents] reactivate_with_owner is false: change the agent in the IdP (e.g. set active false, then true) to reactivate it",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                active_owners.join(", ")
            )),
        },
        _ => OwnerVerdict {
            active: own_active,
            cascade: None,
        },
    }
}

impl Reconciler {
    /// Bring the Coder service account of SCIM Agent `scim_id` to the desired state.
    pub async fn reconcile_agent(&self, scim_id: &str) -> ReconcileResult<Report> {
        self.reconcile_account(ResourceKind::Agent, scim_id).await
    }

    /// The stored User or Agent behind a Coder account, with its groups. A row queued under
    /// the other kind (a group's re-queue of its members names them all `User`) is answered
    /// with the kind the resource really has, which the run then carries.
    pub(crate) async fn stored_account(
        &self,
        run: &mut Run,
        scim_id: &str,
    ) -> ReconcileResult<Option<StoredResource>> {
        let options = GetOptions {
            members: false,
            groups: true,
        };
        if let Some(found) = self.stored(run.kind, scim_id, options).await? {
            return Ok(Some(found));
        }
        let other = match run.kind {
            ResourceKind::User => ResourceKind::Agent,
            _ => ResourceKind::User,
        };
        let found = self.stored(other, scim_id, options).await?;
        if found.is_some() {
            run.kind = other;
        }
        Ok(found)
    }

    /// The desired Coder account of a stored User or Agent; an Agent's owners are read, and
    /// the cascade's sync issue opened or resolved.
    pub(crate) async fn desired_account(
        &self,
        run: &mut Run,
        resource: &StoredResource,
        groups: &[GroupIdentity],
    ) -> ReconcileResult<Result<DesiredUser, NotProvisionable>> {
        if resource.kind != ResourceKind::Agent {
            return Ok(desired_account_of_user(
                &self.policy,
                &resource.id,
                &resource.attrs,
                groups,
            ));
        }
        let mut owners = Vec::new();
        for id in scim::resource::agent_owner_ids(&resource.attrs) {
            let active = self
                .stored(ResourceKind::User, &id, GetOptions::BARE)
                .await?
                .map(|u| scim::resource::active(&u.attrs));
            owners.push(OwnerState { id, active });
        }
        let cascade_since = self
            .store
            .sync_issues
            .list(false)
            .await?
            .into_iter()
            .find(|i| {
                i.kind == ResourceKind::Agent.name()
                    && i.resource_id == resource.id
                    && i.issue_type == ISSUE_OWNERS_INACTIVE
            })
            .map(|i| i.created_at);
        let verdict = owner_verdict(
            scim::resource::active(&resource.attrs),
            &owners,
            cascade_since,
            resource.last_modified,
            self.policy.agents.reactivate_with_owner,
        );
        match &verdict.cascade {
            Some(detail) => {
                if cascade_since.is_none() {
                    run.note(detail.clone());
                }
                self.record_issue(run, ISSUE_OWNERS_INACTIVE, detail)
                    .await?;
            }
            None => self.resolve(run, ISSUE_OWNERS_INACTIVE).await?,
        }
        Ok(desired_agent(
            &self.policy,
            &resource.id,
            &resource.attrs,
            groups,
            verdict.active,
        ))
    }

    /// Queue the Agents that SCIM User `owner_id` owns, at offboarding priority when the owner
    /// is inactive or deleted: its agents must stop as soon as it does. The store's owner index
    /// answers which they are, so no Agent is read.
    pub(crate) async fn queue_owned_agents(
        &self,
        owner_id: &str,
        owner_active: bool,
    ) -> ReconcileResult<()> {
        let priority = if owner_active {
            OutboxPriority::Normal
        } else {
            OutboxPriority::Offboarding
        };
        for agent in self.store.resources.agents_owned_by(owner_id).await? {
            self.store
                .outbox
                .enqueue(ResourceKind::Agent, &agent, priority)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, hour, 0, 0).unwrap()
    }

    fn owner(id: &str, active: Option<bool>) -> OwnerState {
        OwnerState {
            id: id.into(),
            active,
        }
    }

    #[test]
    fn an_agent_without_owners_follows_its_own_active() {
        for own in [true, false] {
            let v = owner_verdict(own, &[], None, at(1), false);
            assert_eq!((v.active, v.cascade), (own, None));
        }
    }

    #[test]
    fn the_last_active_owner_leaving_suspends_the_agent() {
        let owners = [owner("u1", Some(false)), owner("u2", None)];
        let v = owner_verdict(true, &owners, None, at(1), false);
        assert!(!v.active);
        let detail = v.cascade.unwrap();
        assert!(
            detail.contains("u1 (inactive)") && detail.contains("u2 (deleted)"),
            "{detail}"
        );
        let one_left = [owner("u1", Some(false)), owner("u2", Some(true))];
        assert!(owner_verdict(true, &one_left, None, at(1), false).active);
    }

    #[test]
    fn an_owner_coming_back_reactivates_only_when_configured_or_the_agent_changed() {
        let back = [owner("u1", Some(true))];
        let held = owner_verdict(true, &back, Some(at(2)), at(1), false);
        assert!(!held.active && held.cascade.unwrap().contains("reactivate_with_owner"));
        let configured = owner_verdict(true, &back, Some(at(2)), at(1), true);
        assert!(configured.active && configured.cascade.is_none());
        let touched = owner_verdict(true, &back, Some(at(2)), at(3), false);
        assert!(touched.active && touched.cascade.is_none());
        // The agent's own active=false still wins.
        assert!(!owner_verdict(false, &back, Some(at(2)), at(3), false).active);
    }

    fn policy(text: &str) -> Policy {
        Policy::from_toml(&text.parse::<toml::Table>().unwrap()).unwrap()
    }

    fn group(name: &str) -> GroupIdentity {
        GroupIdentity {
            id: format!("id-{name}"),
            display_name: Some(name.into()),
            external_id: None,
        }
    }

    #[test]
    fn agents_get_only_agent_roles() {
        let policy = policy(
            r#"
            [roles]
            baseline_site_roles = ["auditor"]
            [[roles.rules]]
            group = "admins"
            site_roles = ["owner"]
            [agents.org_roles]
            default = ["agents-access"]
            [[agents.rules]]
            group = "reviewers"
            site_roles = ["auditor"]
            "#,
        );
        let attrs = json!({"name": "Review Bot", "displayName": "Review bot", "active": true});
        let in_group = |name| {
            desired_agent(
                &policy,
                "a1",
                attrs.as_object().unwrap(),
                &[group(name)],
                true,
            )
            .unwrap()
        };
        let plain = in_group("admins");
        assert!(plain.service_account && plain.email.is_empty());
        assert_eq!(plain.login_type, LoginType::None);
        assert_eq!(plain.username_base, "review-bot");
        assert!(plain.roles.site.is_empty(), "people's rules never apply");
        assert_eq!(
            plain.roles.org["default"].iter().collect::<Vec<_>>(),
            ["agents-access"]
        );
        let reviewer = in_group("reviewers");
        assert_eq!(reviewer.roles.site.iter().collect::<Vec<_>>(), ["auditor"]);
        assert_eq!(reviewer.rule_groups, ["id-reviewers"]);
    }

    #[test]
    fn a_user_marked_as_an_agent_becomes_a_service_account() {
        let policy = policy("[[agents.users]]\nuser_type = \"Agent\"");
        let agent =
            json!({"userName": "build-bot@corp.example", "userType": "Agent", "active": true});
        let desired =
            desired_account_of_user(&policy, "u9", agent.as_object().unwrap(), &[]).unwrap();
        assert!(desired.service_account && desired.email.is_empty());
        assert_eq!(desired.username_base, "build-bot");
        let person = json!({"userName": "ann@corp.example", "active": true});
        let desired =
            desired_account_of_user(&policy, "u1", person.as_object().unwrap(), &[]).unwrap();
        assert!(!desired.service_account);
        assert_eq!(desired.email, "ann@corp.example");
    }
}
