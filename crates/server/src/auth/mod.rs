//! Who is calling: `Authorization: Bearer <token>` holding a bridge token (checked in constant
//! time against the store's digests), an access token from the bridge's own `/oauth/token`
//! whose client is not revoked, or, when configured, a valid JWT.

mod jwt;
mod oauth;

pub use jwt::{JwtConfigError, JwtValidator};
pub(crate) use oauth::now_secs;
pub use oauth::{OAUTH_AUDIENCE, OAUTH_ISSUER, OAuthConfigError, OAuthTokens};

use crate::error::{ApiError, ApiResult};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use store::{OAuthClients, Scopes, TokenVerifier, Tokens, VerifiedToken};

/// A refresh after a miss waits at least this long since the last one, so a stream of bad
/// tokens cannot turn into a stream of database reads, while a token made a moment ago works
/// on its first use.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// `last_used_at` is written at most this often per token (the store asks for about once a
/// minute: it is a write).
const MARK_USED_INTERVAL: Duration = Duration::from_secs(60);

/// The authenticated caller. `name` is the token name (`oauth:<client name>` for an access
/// token of the bridge's token endpoint, `jwt:<sub>` for another JWT), used for the audit log, the rate limit and logs; `scopes` is what the credential may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub scopes: Scopes,
}

/// Checks bearer credentials. Shared by every worker thread.
pub struct Authenticator {
    tokens: Tokens,
    oauth_clients: OAuthClients,
    ttl: Duration,
    snapshot: RwLock<Option<Snapshot>>,
    refreshing: tokio::sync::Mutex<()>,
    last_marked: Mutex<HashMap<String, tokio::time::Instant>>,
    jwt: Option<JwtValidator>,
    oauth: Option<OAuthTokens>,
    clock: Arc<dyn clock::Clock>,
}

struct Snapshot {
    verifier: Arc<TokenVerifier>,
    /// OAuth clients whose access tokens are refused before they expire.
    revoked_clients: Arc<HashSet<String>>,
    taken: tokio::time::Instant,
}

impl Authenticator {
    pub fn new(
        tokens: Tokens,
        oauth_clients: OAuthClients,
        ttl: Duration,
        jwt: Option<JwtValidator>,
        oauth: Option<OAuthTokens>,
        clock: Arc<dyn clock::Clock>,
    ) -> Authenticator {
        Authenticator {
            tokens,
            oauth_clients,
            ttl,
            snapshot: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            last_marked: Mutex::new(HashMap::new()),
            jwt,
            oauth,
            clock,
        }
    }

    /// The token endpoint's signer, when OAuth is configured.
    pub fn oauth(&self) -> Option<&OAuthTokens> {
        self.oauth.as_ref()
    }

    /// Authenticate an `Authorization` header value. Anything but a valid credential is 401.
    /// `before_costly` runs before work a stream of bad credentials could multiply (a reload of
    /// the tokens after a miss, a JWT signature check); its error is returned as it is.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        before_costly: &dyn Fn() -> ApiResult<()>,
    ) -> ApiResult<Principal> {
        let token = bearer_token(authorization)?;
        if let Some(principal) = self.verify_bridge_token(token, before_costly).await? {
            self.mark_used(&principal.name);
            return Ok(principal);
        }
        // A JWT is three base64url parts; a bridge token never contains a dot.
        if token.split('.').count() != 3 || (self.oauth.is_none() && self.jwt.is_none()) {
            return Err(ApiError::Unauthorized("the bearer token is not valid"));
        }
        // The bridge's own access tokens cost one HMAC, no more than a bridge token's digest:
        // like a known bridge token, a valid one passes even from an address over its
        // failure limit.
        if let Some(caller) = self.oauth.as_ref().and_then(|o| o.validate(token)) {
            // The snapshot the bridge-token check just used is at most `ttl` old: a revoked
            // client's tokens stop working within it on every replica.
            if self.client_revoked(&caller.client_id) {
                return Err(ApiError::Unauthorized(
                    "the OAuth client of this access token was revoked",
                ));
            }
            return Ok(Principal {
                name: format!("oauth:{}", caller.client_name),
                scopes: caller.scopes,
            });
        }
        if self.jwt.is_none() {
            return Err(ApiError::Unauthorized("the bearer token is not valid"));
        }
        before_costly()?;
        if let Some(caller) = self.jwt.as_ref().and_then(|jwt| jwt.validate(token)) {
            return Ok(Principal {
                name: format!("jwt:{}", caller.sub),
                scopes: caller.scopes,
            });
        }
        Err(ApiError::Unauthorized("the bearer token is not valid"))
    }

    /// Whether the current snapshot lists `client_id` as revoked (no snapshot: not known to
    /// be).
    fn client_revoked(&self, client_id: &str) -> bool {
        self.snapshot
            .read()
            .ok()
            .and_then(|guard| {
                guard
                    .as_ref()
                    .map(|s| s.revoked_clients.contains(client_id))
            })
            .unwrap_or(false)
    }

    async fn verify_bridge_token(
        &self,
        token: &str,
        before_costly: &dyn Fn() -> ApiResult<()>,
    ) -> ApiResult<Option<Principal>> {
        let (verifier, age) = match self.current() {
            Some((verifier, age)) if age < self.ttl => (verifier, age),
            _ => (self.refresh(self.ttl).await?, Duration::ZERO),
        };
        if let Some(found) = verifier.check(token) {
            return Ok(Some(principal(found)));
        }
        if age < MIN_REFRESH_INTERVAL {
            return Ok(None);
        }
        // A miss on an older snapshot: the token may have been made since.
        before_costly()?;
        let verifier = self.refresh(MIN_REFRESH_INTERVAL).await?;
        Ok(verifier.check(token).map(principal))
    }

    fn current(&self) -> Option<(Arc<TokenVerifier>, Duration)> {
        let guard = self.snapshot.read().ok()?;
        guard
            .as_ref()
            .map(|s| (s.verifier.clone(), self.clock.elapsed(s.taken)))
    }

    /// Reload the active tokens unless another request did so less than `fresh_enough` ago
    /// (one reload serves every request waiting on it).
    async fn refresh(&self, fresh_enough: Duration) -> ApiResult<Arc<TokenVerifier>> {
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some((verifier, age)) = self.current()
            && age < fresh_enough
        {
            return Ok(verifier);
        }
        // Stamped before the read: a revocation committed while the read runs is then seen
        // no later than `ttl` after it.
        let taken = self.clock.instant();
        let verifier = Arc::new(self.tokens.verifier().await?);
        let revoked_clients = match self.oauth {
            Some(_) => self.oauth_clients.revoked().await?.into_iter().collect(),
            None => HashSet::new(),
        };
        if let Ok(mut guard) = self.snapshot.write() {
            *guard = Some(Snapshot {
                verifier: verifier.clone(),
                revoked_clients: Arc::new(revoked_clients),
                taken,
            });
        }
        Ok(verifier)
    }

    /// Record the token's use in the background, at most once a minute per token.
    fn mark_used(&self, name: &str) {
        let due = match self.last_marked.lock() {
            Ok(mut marks) => {
                let due = marks
                    .get(name)
                    .is_none_or(|at| self.clock.elapsed(*at) >= MARK_USED_INTERVAL);
                if due {
                    marks.insert(name.to_string(), self.clock.instant());
                }
                due
            }
            Err(_) => false,
        };
        if due {
            let tokens = self.tokens.clone();
            let name = name.to_string();
            tokio::spawn(async move {
                if let Err(e) = tokens.mark_used(&name).await {
                    tracing::warn!(token = %name, error = %e, "could not record the token's last use");
                }
            });
        }
    }
}

/// The caller a bridge token identifies: its name and the scopes stored with it.
fn principal(token: VerifiedToken<'_>) -> Principal {
    Principal {
        name: token.name.to_string(),
        scopes: token.scopes,
    }
}

/// RFC 6750 §2.1: `Bearer <token>`; the scheme is matched in any case (RFC 7235 §2.1), since
/// some clients send `bearer`.
fn bearer_token(authorization: Option<&str>) -> ApiResult<&str> {
    let header = authorization.ok_or(ApiError::Unauthorized(
        "an Authorization: Bearer token is required",
    ))?;
    let (scheme, token) = header
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::Unauthorized(
            "the Authorization header must be \"Bearer <token>\"",
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_the_token_required() {
        assert_eq!(bearer_token(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("bearer  abc ")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("BEARER abc")).unwrap(), "abc");
        assert!(bearer_token(None).is_err());
        assert!(bearer_token(Some("Bearer")).is_err());
        assert!(bearer_token(Some("Bearer   ")).is_err());
        assert!(bearer_token(Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l")).is_err());
        assert!(bearer_token(Some("Bearerabc")).is_err());
    }

    /// A fresh SQLite store (it lives as long as the directory), with a token per name.
    async fn store_with_tokens(
        tokens: &[(&str, Scopes)],
    ) -> (tempfile::TempDir, store::Store, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("auth.db").display());
        let store = store::Store::connect(&url, store::StoreOptions::default())
            .await
            .unwrap();
        let mut secrets = Vec::new();
        for (name, scopes) in tokens {
            secrets.push(store.tokens().create(name, None, *scopes).await.unwrap());
        }
        (dir, store, secrets)
    }

    /// Bridge tokens from `store` (snapshot kept for `token_cache_ttl`), JWTs from `jwt`.
    fn authenticator(
        store: &store::Store,
        token_cache_ttl: Duration,
        jwt: Option<JwtValidator>,
    ) -> Authenticator {
        Authenticator::new(
            store.tokens(),
            store.oauth_clients(),
            token_cache_ttl,
            jwt,
            None,
            Arc::new(clock::SystemClock),
        )
    }

    #[tokio::test]
    async fn a_bridge_token_authenticates_with_the_scopes_stored_with_it() {
        let (_dir, store, tokens) =
            store_with_tokens(&[("reader", Scopes::READ), ("writer", Scopes::ALL)]).await;
        let (reader, writer) = (&tokens[0], &tokens[1]);
        let auth = authenticator(&store, Duration::from_secs(1), None);
        let principal = auth
            .authenticate(Some(&format!("Bearer {reader}")), &|| Ok(()))
            .await
            .unwrap();
        assert_eq!(
            principal,
            Principal {
                name: "reader".into(),
                scopes: Scopes::READ
            }
        );
        let principal = auth
            .authenticate(Some(&format!("Bearer {writer}")), &|| Ok(()))
            .await
            .unwrap();
        assert_eq!(principal.scopes, Scopes::ALL);
        assert!(
            auth.authenticate(Some("Bearer scimb_nope"), &|| Ok(()))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_refused_address_still_passes_a_known_token_and_gets_no_costly_check() {
        let (_dir, store, tokens) = store_with_tokens(&[("okta", Scopes::ALL)]).await;
        let token = &tokens[0];
        let jwt = JwtValidator::new(
            &crate::config::JwtConfig::new(
                "https://issuer.example/",
                "bridge",
                crate::config::JwtKey::Hs256(
                    b"an hs256 secret of at least thirty-two bytes".to_vec(),
                ),
            ),
            Arc::new(clock::SystemClock),
        )
        .unwrap();
        let auth = authenticator(&store, Duration::from_secs(60), Some(jwt));
        let refused = || {
            Err(ApiError::AuthFailuresLimited {
                retry_after_secs: 7,
            })
        };
        let known = auth
            .authenticate(Some(&format!("Bearer {token}")), &refused)
            .await
            .unwrap();
        assert_eq!(known.name, "okta");
        // A JWT-shaped credential would cost a signature check: refused before it.
        assert!(matches!(
            auth.authenticate(Some("Bearer a.b.c"), &refused).await,
            Err(ApiError::AuthFailuresLimited {
                retry_after_secs: 7
            })
        ));
        // A miss on a fresh snapshot costs nothing: a plain 401.
        assert!(matches!(
            auth.authenticate(Some("Bearer scimb_nope"), &refused).await,
            Err(ApiError::Unauthorized(_))
        ));
    }
}
