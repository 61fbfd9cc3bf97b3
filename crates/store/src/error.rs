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
    /// The database failed or is unreachable. SCIM: 500/503; never caused by client input.
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

    /// The SCIM error an HTTP response should carry. Database and migration failures become a
    /// 500 whose detail does not leak SQL.
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
            StoreError::Database(_) | StoreError::Migration(_) => {
                ScimError::status(500, "the bridge's database is unavailable")
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
        let db = StoreError::Database(sqlx::Error::PoolTimedOut).to_scim();
        assert_eq!(db.status, 500);
        assert!(!db.detail.contains("pool"));
    }
}
