//! Bad input of every kind is a 4xx SCIM error — never a 5xx — and changes nothing.

use crate::on_both_backends;
use crate::support::{Backend, TestServer};
use crate::{filter_param, patch_op, user_body};
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(bad_input_is_4xx_and_changes_nothing);

/// One bad request: what is sent and the SCIM error expected (`None` scimType: the status
/// carries none, RFC 7644 §3.12).
struct Case {
    name: &'static str,
    method: Method,
    path: String,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
    status: u16,
    scim_type: Option<&'static str>,
}

fn case(
    name: &'static str,
    method: Method,
    path: impl Into<String>,
    body: Option<String>,
    status: u16,
    scim_type: Option<&'static str>,
) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        body,
        headers: Vec::new(),
        status,
        scim_type,
    }
}

impl Case {
    fn with_header(mut self, name: &'static str, value: &str) -> Case {
        self.headers.push((name, value.into()));
        self
    }
}

/// A write whose If-Match names a version the resource does not have: 412 (RFC 7644 §3.14).
fn stale_if_match(
    name: &'static str,
    method: Method,
    path: impl Into<String>,
    body: Option<String>,
) -> Case {
    case(name, method, path, body, 412, None).with_header("if-match", "W/\"999\"")
}

fn json_body(value: Value) -> Option<String> {
    Some(value.to_string())
}

/// What the store holds: every User and Group as served, the audit length and the outbox depth.
async fn snapshot(srv: &TestServer) -> (Value, Value, usize, i64) {
    let users = srv.get("/Users?count=1000").await.body;
    let groups = srv.get("/Groups?count=1000").await.body;
    let audit = srv.store.audit().export(None).await.unwrap().len();
    let depth = srv.store.outbox().stats().await.unwrap().depth;
    (users, groups, audit, depth)
}

async fn bad_input_is_4xx_and_changes_nothing(backend: Backend) {
    let Some(srv) = TestServer::start_with(backend, |c| c.max_body_bytes = 64 * 1024).await else {
        return;
    };
    let user = srv.create_user("alice@example.com").await;
    srv.create_user("bob@example.com").await;
    let group = srv.create_group("Admins", &[&user]).await;
    let u = format!("/Users/{user}");
    let g = format!("/Groups/{group}");
    let deep_filter = format!("{}userName eq \"x\"{}", "(".repeat(40), ")".repeat(40));

    let cases = vec![
        case(
            "malformed JSON",
            Method::POST,
            "/Users",
            Some("{\"userName\": ".into()),
            400,
            Some("invalidSyntax"),
        ),
        case(
            "empty body",
            Method::POST,
            "/Users",
            Some(String::new()),
            400,
            Some("invalidSyntax"),
        ),
        case(
            "body is an array",
            Method::POST,
            "/Users",
            json_body(json!([1, 2])),
            400,
            Some("invalidSyntax"),
        ),
        case(
            "userName of the wrong type",
            Method::POST,
            "/Users",
            json_body(json!({"userName": 5})),
            400,
            Some("invalidValue"),
        ),
        case(
            "userName missing",
            Method::POST,
            "/Users",
            json_body(json!({"displayName": "x"})),
            400,
            Some("invalidValue"),
        ),
        case(
            "active not a boolean",
            Method::POST,
            "/Users",
            json_body(json!({"userName": "c@x", "active": "maybe"})),
            400,
            Some("invalidValue"),
        ),
        case(
            "two primary emails",
            Method::POST,
            "/Users",
            json_body(json!({"userName": "c@x", "emails": [
            {"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}]})),
            400,
            Some("invalidValue"),
        ),
        case(
            "a Group posted to /Users",
            Method::POST,
            "/Users",
            json_body(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "x"})),
            400,
            Some("invalidValue"),
        ),
        case(
            "duplicate userName",
            Method::POST,
            "/Users",
            json_body(user_body("ALICE@example.com")),
            409,
            Some("uniqueness"),
        ),
        case(
            "unknown member",
            Method::POST,
            "/Groups",
            json_body(json!({"displayName": "G2", "members": [{"value": "no-such-id"}]})),
            400,
            Some("invalidValue"),
        ),
        case(
            "duplicate displayName",
            Method::POST,
            "/Groups",
            json_body(json!({"displayName": "admins"})),
            409,
            Some("uniqueness"),
        ),
        case(
            "unknown filter operator",
            Method::GET,
            format!("/Users?filter={}", filter_param("userName zz \"x\"")),
            None,
            400,
            Some("invalidFilter"),
        ),
        case(
            "filter without a value",
            Method::GET,
            format!("/Users?filter={}", filter_param("userName eq")),
            None,
            400,
            Some("invalidFilter"),
        ),
        case(
            "unbalanced filter",
            Method::GET,
            format!("/Users?filter={}", filter_param("(userName eq \"x\"")),
            None,
            400,
            Some("invalidFilter"),
        ),
        case(
            "too deep a filter",
            Method::GET,
            format!("/Users?filter={}", filter_param(&deep_filter)),
            None,
            400,
            Some("invalidFilter"),
        ),
        case(
            "ordering a boolean",
            Method::GET,
            format!("/Users?filter={}", filter_param("active gt true")),
            None,
            400,
            Some("invalidFilter"),
        ),
        case(
            "startIndex not a number",
            Method::GET,
            "/Users?startIndex=abc",
            None,
            400,
            Some("invalidValue"),
        ),
        case(
            "count not a number",
            Method::GET,
            "/Users?count=1.5",
            None,
            400,
            Some("invalidValue"),
        ),
        case(
            "bad sortOrder",
            Method::GET,
            "/Users?sortBy=userName&sortOrder=sideways",
            None,
            400,
            Some("invalidValue"),
        ),
        case(
            "bad attributes",
            Method::GET,
            format!("{u}?attributes=emails[type"),
            None,
            400,
            Some("invalidValue"),
        ),
        case(
            "search filter of the wrong type",
            Method::POST,
            "/Users/.search",
            json_body(json!({"filter": 5})),
            400,
            Some("invalidValue"),
        ),
        case(
            "search with a foreign schema",
            Method::POST,
            "/.search",
            json_body(json!({"schemas": ["urn:x"]})),
            400,
            Some("invalidSyntax"),
        ),
        case(
            "empty Operations",
            Method::PATCH,
            u.clone(),
            json_body(patch_op(json!([]))),
            400,
            Some("invalidValue"),
        ),
        case(
            "Operations missing",
            Method::PATCH,
            u.clone(),
            json_body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]})),
            400,
            None,
        ),
        case(
            "unknown op",
            Method::PATCH,
            u.clone(),
            json_body(patch_op(
                json!([{"op": "frobnicate", "path": "title", "value": "x"}]),
            )),
            400,
            None,
        ),
        case(
            "unparsable PATCH path",
            Method::PATCH,
            u.clone(),
            json_body(patch_op(
                json!([{"op": "replace", "path": "emails[type eq", "value": "x"}]),
            )),
            400,
            Some("invalidPath"),
        ),
        case(
            "PATCH path to no attribute",
            Method::PATCH,
            u.clone(),
            json_body(patch_op(
                json!([{"op": "replace", "path": "noSuchAttribute", "value": "x"}]),
            )),
            400,
            Some("invalidPath"),
        ),
        case(
            "PATCH of readOnly id",
            Method::PATCH,
            u.clone(),
            json_body(patch_op(
                json!([{"op": "replace", "path": "id", "value": "other"}]),
            )),
            400,
            Some("mutability"),
        ),
        case(
            "PATCH remove without path",
            Method::PATCH,
            u.clone(),
            json_body(patch_op(json!([{"op": "remove"}]))),
            400,
            Some("noTarget"),
        ),
        case(
            "PATCH adds an unknown member",
            Method::PATCH,
            g.clone(),
            json_body(patch_op(
                json!([{"op": "add", "path": "members", "value": [{"value": "nobody"}]}]),
            )),
            400,
            Some("invalidValue"),
        ),
        case(
            "PATCH renames onto a taken userName",
            Method::PATCH,
            format!("/Users/{}", user),
            json_body(patch_op(
                json!([{"op": "replace", "path": "userName", "value": "BOB@example.com"}]),
            )),
            409,
            Some("uniqueness"),
        ),
        case(
            "PATCH an unknown id",
            Method::PATCH,
            "/Users/00000000-0000-0000-0000-000000000000",
            json_body(patch_op(
                json!([{"op": "replace", "path": "title", "value": "x"}]),
            )),
            404,
            None,
        ),
        case(
            "PUT an unknown id",
            Method::PUT,
            "/Users/00000000-0000-0000-0000-000000000000",
            json_body(user_body("new@example.com")),
            404,
            None,
        ),
        case(
            "PUT without userName",
            Method::PUT,
            u.clone(),
            json_body(json!({"displayName": "x"})),
            400,
            Some("invalidValue"),
        ),
        case(
            "unknown resource type",
            Method::POST,
            "/Widgets",
            json_body(json!({})),
            404,
            None,
        ),
        case(
            "bulk without Operations",
            Method::POST,
            "/Bulk",
            json_body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]})),
            400,
            Some("invalidSyntax"),
        ),
        case(
            "bulk failOnErrors negative",
            Method::POST,
            "/Bulk",
            json_body(
                json!({"failOnErrors": -1, "Operations": [{"method": "DELETE", "path": "/Users/x"}]}),
            ),
            400,
            Some("invalidValue"),
        ),
        case(
            "huge body",
            Method::POST,
            "/Users",
            json_body(json!({"userName": "h@x", "title": "x".repeat(70 * 1024)})),
            413,
            None,
        ),
        case(
            "text/plain body",
            Method::POST,
            "/Users",
            json_body(user_body("t@x")),
            415,
            None,
        )
        .with_header("content-type", "text/plain"),
        stale_if_match(
            "stale If-Match on PUT",
            Method::PUT,
            u.clone(),
            json_body(user_body("alice@example.com")),
        ),
        case(
            "malformed If-Match",
            Method::PUT,
            u.clone(),
            json_body(user_body("alice@example.com")),
            400,
            Some("invalidValue"),
        )
        .with_header("if-match", "garbage"),
        stale_if_match(
            "stale If-Match on PATCH",
            Method::PATCH,
            g.clone(),
            json_body(patch_op(
                json!([{"op": "replace", "path": "displayName", "value": "x"}]),
            )),
        ),
        stale_if_match("stale If-Match on DELETE", Method::DELETE, u.clone(), None),
    ];

    let before = snapshot(&srv).await;
    for case in &cases {
        let mut request = srv.request(case.method.clone(), &case.path);
        if let Some(body) = &case.body {
            if !case.headers.iter().any(|(name, _)| *name == "content-type") {
                request = request.header("content-type", "application/scim+json");
            }
            request = request.body(body.clone());
        }
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        let reply = srv.send(request).await;
        assert!(
            reply.status < 500,
            "{}: a 5xx for bad input: {}",
            case.name,
            reply.text
        );
        assert_eq!(reply.status, case.status, "{}: {}", case.name, reply.text);
        if case.status != 400 || case.scim_type.is_some() {
            reply.assert_error(case.status, case.scim_type);
        } else {
            // Statuses where the precise keyword is the core's choice: still a SCIM error.
            assert_eq!(reply.body["status"], "400", "{}: {}", case.name, reply.text);
        }
    }
    assert_eq!(snapshot(&srv).await, before, "bad input changed the store");
}
