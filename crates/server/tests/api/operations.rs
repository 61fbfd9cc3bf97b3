//! `/healthz`, `/readyz` (with the Coder probe) and `/metrics`, and a graceful stop.

use crate::on_both_backends;
use crate::support::{Backend, TestServer};
use clock::Clock as _;
use futures::future::BoxFuture;
use server::{CoderReadiness, ReadinessProbe};
use std::sync::Arc;

on_both_backends!(
    health_and_readiness,
    metrics_are_exposed,
    probes_in_a_loop_read_the_store_once_per_interval,
    graceful_stop_finishes_and_refuses
);

/// Coder answering 401: the worker is paused and the bridge is not ready.
struct CoderRefusesToken;

impl ReadinessProbe for CoderRefusesToken {
    fn coder(&self) -> BoxFuture<'_, CoderReadiness> {
        Box::pin(async {
            CoderReadiness {
                ready: false,
                detail: "Coder answered 401 to the bridge's token".into(),
                warnings: vec!["the Coder token expires in 2 days".into()],
            }
        })
    }
}

async fn health_and_readiness(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let health = srv.get_anonymous(&format!("{}/healthz", srv.root)).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok");
    // Without a credential, or with a bad one: the bare status, no internal detail.
    for bare in [
        srv.client.get(format!("{}/readyz", srv.root)),
        srv.client
            .get(format!("{}/readyz", srv.root))
            .bearer_auth("scimb_not-a-real-token"),
    ] {
        let bare = srv.send(bare).await;
        assert_eq!(bare.status, 200, "{}", bare.text);
        assert_eq!(
            bare.body,
            serde_json::json!({"status": "ready"}),
            "{}",
            bare.text
        );
    }
    let ready = srv.get(&format!("{}/readyz", srv.root)).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["checks"]["database"]["ok"], true);
    assert_eq!(ready.body["checks"]["migrations"]["ok"], true);
    let backend_name = if backend == Backend::Sqlite {
        "sqlite"
    } else {
        "postgres"
    };
    assert_eq!(ready.body["checks"]["database"]["backend"], backend_name);
    assert!(
        ready.body["warnings"][0]
            .as_str()
            .unwrap()
            .contains("Coder"),
        "no Coder configured is a warning"
    );
    drop(srv);

    let Some(srv) = TestServer::start_with_readiness(backend, Arc::new(CoderRefusesToken)).await
    else {
        return;
    };
    let bare = srv.get_anonymous(&format!("{}/readyz", srv.root)).await;
    assert_eq!(
        bare.status, 503,
        "the status code tells the truth without a token"
    );
    assert_eq!(bare.body, serde_json::json!({"status": "not ready"}));
    let not_ready = srv.get(&format!("{}/readyz", srv.root)).await;
    assert_eq!(not_ready.status, 503, "{}", not_ready.text);
    assert_eq!(not_ready.body["status"], "not ready");
    assert_eq!(not_ready.body["checks"]["coder"]["ok"], false);
    assert_eq!(
        not_ready.body["warnings"][0],
        "the Coder token expires in 2 days"
    );
    // Kubernetes' readiness probe keeps the bridge in its Service while Coder is down: SCIM
    // writes are stored and queued meanwhile.
    let local = srv
        .get(&format!("{}/readyz?coder=optional", srv.root))
        .await;
    assert_eq!(local.status, 200, "{}", local.text);
    assert_eq!(
        local.body["checks"]["coder"]["ok"], false,
        "Coder's state is still reported"
    );
    assert_eq!(local.body["checks"]["coder"]["required"], false);
    // Liveness does not depend on Coder.
    srv.get_anonymous(&format!("{}/healthz", srv.root))
        .await
        .assert_status(200);
}

async fn metrics_are_exposed(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let id = srv.create_user("metrics@example.com").await;
    srv.get(&format!("/Users/{id}")).await;
    srv.get("/Users/no-such-user").await;
    let metrics = srv.get_anonymous(&format!("{}/metrics", srv.root)).await;
    assert_eq!(metrics.status, 200);
    let text = &metrics.text;
    assert!(
        text.contains(r#"scim_bridge_http_requests_total{endpoint="/scim/v2/Users",method="POST",status="201"} 1"#),
        "{text}"
    );
    // Route patterns, never raw ids, label the requests.
    assert!(
        text.contains(r#"endpoint="/scim/v2/Users/{id}",method="GET",status="404""#),
        "{text}"
    );
    assert!(!text.contains(&id), "no resource id in a label");
    assert!(
        text.contains("scim_bridge_http_request_duration_seconds_bucket"),
        "{text}"
    );
    // The POST queued one outbox row (no worker runs here).
    assert!(text.contains("scim_bridge_outbox_depth 1"), "{text}");
    // Families the worker records are declared even before their first sample.
    for family in [
        "scim_bridge_coder_requests counter",
        "scim_bridge_coder_auth_ok gauge",
        "scim_bridge_offboarding_duration_seconds histogram",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family}")),
            "{family} in {text}"
        );
    }
}

async fn graceful_stop_finishes_and_refuses(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    assert_eq!(srv.get("/Users").await.status, 200);
    srv.handle.stop(true).await;
    let after = srv
        .client
        .get(srv.url("/Users"))
        .bearer_auth(&srv.token)
        .send()
        .await;
    assert!(after.is_err(), "a stopped server accepts no connection");
}

/// `/readyz` and `/metrics` called in a loop (a scraper misconfigured, or anyone on the network)
/// read the store once per 5 s, not once per call: `scim_bridge_ops_store_reads_total` counts.
async fn probes_in_a_loop_read_the_store_once_per_interval(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let started = clock::SystemClock.instant();
    let calls = 60;
    for n in 0..calls {
        let path = if n % 2 == 0 { "readyz" } else { "metrics" };
        let reply = srv.get_anonymous(&format!("{}/{path}", srv.root)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let text = srv
        .get_anonymous(&format!("{}/metrics", srv.root))
        .await
        .text;
    let reads: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("scim_bridge_ops_store_reads_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no read counter in {text}"));
    // One read per started 5 s interval (the loop takes well under a second unless the machine
    // is very busy).
    let intervals = clock::SystemClock.elapsed(started).as_secs() / 5 + 1;
    assert!(
        (1..=intervals).contains(&reads),
        "{reads} store reads for {} calls in {:?}",
        calls + 1,
        clock::SystemClock.elapsed(started)
    );
}
