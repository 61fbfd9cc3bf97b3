//! List queries: filter, sorting and paging (RFC 7644 §3.4.2, §3.4.3), and the ListResponse.
//!
//! Decisions:
//! - `startIndex` below 1 counts as 1 and a negative `count` as 0 (RFC 7644 §3.4.2.4); a value
//!   that is not an integer is 400 `invalidValue`; `count` above [`MAX_RESULTS`] is capped (the
//!   ServiceProviderConfig advertises it as `filter.maxResults`).
//! - Parameter names are matched ignoring case, `sortOrder` values too.
//! - Sorting is stable, so pages do not overlap or skip (Okta pages with `startIndex` until it
//!   reaches `totalResults`); unassigned values sort last in either order.
//! - RFC 9865 cursor paging is asked for with a `cursor` parameter (empty for the first page);
//!   without one a listing is index-paged, the default RFC 9865 §2.4 advises for a provider that
//!   had index paging first. `cursor` with `startIndex` is 400 `invalidValue` (two methods at
//!   once); a cursor with a character outside RFC 3986's unreserved set is 400 `invalidCursor`,
//!   and a cursor-paged `count` above [`MAX_RESULTS`] is 400 `invalidCount` (RFC 9865 §2.1: it
//!   "must be between 0 and maxPageSize"). The cursor itself is opened by the HTTP service.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value, json};

use crate::dialect;
use crate::error::{ScimError, ScimResult, ScimType};
use crate::filter::{self, Filter, ast::AttrPath};
use crate::path::PatchPath;
use crate::projection::Projection;
use crate::resource::{attribute_in, is_primary};
use crate::schema::{AttrType, Registry, ResolvedAttr, ResourceKind};

/// The most resources one page returns.
pub const MAX_RESULTS: usize = 1000;

/// The ListResponse message URN.
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// The SearchRequest message URN (RFC 7644 §3.4.3).
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// RFC 7644 §3.4.2.3 `sortOrder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Ascending,
    Descending,
}

/// A parsed list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub sort_order: SortOrder,
    /// 1-based.
    pub start_index: usize,
    /// `None`: the server's page size.
    pub count: Option<usize>,
    pub projection: Projection,
    /// RFC 9865 `cursor` as the client sent it: `Some` asks for cursor paging, `Some("")` for
    /// its first page. Opaque here; the HTTP service opens it.
    pub cursor: Option<String>,
    /// Where a cursor-paged listing resumes: only resources after this one in listing order
    /// (`created`, then `id`). Set by the service from a cursor it verified, never by a client.
    pub after: Option<Keyset>,
}

/// A resource's place in listing order (`created`, then `id`): what a cursor resumes after.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Keyset {
    pub created: DateTime<Utc>,
    pub id: String,
}

impl Default for ListQuery {
    /// Every resource, index-paged from the first, at the server's page size.
    fn default() -> Self {
        ListQuery {
            filter: None,
            sort_by: None,
            sort_order: SortOrder::Ascending,
            start_index: 1,
            count: None,
            projection: Projection::default(),
            cursor: None,
            after: None,
        }
    }
}

/// The raw parameters, from a query string or a SearchRequest body.
#[derive(Default)]
struct RawQuery<'a> {
    filter: Option<&'a str>,
    sort_by: Option<&'a str>,
    sort_order: Option<&'a str>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded: Option<String>,
    cursor: Option<&'a str>,
}

impl ListQuery {
    /// From query-string parameters (`filter`, `sortBy`, `sortOrder`, `startIndex`, `count`,
    /// `attributes`, `excludedAttributes`); other parameters are ignored.
    pub fn from_params(params: &[(String, String)]) -> ScimResult<ListQuery> {
        let get = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let integer = |name: &str| get(name).map(|v| parse_integer(name, v)).transpose();
        RawQuery {
            filter: get("filter"),
            sort_by: get("sortBy"),
            sort_order: get("sortOrder"),
            start_index: integer("startIndex")?,
            count: integer("count")?,
            attributes: get("attributes").map(str::to_string),
            excluded: get("excludedAttributes").map(str::to_string),
            cursor: get("cursor"),
        }
        .build()
    }

    /// From a `POST …/.search` body (RFC 7644 §3.4.3). `schemas`, when present, must name the
    /// SearchRequest URN; `attributes` may be an array or a comma-separated string; numbers may
    /// be JSON numbers or numeric strings.
    pub fn from_search_request(body: &Value) -> ScimResult<ListQuery> {
        let Value::Object(body) = body else {
            return Err(ScimError::invalid_syntax(
                "a SearchRequest must be a JSON object",
            ));
        };
        if let Some(schemas) = dialect::get_ignore_case(body, "schemas") {
            let ok = schemas.as_array().is_some_and(|a| {
                a.iter().any(|u| {
                    u.as_str()
                        .is_some_and(|u| u.eq_ignore_ascii_case(SEARCH_REQUEST_SCHEMA))
                })
            });
            if !ok {
                return Err(ScimError::invalid_syntax(format!(
                    "'schemas' must contain \"{SEARCH_REQUEST_SCHEMA}\""
                )));
            }
        }
        let text = |name: &str| -> ScimResult<Option<&str>> {
            match dialect::get_ignore_case(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "'{name}' must be a string"
                ))),
            }
        };
        let integer = |name: &str| -> ScimResult<Option<i64>> {
            match dialect::get_ignore_case(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                    ScimError::invalid_value(format!("'{name}' must be an integer"))
                }),
                Some(Value::String(s)) => parse_integer(name, s).map(Some),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "'{name}' must be an integer"
                ))),
            }
        };
        let list = |name: &str| -> ScimResult<Option<String>> {
            match dialect::get_ignore_case(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str().ok_or_else(|| {
                            ScimError::invalid_value(format!("'{name}' must list strings"))
                        })
                    })
                    .collect::<ScimResult<Vec<_>>>()
                    .map(|names| Some(names.join(","))),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "'{name}' must be an array of strings"
                ))),
            }
        };
        RawQuery {
            filter: text("filter")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            start_index: integer("startIndex")?,
            count: integer("count")?,
            attributes: list("attributes")?,
            excluded: list("excludedAttributes")?,
            cursor: text("cursor")?,
        }
        .build()
    }

    /// The positions of the page within `total` sorted results.
    pub fn window(&self, total: usize) -> Range<usize> {
        let start = self.start_index.saturating_sub(1).min(total);
        let end = self
            .count
            .map_or(total, |c| start.saturating_add(c))
            .min(total);
        start..end
    }
}

impl RawQuery<'_> {
    fn build(self) -> ScimResult<ListQuery> {
        let filter = self
            .filter
            .filter(|f| !f.trim().is_empty())
            .map(filter::parse)
            .transpose()?;
        let sort_by = self
            .sort_by
            .filter(|s| !s.trim().is_empty())
            .map(parse_sort_by)
            .transpose()?;
        let sort_order = match self.sort_order.map(str::trim) {
            None | Some("") => SortOrder::Ascending,
            Some(o) if o.eq_ignore_ascii_case("ascending") => SortOrder::Ascending,
            Some(o) if o.eq_ignore_ascii_case("descending") => SortOrder::Descending,
            Some(o) => {
                return Err(ScimError::invalid_value(format!(
                    "sortOrder must be \"ascending\" or \"descending\", not \"{o}\""
                )));
            }
        };
        if let Some(cursor) = self.cursor {
            check_cursor_request(cursor, self.start_index, self.count)?;
        }
        // RFC 7644 §3.4.2.4: a startIndex below 1 is read as 1, a negative count as 0.
        let start_index =
            usize::try_from(self.start_index.unwrap_or(1).max(1)).unwrap_or(usize::MAX);
        let count = self.count.map(|c| {
            usize::try_from(c.max(0))
                .unwrap_or(usize::MAX)
                .min(MAX_RESULTS)
        });
        let projection = Projection::parse(self.attributes.as_deref(), self.excluded.as_deref())?;
        Ok(ListQuery {
            filter,
            sort_by,
            sort_order,
            start_index,
            count,
            projection,
            cursor: self.cursor.map(str::to_string),
            after: None,
        })
    }
}

/// The checks RFC 9865 puts on a cursor-paged request before its cursor is opened.
fn check_cursor_request(
    cursor: &str,
    start_index: Option<i64>,
    count: Option<i64>,
) -> ScimResult<()> {
    if start_index.is_some() {
        // RFC 9865 §2.4: the client picks one method by sending `startIndex` or `cursor`.
        return Err(ScimError::invalid_value(
            "startIndex and cursor ask for two paging methods at once; send one",
        ));
    }
    // RFC 9865 §2: a cursor holds only RFC 3986 §2.3 unreserved characters.
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    if !cursor.bytes().all(unreserved) {
        return Err(ScimError::typed(
            ScimType::InvalidCursor,
            "the cursor is not one this service issued; send nextCursor from the previous page, or an empty cursor for the first",
        ));
    }
    if let Some(count) = count
        && usize::try_from(count).is_ok_and(|c| c > MAX_RESULTS)
    {
        return Err(ScimError::typed(
            ScimType::InvalidCount,
            format!("count {count} is above maxPageSize {MAX_RESULTS}"),
        ));
    }
    Ok(())
}

fn parse_integer(name: &str, value: &str) -> ScimResult<i64> {
    value.trim().parse::<i64>().map_err(|_| {
        ScimError::invalid_value(format!("'{name}' must be an integer, not \"{value}\""))
    })
}

fn parse_sort_by(value: &str) -> ScimResult<AttrPath> {
    let path = PatchPath::parse(value.trim())
        .map_err(|e| ScimError::invalid_value(format!("sortBy \"{value}\": {}", e.detail)))?;
    if path.filter.is_some() {
        return Err(ScimError::invalid_value(format!(
            "sortBy \"{value}\" must be an attribute path without a filter"
        )));
    }
    Ok(path.attr)
}

/// The value a resource sorts by.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum KeyValue {
    Bool(bool),
    Number(f64),
    Time(DateTime<FixedOffset>),
    Text(String),
}

/// A resource's place in a `sortBy` order: its sort value, or none when unassigned. Compare two
/// with [`compare_keys`].
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey(Option<KeyValue>);

impl SortKey {
    /// The key of `item` (a resource as served) for `sort_by` (RFC 7644 §3.4.2.3): a
    /// multi-valued attribute sorts by its primary value, else its first; strings per the
    /// attribute's `caseExact`; dateTimes as instants.
    pub fn of(
        kind: ResourceKind,
        item: &Map<String, Value>,
        sort_by: &AttrPath,
        registry: &Registry,
    ) -> SortKey {
        SortKey::of_attribute(item, registry.resolve(kind, sort_by).as_ref())
    }

    /// The key of `item` for the attribute `sort_by` resolved to (`None`: it names no
    /// attribute, so every item is unassigned), read as [`SortKey::of`] reads it.
    pub fn of_attribute(item: &Map<String, Value>, sort_by: Option<&ResolvedAttr<'_>>) -> SortKey {
        SortKey(sort_by.and_then(|resolved| sort_key(item, resolved)))
    }
}

/// The `sortBy` order of two keys: unassigned values last in either order. A total order (JSON
/// numbers are never NaN), so it can drive a heap as well as a sort.
pub fn compare_keys(a: &SortKey, b: &SortKey, order: SortOrder) -> Ordering {
    match (&a.0, &b.0) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let ordering = x.partial_cmp(y).unwrap_or(Ordering::Equal);
            match order {
                SortOrder::Ascending => ordering,
                SortOrder::Descending => ordering.reverse(),
            }
        }
    }
}

/// Sort `items` in place by `sort_by` (RFC 7644 §3.4.2.3, see [`SortKey::of`]); unassigned
/// values last in either order; equal keys keep their order (stable).
pub fn sort_resources(
    kind: ResourceKind,
    items: &mut [Map<String, Value>],
    sort_by: &AttrPath,
    order: SortOrder,
    registry: &Registry,
) {
    let keys: Vec<SortKey> = items
        .iter()
        .map(|item| SortKey::of(kind, item, sort_by, registry))
        .collect();
    let mut positions: Vec<usize> = (0..items.len()).collect();
    positions.sort_by(|&a, &b| compare_keys(&keys[a], &keys[b], order));
    let mut taken: Vec<Option<Map<String, Value>>> =
        items.iter_mut().map(|m| Some(std::mem::take(m))).collect();
    for (slot, position) in items.iter_mut().zip(positions) {
        if let Some(item) = taken[position].take() {
            *slot = item;
        }
    }
}

/// The first `limit` items of a sequence in `sortBy` order, kept in a bounded heap: a page of
/// a sorted listing costs memory for `startIndex + count` items, not for every match. Items
/// offered with equal keys keep the order they were offered in, as [`sort_resources`] does,
/// so pages neither overlap nor skip.
#[derive(Debug)]
pub struct TopK<T> {
    limit: usize,
    order: SortOrder,
    offered: usize,
    /// The greatest kept item on top, to be evicted by a smaller one.
    heap: BinaryHeap<Ranked<T>>,
}

impl<T> TopK<T> {
    /// Keeps at most `limit` items.
    pub fn new(limit: usize, order: SortOrder) -> TopK<T> {
        TopK {
            limit,
            order,
            offered: 0,
            heap: BinaryHeap::with_capacity(limit.min(MAX_RESULTS + 1)),
        }
    }

    /// Offer the next item of the sequence.
    pub fn offer(&mut self, key: SortKey, item: T) {
        let ranked = Ranked {
            key,
            seq: self.offered,
            order: self.order,
            item,
        };
        self.offered += 1;
        if self.heap.len() < self.limit {
            self.heap.push(ranked);
        } else if let Some(mut greatest) = self.heap.peek_mut()
            && ranked < *greatest
        {
            *greatest = ranked;
        }
    }

    /// The kept items, first first.
    pub fn into_sorted(self) -> Vec<T> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.item)
            .collect()
    }
}

/// An item in a [`TopK`], ordered by key and then by when it was offered.
#[derive(Debug)]
struct Ranked<T> {
    key: SortKey,
    seq: usize,
    order: SortOrder,
    item: T,
}

impl<T> Ord for Ranked<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_keys(&self.key, &other.key, self.order).then(self.seq.cmp(&other.seq))
    }
}

impl<T> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T> Eq for Ranked<T> {}

fn sort_key(item: &Map<String, Value>, resolved: &ResolvedAttr<'_>) -> Option<KeyValue> {
    let mut value = attribute_in(item, resolved.schema, &resolved.attr.name)?;
    if let Value::Array(values) = value {
        value = values
            .iter()
            .find(|v| is_primary(v))
            .or_else(|| values.first())?;
    }
    if resolved.attr.ty == AttrType::Complex {
        let sub = resolved.sub.map_or("value", |s| s.name.as_str());
        value = value.get(sub)?;
    }
    let leaf = resolved
        .sub
        .or_else(|| resolved.attr.sub_attribute("value"))
        .unwrap_or(resolved.attr);
    match value {
        Value::Bool(b) => Some(KeyValue::Bool(*b)),
        Value::Number(n) => n.as_f64().map(KeyValue::Number),
        Value::String(s) if leaf.ty == AttrType::DateTime => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(KeyValue::Time)
            .or_else(|| Some(KeyValue::Text(s.clone()))),
        Value::String(s) if leaf.case_exact => Some(KeyValue::Text(s.clone())),
        Value::String(s) => Some(KeyValue::Text(s.to_lowercase())),
        _ => None,
    }
}

/// A ListResponse (RFC 7644 §3.4.2) with integer `totalResults`, `startIndex` (as asked; 1 when
/// absent or below 1) and `itemsPerPage` (the number of `Resources` returned). `Resources` is
/// always present, `[]` when there is none: REQUIRED when `totalResults` is non-zero, and the
/// shape Okta and Entra document for "no such user".
pub fn list_response(total: usize, start_index: usize, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index.max(1),
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// The ListResponse of one page of `query`. A page asked with `count=0` returns only the totals
/// (RFC 7644 §3.4.2.4: "no resource results are to be returned except for totalResults"); a
/// `startIndex` past the end is an empty page that still echoes it. A cursor-paged page
/// (RFC 9865 §2) has no `startIndex` and carries `nextCursor` unless it is the last.
pub fn page_response(
    query: &ListQuery,
    total: usize,
    resources: Vec<Value>,
    next_cursor: Option<String>,
) -> Value {
    let mut body = list_response(total, query.start_index, resources);
    if let Some(object) = body.as_object_mut() {
        if query.count == Some(0) {
            object.remove("Resources");
        }
        if query.cursor.is_some() {
            object.remove("startIndex");
        }
        if let Some(next) = next_cursor {
            object.insert("nextCursor".into(), Value::String(next));
        }
    }
    body
}
