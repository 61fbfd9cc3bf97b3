//! Listing resources: the filter's indexed part in SQL, the rest evaluated in memory over
//! pages of candidates, and `userName eq` lookups batched with the others in flight.

use super::members::load_members;
use super::{Backend, CHUNK, Conn, Db, as_i64, kind_literal};
use crate::coalesce;
use crate::error::{StoreError, StoreResult};
use crate::resource::{
    GetOptions, GroupRef, ListPage, RESOURCE_COLUMNS, ResourceRow, StoredResource, fold_case,
};
use chrono::DateTime;
use scim::filter::{AttrPath, Filter, IndexedColumn, IndexedPredicate, indexed, matches};
use scim::query::{Keyset, ListQuery, MAX_RESULTS, SortKey, TopK};
use scim::{Registry, ResourceKind, ScimType};
use serde_json::{Map, Value};
use sqlx::QueryBuilder;
use std::collections::HashMap;

/// Candidate rows read per query when a filter is evaluated in memory.
const SCAN_PAGE: usize = 1000;

/// Whether `predicate` is an equality on a column unique per resource type.
fn is_unique_key(kind: ResourceKind, predicate: &IndexedPredicate) -> bool {
    matches!(
        (kind, predicate),
        (_, IndexedPredicate::Eq(IndexedColumn::Id, _))
            | (
                ResourceKind::User,
                IndexedPredicate::Eq(IndexedColumn::UserName, _)
            )
            | (
                ResourceKind::Group,
                IndexedPredicate::Eq(IndexedColumn::DisplayName, _)
            )
    )
}

/// Load members (Groups) or groups (Users) for `resources`, all of kind `kind`, as `options`
/// asks; one query per chunk of resources, never one per resource.
pub(super) async fn attach_relations(
    conn: &mut Conn,
    kind: ResourceKind,
    resources: &mut [StoredResource],
    options: GetOptions,
) -> StoreResult<()> {
    let wanted = match kind {
        ResourceKind::Group => options.members,
        ResourceKind::User | ResourceKind::Agent => options.groups,
        ResourceKind::AgenticApplication => false,
    };
    if !wanted || resources.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = resources.iter().map(|r| r.id.clone()).collect();
    match kind {
        ResourceKind::Group => {
            let mut by_group = load_members(conn, &ids).await?;
            for resource in resources {
                resource.members = Some(by_group.remove(&resource.id).unwrap_or_default());
            }
        }
        ResourceKind::User | ResourceKind::Agent | ResourceKind::AgenticApplication => {
            let mut by_user = load_groups(conn, &ids).await?;
            for resource in resources {
                resource.groups = Some(by_user.remove(&resource.id).unwrap_or_default());
            }
        }
    }
    Ok(())
}

/// A user's row joined with one of its groups (none: `NULL`s).
#[derive(sqlx::FromRow)]
struct UserGroupRow {
    #[sqlx(flatten)]
    user: ResourceRow,
    group_id: Option<String>,
    display_name: Option<String>,
}

/// `SELECT` the columns of a [`UserGroupRow`] for the users `u` and groups `g`.
fn select_user_groups(first: &str) -> QueryBuilder<'static, Db> {
    let mut query = QueryBuilder::<Db>::new(format!("SELECT {first}"));
    for column in RESOURCE_COLUMNS.split(", ") {
        query.push(format_args!("u.{column}, "));
    }
    query.push("m.group_id, g.display_name FROM ");
    query
}

/// The join from the users `u` to their groups.
const JOIN_GROUPS: &str =
    " LEFT JOIN group_members m ON m.member_id = u.id LEFT JOIN resources g ON g.id = m.group_id";

/// Fold one row into `users`: a new user, or another group of one already there (looked up by
/// id, since a hash join, on PostgreSQL, need not keep a user's rows together).
fn gather_user_row(users: &mut Vec<StoredResource>, row: UserGroupRow) -> StoreResult<()> {
    let at = match users.iter().position(|u| u.id == row.user.id) {
        Some(at) => at,
        None => {
            let mut user = row.user.into_resource()?;
            user.groups = Some(Vec::new());
            users.push(user);
            users.len() - 1
        }
    };
    if let Some(value) = row.group_id {
        users[at]
            .groups
            .get_or_insert_with(Vec::new)
            .push(GroupRef {
                value,
                display: row.display_name,
            });
    }
    Ok(())
}

/// The (at most two) users a unique-key predicate selects, with their groups, in one statement.
async fn user_with_groups(
    conn: &mut Conn,
    predicate: &IndexedPredicate,
) -> StoreResult<Vec<StoredResource>> {
    let mut query = select_user_groups("");
    query.push(format_args!(
        "(SELECT {RESOURCE_COLUMNS} FROM resources WHERE kind = {} AND ",
        kind_literal(ResourceKind::User)
    ));
    push_predicate(&mut query, predicate);
    query.push(" LIMIT 2) u").push(JOIN_GROUPS);
    let rows: Vec<UserGroupRow> = query.build_query_as().fetch_all(&mut *conn).await?;
    let mut users: Vec<StoredResource> = Vec::new();
    for row in rows {
        gather_user_row(&mut users, row)?;
    }
    for user in &mut users {
        sort_groups(user);
    }
    Ok(users)
}

/// Sorted here rather than by the statement, which would build a temporary b-tree for a
/// handful of rows: the order `load_groups` gives (name ignoring case, then id).
fn sort_groups(user: &mut StoredResource) {
    if let Some(groups) = user.groups.as_mut() {
        groups.sort_by_cached_key(|g| (g.display.as_deref().map(fold_case), g.value.clone()));
    }
}

/// The users with these folded userNames, with their groups, in one statement: by key.
async fn users_with_groups_by_name(
    conn: &mut Conn,
    keys: &[&str],
) -> StoreResult<HashMap<String, Vec<StoredResource>>> {
    #[derive(sqlx::FromRow)]
    struct Keyed {
        user_name_key: String,
        #[sqlx(flatten)]
        row: UserGroupRow,
    }
    // A join from the keys, not `user_name_key IN (…)`: without statistics SQLite plans an
    // IN of four or more keys as a scan of every user.
    let mut query = select_user_groups("u.user_name_key, ");
    query.push("(VALUES ");
    let mut distinct: Vec<&str> = keys.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let mut bound = query.separated(", ");
    for i in 0..coalesce::padded_len(distinct.len()) {
        // Padding binds NULL, which matches no user.
        bound.push("(");
        bound.push_bind_unseparated(distinct.get(i).map(|key| key.to_string()));
        bound.push_unseparated(")");
    }
    query
        .push(format_args!(
            ") k JOIN resources u ON u.kind = {} AND u.user_name_key = k.column1",
            kind_literal(ResourceKind::User)
        ))
        .push(JOIN_GROUPS);
    let rows: Vec<Keyed> = query.build_query_as().fetch_all(&mut *conn).await?;
    let mut by_key: HashMap<String, Vec<StoredResource>> = HashMap::new();
    for Keyed { user_name_key, row } in rows {
        gather_user_row(by_key.entry(user_name_key).or_default(), row)?;
    }
    for user in by_key.values_mut().flatten() {
        sort_groups(user);
    }
    Ok(by_key)
}

async fn load_groups(
    conn: &mut Conn,
    user_ids: &[String],
) -> StoreResult<HashMap<String, Vec<GroupRef>>> {
    let mut out: HashMap<String, Vec<GroupRef>> = HashMap::new();
    for chunk in user_ids.chunks(CHUNK) {
        let mut query = QueryBuilder::<Db>::new(
            "SELECT m.member_id, m.group_id, r.display_name \
             FROM group_members m JOIN resources r ON r.id = m.group_id WHERE m.member_id IN (",
        );
        let mut ids = query.separated(", ");
        for id in chunk {
            ids.push_bind(id.clone());
        }
        query.push(") ORDER BY m.member_id, r.display_name_key, m.group_id");
        let rows: Vec<(String, String, Option<String>)> =
            query.build_query_as().fetch_all(&mut *conn).await?;
        for (user_id, value, display) in rows {
            out.entry(user_id)
                .or_default()
                .push(GroupRef { value, display });
        }
    }
    Ok(out)
}

/// Whether `filter` reads the attribute `name` (e.g. `members[value eq "…"]`).
fn mentions(filter: &Filter, name: &str) -> bool {
    let is = |path: &AttrPath| path.attr.eq_ignore_ascii_case(name);
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) => is(path),
        Filter::ValuePath { attr, .. } => is(attr),
        Filter::And(a, b) | Filter::Or(a, b) => mentions(a, name) || mentions(b, name),
        Filter::Not(inner) => mentions(inner, name),
    }
}

/// `SELECT {columns} FROM resources WHERE kind = … [AND predicate]`.
fn resource_query<'a>(
    columns: &str,
    kind: ResourceKind,
    predicate: Option<&IndexedPredicate>,
) -> QueryBuilder<'a, Db> {
    let mut query = QueryBuilder::new(format!(
        "SELECT {columns} FROM resources WHERE kind = {}",
        kind_literal(kind)
    ));
    if let Some(predicate) = predicate {
        query.push(" AND ");
        push_predicate(&mut query, predicate);
    }
    query
}

/// Append ` AND (created, id) > after`: a row-value comparison both databases run as a range
/// of the listing index (kind, created, id), with `created >=` for a planner that would not.
fn push_after(query: &mut QueryBuilder<'_, Db>, after: &Keyset) {
    query
        .push(" AND created >= ")
        .push_bind(after.created)
        .push(" AND (created, id) > (")
        .push_bind(after.created)
        .push(", ")
        .push_bind(after.id.clone())
        .push(")");
}

/// Whether `resource` comes after `after` in listing order.
fn is_after(resource: &StoredResource, after: Option<&Keyset>) -> bool {
    after.is_none_or(|a| (resource.created, resource.id.as_str()) > (a.created, a.id.as_str()))
}

async fn count_resources(
    conn: &mut Conn,
    kind: ResourceKind,
    predicate: Option<&IndexedPredicate>,
) -> StoreResult<u64> {
    let count: i64 = resource_query("COUNT(*)", kind, predicate)
        .build_query_scalar()
        .fetch_one(&mut *conn)
        .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Append `predicate` as SQL over the indexed columns.
fn push_predicate(query: &mut QueryBuilder<'_, Db>, predicate: &IndexedPredicate) {
    match predicate {
        IndexedPredicate::Eq(column, value) => {
            match column {
                IndexedColumn::Id => query.push("id = ").push_bind(value.clone()),
                IndexedColumn::ExternalId => query.push("external_id = ").push_bind(value.clone()),
                IndexedColumn::UserName => {
                    query.push("user_name_key = ").push_bind(fold_case(value))
                }
                IndexedColumn::DisplayName => query
                    .push("display_name_key = ")
                    .push_bind(fold_case(value)),
                IndexedColumn::LastModified => match DateTime::parse_from_rfc3339(value) {
                    Ok(at) => query.push("last_modified = ").push_bind(at.to_utc()),
                    // No resource has an unparsable lastModified.
                    Err(_) => query.push("1 = 0"),
                },
            };
        }
        IndexedPredicate::LastModifiedGt(at) => {
            query.push("last_modified > ").push_bind(*at);
        }
        IndexedPredicate::LastModifiedGe(at) => {
            query.push("last_modified >= ").push_bind(*at);
        }
        IndexedPredicate::LastModifiedLt(at) => {
            query.push("last_modified < ").push_bind(*at);
        }
        IndexedPredicate::LastModifiedLe(at) => {
            query.push("last_modified <= ").push_bind(*at);
        }
        IndexedPredicate::And(items) | IndexedPredicate::Or(items) => {
            let (joiner, empty) = if matches!(predicate, IndexedPredicate::And(_)) {
                (" AND ", "1 = 1")
            } else {
                (" OR ", "1 = 0")
            };
            if items.is_empty() {
                query.push(empty);
                return;
            }
            query.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    query.push(joiner);
                }
                push_predicate(query, item);
            }
            query.push(")");
        }
    }
}

impl Backend {
    /// The user with this folded userName, with its groups, read in a batch with the other
    /// lookups in flight (see coalesce.rs).
    async fn user_by_name(
        &self,
        predicate: &IndexedPredicate,
        key: String,
    ) -> StoreResult<Vec<StoredResource>> {
        let (reply, start) = self.shared.user_lookups.enqueue(key);
        if let Some(batch) = start {
            let store = self.clone();
            tokio::spawn(async move { store.run_user_lookups(batch).await });
        }
        match reply.await {
            Ok(Some(found)) => Ok(found),
            // The batch failed (or its runner was stopped): read alone, for this caller's own
            // answer or error.
            _ => {
                let mut conn = self.read.acquire().await?;
                user_with_groups(&mut conn, predicate).await
            }
        }
    }

    /// Answer batches of `userName eq` lookups until none is queued, on a kept connection.
    async fn run_user_lookups(
        &self,
        mut batch: Vec<coalesce::Waiter<String, Vec<StoredResource>>>,
    ) {
        let mut conn = self.lookup_conns.lock().ok().and_then(|mut c| c.pop());
        loop {
            let keys: Vec<&str> = batch.iter().map(|w| w.key.as_str()).collect();
            if conn.is_none() {
                // Detached: the pool may open another in its place, and never pings this one.
                conn = self.read.acquire().await.ok().map(|c| c.detach());
            }
            let found = match conn.as_mut() {
                Some(c) => match users_with_groups_by_name(c, &keys).await {
                    Ok(found) => Some(found),
                    Err(e) => {
                        tracing::warn!(error = %e, keys = keys.len(), "a batch of userName lookups failed; each reads alone");
                        // It may be broken: closed, not kept.
                        conn = None;
                        None
                    }
                },
                None => None,
            };
            for waiter in batch {
                let answer = found
                    .as_ref()
                    .map(|users| users.get(&waiter.key).cloned().unwrap_or_default());
                // The caller may have gone away; the others still get theirs.
                let _ = waiter.reply.send(answer);
            }
            match self.shared.user_lookups.next_batch() {
                Some(next) => batch = next,
                None => break,
            }
        }
        if let (Some(conn), Ok(mut stash)) = (conn, self.lookup_conns.lock()) {
            stash.push(conn);
        }
    }

    pub(crate) async fn list(
        &self,
        kind: ResourceKind,
        query: &ListQuery,
        options: GetOptions,
    ) -> StoreResult<ListPage> {
        let (predicate, exact) = match &query.filter {
            None => (None, true),
            Some(filter) => match indexed(filter, kind) {
                Some((predicate, exact)) => (Some(predicate), exact),
                None => (None, false),
            },
        };
        // RFC 9865 cursor paging without sortBy: keyset pages on (created, id) after the
        // cursor's resource, one row more than the page read to learn whether another follows.
        // (A sorted listing by cursor is index-paged by the service.)
        let keyset = query.cursor.is_some() && query.sort_by.is_none();
        let after = query.after.as_ref().filter(|_| keyset);
        let offset = if keyset {
            0
        } else {
            query.start_index.max(1) - 1
        };
        let count = query.count.unwrap_or(MAX_RESULTS).min(MAX_RESULTS);
        let index_more = |len: usize, total: u64| (offset.saturating_add(len) as u64) < total;
        if let Some(predicate) = predicate.as_ref().filter(|p| {
            exact && query.sort_by.is_none() && after.is_none() && is_unique_key(kind, p)
        }) {
            // The IdPs' hot path (`userName eq`, `displayName eq`, `id eq`): at most one row, so
            // no count query and no transaction, just the row and its relations.
            if kind.has_groups() && options.groups {
                // One statement for the user and its groups: each statement is a round trip
                // to the connection's thread, the larger part of a lookup's cost. `userName eq`
                // lookups in flight together share one (coalesce.rs).
                let found = match predicate {
                    IndexedPredicate::Eq(IndexedColumn::UserName, name) => {
                        self.user_by_name(predicate, fold_case(name)).await?
                    }
                    _ => user_with_groups(&mut *self.read.acquire().await?, predicate).await?,
                };
                let total = found.len() as u64;
                let items = if offset == 0 && count > 0 {
                    found
                } else {
                    Vec::new()
                };
                let more = !keyset && index_more(items.len(), total);
                return Ok(ListPage { total, items, more });
            }
            let mut conn = self.read.acquire().await?;
            let mut select = resource_query(RESOURCE_COLUMNS, kind, Some(predicate));
            select.push(" LIMIT 2");
            let rows: Vec<ResourceRow> = select.build_query_as().fetch_all(&mut *conn).await?;
            let total = rows.len() as u64;
            let mut items = if offset == 0 && count > 0 {
                rows.into_iter()
                    .map(ResourceRow::into_resource)
                    .collect::<StoreResult<Vec<_>>>()?
            } else {
                Vec::new()
            };
            attach_relations(&mut conn, kind, &mut items, options).await?;
            let more = !keyset && index_more(items.len(), total);
            return Ok(ListPage { total, items, more });
        }
        let mut tx = self.begin_read().await?;
        let candidates = count_resources(&mut tx, kind, predicate.as_ref()).await?;

        if exact && query.sort_by.is_none() {
            // SQL answers the whole query: count and page there.
            let mut select = resource_query(RESOURCE_COLUMNS, kind, predicate.as_ref());
            if let Some(after) = after {
                push_after(&mut select, after);
            }
            let limit = if keyset && count > 0 {
                count + 1
            } else {
                count
            };
            select
                .push(" ORDER BY created, id LIMIT ")
                .push_bind(as_i64(limit))
                .push(" OFFSET ")
                .push_bind(as_i64(offset));
            let mut rows: Vec<ResourceRow> = select.build_query_as().fetch_all(&mut *tx).await?;
            let more = if keyset {
                rows.len() > count
            } else {
                index_more(rows.len(), candidates)
            };
            rows.truncate(count);
            let mut items = rows
                .into_iter()
                .map(ResourceRow::into_resource)
                .collect::<StoreResult<Vec<_>>>()?;
            attach_relations(&mut tx, kind, &mut items, options).await?;
            tx.commit().await?;
            return Ok(ListPage {
                total: candidates,
                items,
                more,
            });
        }

        if candidates > self.shared.max_filter_candidates {
            return Err(StoreError::Invalid {
                scim_type: ScimType::TooMany,
                detail: format!(
                    "this filter or sortBy needs {candidates} resources examined (the limit is {}); narrow it with \
                     an eq filter on userName, displayName, externalId or id, or meta.lastModified gt",
                    self.shared.max_filter_candidates
                ),
            });
        }
        // Filters on members/groups need them loaded to be evaluated.
        let relations_needed = query
            .filter
            .as_ref()
            .is_some_and(|f| mentions(f, "members") || mentions(f, "groups"));
        let registry = Registry::standard();
        // Only the page is kept: matches before it are counted, a sorted listing keeps its
        // first `startIndex + count` in a bounded heap (whatever the number of matches).
        let keep = offset.saturating_add(count);
        let mut sorted = query
            .sort_by
            .as_ref()
            .map(|sort_by| (sort_by, TopK::new(keep, query.sort_order)));
        let mut in_order: Vec<StoredResource> = Vec::new();
        let mut total: u64 = 0;
        let mut scanned: Option<Keyset> = None;
        loop {
            // Keyset pages: memory is bounded by a page of candidates and the kept matches.
            let mut select = resource_query(RESOURCE_COLUMNS, kind, predicate.as_ref());
            if let Some(scanned) = &scanned {
                push_after(&mut select, scanned);
            }
            select
                .push(" ORDER BY created, id LIMIT ")
                .push_bind(as_i64(SCAN_PAGE));
            let rows: Vec<ResourceRow> = select.build_query_as().fetch_all(&mut *tx).await?;
            let Some(last) = rows.last() else { break };
            scanned = Some(Keyset {
                created: last.created,
                id: last.id.clone(),
            });
            let full_page = rows.len() == SCAN_PAGE;
            let mut page = rows
                .into_iter()
                .map(ResourceRow::into_resource)
                .collect::<StoreResult<Vec<_>>>()?;
            if relations_needed {
                attach_relations(&mut tx, kind, &mut page, GetOptions::default()).await?;
            }
            for mut resource in page {
                let json = match resource.to_scim("") {
                    Value::Object(json) => json,
                    _ => Map::new(),
                };
                if !query
                    .filter
                    .as_ref()
                    .is_none_or(|f| matches(f, &json, kind, registry))
                {
                    continue;
                }
                let position = usize::try_from(total).unwrap_or(usize::MAX);
                total += 1;
                let on_page = if keyset {
                    // The matches before the cursor still count towards totalResults.
                    is_after(&resource, after) && in_order.len() <= count && count > 0
                } else {
                    (offset..keep).contains(&position)
                };
                if sorted.is_none() && !on_page {
                    continue;
                }
                // Drop what was loaded only for the filter, so the page has what `options` asked.
                if !options.members {
                    resource.members = None;
                }
                if !options.groups {
                    resource.groups = None;
                }
                match &mut sorted {
                    Some((sort_by, top)) => {
                        top.offer(SortKey::of(kind, &json, sort_by, registry), resource);
                    }
                    None => in_order.push(resource),
                }
            }
            if !full_page {
                break;
            }
        }
        let (mut items, more) = match sorted {
            Some((_, top)) => {
                let items: Vec<_> = top.into_sorted().into_iter().skip(offset).collect();
                let more = index_more(items.len(), total);
                (items, more)
            }
            None if keyset => {
                let more = in_order.len() > count;
                in_order.truncate(count);
                (in_order, more)
            }
            None => {
                let more = index_more(in_order.len(), total);
                (in_order, more)
            }
        };
        if !relations_needed {
            attach_relations(&mut tx, kind, &mut items, options).await?;
        }
        tx.commit().await?;
        Ok(ListPage { total, items, more })
    }
}
