//! The resource model: Users and Groups as canonical JSON objects.
//!
//! A resource is a `serde_json::Map` rather than a struct so that extension and unknown
//! attributes round-trip and nothing an IdP sends is silently dropped. Canonical means: attribute
//! names spelled as in the schema documents, values of the schema's type, multi-valued attributes
//! as arrays, extension attributes under their schema URN key, no nulls (RFC 7643 §2.5: null and
//! unassigned are the same), and `schemas` listing the core schema and every extension present.
//!
//! Decisions (documented in one place):
//! - `schemas` may be missing, and may carry URNs the bridge does not know (Entra's groups add
//!   `http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group`; Google's catalog
//!   connectors send `urn:scim:schemas:core:1.0`): these are ignored and `schemas` is recomputed.
//!   A body that names the *other* resource type's core schema and not this one's is a 400
//!   `invalidValue` (a Group posted to `/Users`).
//! - Unknown attributes are kept verbatim (the MS Postman collection's misspelled attribute on
//!   PUT must be accepted; dropping it would lose what the IdP sent).
//! - PUT clears omitted readWrite attributes (RFC 7644 §3.5.1 "replaces all values"): Okta's PUT
//!   carries the full object it got from GET, so nothing it did not change is lost. What the
//!   bridge keeps downstream (Coder) is not part of the SCIM resource and is unaffected.

use serde_json::{Map, Value};

use crate::dialect;
use crate::error::{ScimError, ScimResult};
use crate::schema::{
    AttrType, AttributeDef, Mutability, Registry, ResolvedAttr, ResourceKind, SchemaDef,
};

/// The `schemas` attribute (RFC 7643 §3).
pub const SCHEMAS: &str = "schemas";

/// A client-supplied resource body, canonicalised.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceBody {
    /// Canonical attributes including `schemas`; never `id`, `meta` or `password`.
    pub attrs: Map<String, Value>,
    /// The writeOnly `password` (RFC 7643 §4.1.1), handed to the store to hash; never stored in
    /// clear and never returned.
    pub password: Option<String>,
}

/// Canonicalise a POST or PUT body for `kind`.
///
/// Attribute names are matched to the schema ignoring case (`"UserName"`, `"Primary"`); Entra's
/// string booleans are read as booleans; a single value where an array is expected is wrapped;
/// readOnly attributes (`id`, `meta`, User `groups`) are dropped; top-level nulls mean absent;
/// extension attributes are accepted under their URN key and, where Entra's older docs send them
/// loose at the top level (`"department": …`), by name; required attributes (`userName`; a
/// Group's `displayName`) must be present. More than one `primary: true` in a multi-valued
/// attribute is a 400 `invalidValue` (RFC 7643 §2.4: primary appears no more than once).
pub fn normalize(kind: ResourceKind, body: Value, registry: &Registry) -> ScimResult<ResourceBody> {
    let Value::Object(input) = body else {
        return Err(ScimError::invalid_syntax(format!(
            "a {} must be a JSON object",
            kind.name()
        )));
    };
    let mut attrs = Map::new();
    let mut password = None;
    for (key, value) in input {
        // Entra's older create example sends `"title":null`, `"manager":null`.
        if value.is_null() {
            continue;
        }
        match classify_key(kind, &key, registry) {
            KeyTarget::Schemas => check_schemas(kind, &value)?,
            KeyTarget::Extension(schema) => {
                let Value::Object(inner) = value else {
                    return Err(ScimError::invalid_value(format!(
                        "'{}' must be an object",
                        schema.id
                    )));
                };
                for (name, value) in inner {
                    if value.is_null() {
                        continue;
                    }
                    match schema.attribute(&name) {
                        Some(attr) => {
                            let target = ResolvedAttr {
                                schema,
                                attr,
                                sub: None,
                            };
                            set_input(&mut attrs, target, value, &mut password)?;
                        }
                        None => {
                            if let Some(ext) = extension_object(&mut attrs, &schema.id) {
                                ext.insert(name, value);
                            }
                        }
                    }
                }
            }
            KeyTarget::Attribute(target) => set_input(&mut attrs, target, value, &mut password)?,
            KeyTarget::Dropped => {}
            KeyTarget::Unknown => {
                attrs.insert(key, value);
            }
        }
    }
    check_required(kind, &attrs, registry)?;
    refresh_schemas(kind, &mut attrs);
    Ok(ResourceBody { attrs, password })
}

/// Apply a PUT (RFC 7644 §3.5.1) to `current`.
///
/// readWrite attributes are replaced by the body's, and those the body omits are cleared (see
/// the module notes); readOnly attributes (`id`, `meta`, …) keep their current values; an
/// immutable attribute that is already set must not change (400 `mutability`) and is kept when
/// omitted. The password, if any, stays in `body.password` for the caller.
pub fn replace(
    kind: ResourceKind,
    current: &Map<String, Value>,
    body: ResourceBody,
    registry: &Registry,
) -> ScimResult<Map<String, Value>> {
    let mut next = body.attrs;
    for schema in schemas_of(kind, registry) {
        for attr in &schema.attributes {
            let current_value = attribute_in(current, schema, &attr.name);
            match attr.mutability {
                Mutability::ReadOnly => {
                    if let (Some(value), Some(target)) =
                        (current_value, container_mut(&mut next, schema))
                    {
                        target.insert(attr.name.clone(), value.clone());
                    }
                }
                Mutability::Immutable => {
                    match (current_value, attribute_in(&next, schema, &attr.name)) {
                        (Some(old), Some(new)) if old != new => {
                            return Err(ScimError::mutability(format!(
                                "attribute '{}' is immutable and cannot be changed",
                                attr.name
                            )));
                        }
                        (Some(old), None) => {
                            if let Some(target) = container_mut(&mut next, schema) {
                                target.insert(attr.name.clone(), old.clone());
                            }
                        }
                        _ => {}
                    }
                }
                Mutability::ReadWrite | Mutability::WriteOnly => {}
            }
        }
    }
    refresh_schemas(kind, &mut next);
    Ok(next)
}

/// Where a top-level key of a body or of a path-less PATCH value lands.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyTarget<'r> {
    /// `schemas`, which the bridge computes.
    Schemas,
    /// A whole extension object under its URN key.
    Extension(&'r SchemaDef),
    /// A schema or common attribute (`id`, `externalId`, `meta`), possibly dotted
    /// (`name.givenName`) or URN-qualified.
    Attribute(ResolvedAttr<'r>),
    /// `password` where the schemas have none (a Group): RFC 7643 §4.1.1 makes passwords
    /// writeOnly and never returned, so none is kept in clear as an unknown attribute either.
    Dropped,
    /// Not an attribute of any schema of this resource type.
    Unknown,
}

pub(crate) fn classify_key<'r>(
    kind: ResourceKind,
    key: &str,
    registry: &'r Registry,
) -> KeyTarget<'r> {
    if key.eq_ignore_ascii_case(SCHEMAS) {
        return KeyTarget::Schemas;
    }
    if let Some(schema) = dialect::extension_key(kind, key).and_then(|urn| registry.schema(urn)) {
        return KeyTarget::Extension(schema);
    }
    match registry.resolve(kind, &dialect::split_attribute_key(kind, key)) {
        Some(target) => KeyTarget::Attribute(target),
        None if key.eq_ignore_ascii_case("password") => KeyTarget::Dropped,
        None => KeyTarget::Unknown,
    }
}

/// Store one input attribute of a POST/PUT body, dropping readOnly ones and taking the password.
fn set_input(
    attrs: &mut Map<String, Value>,
    target: ResolvedAttr<'_>,
    value: Value,
    password: &mut Option<String>,
) -> ScimResult<()> {
    match target.leaf().mutability {
        // RFC 7644 §3.3: readOnly values in a request are ignored (Okta sends `"groups":[]`).
        Mutability::ReadOnly => return Ok(()),
        Mutability::WriteOnly => {
            *password = password_value(value)?;
            return Ok(());
        }
        Mutability::ReadWrite | Mutability::Immutable => {}
    }
    match target.sub {
        None => {
            if let (Some(value), Some(container)) = (
                coerce(target.attr, value, Label::of(&target.attr.name))?,
                container_mut(attrs, target.schema),
            ) {
                container.insert(target.attr.name.clone(), value);
            }
        }
        Some(sub) => {
            let label = Label::of(&target.attr.name).sub(&sub.name);
            if target.attr.multi_valued {
                return Err(ScimError::invalid_value(format!(
                    "'{label}' names a sub-attribute of a multi-valued attribute; send '{}' as an array",
                    target.attr.name
                )));
            }
            if let (Some(value), Some(container)) = (
                coerce(sub, value, label)?,
                container_mut(attrs, target.schema),
            ) && let Some(object) = object_at(container, &target.attr.name)
            {
                object.insert(sub.name.clone(), value);
            }
        }
    }
    Ok(())
}

/// A `password` value: a string, or null for "none given".
pub(crate) fn password_value(value: Value) -> ScimResult<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(ScimError::invalid_value(
            "attribute 'password' must be a string",
        )),
    }
}

/// RFC 7644 §3.3: the `schemas` of a body name the resource type. Unknown URNs are tolerated (see
/// the module notes); naming only another resource type's core schema is an error.
fn check_schemas(kind: ResourceKind, value: &Value) -> ScimResult<()> {
    let Value::Array(urns) = value else {
        return Err(ScimError::invalid_value(
            "'schemas' must be an array of schema URNs",
        ));
    };
    let mut names_own_core = false;
    let mut names_other_core = None;
    for urn in urns {
        let Some(urn) = urn.as_str() else {
            return Err(ScimError::invalid_value(
                "'schemas' must be an array of schema URNs",
            ));
        };
        if dialect::schema_urn_matches(urn, kind.core_schema()) {
            names_own_core = true;
        }
        for other in ResourceKind::ALL {
            if other != kind && dialect::schema_urn_matches(urn, other.core_schema()) {
                names_other_core = Some(other);
            }
        }
    }
    match names_other_core {
        Some(other) if !names_own_core => Err(ScimError::invalid_value(format!(
            "'schemas' names the {} schema but this endpoint serves {}s",
            other.name(),
            kind.name()
        ))),
        _ => Ok(()),
    }
}

/// RFC 7643 §7 `required`; a Group's `displayName` is required too, since IdPs match groups by it
/// (Okta's group push, Entra's matching attribute) and it becomes the Coder group name.
pub(crate) fn check_required(
    kind: ResourceKind,
    attrs: &Map<String, Value>,
    registry: &Registry,
) -> ScimResult<()> {
    let Some(core) = registry.schema(kind.core_schema()) else {
        return Ok(());
    };
    // draft-wzdk names an agent by agentUserName, draft-abbey by name: one of them is needed.
    if kind == ResourceKind::Agent && agent_user_name(attrs).is_none() {
        return Err(ScimError::invalid_value(
            "an Agent needs a non-empty 'agentUserName' or 'name'",
        ));
    }
    for attr in &core.attributes {
        // An Agent's agentUserName was checked above, where draft-abbey's name may stand for it.
        if kind == ResourceKind::Agent && attr.name == "agentUserName" {
            continue;
        }
        let required = attr.required || (kind == ResourceKind::Group && attr.name == "displayName");
        if !required
            || matches!(
                attr.mutability,
                Mutability::ReadOnly | Mutability::WriteOnly
            )
        {
            continue;
        }
        let present = match attrs.get(&attr.name) {
            None => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        };
        if !present {
            return Err(ScimError::invalid_value(format!(
                "attribute '{}' is required",
                attr.name
            )));
        }
    }
    Ok(())
}

/// Recompute `schemas`: the core schema, then each extension whose object is present. Kept as
/// the first key so responses read like the RFC's examples.
pub fn refresh_schemas(kind: ResourceKind, attrs: &mut Map<String, Value>) {
    let mut urns = vec![Value::String(kind.core_schema().into())];
    for urn in kind.extensions() {
        match attrs.get(*urn) {
            Some(Value::Object(ext)) if !ext.is_empty() => urns.push(Value::String((*urn).into())),
            Some(_) => {
                attrs.remove(*urn);
            }
            None => {}
        }
    }
    attrs.shift_remove(SCHEMAS);
    attrs.shift_insert(0, SCHEMAS.into(), Value::Array(urns));
}

/// The common attributes, the core schema and the extensions of `kind`, as the registry has them.
pub(crate) fn schemas_of(
    kind: ResourceKind,
    registry: &Registry,
) -> impl Iterator<Item = &SchemaDef> {
    std::iter::once(registry.common_attributes()).chain(
        std::iter::once(kind.core_schema())
            .chain(kind.extensions().iter().copied())
            .filter_map(|urn| registry.schema(urn)),
    )
}

/// Whether `schema`'s attributes are stored at the top level (core and common attributes) rather
/// than under the schema's URN key (extensions, RFC 7643 §3.3).
fn is_core(schema: &SchemaDef) -> bool {
    !ResourceKind::ALL
        .iter()
        .any(|kind| kind.extensions().contains(&schema.id.as_str()))
}

/// The object holding `schema`'s attributes, created for an extension when missing (and
/// replacing a stored non-object under the extension's key). `None` never happens in practice;
/// it keeps the function total without a panic path.
pub(crate) fn container_mut<'m>(
    attrs: &'m mut Map<String, Value>,
    schema: &SchemaDef,
) -> Option<&'m mut Map<String, Value>> {
    if is_core(schema) {
        Some(attrs)
    } else {
        extension_object(attrs, &schema.id)
    }
}

fn extension_object<'m>(
    attrs: &'m mut Map<String, Value>,
    urn: &str,
) -> Option<&'m mut Map<String, Value>> {
    object_at(attrs, urn)
}

/// The value under `key`, set to `empty` when missing or of another JSON kind.
fn slot_like<'m>(map: &'m mut Map<String, Value>, key: &str, empty: Value) -> &'m mut Value {
    let slot = map.entry(key.to_string()).or_insert(Value::Null);
    if std::mem::discriminant(slot) != std::mem::discriminant(&empty) {
        *slot = empty;
    }
    slot
}

/// The object under `key`, created when missing (or not an object).
pub(crate) fn object_at<'m>(
    map: &'m mut Map<String, Value>,
    key: &str,
) -> Option<&'m mut Map<String, Value>> {
    slot_like(map, key, Value::Object(Map::new())).as_object_mut()
}

/// The array under `key`, created when missing (or not an array).
pub(crate) fn array_at<'m>(
    map: &'m mut Map<String, Value>,
    key: &str,
) -> Option<&'m mut Vec<Value>> {
    slot_like(map, key, Value::Array(Vec::new())).as_array_mut()
}

/// Store `value` under `key`, or remove `key` when the value is unassigned.
pub(crate) fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(value) => {
            map.insert(key.to_string(), value);
        }
        None => {
            map.remove(key);
        }
    }
}

/// The object holding `schema`'s attributes, if any.
pub(crate) fn container<'m>(
    attrs: &'m Map<String, Value>,
    schema: &SchemaDef,
) -> Option<&'m Map<String, Value>> {
    if is_core(schema) {
        Some(attrs)
    } else {
        attrs.get(&schema.id).and_then(Value::as_object)
    }
}

/// The value of attribute `name` of `schema`, if present.
pub(crate) fn attribute_in<'m>(
    attrs: &'m Map<String, Value>,
    schema: &SchemaDef,
    name: &str,
) -> Option<&'m Value> {
    container(attrs, schema).and_then(|c| c.get(name))
}

/// An attribute's name in error details (`emails.value`), formatted only when an error is
/// reported: coercion runs for every value of every request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Label<'a> {
    pub attr: &'a str,
    pub sub: Option<&'a str>,
}

impl<'a> Label<'a> {
    pub(crate) fn of(attr: &'a str) -> Self {
        Label { attr, sub: None }
    }
    fn sub(self, sub: &'a str) -> Self {
        Label {
            attr: self.attr,
            sub: Some(sub),
        }
    }
}

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.sub {
            Some(sub) => write!(f, "{}.{sub}", self.attr),
            None => f.write_str(self.attr),
        }
    }
}

/// Coerce `value` to attribute `def`'s type; `Ok(None)` means "unassigned".
///
/// Multi-valued attributes become arrays (a single value is wrapped; RFC 7643 §2.4), complex
/// values get canonical sub-attribute names, booleans may be Entra strings, and a complex value
/// sent as a bare string (Entra's `"manager":"<id>"`, a member `"value":"<id>"`) becomes
/// `{"value": …}`. `label` names the attribute in error details.
pub(crate) fn coerce(
    def: &AttributeDef,
    value: Value,
    label: Label<'_>,
) -> ScimResult<Option<Value>> {
    // null is unassigned: `coerce_single` reads it so, alone or as the only element.
    if !def.multi_valued {
        let value = dialect::unwrap_single_element(value, label)?;
        return coerce_single(def, value, label);
    }
    let items = match value {
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Some(item) = coerce_single(def, item, label)? {
            out.push(item);
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    check_single_primary(&out, label)?;
    Ok(Some(Value::Array(out)))
}

/// RFC 7643 §2.4: the primary attribute value `true` MUST appear no more than once.
pub(crate) fn check_single_primary(items: &[Value], label: Label<'_>) -> ScimResult<()> {
    let primaries = items.iter().filter(|item| is_primary(item)).count();
    if primaries > 1 {
        return Err(ScimError::invalid_value(format!(
            "'{label}' has more than one value with primary true"
        )));
    }
    Ok(())
}

/// Whether a multi-valued element is marked `primary: true`.
pub(crate) fn is_primary(item: &Value) -> bool {
    item.get("primary").and_then(dialect::boolean) == Some(true)
}

/// Coerce one (non-array) value of `def`.
pub(crate) fn coerce_single(
    def: &AttributeDef,
    value: Value,
    label: Label<'_>,
) -> ScimResult<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    let mismatch =
        |what: &str| ScimError::invalid_value(format!("attribute '{label}' must be {what}"));
    match def.ty {
        AttrType::Complex => coerce_complex(def, value, label),
        AttrType::Boolean => dialect::boolean(&value)
            .map(|b| Some(Value::Bool(b)))
            .ok_or_else(|| mismatch("a boolean")),
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            Value::String(_) => Ok(Some(value)),
            _ => Err(mismatch("a string")),
        },
        AttrType::Integer => match &value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(value)),
            _ => Err(mismatch("an integer")),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => Ok(Some(value)),
            _ => Err(mismatch("a number")),
        },
        AttrType::DateTime => match &value {
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => Ok(Some(value)),
            _ => Err(mismatch("an RFC 3339 dateTime string")),
        },
    }
}

fn coerce_complex(def: &AttributeDef, value: Value, label: Label<'_>) -> ScimResult<Option<Value>> {
    let input = match value {
        Value::Object(object) => object,
        // Entra's manager as a bare string, a member `"value":"<id>"` as a bare string.
        Value::String(id) if def.sub_attribute("value").is_some() => {
            let mut object = Map::new();
            object.insert("value".into(), Value::String(id));
            object
        }
        _ => {
            return Err(ScimError::invalid_value(format!(
                "attribute '{label}' must be an object"
            )));
        }
    };
    if !def.multi_valued && dialect::is_cleared_reference(&input) {
        return Ok(None);
    }
    let mut out = Map::new();
    for (key, value) in input {
        if value.is_null() {
            continue;
        }
        match def.sub_attribute(&key) {
            Some(sub) if sub.mutability == Mutability::ReadOnly => {}
            Some(sub) => {
                if let Some(value) = coerce_single(sub, value, label.sub(&sub.name))? {
                    out.insert(sub.name.clone(), value);
                }
            }
            None => {
                out.insert(key, value);
            }
        }
    }
    if out.is_empty() {
        Ok(None)
    } else {
        Ok(Some(Value::Object(out)))
    }
}

/// The `userName` of a User.
pub fn user_name(attrs: &Map<String, Value>) -> Option<&str> {
    attrs.get("userName").and_then(Value::as_str)
}

/// An Agent's user name: `agentUserName` (draft-wzdk-scim-agent-resource), else `name`
/// (draft-abbey-scim-agent-extension); blank counts as absent.
pub fn agent_user_name(attrs: &Map<String, Value>) -> Option<&str> {
    ["agentUserName", "name"]
        .iter()
        .filter_map(|key| attrs.get(*key).and_then(Value::as_str))
        .find(|s| !s.trim().is_empty())
}

/// The client-owned `externalId` (RFC 7643 §3.1).
pub fn external_id(attrs: &Map<String, Value>) -> Option<&str> {
    attrs.get("externalId").and_then(Value::as_str)
}

/// The `displayName` of a User or Group.
pub fn display_name(attrs: &Map<String, Value>) -> Option<&str> {
    attrs
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// Whether a User is active; unassigned means active (Okta and Entra send `active` on every
/// create, and a user without it is not meant to be suspended).
pub fn active(attrs: &Map<String, Value>) -> bool {
    attrs
        .get("active")
        .and_then(dialect::boolean)
        .unwrap_or(true)
}

/// The User's email address for Coder: the primary one, else the `work` one, else the first.
pub fn primary_email(attrs: &Map<String, Value>) -> Option<&str> {
    let emails = attrs.get("emails").and_then(Value::as_array)?;
    let with_value = || {
        emails
            .iter()
            .filter(|e| e.get("value").and_then(Value::as_str).is_some())
    };
    let chosen = with_value()
        .find(|e| is_primary(e))
        .or_else(|| {
            with_value().find(|e| {
                e.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("work"))
            })
        })
        .or_else(|| with_value().next())?;
    chosen.get("value").and_then(Value::as_str)
}

/// A person's full name for Coder: `displayName`, else `name.formatted`, else
/// `name.givenName name.familyName`.
pub fn name_formatted(attrs: &Map<String, Value>) -> Option<String> {
    if let Some(display) = display_name(attrs) {
        return Some(display.trim().to_string());
    }
    let name = attrs.get("name")?;
    let part = |key: &str| {
        name.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    if let Some(formatted) = part("formatted") {
        return Some(formatted.to_string());
    }
    let joined = [part("givenName"), part("familyName")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if joined.is_empty() {
        None
    } else {
        Some(joined)
    }
}

/// The SCIM ids of the Users that own an Agent: its `owners` entries of type `User` or untyped,
/// each once (the drafts also allow Groups as owners; those are left out).
pub fn agent_owner_ids(attrs: &Map<String, Value>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let listed = attrs
        .get("owners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|o| {
            o.get("type")
                .and_then(Value::as_str)
                .is_none_or(|t| t.eq_ignore_ascii_case("User"))
        })
        .filter_map(|o| o.get("value").and_then(Value::as_str));
    for id in listed {
        if !ids.iter().any(|known| known == id) {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// The `value` (member id) of each of a Group's `members`.
pub fn group_member_ids(attrs: &Map<String, Value>) -> Vec<&str> {
    attrs
        .get("members")
        .and_then(Value::as_array)
        .map(|members| {
            members
                .iter()
                .filter_map(|m| m.get("value").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_owners_are_users_by_value_each_once() {
        let attrs = json!({"owners": [
            {"value": "u1"}, {"value": "g1", "type": "Group"}, {"value": "u2", "type": "User"},
            {"display": "x"}, {"value": "u1", "type": "user"}
        ]});
        assert_eq!(agent_owner_ids(attrs.as_object().unwrap()), ["u1", "u2"]);
        assert!(agent_owner_ids(&Map::new()).is_empty());
    }
    use crate::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};
    use serde_json::json;

    fn user(body: Value) -> ScimResult<ResourceBody> {
        normalize(ResourceKind::User, body, Registry::standard())
    }

    #[test]
    fn canonical_names_and_string_booleans() {
        let b = user(json!({
            "UserName": "Alice", "Active": "False",
            "Emails": [{"Value": "a@x.org", "Primary": "True", "Type": "work"}],
            "NAME": {"GIVENNAME": "Alice"}
        }))
        .unwrap();
        assert_eq!(b.attrs["userName"], "Alice");
        assert_eq!(b.attrs["active"], false);
        assert_eq!(b.attrs["emails"][0]["primary"], true);
        assert_eq!(b.attrs["emails"][0]["value"], "a@x.org");
        assert_eq!(b.attrs["name"]["givenName"], "Alice");
        assert_eq!(b.attrs["schemas"], json!([USER_SCHEMA]));
    }

    #[test]
    fn drops_read_only_and_takes_password() {
        let b = user(
            json!({"userName": "a", "id": "x", "meta": {}, "groups": [], "password": "s3cret"}),
        )
        .unwrap();
        assert!(
            b.attrs.get("id").is_none()
                && b.attrs.get("meta").is_none()
                && b.attrs.get("groups").is_none()
        );
        assert!(b.attrs.get("password").is_none());
        assert_eq!(b.password.as_deref(), Some("s3cret"));
    }

    #[test]
    fn wraps_single_value_and_rejects_two_primaries() {
        let b = user(json!({"userName": "a", "emails": {"value": "a@x.org"}})).unwrap();
        assert_eq!(b.attrs["emails"], json!([{"value": "a@x.org"}]));
        let e = user(json!({"userName": "a", "emails": [{"value": "1", "primary": true}, {"value": "2", "primary": "True"}]}))
            .unwrap_err();
        assert_eq!(e.scim_type, Some(crate::ScimType::InvalidValue));
    }

    #[test]
    fn type_errors_are_invalid_value_with_the_attribute_named() {
        let e = user(json!({"userName": "a", "active": "maybe"})).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::ScimType::InvalidValue));
        assert!(e.detail.contains("active"), "{}", e.detail);
        let e = user(json!({"userName": "a", "emails": [{"value": 5}]})).unwrap_err();
        assert!(e.detail.contains("emails.value"), "{}", e.detail);
        let e = user(json!({"userName": 7})).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::ScimType::InvalidValue));
        let e = user(json!(["not", "an", "object"])).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::ScimType::InvalidSyntax));
    }

    #[test]
    fn required_attributes() {
        assert!(
            user(json!({"displayName": "x"}))
                .unwrap_err()
                .detail
                .contains("userName")
        );
        assert!(user(json!({"userName": "  "})).is_err());
        let g = normalize(
            ResourceKind::Group,
            json!({"members": []}),
            Registry::standard(),
        )
        .unwrap_err();
        assert!(g.detail.contains("displayName"));
    }

    #[test]
    fn loose_extension_attributes_and_bare_manager() {
        let b = user(json!({
            "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
            "userName": "a", "department": "Eng", "title": null,
            ENTERPRISE_USER_SCHEMA: {"manager": "m1", "EmployeeNumber": "42"}
        }))
        .unwrap();
        assert_eq!(b.attrs[ENTERPRISE_USER_SCHEMA]["department"], "Eng");
        assert_eq!(b.attrs[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "42");
        assert_eq!(
            b.attrs[ENTERPRISE_USER_SCHEMA]["manager"],
            json!({"value": "m1"})
        );
        assert!(b.attrs.get("title").is_none());
        assert_eq!(
            b.attrs["schemas"],
            json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA])
        );
        let b = user(json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"manager": {"value": ""}}}))
            .unwrap();
        assert!(
            b.attrs.get(ENTERPRISE_USER_SCHEMA).is_none(),
            "{:?}",
            b.attrs
        );
    }

    #[test]
    fn schemas_of_the_wrong_resource_type_are_rejected_unknown_ones_tolerated() {
        let e = user(json!({"schemas": [GROUP_SCHEMA], "userName": "a"})).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::ScimType::InvalidValue));
        let g = normalize(
            ResourceKind::Group,
            json!({"schemas": [GROUP_SCHEMA, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"], "displayName": "G"}),
            Registry::standard(),
        )
        .unwrap();
        assert_eq!(g.attrs["schemas"], json!([GROUP_SCHEMA]));
    }

    #[test]
    fn a_group_keeps_no_password() {
        let g = normalize(
            ResourceKind::Group,
            json!({"displayName": "G", "Password": "x"}),
            Registry::standard(),
        )
        .unwrap();
        assert!(!g.attrs.keys().any(|k| k.eq_ignore_ascii_case("password")));
        assert_eq!(g.password, None);
    }

    #[test]
    fn unknown_attributes_round_trip() {
        let b = user(json!({"userName": "a", "favouriteColour": {"x": [1]}})).unwrap();
        assert_eq!(b.attrs["favouriteColour"], json!({"x": [1]}));
    }

    #[test]
    fn put_clears_omitted_keeps_read_only() {
        let current = json!({"schemas": [USER_SCHEMA], "id": "u1", "userName": "a", "title": "Eng", "meta": {"resourceType": "User"}});
        let current = current.as_object().unwrap();
        let body = user(json!({"userName": "b", "id": "other"})).unwrap();
        let next = replace(ResourceKind::User, current, body, Registry::standard()).unwrap();
        assert_eq!(next["id"], "u1");
        assert_eq!(next["userName"], "b");
        assert!(next.get("title").is_none());
        assert_eq!(next["meta"], json!({"resourceType": "User"}));
    }

    #[test]
    fn accessors() {
        let u = json!({
            "userName": "a", "active": "False",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "home@x", "type": "home"}, {"value": "work@x", "type": "work"}]
        });
        let u = u.as_object().unwrap();
        assert_eq!(user_name(u), Some("a"));
        assert!(!active(u));
        assert_eq!(primary_email(u), Some("work@x"));
        assert_eq!(name_formatted(u).as_deref(), Some("Ada Lovelace"));
        let g = json!({"members": [{"value": "u1"}, {"value": "u2"}]});
        assert_eq!(group_member_ids(g.as_object().unwrap()), vec!["u1", "u2"]);
        assert!(active(&Map::new()));
    }
}
