//! `/Me` (RFC 7644 §3.11): the bridge's callers are IdP machine tokens, not users, so there is
//! no authenticated subject to alias: 501 Not Implemented.

use crate::error::ApiError;
use actix_web::HttpResponse;
use scim::ScimError;

pub async fn me() -> Result<HttpResponse, ApiError> {
    Err(ApiError::Scim(ScimError::status(
        501,
        "/Me is not supported: the bridge is called with IdP tokens, not as a user",
    )))
}
