//! The level-triggered core: [`Reconciler::reconcile_user`] and [`Reconciler::reconcile_group`]
//! read the desired state from the store and the actual state from Coder and apply the
//! difference, so a retry, a duplicate outbox row or a crash half-way is harmless.
//!
//! Every reconcile that changes Coder appends one audit record listing the calls made and
//! their outcomes (reads are not listed: they change nothing).

use crate::capabilities::resolve_organization;
use crate::directory::UserDirectory;
use crate::error::{ReconcileError, ReconcileResult};
use crate::observer::SyncObserver;
use crate::policy::{OrganizationRef, Policy};
use crate::status::StatusHandle;
use chrono::{DateTime, Utc};
use coder::types::Organization;
use coder::{CoderClient, CoderError};
use scim::ResourceKind;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use store::{
    Audit, AuditEntry, Clock, CoderMap, IdSource, Outbox, ResourceReader, Store, SyncIssues,
};
use tokio::sync::RwLock;
use uuid::Uuid;

/// The audit actor of the worker's records.
pub const AUDIT_ACTOR: &str = "worker";
/// The audit actor of what an operator's command does (`scim-bridge agent token`).
pub const AUDIT_ACTOR_CLI: &str = "cli";

/// What one reconcile did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The Coder calls that change something, with their outcome (`ok` or the error).
    pub calls: Vec<Value>,
    /// Things an operator should know (adoption, a pending email, a delete that fell back).
    pub notes: Vec<String>,
    /// When Coder acknowledged a suspension of the user, if this reconcile suspended it.
    pub suspended_at: Option<DateTime<Utc>>,
    /// When the SCIM resource last changed (its `meta.lastModified`), if it exists.
    pub resource_changed_at: Option<DateTime<Utc>>,
}

/// One reconcile in progress: collects the report and writes its audit record.
#[derive(Debug)]
pub(crate) struct Run {
    pub kind: ResourceKind,
    pub id: String,
    pub report: Report,
    /// The resource's open issue types, read once when first needed: resolving an issue that
    /// is not open would cost a write per reconcile.
    open_issues: Option<Vec<String>>,
}

impl Run {
    pub fn new(kind: ResourceKind, id: &str) -> Run {
        Run {
            kind,
            id: id.to_owned(),
            report: Report::default(),
            open_issues: None,
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.report.notes.push(note.into());
    }
}

/// Whether Coder's licence includes groups (Premium), as last learnt from Coder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum GroupsLicence {
    /// Not asked yet: the next group reconcile reads the entitlements.
    Unknown,
    Unlicensed,
    Licensed,
}

impl GroupsLicence {
    fn from_licensed(licensed: bool) -> GroupsLicence {
        if licensed {
            GroupsLicence::Licensed
        } else {
            GroupsLicence::Unlicensed
        }
    }
}

/// A [`GroupsLicence`] the worker's tasks read and update without a lock.
#[derive(Debug)]
struct SharedGroupsLicence(AtomicU8);

impl SharedGroupsLicence {
    fn new() -> SharedGroupsLicence {
        SharedGroupsLicence(AtomicU8::new(GroupsLicence::Unknown as u8))
    }

    fn get(&self) -> GroupsLicence {
        match self.0.load(Ordering::Relaxed) {
            v if v == GroupsLicence::Licensed as u8 => GroupsLicence::Licensed,
            v if v == GroupsLicence::Unlicensed as u8 => GroupsLicence::Unlicensed,
            _ => GroupsLicence::Unknown,
        }
    }

    fn set(&self, licence: GroupsLicence) {
        self.0.store(licence as u8, Ordering::Relaxed);
    }
}

/// The parts of the store the worker uses. It reads SCIM resources and never writes them (a
/// [`ResourceReader`] has no write), drains the outbox, appends its audit records and keeps the
/// Coder mapping and the sync issues.
#[derive(Debug, Clone)]
pub struct SyncStore {
    pub resources: ResourceReader,
    pub outbox: Outbox,
    pub audit: Audit,
    pub coder_map: CoderMap,
    pub sync_issues: SyncIssues,
    /// The run's id source, the one the store was opened with ([`Store::ids`]).
    pub ids: Arc<dyn IdSource>,
}

impl From<&Store> for SyncStore {
    fn from(store: &Store) -> SyncStore {
        SyncStore {
            resources: store.resources().reader(),
            outbox: store.outbox(),
            audit: store.audit(),
            coder_map: store.coder_map(),
            sync_issues: store.sync_issues(),
            ids: store.ids(),
        }
    }
}

/// Applies the policy to one resource at a time. Shared by the worker's tasks, drift repair and
/// `scim-bridge reconcile`.
#[derive(Debug)]
pub struct Reconciler {
    pub(crate) store: SyncStore,
    pub(crate) client: CoderClient,
    pub(crate) policy: Arc<Policy>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) observer: Arc<dyn SyncObserver>,
    pub(crate) status: StatusHandle,
    organizations: RwLock<Vec<Organization>>,
    groups_licensed: SharedGroupsLicence,
    /// Coder's users' emails, so a new user needs no lookup before its create.
    pub(crate) directory: UserDirectory,
    /// Audit request ids, the worker's name and its backoff jitter.
    pub(crate) ids: Arc<dyn IdSource>,
}

impl Reconciler {
    /// A reconciler applying `policy` from `store` to the Coder behind `client`, drawing ids
    /// from the store's id source.
    pub fn new(
        store: SyncStore,
        client: CoderClient,
        policy: Arc<Policy>,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn SyncObserver>,
    ) -> Reconciler {
        Reconciler {
            ids: store.ids.clone(),
            store,
            client,
            policy,
            clock,
            observer,
            status: StatusHandle::default(),
            organizations: RwLock::new(Vec::new()),
            groups_licensed: SharedGroupsLicence::new(),
            directory: UserDirectory::default(),
        }
    }

    /// The same reconciler drawing ids (and jitter seeds) from `ids`.
    pub fn with_ids(mut self, ids: Arc<dyn IdSource>) -> Reconciler {
        self.ids = ids;
        self
    }

    /// The shared status this reconciler (and its worker) updates.
    pub fn status(&self) -> StatusHandle {
        self.status.clone()
    }

    /// The store it reads the desired state from.
    pub fn store(&self) -> &SyncStore {
        &self.store
    }

    /// The Coder client it applies changes with.
    pub fn client(&self) -> &CoderClient {
        &self.client
    }

    /// The mapping rules.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Run the capability and conflict check and record it in the status (also remembers
    /// whether groups are licensed).
    pub async fn check_capabilities(
        &self,
    ) -> Result<crate::capabilities::CapabilityReport, CoderError> {
        let result = crate::capabilities::check(&self.client, &self.policy).await;
        match &result {
            Ok(report) => {
                self.set_groups_licensed(report.groups_licensed);
                let report = report.clone();
                self.status.update(|s| {
                    s.coder_reachable = Some(true);
                    s.coder_authorised = Some(true);
                    s.capabilities = Some(report);
                });
            }
            Err(e) => self.note_coder_failure(e),
        }
        result
    }

    /// Record in the status what a failed call says about Coder's reachability and our token.
    pub(crate) fn note_coder_failure(&self, error: &CoderError) {
        self.status.update(|s| match error {
            CoderError::Auth { .. } => {
                s.coder_reachable = Some(true);
                s.coder_authorised = Some(false);
            }
            CoderError::Redirect { .. } => s.coder_reachable = Some(true),
            CoderError::Retryable { status: None, .. } => s.coder_reachable = Some(false),
            _ => {}
        });
    }

    pub(crate) fn set_groups_licensed(&self, licensed: bool) {
        self.groups_licensed
            .set(GroupsLicence::from_licensed(licensed));
    }

    /// Whether SCIM groups are mirrored to Coder: `groups.mirror` and Premium's groups.
    pub(crate) async fn mirroring_groups(&self) -> ReconcileResult<bool> {
        if !self.policy.groups.mirror {
            return Ok(false);
        }
        match self.groups_licensed.get() {
            GroupsLicence::Licensed => Ok(true),
            GroupsLicence::Unlicensed => Ok(false),
            GroupsLicence::Unknown => {
                let licensed = self
                    .client
                    .entitlements()
                    .await?
                    .allows(crate::capabilities::FEATURE_GROUPS);
                self.set_groups_licensed(licensed);
                Ok(licensed)
            }
        }
    }

    /// The id of the organization `key` names, from a cached list refreshed on a miss.
    pub(crate) async fn organization_id(&self, key: &OrganizationRef) -> ReconcileResult<Uuid> {
        if let Some(org) = resolve_organization(&self.organizations.read().await, key) {
            return Ok(org.id);
        }
        let fresh = self.client.organizations().await?;
        let found = resolve_organization(&fresh, key).map(|o| o.id);
        *self.organizations.write().await = fresh;
        found.ok_or_else(|| {
            ReconcileError::Unappliable(format!("organization {key:?} does not exist in Coder"))
        })
    }

    /// The organization new users join.
    pub(crate) async fn home_organization(&self) -> ReconcileResult<Uuid> {
        self.organization_id(&self.policy.users.organization).await
    }

    /// Make a Coder call that changes something, recording it and its outcome in the run.
    pub(crate) async fn call<T>(
        &self,
        run: &mut Run,
        operation: &'static str,
        target: Value,
        call: impl Future<Output = Result<T, CoderError>>,
    ) -> Result<T, CoderError> {
        let result = call.await;
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        run.report
            .calls
            .push(json!({ "call": operation, "target": target, "outcome": outcome }));
        result
    }

    /// Append the run's audit record when it changed Coder, noted something or failed.
    pub(crate) async fn finish(
        &self,
        run: &Run,
        result: &ReconcileResult<()>,
    ) -> ReconcileResult<()> {
        if let Err(e) = result {
            if let ReconcileError::Coder(coder) = e {
                self.note_coder_failure(coder);
            }
        } else {
            self.status.update(|s| {
                s.coder_reachable = Some(true);
                s.coder_authorised = Some(true);
            });
        }
        if run.report.calls.is_empty() && run.report.notes.is_empty() && result.is_ok() {
            return Ok(());
        }
        let entry = AuditEntry {
            request_id: format!("reconcile-{}", self.ids.uuid_v4()),
            actor: Some(AUDIT_ACTOR.to_owned()),
            source_addr: None,
            operation: format!("reconcile {}", run.kind.name()),
            resource_type: Some(run.kind.name().to_owned()),
            resource_id: Some(run.id.clone()),
            change: json!({ "coder_calls": run.report.calls, "notes": run.report.notes }),
            result: match result {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.to_string(),
            },
        };
        self.store.audit.append(&entry).await?;
        Ok(())
    }

    /// Record an open issue for the run's resource (for `scim-bridge status`) and note it in the
    /// run's audit record.
    pub(crate) async fn flag(
        &self,
        run: &mut Run,
        issue_type: &str,
        detail: String,
    ) -> ReconcileResult<()> {
        self.record_issue(run, issue_type, &detail).await?;
        run.note(detail);
        Ok(())
    }

    /// Open (or refresh) the run's resource's `issue_type` issue.
    pub(crate) async fn record_issue(
        &self,
        run: &mut Run,
        issue_type: &str,
        detail: &str,
    ) -> ReconcileResult<()> {
        self.store
            .sync_issues
            .record(run.kind, &run.id, issue_type, detail)
            .await?;
        if let Some(open) = &mut run.open_issues
            && !open.iter().any(|t| t == issue_type)
        {
            open.push(issue_type.to_owned());
        }
        Ok(())
    }

    /// Mark the run's resource's `issue_type` issue resolved, if one is open.
    pub(crate) async fn resolve(&self, run: &mut Run, issue_type: &str) -> ReconcileResult<()> {
        if run.open_issues.is_none() {
            let open = self.store.sync_issues.list(false).await?;
            run.open_issues = Some(
                open.into_iter()
                    .filter(|i| i.kind == run.kind.name() && i.resource_id == run.id)
                    .map(|i| i.issue_type)
                    .collect(),
            );
        }
        if let Some(open) = &mut run.open_issues
            && let Some(at) = open.iter().position(|t| t == issue_type)
        {
            open.remove(at);
            self.store
                .sync_issues
                .resolve(run.kind, &run.id, issue_type)
                .await?;
        }
        Ok(())
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

impl Reconciler {
    /// Reconcile the resource of `kind` with this id, as an outbox row asks.
    pub async fn reconcile(&self, kind: ResourceKind, id: &str) -> ReconcileResult<Report> {
        match kind {
            ResourceKind::User => self.reconcile_user(id).await,
            ResourceKind::Group => self.reconcile_group(id).await,
            ResourceKind::Agent => self.reconcile_agent(id).await,
            // Stored and served; nothing of an application lives in Coder.
            ResourceKind::AgenticApplication => Ok(Report::default()),
        }
    }

    /// The stored resource, or `None` when it does not exist (deleted by the IdP).
    pub(crate) async fn stored(
        &self,
        kind: ResourceKind,
        id: &str,
        options: store::GetOptions,
    ) -> ReconcileResult<Option<store::StoredResource>> {
        match self.store.resources.get(kind, id, options).await {
            Ok(resource) => Ok(Some(resource)),
            Err(store::StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_licence_is_unknown_until_learnt_and_then_remembered() {
        let licence = SharedGroupsLicence::new();
        assert_eq!(licence.get(), GroupsLicence::Unknown);
        licence.set(GroupsLicence::from_licensed(true));
        assert_eq!(licence.get(), GroupsLicence::Licensed);
        licence.set(GroupsLicence::from_licensed(false));
        assert_eq!(licence.get(), GroupsLicence::Unlicensed);
    }
}
