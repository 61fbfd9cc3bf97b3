//! `/api/v2/users/{user}/keys…`: long-lived API tokens.

use serde::Deserialize;
use serde_json::{Value, json};

use super::users::{actor, live_target, target};
use super::{ApiError, Body, Call, Outcome, Reply, render, serde_fields};
use crate::state::World;

/// Acting on another user's keys needs `owner`.
fn require_self_or_owner(world: &World, call: &Call<'_>, user: uuid::Uuid) -> Result<(), ApiError> {
    if user == call.actor || actor(world, call)?.is_owner() {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

/// `GET /api/v2/users/{user}/keys/tokens`: JSON `null` when the user has none.
pub(super) fn list(world: &mut World, call: &Call<'_>) -> Outcome {
    let user = target(world, call)?;
    require_self_or_owner(world, call, user)?;
    let keys: Vec<Value> = world
        .keys
        .values()
        .filter(|k| k.user_id == user)
        .map(render::api_key)
        .collect();
    // Go encodes the nil slice of an empty result as `null`.
    Reply::ok(if keys.is_empty() {
        Value::Null
    } else {
        Value::from(keys)
    })
}

#[derive(Deserialize)]
struct CreateToken {
    #[serde(default)]
    token_name: String,
}

pub(super) const CREATE_BODY: Body = ("codersdk.CreateTokenRequest", serde_fields::<CreateToken>);

/// `POST /api/v2/users/{user}/keys/tokens`: 201 `{key}`.
pub(super) fn create(world: &mut World, call: &Call<'_>) -> Outcome {
    let request: CreateToken = call.json()?;
    let user = live_target(world, call)?;
    require_self_or_owner(world, call, user)?;
    let name = if request.token_name.is_empty() {
        "token"
    } else {
        request.token_name.as_str()
    };
    if world
        .keys
        .values()
        .any(|k| k.user_id == user && k.token_name == name)
    {
        return Err(ApiError::new(
            409,
            format!("A token with name {name:?} already exists."),
        ));
    }
    let key = world.issue_token(user, name, None);
    Reply::created(json!({ "key": key.token }))
}

/// `DELETE /api/v2/users/{user}/keys/{keyid}`: 204.
pub(super) fn delete(world: &mut World, call: &Call<'_>) -> Outcome {
    let user = target(world, call)?;
    require_self_or_owner(world, call, user)?;
    let key_id = call.param("keyid");
    let before = world.keys.len();
    world
        .keys
        .retain(|_, k| !(k.user_id == user && k.id == key_id));
    if world.keys.len() == before {
        return Err(ApiError::not_found());
    }
    Reply::no_content()
}
