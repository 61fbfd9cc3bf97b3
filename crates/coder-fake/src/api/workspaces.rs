//! `/api/v2/workspaces…`: listing by owner and stopping.

use serde::Deserialize;
use serde_json::{Value, json};

use super::users::actor;
use super::{ApiError, Body, Call, Outcome, Reply, parse_uuid, render, serde_fields};
use crate::state::{WorkspaceStatus, World};

/// `GET /api/v2/workspaces?q=owner:<username>`: deleted workspaces are not listed.
pub(super) fn list(world: &mut World, call: &Call<'_>) -> Outcome {
    let caller = actor(world, call)?;
    let mut owner = None;
    for term in call.query("q").unwrap_or_default().split_whitespace() {
        match term.split_once(':') {
            Some(("owner", "me")) => owner = Some(caller.username.clone()),
            Some(("owner", name)) => owner = Some(name.trim_matches('"').to_owned()),
            _ => {
                return Err(ApiError {
                    validations: vec![(
                        "q".into(),
                        format!("Query element {term:?} is not supported by the fake"),
                    )],
                    ..ApiError::bad_request("Invalid workspace search query.")
                });
            }
        }
    }
    let can_see_all = caller.is_owner();
    let workspaces: Vec<Value> = world
        .workspaces
        .values()
        .filter(|w| w.status != WorkspaceStatus::Deleted)
        .filter(|w| can_see_all || w.owner_id == call.actor)
        .filter(|w| {
            let username = world
                .users
                .get(&w.owner_id)
                .map(|u| u.username.as_str())
                .unwrap_or_default();
            owner
                .as_deref()
                .is_none_or(|o| o.eq_ignore_ascii_case(username))
        })
        .map(|w| render::workspace(world, w))
        .collect();
    Reply::ok(json!({ "count": workspaces.len(), "workspaces": workspaces }))
}

#[derive(Deserialize)]
struct CreateBuild {
    #[serde(default)]
    transition: String,
}

pub(super) const BUILD_BODY: Body = (
    "codersdk.CreateWorkspaceBuildRequest",
    serde_fields::<CreateBuild>,
);

/// `POST /api/v2/workspaces/{workspace}/builds`: 201; 409 while a build is still running.
pub(super) fn build(world: &mut World, call: &Call<'_>) -> Outcome {
    let request: CreateBuild = call.json()?;
    if !matches!(request.transition.as_str(), "start" | "stop" | "delete") {
        return Err(ApiError::invalid(vec![(
            "transition".into(),
            format!(
                "Validation failed for tag \"oneof\" with value: {:?}",
                request.transition
            ),
        )]));
    }
    let id = parse_uuid(call.param("workspace"), "workspace")?;
    let is_owner = actor(world, call)?.is_owner();
    let workspace = world
        .workspaces
        .get(&id)
        .filter(|w| w.status != WorkspaceStatus::Deleted && (is_owner || w.owner_id == call.actor))
        .ok_or_else(ApiError::not_found)?;
    if workspace.build_running {
        return Err(ApiError::new(409, "A workspace build is already active."));
    }
    world.build(id, &request.transition);
    let workspace = world.workspaces.get(&id).ok_or_else(ApiError::not_found)?;
    Reply::created(render::workspace_build(world, workspace))
}
