//! The middleware: [`edge`], which every request passes (request id, tracing span, the client's
//! address, HTTP metrics), and [`authenticate`], which wraps the protected scope (credential,
//! per-token rate limit).

use crate::auth::Principal;
use crate::client;
use crate::error::ApiError;
use crate::request::RequestContext;
use crate::state::AppState;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, ResponseError, web};
use scim::ScimError;
use std::net::IpAddr;
use tracing::Instrument;

/// The request id header, taken from the client (or a proxy) and returned.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The outermost middleware: request id, span, the client's address, metrics and the request
/// log. It decides nothing about access: that is the job of [`authenticate`], attached where
/// protected routes are registered.
pub async fn edge(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // The app always registers its state; a request without it gets no timing and no id.
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let started = state.as_ref().map(|s| s.clock.instant());
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| valid_request_id(id))
        .map(str::to_string)
        .or_else(|| state.as_ref().map(|s| s.ids.uuid_v7().to_string()))
        .unwrap_or_default();
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        path = %req.path(),
        token = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let client_addr = state
        .as_ref()
        .and_then(|s| client::client_ip(req.request(), &s.config.trusted_proxies));
    async move {
        req.extensions_mut().insert(RequestContext {
            request_id: request_id.clone(),
            client_addr,
        });
        let mut response = next.call(req).await?;
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        let status = response.status().as_u16();
        tracing::Span::current().record("status", status);
        let endpoint = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let seconds = match (&state, started) {
            (Some(state), Some(started)) => state.clock.elapsed(started).as_secs_f64(),
            _ => 0.0,
        };
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

/// The middleware of the protected scope: a request passes only with a valid credential and
/// within its token's rate limit, and carries its [`Principal`] on to the handler's
/// [`Caller`](crate::caller::Caller). Anything else is answered here.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        let missing = ScimError::status(500, "the service state is missing");
        return Ok(req.into_response(ApiError::Scim(missing).error_response()));
    };
    let client_addr = req
        .extensions()
        .get::<RequestContext>()
        .and_then(|ctx| ctx.client_addr);
    match admit(&state, req.request(), client_addr).await {
        Ok(principal) => {
            tracing::Span::current().record("token", principal.name.as_str());
            req.extensions_mut().insert(principal);
            next.call(req).await
        }
        Err(e) => Ok(req.into_response(e.error_response())),
    }
}

/// Authenticate, then take one request from the caller's rate limit. A failure counts against
/// the client's address, and an address over its failure limit is refused before any work a
/// stream of bad credentials could multiply (a token reload, a signature check).
pub async fn admit(
    state: &AppState,
    req: &HttpRequest,
    client_addr: Option<IpAddr>,
) -> Result<Principal, ApiError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let failures = &state.auth_failures;
    let principal = match state
        .auth
        .authenticate(header, &|| failures.check(client_addr))
        .await
    {
        Ok(principal) => principal,
        Err(refused @ ApiError::Unauthorized(_)) => {
            failures.record_failure(client_addr)?;
            return Err(refused);
        }
        Err(e) => return Err(e),
    };
    state.limiter.check(&principal.name)?;
    Ok(principal)
}

/// A request id worth echoing: short, visible ASCII (it goes into headers, logs and the audit).
fn valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_bounded_visible_ascii() {
        assert!(valid_request_id("0b6f2c1e-okta"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("has space"));
        assert!(!valid_request_id(&"x".repeat(129)));
    }
}
