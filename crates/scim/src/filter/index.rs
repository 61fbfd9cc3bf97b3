//! The part of a filter the store can answer from indexed columns (SQL pushdown).
//!
//! The store runs the [`IndexedPredicate`] in SQL. When [`indexed`] says it is exact, the SQL
//! result is the answer; otherwise the SQL result is a superset, and the store keeps the
//! candidates for which [`super::matches`] is true.

use chrono::{DateTime, Utc};

use super::ast::{AttrPath, CompValue, CompareOp, Filter};
use crate::schema::ResourceKind;

/// A column the store indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexedColumn {
    /// `id`, compared exactly.
    Id,
    /// `externalId`, compared exactly (caseExact in RFC 7643 §3.1).
    ExternalId,
    /// User `userName`, compared ignoring case.
    UserName,
    /// Group `displayName`, compared ignoring case.
    DisplayName,
    /// `meta.lastModified`; only appears in the `LastModified*` range predicates.
    LastModified,
}

impl IndexedColumn {
    /// Whether the column compares exactly. Columns that do not must be compared on a
    /// lower-cased copy (Rust's `str::to_lowercase`, which is what [`super::matches`] uses).
    pub fn case_exact(self) -> bool {
        matches!(self, IndexedColumn::Id | IndexedColumn::ExternalId)
    }
}

/// A predicate over indexed columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexedPredicate {
    /// The column equals the value (ignoring case unless [`IndexedColumn::case_exact`]).
    Eq(IndexedColumn, String),
    /// `meta.lastModified` is after the instant.
    LastModifiedGt(DateTime<Utc>),
    /// `meta.lastModified` is at or after the instant.
    LastModifiedGe(DateTime<Utc>),
    /// `meta.lastModified` is before the instant.
    LastModifiedLt(DateTime<Utc>),
    /// `meta.lastModified` is at or before the instant.
    LastModifiedLe(DateTime<Utc>),
    /// All of them hold.
    And(Vec<IndexedPredicate>),
    /// Any of them holds.
    Or(Vec<IndexedPredicate>),
}

/// Split a filter into a predicate the store can run in SQL and whether the whole filter is
/// exactly that predicate (if not, the store pre-selects with it and evaluates `matches` on the
/// candidates). `None` when no indexed column narrows the search.
pub fn indexed(filter: &Filter, kind: ResourceKind) -> Option<(IndexedPredicate, bool)> {
    match filter {
        Filter::Compare { path, op, value } => leaf(path, *op, value, kind).map(|p| (p, true)),
        Filter::And(a, b) => match (indexed(a, kind), indexed(b, kind)) {
            (Some((pa, ea)), Some((pb, eb))) => Some((join(pa, pb, true), ea && eb)),
            // The other side still has to be checked in memory.
            (Some((p, _)), None) | (None, Some((p, _))) => Some((p, false)),
            (None, None) => None,
        },
        // A row matching only the unindexed side would be missed, so both sides must be indexed.
        Filter::Or(a, b) => {
            let (pa, ea) = indexed(a, kind)?;
            let (pb, eb) = indexed(b, kind)?;
            Some((join(pa, pb, false), ea && eb))
        }
        Filter::Present(_) | Filter::Not(_) | Filter::ValuePath { .. } => None,
    }
}

/// `a and b` (or `a or b`), flattening nested lists of the same kind.
fn join(a: IndexedPredicate, b: IndexedPredicate, and: bool) -> IndexedPredicate {
    let mut items = Vec::new();
    for p in [a, b] {
        match p {
            IndexedPredicate::And(inner) if and => items.extend(inner),
            IndexedPredicate::Or(inner) if !and => items.extend(inner),
            other => items.push(other),
        }
    }
    if and {
        IndexedPredicate::And(items)
    } else {
        IndexedPredicate::Or(items)
    }
}

fn leaf(
    path: &AttrPath,
    op: CompareOp,
    value: &CompValue,
    kind: ResourceKind,
) -> Option<IndexedPredicate> {
    // Only core (or common) attributes are columns; a URN must be the core schema's.
    if path
        .urn
        .as_deref()
        .is_some_and(|urn| !urn.eq_ignore_ascii_case(kind.core_schema()))
    {
        return None;
    }
    let named = |attr: &str, sub: Option<&str>| {
        path.attr.eq_ignore_ascii_case(attr)
            && match (sub, path.sub_attr.as_deref()) {
                (None, None) => true,
                (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                _ => false,
            }
    };
    if named("meta", Some("lastModified")) {
        let CompValue::String(text) = value else {
            return None;
        };
        let instant = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
        return match op {
            CompareOp::Gt => Some(IndexedPredicate::LastModifiedGt(instant)),
            CompareOp::Ge => Some(IndexedPredicate::LastModifiedGe(instant)),
            CompareOp::Lt => Some(IndexedPredicate::LastModifiedLt(instant)),
            CompareOp::Le => Some(IndexedPredicate::LastModifiedLe(instant)),
            _ => None,
        };
    }
    if op != CompareOp::Eq {
        return None;
    }
    let column = if named("id", None) {
        IndexedColumn::Id
    } else if named("externalId", None) {
        IndexedColumn::ExternalId
    } else if kind == ResourceKind::User && named("userName", None) {
        IndexedColumn::UserName
    } else if kind == ResourceKind::Group && named("displayName", None) {
        IndexedColumn::DisplayName
    } else {
        return None;
    };
    // The evaluator compares a number with a string attribute by its text; so does SQL.
    let text = match value {
        CompValue::String(s) => s.clone(),
        CompValue::Number(n) => n.to_string(),
        CompValue::Bool(_) | CompValue::Null => return None,
    };
    Some(IndexedPredicate::Eq(column, text))
}
