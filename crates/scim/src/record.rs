//! Resources as the service provider holds them: the canonical attributes a client sent plus
//! what the server assigns (`id`, version, timestamps) and computes (a Group's members, a User's
//! groups). The store returns these records; [`crate::render`] turns them into SCIM JSON.

use crate::schema::ResourceKind;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// A resource as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    pub kind: ResourceKind,
    /// The id the store generated (a UUID).
    pub id: String,
    /// Canonical attributes: no `id`, `meta`, `schemas`, `password`, `members` or `groups`.
    pub attrs: Map<String, Value>,
    /// Bumped by every change; the ETag is `W/"<version>"`.
    pub version: i64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    /// A Group's members, when loaded.
    pub members: Option<Vec<Member>>,
    /// A User's groups, when computed.
    pub groups: Option<Vec<GroupRef>>,
}

impl StoredResource {
    /// The weak ETag (RFC 7644 §3.14), also `meta.version`.
    pub fn etag(&self) -> String {
        etag(self.version)
    }
}

/// A member of a Group, as stored in a membership row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's SCIM id.
    pub value: String,
    /// `User` or `Group` (Entra adds nested groups as members).
    pub kind: ResourceKind,
    /// The `display` the IdP sent, or else the member's current userName/displayName.
    pub display: Option<String>,
}

/// A Group a User belongs to (RFC 7643 §4.1.2 `groups`, readOnly, computed from rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub value: String,
    pub display: Option<String>,
}

/// The weak ETag of `version` (RFC 7644 §3.14).
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}
