//! The bridge's system of record: SCIM Users and Groups, Group membership rows, the outbox the
//! Coder worker drains, the hash-chained audit log, bearer tokens, OAuth clients, and the
//! worker's Coder mapping tables — over SQLite (embedded, one replica) or PostgreSQL (several
//! replicas), chosen at start-up from the database URL.
//!
//! Every SCIM write is one transaction holding the resource change, an outbox row naming the
//! resource to reconcile, and an audit record; the caller gets its result only after the commit.
//! The HTTP layer never calls Coder: the worker converges Coder from the outbox.
//!
//! Decisions:
//! - **Passwords are not stored**, not even hashed. Coder users sign in through OIDC (or GitHub),
//!   so the bridge never checks a SCIM password; keeping a hash would only be a liability. A
//!   write that carried one is marked `"password": "[redacted]"` in its audit record.
//! - **A write that changes nothing** (Entra re-sends `active: true` every cycle; Okta re-PUTs
//!   unchanged users) keeps its version, queues nothing and is not audited.
//! - **Unknown members** (an id that is neither a stored User nor Group) are a 400
//!   `invalidValue`: a membership row needs its member. Entra's nested groups are SCIM Groups
//!   here and are accepted.
//! - **A PUT without `members`** keeps the Group's membership (RFC 7644 §3.5.1 allows keeping
//!   omitted attributes; a rename must not empty a large group). `members: []` empties it.
//! - **Filters**: `id`, `externalId`, User `userName` and Group `displayName` `eq`, and
//!   `meta.lastModified` ranges, run in SQL; the rest of a filter is evaluated in memory over
//!   the SQL candidates, read in pages. A filter (or a `sortBy`) whose candidate set exceeds
//!   [`StoreOptions::max_filter_candidates`] is refused with 400 `tooMany` rather than scanning
//!   without bound. Such a scan keeps only the page: matches before it are counted (so
//!   `totalResults` stays exact), and a `sortBy` keeps its first `startIndex + count` in a
//!   bounded heap ([`scim::query::TopK`]) instead of sorting every match.
//! - **Listing order** is `created`, then `id`: stable across pages (Okta pages until
//!   `totalResults`) even while resources are added.

mod audit;
mod clock;
mod coalesce;
mod coder_map;
mod copy;
mod dialect;
mod durability;
mod error;
mod oauth_client;
mod outbox;
mod postgres;
mod resource;
mod schema;
mod scope;
mod sqlite;
mod token;

pub use audit::{
    AuditEntry, AuditHead, AuditKey, AuditKeys, AuditRecord, GENESIS_HASH, MIN_AUDIT_KEY_LEN,
    VerifyReport,
};
pub use clock::{Clock, IdSource, ManualClock, SeededIds, SystemClock, SystemIds};
pub use coder_map::{CoderGroup, CoderUser, CoderUserIntent, SyncIssue};
pub use copy::CopyReport;
pub use error::{StoreError, StoreResult};
pub use oauth_client::{CLIENT_ID_PREFIX, ClientCheck, NewOAuthClient, OAuthClientInfo};
pub use outbox::{
    Completion, OUTBOX_CHANNEL, OutboxEvent, OutboxFilter, OutboxPriority, OutboxStats,
    OutboxWakeups, RetryTarget,
};
pub use postgres::PgStore;
pub use resource::{GetOptions, GroupRef, ListPage, Member, StoredResource, WriteContext, etag};
pub use schema::SchemaStatus;
pub use scope::{Scope, Scopes, UnknownScope};
pub use sqlite::SqliteStore;
pub use token::{
    MIN_IMPORTED_TOKEN_BITS, TOKEN_PREFIX, TokenImport, TokenInfo, TokenSource, TokenVerifier,
    VerifiedToken, check_imported_token,
};

use chrono::{DateTime, Duration, Utc};
use scim::ResourceKind;
use scim::patch::{PatchOptions, PatchRequest};
use scim::query::ListQuery;
use scim::resource::ResourceBody;
use std::sync::Arc;
use tokio::sync::Notify;

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The source of every timestamp the store writes.
    pub clock: Arc<dyn Clock>,
    /// The source of resource ids, request ids of the store's own audit records, and token and
    /// client secrets.
    pub ids: Arc<dyn IdSource>,
    /// Read connections (SQLite) or connections in all (PostgreSQL).
    pub max_connections: u32,
    /// Run the embedded migrations on connect (the binary's `migrate` subcommand turns this off
    /// for servers and runs them once).
    pub run_migrations: bool,
    /// How long a SQLite connection waits for a lock before failing.
    pub busy_timeout: std::time::Duration,
    /// The most resources a filter or sort may evaluate in memory before the list is refused
    /// with 400 `tooMany`.
    pub max_filter_candidates: u64,
    /// The keys of the audit chain's HMAC (none: plain SHA-256). The first hashes every record
    /// this store appends; all of them verify.
    pub audit_keys: AuditKeys,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            clock: Arc::new(SystemClock),
            ids: Arc::new(SystemIds),
            max_connections: 8,
            run_migrations: true,
            busy_timeout: std::time::Duration::from_secs(5),
            max_filter_candidates: 100_000,
            audit_keys: AuditKeys::default(),
        }
    }
}

impl StoreOptions {
    /// The defaults with `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        StoreOptions {
            clock,
            ..StoreOptions::default()
        }
    }
}

/// State both backends share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdSource>,
    /// Fired after every commit that queued outbox work.
    pub outbox_notify: Arc<Notify>,
    pub max_filter_candidates: u64,
    /// SQLite's group commit; PostgreSQL commits durably by itself.
    pub wal_sync: Option<durability::WalSync>,
    /// The audit chain's tip after this process's last resource write (SQLite), taken with the
    /// writer: a POST extends it without reading it first. `None` when unknown.
    pub audit_tip: Arc<tokio::sync::Mutex<Option<(i64, String)>>>,
    /// Every audit hash this store computes or checks is keyed with these.
    pub audit_keys: AuditKeys,
    /// `userName eq` lookups waiting to share a statement (see coalesce.rs), keyed by the
    /// folded userName.
    pub user_lookups: coalesce::Coalescer<String, Vec<StoredResource>>,
}

/// The store: SQLite or PostgreSQL, chosen by [`Store::connect`]. Cheap to clone (pools and
/// `Arc`s).
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Call the same engine method on whichever backend this is.
macro_rules! on_backend {
    ($store:expr, $backend:ident => $call:expr) => {
        match $store {
            Store::Sqlite($backend) => $call,
            Store::Postgres($backend) => $call,
        }
    };
}

impl Store {
    /// Open the store named by `url`: `sqlite://path` (created if missing; WAL,
    /// `synchronous=FULL`, foreign keys on) or `postgres://…`. Runs the migrations unless
    /// `options.run_migrations` is off.
    pub async fn connect(url: &str, options: StoreOptions) -> StoreResult<Store> {
        let shared = Arc::new(Shared {
            clock: options.clock.clone(),
            ids: options.ids.clone(),
            outbox_notify: Arc::new(Notify::new()),
            max_filter_candidates: options.max_filter_candidates,
            wal_sync: sqlite::database_file(url)?.map(durability::WalSync::new),
            audit_tip: Arc::default(),
            audit_keys: options.audit_keys.clone(),
            user_lookups: coalesce::Coalescer::default(),
        });
        let store = if url.starts_with("sqlite:") {
            Store::Sqlite(
                sqlite::connect(url, options.max_connections, options.busy_timeout, shared).await?,
            )
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::Postgres(postgres::connect(url, options.max_connections, shared).await?)
        } else {
            return Err(StoreError::invalid_value(
                "the database URL must start with sqlite:// or postgres://",
            ));
        };
        if options.run_migrations {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// `sqlite` or `postgres`, for logs and `/readyz`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Apply the embedded migrations (`migrations/sqlite` or `migrations/postgres`).
    pub async fn migrate(&self) -> StoreResult<()> {
        on_backend!(self, b => b.migrate().await)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        on_backend!(self, b => b.ping().await)
    }

    /// Whether every embedded migration has been applied unchanged, and no other.
    pub async fn migrations_current(&self) -> StoreResult<bool> {
        Ok(self.schema_status().await? == SchemaStatus::Current)
    }

    /// Where the schema stands against this build's migrations (reads only).
    pub async fn schema_status(&self) -> StoreResult<SchemaStatus> {
        on_backend!(self, b => b.schema_status().await)
    }

    /// Copy `source` (SQLite) into this store (PostgreSQL), which must be migrated and empty:
    /// every table row for row (ids, versions, timestamps, JSON text, token digests, outbox
    /// rows), the audit chain's tip, and the id sequences moved past the copied ids. One
    /// PostgreSQL transaction, all or nothing; the source is read as one snapshot. 400
    /// `invalidValue` when the target already holds data, for any other pair of backends, or
    /// when a schema is not this version's.
    pub async fn copy_from(&self, source: &Store) -> StoreResult<CopyReport> {
        match (source, self) {
            (Store::Sqlite(from), Store::Postgres(into)) => {
                copy::sqlite_into_postgres(from, into).await
            }
            _ => Err(StoreError::invalid_value(format!(
                "a store is copied from SQLite into PostgreSQL only, not from {} into {}",
                source.backend_name(),
                self.backend_name()
            ))),
        }
    }

    // ----- resources -----

    /// Create a resource (POST). The store generates the id. 409 `uniqueness` when the User's
    /// `userName` or the Group's `displayName` is taken ignoring case; 400 `invalidValue` when
    /// it is missing or a member does not exist. A Group's `members` become membership rows.
    pub async fn create(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        body: ResourceBody,
    ) -> StoreResult<StoredResource> {
        let password_supplied = body.password.is_some();
        on_backend!(self, b => b.create(ctx, kind, body.attrs, password_supplied).await)
    }

    /// Read a resource. `options` says whether to load a Group's members / a User's groups.
    pub async fn get(
        &self,
        kind: ResourceKind,
        id: &str,
        options: GetOptions,
    ) -> StoreResult<StoredResource> {
        on_backend!(self, b => b.get(kind, id, options).await)
    }

    /// Replace a resource (PUT) with `body`. See [`Store::replace_with`].
    pub async fn replace(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
        body: ResourceBody,
    ) -> StoreResult<StoredResource> {
        self.replace_with(ctx, kind, id, if_match, |_| Ok(body))
            .await
    }

    /// Replace a resource (PUT) with the body `next` computes from the current resource (e.g.
    /// with `scim::resource::replace`, which keeps readOnly and immutable attributes). `next`
    /// runs inside the write transaction with the row locked, so nothing changes between the
    /// read and the write. `current.members` is not loaded (`None`). 404 when absent, 412 when
    /// `if_match` names another version. The result carries no members or groups.
    pub async fn replace_with<F>(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
        next: F,
    ) -> StoreResult<StoredResource>
    where
        F: FnOnce(&StoredResource) -> scim::ScimResult<ResourceBody> + Send,
    {
        let next = |current: &StoredResource| {
            let body = next(current)?;
            Ok((body.attrs, body.password.is_some()))
        };
        on_backend!(self, b => b.replace_with(ctx, kind, id, if_match, next).await)
    }

    /// Apply a PATCH (RFC 7644 §3.5.2) in one transaction holding the row lock, so parallel
    /// PATCHes to one group never lose an update. Group member operations become row inserts
    /// and deletes without loading the members (`scim::patch::plan_group_patch`); re-adding a
    /// member is a no-op. A password in the request is dropped (see the crate docs). The result
    /// carries no members or groups.
    pub async fn patch(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
        request: &PatchRequest,
        options: &PatchOptions,
    ) -> StoreResult<StoredResource> {
        let mut request = request.clone();
        let password_supplied = request.take_password()?.is_some();
        on_backend!(self, b => b.patch(ctx, kind, id, if_match, &request, password_supplied, options).await)
    }

    /// Delete a resource; its membership rows go with it. 404 when absent (also on a second
    /// DELETE), 412 on an `if_match` mismatch.
    pub async fn delete(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
    ) -> StoreResult<()> {
        on_backend!(self, b => b.delete(ctx, kind, id, if_match).await)
    }

    /// List resources matching `query`'s filter, sorted by `sortBy` or else in the stable
    /// (created, id) order, paged by `startIndex`/`count` (count capped at
    /// `scim::query::MAX_RESULTS`). `options` says whether to load members/groups for the
    /// page (use [`GetOptions::for_projection`]).
    pub async fn list(
        &self,
        kind: ResourceKind,
        query: &ListQuery,
        options: GetOptions,
    ) -> StoreResult<ListPage> {
        on_backend!(self, b => b.list(kind, query, options).await)
    }

    // ----- outbox -----

    /// Queue a resource for reconciliation outside a SCIM write (drift repair, operator).
    pub async fn enqueue(
        &self,
        kind: ResourceKind,
        id: &str,
        priority: OutboxPriority,
    ) -> StoreResult<()> {
        on_backend!(self, b => b.enqueue(kind, id, priority).await)
    }

    /// Lease up to `limit` due rows to `worker_id` for `lease`: highest priority first, then
    /// oldest. Rows whose lease ran out are taken over. On PostgreSQL, rows another replica is
    /// claiming are skipped (`FOR UPDATE SKIP LOCKED`).
    pub async fn outbox_claim(
        &self,
        worker_id: &str,
        lease: Duration,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEvent>> {
        on_backend!(self, b => b.outbox_claim(worker_id, lease, limit, None).await)
    }

    /// As [`Store::outbox_claim`], but every row claimed has one priority: the highest that has
    /// a due row (offboarding rows are claimed, alone, before any other), and nothing when that
    /// is below `at_least` (the worker claims only offboarding rows while one is in flight).
    pub async fn outbox_claim_priority(
        &self,
        worker_id: &str,
        lease: Duration,
        limit: u32,
        at_least: OutboxPriority,
    ) -> StoreResult<Vec<OutboxEvent>> {
        on_backend!(self, b => b.outbox_claim(worker_id, lease, limit, Some(at_least)).await)
    }

    /// Make every waiting row due now, keeping its attempt count: Coder is back after an
    /// outage, so what waited for it should not wait out a backoff. Returns how many.
    pub async fn outbox_due_now(&self) -> StoreResult<u64> {
        on_backend!(self, b => b.outbox_due_now().await)
    }

    /// The worker applied the state it read: remove the row, unless a write came in after the
    /// claim, in which case the row is released to run again.
    pub async fn outbox_complete(&self, event: &OutboxEvent) -> StoreResult<Completion> {
        on_backend!(self, b => b.outbox_complete(event).await)
    }

    /// The attempt failed: count it, record `error`, release the lease, and retry at
    /// `next_attempt_at` (the worker computes the backoff). A row a newer write touched since
    /// the claim is due at once instead. Nothing changes when this worker no longer held the
    /// lease (it expired and another worker took the row over).
    pub async fn outbox_fail(
        &self,
        event: &OutboxEvent,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let released =
            on_backend!(self, b => b.outbox_retry_later(event, error, next_attempt_at, true).await);
        released.map(drop)
    }

    /// Put a claimed row back until `until` without counting a failed attempt: Coder asked the
    /// bridge to slow down (429 with `Retry-After`) or refused its credentials, which says
    /// nothing about this resource and must not bring it closer to the dead-letter queue.
    /// Otherwise as [`Store::outbox_fail`]; returns false when the lease was no longer held.
    pub async fn outbox_defer(
        &self,
        event: &OutboxEvent,
        reason: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        on_backend!(self, b => b.outbox_retry_later(event, reason, until, false).await)
    }

    /// Give up on the row (it stays, dead, for an operator). Returns false, and releases the
    /// row instead, when a newer write arrived since the claim.
    pub async fn outbox_dead_letter(&self, event: &OutboxEvent, reason: &str) -> StoreResult<bool> {
        on_backend!(self, b => b.outbox_dead_letter(event, reason).await)
    }

    /// Release every lease `worker_id` holds (graceful shutdown). Returns how many.
    pub async fn outbox_release_leases(&self, worker_id: &str) -> StoreResult<u64> {
        on_backend!(self, b => b.outbox_release_leases(worker_id).await)
    }

    /// Release every lease, whoever holds it. Only for a store one process serves (SQLite: a
    /// lease found at start-up was left by this replica's previous, crashed run), so its rows
    /// are retried at once instead of after the lease runs out.
    pub async fn outbox_release_all_leases(&self) -> StoreResult<u64> {
        on_backend!(self, b => b.outbox_release_all_leases().await)
    }

    /// Depth, oldest age, retrying and dead counts.
    pub async fn outbox_stats(&self) -> StoreResult<OutboxStats> {
        on_backend!(self, b => b.outbox_stats().await)
    }

    /// Rows matching `filter`, in claim order.
    pub async fn outbox_list(
        &self,
        filter: OutboxFilter,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEvent>> {
        on_backend!(self, b => b.outbox_list(filter, limit).await)
    }

    /// Make rows due now with a fresh attempt count (reviving dead ones). Returns how many.
    pub async fn outbox_retry(&self, target: RetryTarget) -> StoreResult<u64> {
        on_backend!(self, b => b.outbox_retry(target).await)
    }

    /// The in-process notification fired after every commit that queued outbox work.
    pub fn outbox_notified(&self) -> Arc<Notify> {
        on_backend!(self, b => b.shared().outbox_notify.clone())
    }

    /// Wake-ups for the worker: local commits, plus (PostgreSQL) other replicas' commits via
    /// `LISTEN scim_bridge_outbox`.
    pub async fn outbox_wakeups(&self) -> StoreResult<OutboxWakeups> {
        let local = self.outbox_notified();
        let remote = match self {
            Store::Sqlite(_) => None,
            Store::Postgres(pg) => Some(pg.listen().await?),
        };
        Ok(OutboxWakeups { local, remote })
    }

    // ----- audit -----

    /// Append a record that is not part of a SCIM write (the worker's Coder calls, operator
    /// actions). Secrets in `change` are redacted.
    pub async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<AuditRecord> {
        on_backend!(self, b => b.append_audit(entry).await)
    }

    /// Every record, or those at or after `since`, in chain order.
    pub async fn audit_export(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<AuditRecord>> {
        on_backend!(self, b => b.audit_export(since).await)
    }

    /// Recompute the chain (with the store's audit keys) and report the first record that does
    /// not verify. With keys, the newest record must be keyed: a chain recomputed without the
    /// key ends in an unkeyed record.
    pub async fn audit_verify(&self) -> StoreResult<VerifyReport> {
        self.audit_verify_expecting(&[]).await
    }

    /// [`Store::audit_verify`], and the chain must still reach each of `expected` (heads
    /// exported earlier): a record cut off or rewritten at or before one of them is reported.
    pub async fn audit_verify_expecting(
        &self,
        expected: &[AuditHead],
    ) -> StoreResult<VerifyReport> {
        on_backend!(self, b => b.audit_verify(expected).await)
    }

    /// The newest record's seq and hash ([`AuditHead::genesis`] for an empty chain), to export
    /// as an anchor. Fails when the log and its head row disagree (the log was cut or the head
    /// row changed outside the bridge); the chain itself is not verified.
    pub async fn audit_head(&self) -> StoreResult<AuditHead> {
        on_backend!(self, b => b.audit_head().await)
    }

    /// Append an `audit.key` record when the newest record is not keyed with the current
    /// audit key (the key was just set or rotated), so that the chain ends in a keyed record
    /// from start-up on and the trail shows when the key changed. Returns it, or `None` when
    /// there is no key or the newest record already uses it.
    pub async fn audit_record_key(&self) -> StoreResult<Option<AuditRecord>> {
        on_backend!(self, b => b.audit_record_key().await)
    }

    // ----- tokens -----

    /// Make a bearer token named `name` holding `scopes` (source [`TokenSource::Cli`]) and
    /// return it; only its SHA-256 is kept. Several tokens may be active (rotation), but not two
    /// with the same name (409). An empty scope set is refused.
    pub async fn token_create(
        &self,
        name: &str,
        expires_at: Option<DateTime<Utc>>,
        scopes: Scopes,
    ) -> StoreResult<String> {
        on_backend!(self, b => b.token_create(name, expires_at, scopes).await)
    }

    /// Register a token supplied from the IdP tokens file (source [`TokenSource::File`]);
    /// idempotent. A different token under an existing name replaces it, other scopes for the
    /// same token replace its scopes; a revoked token is refused.
    pub async fn token_import(
        &self,
        name: &str,
        plaintext: &str,
        scopes: Scopes,
    ) -> StoreResult<TokenImport> {
        on_backend!(self, b => b.token_import(name, plaintext, scopes).await)
    }

    /// All tokens ever made, oldest first, without their secrets.
    pub async fn token_list(&self) -> StoreResult<Vec<TokenInfo>> {
        on_backend!(self, b => b.token_list().await)
    }

    /// Revoke the active token named `name` (404 if none).
    pub async fn token_revoke(&self, name: &str) -> StoreResult<()> {
        on_backend!(self, b => b.token_revoke(name).await)
    }

    /// Revoke every active token imported from the tokens file whose name is not in
    /// `names_in_file`, each with an audit record (actor `tokens-file`), in one transaction;
    /// returns the names revoked. Tokens made with `token create` are never touched.
    pub async fn token_revoke_removed_from_file(
        &self,
        names_in_file: &[&str],
    ) -> StoreResult<Vec<String>> {
        on_backend!(self, b => b.token_revoke_removed_from_file(names_in_file).await)
    }

    /// Record that `name` was used. A write per call: the server should call it at most about
    /// once a minute per token.
    pub async fn token_mark_used(&self, name: &str) -> StoreResult<()> {
        on_backend!(self, b => b.token_mark_used(name).await)
    }

    /// A snapshot of the active tokens for constant-time checks of presented tokens.
    pub async fn token_verifier(&self) -> StoreResult<TokenVerifier> {
        on_backend!(self, b => b.token_verifier().await)
    }

    // ----- OAuth clients -----

    /// Make an OAuth client named `name` whose access tokens may hold at most `scopes`, and
    /// return its id and secret; only the secret's SHA-256 is kept. 409 when an active client
    /// has the name; an empty scope set is refused. Audited.
    pub async fn oauth_client_create(
        &self,
        name: &str,
        scopes: Scopes,
    ) -> StoreResult<NewOAuthClient> {
        on_backend!(self, b => b.oauth_client_create(name, scopes).await)
    }

    /// All clients ever made, oldest first, without their secrets.
    pub async fn oauth_client_list(&self) -> StoreResult<Vec<OAuthClientInfo>> {
        on_backend!(self, b => b.oauth_client_list().await)
    }

    /// Revoke the active client named `name` (404 if none): it gets no new access token.
    /// Audited.
    pub async fn oauth_client_revoke(&self, name: &str) -> StoreResult<()> {
        on_backend!(self, b => b.oauth_client_revoke(name).await)
    }

    /// Check a presented client id and secret (the secret in constant time).
    pub async fn oauth_client_check(
        &self,
        client_id: &str,
        secret: &str,
    ) -> StoreResult<ClientCheck> {
        on_backend!(self, b => b.oauth_client_check(client_id, secret).await)
    }

    /// The ids of revoked clients, whose access tokens still unexpired the server refuses.
    pub async fn oauth_clients_revoked(&self) -> StoreResult<Vec<String>> {
        on_backend!(self, b => b.oauth_clients_revoked().await)
    }

    // ----- Coder mapping -----

    /// The Coder user a SCIM User maps to.
    pub async fn coder_user_get(&self, scim_id: &str) -> StoreResult<Option<CoderUser>> {
        on_backend!(self, b => b.coder_user_get(scim_id).await)
    }

    /// The mapping holding a Coder username, ignoring case.
    pub async fn coder_user_by_username(&self, username: &str) -> StoreResult<Option<CoderUser>> {
        on_backend!(self, b => b.coder_user_by_username(username).await)
    }

    /// The mapping to the Coder user with this id.
    pub async fn coder_user_by_coder_id(
        &self,
        coder_user_id: uuid::Uuid,
    ) -> StoreResult<Option<CoderUser>> {
        on_backend!(self, b => b.coder_user_by_coder_id(coder_user_id).await)
    }

    /// All user mappings, by username.
    pub async fn coder_user_list(&self) -> StoreResult<Vec<CoderUser>> {
        on_backend!(self, b => b.coder_user_list().await)
    }

    /// Insert or update a user mapping (`updated_at` is set from the clock). 409 when the Coder
    /// username is mapped to another SCIM user.
    pub async fn coder_user_upsert(&self, user: &CoderUser) -> StoreResult<()> {
        on_backend!(self, b => b.coder_user_upsert(user).await)
    }

    /// Save a mapping that changes which Coder user a SCIM User is (a creation, an adoption, a
    /// re-creation), removing the user's create intent and queueing `queue_groups` in the same
    /// transaction: a Coder group's
    /// membership is written by the group's own reconcile only, so the groups of a user that
    /// just got a Coder user must run again, and a crash cannot separate the two.
    pub async fn coder_user_save(
        &self,
        user: &CoderUser,
        queue_groups: &[String],
    ) -> StoreResult<()> {
        on_backend!(self, b => b.coder_user_save(user, queue_groups).await)
    }

    /// Record the Coder user create about to be sent for `intent.scim_id` (replacing an
    /// earlier one).
    pub async fn coder_user_intent_record(&self, intent: &CoderUserIntent) -> StoreResult<()> {
        on_backend!(self, b => b.coder_user_intent_record(intent).await)
    }

    /// The create last recorded for a SCIM User and not yet followed by a saved mapping.
    pub async fn coder_user_intent_get(
        &self,
        scim_id: &str,
    ) -> StoreResult<Option<CoderUserIntent>> {
        on_backend!(self, b => b.coder_user_intent_get(scim_id).await)
    }

    /// Forget a SCIM User's create intent; false if there was none.
    pub async fn coder_user_intent_delete(&self, scim_id: &str) -> StoreResult<bool> {
        on_backend!(self, b => b.coder_user_intent_delete(scim_id).await)
    }

    /// Remove a user mapping; false if there was none.
    pub async fn coder_user_delete(&self, scim_id: &str) -> StoreResult<bool> {
        on_backend!(self, b => b.coder_user_delete(scim_id).await)
    }

    /// The Coder group a SCIM Group maps to.
    pub async fn coder_group_get(&self, scim_id: &str) -> StoreResult<Option<CoderGroup>> {
        on_backend!(self, b => b.coder_group_get(scim_id).await)
    }

    /// All group mappings, by name.
    pub async fn coder_group_list(&self) -> StoreResult<Vec<CoderGroup>> {
        on_backend!(self, b => b.coder_group_list().await)
    }

    /// Insert or update a group mapping (`updated_at` is set from the clock).
    pub async fn coder_group_upsert(&self, group: &CoderGroup) -> StoreResult<()> {
        on_backend!(self, b => b.coder_group_upsert(group).await)
    }

    /// Remove a group mapping; false if there was none.
    pub async fn coder_group_delete(&self, scim_id: &str) -> StoreResult<bool> {
        on_backend!(self, b => b.coder_group_delete(scim_id).await)
    }

    /// Open (or refresh the detail of) the issue `issue_type` for a resource; returns its id.
    pub async fn sync_issue_record(
        &self,
        kind: ResourceKind,
        resource_id: &str,
        issue_type: &str,
        detail: &str,
    ) -> StoreResult<i64> {
        on_backend!(self, b => b.sync_issue_record(kind, resource_id, issue_type, detail).await)
    }

    /// Mark the open issue resolved; false if none was open.
    pub async fn sync_issue_resolve(
        &self,
        kind: ResourceKind,
        resource_id: &str,
        issue_type: &str,
    ) -> StoreResult<bool> {
        on_backend!(self, b => b.sync_issue_resolve(kind, resource_id, issue_type).await)
    }

    /// Open issues (and resolved ones when asked), oldest first.
    pub async fn sync_issue_list(&self, include_resolved: bool) -> StoreResult<Vec<SyncIssue>> {
        on_backend!(self, b => b.sync_issue_list(include_resolved).await)
    }

    /// Delete an issue; false if there was none.
    pub async fn sync_issue_delete(&self, id: i64) -> StoreResult<bool> {
        on_backend!(self, b => b.sync_issue_delete(id).await)
    }
}
