//! `/Me` (RFC 7644 §3.11): the bridge's callers are IdP machine tokens, not users, so there is
//! no authenticated subject to alias: 501 Not Implemented.

use crate::caller::{Authenticated, Caller};
use crate::error::ApiError;
use actix_web::HttpResponse;
use scim::ScimError;

/// Answers only a verified caller, like every path under the SCIM base but discovery.
pub async fn me(_caller: Caller<Authenticated>) -> Result<HttpResponse, ApiError> {
    Err(ApiError::Scim(ScimError::status(
        501,
        "/Me is not supported: the bridge is called with IdP tokens, not as a user",
    )))
}
