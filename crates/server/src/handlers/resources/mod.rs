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
use crate::caller::{AuthorizedWrite, Writer};
use crate::error::{ApiError, ApiResult};
use crate::request::{if_match, path_id, query_params};
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use scim::{ResourceKind, ScimError};
use serde_json::Value;
use std::future::{Ready, ready};

/// What every handler here starts from: the resource type its route serves (attached to the
/// route by [`routes`]), the request and the service state.
pub struct Endpoint {
    pub kind: ResourceKind,
    pub req: HttpRequest,
    pub state: web::Data<AppState>,
}

impl FromRequest for Endpoint {
    type Error = ApiError;
    type Future = Ready<ApiResult<Endpoint>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let kind = req.app_data::<ResourceKind>().copied();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        ready(match (kind, state) {
            (Some(kind), Some(state)) => Ok(Endpoint {
                kind,
                req: req.clone(),
                state,
            }),
            // A route registered without them: the service's bug, never the client's.
            _ => Err(ScimError::status(500, "the route serves no resource type").into()),
        })
    }
}

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
    // Each resource serves `kind` (see `Endpoint`) and answers 405 to the methods it lacks.
    let mut resource = |path: &str| {
        table
            .protected(path)
            .app_data(kind)
            .default_service(web::to(method_not_allowed))
    };
    cfg.service(
        resource(endpoint)
            .route(web::get().to(list::list))
            .route(web::post().to(create::create)),
    )
    .service(resource(&format!("{endpoint}/.search")).route(web::post().to(search::search)))
    .service(
        resource(&format!("{endpoint}/{{id}}"))
            .route(web::get().to(get::get))
            .route(web::put().to(replace::replace))
            .route(web::patch().to(patch::patch))
            .route(web::delete().to(delete::delete)),
    );
}
