//! Operations endpoints outside the SCIM base, served without a token: `/healthz` (the process
//! answers), `/readyz` (it can do its job) and `/metrics` (Prometheus text).

use crate::state::AppState;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// Liveness: the process serves HTTP. Checks nothing else, so a database outage does not get
/// the pod restarted.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// What `/readyz` may be asked.
#[derive(Debug, serde::Deserialize)]
pub struct ReadyzQuery {
    /// `optional`: Coder's state is reported but does not fail the check. Kubernetes uses this
    /// for its readiness probe: SCIM writes are stored and queued while Coder is down, so a
    /// Coder outage must not take the bridge out of its Service.
    coder: Option<String>,
}

/// Readiness: the database answers, its migrations are current, and Coder is reachable and
/// accepts the bridge's token (as the worker's probe reports). 503 when any is not.
pub async fn readyz(state: web::Data<AppState>, query: web::Query<ReadyzQuery>) -> HttpResponse {
    let coder_required = !query
        .coder
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("optional"));
    let database = state.store.ping().await;
    let migrations = match &database {
        Ok(()) => state
            .store
            .migrations_current()
            .await
            .map_err(|e| e.to_string()),
        Err(_) => Err("the database is unreachable".to_string()),
    };
    let coder = state.readiness.coder().await;
    let database_ok = database.is_ok();
    let migrations_ok = matches!(migrations, Ok(true));
    let ready = database_ok && migrations_ok && (coder.ready || !coder_required);
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "database": {
                "ok": database_ok,
                "backend": state.store.backend_name(),
                "detail": database.err().map(|e| e.to_string()),
            },
            "migrations": {
                "ok": migrations_ok,
                "detail": match migrations {
                    Ok(true) => None,
                    Ok(false) => Some("the database schema is not at this version's migrations".to_string()),
                    Err(e) => Some(e),
                },
            },
            "coder": {"ok": coder.ready, "required": coder_required, "detail": coder.detail},
        },
        "warnings": coder.warnings,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The metrics, with the outbox gauges refreshed from the store so they are current even when
/// no worker runs in this process.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.store.outbox_stats().await {
        Ok(stats) => state.metrics.set_outbox(&stats),
        Err(e) => tracing::warn!(error = %e, "could not read the outbox statistics for /metrics"),
    }
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ))
        .body(state.metrics.render())
}
