//! The trust boundary, attacked over real HTTP: no spelling of a path (percent-encoding, dot
//! segments, doubled slashes, case) reaches a protected handler without a credential, every
//! registered route but discovery and the operations endpoints refuses an anonymous caller, and
//! the route a path reaches agrees with whether it needs a token.
//!
//! Requests are written as raw request lines on a TCP socket: HTTP clients normalise paths
//! (reqwest resolves dot segments), which would hide exactly what is under test.

use crate::on_both_backends;
use crate::support::{Backend, Reply, TestServer};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

on_both_backends!(
    encoded_and_dotted_paths_need_a_token,
    every_registered_route_but_discovery_refuses_anonymous_callers,
    route_and_token_requirement_agree_for_generated_paths,
    a_read_only_token_reads_and_cannot_write,
    a_write_only_token_writes_and_cannot_read,
    a_flood_of_bad_tokens_is_limited_per_address_while_real_traffic_flows,
    forwarding_headers_count_only_from_trusted_proxies
);

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// One raw HTTP/1.1 answer.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Send `method target` exactly as given (no normalisation), with `headers` and a body, on a
/// connection of its own, and read the answer.
pub fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> RawReply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("Content-Type: application/scim+json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    // The server may close before reading a body it refused; what was answered is kept.
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status for {method} {target}: {text:?}"));
    RawReply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// [`raw_request`] off the async runtime's threads.
async fn raw(
    srv: &TestServer,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: Option<String>,
) -> RawReply {
    let addr = srv.addr;
    let (method, target) = (method.to_string(), target.to_string());
    let auth = token.map(|t| format!("Bearer {t}"));
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        raw_request(addr, &method, &target, &headers, body.as_deref())
    })
    .await
    .unwrap()
}

/// What the store holds: every resource's id and version, and the audit trail's length.
#[derive(Debug, PartialEq, Eq)]
pub struct StoreState {
    resources: Vec<(String, String)>,
    audit_records: usize,
}

pub async fn store_state(srv: &TestServer) -> StoreState {
    let query = scim::query::ListQuery::from_params(&[]).unwrap();
    let mut resources = Vec::new();
    for kind in [scim::ResourceKind::User, scim::ResourceKind::Group] {
        let page = srv
            .store
            .resources()
            .list(kind, &query, store::GetOptions::BARE)
            .await
            .unwrap();
        assert_eq!(page.total as usize, page.items.len(), "one page holds all");
        resources.extend(page.items.iter().map(|r| (r.id.clone(), r.etag())));
    }
    resources.sort();
    StoreState {
        resources,
        audit_records: srv.store.audit().export(None).await.unwrap().len(),
    }
}

/// The request counters by `(endpoint, method, status)`.
fn request_counts(metrics: &server::Metrics) -> BTreeMap<String, u64> {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("scim_bridge_http_requests_total{"))
        .filter_map(|l| {
            let (labels, count) = l.rsplit_once(' ')?;
            Some((labels.to_string(), count.parse().ok()?))
        })
        .collect()
}

/// The route pattern the edge recorded for the one request sent between two counts.
fn endpoint_between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k).copied().unwrap_or(0) < **v)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(changed.len(), 1, "one request was counted: {changed:?}");
    let labels = changed[0];
    let start = labels.find("endpoint=\"").unwrap() + "endpoint=\"".len();
    let end = start + labels[start..].find('"').unwrap();
    labels[start..end].to_string()
}

/// A body that would change something if it reached a handler.
fn write_body(method: &str, path: &str) -> Option<String> {
    let body = match method {
        "POST" if path.contains("Bulk") => json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [{"method": "POST", "path": "/Users", "bulkId": "b1",
                            "data": crate::user_body("bulk-intruder@example.com")}],
        }),
        "POST" if path.contains("Groups") => json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "intruders",
        }),
        "POST" | "PUT" => crate::user_body("intruder@example.com"),
        "PATCH" => crate::patch_op(json!([
            {"op": "replace", "path": "displayName", "value": "Owned"},
        ])),
        _ => return None,
    };
    Some(body.to_string())
}

/// Many anonymous requests from one address: the failed-authentication limit (tested on its
/// own below) is off, so every answer is the route's own.
fn without_failure_limit(config: &mut server::ServerConfig) {
    config.auth_failure_rate_limit_per_second = 0;
}

async fn encoded_and_dotted_paths_need_a_token(backend: Backend) {
    let Some(srv) = TestServer::start_with(backend, without_failure_limit).await else {
        return;
    };
    let user = srv.create_user("alice@example.com").await;
    let group = srv.create_group("engineering", &[&user]).await;
    let before = store_state(&srv).await;

    let mut paths: Vec<String> = [
        "/%73cim/v2/Users",
        "/sc%69m/v2/Groups",
        "/scim/%762/Bulk",
        "/scim/v2/%55sers",
        "/scim/v2/%2e%2e/v2/Users",
        "//scim/v2/Users",
        "/scim/v2/./Users",
        "/SCIM/v2/Users",
        "/scim/v2/Users%2F..%2F",
        "/scim/v2/Users/",
        "/scim/v2//Users",
        "/%73%63%69%6d/%76%32/.search",
        "/scim/v2/Schemas/../Users",
        "/scim/v2/Schemas%2F..%2FUsers",
        "/scim/v2/Users/.search",
        "/scim/v2",
        "/scim/v2/Me",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    // The same spellings aimed at one existing resource, where PUT, PATCH and DELETE would bite.
    for prefix in [
        "/%73cim/v2/Users",
        "/scim/v2/%55sers",
        "//scim/v2/Users",
        "/scim/v2/./Users",
        "/scim/v2/%2e%2e/v2/Users",
    ] {
        paths.push(format!("{prefix}/{user}"));
    }
    paths.push(format!("/sc%69m/v2/Groups/{group}"));
    paths.push(format!("/scim/v2/Gr%6fups/{group}/"));

    for path in &paths {
        for method in METHODS {
            let reply = raw(&srv, method, path, None, write_body(method, path)).await;
            assert!(
                [400, 401, 404].contains(&reply.status),
                "{method} {path} without a token answered {}: {}",
                reply.status,
                reply.body
            );
            if reply.status == 401 {
                assert!(
                    reply
                        .head
                        .to_ascii_lowercase()
                        .contains("www-authenticate: bearer"),
                    "{method} {path}: {}",
                    reply.head
                );
            }
        }
    }
    assert_eq!(
        store_state(&srv).await,
        before,
        "no anonymous request changed the store or the audit trail"
    );

    // Spellings actix routes like their decoded form are served like it, with a token.
    for path in ["/%73cim/v2/Users", "/scim/v2/%55sers", "//scim/v2/Users"] {
        let reply = raw(&srv, "GET", path, Some(&srv.token), None).await;
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["totalResults"], 1, "GET {path}");
    }
    let reply = raw(
        &srv,
        "GET",
        &format!("/sc%69m/v2/Groups/{group}"),
        Some(&srv.token),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// A request with `token`.
async fn call_with(
    srv: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> crate::support::Reply {
    let mut builder = srv
        .client
        .request(method.parse().unwrap(), srv.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        builder = builder
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    srv.send(builder).await
}

async fn a_read_only_token_reads_and_cannot_write(backend: Backend) {
    // Every request re-reads the tokens, so one made after start-up is known at once.
    let Some(srv) = TestServer::start_with(backend, |c| c.token_cache_ttl = Duration::ZERO).await
    else {
        return;
    };
    let user = srv.create_user("alice@example.com").await;
    let group = srv.create_group("engineering", &[&user]).await;
    let reader = srv.create_token("auditor", store::Scopes::READ).await;
    let before = store_state(&srv).await;

    // Reads, a root or per-type search (POST, but a read) included.
    for (method, path, body) in [
        ("GET", "/Users".to_string(), None),
        ("GET", format!("/Users/{user}"), None),
        ("GET", format!("/Groups/{group}"), None),
        (
            "POST",
            "/.search".to_string(),
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]})),
        ),
        (
            "POST",
            "/Groups/.search".to_string(),
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]})),
        ),
    ] {
        let reply = call_with(&srv, &reader, method, &path, body).await;
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.text);
    }

    // Every write is 403, a SCIM error naming the missing scope.
    let patch = crate::patch_op(json!([{"op": "replace", "path": "displayName", "value": "x"}]));
    let writes = [
        (
            "POST",
            "/Users".to_string(),
            Some(crate::user_body("bob@example.com")),
        ),
        (
            "PUT",
            format!("/Users/{user}"),
            Some(crate::user_body("alice@example.com")),
        ),
        ("PATCH", format!("/Users/{user}"), Some(patch.clone())),
        ("DELETE", format!("/Users/{user}"), None),
        (
            "POST",
            "/Groups".to_string(),
            Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g2"}),
            ),
        ),
        (
            "PUT",
            format!("/Groups/{group}"),
            Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g3"}),
            ),
        ),
        ("PATCH", format!("/Groups/{group}"), Some(patch)),
        ("DELETE", format!("/Groups/{group}"), None),
    ];
    for (method, path, body) in writes {
        let reply = call_with(&srv, &reader, method, &path, body).await;
        reply.assert_error(403, None);
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap()
                .contains("scim:write"),
            "{method} {path}: {}",
            reply.text
        );
    }

    // Inside /Bulk, each write operation is refused on its own.
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": crate::user_body("carol@example.com")},
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"displayName": "g4", "members": [{"value": "bulkId:u"}]}},
            {"method": "PUT", "path": format!("/Users/{user}"), "data": crate::user_body("alice@example.com")},
            {"method": "PATCH", "path": format!("/Groups/{group}"), "data": crate::patch_op(json!([{"op": "remove", "path": "members"}]))},
            {"method": "DELETE", "path": format!("/Users/{user}")},
        ],
    });
    let reply = call_with(&srv, &reader, "POST", "/Bulk", Some(bulk)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let operations = reply.body["Operations"].as_array().unwrap();
    assert_eq!(operations.len(), 5, "{}", reply.text);
    for op in operations {
        assert_eq!(op["status"], "403", "{op}");
        assert_eq!(op["response"]["status"], "403", "{op}");
        assert!(
            op["response"]["detail"]
                .as_str()
                .unwrap()
                .contains("scim:write"),
            "{op}"
        );
    }

    assert_eq!(
        store_state(&srv).await,
        before,
        "the read-only token changed nothing"
    );
    // The full token still writes.
    assert_eq!(srv.delete(&format!("/Users/{user}")).await.status, 204);
}

async fn a_write_only_token_writes_and_cannot_read(backend: Backend) {
    let Some(srv) = TestServer::start_with(backend, |c| c.token_cache_ttl = Duration::ZERO).await
    else {
        return;
    };
    let writer = srv
        .create_token("loader", store::Scopes::NONE.with(store::Scope::Write))
        .await;
    let created = call_with(
        &srv,
        &writer,
        "POST",
        "/Users",
        Some(crate::user_body("dave@example.com")),
    )
    .await;
    assert_eq!(
        created.status, 201,
        "a write answers with what it wrote: {}",
        created.text
    );
    let id = created.body["id"].as_str().unwrap().to_string();
    let audit = srv.store.audit().export(None).await.unwrap();
    assert_eq!(audit.last().unwrap().actor.as_deref(), Some("loader"));
    for path in ["/Users".to_string(), format!("/Users/{id}")] {
        let reply = call_with(&srv, &writer, "GET", &path, None).await;
        reply.assert_error(403, None);
        assert!(
            reply.body["detail"].as_str().unwrap().contains("scim:read"),
            "{}",
            reply.text
        );
    }
    call_with(&srv, &writer, "POST", "/.search", Some(json!({})))
        .await
        .assert_error(403, None);
}

async fn a_flood_of_bad_tokens_is_limited_per_address_while_real_traffic_flows(backend: Backend) {
    let Some(srv) = TestServer::start_with(backend, |c| {
        c.auth_failure_rate_limit_per_second = 1;
        c.auth_failure_rate_limit_burst = 5;
        c.rate_limit_per_second = 0;
    })
    .await
    else {
        return;
    };
    srv.create_user("alice@example.com").await;
    let before = store_state(&srv).await;
    let users = srv.url("/Users");
    let mut statuses = Vec::new();
    let mut limited = None;
    for i in 0..30 {
        let forged = srv
            .send(
                srv.client
                    .post(&users)
                    .bearer_auth(format!("scimb_forged-{i}"))
                    .header("content-type", "application/scim+json")
                    .body(crate::user_body(&format!("x{i}@example.com")).to_string()),
            )
            .await;
        statuses.push(forged.status);
        if forged.status == 429 {
            limited = Some(forged);
        }
        // The IdP, from the same address, between the attacker's requests: served.
        let real = srv.get("/Users").await;
        assert_eq!(real.status, 200, "request {i}: {}", real.text);
    }
    assert_eq!(
        statuses[..5],
        [401; 5],
        "the burst is answered: {statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 20,
        "the flood is refused: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
    limited.expect("a 429").assert_retry_after(1..=5);
    // No credential at all is a failure too.
    srv.send(srv.client.get(&users))
        .await
        .assert_error(429, None);
    // Another address has its own allowance (all of 127/8 is loopback).
    let elsewhere = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    srv.send(elsewhere.get(&users).bearer_auth("scimb_forged-x"))
        .await
        .assert_error(401, None);
    assert_eq!(store_state(&srv).await, before, "the flood wrote nothing");
}

/// A burst of 3 failures answered 401, then 429 (one more may pass if a second went by).
fn assert_burst_then_refused(statuses: &[u16]) {
    assert_eq!(statuses[..3], [401; 3], "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
}

async fn forwarding_headers_count_only_from_trusted_proxies(backend: Backend) {
    let limits = |c: &mut server::ServerConfig| {
        c.auth_failure_rate_limit_per_second = 1;
        c.auth_failure_rate_limit_burst = 3;
    };
    let forged_origin = [
        ("host", "evil.example"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9;host=evil.example;proto=https"),
    ];
    let create = |srv: &TestServer, user: &str, headers: &[(&'static str, &'static str)]| {
        let mut builder = srv
            .request(reqwest::Method::POST, "/Users")
            .header("content-type", "application/scim+json")
            .body(crate::user_body(user).to_string());
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder
    };
    let bad_token_from = |srv: &TestServer, client: &'static str| {
        srv.client
            .get(srv.url("/Users"))
            .bearer_auth("scimb_forged")
            .header("x-forwarded-for", client)
    };

    // An untrusted peer: the headers move nothing.
    let Some(srv) = TestServer::start_with(backend, limits).await else {
        return;
    };
    let created = srv
        .send(create(&srv, "a@example.com", &forged_origin))
        .await;
    assert!(srv.base.starts_with("http://127.0.0.1:"), "{}", srv.base);
    assert_created_at(&srv, &created, &srv.base, "127.0.0.1").await;
    // Nor can a new X-Forwarded-For on each bad token buy a fresh allowance.
    let clients = [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
        "198.51.100.5",
        "198.51.100.6",
    ];
    let mut statuses = Vec::new();
    for client in clients {
        statuses.push(srv.send(bad_token_from(&srv, client)).await.status);
    }
    assert_burst_then_refused(&statuses);
    drop(srv);

    // Behind a trusted proxy: its headers name the origin and the client.
    let Some(srv) = TestServer::start_with(backend, |c| {
        limits(c);
        c.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await
    else {
        return;
    };
    let proxied = [
        ("x-forwarded-host", "scim.example.com"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    let created = srv.send(create(&srv, "b@example.com", &proxied)).await;
    let public_base = "https://scim.example.com/scim/v2";
    assert_created_at(&srv, &created, public_base, "203.0.113.9").await;
    // The failure limit keys on the client the proxy names.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(srv.send(bad_token_from(&srv, "198.51.100.1")).await.status);
    }
    assert_burst_then_refused(&statuses);
    srv.send(bad_token_from(&srv, "198.51.100.2"))
        .await
        .assert_error(401, None);
}

/// A concrete path for a route pattern.
fn concrete(pattern: &str, user_id: &str) -> String {
    pattern
        .replace("/ResourceTypes/{id}", "/ResourceTypes/User")
        .replace(
            "/Schemas/{id}",
            "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
        )
        .replace("{id}", user_id)
        .replace("{tail:.*}", "anything")
}

async fn every_registered_route_but_discovery_refuses_anonymous_callers(backend: Backend) {
    let Some(srv) = TestServer::start_with(backend, without_failure_limit).await else {
        return;
    };
    let user = srv.create_user("walker@example.com").await;
    let routes = server::routes();
    let public: Vec<&str> = routes
        .iter()
        .filter(|r| r.public)
        .map(|r| r.pattern.as_str())
        .collect();
    assert_eq!(
        public,
        [
            "/healthz",
            "/readyz",
            "/metrics",
            "/oauth/token",
            "/scim/v2/ServiceProviderConfig",
            "/scim/v2/ResourceTypes",
            "/scim/v2/ResourceTypes/{id}",
            "/scim/v2/Schemas",
            "/scim/v2/Schemas/{id}",
        ],
        "only discovery, the operations endpoints and the token endpoint are public"
    );
    assert!(
        routes.iter().filter(|r| !r.public).count() >= 10,
        "the protected routes are registered: {routes:?}"
    );
    let before = store_state(&srv).await;
    for route in &routes {
        let path = concrete(&route.pattern, &user);
        for method in METHODS {
            let reply = raw(&srv, method, &path, None, write_body(method, &path)).await;
            if route.public {
                assert_ne!(reply.status, 401, "{method} {path} is public");
                // The token endpoint answers POST only.
                if method == "GET" && path != "/oauth/token" {
                    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
                }
            } else {
                assert_eq!(
                    reply.status, 401,
                    "{method} {path} without a token: {}",
                    reply.body
                );
            }
        }
    }
    assert_eq!(store_state(&srv).await, before);

    // With a token, each protected route's GET reaches that route (not a fallback).
    for route in routes.iter().filter(|r| !r.public) {
        let path = concrete(&route.pattern, &user);
        let counts = request_counts(&srv.metrics);
        let reply = raw(&srv, "GET", &path, Some(&srv.token), None).await;
        assert_ne!(reply.status, 401, "GET {path} with a token");
        assert_eq!(
            endpoint_between(&counts, &request_counts(&srv.metrics)),
            route.pattern,
            "GET {path}"
        );
    }
}

/// Path segments an attacker (or a sloppy client) might write.
const SEGMENTS: &[&str] = &[
    "scim",
    "SCIM",
    "%73cim",
    "sc%69m",
    "%73%63%69%6D",
    "v2",
    "%762",
    "V2",
    "v%32",
    "Users",
    "%55sers",
    "users",
    "Groups",
    "Gr%6fups",
    "Bulk",
    "Me",
    ".search",
    "Schemas",
    "ResourceTypes",
    "ServiceProviderConfig",
    "Serv%69ceProviderConfig",
    "healthz",
    "readyz",
    "metrics",
    "%68ealthz",
    "User",
    "x1",
    ".",
    "..",
    "%2e",
    "%2e%2e",
    ".%2E",
    "%2F",
    "%2f..%2f",
    "Users%2F..%2F",
    "%25",
    "a%2Bb",
    "",
];

/// A path: mostly the SCIM base in some spelling followed by segments, sometimes anything.
fn path_strategy() -> impl Strategy<Value = String> {
    let segment = proptest::sample::select(SEGMENTS);
    let separator = prop_oneof![4 => Just("/"), 1 => Just("//")];
    let base = (
        proptest::sample::select(&SEGMENTS[..5]),
        proptest::sample::select(&SEGMENTS[5..9]),
    )
        .prop_map(|(s, v)| vec![s, v]);
    let start = prop_oneof![3 => base, 1 => Just(Vec::new())];
    (
        start,
        proptest::collection::vec((separator.clone(), segment), 0..4),
        separator,
        any::<bool>(),
        proptest::option::of(Just("?attributes=id")),
    )
        .prop_map(|(start, rest, first, trailing, query)| {
            let mut path = String::new();
            for s in start {
                path.push_str(first);
                path.push_str(s);
            }
            for (sep, s) in rest {
                path.push_str(sep);
                path.push_str(s);
            }
            if path.is_empty() || trailing {
                path.push('/');
            }
            path.push_str(query.unwrap_or(""));
            path
        })
}

/// The path as actix routes it: percent-decoded except `/`, `%` and `+`, doubled slashes
/// merged, trailing slashes trimmed (`NormalizePath`).
fn routed_form(target: &str) -> String {
    let (path, query) = target
        .split_once('?')
        .map_or((target, None), |(p, q)| (p, Some(q)));
    let mut merged = path.trim_end_matches('/').to_string();
    while merged.contains("//") {
        merged = merged.replace("//", "/");
    }
    if merged.is_empty() {
        merged.push('/');
    }
    let bytes = merged.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&merged[i + 1..i + 3], 16)
            && !matches!(byte, b'/' | b'%' | b'+')
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let mut routed = String::from_utf8(out).unwrap();
    if let Some(query) = query {
        routed.push('?');
        routed.push_str(query);
    }
    routed
}

async fn route_and_token_requirement_agree_for_generated_paths(backend: Backend) {
    let Some(srv) = TestServer::start_with(backend, without_failure_limit).await else {
        return;
    };
    srv.create_user("bystander@example.com").await;
    let before = store_state(&srv).await;
    let public: Vec<String> = server::routes()
        .into_iter()
        .filter(|r| r.public)
        .map(|r| r.pattern)
        .collect();
    let protected: Vec<String> = server::routes()
        .into_iter()
        .filter(|r| !r.public)
        .map(|r| r.pattern)
        .collect();
    let (addr, token, metrics) = (srv.addr, srv.token.clone(), srv.metrics.clone());
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(128);
    let outcome = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let strategy = (path_strategy(), proptest::sample::select(&METHODS[..]));
        runner.run(&strategy, |(path, method)| {
            // Bodies that fail validation: a handler reached would answer, never write.
            let body = matches!(method, "POST" | "PUT" | "PATCH").then_some("{}");
            let send = |target: &str, token: Option<&str>| {
                let auth = token.map(|t| format!("Bearer {t}"));
                let headers: Vec<(&str, &str)> = auth
                    .as_deref()
                    .map(|a| vec![("Authorization", a)])
                    .unwrap_or_default();
                let counts = request_counts(&metrics);
                let reply = raw_request(addr, method, target, &headers, body);
                (reply, endpoint_between(&counts, &request_counts(&metrics)))
            };
            let (anonymous, anonymous_route) = send(&path, None);
            let (authenticated, route) = send(&path, Some(&token));
            let context = format!(
                "{method} {path}: anonymous {} at {anonymous_route}, with a token {} at {route}",
                anonymous.status, authenticated.status
            );
            // 501 is `/Me`'s answer; any other 5xx would be a bug.
            let sound = |status: u16| status < 500 || status == 501;
            prop_assert!(
                sound(anonymous.status) && sound(authenticated.status),
                "{context}"
            );
            prop_assert_ne!(authenticated.status, 401, "{}", context);
            if public.contains(&route) {
                // No token needed: the same route and answer either way.
                prop_assert_eq!(&anonymous_route, &route, "{}", context);
                prop_assert_eq!(anonymous.status, authenticated.status, "{}", context);
            } else {
                // A token needed (a protected route, or a path that is nothing): never served.
                prop_assert!([400, 401, 404].contains(&anonymous.status), "{}", context);
                if protected.contains(&route) {
                    prop_assert_eq!(anonymous.status, 401, "{}", context);
                }
            }
            // Routed exactly like its decoded form.
            let decoded = routed_form(&path);
            if decoded != path {
                let (_, decoded_route) = send(&decoded, Some(&token));
                prop_assert_eq!(&decoded_route, &route, "{} (decoded {})", context, decoded);
            }
            Ok::<(), TestCaseError>(())
        })
    })
    .await
    .unwrap();
    if let Err(e) = outcome {
        panic!("{e}");
    }
    assert_eq!(store_state(&srv).await, before, "nothing was written");
}

#[test]
fn the_routed_form_decodes_all_but_slash_percent_and_plus() {
    assert_eq!(routed_form("/%73cim/v2/%55sers"), "/scim/v2/Users");
    assert_eq!(routed_form("//scim//v2/Users/"), "/scim/v2/Users");
    assert_eq!(
        routed_form("/scim/v2/Users%2F..%2F"),
        "/scim/v2/Users%2F..%2F"
    );
    assert_eq!(routed_form("/scim/%2e%2e/a%2Bb%25"), "/scim/../a%2Bb%25");
    assert_eq!(routed_form("/?attributes=id"), "/?attributes=id");
}

/// Assert that `created` is a 201 located (header and `meta.location`) at `{base}/Users/{id}`,
/// and that the audit trail names `peer` as where the write came from.
async fn assert_created_at(srv: &TestServer, created: &Reply, base: &str, peer: &str) {
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap();
    let expected = format!("{base}/Users/{id}");
    assert_eq!(created.header("location"), Some(expected.as_str()));
    assert_eq!(created.body["meta"]["location"], expected);
    let audit = srv.store.audit().export(None).await.unwrap();
    assert_eq!(audit.last().unwrap().source_addr.as_deref(), Some(peer));
}
