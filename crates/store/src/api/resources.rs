use crate::on_backend;
use crate::{GetOptions, ListPage, Store, StoreResult, StoredResource, WriteContext};
use scim::ResourceKind;
use scim::patch::{PatchOptions, PatchRequest};
use scim::query::ListQuery;
use scim::resource::ResourceBody;

/// SCIM Users and Groups: what the HTTP service reads and writes. Every write is one
/// transaction holding the change, an outbox row naming the resource and an audit record.
#[derive(Debug, Clone)]
pub struct Resources {
    reader: ResourceReader,
}

/// Reads of SCIM Users and Groups, and nothing else: the worker's view of the desired state.
#[derive(Debug, Clone)]
pub struct ResourceReader {
    store: Store,
}

impl Resources {
    pub(crate) fn new(store: Store) -> Resources {
        Resources {
            reader: ResourceReader { store },
        }
    }

    fn store(&self) -> &Store {
        &self.reader.store
    }

    /// The read-only view of the same resources.
    pub fn reader(&self) -> ResourceReader {
        self.reader.clone()
    }

    /// Create a resource (POST). The store generates the id. 409 `uniqueness` when the User's
    /// `userName` or the Group's `displayName` is taken ignoring case; 400 `invalidValue` when
    /// it is missing or a member does not exist. A Group's `members` become membership rows.
    pub async fn create(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        body: ResourceBody,
    ) -> StoreResult<StoredResource> {
        let password_supplied = body.password.is_some();
        on_backend!(self.store(), b => b.create(ctx, kind, body.attrs, password_supplied).await)
    }

    /// [`ResourceReader::get`].
    pub async fn get(
        &self,
        kind: ResourceKind,
        id: &str,
        options: GetOptions,
    ) -> StoreResult<StoredResource> {
        self.reader.get(kind, id, options).await
    }

    /// [`ResourceReader::list`].
    pub async fn list(
        &self,
        kind: ResourceKind,
        query: &ListQuery,
        options: GetOptions,
    ) -> StoreResult<ListPage> {
        self.reader.list(kind, query, options).await
    }

    /// Replace a resource (PUT) with `body`. See [`Resources::replace_with`].
    pub async fn replace(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
        body: ResourceBody,
    ) -> StoreResult<StoredResource> {
        self.replace_with(ctx, kind, id, if_match, |_| Ok(body))
            .await
    }

    /// Replace a resource (PUT) with the body `next` computes from the current resource (e.g.
    /// with `scim::resource::replace`, which keeps readOnly and immutable attributes). `next`
    /// runs inside the write transaction with the row locked, so nothing changes between the
    /// read and the write. `current.members` is not loaded (`None`). 404 when absent, 412 when
    /// `if_match` names another version. The result carries no members or groups.
    pub async fn replace_with<F>(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
        next: F,
    ) -> StoreResult<StoredResource>
    where
        F: FnOnce(&StoredResource) -> scim::ScimResult<ResourceBody> + Send,
    {
        let next = |current: &StoredResource| {
            let body = next(current)?;
            Ok((body.attrs, body.password.is_some()))
        };
        on_backend!(self.store(), b => b.replace_with(ctx, kind, id, if_match, next).await)
    }

    /// Apply a PATCH (RFC 7644 §3.5.2) in one transaction holding the row lock, so parallel
    /// PATCHes to one group never lose an update. Group member operations become row inserts
    /// and deletes without loading the members (`scim::patch::plan_group_patch`); re-adding a
    /// member is a no-op. A password in the request is dropped (see the crate docs). The result
    /// carries no members or groups.
    pub async fn patch(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
        request: &PatchRequest,
        options: &PatchOptions,
    ) -> StoreResult<StoredResource> {
        let mut request = request.clone();
        let password_supplied = request.take_password()?.is_some();
        on_backend!(self.store(), b => b.patch(ctx, kind, id, if_match, &request, password_supplied, options).await)
    }

    /// Delete a resource; its membership rows go with it. 404 when absent (also on a second
    /// DELETE), 412 on an `if_match` mismatch.
    pub async fn delete(
        &self,
        ctx: &WriteContext,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
    ) -> StoreResult<()> {
        on_backend!(self.store(), b => b.delete(ctx, kind, id, if_match).await)
    }
}

impl ResourceReader {
    /// Read a resource. `options` says whether to load a Group's members / a User's groups.
    pub async fn get(
        &self,
        kind: ResourceKind,
        id: &str,
        options: GetOptions,
    ) -> StoreResult<StoredResource> {
        on_backend!(&self.store, b => b.get(kind, id, options).await)
    }

    /// List resources matching `query`'s filter, sorted by `sortBy` or else in the stable
    /// (created, id) order, paged by `startIndex`/`count` (count capped at
    /// `scim::query::MAX_RESULTS`). `options` says whether to load members/groups for the
    /// page (use [`GetOptions::for_projection`]).
    pub async fn list(
        &self,
        kind: ResourceKind,
        query: &ListQuery,
        options: GetOptions,
    ) -> StoreResult<ListPage> {
        on_backend!(&self.store, b => b.list(kind, query, options).await)
    }

    /// The ids of the Agents whose `owners` name User `owner_id` (entries of type `User` or
    /// untyped), through the owner index: no Agent is read.
    pub async fn agents_owned_by(&self, owner_id: &str) -> StoreResult<Vec<String>> {
        on_backend!(&self.store, b => b.agents_owned_by(owner_id).await)
    }
}
