//! `POST /Bulk` (RFC 7644 §3.7): the body is limited to `maxPayloadSize` and the operation
//! count to `maxOperations` (413 beyond either); each operation runs as its own write and the
//! answer is a BulkResponse with a status per operation.

use crate::body::read_json;
use crate::caller::{Authenticated, Caller};
use crate::error::ApiResult;
use crate::request::base_url;
use crate::response::scim_json;
use crate::service::bulk;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

pub async fn bulk(
    req: HttpRequest,
    payload: web::Payload,
    caller: Caller<Authenticated>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let body = read_json(
        &req,
        payload,
        state.config.bulk_max_payload_bytes,
        "maxPayloadSize",
    )
    .await?;
    let request = bulk::parse(&body, state.config.bulk_max_operations)?;
    let response = bulk::execute(&state, &caller, &base_url(&req, &state), request).await;
    Ok(scim_json(StatusCode::OK, &response))
}
