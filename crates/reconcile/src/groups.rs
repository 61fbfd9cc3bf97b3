//! Reconciling one SCIM Group: its Coder group (Premium) and the roles of its members.

use crate::desired::{DesiredGroup, desired_group};
use crate::diff::{MembershipDiff, group_rename, membership_diff};
use crate::error::{ReconcileError, ReconcileResult};
use crate::policy::GroupDeletePolicy;
use crate::reconciler::{Reconciler, Report, Run};
use crate::users::LastApplied;
use coder::CoderError;
use coder::types::{CreateGroupRequest, Group, PatchGroupRequest};
use scim::ResourceKind;
use serde_json::json;
use std::collections::BTreeSet;
use store::{CoderGroup, GetOptions, OutboxPriority, StoredResource};
use uuid::Uuid;

/// Open-issue keyword for a group rename Coder refused.
pub const ISSUE_GROUP_NAME_CONFLICT: &str = "group_name_conflict";

impl Reconciler {
    /// Bring the Coder group of SCIM Group `scim_id` to the desired state (when groups are
    /// mirrored), and queue the members whose roles or login type the group's rules change.
    pub async fn reconcile_group(&self, scim_id: &str) -> ReconcileResult<Report> {
        let mut run = Run::new(ResourceKind::Group, scim_id);
        let result = self.group(scim_id, &mut run).await;
        self.finish(&run, &result).await?;
        result.map(|()| run.report)
    }

    async fn group(&self, scim_id: &str, run: &mut Run) -> ReconcileResult<()> {
        let options = GetOptions {
            members: true,
            groups: false,
        };
        let resource = self.stored(ResourceKind::Group, scim_id, options).await?;
        self.requeue_rule_members(scim_id, resource.as_ref())
            .await?;
        if !self.mirroring_groups().await? {
            return Ok(());
        }
        let mapping = self.store.coder_map.group_get(scim_id).await?;
        let result = match resource {
            None => match mapping {
                Some(mapping) => self.remove_group(mapping, run).await,
                None => Ok(()),
            },
            Some(resource) => {
                run.report.resource_changed_at = Some(resource.last_modified);
                let desired = desired_group(
                    scim_id,
                    &resource.attrs,
                    resource.members.as_deref().unwrap_or_default(),
                );
                self.mirror_group(&desired, mapping, run).await
            }
        };
        match result {
            // The licence went away since the last check: groups are simply not mirrored now.
            Err(ReconcileError::Coder(CoderError::Unlicensed { .. })) => {
                self.set_groups_licensed(false);
                run.note("Coder groups are not licensed (template_rbac); the group is kept for role mapping only");
                Ok(())
            }
            other => other,
        }
    }

    /// When a rule mentions this group, queue the users whose membership changed since their
    /// roles were last computed (joined, or left, or the group was deleted).
    async fn requeue_rule_members(
        &self,
        scim_id: &str,
        resource: Option<&StoredResource>,
    ) -> ReconcileResult<()> {
        let mentioned = match resource {
            Some(group) => self.policy.mentions_group(
                scim::resource::display_name(&group.attrs),
                scim::resource::external_id(&group.attrs),
            ),
            None => self.policy.uses_groups(),
        };
        if !mentioned {
            return Ok(());
        }
        let members: BTreeSet<&str> = resource
            .and_then(|g| g.members.as_deref())
            .unwrap_or_default()
            .iter()
            .filter(|m| m.kind.has_groups())
            .map(|m| m.value.as_str())
            .collect();
        for mapping in self.store.coder_map.user_list().await? {
            let was_member = LastApplied::of(&mapping)
                .rule_groups
                .iter()
                .any(|g| g == scim_id);
            if was_member != members.contains(mapping.scim_id.as_str()) {
                self.store
                    .outbox
                    .enqueue(ResourceKind::User, &mapping.scim_id, OutboxPriority::Normal)
                    .await?;
            }
        }
        Ok(())
    }

    async fn mirror_group(
        &self,
        desired: &DesiredGroup,
        mapping: Option<CoderGroup>,
        run: &mut Run,
    ) -> ReconcileResult<()> {
        let existing = match &mapping {
            Some(mapping) => match self.client.group(mapping.coder_group_id).await {
                Ok(group) => Some(group),
                Err(e) if e.is_not_found() => {
                    run.note(format!(
                        "Coder group {} ({}) no longer exists; creating it again",
                        mapping.coder_name, mapping.coder_group_id
                    ));
                    None
                }
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let group = match existing {
            Some(group) => group,
            None => self.find_or_create_group(desired, run).await?,
        };
        // Remember the Coder group; a crash before this finds it by name next time.
        let saved = CoderGroup {
            scim_id: desired.scim_id.clone(),
            coder_group_id: group.id,
            organization_id: group.organization_id,
            coder_name: group.name.clone(),
            updated_at: self.now(),
        };
        if mapping.as_ref().is_none_or(|m| {
            (m.coder_group_id, &m.coder_name) != (saved.coder_group_id, &saved.coder_name)
        }) {
            self.store.coder_map.group_upsert(&saved).await?;
        }

        let (mut name, display_name) = group_rename(desired, &group);
        let mut diff = self.membership_change(desired, &group).await?;
        if diff.is_empty() && name.is_none() && display_name.is_none() {
            return Ok(());
        }
        for attempt in 0..3 {
            let patch = PatchGroupRequest {
                add_users: diff.add.clone(),
                remove_users: diff.remove.clone(),
                name: name.clone(),
                display_name: display_name.clone(),
            };
            let target = json!({
                "group": group.name, "add_users": patch.add_users, "remove_users": patch.remove_users,
                "name": patch.name, "display_name": patch.display_name,
            });
            match self
                .call(
                    run,
                    "patch_group",
                    target,
                    self.client.patch_group(group.id, &patch),
                )
                .await
            {
                Ok(updated) => {
                    if updated.name != saved.coder_name {
                        self.store
                            .coder_map
                            .group_upsert(&CoderGroup {
                                coder_name: updated.name,
                                updated_at: self.now(),
                                ..saved
                            })
                            .await?;
                    }
                    if name.is_some() {
                        self.resolve(run, ISSUE_GROUP_NAME_CONFLICT).await?;
                    }
                    return Ok(());
                }
                // The new name is taken: keep the old one, report it, apply the rest.
                Err(e) if e.is_conflict() && name.is_some() => {
                    let detail = format!(
                        "cannot rename Coder group {} to {}: the name is taken",
                        group.name, desired.name
                    );
                    self.flag(run, ISSUE_GROUP_NAME_CONFLICT, detail).await?;
                    name = None;
                }
                // 400 rolls back the whole PATCH: a user to add is not in the group's
                // organization yet, or was added meanwhile. Fix the first, re-diff for the second.
                Err(CoderError::Permanent { status: 400, .. }) if attempt < 2 => {
                    let members: BTreeSet<Uuid> = self
                        .client
                        .organization_members(group.organization_id)
                        .await?
                        .iter()
                        .map(|m| m.user_id)
                        .collect();
                    for user in diff.add.iter().filter(|u| !members.contains(u)) {
                        self.join_organization(group.organization_id, *user, run)
                            .await?;
                    }
                    let fresh = self.client.group(group.id).await?;
                    diff = self.membership_change(desired, &fresh).await?;
                    if diff.is_empty() && name.is_none() && display_name.is_none() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ReconcileError::Waiting(format!(
            "Coder kept refusing the membership change of group {}",
            group.name
        )))
    }

    /// Find the Coder group by name (adopting it) or create it.
    async fn find_or_create_group(
        &self,
        desired: &DesiredGroup,
        run: &mut Run,
    ) -> ReconcileResult<Group> {
        let organization = self.home_organization().await?;
        let lookup = |found: Result<Group, CoderError>| match found {
            // `Everyone` (its id is the organization's) is never adopted.
            Ok(group) if group.id != organization => Ok(Some(group)),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        };
        if let Some(group) = lookup(self.client.group_by_name(organization, &desired.name).await)? {
            run.note(format!(
                "adopted existing Coder group {} ({})",
                group.name, group.id
            ));
            return Ok(group);
        }
        let request = CreateGroupRequest {
            name: desired.name.clone(),
            display_name: desired.display_name.clone(),
        };
        let target = json!({ "organization": organization, "name": request.name, "display_name": request.display_name });
        match self
            .call(
                run,
                "create_group",
                target,
                self.client.create_group(organization, &request),
            )
            .await
        {
            Ok(group) => Ok(group),
            // Created meanwhile (another replica, or a crash after the create): adopt it.
            Err(e) if e.is_conflict() => lookup(
                self.client.group_by_name(organization, &desired.name).await,
            )?
            .ok_or_else(|| {
                ReconcileError::Waiting(format!(
                    "Coder reports group {} exists but does not show it",
                    desired.name
                ))
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The minimal membership change for `group`: add the desired members that exist in
    /// Coder (a user that gets its Coder user later queues this group again), remove managed users that
    /// should not be there, never touch users the bridge does not manage.
    async fn membership_change(
        &self,
        desired: &DesiredGroup,
        group: &Group,
    ) -> ReconcileResult<MembershipDiff> {
        let mut wanted = BTreeSet::new();
        for scim_id in &desired.member_user_ids {
            if let Some(mapping) = self.store.coder_map.user_get(scim_id).await? {
                wanted.insert(mapping.coder_user_id);
            }
        }
        let current: BTreeSet<Uuid> = group.members.iter().map(|m| m.id).collect();
        let mut managed = BTreeSet::new();
        for member in group.members.iter().filter(|m| !wanted.contains(&m.id)) {
            // By id: a mapping's username may trail a rename Coder already made.
            if self
                .store
                .coder_map
                .user_by_coder_id(member.id)
                .await?
                .is_some()
            {
                managed.insert(member.id);
            }
        }
        Ok(membership_diff(&wanted, &current, |id| {
            managed.contains(id)
        }))
    }

    /// The SCIM Group is gone: apply `groups.delete_policy`.
    async fn remove_group(&self, mapping: CoderGroup, run: &mut Run) -> ReconcileResult<()> {
        if self.policy.groups.delete_policy == GroupDeletePolicy::Delete {
            let target = json!({ "group": mapping.coder_name, "id": mapping.coder_group_id });
            match self
                .call(
                    run,
                    "delete_group",
                    target,
                    self.client.delete_group(mapping.coder_group_id),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            run.note(format!(
                "kept Coder group {} (groups.delete_policy = \"keep\"); no longer managed",
                mapping.coder_name
            ));
        }
        self.store.coder_map.group_delete(&mapping.scim_id).await?;
        self.resolve(run, ISSUE_GROUP_NAME_CONFLICT).await?;
        Ok(())
    }
}
