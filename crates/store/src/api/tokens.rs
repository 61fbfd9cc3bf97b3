use crate::on_backend;
use crate::{Scopes, Store, StoreResult, TokenImport, TokenInfo, TokenVerifier};
use chrono::{DateTime, Utc};

/// Bearer tokens: only their SHA-256 is stored. Making, importing and revoking one is audited.
#[derive(Debug, Clone)]
pub struct Tokens {
    store: Store,
}

impl Tokens {
    pub(crate) fn new(store: Store) -> Tokens {
        Tokens { store }
    }

    /// Make a bearer token named `name` holding `scopes` (source [`TokenSource::Cli`](crate::TokenSource::Cli)) and
    /// return it; only its SHA-256 is kept. Several tokens may be active (rotation), but not two
    /// with the same name (409). An empty scope set is refused.
    pub async fn create(
        &self,
        name: &str,
        expires_at: Option<DateTime<Utc>>,
        scopes: Scopes,
    ) -> StoreResult<String> {
        on_backend!(&self.store, b => b.token_create(name, expires_at, scopes).await)
    }

    /// Register a token supplied from the IdP tokens file (source [`TokenSource::File`](crate::TokenSource::File));
    /// idempotent. A different token under an existing name replaces it, other scopes for the
    /// same token replace its scopes; a revoked token is refused.
    pub async fn import(
        &self,
        name: &str,
        plaintext: &str,
        scopes: Scopes,
    ) -> StoreResult<TokenImport> {
        on_backend!(&self.store, b => b.token_import(name, plaintext, scopes).await)
    }

    /// All tokens ever made, oldest first, without their secrets.
    pub async fn list(&self) -> StoreResult<Vec<TokenInfo>> {
        on_backend!(&self.store, b => b.token_list().await)
    }

    /// Revoke the active token named `name` (404 if none).
    pub async fn revoke(&self, name: &str) -> StoreResult<()> {
        on_backend!(&self.store, b => b.token_revoke(name).await)
    }

    /// Revoke every active token imported from the tokens file whose name is not in
    /// `names_in_file`, each with an audit record (actor `tokens-file`), in one transaction;
    /// returns the names revoked. Tokens made with `token create` are never touched.
    pub async fn revoke_removed_from_file(
        &self,
        names_in_file: &[&str],
    ) -> StoreResult<Vec<String>> {
        on_backend!(&self.store, b => b.token_revoke_removed_from_file(names_in_file).await)
    }

    /// Record that `name` was used. A write per call: the server should call it at most about
    /// once a minute per token.
    pub async fn mark_used(&self, name: &str) -> StoreResult<()> {
        on_backend!(&self.store, b => b.token_mark_used(name).await)
    }

    /// A snapshot of the active tokens for constant-time checks of presented tokens.
    pub async fn verifier(&self) -> StoreResult<TokenVerifier> {
        on_backend!(&self.store, b => b.token_verifier().await)
    }
}
