//! PATCH (RFC 7644 §3.5.2): parsing a PatchOp message and applying it to a resource.
//!
//! Decisions:
//! - `schemas` may be missing (lenient: Okta and Entra always send it, other clients sometimes
//!   do not); when present it must name the PatchOp URN, else 400 `invalidSyntax`.
//! - An empty `Operations` array is 400 `invalidValue`.
//! - A `path` naming no attribute of the resource type is 400 `invalidPath`. In a path-less
//!   value, unknown keys are stored verbatim, like unknown attributes of a POST body.
//! - `replace` with a `null` value clears the attribute (RFC 7643 §2.5: null is unassigned).
//! - `password` (writeOnly) is taken out of the request by [`PatchRequest::take_password`] for
//!   the store to hash; [`apply`] never writes it into the resource.
//! - `groups` on a User is readOnly and computed, so PATCH ops on it are ignored (Okta sends
//!   `"groups":[]`). Other readOnly targets are 400 `mutability` unless the operation leaves
//!   the value as it is (Okta's group rename repeats the group's `id`).
//! - Multi-valued attributes: `add` never duplicates a value (same `value`, and same `type` when
//!   both have one) but merges into it; setting `primary` on one value clears it on the others;
//!   a replace that makes two values equal folds them into one.
//! - `replace`/`add` on a single-valued complex attribute merges sub-attributes (RFC 7644
//!   §3.5.2.3), except when the new `value` differs: a new manager is a new object, so the old
//!   manager's `$ref`/`displayName` do not survive.

use serde_json::{Map, Value};
use std::collections::HashMap;

use crate::dialect;
use crate::error::{ScimError, ScimResult};
use crate::filter::ast::{AttrPath, CompValue, CompareOp, Filter};
use crate::filter::eval::matches_element;
use crate::path::PatchPath;
use crate::resource::{
    self, KeyTarget, Label, array_at, attribute_in, check_single_primary, classify_key, coerce,
    coerce_single, container_mut, is_primary, object_at, password_value, set_or_remove,
};
use crate::schema::{
    AttributeDef, GROUP_SCHEMA, Mutability, Registry, ResolvedAttr, ResourceKind, SchemaDef,
};

/// A parsed PatchOp message.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    /// The operations, in the order they apply.
    pub operations: Vec<PatchOp>,
}

/// One PATCH operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: PatchOpKind,
    pub path: Option<PatchPath>,
    /// `None` when the operation had no `value` member; `Some(Null)` for an explicit null.
    pub value: Option<Value>,
}

/// The three operations of RFC 7644 §3.5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchOpKind {
    Add,
    Replace,
    Remove,
}

/// How PATCH treats the points where the IdPs and the RFC disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchOptions {
    /// `replace` on a filtered path that matches nothing adds the value (Entra and its validator
    /// expect `emails[type eq "work"].value` to create the work email) instead of RFC 7644
    /// §3.5.2.3's 400 `noTarget`.
    pub replace_missing_filter_adds: bool,
    /// The roles a User may carry once patched (see [`crate::roles`]); the default catalog
    /// offers none and checks nothing.
    pub roles: std::sync::Arc<crate::roles::RoleCatalog>,
    /// The entitlements a User may carry once patched (see [`crate::entitlements`]); the
    /// default catalog offers none and checks nothing.
    pub entitlements: std::sync::Arc<crate::entitlements::EntitlementCatalog>,
}

impl Default for PatchOptions {
    /// The Entra-compatible behaviour, which no Okta request depends on either way.
    fn default() -> Self {
        PatchOptions {
            replace_missing_filter_adds: true,
            roles: Default::default(),
            entitlements: Default::default(),
        }
    }
}

impl PatchOptions {
    /// RFC 7644 to the letter.
    pub fn strict() -> Self {
        PatchOptions {
            replace_missing_filter_adds: false,
            ..PatchOptions::default()
        }
    }

    /// A User, however written (POST, PUT, PATCH, Bulk), may only carry the roles and
    /// entitlements on offer: otherwise 400 `invalidValue` naming the first other one.
    pub fn check_grants(&self, kind: ResourceKind, attrs: &Map<String, Value>) -> ScimResult<()> {
        if kind == ResourceKind::User {
            self.roles.check_user(attrs)?;
            self.entitlements.check_user(attrs)?;
        }
        Ok(())
    }
}

/// Most operations one PATCH may carry; more is 400 `tooMany`. IdPs send a handful (Entra and
/// Okta put a group's member changes in the `value` array of one operation), so this bounds
/// the work of one request without refusing real traffic.
pub const MAX_OPERATIONS: usize = 1000;

/// Parse a PatchOp message body, reading the IdP dialects on the way: `op` in any case and
/// `"delete"` for remove, an `operations` key in any case, an empty or missing `path` as none.
pub fn parse_request(body: &Value) -> ScimResult<PatchRequest> {
    let Value::Object(message) = body else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body must be a PatchOp JSON object",
        ));
    };
    if let Some(schemas) = dialect::get_ignore_case(message, resource::SCHEMAS) {
        let names_patch_op = schemas.as_array().is_some_and(|urns| {
            urns.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(dialect::PATCH_OP_SCHEMA))
            })
        });
        if !names_patch_op {
            return Err(ScimError::invalid_syntax(format!(
                "'schemas' must contain \"{}\"",
                dialect::PATCH_OP_SCHEMA
            )));
        }
    }
    let Some(operations) = dialect::get_ignore_case(message, "Operations") else {
        return Err(ScimError::invalid_syntax(
            "a PatchOp body needs an 'Operations' array",
        ));
    };
    let Value::Array(operations) = operations else {
        return Err(ScimError::invalid_syntax("'Operations' must be an array"));
    };
    if operations.is_empty() {
        return Err(ScimError::invalid_value(
            "'Operations' is empty: a PATCH needs at least one operation",
        ));
    }
    if operations.len() > MAX_OPERATIONS {
        return Err(ScimError::too_many(format!(
            "the PATCH has {} operations; at most {MAX_OPERATIONS} are accepted: send the rest in another PATCH",
            operations.len()
        )));
    }
    let operations = operations
        .iter()
        .enumerate()
        .map(|(i, op)| parse_op(i, op))
        .collect::<ScimResult<_>>()?;
    Ok(PatchRequest { operations })
}

fn parse_op(index: usize, op: &Value) -> ScimResult<PatchOp> {
    let Value::Object(op) = op else {
        return Err(ScimError::invalid_syntax(format!(
            "operation {index} is not an object"
        )));
    };
    let name = dialect::get_ignore_case(op, "op")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = dialect::patch_op_name(name).ok_or_else(|| {
        ScimError::invalid_syntax(format!(
            "operation {index}: 'op' must be add, replace or remove, not \"{name}\""
        ))
    })?;
    let path = match dialect::get_ignore_case(op, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(PatchPath::parse(p.trim())?),
        Some(_) => {
            return Err(ScimError::invalid_path(format!(
                "operation {index}: 'path' must be a string"
            )));
        }
    };
    let value = dialect::get_ignore_case(op, "value").cloned();
    if kind != PatchOpKind::Remove && value.is_none() {
        // RFC 7644 §3.5.2.1/§3.5.2.3: add and replace carry a value.
        return Err(ScimError::invalid_value(format!(
            "operation {index}: {name} needs a 'value'"
        )));
    }
    Ok(PatchOp {
        op: kind,
        path,
        value,
    })
}

impl PatchRequest {
    /// Take the writeOnly `password` out of the request (Okta's password sync sends
    /// `{"op":"replace","value":{"password":"…"}}` or `"path":"password"`), so the store can hash
    /// it; the request keeps every other operation. Call it for Users before [`apply`]; a
    /// password left in the request is dropped by [`apply`], never stored. The last password in
    /// the request wins; removing the password is ignored (a SCIM client cannot unset it).
    pub fn take_password(&mut self) -> ScimResult<Option<String>> {
        let mut password = None;
        let mut error = None;
        self.operations
            .retain_mut(|op| match (&op.path, &mut op.value) {
                (Some(path), value) if is_password_path(path) => {
                    if op.op != PatchOpKind::Remove {
                        match password_value(value.take().unwrap_or(Value::Null)) {
                            Ok(p) => password = p,
                            Err(e) => error = Some(e),
                        }
                    }
                    false
                }
                (None, Some(Value::Object(values))) => {
                    let key = values
                        .keys()
                        .find(|k| k.eq_ignore_ascii_case("password"))
                        .cloned();
                    if let Some(taken) = key.and_then(|k| values.shift_remove(&k)) {
                        match password_value(taken) {
                            Ok(p) => password = p.or(password.take()),
                            Err(e) => error = Some(e),
                        }
                    }
                    !values.is_empty()
                }
                _ => true,
            });
        match error {
            Some(e) => Err(e),
            None => Ok(password),
        }
    }
}

fn is_password_path(path: &PatchPath) -> bool {
    path.filter.is_none()
        && path.attr.sub_attr.is_none()
        && path.attr.attr.eq_ignore_ascii_case("password")
        && path
            .attr
            .urn
            .as_deref()
            .is_none_or(|u| u.eq_ignore_ascii_case(ResourceKind::User.core_schema()))
}

/// Apply every operation of `request`, in order, to a copy of `resource`; all or none: on an
/// error nothing is returned and `resource` is untouched.
///
/// `resource` is the resource as served, including `id` (Okta's group rename repeats the
/// group's own `id` in a path-less replace, accepted only when equal).
pub fn apply(
    kind: ResourceKind,
    resource: &Map<String, Value>,
    request: &PatchRequest,
    registry: &Registry,
    opts: &PatchOptions,
) -> ScimResult<Map<String, Value>> {
    let mut engine = Engine {
        kind,
        registry,
        opts,
        doc: resource.clone(),
    };
    for op in &request.operations {
        engine.apply_op(op)?;
    }
    // A PATCH may clear what a POST must carry (`"userName":""`, a remove of a Group's
    // `displayName`): the result is checked like a POST body, a 400 `invalidValue`.
    resource::check_required(kind, &engine.doc, registry)?;
    opts.check_grants(kind, &engine.doc)?;
    resource::refresh_schemas(kind, &mut engine.doc);
    Ok(engine.doc)
}

struct Engine<'r> {
    kind: ResourceKind,
    registry: &'r Registry,
    opts: &'r PatchOptions,
    doc: Map<String, Value>,
}

/// A resolved PATCH target.
#[derive(Clone, Copy)]
struct Target<'r, 'f> {
    attr: ResolvedAttr<'r>,
    filter: Option<&'f Filter>,
}

impl<'r> Engine<'r> {
    fn apply_op(&mut self, op: &PatchOp) -> ScimResult<()> {
        let value = op.value.clone().unwrap_or(Value::Null);
        let Some(path) = &op.path else {
            return self.apply_pathless(op.op, value);
        };
        if path.is_whole_schema() {
            let schema = path
                .attr
                .urn
                .as_deref()
                .and_then(|urn| dialect::extension_key(self.kind, urn));
            let Some(schema) = schema.and_then(|urn| self.registry.schema(urn)) else {
                return Err(ScimError::invalid_path(format!(
                    "'{}' is not a schema extension of a {}",
                    path.attr.urn.as_deref().unwrap_or_default(),
                    self.kind.name()
                )));
            };
            return self.apply_extension(op.op, schema, value);
        }
        if path.filter.is_none()
            && path.attr.sub_attr.is_none()
            && path.attr.urn.is_none()
            && path.attr.attr.eq_ignore_ascii_case(resource::SCHEMAS)
        {
            return Ok(()); // computed by the bridge
        }
        let Some(attr) = self.registry.resolve(self.kind, &path.attr) else {
            return Err(ScimError::invalid_path(format!(
                "'{}' is not an attribute of a {}",
                display_path(&path.attr),
                self.kind.name()
            )));
        };
        if path.filter.is_some() && !attr.attr.multi_valued {
            return Err(ScimError::invalid_path(format!(
                "'{}' is single-valued; a value filter needs a multi-valued attribute",
                attr.attr.name
            )));
        }
        self.apply_target(
            op.op,
            Target {
                attr,
                filter: path.filter.as_ref(),
            },
            value,
        )
    }

    /// RFC 7644 §3.5.2.1/§3.5.2.3 without a path: `value` is an object of attributes. Keys may be
    /// nested objects (Okta), dotted `name.givenName` or URN-qualified (Entra, aadOptscim062020).
    fn apply_pathless(&mut self, op: PatchOpKind, value: Value) -> ScimResult<()> {
        if op == PatchOpKind::Remove {
            return Err(ScimError::no_target(
                "remove needs a 'path' (RFC 7644 §3.5.2.2)",
            ));
        }
        let Value::Object(values) = dialect::unwrap_single_element(value, "value")? else {
            return Err(ScimError::invalid_value(
                "an operation without a 'path' needs an object 'value'",
            ));
        };
        for (key, value) in values {
            match classify_key(self.kind, &key, self.registry) {
                KeyTarget::Schemas | KeyTarget::Dropped => {}
                KeyTarget::Extension(schema) => self.apply_extension(op, schema, value)?,
                KeyTarget::Attribute(attr) => {
                    self.apply_target(op, Target { attr, filter: None }, value)?
                }
                KeyTarget::Unknown => {
                    if value.is_null() {
                        self.doc.remove(&key);
                    } else {
                        self.doc.insert(key, value);
                    }
                }
            }
        }
        Ok(())
    }

    /// An operation on a whole extension object: its attributes one by one, or remove them all.
    fn apply_extension(
        &mut self,
        op: PatchOpKind,
        schema: &'r SchemaDef,
        value: Value,
    ) -> ScimResult<()> {
        let cleared = value.is_null() || value.as_str() == Some("");
        if op == PatchOpKind::Remove || cleared {
            if op == PatchOpKind::Remove || op == PatchOpKind::Replace {
                self.doc.remove(&schema.id);
            }
            return Ok(());
        }
        let Value::Object(values) = value else {
            return Err(ScimError::invalid_value(format!(
                "'{}' must be an object",
                schema.id
            )));
        };
        for (key, value) in values {
            match schema.attribute(&key) {
                Some(attr) => {
                    let target = Target {
                        attr: ResolvedAttr {
                            schema,
                            attr,
                            sub: None,
                        },
                        filter: None,
                    };
                    self.apply_target(op, target, value)?;
                }
                None => {
                    if let Some(ext) = container_mut(&mut self.doc, schema) {
                        ext.insert(key, value);
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_target(
        &mut self,
        op: PatchOpKind,
        target: Target<'r, '_>,
        value: Value,
    ) -> ScimResult<()> {
        let attr = target.attr.attr;
        // RFC 7643 §4.1: `groups` is readOnly and derived from Group membership; ignoring it keeps
        // Okta's `"groups":[]` harmless.
        if self.kind.has_groups() && attr.name == "groups" && !target.attr.is_extension() {
            return Ok(());
        }
        // writeOnly (`password`): handed to the store by `take_password`, never stored.
        if target.attr.leaf().mutability == Mutability::WriteOnly {
            return Ok(());
        }
        if attr.mutability == Mutability::ReadOnly
            || target
                .attr
                .sub
                .is_some_and(|s| s.mutability == Mutability::ReadOnly)
        {
            return self.check_read_only(op, target, value);
        }
        // `""` clears like null when adding or replacing; a remove's value only selects.
        let value = match op {
            PatchOpKind::Add | PatchOpKind::Replace => {
                dialect::blank_as_null(target.attr.leaf(), value)
            }
            PatchOpKind::Remove => value,
        };
        match (target.filter, target.attr.sub, attr.multi_valued) {
            (None, None, true) => self.whole_multi_valued(op, target.attr, value),
            (None, None, false) => self.whole_single_valued(op, target.attr, value),
            (None, Some(sub), false) => self.sub_of_complex(op, target.attr, sub, value),
            (filter, sub, _) => self.elements(op, target.attr, filter, sub, value),
        }
    }

    /// RFC 7644 §3.5.2: readOnly targets are 400 `mutability`, except an operation that would
    /// leave the value as it is (Okta's group rename carries the group's own `id`).
    fn check_read_only(
        &self,
        op: PatchOpKind,
        target: Target<'r, '_>,
        value: Value,
    ) -> ScimResult<()> {
        let current = self.current(target.attr);
        let unchanged = match op {
            PatchOpKind::Remove => current.is_none(),
            PatchOpKind::Add | PatchOpKind::Replace => {
                target.filter.is_none() && current == Some(&value)
            }
        };
        if unchanged {
            return Ok(());
        }
        Err(ScimError::mutability(format!(
            "attribute '{}' is readOnly",
            label(target.attr)
        )))
    }

    fn current(&self, attr: ResolvedAttr<'r>) -> Option<&Value> {
        let value = attribute_in(&self.doc, attr.schema, &attr.attr.name)?;
        match attr.sub {
            None => Some(value),
            Some(sub) => value.get(&sub.name),
        }
    }

    /// The object holding `attr`'s schema's attributes.
    fn container(&mut self, attr: ResolvedAttr<'r>) -> ScimResult<&mut Map<String, Value>> {
        container_mut(&mut self.doc, attr.schema).ok_or_else(|| {
            ScimError::invalid_value(format!("'{}' cannot be stored", attr.schema.id))
        })
    }

    fn whole_multi_valued(
        &mut self,
        op: PatchOpKind,
        attr: ResolvedAttr<'r>,
        value: Value,
    ) -> ScimResult<()> {
        let def = attr.attr;
        let name = def.name.as_str();
        let container = self.container(attr)?;
        match op {
            // Entra (without aadOptscim062020) removes one member with `path:"members"` plus a
            // value list; a naive server would remove them all. With no value, all go (RFC).
            PatchOpKind::Remove if !value.is_null() => {
                let Some(Value::Array(gone)) = coerce(def, value, Label::of(name))? else {
                    return Ok(());
                };
                if let Some(Value::Array(items)) = container.get_mut(name) {
                    let gone_index = SameValueIndex::of(def, &gone);
                    items.retain(|item| gone_index.find(def, &gone, item).is_none());
                }
                drop_if_empty(container, name);
            }
            PatchOpKind::Remove => {
                container.remove(name);
            }
            PatchOpKind::Replace => {
                set_or_remove(container, name, coerce(def, value, Label::of(name))?)
            }
            // RFC 7644 §3.5.2.1: add appends; a value already present is not added twice, and
            // re-adding an existing member is a success.
            PatchOpKind::Add => {
                let Some(Value::Array(new_items)) = coerce(def, value, Label::of(name))? else {
                    return Ok(());
                };
                if let Some(items) = array_at(container, name) {
                    // Lookups, not scans: adding k values to n costs O(n + k), not O(n × k).
                    let mut index = SameValueIndex::of(def, items);
                    let mut primaries: Vec<usize> = (0..items.len())
                        .filter(|&i| is_primary(&items[i]))
                        .collect();
                    for new_item in new_items {
                        let at = match index.find(def, items, &new_item) {
                            Some(at) => {
                                merge_into(&mut items[at], new_item);
                                at
                            }
                            None => {
                                index.insert(&new_item, items.len());
                                items.push(new_item);
                                items.len() - 1
                            }
                        };
                        // As `keep_primary`, over the values known to be primary.
                        if is_primary(&items[at]) {
                            for &other in primaries.iter().filter(|&&p| p != at) {
                                if let Value::Object(item) = &mut items[other] {
                                    item.insert("primary".into(), Value::Bool(false));
                                }
                            }
                            primaries = vec![at];
                        } else {
                            primaries.retain(|&p| p != at);
                        }
                    }
                    check_single_primary(items, Label::of(name))?;
                }
            }
        }
        Ok(())
    }

    fn whole_single_valued(
        &mut self,
        op: PatchOpKind,
        attr: ResolvedAttr<'r>,
        value: Value,
    ) -> ScimResult<()> {
        let def = attr.attr;
        let name = def.name.as_str();
        let cleared = match op {
            PatchOpKind::Remove => Vec::new(),
            PatchOpKind::Add | PatchOpKind::Replace => cleared_sub_attributes(def, &value),
        };
        let new = match op {
            PatchOpKind::Remove => None,
            PatchOpKind::Add | PatchOpKind::Replace => coerce(def, value, Label::of(name))?,
        };
        let container = self.container(attr)?;
        let next = match (container.get(name), new) {
            // RFC 7644 §3.5.2.1/§3.5.2.3: on a complex attribute, the given sub-attributes are
            // merged and those given as null are cleared; the others stay. A different or
            // cleared `value` (a new manager, no manager) is a new object, whose stale
            // `$ref`/`displayName` must not survive.
            (Some(Value::Object(old)), new)
                if !cleared.iter().any(|c| c == "value")
                    && match &new {
                        Some(Value::Object(new)) => {
                            old.get("value") == new.get("value") || new.get("value").is_none()
                        }
                        None => !cleared.is_empty(),
                        Some(_) => false,
                    } =>
            {
                let mut merged = old.clone();
                if let Some(Value::Object(new)) = new {
                    merged.extend(new);
                }
                merged.retain(|key, _| !cleared.contains(key));
                (!dialect::is_cleared_reference(&merged)).then_some(Value::Object(merged))
            }
            (_, new) => new,
        };
        check_immutable(def, name, container.get(name), next.as_ref())?;
        set_or_remove(container, name, next);
        Ok(())
    }

    /// `name.givenName`, `manager.value`: a sub-attribute of a single-valued complex attribute.
    fn sub_of_complex(
        &mut self,
        op: PatchOpKind,
        attr: ResolvedAttr<'r>,
        sub: &'r AttributeDef,
        value: Value,
    ) -> ScimResult<()> {
        let name = attr.attr.name.as_str();
        let label = label(attr);
        let new = match op {
            PatchOpKind::Remove => None,
            PatchOpKind::Add | PatchOpKind::Replace => {
                coerce_single(sub, dialect::unwrap_single_element(value, label)?, label)?
            }
        };
        let container = self.container(attr)?;
        let old = container.get(name).and_then(|v| v.get(&sub.name));
        check_immutable(sub, label, old, new.as_ref())?;
        if let Some(object) = object_at(container, name) {
            set_or_remove(object, &sub.name, new);
            // Entra's "Remove Manager" may come as `manager.value` = "".
            if dialect::is_cleared_reference(object) {
                container.remove(name);
            }
        }
        Ok(())
    }

    /// Elements of a multi-valued attribute: those a value filter selects (`emails[type eq
    /// "work"]`, `members[value eq "…"]`), or all of them for `emails.value` without a filter.
    fn elements(
        &mut self,
        op: PatchOpKind,
        attr: ResolvedAttr<'r>,
        filter: Option<&Filter>,
        sub: Option<&'r AttributeDef>,
        value: Value,
    ) -> ScimResult<()> {
        let def = attr.attr;
        let name = def.name.as_str();
        let label = label(attr);
        let opts_add_missing = self.opts.replace_missing_filter_adds;
        let new = match op {
            PatchOpKind::Remove => None,
            PatchOpKind::Add | PatchOpKind::Replace => {
                let value = match sub {
                    Some(_) => dialect::unwrap_single_element(value, label)?,
                    None => value,
                };
                match sub {
                    Some(sub) => coerce_single(sub, value, label)?,
                    None => coerce_single(def, value, label)?,
                }
            }
        };
        let container = self.container(attr)?;
        let Some(items) = array_at(container, name) else {
            return Ok(());
        };
        let selected: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, item)| filter.is_none_or(|f| matches_element(f, item, def)))
            .map(|(i, _)| i)
            .collect();

        if selected.is_empty() && op != PatchOpKind::Remove {
            // RFC 7644 §3.5.2.3 says noTarget; Entra expects the value to be added.
            if op == PatchOpKind::Replace && !opts_add_missing {
                drop_if_empty(container, name);
                return Err(ScimError::no_target(format!(
                    "no value of '{}' matches the filter",
                    def.name
                )));
            }
            let Some(new) = new else {
                drop_if_empty(container, name);
                return Ok(());
            };
            let mut element = match filter {
                Some(f) => element_from_filter(f, def).ok_or_else(|| {
                    ScimError::no_target(format!(
                        "no value of '{}' matches the filter, and the filter does not describe a value to add",
                        def.name
                    ))
                })?,
                None => Map::new(),
            };
            match (sub, new) {
                (Some(sub), new) => {
                    element.insert(sub.name.clone(), new);
                }
                (None, Value::Object(fields)) => element.extend(fields),
                (None, other) => {
                    element.insert("value".into(), other);
                }
            }
            let element = coerce_single(def, Value::Object(element), label)?
                .unwrap_or(Value::Object(Map::new()));
            items.push(element);
            let index = items.len() - 1;
            keep_primary(items, index);
        } else {
            // Removals are marked and done in one pass at the end (a filter may select
            // thousands of members); until then every index stays valid.
            let mut gone = vec![false; items.len()];
            let mut removed = false;
            for &index in selected.iter().rev() {
                match (op, sub) {
                    (PatchOpKind::Remove, None) => {
                        gone[index] = true;
                        removed = true;
                    }
                    (_, Some(sub)) => {
                        let Value::Object(item) = &mut items[index] else {
                            continue;
                        };
                        check_immutable(sub, label, item.get(&sub.name), new.as_ref())?;
                        set_or_remove(item, &sub.name, new.clone());
                        // `emails[type eq "work"].value` cleared: the work email is gone, not
                        // left as `{"type":"work"}` (Entra's null-update validation reads it).
                        if new.is_none() && is_vacant(def, &items[index]) {
                            gone[index] = true;
                            removed = true;
                        }
                    }
                    // RFC 7644 §3.5.2.3: matching values are replaced; add merges.
                    (PatchOpKind::Replace, None) => match &new {
                        Some(v) => items[index] = v.clone(),
                        None => {
                            gone[index] = true;
                            removed = true;
                        }
                    },
                    (PatchOpKind::Add, None) => {
                        if let Some(v) = &new {
                            merge_into(&mut items[index], v.clone());
                        }
                    }
                }
            }
            if removed {
                let mut marks = gone.into_iter();
                items.retain(|_| !marks.next().unwrap_or(false));
            }
            if op != PatchOpKind::Remove {
                // Positions in `selected` are stale once a value is removed; removing never
                // makes a second primary, so there is nothing to keep then.
                if !removed
                    && let Some(&index) = selected
                        .iter()
                        .find(|&&i| items.get(i).is_some_and(is_primary))
                {
                    keep_primary(items, index);
                }
                dedupe(def, items);
            }
        }
        check_single_primary(items, Label::of(name))?;
        drop_if_empty(container, name);
        Ok(())
    }
}

/// The sub-attributes a complex value sets to null (canonical names): an add or replace clears
/// them (RFC 7643 §2.5).
fn cleared_sub_attributes(def: &AttributeDef, value: &Value) -> Vec<String> {
    let Value::Object(fields) = value else {
        return Vec::new();
    };
    fields
        .iter()
        .filter(|(_, v)| v.is_null())
        .filter_map(|(key, _)| def.sub_attribute(key).map(|sub| sub.name.clone()))
        .collect()
}

/// Whether a value of a multi-valued attribute has lost what makes it one: its `value` (an
/// email without an address), or everything but `type` and `primary` (an address).
fn is_vacant(def: &AttributeDef, item: &Value) -> bool {
    let Value::Object(item) = item else {
        return false;
    };
    (def.sub_attribute("value").is_some() && !item.contains_key("value"))
        || item.keys().all(|k| k == "type" || k == "primary")
}

/// RFC 7643 §7 `immutable`: may be set once, when unassigned; changing or removing it is a 400
/// `mutability`.
fn check_immutable(
    def: &AttributeDef,
    label: impl std::fmt::Display,
    old: Option<&Value>,
    new: Option<&Value>,
) -> ScimResult<()> {
    if def.mutability == Mutability::Immutable && old.is_some() && old != new {
        return Err(ScimError::mutability(format!(
            "attribute '{label}' is immutable and already set"
        )));
    }
    Ok(())
}

/// Whether two values of a multi-valued attribute are the same value: for complex values, the
/// same `value` (compared per its `caseExact`) and, when both have one, the same `type`.
fn same_element(def: &AttributeDef, a: &Value, b: &Value) -> bool {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => {
            let case_exact = def.sub_attribute("value").is_some_and(|v| v.case_exact);
            let same_value = match (x.as_str(), y.as_str()) {
                (Some(x), Some(y)) if !case_exact => x.eq_ignore_ascii_case(y),
                _ => x == y,
            };
            let same_type = match (
                a.get("type").and_then(Value::as_str),
                b.get("type").and_then(Value::as_str),
            ) {
                (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
                _ => true,
            };
            same_value && same_type
        }
        _ => a == b,
    }
}

/// Fold values a replace made equal (two work emails both set to one address) into the first,
/// which keeps `primary` if either had it: a multi-valued attribute holds each value once.
fn dedupe(def: &AttributeDef, items: &mut Vec<Value>) {
    let mut index = SameValueIndex::new(def);
    let mut kept: Vec<Value> = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        match index.find(def, &kept, &item) {
            Some(first) => {
                if is_primary(&item)
                    && let Value::Object(first) = &mut kept[first]
                {
                    first.insert("primary".into(), Value::Bool(true));
                }
            }
            None => {
                index.insert(&item, kept.len());
                kept.push(item);
            }
        }
    }
    *items = kept;
}

/// Positions of a multi-valued attribute's values by their `value` (folded unless `caseExact`),
/// so that finding the same value ([`same_element`]) is a lookup, not a scan: a Group's
/// `members` can hold hundreds of thousands of values.
struct SameValueIndex {
    case_exact: bool,
    /// Values with a string `value`: only these can be the same as one another.
    by_value: HashMap<String, Vec<usize>>,
    /// The others (no `value`, or not a string), compared one by one.
    others: Vec<usize>,
}

impl SameValueIndex {
    fn new(def: &AttributeDef) -> SameValueIndex {
        SameValueIndex {
            case_exact: def.sub_attribute("value").is_some_and(|v| v.case_exact),
            by_value: HashMap::new(),
            others: Vec::new(),
        }
    }

    fn of(def: &AttributeDef, items: &[Value]) -> SameValueIndex {
        let mut index = SameValueIndex::new(def);
        for (at, item) in items.iter().enumerate() {
            index.insert(item, at);
        }
        index
    }

    fn key(&self, item: &Value) -> Option<String> {
        let value = item.as_object()?.get("value")?.as_str()?;
        Some(if self.case_exact {
            value.to_string()
        } else {
            value.to_ascii_lowercase()
        })
    }

    /// Record `item` at position `at`; positions must be inserted in increasing order.
    fn insert(&mut self, item: &Value, at: usize) {
        match self.key(item) {
            Some(key) => self.by_value.entry(key).or_default().push(at),
            None => self.others.push(at),
        }
    }

    /// The first position in `items` (as indexed) holding the same value as `item`.
    fn find(&self, def: &AttributeDef, items: &[Value], item: &Value) -> Option<usize> {
        let candidates = match self.key(item) {
            Some(key) => self.by_value.get(&key).map_or(&[][..], Vec::as_slice),
            None => &self.others,
        };
        candidates
            .iter()
            .copied()
            .find(|&at| items.get(at).is_some_and(|i| same_element(def, i, item)))
    }
}

fn merge_into(target: &mut Value, new: Value) {
    match (target, new) {
        (Value::Object(target), Value::Object(new)) => target.extend(new),
        (target, new) => *target = new,
    }
}

/// RFC 7643 §2.4: setting `primary` on one value clears it on the others.
fn keep_primary(items: &mut [Value], chosen: usize) {
    if !items.get(chosen).is_some_and(is_primary) {
        return;
    }
    for (i, item) in items.iter_mut().enumerate() {
        if i != chosen
            && is_primary(item)
            && let Value::Object(item) = item
        {
            item.insert("primary".into(), Value::Bool(false));
        }
    }
}

fn drop_if_empty(container: &mut Map<String, Value>, name: &str) {
    if container
        .get(name)
        .is_some_and(|v| v.as_array().is_some_and(Vec::is_empty))
    {
        container.remove(name);
    }
}

/// The value a filter of `and`-ed equalities describes: `emails[type eq "work"]` with no match
/// adds `{"type":"work", …}` (Entra).
fn element_from_filter(filter: &Filter, def: &AttributeDef) -> Option<Map<String, Value>> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.urn.is_none() && path.sub_attr.is_none() => {
            let sub = def.sub_attribute(&path.attr)?;
            let mut element = Map::new();
            element.insert(sub.name.clone(), comp_value_json(value));
            Some(element)
        }
        Filter::And(a, b) => {
            let mut element = element_from_filter(a, def)?;
            element.extend(element_from_filter(b, def)?);
            Some(element)
        }
        _ => None,
    }
}

fn comp_value_json(value: &CompValue) -> Value {
    match value {
        CompValue::Null => Value::Null,
        CompValue::Bool(b) => Value::Bool(*b),
        CompValue::Number(n) => Value::Number(n.clone()),
        CompValue::String(s) => Value::String(s.clone()),
    }
}

fn label(attr: ResolvedAttr<'_>) -> Label<'_> {
    Label {
        attr: &attr.attr.name,
        sub: attr.sub.map(|s| s.name.as_str()),
    }
}

fn display_path(path: &AttrPath) -> String {
    let mut out = String::new();
    if let Some(urn) = &path.urn {
        out.push_str(urn);
        out.push(':');
    }
    out.push_str(&path.attr);
    if let Some(sub) = &path.sub_attr {
        out.push('.');
        out.push_str(sub);
    }
    out
}

/// One member of a Group as a PATCH names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    /// The member's `id`.
    pub value: String,
    pub display: Option<String>,
    pub r#type: Option<String>,
    pub reference: Option<String>,
}

/// A change to a Group's member rows that needs no member list loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Add these members; ones already present are kept (RFC 7644 §3.5.2.1: no duplicates, and
    /// re-adding is a success).
    Add(Vec<MemberRef>),
    /// Remove these member ids; absent ones are not an error.
    Remove(Vec<String>),
    /// Remove every member (`remove` of `members` without filter or value).
    Clear,
    /// Replace the whole membership (Okta's full membership push).
    Replace(Vec<MemberRef>),
}

/// One step of a Group PATCH, in request order.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupPatchStep {
    /// Member-row changes.
    Members(MemberChange),
    /// Operations on the group's other attributes, for [`apply`] on the group without members.
    Attributes(PatchRequest),
}

/// A Group PATCH split into member-row changes and the other operations.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPatchPlan {
    pub steps: Vec<GroupPatchStep>,
}

/// Split a Group PATCH so that adding one member to a 50,000-member group costs the same as to
/// a 5-member group: member operations become [`MemberChange`]s, everything else stays a
/// [`PatchRequest`] for [`apply`].
///
/// `None` when an operation needs the member list: a member filter other than `value eq "…"`
/// (possibly `or`-ed), a member sub-attribute path, or member values [`apply`] would reject — the
/// store then loads the members and uses [`apply`], which also reports the error.
pub fn plan_group_patch(request: &PatchRequest) -> Option<GroupPatchPlan> {
    let mut steps: Vec<GroupPatchStep> = Vec::new();
    for op in &request.operations {
        for step in plan_op(op)? {
            match (steps.last_mut(), step) {
                (Some(GroupPatchStep::Attributes(pending)), GroupPatchStep::Attributes(more)) => {
                    pending.operations.extend(more.operations);
                }
                (_, step) => steps.push(step),
            }
        }
    }
    Some(GroupPatchPlan { steps })
}

fn plan_op(op: &PatchOp) -> Option<Vec<GroupPatchStep>> {
    let attributes = |op: PatchOp| {
        GroupPatchStep::Attributes(PatchRequest {
            operations: vec![op],
        })
    };
    let Some(path) = &op.path else {
        // A path-less value may mix members with other attributes (Okta's AIW-style pushes).
        let Some(Value::Object(values)) = &op.value else {
            return Some(vec![attributes(op.clone())]);
        };
        let Some(key) = values.keys().find(|k| k.eq_ignore_ascii_case("members")) else {
            return Some(vec![attributes(op.clone())]);
        };
        let mut rest = values.clone();
        let members = rest.shift_remove(key).unwrap_or(Value::Null);
        let change = match op.op {
            PatchOpKind::Add => MemberChange::Add(member_refs(&members)?),
            PatchOpKind::Replace if members.is_null() => MemberChange::Clear,
            PatchOpKind::Replace => MemberChange::Replace(member_refs(&members)?),
            PatchOpKind::Remove => return Some(vec![attributes(op.clone())]),
        };
        let mut steps = Vec::new();
        if !rest.is_empty() {
            steps.push(attributes(PatchOp {
                op: op.op,
                path: None,
                value: Some(Value::Object(rest)),
            }));
        }
        steps.push(GroupPatchStep::Members(change));
        return Some(steps);
    };
    let is_members = path.attr.attr.eq_ignore_ascii_case("members")
        && path
            .attr
            .urn
            .as_deref()
            .is_none_or(|u| u.eq_ignore_ascii_case(GROUP_SCHEMA));
    if !is_members {
        return Some(vec![attributes(op.clone())]);
    }
    if path.attr.sub_attr.is_some() {
        return None;
    }
    let value = op.value.as_ref().filter(|v| !v.is_null());
    let change = match (&path.filter, op.op) {
        (Some(filter), PatchOpKind::Remove) => {
            let mut ids = Vec::new();
            member_ids_in(filter, &mut ids)?;
            MemberChange::Remove(ids)
        }
        (Some(_), _) => return None,
        (None, PatchOpKind::Add) => MemberChange::Add(member_refs(value?)?),
        (None, PatchOpKind::Replace) => match value {
            Some(v) => MemberChange::Replace(member_refs(v)?),
            None => MemberChange::Clear,
        },
        // Entra's legacy remove lists the members to remove.
        (None, PatchOpKind::Remove) => match value {
            Some(v) => MemberChange::Remove(member_refs(v)?.into_iter().map(|m| m.value).collect()),
            None => MemberChange::Clear,
        },
    };
    Some(vec![GroupPatchStep::Members(change)])
}

/// `value eq "a"`, `value eq "a" or value eq "b"`.
fn member_ids_in(filter: &Filter, ids: &mut Vec<String>) -> Option<()> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: CompValue::String(id),
        } if path.urn.is_none()
            && path.sub_attr.is_none()
            && path.attr.eq_ignore_ascii_case("value") =>
        {
            ids.push(id.clone());
            Some(())
        }
        Filter::Or(a, b) => {
            member_ids_in(a, ids)?;
            member_ids_in(b, ids)
        }
        _ => None,
    }
}

/// Members as a PATCH value lists them: an array or a single value, each an object or a bare id
/// string (the MS Postman collection's `"value":"string id 1"`).
fn member_refs(value: &Value) -> Option<Vec<MemberRef>> {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    items
        .iter()
        .filter(|item| !item.is_null())
        .map(member_ref)
        .collect()
}

fn member_ref(item: &Value) -> Option<MemberRef> {
    let text = |object: &Map<String, Value>, key: &str| -> Option<Option<String>> {
        match dialect::get_ignore_case(object, key) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        }
    };
    match item {
        Value::String(id) if !id.is_empty() => Some(MemberRef {
            value: id.clone(),
            display: None,
            r#type: None,
            reference: None,
        }),
        Value::Object(object) => Some(MemberRef {
            value: text(object, "value")?.filter(|v| !v.is_empty())?,
            display: text(object, "display")?,
            r#type: text(object, "type")?,
            reference: text(object, "$ref")?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScimType;
    use serde_json::json;

    fn body(ops: Value) -> Value {
        json!({"schemas": [dialect::PATCH_OP_SCHEMA], "Operations": ops})
    }

    fn run(kind: ResourceKind, resource: Value, ops: Value) -> ScimResult<Map<String, Value>> {
        let request = parse_request(&body(ops))?;
        apply(
            kind,
            resource.as_object().unwrap(),
            &request,
            Registry::standard(),
            &PatchOptions::default(),
        )
    }

    fn error_type(result: ScimResult<impl std::fmt::Debug>) -> Option<ScimType> {
        result.unwrap_err().scim_type
    }

    #[test]
    fn operations_are_counted_not_values() {
        let op = json!({"op": "replace", "path": "title", "value": "t"});
        let ops = |n: usize| body(Value::Array(vec![op.clone(); n]));
        assert_eq!(
            parse_request(&ops(MAX_OPERATIONS))
                .unwrap()
                .operations
                .len(),
            MAX_OPERATIONS
        );
        let error = parse_request(&ops(MAX_OPERATIONS + 1)).unwrap_err();
        assert_eq!(
            (error.status, error.scim_type),
            (400, Some(ScimType::TooMany))
        );
        // One operation adding many members is one operation.
        let members: Vec<Value> = (0..MAX_OPERATIONS * 2)
            .map(|i| json!({"value": format!("u{i}")}))
            .collect();
        let request = parse_request(&body(
            json!([{"op": "add", "path": "members", "value": members}]),
        ))
        .unwrap();
        assert_eq!(request.operations.len(), 1);
    }

    #[test]
    fn message_dialects() {
        let r = parse_request(&json!({"operations": [{"OP": "delete", "Path": "title"}]})).unwrap();
        assert_eq!(r.operations[0].op, PatchOpKind::Remove);
        assert!(r.operations[0].path.is_some());
        assert_eq!(
            error_type(parse_request(
                &json!({"schemas": ["urn:x"], "Operations": [{"op": "add", "value": {}}]})
            )),
            Some(ScimType::InvalidSyntax)
        );
        assert_eq!(
            error_type(parse_request(
                &json!({"schemas": [dialect::PATCH_OP_SCHEMA]})
            )),
            Some(ScimType::InvalidSyntax)
        );
        assert_eq!(
            error_type(parse_request(&body(
                json!([{"op": "add", "path": "title"}])
            ))),
            Some(ScimType::InvalidValue)
        );
        assert_eq!(
            error_type(parse_request(&body(
                json!([{"op": "move", "path": "title"}])
            ))),
            Some(ScimType::InvalidSyntax)
        );
        assert_eq!(
            error_type(parse_request(&body(
                json!([{"op": "add", "path": "emails[", "value": 1}])
            ))),
            Some(ScimType::InvalidPath)
        );
    }

    #[test]
    fn immutable_member_values_cannot_change() {
        let group = json!({"id": "g", "displayName": "G", "members": [{"value": "u1"}]});
        let e = run(
            ResourceKind::Group,
            group,
            json!([{"op": "replace", "path": "members[value eq \"u1\"].value", "value": "u2"}]),
        );
        assert_eq!(error_type(e), Some(ScimType::Mutability));
    }

    #[test]
    fn user_groups_are_ignored_and_read_only_attributes_guarded() {
        let user = json!({"id": "u", "userName": "a", "meta": {"resourceType": "User"}});
        let next = run(
            ResourceKind::User,
            user.clone(),
            json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
        )
        .unwrap();
        assert!(next.get("groups").is_none());
        let e = run(
            ResourceKind::User,
            user.clone(),
            json!([{"op": "replace", "path": "meta.resourceType", "value": "Group"}]),
        );
        assert_eq!(error_type(e), Some(ScimType::Mutability));
        assert_eq!(
            error_type(run(
                ResourceKind::User,
                user.clone(),
                json!([{"op": "remove", "path": "id"}])
            )),
            Some(ScimType::Mutability)
        );
        assert_eq!(
            error_type(run(
                ResourceKind::User,
                user,
                json!([{"op": "remove", "path": "nope"}])
            )),
            Some(ScimType::InvalidPath)
        );
    }

    #[test]
    fn extension_objects_by_urn() {
        let ext = crate::schema::ENTERPRISE_USER_SCHEMA;
        let user =
            json!({"id": "u", "userName": "a", ext: {"department": "Eng", "costCenter": "1"}});
        let next = run(
            ResourceKind::User,
            user.clone(),
            json!([{"op": "replace", "value": {ext: {"Department": "Ops"}}}]),
        )
        .unwrap();
        assert_eq!(next[ext], json!({"department": "Ops", "costCenter": "1"}));
        let next = run(
            ResourceKind::User,
            user,
            json!([{"op": "remove", "path": ext}]),
        )
        .unwrap();
        assert!(next.get(ext).is_none());
        assert_eq!(next["schemas"], json!([crate::schema::USER_SCHEMA]));
    }

    /// Entra's null-update validation: `""` and `null` clear, by `replace` and by `add`, on
    /// simple attributes, sub-attributes, extension attributes and value-filtered paths.
    #[test]
    fn blank_and_null_clear_by_replace_and_add() {
        let ext = crate::schema::ENTERPRISE_USER_SCHEMA;
        let user = json!({
            "id": "u", "userName": "a", "title": "Eng", "preferredLanguage": "en-US",
            "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
            "emails": [{"type": "work", "value": "a@x.org", "primary": true}, {"type": "home", "value": "h@x.org"}],
            "phoneNumbers": [{"type": "mobile", "value": "+1 555"}, {"type": "work", "value": "+1 556"}],
            "addresses": [{"type": "work", "streetAddress": "1 Way", "locality": "Redmond"}],
            ext: {"department": "Ops", "costCenter": "7", "manager": {"value": "m1"}}
        });
        let paths = [
            "title".to_string(),
            "name.givenName".into(),
            "emails[type eq \"work\"].value".into(),
            "phoneNumbers[type eq \"mobile\"].value".into(),
            "addresses[type eq \"work\"].streetAddress".into(),
            format!("{ext}:department"),
            format!("{ext}:manager"),
        ];
        for blank in [json!(""), Value::Null] {
            for op in ["replace", "add", "Replace", "Add"] {
                let ops: Vec<Value> = paths
                    .iter()
                    .map(|p| json!({"op": op, "path": p, "value": blank}))
                    .collect();
                let next = run(ResourceKind::User, user.clone(), Value::Array(ops)).unwrap();
                let what = format!("{op} {blank}");
                assert!(next.get("title").is_none(), "{what}");
                assert_eq!(
                    next["name"],
                    json!({"familyName": "Lovelace", "formatted": "Ada Lovelace"}),
                    "{what}"
                );
                assert_eq!(
                    next["emails"],
                    json!([{"type": "home", "value": "h@x.org"}]),
                    "{what}"
                );
                assert_eq!(
                    next["phoneNumbers"],
                    json!([{"type": "work", "value": "+1 556"}]),
                    "{what}"
                );
                assert_eq!(
                    next["addresses"],
                    json!([{"type": "work", "locality": "Redmond"}]),
                    "{what}"
                );
                assert_eq!(next[ext], json!({"costCenter": "7"}), "{what}");
                assert_eq!(next["preferredLanguage"], "en-US", "{what}: others stay");
            }
        }
    }

    #[test]
    fn blank_values_in_objects_clear_their_sub_attributes() {
        let user = json!({"id": "u", "userName": "a",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "addresses": [{"type": "work", "streetAddress": "1 Way"}]});
        // Path-less, dotted keys (the validator without verbose PATCH support).
        let next = run(
            ResourceKind::User,
            user.clone(),
            json!([{"op": "replace", "value": {"name.givenName": "", "name.familyName": ""}}]),
        )
        .unwrap();
        assert!(next.get("name").is_none(), "{next:?}");
        // Nested (Okta's style): the blank sub-attribute goes, the others stay.
        let next = run(
            ResourceKind::User,
            user.clone(),
            json!([{"op": "replace", "value": {"name": {"givenName": ""}}}]),
        )
        .unwrap();
        assert_eq!(next["name"], json!({"familyName": "Lovelace"}));
        let next = run(
            ResourceKind::User,
            user.clone(),
            json!([{"op": "add", "path": "name", "value": {"givenName": null, "middleName": "A"}}]),
        )
        .unwrap();
        assert_eq!(
            next["name"],
            json!({"familyName": "Lovelace", "middleName": "A"})
        );
        // The only sub-attribute of the work address cleared: no work address.
        let next = run(
            ResourceKind::User,
            user,
            json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": ""}]),
        )
        .unwrap();
        assert!(next.get("addresses").is_none(), "{next:?}");
    }

    #[test]
    fn a_patch_cannot_leave_a_required_attribute_unassigned() {
        let user = json!({"id": "u", "userName": "a", "title": "Eng"});
        for ops in [
            json!([{"op": "replace", "path": "userName", "value": ""}]),
            json!([{"op": "replace", "value": {"userName": null}}]),
            json!([{"op": "remove", "path": "userName"}]),
            json!([{"op": "replace", "path": "userName", "value": "  "}]),
        ] {
            assert_eq!(
                error_type(run(ResourceKind::User, user.clone(), ops.clone())),
                Some(ScimType::InvalidValue),
                "{ops}"
            );
        }
        let group = json!({"id": "g", "displayName": "G"});
        assert_eq!(
            error_type(run(
                ResourceKind::Group,
                group,
                json!([{"op": "Replace", "path": "displayName", "value": ""}])
            )),
            Some(ScimType::InvalidValue)
        );
    }

    #[test]
    fn blank_never_passes_for_a_boolean_and_never_widens_a_remove() {
        let user = json!({"id": "u", "userName": "a", "active": false});
        assert_eq!(
            error_type(run(
                ResourceKind::User,
                user,
                json!([{"op": "replace", "path": "active", "value": ""}])
            )),
            Some(ScimType::InvalidValue)
        );
        let group =
            json!({"id": "g", "displayName": "G", "members": [{"value": "u1"}, {"value": "u2"}]});
        let next = run(
            ResourceKind::Group,
            group,
            json!([{"op": "remove", "path": "members", "value": [{"value": "u1"}]}]),
        )
        .unwrap();
        assert_eq!(next["members"], json!([{"value": "u2"}]));
    }

    #[test]
    fn password_is_taken_from_paths_and_values() {
        let mut r = parse_request(&body(json!([
            {"op": "replace", "path": "password", "value": "one"},
            {"op": "replace", "value": {"password": "two", "active": true}}
        ])))
        .unwrap();
        assert_eq!(r.take_password().unwrap().as_deref(), Some("two"));
        assert_eq!(r.operations.len(), 1);
        assert_eq!(r.operations[0].value, Some(json!({"active": true})));
        let mut bad = parse_request(&body(
            json!([{"op": "replace", "path": "password", "value": 5}]),
        ))
        .unwrap();
        assert_eq!(
            error_type(bad.take_password()),
            Some(ScimType::InvalidValue)
        );
    }

    #[test]
    fn group_plans_fall_back_when_members_must_be_loaded() {
        let plan = |ops: Value| plan_group_patch(&parse_request(&body(ops)).unwrap());
        assert!(plan(json!([{"op": "remove", "path": "members[display eq \"x\"]"}])).is_none());
        assert!(
            plan(json!([{"op": "replace", "path": "members.display", "value": "x"}])).is_none()
        );
        assert!(plan(json!([{"op": "add", "path": "members", "value": [{"value": 5}]}])).is_none());
        let p = plan(json!([
            {"op": "remove", "path": "members[value eq \"a\" or value eq \"b\"]"},
            {"op": "replace", "value": {"displayName": "G2", "members": [{"value": "c"}]}},
            {"op": "replace", "path": "externalId", "value": "x"}
        ]))
        .unwrap();
        assert_eq!(p.steps.len(), 4);
        assert_eq!(
            p.steps[0],
            GroupPatchStep::Members(MemberChange::Remove(vec!["a".into(), "b".into()]))
        );
        assert!(matches!(&p.steps[1], GroupPatchStep::Attributes(r) if r.operations.len() == 1));
        assert!(
            matches!(&p.steps[2], GroupPatchStep::Members(MemberChange::Replace(m)) if m[0].value == "c")
        );
        assert!(matches!(&p.steps[3], GroupPatchStep::Attributes(_)));
    }
}
