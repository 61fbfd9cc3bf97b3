//! The middleware every request passes: request id, tracing span, authentication, the per-token
//! rate limit, and the HTTP metrics.

use crate::SCIM_BASE_PATH;
use crate::error::ApiError;
use crate::request::RequestContext;
use crate::state::AppState;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use std::time::Instant;
use tracing::Instrument;

/// The request id header, taken from the client (or a proxy) and returned.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn edge(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| valid_request_id(id))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_string);
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        path = %req.path(),
        token = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let state = req.app_data::<web::Data<AppState>>().cloned();
    async move {
        let mut ctx = RequestContext {
            request_id: request_id.clone(),
            principal: None,
            peer: req.peer_addr().map(|a| a.ip().to_string()),
        };
        let mut response = match (&state, needs_token(req.path())) {
            (Some(state), true) => match admit(state, &req).await {
                Ok(principal) => {
                    tracing::Span::current().record("token", principal.name.as_str());
                    ctx.principal = Some(principal);
                    req.extensions_mut().insert(ctx);
                    next.call(req).await?
                }
                Err(e) => req.into_response(e.error_response()),
            },
            _ => {
                req.extensions_mut().insert(ctx);
                next.call(req).await?
            }
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        let status = response.status().as_u16();
        tracing::Span::current().record("status", status);
        let endpoint = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let seconds = started.elapsed().as_secs_f64();
        if let Some(state) = &state {
            state
                .metrics
                .record_http(&endpoint, &method, status, seconds);
        }
        // Changes are logged by default (with the span's request id and token name); reads,
        // the bulk of IdP traffic, only at debug.
        if method == "GET" || method == "HEAD" {
            tracing::debug!(status, elapsed_ms = seconds * 1000.0, "request served");
        } else {
            tracing::info!(status, elapsed_ms = seconds * 1000.0, "request served");
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

/// Authenticate, then take one request from the caller's rate limit.
async fn admit(state: &AppState, req: &ServiceRequest) -> Result<crate::auth::Principal, ApiError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = state.auth.authenticate(header).await?;
    state.limiter.check(&principal.name)?;
    Ok(principal)
}

/// Everything under the SCIM base needs a token except discovery (RFC 7644 §4: the service
/// provider configuration endpoints may be served without authentication). Paths outside the
/// base are `/healthz`, `/readyz`, `/metrics` and 404s.
fn needs_token(path: &str) -> bool {
    let Some(rest) = path.strip_prefix(SCIM_BASE_PATH) else {
        return false;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return false;
    }
    let public = ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas"];
    !public.iter().any(|p| {
        rest == *p
            || rest
                .strip_prefix(p)
                .is_some_and(|tail| tail.starts_with('/'))
    })
}

/// A request id worth echoing: short, visible ASCII (it goes into headers, logs and the audit).
fn valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_and_health_are_public_the_rest_needs_a_token() {
        for public in [
            "/scim/v2/ServiceProviderConfig",
            "/scim/v2/ResourceTypes",
            "/scim/v2/ResourceTypes/User",
            "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
            "/healthz",
            "/readyz",
            "/metrics",
            "/scim/v2x/Users",
        ] {
            assert!(!needs_token(public), "{public}");
        }
        for private in [
            "/scim/v2",
            "/scim/v2/Users",
            "/scim/v2/Groups/1",
            "/scim/v2/Bulk",
            "/scim/v2/SchemasX",
            "/scim/v2/Me",
        ] {
            assert!(needs_token(private), "{private}");
        }
    }

    #[test]
    fn request_ids_are_bounded_visible_ascii() {
        assert!(valid_request_id("0b6f2c1e-okta"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("has space"));
        assert!(!valid_request_id(&"x".repeat(129)));
    }
}
