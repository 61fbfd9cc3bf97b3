//! `GET /Users`, `GET /Groups` (RFC 7644 §3.4.2): filter, sort, page (by `startIndex`, or by
//! `cursor` as RFC 9865 defines) and project. A filter that
//! matches nothing is 200 with an empty ListResponse — Okta's "Test Connector" and Entra's
//! random-GUID probe rely on it.

use super::Endpoint;
use crate::caller::Reader;
use crate::error::ApiResult;
use crate::request::{base_url, query_params};
use crate::response::scim_json;
use crate::service::resources;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use scim::query::{ListQuery, page_response};
use scim::render::{Rendered, projected};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

pub async fn list(
    Endpoint { kind, req, state }: Endpoint,
    reader: Reader,
) -> ApiResult<HttpResponse> {
    let query = ListQuery::from_params(&query_params(&req))?;
    let page = resources::list(&state, &reader, kind, &query).await?;
    Ok(list_body(&state, &req, &query, page))
}

/// The ListResponse of a page, each resource projected.
pub fn list_body(
    state: &AppState,
    req: &HttpRequest,
    query: &ListQuery,
    page: resources::Listed,
) -> HttpResponse {
    let base = base_url(req, state);
    let items: Vec<Rendered<'_>> = page
        .items
        .iter()
        .map(|r| projected(state.registry, r, &base, &query.projection))
        .collect();
    let total = usize::try_from(page.total).unwrap_or(usize::MAX);
    // The envelope from the core, the resources written into it (see `scim::render::projected`).
    let envelope = page_response(query, total, Vec::new(), page.next_cursor);
    scim_json(
        StatusCode::OK,
        &ListBody {
            envelope,
            items: &items,
        },
    )
}

struct ListBody<'a> {
    envelope: Value,
    items: &'a [Rendered<'a>],
}

impl Serialize for ListBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Value::Object(envelope) = &self.envelope else {
            return self.envelope.serialize(serializer);
        };
        let mut map = serializer.serialize_map(Some(envelope.len()))?;
        for (key, value) in envelope {
            match key.as_str() {
                "Resources" => map.serialize_entry(key, self.items)?,
                "itemsPerPage" => map.serialize_entry(key, &self.items.len())?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}
