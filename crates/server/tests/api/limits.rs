//! The body size limit: 413 for a declared Content-Length and for a chunked body that grows
//! past the limit, with nothing written.

use crate::support::{Backend, TestServer};
use crate::{on_both_backends, user_body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_backends!(
    oversized_bodies_are_413,
    a_patch_over_the_operation_limit_is_too_many
);

const LIMIT: usize = 2048;

async fn oversized_bodies_are_413(backend: Backend) {
    let Some(srv) = TestServer::start_with(backend, |c| c.max_body_bytes = LIMIT).await else {
        return;
    };
    let mut body = user_body("big@example.com");
    body["displayName"] = serde_json::json!("x".repeat(LIMIT));
    let declared = srv.post("/Users", &body).await;
    declared.assert_error(413, None);

    // A chunked body declares no length: it is cut off once it passes the limit.
    let mut stream = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/scim+json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        srv.addr, srv.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let text = body.to_string();
    for chunk in text.as_bytes().chunks(512) {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    // The server may answer and close before the terminating chunk; either is fine.
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("application/scim+json"), "{response}");
    assert!(response.contains("\"status\":\"413\""), "{response}");

    assert_eq!(
        srv.get("/Users").await.body["totalResults"],
        0,
        "nothing was written"
    );
    // Under the limit is fine.
    srv.post("/Users", &user_body("small@example.com"))
        .await
        .assert_status(201);
}

/// A PATCH names how many operations it carries; beyond `scim::patch::MAX_OPERATIONS` it is
/// 400 `tooMany` and nothing is applied. Members in one operation's `value` do not count.
async fn a_patch_over_the_operation_limit_is_too_many(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let user = srv.create_user("many@example.com").await;
    let patch = |n: usize, title: &str| {
        let op = serde_json::json!({"op": "replace", "path": "title", "value": title});
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": vec![op; n],
        })
    };
    let path = format!("/Users/{user}");
    let over = srv
        .patch(&path, &patch(scim::patch::MAX_OPERATIONS + 1, "over"))
        .await;
    over.assert_error(400, Some("tooMany"));
    assert!(
        over.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&scim::patch::MAX_OPERATIONS.to_string())),
        "{}",
        over.text
    );
    assert!(
        srv.get(&path).await.body.get("title").is_none(),
        "nothing applied"
    );

    let at = srv
        .patch(&path, &patch(scim::patch::MAX_OPERATIONS, "at"))
        .await;
    assert_eq!(at.status, 200, "{}", at.text);
    assert_eq!(srv.get(&path).await.body["title"], "at");
}
