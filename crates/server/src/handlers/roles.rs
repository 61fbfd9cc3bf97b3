//! `GET /Roles`, `GET /Roles/{id}`: the Coder roles an IdP may grant on a User's `roles`
//! (Okta Identity Governance discovers them through `/ResourceTypes`). Filter and paging work
//! as on `/Users`; the catalog is the configuration's `[roles.grantable]`.

use crate::caller::Reader;
use crate::error::ApiResult;
use crate::request::{base_url, path_id, query_params};
use crate::response::scim_json;
use crate::service::roles;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use scim::query::ListQuery;

pub async fn list(
    req: HttpRequest,
    reader: Reader,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let query = ListQuery::from_params(&query_params(&req))?;
    let body = roles::list(&state, &reader, &query, &base_url(&req, &state)).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

pub async fn get(
    req: HttpRequest,
    reader: Reader,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let role = roles::get(&state, &reader, &path_id(&req))?;
    Ok(scim_json(
        StatusCode::OK,
        &role.to_scim(&base_url(&req, &state)),
    ))
}
