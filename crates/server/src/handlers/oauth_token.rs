//! `POST /oauth/token`: the client credentials grant (RFC 6749 §4.4). Takes a form body and
//! client credentials (HTTP Basic or the body), answers an access token or an RFC 6749 §5.2
//! error, never cached (§5.1).

use crate::request::RequestContext;
use crate::service::oauth::{self, OAuthError};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde_json::json;

/// The token request: a form-encoded body, credentials per RFC 6749 §2.3.
pub async fn token(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let client_addr = req
        .extensions()
        .get::<RequestContext>()
        .and_then(|ctx| ctx.client_addr);
    let form_encoded = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_encoded {
        return error(&OAuthError {
            status: 400,
            error: "invalid_request",
            description: "the body must be application/x-www-form-urlencoded".into(),
            basic_challenge: false,
            retry_after_secs: None,
        });
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match oauth::issue_token(&state, authorization, &form, client_addr).await {
        Ok(issued) => no_store(HttpResponse::Ok()).json(issued),
        Err(e) => error(&e),
    }
}

/// RFC 6749 §5.1: token responses must not be cached.
fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((PRAGMA, HeaderValue::from_static("no-cache")));
    builder
}

/// RFC 6749 §5.2: `{"error", "error_description"}` as JSON.
fn error(e: &OAuthError) -> HttpResponse {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = no_store(HttpResponse::build(status));
    if e.basic_challenge && e.status == 401 {
        builder.insert_header((
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"scim-bridge\""),
        ));
    }
    if let Some(secs) = e.retry_after_secs {
        builder.insert_header((RETRY_AFTER, HeaderValue::from(secs)));
    }
    builder.json(json!({"error": e.error, "error_description": e.description}))
}
