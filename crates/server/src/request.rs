//! What a handler knows about its request beyond the HTTP message: the request id, the caller
//! and the peer (set by the edge middleware), query parameters, preconditions and the base URL.

use crate::SCIM_BASE_PATH;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header::{HeaderMap, IF_MATCH};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use scim::ScimError;
use scim::projection::Projection;
use std::future::{Ready, ready};
use store::WriteContext;

/// The request's identity, for the audit log and the logs.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// `X-Request-Id` as sent, or generated.
    pub request_id: String,
    /// The authenticated caller; `None` on public endpoints.
    pub principal: Option<Principal>,
    /// The client's IP address.
    pub peer: Option<String>,
}

impl RequestContext {
    /// The store's write context for `operation` (e.g. `PATCH /Groups/{id}`).
    pub fn write(&self, operation: impl Into<String>) -> WriteContext {
        WriteContext {
            request_id: self.request_id.clone(),
            token_name: self.principal.as_ref().map(|p| p.name.clone()),
            source_addr: self.peer.clone(),
            operation: operation.into(),
        }
    }
}

impl FromRequest for RequestContext {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(req
            .extensions()
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_default()))
    }
}

/// The query parameters, decoded. Entra's `?aadOptscim062020` (a name without a value) is just
/// one more parameter nobody asks for.
pub fn query_params(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

/// One parameter by name, ignoring case; the last one wins.
pub fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// RFC 7644 §3.9: `attributes` / `excludedAttributes` on a single-resource request.
pub fn projection(params: &[(String, String)]) -> ApiResult<Projection> {
    Ok(Projection::parse(
        param(params, "attributes"),
        param(params, "excludedAttributes"),
    )?)
}

/// Whether the request names attributes for the response.
pub fn asks_for_attributes(params: &[(String, String)]) -> bool {
    param(params, "attributes").is_some() || param(params, "excludedAttributes").is_some()
}

/// RFC 7644 §3.14: `If-Match` holds `*` or entity tags; anything else is a 400, a well-formed
/// tag that is not the current version is the store's 412.
pub fn if_match(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ScimError::invalid_value("If-Match must be ASCII entity tags"))?;
    let well_formed = text.split(',').map(str::trim).all(|tag| {
        let opaque = tag.strip_prefix("W/").unwrap_or(tag);
        tag == "*" || (opaque.len() >= 2 && opaque.starts_with('"') && opaque.ends_with('"'))
    });
    if !well_formed {
        return Err(ScimError::invalid_value(format!(
            "If-Match must be \"*\" or entity tags like W/\"3\", not {text}"
        ))
        .into());
    }
    Ok(Some(text.to_string()))
}

/// The SCIM base URL for `meta.location`, `Location` and `$ref`.
pub fn base_url(req: &HttpRequest, state: &AppState) -> String {
    match &state.config.base_url {
        Some(url) => url.as_str().trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}{SCIM_BASE_PATH}", info.scheme(), info.host())
        }
    }
}

/// The id in the path.
pub fn path_id(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or_default().to_string()
}
