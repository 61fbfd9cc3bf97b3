//! Which attributes a response carries: `attributes` and `excludedAttributes` (RFC 7644
//! §3.4.2.5, §3.9) together with each attribute's `returned` characteristic (RFC 7643 §7).
//!
//! Decisions:
//! - `returned: always` (`id`, and whatever else the schemas mark so) is returned even when not
//!   named in `attributes` or when named in `excludedAttributes`; `returned: never` (`password`)
//!   never is; `returned: request` only when named in `attributes`. `schemas` is always returned.
//! - A value path in `attributes` (the MS Postman collection's `attributes=emails[type eq "work"]`)
//!   selects its attribute: the filter is not applied to the values returned.
//! - When both parameters are given, `attributes` wins (RFC 7644 §3.4.2.5 does not define the
//!   combination; no IdP sends it).
//! - Names that are no attribute of the resource type select nothing and are not an error
//!   (RFC 7644 gives no error for them); a name that does not parse is 400 `invalidValue`.
//! - Unknown attributes stored verbatim count as `returned: default`.

use serde_json::{Map, Value};

use crate::dialect;
use crate::error::{ScimError, ScimResult};
use crate::filter::ast::AttrPath;
use crate::path::PatchPath;
use crate::resource::SCHEMAS;
use crate::schema::{AttributeDef, Registry, ResourceKind, Returned};

/// The attribute selection of one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Projection {
    mode: Mode,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Mode {
    /// Neither parameter: the `returned: always` and `default` attributes.
    #[default]
    Default,
    /// `attributes`: only these (plus `returned: always`).
    Include(Vec<Selector>),
    /// `excludedAttributes`: the default set minus these.
    Exclude(Vec<Selector>),
}

/// One comma-separated entry of `attributes` / `excludedAttributes`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    path: AttrPath,
    /// As written, to recognise a whole extension URN (`urn:…:enterprise:2.0:User`).
    raw: String,
}

/// What a projection keeps of one attribute.
enum Keep<'s> {
    Nothing,
    Whole,
    /// Only these sub-attributes (and `returned: always` ones).
    OnlySubs(Vec<&'s str>),
    /// All but these sub-attributes.
    AllSubsBut(Vec<&'s str>),
}

impl Projection {
    /// Read the `attributes` and `excludedAttributes` parameters (comma-separated paths).
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> ScimResult<Projection> {
        let attributes = attributes.filter(|a| !a.trim().is_empty());
        let excluded = excluded.filter(|e| !e.trim().is_empty());
        let mode = match (attributes, excluded) {
            (Some(list), _) => Mode::Include(selectors(list)?),
            (None, Some(list)) => Mode::Exclude(selectors(list)?),
            (None, None) => Mode::Default,
        };
        Ok(Projection { mode })
    }

    /// The projection of `resource`, a canonical resource of `kind`.
    pub fn apply(
        &self,
        kind: ResourceKind,
        resource: &Map<String, Value>,
        registry: &Registry,
    ) -> Map<String, Value> {
        project_members(resource, |key, value| {
            if let Some(ext) = kind
                .extensions()
                .iter()
                .find(|e| e.eq_ignore_ascii_case(key))
            {
                let (Some(schema), Value::Object(inner)) = (registry.schema(ext), value) else {
                    return None;
                };
                let mut kept = Map::new();
                for (name, value) in inner {
                    if let Some(value) = self.project(ext, schema.attribute(name), name, value) {
                        kept.insert(name.clone(), value);
                    }
                }
                return (!kept.is_empty()).then_some(Value::Object(kept));
            }
            let core = AttrPath {
                urn: Some(kind.core_schema().into()),
                attr: key.to_owned(),
                sub_attr: None,
            };
            let def = registry.resolve(kind, &core).map(|r| r.attr);
            self.project(kind.core_schema(), def, key, value)
        })
    }

    /// The projection of `resource`, a resource with the one schema `urn` and no extension (a
    /// catalog's `Role` or `Entitlement`).
    pub fn apply_in_schema(
        &self,
        urn: &str,
        resource: &Map<String, Value>,
        registry: &Registry,
    ) -> Map<String, Value> {
        project_members(resource, |key, value| {
            let def = registry
                .resolve_in_schema(urn, &AttrPath::simple(key))
                .map(|r| r.attr);
            self.project(urn, def, key, value)
        })
    }

    /// Whether a response would carry (some of) `path`: the store asks before loading a Group's
    /// members (Entra reads groups with `excludedAttributes=members`).
    pub fn wants(&self, kind: ResourceKind, path: &AttrPath) -> bool {
        let Some(resolved) = Registry::standard().resolve(kind, path) else {
            return !matches!(self.mode, Mode::Include(_));
        };
        let urn = if resolved.is_extension() {
            resolved.schema.id.as_str()
        } else {
            kind.core_schema()
        };
        let returned = resolved.leaf().returned;
        match self.keep(urn, resolved.attr) {
            Keep::Nothing => false,
            _ if returned == Returned::Never => false,
            Keep::Whole => true,
            Keep::OnlySubs(subs) => {
                path.sub_attr
                    .as_deref()
                    .is_none_or(|s| subs.iter().any(|n| n.eq_ignore_ascii_case(s)))
                    || returned == Returned::Always
            }
            Keep::AllSubsBut(subs) => path
                .sub_attr
                .as_deref()
                .is_none_or(|s| !subs.iter().any(|n| n.eq_ignore_ascii_case(s))),
        }
    }

    fn project(
        &self,
        urn: &str,
        def: Option<&AttributeDef>,
        name: &str,
        value: &Value,
    ) -> Option<Value> {
        let keep = match def {
            Some(def) => self.keep(urn, def),
            None => self.keep_unknown(urn, name),
        };
        let sub_rule = |sub: &str, sub_def: Option<&AttributeDef>| -> bool {
            let returned = sub_def.map_or(Returned::Default, |d| d.returned);
            match (&keep, returned) {
                (_, Returned::Never) => false,
                (_, Returned::Always) => true,
                (Keep::OnlySubs(subs), _) => subs.iter().any(|s| s.eq_ignore_ascii_case(sub)),
                (Keep::AllSubsBut(subs), Returned::Default) => {
                    !subs.iter().any(|s| s.eq_ignore_ascii_case(sub))
                }
                (Keep::Whole, Returned::Default) => true,
                (_, Returned::Request) => matches!(&self.mode, Mode::Include(_)),
                (Keep::Nothing, _) => false,
            }
        };
        match keep {
            Keep::Nothing => None,
            _ => Some(match def {
                Some(def) if !def.sub_attributes.is_empty() => project_subs(def, value, &sub_rule)?,
                _ => value.clone(),
            }),
        }
    }

    /// The rule for an attribute `def` of schema `urn` (the core URN for core and common ones).
    fn keep<'s>(&'s self, urn: &str, def: &AttributeDef) -> Keep<'s> {
        match def.returned {
            Returned::Always => return Keep::Whole,
            Returned::Never => return Keep::Nothing,
            Returned::Default | Returned::Request => {}
        }
        match &self.mode {
            Mode::Default if def.returned == Returned::Request => Keep::Nothing,
            Mode::Default => Keep::Whole,
            Mode::Include(selectors) => match sub_attributes_named(selectors, urn, &def.name) {
                None => Keep::Whole,
                Some(subs) if subs.is_empty() => Keep::Nothing,
                Some(subs) => Keep::OnlySubs(subs),
            },
            Mode::Exclude(_) if def.returned == Returned::Request => Keep::Nothing,
            Mode::Exclude(selectors) => match sub_attributes_named(selectors, urn, &def.name) {
                None => Keep::Nothing,
                Some(subs) => Keep::AllSubsBut(subs),
            },
        }
    }

    fn keep_unknown<'s>(&'s self, urn: &str, name: &str) -> Keep<'s> {
        let named = |selectors: &[Selector]| {
            selectors
                .iter()
                .any(|s| s.names(urn, name) && s.path.sub_attr.is_none())
        };
        match &self.mode {
            Mode::Default => Keep::Whole,
            Mode::Include(selectors) if named(selectors) => Keep::Whole,
            Mode::Include(_) => Keep::Nothing,
            Mode::Exclude(selectors) if named(selectors) => Keep::Nothing,
            Mode::Exclude(_) => Keep::Whole,
        }
    }
}

impl Selector {
    /// Whether this selector names attribute `name` of schema `urn`, or the whole schema.
    fn names(&self, urn: &str, name: &str) -> bool {
        if self.raw.eq_ignore_ascii_case(urn) {
            return true;
        }
        self.path.attr.eq_ignore_ascii_case(name)
            && self
                .path
                .urn
                .as_deref()
                .is_none_or(|u| u.eq_ignore_ascii_case(urn))
    }
}

/// `resource` with its `schemas` and every other member `project` keeps (`None`: left out).
fn project_members(
    resource: &Map<String, Value>,
    project: impl Fn(&str, &Value) -> Option<Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in resource {
        let kept = if key == SCHEMAS {
            Some(value.clone())
        } else {
            project(key, value)
        };
        if let Some(value) = kept {
            out.insert(key.clone(), value);
        }
    }
    out
}

/// The sub-attributes `selectors` name of the attribute `name` of schema `urn`; `None` when
/// one of them names the whole attribute.
fn sub_attributes_named<'s>(
    selectors: &'s [Selector],
    urn: &str,
    name: &str,
) -> Option<Vec<&'s str>> {
    selectors
        .iter()
        .filter(|s| s.names(urn, name))
        .map(|s| s.path.sub_attr.as_deref())
        .collect()
}

/// Keep the sub-attributes `keep` allows, in a complex value or in each complex element of a
/// multi-valued one; `None` if nothing is left.
fn project_subs(
    def: &AttributeDef,
    value: &Value,
    keep: &dyn Fn(&str, Option<&AttributeDef>) -> bool,
) -> Option<Value> {
    let project_object = |object: &Map<String, Value>| -> Map<String, Value> {
        object
            .iter()
            .filter(|(k, _)| keep(k, def.sub_attribute(k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    match value {
        Value::Object(object) => Some(Value::Object(project_object(object)))
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty())),
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .iter()
                .filter_map(|item| match item {
                    Value::Object(object) => Some(project_object(object))
                        .filter(|o| !o.is_empty())
                        .map(Value::Object),
                    other => Some(other.clone()),
                })
                .collect();
            Some(Value::Array(kept)).filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        }
        other => Some(other.clone()),
    }
}

/// Split a comma-separated attribute list, ignoring commas inside `[…]` and quotes.
fn selectors(list: &str) -> ScimResult<Vec<Selector>> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0usize, false, 0usize);
    let mut push = |item: &str| -> ScimResult<()> {
        let item = item.trim();
        if item.is_empty() {
            return Ok(());
        }
        // A whole schema (`urn:…:enterprise:2.0:User`) is no attribute path.
        let whole_schema = ResourceKind::ALL
            .iter()
            .find_map(|kind| dialect::known_schema_urn(*kind, item));
        if let Some(urn) = whole_schema {
            out.push(Selector {
                path: AttrPath::simple(""),
                raw: urn.to_string(),
            });
            return Ok(());
        }
        let path = PatchPath::parse(item).map_err(|e| {
            ScimError::invalid_value(format!("attribute list entry \"{item}\": {}", e.detail))
        })?;
        out.push(Selector {
            path: path.attr,
            raw: item.to_string(),
        });
        Ok(())
    };
    for (i, c) in list.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                push(&list[start..i])?;
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&list[start..])?;
    Ok(out)
}
