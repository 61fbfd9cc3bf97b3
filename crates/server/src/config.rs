//! What the binary tells the service: where to listen, the public base URL, limits, the
//! optional JWT validation and the OAuth token endpoint's keys. The names and defaults follow
//! `docs/CONFIGURATION.md`.

use crate::client::TrustedProxies;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use store::Scopes;
use url::Url;

/// Settings of the SCIM HTTP service.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The address to bind (`SCIM_BRIDGE_LISTEN`).
    pub listen: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served apart from the SCIM API
    /// (`SCIM_BRIDGE_OPS_LISTEN`); `None`: on `listen`, beside it.
    pub ops_listen: Option<SocketAddr>,
    /// The public SCIM base URL (`…/scim/v2`) used in `meta.location`, `Location` and `$ref`;
    /// `None`: `http://` and the socket's own address, or what a trusted proxy forwards.
    pub base_url: Option<Url>,
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers are believed
    /// (`SCIM_BRIDGE_TRUSTED_PROXIES`); from anyone else they are ignored.
    pub trusted_proxies: TrustedProxies,
    /// Requests per second per token; `0` turns the limit off.
    pub rate_limit_per_second: u32,
    /// Burst size per token.
    pub rate_limit_burst: u32,
    /// Failed authentications per second per client address; `0` turns the limit off.
    pub auth_failure_rate_limit_per_second: u32,
    /// Burst of failed authentications per client address.
    pub auth_failure_rate_limit_burst: u32,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `/Bulk` operation count limit, advertised in `/ServiceProviderConfig`.
    pub bulk_max_operations: usize,
    /// `/Bulk` body size limit, advertised in `/ServiceProviderConfig`.
    pub bulk_max_payload_bytes: usize,
    /// JWT bearer validation, for IdPs that use OAuth.
    pub jwt: Option<JwtConfig>,
    /// The bridge's own OAuth 2.0 token endpoint (`/oauth/token`, client credentials grant);
    /// `None`: it issues no access token.
    pub oauth: Option<OAuthConfig>,
    /// HTTP worker threads.
    pub workers: usize,
    /// How long a snapshot of the active bearer tokens is trusted: a revoked token stops
    /// working within this time (plus one read of the token table) on every replica. Each
    /// replica reads the active tokens at most once per this interval, and only while
    /// requests arrive.
    pub token_cache_ttl: Duration,
    /// How long a graceful stop waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// The Coder roles an IdP may grant on a User's `roles` (`[roles.grantable]`), listed at
    /// `/Roles`; by default none, and `roles` is not checked.
    pub roles: std::sync::Arc<scim::roles::RoleCatalog>,
    /// The Coder entitlements (organization memberships) an IdP may grant on a User's
    /// `entitlements` (`[entitlements.grantable]`), listed at `/Entitlements`; by default none,
    /// and `entitlements` is not checked.
    pub entitlements: std::sync::Arc<scim::entitlements::EntitlementCatalog>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ops_listen: None,
            base_url: None,
            trusted_proxies: TrustedProxies::none(),
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            auth_failure_rate_limit_per_second: 5,
            auth_failure_rate_limit_burst: 20,
            max_body_bytes: 1024 * 1024,
            bulk_max_operations: 1000,
            bulk_max_payload_bytes: 1024 * 1024,
            jwt: None,
            oauth: None,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            token_cache_ttl: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
            roles: Default::default(),
            entitlements: Default::default(),
        }
    }
}

/// JWT bearer validation: a token passes when it is signed by `key` with the key's own
/// algorithm and carries this `iss`, this `aud`, a `sub`, an unexpired `exp`, a reached `nbf`
/// (when present) and, with an allowlist, an allowed client.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// The verification key.
    pub key: JwtKey,
    /// Clients (`azp`, `appid` or `client_id`) whose tokens are accepted; empty accepts any.
    pub allowed_clients: Vec<String>,
    /// The scopes of a token without an `scp` or `scope` claim.
    pub default_scopes: Scopes,
    /// How often a JWKS file is looked at for new content.
    pub jwks_recheck: Duration,
}

impl JwtConfig {
    /// Any client, both scopes by default, the JWKS file re-checked every 5 s.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, key: JwtKey) -> Self {
        JwtConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            key,
            allowed_clients: Vec::new(),
            default_scopes: Scopes::ALL,
            jwks_recheck: Duration::from_secs(5),
        }
    }
}

/// Where JWT signatures are checked against.
#[derive(Clone)]
pub enum JwtKey {
    /// An HS256 shared secret.
    Hs256(Vec<u8>),
    /// An RS256 public key in PEM.
    Rs256Pem(Vec<u8>),
    /// A JWKS document (JSON); keys are selected by the token's `kid` and verify with their
    /// own `alg`.
    Jwks(String),
    /// A JWKS file, re-read when its content changes (keys rotate without a restart).
    JwksFile(PathBuf),
}

impl fmt::Debug for JwtKey {
    // The secret must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtKey::Hs256(_) => f.write_str("Hs256(<redacted>)"),
            JwtKey::Rs256Pem(_) => f.write_str("Rs256Pem(..)"),
            JwtKey::Jwks(_) => f.write_str("Jwks(..)"),
            JwtKey::JwksFile(path) => write!(f, "JwksFile({})", path.display()),
        }
    }
}

/// The access tokens `/oauth/token` issues: HS256 JWTs every replica holding the same keys
/// verifies without a database read.
#[derive(Clone)]
pub struct OAuthConfig {
    /// HMAC keys, each at least 32 bytes: the first signs new tokens, every one verifies (the
    /// others are earlier keys kept while the tokens they signed live out their lifetime).
    pub signing_keys: Vec<Vec<u8>>,
    /// How long an access token lives (`expires_in`).
    pub token_ttl: Duration,
}

impl fmt::Debug for OAuthConfig {
    // The keys must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("signing_keys", &self.signing_keys.len())
            .field("token_ttl", &self.token_ttl)
            .finish()
    }
}
