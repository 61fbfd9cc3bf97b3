//! The service's one error type and the one place every failure becomes a SCIM error response
//! (RFC 7644 §3.12): status, `scimType`, `detail`, as `application/scim+json`.

use crate::response::scim_json;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use scim::ScimError;
use store::{Scope, StoreError};

/// The `Retry-After` of a 503 while the database is away: about what a PostgreSQL restart takes.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 5;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A protocol error: bad input, not found, method not allowed, too large, …
    #[error(transparent)]
    Scim(#[from] ScimError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No valid bearer token or JWT. 401 with `WWW-Authenticate: Bearer`.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// The credential is valid but lacks the scope the request needs. 403.
    #[error("forbidden: the credential lacks {0}")]
    Forbidden(Scope),
    /// The token's rate limit is spent. 429 with `Retry-After`.
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds until a request will be accepted again (at least 1).
        retry_after_secs: u64,
    },
    /// The client's address failed authentication too often. 429 with `Retry-After`.
    #[error("too many failed authentications; retry after {retry_after_secs} s")]
    AuthFailuresLimited {
        /// Whole seconds until a credential will be checked again (at least 1).
        retry_after_secs: u64,
    },
}

impl ApiError {
    /// A 404 for an unknown path or resource type.
    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::Scim(ScimError::not_found(detail))
    }

    /// RFC 7644 §3.12: 413 when a body exceeds what the service accepts.
    pub fn too_large(detail: impl Into<String>) -> Self {
        ApiError::Scim(ScimError::status(413, detail))
    }

    /// The `Retry-After` the response carries: a spent rate limit's wait, or a short one while
    /// the database is away (RFC 9110 §10.2.3, with the 503).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_secs }
            | ApiError::AuthFailuresLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Store(e) if e.is_unavailable() => Some(DATABASE_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// The SCIM error the response carries.
    pub fn to_scim(&self) -> ScimError {
        match self {
            ApiError::Scim(e) => e.clone(),
            ApiError::Store(e) => e.to_scim(),
            ApiError::Unauthorized(detail) => ScimError::status(401, *detail),
            // RFC 7644 §3.12: 403, "operation is not permitted based on the supplied
            // authorization".
            ApiError::Forbidden(scope) => ScimError::status(
                403,
                format!("this credential does not hold the {scope} scope this request needs"),
            ),
            ApiError::RateLimited { retry_after_secs } => ScimError::status(
                429,
                format!("too many requests for this token; retry after {retry_after_secs} seconds"),
            ),
            ApiError::AuthFailuresLimited { retry_after_secs } => ScimError::status(
                429,
                format!(
                    "too many failed authentications from this address; retry after {retry_after_secs} seconds"
                ),
            ),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.to_scim().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let scim = self.to_scim();
        if scim.status >= 500 {
            // The client sees a generic detail; the cause goes to the log.
            tracing::error!(error = %self, "request failed");
        }
        let mut response = scim_json(self.status_code(), &scim.to_json());
        let headers = response.headers_mut();
        if let ApiError::Unauthorized(_) = self {
            // RFC 6750 §3: a 401 names the scheme the client must use.
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scim-bridge\""),
            );
        }
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Result alias for the service.
pub type ApiResult<T> = Result<T, ApiError>;
