//! Reconciling one SCIM User with its Coder user: the account, its status (offboarding included)
//! and its roles.

use crate::agents::ISSUE_SERVICE_ACCOUNTS_UNLICENSED;
use crate::desired::{DesiredUser, GroupIdentity};
use crate::diff::{org_role_changes, user_diff};
use crate::error::{ReconcileError, ReconcileResult};
use crate::naming::username_candidate;
use crate::policy::{OrganizationRef, OutsideDomain, UserDeletePolicy};
use crate::reconciler::{Reconciler, Report, Run};
use coder::CoderError;
use coder::types::{
    CreateUserRequest, ROLE_OWNER, UpdateUserProfileRequest, User, WorkspaceStatus,
};
use scim::ResourceKind;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use store::{CoderUser, CoderUserIntent, GetOptions};
use uuid::Uuid;

/// Most collision suffixes tried for one username (`alice-smith-2` … `alice-smith-50`).
const MAX_USERNAME_SUFFIX: u32 = 50;

/// Open-issue keywords (`sync_issues.issue_type`).
pub const ISSUE_LOGIN_TYPE_MISMATCH: &str = "login_type_mismatch";
pub const ISSUE_EMAIL_PENDING: &str = "email_pending";
pub const ISSUE_NOT_PROVISIONABLE: &str = "not_provisionable";
pub const ISSUE_DELETE_BLOCKED: &str = "delete_blocked_by_workspaces";
pub const ISSUE_EMAIL_CONFLICT: &str = "email_conflict";
pub const ISSUE_USERNAME_CONFLICT: &str = "username_conflict";
pub const ISSUE_COULD_NOT_SUSPEND: &str = "could_not_suspend";
pub const ISSUE_BRIDGE_ACCOUNT: &str = "bridge_account";
pub const ISSUE_ADOPTION_REFUSED: &str = "adoption_refused";
/// The email is outside `[users] allowed_email_domains`: Coder refuses the user's OIDC logins.
pub const ISSUE_EMAIL_OUTSIDE_DOMAINS: &str = "email_outside_domains";

/// What the bridge last applied to a Coder user, kept in the mapping's `last_applied`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct LastApplied {
    /// The username base the mapping's username was derived from: a changed base is a rename.
    pub username_base: String,
    pub email: String,
    pub name: String,
    pub active: bool,
    pub site_roles: Vec<String>,
    /// The rule-relevant SCIM groups the user was in (see [`DesiredUser::rule_groups`]).
    pub rule_groups: Vec<String>,
    /// The open login_type mismatch, as reported (so it is audited once).
    pub flagged_login_type: Option<String>,
}

impl LastApplied {
    pub fn of(mapping: &CoderUser) -> LastApplied {
        serde_json::from_value(mapping.last_applied.clone()).unwrap_or_default()
    }

    fn from_desired(desired: &DesiredUser) -> LastApplied {
        LastApplied {
            username_base: desired.username_base.clone(),
            email: desired.email.clone(),
            name: desired.name.clone(),
            active: desired.active,
            site_roles: desired.roles.site.iter().cloned().collect(),
            rule_groups: desired.rule_groups.clone(),
            flagged_login_type: None,
        }
    }
}

fn login_type_name(login_type: coder::types::LoginType) -> String {
    serde_json::to_value(login_type)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Reconciler {
    /// Bring the Coder user of SCIM User `scim_id` to the desired state: create or adopt it,
    /// update it, suspend or activate it, or apply the delete policy when the SCIM User is gone.
    pub async fn reconcile_user(&self, scim_id: &str) -> ReconcileResult<Report> {
        self.reconcile_account(ResourceKind::User, scim_id).await
    }

    /// Reconcile the Coder account of a SCIM User or Agent (both map to a Coder user).
    pub(crate) async fn reconcile_account(
        &self,
        kind: ResourceKind,
        scim_id: &str,
    ) -> ReconcileResult<Report> {
        let mut run = Run::new(kind, scim_id);
        let result = self.account(scim_id, &mut run).await;
        self.finish(&run, &result).await?;
        result.map(|()| run.report)
    }

    async fn account(&self, scim_id: &str, run: &mut Run) -> ReconcileResult<()> {
        let resource = self.stored_account(run, scim_id).await?;
        let mapping = self.store.coder_map.user_get(scim_id).await?;
        let Some(resource) = resource else {
            let mapping = match mapping {
                Some(mapping) => Some(mapping),
                None => self.map_lost_create(scim_id, run).await?,
            };
            if run.kind == ResourceKind::User {
                self.queue_owned_agents(scim_id, false).await?;
            }
            self.resolve(run, ISSUE_EMAIL_OUTSIDE_DOMAINS).await?;
            return match mapping {
                Some(mapping) => self.remove_user(mapping, run).await,
                None => Ok(()),
            };
        };
        if run.kind == ResourceKind::User {
            self.queue_owned_agents(scim_id, scim::resource::active(&resource.attrs))
                .await?;
        }
        run.report.resource_changed_at = Some(resource.last_modified);
        let group_ids = crate::explain::group_ids(&resource);
        let groups = self.group_identities(&group_ids).await?;
        let desired = match self.desired_account(run, &resource, &groups).await? {
            Ok(desired) => desired,
            Err(problem) => {
                self.resolve(run, ISSUE_EMAIL_OUTSIDE_DOMAINS).await?;
                self.record_issue(run, ISSUE_NOT_PROVISIONABLE, &problem.0)
                    .await?;
                run.note(format!("not provisioned in Coder: {}", problem.0));
                return Ok(());
            }
        };
        self.resolve(run, ISSUE_NOT_PROVISIONABLE).await?;
        let organization = self.home_organization().await?;
        let existing = match mapping {
            Some(mapping) if self.is_bridge_account(mapping.coder_user_id).await? => {
                // Mapped by an earlier version: forget the mapping, so no group reconcile
                // treats the account as managed either.
                self.store.coder_map.user_delete(scim_id).await?;
                return self.refuse_bridge_account(&desired.email, run).await;
            }
            Some(mapping) => match self.find_mapped(&mapping).await? {
                Some(actual) => Some((mapping, actual)),
                None => {
                    run.note(format!(
                        "Coder user {} ({}) no longer exists; provisioning it again",
                        mapping.coder_username, mapping.coder_user_id
                    ));
                    self.store.coder_map.user_delete(scim_id).await?;
                    None
                }
            },
            None => None,
        };
        let outside = crate::desired::email_domain_issue(
            &self.policy,
            &desired,
            existing.is_some() || self.policy.users.outside_domain == OutsideDomain::Provision,
        );
        match &outside {
            Some(detail) => {
                self.record_issue(run, ISSUE_EMAIL_OUTSIDE_DOMAINS, detail)
                    .await?
            }
            None => self.resolve(run, ISSUE_EMAIL_OUTSIDE_DOMAINS).await?,
        }
        let (mapping, actual) = match existing {
            Some(found) => found,
            None if outside.is_some()
                && self.policy.users.outside_domain == OutsideDomain::Skip =>
            {
                run.note(format!(
                    "not provisioned in Coder: email {} is outside [users] allowed_email_domains",
                    desired.email
                ));
                return Ok(());
            }
            None => {
                let Some(found) = self
                    .provision(&desired, organization, &group_ids, run)
                    .await?
                else {
                    return Ok(());
                };
                found
            }
        };
        if desired.service_account {
            self.resolve(run, ISSUE_SERVICE_ACCOUNTS_UNLICENSED).await?;
        }
        self.resolve(run, ISSUE_BRIDGE_ACCOUNT).await?;
        self.converge(&desired, mapping, actual, organization, &group_ids, run)
            .await
    }

    /// The SCIM groups with these ids, as the rules see them.
    async fn group_identities(&self, ids: &[String]) -> ReconcileResult<Vec<GroupIdentity>> {
        crate::explain::group_identities(&self.store.resources, &self.policy, ids).await
    }

    /// The Coder user a mapping points at, if it still exists. Coder answers `GET /users/{id}`
    /// for deleted users too, so existence is confirmed by listing.
    pub(crate) async fn find_mapped(&self, mapping: &CoderUser) -> ReconcileResult<Option<User>> {
        if let Some(user) = self
            .client
            .find_user_by_username(&mapping.coder_username)
            .await?
            && user.id == mapping.coder_user_id
        {
            return Ok(Some(user));
        }
        // Renamed outside the bridge, or deleted: read it by id, then confirm under its name.
        let by_id = match self.client.user(mapping.coder_user_id).await {
            Ok(user) => user,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if by_id.username.eq_ignore_ascii_case(&mapping.coder_username) {
            return Ok(None);
        }
        Ok(self
            .client
            .find_user_by_username(&by_id.username)
            .await?
            .filter(|u| u.id == mapping.coder_user_id))
    }

    /// Whether `id` is the Coder account behind the bridge's own token: never managed.
    async fn is_bridge_account(&self, id: Uuid) -> ReconcileResult<bool> {
        Ok(self.client.identify().await?.user.id == id)
    }

    /// The SCIM user resolves to the bridge's own Coder account: record it, change nothing.
    async fn refuse_bridge_account(&self, email: &str, run: &mut Run) -> ReconcileResult<()> {
        let identity = self.client.identify().await?;
        let detail = format!(
            "the SCIM user ({email}) resolves to the bridge's own Coder account {}: the bridge never maps, suspends, re-roles or offboards the account its token belongs to; give the bridge a dedicated Coder account, or unassign this user from the SCIM application",
            identity.user.username
        );
        self.flag(run, ISSUE_BRIDGE_ACCOUNT, detail).await
    }

    /// Create the Coder user, or adopt the one that already has its email. Returns the mapping
    /// and the Coder user; `None` when the account that has the email may not be taken over (a
    /// sync issue says why). `group_ids` are the user's SCIM groups, queued with the new mapping.
    async fn provision(
        &self,
        desired: &DesiredUser,
        organization: Uuid,
        group_ids: &[String],
        run: &mut Run,
    ) -> ReconcileResult<Option<(CoderUser, User)>> {
        if let Some(user) = self.lost_create(&desired.scim_id, run).await? {
            let mapping = self
                .save_new_mapping(desired, &user, false, group_ids)
                .await?;
            return Ok(Some((mapping, user)));
        }
        // An email a fresh listing of Coder's users lacks is not looked up: the create checks
        // it (409 below), so a user made in Coder since the listing is still found and decided
        // on as if it had been looked up first.
        // A service account has no email to find it by: its username is its identity.
        let existing = if desired.service_account
            || self
                .directory
                .known_absent(&self.client, self.clock.as_ref(), &desired.email)
                .await?
        {
            None
        } else {
            self.client.find_user_by_email(&desired.email).await?
        };
        if let Some(existing) = existing {
            return self.take_over(desired, existing, group_ids, run).await;
        }
        for n in 1..=MAX_USERNAME_SUFFIX {
            let username = username_candidate(&desired.username_base, n);
            if self.mapped_to_another(&username, &desired.scim_id).await? {
                continue;
            }
            let request = CreateUserRequest {
                email: desired.email.clone(),
                username: username.clone(),
                name: desired.name.clone(),
                login_type: desired.login_type.to_coder(),
                organization_ids: vec![organization],
                user_status: None,
                service_account: false,
            };
            // Recorded before the create: if its answer is lost, the next attempt finds the user
            // by it (`lost_create`) instead of creating a second one or mistaking it for someone
            // else's.
            self.store
                .coder_map
                .intent_record(&CoderUserIntent {
                    scim_id: desired.scim_id.clone(),
                    coder_username: username.clone(),
                    email: desired.email.clone(),
                    created_at: self.now(),
                })
                .await?;
            let target = json!({ "username": username, "email": desired.email, "login_type": desired.login_type.as_str() });
            let created = if desired.service_account {
                let create = self.client.create_service_account(
                    &username,
                    &desired.name,
                    vec![organization],
                );
                self.call(run, "create_service_account", target, create)
                    .await
            } else {
                self.call(
                    run,
                    "create_user",
                    target,
                    self.client.create_user(&request),
                )
                .await
            };
            match created {
                Ok(user) => {
                    let mapping = self
                        .save_new_mapping(desired, &user, false, group_ids)
                        .await?;
                    return Ok(Some((mapping, user)));
                }
                Err(CoderError::Unlicensed { message, .. }) if desired.service_account => {
                    let detail = format!(
                        "Coder answered {message:?} to creating service account {username}: service accounts need Coder Premium; the agent is not provisioned, everything else keeps syncing"
                    );
                    self.flag(run, ISSUE_SERVICE_ACCOUNTS_UNLICENSED, detail)
                        .await?;
                    return Ok(None);
                }
                // A service account has no email: a 409 means the username is taken.
                Err(e) if e.is_conflict() && desired.service_account => continue,
                // 409: the username or the email is taken. The email was free when looked up
                // or listed; if it is taken now, the user was created since (by someone else,
                // or by a create of ours whose answer was lost): adopt it.
                Err(e) if e.is_conflict() => {
                    if let Some(existing) = self.client.find_user_by_email(&desired.email).await? {
                        return self.take_over(desired, existing, group_ids, run).await;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.record_issue(
            run,
            ISSUE_USERNAME_CONFLICT,
            &format!(
                "no free Coder username from {:?} up to suffix -{MAX_USERNAME_SUFFIX}",
                desired.username_base
            ),
        )
        .await?;
        Err(ReconcileError::Unappliable(format!(
            "no free Coder username for {:?}",
            desired.username_base
        )))
    }

    /// Adopt `existing`, the Coder account that already has the desired email, when the policy
    /// allows it and it is not the bridge's own account.
    async fn take_over(
        &self,
        desired: &DesiredUser,
        existing: User,
        group_ids: &[String],
        run: &mut Run,
    ) -> ReconcileResult<Option<(CoderUser, User)>> {
        if self.is_bridge_account(existing.id).await? {
            self.refuse_bridge_account(&desired.email, run).await?;
            return Ok(None);
        }
        // An account the bridge already manages (mapped to a SCIM user the IdP since deleted) is
        // not someone else's: `adopt` sorts that case out.
        let managed = self
            .store
            .coder_map
            .user_by_username(&existing.username)
            .await?
            .is_some_and(|m| m.coder_user_id == existing.id);
        if !managed && let Some(reason) = self.adoption_refusal(&existing) {
            let detail = format!(
                "Coder user {} ({}) already has email {} and the bridge did not create it; not adopted: {reason}",
                existing.username, existing.id, existing.email
            );
            self.flag(run, ISSUE_ADOPTION_REFUSED, detail).await?;
            return Ok(None);
        }
        self.resolve(run, ISSUE_ADOPTION_REFUSED).await?;
        let mapping = self.adopt(desired, &existing, group_ids, run).await?;
        Ok(Some((mapping, existing)))
    }

    /// The Coder user a create recorded for this SCIM User made, when the create's answer never
    /// arrived (a crash, a lost connection): the user with the recorded username and email that
    /// no other SCIM user is mapped to.
    async fn lost_create(&self, scim_id: &str, run: &mut Run) -> ReconcileResult<Option<User>> {
        let Some(intent) = self.store.coder_map.intent_get(scim_id).await? else {
            return Ok(None);
        };
        let Some(user) = self
            .client
            .find_user_by_username(&intent.coder_username)
            .await?
        else {
            return Ok(None);
        };
        if !user.email.eq_ignore_ascii_case(&intent.email)
            || self.mapped_to_another(&user.username, scim_id).await?
        {
            return Ok(None);
        }
        run.note(format!(
            "found Coder user {} ({}), created by an earlier attempt whose answer was lost",
            user.username, user.id
        ));
        Ok(Some(user))
    }

    /// For a SCIM User deleted before its Coder create was answered: the mapping to the user that
    /// create made, saved so the delete policy applies to it; `None` (and the intent forgotten)
    /// when the create made nothing.
    async fn map_lost_create(
        &self,
        scim_id: &str,
        run: &mut Run,
    ) -> ReconcileResult<Option<CoderUser>> {
        let Some(user) = self.lost_create(scim_id, run).await? else {
            self.store.coder_map.intent_delete(scim_id).await?;
            return Ok(None);
        };
        let mapping = CoderUser {
            scim_id: scim_id.to_owned(),
            coder_user_id: user.id,
            coder_username: user.username.clone(),
            login_type: login_type_name(user.login_type),
            adopted: false,
            last_applied: serde_json::Value::Null,
            updated_at: self.now(),
        };
        self.store.coder_map.user_save(&mapping, &[]).await?;
        Ok(Some(mapping))
    }

    /// Why the policy forbids taking over an account the bridge did not create, if it does.
    fn adoption_refusal(&self, existing: &User) -> Option<&'static str> {
        let users = &self.policy.users;
        if !users.adopt_existing {
            return Some(
                "[users] adopt_existing is false (set it to true to manage existing accounts, or give one of the two another email)",
            );
        }
        if existing.has_role(ROLE_OWNER)
            && !users.may_adopt_owner(&existing.email, &existing.username)
        {
            return Some(
                "it holds the owner role, and owners are adopted only when [users] adopt_owners lists their email or username",
            );
        }
        None
    }

    /// Whether the bridge already gave `username` to another SCIM user.
    async fn mapped_to_another(&self, username: &str, scim_id: &str) -> ReconcileResult<bool> {
        let mapping = self.store.coder_map.user_by_username(username).await?;
        Ok(mapping.is_some_and(|m| m.scim_id != scim_id))
    }

    /// Take over the Coder user that already has the desired email.
    async fn adopt(
        &self,
        desired: &DesiredUser,
        existing: &User,
        group_ids: &[String],
        run: &mut Run,
    ) -> ReconcileResult<CoderUser> {
        if let Some(other) = self
            .store
            .coder_map
            .user_by_username(&existing.username)
            .await?
            && other.scim_id != desired.scim_id
        {
            let other_exists = self
                .stored(ResourceKind::User, &other.scim_id, GetOptions::BARE)
                .await?
                .is_some();
            if other_exists {
                let detail = format!(
                    "Coder user {} has email {} but is already mapped to SCIM user {}",
                    existing.username, desired.email, other.scim_id
                );
                self.record_issue(run, ISSUE_EMAIL_CONFLICT, &detail)
                    .await?;
                return Err(ReconcileError::Unappliable(detail));
            }
            // The IdP deleted and re-created the person: the old mapping is stale.
            self.store.coder_map.user_delete(&other.scim_id).await?;
        }
        self.resolve(run, ISSUE_EMAIL_CONFLICT).await?;
        run.note(format!(
            "adopted existing Coder user {} ({}) with email {}",
            existing.username, existing.id, existing.email
        ));
        self.save_new_mapping(desired, existing, true, group_ids)
            .await
    }

    /// Save the mapping to a Coder user the SCIM User was not mapped to before, and queue its
    /// mirrored groups in the same transaction: only a group's own reconcile writes the group's
    /// membership, and it must run again now that this member has a Coder user to add.
    async fn save_new_mapping(
        &self,
        desired: &DesiredUser,
        user: &User,
        adopted: bool,
        group_ids: &[String],
    ) -> ReconcileResult<CoderUser> {
        // What converge() is about to apply; it compares with Coder's actual state, not with
        // this record, so a crash in between is harmless.
        let applied = LastApplied::from_desired(desired);
        let mapping = CoderUser {
            scim_id: desired.scim_id.clone(),
            coder_user_id: user.id,
            coder_username: user.username.clone(),
            login_type: login_type_name(user.login_type),
            adopted,
            last_applied: serde_json::to_value(&applied).unwrap_or_default(),
            updated_at: self.now(),
        };
        let queue_groups = if self.mirroring_groups().await? {
            group_ids
        } else {
            &[]
        };
        self.store
            .coder_map
            .user_save(&mapping, queue_groups)
            .await?;
        Ok(mapping)
    }

    /// The username the user should have: the mapped one, unless the SCIM source changed (a
    /// rename), then the first free candidate from the new base.
    ///
    /// A user the bridge created is renamed while its username is not a candidate of the
    /// desired base, whatever the stored record says: a crash between a create or a rename and
    /// the record leaves the record ahead of Coder. An adopted user keeps the name it came with
    /// until the IdP's source changes.
    async fn wanted_username(
        &self,
        desired: &DesiredUser,
        mapping: &CoderUser,
        actual: &User,
    ) -> ReconcileResult<String> {
        let applied = LastApplied::of(mapping);
        let rename_due = if mapping.adopted {
            !applied.username_base.is_empty() && applied.username_base != desired.username_base
        } else {
            !(1..=MAX_USERNAME_SUFFIX).any(|n| {
                username_candidate(&desired.username_base, n)
                    .eq_ignore_ascii_case(&mapping.coder_username)
            })
        };
        if !rename_due {
            return Ok(mapping.coder_username.clone());
        }
        for n in 1..=MAX_USERNAME_SUFFIX {
            let candidate = username_candidate(&desired.username_base, n);
            if candidate.eq_ignore_ascii_case(&actual.username) {
                return Ok(candidate);
            }
            if self.mapped_to_another(&candidate, &desired.scim_id).await? {
                continue;
            }
            if self
                .client
                .find_user_by_username(&candidate)
                .await?
                .is_some_and(|u| u.id != actual.id)
            {
                continue;
            }
            return Ok(candidate);
        }
        Ok(mapping.coder_username.clone())
    }

    /// Apply the difference between `desired` and the existing Coder user.
    async fn converge(
        &self,
        desired: &DesiredUser,
        mut mapping: CoderUser,
        mut actual: User,
        organization: Uuid,
        group_ids: &[String],
        run: &mut Run,
    ) -> ReconcileResult<()> {
        let before = mapping.clone();
        let identity = self.client.identify().await?;
        let is_self = actual.id == identity.user.id;
        let username = self.wanted_username(desired, &mapping, &actual).await?;
        let mut diff = user_diff(desired, &username, &actual, organization, !is_self);

        let mut flagged_login_type = None;
        if let Some((have, want)) = diff.login_type_mismatch {
            if self.policy.users.recreate_on_login_type_mismatch
                && !is_self
                && self.owns_no_workspace(&actual).await?
            {
                let (new_mapping, new_actual) = self
                    .recreate(desired, &actual, organization, group_ids, run)
                    .await?;
                mapping = new_mapping;
                actual = new_actual;
                diff = user_diff(desired, &username, &actual, organization, !is_self);
            } else {
                let fix = if self.policy.users.recreate_on_login_type_mismatch {
                    "the user owns workspaces: delete or transfer them, and the bridge then deletes and recreates the user".to_owned()
                } else {
                    format!(
                        "delete the Coder user (after removing its workspaces) and let the bridge recreate it, set users.recreate_on_login_type_mismatch = true, or change the policy to {}",
                        login_type_name(have)
                    )
                };
                let detail = format!(
                    "Coder user {} has login_type {} but the policy wants {want}, and Coder cannot change it. Fix: {fix}",
                    actual.username,
                    login_type_name(have),
                );
                self.record_issue(run, ISSUE_LOGIN_TYPE_MISMATCH, &detail)
                    .await?;
                // Audited when first found, not at every reconcile.
                if LastApplied::of(&mapping).flagged_login_type.as_deref() != Some(detail.as_str())
                {
                    run.note(detail.clone());
                }
                flagged_login_type = Some(detail);
            }
        }
        if flagged_login_type.is_none() {
            self.resolve(run, ISSUE_LOGIN_TYPE_MISMATCH).await?;
        }

        // Offboarding: suspension first, it blocks every key of the user at once.
        if diff.suspend {
            self.suspend(&actual, run).await?;
        }
        if !desired.active {
            self.offboard_extras(&actual, mapping.adopted, run).await?;
        }

        if diff.join_organization {
            self.join_organization(organization, actual.id, run).await?;
        }
        if let Some((username, name)) = diff.profile.clone() {
            let request = UpdateUserProfileRequest {
                username: username.clone(),
                name: name.clone(),
            };
            let target = json!({ "user": actual.id, "username": username, "name": name });
            match self
                .call(
                    run,
                    "update_profile",
                    target,
                    self.client.update_profile(actual.id, &request),
                )
                .await
            {
                Ok(user) => {
                    mapping.coder_username = user.username.clone();
                    self.resolve(run, ISSUE_USERNAME_CONFLICT).await?;
                }
                Err(e) if e.is_conflict() => {
                    let detail = format!(
                        "cannot rename Coder user {} to {username}: the username is taken",
                        actual.username
                    );
                    self.flag(run, ISSUE_USERNAME_CONFLICT, detail).await?;
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            // Coder already has the wanted name (a crash may have come between a rename and
            // the record of it): the mapping follows Coder.
            mapping.coder_username = actual.username.clone();
        }
        match &diff.email_pending {
            Some(email) => {
                if LastApplied::of(&mapping).email != *email {
                    run.note(format!(
                        "email change to {email} recorded; Coder applies it from the OIDC claims at the user's next login (no API can change it)"
                    ));
                }
                let detail = format!(
                    "Coder has {}; the IdP says {email}; applied at the user's next OIDC login",
                    actual.email
                );
                self.record_issue(run, ISSUE_EMAIL_PENDING, &detail).await?;
            }
            None => {
                self.resolve(run, ISSUE_EMAIL_PENDING).await?;
            }
        }
        if let Some(roles) = &diff.site_roles {
            let target = json!({
                "user": actual.id,
                "roles": roles,
                "granted_by": desired.roles.site_sources(),
            });
            self.call(
                run,
                "set_site_roles",
                target,
                self.client.set_site_roles(actual.id, roles),
            )
            .await?;
        }
        if !is_self {
            self.converge_org_roles(desired, actual.id, run).await?;
        }
        if diff.activate {
            self.call(
                run,
                "activate_user",
                json!({ "user": actual.id }),
                self.client.activate_user(actual.id),
            )
            .await?;
        }

        let mut applied = LastApplied::from_desired(desired);
        applied.flagged_login_type = flagged_login_type;
        mapping.last_applied = serde_json::to_value(applied).unwrap_or_default();
        mapping.login_type = login_type_name(actual.login_type);
        if mapping != before {
            mapping.updated_at = self.now();
            self.store.coder_map.user_upsert(&mapping).await?;
        }
        Ok(())
    }

    /// Delete a Coder user and confirm it by listing: `GET /users/{id}` still answers for a
    /// deleted user.
    async fn delete_confirmed(
        &self,
        actual: &User,
        reason: &str,
        run: &mut Run,
    ) -> ReconcileResult<()> {
        let target = json!({ "user": actual.id, "username": actual.username, "reason": reason });
        self.call(
            run,
            "delete_user",
            target,
            self.client.delete_user(actual.id),
        )
        .await?;
        if self.client.user_is_listed(actual.id).await? {
            return Err(ReconcileError::Waiting(format!(
                "Coder still lists deleted user {}",
                actual.username
            )));
        }
        Ok(())
    }

    async fn owns_no_workspace(&self, user: &User) -> ReconcileResult<bool> {
        let workspaces = self.client.workspaces_owned_by(&user.username).await?;
        Ok(workspaces
            .iter()
            .all(|w| w.latest_build.status == WorkspaceStatus::Deleted))
    }

    /// Delete a Coder user with the wrong login type and create it again with the right one.
    async fn recreate(
        &self,
        desired: &DesiredUser,
        actual: &User,
        organization: Uuid,
        group_ids: &[String],
        run: &mut Run,
    ) -> ReconcileResult<(CoderUser, User)> {
        self.delete_confirmed(actual, "login_type mismatch", run)
            .await?;
        self.store.coder_map.user_delete(&desired.scim_id).await?;
        let Some((mapping, user)) = self
            .provision(desired, organization, group_ids, run)
            .await?
        else {
            return Err(ReconcileError::Unappliable(format!(
                "Coder user {} was deleted to be recreated, but another account now has email {}",
                actual.username, desired.email
            )));
        };
        run.note(format!(
            "recreated Coder user {} with login_type {} (was {}, id {} → {})",
            user.username,
            desired.login_type,
            login_type_name(actual.login_type),
            actual.id,
            user.id
        ));
        self.resolve(run, ISSUE_LOGIN_TYPE_MISMATCH).await?;
        Ok((mapping, user))
    }

    /// Suspend the user and note when Coder acknowledged it (offboarding latency).
    async fn suspend(&self, actual: &User, run: &mut Run) -> ReconcileResult<()> {
        match self
            .call(
                run,
                "suspend_user",
                json!({ "user": actual.id }),
                self.client.suspend_user(actual.id),
            )
            .await
        {
            Ok(_) => {
                run.report.suspended_at = Some(self.now());
                self.resolve(run, ISSUE_COULD_NOT_SUSPEND).await?;
                Ok(())
            }
            // Coder refuses to suspend an owner or the bridge itself: nothing a retry fixes.
            Err(CoderError::Permanent {
                status: 400,
                message,
                ..
            }) => {
                let detail = format!("Coder refused to suspend {}: {message}", actual.username);
                self.flag(run, ISSUE_COULD_NOT_SUSPEND, detail).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// After suspending: delete the user's listable API tokens and stop running workspaces, as
    /// configured. Coder also stops a suspended user's workspaces; asking again is harmless.
    /// An adopted owner keeps both unless `[offboarding] adopted_owners` says otherwise: the
    /// bridge did not make that account, and its tokens may run the deployment.
    async fn offboard_extras(
        &self,
        actual: &User,
        adopted: bool,
        run: &mut Run,
    ) -> ReconcileResult<()> {
        if adopted && actual.has_role(ROLE_OWNER) && !self.policy.offboarding.adopted_owners {
            return Ok(());
        }
        // An agent's tokens always go: nobody is left to answer for what they do.
        if self.policy.offboarding.delete_api_tokens || actual.is_service_account {
            for key in self.client.api_tokens(actual.id).await? {
                let target =
                    json!({ "user": actual.id, "key": key.id, "token_name": key.token_name });
                match self
                    .call(
                        run,
                        "delete_api_key",
                        target,
                        self.client.delete_api_key(actual.id, &key.id),
                    )
                    .await
                {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if self.policy.offboarding.stop_workspaces {
            for workspace in self.client.workspaces_owned_by(&actual.username).await? {
                if !matches!(
                    workspace.latest_build.status,
                    WorkspaceStatus::Running | WorkspaceStatus::Starting
                ) {
                    continue;
                }
                let target = json!({ "workspace": workspace.id, "name": workspace.name });
                match self
                    .call(
                        run,
                        "stop_workspace",
                        target,
                        self.client.stop_workspace(workspace.id),
                    )
                    .await
                {
                    Ok(_) => {}
                    // 409: a build is running; Coder stops a suspended user's workspaces anyway.
                    Err(e) if e.is_conflict() => run.note(format!(
                        "workspace {} was busy; Coder stops it",
                        workspace.name
                    )),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn join_organization(
        &self,
        organization: Uuid,
        user: Uuid,
        run: &mut Run,
    ) -> ReconcileResult<()> {
        let target = json!({ "organization": organization, "user": user });
        self.join_organization_as(organization, user, target, run)
            .await
    }

    /// Join with `target` as the audit's description of the call.
    async fn join_organization_as(
        &self,
        organization: Uuid,
        user: Uuid,
        target: Value,
        run: &mut Run,
    ) -> ReconcileResult<()> {
        match self
            .call(
                run,
                "add_organization_member",
                target,
                self.client.add_organization_member(organization, user),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Already a member: what we wanted.
            Err(CoderError::Permanent {
                status: 400 | 409,
                ref message,
                ..
            }) if message.to_ascii_lowercase().contains("already") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Put the organization roles the rules and the SCIM roles give, in every organization they
    /// manage; and the memberships the SCIM entitlements give, in every organization
    /// `[entitlements.grantable]` offers: joined while an entitlement is held, left when none
    /// is and nothing else keeps the user there (a role in it, or `users.organization`).
    async fn converge_org_roles(
        &self,
        desired: &DesiredUser,
        user: Uuid,
        run: &mut Run,
    ) -> ReconcileResult<()> {
        if desired.roles.organizations().is_empty() {
            return Ok(());
        }
        let mut wanted: BTreeMap<Uuid, BTreeSet<String>> = BTreeMap::new();
        let mut entitled: BTreeMap<Uuid, bool> = BTreeMap::new();
        let mut granted_by: BTreeMap<Uuid, BTreeMap<&str, &BTreeSet<String>>> = BTreeMap::new();
        for key in desired.roles.organizations() {
            let id = self.organization_id(&OrganizationRef::parse(key)).await?;
            if let Some(roles) = desired.roles.org.get(key) {
                wanted.entry(id).or_default().extend(roles.iter().cloned());
            }
            if let Some(held) = desired.roles.memberships.get(key) {
                *entitled.entry(id).or_default() |= held;
            }
            granted_by
                .entry(id)
                .or_default()
                .extend(desired.roles.org_sources(key));
        }
        let mut actual = self.client.user_roles(user).await?.organization_roles;
        let home = self.home_organization().await?;
        let keeps = |org: &Uuid| {
            *org == home
                || entitled.get(org).is_some_and(|held| *held)
                || wanted.get(org).is_some_and(|roles| !roles.is_empty())
        };
        for (organization, _) in entitled.iter().filter(|(_, held)| **held) {
            if !actual.contains_key(organization) {
                let target = json!({
                    "organization": organization,
                    "user": user,
                    "granted_by": granted_by.get(organization),
                });
                self.join_organization_as(*organization, user, target, run)
                    .await?;
                actual.insert(*organization, Vec::new());
            }
        }
        let leaving: BTreeSet<Uuid> = entitled
            .keys()
            .filter(|org| actual.contains_key(org) && !keeps(org))
            .copied()
            .collect();
        for (organization, roles) in org_role_changes(&wanted, &actual) {
            if leaving.contains(&organization) {
                continue;
            }
            if !actual.contains_key(&organization) {
                self.join_organization(organization, user, run).await?;
            }
            let target = json!({
                "organization": organization,
                "user": user,
                "roles": roles,
                "granted_by": granted_by.get(&organization),
            });
            self.call(
                run,
                "set_organization_member_roles",
                target,
                self.client
                    .set_organization_member_roles(organization, user, &roles),
            )
            .await?;
        }
        for organization in leaving {
            // The entitlement was revoked (or never held) and nothing else keeps the user here.
            let target = json!({
                "organization": organization,
                "user": user,
                "revoked": "no SCIM entitlement, organization role or users.organization keeps the user in this organization",
            });
            match self
                .call(
                    run,
                    "remove_organization_member",
                    target,
                    self.client.remove_organization_member(organization, user),
                )
                .await
            {
                Ok(_) => {}
                // Gone already: what we wanted.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The SCIM User is gone: apply `users.delete_policy` to its Coder user.
    async fn remove_user(&self, mapping: CoderUser, run: &mut Run) -> ReconcileResult<()> {
        let Some(actual) = self.find_mapped(&mapping).await? else {
            self.store.coder_map.user_delete(&mapping.scim_id).await?;
            run.note(format!(
                "Coder user {} was already gone; mapping removed",
                mapping.coder_username
            ));
            return Ok(());
        };
        if self.is_bridge_account(actual.id).await? {
            self.store.coder_map.user_delete(&mapping.scim_id).await?;
            let email = actual.email.clone();
            return self.refuse_bridge_account(&email, run).await;
        }
        if self.policy.users.delete_policy == UserDeletePolicy::Delete {
            match self
                .delete_confirmed(&actual, "SCIM user deleted", run)
                .await
            {
                Ok(()) => {
                    self.store.coder_map.user_delete(&mapping.scim_id).await?;
                    for issue in [
                        ISSUE_DELETE_BLOCKED,
                        ISSUE_LOGIN_TYPE_MISMATCH,
                        ISSUE_EMAIL_PENDING,
                    ] {
                        self.resolve(run, issue).await?;
                    }
                    return Ok(());
                }
                // 417: the user owns workspaces. Suspend instead, and say so.
                Err(ReconcileError::Coder(CoderError::Permanent {
                    status: 417,
                    message,
                    ..
                })) => {
                    let detail = format!(
                        "Coder user {} owns workspaces, so it was suspended instead of deleted ({message}); delete its workspaces and the next drift repair deletes it",
                        actual.username
                    );
                    self.flag(run, ISSUE_DELETE_BLOCKED, detail).await?;
                }
                Err(e) => return Err(e),
            }
        }
        if actual.status != coder::types::UserStatus::Suspended {
            self.suspend(&actual, run).await?;
        }
        self.offboard_extras(&actual, mapping.adopted, run).await
    }
}
