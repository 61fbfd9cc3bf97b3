//! `GET /Roles[/{id}]` and `GET /Entitlements[/{id}]`: the Coder roles and organization
//! memberships an IdP may grant on a User's `roles` and `entitlements` (Okta Identity Governance
//! discovers them through `/ResourceTypes`). Filter, sorting, paging and
//! `attributes`/`excludedAttributes` work as on `/Users`; the catalogs are the configuration's
//! `[roles.grantable]` and `[entitlements.grantable]`.

use crate::caller::Reader;
use crate::error::ApiResult;
use crate::request::{base_url, path_id, query_params};
use crate::response::scim_json;
use crate::service::catalogs;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use scim::catalog::{Catalog, Offer};
use scim::query::ListQuery;

pub async fn roles(
    req: HttpRequest,
    reader: Reader,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    list(&req, &reader, &state, &state.config.roles).await
}

pub async fn role(
    req: HttpRequest,
    reader: Reader,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    get(&req, &reader, &state, &state.config.roles)
}

pub async fn entitlements(
    req: HttpRequest,
    reader: Reader,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    list(&req, &reader, &state, &state.config.entitlements).await
}

pub async fn entitlement(
    req: HttpRequest,
    reader: Reader,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    get(&req, &reader, &state, &state.config.entitlements)
}

async fn list<T: Offer>(
    req: &HttpRequest,
    reader: &Reader,
    state: &AppState,
    catalog: &Catalog<T>,
) -> ApiResult<HttpResponse> {
    let query = ListQuery::from_params(&query_params(req))?;
    let body = catalogs::list(state, reader, catalog, &query, &base_url(req, state)).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

fn get<T: Offer>(
    req: &HttpRequest,
    reader: &Reader,
    state: &AppState,
    catalog: &Catalog<T>,
) -> ApiResult<HttpResponse> {
    let query = ListQuery::from_params(&query_params(req))?;
    let body = catalogs::get(
        state,
        reader,
        catalog,
        &path_id(req),
        &query,
        &base_url(req, state),
    )?;
    Ok(scim_json(StatusCode::OK, &body))
}
