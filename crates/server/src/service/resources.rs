//! Users and Groups: the one function per action the handlers (and `/Bulk`) call. Input is
//! canonicalised by the protocol core; every write is one store transaction (resource, outbox
//! row, audit record) that has committed when the function returns.
//!
//! Reads take the caller that may read; writes take an [`AuthorizedWrite`], which only a caller
//! holding `scim:write` can make: no path into the store skips the check.

use crate::caller::{AuthorizedWrite, Caller, MayRead};
use crate::error::ApiResult;
use crate::state::AppState;
use scim::projection::Projection;
use scim::query::{ListQuery, MAX_RESULTS};
use scim::resource::{ResourceBody, normalize, replace as apply_put};
use scim::{Registry, ResourceKind};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};
use store::{GetOptions, StoredResource};

/// POST (RFC 7644 §3.3).
pub async fn create(
    state: &AppState,
    write: &AuthorizedWrite,
    kind: ResourceKind,
    body: Value,
) -> ApiResult<StoredResource> {
    let body = normalize(kind, body, state.registry)?;
    if kind == ResourceKind::User {
        state.config.roles.check_user(&body.attrs)?;
    }
    Ok(state.store.create(write.context(), kind, body).await?)
}

/// GET by id (RFC 7644 §3.4.1), loading members/groups only when the projection shows them.
pub async fn get(
    state: &AppState,
    _reader: &Caller<impl MayRead>,
    kind: ResourceKind,
    id: &str,
    projection: &Projection,
) -> ApiResult<StoredResource> {
    Ok(state
        .store
        .get(kind, id, GetOptions::for_projection(kind, projection))
        .await?)
}

/// PUT (RFC 7644 §3.5.1): readWrite attributes replaced, readOnly kept, immutable checked, all
/// against the row as locked in the write transaction.
pub async fn replace(
    state: &AppState,
    write: &AuthorizedWrite,
    kind: ResourceKind,
    id: &str,
    if_match: Option<&str>,
    body: Value,
) -> ApiResult<StoredResource> {
    let body = normalize(kind, body, state.registry)?;
    let registry = state.registry;
    let roles = state.config.roles.clone();
    let next = move |current: &StoredResource| {
        let password = body.password.clone();
        let attrs = apply_put(kind, &current.attrs, body, registry)?;
        if kind == ResourceKind::User {
            roles.check_user(&attrs)?;
        }
        Ok(ResourceBody { attrs, password })
    };
    Ok(state
        .store
        .replace_with(write.context(), kind, id, if_match, next)
        .await?)
}

/// PATCH (RFC 7644 §3.5.2), applied under the row lock so parallel PATCHes never lose an update.
pub async fn patch(
    state: &AppState,
    write: &AuthorizedWrite,
    kind: ResourceKind,
    id: &str,
    if_match: Option<&str>,
    body: &Value,
) -> ApiResult<StoredResource> {
    let request = scim::patch::parse_request(body)?;
    Ok(state
        .store
        .patch(
            write.context(),
            kind,
            id,
            if_match,
            &request,
            &state.patch_options,
        )
        .await?)
}

/// DELETE (RFC 7644 §3.6).
pub async fn delete(
    state: &AppState,
    write: &AuthorizedWrite,
    kind: ResourceKind,
    id: &str,
    if_match: Option<&str>,
) -> ApiResult<()> {
    Ok(state
        .store
        .delete(write.context(), kind, id, if_match)
        .await?)
}

/// One page of a listing (RFC 7644 §3.4.2): `(totalResults, page)`.
pub async fn list(
    state: &AppState,
    _reader: &Caller<impl MayRead>,
    kind: ResourceKind,
    query: &ListQuery,
) -> ApiResult<(u64, Vec<StoredResource>)> {
    if let Some(filter) = &query.filter {
        scim::filter::validate(filter, kind, state.registry)?;
    }
    let page = state
        .store
        .list(
            kind,
            query,
            GetOptions::for_projection(kind, &query.projection),
        )
        .await?;
    Ok((page.total, page.items))
}

/// A search at the root (RFC 7644 §3.4.3 `POST /.search`): Users then Groups, paged as one
/// sequence. `sortBy` orders within each resource type.
pub async fn list_all(
    state: &AppState,
    reader: &Caller<impl MayRead>,
    query: &ListQuery,
) -> ApiResult<(u64, Vec<StoredResource>)> {
    let mut skip = query.start_index.max(1) - 1;
    let mut wanted = query.count.unwrap_or(MAX_RESULTS).min(MAX_RESULTS);
    let mut total = 0;
    let mut items = Vec::new();
    for kind in [ResourceKind::User, ResourceKind::Group] {
        let part = ListQuery {
            start_index: skip + 1,
            count: Some(wanted),
            ..query.clone()
        };
        let (kind_total, page) = list(state, reader, kind, &part).await?;
        total += kind_total;
        skip = skip.saturating_sub(usize::try_from(kind_total).unwrap_or(usize::MAX));
        wanted = wanted.saturating_sub(page.len());
        items.extend(page);
    }
    Ok((total, items))
}

/// The resource as the response shows it (RFC 7644 §3.9 projection).
///
/// A Group's members are not turned into JSON values: the projection is decided on a sample
/// member and the list is written from the rows when the body is serialised. As values, the
/// members of a 50,000-member group took about 60 MB per response (two copies of some 50,000
/// small maps); written straight out, they take the size of the text.
pub fn render<'a>(
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
        members: Some(vec![store::Member {
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
    fn shows(&self, member: &store::Member) -> bool {
        self.value || self.reference || self.kind || (self.display && member.display.is_some())
    }

    fn shows_any(&self, members: &[store::Member]) -> bool {
        members.iter().any(|m| self.shows(m))
    }
}

/// A Group's members as `StoredResource::to_scim` shows them (`value`, `$ref`, `display`,
/// `type`), written one by one.
#[derive(Debug)]
struct MemberList<'a> {
    members: &'a [store::Member],
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
    member: &'a store::Member,
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

/// `meta.location` of a resource.
pub fn location(base_url: &str, kind: ResourceKind, id: &str) -> String {
    format!("{}{}/{id}", base_url.trim_end_matches('/'), kind.endpoint())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use store::Member;

    fn group(members: Vec<Member>) -> StoredResource {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        StoredResource {
            kind: ResourceKind::Group,
            id: "g1".into(),
            attrs: serde_json::json!({"displayName": "Team", "externalId": "e1"})
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
                    let rendered = render(registry, resource, base, &projection);
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
}
