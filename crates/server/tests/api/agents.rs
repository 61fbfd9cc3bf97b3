//! `/Agents` and `/AgenticApplications`: the agent drafts' resource types with the same CRUD,
//! filter, PATCH, ETag and paging semantics as Users, in discovery, and as Group members.

use crate::support::{Backend, TestServer};
use crate::{field_of_each, on_both_backends, patch_op};
use serde_json::{Value, json};

on_both_backends!(
    agent_lifecycle_as_the_probe_runs_it,
    agent_names_are_unique_ignoring_case,
    agents_filter_and_page,
    bad_agents_are_4xx_never_500,
    agentic_application_lifecycle,
    agents_are_group_members_applications_are_not,
    discovery_serves_the_agent_types,
);

const AGENT: &str = "urn:ietf:params:scim:schemas:core:2.0:Agent";
const APPLICATION: &str = "urn:ietf:params:scim:schemas:core:2.0:AgenticApplication";

fn agent(name: &str) -> Value {
    json!({"schemas": [AGENT], "name": name, "displayName": format!("Agent {name}"), "active": true})
}

async fn agent_lifecycle_as_the_probe_runs_it(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let mut body = agent("review-bot");
    body["owners"] = json!([{"value": "2819c223-7f76-453a-919d-413861904646", "display": "Babs"}]);
    body["protocols"] =
        json!([{"type": "MCP-Server", "specificationUrl": "https://example.com/mcp"}]);
    let created = srv.post("/Agents", &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    let location = format!("{}/Agents/{id}", srv.base);
    assert_eq!(created.header("location"), Some(location.as_str()));
    assert_eq!(created.body["meta"]["resourceType"], "Agent");
    assert_eq!(created.body["schemas"], json!([AGENT]));
    assert_eq!(created.body["owners"][0]["display"], "Babs");
    assert_eq!(created.body["protocols"][0]["type"], "MCP-Server");
    let etag = created.header("etag").unwrap().to_string();

    let read = srv.get(&format!("/Agents/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.header("etag"), Some(etag.as_str()));
    let unchanged = srv.get_if_none_match(&format!("/Agents/{id}"), &etag).await;
    assert_eq!(unchanged.status, 304);

    // PUT: the GET body without meta, a new displayName.
    let mut put = read.body.clone();
    put.as_object_mut().unwrap().remove("meta");
    put["displayName"] = json!("Updated");
    let stale = srv
        .put_if_match(&format!("/Agents/{id}"), "W/\"999\"", &put)
        .await;
    stale.assert_error(412, None);
    let replaced = srv.put(&format!("/Agents/{id}"), &put).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(
        srv.get(&format!("/Agents/{id}")).await.body["displayName"],
        "Updated"
    );
    assert_eq!(replaced.body["protocols"], read.body["protocols"]);

    let patched = srv
        .patch(
            &format!("/Agents/{id}"),
            &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["active"], false);
    assert_eq!(
        srv.get(&format!("/Agents/{id}")).await.body["active"],
        false
    );

    assert_eq!(srv.delete(&format!("/Agents/{id}")).await.status, 204);
    srv.get(&format!("/Agents/{id}"))
        .await
        .assert_error(404, None);
}

async fn agent_names_are_unique_ignoring_case(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    assert_eq!(srv.post("/Agents", &agent("Helper")).await.status, 201);
    srv.post("/Agents", &agent("helper"))
        .await
        .assert_error(409, Some("uniqueness"));
    // draft-wzdk's agentUserName and draft-abbey's name are one name space.
    let wzdk = json!({"schemas": [AGENT], "agentUserName": "HELPER"});
    srv.post("/Agents", &wzdk)
        .await
        .assert_error(409, Some("uniqueness"));
    // A User of that name is another resource type.
    let user = crate::user_body("helper");
    assert_eq!(srv.post("/Users", &user).await.status, 201);
}

async fn agents_filter_and_page(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    for name in ["a-bot", "b-bot", "c-bot"] {
        let mut body = agent(name);
        body["externalId"] = json!(format!("ext-{name}"));
        assert_eq!(srv.post("/Agents", &body).await.status, 201);
    }
    let by_name = srv.get_filtered("/Agents", "name eq \"B-BOT\"").await;
    assert_eq!(by_name.status, 200, "{}", by_name.text);
    assert_eq!(by_name.body["totalResults"], 1);
    assert_eq!(by_name.body["Resources"][0]["name"], "b-bot");
    let by_external = srv
        .get_filtered("/Agents", "externalId eq \"ext-c-bot\"")
        .await;
    assert_eq!(by_external.body["Resources"][0]["name"], "c-bot");
    let page = srv.get("/Agents?startIndex=2&count=1&sortBy=name").await;
    assert_eq!(page.body["totalResults"], 3);
    assert_eq!(page.body["itemsPerPage"], 1);
    assert_eq!(page.body["startIndex"], 2);
    assert_eq!(page.body["Resources"][0]["name"], "b-bot");
    // count=0 gives only the total, as for Users.
    let totals = srv.get("/Agents?count=0").await;
    assert_eq!(totals.body["totalResults"], 3);
    assert!(totals.body.get("Resources").is_none_or(|r| r == &json!([])));
    // Users are not listed as agents, nor agents as users.
    assert_eq!(srv.get("/Users").await.body["totalResults"], 0);
}

async fn bad_agents_are_4xx_never_500(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    srv.post(
        "/Agents",
        &json!({"schemas": [AGENT], "displayName": "no name"}),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    srv.post("/Agents", &crate::user_body("bjensen"))
        .await
        .assert_error(400, Some("invalidValue"));
    srv.post(
        "/Agents",
        &json!({"schemas": [AGENT], "name": "x", "active": "maybe"}),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    let created = srv.post("/Agents", &agent("ok-bot")).await;
    let id = created.body["id"].as_str().unwrap();
    srv.patch(
        &format!("/Agents/{id}"),
        &patch_op(json!([{"op": "remove", "path": "name"}])),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    srv.get_filtered("/Agents", "name eq")
        .await
        .assert_error(400, Some("invalidFilter"));
}

async fn agentic_application_lifecycle(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let body = json!({"schemas": [APPLICATION], "name": "assistant-platform", "displayName": "Assistants", "active": true});
    let created = srv.post("/AgenticApplications", &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["meta"]["resourceType"], "AgenticApplication");
    let id = created.body["id"].as_str().unwrap();
    let patched = srv
        .patch(
            &format!("/AgenticApplications/{id}"),
            &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    assert_eq!(patched.body["active"], false);
    srv.post("/AgenticApplications", &body)
        .await
        .assert_error(409, Some("uniqueness"));
    srv.post("/AgenticApplications", &json!({"schemas": [APPLICATION]}))
        .await
        .assert_error(400, Some("invalidValue"));
    srv.delete(&format!("/AgenticApplications/{id}"))
        .await
        .assert_status(204);
}

async fn agents_are_group_members_applications_are_not(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let agent_id = srv.post("/Agents", &agent("ci-bot")).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let group_id = srv.create_group("Builders", &[&agent_id]).await;
    let group = srv.get(&format!("/Groups/{group_id}")).await;
    assert_eq!(group.body["members"][0]["type"], "Agent");
    assert_eq!(
        group.body["members"][0]["$ref"],
        format!("{}/Agents/{agent_id}", srv.base)
    );
    let read = srv.get(&format!("/Agents/{agent_id}")).await;
    assert_eq!(read.body["groups"][0]["value"], group_id);
    let app = srv
        .post(
            "/AgenticApplications",
            &json!({"schemas": [APPLICATION], "name": "platform"}),
        )
        .await;
    let app_id = app.body["id"].as_str().unwrap();
    srv.patch(
        &format!("/Groups/{group_id}"),
        &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": app_id}]}])),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    // Deleting the agent takes it out of the group.
    assert_eq!(srv.delete(&format!("/Agents/{agent_id}")).await.status, 204);
    let group = srv.get(&format!("/Groups/{group_id}")).await;
    assert_eq!(
        group.body.get("members").cloned().unwrap_or(json!([])),
        json!([])
    );
}

async fn discovery_serves_the_agent_types(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let types = srv.get("/ResourceTypes").await;
    let names = field_of_each(&types.body["Resources"], "name");
    assert_eq!(names, ["User", "Group", "Agent", "AgenticApplication"]);
    let agent_type = srv.get("/ResourceTypes/Agent").await;
    assert_eq!(agent_type.body["endpoint"], "/Agents");
    assert_eq!(agent_type.body["schema"], AGENT);
    let schema = srv.get(&format!("/Schemas/{AGENT}")).await;
    assert_eq!(schema.status, 200, "{}", schema.text);
    let attributes = field_of_each(&schema.body["attributes"], "name");
    for name in [
        "agentUserName",
        "name",
        "displayName",
        "description",
        "active",
        "owners",
    ] {
        assert!(attributes.contains(&name), "{name} in {attributes:?}");
    }
    srv.get(&format!("/Schemas/{APPLICATION}"))
        .await
        .assert_status(200);
}
