//! The SQL of OAuth clients (see `oauth_client.rs`), compiled for each backend with the engine.

use super::tokens::token_audit;
use super::{Backend, unique_violation};
use crate::audit::AuditEntry;
use crate::clock::IdSource;
use crate::error::{StoreError, StoreResult};
use crate::oauth_client::{self, ClientCheck, NewOAuthClient, OAuthClientInfo};
use crate::scope::Scopes;
use crate::token;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

type ClientRow = (String, String, String, DateTime<Utc>, Option<DateTime<Utc>>);

/// A client row with its secret's digest.
type CheckRow = (
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    String,
);

const CLIENT_COLUMNS: &str = "name, client_id, scopes, created_at, revoked_at";

fn info((name, client_id, scopes, created_at, revoked_at): ClientRow) -> OAuthClientInfo {
    OAuthClientInfo {
        scopes: token::stored_scopes(&name, &scopes),
        name,
        client_id,
        created_at,
        revoked_at,
    }
}

impl Backend {
    pub(crate) async fn oauth_client_create(
        &self,
        name: &str,
        scopes: Scopes,
    ) -> StoreResult<NewOAuthClient> {
        token::check_name(name)?;
        token::check_scopes(scopes)?;
        let now = self.now();
        let client = NewOAuthClient {
            client_id: oauth_client::generate_id(self.shared.ids.as_ref()),
            client_secret: oauth_client::generate_secret(self.shared.ids.as_ref()),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO oauth_clients (name, client_id, secret_sha256, scopes, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(&client.client_id)
        .bind(oauth_client::secret_digest(&client.client_secret))
        .bind(scopes.to_string())
        .bind(now)
        .execute(tx.conn().await?)
        .await
        .map_err(|e| {
            unique_violation(e, || {
                format!("an OAuth client named \"{name}\" is already active; revoke it first")
            })
        })?;
        let change = json!({ "client_id": client.client_id, "scopes": scopes.to_string() });
        let entry = client_audit(
            self.shared.ids.as_ref(),
            "oauth_client.create",
            name,
            change,
        );
        self.commit_audited(tx, &entry, now).await?;
        Ok(client)
    }

    pub(crate) async fn oauth_client_list(&self) -> StoreResult<Vec<OAuthClientInfo>> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_at, id");
        let rows: Vec<ClientRow> = sqlx::query_as(&sql).fetch_all(&self.read).await?;
        Ok(rows.into_iter().map(info).collect())
    }

    pub(crate) async fn oauth_client_revoke(&self, name: &str) -> StoreResult<()> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let revoked: Option<(String,)> = sqlx::query_as(
            "UPDATE oauth_clients SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL \
             RETURNING client_id",
        )
        .bind(now)
        .bind(name)
        .fetch_optional(tx.conn().await?)
        .await?;
        let Some((client_id,)) = revoked else {
            return Err(StoreError::NotFound(format!(
                "no active OAuth client named \"{name}\""
            )));
        };
        let entry = client_audit(
            self.shared.ids.as_ref(),
            "oauth_client.revoke",
            name,
            json!({ "client_id": client_id }),
        );
        self.commit_audited(tx, &entry, now).await?;
        Ok(())
    }

    pub(crate) async fn oauth_client_check(
        &self,
        client_id: &str,
        secret: &str,
    ) -> StoreResult<ClientCheck> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS}, secret_sha256 FROM oauth_clients WHERE client_id = $1"
        );
        let row: Option<CheckRow> = sqlx::query_as(&sql)
            .bind(client_id)
            .fetch_optional(&self.read)
            .await?;
        let Some((name, client_id, scopes, created_at, revoked_at, digest)) = row else {
            return Ok(ClientCheck::Invalid);
        };
        if !oauth_client::secret_matches(secret, &digest) {
            return Ok(ClientCheck::Invalid);
        }
        if revoked_at.is_some() {
            return Ok(ClientCheck::Revoked);
        }
        Ok(ClientCheck::Valid(info((
            name, client_id, scopes, created_at, revoked_at,
        ))))
    }

    pub(crate) async fn oauth_clients_revoked(&self) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT client_id FROM oauth_clients WHERE revoked_at IS NOT NULL")
                .fetch_all(&self.read)
                .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}

/// A token-style audit record about the client `name`.
fn client_audit(ids: &dyn IdSource, operation: &str, name: &str, change: Value) -> AuditEntry {
    let mut entry = token_audit(ids, operation, name, change);
    entry.resource_type = Some("OAuthClient".to_string());
    entry
}
