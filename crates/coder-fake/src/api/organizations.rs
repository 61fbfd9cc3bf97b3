//! `/api/v2/organizations…`: organizations, members and organization roles.

use std::collections::BTreeSet;

use serde_json::Value;
use uuid::Uuid;

use super::users::{UpdateRoles, actor, live_target, require_user_admin};
use super::{ApiError, Call, Outcome, Reply, render};
use crate::state::{LoginType, World};

/// Organization roles that can be assigned (`organization-member` is implied).
const ORGANIZATION_ROLES: &[&str] = &[
    "organization-admin",
    "organization-auditor",
    "organization-user-admin",
    "organization-template-admin",
    "organization-workspace-creation-ban",
    "agents-access",
];

/// Resolves `{organization}`: a UUID or a name.
pub(crate) fn organization_param(world: &World, call: &Call<'_>) -> Result<Uuid, ApiError> {
    let key = call.param("organization");
    world
        .organizations
        .iter()
        .find(|o| o.id.to_string() == key.to_lowercase() || o.name.eq_ignore_ascii_case(key))
        .map(|o| o.id)
        .ok_or_else(ApiError::not_found)
}

/// Removes `user` from `organization` and, as Coder's database trigger does, from its groups.
pub(crate) fn remove_membership(world: &mut World, organization: Uuid, user: Uuid) {
    if let Some(row) = world.users.get_mut(&user) {
        row.organizations.remove(&organization);
    }
    for group in world
        .groups
        .values_mut()
        .filter(|g| g.organization_id == organization)
    {
        group.members.remove(&user);
    }
}

/// `GET /api/v2/organizations`: the caller's organizations (all of them for an owner).
pub(super) fn list(world: &mut World, call: &Call<'_>) -> Outcome {
    let caller = actor(world, call)?;
    let visible: Vec<Value> = world
        .organizations
        .iter()
        .filter(|o| caller.is_owner() || caller.organizations.contains_key(&o.id))
        .map(render::organization)
        .collect();
    Reply::ok(Value::from(visible))
}

/// `GET /api/v2/organizations/{organization}/members`.
pub(super) fn members(world: &mut World, call: &Call<'_>) -> Outcome {
    let org = organization_param(world, call)?;
    let mut members: Vec<_> = world
        .users
        .values()
        .filter(|u| !u.deleted && u.organizations.contains_key(&org))
        .collect();
    members.sort_by_key(|u| u.username.to_lowercase());
    Reply::ok(Value::from(
        members
            .into_iter()
            .map(|u| render::member_with_user(u, org))
            .collect::<Vec<_>>(),
    ))
}

/// `POST /api/v2/organizations/{organization}/members/{user}`: 400 if already a member, or if
/// the user logs in with OIDC while organization sync is on.
pub(super) fn add_member(world: &mut World, call: &Call<'_>) -> Outcome {
    require_user_admin(world, call)?;
    let org = organization_param(world, call)?;
    let id = live_target(world, call)?;
    let organization_sync = !world.idp_sync.organization_field.is_empty();
    let user = world.users.get_mut(&id).ok_or_else(ApiError::not_found)?;
    if user.organizations.contains_key(&org) {
        return Err(ApiError::bad_request(
            "User is already an organization member.",
        ));
    }
    if organization_sync && user.login_type == LoginType::Oidc {
        return Err(ApiError::bad_request(
            "Organization sync is enabled for OIDC users: their organizations come from the IdP.",
        ));
    }
    user.organizations.insert(org, BTreeSet::new());
    Reply::ok(render::member(user, org))
}

/// `DELETE /api/v2/organizations/{organization}/members/{user}`: also leaves the org's groups.
pub(super) fn remove_member(world: &mut World, call: &Call<'_>) -> Outcome {
    require_user_admin(world, call)?;
    let org = organization_param(world, call)?;
    let id = live_target(world, call)?;
    if !world
        .users
        .get(&id)
        .is_some_and(|u| u.organizations.contains_key(&org))
    {
        return Err(ApiError::not_found());
    }
    remove_membership(world, org, id);
    Reply::no_content()
}

/// `PUT /api/v2/organizations/{organization}/members/{user}/roles`: replaces the organization
/// roles; 400 for your own, for unknown roles, and for OIDC users while role sync is on.
pub(super) fn put_member_roles(world: &mut World, call: &Call<'_>) -> Outcome {
    let request: UpdateRoles = call.json()?;
    require_user_admin(world, call)?;
    let org = organization_param(world, call)?;
    let id = live_target(world, call)?;
    if id == call.actor {
        return Err(ApiError::bad_request(
            "You cannot change your own organization roles.",
        ));
    }
    let mut roles = BTreeSet::new();
    for role in request.roles.iter().filter(|r| *r != "organization-member") {
        if !ORGANIZATION_ROLES.contains(&role.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Invalid organization role {role:?}."
            )));
        }
        roles.insert(role.clone());
    }
    let role_sync = world
        .idp_sync
        .role_fields
        .get(&org)
        .is_some_and(|f| !f.is_empty());
    let user = world.users.get_mut(&id).ok_or_else(ApiError::not_found)?;
    let Some(current) = user.organizations.get_mut(&org) else {
        return Err(ApiError::not_found());
    };
    if role_sync && user.login_type == LoginType::Oidc {
        return Err(ApiError::bad_request(
            "Cannot modify organization roles for OIDC users when role sync is enabled.",
        ));
    }
    *current = roles;
    Reply::ok(render::member(user, org))
}
