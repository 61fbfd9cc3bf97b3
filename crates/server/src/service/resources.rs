//! Users and Groups: the one function per action the handlers (and `/Bulk`) call. Input is
//! canonicalised by the protocol core; every write is one store transaction (resource, outbox
//! row, audit record) that has committed when the function returns.
//!
//! Reads take the caller that may read; writes take an [`AuthorizedWrite`], which only a caller
//! holding `scim:write` can make: no path into the store skips the check.

use crate::caller::{AuthorizedWrite, Caller, MayRead};
use crate::error::ApiResult;
use crate::state::AppState;
use scim::ResourceKind;
use scim::projection::Projection;
use scim::query::{ListQuery, MAX_RESULTS};
use scim::resource::{ResourceBody, normalize, replace as apply_put};
use serde_json::Value;
use store::{GetOptions, StoredResource};

/// POST (RFC 7644 §3.3).
pub async fn create(
    state: &AppState,
    write: &AuthorizedWrite,
    kind: ResourceKind,
    body: Value,
) -> ApiResult<StoredResource> {
    let body = normalize(kind, body, state.registry)?;
    state.patch_options.check_grants(kind, &body.attrs)?;
    Ok(state.resources.create(write.context(), kind, body).await?)
}

/// GET by id (RFC 7644 §3.4.1), loading members/groups only when the projection shows them.
pub async fn get(
    state: &AppState,
    _reader: &Caller<impl MayRead>,
    kind: ResourceKind,
    id: &str,
    projection: &Projection,
) -> ApiResult<StoredResource> {
    Ok(state
        .resources
        .get(kind, id, GetOptions::for_projection(kind, projection))
        .await?)
}

/// PUT (RFC 7644 §3.5.1): readWrite attributes replaced, readOnly kept, immutable checked, all
/// against the row as locked in the write transaction.
pub async fn replace(
    state: &AppState,
    write: &AuthorizedWrite,
    kind: ResourceKind,
    id: &str,
    if_match: Option<&str>,
    body: Value,
) -> ApiResult<StoredResource> {
    let body = normalize(kind, body, state.registry)?;
    let registry = state.registry;
    let grants = state.patch_options.clone();
    let next = move |current: &StoredResource| {
        let password = body.password.clone();
        let attrs = apply_put(kind, &current.attrs, body, registry)?;
        grants.check_grants(kind, &attrs)?;
        Ok(ResourceBody { attrs, password })
    };
    Ok(state
        .resources
        .replace_with(write.context(), kind, id, if_match, next)
        .await?)
}

/// PATCH (RFC 7644 §3.5.2), applied under the row lock so parallel PATCHes never lose an update.
pub async fn patch(
    state: &AppState,
    write: &AuthorizedWrite,
    kind: ResourceKind,
    id: &str,
    if_match: Option<&str>,
    body: &Value,
) -> ApiResult<StoredResource> {
    let request = scim::patch::parse_request(body)?;
    Ok(state
        .resources
        .patch(
            write.context(),
            kind,
            id,
            if_match,
            &request,
            &state.patch_options,
        )
        .await?)
}

/// DELETE (RFC 7644 §3.6).
pub async fn delete(
    state: &AppState,
    write: &AuthorizedWrite,
    kind: ResourceKind,
    id: &str,
    if_match: Option<&str>,
) -> ApiResult<()> {
    Ok(state
        .resources
        .delete(write.context(), kind, id, if_match)
        .await?)
}

/// One page of a listing.
pub struct Listed {
    /// `totalResults`.
    pub total: u64,
    pub items: Vec<StoredResource>,
    /// RFC 9865 `nextCursor`: cursor-paged, and not the last page.
    pub next_cursor: Option<String>,
}

/// One page of a listing (RFC 7644 §3.4.2), index- or cursor-paged (RFC 9865). By cursor
/// without `sortBy` the pages are keyset pages in listing order (`created`, then `id`): every
/// resource there at the first page and still there at the last is listed exactly once,
/// whatever is added or removed meanwhile. By cursor with `sortBy` (RFC 9865 §2.2: sorted
/// results stay sorted) the cursor holds the position in the sorted order, so, as with
/// `startIndex`, a change that moves a resource across it can repeat or skip one.
pub async fn list(
    state: &AppState,
    _reader: &Caller<impl MayRead>,
    kind: ResourceKind,
    query: &ListQuery,
) -> ApiResult<Listed> {
    if let Some(filter) = &query.filter {
        scim::filter::validate(filter, kind, state.registry)?;
    }
    let listing = kind.endpoint();
    let mut query = query.clone();
    let sorted = query.sort_by.is_some();
    if sorted {
        state.cursors.resume_at_offset(listing, &mut query).await?;
    } else {
        state.cursors.resume_after(listing, &mut query).await?;
    }
    let page = state
        .resources
        .list(
            kind,
            &query,
            GetOptions::for_projection(kind, &query.projection),
        )
        .await?;
    let next_cursor = if sorted {
        state
            .cursors
            .next_at_offset(listing, &query, page.items.len(), page.total)
            .await?
    } else {
        state
            .cursors
            .next_after(listing, &query, page.items.last(), page.more)
            .await?
    };
    Ok(Listed {
        total: page.total,
        items: page.items,
        next_cursor,
    })
}

/// A search at the root (RFC 7644 §3.4.3 `POST /.search`): every resource type in the order
/// `/ResourceTypes` lists them (Users, Groups, Agents, AgenticApplications), paged as one
/// sequence. `sortBy` orders within each resource type. A cursor holds the position in that
/// sequence.
pub async fn list_all(
    state: &AppState,
    reader: &Caller<impl MayRead>,
    query: &ListQuery,
) -> ApiResult<Listed> {
    const LISTING: &str = "/.search";
    let mut query = query.clone();
    state.cursors.resume_at_offset(LISTING, &mut query).await?;
    let mut skip = query.start_index.max(1) - 1;
    let mut wanted = query.count.unwrap_or(MAX_RESULTS).min(MAX_RESULTS);
    let mut total = 0;
    let mut items = Vec::new();
    for kind in ResourceKind::ALL {
        let part = ListQuery {
            start_index: skip + 1,
            count: Some(wanted),
            cursor: None,
            after: None,
            ..query.clone()
        };
        let page = list(state, reader, kind, &part).await?;
        total += page.total;
        skip = skip.saturating_sub(usize::try_from(page.total).unwrap_or(usize::MAX));
        wanted = wanted.saturating_sub(page.items.len());
        items.extend(page.items);
    }
    let next_cursor = state
        .cursors
        .next_at_offset(LISTING, &query, items.len(), total)
        .await?;
    Ok(Listed {
        total,
        items,
        next_cursor,
    })
}
