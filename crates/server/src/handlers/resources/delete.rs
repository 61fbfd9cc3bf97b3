//! `DELETE /Users/{id}`, `DELETE /Groups/{id}` (RFC 7644 §3.6): 204, then 404 for the resource,
//! a second DELETE included. `If-Match` naming another version is 412.

use super::Endpoint;
use crate::caller::Writer;
use crate::error::ApiResult;
use crate::request::{if_match, path_id};
use crate::service::resources;
use actix_web::HttpResponse;

pub async fn delete(
    Endpoint { kind, req, state }: Endpoint,
    writer: Writer,
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
