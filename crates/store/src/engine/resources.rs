//! SCIM resource writes: create, read one, replace, patch and delete, each one write
//! transaction holding the change, its outbox row and its audit record.

use super::audit::audit_head_stmt;
use super::list::attach_relations;
use super::members::{
    MembershipDelta, add_members_stmt, check_added, early_add, insert_members, load_members,
    member_refs, member_values, one_member_added, replace_members, resolve_members,
};
use super::outbox::enqueue_stmt;
use super::write_tx::{Stmt, WriteTx, audit_tip_was_stale};
use super::{
    Backend, Conn, DIALECT, DbRow, Guard, WriteRecord, audit_entry, kind_literal, not_found,
};
use crate::error::{StoreError, StoreResult};
use crate::outbox::OutboxPriority;
use crate::resource::{
    GetOptions, IndexedColumns, Member, MemberInput, RESOURCE_COLUMNS, ResourceRow, StoredResource,
    WriteContext, check_if_match, split_body,
};
use chrono::{DateTime, Utc};
use scim::patch::{
    GroupPatchStep, MemberChange, PatchOptions, PatchRequest, apply, plan_group_patch,
};
use scim::resource::active;
use scim::{Registry, ResourceKind};
use serde_json::{Map, Value, json};
use sqlx::{FromRow, Row as _};

/// A PUT or PATCH result waiting to be committed.
struct Update {
    current: StoredResource,
    attrs: Map<String, Value>,
    columns: IndexedColumns,
    /// What the audit record shows; empty when nothing changed.
    change: Map<String, Value>,
    password_supplied: bool,
    verb: &'static str,
}

/// Offboarding jumps the queue: a User DELETE (`after` is `None`), or a User whose `active`
/// goes from true to false (Okta and Entra deprovision by PATCHing `active: false`).
fn offboarding_priority(
    kind: ResourceKind,
    before: &Map<String, Value>,
    after: Option<&Map<String, Value>>,
) -> OutboxPriority {
    match (kind, after) {
        (ResourceKind::User | ResourceKind::Agent, None) => OutboxPriority::Offboarding,
        (ResourceKind::User | ResourceKind::Agent, Some(after))
            if active(before) && !active(after) =>
        {
            OutboxPriority::Offboarding
        }
        _ => OutboxPriority::Normal,
    }
}

fn select_stmt(kind: ResourceKind, id: &str, lock: &str) -> Stmt {
    Stmt::new(format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources WHERE id = $1 AND kind = {}{lock}",
        kind_literal(kind)
    ))
    .text(id)
}

async fn select_resource(
    conn: &mut Conn,
    kind: ResourceKind,
    id: &str,
    lock: &str,
) -> StoreResult<Option<ResourceRow>> {
    Ok(select_stmt(kind, id, lock)
        .fetch_all(conn)
        .await?
        .into_iter()
        .next())
}

/// The 409 `detail` for a taken userName or displayName (the unique index finds it).
fn uniqueness_detail(kind: ResourceKind, columns: &IndexedColumns) -> String {
    let (attribute, value) = match kind {
        ResourceKind::User => ("userName", columns.user_name.as_deref()),
        ResourceKind::Group => ("displayName", columns.display_name.as_deref()),
        ResourceKind::Agent => ("agentUserName or name", columns.user_name.as_deref()),
        ResourceKind::AgenticApplication => ("name", columns.user_name.as_deref()),
    };
    format!(
        "a {} with {attribute} \"{}\" already exists",
        kind.name(),
        value.unwrap_or_default()
    )
}

fn insert_stmt(
    kind: ResourceKind,
    id: &str,
    columns: &IndexedColumns,
    attrs: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Stmt {
    Stmt::new(
        "INSERT INTO resources (id, kind, user_name, user_name_key, external_id, display_name, display_name_key, \
                                active, attrs, version, created, last_modified) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10)",
    )
    .text(id)
    .text(kind.name())
    .columns(columns)
    .text(Value::Object(attrs.clone()).to_string())
    .time(now)
    .unique(uniqueness_detail(kind, columns))
}

/// Write `resource`'s attributes, version and lastModified (the caller has bumped them).
fn update_stmt(resource: &StoredResource, columns: &IndexedColumns) -> Stmt {
    Stmt::new(
        "UPDATE resources SET user_name = $1, user_name_key = $2, external_id = $3, display_name = $4, \
                display_name_key = $5, active = $6, attrs = $7, version = $8, last_modified = $9 \
         WHERE id = $10",
    )
    .columns(columns)
    .text(Value::Object(resource.attrs.clone()).to_string())
    .int(resource.version)
    .time(resource.last_modified)
    .text(resource.id.clone())
    .unique(uniqueness_detail(resource.kind, columns))
}

trait IndexedArgs {
    /// Bind the six indexed columns, in table order from `user_name` to `active`.
    fn columns(self, columns: &IndexedColumns) -> Self;
}

impl IndexedArgs for Stmt {
    fn columns(self, columns: &IndexedColumns) -> Stmt {
        self.opt_text(columns.user_name.clone())
            .opt_text(columns.user_name_key())
            .opt_text(columns.external_id.clone())
            .opt_text(columns.display_name.clone())
            .opt_text(columns.display_name_key())
            .opt_bool(columns.active)
    }
}

/// A new version for a resource whose membership changed.
fn touch_stmt(id: &str, now: DateTime<Utc>) -> Stmt {
    Stmt::new("UPDATE resources SET version = version + 1, last_modified = $1 WHERE id = $2")
        .time(now)
        .text(id)
}

impl WriteTx {
    /// Read the resource a write changes, locking its row (PostgreSQL). On SQLite the write
    /// lock is held from `BEGIN IMMEDIATE` to the commit, so the audit chain's tip cannot move
    /// in between: it is read in the same round trip, and the commit extends it.
    async fn select_for_write(
        &mut self,
        kind: ResourceKind,
        id: &str,
    ) -> StoreResult<Option<ResourceRow>> {
        Ok(self.select_for_write_then(kind, id, None).await?.0)
    }

    /// `select_for_write`, and on SQLite `members` (a member-row statement that returns the
    /// ids it changed) in the same round trip: a PATCH that adds a member then needs no
    /// round trip of its own while it holds the writer. `members` must change nothing when
    /// the resource does not exist; whatever it did is rolled back with the transaction
    /// when the read turns the write down. On PostgreSQL it is not run: the caller runs it.
    async fn select_for_write_then(
        &mut self,
        kind: ResourceKind,
        id: &str,
        members: Option<Stmt>,
    ) -> StoreResult<(Option<ResourceRow>, Option<Vec<String>>)> {
        if DIALECT.batch {
            let ran = members.is_some();
            let (head, rows, ids) = self
                .fetch_one_then_all::<(i64, String), ResourceRow>(
                    audit_head_stmt(),
                    select_stmt(kind, id, DIALECT.lock_row),
                    members,
                )
                .await?;
            self.head_was_read(head);
            Ok((rows.into_iter().next(), ran.then_some(ids)))
        } else {
            let row = self
                .fetch_optional(select_stmt(kind, id, DIALECT.lock_row))
                .await?;
            Ok((row, None))
        }
    }
}

/// `Backend::add_one_member`'s statements before its audit row, in the order their guards rely
/// on; the audit row's (`Guard::AfterChange`) follow them.
fn add_one_member_stmts(group_id: &str, member: &MemberInput, now: DateTime<Utc>) -> [Stmt; 3] {
    [
        add_members_stmt(group_id, &[member], now),
        Stmt::new(format!(
            "UPDATE resources SET version = version + 1, last_modified = $1 \
             WHERE id = $2 AND changes() = 1 RETURNING {RESOURCE_COLUMNS}"
        ))
        .time(now)
        .text(group_id),
        enqueue_stmt(
            ResourceKind::Group,
            group_id,
            OutboxPriority::Normal,
            now,
            Guard::AfterChange,
        ),
    ]
}

/// Attributes after a PATCH, and the member list they held (Groups, when present).
type PatchedAttributes = (Map<String, Value>, Option<Vec<MemberInput>>);

/// Apply PATCH operations to a resource's attributes with the protocol core. The core sees the
/// resource as served (with `id`: Okta's rename repeats it); what comes back is split into the
/// stored attributes and, for a Group, the member list it holds (if any).
fn apply_patch(
    kind: ResourceKind,
    id: &str,
    attrs: &Map<String, Value>,
    request: &PatchRequest,
    options: &PatchOptions,
) -> StoreResult<PatchedAttributes> {
    let mut doc = Map::with_capacity(attrs.len() + 1);
    doc.insert("id".into(), Value::String(id.to_string()));
    doc.extend(attrs.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut next = apply(kind, &doc, request, Registry::standard(), options)?;
    let members = split_body(kind, &mut next)?;
    Ok((next, members))
}

impl Backend {
    /// Add one member to a group in one round trip (SQLite): the member row, the group's new
    /// version, the outbox row, the audit row and the COMMIT go together, each statement after
    /// the member insert running only if the one before changed a row. This is what the IdPs
    /// send most (Entra and Okta add members one PATCH at a time) and it holds the single
    /// writer for one hand-off instead of two.
    ///
    /// `None` when it does not apply or changed nothing (a member already there, an unknown
    /// member or group, no cached audit tip, or any error): the caller then runs the general
    /// path, which gives those cases their answers.
    async fn add_one_member(
        &self,
        ctx: &WriteContext,
        id: &str,
        member: &MemberInput,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<StoredResource>> {
        if !DIALECT.batch || member.value == id {
            return Ok(None);
        }
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
        let stmts = add_one_member_stmts(id, member, now);
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
        let group = |rows: &[DbRow]| rows.iter().find(|r| r.len() > 1).map(ResourceRow::from_row);
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

    /// Finish a PUT or PATCH. When nothing changed (IdPs re-send unchanged objects every
    /// cycle; re-adding present members; a password alone, which is never stored) roll back:
    /// no new version, nothing to reconcile, nothing to audit. Otherwise write the new version
    /// and commit it with its outbox and audit rows.
    async fn commit_update(
        &self,
        mut tx: WriteTx,
        ctx: &WriteContext,
        update: Update,
        now: DateTime<Utc>,
    ) -> StoreResult<StoredResource> {
        let Update {
            current,
            attrs,
            columns,
            mut change,
            password_supplied,
            verb,
        } = update;
        let mut updated = StoredResource {
            attrs,
            ..current.clone()
        };
        if change.is_empty() {
            tx.rollback().await?;
            return Ok(updated);
        }
        if password_supplied {
            change.insert("password".into(), Value::Bool(true));
        }
        updated.version = current.version + 1;
        updated.last_modified = now;
        if updated.attrs == current.attrs {
            // Only the membership changed: a new version, without rewriting the attributes.
            tx.defer(touch_stmt(&updated.id, now)).await?;
        } else {
            tx.defer(update_stmt(&updated, &columns)).await?;
        }
        let priority = offboarding_priority(current.kind, &current.attrs, Some(&updated.attrs));
        let record = WriteRecord {
            kind: current.kind,
            id: &current.id,
            priority,
            verb,
            change: Value::Object(change),
        };
        self.commit_write(tx, ctx, record).await?;
        Ok(updated)
    }

    pub(crate) async fn create(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        attrs: Map<String, Value>,
        password_supplied: bool,
    ) -> StoreResult<StoredResource> {
        match self
            .create_once(ctx, kind, attrs.clone(), password_supplied)
            .await
        {
            // Another process extended the audit chain since this one's last write; the failed
            // attempt rolled back and forgot the tip, so the retry reads it.
            Err(e) if audit_tip_was_stale(&e) => {
                self.create_once(ctx, kind, attrs, password_supplied).await
            }
            other => other,
        }
    }

    async fn create_once(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        mut attrs: Map<String, Value>,
        password_supplied: bool,
    ) -> StoreResult<StoredResource> {
        let member_inputs = split_body(kind, &mut attrs)?;
        let columns = IndexedColumns::of(kind, &attrs)?;
        let now = self.now();
        let id = self.shared.ids.uuid_v7().to_string();
        let mut tx = self.begin_write().await?;
        // No uniqueness pre-check: the unique index on the name key rejects a taken name, and
        // every statement the single writer runs costs every other write its time.
        tx.defer(insert_stmt(kind, &id, &columns, &attrs, now))
            .await?;
        let mut change = json!({ "attrs": attrs });
        if password_supplied {
            // Recorded as supplied; `audit::redact` replaces the value.
            change["password"] = Value::Bool(true);
        }
        let members = match kind {
            ResourceKind::Group => {
                let conn = tx.conn().await?;
                let members = resolve_members(conn, &id, member_inputs.unwrap_or_default()).await?;
                insert_members(conn, &id, &members, now).await?;
                change["members"] = json!({ "added": member_values(&members) });
                Some(members)
            }
            ResourceKind::User | ResourceKind::Agent | ResourceKind::AgenticApplication => None,
        };
        let record = WriteRecord {
            kind,
            id: &id,
            priority: OutboxPriority::Normal,
            verb: "create",
            change,
        };
        self.commit_write(tx, ctx, record).await?;
        Ok(StoredResource {
            kind,
            id,
            attrs,
            version: 1,
            created: now,
            last_modified: now,
            members,
            groups: kind.has_groups().then(Vec::new),
        })
    }

    pub(crate) async fn get(
        &self,
        kind: ResourceKind,
        id: &str,
        options: GetOptions,
    ) -> StoreResult<StoredResource> {
        let mut tx = self.begin_read().await?;
        let row = select_resource(&mut tx, kind, id, "")
            .await?
            .ok_or_else(|| not_found(kind, id))?;
        let mut resources = vec![row.into_resource()?];
        attach_relations(&mut tx, kind, &mut resources, options).await?;
        tx.commit().await?;
        resources.pop().ok_or_else(|| not_found(kind, id))
    }

    /// PUT: `next` computes the new attributes from the current resource inside the write
    /// transaction (row locked), so the version check and the replacement are one step.
    pub(crate) async fn replace_with<F>(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
        next: F,
    ) -> StoreResult<StoredResource>
    where
        F: FnOnce(&StoredResource) -> Result<(Map<String, Value>, bool), StoreError> + Send,
    {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let current = tx
            .select_for_write(kind, id)
            .await?
            .ok_or_else(|| not_found(kind, id))?
            .into_resource()?;
        check_if_match(if_match, current.version)?;
        let (mut attrs, password_supplied) = next(&current)?;
        let member_inputs = split_body(kind, &mut attrs)?;
        let columns = IndexedColumns::of(kind, &attrs)?;
        // No uniqueness pre-check: the UPDATE's unique index answers a taken name with a 409.

        let mut change = Map::new();
        if attrs != current.attrs {
            change.insert("attrs".into(), Value::Object(attrs.clone()));
        }
        // A PUT without `members` keeps the membership: RFC 7644 §3.5.1 lets a server keep
        // omitted attributes, and a rename-only PUT must not empty a 50,000-member group.
        if let Some(inputs) = member_inputs {
            let conn = tx.conn().await?;
            let wanted = resolve_members(conn, id, inputs).await?;
            let (added, removed) = replace_members(conn, id, &wanted, now).await?;
            if !added.is_empty() || !removed.is_empty() {
                change.insert(
                    "members".into(),
                    json!({ "added": added, "removed": removed }),
                );
            }
        }
        let update = Update {
            current,
            attrs,
            columns,
            change,
            password_supplied,
            verb: "replace",
        };
        self.commit_update(tx, ctx, update, now).await
    }

    pub(crate) async fn delete(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
    ) -> StoreResult<()> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let current = tx
            .select_for_write(kind, id)
            .await?
            .ok_or_else(|| not_found(kind, id))?;
        check_if_match(if_match, current.version)?;
        // Groups that list the resource lose a member: they get a new version, and the worker
        // reconciles them (a suspended-not-deleted Coder user must also leave its Coder groups).
        let parents: Vec<String> =
            sqlx::query_scalar("SELECT group_id FROM group_members WHERE member_id = $1")
                .bind(id)
                .fetch_all(tx.conn().await?)
                .await?;
        for parent in &parents {
            tx.defer(touch_stmt(parent, now)).await?;
            tx.defer(enqueue_stmt(
                ResourceKind::Group,
                parent,
                OutboxPriority::Normal,
                now,
                Guard::Always,
            ))
            .await?;
        }
        // Membership rows go with the resource (ON DELETE CASCADE, both directions).
        tx.defer(Stmt::new("DELETE FROM resources WHERE id = $1").text(id))
            .await?;
        let priority = offboarding_priority(kind, &Map::new(), None);
        let change = json!({ "deleted_version": current.version, "removed_from_groups": parents });
        self.commit_write(
            tx,
            ctx,
            WriteRecord {
                kind,
                id,
                priority,
                verb: "delete",
                change,
            },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn patch(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
        request: &PatchRequest,
        password_supplied: bool,
        options: &PatchOptions,
    ) -> StoreResult<StoredResource> {
        let now = self.now();
        let plan = match kind {
            ResourceKind::Group => plan_group_patch(request),
            ResourceKind::User | ResourceKind::Agent | ResourceKind::AgenticApplication => None,
        };
        if let (Some(member), None) = (plan.as_ref().and_then(one_member_added), if_match)
            && let Some(updated) = self.add_one_member(ctx, id, &member, now).await?
        {
            return Ok(updated);
        }
        let (early, early_inputs) = plan
            .as_ref()
            .and_then(|plan| early_add(id, plan, now))
            .unzip();
        let mut tx = self.begin_write().await?;
        // The row lock (or SQLite's single writer) is held from this read to the commit, so
        // parallel PATCHes to one group apply one after the other on the latest state.
        let (row, early_added) = tx.select_for_write_then(kind, id, early).await?;
        let current = row.ok_or_else(|| not_found(kind, id))?.into_resource()?;
        check_if_match(if_match, current.version)?;
        let mut attrs = current.attrs.clone();
        let mut members = MembershipDelta::default();
        // The first step, when it was sent with the read.
        let mut done = 0;
        if let (Some(added), Some((inputs, asked))) = (early_added, early_inputs) {
            check_added(tx.conn().await?, id, inputs, added.len(), asked).await?;
            members.merge(added, Vec::new());
            done = 1;
        }
        match plan {
            Some(plan) => {
                for step in plan.steps.into_iter().skip(done) {
                    match step {
                        GroupPatchStep::Attributes(part) => {
                            let (next, stray) = apply_patch(kind, id, &attrs, &part, options)?;
                            // The plan keeps member operations out of `part`; should the core
                            // still return a member list, it is applied, never stored as JSON.
                            if let Some(inputs) = stray {
                                let change = MemberChange::Replace(member_refs(inputs));
                                members.apply(tx.conn().await?, id, change, now).await?;
                            }
                            attrs = next;
                        }
                        GroupPatchStep::Members(change) => {
                            members.apply(tx.conn().await?, id, change, now).await?;
                        }
                    }
                }
            }
            None => {
                // A User, or a Group operation that needs the member list (a filter other than
                // `value eq`, a member sub-attribute): load the members, apply in memory, and
                // write back the difference.
                let mut doc = attrs.clone();
                if kind == ResourceKind::Group {
                    let loaded = load_members(tx.conn().await?, &[id.to_string()])
                        .await?
                        .remove(id)
                        .unwrap_or_default();
                    doc.insert(
                        "members".into(),
                        Value::Array(loaded.iter().map(Member::to_json).collect()),
                    );
                }
                let (next, inputs) = apply_patch(kind, id, &doc, request, options)?;
                if kind == ResourceKind::Group {
                    let change = MemberChange::Replace(member_refs(inputs.unwrap_or_default()));
                    members.apply(tx.conn().await?, id, change, now).await?;
                }
                attrs = next;
            }
        }
        let columns = IndexedColumns::of(kind, &attrs)?;
        let mut change = Map::new();
        if attrs != current.attrs {
            change.insert("attrs".into(), Value::Object(attrs.clone()));
        }
        if !members.is_empty() {
            change.insert(
                "members".into(),
                json!({ "added": members.added, "removed": members.removed }),
            );
        }
        let update = Update {
            current,
            attrs,
            columns,
            change,
            password_supplied,
            verb: "patch",
        };
        self.commit_update(tx, ctx, update, now).await
    }
}
