//! Moving a store from SQLite to PostgreSQL (`scim-bridge migrate --copy-from sqlite://…`).
//!
//! The copy is row for row: ids, versions, timestamps and every JSON text byte for byte, because
//! the audit hashes cover them and the worker's generations and leases refer to them. The source
//! is read in one read transaction (one snapshot, even while a bridge still writes to it); the
//! target is written in one transaction, so a failed copy leaves it empty.
//!
//! Tables are described once ([`TABLES`]) and copied by one loop, in foreign-key order; values
//! pass through typed ([`Cell`]) so each lands in PostgreSQL's native column type.

use crate::error::{StoreError, StoreResult};
use crate::{PgStore, SqliteStore};
use chrono::{DateTime, Timelike, Utc};
use futures::TryStreamExt;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Postgres, QueryBuilder, Row};

/// Rows per `INSERT`. The widest table has 13 columns, so a statement binds at most 13,000
/// values, well under PostgreSQL's limit of 65,535.
const BATCH_ROWS: usize = 1000;

/// How a column is read from SQLite and bound for PostgreSQL.
#[derive(Debug, Clone, Copy)]
enum ColumnType {
    Text,
    /// PostgreSQL `INTEGER`.
    Int,
    /// PostgreSQL `BIGINT`/`BIGSERIAL`.
    BigInt,
    Bool,
    /// RFC 3339 `TEXT` in SQLite, `TIMESTAMPTZ` in PostgreSQL.
    Time,
}

use ColumnType::{BigInt, Bool, Int, Text, Time};

/// One table of the schema, as the copy sees it.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, ColumnType)],
    /// The primary key, so rows are read in a stable order.
    order_by: &'static str,
    /// The `id` is a `BIGSERIAL` whose sequence must move past the copied ids.
    serial_id: bool,
}

/// Every table of `migrations/*/` except `audit_head` (one row, updated in
/// place) and `service_secrets` (the target makes its own on first use; cursors issued by the
/// source stop working, which a client recovers from by listing again), parents before the rows
/// that reference them.
const TABLES: [Table; 12] = [
    Table {
        name: "resources",
        columns: &[
            ("id", Text),
            ("kind", Text),
            ("user_name", Text),
            ("user_name_key", Text),
            ("external_id", Text),
            ("display_name", Text),
            ("display_name_key", Text),
            ("active", Bool),
            ("attrs", Text),
            ("version", BigInt),
            ("created", Time),
            ("last_modified", Time),
        ],
        order_by: "id",
        serial_id: false,
    },
    Table {
        name: "group_members",
        columns: &[
            ("group_id", Text),
            ("member_id", Text),
            ("member_type", Text),
            ("display", Text),
            ("added_at", Time),
        ],
        order_by: "group_id, member_id",
        serial_id: false,
    },
    Table {
        name: "agent_owners",
        columns: &[("agent_id", Text), ("owner_id", Text)],
        order_by: "agent_id, owner_id",
        serial_id: false,
    },
    Table {
        name: "outbox",
        columns: &[
            ("id", BigInt),
            ("kind", Text),
            ("resource_id", Text),
            ("priority", Int),
            ("generation", BigInt),
            ("enqueued_at", Time),
            ("next_attempt_at", Time),
            ("attempts", Int),
            ("last_error", Text),
            ("leased_by", Text),
            ("lease_until", Time),
            ("dead_at", Time),
            ("dead_reason", Text),
        ],
        order_by: "id",
        serial_id: true,
    },
    Table {
        name: "audit_log",
        columns: &[
            ("seq", BigInt),
            ("time", Time),
            ("request_id", Text),
            ("actor", Text),
            ("source_addr", Text),
            ("operation", Text),
            ("resource_type", Text),
            ("resource_id", Text),
            ("change", Text),
            ("result", Text),
            ("prev_hash", Text),
            ("hash", Text),
            ("key_id", Text),
        ],
        order_by: "seq",
        serial_id: false,
    },
    Table {
        name: "api_tokens",
        columns: &[
            ("id", BigInt),
            ("name", Text),
            ("token_sha256", Text),
            ("scopes", Text),
            ("source", Text),
            ("created_at", Time),
            ("expires_at", Time),
            ("revoked_at", Time),
            ("last_used_at", Time),
        ],
        order_by: "id",
        serial_id: true,
    },
    Table {
        name: "oauth_clients",
        columns: &[
            ("id", BigInt),
            ("name", Text),
            ("client_id", Text),
            ("secret_sha256", Text),
            ("scopes", Text),
            ("created_at", Time),
            ("revoked_at", Time),
        ],
        order_by: "id",
        serial_id: true,
    },
    Table {
        name: "coder_users",
        columns: &[
            ("scim_id", Text),
            ("coder_user_id", Text),
            ("coder_username", Text),
            ("coder_username_key", Text),
            ("login_type", Text),
            ("adopted", Bool),
            ("last_applied", Text),
            ("updated_at", Time),
        ],
        order_by: "scim_id",
        serial_id: false,
    },
    Table {
        name: "coder_user_intents",
        columns: &[
            ("scim_id", Text),
            ("coder_username", Text),
            ("email", Text),
            ("created_at", Time),
        ],
        order_by: "scim_id",
        serial_id: false,
    },
    Table {
        name: "coder_groups",
        columns: &[
            ("scim_id", Text),
            ("coder_group_id", Text),
            ("organization_id", Text),
            ("coder_name", Text),
            ("updated_at", Time),
        ],
        order_by: "scim_id",
        serial_id: false,
    },
    Table {
        name: "sync_issues",
        columns: &[
            ("id", BigInt),
            ("kind", Text),
            ("resource_id", Text),
            ("issue_type", Text),
            ("detail", Text),
            ("created_at", Time),
            ("resolved_at", Time),
        ],
        order_by: "id",
        serial_id: true,
    },
    // A sink's cursor, so the SIEM stream goes on after the move without sending every record
    // again.
    Table {
        name: "audit_delivery",
        columns: &[
            ("sink", Text),
            ("cursor_seq", BigInt),
            ("delivered_at", Time),
            ("leased_by", Text),
            ("lease_until", Time),
            ("failures", BigInt),
            ("last_error", Text),
            ("last_failure_at", Time),
        ],
        order_by: "sink",
        serial_id: false,
    },
];

/// One value on its way from SQLite to PostgreSQL.
enum Cell {
    Text(Option<String>),
    Int(Option<i32>),
    BigInt(Option<i64>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
}

/// What [`crate::Store::copy_from`] copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Rows copied per table, in copy order.
    pub tables: Vec<(&'static str, u64)>,
    /// The audit chain's tip, now the target's too: its last sequence number and hash.
    pub audit_head: (i64, String),
}

impl CopyReport {
    /// Rows copied into `table` (`None` for a table the copy does not know).
    pub fn rows(&self, table: &str) -> Option<u64> {
        self.tables
            .iter()
            .find(|(name, _)| *name == table)
            .map(|(_, rows)| *rows)
    }
}

/// Copy the whole of `source` into the empty `target`, all or nothing.
pub(crate) async fn sqlite_into_postgres(
    source: &SqliteStore,
    target: &PgStore,
) -> StoreResult<CopyReport> {
    if source.schema_status().await? != crate::SchemaStatus::Current {
        return Err(StoreError::invalid_value(
            "the SQLite source is not a scim-bridge database with this version's schema \
             (run this version's `scim-bridge migrate` against it first)",
        ));
    }
    if target.schema_status().await? != crate::SchemaStatus::Current {
        return Err(StoreError::invalid_value(
            "the PostgreSQL target's schema is not this version's; run `scim-bridge migrate` first",
        ));
    }
    let mut write = target.write_pool().begin().await?;
    // Every audited write locks the chain's tip first: holding it keeps other writers out of the
    // target from the emptiness check to the commit.
    let target_head: (i64,) = sqlx::query_as("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *write)
        .await?;
    refuse_unless_empty(&mut write, target_head.0).await?;

    // A deferred SQLite transaction takes its snapshot at the first read; WAL keeps that
    // snapshot while a live bridge goes on writing.
    let mut read = source.read_pool().begin().await?;
    let audit_head: (i64, String) = sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *read)
        .await?;
    let mut tables = Vec::with_capacity(TABLES.len());
    for table in &TABLES {
        let rows = copy_table(&mut read, &mut write, table).await?;
        tables.push((table.name, rows));
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(audit_head.0)
        .bind(&audit_head.1)
        .execute(&mut *write)
        .await?;
    // Explicit ids do not move a BIGSERIAL's sequence; the next insert must not reuse one.
    // (setval is not undone by a rollback; a failed copy only leaves a gap in the ids.)
    for table in TABLES.iter().filter(|table| table.serial_id) {
        let name = table.name;
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{name}', 'id'), \
             (SELECT COALESCE(MAX(id), 0) + 1 FROM {name}), false)"
        ))
        .execute(&mut *write)
        .await?;
    }
    write.commit().await?;
    read.rollback().await?;
    Ok(CopyReport { tables, audit_head })
}

/// Refuse a target that already holds anything: merging two stores would fork the audit chain
/// and collide on ids.
async fn refuse_unless_empty(target: &mut PgConnection, audit_seq: i64) -> StoreResult<()> {
    let mut filled = Vec::new();
    for table in &TABLES {
        let (exists,): (bool,) =
            sqlx::query_as(&format!("SELECT EXISTS (SELECT 1 FROM {})", table.name))
                .fetch_one(&mut *target)
                .await?;
        if exists {
            filled.push(table.name);
        }
    }
    if audit_seq != 0 {
        filled.push("audit_head");
    }
    if filled.is_empty() {
        return Ok(());
    }
    Err(StoreError::invalid_value(format!(
        "the PostgreSQL target already holds data ({}); copy only into an empty, freshly \
         migrated database",
        filled.join(", ")
    )))
}

/// Stream one table from the snapshot into the target in batched multi-row `INSERT`s; returns
/// the rows copied.
async fn copy_table(
    read: &mut SqliteConnection,
    write: &mut PgConnection,
    table: &Table,
) -> StoreResult<u64> {
    let columns = table
        .columns
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!(
        "SELECT {columns} FROM {} ORDER BY {}",
        table.name, table.order_by
    );
    let insert = format!("INSERT INTO {} ({columns}) ", table.name);
    let mut rows = sqlx::query(&select).fetch(&mut *read);
    let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(BATCH_ROWS);
    let mut copied = 0u64;
    while let Some(row) = rows.try_next().await? {
        batch.push(cells(table, &row)?);
        if batch.len() == BATCH_ROWS {
            copied += insert_batch(write, &insert, &mut batch).await?;
        }
    }
    if !batch.is_empty() {
        copied += insert_batch(write, &insert, &mut batch).await?;
    }
    Ok(copied)
}

/// Read a SQLite row as the table's typed cells.
fn cells(table: &Table, row: &SqliteRow) -> StoreResult<Vec<Cell>> {
    let mut cells = Vec::with_capacity(table.columns.len());
    for (index, (column, column_type)) in table.columns.iter().enumerate() {
        cells.push(match column_type {
            Text => Cell::Text(row.try_get(index)?),
            Int => Cell::Int(row.try_get(index)?),
            BigInt => Cell::BigInt(row.try_get(index)?),
            Bool => Cell::Bool(row.try_get(index)?),
            Time => {
                let time: Option<DateTime<Utc>> = row.try_get(index)?;
                // PostgreSQL keeps microseconds; rounding a finer time would change what the
                // audit hash covers, so such a store cannot be copied faithfully.
                if let Some(time) = time.filter(|t| t.nanosecond() % 1000 != 0) {
                    return Err(StoreError::invalid_value(format!(
                        "{}.{column} holds {time}, finer than PostgreSQL's microseconds",
                        table.name
                    )));
                }
                Cell::Time(time)
            }
        });
    }
    Ok(cells)
}

/// Insert and empty `batch`; returns the rows inserted.
async fn insert_batch(
    write: &mut PgConnection,
    insert: &str,
    batch: &mut Vec<Vec<Cell>>,
) -> StoreResult<u64> {
    let mut query = QueryBuilder::<Postgres>::new(insert);
    query.push_values(batch.drain(..), |mut values, cells| {
        for cell in cells {
            match cell {
                Cell::Text(v) => values.push_bind(v),
                Cell::Int(v) => values.push_bind(v),
                Cell::BigInt(v) => values.push_bind(v),
                Cell::Bool(v) => values.push_bind(v),
                Cell::Time(v) => values.push_bind(v),
            };
        }
    });
    Ok(query.build().execute(&mut *write).await?.rows_affected())
}
