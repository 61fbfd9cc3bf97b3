//! Bearer tokens: made by the CLI or imported from the IdP tokens file, listed, revoked.

use super::{Backend, Conn, unique_violation};
use crate::audit::AuditEntry;
use crate::clock::IdSource;
use crate::error::{StoreError, StoreResult};
use crate::scope::Scopes;
use crate::token;
use crate::token::{TokenImport, TokenInfo, TokenSource, TokenVerifier, VerifierEntry};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The audit actor of what the IdP tokens file does at start-up.
const TOKENS_FILE_ACTOR: &str = "tokens-file";

pub(super) fn token_audit(
    ids: &dyn IdSource,
    operation: &str,
    name: &str,
    change: Value,
) -> AuditEntry {
    AuditEntry {
        request_id: ids.uuid_v4().to_string(),
        actor: None,
        source_addr: None,
        operation: operation.to_string(),
        resource_type: Some("Token".to_string()),
        resource_id: Some(name.to_string()),
        change,
        result: "ok".to_string(),
    }
}

/// A token about to be stored.
struct NewToken<'a> {
    name: &'a str,
    plaintext: &'a str,
    scopes: Scopes,
    source: TokenSource,
    expires_at: Option<DateTime<Utc>>,
}

async fn insert_token(conn: &mut Conn, new: &NewToken<'_>, now: DateTime<Utc>) -> StoreResult<()> {
    let name = new.name;
    sqlx::query(
        "INSERT INTO api_tokens (name, token_sha256, scopes, source, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(name)
    .bind(hex::encode(token::digest(new.plaintext)))
    .bind(new.scopes.to_string())
    .bind(new.source.as_str())
    .bind(now)
    .bind(new.expires_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        unique_violation(e, || {
            format!("a token named \"{name}\" is already active; revoke it first")
        })
    })?;
    Ok(())
}

/// Revoke the active token named `name`; false when there is none.
async fn revoke_active(conn: &mut Conn, name: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let revoked =
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(name)
            .execute(conn)
            .await?;
    Ok(revoked.rows_affected() > 0)
}

impl Backend {
    pub(crate) async fn token_create(
        &self,
        name: &str,
        expires_at: Option<DateTime<Utc>>,
        scopes: Scopes,
    ) -> StoreResult<String> {
        token::check_name(name)?;
        token::check_scopes(scopes)?;
        let now = self.now();
        let mut tx = self.begin_write().await?;
        // An expired token keeps its name until revoked; a new token under the name retires it.
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 \
             WHERE name = $2 AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1",
        )
        .bind(now)
        .bind(name)
        .execute(tx.conn().await?)
        .await?;
        let plaintext = token::generate(self.shared.ids.as_ref());
        let new = NewToken {
            name,
            plaintext: &plaintext,
            scopes,
            source: TokenSource::Cli,
            expires_at,
        };
        insert_token(tx.conn().await?, &new, now).await?;
        let change = json!({ "expires_at": expires_at, "scopes": scopes.to_string() });
        let entry = token_audit(self.shared.ids.as_ref(), "token.create", name, change);
        self.commit_audited(tx, &entry, now).await?;
        Ok(plaintext)
    }

    pub(crate) async fn token_import(
        &self,
        name: &str,
        plaintext: &str,
        scopes: Scopes,
    ) -> StoreResult<TokenImport> {
        token::check_name(name)?;
        token::check_imported_token(plaintext)?;
        token::check_scopes(scopes)?;
        let now = self.now();
        let digest = hex::encode(token::digest(plaintext));
        let mut tx = self.begin_write().await?;
        let existing: Option<(String, Option<DateTime<Utc>>, String, String)> = sqlx::query_as(
            "SELECT name, revoked_at, scopes, source FROM api_tokens WHERE token_sha256 = $1",
        )
        .bind(&digest)
        .fetch_optional(tx.conn().await?)
        .await?;
        match existing {
            Some((existing_name, None, stored, source)) if existing_name == name => {
                let rescoped = token::stored_scopes(name, &stored) != scopes;
                // A token the file names is the file's, even one made before sources were
                // recorded: removing its line revokes it.
                let adopted = TokenSource::from_stored(&source) != TokenSource::File;
                if !rescoped && !adopted {
                    return Ok(TokenImport::Unchanged);
                }
                sqlx::query(
                    "UPDATE api_tokens SET scopes = $1, source = $2 WHERE token_sha256 = $3",
                )
                .bind(scopes.to_string())
                .bind(TokenSource::File.as_str())
                .bind(&digest)
                .execute(tx.conn().await?)
                .await?;
                let change =
                    json!({ "scopes": scopes.to_string(), "source": TokenSource::File.as_str() });
                let entry = token_audit(self.shared.ids.as_ref(), "token.import", name, change);
                self.commit_audited(tx, &entry, now).await?;
                return Ok(if rescoped {
                    TokenImport::Rescoped
                } else {
                    TokenImport::Unchanged
                });
            }
            Some((existing_name, Some(_), _, _)) if existing_name == name => {
                // A stale secret file must not bring a revoked token back.
                return Err(StoreError::invalid_value(format!(
                    "token \"{name}\" was revoked; supply a new one"
                )));
            }
            Some(_) => {
                return Err(StoreError::Uniqueness(
                    "this token is already registered under another name".into(),
                ));
            }
            None => {}
        }
        // A token made with `token create` is the operator's: the file never replaces it.
        let cli_owned: Option<(String,)> = sqlx::query_as(
            "SELECT name FROM api_tokens WHERE name = $1 AND revoked_at IS NULL AND source = $2",
        )
        .bind(name)
        .bind(TokenSource::Cli.as_str())
        .fetch_optional(tx.conn().await?)
        .await?;
        if cli_owned.is_some() {
            return Err(StoreError::Uniqueness(format!(
                "an active token named \"{name}\" was made with `token create`; the tokens file \
                 does not replace it: revoke it first or use another name"
            )));
        }
        // The secret file is the source of truth: a different token under the same name
        // replaces the old one.
        let rotated = revoke_active(tx.conn().await?, name, now).await?;
        let new = NewToken {
            name,
            plaintext,
            scopes,
            source: TokenSource::File,
            expires_at: None,
        };
        insert_token(tx.conn().await?, &new, now).await?;
        let change = json!({ "rotated": rotated, "scopes": scopes.to_string() });
        let entry = token_audit(self.shared.ids.as_ref(), "token.import", name, change);
        self.commit_audited(tx, &entry, now).await?;
        Ok(if rotated {
            TokenImport::Rotated
        } else {
            TokenImport::Created
        })
    }

    pub(crate) async fn token_list(&self) -> StoreResult<Vec<TokenInfo>> {
        type Row = (
            String,
            String,
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT name, scopes, source, created_at, expires_at, revoked_at, last_used_at \
             FROM api_tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(name, scopes, source, created_at, expires_at, revoked_at, last_used_at)| {
                    TokenInfo {
                        scopes: token::stored_scopes(&name, &scopes),
                        source: TokenSource::from_stored(&source),
                        name,
                        created_at,
                        expires_at,
                        revoked_at,
                        last_used_at,
                    }
                },
            )
            .collect())
    }

    pub(crate) async fn token_revoke(&self, name: &str) -> StoreResult<()> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        if !revoke_active(tx.conn().await?, name, now).await? {
            return Err(StoreError::NotFound(format!(
                "no active token named \"{name}\""
            )));
        }
        let entry = token_audit(self.shared.ids.as_ref(), "token.revoke", name, json!({}));
        self.commit_audited(tx, &entry, now).await?;
        Ok(())
    }

    pub(crate) async fn token_revoke_removed_from_file(
        &self,
        names_in_file: &[&str],
    ) -> StoreResult<Vec<String>> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let active: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM api_tokens WHERE source = $1 AND revoked_at IS NULL ORDER BY name",
        )
        .bind(TokenSource::File.as_str())
        .fetch_all(tx.conn().await?)
        .await?;
        let removed: Vec<String> = active
            .into_iter()
            .map(|(name,)| name)
            .filter(|name| !names_in_file.contains(&name.as_str()))
            .collect();
        if removed.is_empty() {
            return Ok(removed);
        }
        for name in &removed {
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 \
                 WHERE name = $2 AND source = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(name)
            .bind(TokenSource::File.as_str())
            .execute(tx.conn().await?)
            .await?;
            let mut entry = token_audit(
                self.shared.ids.as_ref(),
                "token.revoke",
                name,
                json!({ "reason": "removed from the tokens file" }),
            );
            entry.actor = Some(TOKENS_FILE_ACTOR.to_string());
            tx.append_audit(&entry, now, self.audit_key()).await?;
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(removed)
    }

    pub(crate) async fn token_mark_used(&self, name: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(self.now())
        .bind(name)
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(())
    }

    pub(crate) async fn token_verifier(&self) -> StoreResult<TokenVerifier> {
        let rows: Vec<(String, String, String, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT name, scopes, token_sha256, expires_at FROM api_tokens WHERE revoked_at IS NULL",
        )
        .fetch_all(&self.read)
        .await?;
        let entries = rows
            .into_iter()
            .filter_map(|(name, scopes, digest, expires_at)| {
                let digest = <[u8; 32]>::try_from(hex::decode(digest).ok()?).ok()?;
                Some(VerifierEntry {
                    scopes: token::stored_scopes(&name, &scopes),
                    name,
                    digest,
                    expires_at,
                })
            })
            .collect();
        Ok(TokenVerifier::new(entries, self.shared.clock.clone()))
    }
}
