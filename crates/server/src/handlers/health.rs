//! Operations endpoints outside the SCIM base, served without a token: `/healthz` (the process
//! answers), `/readyz` (it can do its job) and `/metrics` (Prometheus text).

use crate::edge::admit;
use crate::request::RequestContext;
use crate::state::AppState;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

/// How long `/metrics` and `/readyz` reuse what they last read from the store: however often a
/// scraper, a probe or anyone else calls them, the database sees one round of reads per interval.
pub const OPS_CACHE_TTL: Duration = Duration::from_secs(5);

/// The store's side of the operations endpoints, as last read.
#[derive(Debug, Clone)]
struct StoreFigures {
    database: Result<(), String>,
    migrations: Result<bool, String>,
    outbox: Option<store::OutboxStats>,
    /// Each unrevoked IdP token that expires: its name and expiry (Unix time).
    token_expiries: Option<Vec<(String, i64)>>,
}

/// The last [`StoreFigures`] and when they were read. Callers wait on the lock while one of
/// them refreshes it, so a burst of calls costs one refresh.
#[derive(Debug, Default)]
pub struct OpsCache(tokio::sync::Mutex<Option<(Instant, StoreFigures)>>);

async fn store_figures(state: &AppState) -> StoreFigures {
    let mut cached = state.ops_cache.0.lock().await;
    if let Some((at, figures)) = cached.as_ref()
        && state.clock.elapsed(*at) < OPS_CACHE_TTL
    {
        return figures.clone();
    }
    state.metrics.inc_ops_store_reads();
    let database = state.health.ping().await.map_err(|e| e.to_string());
    let migrations = match &database {
        Ok(()) => state
            .health
            .migrations_current()
            .await
            .map_err(|e| e.to_string()),
        Err(_) => Err("the database is unreachable".to_string()),
    };
    let outbox = match state.outbox.stats().await {
        Ok(stats) => Some(stats),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the outbox statistics for /metrics");
            None
        }
    };
    let token_expiries = match state.tokens.list().await {
        Ok(tokens) => Some(
            tokens
                .into_iter()
                .filter(|t| t.revoked_at.is_none())
                .filter_map(|t| Some((t.name, t.expires_at?.timestamp())))
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the tokens' expiry for /metrics");
            None
        }
    };
    let figures = StoreFigures {
        database,
        migrations,
        outbox,
        token_expiries,
    };
    *cached = Some((state.clock.instant(), figures.clone()));
    figures
}

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
/// accepts the bridge's token (as the worker's probe reports). 503 when any is not. The checks,
/// their details and the warnings are shown only to a caller with a valid bridge credential;
/// anyone else (a load balancer's probe) gets the bare status.
pub async fn readyz(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ReadyzQuery>,
) -> HttpResponse {
    let coder_required = !query
        .coder
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("optional"));
    let StoreFigures {
        database,
        migrations,
        ..
    } = store_figures(&state).await;
    let coder = state.readiness.coder().await;
    let database_ok = database.is_ok();
    let migrations_ok = matches!(migrations, Ok(true));
    let ready = database_ok && migrations_ok && (coder.ready || !coder_required);
    let status = if ready { "ready" } else { "not ready" };
    let respond = |body| {
        if ready {
            HttpResponse::Ok().json(body)
        } else {
            HttpResponse::ServiceUnavailable().json(body)
        }
    };
    // Only a request that offers a credential is checked, so probes without one are not
    // counted as failed authentications.
    let offers_credential = req.headers().contains_key(AUTHORIZATION);
    let client_addr = req
        .extensions()
        .get::<RequestContext>()
        .and_then(|ctx| ctx.client_addr);
    if !offers_credential || admit(&state, &req, client_addr).await.is_err() {
        return respond(json!({ "status": status }));
    }
    let body = json!({
        "status": status,
        "checks": {
            "database": {
                "ok": database_ok,
                "backend": state.health.backend_name(),
                "detail": database.err(),
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
    respond(body)
}

/// The metrics, with the outbox gauges from the store (at most [`OPS_CACHE_TTL`] old) so they
/// are current even when no worker runs in this process.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let figures = store_figures(&state).await;
    if let Some(stats) = figures.outbox {
        state.metrics.set_outbox(&stats);
    }
    if let Some(expiries) = figures.token_expiries {
        state.metrics.set_token_expiries("idp", &expiries);
    }
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ))
        .body(state.metrics.render())
}
