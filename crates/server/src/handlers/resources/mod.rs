//! `/Users` and `/Groups` (RFC 7644 §3.2): the same actions for both resource types.

mod create;
mod delete;
mod get;
mod list;
mod patch;
mod replace;
pub mod search;

use super::RouteTable;
use super::fallback::method_not_allowed;
use crate::body::read_request_json;
use crate::caller::{AuthorizedWrite, Reader, Writer};
use crate::error::ApiResult;
use crate::request::{if_match, path_id, query_params};
use crate::state::AppState;
use actix_web::{HttpRequest, web};
use scim::ResourceKind;
use serde_json::Value;

/// What a PUT or PATCH of one resource carries.
pub struct Change {
    pub params: Vec<(String, String)>,
    pub if_match: Option<String>,
    pub id: String,
    pub body: Value,
    /// The write, with the operation named `VERB /Users/{id}`.
    pub write: AuthorizedWrite,
}

impl Change {
    pub async fn read(
        verb: &str,
        kind: ResourceKind,
        req: &HttpRequest,
        payload: web::Payload,
        writer: &Writer,
        state: &AppState,
    ) -> ApiResult<Change> {
        let params = query_params(req);
        let if_match = if_match(req.headers())?;
        let body = read_request_json(req, payload, state).await?;
        let write = writer.write(format!("{verb} {}/{{id}}", kind.endpoint()));
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
pub fn routes(cfg: &mut web::ServiceConfig, kind: ResourceKind, table: &mut RouteTable) {
    let endpoint = kind.endpoint();
    cfg.service(
        table
            .protected(endpoint)
            .route(web::get().to(
                move |req: HttpRequest, reader: Reader, state: web::Data<AppState>| {
                    list::list(kind, req, reader, state)
                },
            ))
            .route(web::post().to(
                move |req: HttpRequest,
                      payload: web::Payload,
                      writer: Writer,
                      state: web::Data<AppState>| {
                    create::create(kind, req, payload, writer, state)
                },
            ))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        table
            .protected(&format!("{endpoint}/.search"))
            .route(web::post().to(
                move |req: HttpRequest,
                      payload: web::Payload,
                      reader: Reader,
                      state: web::Data<AppState>| {
                    search::search(kind, req, payload, reader, state)
                },
            ))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        table
            .protected(&format!("{endpoint}/{{id}}"))
            .route(web::get().to(
                move |req: HttpRequest, reader: Reader, state: web::Data<AppState>| {
                    get::get(kind, req, reader, state)
                },
            ))
            .route(web::put().to(
                move |req: HttpRequest,
                      payload: web::Payload,
                      writer: Writer,
                      state: web::Data<AppState>| {
                    replace::replace(kind, req, payload, writer, state)
                },
            ))
            .route(web::patch().to(
                move |req: HttpRequest,
                      payload: web::Payload,
                      writer: Writer,
                      state: web::Data<AppState>| {
                    patch::patch(kind, req, payload, writer, state)
                },
            ))
            .route(web::delete().to(
                move |req: HttpRequest, writer: Writer, state: web::Data<AppState>| {
                    delete::delete(kind, req, writer, state)
                },
            ))
            .default_service(web::to(method_not_allowed)),
    );
}
