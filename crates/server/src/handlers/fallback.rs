//! Requests no route takes: SCIM errors rather than actix's empty defaults.

use crate::error::ApiError;
use actix_web::HttpRequest;
use actix_web::HttpResponse;
use scim::ScimError;

/// An unknown path: 404 with the Error schema.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no SCIM endpoint at {}",
        req.path()
    )))
}

/// A known path, a method it does not serve: 405 with the Error schema.
pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::Scim(ScimError::status(
        405,
        format!("{} is not allowed on {}", req.method(), req.path()),
    )))
}
