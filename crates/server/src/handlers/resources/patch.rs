//! `PATCH /Users/{id}`, `PATCH /Groups/{id}` (RFC 7644 §3.5.2): all operations or none, applied
//! under the row lock, so Entra's parallel PATCHes to one group never lose an update.
//!
//! A User answers 200 with the User. A Group answers 204 unless the request names
//! `attributes`/`excludedAttributes`: Entra asks for 204 (a body listing every member of a
//! large group costs more than the change), and RFC 7644 §3.5.2 allows it.

use super::{Change, Endpoint};
use crate::caller::Writer;
use crate::error::ApiResult;
use crate::request::{asks_for_attributes, base_url, projection};
use crate::response::resource;
use crate::service::resources;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::http::header::ETAG;
use actix_web::{HttpRequest, HttpResponse, web};
use scim::ResourceKind;
use store::StoredResource;

pub async fn patch(
    Endpoint { kind, req, state }: Endpoint,
    payload: web::Payload,
    writer: Writer,
) -> ApiResult<HttpResponse> {
    let change = Change::read("PATCH", kind, &req, payload, &writer, &state).await?;
    let if_match = change.if_match.as_deref();
    let updated = resources::patch(
        &state,
        &change.write,
        kind,
        &change.id,
        if_match,
        &change.body,
    )
    .await?;
    let params = change.params;
    if kind == ResourceKind::Group && !asks_for_attributes(&params) {
        return Ok(HttpResponse::NoContent()
            .insert_header((ETAG, updated.etag()))
            .finish());
    }
    respond_with_current(&state, &writer, &req, &params, updated).await
}

/// 200 with the written resource as the request's projection shows it. The write's result
/// carries no members or groups, so they are read after the commit when the projection shows
/// them.
pub async fn respond_with_current(
    state: &AppState,
    writer: &Writer,
    req: &HttpRequest,
    params: &[(String, String)],
    written: StoredResource,
) -> ApiResult<HttpResponse> {
    let projection = projection(params)?;
    let current = match resources::get(state, writer, written.kind, &written.id, &projection).await
    {
        // Another write may have landed since; show the newest state with its own version.
        Ok(current) => current,
        Err(_) => written,
    };
    let body =
        scim::render::projected(state.registry, &current, &base_url(req, state), &projection);
    Ok(resource(StatusCode::OK, &body, &current.etag(), None))
}
