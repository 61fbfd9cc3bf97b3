//! `/Bulk` (RFC 7644 §3.7): many operations in one request, each its own transaction (bulk is
//! not atomic), with `bulkId` references between them.
//!
//! Decisions:
//! - `"bulkId:X"` is resolved where it is a whole string value anywhere in `data` (so also in
//!   `members[].value`) and as a path segment (`/Groups/bulkId:X`).
//! - Operations run in request order; one that refers to a `bulkId` defined by a later POST
//!   waits until that POST has run (RFC 7644 §3.7.1 forward references). What still cannot run
//!   when nothing else can — a cycle, a self-reference — or refers to an unknown or failed
//!   `bulkId`, fails with 409.
//! - `failOnErrors: N` stops after the N-th error; the response lists the operations that ran.
//! - Every operation is a write: a credential without `scim:write` gets a 403 for each one
//!   (the request itself is 200 with the BulkResponse, as for any other per-operation error).

use crate::caller::{Authenticated, Caller, Write, Writer};
use crate::error::ApiError;
use crate::service::resources;
use crate::state::AppState;
use scim::dialect::get_ignore_case;
use scim::{ResourceKind, ScimError};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};

/// The BulkRequest message URN.
pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The BulkResponse message URN.
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

const BULK_ID_PREFIX: &str = "bulkId:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn parse(name: &str) -> Option<Method> {
        match name.to_ascii_uppercase().as_str() {
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One operation as sent.
#[derive(Debug, Clone)]
struct Operation {
    method_name: String,
    bulk_id: Option<String>,
    /// The parsed operation, or why it cannot run.
    parsed: Result<Parsed, ScimError>,
}

#[derive(Debug, Clone)]
struct Parsed {
    method: Method,
    kind: ResourceKind,
    /// The id segment of the path (maybe `bulkId:X`), for all but POST.
    id: Option<String>,
    version: Option<String>,
    data: Value,
}

/// A parsed BulkRequest.
#[derive(Debug, Clone)]
pub struct BulkRequest {
    fail_on_errors: Option<u64>,
    operations: Vec<Operation>,
}

/// Read a BulkRequest. More than `max_operations` operations is 413 (RFC 7644 §3.7.4).
pub fn parse(body: &Value, max_operations: usize) -> Result<BulkRequest, ApiError> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax("a BulkRequest must be a JSON object").into());
    };
    if let Some(schemas) = get_ignore_case(body, "schemas") {
        let named = schemas.as_array().is_some_and(|a| {
            a.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(BULK_REQUEST_SCHEMA))
            })
        });
        if !named {
            return Err(ScimError::invalid_syntax(format!(
                "'schemas' must contain \"{BULK_REQUEST_SCHEMA}\""
            ))
            .into());
        }
    }
    let fail_on_errors = match get_ignore_case(body, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_u64().ok_or_else(|| {
            ScimError::invalid_value("'failOnErrors' must be a non-negative integer")
        })?),
    };
    let operations = match get_ignore_case(body, "Operations") {
        Some(Value::Array(ops)) => ops,
        _ => {
            return Err(
                ScimError::invalid_syntax("a BulkRequest needs an 'Operations' array").into(),
            );
        }
    };
    if operations.len() > max_operations {
        return Err(ApiError::too_large(format!(
            "the bulk request has {} operations; maxOperations is {max_operations}",
            operations.len()
        )));
    }
    if operations.is_empty() {
        return Err(ScimError::invalid_value("'Operations' must not be empty").into());
    }
    Ok(BulkRequest {
        fail_on_errors,
        operations: operations.iter().map(parse_operation).collect(),
    })
}

fn parse_operation(op: &Value) -> Operation {
    let empty = Map::new();
    let op = op.as_object().unwrap_or(&empty);
    let text = |name: &str| {
        get_ignore_case(op, name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let method_name = text("method").unwrap_or_default();
    let bulk_id = text("bulkId");
    let parsed = parse_parsed(op, &method_name, bulk_id.as_deref());
    Operation {
        method_name,
        bulk_id,
        parsed,
    }
}

fn parse_parsed(
    op: &Map<String, Value>,
    method_name: &str,
    bulk_id: Option<&str>,
) -> Result<Parsed, ScimError> {
    let method = Method::parse(method_name).ok_or_else(|| {
        ScimError::invalid_value(format!(
            "'method' must be POST, PUT, PATCH or DELETE, not \"{method_name}\""
        ))
    })?;
    let path = get_ignore_case(op, "path")
        .and_then(Value::as_str)
        .ok_or_else(|| ScimError::invalid_value("a bulk operation needs a 'path'"))?;
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let endpoint = segments.next().unwrap_or_default();
    let id = segments
        .next()
        .map(str::to_string)
        .filter(|s| !s.is_empty() && !s.contains('/'));
    let kind = ResourceKind::ALL
        .into_iter()
        .find(|k| k.endpoint().trim_start_matches('/') == endpoint)
        .ok_or_else(|| ScimError::invalid_value(format!("unknown bulk path \"{path}\"")))?;
    match (method, &id) {
        (Method::Post, Some(_)) => {
            return Err(ScimError::invalid_value(format!(
                "POST goes to the resource endpoint, not \"{path}\""
            )));
        }
        (Method::Post, None) if bulk_id.is_none_or(str::is_empty) => {
            // RFC 7644 §3.7: bulkId is REQUIRED for POST.
            return Err(ScimError::invalid_value("a bulk POST needs a 'bulkId'"));
        }
        (Method::Put | Method::Patch | Method::Delete, None) => {
            return Err(ScimError::invalid_value(format!(
                "{} needs a resource path like /Users/{{id}}",
                method.name()
            )));
        }
        _ => {}
    }
    let version = get_ignore_case(op, "version")
        .and_then(Value::as_str)
        .map(str::to_string);
    let data = get_ignore_case(op, "data").cloned().unwrap_or(Value::Null);
    if method != Method::Delete && !data.is_object() {
        return Err(ScimError::invalid_syntax(format!(
            "a bulk {} needs a 'data' object",
            method.name()
        )));
    }
    Ok(Parsed {
        method,
        kind,
        id,
        version,
        data,
    })
}

/// Run the operations and build the BulkResponse.
pub async fn execute(
    state: &AppState,
    caller: &Caller<Authenticated>,
    base_url: &str,
    request: BulkRequest,
) -> Value {
    let ops = &request.operations;
    let writer = caller.require::<Write>().map_err(|e| e.to_scim());
    let defined: HashSet<&str> = ops
        .iter()
        .filter(|op| matches!(&op.parsed, Ok(p) if p.method == Method::Post))
        .filter_map(|op| op.bulk_id.as_deref())
        .collect();
    let mut resolved: HashMap<String, String> = HashMap::new();
    let mut failed: HashSet<String> = HashSet::new();
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut errors: u64 = 0;
    let limit_reached = |errors: u64| {
        request
            .fail_on_errors
            .is_some_and(|n| errors > 0 && errors >= n)
    };
    let mut pending: Vec<usize> = (0..ops.len()).collect();

    'passes: while !pending.is_empty() {
        let mut waiting = Vec::new();
        let mut progressed = false;
        for index in pending {
            if limit_reached(errors) {
                break 'passes;
            }
            let op = &ops[index];
            let outcome = match (&op.parsed, &writer) {
                (Err(e), _) | (Ok(_), Err(e)) => Err(e.clone()),
                (Ok(parsed), Ok(writer)) => {
                    let mut refs = Vec::new();
                    collect_references(&parsed.data, &mut refs);
                    if let Some(id) = parsed
                        .id
                        .as_deref()
                        .and_then(|i| i.strip_prefix(BULK_ID_PREFIX))
                    {
                        refs.push(id.to_string());
                    }
                    let unresolved: Vec<&String> =
                        refs.iter().filter(|r| !resolved.contains_key(*r)).collect();
                    if unresolved.is_empty() {
                        run(state, writer, parsed, &resolved).await
                    } else if let Some(bad) = unresolved
                        .iter()
                        .find(|r| !defined.contains(r.as_str()) || failed.contains(r.as_str()))
                    {
                        Err(ScimError::status(
                            409,
                            format!(
                                "bulkId \"{bad}\" is not defined by a successful POST in this request"
                            ),
                        ))
                    } else {
                        waiting.push(index);
                        continue;
                    }
                }
            };
            progressed = true;
            match outcome {
                Ok((status, id, version)) => {
                    if let (Ok(parsed), Some(bulk_id)) = (&op.parsed, &op.bulk_id)
                        && parsed.method == Method::Post
                    {
                        resolved.insert(bulk_id.clone(), id.clone());
                    }
                    let kind = op.parsed.as_ref().map_or(ResourceKind::User, |p| p.kind);
                    results[index] = Some(success(
                        op,
                        status,
                        &scim::render::location(base_url, kind, &id),
                        version,
                    ));
                }
                Err(e) => {
                    errors += 1;
                    if let Some(bulk_id) = &op.bulk_id {
                        failed.insert(bulk_id.clone());
                    }
                    results[index] = Some(failure(op, &e));
                }
            }
        }
        if !progressed {
            // RFC 7644 §3.7.1: references that cannot be resolved (a cycle) are a 409.
            for index in waiting {
                if limit_reached(errors) {
                    break;
                }
                errors += 1;
                let e = ScimError::status(409, "circular bulkId references cannot be resolved");
                results[index] = Some(failure(&ops[index], &e));
            }
            break;
        }
        pending = waiting;
    }
    json!({
        "schemas": [BULK_RESPONSE_SCHEMA],
        "Operations": results.into_iter().flatten().collect::<Vec<_>>(),
    })
}

/// Run one operation whose references are all resolved: `(status, id, version)`.
async fn run(
    state: &AppState,
    writer: &Writer,
    op: &Parsed,
    resolved: &HashMap<String, String>,
) -> Result<(u16, String, Option<String>), ScimError> {
    let data = substitute(&op.data, resolved);
    let id = op.id.as_deref().map(|id| substitute_str(id, resolved));
    let path = match &id {
        Some(id) => format!("{}/{id}", op.kind.endpoint()),
        None => op.kind.endpoint().to_string(),
    };
    let write = writer.write(format!("bulk {} {path}", op.method.name()));
    let if_match = op.version.as_deref();
    let result = match (op.method, id) {
        (Method::Post, _) => resources::create(state, &write, op.kind, data)
            .await
            .map(|r| (201, r.id.clone(), Some(r.etag()))),
        (Method::Put, Some(id)) => resources::replace(state, &write, op.kind, &id, if_match, data)
            .await
            .map(|r| (200, id, Some(r.etag()))),
        (Method::Patch, Some(id)) => resources::patch(state, &write, op.kind, &id, if_match, &data)
            .await
            .map(|r| (200, id, Some(r.etag()))),
        (Method::Delete, Some(id)) => resources::delete(state, &write, op.kind, &id, if_match)
            .await
            .map(|()| (204, id, None)),
        (_, None) => {
            return Err(ScimError::invalid_value(
                "the operation needs a resource id",
            ));
        }
    };
    result.map_err(|e| e.to_scim())
}

fn success(op: &Operation, status: u16, location: &str, version: Option<String>) -> Value {
    let mut out = result_head(op);
    if let Some(version) = version {
        out.insert("version".into(), Value::String(version));
    }
    out.insert("location".into(), Value::String(location.to_string()));
    out.insert("status".into(), Value::String(status.to_string()));
    Value::Object(out)
}

fn failure(op: &Operation, error: &ScimError) -> Value {
    let mut out = result_head(op);
    out.insert("status".into(), Value::String(error.status.to_string()));
    out.insert("response".into(), error.to_json());
    Value::Object(out)
}

/// `method` and `bulkId`, as every per-operation result starts.
fn result_head(op: &Operation) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "method".into(),
        Value::String(op.method_name.to_ascii_uppercase()),
    );
    if let Some(bulk_id) = &op.bulk_id {
        out.insert("bulkId".into(), Value::String(bulk_id.clone()));
    }
    out
}

/// Every `bulkId:X` string value in `value`.
fn collect_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix(BULK_ID_PREFIX) {
                out.push(id.to_string());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

fn substitute(value: &Value, resolved: &HashMap<String, String>) -> Value {
    match value {
        Value::String(s) => Value::String(substitute_str(s, resolved)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| substitute(v, resolved)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, resolved)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn substitute_str(s: &str, resolved: &HashMap<String, String>) -> String {
    s.strip_prefix(BULK_ID_PREFIX)
        .and_then(|id| resolved.get(id))
        .cloned()
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_operations_is_413_and_empty_is_400() {
        let op = json!({"method": "DELETE", "path": "/Users/1"});
        let body =
            json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": [op.clone(), op.clone(), op]});
        let e = parse(&body, 2).unwrap_err().to_scim();
        assert_eq!(e.status, 413);
        let empty = json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": []});
        assert_eq!(parse(&empty, 2).unwrap_err().to_scim().status, 400);
    }

    #[test]
    fn operations_are_checked_one_by_one() {
        let body = json!({"Operations": [
            {"method": "POST", "path": "/Users", "data": {}},
            {"method": "GET", "path": "/Users/1"},
            {"method": "PATCH", "path": "/Users", "data": {}},
            {"method": "POST", "path": "/Widgets", "bulkId": "w", "data": {}},
            {"method": "post", "path": "/Groups", "bulkId": "g", "data": {"displayName": "x"}},
        ]});
        let request = parse(&body, 10).unwrap();
        let ok: Vec<bool> = request
            .operations
            .iter()
            .map(|o| o.parsed.is_ok())
            .collect();
        assert_eq!(ok, [false, false, false, false, true]);
    }

    #[test]
    fn references_are_found_and_substituted_as_whole_strings() {
        let data = json!({"members": [{"value": "bulkId:a"}, {"value": "x-bulkId:b"}], "path": "bulkId:c"});
        let mut refs = Vec::new();
        collect_references(&data, &mut refs);
        assert_eq!(refs, ["a", "c"]);
        let resolved = HashMap::from([("a".to_string(), "id-a".to_string())]);
        let out = substitute(&data, &resolved);
        assert_eq!(out["members"][0]["value"], "id-a");
        assert_eq!(out["members"][1]["value"], "x-bulkId:b");
        assert_eq!(out["path"], "bulkId:c");
    }
}
