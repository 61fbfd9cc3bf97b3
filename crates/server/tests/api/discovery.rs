//! Discovery endpoints: served without a token, truthful, GET only; snapshots of what IdPs read.

use crate::support::{Backend, TestServer};
use crate::{field_of_each, on_both_backends};
use reqwest::Method;

on_both_backends!(
    discovery_documents_are_public_and_truthful,
    discovery_is_get_only,
    unknown_paths_and_me
);

async fn discovery_documents_are_public_and_truthful(backend: Backend) {
    let Some(srv) = TestServer::start_with(backend, |c| {
        c.bulk_max_operations = 50;
        c.bulk_max_payload_bytes = 65536;
    })
    .await
    else {
        return;
    };
    // No Authorization header at all.
    let spc = srv.get_anonymous("/ServiceProviderConfig").await;
    assert_eq!(spc.status, 200, "{}", spc.text);
    assert_eq!(spc.header("content-type"), Some(server::SCIM_CONTENT_TYPE));
    assert_eq!(spc.body["bulk"]["maxOperations"], 50);
    assert_eq!(spc.body["bulk"]["maxPayloadSize"], 65536);
    for (feature, supported) in [
        ("patch", true),
        ("bulk", true),
        ("filter", true),
        ("changePassword", false),
        ("sort", true),
        ("etag", true),
    ] {
        assert_eq!(spc.body[feature]["supported"], supported, "{feature}");
    }
    assert_eq!(
        spc.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );
    insta::assert_json_snapshot!("service_provider_config", srv.redact(&spc.body, &[]));

    let types = srv.get_anonymous("/ResourceTypes").await;
    assert_eq!(types.status, 200);
    assert_eq!(types.body["totalResults"], 4);
    insta::assert_json_snapshot!("resource_types", srv.redact(&types.body, &[]));
    let user_type = srv.get_anonymous("/ResourceTypes/User").await;
    assert_eq!(user_type.body["endpoint"], "/Users");
    assert_eq!(
        user_type.body["schemaExtensions"][0]["schema"],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    );
    srv.get_anonymous("/ResourceTypes/Widget")
        .await
        .assert_error(404, None);

    let schemas = srv.get_anonymous("/Schemas").await;
    assert_eq!(schemas.status, 200);
    let ids = field_of_each(&schemas.body["Resources"], "id");
    assert!(
        ids.contains(&"urn:ietf:params:scim:schemas:core:2.0:User"),
        "{ids:?}"
    );
    assert!(
        ids.contains(&"urn:ietf:params:scim:schemas:core:2.0:Group"),
        "{ids:?}"
    );
    assert!(
        ids.contains(&"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
        "{ids:?}"
    );
    for agent_schema in [
        "urn:ietf:params:scim:schemas:core:2.0:Agent",
        "urn:ietf:params:scim:schemas:core:2.0:AgenticApplication",
    ] {
        assert!(ids.contains(&agent_schema), "{ids:?}");
    }
    let user_schema = srv
        .get_anonymous("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await;
    assert_eq!(user_schema.status, 200);
    assert_eq!(
        user_schema.body["meta"]["location"],
        format!(
            "{}/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
            srv.base
        )
    );
    srv.get_anonymous("/Schemas/urn:example:nothing")
        .await
        .assert_error(404, None);
}

async fn discovery_is_get_only(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    for path in [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/Schemas",
    ] {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let reply = srv
                .call(method.clone(), path, Some(&serde_json::json!({})))
                .await;
            reply.assert_error(405, None);
        }
    }
    // The collection endpoints take GET and POST only.
    srv.call(Method::DELETE, "/Users", None)
        .await
        .assert_error(405, None);
    srv.call(Method::PUT, "/Groups", Some(&serde_json::json!({})))
        .await
        .assert_error(405, None);
    srv.call(Method::GET, "/Bulk", None)
        .await
        .assert_error(405, None);
    srv.call(Method::GET, "/Users/.search", None)
        .await
        .assert_error(405, None);
}

async fn unknown_paths_and_me(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let reply = srv.get("/Widgets").await;
    reply.assert_error(404, None);
    insta::assert_json_snapshot!("error_not_found", srv.redact(&reply.body, &[]));
    srv.get("/Users/not-an-id").await.assert_error(404, None);
    srv.get_anonymous(&format!("{}/nothing-here", srv.root))
        .await
        .assert_error(404, None);
    // RFC 7644 §3.11: /Me is not supported by a machine-token bridge.
    srv.get("/Me").await.assert_error(501, None);
    srv.call(Method::POST, "/Me", Some(&serde_json::json!({})))
        .await
        .assert_error(501, None);
}
