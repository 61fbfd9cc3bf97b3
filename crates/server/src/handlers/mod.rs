//! Routes. One action per file; each handler extracts, calls one service function and maps
//! the result.

mod bulk;
mod discovery;
mod fallback;
mod health;
mod me;
mod resources;

use crate::SCIM_BASE_PATH;
use actix_web::web;
use scim::ResourceKind;

/// Every route of the service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .service(
            web::scope(SCIM_BASE_PATH)
                .service(get_only(
                    "/ServiceProviderConfig",
                    discovery::service_provider_config,
                ))
                .service(get_only("/ResourceTypes", discovery::resource_types))
                .service(get_only("/ResourceTypes/{id}", discovery::resource_type))
                .service(get_only("/Schemas", discovery::schemas))
                .service(get_only("/Schemas/{id}", discovery::schema))
                .configure(|cfg| resources::routes(cfg, ResourceKind::User))
                .configure(|cfg| resources::routes(cfg, ResourceKind::Group))
                .service(
                    web::resource("/.search")
                        .route(web::post().to(resources::search::all))
                        .default_service(web::to(fallback::method_not_allowed)),
                )
                .service(
                    web::resource("/Bulk")
                        .route(web::post().to(bulk::bulk))
                        .default_service(web::to(fallback::method_not_allowed)),
                )
                .service(web::resource(["/Me", "/Me/{tail:.*}"]).to(me::me))
                .default_service(web::to(fallback::not_found)),
        )
        .default_service(web::to(fallback::not_found));
}

/// A discovery resource: GET only, anything else 405 (RFC 7644 §4).
fn get_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler))
        .default_service(web::to(fallback::method_not_allowed))
}
