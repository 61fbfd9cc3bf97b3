//! What the worker remembers about the Coder side of each SCIM resource, and the problems it
//! could not fix on its own. No foreign keys to `resources`: after a SCIM DELETE the worker still
//! needs the mapping to find the Coder user or group to remove.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// The Coder user a SCIM User is provisioned as.
#[derive(Debug, Clone, PartialEq)]
pub struct CoderUser {
    /// The SCIM resource id.
    pub scim_id: String,
    pub coder_user_id: Uuid,
    /// The username chosen in Coder (IdP userNames like `alice.smith@corp.com` are not valid
    /// Coder usernames, so the mapping is kept). Unique ignoring case, as in Coder.
    pub coder_username: String,
    /// `oidc`, `github`, `password` or `none`.
    pub login_type: String,
    /// Whether the Coder user existed before the bridge and was taken over.
    pub adopted: bool,
    /// The state last applied to Coder, for diffing and for `scim-bridge status`.
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

/// The Coder group a SCIM Group is mirrored to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoderGroup {
    pub scim_id: String,
    pub coder_group_id: Uuid,
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

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct CoderUserRow {
    pub scim_id: String,
    pub coder_user_id: String,
    pub coder_username: String,
    pub login_type: String,
    pub adopted: bool,
    pub last_applied: String,
    pub updated_at: DateTime<Utc>,
}

impl CoderUserRow {
    pub fn into_mapping(self) -> Result<CoderUser, sqlx::Error> {
        Ok(CoderUser {
            coder_user_id: parse_uuid("coder_user_id", &self.coder_user_id)?,
            last_applied: serde_json::from_str(&self.last_applied).map_err(|e| {
                sqlx::Error::ColumnDecode {
                    index: "last_applied".into(),
                    source: Box::new(e),
                }
            })?,
            scim_id: self.scim_id,
            coder_username: self.coder_username,
            login_type: self.login_type,
            adopted: self.adopted,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct CoderGroupRow {
    pub scim_id: String,
    pub coder_group_id: String,
    pub organization_id: String,
    pub coder_name: String,
    pub updated_at: DateTime<Utc>,
}

impl CoderGroupRow {
    pub fn into_mapping(self) -> Result<CoderGroup, sqlx::Error> {
        Ok(CoderGroup {
            coder_group_id: parse_uuid("coder_group_id", &self.coder_group_id)?,
            organization_id: parse_uuid("organization_id", &self.organization_id)?,
            scim_id: self.scim_id,
            coder_name: self.coder_name,
            updated_at: self.updated_at,
        })
    }
}

fn parse_uuid(column: &str, text: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(text).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.into(),
        source: Box::new(e),
    })
}
