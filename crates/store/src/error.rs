//! The store's one error type. The HTTP crate maps it to a SCIM error response in one place;
//! each variant carries what that mapping needs.

use scim::{ScimError, ScimType};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The resource (or token, outbox row, …) does not exist. SCIM: 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// A value that must be unique ignoring case is taken. SCIM: 409 `uniqueness`.
    #[error("uniqueness: {0}")]
    Uniqueness(String),
    /// `If-Match` named a version other than the current one. SCIM: 412.
    #[error("precondition failed: the resource is at version {current}")]
    PreconditionFailed {
        /// The resource's current ETag, for the response.
        current: String,
    },
    /// The protocol core rejected the request (PATCH, filter evaluation). SCIM: as carried.
    #[error(transparent)]
    Scim(#[from] ScimError),
    /// The caller's input cannot be stored: a missing `userName`, an unknown member, a filter
    /// too broad to evaluate. SCIM: 400 with the carried `scimType`.
    #[error("invalid: {detail}")]
    Invalid {
        /// The SCIM error keyword the edge should report.
        scim_type: ScimType,
        /// What is wrong, for the client.
        detail: String,
    },
    /// The database failed or is unreachable. SCIM: 503 when it is away (see
    /// [`StoreError::is_unavailable`]), else 500; never caused by client input.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Embedded migrations could not be applied.
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// A 400 `invalidValue`.
    pub(crate) fn invalid_value(detail: impl Into<String>) -> Self {
        StoreError::Invalid {
            scim_type: ScimType::InvalidValue,
            detail: detail.into(),
        }
    }

    /// The database is away rather than failing this request: no connection could be had or
    /// kept (refused, reset, the pool's acquire timeout), or the server is shutting down or
    /// starting up (a restart, a failover). The same request succeeds once it is back.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    // PostgreSQL SQLSTATE: class 08 connection_exception; 57P01
                    // admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now; 53300
                    // too_many_connections (a restarted server not yet rid of old sessions).
                    code.starts_with("08")
                        || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
                }),
                _ => false,
            },
            _ => false,
        }
    }

    /// The SCIM error an HTTP response should carry. A database that is away becomes a 503
    /// (the client retries); any other database or migration failure a 500. Neither detail
    /// leaks SQL.
    pub fn to_scim(&self) -> ScimError {
        match self {
            StoreError::NotFound(what) => ScimError::not_found(what.clone()),
            StoreError::Uniqueness(detail) => ScimError::uniqueness(detail.clone()),
            StoreError::PreconditionFailed { current } => ScimError::status(
                412,
                format!("the resource has changed; its current version is {current}"),
            ),
            StoreError::Scim(e) => e.clone(),
            StoreError::Invalid { scim_type, detail } => {
                ScimError::typed(*scim_type, detail.clone())
            }
            _ if self.is_unavailable() => {
                ScimError::status(503, "the bridge's database is unavailable; retry later")
            }
            StoreError::Database(_) | StoreError::Migration(_) => {
                ScimError::status(500, "the bridge's database failed")
            }
        }
    }
}

/// Result alias for the store.
pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_scim_statuses() {
        assert_eq!(StoreError::NotFound("User x".into()).to_scim().status, 404);
        let u = StoreError::Uniqueness("userName".into()).to_scim();
        assert_eq!((u.status, u.scim_type), (409, Some(ScimType::Uniqueness)));
        assert_eq!(
            StoreError::PreconditionFailed {
                current: "W/\"2\"".into()
            }
            .to_scim()
            .status,
            412
        );
        let t = StoreError::Invalid {
            scim_type: ScimType::TooMany,
            detail: "x".into(),
        }
        .to_scim();
        assert_eq!((t.status, t.scim_type), (400, Some(ScimType::TooMany)));
        let away = StoreError::Database(sqlx::Error::PoolTimedOut).to_scim();
        assert_eq!(away.status, 503);
        assert!(!away.detail.contains("pool"));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(StoreError::Database(refused.into()).to_scim().status, 503);
        let broken = StoreError::Database(sqlx::Error::RowNotFound).to_scim();
        assert_eq!(broken.status, 500);
    }
}
