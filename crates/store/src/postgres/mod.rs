//! The PostgreSQL backend, for several replicas sharing one database.
//!
//! Read-modify-write operations lock the resource row (`FOR NO KEY UPDATE`, which does not
//! block foreign-key checks from membership inserts); outbox claims use `FOR UPDATE SKIP LOCKED`
//! so replicas share the queue without waiting on each other; commits that queue work also
//! `NOTIFY` other replicas' workers.
//!
//! What PostgreSQL does its own way, for the shared engine (`engine/`) to call, is in
//! `writes.rs`: statements sent as they come, no cached audit tip, no one-round-trip paths.
//!
//! TLS is whatever the URL says (`sslmode=verify-full&sslrootcert=/path/ca.crt`, sqlx's libpq
//! parameters); nothing here overrides it.

use crate::Shared;
use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::outbox::OUTBOX_CHANNEL;
use sqlx::postgres::{PgListener, PgPoolOptions};
use std::sync::Arc;

pub(crate) type Db = sqlx::Postgres;

/// How long a request waits for a database connection before it is answered 503.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub(crate) const DIALECT: Dialect = Dialect {
    begin_write: "BEGIN",
    // One snapshot for a listing's count and its page.
    begin_read: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    lock_row: " FOR NO KEY UPDATE",
    skip_locked: " FOR UPDATE SKIP LOCKED",
};

// The same engine source is compiled for each backend on purpose (see engine/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "../engine/mod.rs"]
mod engine;

mod writes;

use self::writes::{HeldTip, WritePath};

/// The store on PostgreSQL.
pub type PgStore = engine::Backend;

pub(crate) async fn connect(
    url: &str,
    max_connections: u32,
    shared: Arc<Shared>,
) -> StoreResult<PgStore> {
    check_root_certificate(url)?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(2))
        // While the server is away (a restart, a failover) sqlx keeps retrying the connection
        // until this runs out: it bounds how long a request waits before its 503 (sqlx's
        // default is 30 s), so the IdP learns soon that it should retry later.
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A connection the server closed while idle (a restart ends every session) is found
        // dead by a ping and replaced, rather than failing the next request. sqlx's default,
        // stated because recovery depends on it.
        .test_before_acquire(true)
        .connect(url)
        .await?;
    Ok(engine::Backend::new(pool.clone(), pool, WritePath, shared))
}

/// A root certificate named in the URL must be readable. sqlx reads it only once the server has
/// agreed to TLS, and then says no more than "No such file or directory".
fn check_root_certificate(url: &str) -> StoreResult<()> {
    // sqlx reports a malformed URL itself.
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(());
    };
    for (key, value) in parsed.query_pairs() {
        // sqlx's names for libpq's `sslrootcert`; a value may also be the PEM itself.
        if matches!(key.as_ref(), "sslrootcert" | "ssl-root-cert" | "ssl-ca")
            && !value.starts_with("-----BEGIN")
            && let Err(e) = std::fs::File::open(value.as_ref())
        {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                format!("sslrootcert {value}: cannot read the root certificate: {e}").into(),
            )));
        }
    }
    Ok(())
}

impl PgStore {
    /// A listener on [`OUTBOX_CHANNEL`], for wake-ups from other replicas' commits.
    pub(crate) async fn listen(&self) -> StoreResult<PgListener> {
        let mut listener = PgListener::connect_with(self.write_pool()).await?;
        listener.listen(OUTBOX_CHANNEL).await?;
        Ok(listener)
    }
}
