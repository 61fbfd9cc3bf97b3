//! JSON shapes of Coder's `codersdk.*` responses, built from the fake's rows.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::state::{FakeApiKey, FakeOrganization, FakeUser, FakeWorkspace, World};

/// "template-admin" -> "Template Admin".
fn display_name(role: &str) -> String {
    role.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `codersdk.SlimRole`; `organization` is empty for site roles.
fn slim_role(name: &str, organization: Option<Uuid>) -> Value {
    json!({
        "name": name,
        "display_name": display_name(name),
        "organization_id": organization.map(|o| o.to_string()).unwrap_or_default(),
    })
}

fn site_roles(user: &FakeUser) -> Vec<Value> {
    user.roles.iter().map(|r| slim_role(r, None)).collect()
}

/// `codersdk.User`: a `ReducedUser` plus organizations and site roles.
pub fn user(user: &FakeUser) -> Value {
    let mut value = reduced_user(user);
    value["organization_ids"] = json!(user.organizations.keys().collect::<Vec<_>>());
    value["roles"] = json!(site_roles(user));
    value["has_ai_seat"] = json!(false);
    value
}

/// `codersdk.ReducedUser`.
pub fn reduced_user(user: &FakeUser) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "name": user.name,
        "avatar_url": "",
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "last_seen_at": user.updated_at,
        "status": user.status,
        "login_type": user.login_type,
        "theme_preference": "",
        "is_service_account": user.is_service_account,
    })
}

/// `codersdk.Organization`.
pub fn organization(org: &FakeOrganization) -> Value {
    json!({
        "id": org.id,
        "name": org.name,
        "display_name": display_name(&org.name),
        "description": "",
        "icon": "",
        "is_default": org.is_default,
        "created_at": org.created_at,
        "updated_at": org.created_at,
    })
}

fn organization_roles(user: &FakeUser, organization: Uuid) -> Vec<Value> {
    user.organizations
        .get(&organization)
        .map(|roles| {
            roles
                .iter()
                .map(|r| slim_role(r, Some(organization)))
                .collect()
        })
        .unwrap_or_default()
}

/// `codersdk.OrganizationMember`.
pub fn member(user: &FakeUser, organization: Uuid) -> Value {
    json!({
        "user_id": user.id,
        "organization_id": organization,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "roles": organization_roles(user, organization),
    })
}

/// `codersdk.OrganizationMemberWithUserData`.
pub fn member_with_user(user: &FakeUser, organization: Uuid) -> Value {
    let mut value = member(user, organization);
    for (key, field) in [
        ("username", json!(user.username)),
        ("email", json!(user.email)),
        ("name", json!(user.name)),
        ("avatar_url", json!("")),
        ("global_roles", json!(site_roles(user))),
        ("login_type", json!(user.login_type)),
        ("status", json!(user.status)),
        ("user_created_at", json!(user.created_at)),
        ("user_updated_at", json!(user.updated_at)),
        ("is_service_account", json!(user.is_service_account)),
        ("has_ai_seat", json!(false)),
    ] {
        value[key] = field;
    }
    value
}

/// A group as Coder shows it, `Everyone` included.
pub struct GroupView<'a> {
    pub id: Uuid,
    pub organization: &'a FakeOrganization,
    pub name: &'a str,
    pub display_name: &'a str,
    pub source: &'a str,
    pub members: Vec<Uuid>,
}

/// `codersdk.Group`.
pub fn group(world: &World, group: &GroupView<'_>) -> Value {
    let members: Vec<Value> = group
        .members
        .iter()
        .filter_map(|id| world.users.get(id))
        .filter(|u| !u.deleted)
        .map(reduced_user)
        .collect();
    json!({
        "id": group.id,
        "name": group.name,
        "display_name": group.display_name,
        "organization_id": group.organization.id,
        "organization_name": group.organization.name,
        "organization_display_name": display_name(&group.organization.name),
        "avatar_url": "",
        "quota_allowance": 0,
        "source": group.source,
        "total_member_count": members.len(),
        "members": members,
    })
}

/// `codersdk.APIKey`.
pub fn api_key(key: &FakeApiKey) -> Value {
    let scope = if key.scopes.iter().any(|s| s == "coder:all" || s == "all") {
        "all"
    } else {
        "application_connect"
    };
    json!({
        "id": key.id,
        "user_id": key.user_id,
        "token_name": key.token_name,
        "login_type": "token",
        "scope": scope,
        "scopes": key.scopes,
        "lifetime_seconds": (key.expires_at - key.created_at).num_seconds(),
        "created_at": key.created_at,
        "updated_at": key.created_at,
        "last_used": key.created_at,
        "expires_at": key.expires_at,
    })
}

/// `codersdk.WorkspaceBuild`.
pub fn workspace_build(world: &World, workspace: &FakeWorkspace) -> Value {
    let owner = world.users.get(&workspace.owner_id);
    json!({
        "id": workspace.build_id,
        "workspace_id": workspace.id,
        "workspace_name": workspace.name,
        "workspace_owner_id": workspace.owner_id,
        "workspace_owner_name": owner.map(|u| u.username.as_str()).unwrap_or_default(),
        "build_number": workspace.build_number,
        "transition": workspace.transition,
        "status": workspace.status,
        "reason": "initiator",
        "job": {
            "id": workspace.build_id,
            "status": if workspace.build_running { "running" } else { "succeeded" },
        },
    })
}

/// `codersdk.Workspace`.
pub fn workspace(world: &World, workspace: &FakeWorkspace) -> Value {
    let owner = world.users.get(&workspace.owner_id);
    let organization = world.organization(workspace.organization_id);
    json!({
        "id": workspace.id,
        "name": workspace.name,
        "owner_id": workspace.owner_id,
        "owner_name": owner.map(|u| u.username.as_str()).unwrap_or_default(),
        "organization_id": workspace.organization_id,
        "organization_name": organization.map(|o| o.name.as_str()).unwrap_or_default(),
        "template_name": "docker",
        "latest_build": workspace_build(world, workspace),
        "health": { "healthy": true, "failing_agents": [] },
        "automatic_updates": "never",
        "outdated": false,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn role_display_names() {
        assert_eq!(
            super::display_name("organization-user-admin"),
            "Organization User Admin"
        );
        assert_eq!(super::display_name("owner"), "Owner");
    }
}
