//! Stored resources as SCIM JSON: the full resource ([`StoredResource::to_scim`]), the body a
//! response shows ([`projected`], RFC 7644 §3.9), a member as a PATCH sees it
//! ([`Member::to_json`]) and a resource's URI ([`location`]).

use crate::projection::Projection;
use crate::record::{GroupRef, Member, StoredResource};
use crate::schema::{Registry, ResourceKind};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

impl StoredResource {
    /// The resource as SCIM JSON: `schemas` (the core URN plus each extension present), `id`,
    /// the attributes, `members`/`groups` when loaded, and `meta`. `base_url` is the SCIM base
    /// (e.g. `https://scim.example.com/scim/v2`), used for `meta.location` and `$ref`.
    pub fn to_scim(&self, base_url: &str) -> Value {
        let base_url = base_url.trim_end_matches('/');
        let mut schemas = vec![Value::String(self.kind.core_schema().to_string())];
        for urn in self.kind.extensions() {
            if self.attrs.keys().any(|k| k.eq_ignore_ascii_case(urn)) {
                schemas.push(Value::String((*urn).to_string()));
            }
        }
        let mut out = Map::new();
        out.insert("schemas".into(), Value::Array(schemas));
        out.insert("id".into(), Value::String(self.id.clone()));
        for (key, value) in &self.attrs {
            out.insert(key.clone(), value.clone());
        }
        if let Some(members) = &self.members {
            let members = members.iter().map(|m| m.reference(base_url)).collect();
            out.insert("members".into(), Value::Array(members));
        }
        if let Some(groups) = &self.groups {
            let groups = groups.iter().map(|g| g.reference(base_url)).collect();
            out.insert("groups".into(), Value::Array(groups));
        }
        let mut meta = Map::new();
        meta.insert(
            "resourceType".into(),
            Value::String(self.kind.name().to_string()),
        );
        meta.insert("created".into(), Value::String(scim_time(self.created)));
        meta.insert(
            "lastModified".into(),
            Value::String(scim_time(self.last_modified)),
        );
        meta.insert(
            "location".into(),
            Value::String(location(base_url, self.kind, &self.id)),
        );
        meta.insert("version".into(), Value::String(self.etag()));
        out.insert("meta".into(), Value::Object(meta));
        Value::Object(out)
    }
}

impl Member {
    /// The member as a PATCH sees it (`value`, `display`, `type`).
    pub fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("value".into(), Value::String(self.value.clone()));
        if let Some(display) = &self.display {
            entry.insert("display".into(), Value::String(display.clone()));
        }
        entry.insert("type".into(), Value::String(self.kind.name().to_string()));
        Value::Object(entry)
    }

    /// The member as a Group's `members` lists it.
    fn reference(&self, base_url: &str) -> Value {
        reference(
            base_url,
            self.kind,
            &self.value,
            self.display.as_deref(),
            self.kind.name(),
        )
    }
}

impl GroupRef {
    /// The group as a User's `groups` lists it. Only direct memberships are computed; RFC 7643
    /// §4.1.2 also allows "indirect".
    fn reference(&self, base_url: &str) -> Value {
        reference(
            base_url,
            ResourceKind::Group,
            &self.value,
            self.display.as_deref(),
            "direct",
        )
    }
}

/// `{"value", "$ref", "display", "type"}` as in `members` and `groups`.
fn reference(
    base_url: &str,
    kind: ResourceKind,
    id: &str,
    display: Option<&str>,
    ty: &str,
) -> Value {
    let mut entry = Map::new();
    entry.insert("value".into(), Value::String(id.to_string()));
    entry.insert("$ref".into(), Value::String(location(base_url, kind, id)));
    if let Some(display) = display {
        entry.insert("display".into(), Value::String(display.to_string()));
    }
    entry.insert("type".into(), Value::String(ty.to_string()));
    Value::Object(entry)
}

/// The URI of a resource (`meta.location`, the `Location` of a 201, a reference's `$ref`):
/// `base_url` (with or without a trailing `/`), the kind's endpoint, the id.
pub fn location(base_url: &str, kind: ResourceKind, id: &str) -> String {
    let base_url = base_url.trim_end_matches('/');
    format!("{base_url}{}/{id}", kind.endpoint())
}

/// RFC 7643 §2.3.5 dateTime, with millisecond precision as most IdPs print it.
fn scim_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The resource as a response shows it (RFC 7644 §3.9 projection).
///
/// A Group's members are not turned into JSON values: the projection is decided on a sample
/// member and the list is written from the rows when the body is serialised. As values, the
/// members of a 50,000-member group took about 60 MB per response (two copies of some 50,000
/// small maps); written straight out, they take the size of the text.
pub fn projected<'a>(
    registry: &Registry,
    resource: &'a StoredResource,
    base_url: &str,
    projection: &Projection,
) -> Rendered<'a> {
    let members = resource.members.as_deref().unwrap_or_default();
    let Some(first) = members.first() else {
        return Rendered {
            doc: project(registry, resource, base_url, projection),
            members: None,
        };
    };
    // Every field present, so the projection shows which ones it keeps (it decides on
    // attribute names only, never on values).
    let sample = StoredResource {
        members: Some(vec![Member {
            display: Some(String::new()),
            ..first.clone()
        }]),
        ..resource.clone()
    };
    let mut doc = project(registry, &sample, base_url, projection);
    let fields = doc
        .get("members")
        .and_then(Value::as_array)
        .and_then(|items| items.first())
        .and_then(Value::as_object)
        .map(|sample| MemberFields {
            value: sample.contains_key("value"),
            reference: sample.contains_key("$ref"),
            display: sample.contains_key("display"),
            kind: sample.contains_key("type"),
        });
    let members = match fields {
        // A member left with no field is left out, and a list left empty with it.
        Some(fields) if fields.shows_any(members) => Some(MemberList {
            members,
            base_url: base_url.trim_end_matches('/').to_string(),
            fields,
        }),
        _ => {
            doc.shift_remove("members");
            None
        }
    };
    Rendered { doc, members }
}

fn project(
    registry: &Registry,
    resource: &StoredResource,
    base_url: &str,
    projection: &Projection,
) -> Map<String, Value> {
    let full = match resource.to_scim(base_url) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    projection.apply(resource.kind, &full, registry)
}

/// A resource ready to be serialised: its projected JSON, with a Group's members (when shown)
/// written in place of the sample `members` it holds.
#[derive(Debug)]
pub struct Rendered<'a> {
    doc: Map<String, Value>,
    members: Option<MemberList<'a>>,
}

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.doc.len()))?;
        for (key, value) in &self.doc {
            match (&self.members, key.as_str()) {
                (Some(members), "members") => map.serialize_entry(key, members)?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// Which of a member's fields the projection keeps.
#[derive(Debug, Clone, Copy)]
struct MemberFields {
    value: bool,
    reference: bool,
    display: bool,
    kind: bool,
}

impl MemberFields {
    fn shows(&self, member: &Member) -> bool {
        self.value || self.reference || self.kind || (self.display && member.display.is_some())
    }

    fn shows_any(&self, members: &[Member]) -> bool {
        members.iter().any(|m| self.shows(m))
    }
}

/// A Group's members as [`StoredResource::to_scim`] shows them (`value`, `$ref`, `display`,
/// `type`), written one by one.
#[derive(Debug)]
struct MemberList<'a> {
    members: &'a [Member],
    base_url: String,
    fields: MemberFields,
}

impl Serialize for MemberList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let f = self.fields;
        let mut seq = serializer.serialize_seq(None)?;
        for member in self.members.iter().filter(|m| f.shows(m)) {
            seq.serialize_element(&MemberJson {
                member,
                base_url: &self.base_url,
                fields: f,
            })?;
        }
        seq.end()
    }
}

struct MemberJson<'a> {
    member: &'a Member,
    base_url: &'a str,
    fields: MemberFields,
}

impl Serialize for MemberJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (m, f) = (self.member, self.fields);
        let mut map = serializer.serialize_map(None)?;
        if f.value {
            map.serialize_entry("value", &m.value)?;
        }
        if f.reference {
            // [`location`], written into the body without a `String` per member (`base_url`
            // is trimmed once, in `projected`).
            map.serialize_entry(
                "$ref",
                &format_args!("{}{}/{}", self.base_url, m.kind.endpoint(), m.value),
            )?;
        }
        if let (true, Some(display)) = (f.display, &m.display) {
            map.serialize_entry("display", display)?;
        }
        if f.kind {
            map.serialize_entry("type", m.kind.name())?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::GroupRef;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn to_scim_lists_extensions_meta_and_refs() {
        let resource = StoredResource {
            kind: ResourceKind::User,
            id: "u1".into(),
            attrs: json!({
                "userName": "alice",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7"}
            })
            .as_object()
            .cloned()
            .unwrap(),
            version: 4,
            created: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc(),
            last_modified: DateTime::parse_from_rfc3339("2026-01-02T00:00:00.25Z").unwrap().to_utc(),
            members: None,
            groups: Some(vec![GroupRef { value: "g1".into(), display: Some("Eng".into()) }]),
        };
        let v = resource.to_scim("https://x/scim/v2/");
        assert_eq!(v["schemas"].as_array().unwrap().len(), 2);
        assert_eq!(v["id"], "u1");
        assert_eq!(v["meta"]["location"], "https://x/scim/v2/Users/u1");
        assert_eq!(v["meta"]["version"], "W/\"4\"");
        assert_eq!(v["meta"]["lastModified"], "2026-01-02T00:00:00.250Z");
        assert_eq!(v["groups"][0]["$ref"], "https://x/scim/v2/Groups/g1");
        assert_eq!(v["groups"][0]["type"], "direct");
        assert!(v.get("members").is_none());
    }

    fn group(members: Vec<Member>) -> StoredResource {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        StoredResource {
            kind: ResourceKind::Group,
            id: "g1".into(),
            attrs: json!({"displayName": "Team", "externalId": "e1"})
                .as_object()
                .cloned()
                .unwrap(),
            version: 3,
            created: at,
            last_modified: at,
            members: Some(members),
            groups: None,
        }
    }

    fn member(value: &str, kind: ResourceKind, display: Option<&str>) -> Member {
        Member {
            value: value.into(),
            kind,
            display: display.map(str::to_string),
        }
    }

    /// Members written from the rows are exactly what projecting the full JSON gives, text
    /// included (key order), for every projection an IdP sends.
    #[test]
    fn members_written_from_rows_equal_the_projected_json() {
        let registry = Registry::standard();
        let groups = [
            group(vec![
                member("u1", ResourceKind::User, Some("Ann")),
                member("g2", ResourceKind::Group, None),
                member("u3", ResourceKind::User, Some("Cy")),
            ]),
            group(vec![member("u9", ResourceKind::User, None)]),
            group(vec![]),
        ];
        let projections = [
            (None, None),
            (Some("members"), None),
            (Some("members.value"), None),
            (Some("members.display"), None),
            (Some("members.display,members.type"), None),
            (Some("displayName"), None),
            (None, Some("members")),
            (None, Some("members.display")),
        ];
        for resource in &groups {
            for (attributes, excluded) in projections {
                let projection = Projection::parse(attributes, excluded).unwrap();
                for base in [
                    "https://bridge.example/scim/v2",
                    "https://bridge.example/scim/v2/",
                ] {
                    let expected = project(registry, resource, base, &projection);
                    let rendered = projected(registry, resource, base, &projection);
                    assert_eq!(
                        serde_json::to_string(&rendered).unwrap(),
                        serde_json::to_string(&expected).unwrap(),
                        "{attributes:?} / {excluded:?}, {} members",
                        resource.members.as_ref().map_or(0, Vec::len)
                    );
                }
            }
        }
    }

    #[test]
    fn location_takes_the_base_with_or_without_a_slash() {
        for base in ["https://x/scim/v2", "https://x/scim/v2/"] {
            assert_eq!(
                location(base, ResourceKind::Group, "g1"),
                "https://x/scim/v2/Groups/g1"
            );
        }
    }
}
