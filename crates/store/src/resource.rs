//! SCIM resources as the store keeps them: canonical JSON attributes plus the columns that
//! uniqueness, filters and paging use, with Group membership held as rows.

use crate::error::StoreError;
use chrono::{DateTime, Utc};
use scim::ResourceKind;
use scim::patch::MemberRef;
use scim::resource;
use serde_json::{Map, Value};

// The records the store returns are the protocol core's, which also renders them as SCIM JSON.
pub use scim::record::{GroupRef, Member, StoredResource, etag};

/// Who asked for a write; recorded in the audit log with the change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteContext {
    /// The request id (also in the response headers and logs).
    pub request_id: String,
    /// The name of the bearer token the request presented.
    pub token_name: Option<String>,
    /// The client's address.
    pub source_addr: Option<String>,
    /// The operation as the edge names it, e.g. `PATCH /Groups/{id}`. Empty: the store's own
    /// name for the write (`create User`, …) is recorded instead.
    pub operation: String,
}

/// What to load with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetOptions {
    /// Load a Group's members (`excludedAttributes=members` turns this off, and then no member
    /// row is read).
    pub members: bool,
    /// Compute a User's `groups` from membership rows.
    pub groups: bool,
}

impl Default for GetOptions {
    /// Both on: `members` and `groups` are `returned: default` attributes (RFC 7643 §4.1.2, §4.2).
    fn default() -> Self {
        GetOptions {
            members: true,
            groups: true,
        }
    }
}

impl GetOptions {
    /// Neither members nor groups: the cheap form for existence checks and large groups.
    pub const BARE: GetOptions = GetOptions {
        members: false,
        groups: false,
    };

    /// Load only what a response with `projection` (`attributes` / `excludedAttributes`)
    /// shows: Entra reads groups with `excludedAttributes=members`, and then no member row is
    /// read.
    pub fn for_projection(
        kind: ResourceKind,
        projection: &scim::projection::Projection,
    ) -> GetOptions {
        let wants = |name: &str| projection.wants(kind, &scim::filter::AttrPath::simple(name));
        GetOptions {
            members: kind == ResourceKind::Group && wants("members"),
            groups: kind.has_groups() && wants("groups"),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// Resources matching the filter, across all pages (`totalResults`).
    pub total: u64,
    /// This page, in order.
    pub items: Vec<StoredResource>,
    /// Whether matching resources follow this page: with a cursor (RFC 9865), after its last
    /// resource in listing order; index-paged, past `startIndex + count - 1`.
    pub more: bool,
}

/// RFC 7644 §3.14 / RFC 7232 §3.1: `If-Match` holds `*` or a list of entity tags; it passes when
/// one of them names the current version. Weak and strong forms are compared alike, since the
/// store only has weak ETags.
pub(crate) fn check_if_match(if_match: Option<&str>, version: i64) -> Result<(), StoreError> {
    let Some(header) = if_match else {
        return Ok(());
    };
    let current = format!("\"{version}\"");
    let matches = header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == current);
    if matches {
        Ok(())
    } else {
        Err(StoreError::PreconditionFailed {
            current: etag(version),
        })
    }
}

pub(crate) fn kind_from_str(name: &str) -> Option<ResourceKind> {
    ResourceKind::from_name(name)
}

/// A `kind` column's text: rows decode it into a [`ResourceKind`] with
/// `#[sqlx(try_from = "KindName")]`.
#[derive(sqlx::Type)]
#[sqlx(transparent)]
pub struct KindName(String);

/// A `kind` column naming a resource kind this build does not know (a newer one wrote it).
#[derive(Debug, thiserror::Error)]
#[error("unknown resource kind {0:?}")]
pub struct UnknownKind(String);

impl TryFrom<KindName> for ResourceKind {
    type Error = UnknownKind;

    fn try_from(KindName(name): KindName) -> Result<ResourceKind, UnknownKind> {
        kind_from_str(&name).ok_or(UnknownKind(name))
    }
}

/// The case-folded form uniqueness and `eq` filters compare (userName and displayName are
/// `caseExact: false`, RFC 7643 §4.1.1).
pub(crate) fn fold_case(value: &str) -> String {
    value.to_lowercase()
}

/// The indexed columns of a resource row, taken from its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexedColumns {
    pub user_name: Option<String>,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub active: Option<bool>,
}

impl IndexedColumns {
    /// Read the columns and check what the store requires: a User has a non-empty `userName`
    /// (RFC 7643 §4.1.1 "REQUIRED"), a Group a non-empty `displayName` (§4.2), an Agent an
    /// `agentUserName` or `name`, an AgenticApplication a `name`. The `user_name` column holds
    /// the name each kind is unique by.
    pub fn of(
        kind: ResourceKind,
        attrs: &Map<String, Value>,
    ) -> Result<IndexedColumns, StoreError> {
        let user_name = match kind {
            ResourceKind::User | ResourceKind::Group => resource::user_name(attrs),
            ResourceKind::Agent => resource::agent_user_name(attrs),
            ResourceKind::AgenticApplication => attrs.get("name").and_then(Value::as_str),
        };
        let columns = IndexedColumns {
            user_name: user_name.map(str::to_string),
            external_id: resource::external_id(attrs).map(str::to_string),
            display_name: resource::display_name(attrs).map(str::to_string),
            active: kind.has_active().then(|| resource::active(attrs)),
        };
        let (required, value) = match kind {
            ResourceKind::User => ("userName", &columns.user_name),
            ResourceKind::Group => ("displayName", &columns.display_name),
            ResourceKind::Agent => ("agentUserName or name", &columns.user_name),
            ResourceKind::AgenticApplication => ("name", &columns.user_name),
        };
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            return Err(StoreError::invalid_value(format!(
                "{} requires a non-empty {required}",
                kind.name()
            )));
        }
        Ok(columns)
    }

    pub fn user_name_key(&self) -> Option<String> {
        self.user_name.as_deref().map(fold_case)
    }

    pub fn display_name_key(&self) -> Option<String> {
        self.display_name.as_deref().map(fold_case)
    }
}

/// Remove what the store does not keep in `attrs`: server-owned `id`/`meta`/`schemas`, the
/// readOnly `groups` (RFC 7643 §4.1.2: computed, ignored on input), `password` (see the crate
/// docs: never stored) and `members`, which becomes rows. Returns the members when the body
/// carried a `members` list (`null` counts as absent: Entra sends nulls for "no value").
pub(crate) fn split_body(
    kind: ResourceKind,
    attrs: &mut Map<String, Value>,
) -> Result<Option<Vec<MemberRef>>, StoreError> {
    let mut members = None;
    let keys: Vec<String> = attrs.keys().cloned().collect();
    for key in keys {
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "id" | "meta" | "schemas" | "password" | "groups" => {
                attrs.remove(&key);
            }
            "members" => {
                let value = attrs.remove(&key).unwrap_or(Value::Null);
                if kind == ResourceKind::Group && !value.is_null() {
                    members = Some(member_refs(&value)?);
                }
            }
            _ => {}
        }
    }
    Ok(members)
}

/// Parse a `members` value: an array of `{"value": id, "display"?: …}` objects, as members a
/// client names before the store has checked that they exist (`type` and `$ref` are not
/// kept). A bare id string is accepted too (seen from legacy Entra connectors).
pub(crate) fn member_refs(value: &Value) -> Result<Vec<MemberRef>, StoreError> {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(id) => Ok(MemberRef {
                value: id.clone(),
                display: None,
                r#type: None,
                reference: None,
            }),
            Value::Object(map) => {
                let field = |name: &str| {
                    map.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .and_then(|(_, v)| v.as_str())
                };
                let value = field("value").filter(|v| !v.is_empty()).ok_or_else(|| {
                    StoreError::invalid_value(
                        "each member needs a non-empty \"value\" naming a User or Group id",
                    )
                })?;
                Ok(MemberRef {
                    value: value.to_string(),
                    display: field("display").map(str::to_string),
                    r#type: None,
                    reference: None,
                })
            }
            other => Err(StoreError::invalid_value(format!(
                "a member must be an object with \"value\", not {other}"
            ))),
        })
        .collect()
}

/// A `resources` row as read.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ResourceRow {
    pub id: String,
    pub kind: String,
    pub attrs: String,
    pub version: i64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
}

/// The columns [`ResourceRow`] reads, for `SELECT`s.
pub(crate) const RESOURCE_COLUMNS: &str = "id, kind, attrs, version, created, last_modified";

impl ResourceRow {
    /// The resource, without members or groups.
    pub fn into_resource(self) -> Result<StoredResource, StoreError> {
        let decode = |index: &str, source: Box<dyn std::error::Error + Send + Sync>| {
            StoreError::Database(sqlx::Error::ColumnDecode {
                index: index.into(),
                source,
            })
        };
        let kind = kind_from_str(&self.kind)
            .ok_or_else(|| decode("kind", format!("unknown kind {:?}", self.kind).into()))?;
        let attrs = serde_json::from_str(&self.attrs).map_err(|e| decode("attrs", Box::new(e)))?;
        Ok(StoredResource {
            kind,
            id: self.id,
            attrs,
            version: self.version,
            created: self.created,
            last_modified: self.last_modified,
            members: None,
            groups: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn if_match_accepts_star_lists_and_both_forms() {
        assert!(check_if_match(None, 3).is_ok());
        assert!(check_if_match(Some("*"), 3).is_ok());
        assert!(check_if_match(Some("W/\"3\""), 3).is_ok());
        assert!(check_if_match(Some("\"3\""), 3).is_ok());
        assert!(check_if_match(Some("W/\"1\", W/\"3\""), 3).is_ok());
        match check_if_match(Some("W/\"2\""), 3) {
            Err(StoreError::PreconditionFailed { current }) => assert_eq!(current, "W/\"3\""),
            other => panic!("expected 412, got {other:?}"),
        }
    }

    #[test]
    fn split_body_strips_server_and_write_only_attributes() {
        let mut attrs = json!({
            "id": "x", "meta": {}, "schemas": [], "Password": "secret", "groups": [],
            "displayName": "Eng", "members": [{"value": "u1", "display": "Alice"}, "u2"]
        })
        .as_object()
        .cloned()
        .unwrap();
        let members = split_body(ResourceKind::Group, &mut attrs)
            .unwrap()
            .unwrap();
        assert_eq!(attrs.keys().collect::<Vec<_>>(), vec!["displayName"]);
        assert_eq!(
            members[0],
            MemberRef {
                value: "u1".into(),
                display: Some("Alice".into()),
                r#type: None,
                reference: None,
            }
        );
        assert_eq!(members[1].value, "u2");
        let mut bad = json!({"members": [{"display": "no value"}]})
            .as_object()
            .cloned()
            .unwrap();
        assert!(matches!(
            split_body(ResourceKind::Group, &mut bad),
            Err(StoreError::Invalid { .. })
        ));
    }

    #[test]
    fn required_attributes_are_checked() {
        let user = json!({"userName": "  "}).as_object().cloned().unwrap();
        assert!(IndexedColumns::of(ResourceKind::User, &user).is_err());
        let group = json!({"displayName": "Eng", "externalId": "e1"})
            .as_object()
            .cloned()
            .unwrap();
        let cols = IndexedColumns::of(ResourceKind::Group, &group).unwrap();
        assert_eq!(cols.display_name_key().as_deref(), Some("eng"));
        assert_eq!(cols.external_id.as_deref(), Some("e1"));
    }
}
