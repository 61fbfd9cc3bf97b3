//! `/Roles`: the Coder roles an IdP may grant (see `scim::roles`), read from the configuration,
//! never from the store.

use crate::caller::{Caller, MayRead};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use scim::query::{ListQuery, page_response};
use scim::roles::GrantableRole;
use serde_json::Value;

/// One page of the offered roles as a ListResponse (RFC 7644 §3.4.2).
pub fn list(
    state: &AppState,
    _reader: &Caller<impl MayRead>,
    query: &ListQuery,
    base_url: &str,
) -> Value {
    let (total, page) = state.config.roles.list(query);
    let items = page.iter().map(|r| r.to_scim(base_url)).collect();
    page_response(query, total, items)
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
