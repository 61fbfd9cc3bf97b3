//! The SCIM 2.0 HTTP service of scim-bridge (actix-web): the IdP's view of the bridge.
//!
//! It answers from the store and never calls Coder in a request; the worker converges Coder
//! from the outbox rows every write leaves. Endpoints live under `/scim/v2` (RFC 7644 §3),
//! plus `/healthz`, `/readyz` and `/metrics` at the root.
//!
//! Shape: an edge middleware gives every request an id and records metrics; everything under
//! `/scim/v2` but discovery is registered in one scope wrapped by the authentication middleware
//! (credential, per-token rate limit), which attaches the caller. Thin handlers (one action per
//! file under `handlers/`) extract a typed `Caller` (`Reader`, `Writer`: 401 without a verified
//! credential, 403 without the scope), call one function of `service/`, and map the result; the
//! service's reads need a caller that may read and its writes an authorization only a `Writer`
//! can make. Every error becomes a SCIM error response in `error.rs`.
//!
//! Decisions:
//! - Access follows the route actix chose, never a comparison of path strings: a path that is
//!   percent-encoded, dotted, doubled or of another case reaches the same handler as its routed
//!   form, or no handler (401 under the SCIM base, 404 elsewhere).
//! - Failed authentication is limited per client address, apart from the per-token limit: an
//!   address over its allowance gets 429 before its credential costs a token reload or a
//!   signature check, while a bridge token the service already holds still passes from it.
//! - `/oauth/token` (RFC 6749 §4.4, client credentials) sits outside the SCIM base and takes
//!   client credentials only (HTTP Basic or the body, never a bearer token). Its access tokens
//!   are HS256 JWTs every replica verifies with the shared keys, without a database read; a
//!   revoked client's tokens are refused once the replica's token snapshot (refreshed every
//!   `token_cache_ttl` while requests arrive) lists it. Failed client authentication counts
//!   against the same per-address limit as failed bearer authentication; a valid access token
//!   passes from an address over it, as a known bridge token does.
//! - Discovery endpoints (`/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`), `/healthz`,
//!   `/readyz` and `/metrics` need no token (RFC 7644 §4 allows unauthenticated discovery;
//!   Prometheus scrapers carry no SCIM token). Restrict `/metrics` at the network if needed.
//! - A Group PATCH answers 204 unless the request asks for attributes (`attributes` or
//!   `excludedAttributes`): RFC 7644 §3.5.2 allows it and Entra asks for it, since a body
//!   listing every member of a large group costs more than the change. A User PATCH answers
//!   200 with the User.
//! - The base URL in `Location` and `meta.location` is the configured one, else `http://` and
//!   the socket's own address plus `/scim/v2`. `Forwarded` / `X-Forwarded-*` count only from a
//!   peer in `ServerConfig::trusted_proxies` (then they also name the client's address for the
//!   audit and the failed-authentication limit); `Host` and forwarding headers from anyone
//!   else move nothing.

mod auth;
mod body;
mod caller;
mod client;
mod config;
mod edge;
mod error;
mod handlers;
mod metrics;
mod rate_limit;
mod readiness;
mod request;
mod response;
mod service;
mod state;

pub use auth::{JwtConfigError, OAUTH_AUDIENCE, OAUTH_ISSUER, OAuthConfigError};
pub use client::{InvalidProxy, TrustedProxies};
pub use config::{JwtConfig, JwtKey, OAuthConfig, ServerConfig};
pub use error::ApiError;
pub use handlers::Route;
pub use metrics::Metrics;
pub use readiness::{CoderNotConfigured, CoderReadiness, ReadinessProbe};
pub use response::SCIM_CONTENT_TYPE;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{NormalizePath, TrailingSlash, from_fn};
use actix_web::{App, HttpServer, web};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// The SCIM base path (RFC 7644 §3.13 suggests a versioned path).
pub const SCIM_BASE_PATH: &str = "/scim/v2";

/// What the service needs from the rest of the bridge.
#[derive(Clone)]
pub struct ServerDeps {
    /// The system of record.
    pub store: store::Store,
    /// The metrics registry (shared with the worker).
    pub metrics: Metrics,
    /// Coder's side of `/readyz`.
    pub readiness: Arc<dyn ReadinessProbe>,
}

impl ServerDeps {
    /// Dependencies with fresh metrics and no Coder configured.
    pub fn new(store: store::Store) -> ServerDeps {
        ServerDeps {
            store,
            metrics: Metrics::new(),
            readiness: Arc::new(CoderNotConfigured),
        }
    }
}

/// A server bound to its address, not yet running.
pub struct BoundServer {
    server: Server,
    local_addr: SocketAddr,
}

impl BoundServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to stop the server; `stop(true)` finishes in-flight requests first (up to
    /// `ServerConfig::shutdown_timeout`).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serve until stopped.
    pub async fn run(self) -> io::Result<()> {
        self.server.await
    }
}

/// Every path the service routes, with whether it answers without a credential: what a test
/// walks to prove that nothing but discovery and the operations endpoints is public.
pub fn routes() -> Vec<Route> {
    let mut table = handlers::RouteTable::default();
    let _ = App::new().configure(|cfg| handlers::routes(cfg, handlers::Endpoints::All, &mut table));
    table.into_routes()
}

/// Bind the SCIM service to `config.listen`. Invalid JWT settings are an `InvalidInput` error.
pub async fn bind(config: ServerConfig, deps: ServerDeps) -> io::Result<BoundServer> {
    let jwt = config
        .jwt
        .as_ref()
        .map(auth::JwtValidator::new)
        .transpose()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let oauth = config
        .oauth
        .as_ref()
        .map(auth::OAuthTokens::new)
        .transpose()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let listen = config.listen;
    let workers = config.workers.max(1);
    let shutdown = config.shutdown_timeout.as_secs();
    let state = web::Data::new(state::AppState::new(config, deps, jwt, oauth));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(|cfg| {
                handlers::routes(
                    cfg,
                    handlers::Endpoints::All,
                    &mut handlers::RouteTable::default(),
                )
            })
            .wrap(from_fn(edge::edge))
            // MS Postman hits `/Users/?filter=`; the trailing slash is the same resource.
            .wrap(NormalizePath::new(TrailingSlash::Trim))
    })
    // The socket's own address is the base URL's authority when no base URL is configured and
    // no trusted proxy names one.
    .on_connect(|connection, data| {
        if let Some(socket) = connection.downcast_ref::<actix_web::rt::net::TcpStream>()
            && let Ok(local) = socket.local_addr()
        {
            data.insert(client::LocalAddr(local));
        }
    })
    .workers(workers)
    .shutdown_timeout(shutdown)
    .bind(listen)?;
    let local_addr = server.addrs().first().copied().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "the server bound no address",
        )
    })?;
    Ok(BoundServer {
        server: server.run(),
        local_addr,
    })
}
