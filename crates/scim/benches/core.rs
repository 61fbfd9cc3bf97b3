//! Protocol-core benchmarks; numbers and the command are in `docs/BENCHMARKS.md`.
//!
//! Targets: parse + evaluate `userName eq "x"` against a realistic user under 2 µs; a
//! 30-operation Entra PATCH under 50 µs. The response bodies of a user and of a 50,000-member
//! group are measured too (no target: they guard the path a `GET` takes).

// A benchmark whose set-up does not do what it claims must stop, not report a number.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use scim::filter::{self, eval::matches};
use scim::patch::{self, PatchOptions, PatchRequest};
use scim::projection::Projection;
use scim::record::{Member, StoredResource};
use scim::{Registry, ResourceKind, render};
use serde_json::{Map, Value, json};

const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A user as Entra provisions one: core attributes, several emails and roles, the extension.
fn realistic_user() -> Map<String, Value> {
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Barbara.Jensen@contoso.com",
        "name": {"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "active": true,
        "emails": [
            {"value": "Barbara.Jensen@contoso.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}, {"value": "555-555-4444", "type": "mobile"}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
                       "region": "CA", "postalCode": "91608", "country": "USA", "primary": true}],
        "roles": [{"value": "reader", "type": "WindowsAzureActiveDirectoryRole", "primary": true}],
        EXT: {"employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios",
              "division": "Theme Park", "department": "Tour Operations", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}},
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"}
    });
    user.as_object().cloned().unwrap_or_default()
}

/// 30 operations in Entra's shapes (without and with aadOptscim062020).
fn entra_patch_30() -> Value {
    let ops = json!([
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Replace", "path": "displayName", "value": "Barbara Jensen"},
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "bjensen@contoso.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Barbara"},
        {"op": "Replace", "path": "name.familyName", "value": "Jensen-Smith"},
        {"op": "Replace", "path": format!("{EXT}:employeeNumber"), "value": "701985"},
        {"op": "Replace", "path": format!("{EXT}:department"), "value": "Tours"},
        {"op": "replace", "value": {"displayName": "Babs", "name.givenName": "Babs", "name.familyName": "Jensen",
                                    format!("{EXT}:costCenter"): "4131", format!("{EXT}:division"): "Parks"}},
        {"op": "Add", "path": "nickName", "value": "Babs"},
        {"op": "Add", "path": "title", "value": "Senior Tour Guide"},
        {"op": "Replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "555-555-0000"},
        {"op": "Replace", "path": "phoneNumbers[type eq \"fax\"].value", "value": "555-555-1111"},
        {"op": "Replace", "path": "addresses[type eq \"work\"].locality", "value": "Burbank"},
        {"op": "Replace", "path": "addresses[type eq \"work\"].postalCode", "value": "91505"},
        {"op": "Add", "path": "roles", "value": [{"value": "writer", "type": "WindowsAzureActiveDirectoryRole", "primary": "True"}]},
        {"op": "Add", "path": "roles", "value": [{"value": "auditor", "type": "WindowsAzureActiveDirectoryRole"}]},
        {"op": "Remove", "path": "roles[value eq \"reader\"]"},
        {"op": "Add", "path": "entitlements", "value": [{"value": "coder-template-admin"}]},
        {"op": "Add", "path": "entitlements", "value": [{"value": "coder-template-admin"}]},
        {"op": "Remove", "path": "entitlements", "value": [{"value": "absent"}]},
        {"op": "Replace", "path": "manager", "value": "8fa0b6c1-6a3f-4f7d-8fd1-0f5e8c2b9d11"},
        {"op": "Replace", "path": "emails[type eq \"home\"].primary", "value": "False"},
        {"op": "Add", "path": "emails", "value": [{"value": "b.jensen@example.org", "type": "other"}]},
        {"op": "Replace", "path": "preferredLanguage", "value": "en-GB"},
        {"op": "Replace", "path": "locale", "value": "en-GB"},
        {"op": "Replace", "path": "timezone", "value": "Europe/London"},
        {"op": "Replace", "path": "userType", "value": "Employee"},
        {"op": "Remove", "path": "phoneNumbers[type eq \"mobile\"]"},
        {"op": "Replace", "path": "externalId", "value": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ee"},
        {"op": "Replace", "path": "active", "value": "True"}
    ]);
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn filter_bench(c: &mut Criterion) {
    let registry = Registry::standard();
    let user = realistic_user();
    let text = "userName eq \"barbara.jensen@contoso.com\"";
    // The benchmark must measure a match, not an early miss.
    let parsed = filter::parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches(&parsed, &user, ResourceKind::User, registry));

    c.bench_function("filter: parse + evaluate userName eq", |b| {
        b.iter(|| {
            let f = filter::parse(black_box(text)).unwrap_or_else(|e| panic!("{e}"));
            black_box(matches(&f, black_box(&user), ResourceKind::User, registry))
        })
    });
}

fn patch_bench(c: &mut Criterion) {
    let registry = Registry::standard();
    let user = realistic_user();
    let body = entra_patch_30();
    let opts = PatchOptions::default();
    let apply = |request: &PatchRequest| {
        patch::apply(
            ResourceKind::User,
            black_box(&user),
            request,
            registry,
            &opts,
        )
    };
    let request = patch::parse_request(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(request.operations.len(), 30);
    let result = apply(&request).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result["active"], true);

    c.bench_function("patch: parse + apply 30-op Entra PATCH", |b| {
        b.iter(|| {
            let request = patch::parse_request(black_box(&body)).unwrap_or_else(|e| panic!("{e}"));
            black_box(apply(&request))
        })
    });
    c.bench_function("patch: apply 30-op Entra PATCH (pre-parsed)", |b| {
        b.iter(|| black_box(apply(&request)))
    });
}

fn stored(
    kind: ResourceKind,
    attrs: Map<String, Value>,
    members: Option<Vec<Member>>,
) -> StoredResource {
    let at = chrono::DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
        .unwrap()
        .to_utc();
    StoredResource {
        kind,
        id: "0b6f3c1e-6a43-4f7e-9d7a-3f1c2b8e5a10".into(),
        attrs,
        version: 7,
        created: at,
        last_modified: at,
        members,
        groups: None,
    }
}

fn render_bench(c: &mut Criterion) {
    let registry = Registry::standard();
    let base = "https://scim.example.com/scim/v2";
    let all = Projection::parse(None, None).unwrap_or_else(|e| panic!("{e}"));
    let user = stored(ResourceKind::User, realistic_user(), None);
    let members = (0..50_000)
        .map(|n| Member {
            value: format!("00000000-0000-4000-8000-{n:012}"),
            kind: ResourceKind::User,
            display: Some(format!("user{n}@contoso.com")),
        })
        .collect();
    let attrs = json!({"displayName": "Engineering", "externalId": "e-1"});
    let group = stored(
        ResourceKind::Group,
        attrs.as_object().cloned().unwrap(),
        Some(members),
    );
    // The body must hold every member, not an early empty answer.
    let body = serde_json::to_vec(&render::projected(registry, &group, base, &all)).unwrap();
    assert!(body.len() > 50_000 * 100, "{} bytes", body.len());

    c.bench_function("render: realistic user, projected and serialised", |b| {
        b.iter(|| {
            let rendered = render::projected(registry, black_box(&user), base, &all);
            black_box(serde_json::to_vec(&rendered).unwrap())
        })
    });
    c.bench_function(
        "render: 50,000-member group, projected and serialised",
        |b| {
            b.iter(|| {
                let rendered = render::projected(registry, black_box(&group), base, &all);
                black_box(serde_json::to_vec(&rendered).unwrap())
            })
        },
    );
}

criterion_group!(benches, filter_bench, patch_bench, render_bench);
criterion_main!(benches);
