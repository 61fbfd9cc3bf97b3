//! SQLite's one-round-trip write paths. Under the single writer nothing else writes between
//! a transaction's statements, so a write can send statements whose inputs it has not read
//! yet, each guarded by `changes()` (it runs only if the statement before it changed a row),
//! and read the audit chain's head with the resource instead of before its append.

use super::DIALECT;
use super::batch::AFTER_CHANGE;
use super::engine::audit::audit_head_stmt;
use super::engine::members::{EarlyAdd, add_members_stmt, distinct_members};
use super::engine::outbox::enqueue_stmt;
use super::engine::resources::select_stmt;
use super::engine::write_tx::{Row, Stmt, WriteTx};
use super::engine::{Backend, CHUNK, WriteRecord, audit_entry};
use crate::error::StoreResult;
use crate::outbox::OutboxPriority;
use crate::resource::{RESOURCE_COLUMNS, ResourceRow, StoredResource, WriteContext};
use chrono::{DateTime, Utc};
use scim::ResourceKind;
use scim::patch::{GroupPatchPlan, GroupPatchStep, MemberChange, MemberRef};
use serde_json::json;
use sqlx::{FromRow, Row as _};

impl WriteTx {
    /// Read the resource a write changes. The write lock is held from `BEGIN IMMEDIATE` to
    /// the commit, so the audit chain's tip cannot move in between: it is read in the same
    /// round trip, and the commit extends it.
    pub(crate) async fn select_for_write(
        &mut self,
        kind: ResourceKind,
        id: &str,
    ) -> StoreResult<Option<ResourceRow>> {
        Ok(self.select_for_write_then(kind, id, None).await?.0)
    }

    /// `select_for_write`, and `members` (a member-row statement that returns the ids it
    /// changed) in the same round trip: a PATCH that adds a member then needs no round trip of
    /// its own while it holds the writer. `members` must change nothing when the resource does
    /// not exist; whatever it did is rolled back with the transaction when the read turns the
    /// write down.
    async fn select_for_write_then(
        &mut self,
        kind: ResourceKind,
        id: &str,
        members: Option<Stmt>,
    ) -> StoreResult<(Option<ResourceRow>, Option<Vec<String>>)> {
        let ran = members.is_some();
        let (head, rows, ids) = self
            .fetch_one_then_all::<(i64, String), ResourceRow>(
                audit_head_stmt(),
                select_stmt(kind, id, DIALECT.lock_row),
                members,
            )
            .await?;
        self.audit_head = Some(head);
        Ok((rows.into_iter().next(), ran.then_some(ids)))
    }
}

/// `Backend::add_one_member`'s statements before its audit row, in the order their guards rely
/// on; the audit row's (also guarded) follow them.
fn add_one_member_stmts(group_id: &str, member: &MemberRef, now: DateTime<Utc>) -> [Stmt; 3] {
    [
        add_members_stmt(group_id, &[member], now),
        Stmt::new(format!(
            "UPDATE resources SET version = version + 1, last_modified = $1 \
             WHERE id = $2 AND {AFTER_CHANGE} RETURNING {RESOURCE_COLUMNS}"
        ))
        .time(now)
        .text(group_id),
        enqueue_stmt(
            ResourceKind::Group,
            group_id,
            OutboxPriority::Normal,
            now,
            Some(AFTER_CHANGE),
        ),
    ]
}

/// The member a Group PATCH adds when that is all it does.
fn one_member_added(plan: &GroupPatchPlan) -> Option<MemberRef> {
    match plan.steps.as_slice() {
        [GroupPatchStep::Members(MemberChange::Add(refs))] => match refs.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// When a Group PATCH begins by adding members (one statement's worth, to a group that is not
/// among them), the statement that adds them, to send with the read (see
/// `select_for_write_then`), with the inputs and how many distinct ones there are.
fn early_add(
    group_id: &str,
    plan: &GroupPatchPlan,
    now: DateTime<Utc>,
) -> Option<(Stmt, (Vec<MemberRef>, usize))> {
    let Some(GroupPatchStep::Members(MemberChange::Add(refs))) = plan.steps.first() else {
        return None;
    };
    if refs.len() > CHUNK {
        return None;
    }
    let inputs = refs.clone();
    // A group among its own members is reported by the usual path, after the read.
    let distinct = distinct_members(group_id, &inputs).ok()?;
    let stmt = add_members_stmt(group_id, &distinct, now);
    let asked = distinct.len();
    Some((stmt, (inputs, asked)))
}

impl Backend {
    /// Begin a PATCH: the write transaction and the resource's row, read with the audit head
    /// and, when the PATCH begins by adding members, with that add (built before the writer
    /// is taken).
    pub(crate) async fn begin_patch(
        &self,
        kind: ResourceKind,
        id: &str,
        plan: Option<&GroupPatchPlan>,
        now: DateTime<Utc>,
    ) -> StoreResult<(WriteTx, Option<ResourceRow>, Option<EarlyAdd>)> {
        let (early, inputs) = plan.and_then(|plan| early_add(id, plan, now)).unzip();
        let mut tx = self.begin_write().await?;
        let (row, added) = tx.select_for_write_then(kind, id, early).await?;
        let early = match (added, inputs) {
            (Some(added), Some((inputs, asked))) => Some(EarlyAdd {
                added,
                inputs,
                asked,
            }),
            _ => None,
        };
        Ok((tx, row, early))
    }

    /// Add one member to a group in one round trip: the member row, the group's new version,
    /// the outbox row, the audit row and the COMMIT go together, each statement after the
    /// member insert running only if the one before changed a row. This is what the IdPs send
    /// most (Entra and Okta add members one PATCH at a time) and it holds the single writer for
    /// one hand-off instead of two.
    ///
    /// `None` when it does not apply (the PATCH does more than add one member) or changed
    /// nothing (a member already there, an unknown member or group, no cached audit tip, or
    /// any error): the caller then runs the general path, which gives those cases their
    /// answers.
    pub(crate) async fn add_one_member(
        &self,
        ctx: &WriteContext,
        id: &str,
        plan: &GroupPatchPlan,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<StoredResource>> {
        let Some(member) = one_member_added(plan).filter(|m| m.value != id) else {
            return Ok(None);
        };
        // Everything but the audit row is built before the writer is taken.
        let entry = audit_entry(
            ctx,
            WriteRecord {
                kind: ResourceKind::Group,
                id,
                priority: OutboxPriority::Normal,
                verb: "patch",
                change: json!({"members": {"added": [member.value], "removed": []}}),
            },
        );
        let stmts = add_one_member_stmts(id, &member, now);
        let mut tx = self.begin_write().await?;
        // Deferred: nothing is sent before the commit.
        for stmt in stmts {
            tx.defer(stmt).await?;
        }
        let appended = tx
            .append_audit_after_change(&entry, now, self.audit_key())
            .await?;
        if appended.is_none() {
            return Ok(None);
        }
        // Only the group's row has more than one column; it comes back only if the member
        // was added, and the audit row was then appended after it.
        let group = |rows: &[Row]| rows.iter().find(|r| r.len() > 1).map(ResourceRow::from_row);
        let Ok(rows) = tx.commit_returning(|rows| group(rows).is_some()).await else {
            // Rolled back (a stale audit tip, say): the general path tries again.
            return Ok(None);
        };
        let Some(row) = group(&rows) else {
            return Ok(None);
        };
        let updated = row?.into_resource()?;
        self.queued_committed().await?;
        Ok(Some(updated))
    }
}
