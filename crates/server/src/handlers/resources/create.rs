//! `POST /Users`, `POST /Groups` (RFC 7644 §3.3): 201 with `Location`, `ETag` and the resource,
//! after the write (resource, outbox row, audit record) has committed. A taken `userName` or
//! Group `displayName` (ignoring case) is 409 `uniqueness`.

use super::Endpoint;
use crate::body::read_request_json;
use crate::caller::Writer;
use crate::error::ApiResult;
use crate::request::{base_url, projection, query_params};
use crate::response::resource;
use crate::service::resources;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

pub async fn create(
    Endpoint { kind, req, state }: Endpoint,
    payload: web::Payload,
    writer: Writer,
) -> ApiResult<HttpResponse> {
    let projection = projection(&query_params(&req))?;
    let body = read_request_json(&req, payload, &state).await?;
    let created = resources::create(
        &state,
        &writer.write(format!("POST {}", kind.endpoint())),
        kind,
        body,
    )
    .await?;
    let base = base_url(&req, &state);
    let location = scim::render::location(&base, kind, &created.id);
    let body = scim::render::projected(state.registry, &created, &base, &projection);
    Ok(resource(
        StatusCode::CREATED,
        &body,
        &created.etag(),
        Some(&location),
    ))
}
