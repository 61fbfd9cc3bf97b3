use crate::on_backend;
use crate::{CoderGroup, CoderUser, CoderUserIntent, Store, StoreResult};

/// The worker's mapping from SCIM Users and Groups to the Coder users and groups it made or
/// adopted, and the Coder user creates it is about to send.
#[derive(Debug, Clone)]
pub struct CoderMap {
    store: Store,
}

impl CoderMap {
    pub(crate) fn new(store: Store) -> CoderMap {
        CoderMap { store }
    }

    /// The Coder user a SCIM User maps to.
    pub async fn user_get(&self, scim_id: &str) -> StoreResult<Option<CoderUser>> {
        on_backend!(&self.store, b => b.coder_user_get(scim_id).await)
    }

    /// The mapping holding a Coder username, ignoring case.
    pub async fn user_by_username(&self, username: &str) -> StoreResult<Option<CoderUser>> {
        on_backend!(&self.store, b => b.coder_user_by_username(username).await)
    }

    /// The mapping to the Coder user with this id.
    pub async fn user_by_coder_id(
        &self,
        coder_user_id: uuid::Uuid,
    ) -> StoreResult<Option<CoderUser>> {
        on_backend!(&self.store, b => b.coder_user_by_coder_id(coder_user_id).await)
    }

    /// All user mappings, by username.
    pub async fn user_list(&self) -> StoreResult<Vec<CoderUser>> {
        on_backend!(&self.store, b => b.coder_user_list().await)
    }

    /// Insert or update a user mapping (`updated_at` is set from the clock). 409 when the Coder
    /// username is mapped to another SCIM user.
    pub async fn user_upsert(&self, user: &CoderUser) -> StoreResult<()> {
        on_backend!(&self.store, b => b.coder_user_upsert(user).await)
    }

    /// Save a mapping that changes which Coder user a SCIM User is (a creation, an adoption, a
    /// re-creation), removing the user's create intent and queueing `queue_groups` in the same
    /// transaction: a Coder group's membership is written by the group's own reconcile only, so
    /// the groups of a user that just got a Coder user must run again, and a crash cannot
    /// separate the two.
    pub async fn user_save(&self, user: &CoderUser, queue_groups: &[String]) -> StoreResult<()> {
        on_backend!(&self.store, b => b.coder_user_save(user, queue_groups).await)
    }

    /// Remove a user mapping; false if there was none.
    pub async fn user_delete(&self, scim_id: &str) -> StoreResult<bool> {
        on_backend!(&self.store, b => b.coder_user_delete(scim_id).await)
    }

    /// Record the Coder user create about to be sent for `intent.scim_id` (replacing an
    /// earlier one).
    pub async fn intent_record(&self, intent: &CoderUserIntent) -> StoreResult<()> {
        on_backend!(&self.store, b => b.coder_user_intent_record(intent).await)
    }

    /// The create last recorded for a SCIM User and not yet followed by a saved mapping.
    pub async fn intent_get(&self, scim_id: &str) -> StoreResult<Option<CoderUserIntent>> {
        on_backend!(&self.store, b => b.coder_user_intent_get(scim_id).await)
    }

    /// Forget a SCIM User's create intent; false if there was none.
    pub async fn intent_delete(&self, scim_id: &str) -> StoreResult<bool> {
        on_backend!(&self.store, b => b.coder_user_intent_delete(scim_id).await)
    }

    /// The Coder group a SCIM Group maps to.
    pub async fn group_get(&self, scim_id: &str) -> StoreResult<Option<CoderGroup>> {
        on_backend!(&self.store, b => b.coder_group_get(scim_id).await)
    }

    /// All group mappings, by name.
    pub async fn group_list(&self) -> StoreResult<Vec<CoderGroup>> {
        on_backend!(&self.store, b => b.coder_group_list().await)
    }

    /// Insert or update a group mapping (`updated_at` is set from the clock).
    pub async fn group_upsert(&self, group: &CoderGroup) -> StoreResult<()> {
        on_backend!(&self.store, b => b.coder_group_upsert(group).await)
    }

    /// Remove a group mapping; false if there was none.
    pub async fn group_delete(&self, scim_id: &str) -> StoreResult<bool> {
        on_backend!(&self.store, b => b.coder_group_delete(scim_id).await)
    }
}
