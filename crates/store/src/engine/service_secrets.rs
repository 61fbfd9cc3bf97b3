//! Secrets the bridge makes for itself and every replica shares (see `Store::service_secret`).

use super::Backend;
use crate::error::{StoreError, StoreResult};

impl Backend {
    pub(crate) async fn service_secret(&self, name: &str, len: usize) -> StoreResult<Vec<u8>> {
        let read = || {
            sqlx::query_scalar::<_, Vec<u8>>("SELECT secret FROM service_secrets WHERE name = $1")
                .bind(name.to_string())
        };
        if let Some(secret) = read().fetch_optional(&self.read).await? {
            return Ok(secret);
        }
        let mut fresh = vec![0u8; len];
        self.shared.ids.fill(&mut fresh);
        // Replicas starting together race here: the first insert wins and everyone reads it.
        let mut writer = self.writer().await?;
        let conn = writer.get()?;
        sqlx::query(
            "INSERT INTO service_secrets (name, secret, created) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.to_string())
        .bind(fresh)
        .bind(self.now())
        .execute(&mut *conn)
        .await?;
        let secret = read().fetch_one(&mut *conn).await?;
        if secret.len() < len {
            return Err(StoreError::invalid_value(format!(
                "the stored secret \"{name}\" is shorter than {len} bytes"
            )));
        }
        Ok(secret)
    }
}
