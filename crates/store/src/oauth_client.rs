//! OAuth 2.0 clients of the client credentials grant (RFC 6749 §4.4): an IdP (Entra's gallery
//! apps) trades a client id and secret at `/oauth/token` for a short-lived access token. Like
//! bearer tokens, only the SHA-256 of the secret is stored; it is shown once, when the client is
//! made.

use crate::clock::IdSource;
use crate::scope::Scopes;
use crate::token;
use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;

/// Every client id starts with this, so one is told apart from a secret or a bearer token.
pub const CLIENT_ID_PREFIX: &str = "scimc_";

/// What the store knows about a client; never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClientInfo {
    /// The operator's name for it (`entra`): the audit names the caller `oauth:<name>`.
    pub name: String,
    /// The public client identifier the IdP sends.
    pub client_id: String,
    /// What its access tokens may do at most.
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A client just made: its id and its secret, which exists nowhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct NewOAuthClient {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for NewOAuthClient {
    // The secret must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewOAuthClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The outcome of checking a client's id and secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCheck {
    /// The id names an active client and the secret is its secret.
    Valid(OAuthClientInfo),
    /// The id and secret are a revoked client's.
    Revoked,
    /// No client has this id, or the secret is not its secret.
    Invalid,
}

/// A fresh client id: the prefix and 128 random bits in hex.
pub(crate) fn generate_id(ids: &dyn IdSource) -> String {
    let mut id = [0u8; 16];
    ids.fill(&mut id);
    format!("{CLIENT_ID_PREFIX}{}", hex::encode(id))
}

/// A fresh secret: 256 random bits, with the bridge's token prefix so secret scanners and the
/// audit redaction recognise it.
pub(crate) fn generate_secret(ids: &dyn IdSource) -> String {
    token::generate(ids)
}

/// The stored form of a secret.
pub(crate) fn secret_digest(secret: &str) -> String {
    hex::encode(token::digest(secret))
}

/// Whether `presented` is the secret stored as `stored_digest`, compared in constant time.
pub(crate) fn secret_matches(presented: &str, stored_digest: &str) -> bool {
    let Ok(stored) = hex::decode(stored_digest) else {
        return false;
    };
    token::digest(presented).ct_eq(stored.as_slice()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemIds;

    #[test]
    fn ids_and_secrets_are_prefixed_random_and_secrets_match_only_themselves() {
        let (a, b) = (generate_id(&SystemIds), generate_id(&SystemIds));
        assert!(a.starts_with(CLIENT_ID_PREFIX));
        assert_eq!(a.len(), CLIENT_ID_PREFIX.len() + 32);
        assert_ne!(a, b);
        let secret = generate_secret(&SystemIds);
        let stored = secret_digest(&secret);
        assert!(secret_matches(&secret, &stored));
        assert!(!secret_matches(&format!("{secret}x"), &stored));
        assert!(!secret_matches("", &stored));
        assert!(!secret_matches(&secret, "not hex"));
        let shown = format!(
            "{:?}",
            NewOAuthClient {
                client_id: a,
                client_secret: secret.clone()
            }
        );
        assert!(!shown.contains(&secret), "{shown}");
    }
}
