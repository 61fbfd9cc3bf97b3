//! What every handler shares.

use crate::ServerDeps;
use crate::auth::{Authenticator, JwtValidator, OAuthTokens};
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::rate_limit::{AuthFailureLimiter, TokenRateLimiter};
use crate::readiness::ReadinessProbe;
use scim::Registry;
use scim::patch::PatchOptions;
use std::sync::Arc;
use store::{Health, OAuthClients, OutboxReader, Resources, Tokens};

/// What every handler shares. Of the store it holds only what handlers use: SCIM resources,
/// tokens, OAuth client checks, the outbox's figures and the database's health; never the
/// outbox's claims or the Coder mapping, which are the worker's.
pub struct AppState {
    pub resources: Resources,
    pub tokens: Tokens,
    pub oauth_clients: OAuthClients,
    pub outbox: OutboxReader,
    pub health: Health,
    pub registry: &'static Registry,
    pub config: ServerConfig,
    pub auth: Authenticator,
    pub limiter: TokenRateLimiter,
    pub auth_failures: AuthFailureLimiter,
    pub metrics: Metrics,
    pub readiness: Arc<dyn ReadinessProbe>,
    /// The Entra-compatible PATCH behaviour (see `scim::patch::PatchOptions`).
    pub patch_options: PatchOptions,
    /// What `/metrics` and `/readyz` last read from the store.
    pub ops_cache: crate::handlers::health::OpsCache,
    /// RFC 9865 cursors, sealed with a key the replicas share through the database.
    pub cursors: crate::cursor::Cursors,
    pub clock: Arc<dyn clock::Clock>,
    pub ids: Arc<dyn clock::IdSource>,
}

impl AppState {
    pub fn new(
        config: ServerConfig,
        deps: ServerDeps,
        jwt: Option<JwtValidator>,
        oauth: Option<OAuthTokens>,
    ) -> AppState {
        AppState {
            auth: Authenticator::new(
                deps.store.tokens(),
                deps.store.oauth_clients(),
                config.token_cache_ttl,
                jwt,
                oauth,
                deps.clock.clone(),
            ),
            limiter: TokenRateLimiter::new(config.rate_limit_per_second, config.rate_limit_burst),
            auth_failures: AuthFailureLimiter::new(
                config.auth_failure_rate_limit_per_second,
                config.auth_failure_rate_limit_burst,
                deps.clock.clone(),
            ),
            resources: deps.store.resources(),
            tokens: deps.store.tokens(),
            oauth_clients: deps.store.oauth_clients(),
            outbox: deps.store.outbox().reader(),
            health: deps.store.health(),
            registry: Registry::standard(),
            patch_options: PatchOptions {
                roles: config.roles.clone(),
                entitlements: config.entitlements.clone(),
                ..PatchOptions::default()
            },
            config,
            metrics: deps.metrics,
            readiness: deps.readiness,
            ops_cache: Default::default(),
            cursors: crate::cursor::Cursors::new(
                deps.store.service_secrets(),
                deps.clock.clone(),
                deps.ids.clone(),
            ),
            clock: deps.clock,
            ids: deps.ids,
        }
    }
}
