//! Why a SCIM User looks the way it should in Coder: its desired state with the rule behind
//! every role (`DesiredRoles::granted_by`) and its login type, read from the store alone (no Coder call), for
//! `scim-bridge explain` and the access report. The worker computes the same desired state from
//! the same functions.

use scim::ResourceKind;
use store::{GetOptions, ResourceReader, StoreError, StoredResource};

use crate::desired::{
    DesiredUser, GroupIdentity, LoginTypeSource, NotProvisionable, desired_user,
    login_type_with_source,
};
use crate::error::ReconcileResult;
use crate::policy::Policy;

/// A stored SCIM User, what the rules make of it, and why.
#[derive(Debug, Clone)]
pub struct UserExplanation {
    /// As the IdP sent it, with its groups loaded.
    pub resource: StoredResource,
    /// The desired Coder user (its roles with what granted each), or why there is none.
    pub desired: Result<DesiredUser, NotProvisionable>,
    /// The override (or default) behind the desired login type.
    pub login_type_source: Option<LoginTypeSource>,
}

/// The SCIM groups with these ids, as the rules see them; empty when no rule looks at groups.
pub async fn group_identities(
    store: &ResourceReader,
    policy: &Policy,
    ids: &[String],
) -> ReconcileResult<Vec<GroupIdentity>> {
    if !policy.uses_groups() {
        return Ok(Vec::new());
    }
    let mut groups = Vec::with_capacity(ids.len());
    for id in ids {
        match store.get(ResourceKind::Group, id, GetOptions::BARE).await {
            Ok(group) => groups.push(GroupIdentity::from_attrs(id, &group.attrs)),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(groups)
}

/// The SCIM ids of a stored User's groups (loaded with `groups: true`).
pub fn group_ids(user: &StoredResource) -> Vec<String> {
    user.groups
        .iter()
        .flatten()
        .map(|g| g.value.clone())
        .collect()
}

/// The desired Coder account of a stored User or Agent (loaded with its groups), for the access
/// report: the person's account, or the service account of an Agent or of a User an
/// `[[agents.users]]` rule marks. An Agent is taken as active when its SCIM record is; the
/// owner cascade (which may keep it suspended) is the worker's and shows in Coder's status.
pub async fn desired_account(
    store: &ResourceReader,
    policy: &Policy,
    resource: &StoredResource,
) -> ReconcileResult<Result<DesiredUser, NotProvisionable>> {
    let groups = group_identities(store, policy, &group_ids(resource)).await?;
    Ok(match resource.kind {
        ResourceKind::Agent => crate::agents::desired_agent(
            policy,
            &resource.id,
            &resource.attrs,
            &groups,
            scim::resource::active(&resource.attrs),
        ),
        _ => crate::agents::desired_account_of_user(policy, &resource.id, &resource.attrs, &groups),
    })
}

/// The explanation of stored User `resource` (loaded with its groups).
pub async fn explain_user(
    store: &ResourceReader,
    policy: &Policy,
    resource: StoredResource,
) -> ReconcileResult<UserExplanation> {
    let groups = group_identities(store, policy, &group_ids(&resource)).await?;
    let desired = desired_user(policy, &resource.id, &resource.attrs, &groups);
    let login_type_source = desired
        .as_ref()
        .ok()
        .map(|user| login_type_with_source(policy, &user.email, &groups).1);
    Ok(UserExplanation {
        resource,
        desired,
        login_type_source,
    })
}
