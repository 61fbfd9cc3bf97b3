//! Discovery (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes[/{id}]`,
//! `/Schemas[/{id}]`. Served without a token; every document tells the truth about what the
//! endpoints do.

use crate::error::{ApiError, ApiResult};
use crate::request::{base_url, path_id};
use crate::response::scim_json;
use crate::service::discovery;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

/// The ServiceProviderConfig, with the configured bulk limits.
pub async fn service_provider_config(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let body = discovery::service_provider_config(&state.config, &base_url(&req, &state));
    scim_json(StatusCode::OK, &body)
}

/// The resource types (User, Group, Agent, AgenticApplication, and Role and Entitlement while
/// they are offered), as a ListResponse.
pub async fn resource_types(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    scim_json(
        StatusCode::OK,
        &discovery::resource_types(state.registry, &base_url(&req, &state), &state.config),
    )
}

/// One resource type by name (`User`, `Group`, …, `Role` and `Entitlement` while offered); 404
/// for any other.
pub async fn resource_type(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&req);
    let base = base_url(&req, &state);
    if let Some(catalog) = discovery::catalog_types(&state.config)
        .into_iter()
        .find(|t| t.name.eq_ignore_ascii_case(&id))
    {
        return Ok(scim_json(StatusCode::OK, &catalog.resource_type(&base)));
    }
    let kind = discovery::find_resource_type(&id)
        .ok_or_else(|| ApiError::not_found(format!("no resource type \"{id}\"")))?;
    Ok(scim_json(
        StatusCode::OK,
        &discovery::resource_type(kind, state.registry, &base),
    ))
}

/// Every schema, as a ListResponse.
pub async fn schemas(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    scim_json(
        StatusCode::OK,
        &discovery::schemas(state.registry, &base_url(&req, &state)),
    )
}

/// One schema by URN (ignoring case); 404 for an unknown one.
pub async fn schema(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let id = path_id(&req);
    let def = state
        .registry
        .schema(&id)
        .ok_or_else(|| ApiError::not_found(format!("no schema \"{id}\"")))?;
    Ok(scim_json(
        StatusCode::OK,
        &discovery::schema(def, &base_url(&req, &state)),
    ))
}
