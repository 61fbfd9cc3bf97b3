//! Drift repair: compare the desired state of every SCIM resource with Coder's,
//! in bulk (a few list calls instead of one reconcile per resource), print the plan or queue
//! the resources that differ. The worker runs it every `drift_interval`; `scim-bridge reconcile
//! [--dry-run]` runs it on demand.
//!
//! The plan covers users and agents' service accounts (existence, status, name, username, site
//! roles, login_type, organization) and groups (existence, name, members, agents included). An
//! agent's wanted status follows its owners as the worker decides it (the owner cascade).
//! Organization roles are not compared here (that needs a call per user); they are re-applied
//! whenever a user or agent is reconciled.
//!
//! The plan also lists the Coder accounts no SCIM resource manages (`orphans`); [`repair`]
//! queues the fixes and applies `[orphans]` to them.

use crate::agents::{ISSUE_OWNERS_INACTIVE, OwnerState, desired_agent, owner_verdict};
use crate::desired::{
    DesiredUser, EmailDomainVerdict, GroupIdentity, desired_group, email_domain_verdict,
};
use crate::diff::{DriftKind, membership_diff, user_diff};
use crate::error::ReconcileResult;
use crate::policy::{OutsideDomain, UserDeletePolicy};
use crate::reconciler::Reconciler;
use crate::users::ISSUE_EMAIL_OUTSIDE_DOMAINS;
use crate::users::LastApplied;
use chrono::{DateTime, Utc};
use coder::types::{User, UserStatus};
use scim::ResourceKind;
use scim::projection::Projection;
use scim::query::{ListQuery, MAX_RESULTS, SortOrder};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use store::{GetOptions, Outbox, OutboxPriority, ResourceReader, StoredResource};
use uuid::Uuid;

/// One difference found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftItem {
    pub kind: DriftKind,
    pub resource: ResourceKind,
    /// The SCIM id.
    pub id: String,
    /// What differs, for the printed plan.
    pub detail: String,
    /// Offboarding fixes (a user to suspend again) jump the queue.
    pub priority: OutboxPriority,
}

/// What drift repair found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftPlan {
    pub items: Vec<DriftItem>,
    pub users_checked: u64,
    /// Agents (the `Agent` resources; agent users count as users).
    pub agents_checked: u64,
    pub groups_checked: u64,
    /// Coder accounts no SCIM resource manages, by username, with what `[orphans]` does.
    pub orphans: Vec<crate::orphans::Orphan>,
}

impl DriftPlan {
    /// How many differences of each kind.
    pub fn counts(&self) -> BTreeMap<DriftKind, u64> {
        let mut counts = BTreeMap::new();
        for item in &self.items {
            *counts.entry(item.kind).or_default() += 1;
        }
        counts
    }

    /// Whether Coder matches the desired state of every SCIM resource (orphans aside).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl fmt::Display for DriftPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "checked {} users, {} agents and {} groups: {} difference(s)",
            self.users_checked,
            self.agents_checked,
            self.groups_checked,
            self.items.len()
        )?;
        for item in &self.items {
            writeln!(
                f,
                "  {:<18} {} {}: {}",
                item.kind.as_str(),
                item.resource.name(),
                item.id,
                item.detail
            )?;
        }
        if !self.orphans.is_empty() {
            writeln!(
                f,
                "{} Coder account(s) no SCIM resource manages:",
                self.orphans.len()
            )?;
            for orphan in &self.orphans {
                writeln!(
                    f,
                    "  orphan             {} <{}> {:?}: {}",
                    orphan.user.username,
                    orphan.user.email,
                    orphan.user.status,
                    orphan.disposition.as_str()
                )?;
            }
        }
        Ok(())
    }
}

/// Where drift repair is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftProgress {
    /// Coder's users and groups were read.
    CoderRead {
        users: u64,
    },
    UsersChecked {
        checked: u64,
        total: u64,
    },
    GroupsChecked {
        checked: u64,
        total: u64,
    },
}

/// Page through every stored resource of `kind`.
pub async fn for_each_resource(
    resources: &ResourceReader,
    kind: ResourceKind,
    options: GetOptions,
    mut visit: impl FnMut(StoredResource, u64),
) -> ReconcileResult<u64> {
    let mut start = 1;
    loop {
        let query = ListQuery {
            filter: None,
            sort_by: None,
            sort_order: SortOrder::Ascending,
            start_index: start,
            count: Some(MAX_RESULTS),
            projection: Projection::default(),
            cursor: None,
            after: None,
        };
        let page = resources.list(kind, &query, options).await?;
        let n = page.items.len();
        for item in page.items {
            visit(item, page.total);
        }
        start += n;
        if n == 0 || start > usize::try_from(page.total).unwrap_or(usize::MAX) {
            return Ok(page.total);
        }
    }
}

/// Compare the desired state with Coder's. Calls `progress` as it goes.
pub async fn plan(
    reconciler: &Reconciler,
    progress: &mut (dyn FnMut(DriftProgress) + Send),
) -> ReconcileResult<DriftPlan> {
    let store = reconciler.store();
    let client = reconciler.client();
    let policy = reconciler.policy();
    let mut plan = DriftPlan::default();

    let coder_users: HashMap<Uuid, User> = client
        .list_all_users(None)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    progress(DriftProgress::CoderRead {
        users: coder_users.len() as u64,
    });
    let identity = client.identify().await?;
    let organization = reconciler.home_organization().await?;
    let mappings = by_scim_id(store.coder_map.user_list().await?, |m| &m.scim_id);
    let managed: HashSet<Uuid> = mappings.values().map(|m| m.coder_user_id).collect();
    // Users whose email a sync issue says is outside `[users] allowed_email_domains`: the rules
    // may have changed since, and only a reconcile opens or clears that issue.
    let flagged_outside: HashSet<String> = store
        .sync_issues
        .list(false)
        .await?
        .into_iter()
        .filter(|i| {
            i.issue_type == ISSUE_EMAIL_OUTSIDE_DOMAINS && i.kind == ResourceKind::User.name()
        })
        .map(|i| i.resource_id)
        .collect();

    let mut groups: HashMap<String, (GroupIdentity, StoredResource)> = HashMap::new();
    for_each_resource(
        &store.resources,
        ResourceKind::Group,
        GetOptions {
            members: true,
            groups: false,
        },
        |g, _| {
            groups.insert(
                g.id.clone(),
                (GroupIdentity::from_attrs(&g.id, &g.attrs), g),
            );
        },
    )
    .await?;

    let mut users = Vec::new();
    for_each_resource(
        &store.resources,
        ResourceKind::User,
        GetOptions {
            members: false,
            groups: policy.uses_groups(),
        },
        |u, _| users.push(u),
    )
    .await?;
    let total_users = users.len() as u64;
    // What the owner cascade reads: each User's `active`, and since when the open cascade
    // holds each agent.
    let user_active: HashMap<String, bool> = users
        .iter()
        .map(|u| (u.id.clone(), scim::resource::active(&u.attrs)))
        .collect();
    let actual_state = ActualAccounts {
        coder_users: &coder_users,
        mappings: &mappings,
        organization,
        bridge_user: identity.user.id,
    };
    let mut seen = HashSet::new();
    // Emails of stored Users: an account with one is theirs (mapped, adopted, or flagged).
    let mut claimed: HashSet<String> = HashSet::new();
    for user in users {
        plan.users_checked += 1;
        seen.insert(user.id.clone());
        let identities = identities_of(&user, &groups);
        let Ok(desired) =
            crate::agents::desired_account_of_user(policy, &user.id, &user.attrs, &identities)
        else {
            continue;
        };
        claimed.insert(desired.email.to_ascii_lowercase());
        let outside = email_domain_verdict(policy, &desired) == EmailDomainVerdict::Outside;
        if outside != flagged_outside.contains(&user.id) {
            let detail = if outside {
                format!("{} is outside [users] allowed_email_domains", desired.email)
            } else {
                format!(
                    "{} is no longer outside [users] allowed_email_domains",
                    desired.email
                )
            };
            plan.items.push(DriftItem {
                kind: DriftKind::EmailDomain,
                resource: ResourceKind::User,
                id: user.id.clone(),
                detail,
                priority: OutboxPriority::Normal,
            });
        }
        // Left out of Coder on purpose (`[users] outside_domain = "skip"`): not missing.
        let left_out = outside && policy.users.outside_domain == OutsideDomain::Skip;
        plan_account(
            &mut plan,
            ResourceKind::User,
            &desired,
            &actual_state,
            left_out,
        );
        if plan.users_checked % 1000 == 0 {
            progress(DriftProgress::UsersChecked {
                checked: plan.users_checked,
                total: total_users,
            });
        }
    }
    progress(DriftProgress::UsersChecked {
        checked: plan.users_checked,
        total: total_users,
    });

    let cascades: HashMap<String, DateTime<Utc>> = store
        .sync_issues
        .list(false)
        .await?
        .into_iter()
        .filter(|i| i.kind == ResourceKind::Agent.name() && i.issue_type == ISSUE_OWNERS_INACTIVE)
        .map(|i| (i.resource_id, i.created_at))
        .collect();
    let mut agents = Vec::new();
    for_each_resource(
        &store.resources,
        ResourceKind::Agent,
        GetOptions {
            members: false,
            groups: true,
        },
        |a, _| agents.push(a),
    )
    .await?;
    for agent in agents {
        plan.agents_checked += 1;
        seen.insert(agent.id.clone());
        let identities = identities_of(&agent, &groups);
        let owners: Vec<OwnerState> = scim::resource::agent_owner_ids(&agent.attrs)
            .into_iter()
            .map(|id| OwnerState {
                active: user_active.get(&id).copied(),
                id,
            })
            .collect();
        let verdict = owner_verdict(
            scim::resource::active(&agent.attrs),
            &owners,
            cascades.get(&agent.id).copied(),
            agent.last_modified,
            policy.agents.reactivate_with_owner,
        );
        let Ok(desired) =
            desired_agent(policy, &agent.id, &agent.attrs, &identities, verdict.active)
        else {
            continue;
        };
        plan_account(
            &mut plan,
            ResourceKind::Agent,
            &desired,
            &actual_state,
            false,
        );
    }

    // Mapped users whose SCIM User is gone but who still have access in Coder.
    for mapping in mappings.values().filter(|m| !seen.contains(&m.scim_id)) {
        let Some(actual) = coder_users.get(&mapping.coder_user_id) else {
            continue;
        };
        let undone = match policy.users.delete_policy {
            UserDeletePolicy::Suspend => actual.status != UserStatus::Suspended,
            UserDeletePolicy::Delete => true,
        };
        if undone && actual.id != identity.user.id {
            plan.items.push(DriftItem {
                kind: DriftKind::UserNotRemoved,
                resource: ResourceKind::User,
                id: mapping.scim_id.clone(),
                detail: format!(
                    "SCIM user deleted; Coder user {} is {:?}",
                    actual.username, actual.status
                ),
                priority: OutboxPriority::Offboarding,
            });
        }
    }

    plan.orphans = crate::orphans::find(
        &policy.orphans,
        coder_users.values().cloned(),
        &managed,
        &claimed,
        identity.user.id,
    );

    if reconciler.mirroring_groups().await? {
        plan_groups(
            reconciler,
            &mut plan,
            &groups,
            &mappings,
            &managed,
            organization,
            progress,
        )
        .await?;
    }
    for (kind, count) in plan.counts() {
        reconciler.observer.drift_found(kind, count);
    }
    Ok(plan)
}

/// What drift repair read of Coder's accounts, and the bridge's own mappings to them.
struct ActualAccounts<'a> {
    coder_users: &'a HashMap<Uuid, User>,
    mappings: &'a HashMap<String, store::CoderUser>,
    organization: Uuid,
    /// The bridge's own Coder user, whose roles are never changed.
    bridge_user: Uuid,
}

/// Coder mappings keyed by the SCIM id of the resource each one mirrors.
fn by_scim_id<M>(mappings: Vec<M>, scim_id: impl Fn(&M) -> &String) -> HashMap<String, M> {
    mappings
        .into_iter()
        .map(|m| (scim_id(&m).clone(), m))
        .collect()
}

/// The identities of the groups `resource` is a direct member of, from the loaded `groups`.
fn identities_of(
    resource: &StoredResource,
    groups: &HashMap<String, (GroupIdentity, StoredResource)>,
) -> Vec<GroupIdentity> {
    resource
        .groups
        .iter()
        .flatten()
        .filter_map(|g| groups.get(&g.value).map(|(identity, _)| identity.clone()))
        .collect()
}

/// The differences between one desired account (a person's or an agent's service account) and
/// the Coder user mapped to it, as drift items of `resource`.
fn plan_account(
    plan: &mut DriftPlan,
    resource: ResourceKind,
    desired: &DesiredUser,
    actual: &ActualAccounts<'_>,
    left_out: bool,
) {
    let mut push = |kind, detail: String, priority| {
        plan.items.push(DriftItem {
            kind,
            resource,
            id: desired.scim_id.clone(),
            detail,
            priority,
        });
    };
    let found = actual
        .mappings
        .get(&desired.scim_id)
        .and_then(|m| actual.coder_users.get(&m.coder_user_id).map(|a| (m, a)));
    let Some((mapping, coder_user)) = found else {
        if left_out {
            return;
        }
        let what = if desired.service_account {
            format!("no Coder service account {}", desired.username_base)
        } else {
            format!("no Coder user for {}", desired.email)
        };
        push(DriftKind::UserMissing, what, OutboxPriority::Normal);
        return;
    };
    let renamed = LastApplied::of(mapping).username_base != desired.username_base;
    let username = if renamed {
        desired.username_base.clone()
    } else {
        mapping.coder_username.clone()
    };
    let diff = user_diff(
        desired,
        &username,
        coder_user,
        actual.organization,
        coder_user.id != actual.bridge_user,
    );
    let priority = if diff.suspend {
        OutboxPriority::Offboarding
    } else {
        OutboxPriority::Normal
    };
    for kind in diff.kinds() {
        let detail = match kind {
            DriftKind::UserStatus => format!(
                "Coder user {} is {:?}; wanted active = {}",
                coder_user.username, coder_user.status, desired.active
            ),
            DriftKind::UserProfile => format!(
                "Coder has {:?}/{:?}; want {:?}/{:?}",
                coder_user.username, coder_user.name, username, desired.name
            ),
            DriftKind::UserRoles => format!(
                "Coder site roles {:?}; want {:?}",
                crate::diff::site_roles_of(coder_user),
                desired.roles.site
            ),
            DriftKind::LoginType => format!(
                "Coder login_type {:?}; policy {}",
                coder_user.login_type, desired.login_type
            ),
            DriftKind::UserOrganization => {
                format!("{} is not in the organization", coder_user.username)
            }
            _ => String::new(),
        };
        push(kind, detail, priority);
    }
}

async fn plan_groups(
    reconciler: &Reconciler,
    plan: &mut DriftPlan,
    groups: &HashMap<String, (GroupIdentity, StoredResource)>,
    mappings: &HashMap<String, store::CoderUser>,
    managed: &HashSet<Uuid>,
    organization: Uuid,
    progress: &mut (dyn FnMut(DriftProgress) + Send),
) -> ReconcileResult<()> {
    let coder_groups: HashMap<Uuid, coder::types::Group> = reconciler
        .client()
        .groups(organization)
        .await?
        .into_iter()
        .map(|g| (g.id, g))
        .collect();
    let group_mappings = by_scim_id(reconciler.store().coder_map.group_list().await?, |m| {
        &m.scim_id
    });
    let total = groups.len() as u64;
    for (id, (_, resource)) in groups {
        plan.groups_checked += 1;
        let desired = desired_group(
            id,
            &resource.attrs,
            resource.members.as_deref().unwrap_or_default(),
        );
        let mut push = |kind, detail: String| {
            plan.items.push(DriftItem {
                kind,
                resource: ResourceKind::Group,
                id: id.clone(),
                detail,
                priority: OutboxPriority::Normal,
            });
        };
        let Some(actual) = group_mappings
            .get(id)
            .and_then(|m| coder_groups.get(&m.coder_group_id))
        else {
            push(
                DriftKind::GroupMissing,
                format!("no Coder group {}", desired.name),
            );
            continue;
        };
        let (name, display) = crate::diff::group_rename(&desired, actual);
        if name.is_some() || display.is_some() {
            push(
                DriftKind::GroupName,
                format!(
                    "Coder has {:?}/{:?}; want {:?}/{:?}",
                    actual.name, actual.display_name, desired.name, desired.display_name
                ),
            );
        }
        let wanted: BTreeSet<Uuid> = desired
            .member_user_ids
            .iter()
            .filter_map(|u| mappings.get(u).map(|m| m.coder_user_id))
            .collect();
        let current: BTreeSet<Uuid> = actual.members.iter().map(|m| m.id).collect();
        let diff = membership_diff(&wanted, &current, |u| managed.contains(u));
        if !diff.is_empty() {
            push(
                DriftKind::GroupMembers,
                format!(
                    "{} to add, {} to remove in {}",
                    diff.add.len(),
                    diff.remove.len(),
                    actual.name
                ),
            );
        }
    }
    progress(DriftProgress::GroupsChecked {
        checked: plan.groups_checked,
        total,
    });
    if reconciler.policy().groups.delete_policy == crate::policy::GroupDeletePolicy::Delete {
        for mapping in group_mappings
            .values()
            .filter(|m| !groups.contains_key(&m.scim_id))
        {
            if coder_groups.contains_key(&mapping.coder_group_id) {
                plan.items.push(DriftItem {
                    kind: DriftKind::GroupNotRemoved,
                    resource: ResourceKind::Group,
                    id: mapping.scim_id.clone(),
                    detail: format!(
                        "SCIM group deleted; Coder group {} remains",
                        mapping.coder_name
                    ),
                    priority: OutboxPriority::Normal,
                });
            }
        }
    }
    Ok(())
}

/// What [`repair`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Resources queued for sync.
    pub queued: u64,
    /// Orphaned Coder accounts suspended.
    pub orphans_suspended: u64,
}

/// Act on the plan: queue the resources it names, and apply `[orphans]` to the accounts no
/// SCIM resource manages.
pub async fn repair(reconciler: &Reconciler, plan: &DriftPlan) -> ReconcileResult<Repaired> {
    let queued = enqueue(&reconciler.store().outbox, plan).await?;
    let orphans_suspended = crate::orphans::apply(reconciler, &plan.orphans).await?;
    Ok(Repaired {
        queued,
        orphans_suspended,
    })
}

/// Queue every resource the plan names (once each, at the highest priority any of its items
/// has). Returns how many were queued.
pub async fn enqueue(outbox: &Outbox, plan: &DriftPlan) -> ReconcileResult<u64> {
    let mut resources: BTreeMap<(String, String), (ResourceKind, OutboxPriority)> = BTreeMap::new();
    for item in &plan.items {
        let entry = resources
            .entry((item.resource.name().to_owned(), item.id.clone()))
            .or_insert((item.resource, item.priority));
        entry.1 = entry.1.max(item.priority);
    }
    // Offboarding first, so a user to suspend again is not queued behind bulk fixes.
    let mut ordered: Vec<_> = resources.into_iter().collect();
    ordered.sort_by_key(|(_, (_, priority))| std::cmp::Reverse(*priority));
    for ((_, id), (kind, priority)) in &ordered {
        outbox.enqueue(*kind, id, *priority).await?;
    }
    Ok(ordered.len() as u64)
}
