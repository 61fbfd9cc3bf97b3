//! The SCIM 2.0 HTTP service of scim-bridge (actix-web): the IdP's view of the bridge.
//!
//! It answers from the store and never calls Coder in a request; the worker converges Coder
//! from the outbox rows every write leaves. Endpoints live under `/scim/v2` (RFC 7644 §3),
//! plus `/healthz`, `/readyz` and `/metrics` at the root, or on a listener of their own
//! (`ServerConfig::ops_listen`), which then serves nothing else while the SCIM listener
//! answers 404 for them as for any unknown path.
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
//!   Prometheus scrapers carry no SCIM token). Restrict `/metrics` at the network if needed;
//!   a separate operations listener lets the network tell the two apart by port.
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
mod cursor;
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
pub use cursor::CURSOR_TIMEOUT_SECS;
pub use error::ApiError;
pub use handlers::Route;
pub use metrics::Metrics;
pub use readiness::{CoderNotConfigured, CoderReadiness, ReadinessProbe};
pub use response::SCIM_CONTENT_TYPE;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{NormalizePath, TrailingSlash, from_fn};
use actix_web::{App, HttpServer, web};
use futures::future::Either;
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
    /// Time for caches, limits, token lifetimes and request timing.
    pub clock: Arc<dyn clock::Clock>,
    /// Request ids and access-token ids.
    pub ids: Arc<dyn clock::IdSource>,
}

impl ServerDeps {
    /// Dependencies with fresh metrics and no Coder configured, on the store's clock and id
    /// source: a run has one of each, chosen where the store is opened.
    pub fn new(store: store::Store) -> ServerDeps {
        ServerDeps {
            clock: store.clock(),
            ids: store.ids(),
            store,
            metrics: Metrics::new(),
            readiness: Arc::new(CoderNotConfigured),
        }
    }
}

/// The service bound to its address (and the operations endpoints to theirs, when they have a
/// listener of their own), not yet running.
pub struct BoundServer {
    scim: Server,
    local_addr: SocketAddr,
    ops: Option<(Server, SocketAddr)>,
}

impl BoundServer {
    /// The address the SCIM API is served on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address `/healthz`, `/readyz` and `/metrics` are served on when they have a listener
    /// of their own; `None`: they share the SCIM API's.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().map(|(_, addr)| *addr)
    }

    /// A handle that stops every listener; `stop(true)` finishes in-flight requests first (up
    /// to `ServerConfig::shutdown_timeout`).
    pub fn handle(&self) -> ServiceHandle {
        ServiceHandle {
            listeners: std::iter::once(&self.scim)
                .chain(self.ops.as_ref().map(|(ops, _)| ops))
                .map(Server::handle)
                .collect(),
        }
    }

    /// Serve until stopped.
    pub async fn run(self) -> io::Result<()> {
        let handle = self.handle();
        let Some((ops, _)) = self.ops else {
            return self.scim.await;
        };
        // One listener ending ends the other: a replica answering probes but not the IdP (or
        // the reverse) would be kept or restarted for the wrong reason.
        let (Either::Left((ended, other)) | Either::Right((ended, other))) =
            futures::future::select(self.scim, ops).await;
        // The other server only finishes stopping while it is polled: stop and await it together.
        let ((), other) = futures::future::join(handle.stop(true), other).await;
        ended.and(other)
    }
}

/// Stops the service's listeners together.
#[derive(Clone)]
pub struct ServiceHandle {
    listeners: Vec<ServerHandle>,
}

impl ServiceHandle {
    /// Stop every listener; graceful: finish in-flight requests first.
    pub async fn stop(&self, graceful: bool) {
        futures::future::join_all(self.listeners.iter().map(|l| l.stop(graceful))).await;
    }
}

/// Which of the service's listeners a [`BindError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `ServerConfig::listen`: the SCIM API (and the operations endpoints unless they have
    /// their own).
    Scim,
    /// `ServerConfig::ops_listen`: `/healthz`, `/readyz`, `/metrics`.
    Operations,
}

/// Why the service could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The JWT or OAuth settings cannot be used (for example an unreadable JWKS file).
    #[error("{0}")]
    Settings(String),
    /// A listener's address could not be bound.
    #[error("cannot serve on {addr}: {source}")]
    Listen {
        /// Which listener.
        listener: Listener,
        /// The address it was given.
        addr: SocketAddr,
        /// What binding answered.
        #[source]
        source: io::Error,
    },
}

/// Every path the service routes, with whether it answers without a credential: what a test
/// walks to prove that nothing but discovery and the operations endpoints is public.
pub fn routes() -> Vec<Route> {
    let mut table = handlers::RouteTable::default();
    let _ = App::new().configure(|cfg| handlers::routes(cfg, handlers::Endpoints::All, &mut table));
    table.into_routes()
}

/// Bind the SCIM service to `config.listen`, and the operations endpoints to
/// `config.ops_listen` when it is set (then only there).
pub async fn bind(config: ServerConfig, deps: ServerDeps) -> Result<BoundServer, BindError> {
    let jwt = config
        .jwt
        .as_ref()
        .map(|jwt| auth::JwtValidator::new(jwt, deps.clock.clone()))
        .transpose()
        .map_err(|e| BindError::Settings(e.to_string()))?;
    let oauth = config
        .oauth
        .as_ref()
        .map(|oauth| auth::OAuthTokens::new(oauth, deps.clock.clone(), deps.ids.clone()))
        .transpose()
        .map_err(|e| BindError::Settings(e.to_string()))?;
    let listen = config.listen;
    let ops_listen = config.ops_listen;
    let workers = config.workers.max(1);
    let shutdown = config.shutdown_timeout.as_secs();
    let state = web::Data::new(state::AppState::new(config, deps, jwt, oauth));
    let scim_endpoints = match ops_listen {
        Some(_) => handlers::Endpoints::Scim,
        None => handlers::Endpoints::All,
    };
    let (scim, local_addr) = listener(
        Listener::Scim,
        listen,
        scim_endpoints,
        state.clone(),
        workers,
        shutdown,
    )?;
    let ops = match ops_listen {
        // Probes and scrapes are light: one worker thread serves them.
        Some(addr) => Some(listener(
            Listener::Operations,
            addr,
            handlers::Endpoints::Operations,
            state,
            1,
            shutdown,
        )?),
        None => None,
    };
    Ok(BoundServer {
        scim,
        local_addr,
        ops,
    })
}

/// One HTTP server serving `endpoints` on `addr`.
fn listener(
    which: Listener,
    addr: SocketAddr,
    endpoints: handlers::Endpoints,
    state: web::Data<state::AppState>,
    workers: usize,
    shutdown: u64,
) -> Result<(Server, SocketAddr), BindError> {
    let failed = |source| BindError::Listen {
        listener: which,
        addr,
        source,
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(|cfg| handlers::routes(cfg, endpoints, &mut handlers::RouteTable::default()))
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
    .bind(addr)
    .map_err(failed)?;
    let local_addr = server.addrs().first().copied().ok_or_else(|| {
        failed(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "the server bound no address",
        ))
    })?;
    Ok((server.run(), local_addr))
}
