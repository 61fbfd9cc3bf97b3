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
use store::Store;

pub struct AppState {
    pub store: Store,
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
                deps.store.clone(),
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
            store: deps.store,
            registry: Registry::standard(),
            patch_options: PatchOptions {
                roles: config.roles.clone(),
                ..PatchOptions::default()
            },
            config,
            metrics: deps.metrics,
            readiness: deps.readiness,
            ops_cache: Default::default(),
            clock: deps.clock,
            ids: deps.ids,
        }
    }
}
