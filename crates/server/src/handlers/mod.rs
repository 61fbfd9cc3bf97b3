//! Routes. One action per file; each handler extracts, calls one service function and maps
//! the result.
//!
//! Authentication is a property of where a route is registered: everything under the SCIM base
//! except discovery lives in one scope wrapped by the authentication middleware, unknown paths
//! included (401 before 404), and its handlers take a [`Caller`](crate::caller::Caller). Routing
//! decides on the path actix routes (percent-decoded, slashes merged), so no spelling of a path
//! can reach a protected handler without passing the middleware.

mod bulk;
mod catalogs;
mod discovery;
mod fallback;
pub(crate) mod health;
mod me;
mod oauth_token;
mod resources;

use crate::SCIM_BASE_PATH;
use crate::edge;
use actix_web::middleware::from_fn;
use actix_web::web;
use scim::ResourceKind;

/// A token request is a few short form parameters.
const OAUTH_TOKEN_MAX_BODY: usize = 8 * 1024;

/// A path the service routes: its full pattern and whether it answers without a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The actix pattern from the root, e.g. `/scim/v2/Users/{id}`.
    pub pattern: String,
    /// Served without a credential (discovery and the operations endpoints).
    pub public: bool,
}

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoints {
    /// The SCIM API and `/healthz`, `/readyz`, `/metrics`.
    All,
    /// The SCIM API only (the operations endpoints have a listener of their own).
    Scim,
    /// `/healthz`, `/readyz`, `/metrics` only.
    Operations,
}

/// The routes as they are registered, so tests can walk every one of them.
#[derive(Debug, Default)]
pub struct RouteTable(Vec<Route>);

impl RouteTable {
    /// The routes registered so far.
    pub fn into_routes(self) -> Vec<Route> {
        self.0
    }

    fn public(&mut self, prefix: &str, path: &str) -> actix_web::Resource {
        self.record(prefix, path, true)
    }

    fn protected(&mut self, path: &str) -> actix_web::Resource {
        self.record(SCIM_BASE_PATH, path, false)
    }

    fn record(&mut self, prefix: &str, path: &str, public: bool) -> actix_web::Resource {
        self.0.push(Route {
            pattern: format!("{prefix}{path}"),
            public,
        });
        web::resource(path)
    }
}

/// Every route of one listener.
pub fn routes(cfg: &mut web::ServiceConfig, endpoints: Endpoints, table: &mut RouteTable) {
    if endpoints != Endpoints::Scim {
        cfg.service(
            table
                .public("", "/healthz")
                .route(web::get().to(health::healthz)),
        )
        .service(
            table
                .public("", "/readyz")
                .route(web::get().to(health::readyz)),
        )
        .service(
            table
                .public("", "/metrics")
                .route(web::get().to(health::metrics)),
        );
    }
    if endpoints != Endpoints::Operations {
        // Outside the SCIM base and its authentication: the client credentials are the
        // credential here.
        cfg.service(
            table
                .public("", "/oauth/token")
                .app_data(web::PayloadConfig::new(OAUTH_TOKEN_MAX_BODY))
                .route(web::post().to(oauth_token::token))
                .default_service(web::to(fallback::method_not_allowed)),
        );
        cfg.service(scim(table));
    }
    cfg.default_service(web::to(fallback::not_found));
}

/// `/scim/v2`: discovery in the open (RFC 7644 §4), everything else behind authentication.
///
/// The authenticated part is a scope with an empty prefix registered after discovery: it takes
/// every path discovery did not, so an unknown or misspelt path is refused before it is found
/// missing.
fn scim(table: &mut RouteTable) -> actix_web::Scope {
    let protected = web::scope("")
        .wrap(from_fn(edge::authenticate))
        .configure(|cfg| {
            for kind in ResourceKind::ALL {
                resources::routes(cfg, kind, table);
            }
        })
        .service(
            table
                .protected("/.search")
                .route(web::post().to(resources::search::all))
                .default_service(web::to(fallback::method_not_allowed)),
        )
        .service(
            table
                .protected("/Bulk")
                .route(web::post().to(bulk::bulk))
                .default_service(web::to(fallback::method_not_allowed)),
        )
        .service(get_only(table.protected("/Roles"), catalogs::roles))
        .service(get_only(table.protected("/Roles/{id}"), catalogs::role))
        .service(get_only(
            table.protected("/Entitlements"),
            catalogs::entitlements,
        ))
        .service(get_only(
            table.protected("/Entitlements/{id}"),
            catalogs::entitlement,
        ))
        .service(table.protected("/Me").to(me::me))
        .service(table.protected("/Me/{tail:.*}").to(me::me))
        .default_service(web::to(fallback::not_found));
    let discovery = |table: &mut RouteTable, path: &str| table.public(SCIM_BASE_PATH, path);
    web::scope(SCIM_BASE_PATH)
        .service(get_only(
            discovery(table, "/ServiceProviderConfig"),
            discovery::service_provider_config,
        ))
        .service(get_only(
            discovery(table, "/ResourceTypes"),
            discovery::resource_types,
        ))
        .service(get_only(
            discovery(table, "/ResourceTypes/{id}"),
            discovery::resource_type,
        ))
        .service(get_only(discovery(table, "/Schemas"), discovery::schemas))
        .service(get_only(
            discovery(table, "/Schemas/{id}"),
            discovery::schema,
        ))
        .service(protected)
}

/// A discovery resource: GET only, anything else 405 (RFC 7644 §4).
fn get_only<F, Args>(resource: actix_web::Resource, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    resource
        .route(web::get().to(handler))
        .default_service(web::to(fallback::method_not_allowed))
}
