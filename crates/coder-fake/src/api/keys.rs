//! `/api/v2/users/{user}/keys…`: long-lived API tokens.

use serde::Deserialize;
use serde_json::{Value, json};

use super::users::{actor, live_target, target};
use super::{ApiError, Body, Call, Outcome, Reply, render, serde_fields};
use crate::state::{DEFAULT_TOKEN_LIFETIME, World};

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
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    allow_list: Vec<Value>,
    /// A Go `time.Duration`: nanoseconds.
    #[serde(default)]
    lifetime: i64,
}

pub(super) const CREATE_BODY: Body = ("codersdk.CreateTokenRequest", serde_fields::<CreateToken>);

/// A scope Coder knows: the legacy `all` / `application_connect`, or `<resource>:<action>`
/// (`workspace:read`, `coder:workspaces.access`).
fn is_scope(scope: &str) -> bool {
    matches!(scope, "all" | "application_connect")
        || scope.split_once(':').is_some_and(|(resource, action)| {
            !resource.is_empty()
                && !action.is_empty()
                && scope
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || matches!(c, '_' | ':' | '.' | '*'))
        })
}

/// `POST /api/v2/users/{user}/keys/tokens`: 201 `{key}`; 400 for an unknown scope or a
/// negative lifetime, 409 for a name the user already has.
pub(super) fn create(world: &mut World, call: &Call<'_>) -> Outcome {
    let request: CreateToken = call.json()?;
    let user = live_target(world, call)?;
    require_self_or_owner(world, call, user)?;
    let name = if request.token_name.is_empty() {
        "token"
    } else {
        request.token_name.as_str()
    };
    if let Some(bad) = request.scopes.iter().find(|s| !is_scope(s)) {
        return Err(ApiError::invalid(vec![(
            "scopes".into(),
            format!("invalid API key scope {bad:?}"),
        )]));
    }
    if request.lifetime < 0 {
        return Err(ApiError::bad_request("Lifetime must be positive."));
    }
    // The fake keeps no allow-list semantics beyond accepting well-formed targets.
    if request.allow_list.iter().any(|t| !t.is_object()) {
        return Err(ApiError::bad_request("Invalid allow_list entry."));
    }
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
    let lifetime = if request.lifetime == 0 {
        DEFAULT_TOKEN_LIFETIME
    } else {
        chrono::Duration::nanoseconds(request.lifetime)
    };
    let scopes = if request.scopes.is_empty() {
        vec!["coder:all".to_owned()]
    } else {
        request.scopes
    };
    let key = world.issue_scoped_token(user, name, None, scopes, lifetime);
    Reply::created(json!({ "key": key.token }))
}

/// `GET /api/v2/users/{user}/keys/{keyid}`: the key (any login type), 404 when the user has no
/// key of that id.
pub(super) fn get(world: &mut World, call: &Call<'_>) -> Outcome {
    let user = target(world, call)?;
    require_self_or_owner(world, call, user)?;
    let key_id = call.param("keyid");
    world
        .keys
        .values()
        .find(|k| k.user_id == user && k.id == key_id)
        .map_or_else(
            || Err(ApiError::not_found()),
            |k| Reply::ok(render::api_key(k)),
        )
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
