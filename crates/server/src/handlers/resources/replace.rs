//! `PUT /Users/{id}`, `PUT /Groups/{id}` (RFC 7644 §3.5.1): replaces the readWrite attributes
//! (Okta's AIW apps deactivate and push group members this way); never creates (404);
//! `If-Match` naming another version is 412.

use super::patch::respond_with_current;
use super::{Change, Endpoint};
use crate::caller::Writer;
use crate::error::ApiResult;
use crate::service::resources;
use actix_web::{HttpResponse, web};

pub async fn replace(
    Endpoint { kind, req, state }: Endpoint,
    payload: web::Payload,
    writer: Writer,
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
