//! `GET /Users/{id}`, `GET /Groups/{id}` (RFC 7644 §3.4.1). A deactivated User stays readable
//! (`active: false`) until it is DELETEd. `If-None-Match` naming the current version is 304
//! (RFC 7644 §3.14).

use super::Endpoint;
use crate::caller::Reader;
use crate::error::ApiResult;
use crate::request::{base_url, path_id, projection, query_params};
use crate::response::{if_none_match_hits, resource};
use crate::service::resources;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{ETAG, IF_NONE_MATCH};

pub async fn get(
    Endpoint { kind, req, state }: Endpoint,
    reader: Reader,
) -> ApiResult<HttpResponse> {
    let projection = projection(&query_params(&req))?;
    let found = resources::get(&state, &reader, kind, &path_id(&req), &projection).await?;
    let etag = found.etag();
    let unchanged = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|h| if_none_match_hits(h, &etag));
    if unchanged {
        return Ok(HttpResponse::NotModified()
            .insert_header((ETAG, etag))
            .finish());
    }
    let body =
        scim::render::projected(state.registry, &found, &base_url(&req, &state), &projection);
    Ok(resource(StatusCode::OK, &body, &etag, None))
}
