//! `PUT /Users/{id}`, `PUT /Groups/{id}` (RFC 7644 §3.5.1): replaces the readWrite attributes
//! (Okta's AIW apps deactivate and push group members this way); never creates (404);
//! `If-Match` naming another version is 412.

use super::Change;
use super::patch::respond_with_current;
use crate::caller::Writer;
use crate::error::ApiResult;
use crate::service::resources;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use scim::ResourceKind;

pub async fn replace(
    kind: ResourceKind,
    req: HttpRequest,
    payload: web::Payload,
    writer: Writer,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let change = Change::read("PUT", kind, &req, payload, &writer, &state).await?;
    let if_match = change.if_match.as_deref();
    let updated = resources::replace(
        &state,
        &change.write,
        kind,
        &change.id,
        if_match,
        change.body,
    )
    .await?;
    respond_with_current(&state, &writer, &req, &change.params, updated).await
}
