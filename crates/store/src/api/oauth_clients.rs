use crate::on_backend;
use crate::{ClientCheck, NewOAuthClient, OAuthClientInfo, Scopes, Store, StoreResult};

/// OAuth clients of the client credentials grant: only their secret's SHA-256 is stored.
#[derive(Debug, Clone)]
pub struct OAuthClients {
    store: Store,
}

impl OAuthClients {
    pub(crate) fn new(store: Store) -> OAuthClients {
        OAuthClients { store }
    }

    /// Make an OAuth client named `name` whose access tokens may hold at most `scopes`, and
    /// return its id and secret; only the secret's SHA-256 is kept. 409 when an active client
    /// has the name; an empty scope set is refused. Audited.
    pub async fn create(&self, name: &str, scopes: Scopes) -> StoreResult<NewOAuthClient> {
        on_backend!(&self.store, b => b.oauth_client_create(name, scopes).await)
    }

    /// All clients ever made, oldest first, without their secrets.
    pub async fn list(&self) -> StoreResult<Vec<OAuthClientInfo>> {
        on_backend!(&self.store, b => b.oauth_client_list().await)
    }

    /// Revoke the active client named `name` (404 if none): it gets no new access token.
    /// Audited.
    pub async fn revoke(&self, name: &str) -> StoreResult<()> {
        on_backend!(&self.store, b => b.oauth_client_revoke(name).await)
    }

    /// Check a presented client id and secret (the secret in constant time).
    pub async fn check(&self, client_id: &str, secret: &str) -> StoreResult<ClientCheck> {
        on_backend!(&self.store, b => b.oauth_client_check(client_id, secret).await)
    }

    /// The ids of revoked clients, whose access tokens still unexpired the server refuses.
    pub async fn revoked(&self) -> StoreResult<Vec<String>> {
        on_backend!(&self.store, b => b.oauth_clients_revoked().await)
    }
}
