//! The filter abstract syntax tree (RFC 7644 §3.4.2.2).
//!
//! Shared by the filter parser and evaluator, PATCH paths, and the store, which turns the
//! indexed predicates it recognises into SQL and evaluates the rest in memory.

/// An attribute path: `[URN ":"] attr ["." subAttr]`.
///
/// `urn` is the schema URN when the path was written fully qualified
/// (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber` has
/// `urn = Some("urn:…:enterprise:2.0:User")`, `attr = "employeeNumber"`). Names keep the case the
/// client wrote; comparisons against the schema ignore case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub_attr: Option<String>,
}

impl AttrPath {
    /// A path with neither URN nor sub-attribute.
    pub fn simple(attr: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            attr: attr.into(),
            sub_attr: None,
        }
    }

    /// A path with a sub-attribute, such as `name.givenName`.
    pub fn with_sub(attr: impl Into<String>, sub: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            attr: attr.into(),
            sub_attr: Some(sub.into()),
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A comparison literal. dateTime literals are strings; the evaluator compares them as instants
/// when the attribute's schema type is `dateTime`.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attrPath op compValue`
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
    },
    /// `attrPath pr`
    Present(AttrPath),
    /// `a and b`
    And(Box<Filter>, Box<Filter>),
    /// `a or b`
    Or(Box<Filter>, Box<Filter>),
    /// `not (a)`
    Not(Box<Filter>),
    /// `attrPath "[" valFilter "]"`: true when one value of the multi-valued (or complex)
    /// attribute `attr` matches `filter`, whose paths are relative to that value.
    /// Entra's `emails[type eq "work"].value eq "x"` parses as
    /// `ValuePath { emails, And(type eq "work", value eq "x") }`.
    ValuePath { attr: AttrPath, filter: Box<Filter> },
}
