//! Request bodies: read from the stream with a size limit and parsed by us, so every failure is
//! a SCIM error (413, 415 or 400 `invalidSyntax`) instead of actix's plain-text defaults.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use actix_web::HttpRequest;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::web::{BytesMut, Payload};
use futures::StreamExt;
use scim::ScimError;
use serde_json::Value;

/// Read the body as JSON, refusing more than `limit` bytes.
///
/// RFC 7644 §3.1 names `application/scim+json`; `application/json` is accepted too (Okta's spec
/// tests POST with it), and so is a missing `Content-Type`. A declared `Content-Length` over the
/// limit is refused before reading; a chunked body as soon as it passes the limit.
pub async fn read_json(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
    limit_name: &str,
) -> ApiResult<Value> {
    check_content_type(req)?;
    let too_large = || {
        ApiError::too_large(format!(
            "the request body exceeds {limit_name} ({limit} bytes)"
        ))
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut bytes = BytesMut::with_capacity(declared.map_or(1024, |len| len as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ScimError::invalid_syntax(format!("the request body could not be read: {e}"))
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ScimError::invalid_syntax("a JSON request body is required").into());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")).into()
    })
}

/// A request body within the general limit (`max_body_bytes`).
pub async fn read_request_json(
    req: &HttpRequest,
    payload: Payload,
    state: &AppState,
) -> ApiResult<Value> {
    read_json(
        req,
        payload,
        state.config.max_body_bytes,
        "the body size limit",
    )
    .await
}

fn check_content_type(req: &HttpRequest) -> ApiResult<()> {
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        return Ok(());
    };
    let media = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    let accepted = ["application/scim+json", "application/json"];
    if accepted.iter().any(|a| media.eq_ignore_ascii_case(a)) {
        Ok(())
    } else {
        Err(ScimError::status(
            415,
            format!(
                "Content-Type must be application/scim+json or application/json, not \"{media}\""
            ),
        )
        .into())
    }
}
