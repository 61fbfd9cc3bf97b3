//! What the worker remembers about the Coder side of each SCIM resource, and the problems it
//! could not fix on its own. No foreign keys to `resources`: after a SCIM DELETE the worker still
//! needs the mapping to find the Coder user or group to remove.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::str::FromStr;
use uuid::Uuid;

/// The Coder user a SCIM User is provisioned as: a `coder_users` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CoderUser {
    /// The SCIM resource id.
    pub scim_id: String,
    #[sqlx(try_from = "Parsed<Uuid>")]
    pub coder_user_id: Uuid,
    /// The username chosen in Coder (IdP userNames like `alice.smith@corp.com` are not valid
    /// Coder usernames, so the mapping is kept). Unique ignoring case, as in Coder.
    pub coder_username: String,
    /// `oidc`, `github`, `password` or `none`.
    pub login_type: String,
    /// Whether the Coder user existed before the bridge and was taken over.
    pub adopted: bool,
    /// The state last applied to Coder, for diffing and for `scim-bridge status`.
    #[sqlx(try_from = "Parsed<Value>")]
    pub last_applied: Value,
    pub updated_at: DateTime<Utc>,
}

/// A Coder user create about to be sent for a SCIM User, recorded first: if a crash loses
/// Coder's answer, the next reconcile looks the user up by this username and email, and a user
/// with both is the one the lost create made, not someone else's to adopt.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CoderUserIntent {
    pub scim_id: String,
    pub coder_username: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

/// The Coder group a SCIM Group is mirrored to: a `coder_groups` row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CoderGroup {
    pub scim_id: String,
    #[sqlx(try_from = "Parsed<Uuid>")]
    pub coder_group_id: Uuid,
    #[sqlx(try_from = "Parsed<Uuid>")]
    pub organization_id: Uuid,
    pub coder_name: String,
    pub updated_at: DateTime<Utc>,
}

/// A problem the worker recorded for an operator: a username collision, a wrong login type, a
/// Coder IdP-sync overlap, …
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SyncIssue {
    pub id: i64,
    /// `User` or `Group`.
    pub kind: String,
    pub resource_id: String,
    /// A stable keyword such as `username_conflict`; one open issue per (resource, type).
    pub issue_type: String,
    pub detail: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A column stored as text and parsed with `FromStr` (the Coder ids, `last_applied`'s JSON):
/// `#[sqlx(try_from = "Parsed<T>")]` decodes it straight into `T`, and text that does not parse
/// fails the column's decoding with the parser's error.
pub struct Parsed<T>(T);

impl<T, DB: sqlx::Database> sqlx::Type<DB> for Parsed<T>
where
    String: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'r, T, DB: sqlx::Database> sqlx::Decode<'r, DB> for Parsed<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
    &'r str: sqlx::Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Parsed(<&str as sqlx::Decode<DB>>::decode(value)?.parse()?))
    }
}

impl From<Parsed<Uuid>> for Uuid {
    fn from(Parsed(id): Parsed<Uuid>) -> Uuid {
        id
    }
}

impl From<Parsed<Value>> for Value {
    fn from(Parsed(json): Parsed<Value>) -> Value {
        json
    }
}
