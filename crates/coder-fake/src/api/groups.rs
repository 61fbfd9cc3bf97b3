//! Groups (Premium, `template_rbac`): `/api/v2/organizations/{organization}/groups…` and
//! `/api/v2/groups/{group}`.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::organizations::organization_param;
use super::render::{self, GroupView};
use super::users::{display_name_problem, name_problem, require_user_admin};
use super::{ApiError, Body, Call, Outcome, Reply, parse_uuid, serde_fields};
use crate::state::{FakeGroup, World};

/// The reserved group of every organization; its id is the organization's id and its members
/// are the organization's members.
pub(crate) const EVERYONE: &str = "Everyone";

/// Group names follow the username pattern but may be longer.
const GROUP_NAME_MAX: usize = 255;
const GROUP_DISPLAY_NAME_MAX: usize = 64;

fn everyone(world: &World, organization: Uuid) -> Option<GroupView<'_>> {
    let org = world.organization(organization)?;
    let members = world
        .users
        .values()
        .filter(|u| !u.deleted && u.organizations.contains_key(&organization))
        .map(|u| u.id)
        .collect();
    Some(GroupView {
        id: org.id,
        organization: org,
        name: EVERYONE,
        display_name: "",
        source: "user",
        members,
    })
}

fn view<'w>(world: &'w World, group: &'w FakeGroup) -> Option<GroupView<'w>> {
    Some(GroupView {
        id: group.id,
        organization: world.organization(group.organization_id)?,
        name: &group.name,
        display_name: &group.display_name,
        source: &group.source,
        members: group.members.iter().copied().collect(),
    })
}

fn render_group(world: &World, id: Uuid) -> Result<Value, ApiError> {
    let view = match world.groups.get(&id) {
        Some(group) => view(world, group),
        None => everyone(world, id),
    };
    view.map(|v| render::group(world, &v))
        .ok_or_else(ApiError::not_found)
}

/// Resolves `{group}`: a UUID only.
fn group_param(world: &World, call: &Call<'_>) -> Result<Uuid, ApiError> {
    let id = parse_uuid(call.param("group"), "group")?;
    if world.groups.contains_key(&id) || world.organization(id).is_some() {
        Ok(id)
    } else {
        Err(ApiError::not_found())
    }
}

/// `GET /api/v2/organizations/{organization}/groups`: `Everyone` first, then by name.
pub(super) fn list(world: &mut World, call: &Call<'_>) -> Outcome {
    let org = organization_param(world, call)?;
    let mut ids: Vec<&FakeGroup> = world
        .groups
        .values()
        .filter(|g| g.organization_id == org)
        .collect();
    ids.sort_by(|a, b| a.name.cmp(&b.name));
    let mut groups = vec![render_group(world, org)?];
    for group in ids {
        groups.push(render_group(world, group.id)?);
    }
    Reply::ok(Value::from(groups))
}

/// `GET /api/v2/organizations/{organization}/groups/{groupName}`: name ignoring case.
pub(super) fn get_by_name(world: &mut World, call: &Call<'_>) -> Outcome {
    let org = organization_param(world, call)?;
    let name = call.param("groupName");
    if name.eq_ignore_ascii_case(EVERYONE) {
        return Reply::ok(render_group(world, org)?);
    }
    let id = world
        .groups
        .values()
        .find(|g| g.organization_id == org && g.name.eq_ignore_ascii_case(name))
        .map(|g| g.id)
        .ok_or_else(ApiError::not_found)?;
    Reply::ok(render_group(world, id)?)
}

/// `GET /api/v2/groups/{group}`.
pub(super) fn get(world: &mut World, call: &Call<'_>) -> Outcome {
    let id = group_param(world, call)?;
    Reply::ok(render_group(world, id)?)
}

#[derive(Deserialize)]
struct CreateGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    display_name: String,
}

pub(super) const CREATE_BODY: Body = ("codersdk.CreateGroupRequest", serde_fields::<CreateGroup>);

fn check_names(name: Option<&str>, display_name: Option<&str>) -> Result<(), ApiError> {
    if name == Some(EVERYONE) {
        return Err(ApiError::bad_request(format!(
            "{EVERYONE:?} is a reserved group name."
        )));
    }
    let mut problems = Vec::new();
    if let Some(problem) = name.and_then(|n| name_problem(n, GROUP_NAME_MAX)) {
        problems.push(("name".to_owned(), problem));
    }
    if let Some(problem) =
        display_name.and_then(|n| display_name_problem(n, GROUP_DISPLAY_NAME_MAX))
    {
        problems.push(("display_name".to_owned(), problem));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(problems))
    }
}

/// `POST /api/v2/organizations/{organization}/groups`: 409 only on an exact duplicate name
/// (`Devs` and `devs` may coexist).
pub(super) fn create(world: &mut World, call: &Call<'_>) -> Outcome {
    let request: CreateGroup = call.json()?;
    check_names(Some(&request.name), Some(&request.display_name))?;
    require_user_admin(world, call)?;
    let org = organization_param(world, call)?;
    if world
        .groups
        .values()
        .any(|g| g.organization_id == org && g.name == request.name)
    {
        return Err(ApiError::new(
            409,
            format!("A group named {:?} already exists.", request.name),
        ));
    }
    let group = FakeGroup {
        id: crate::new_id(),
        organization_id: org,
        name: request.name,
        display_name: request.display_name,
        source: "user".into(),
        members: BTreeSet::new(),
    };
    let id = group.id;
    world.groups.insert(id, group);
    Ok(Reply {
        status: 201,
        body: Some(render_group(world, id)?),
    })
}

#[derive(Deserialize)]
struct PatchGroup {
    #[serde(default)]
    add_users: Vec<String>,
    #[serde(default)]
    remove_users: Vec<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    display_name: Option<String>,
}

pub(super) const PATCH_BODY: Body = ("codersdk.PatchGroupRequest", serde_fields::<PatchGroup>);

/// `PATCH /api/v2/groups/{group}`: all checks run before any change, so a 400 for one user
/// (already a member, not in the group's organization) leaves the group exactly as it was.
pub(super) fn patch(world: &mut World, call: &Call<'_>) -> Outcome {
    let request: PatchGroup = call.json()?;
    require_user_admin(world, call)?;
    let id = group_param(world, call)?;
    let Some(group) = world.groups.get(&id) else {
        return Err(ApiError::bad_request(
            "The Everyone group cannot be changed.",
        ));
    };
    let name = Some(request.name.as_str()).filter(|n| !n.is_empty() && *n != group.name);
    check_names(name, request.display_name.as_deref())?;
    if let Some(name) = name {
        let taken = world.groups.values().any(|g| {
            g.id != id
                && g.organization_id == group.organization_id
                && g.name.eq_ignore_ascii_case(name)
        });
        if taken {
            return Err(ApiError::new(
                409,
                format!("A group named {name:?} already exists."),
            ));
        }
    }
    let mut adds = BTreeSet::new();
    for raw in &request.add_users {
        let user = parse_uuid(raw, "add_users")?;
        let member_of_org = world
            .users
            .get(&user)
            .is_some_and(|u| !u.deleted && u.organizations.contains_key(&group.organization_id));
        if !member_of_org {
            return Err(ApiError::bad_request(format!(
                "User {user} must be a member of the group's organization first."
            )));
        }
        if group.members.contains(&user) || !adds.insert(user) {
            return Err(ApiError::bad_request(format!(
                "User {user} is already a member of the group."
            )));
        }
    }
    let mut removes = BTreeSet::new();
    for raw in &request.remove_users {
        let user = parse_uuid(raw, "remove_users")?;
        if adds.contains(&user) {
            return Err(ApiError::bad_request(format!(
                "User {user} cannot be both added and removed."
            )));
        }
        removes.insert(user);
    }
    let group = world.groups.get_mut(&id).ok_or_else(ApiError::not_found)?;
    group.members.extend(adds);
    group.members.retain(|m| !removes.contains(m));
    if let Some(name) = name {
        group.name = name.to_owned();
    }
    if let Some(display_name) = request.display_name {
        group.display_name = display_name;
    }
    Reply::ok(render_group(world, id)?)
}

/// `DELETE /api/v2/groups/{group}`: 200 with a message object (not `Group`, unlike swagger).
pub(super) fn delete(world: &mut World, call: &Call<'_>) -> Outcome {
    require_user_admin(world, call)?;
    let id = group_param(world, call)?;
    if world.groups.remove(&id).is_none() {
        return Err(ApiError::bad_request(
            "The Everyone group cannot be deleted.",
        ));
    }
    Reply::message("Successfully deleted group!")
}
