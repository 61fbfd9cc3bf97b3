//! `/api/v2/users…`: accounts, status, profile and site roles.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{ApiError, Body, Call, Outcome, Reply, render, serde_fields};
use crate::state::{FakeUser, LoginType, UserStatus, WorkspaceStatus, World};

/// Site roles that can be granted; `member` is implied.
const SITE_ROLES: &[&str] = &["owner", "template-admin", "user-admin", "auditor"];

/// The calling user.
pub(crate) fn actor<'w>(world: &'w World, call: &Call<'_>) -> Result<&'w FakeUser, ApiError> {
    world.users.get(&call.actor).ok_or_else(ApiError::forbidden)
}

/// Only an `owner` or `user-admin` may manage other users.
pub(crate) fn require_user_admin(world: &World, call: &Call<'_>) -> Result<(), ApiError> {
    if actor(world, call)?.is_user_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

/// Resolves `{user}`: a UUID (deleted users too), a username ignoring case, or `me`; never an
/// email.
pub(crate) fn target(world: &World, call: &Call<'_>) -> Result<Uuid, ApiError> {
    let key = call.param("user");
    if key == "me" {
        return Ok(call.actor);
    }
    if let Ok(id) = Uuid::parse_str(key) {
        return world
            .users
            .contains_key(&id)
            .then_some(id)
            .ok_or_else(ApiError::not_found);
    }
    world
        .users
        .values()
        .find(|u| !u.deleted && u.username.eq_ignore_ascii_case(key))
        .map(|u| u.id)
        .ok_or_else(ApiError::not_found)
}

/// Like [`target`], for changes: a deleted user cannot be changed.
pub(crate) fn live_target(world: &World, call: &Call<'_>) -> Result<Uuid, ApiError> {
    let id = target(world, call)?;
    match world.users.get(&id) {
        Some(user) if !user.deleted => Ok(id),
        _ => Err(ApiError::not_found()),
    }
}

fn user_mut(world: &mut World, id: Uuid) -> Result<&mut FakeUser, ApiError> {
    world.users.get_mut(&id).ok_or_else(ApiError::not_found)
}

/// Coder's username rule, also used for group names with a longer limit:
/// `^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$`, not `new`/`create`.
pub(crate) fn name_problem(name: &str, max: usize) -> Option<String> {
    let pattern = !name.is_empty()
        && name
            .split('-')
            .all(|run| !run.is_empty() && run.bytes().all(|b| b.is_ascii_alphanumeric()));
    if name.is_empty() {
        Some("Validation failed for tag \"required\" with value: \"\"".into())
    } else if name.len() > max {
        Some(format!("must be at most {max} characters"))
    } else if !pattern || matches!(name, "new" | "create") {
        Some(format!(
            "Validation failed for tag \"username\" with value: {name:?}"
        ))
    } else {
        None
    }
}

/// A display name: at most `max` characters and no surrounding white space.
pub(crate) fn display_name_problem(name: &str, max: usize) -> Option<String> {
    if name.chars().count() > max {
        Some(format!("must be at most {max} characters"))
    } else if name.trim() != name {
        Some("must not have leading or trailing white space".into())
    } else {
        None
    }
}

fn parse_login_type(value: &str) -> Option<LoginType> {
    serde_json::from_value(json!(value)).ok()
}

/// `GET /api/v2/users?q=&limit=&offset=`: never lists deleted users.
pub(super) fn list(world: &mut World, call: &Call<'_>) -> Outcome {
    let mut filters = Vec::new();
    for term in call.query("q").unwrap_or_default().split_whitespace() {
        match term.split_once(':') {
            Some((key @ ("email" | "username" | "status" | "login_type"), value)) => {
                filters.push((key, value.trim_matches('"').to_owned()))
            }
            Some((key, _)) => {
                return Err(ApiError {
                    validations: vec![(
                        "q".into(),
                        format!("Query param {key:?} is not a valid query param"),
                    )],
                    ..ApiError::bad_request("Invalid user search query.")
                });
            }
            None => filters.push(("search", term.to_owned())),
        }
    }
    let limit = parse_number(call.query("limit"), "limit")?;
    let offset = parse_number(call.query("offset"), "offset")?.unwrap_or(0);
    let mut users: Vec<&FakeUser> = world
        .users
        .values()
        .filter(|u| !u.deleted)
        .filter(|u| {
            filters.iter().all(|(key, value)| match *key {
                "email" => u.email.eq_ignore_ascii_case(value),
                "username" => u.username.eq_ignore_ascii_case(value),
                "status" => json!(u.status) == json!(value.to_lowercase()),
                "login_type" => json!(u.login_type) == json!(value.to_lowercase()),
                _ => {
                    let value = value.to_lowercase();
                    u.username.to_lowercase().contains(&value)
                        || u.email.to_lowercase().contains(&value)
                }
            })
        })
        .collect();
    users.sort_by_key(|u| u.username.to_lowercase());
    let count = users.len();
    let page: Vec<_> = users
        .into_iter()
        .skip(offset)
        .take(limit.filter(|l| *l > 0).unwrap_or(usize::MAX))
        .map(render::user)
        .collect();
    Reply::ok(json!({ "users": page, "count": count }))
}

fn parse_number(value: Option<&str>, field: &str) -> Result<Option<usize>, ApiError> {
    value
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::invalid(vec![(
                    field.into(),
                    format!("Query param {field:?} must be a valid integer"),
                )])
            })
        })
        .transpose()
}

/// The part of `codersdk.CreateUserRequestWithOrgs` the fake reads.
#[derive(Deserialize)]
struct CreateUser {
    #[serde(default)]
    email: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    login_type: String,
    #[serde(default)]
    organization_ids: Vec<String>,
    #[serde(default)]
    user_status: Option<String>,
    #[serde(default)]
    service_account: bool,
}

pub(super) const CREATE_BODY: Body = (
    "codersdk.CreateUserRequestWithOrgs",
    serde_fields::<CreateUser>,
);

/// `POST /api/v2/users`: 400 with validations, 409 "User already exists." on a username or email
/// clash (ignoring case) with a non-deleted user; new users are `dormant` unless told otherwise.
pub(super) fn create(world: &mut World, call: &Call<'_>) -> Outcome {
    let request: CreateUser = call.json()?;
    let mut problems = Vec::new();
    let required = || "Validation failed for tag \"required\" with value: \"\"".to_owned();
    if request.service_account {
        // Service accounts are Premium and have no email; their login type is `none`.
        if !world.premium {
            return Err(ApiError::new(
                403,
                "This is a Premium feature. Contact sales!",
            ));
        }
        if !request.email.is_empty() {
            problems.push((
                "email".into(),
                "service accounts cannot have an email".into(),
            ));
        }
        if !matches!(request.login_type.as_str(), "" | "none") {
            problems.push((
                "login_type".into(),
                "service accounts must use login type \"none\"".into(),
            ));
        }
    } else if request.email.is_empty() {
        problems.push(("email".into(), required()));
    } else if !is_email(&request.email) {
        problems.push((
            "email".into(),
            format!(
                "Validation failed for tag \"email\" with value: {:?}",
                request.email
            ),
        ));
    }
    if let Some(problem) = name_problem(&request.username, 32) {
        problems.push(("username".into(), problem));
    }
    let login_type = match parse_login_type(&request.login_type) {
        _ if request.service_account => Some(LoginType::None),
        _ if request.login_type.is_empty() => {
            problems.push(("login_type".into(), required()));
            None
        }
        Some(LoginType::None) if !request.service_account => {
            problems.push((
                "login_type".into(),
                "login type \"none\" is only for service accounts".into(),
            ));
            None
        }
        Some(login_type) => Some(login_type),
        None => {
            problems.push((
                "login_type".into(),
                format!("invalid login type {:?}", request.login_type),
            ));
            None
        }
    };
    if request.organization_ids.is_empty() {
        problems.push(("organization_ids".into(), required()));
    }
    if let Some(problem) = display_name_problem(&request.name, 128) {
        problems.push(("name".into(), problem));
    }
    let status = match request.user_status.as_deref() {
        None | Some("" | "dormant") => UserStatus::Dormant,
        Some("active") => UserStatus::Active,
        Some(other) => {
            problems.push(("user_status".into(), format!("invalid status {other:?}")));
            UserStatus::Dormant
        }
    };
    let Some(login_type) = login_type.filter(|_| problems.is_empty()) else {
        return Err(ApiError::invalid(problems));
    };
    require_user_admin(world, call)?;
    let mut organizations = BTreeMap::new();
    for raw in &request.organization_ids {
        let id = super::parse_uuid(raw, "organization_ids")?;
        let id = if id.is_nil() {
            world.default_organization_id()
        } else {
            id
        };
        if world.organization(id).is_none() {
            return Err(
                ApiError::bad_request("Organization does not exist with the provided id.")
                    .detail(format!("organization {raw}")),
            );
        }
        organizations.insert(id, BTreeSet::new());
    }
    let email = Some(request.email.as_str()).filter(|e| !e.is_empty());
    if world.clash(&request.username, email, None) {
        return Err(ApiError::new(409, "User already exists."));
    }
    let now = crate::now();
    let user = FakeUser {
        id: crate::new_id(),
        username: request.username,
        email: request.email,
        name: request.name,
        login_type,
        status,
        roles: BTreeSet::new(),
        organizations,
        is_service_account: request.service_account,
        deleted: false,
        created_at: now,
        updated_at: now,
    };
    let body = render::user(&user);
    world.users.insert(user.id, user);
    Reply::created(body)
}

fn is_email(value: &str) -> bool {
    value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !value.contains(char::is_whitespace)
    })
}

/// `GET /api/v2/users/{user}`: answers for deleted users too.
pub(super) fn get(world: &mut World, call: &Call<'_>) -> Outcome {
    let id = target(world, call)?;
    Reply::ok(render::user(user_mut(world, id)?))
}

/// `DELETE /api/v2/users/{user}`: 417 while the user owns a workspace; otherwise a soft delete
/// that removes keys and memberships and frees the username and email.
pub(super) fn delete(world: &mut World, call: &Call<'_>) -> Outcome {
    require_user_admin(world, call)?;
    let id = live_target(world, call)?;
    if id == call.actor {
        return Err(ApiError::bad_request("You cannot delete yourself!"));
    }
    if world
        .workspaces
        .values()
        .any(|w| w.owner_id == id && w.status != WorkspaceStatus::Deleted)
    {
        return Err(ApiError::new(
            417,
            "You cannot remove a user with workspaces. Delete their workspaces first.",
        ));
    }
    world.keys.retain(|_, key| key.user_id != id);
    for group in world.groups.values_mut() {
        group.members.remove(&id);
    }
    let user = user_mut(world, id)?;
    user.deleted = true;
    user.organizations.clear();
    user.updated_at = crate::now();
    Reply::message("User has been deleted!")
}

#[derive(Deserialize)]
struct UpdateProfile {
    #[serde(default)]
    username: String,
    #[serde(default)]
    name: String,
}

pub(super) const PROFILE_BODY: Body = (
    "codersdk.UpdateUserProfileRequest",
    serde_fields::<UpdateProfile>,
);

/// `PUT /api/v2/users/{user}/profile`: username required; 409 when taken; a missing `name`
/// clears it.
pub(super) fn update_profile(world: &mut World, call: &Call<'_>) -> Outcome {
    let request: UpdateProfile = call.json()?;
    let mut problems = Vec::new();
    if let Some(problem) = name_problem(&request.username, 32) {
        problems.push(("username".to_owned(), problem));
    }
    if let Some(problem) = display_name_problem(&request.name, 128) {
        problems.push(("name".to_owned(), problem));
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let id = live_target(world, call)?;
    if id != call.actor {
        require_user_admin(world, call)?;
    }
    if world.clash(&request.username, None, Some(id)) {
        return Err(ApiError {
            validations: vec![(
                "username".into(),
                "this value is already in use and should be unique".into(),
            )],
            ..ApiError::new(409, "A user with this username already exists.")
        });
    }
    let user = user_mut(world, id)?;
    user.username = request.username;
    user.name = request.name;
    user.updated_at = crate::now();
    Reply::ok(render::user(user))
}

/// `PUT /api/v2/users/{user}/status/suspend`: idempotent; 400 for an owner or yourself; stops
/// the user's running workspaces.
pub(super) fn suspend(world: &mut World, call: &Call<'_>) -> Outcome {
    require_user_admin(world, call)?;
    let id = live_target(world, call)?;
    if id == call.actor {
        return Err(ApiError::bad_request("You cannot suspend yourself."));
    }
    if user_mut(world, id)?.is_owner() {
        return Err(ApiError::bad_request(
            "You cannot suspend a user with the owner role.",
        ));
    }
    let running: Vec<Uuid> = world
        .workspaces
        .values()
        .filter(|w| w.owner_id == id && w.status == WorkspaceStatus::Running)
        .map(|w| w.id)
        .collect();
    for workspace in running {
        world.build(workspace, "stop");
    }
    set_status(world, id, UserStatus::Suspended)
}

/// `PUT /api/v2/users/{user}/status/activate`: idempotent.
pub(super) fn activate(world: &mut World, call: &Call<'_>) -> Outcome {
    require_user_admin(world, call)?;
    let id = live_target(world, call)?;
    set_status(world, id, UserStatus::Active)
}

fn set_status(world: &mut World, id: Uuid, status: UserStatus) -> Outcome {
    let user = user_mut(world, id)?;
    if user.status != status {
        user.status = status;
        user.updated_at = crate::now();
    }
    Reply::ok(render::user(user))
}

/// `GET /api/v2/users/{user}/login-type`: only for the caller; anyone else gets 403.
pub(super) fn login_type(world: &mut World, call: &Call<'_>) -> Outcome {
    let id = target(world, call)?;
    if id != call.actor {
        return Err(ApiError::new(403, "You can only view your own login type."));
    }
    Reply::ok(json!({ "login_type": user_mut(world, id)?.login_type }))
}

/// `GET /api/v2/users/{user}/roles`: `{roles, organization_roles}` (not `User`, unlike swagger).
pub(super) fn roles(world: &mut World, call: &Call<'_>) -> Outcome {
    let id = target(world, call)?;
    if id != call.actor {
        require_user_admin(world, call)?;
    }
    let user = user_mut(world, id)?;
    Reply::ok(json!({ "roles": user.roles, "organization_roles": user.organizations }))
}

#[derive(Deserialize)]
pub(super) struct UpdateRoles {
    #[serde(default)]
    pub roles: Vec<String>,
}

pub(super) const ROLES_BODY: Body = ("codersdk.UpdateRoles", serde_fields::<UpdateRoles>);

/// `PUT /api/v2/users/{user}/roles`: replaces the site roles; only an owner may grant roles
/// beyond `member`; nobody may change their own; `agents-access` is an organization role.
pub(super) fn put_roles(world: &mut World, call: &Call<'_>) -> Outcome {
    let request: UpdateRoles = call.json()?;
    require_user_admin(world, call)?;
    let id = live_target(world, call)?;
    if id == call.actor {
        return Err(ApiError::bad_request("You cannot change your own roles."));
    }
    let mut roles = BTreeSet::new();
    for role in request.roles.iter().filter(|r| *r != "member") {
        if role == "agents-access" {
            return Err(ApiError::bad_request(format!(
                "Role {role:?} is an organization role and cannot be assigned as a site role."
            )));
        }
        if !SITE_ROLES.contains(&role.as_str()) {
            return Err(ApiError::bad_request(format!("Invalid role {role:?}.")));
        }
        roles.insert(role.clone());
    }
    let is_owner = actor(world, call)?.is_owner();
    let user = user_mut(world, id)?;
    if !is_owner && !roles.is_subset(&user.roles) {
        return Err(ApiError::new(403, "Only an owner may assign these roles."));
    }
    if world.idp_sync.site_role_sync && user_mut(world, id)?.login_type == LoginType::Oidc {
        return Err(ApiError::bad_request(
            "Cannot modify site roles for OIDC users when role sync is enabled.",
        ));
    }
    let user = user_mut(world, id)?;
    user.roles = roles;
    user.updated_at = crate::now();
    Reply::ok(render::user(user))
}

/// What Coder does at an OIDC login with `claims` in the sync fields: the user becomes active,
/// and every sync that is on sets organizations, groups and organization roles to exactly the
/// claim-derived sets (undoing the bridge's changes).
pub(crate) fn oidc_login(world: &mut World, id: Uuid, claims: &[String]) -> Result<(), String> {
    let sync = world.idp_sync.clone();
    let default_org = world.default_organization_id();
    let user = world
        .users
        .get_mut(&id)
        .filter(|u| !u.deleted)
        .ok_or("no such user")?;
    if user.login_type != LoginType::Oidc {
        return Err("the user's login type is not oidc".into());
    }
    if user.status == UserStatus::Suspended {
        return Err("User is not active".into());
    }
    user.status = UserStatus::Active;
    let mapped = |mapping: &BTreeMap<String, Vec<Uuid>>| -> BTreeSet<Uuid> {
        claims
            .iter()
            .filter_map(|c| mapping.get(c))
            .flatten()
            .copied()
            .collect()
    };
    if !sync.organization_field.is_empty() {
        let mut wanted = mapped(&sync.organization_mapping);
        if sync.organization_assign_default {
            wanted.insert(default_org);
        }
        user.organizations.retain(|org, _| wanted.contains(org));
        for org in wanted {
            user.organizations.entry(org).or_default();
        }
    }
    let organizations: Vec<Uuid> = user.organizations.keys().copied().collect();
    // Leaving an organization also leaves its groups.
    for group in world
        .groups
        .values_mut()
        .filter(|g| !organizations.contains(&g.organization_id))
    {
        group.members.remove(&id);
    }
    for org in organizations {
        if let Some(mapping) = sync
            .role_mappings
            .get(&org)
            .filter(|_| sync.role_fields.contains_key(&org))
        {
            let roles = claims
                .iter()
                .filter_map(|c| mapping.get(c))
                .flatten()
                .cloned()
                .collect();
            if let Some(user) = world.users.get_mut(&id) {
                user.organizations.insert(org, roles);
            }
        }
        if let Some(mapping) = sync
            .group_mappings
            .get(&org)
            .filter(|_| sync.group_fields.contains_key(&org))
        {
            let wanted = mapped(mapping);
            for group in world
                .groups
                .values_mut()
                .filter(|g| g.organization_id == org)
            {
                if wanted.contains(&group.id) {
                    group.members.insert(id);
                } else {
                    group.members.remove(&id);
                }
            }
        }
    }
    Ok(())
}
