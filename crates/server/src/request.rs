//! What a handler knows about its request beyond the HTTP message: the request id and the
//! client's address (set by the edge middleware), query parameters, preconditions and the base
//! URL.

use crate::SCIM_BASE_PATH;
use crate::error::ApiResult;
use crate::state::AppState;
use actix_web::HttpRequest;
use actix_web::http::header::{HeaderMap, IF_MATCH};
use scim::ScimError;
use scim::projection::Projection;
use std::net::IpAddr;

/// The request's identity for the audit log and the logs, set by the edge middleware on every
/// request. Handlers get it only inside a [`Caller`](crate::caller::Caller).
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// `X-Request-Id` as sent, or generated.
    pub request_id: String,
    /// The client's IP address: the peer, or the client a trusted proxy names.
    pub client_addr: Option<IpAddr>,
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
        None => format!(
            "{}{SCIM_BASE_PATH}",
            crate::client::origin(req, &state.config.trusted_proxies)
        ),
    }
}

/// The id in the path.
pub fn path_id(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or_default().to_string()
}
