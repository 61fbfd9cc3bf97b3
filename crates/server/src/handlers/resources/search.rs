//! `POST /{resource}/.search` and `POST /.search` (RFC 7644 §3.4.3): a list
//! whose parameters come in a SearchRequest body, keeping filters with personal data out of
//! URLs and logs. At the root, every resource type is searched together and each resource
//! carries its `schemas` to tell them apart.

use super::Endpoint;
use super::list::list_body;
use crate::body::read_request_json;
use crate::caller::Reader;
use crate::error::ApiResult;
use crate::service::resources;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use scim::query::ListQuery;

pub async fn search(
    Endpoint { kind, req, state }: Endpoint,
    payload: web::Payload,
    reader: Reader,
) -> ApiResult<HttpResponse> {
    let query = search_request(&req, payload, &state).await?;
    let page = resources::list(&state, &reader, kind, &query).await?;
    Ok(list_body(&state, &req, &query, page))
}

pub async fn all(
    req: HttpRequest,
    payload: web::Payload,
    reader: Reader,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let query = search_request(&req, payload, &state).await?;
    let page = resources::list_all(&state, &reader, &query).await?;
    Ok(list_body(&state, &req, &query, page))
}

/// The list parameters of a SearchRequest body.
async fn search_request(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> ApiResult<ListQuery> {
    let body = read_request_json(req, payload, state).await?;
    Ok(ListQuery::from_search_request(&body)?)
}
