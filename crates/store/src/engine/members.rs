//! Group membership rows: resolving, adding, removing and replacing members, and the
//! membership delta a PATCH records.

use super::write_tx::Stmt;
use super::{CHUNK, Conn, Db};
use crate::error::{StoreError, StoreResult};
use crate::resource::{Member, kind_from_str};
use chrono::{DateTime, Utc};
use scim::ResourceKind;
use scim::patch::{MemberChange, MemberRef};
use sqlx::QueryBuilder;
use std::collections::{HashMap, HashSet};

pub(super) fn member_values(members: &[Member]) -> Vec<&str> {
    members.iter().map(|m| m.value.as_str()).collect()
}

/// Check that every member names an existing User or Group, and learn its kind. Duplicates are
/// folded (the first `display` wins). An unknown id is a 400 `invalidValue`: a membership row
/// needs its member, and the IdPs only add members they have provisioned (Entra adds nested
/// groups by their SCIM id, which exist here).
pub(super) async fn resolve_members(
    conn: &mut Conn,
    group_id: &str,
    inputs: Vec<MemberRef>,
) -> StoreResult<Vec<Member>> {
    let mut seen = HashSet::new();
    let inputs: Vec<MemberRef> = inputs
        .into_iter()
        .filter(|m| seen.insert(m.value.clone()))
        .collect();
    if inputs.iter().any(|m| m.value == group_id) {
        return Err(StoreError::invalid_value(
            "a group cannot be a member of itself",
        ));
    }
    let mut kinds: HashMap<String, ResourceKind> = HashMap::with_capacity(inputs.len());
    for chunk in inputs.chunks(CHUNK) {
        let mut query = QueryBuilder::<Db>::new("SELECT id, kind FROM resources WHERE id IN (");
        let mut ids = query.separated(", ");
        for member in chunk {
            ids.push_bind(member.value.clone());
        }
        query.push(")");
        let rows: Vec<(String, String)> = query.build_query_as().fetch_all(&mut *conn).await?;
        // An application is no member: Groups hold Users, Groups and Agents.
        kinds.extend(rows.into_iter().filter_map(|(id, kind)| {
            Some((id, kind_from_str(&kind)?))
                .filter(|(_, k)| *k != ResourceKind::AgenticApplication)
        }));
    }
    let missing: Vec<&str> = inputs
        .iter()
        .filter(|m| !kinds.contains_key(&m.value))
        .map(|m| m.value.as_str())
        .collect();
    if !missing.is_empty() {
        let shown = missing
            .iter()
            .take(5)
            .map(|id| format!("\"{id}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let more = if missing.len() > 5 {
            format!(" and {} more", missing.len() - 5)
        } else {
            String::new()
        };
        return Err(StoreError::invalid_value(format!(
            "members {shown}{more} are not existing Users, Groups or Agents"
        )));
    }
    Ok(inputs
        .into_iter()
        .filter_map(|m| {
            Some(Member {
                kind: *kinds.get(&m.value)?,
                value: m.value,
                display: m.display,
            })
        })
        .collect())
}

/// Insert membership rows; an existing member is left as it is (adding it again is a no-op,
/// not a 409). Returns the ids actually added.
pub(super) async fn insert_members(
    conn: &mut Conn,
    group_id: &str,
    members: &[Member],
    now: DateTime<Utc>,
) -> StoreResult<Vec<String>> {
    let mut added = Vec::new();
    for chunk in members.chunks(CHUNK) {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO group_members (group_id, member_id, member_type, display, added_at) ",
        );
        query.push_values(chunk, |mut row, member| {
            row.push_bind(group_id.to_string())
                .push_bind(member.value.clone())
                .push_bind(member.kind.name())
                .push_bind(member.display.clone())
                .push_bind(now);
        });
        query.push(" ON CONFLICT (group_id, member_id) DO NOTHING RETURNING member_id");
        let ids: Vec<String> = query.build_query_scalar().fetch_all(&mut *conn).await?;
        added.extend(ids);
    }
    Ok(added)
}

/// Add members with one statement per chunk, each member's kind found by a join: an existing
/// resource is inserted unless it is a member already, an unknown id is left out. Returns the
/// ids added and how many distinct ids were asked for.
async fn add_members(
    conn: &mut Conn,
    group_id: &str,
    inputs: &[MemberRef],
    now: DateTime<Utc>,
) -> StoreResult<(Vec<String>, usize)> {
    let inputs = distinct_members(group_id, inputs)?;
    let mut added = Vec::new();
    for chunk in inputs.chunks(CHUNK) {
        let ids: Vec<(String,)> = add_members_stmt(group_id, chunk, now)
            .fetch_all(&mut *conn)
            .await?;
        added.extend(ids.into_iter().map(|(id,)| id));
    }
    Ok((added, inputs.len()))
}

/// Distinct member inputs, or an error if the group is among them.
pub(crate) fn distinct_members<'a>(
    group_id: &str,
    inputs: &'a [MemberRef],
) -> StoreResult<Vec<&'a MemberRef>> {
    let mut seen = HashSet::new();
    let inputs: Vec<&MemberRef> = inputs.iter().filter(|m| seen.insert(&m.value)).collect();
    if inputs.iter().any(|m| m.value == group_id) {
        return Err(StoreError::invalid_value(
            "a group cannot be a member of itself",
        ));
    }
    Ok(inputs)
}

/// Insert the members that exist as resources and are not members yet, each with its kind
/// found by a join, if the group exists; returns the ids inserted.
pub(crate) fn add_members_stmt(group_id: &str, members: &[&MemberRef], now: DateTime<Utc>) -> Stmt {
    let mut sql = String::from(
        "INSERT INTO group_members (group_id, member_id, member_type, display, added_at) \
         SELECT $1, r.id, r.kind, v.column2, $2 FROM (VALUES ",
    );
    let mut stmt = Vec::with_capacity(members.len());
    for (i, member) in members.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${})", 3 + 2 * i, 4 + 2 * i));
        stmt.push(*member);
    }
    // `WHERE …` also keeps SQLite from reading the upsert's ON as the join's.
    sql.push_str(
        ") AS v JOIN resources r ON r.id = v.column1 \
         WHERE EXISTS (SELECT 1 FROM resources g WHERE g.id = $1 AND g.kind = 'Group') \
         AND r.kind <> 'AgenticApplication' \
         ON CONFLICT (group_id, member_id) DO NOTHING RETURNING member_id",
    );
    let mut out = Stmt::new(sql).text(group_id).time(now);
    for member in stmt {
        out = out
            .text(member.value.clone())
            .opt_text(member.display.clone());
    }
    out
}

/// Delete the named membership rows; absent ones are ignored (RFC 7644 §3.5.2.2 remove is
/// idempotent for the IdPs). Returns the ids actually removed.
async fn delete_members(
    conn: &mut Conn,
    group_id: &str,
    member_ids: &[String],
) -> StoreResult<Vec<String>> {
    let mut removed = Vec::new();
    for chunk in member_ids.chunks(CHUNK) {
        let mut query = QueryBuilder::<Db>::new("DELETE FROM group_members WHERE group_id = ");
        query
            .push_bind(group_id.to_string())
            .push(" AND member_id IN (");
        let mut ids = query.separated(", ");
        for id in chunk {
            ids.push_bind(id.clone());
        }
        query.push(") RETURNING member_id");
        let ids: Vec<String> = query.build_query_scalar().fetch_all(&mut *conn).await?;
        removed.extend(ids);
    }
    Ok(removed)
}

async fn member_ids(conn: &mut Conn, group_id: &str) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT member_id FROM group_members WHERE group_id = $1")
            .bind(group_id)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// Make the group's members exactly `wanted`, touching only the rows that differ.
pub(super) async fn replace_members(
    conn: &mut Conn,
    group_id: &str,
    wanted: &[Member],
    now: DateTime<Utc>,
) -> StoreResult<(Vec<String>, Vec<String>)> {
    let current: HashSet<String> = member_ids(conn, group_id).await?.into_iter().collect();
    let wanted_ids: HashSet<&str> = wanted.iter().map(|m| m.value.as_str()).collect();
    let stale: Vec<String> = current
        .iter()
        .filter(|id| !wanted_ids.contains(id.as_str()))
        .cloned()
        .collect();
    let removed = delete_members(conn, group_id, &stale).await?;
    let fresh: Vec<Member> = wanted
        .iter()
        .filter(|m| !current.contains(&m.value))
        .cloned()
        .collect();
    let added = insert_members(conn, group_id, &fresh, now).await?;
    Ok((added, removed))
}

pub(super) async fn load_members(
    conn: &mut Conn,
    group_ids: &[String],
) -> StoreResult<HashMap<String, Vec<Member>>> {
    let mut out: HashMap<String, Vec<Member>> = HashMap::new();
    for chunk in group_ids.chunks(CHUNK) {
        // The IdP's `display` if it sent one, else the member's current name.
        let mut query = QueryBuilder::<Db>::new(
            "SELECT m.group_id, m.member_id, m.member_type, COALESCE(m.display, r.display_name, r.user_name) \
             FROM group_members m JOIN resources r ON r.id = m.member_id WHERE m.group_id IN (",
        );
        let mut ids = query.separated(", ");
        for id in chunk {
            ids.push_bind(id.clone());
        }
        query.push(") ORDER BY m.group_id, m.added_at, m.member_id");
        let rows: Vec<(String, String, String, Option<String>)> =
            query.build_query_as().fetch_all(&mut *conn).await?;
        for (group_id, value, member_type, display) in rows {
            let Some(kind) = kind_from_str(&member_type) else {
                continue;
            };
            out.entry(group_id).or_default().push(Member {
                value,
                kind,
                display,
            });
        }
    }
    Ok(out)
}

/// The member ids a PATCH added and removed, in order.
#[derive(Debug, Default)]
pub(super) struct MembershipDelta {
    pub(super) added: Vec<String>,
    pub(super) removed: Vec<String>,
}

impl MembershipDelta {
    pub(super) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Apply one member change as row inserts and deletes. A member removed and re-added in
    /// the same request (the validator does this) nets out.
    pub(super) async fn apply(
        &mut self,
        conn: &mut Conn,
        group_id: &str,
        change: MemberChange,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (added, removed) = match change {
            MemberChange::Add(refs) => {
                let (added, asked) = add_members(conn, group_id, &refs, now).await?;
                check_added(conn, group_id, refs, added.len(), asked).await?;
                (added, Vec::new())
            }
            MemberChange::Remove(ids) => (Vec::new(), delete_members(conn, group_id, &ids).await?),
            MemberChange::Clear => (Vec::new(), clear_members(conn, group_id).await?),
            MemberChange::Replace(refs) => {
                let members = resolve_members(conn, group_id, refs).await?;
                replace_members(conn, group_id, &members, now).await?
            }
        };
        self.merge(added, removed);
        Ok(())
    }

    /// Record rows added and removed by one change: a removal cancels an earlier add of the
    /// same id and an add an earlier removal. Set lookups, so a PATCH that adds and removes
    /// thousands of members stays linear.
    pub(super) fn merge(&mut self, added: Vec<String>, removed: Vec<String>) {
        // Each change touches an id at most once (membership rows are unique).
        Self::cancel(&mut self.added, &mut self.removed, removed);
        Self::cancel(&mut self.removed, &mut self.added, added);
    }

    /// Drop from `undone` the ids in `ids` and append the rest to `done`.
    fn cancel(undone: &mut Vec<String>, done: &mut Vec<String>, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        let earlier: HashSet<&str> = undone.iter().map(String::as_str).collect();
        let (cancelled, fresh): (Vec<String>, Vec<String>) = ids
            .into_iter()
            .partition(|id| earlier.contains(id.as_str()));
        if !cancelled.is_empty() {
            let cancelled: HashSet<String> = cancelled.into_iter().collect();
            undone.retain(|id| !cancelled.contains(id));
        }
        done.extend(fresh);
    }
}

/// After an add of `asked` distinct members inserted `added`: the others must be members
/// already, not unknown ids (only the latter is an error).
pub(super) async fn check_added(
    conn: &mut Conn,
    group_id: &str,
    inputs: Vec<MemberRef>,
    added: usize,
    asked: usize,
) -> StoreResult<()> {
    if added < asked {
        resolve_members(conn, group_id, inputs).await?;
    }
    Ok(())
}

/// The first step of a Group PATCH when the backend sent it with the read (SQLite's
/// `begin_patch`): the ids it added, the inputs, and how many distinct ones there were.
pub(crate) struct EarlyAdd {
    pub(crate) added: Vec<String>,
    pub(crate) inputs: Vec<MemberRef>,
    pub(crate) asked: usize,
}

async fn clear_members(conn: &mut Conn, group_id: &str) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("DELETE FROM group_members WHERE group_id = $1 RETURNING member_id")
            .bind(group_id)
            .fetch_all(&mut *conn)
            .await?,
    )
}
