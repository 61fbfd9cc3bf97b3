//! Schema definitions (RFC 7643 §7), loaded from the documents in the workspace's `schemas/`.
//!
//! These documents are the single source of each attribute's type, multiValued, caseExact,
//! mutability, returned and uniqueness: validation, filtering, projection, PATCH and the
//! `/Schemas` endpoint all read them from here.
//!
//! RFC 7643 §3.1 puts `id`, `externalId` and `meta` outside every schema ("common attributes").
//! We still describe them in the same format, in `schemas/common-attributes.json`, so that
//! [`Registry::resolve`] answers for `id`, `externalId` and `meta.lastModified` like for any other
//! attribute; that document is never served by `/Schemas` ([`Registry::schemas`] leaves it out).
//!
//! One deliberate departure from RFC 7643 §8.7.1: Group `displayName` is `required` (as §4.2
//! says) and `uniqueness: server`, because Coder group names are unique and both Okta and Entra
//! expect a 409 `uniqueness` for a duplicate group name.

use serde::Deserialize;
use serde_json::Value;
use std::sync::OnceLock;

use crate::filter::ast::AttrPath;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The Agent core schema of draft-wzdk-scim-agent-resource-00 (and of
/// draft-abbey-scim-agent-extension-00 before it).
pub const AGENT_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Agent";
/// The AgenticApplication core schema of draft-abbey-scim-agent-extension-00.
pub const AGENTIC_APPLICATION_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:AgenticApplication";
/// The `id` of the common-attribute definitions (`schemas/common-attributes.json`); not a URN
/// because RFC 7643 §3.1 gives those attributes no schema.
pub const COMMON_ATTRIBUTES: &str = "common";

/// The common attributes (`id`, `externalId`, `meta`), in the schema document format.
const COMMON_ATTRIBUTES_DOCUMENT: &str = include_str!("../../../schemas/common-attributes.json");

/// The schema documents, embedded at compile time so the binary serves exactly these.
const SCHEMA_DOCUMENTS: &[&str] = &[
    include_str!("../../../schemas/User.json"),
    include_str!("../../../schemas/EnterpriseUser.json"),
    include_str!("../../../schemas/Group.json"),
    include_str!("../../../schemas/Role.json"),
    include_str!("../../../schemas/Entitlement.json"),
    include_str!("../../../schemas/Agent.json"),
    include_str!("../../../schemas/AgenticApplication.json"),
];

/// The resource types the bridge serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    User,
    Group,
    /// An AI agent: becomes a Coder service account.
    Agent,
    /// An application exposing agents: stored and served, nothing in Coder.
    AgenticApplication,
}

impl ResourceKind {
    /// Every resource type, in the order `/ResourceTypes` lists them.
    pub const ALL: [ResourceKind; 4] = [
        ResourceKind::User,
        ResourceKind::Group,
        ResourceKind::Agent,
        ResourceKind::AgenticApplication,
    ];

    /// The resource type name (`meta.resourceType`, `/ResourceTypes/{id}`).
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
            ResourceKind::Agent => "Agent",
            ResourceKind::AgenticApplication => "AgenticApplication",
        }
    }
    /// The endpoint below the base URL.
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "/Users",
            ResourceKind::Group => "/Groups",
            ResourceKind::Agent => "/Agents",
            ResourceKind::AgenticApplication => "/AgenticApplications",
        }
    }
    /// The core schema URN.
    pub fn core_schema(self) -> &'static str {
        match self {
            ResourceKind::User => USER_SCHEMA,
            ResourceKind::Group => GROUP_SCHEMA,
            ResourceKind::Agent => AGENT_SCHEMA,
            ResourceKind::AgenticApplication => AGENTIC_APPLICATION_SCHEMA,
        }
    }
    /// Schema extensions this resource type accepts.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            ResourceKind::User => &[ENTERPRISE_USER_SCHEMA],
            ResourceKind::Group | ResourceKind::Agent | ResourceKind::AgenticApplication => &[],
        }
    }
    /// The kind whose `name()` is `name` (as stored, exact case).
    pub fn from_name(name: &str) -> Option<ResourceKind> {
        ResourceKind::ALL.into_iter().find(|k| k.name() == name)
    }
    /// Whether the resource is a member of Groups, with a computed readOnly `groups` attribute
    /// (RFC 7643 §4.1.2 for Users; the agent drafts give Agents the same).
    pub fn has_groups(self) -> bool {
        matches!(self, ResourceKind::User | ResourceKind::Agent)
    }
    /// Whether the resource has an `active` flag the store indexes.
    pub fn has_active(self) -> bool {
        !matches!(self, ResourceKind::Group)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    #[default]
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Always,
    Never,
    #[default]
    Default,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Uniqueness {
    #[default]
    None,
    Server,
    Global,
}

/// One attribute definition (RFC 7643 §7 "attributes").
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: AttrType,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub case_exact: bool,
    #[serde(default)]
    pub mutability: Mutability,
    #[serde(default)]
    pub returned: Returned,
    #[serde(default)]
    pub uniqueness: Uniqueness,
    #[serde(default)]
    pub canonical_values: Vec<String>,
    #[serde(default)]
    pub reference_types: Vec<String>,
    #[serde(default)]
    pub sub_attributes: Vec<AttributeDef>,
}

impl AttributeDef {
    /// A sub-attribute by name, ignoring case.
    pub fn sub_attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// One schema document.
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaDef {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub attributes: Vec<AttributeDef>,
    /// The document as written in `schemas/`, served by `/Schemas`.
    #[serde(skip)]
    pub document: Value,
}

impl SchemaDef {
    /// A top-level attribute by name, ignoring case.
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// An attribute path resolved against the schemas of a resource type.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedAttr<'a> {
    /// The schema the top-level attribute belongs to.
    pub schema: &'a SchemaDef,
    /// The top-level attribute.
    pub attr: &'a AttributeDef,
    /// The sub-attribute, when the path names one.
    pub sub: Option<&'a AttributeDef>,
}

impl<'a> ResolvedAttr<'a> {
    /// The definition the path finally names (the sub-attribute if any).
    pub fn leaf(&self) -> &'a AttributeDef {
        self.sub.unwrap_or(self.attr)
    }
    /// Whether the attribute lives in an extension (stored under its URN key).
    pub fn is_extension(&self) -> bool {
        ResourceKind::ALL
            .iter()
            .any(|kind| kind.extensions().contains(&self.schema.id.as_str()))
    }

    /// Whether the attribute is one of the common attributes (`id`, `externalId`, `meta`).
    pub fn is_common(&self) -> bool {
        self.schema.id == COMMON_ATTRIBUTES
    }
}

/// Every schema the bridge knows.
#[derive(Debug)]
pub struct Registry {
    schemas: Vec<SchemaDef>,
    /// `id`, `externalId` and `meta` (RFC 7643 §3.1).
    common: SchemaDef,
}

/// Why the embedded schema documents could not be read; a build defect, caught by tests.
#[derive(Debug, thiserror::Error)]
#[error("schema document {index} is invalid: {source}")]
pub struct SchemaLoadError {
    index: usize,
    source: serde_json::Error,
}

impl Registry {
    /// Parse schema documents (RFC 7643 §7 format). The common attributes always come from the
    /// embedded `schemas/common-attributes.json`.
    pub fn from_documents(documents: &[&str]) -> Result<Registry, SchemaLoadError> {
        let schemas = documents
            .iter()
            .enumerate()
            .map(|(index, text)| parse_schema_document(index, text))
            .collect::<Result<Vec<_>, _>>()?;
        let common = parse_schema_document(documents.len(), COMMON_ATTRIBUTES_DOCUMENT)?;
        let mut schemas = schemas;
        for schema in &mut schemas {
            if schema.id == USER_SCHEMA || schema.id == GROUP_SCHEMA {
                serve_external_id(&mut schema.document, &common.document);
            }
        }
        Ok(Registry { schemas, common })
    }

    /// The registry built from the documents in `schemas/`. Their validity is asserted by tests,
    /// so a failure here is unreachable in a tested build; it yields an empty registry rather
    /// than a panic.
    pub fn standard() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            Registry::from_documents(SCHEMA_DOCUMENTS).unwrap_or_else(|_| Registry {
                schemas: Vec::new(),
                common: SchemaDef {
                    id: COMMON_ATTRIBUTES.into(),
                    name: String::new(),
                    description: String::new(),
                    attributes: Vec::new(),
                    document: Value::Null,
                },
            })
        })
    }

    /// All schemas, in document order (what `/Schemas` serves; the common attributes are not
    /// among them).
    pub fn schemas(&self) -> &[SchemaDef] {
        &self.schemas
    }

    /// The common attributes `id`, `externalId` and `meta` (RFC 7643 §3.1).
    pub fn common_attributes(&self) -> &SchemaDef {
        &self.common
    }

    /// A schema by URN, ignoring case.
    pub fn schema(&self, urn: &str) -> Option<&SchemaDef> {
        self.schemas.iter().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Resolve `path` for a resource of `kind`: a URN-qualified path looks in that schema (the
    /// core URN also covers the common attributes), an unqualified one in the common attributes,
    /// then the core schema, then the extensions.
    pub fn resolve(&self, kind: ResourceKind, path: &AttrPath) -> Option<ResolvedAttr<'_>> {
        let (schema, attr) = match &path.urn {
            Some(urn) if urn.eq_ignore_ascii_case(kind.core_schema()) => {
                self.find_attribute(&path.attr, std::iter::once(kind.core_schema()), true)?
            }
            Some(urn) => {
                let in_kind = kind
                    .extensions()
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(urn));
                if !in_kind {
                    return None;
                }
                self.find_attribute(&path.attr, std::iter::once(urn.as_str()), false)?
            }
            None => self.find_attribute(
                &path.attr,
                std::iter::once(kind.core_schema()).chain(kind.extensions().iter().copied()),
                true,
            )?,
        };
        with_sub(schema, attr, path)
    }

    /// Resolve `path` in a resource with the one schema `urn` and no extension (a `Role` or an
    /// `Entitlement` of a catalog): the common attributes, then that schema's.
    pub fn resolve_in_schema(&self, urn: &str, path: &AttrPath) -> Option<ResolvedAttr<'_>> {
        if path
            .urn
            .as_deref()
            .is_some_and(|u| !u.eq_ignore_ascii_case(urn))
        {
            return None;
        }
        let (schema, attr) = self.find_attribute(&path.attr, std::iter::once(urn), true)?;
        with_sub(schema, attr, path)
    }

    /// The first of the common attributes (when `with_common`) and the schemas `urns` that
    /// defines `name`.
    fn find_attribute<'u>(
        &self,
        name: &str,
        urns: impl Iterator<Item = &'u str>,
        with_common: bool,
    ) -> Option<(&SchemaDef, &AttributeDef)> {
        if with_common && let Some(attr) = self.common.attribute(name) {
            return Some((&self.common, attr));
        }
        urns.filter_map(|urn| self.schema(urn))
            .find_map(|schema| schema.attribute(name).map(|attr| (schema, attr)))
    }
}

/// `attr` of `schema` with the sub-attribute `path` names, if it has it.
fn with_sub<'r>(
    schema: &'r SchemaDef,
    attr: &'r AttributeDef,
    path: &AttrPath,
) -> Option<ResolvedAttr<'r>> {
    let sub = match &path.sub_attr {
        Some(name) => Some(attr.sub_attribute(name)?),
        None => None,
    };
    Some(ResolvedAttr { schema, attr, sub })
}

/// List the common attribute `externalId` among the attributes a core schema document serves.
///
/// RFC 7643 §3.1 defines `externalId` outside every schema, but Entra's schema discovery only
/// reads schema documents: its gallery validation (`Schema_Discoverability_Test`,
/// AzureAD/SCIMReferenceCode `SCIMTests_Workflow.json`) flattens the User and Group schemas of
/// `/Schemas` and reports every mapped attribute it does not find, and `externalId` is in
/// Entra's default mappings (`mailNickname` for users, `objectId` for groups). The definition
/// served is the one in `common-attributes.json`; resolution keeps reading it from there.
fn serve_external_id(document: &mut Value, common: &Value) {
    let definition = common["attributes"].as_array().and_then(|attributes| {
        attributes
            .iter()
            .find(|a| a["name"] == "externalId")
            .cloned()
    });
    if let (Some(definition), Some(attributes)) =
        (definition, document["attributes"].as_array_mut())
    {
        attributes.push(definition);
    }
}

fn parse_schema_document(index: usize, text: &str) -> Result<SchemaDef, SchemaLoadError> {
    let document: Value =
        serde_json::from_str(text).map_err(|source| SchemaLoadError { index, source })?;
    let mut def: SchemaDef = serde_json::from_value(document.clone())
        .map_err(|source| SchemaLoadError { index, source })?;
    def.document = document;
    Ok(def)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_documents_parse() {
        let r = Registry::from_documents(SCHEMA_DOCUMENTS).expect("schemas/ documents are valid");
        assert!(r.schema(USER_SCHEMA).is_some());
        assert!(r.schema(GROUP_SCHEMA).is_some());
        assert!(r.schema(ENTERPRISE_USER_SCHEMA).is_some());
    }

    #[test]
    fn resolves_case_insensitively_and_by_urn() {
        let r = Registry::standard();
        let a = r
            .resolve(ResourceKind::User, &AttrPath::simple("USERNAME"))
            .expect("userName");
        assert_eq!(a.attr.name, "userName");
        assert_eq!(a.attr.uniqueness, Uniqueness::Server);
        let m = r
            .resolve(
                ResourceKind::User,
                &AttrPath {
                    urn: Some(ENTERPRISE_USER_SCHEMA.into()),
                    attr: "manager".into(),
                    sub_attr: Some("value".into()),
                },
            )
            .expect("manager.value");
        assert!(m.is_extension());
        assert_eq!(m.leaf().name, "value");
        let e = r
            .resolve(ResourceKind::User, &AttrPath::simple("employeeNumber"))
            .expect("unqualified extension attr");
        assert!(e.is_extension());
        assert!(
            r.resolve(ResourceKind::Group, &AttrPath::simple("userName"))
                .is_none()
        );
    }

    fn resolved(kind: ResourceKind, path: &str) -> &'static AttributeDef {
        let (attr, sub) = match path.split_once('.') {
            Some((a, s)) => (a, Some(s)),
            None => (path, None),
        };
        let path = AttrPath {
            urn: None,
            attr: attr.into(),
            sub_attr: sub.map(Into::into),
        };
        Registry::standard()
            .resolve(kind, &path)
            .unwrap_or_else(|| panic!("{path:?}"))
            .leaf()
    }

    #[test]
    fn every_rfc_7643_attribute_is_defined() {
        use ResourceKind::{Group, User};
        for path in [
            "userName",
            "name.formatted",
            "name.familyName",
            "name.givenName",
            "name.middleName",
            "name.honorificPrefix",
            "name.honorificSuffix",
            "displayName",
            "nickName",
            "profileUrl",
            "title",
            "userType",
            "preferredLanguage",
            "locale",
            "timezone",
            "active",
            "password",
            "emails.value",
            "emails.display",
            "emails.type",
            "emails.primary",
            "phoneNumbers.value",
            "ims.value",
            "photos.value",
            "addresses.formatted",
            "addresses.streetAddress",
            "addresses.locality",
            "addresses.region",
            "addresses.postalCode",
            "addresses.country",
            "addresses.type",
            "addresses.primary",
            "groups.value",
            "groups.$ref",
            "groups.display",
            "groups.type",
            "entitlements.value",
            "roles.value",
            "x509Certificates.value",
            "employeeNumber",
            "costCenter",
            "organization",
            "division",
            "department",
            "manager.value",
            "manager.$ref",
            "manager.displayName",
            "id",
            "externalId",
            "meta.resourceType",
            "meta.created",
            "meta.lastModified",
            "meta.location",
            "meta.version",
        ] {
            resolved(User, path);
        }
        for path in [
            "displayName",
            "members.value",
            "members.$ref",
            "members.type",
            "members.display",
            "id",
            "externalId",
            "meta.lastModified",
        ] {
            resolved(Group, path);
        }
    }

    #[test]
    fn characteristics_follow_rfc_7643() {
        use ResourceKind::{Group, User};
        let user_name = resolved(User, "userName");
        assert!(user_name.required && !user_name.case_exact);
        assert_eq!(user_name.uniqueness, Uniqueness::Server);
        let password = resolved(User, "password");
        assert_eq!(
            (password.mutability, password.returned),
            (Mutability::WriteOnly, Returned::Never)
        );
        let groups = resolved(User, "groups");
        assert!(groups.multi_valued);
        assert_eq!(groups.mutability, Mutability::ReadOnly);
        assert!(
            groups
                .sub_attributes
                .iter()
                .all(|a| a.mutability == Mutability::ReadOnly)
        );
        assert_eq!(
            resolved(User, "groups.$ref").reference_types,
            ["User", "Group"]
        );
        assert!(!resolved(User, "emails.value").case_exact);
        assert_eq!(
            resolved(User, "emails.type").canonical_values,
            ["work", "home", "other"]
        );
        assert_eq!(resolved(User, "emails.primary").ty, AttrType::Boolean);
        assert_eq!(resolved(User, "active").ty, AttrType::Boolean);
        assert_eq!(resolved(User, "profileUrl").ty, AttrType::Reference);
        assert_eq!(
            resolved(User, "x509Certificates.value").ty,
            AttrType::Binary
        );
        assert_eq!(
            resolved(User, "manager.displayName").mutability,
            Mutability::ReadOnly
        );
        assert_eq!(resolved(User, "manager.$ref").reference_types, ["User"]);
        let id = resolved(User, "id");
        assert!(id.case_exact);
        assert_eq!(
            (id.mutability, id.returned, id.uniqueness),
            (Mutability::ReadOnly, Returned::Always, Uniqueness::Server)
        );
        let external_id = resolved(Group, "externalId");
        assert!(external_id.case_exact);
        assert_eq!(external_id.mutability, Mutability::ReadWrite);
        assert_eq!(resolved(User, "meta").mutability, Mutability::ReadOnly);
        assert_eq!(resolved(User, "meta.lastModified").ty, AttrType::DateTime);
        assert_eq!(resolved(User, "meta.created").ty, AttrType::DateTime);
        let display_name = resolved(Group, "displayName");
        assert!(display_name.required);
        assert_eq!(display_name.uniqueness, Uniqueness::Server);
        assert!(resolved(Group, "members").multi_valued);
        for sub in ["members.value", "members.$ref", "members.type"] {
            assert_eq!(
                resolved(Group, sub).mutability,
                Mutability::Immutable,
                "{sub}"
            );
        }
        assert_eq!(
            resolved(Group, "members.display").mutability,
            Mutability::ReadWrite
        );
    }

    #[test]
    fn common_attributes_resolve_but_are_not_served() {
        let r = Registry::standard();
        assert!(r.schemas().iter().all(|s| s.id != COMMON_ATTRIBUTES));
        assert_eq!(r.schemas().len(), 7);
        let id = r
            .resolve(ResourceKind::User, &AttrPath::simple("ID"))
            .expect("id");
        assert!(id.is_common() && !id.is_extension());
        // Written with the core URN, as some clients do.
        let qualified = AttrPath {
            urn: Some(GROUP_SCHEMA.into()),
            attr: "externalId".into(),
            sub_attr: None,
        };
        assert!(
            r.resolve(ResourceKind::Group, &qualified)
                .is_some_and(|a| a.is_common())
        );
        // The enterprise URN does not apply to groups.
        let manager = AttrPath {
            urn: Some(ENTERPRISE_USER_SCHEMA.into()),
            attr: "manager".into(),
            sub_attr: None,
        };
        assert!(r.resolve(ResourceKind::Group, &manager).is_none());
        assert!(
            r.resolve(ResourceKind::User, &AttrPath::with_sub("name", "nope"))
                .is_none()
        );
    }

    #[test]
    fn core_schemas_serve_the_common_external_id() {
        let r = Registry::standard();
        let common = r
            .common_attributes()
            .document
            .get("attributes")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|a| a["name"] == "externalId"))
            .expect("externalId is a common attribute");
        for urn in [USER_SCHEMA, GROUP_SCHEMA] {
            let served = r.schema(urn).expect("core schema").document["attributes"]
                .as_array()
                .expect("attributes")
                .iter()
                .filter(|a| a["name"] == "externalId")
                .collect::<Vec<_>>();
            assert_eq!(served, [common], "{urn}");
        }
        let enterprise = &r
            .schema(ENTERPRISE_USER_SCHEMA)
            .expect("enterprise")
            .document;
        assert!(
            !enterprise.to_string().contains("externalId"),
            "an extension is not a resource's schema"
        );
    }

    #[test]
    fn documents_are_in_the_rfc_7643_section_7_format() {
        for schema in Registry::standard().schemas() {
            let doc = &schema.document;
            assert_eq!(
                doc["schemas"][0], "urn:ietf:params:scim:schemas:core:2.0:Schema",
                "{}",
                schema.id
            );
            assert_eq!(doc["meta"]["resourceType"], "Schema");
            assert_eq!(
                doc["meta"]["location"],
                format!("/v2/Schemas/{}", schema.id)
            );
            let mut stack: Vec<&Value> = doc["attributes"]
                .as_array()
                .expect("attributes")
                .iter()
                .collect();
            while let Some(attr) = stack.pop() {
                for key in [
                    "name",
                    "type",
                    "multiValued",
                    "description",
                    "required",
                    "mutability",
                    "returned",
                    "uniqueness",
                ] {
                    assert!(attr.get(key).is_some(), "{}: {attr} lacks {key}", schema.id);
                }
                if let Some(subs) = attr.get("subAttributes").and_then(Value::as_array) {
                    stack.extend(subs);
                }
            }
        }
    }
}
