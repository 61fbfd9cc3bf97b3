//! The bridge's system of record: SCIM Users and Groups, Group membership rows, the outbox the
//! Coder worker drains, the hash-chained audit log, bearer tokens, OAuth clients, and the
//! worker's Coder mapping tables — over SQLite (embedded, one replica) or PostgreSQL (several
//! replicas), chosen at start-up from the database URL.
//!
//! Every SCIM write is one transaction holding the resource change, an outbox row naming the
//! resource to reconcile, and an audit record; the caller gets its result only after the commit.
//! The HTTP layer never calls Coder: the worker converges Coder from the outbox.
//!
//! Where things live:
//! - `api/`: the public surface, one handle per capability ([`Resources`], [`Outbox`],
//!   [`Audit`], [`Tokens`], [`CoderMap`], …), each operation documented there once;
//! - the records and their rules, one file each: `resource.rs`, `outbox.rs`, `audit.rs`,
//!   `audit_delivery.rs`, `token.rs`, `oauth_client.rs`, `coder_map.rs`, `scope.rs`;
//! - `engine/`: the SQL and transactions, one file per concern, written once and compiled for
//!   each backend;
//! - `sqlite/` and `postgres/`: connecting, migrations and what each backend does its own way
//!   (SQLite's writer lot, group commit, batched statements and one-round-trip paths;
//!   PostgreSQL's plain statements and NOTIFY), chosen at compile time; `dialect.rs` the SQL
//!   text that differs;
//! - `coalesce.rs` (`userName eq` lookups sharing a statement), `copy.rs` (SQLite into
//!   PostgreSQL), `schema.rs` (migration state), `clock.rs` (time and ids, from `crates/clock`).
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

mod api;
mod audit;
mod audit_delivery;
mod clock;
mod coalesce;
mod coder_map;
mod copy;
mod dialect;
mod error;
mod oauth_client;
mod outbox;
mod postgres;
mod resource;
mod schema;
mod scope;
mod sqlite;
mod token;

pub use api::{
    Audit, AuditStream, CoderMap, Health, OAuthClients, Outbox, OutboxReader, ResourceReader,
    Resources, ServiceSecrets, SyncIssues, Tokens,
};
pub use audit::{
    AuditEntry, AuditHead, AuditKey, AuditKeys, AuditRecord, GENESIS_HASH, MIN_AUDIT_KEY_LEN,
    VerifyReport,
};
pub use audit_delivery::{DeliveryCursor, DeliveryLag};
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
            $crate::Store::Sqlite($backend) => $call,
            $crate::Store::Postgres($backend) => $call,
        }
    };
}
pub(crate) use on_backend;

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

    /// The clock the store was opened with: what a command builds around the store (the HTTP
    /// service, the worker, the Coder client) takes this one, so a run has one clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        on_backend!(self, b => b.shared().clock.clone())
    }

    /// The id and secret source the store was opened with, shared the same way as
    /// [`Store::clock`].
    pub fn ids(&self) -> Arc<dyn IdSource> {
        on_backend!(self, b => b.shared().ids.clone())
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
}
