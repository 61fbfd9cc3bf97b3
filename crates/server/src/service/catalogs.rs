//! `/Roles` and `/Entitlements`: what an IdP may grant on a User (see `scim::catalog`), read
//! from the configuration, never from the store.

use crate::caller::{Caller, MayRead};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use scim::catalog::{Catalog, Offer};
use scim::query::{ListQuery, page_response};
use serde_json::Value;

/// One page of the offers as a ListResponse (RFC 7644 §3.4.2), index- or cursor-paged (RFC
/// 9865; a catalog is fixed while the process runs, so a cursor holds a position).
pub async fn list<T: Offer>(
    state: &AppState,
    _reader: &Caller<impl MayRead>,
    catalog: &Catalog<T>,
    query: &ListQuery,
    base_url: &str,
) -> ApiResult<Value> {
    let listing = T::TYPE.endpoint;
    let mut query = query.clone();
    state.cursors.resume_at_offset(listing, &mut query).await?;
    let (total, page) = catalog.list(&query, base_url, state.registry);
    let next_cursor = state
        .cursors
        .next_at_offset(listing, &query, page.len(), total as u64)
        .await?;
    Ok(page_response(&query, total, page, next_cursor))
}

/// One offer by id; 404 for any other.
pub fn get<T: Offer>(
    state: &AppState,
    _reader: &Caller<impl MayRead>,
    catalog: &Catalog<T>,
    id: &str,
    query: &ListQuery,
    base_url: &str,
) -> ApiResult<Value> {
    catalog
        .get(id, query, base_url, state.registry)
        .ok_or_else(|| ApiError::not_found(format!("no {} \"{id}\" is offered", T::TYPE.noun)))
}
