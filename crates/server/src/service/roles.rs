//! `/Roles`: the Coder roles an IdP may grant (see `scim::roles`), read from the configuration,
//! never from the store.

use crate::caller::{Caller, MayRead};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use scim::query::{ListQuery, page_response};
use scim::roles::GrantableRole;
use serde_json::Value;

/// One page of the offered roles as a ListResponse (RFC 7644 §3.4.2), index- or cursor-paged
/// (RFC 9865; the catalog is fixed while the process runs, so a cursor holds a position).
pub async fn list(
    state: &AppState,
    _reader: &Caller<impl MayRead>,
    query: &ListQuery,
    base_url: &str,
) -> ApiResult<Value> {
    const LISTING: &str = "/Roles";
    let mut query = query.clone();
    state.cursors.resume_at_offset(LISTING, &mut query).await?;
    let (total, page) = state.config.roles.list(&query);
    let next_cursor = state
        .cursors
        .next_at_offset(LISTING, &query, page.len(), total as u64)
        .await?;
    let items = page.iter().map(|r| r.to_scim(base_url)).collect();
    Ok(page_response(&query, total, items, next_cursor))
}

/// One offered role by id; 404 for any other.
pub fn get<'s>(
    state: &'s AppState,
    _reader: &Caller<impl MayRead>,
    id: &str,
) -> ApiResult<&'s GrantableRole> {
    state
        .config
        .roles
        .roles()
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no role \"{id}\" is offered")))
}
