//! IdP dialects: the ways Okta and Microsoft Entra ID depart from RFC 7643/7644, and how each is
//! read back into the RFC's shape.
//!
//! Every quirk the bridge tolerates is named here once, with the IdP that sends it, so the
//! resource model and the PATCH engine stay RFC-shaped and the list of deviations stays auditable.
//! Each quirk is backed by a fixture in `fixtures/okta/` or `fixtures/entra/`.

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::filter::ast::AttrPath;
use crate::schema::{AttrType, AttributeDef, ENTERPRISE_USER_SCHEMA, ResourceKind};

/// The PatchOp message URN (RFC 7644 §3.5.2).
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Read a boolean as an IdP sends it.
///
/// Entra sends booleans as strings (`"active":"False"`, `"primary":"True"`), both in POST bodies and
/// in PATCH values (AzureAD/SCIMReferenceCode#21: "our service sends it as a string today").
pub fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Read a PATCH `op`. RFC 7644 §3.5.2 names `add`, `remove` and `replace`; Entra capitalises them
/// (`"Replace"`), and some clients send `"delete"` for remove (scimgateway accepts it too).
pub fn patch_op_name(op: &str) -> Option<crate::patch::PatchOpKind> {
    use crate::patch::PatchOpKind;
    if op.eq_ignore_ascii_case("add") {
        Some(PatchOpKind::Add)
    } else if op.eq_ignore_ascii_case("replace") {
        Some(PatchOpKind::Replace)
    } else if op.eq_ignore_ascii_case("remove") || op.eq_ignore_ascii_case("delete") {
        Some(PatchOpKind::Remove)
    } else {
        None
    }
}

/// A member of a JSON object by key, ignoring the key's case (`"Operations"` / `"operations"`,
/// `"Op"`, `"Value"`): attribute and message keys are case-insensitive (RFC 7643 §2.1).
pub fn get_ignore_case<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Whether `urn` names the schema `canonical`, also accepting Entra's older documentation typo
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0User` (no colon before `User`).
pub fn schema_urn_matches(urn: &str, canonical: &str) -> bool {
    if urn.eq_ignore_ascii_case(canonical) {
        return true;
    }
    canonical == ENTERPRISE_USER_SCHEMA
        && urn.eq_ignore_ascii_case("urn:ietf:params:scim:schemas:extension:enterprise:2.0User")
}

/// The schema (of those `kind` uses) whose URN `urn` names, as its canonical URN.
pub fn known_schema_urn(kind: ResourceKind, urn: &str) -> Option<&'static str> {
    std::iter::once(kind.core_schema())
        .chain(kind.extensions().iter().copied())
        .find(|canonical| schema_urn_matches(urn, canonical))
}

/// Split an attribute key as it appears in a body or a path-less PATCH value into a path.
///
/// Entra (with `aadOptscim062020`) folds several replaces into one path-less value whose keys are
/// dotted (`"name.givenName"`) or URN-qualified
/// (`"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"`); Okta sends
/// plain keys with nested objects. Only URNs of schemas `kind` uses are split off, so an unknown
/// `urn:…` key stays one opaque name.
pub fn split_attribute_key(kind: ResourceKind, key: &str) -> AttrPath {
    let (urn, rest) = match split_known_urn(kind, key) {
        Some((urn, rest)) => (Some(urn.to_string()), rest),
        None => (None, key),
    };
    match rest.split_once('.') {
        Some((attr, sub)) => AttrPath {
            urn,
            attr: attr.to_string(),
            sub_attr: Some(sub.to_string()),
        },
        None => AttrPath {
            urn,
            attr: rest.to_string(),
            sub_attr: None,
        },
    }
}

fn split_known_urn(kind: ResourceKind, key: &str) -> Option<(&'static str, &str)> {
    if !key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        return None;
    }
    let (prefix, attr) = key.rsplit_once(':')?;
    known_schema_urn(kind, prefix).map(|urn| (urn, attr))
}

/// Whether a key names a whole schema extension object (`"urn:…:enterprise:2.0:User": {…}`).
pub fn extension_key(kind: ResourceKind, key: &str) -> Option<&'static str> {
    kind.extensions()
        .iter()
        .copied()
        .find(|canonical| schema_urn_matches(key, canonical))
}

/// Unwrap a single-element array sent for a single-valued attribute.
///
/// Entra's legacy manager assignment sends `{"op":"Add","path":"manager","value":[{"$ref":…,"value":"<id>"}]}`
/// and the old Microsoft SCIM library wrapped plain strings the same way (azure-docs#42220).
pub fn unwrap_single_element(value: Value, attribute: impl std::fmt::Display) -> ScimResult<Value> {
    match value {
        Value::Array(mut items) if items.len() <= 1 => Ok(items.pop().unwrap_or(Value::Null)),
        Value::Array(_) => Err(ScimError::invalid_value(format!(
            "attribute '{attribute}' is single-valued but several values were given"
        ))),
        other => Ok(other),
    }
}

/// Whether a complex value means "unassigned".
///
/// Entra's validator "Remove Manager" test replaces `manager` with `{"value":""}` and Entra may
/// send the manager as a bare string, empty when it is cleared: both mean no manager.
pub fn is_cleared_reference(object: &Map<String, Value>) -> bool {
    object
        .iter()
        .all(|(k, v)| v.is_null() || (k.eq_ignore_ascii_case("value") && v.as_str() == Some("")))
}

/// Read the empty strings of a PATCH `add`/`replace` value as null: the attribute is cleared.
///
/// RFC 7643 §2.5 makes null and unassigned the same; Entra also clears with `""`. Its 2026
/// gallery validation (`SCIM_Null_Update_Test`, AzureAD/SCIMReferenceCode
/// `SCIMTests_Workflow.json`) sends `{"op":"replace","path":<each mapped attribute>,"value":""}`
/// (or one path-less replace of `"<path>":""` keys), then the same with `null`, and expects a GET
/// to show every one of them null or empty. Applied where `def` holds text (string, reference,
/// binary, dateTime) or is complex; a boolean or a number sent as `""` stays a type error, so a
/// blank `active` can never reactivate anyone. Inside a complex value each blank sub-attribute
/// becomes null, and an element of a multi-valued attribute whose `value` is blank is dropped
/// (an email without an address is no email).
pub fn blank_as_null(def: &AttributeDef, value: Value) -> Value {
    match value {
        Value::String(s) if s.is_empty() && holds_text(def) => Value::Null,
        Value::Object(fields) if def.ty == AttrType::Complex => {
            let fields: Map<String, Value> = fields
                .into_iter()
                .map(|(key, value)| {
                    let value = match def.sub_attribute(&key) {
                        Some(sub) => blank_as_null(sub, value),
                        None => value,
                    };
                    (key, value)
                })
                .collect();
            let value_blank = def.multi_valued
                && def.sub_attribute("value").is_some()
                && get_ignore_case(&fields, "value").is_some_and(Value::is_null);
            if value_blank {
                Value::Null
            } else {
                Value::Object(fields)
            }
        }
        Value::Array(items) if def.multi_valued => Value::Array(
            items
                .into_iter()
                .map(|item| blank_as_null(def, item))
                .filter(|item| !item.is_null())
                .collect(),
        ),
        other => other,
    }
}

fn holds_text(def: &AttributeDef) -> bool {
    matches!(
        def.ty,
        AttrType::String
            | AttrType::Reference
            | AttrType::Binary
            | AttrType::DateTime
            | AttrType::Complex
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::PatchOpKind;

    #[test]
    fn string_booleans_any_case() {
        assert_eq!(boolean(&Value::String("False".into())), Some(false));
        assert_eq!(boolean(&Value::String("TRUE".into())), Some(true));
        assert_eq!(boolean(&Value::Bool(true)), Some(true));
        assert_eq!(boolean(&Value::String("yes".into())), None);
        assert_eq!(boolean(&Value::from(1)), None);
    }

    #[test]
    fn op_names_any_case_and_delete() {
        assert_eq!(patch_op_name("Replace"), Some(PatchOpKind::Replace));
        assert_eq!(patch_op_name("ADD"), Some(PatchOpKind::Add));
        assert_eq!(patch_op_name("delete"), Some(PatchOpKind::Remove));
        assert_eq!(patch_op_name("move"), None);
    }

    #[test]
    fn splits_dotted_and_urn_keys() {
        let p = split_attribute_key(ResourceKind::User, "name.givenName");
        assert_eq!(p, AttrPath::with_sub("name", "givenName"));
        let p = split_attribute_key(
            ResourceKind::User,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        );
        assert_eq!(p.urn.as_deref(), Some(ENTERPRISE_USER_SCHEMA));
        assert_eq!(p.attr, "employeeNumber");
        let p = split_attribute_key(
            ResourceKind::User,
            "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:manager.value",
        );
        assert_eq!(p.urn.as_deref(), Some(ENTERPRISE_USER_SCHEMA));
        assert_eq!(
            (p.attr.as_str(), p.sub_attr.as_deref()),
            ("manager", Some("value"))
        );
        // Unknown URNs are opaque names.
        let p = split_attribute_key(ResourceKind::User, "urn:example:custom:thing");
        assert_eq!(p.urn, None);
    }

    #[test]
    fn entra_schema_typo_is_the_enterprise_extension() {
        assert_eq!(
            extension_key(
                ResourceKind::User,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"
            ),
            Some(ENTERPRISE_USER_SCHEMA)
        );
        assert_eq!(
            extension_key(ResourceKind::Group, ENTERPRISE_USER_SCHEMA),
            None
        );
    }

    #[test]
    fn single_element_arrays_unwrap() {
        let v = unwrap_single_element(serde_json::json!([{"value": "m1"}]), "manager").unwrap();
        assert_eq!(v, serde_json::json!({"value": "m1"}));
        assert!(unwrap_single_element(serde_json::json!([1, 2]), "manager").is_err());
        assert_eq!(
            unwrap_single_element(serde_json::json!([]), "x").unwrap(),
            Value::Null
        );
    }
}
