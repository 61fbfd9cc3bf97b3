//! Response shapes: every body is `application/scim+json; charset=utf-8` (RFC 7644 §3.1), and a
//! single resource carries its weak ETag (RFC 7644 §3.14).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, ETAG, HeaderValue, LOCATION};
use serde::Serialize;

/// The media type of every SCIM response, errors included.
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json; charset=utf-8";

/// A SCIM JSON response.
pub fn scim_json(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    // Serialising a JSON value or a rendered resource cannot fail (string keys only).
    let text = serde_json::to_vec(body).unwrap_or_default();
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE)))
        .body(text)
}

/// A single resource: `ETag` from `meta.version`, and `Location` when `created` (RFC 7644
/// §3.3: a POST answers 201 with the new resource's URI).
pub fn resource(
    status: StatusCode,
    body: &impl Serialize,
    etag: &str,
    location: Option<&str>,
) -> HttpResponse {
    let mut response = scim_json(status, body);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(ETAG, value);
    }
    if let Some(value) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        headers.insert(LOCATION, value);
    }
    response
}

/// RFC 7232 §3.2 / RFC 7644 §3.14: whether an `If-None-Match` header names `etag` (or is `*`);
/// weak and strong forms compare alike, since every ETag here is weak.
pub fn if_none_match_hits(header: &str, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    let current = opaque(etag);
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || opaque(tag) == current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        assert!(if_none_match_hits("W/\"3\"", "W/\"3\""));
        assert!(if_none_match_hits("\"3\"", "W/\"3\""));
        assert!(if_none_match_hits("W/\"1\", W/\"3\"", "W/\"3\""));
        assert!(if_none_match_hits("*", "W/\"3\""));
        assert!(!if_none_match_hits("W/\"2\"", "W/\"3\""));
        assert!(!if_none_match_hits("garbage", "W/\"3\""));
    }
}
