//! The worker's mapping between SCIM resources and Coder users and groups, and the intents
//! of Coder user creates.

use super::outbox::enqueue_in;
use super::{Backend, Conn, unique_violation};
use crate::coder_map::{CoderGroup, CoderUser, CoderUserIntent};
use crate::error::StoreResult;
use crate::outbox::OutboxPriority;
use crate::resource::fold_case;
use chrono::{DateTime, Utc};
use scim::ResourceKind;

const CODER_USER_COLUMNS: &str =
    "scim_id, coder_user_id, coder_username, login_type, adopted, last_applied, updated_at";

const CODER_GROUP_COLUMNS: &str =
    "scim_id, coder_group_id, organization_id, coder_name, updated_at";

async fn upsert_coder_user(
    conn: &mut Conn,
    user: &CoderUser,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO coder_users (scim_id, coder_user_id, coder_username, coder_username_key, login_type, \
                                  adopted, last_applied, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (scim_id) DO UPDATE SET coder_user_id = excluded.coder_user_id, \
           coder_username = excluded.coder_username, coder_username_key = excluded.coder_username_key, \
           login_type = excluded.login_type, adopted = excluded.adopted, \
           last_applied = excluded.last_applied, updated_at = excluded.updated_at",
    )
    .bind(&user.scim_id)
    .bind(user.coder_user_id.to_string())
    .bind(&user.coder_username)
    .bind(fold_case(&user.coder_username))
    .bind(&user.login_type)
    .bind(user.adopted)
    .bind(user.last_applied.to_string())
    .bind(now)
    .execute(conn)
    .await
    .map_err(|e| {
        unique_violation(e, || {
            format!(
                "Coder username \"{}\" is already mapped to another user",
                user.coder_username
            )
        })
    })?;
    Ok(())
}

impl Backend {
    /// Delete the row of `table` (a `scim_id`-keyed table of this file); false if there was none.
    async fn delete_by_scim_id(&self, table: &str, scim_id: &str) -> StoreResult<bool> {
        let deleted = sqlx::query(&format!("DELETE FROM {table} WHERE scim_id = $1"))
            .bind(scim_id)
            .execute(self.writer().await?.get()?)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    /// The user mapping whose `column` holds `value`.
    async fn coder_user_where(
        &self,
        column: &str,
        value: String,
    ) -> StoreResult<Option<CoderUser>> {
        let sql = format!("SELECT {CODER_USER_COLUMNS} FROM coder_users WHERE {column} = $1");
        Ok(sqlx::query_as(&sql)
            .bind(value)
            .fetch_optional(&self.read)
            .await?)
    }

    pub(crate) async fn coder_user_get(&self, scim_id: &str) -> StoreResult<Option<CoderUser>> {
        self.coder_user_where("scim_id", scim_id.to_string()).await
    }

    pub(crate) async fn coder_user_by_username(
        &self,
        username: &str,
    ) -> StoreResult<Option<CoderUser>> {
        self.coder_user_where("coder_username_key", fold_case(username))
            .await
    }

    pub(crate) async fn coder_user_by_coder_id(
        &self,
        coder_user_id: uuid::Uuid,
    ) -> StoreResult<Option<CoderUser>> {
        self.coder_user_where("coder_user_id", coder_user_id.to_string())
            .await
    }

    pub(crate) async fn coder_user_list(&self) -> StoreResult<Vec<CoderUser>> {
        let sql =
            format!("SELECT {CODER_USER_COLUMNS} FROM coder_users ORDER BY coder_username_key");
        Ok(sqlx::query_as(&sql).fetch_all(&self.read).await?)
    }

    pub(crate) async fn coder_user_upsert(&self, user: &CoderUser) -> StoreResult<()> {
        upsert_coder_user(self.writer().await?.get()?, user, self.now()).await
    }

    pub(crate) async fn coder_user_save(
        &self,
        user: &CoderUser,
        queue_groups: &[String],
    ) -> StoreResult<()> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        upsert_coder_user(tx.conn().await?, user, now).await?;
        sqlx::query("DELETE FROM coder_user_intents WHERE scim_id = $1")
            .bind(&user.scim_id)
            .execute(tx.conn().await?)
            .await?;
        for group in queue_groups {
            enqueue_in(
                tx.conn().await?,
                ResourceKind::Group,
                group,
                OutboxPriority::Normal,
                now,
            )
            .await?;
        }
        if queue_groups.is_empty() {
            tx.commit().await?;
            Ok(())
        } else {
            self.commit_queued(tx).await
        }
    }

    pub(crate) async fn coder_user_intent_record(
        &self,
        intent: &CoderUserIntent,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO coder_user_intents (scim_id, coder_username, email, created_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scim_id) DO UPDATE SET coder_username = excluded.coder_username, \
               email = excluded.email, created_at = excluded.created_at",
        )
        .bind(&intent.scim_id)
        .bind(&intent.coder_username)
        .bind(&intent.email)
        .bind(self.now())
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(())
    }

    pub(crate) async fn coder_user_intent_get(
        &self,
        scim_id: &str,
    ) -> StoreResult<Option<CoderUserIntent>> {
        Ok(sqlx::query_as(
            "SELECT scim_id, coder_username, email, created_at FROM coder_user_intents \
             WHERE scim_id = $1",
        )
        .bind(scim_id)
        .fetch_optional(&self.read)
        .await?)
    }

    pub(crate) async fn coder_user_intent_delete(&self, scim_id: &str) -> StoreResult<bool> {
        self.delete_by_scim_id("coder_user_intents", scim_id).await
    }

    pub(crate) async fn coder_user_delete(&self, scim_id: &str) -> StoreResult<bool> {
        self.delete_by_scim_id("coder_users", scim_id).await
    }

    pub(crate) async fn coder_group_get(&self, scim_id: &str) -> StoreResult<Option<CoderGroup>> {
        let sql = format!("SELECT {CODER_GROUP_COLUMNS} FROM coder_groups WHERE scim_id = $1");
        Ok(sqlx::query_as(&sql)
            .bind(scim_id)
            .fetch_optional(&self.read)
            .await?)
    }

    pub(crate) async fn coder_group_list(&self) -> StoreResult<Vec<CoderGroup>> {
        let sql = format!("SELECT {CODER_GROUP_COLUMNS} FROM coder_groups ORDER BY coder_name");
        Ok(sqlx::query_as(&sql).fetch_all(&self.read).await?)
    }

    pub(crate) async fn coder_group_upsert(&self, group: &CoderGroup) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO coder_groups (scim_id, coder_group_id, organization_id, coder_name, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (scim_id) DO UPDATE SET coder_group_id = excluded.coder_group_id, \
               organization_id = excluded.organization_id, coder_name = excluded.coder_name, \
               updated_at = excluded.updated_at",
        )
        .bind(&group.scim_id)
        .bind(group.coder_group_id.to_string())
        .bind(group.organization_id.to_string())
        .bind(&group.coder_name)
        .bind(self.now())
        .execute(self.writer().await?.get()?)
        .await?;
        Ok(())
    }

    pub(crate) async fn coder_group_delete(&self, scim_id: &str) -> StoreResult<bool> {
        self.delete_by_scim_id("coder_groups", scim_id).await
    }
}
