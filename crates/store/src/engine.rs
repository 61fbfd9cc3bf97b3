//! The store's SQL and transaction logic, written once and compiled for each backend.
//!
//! `sqlite.rs` and `postgres.rs` each include this file as a module (`#[path = "engine.rs"]`)
//! after defining `Db`, `DIALECT` and `MIGRATOR`, so the code below is checked against the
//! concrete sqlx types of each database. That keeps native column types on both sides without
//! sqlx's generic-executor bounds, and one copy of every query and rule (the approach of
//! vaultwarden's `db_run!`). Where the two databases differ, the code reads `DIALECT`.

use super::{DIALECT, Db, MIGRATOR};
use crate::Shared;
use crate::audit::{
    AuditEntry, AuditHead, AuditKey, AuditRecord, AuditRow, GENESIS_HASH, VerifyReport,
};
use crate::clock::{IdSource, now_micros};
use crate::coalesce;
use crate::coder_map::{
    CoderGroup, CoderGroupRow, CoderUser, CoderUserIntent, CoderUserRow, SyncIssue,
};
use crate::error::{StoreError, StoreResult};
use crate::outbox::{
    Completion, OUTBOX_CHANNEL, OutboxEvent, OutboxFilter, OutboxPriority, OutboxRow, OutboxStats,
    RetryTarget,
};
use crate::resource::{
    GetOptions, GroupRef, IndexedColumns, ListPage, Member, MemberInput, RESOURCE_COLUMNS,
    ResourceRow, StoredResource, WriteContext, check_if_match, fold_case, kind_from_str,
    split_body,
};
use crate::scope::Scopes;
use crate::token::{self, TokenImport, TokenInfo, TokenSource, TokenVerifier, VerifierEntry};
use chrono::{DateTime, Duration, Utc};
use scim::filter::{AttrPath, Filter, IndexedColumn, IndexedPredicate, indexed, matches};
use scim::patch::{
    GroupPatchPlan, GroupPatchStep, MemberChange, MemberRef, PatchOptions, PatchRequest, apply,
    plan_group_patch,
};
use scim::query::{ListQuery, MAX_RESULTS, SortKey, TopK};
use scim::resource::active;
use scim::{Registry, ResourceKind, ScimType};
use serde_json::{Map, Value, json};
use sqlx::{FromRow, Pool, QueryBuilder, Row as _, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

// The same source is compiled for each backend, like this file.
#[allow(clippy::duplicate_mod)]
#[path = "write_tx.rs"]
pub(crate) mod write_tx;
use write_tx::{Stmt, WriteTx, Writer, WriterLot, audit_tip_was_stale};

// OAuth clients' SQL, kept in a file of its own; compiled per backend like this file.
#[allow(clippy::duplicate_mod)]
#[path = "oauth_client_sql.rs"]
mod oauth_client_sql;

type Conn = <Db as sqlx::Database>::Connection;
type DbRow = <Db as sqlx::Database>::Row;
type Tx = Transaction<'static, Db>;

/// Bind parameters per statement when a list of ids is sent in chunks (well under SQLite's
/// 32,766 and PostgreSQL's 65,535).
const CHUNK: usize = 500;

/// Candidate rows read per query when a filter is evaluated in memory.
const SCAN_PAGE: usize = 1000;

/// Audit rows read per query while verifying.
const VERIFY_PAGE: i64 = 1000;

/// One backend's store: a read pool and a write pool (the same pool on PostgreSQL).
#[derive(Debug, Clone)]
pub struct Backend {
    read: Pool<Db>,
    write: Pool<Db>,
    shared: Arc<Shared>,
    /// Read connections kept by the `userName eq` lookup runners between batches, outside
    /// the pool: sqlx 0.8 pings every connection it takes back into a pool, which on SQLite is
    /// a second round trip to the connection's thread per lookup (as costly as the lookup).
    /// At most one per runner.
    lookup_conns: Arc<std::sync::Mutex<Vec<Conn>>>,
    /// Where the SQLite writer waits between writes; every use of `write` goes through it
    /// (see write_tx.rs).
    writer_lot: WriterLot,
}

/// What a committed write queues and records.
struct WriteRecord<'a> {
    kind: ResourceKind,
    id: &'a str,
    priority: OutboxPriority,
    /// The store's name for the write, recorded when the context names no operation.
    verb: &'static str,
    change: Value,
}

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

impl Backend {
    pub(crate) fn new(read: Pool<Db>, write: Pool<Db>, shared: Arc<Shared>) -> Self {
        Backend {
            read,
            write,
            shared,
            lookup_conns: Arc::default(),
            writer_lot: WriterLot::default(),
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn write_pool(&self) -> &Pool<Db> {
        &self.write
    }

    /// The read pool (on SQLite, separate from the one writer): `copy.rs` reads a live source
    /// through it.
    #[allow(dead_code, reason = "PostgreSQL is only ever a copy's target")]
    pub(crate) fn read_pool(&self) -> &Pool<Db> {
        &self.read
    }

    fn now(&self) -> DateTime<Utc> {
        now_micros(self.shared.clock.as_ref())
    }

    /// The key every audit record this store appends is hashed with (none: plain SHA-256).
    fn audit_key(&self) -> Option<&AuditKey> {
        self.shared.audit_keys.current()
    }

    async fn begin_write(&self) -> StoreResult<Tx> {
        // The lot's connection goes back to the pool for this transaction to take.
        let _hold = self.writer_lot.hold().await;
        Ok(self.write.begin_with(DIALECT.begin_write).await?)
    }

    /// The writer connection, for a single statement.
    async fn writer(&self) -> StoreResult<Writer> {
        self.writer_lot.take(&self.write).await
    }

    /// A write transaction for the SCIM resource paths (see `write_tx.rs`).
    async fn begin_batch(&self) -> StoreResult<WriteTx> {
        let tip = DIALECT.batch.then_some(&self.shared.audit_tip);
        WriteTx::begin(&self.write, &self.writer_lot, tip).await
    }

    async fn begin_read(&self) -> StoreResult<Tx> {
        Ok(self.read.begin_with(DIALECT.begin_read).await?)
    }

    /// Commit a transaction that queued outbox work, then wake the worker(s).
    async fn commit_queued(&self, mut tx: Tx) -> StoreResult<()> {
        if let Some(sql) = DIALECT.notify {
            sqlx::query(sql)
                .bind(OUTBOX_CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.queued_committed().await
    }

    /// `commit_queued` for a batched write transaction.
    async fn commit_batch(&self, mut tx: WriteTx) -> StoreResult<()> {
        if let Some(sql) = DIALECT.notify {
            tx.defer(Stmt::new(sql).text(OUTBOX_CHANNEL)).await?;
        }
        tx.commit().await?;
        self.queued_committed().await
    }

    /// After a commit that queued outbox work: answer only once it is durable, then wake the
    /// worker(s).
    async fn queued_committed(&self) -> StoreResult<()> {
        self.durable().await?;
        self.shared.outbox_notify.notify_one();
        Ok(())
    }

    /// Wait until the commits made so far are on disk (SQLite group commit; PostgreSQL's
    /// commit is already durable).
    async fn durable(&self) -> StoreResult<()> {
        match &self.shared.wal_sync {
            Some(sync) => sync.wait_durable().await,
            None => Ok(()),
        }
    }

    /// Queue the resource, append the audit record and commit: every SCIM write ends here, so
    /// the change, its outbox row and its audit row commit together or not at all.
    async fn commit_write(
        &self,
        mut tx: WriteTx,
        ctx: &WriteContext,
        record: WriteRecord<'_>,
    ) -> StoreResult<()> {
        let now = self.now();
        tx.defer(enqueue_stmt(
            record.kind,
            record.id,
            record.priority,
            now,
            Guard::Always,
        ))
        .await?;
        let entry = audit_entry(ctx, record);
        if tx.audit_head.is_none() {
            // SQLite: the tip this process's last write left, checked by the commit itself
            // (a stale one makes the record's seq collide; `create` then retries).
            tx.audit_head = tx.cached_tip();
        }
        let row = append_audit_batched(&mut tx, &entry, now, self.audit_key()).await?;
        tx.set_next_tip((row.seq, row.hash));
        self.commit_batch(tx).await
    }

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
        let mut tx = self.begin_batch().await?;
        let Some((seq, prev_hash)) = tx.cached_tip() else {
            return Ok(None);
        };
        let audit = AuditRow::chained(&entry, seq + 1, now, prev_hash, self.audit_key());
        tx.set_next_tip((audit.seq, audit.hash.clone()));
        for stmt in stmts
            .into_iter()
            .chain(audit_append_stmts(&audit, Guard::AfterChange))
        {
            tx.defer(stmt).await?;
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

    /// An audit append outside the resource paths: the cached tip no longer holds.
    async fn forget_audit_tip(&self) {
        *self.shared.audit_tip.lock().await = None;
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

    // ----- lifecycle -----

    pub(crate) async fn migrate(&self) -> StoreResult<()> {
        let _hold = self.writer_lot.hold().await;
        MIGRATOR.run(self.write_pool()).await?;
        Ok(())
    }

    pub(crate) async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub(crate) async fn schema_status(&self) -> StoreResult<crate::SchemaStatus> {
        use sqlx::migrate::Migrate;
        let mut conn = self.read.acquire().await?;
        let applied = match conn.list_applied_migrations().await {
            Ok(applied) => applied,
            // No migrations table yet: nothing was ever applied. (A lost connection is an I/O
            // error, not a database one, and stays an error.)
            Err(sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(_))) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let known: Vec<(i64, &[u8])> = MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| (m.version, m.checksum.as_ref()))
            .collect();
        let applied: Vec<(i64, Vec<u8>)> = applied
            .into_iter()
            .map(|a| (a.version, a.checksum.into_owned()))
            .collect();
        Ok(crate::SchemaStatus::compare(&known, &applied))
    }

    // ----- resources -----

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
        let mut tx = self.begin_batch().await?;
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
            ResourceKind::User => None,
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
            groups: (kind == ResourceKind::User).then(Vec::new),
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
        let mut tx = self.begin_batch().await?;
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
        let mut tx = self.begin_batch().await?;
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
            ResourceKind::User => None,
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
        let mut tx = self.begin_batch().await?;
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
        let offset = query.start_index.max(1) - 1;
        let count = query.count.unwrap_or(MAX_RESULTS).min(MAX_RESULTS);
        if let Some(predicate) = predicate
            .as_ref()
            .filter(|p| exact && query.sort_by.is_none() && is_unique_key(kind, p))
        {
            // The IdPs' hot path (`userName eq`, `displayName eq`, `id eq`): at most one row, so
            // no count query and no transaction, just the row and its relations.
            if kind == ResourceKind::User && options.groups {
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
                return Ok(ListPage { total, items });
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
            return Ok(ListPage { total, items });
        }
        let mut tx = self.begin_read().await?;
        let candidates = count_resources(&mut tx, kind, predicate.as_ref()).await?;

        if exact && query.sort_by.is_none() {
            // SQL answers the whole query: count and page there.
            let mut select = resource_query(RESOURCE_COLUMNS, kind, predicate.as_ref());
            select
                .push(" ORDER BY created, id LIMIT ")
                .push_bind(as_i64(count))
                .push(" OFFSET ")
                .push_bind(as_i64(offset));
            let rows: Vec<ResourceRow> = select.build_query_as().fetch_all(&mut *tx).await?;
            let mut items = rows
                .into_iter()
                .map(ResourceRow::into_resource)
                .collect::<StoreResult<Vec<_>>>()?;
            attach_relations(&mut tx, kind, &mut items, options).await?;
            tx.commit().await?;
            return Ok(ListPage {
                total: candidates,
                items,
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
        let mut after: Option<(DateTime<Utc>, String)> = None;
        loop {
            // Keyset pages: memory is bounded by a page of candidates and the kept matches.
            let mut select = resource_query(RESOURCE_COLUMNS, kind, predicate.as_ref());
            if let Some((created, id)) = &after {
                select.push(" AND (created > ").push_bind(*created);
                select
                    .push(" OR (created = ")
                    .push_bind(*created)
                    .push(" AND id > ")
                    .push_bind(id.clone())
                    .push("))");
            }
            select
                .push(" ORDER BY created, id LIMIT ")
                .push_bind(as_i64(SCAN_PAGE));
            let rows: Vec<ResourceRow> = select.build_query_as().fetch_all(&mut *tx).await?;
            let Some(last) = rows.last() else { break };
            after = Some((last.created, last.id.clone()));
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
                if sorted.is_none() && !(offset..keep).contains(&position) {
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
        let mut items = match sorted {
            Some((_, top)) => top.into_sorted().into_iter().skip(offset).collect(),
            None => in_order,
        };
        if !relations_needed {
            attach_relations(&mut tx, kind, &mut items, options).await?;
        }
        tx.commit().await?;
        Ok(ListPage { total, items })
    }

    // ----- outbox -----

    pub(crate) async fn enqueue(
        &self,
        kind: ResourceKind,
        id: &str,
        priority: OutboxPriority,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        enqueue_in(&mut tx, kind, id, priority, self.now()).await?;
        self.commit_queued(tx).await
    }

    pub(crate) async fn outbox_claim(
        &self,
        worker_id: &str,
        lease: Duration,
        limit: u32,
        one_priority_from: Option<OutboxPriority>,
    ) -> StoreResult<Vec<OutboxEvent>> {
        let now = self.now();
        // Due, not dead, and not leased or leased by a worker whose lease ran out (it crashed or
        // stalled: its claim is taken over). On PostgreSQL, rows another replica is claiming
        // right now are skipped instead of waited for.
        let due = "dead_at IS NULL AND next_attempt_at <= $3 \
                   AND (lease_until IS NULL OR lease_until <= $3)";
        // Only the highest priority that has a due row, and not below the floor, so a batch
        // never mixes offboarding with bulk work.
        let one_priority = if one_priority_from.is_some() {
            format!(
                "AND priority >= $5 AND priority = (SELECT priority FROM outbox WHERE {due} \
                                                    ORDER BY priority DESC LIMIT 1)"
            )
        } else {
            String::new()
        };
        let sql = format!(
            "UPDATE outbox SET leased_by = $1, lease_until = $2 \
             WHERE id IN (SELECT id FROM outbox WHERE {due} {one_priority} \
                          ORDER BY priority DESC, enqueued_at, id LIMIT $4{}) \
             RETURNING {OUTBOX_COLUMNS}",
            DIALECT.skip_locked
        );
        let mut tx = self.begin_write().await?;
        let mut query = sqlx::query_as(&sql)
            .bind(worker_id)
            .bind(now + lease)
            .bind(now)
            .bind(i64::from(limit));
        if let Some(floor) = one_priority_from {
            query = query.bind(floor.as_i32());
        }
        let rows: Vec<OutboxRow> = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let mut events = outbox_events(rows);
        // RETURNING does not keep the subquery's order.
        events.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.enqueued_at.cmp(&b.enqueued_at))
                .then(a.id.cmp(&b.id))
        });
        Ok(events)
    }

    pub(crate) async fn outbox_complete(&self, event: &OutboxEvent) -> StoreResult<Completion> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM outbox WHERE id = $1 AND generation = $2")
            .bind(event.id)
            .bind(event.generation)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed > 0 {
            tx.commit().await?;
            return Ok(Completion::Removed);
        }
        // A newer write bumped the generation: release the row so it runs again at once. The
        // attempt that just succeeded resets the failure count.
        let released = sqlx::query(
            "UPDATE outbox SET leased_by = NULL, lease_until = NULL, attempts = 0, last_error = NULL \
             WHERE id = $1 AND leased_by = $2",
        )
        .bind(event.id)
        .bind(event.leased_by.as_deref())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let still_queued = released > 0 || outbox_row_exists(&mut tx, event.id).await?;
        self.commit_queued(tx).await?;
        Ok(if still_queued {
            Completion::NewerChangePending
        } else {
            Completion::Removed
        })
    }

    /// Release a claimed row until `at` with `reason`, counting a failed attempt or not.
    /// Returns false when the lease was no longer this worker's (it expired and was taken
    /// over), in which case nothing changes.
    pub(crate) async fn outbox_retry_later(
        &self,
        event: &OutboxEvent,
        reason: &str,
        at: DateTime<Utc>,
        count_attempt: bool,
    ) -> StoreResult<bool> {
        // If a newer write arrived meanwhile, the failure may not apply to the new state: retry
        // it now rather than after the backoff.
        let released = sqlx::query(
            "UPDATE outbox SET attempts = attempts + $1, last_error = $2, \
               next_attempt_at = CASE WHEN generation = $3 THEN $4 ELSE $5 END, \
               leased_by = NULL, lease_until = NULL \
             WHERE id = $6 AND leased_by = $7",
        )
        .bind(i32::from(count_attempt))
        .bind(reason)
        .bind(event.generation)
        .bind(at)
        .bind(self.now())
        .bind(event.id)
        .bind(event.leased_by.as_deref())
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(released.rows_affected() > 0)
    }

    /// Every waiting row (not dead, not leased) becomes due now, its attempts kept.
    pub(crate) async fn outbox_due_now(&self) -> StoreResult<u64> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let count = sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1 \
             WHERE dead_at IS NULL AND next_attempt_at > $1 \
               AND (lease_until IS NULL OR lease_until <= $1)",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.commit_queued(tx).await?;
        Ok(count)
    }

    pub(crate) async fn outbox_dead_letter(
        &self,
        event: &OutboxEvent,
        reason: &str,
    ) -> StoreResult<bool> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let dead = sqlx::query(
            "UPDATE outbox SET dead_at = $1, dead_reason = $2, last_error = $2, leased_by = NULL, lease_until = NULL \
             WHERE id = $3 AND generation = $4 AND leased_by = $5",
        )
        .bind(now)
        .bind(reason)
        .bind(event.id)
        .bind(event.generation)
        .bind(event.leased_by.as_deref())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !dead {
            // A newer write may succeed where this one could not: give it its chance.
            sqlx::query(
                "UPDATE outbox SET leased_by = NULL, lease_until = NULL, last_error = $1, next_attempt_at = $2 \
                 WHERE id = $3 AND leased_by = $4",
            )
            .bind(reason)
            .bind(now)
            .bind(event.id)
            .bind(event.leased_by.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(dead)
    }

    pub(crate) async fn outbox_release_leases(&self, worker_id: &str) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let released = sqlx::query(
            "UPDATE outbox SET leased_by = NULL, lease_until = NULL WHERE leased_by = $1",
        )
        .bind(worker_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.commit_queued(tx).await?;
        Ok(released)
    }

    pub(crate) async fn outbox_release_all_leases(&self) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let released = sqlx::query(
            "UPDATE outbox SET leased_by = NULL, lease_until = NULL WHERE leased_by IS NOT NULL",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.commit_queued(tx).await?;
        Ok(released)
    }

    pub(crate) async fn outbox_stats(&self) -> StoreResult<OutboxStats> {
        let (depth, retrying, dead, oldest): (i64, i64, i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN dead_at IS NULL THEN 1 ELSE 0 END), 0), \
                    COALESCE(SUM(CASE WHEN dead_at IS NULL AND attempts > 0 THEN 1 ELSE 0 END), 0), \
                    COALESCE(SUM(CASE WHEN dead_at IS NOT NULL THEN 1 ELSE 0 END), 0), \
                    MIN(CASE WHEN dead_at IS NULL THEN enqueued_at END) \
             FROM outbox",
        )
        .fetch_one(&self.read)
        .await?;
        let oldest_age = oldest.map(|at| (self.now() - at).max(Duration::zero()));
        Ok(OutboxStats {
            depth,
            oldest_age,
            retrying,
            dead,
        })
    }

    pub(crate) async fn outbox_list(
        &self,
        filter: OutboxFilter,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEvent>> {
        let condition = match filter {
            OutboxFilter::All => "1 = 1",
            OutboxFilter::Pending => "dead_at IS NULL",
            OutboxFilter::Retrying => "dead_at IS NULL AND attempts > 0",
            OutboxFilter::Dead => "dead_at IS NOT NULL",
        };
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE {condition} ORDER BY priority DESC, enqueued_at, id LIMIT $1"
        );
        let rows: Vec<OutboxRow> = sqlx::query_as(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        Ok(outbox_events(rows))
    }

    pub(crate) async fn outbox_retry(&self, target: RetryTarget) -> StoreResult<u64> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let reset = "UPDATE outbox SET dead_at = NULL, dead_reason = NULL, attempts = 0, next_attempt_at = $1, \
                     leased_by = NULL, lease_until = NULL";
        let (sql, id) = match target {
            RetryTarget::One(id) => (format!("{reset} WHERE id = $2"), Some(id)),
            RetryTarget::AllDead => (format!("{reset} WHERE dead_at IS NOT NULL"), None),
        };
        let mut query = sqlx::query(&sql).bind(now);
        if let Some(id) = id {
            query = query.bind(id);
        }
        let count = query.execute(&mut *tx).await?.rows_affected();
        if count == 0
            && let RetryTarget::One(id) = target
        {
            return Err(StoreError::NotFound(format!("outbox row {id}")));
        }
        self.commit_queued(tx).await?;
        Ok(count)
    }

    // ----- audit -----

    pub(crate) async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<AuditRecord> {
        let mut tx = self.begin_write().await?;
        self.forget_audit_tip().await;
        let row = append_audit_in(&mut tx, entry, self.now(), self.audit_key()).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(row.into_record())
    }

    pub(crate) async fn audit_export(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<AuditRecord>> {
        let mut query = QueryBuilder::<Db>::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log"));
        if let Some(since) = since {
            query.push(" WHERE time >= ").push_bind(since);
        }
        query.push(" ORDER BY seq");
        let rows: Vec<AuditRow> = query.build_query_as().fetch_all(&self.read).await?;
        Ok(rows.into_iter().map(AuditRow::into_record).collect())
    }

    pub(crate) async fn audit_verify(&self, expected: &[AuditHead]) -> StoreResult<VerifyReport> {
        let keys = &self.shared.audit_keys;
        let mut tx = self.begin_read().await?;
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        let (mut prev_seq, mut prev_hash) = (0i64, GENESIS_HASH.to_string());
        let (mut checked, mut keyed, mut newest_keyed) = (0u64, 0u64, false);
        let broken = |seq: i64, reason: String, checked: u64, keyed: u64| VerifyReport {
            checked,
            keyed,
            first_broken: Some((seq, reason)),
        };
        if let Some(reason) = expected
            .iter()
            .find_map(|head| head_missed(head, 0, GENESIS_HASH))
        {
            return Ok(broken(0, reason, checked, keyed));
        }
        loop {
            let page: Vec<AuditRow> = sqlx::query_as(&sql)
                .bind(prev_seq)
                .bind(VERIFY_PAGE)
                .fetch_all(&mut *tx)
                .await?;
            let Some(last) = page.last().map(|row| row.seq) else {
                break;
            };
            for row in page {
                checked += 1;
                newest_keyed = row.key_id.is_some();
                keyed += u64::from(newest_keyed);
                let reason = row.chain_break(prev_seq, &prev_hash, keys).or_else(|| {
                    expected
                        .iter()
                        .find_map(|head| head_missed(head, row.seq, &row.hash))
                });
                if let Some(reason) = reason {
                    return Ok(broken(row.seq, reason, checked, keyed));
                }
                prev_seq = row.seq;
                prev_hash = row.hash;
            }
            debug_assert_eq!(prev_seq, last);
        }
        // The head is written with every append: a log that ends before it lost its tail.
        let (head_seq, head_hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        let beyond = expected
            .iter()
            .filter(|head| head.seq > prev_seq)
            .max_by_key(|head| head.seq);
        let first_broken = if head_seq != prev_seq || head_hash != prev_hash {
            Some((
                prev_seq + 1,
                format!("the log ends at seq {prev_seq} but its head records seq {head_seq}"),
            ))
        } else if let Some(head) = beyond {
            Some((
                prev_seq + 1,
                format!(
                    "the log ends at seq {prev_seq}, before the expected head {head}: \
                     records were removed"
                ),
            ))
        } else if keys.current().is_some() && checked > 0 && !newest_keyed {
            // Every record up to the newest keyed one is covered by the key; an unkeyed newest
            // record is what a chain recomputed without the key ends in.
            Some((
                prev_seq,
                "the newest record is not keyed although an audit key is configured: the chain \
                 was recomputed without the key, or nothing was appended since the key was set"
                    .to_string(),
            ))
        } else {
            None
        };
        Ok(VerifyReport {
            checked,
            keyed,
            first_broken,
        })
    }

    pub(crate) async fn audit_head(&self) -> StoreResult<AuditHead> {
        let mut tx = self.begin_read().await?;
        let newest: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        let newest = newest.map_or_else(AuditHead::genesis, |(seq, hash)| AuditHead { seq, hash });
        let recorded = AuditHead { seq, hash };
        if newest != recorded {
            return Err(StoreError::invalid_value(format!(
                "the audit log ends at {newest} but its head row records {recorded}: the log was \
                 changed outside the bridge"
            )));
        }
        Ok(newest)
    }

    pub(crate) async fn audit_record_key(&self) -> StoreResult<Option<AuditRecord>> {
        let Some(key) = self.audit_key() else {
            return Ok(None);
        };
        let mut tx = self.begin_write().await?;
        // Lock the tip first (PostgreSQL), so replicas starting together record the key once.
        audit_head_stmt().execute(&mut tx).await?;
        let newest: Option<(Option<String>,)> =
            sqlx::query_as("SELECT key_id FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let previous = newest.and_then(|(id,)| id);
        if previous.as_deref() == Some(key.id()) {
            tx.rollback().await?;
            return Ok(None);
        }
        let entry = AuditEntry {
            request_id: self.shared.ids.uuid_v4().to_string(),
            actor: None,
            source_addr: None,
            operation: "audit.key".to_string(),
            resource_type: None,
            resource_id: None,
            change: json!({ "key_id": key.id(), "previous_key_id": previous }),
            result: "ok".to_string(),
        };
        self.forget_audit_tip().await;
        let row = append_audit_in(&mut tx, &entry, self.now(), Some(key)).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(Some(row.into_record()))
    }

    // ----- tokens -----

    pub(crate) async fn token_create(
        &self,
        name: &str,
        expires_at: Option<DateTime<Utc>>,
        scopes: Scopes,
    ) -> StoreResult<String> {
        token::check_name(name)?;
        token::check_scopes(scopes)?;
        let now = self.now();
        let mut tx = self.begin_write().await?;
        // An expired token keeps its name until revoked; a new token under the name retires it.
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 \
             WHERE name = $2 AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1",
        )
        .bind(now)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let plaintext = token::generate(self.shared.ids.as_ref());
        let new = NewToken {
            name,
            plaintext: &plaintext,
            scopes,
            source: TokenSource::Cli,
            expires_at,
        };
        insert_token(&mut tx, &new, now).await?;
        let change = json!({ "expires_at": expires_at, "scopes": scopes.to_string() });
        self.forget_audit_tip().await;
        let entry = token_audit(self.shared.ids.as_ref(), "token.create", name, change);
        append_audit_in(&mut tx, &entry, now, self.audit_key()).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(plaintext)
    }

    pub(crate) async fn token_import(
        &self,
        name: &str,
        plaintext: &str,
        scopes: Scopes,
    ) -> StoreResult<TokenImport> {
        token::check_name(name)?;
        token::check_imported_token(plaintext)?;
        token::check_scopes(scopes)?;
        let now = self.now();
        let digest = hex::encode(token::digest(plaintext));
        let mut tx = self.begin_write().await?;
        let existing: Option<(String, Option<DateTime<Utc>>, String, String)> = sqlx::query_as(
            "SELECT name, revoked_at, scopes, source FROM api_tokens WHERE token_sha256 = $1",
        )
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        match existing {
            Some((existing_name, None, stored, source)) if existing_name == name => {
                let rescoped = token::stored_scopes(name, &stored) != scopes;
                // A token the file names is the file's, even one made before sources were
                // recorded: removing its line revokes it.
                let adopted = TokenSource::from_stored(&source) != TokenSource::File;
                if !rescoped && !adopted {
                    return Ok(TokenImport::Unchanged);
                }
                sqlx::query(
                    "UPDATE api_tokens SET scopes = $1, source = $2 WHERE token_sha256 = $3",
                )
                .bind(scopes.to_string())
                .bind(TokenSource::File.as_str())
                .bind(&digest)
                .execute(&mut *tx)
                .await?;
                let change =
                    json!({ "scopes": scopes.to_string(), "source": TokenSource::File.as_str() });
                self.forget_audit_tip().await;
                let entry = token_audit(self.shared.ids.as_ref(), "token.import", name, change);
                append_audit_in(&mut tx, &entry, now, self.audit_key()).await?;
                tx.commit().await?;
                self.durable().await?;
                return Ok(if rescoped {
                    TokenImport::Rescoped
                } else {
                    TokenImport::Unchanged
                });
            }
            Some((existing_name, Some(_), _, _)) if existing_name == name => {
                // A stale secret file must not bring a revoked token back.
                return Err(StoreError::invalid_value(format!(
                    "token \"{name}\" was revoked; supply a new one"
                )));
            }
            Some(_) => {
                return Err(StoreError::Uniqueness(
                    "this token is already registered under another name".into(),
                ));
            }
            None => {}
        }
        // A token made with `token create` is the operator's: the file never replaces it.
        let cli_owned: Option<(String,)> = sqlx::query_as(
            "SELECT name FROM api_tokens WHERE name = $1 AND revoked_at IS NULL AND source = $2",
        )
        .bind(name)
        .bind(TokenSource::Cli.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if cli_owned.is_some() {
            return Err(StoreError::Uniqueness(format!(
                "an active token named \"{name}\" was made with `token create`; the tokens file \
                 does not replace it: revoke it first or use another name"
            )));
        }
        // The secret file is the source of truth: a different token under the same name
        // replaces the old one.
        let rotated = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        let new = NewToken {
            name,
            plaintext,
            scopes,
            source: TokenSource::File,
            expires_at: None,
        };
        insert_token(&mut tx, &new, now).await?;
        let change = json!({ "rotated": rotated, "scopes": scopes.to_string() });
        self.forget_audit_tip().await;
        let entry = token_audit(self.shared.ids.as_ref(), "token.import", name, change);
        append_audit_in(&mut tx, &entry, now, self.audit_key()).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(if rotated {
            TokenImport::Rotated
        } else {
            TokenImport::Created
        })
    }

    pub(crate) async fn token_list(&self) -> StoreResult<Vec<TokenInfo>> {
        type Row = (
            String,
            String,
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT name, scopes, source, created_at, expires_at, revoked_at, last_used_at \
             FROM api_tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(name, scopes, source, created_at, expires_at, revoked_at, last_used_at)| {
                    TokenInfo {
                        scopes: token::stored_scopes(&name, &scopes),
                        source: TokenSource::from_stored(&source),
                        name,
                        created_at,
                        expires_at,
                        revoked_at,
                        last_used_at,
                    }
                },
            )
            .collect())
    }

    pub(crate) async fn token_revoke(&self, name: &str) -> StoreResult<()> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if revoked == 0 {
            return Err(StoreError::NotFound(format!(
                "no active token named \"{name}\""
            )));
        }
        self.forget_audit_tip().await;
        let entry = token_audit(self.shared.ids.as_ref(), "token.revoke", name, json!({}));
        append_audit_in(&mut tx, &entry, now, self.audit_key()).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(())
    }

    pub(crate) async fn token_revoke_removed_from_file(
        &self,
        names_in_file: &[&str],
    ) -> StoreResult<Vec<String>> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let active: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM api_tokens WHERE source = $1 AND revoked_at IS NULL ORDER BY name",
        )
        .bind(TokenSource::File.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let removed: Vec<String> = active
            .into_iter()
            .map(|(name,)| name)
            .filter(|name| !names_in_file.contains(&name.as_str()))
            .collect();
        if removed.is_empty() {
            return Ok(removed);
        }
        self.forget_audit_tip().await;
        for name in &removed {
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 \
                 WHERE name = $2 AND source = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(name)
            .bind(TokenSource::File.as_str())
            .execute(&mut *tx)
            .await?;
            let mut entry = token_audit(
                self.shared.ids.as_ref(),
                "token.revoke",
                name,
                json!({ "reason": "removed from the tokens file" }),
            );
            entry.actor = Some(TOKENS_FILE_ACTOR.to_string());
            append_audit_in(&mut tx, &entry, now, self.audit_key()).await?;
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(removed)
    }

    pub(crate) async fn token_mark_used(&self, name: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(self.now())
        .bind(name)
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(())
    }

    pub(crate) async fn token_verifier(&self) -> StoreResult<TokenVerifier> {
        let rows: Vec<(String, String, String, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT name, scopes, token_sha256, expires_at FROM api_tokens WHERE revoked_at IS NULL",
        )
        .fetch_all(&self.read)
        .await?;
        let entries = rows
            .into_iter()
            .filter_map(|(name, scopes, digest, expires_at)| {
                let digest = <[u8; 32]>::try_from(hex::decode(digest).ok()?).ok()?;
                Some(VerifierEntry {
                    scopes: token::stored_scopes(&name, &scopes),
                    name,
                    digest,
                    expires_at,
                })
            })
            .collect();
        Ok(TokenVerifier::new(entries, self.shared.clock.clone()))
    }

    // ----- Coder mapping -----

    pub(crate) async fn coder_user_get(&self, scim_id: &str) -> StoreResult<Option<CoderUser>> {
        let sql = format!("SELECT {CODER_USER_COLUMNS} FROM coder_users WHERE scim_id = $1");
        let row: Option<CoderUserRow> = sqlx::query_as(&sql)
            .bind(scim_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(CoderUserRow::into_mapping).transpose()?)
    }

    pub(crate) async fn coder_user_by_username(
        &self,
        username: &str,
    ) -> StoreResult<Option<CoderUser>> {
        let sql =
            format!("SELECT {CODER_USER_COLUMNS} FROM coder_users WHERE coder_username_key = $1");
        let row: Option<CoderUserRow> = sqlx::query_as(&sql)
            .bind(fold_case(username))
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(CoderUserRow::into_mapping).transpose()?)
    }

    pub(crate) async fn coder_user_by_coder_id(
        &self,
        coder_user_id: uuid::Uuid,
    ) -> StoreResult<Option<CoderUser>> {
        let sql = format!("SELECT {CODER_USER_COLUMNS} FROM coder_users WHERE coder_user_id = $1");
        let row: Option<CoderUserRow> = sqlx::query_as(&sql)
            .bind(coder_user_id.to_string())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(CoderUserRow::into_mapping).transpose()?)
    }

    pub(crate) async fn coder_user_list(&self) -> StoreResult<Vec<CoderUser>> {
        let sql =
            format!("SELECT {CODER_USER_COLUMNS} FROM coder_users ORDER BY coder_username_key");
        let rows: Vec<CoderUserRow> = sqlx::query_as(&sql).fetch_all(&self.read).await?;
        Ok(rows
            .into_iter()
            .map(CoderUserRow::into_mapping)
            .collect::<Result<_, _>>()?)
    }

    pub(crate) async fn coder_user_upsert(&self, user: &CoderUser) -> StoreResult<()> {
        upsert_coder_user(self.writer().await?.get()?, user, self.now()).await
    }

    pub(crate) async fn coder_user_save(
        &self,
        user: &CoderUser,
        queue_groups: &[String],
    ) -> StoreResult<()> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        upsert_coder_user(&mut tx, user, now).await?;
        sqlx::query("DELETE FROM coder_user_intents WHERE scim_id = $1")
            .bind(&user.scim_id)
            .execute(&mut *tx)
            .await?;
        for group in queue_groups {
            enqueue_in(
                &mut tx,
                ResourceKind::Group,
                group,
                OutboxPriority::Normal,
                now,
            )
            .await?;
        }
        if queue_groups.is_empty() {
            tx.commit().await?;
            Ok(())
        } else {
            self.commit_queued(tx).await
        }
    }

    pub(crate) async fn coder_user_intent_record(
        &self,
        intent: &CoderUserIntent,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO coder_user_intents (scim_id, coder_username, email, created_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scim_id) DO UPDATE SET coder_username = excluded.coder_username, \
               email = excluded.email, created_at = excluded.created_at",
        )
        .bind(&intent.scim_id)
        .bind(&intent.coder_username)
        .bind(&intent.email)
        .bind(self.now())
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(())
    }

    pub(crate) async fn coder_user_intent_get(
        &self,
        scim_id: &str,
    ) -> StoreResult<Option<CoderUserIntent>> {
        Ok(sqlx::query_as(
            "SELECT scim_id, coder_username, email, created_at FROM coder_user_intents \
             WHERE scim_id = $1",
        )
        .bind(scim_id)
        .fetch_optional(&self.read)
        .await?)
    }

    pub(crate) async fn coder_user_intent_delete(&self, scim_id: &str) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM coder_user_intents WHERE scim_id = $1")
            .bind(scim_id)
            .execute(self.writer().await?.get()?)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    pub(crate) async fn coder_user_delete(&self, scim_id: &str) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM coder_users WHERE scim_id = $1")
            .bind(scim_id)
            .execute(self.writer().await?.get()?)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    pub(crate) async fn coder_group_get(&self, scim_id: &str) -> StoreResult<Option<CoderGroup>> {
        let sql = format!("SELECT {CODER_GROUP_COLUMNS} FROM coder_groups WHERE scim_id = $1");
        let row: Option<CoderGroupRow> = sqlx::query_as(&sql)
            .bind(scim_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(CoderGroupRow::into_mapping).transpose()?)
    }

    pub(crate) async fn coder_group_list(&self) -> StoreResult<Vec<CoderGroup>> {
        let sql = format!("SELECT {CODER_GROUP_COLUMNS} FROM coder_groups ORDER BY coder_name");
        let rows: Vec<CoderGroupRow> = sqlx::query_as(&sql).fetch_all(&self.read).await?;
        Ok(rows
            .into_iter()
            .map(CoderGroupRow::into_mapping)
            .collect::<Result<_, _>>()?)
    }

    pub(crate) async fn coder_group_upsert(&self, group: &CoderGroup) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO coder_groups (scim_id, coder_group_id, organization_id, coder_name, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (scim_id) DO UPDATE SET coder_group_id = excluded.coder_group_id, \
               organization_id = excluded.organization_id, coder_name = excluded.coder_name, \
               updated_at = excluded.updated_at",
        )
        .bind(&group.scim_id)
        .bind(group.coder_group_id.to_string())
        .bind(group.organization_id.to_string())
        .bind(&group.coder_name)
        .bind(self.now())
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(())
    }

    pub(crate) async fn coder_group_delete(&self, scim_id: &str) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM coder_groups WHERE scim_id = $1")
            .bind(scim_id)
            .execute(self.writer().await?.get()?)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    pub(crate) async fn sync_issue_record(
        &self,
        kind: ResourceKind,
        resource_id: &str,
        issue_type: &str,
        detail: &str,
    ) -> StoreResult<i64> {
        // One open issue per (resource, type): recording it again refreshes the detail.
        Ok(sqlx::query_scalar(
            "INSERT INTO sync_issues (kind, resource_id, issue_type, detail, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (kind, resource_id, issue_type) WHERE resolved_at IS NULL \
             DO UPDATE SET detail = excluded.detail RETURNING id",
        )
        .bind(kind.name())
        .bind(resource_id)
        .bind(issue_type)
        .bind(detail)
        .bind(self.now())
        .fetch_one(self.writer().await?.get()?)
        .await?)
    }

    pub(crate) async fn sync_issue_resolve(
        &self,
        kind: ResourceKind,
        resource_id: &str,
        issue_type: &str,
    ) -> StoreResult<bool> {
        let resolved = sqlx::query(
            "UPDATE sync_issues SET resolved_at = $1 \
             WHERE kind = $2 AND resource_id = $3 AND issue_type = $4 AND resolved_at IS NULL",
        )
        .bind(self.now())
        .bind(kind.name())
        .bind(resource_id)
        .bind(issue_type)
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(resolved.rows_affected() > 0)
    }

    pub(crate) async fn sync_issue_list(
        &self,
        include_resolved: bool,
    ) -> StoreResult<Vec<SyncIssue>> {
        let condition = if include_resolved {
            ""
        } else {
            " WHERE resolved_at IS NULL"
        };
        let sql = format!(
            "SELECT id, kind, resource_id, issue_type, detail, created_at, resolved_at FROM sync_issues{condition} \
             ORDER BY created_at, id"
        );
        Ok(sqlx::query_as(&sql).fetch_all(&self.read).await?)
    }

    pub(crate) async fn sync_issue_delete(&self, id: i64) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM sync_issues WHERE id = $1")
            .bind(id)
            .execute(self.writer().await?.get()?)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }
}

const OUTBOX_COLUMNS: &str = "id, kind, resource_id, priority, generation, enqueued_at, next_attempt_at, attempts, \
                              last_error, leased_by, lease_until, dead_at, dead_reason";
const AUDIT_COLUMNS: &str = "seq, time, request_id, actor, source_addr, operation, resource_type, resource_id, \
                             change, result, prev_hash, hash, key_id";
const CODER_USER_COLUMNS: &str =
    "scim_id, coder_user_id, coder_username, login_type, adopted, last_applied, updated_at";
const CODER_GROUP_COLUMNS: &str =
    "scim_id, coder_group_id, organization_id, coder_name, updated_at";

fn not_found(kind: ResourceKind, id: &str) -> StoreError {
    StoreError::NotFound(format!("{} {id} not found", kind.name()))
}

/// A unique-index violation as the 409 the client should see (the pre-check inside the
/// transaction catches the common case; this catches a race between PostgreSQL replicas).
fn unique_violation(error: sqlx::Error, detail: impl FnOnce() -> String) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Uniqueness(detail()),
        _ => StoreError::Database(error),
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
        (ResourceKind::User, None) => OutboxPriority::Offboarding,
        (ResourceKind::User, Some(after)) if active(before) && !active(after) => {
            OutboxPriority::Offboarding
        }
        _ => OutboxPriority::Normal,
    }
}

fn outbox_events(rows: Vec<OutboxRow>) -> Vec<OutboxEvent> {
    rows.into_iter()
        .filter_map(|row| {
            let id = row.id;
            let event = row.into_event();
            if event.is_none() {
                tracing::warn!(
                    outbox_id = id,
                    "outbox row names an unknown resource kind; skipped"
                );
            }
            event
        })
        .collect()
}

fn member_values(members: &[Member]) -> Vec<&str> {
    members.iter().map(|m| m.value.as_str()).collect()
}

/// The audit actor of what the IdP tokens file does at start-up.
const TOKENS_FILE_ACTOR: &str = "tokens-file";

fn token_audit(ids: &dyn IdSource, operation: &str, name: &str, change: Value) -> AuditEntry {
    AuditEntry {
        request_id: ids.uuid_v4().to_string(),
        actor: None,
        source_addr: None,
        operation: operation.to_string(),
        resource_type: Some("Token".to_string()),
        resource_id: Some(name.to_string()),
        change,
        result: "ok".to_string(),
    }
}

// ----- statements used inside transactions -----

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

/// Check that every member names an existing User or Group, and learn its kind. Duplicates are
/// folded (the first `display` wins). An unknown id is a 400 `invalidValue`: a membership row
/// needs its member, and the IdPs only add members they have provisioned (Entra adds nested
/// groups by their SCIM id, which exist here).
async fn resolve_members(
    conn: &mut Conn,
    group_id: &str,
    inputs: Vec<MemberInput>,
) -> StoreResult<Vec<Member>> {
    let mut seen = HashSet::new();
    let inputs: Vec<MemberInput> = inputs
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
        kinds.extend(
            rows.into_iter()
                .filter_map(|(id, kind)| Some((id, kind_from_str(&kind)?))),
        );
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
            "members {shown}{more} are not existing Users or Groups"
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
async fn insert_members(
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
    inputs: &[MemberInput],
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
fn distinct_members<'a>(
    group_id: &str,
    inputs: &'a [MemberInput],
) -> StoreResult<Vec<&'a MemberInput>> {
    let mut seen = HashSet::new();
    let inputs: Vec<&MemberInput> = inputs.iter().filter(|m| seen.insert(&m.value)).collect();
    if inputs.iter().any(|m| m.value == group_id) {
        return Err(StoreError::invalid_value(
            "a group cannot be a member of itself",
        ));
    }
    Ok(inputs)
}

/// Insert the members that exist as resources and are not members yet, each with its kind
/// found by a join, if the group exists; returns the ids inserted.
fn add_members_stmt(group_id: &str, members: &[&MemberInput], now: DateTime<Utc>) -> Stmt {
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
async fn replace_members(
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

/// Load members (Groups) or groups (Users) for `resources`, all of kind `kind`, as `options`
/// asks; one query per chunk of resources, never one per resource.
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

async fn attach_relations(
    conn: &mut Conn,
    kind: ResourceKind,
    resources: &mut [StoredResource],
    options: GetOptions,
) -> StoreResult<()> {
    let wanted = match kind {
        ResourceKind::Group => options.members,
        ResourceKind::User => options.groups,
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
        ResourceKind::User => {
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

async fn load_members(
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

async fn upsert_coder_user(
    conn: &mut Conn,
    user: &CoderUser,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO coder_users (scim_id, coder_user_id, coder_username, coder_username_key, login_type, \
                                  adopted, last_applied, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (scim_id) DO UPDATE SET coder_user_id = excluded.coder_user_id, \
           coder_username = excluded.coder_username, coder_username_key = excluded.coder_username_key, \
           login_type = excluded.login_type, adopted = excluded.adopted, \
           last_applied = excluded.last_applied, updated_at = excluded.updated_at",
    )
    .bind(&user.scim_id)
    .bind(user.coder_user_id.to_string())
    .bind(&user.coder_username)
    .bind(fold_case(&user.coder_username))
    .bind(&user.login_type)
    .bind(user.adopted)
    .bind(user.last_applied.to_string())
    .bind(now)
    .execute(conn)
    .await
    .map_err(|e| {
        unique_violation(e, || {
            format!(
                "Coder username \"{}\" is already mapped to another user",
                user.coder_username
            )
        })
    })?;
    Ok(())
}

/// Queue `kind`/`id` for reconciliation, coalescing into its existing row: the generation is
/// bumped (so an in-flight claim does not remove it), the higher priority kept, the original
/// enqueue time kept (FIFO fairness), the row made due now (a row backing off after failures
/// retries with the new state; its attempt count stays, so a persistent failure keeps backing
/// off) and a dead-lettered row revived.
fn enqueue_stmt(
    kind: ResourceKind,
    id: &str,
    priority: OutboxPriority,
    now: DateTime<Utc>,
    guard: Guard,
) -> Stmt {
    let source = match guard {
        Guard::Always => "VALUES ($1, $2, $3, 1, $4, $4, 0)",
        // `WHERE` also keeps SQLite from reading the upsert's ON CONFLICT as part of the SELECT.
        Guard::AfterChange => "SELECT $1, $2, $3, 1, $4, $4, 0 WHERE changes() = 1",
    };
    Stmt::new(format!(
        "INSERT INTO outbox (kind, resource_id, priority, generation, enqueued_at, next_attempt_at, attempts) \
         {source} \
         ON CONFLICT (kind, resource_id) DO UPDATE SET \
           generation = outbox.generation + 1, \
           priority = CASE WHEN excluded.priority > outbox.priority THEN excluded.priority ELSE outbox.priority END, \
           next_attempt_at = CASE WHEN outbox.next_attempt_at < excluded.next_attempt_at \
                                  THEN outbox.next_attempt_at ELSE excluded.next_attempt_at END, \
           attempts = CASE WHEN outbox.dead_at IS NULL THEN outbox.attempts ELSE 0 END, \
           dead_at = NULL, dead_reason = NULL",
    ))
    .text(kind.name())
    .text(id)
    .int(i64::from(priority.as_i32()))
    .time(now)
}

async fn enqueue_in(
    conn: &mut Conn,
    kind: ResourceKind,
    id: &str,
    priority: OutboxPriority,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    enqueue_stmt(kind, id, priority, now, Guard::Always)
        .execute(conn)
        .await?;
    Ok(())
}

async fn outbox_row_exists(conn: &mut Conn, id: i64) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// Why the chain fails to reach `expected` at the record (`seq`, `hash`), if it is that record's.
fn head_missed(expected: &AuditHead, seq: i64, hash: &str) -> Option<String> {
    (expected.seq == seq && expected.hash != hash).then(|| {
        format!(
            "record {seq} has hash {hash}, not the expected head {expected}: the chain was \
             rewritten at or before it"
        )
    })
}

/// Append to the audit chain. The head row is read with a row lock (PostgreSQL) or under the
/// single writer (SQLite), so concurrent appends form one linear chain. Appended last in a
/// transaction, so the lock is held only until the commit that follows.
async fn append_audit_in(
    conn: &mut Conn,
    entry: &AuditEntry,
    now: DateTime<Utc>,
    key: Option<&AuditKey>,
) -> StoreResult<AuditRow> {
    let (seq, prev_hash): (i64, String) = audit_head_stmt()
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Database(sqlx::Error::RowNotFound))?;
    let row = AuditRow::chained(entry, seq + 1, now, prev_hash, key);
    for stmt in audit_append_stmts(&row, Guard::Always) {
        stmt.execute(&mut *conn).await?;
    }
    Ok(row)
}

/// `append_audit_in` inside a batched write: the head is read with the statements queued
/// before it, and the record is written with the COMMIT.
async fn append_audit_batched(
    tx: &mut WriteTx,
    entry: &AuditEntry,
    now: DateTime<Utc>,
    key: Option<&AuditKey>,
) -> StoreResult<AuditRow> {
    let (seq, prev_hash): (i64, String) = match tx.audit_head.take() {
        Some(head) => head,
        None => tx
            .fetch_optional(audit_head_stmt())
            .await?
            .ok_or_else(|| StoreError::Database(sqlx::Error::RowNotFound))?,
    };
    let row = AuditRow::chained(entry, seq + 1, now, prev_hash, key);
    for stmt in audit_append_stmts(&row, Guard::Always) {
        tx.defer(stmt).await?;
    }
    Ok(row)
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
            self.audit_head = Some(head);
            Ok((rows.into_iter().next(), ran.then_some(ids)))
        } else {
            let row = self
                .fetch_optional(select_stmt(kind, id, DIALECT.lock_row))
                .await?;
            Ok((row, None))
        }
    }
}

/// The audit entry of a SCIM write.
fn audit_entry(ctx: &WriteContext, record: WriteRecord<'_>) -> AuditEntry {
    let operation = if ctx.operation.is_empty() {
        format!("{} {}", record.verb, record.kind.name())
    } else {
        ctx.operation.clone()
    };
    AuditEntry {
        request_id: ctx.request_id.clone(),
        actor: ctx.token_name.clone(),
        source_addr: ctx.source_addr.clone(),
        operation,
        resource_type: Some(record.kind.name().to_string()),
        resource_id: Some(record.id.to_string()),
        change: record.change,
        result: "ok".to_string(),
    }
}

/// Whether a statement always runs, or only when the statement before it changed a row
/// (SQLite's `changes()`; see `Backend::add_one_member`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Guard {
    Always,
    AfterChange,
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

fn audit_head_stmt() -> Stmt {
    Stmt::new(format!(
        "SELECT seq, hash FROM audit_head WHERE id = 1{}",
        DIALECT.lock_row
    ))
}

fn audit_append_stmts(row: &AuditRow, guard: Guard) -> [Stmt; 2] {
    let (source, and) = match guard {
        Guard::Always => (
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            "",
        ),
        Guard::AfterChange => (
            "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 WHERE changes() = 1",
            " AND changes() = 1",
        ),
    };
    [
        Stmt::new(format!(
            "INSERT INTO audit_log (seq, time, request_id, actor, source_addr, operation, resource_type, resource_id, \
                                    change, result, prev_hash, hash, key_id) {source}"
        ))
        .int(row.seq)
        .time(row.time)
        .text(row.request_id.clone())
        .opt_text(row.actor.clone())
        .opt_text(row.source_addr.clone())
        .text(row.operation.clone())
        .opt_text(row.resource_type.clone())
        .opt_text(row.resource_id.clone())
        .text(row.change.clone())
        .text(row.result.clone())
        .text(row.prev_hash.clone())
        .text(row.hash.clone())
        .opt_text(row.key_id.clone()),
        Stmt::new(format!(
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1{and}"
        ))
        .int(row.seq)
        .text(row.hash.clone()),
    ]
}

/// A token about to be stored.
struct NewToken<'a> {
    name: &'a str,
    plaintext: &'a str,
    scopes: Scopes,
    source: TokenSource,
    expires_at: Option<DateTime<Utc>>,
}

async fn insert_token(conn: &mut Conn, new: &NewToken<'_>, now: DateTime<Utc>) -> StoreResult<()> {
    let name = new.name;
    sqlx::query(
        "INSERT INTO api_tokens (name, token_sha256, scopes, source, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(name)
    .bind(hex::encode(token::digest(new.plaintext)))
    .bind(new.scopes.to_string())
    .bind(new.source.as_str())
    .bind(now)
    .bind(new.expires_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        unique_violation(e, || {
            format!("a token named \"{name}\" is already active; revoke it first")
        })
    })?;
    Ok(())
}

/// The member ids a PATCH added and removed, in order.
#[derive(Debug, Default)]
struct MembershipDelta {
    added: Vec<String>,
    removed: Vec<String>,
}

impl MembershipDelta {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Apply one member change as row inserts and deletes. A member removed and re-added in
    /// the same request (the validator does this) nets out.
    async fn apply(
        &mut self,
        conn: &mut Conn,
        group_id: &str,
        change: MemberChange,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (added, removed) = match change {
            MemberChange::Add(refs) => {
                let inputs = member_inputs(refs);
                let (added, asked) = add_members(conn, group_id, &inputs, now).await?;
                check_added(conn, group_id, inputs, added.len(), asked).await?;
                (added, Vec::new())
            }
            MemberChange::Remove(ids) => (Vec::new(), delete_members(conn, group_id, &ids).await?),
            MemberChange::Clear => (Vec::new(), clear_members(conn, group_id).await?),
            MemberChange::Replace(refs) => {
                let members = resolve_members(conn, group_id, member_inputs(refs)).await?;
                replace_members(conn, group_id, &members, now).await?
            }
        };
        self.merge(added, removed);
        Ok(())
    }

    /// Record rows added and removed by one change: a removal cancels an earlier add of the
    /// same id and an add an earlier removal. Set lookups, so a PATCH that adds and removes
    /// thousands of members stays linear.
    fn merge(&mut self, added: Vec<String>, removed: Vec<String>) {
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
async fn check_added(
    conn: &mut Conn,
    group_id: &str,
    inputs: Vec<MemberInput>,
    added: usize,
    asked: usize,
) -> StoreResult<()> {
    if added < asked {
        resolve_members(conn, group_id, inputs).await?;
    }
    Ok(())
}

/// The member a Group PATCH adds when that is all it does.
fn one_member_added(plan: &GroupPatchPlan) -> Option<MemberInput> {
    match plan.steps.as_slice() {
        [GroupPatchStep::Members(MemberChange::Add(refs))] => match refs.as_slice() {
            [one] => Some(MemberInput {
                value: one.value.clone(),
                display: one.display.clone(),
            }),
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
) -> Option<(Stmt, (Vec<MemberInput>, usize))> {
    let Some(GroupPatchStep::Members(MemberChange::Add(refs))) = plan.steps.first() else {
        return None;
    };
    if !DIALECT.batch || refs.len() > CHUNK {
        return None;
    }
    let inputs = member_inputs(refs.clone());
    // A group among its own members is reported by the usual path, after the read.
    let distinct = distinct_members(group_id, &inputs).ok()?;
    let stmt = add_members_stmt(group_id, &distinct, now);
    let asked = distinct.len();
    Some((stmt, (inputs, asked)))
}

fn member_inputs(refs: Vec<MemberRef>) -> Vec<MemberInput> {
    refs.into_iter()
        .map(|m| MemberInput {
            value: m.value,
            display: m.display,
        })
        .collect()
}

fn member_refs(inputs: Vec<MemberInput>) -> Vec<MemberRef> {
    inputs
        .into_iter()
        .map(|m| MemberRef {
            value: m.value,
            display: m.display,
            r#type: None,
            reference: None,
        })
        .collect()
}

/// Apply PATCH operations to a resource's attributes with the protocol core. The core sees the
/// resource as served (with `id`: Okta's rename repeats it); what comes back is split into the
/// stored attributes and, for a Group, the member list it holds (if any).
/// Attributes after a PATCH, and the member list they held (Groups, when present).
type PatchedAttributes = (Map<String, Value>, Option<Vec<MemberInput>>);

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

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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

/// The resource kind as a SQL literal. Never a bound parameter: the unique name indexes are
/// partial (`WHERE kind = 'User'`), and SQLite re-prepares a statement on every execution when
/// a bound value decides whether such an index applies.
fn kind_literal(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::User => "'User'",
        ResourceKind::Group => "'Group'",
    }
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

async fn clear_members(conn: &mut Conn, group_id: &str) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("DELETE FROM group_members WHERE group_id = $1 RETURNING member_id")
            .bind(group_id)
            .fetch_all(&mut *conn)
            .await?,
    )
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
