//! `/Users` and `/Groups` (RFC 7644 §3.2): the same actions for both resource types.

mod create;
mod delete;
mod get;
mod list;
mod patch;
mod replace;
pub mod search;

use super::fallback::method_not_allowed;
use crate::body::read_request_json;
use crate::error::ApiResult;
use crate::request::{RequestContext, if_match, path_id, query_params};
use crate::state::AppState;
use actix_web::{HttpRequest, web};
use scim::ResourceKind;
use serde_json::Value;
use store::WriteContext;

/// What a PUT or PATCH of one resource carries.
pub struct Change {
    pub params: Vec<(String, String)>,
    pub if_match: Option<String>,
    pub id: String,
    pub body: Value,
    /// The audit context, with the operation named `VERB /Users/{id}`.
    pub write: WriteContext,
}

impl Change {
    pub async fn read(
        verb: &str,
        kind: ResourceKind,
        req: &HttpRequest,
        payload: web::Payload,
        ctx: &RequestContext,
        state: &AppState,
    ) -> ApiResult<Change> {
        let params = query_params(req);
        let if_match = if_match(req.headers())?;
        let body = read_request_json(req, payload, state).await?;
        let write = ctx.write(format!("{verb} {}/{{id}}", kind.endpoint()));
        Ok(Change {
            params,
            if_match,
            id: path_id(req),
            body,
            write,
        })
    }
}

/// The routes of one resource type. `/.search` is registered before `/{id}` so it is not read
/// as an id.
pub fn routes(cfg: &mut web::ServiceConfig, kind: ResourceKind) {
    let endpoint = kind.endpoint();
    cfg.service(
        web::resource(endpoint)
            .route(
                web::get().to(move |req: HttpRequest, state: web::Data<AppState>| {
                    list::list(kind, req, state)
                }),
            )
            .route(web::post().to(
                move |req: HttpRequest,
                      payload: web::Payload,
                      ctx: RequestContext,
                      state: web::Data<AppState>| {
                    create::create(kind, req, payload, ctx, state)
                },
            ))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource(format!("{endpoint}/.search"))
            .route(web::post().to(
                move |req: HttpRequest, payload: web::Payload, state: web::Data<AppState>| {
                    search::search(kind, req, payload, state)
                },
            ))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource(format!("{endpoint}/{{id}}"))
            .route(
                web::get().to(move |req: HttpRequest, state: web::Data<AppState>| {
                    get::get(kind, req, state)
                }),
            )
            .route(web::put().to(
                move |req: HttpRequest,
                      payload: web::Payload,
                      ctx: RequestContext,
                      state: web::Data<AppState>| {
                    replace::replace(kind, req, payload, ctx, state)
                },
            ))
            .route(web::patch().to(
                move |req: HttpRequest,
                      payload: web::Payload,
                      ctx: RequestContext,
                      state: web::Data<AppState>| {
                    patch::patch(kind, req, payload, ctx, state)
                },
            ))
            .route(web::delete().to(
                move |req: HttpRequest, ctx: RequestContext, state: web::Data<AppState>| {
                    delete::delete(kind, req, ctx, state)
                },
            ))
            .default_service(web::to(method_not_allowed)),
    );
}
