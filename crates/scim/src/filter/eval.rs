//! Filter evaluation against a resource's JSON (RFC 7644 §3.4.2.2).
//!
//! Rules, where the RFC leaves room:
//! - Attribute and object keys are looked up ignoring case; extension attributes are found under
//!   their schema URN key whether or not the filter wrote the URN.
//! - Strings compare as the schema's `caseExact` says (`userName`, `emails.value`, `displayName`
//!   ignore case; `id`, `externalId` do not). An attribute the schemas do not define compares
//!   ignoring case: such attributes only reach us from lenient IdPs, which never rely on case.
//! - A multi-valued attribute matches when any value matches; a complex attribute without a
//!   sub-attribute (`emails eq "x"`) compares its `value` sub-attribute.
//! - `ne` is the negation of `eq`: true when no value equals, including when the attribute is
//!   absent. `eq null` is true when the attribute is absent, and `ne null` is `pr`.
//! - `pr` is true when the attribute has a value other than null, `""`, `[]` or `{}`.
//! - dateTime attributes compare as instants (`meta.lastModified gt "2024-01-01T00:00:00Z"`);
//!   numbers numerically; other strings by code points after case folding where applicable.
//! - Booleans: Entra sends `"True"`/`"False"` strings (`addresses[primary EQ "True"]`), so a
//!   string literal is read as a boolean against a boolean value. `gt`/`ge`/`lt`/`le` on a boolean,
//!   binary or complex attribute is never true; [`validate`] rejects it up front with
//!   `invalidFilter` (RFC 7644 §3.4.2.2: "Boolean and Binary attributes SHALL cause a failed
//!   response").
//! - A number compared with a string attribute compares its text (`externalId eq 1234`).

use std::borrow::Cow;
use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use super::ast::{AttrPath, CompValue, CompareOp, Filter};
use crate::error::{ScimError, ScimResult};
use crate::schema::{AttrType, AttributeDef, Registry, ResolvedAttr, ResourceKind};

/// Whether `resource` (a User or Group as JSON) matches `filter`.
pub fn matches(
    filter: &Filter,
    resource: &Map<String, Value>,
    kind: ResourceKind,
    registry: &Registry,
) -> bool {
    match filter {
        Filter::And(a, b) => {
            matches(a, resource, kind, registry) && matches(b, resource, kind, registry)
        }
        Filter::Or(a, b) => {
            matches(a, resource, kind, registry) || matches(b, resource, kind, registry)
        }
        Filter::Not(inner) => !matches(inner, resource, kind, registry),
        Filter::Present(path) => {
            let resolved = registry.resolve(kind, path);
            is_present(
                locate(resource, kind, path, resolved.as_ref()),
                path.sub_attr.as_deref(),
            )
        }
        Filter::Compare { path, op, value } => {
            let resolved = registry.resolve(kind, path);
            let def = resolved.as_ref().map(compared_def);
            let found = locate(resource, kind, path, resolved.as_ref());
            compare_found(found, path.sub_attr.as_deref(), *op, value, def)
        }
        Filter::ValuePath { attr, filter } => {
            let resolved = registry.resolve(kind, attr);
            let def = resolved
                .map(|r| r.leaf())
                .unwrap_or_else(|| unknown_complex());
            match locate(resource, kind, attr, resolved.as_ref()) {
                Some(Value::Array(items)) => {
                    items.iter().any(|item| matches_element(filter, item, def))
                }
                Some(single) => matches_element(filter, single, def),
                None => false,
            }
        }
    }
}

/// Evaluate a valFilter (paths relative to one element) against one element of a
/// multi-valued/complex attribute `attr` (used by PATCH `emails[type eq "work"]`).
///
/// For a multi-valued attribute of simple values the element itself is its `value`.
pub fn matches_element(filter: &Filter, element: &Value, attr: &AttributeDef) -> bool {
    match filter {
        Filter::And(a, b) => matches_element(a, element, attr) && matches_element(b, element, attr),
        Filter::Or(a, b) => matches_element(a, element, attr) || matches_element(b, element, attr),
        Filter::Not(inner) => !matches_element(inner, element, attr),
        Filter::Present(path) => is_present(element_value(element, path), path.sub_attr.as_deref()),
        Filter::Compare { path, op, value } => {
            let def = attr.sub_attribute(&path.attr);
            compare_found(
                element_value(element, path),
                path.sub_attr.as_deref(),
                *op,
                value,
                def,
            )
        }
        // The grammar does not nest `[ ]`.
        Filter::ValuePath { .. } => false,
    }
}

/// Whether a resource with no schema in the registry (a `/Roles` entry) matches `filter`:
/// strings compare ignoring case, as an attribute without a definition does.
pub fn matches_schemaless(filter: &Filter, resource: &Value) -> bool {
    matches_element(filter, resource, unknown_complex())
}

/// Reject comparisons RFC 7644 §3.4.2.2 says must fail: `gt`/`ge`/`lt`/`le` on a boolean or
/// binary attribute (and on a complex one, which has no order either).
pub fn validate(filter: &Filter, kind: ResourceKind, registry: &Registry) -> ScimResult<()> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            validate(a, kind, registry)?;
            validate(b, kind, registry)
        }
        Filter::Not(inner) => validate(inner, kind, registry),
        Filter::Present(_) => Ok(()),
        Filter::Compare { path, op, .. } => {
            let def = registry.resolve(kind, path).as_ref().map(compared_def);
            check_ordering(path, *op, def)
        }
        Filter::ValuePath { attr, filter } => {
            let parent = registry.resolve(kind, attr).map(|r| r.leaf());
            validate_element(attr, filter, parent)
        }
    }
}

fn validate_element(
    parent_path: &AttrPath,
    filter: &Filter,
    parent: Option<&AttributeDef>,
) -> ScimResult<()> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            validate_element(parent_path, a, parent)?;
            validate_element(parent_path, b, parent)
        }
        Filter::Not(inner) => validate_element(parent_path, inner, parent),
        Filter::Compare { path, op, .. } => {
            let def = parent.and_then(|p| p.sub_attribute(&path.attr));
            let full = AttrPath {
                sub_attr: Some(path.attr.clone()),
                ..parent_path.clone()
            };
            check_ordering(&full, *op, def)
        }
        Filter::Present(_) | Filter::ValuePath { .. } => Ok(()),
    }
}

fn check_ordering(path: &AttrPath, op: CompareOp, def: Option<&AttributeDef>) -> ScimResult<()> {
    let ordering = matches!(
        op,
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
    );
    let unordered = match def.map(|d| d.ty) {
        Some(AttrType::Boolean) => "boolean",
        Some(AttrType::Binary) => "binary",
        Some(AttrType::Complex) => "complex",
        _ => return Ok(()),
    };
    if ordering {
        return Err(ScimError::invalid_filter(format!(
            "`{op}` cannot compare the {unordered} attribute `{path}` (RFC 7644 §3.4.2.2)"
        )));
    }
    Ok(())
}

/// The definition a comparison on `resolved` compares against: the named sub-attribute, or for
/// a complex attribute named without one, its `value` sub-attribute.
fn compared_def<'a>(resolved: &ResolvedAttr<'a>) -> &'a AttributeDef {
    match resolved.sub {
        Some(sub) => sub,
        None => resolved
            .attr
            .sub_attribute("value")
            .unwrap_or(resolved.attr),
    }
}

/// A complex, multi-valued definition with no sub-attributes, for value filters on attributes
/// the schemas do not define.
fn unknown_complex() -> &'static AttributeDef {
    static UNKNOWN: std::sync::OnceLock<AttributeDef> = std::sync::OnceLock::new();
    UNKNOWN.get_or_init(|| AttributeDef {
        name: String::new(),
        ty: AttrType::Complex,
        multi_valued: true,
        description: String::new(),
        required: false,
        case_exact: false,
        mutability: Default::default(),
        returned: Default::default(),
        uniqueness: Default::default(),
        canonical_values: Vec::new(),
        reference_types: Vec::new(),
        sub_attributes: Vec::new(),
    })
}

/// A key of a JSON object, ignoring case (an exact match first, as it is the common case).
pub(crate) fn get_ignoring_case<'r>(
    object: &'r Map<String, Value>,
    key: &str,
) -> Option<&'r Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The top-level value `path` names in `resource` (before any sub-attribute).
fn locate<'r>(
    resource: &'r Map<String, Value>,
    kind: ResourceKind,
    path: &AttrPath,
    resolved: Option<&ResolvedAttr<'_>>,
) -> Option<&'r Value> {
    // Extension attributes live under their schema URN (RFC 7643 §3.3).
    let container = match (&path.urn, resolved) {
        (Some(urn), _) if !urn.eq_ignore_ascii_case(kind.core_schema()) => Some(urn.as_str()),
        (None, Some(r)) if r.is_extension() => Some(r.schema.id.as_str()),
        _ => None,
    };
    let object = match container {
        Some(urn) => get_ignoring_case(resource, urn)?.as_object()?,
        None => resource,
    };
    get_ignoring_case(object, &path.attr)
}

/// The value `path` (relative to one element) names in `element`, before any sub-attribute.
fn element_value<'e>(element: &'e Value, path: &AttrPath) -> Option<&'e Value> {
    match element {
        Value::Object(object) => get_ignoring_case(object, &path.attr),
        // A multi-valued attribute of simple values: the element is its own `value`.
        scalar if path.attr.eq_ignore_ascii_case("value") => Some(scalar),
        _ => None,
    }
}

/// Whether `check` holds for any of the values `found` holds at `sub`.
fn any_value(found: &Value, sub: Option<&str>, check: &mut impl FnMut(&Value) -> bool) -> bool {
    match found {
        Value::Array(items) => items.iter().any(|item| any_value_of_one(item, sub, check)),
        single => any_value_of_one(single, sub, check),
    }
}

fn any_value_of_one(
    value: &Value,
    sub: Option<&str>,
    check: &mut impl FnMut(&Value) -> bool,
) -> bool {
    match (value, sub) {
        (Value::Object(object), Some(sub)) => match get_ignoring_case(object, sub) {
            Some(Value::Array(items)) => items.iter().any(&mut *check),
            Some(v) => check(v),
            None => false,
        },
        (_, Some(_)) => false,
        // RFC 7644 §3.4.2.2: a complex attribute without sub-attribute compares its `value`.
        (Value::Object(object), None) => {
            get_ignoring_case(object, "value").is_some_and(&mut *check)
        }
        (scalar, None) => check(scalar),
    }
}

fn is_present(found: Option<&Value>, sub: Option<&str>) -> bool {
    let Some(found) = found else { return false };
    let Some(sub) = sub else {
        return has_content(found);
    };
    let sub_present = |item: &Value| {
        item.as_object()
            .and_then(|o| get_ignoring_case(o, sub))
            .is_some_and(has_content)
    };
    match found {
        Value::Array(items) => items.iter().any(sub_present),
        single => sub_present(single),
    }
}

fn has_content(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => items.iter().any(has_content),
        Value::Object(object) => object.values().any(has_content),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare_found(
    found: Option<&Value>,
    sub: Option<&str>,
    op: CompareOp,
    literal: &CompValue,
    def: Option<&AttributeDef>,
) -> bool {
    match (op, literal) {
        (CompareOp::Eq, CompValue::Null) => !is_present(found, sub),
        (CompareOp::Ne, CompValue::Null) => is_present(found, sub),
        (_, CompValue::Null) => false,
        (CompareOp::Ne, _) => !found.is_some_and(|v| {
            any_value(v, sub, &mut |actual| {
                compare_one(actual, CompareOp::Eq, literal, def)
            })
        }),
        _ => found.is_some_and(|v| {
            any_value(v, sub, &mut |actual| compare_one(actual, op, literal, def))
        }),
    }
}

/// Compare one JSON value with a literal. `op` is never `Ne` (handled as "no value equals").
fn compare_one(
    actual: &Value,
    op: CompareOp,
    literal: &CompValue,
    def: Option<&AttributeDef>,
) -> bool {
    let ty = def.map(|d| d.ty);
    // Unknown attributes ignore case; see the module documentation.
    let case_exact = def.is_some_and(|d| d.case_exact);
    match (actual, literal) {
        (Value::Bool(a), _) => literal_as_bool(literal).is_some_and(|b| equality(op, *a == b)),
        (Value::String(a), _) if ty == Some(AttrType::Boolean) => {
            match (bool_text(a), literal_as_bool(literal)) {
                (Some(a), Some(b)) => equality(op, a == b),
                _ => false,
            }
        }
        (Value::Number(a), CompValue::Number(b)) => numbers(a, b).is_some_and(|o| ordering(op, o)),
        (Value::Number(a), CompValue::String(b)) => match b.parse::<f64>() {
            Ok(b) => a
                .as_f64()
                .and_then(|a| a.partial_cmp(&b))
                .is_some_and(|o| ordering(op, o)),
            Err(_) => false,
        },
        (Value::String(a), CompValue::String(b)) => {
            if ty == Some(AttrType::DateTime)
                && let (Some(a), Some(b)) = (instant(a), instant(b))
            {
                return ordering(op, a.cmp(&b));
            }
            if matches!(ty, Some(AttrType::Binary | AttrType::Complex)) && is_ordering(op) {
                return false;
            }
            strings(op, a, b, case_exact)
        }
        (Value::String(a), CompValue::Number(b)) => strings(op, a, &b.to_string(), case_exact),
        _ => false,
    }
}

fn is_ordering(op: CompareOp) -> bool {
    matches!(
        op,
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
    )
}

/// Booleans only support equality.
fn equality(op: CompareOp, equal: bool) -> bool {
    op == CompareOp::Eq && equal
}

fn literal_as_bool(literal: &CompValue) -> Option<bool> {
    match literal {
        CompValue::Bool(b) => Some(*b),
        // Entra sends "True"/"False" strings for booleans.
        CompValue::String(s) => bool_text(s),
        _ => None,
    }
}

fn bool_text(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn instant(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

fn numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn ordering(op: CompareOp, order: Ordering) -> bool {
    match op {
        CompareOp::Eq => order == Ordering::Equal,
        CompareOp::Ne => order != Ordering::Equal,
        CompareOp::Gt => order == Ordering::Greater,
        CompareOp::Ge => order != Ordering::Less,
        CompareOp::Lt => order == Ordering::Less,
        CompareOp::Le => order != Ordering::Greater,
        // Substring operators have no meaning for numbers and instants.
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn strings(op: CompareOp, actual: &str, literal: &str, case_exact: bool) -> bool {
    if op == CompareOp::Eq && !case_exact && actual.is_ascii() && literal.is_ascii() {
        // The hot path (`userName eq "…"`) without allocating.
        return actual.eq_ignore_ascii_case(literal);
    }
    let (actual, literal) = if case_exact {
        (Cow::Borrowed(actual), Cow::Borrowed(literal))
    } else {
        (fold_case(actual), fold_case(literal))
    };
    match op {
        CompareOp::Co => actual.contains(literal.as_ref()),
        CompareOp::Sw => actual.starts_with(literal.as_ref()),
        CompareOp::Ew => actual.ends_with(literal.as_ref()),
        _ => ordering(op, actual.cmp(&literal)),
    }
}

/// Lower-case `s`, borrowing when it already is.
fn fold_case(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        Cow::Owned(s.to_lowercase())
    }
}
