//! The access tokens of the bridge's own token endpoint (`/oauth/token`, RFC 6749 §4.4): HS256
//! JWTs (RFC 9068 claims) signed with a key every replica holds, so each replica verifies them
//! without a database read.
//!
//! Keys rotate like the audit keys: the first signs, every configured key verifies. A token
//! names its key by `kid` (an HMAC of a fixed message under the key, so it reveals nothing of
//! the key); a token naming no configured key, another algorithm, another issuer or audience,
//! or an expired `exp`, is refused.

use crate::config::OAuthConfig;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use store::{Scope, Scopes};

/// The `iss` of every access token the bridge issues.
pub const OAUTH_ISSUER: &str = "scim-bridge";

/// The `aud` of every access token the bridge issues: its SCIM API.
pub const OAUTH_AUDIENCE: &str = "scim-bridge/scim/v2";

/// What a key's id is the HMAC of.
const KEY_ID_MESSAGE: &[u8] = b"scim-bridge oauth signing key id";

/// How far the replicas' clocks may disagree about `exp` and `iat`.
const LEEWAY_SECS: u64 = 30;

/// The shortest signing key accepted, in bytes (`openssl rand -hex 32` gives 64).
pub const MIN_SIGNING_KEY_LEN: usize = 32;

/// Why the OAuth settings cannot be used; reported at start-up.
#[derive(Debug, thiserror::Error)]
#[error("OAuth signing keys: {0}")]
pub struct OAuthConfigError(String);

/// The claims of an access token (RFC 9068 §2.2).
#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    iss: String,
    aud: String,
    /// The client id: RFC 9068 §2.2 makes the client the subject of a client credentials token.
    sub: String,
    client_id: String,
    /// The client's name, so the audit names the caller without a database read.
    client_name: String,
    /// Space-separated (RFC 9068 §2.2.3).
    scope: String,
    exp: u64,
    iat: u64,
    jti: String,
}

/// The caller a valid access token identifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthCaller {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Scopes,
}

/// An access token just issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Issues and verifies the bridge's access tokens.
pub struct OAuthTokens {
    keys: Vec<SigningKey>,
    ttl_secs: u64,
    clock: std::sync::Arc<dyn clock::Clock>,
    ids: std::sync::Arc<dyn clock::IdSource>,
}

/// Seconds since the epoch on `clock`, as JWT claims count time.
pub(crate) fn now_secs(clock: &dyn clock::Clock) -> u64 {
    u64::try_from(clock.now().timestamp()).unwrap_or(0)
}

impl OAuthTokens {
    /// Refuses an empty key list or a key shorter than [`MIN_SIGNING_KEY_LEN`].
    pub fn new(
        config: &OAuthConfig,
        clock: std::sync::Arc<dyn clock::Clock>,
        ids: std::sync::Arc<dyn clock::IdSource>,
    ) -> Result<OAuthTokens, OAuthConfigError> {
        if config.signing_keys.is_empty() {
            return Err(OAuthConfigError("no key is configured".into()));
        }
        let mut keys = Vec::new();
        for (n, secret) in config.signing_keys.iter().enumerate() {
            if secret.len() < MIN_SIGNING_KEY_LEN {
                return Err(OAuthConfigError(format!(
                    "key {} is shorter than {MIN_SIGNING_KEY_LEN} bytes",
                    n + 1
                )));
            }
            let encoding = EncodingKey::from_secret(secret);
            let mac = jsonwebtoken::crypto::sign(KEY_ID_MESSAGE, &encoding, Algorithm::HS256)
                .map_err(|e| OAuthConfigError(format!("key {}: {e}", n + 1)))?;
            keys.push(SigningKey {
                kid: mac.chars().take(16).collect(),
                encoding,
                decoding: DecodingKey::from_secret(secret),
            });
        }
        Ok(OAuthTokens {
            keys,
            ttl_secs: config.token_ttl.as_secs().max(1),
            clock,
            ids,
        })
    }

    /// A token for `client` holding `scopes`, valid for the configured lifetime from `now`
    /// (seconds since the epoch).
    pub fn issue(
        &self,
        client_id: &str,
        client_name: &str,
        scopes: Scopes,
        now: u64,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        // `new` refuses an empty key list.
        let Some(key) = self.keys.first() else {
            return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into());
        };
        let claims = AccessClaims {
            iss: OAUTH_ISSUER.to_string(),
            aud: OAUTH_AUDIENCE.to_string(),
            sub: client_id.to_string(),
            client_id: client_id.to_string(),
            client_name: client_name.to_string(),
            scope: scopes.to_string(),
            exp: now + self.ttl_secs,
            iat: now,
            jti: self.ids.uuid_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        // RFC 9068 §2.1: an access token says what it is.
        header.typ = Some("at+jwt".to_string());
        let access_token = encode(&header, &claims, &key.encoding)?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.ttl_secs,
        })
    }

    /// The caller of a valid access token; `None` for anything else.
    pub fn validate(&self, token: &str) -> Option<OAuthCaller> {
        let header = decode_header(token).ok()?;
        // The algorithm is the key's, never the token's (RFC 8725 §3.1).
        if header.alg != Algorithm::HS256 {
            return None;
        }
        let kid = header.kid?;
        let key = self.keys.iter().find(|k| k.kid == kid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[OAUTH_ISSUER]);
        validation.set_audience(&[OAUTH_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let claims = decode::<AccessClaims>(token, &key.decoding, &validation)
            .ok()?
            .claims;
        if claims.sub != claims.client_id
            || claims.iat > now_secs(self.clock.as_ref()) + LEEWAY_SECS
        {
            return None;
        }
        let scopes = claims
            .scope
            .split(' ')
            .filter_map(|name| Scope::from_str(name).ok())
            .fold(Scopes::NONE, Scopes::with);
        Some(OAuthCaller {
            client_id: claims.client_id,
            client_name: claims.client_name,
            scopes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tokens(keys: &[&[u8]]) -> OAuthTokens {
        OAuthTokens::new(
            &OAuthConfig {
                signing_keys: keys.iter().map(|k| k.to_vec()).collect(),
                token_ttl: Duration::from_secs(3600),
            },
            std::sync::Arc::new(clock::SystemClock),
            std::sync::Arc::new(clock::SystemIds),
        )
        .unwrap()
    }

    const OLD: &[u8] = b"0123456789abcdef0123456789abcdef-old";
    const NEW: &[u8] = b"0123456789abcdef0123456789abcdef-new";

    #[test]
    fn tokens_verify_under_every_configured_key_and_no_other() {
        let now = now_secs(&clock::SystemClock);
        let before = tokens(&[OLD]);
        let issued = before.issue("scimc_1", "entra", Scopes::READ, now).unwrap();
        assert_eq!(issued.expires_in, 3600);
        let caller = before.validate(&issued.access_token).unwrap();
        assert_eq!(
            caller,
            OAuthCaller {
                client_id: "scimc_1".into(),
                client_name: "entra".into(),
                scopes: Scopes::READ
            }
        );
        // Rotated: the new key signs, the old one still verifies what it signed.
        let rotated = tokens(&[NEW, OLD]);
        assert!(rotated.validate(&issued.access_token).is_some());
        let fresh = rotated.issue("scimc_1", "entra", Scopes::ALL, now).unwrap();
        assert!(before.validate(&fresh.access_token).is_none());
        assert!(tokens(&[NEW]).validate(&issued.access_token).is_none());
        // Expired beyond the leeway.
        let stale = before
            .issue(
                "scimc_1",
                "entra",
                Scopes::ALL,
                now - 3600 - LEEWAY_SECS - 5,
            )
            .unwrap();
        assert!(before.validate(&stale.access_token).is_none());
    }

    #[test]
    fn short_or_missing_keys_are_refused() {
        let config = |keys: Vec<Vec<u8>>| OAuthConfig {
            signing_keys: keys,
            token_ttl: Duration::from_secs(3600),
        };
        let new = |keys| {
            OAuthTokens::new(
                &config(keys),
                std::sync::Arc::new(clock::SystemClock),
                std::sync::Arc::new(clock::SystemIds),
            )
        };
        assert!(new(vec![]).is_err());
        assert!(new(vec![b"short".to_vec()]).is_err());
        assert!(new(vec![NEW.to_vec(), b"short".to_vec()]).is_err());
    }
}
