//! `DELETE /Users/{id}`, `DELETE /Groups/{id}` (RFC 7644 §3.6): 204, then 404 for the resource,
//! a second DELETE included. `If-Match` naming another version is 412.

use crate::caller::Writer;
use crate::error::ApiResult;
use crate::request::{if_match, path_id};
use crate::service::resources;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use scim::ResourceKind;

pub async fn delete(
    kind: ResourceKind,
    req: HttpRequest,
    writer: Writer,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let precondition = if_match(req.headers())?;
    let write = writer.write(format!("DELETE {}/{{id}}", kind.endpoint()));
    resources::delete(
        &state,
        &write,
        kind,
        &path_id(&req),
        precondition.as_deref(),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
