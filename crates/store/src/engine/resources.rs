//! SCIM resource writes: create, read one, replace, patch and delete, each one write
//! transaction holding the change, its outbox row and its audit record.

use super::agent_owners::owner_index_stmts;
use super::list::attach_relations;
use super::members::{
    EarlyAdd, MembershipDelta, check_added, insert_members, load_members, member_values,
    replace_members, resolve_members,
};
use super::outbox::enqueue_stmt;
use super::write_tx::{Stmt, WriteTx, audit_tip_was_stale};
use super::{Backend, Conn, WriteRecord, kind_literal, not_found};
use crate::error::{StoreError, StoreResult};
use crate::outbox::OutboxPriority;
use crate::resource::{
    GetOptions, IndexedColumns, Member, RESOURCE_COLUMNS, ResourceRow, StoredResource,
    WriteContext, check_if_match, split_body,
};
use chrono::{DateTime, Utc};
use scim::patch::{
    GroupPatchStep, MemberChange, MemberRef, PatchOptions, PatchRequest, apply, plan_group_patch,
};
use scim::resource::active;
use scim::{Registry, ResourceKind};
use serde_json::{Map, Value, json};

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

impl Update {
    /// The update of `current` to `attrs` with the membership rows `members` changed; the audit
    /// change shows the new attributes when they differ and the member ids added and removed.
    fn new(
        current: StoredResource,
        attrs: Map<String, Value>,
        columns: IndexedColumns,
        members: MembershipDelta,
        password_supplied: bool,
        verb: &'static str,
    ) -> Update {
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
        Update {
            current,
            attrs,
            columns,
            change,
            password_supplied,
            verb,
        }
    }
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

/// The resource `kind`/`id`, with `lock` appended.
pub(crate) fn select_stmt(kind: ResourceKind, id: &str, lock: &str) -> Stmt {
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

/// Attributes after a PATCH, and the member list they held (Groups, when present).
type PatchedAttributes = (Map<String, Value>, Option<Vec<MemberRef>>);

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
            if updated.kind == ResourceKind::Agent
                && updated.attrs.get("owners") != current.attrs.get("owners")
            {
                for stmt in owner_index_stmts(&updated.id, &updated.attrs) {
                    tx.defer(stmt).await?;
                }
            }
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
        if kind == ResourceKind::Agent {
            for stmt in owner_index_stmts(&id, &attrs) {
                tx.defer(stmt).await?;
            }
        }
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

        // A PUT without `members` keeps the membership: RFC 7644 §3.5.1 lets a server keep
        // omitted attributes, and a rename-only PUT must not empty a 50,000-member group.
        let mut members = MembershipDelta::default();
        if let Some(inputs) = member_inputs {
            let conn = tx.conn().await?;
            let wanted = resolve_members(conn, id, inputs).await?;
            let (added, removed) = replace_members(conn, id, &wanted, now).await?;
            members = MembershipDelta { added, removed };
        }
        let update = Update::new(
            current,
            attrs,
            columns,
            members,
            password_supplied,
            "replace",
        );
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
                None,
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
        // The backend's one-round-trip path, where it has one.
        if if_match.is_none()
            && let Some(plan) = &plan
            && let Some(updated) = self.add_one_member(ctx, id, plan, now).await?
        {
            return Ok(updated);
        }
        // The row lock (or SQLite's single writer) is held from this read to the commit, so
        // parallel PATCHes to one group apply one after the other on the latest state.
        let (mut tx, row, early) = self.begin_patch(kind, id, plan.as_ref(), now).await?;
        let current = row.ok_or_else(|| not_found(kind, id))?.into_resource()?;
        check_if_match(if_match, current.version)?;
        let mut attrs = current.attrs.clone();
        let mut members = MembershipDelta::default();
        // The first step, when the backend sent it with the read.
        let mut done = 0;
        if let Some(early) = early {
            let EarlyAdd {
                added,
                inputs,
                asked,
            } = early;
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
                                let change = MemberChange::Replace(inputs);
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
                    let change = MemberChange::Replace(inputs.unwrap_or_default());
                    members.apply(tx.conn().await?, id, change, now).await?;
                }
                attrs = next;
            }
        }
        let columns = IndexedColumns::of(kind, &attrs)?;
        let update = Update::new(current, attrs, columns, members, password_supplied, "patch");
        self.commit_update(tx, ctx, update, now).await
    }
}
