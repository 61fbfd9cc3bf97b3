//! The PostgreSQL backend, for several replicas sharing one database.
//!
//! Read-modify-write operations lock the resource row (`FOR NO KEY UPDATE`, which does not
//! block foreign-key checks from membership inserts); outbox claims use `FOR UPDATE SKIP LOCKED`
//! so replicas share the queue without waiting on each other; commits that queue work also
//! `NOTIFY` other replicas' workers.

use crate::Shared;
use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::outbox::OUTBOX_CHANNEL;
use sqlx::postgres::{PgListener, PgPoolOptions};
use std::sync::Arc;

pub(crate) type Db = sqlx::Postgres;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub(crate) const DIALECT: Dialect = Dialect {
    begin_write: "BEGIN",
    // One snapshot for a listing's count and its page.
    begin_read: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    lock_row: " FOR NO KEY UPDATE",
    skip_locked: " FOR UPDATE SKIP LOCKED",
    notify: Some("SELECT pg_notify($1, '')"),
    batch: false,
};

// The same engine source is compiled for each backend on purpose (see engine.rs).
#[allow(clippy::duplicate_mod)]
#[path = "engine.rs"]
mod engine;

/// The store on PostgreSQL.
pub type PgStore = engine::Backend;

pub(crate) async fn connect(
    url: &str,
    max_connections: u32,
    shared: Arc<Shared>,
) -> StoreResult<PgStore> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(2))
        .connect(url)
        .await?;
    Ok(engine::Backend::new(pool.clone(), pool, shared))
}

impl PgStore {
    /// A listener on [`OUTBOX_CHANNEL`], for wake-ups from other replicas' commits.
    pub(crate) async fn listen(&self) -> StoreResult<PgListener> {
        let mut listener = PgListener::connect_with(self.write_pool()).await?;
        listener.listen(OUTBOX_CHANNEL).await?;
        Ok(listener)
    }
}
