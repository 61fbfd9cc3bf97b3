//! The difference between the desired state and Coder's, as pure functions: the worker applies
//! it, drift repair reports it. One piece of code decides what "differs" for both.

use crate::desired::{DesiredGroup, DesiredUser};
use coder::types::{Group, LoginType as CoderLoginType, User, UserStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use uuid::Uuid;

/// What must change on one Coder user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDiff {
    /// Coder's login type differs from the policy's (Coder cannot change it in place).
    pub login_type_mismatch: Option<(CoderLoginType, crate::policy::LoginType)>,
    /// The SCIM user is inactive and the Coder user is not suspended.
    pub suspend: bool,
    /// The SCIM user is active and the Coder user is suspended.
    pub activate: bool,
    /// The username and/or name to set (`PUT /users/{user}/profile`).
    pub profile: Option<(String, String)>,
    /// The IdP email differs from Coder's; Coder takes it from the OIDC claims at next login.
    pub email_pending: Option<String>,
    /// The whole site-role set to put, when it differs.
    pub site_roles: Option<Vec<String>>,
    /// The user is not a member of the organization it should be in.
    pub join_organization: bool,
}

/// One kind of difference, for drift reports and metrics (`scim_bridge_drift_found_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriftKind {
    UserMissing,
    UserStatus,
    UserProfile,
    UserRoles,
    UserOrganization,
    LoginType,
    /// The user's email is outside `[users] allowed_email_domains` and no sync issue says so
    /// yet, or a sync issue says so and it no longer is (the email or the rules changed).
    EmailDomain,
    UserNotRemoved,
    GroupMissing,
    GroupName,
    GroupMembers,
    GroupNotRemoved,
}

impl DriftKind {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::UserMissing => "user_missing",
            DriftKind::UserStatus => "user_status",
            DriftKind::UserProfile => "user_profile",
            DriftKind::UserRoles => "user_roles",
            DriftKind::UserOrganization => "user_organization",
            DriftKind::LoginType => "login_type",
            DriftKind::EmailDomain => "email_domain",
            DriftKind::UserNotRemoved => "user_not_removed",
            DriftKind::GroupMissing => "group_missing",
            DriftKind::GroupName => "group_name",
            DriftKind::GroupMembers => "group_members",
            DriftKind::GroupNotRemoved => "group_not_removed",
        }
    }
}

impl fmt::Display for DriftKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl UserDiff {
    /// Whether nothing needs doing.
    pub fn is_empty(&self) -> bool {
        *self == UserDiff::default()
    }

    /// The drift kinds this diff amounts to (an email still pending is not drift: it cannot be
    /// fixed through the API).
    pub fn kinds(&self) -> Vec<DriftKind> {
        let mut kinds = Vec::new();
        if self.login_type_mismatch.is_some() {
            kinds.push(DriftKind::LoginType);
        }
        if self.suspend || self.activate {
            kinds.push(DriftKind::UserStatus);
        }
        if self.profile.is_some() {
            kinds.push(DriftKind::UserProfile);
        }
        if self.site_roles.is_some() {
            kinds.push(DriftKind::UserRoles);
        }
        if self.join_organization {
            kinds.push(DriftKind::UserOrganization);
        }
        kinds
    }
}

/// The site roles a Coder user holds (`member` is implied and never listed).
pub fn site_roles_of(user: &User) -> BTreeSet<String> {
    user.roles
        .iter()
        .map(|r| r.name.clone())
        .filter(|n| n != "member")
        .collect()
}

/// Compare the desired user (to be called `username` in Coder) with Coder's `actual`, which
/// should be a member of `organization`. `manage_roles` is false for the bridge's own user (no
/// one may change their own roles).
pub fn user_diff(
    desired: &DesiredUser,
    username: &str,
    actual: &User,
    organization: Uuid,
    manage_roles: bool,
) -> UserDiff {
    let mut diff = UserDiff::default();
    if actual.login_type != desired.login_type.to_coder() {
        diff.login_type_mismatch = Some((actual.login_type, desired.login_type));
    }
    let suspended = actual.status == UserStatus::Suspended;
    diff.suspend = !desired.active && !suspended;
    diff.activate = desired.active && suspended;
    if actual.username != username || actual.name != desired.name {
        diff.profile = Some((username.to_owned(), desired.name.clone()));
    }
    if !actual.email.eq_ignore_ascii_case(&desired.email) {
        diff.email_pending = Some(desired.email.clone());
    }
    if manage_roles && site_roles_of(actual) != desired.roles.site {
        diff.site_roles = Some(desired.roles.site.iter().cloned().collect());
    }
    diff.join_organization = !actual.organization_ids.contains(&organization);
    diff
}

/// Organization roles to put: for each organization a rule manages (`desired`, resolved to
/// ids), the whole new set when it differs from `actual` (Coder's `organization_roles`).
/// Organizations where the user is not a member and should hold no role are left alone.
pub fn org_role_changes(
    desired: &BTreeMap<Uuid, BTreeSet<String>>,
    actual: &BTreeMap<Uuid, Vec<String>>,
) -> Vec<(Uuid, Vec<String>)> {
    let mut changes = Vec::new();
    for (org, wanted) in desired {
        let current: Option<BTreeSet<String>> = actual.get(org).map(|roles| {
            roles
                .iter()
                .filter(|r| *r != "organization-member")
                .cloned()
                .collect()
        });
        match current {
            None if wanted.is_empty() => {}
            Some(current) if current == *wanted => {}
            _ => changes.push((*org, wanted.iter().cloned().collect())),
        }
    }
    changes
}

/// A minimal group membership change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipDiff {
    /// Desired members not in the group (never an existing member: Coder answers 400 and rolls
    /// back the whole PATCH).
    pub add: Vec<Uuid>,
    /// Members the bridge manages that should not be there. Users the bridge does not manage are
    /// never removed.
    pub remove: Vec<Uuid>,
}

impl MembershipDiff {
    /// Whether the group's members are already right.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The change that turns `current` members into `desired`, touching only managed users.
pub fn membership_diff(
    desired: &BTreeSet<Uuid>,
    current: &BTreeSet<Uuid>,
    is_managed: impl Fn(&Uuid) -> bool,
) -> MembershipDiff {
    MembershipDiff {
        add: desired.difference(current).copied().collect(),
        remove: current
            .difference(desired)
            .filter(|id| is_managed(id))
            .copied()
            .collect(),
    }
}

/// The name and display name to PATCH when the Coder group differs from the desired one.
/// Names compare exactly (Coder keeps case), display names as given.
pub fn group_rename(desired: &DesiredGroup, actual: &Group) -> (Option<String>, Option<String>) {
    let name = (actual.name != desired.name).then(|| desired.name.clone());
    let display_name =
        (actual.display_name != desired.display_name).then(|| desired.display_name.clone());
    (name, display_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::DesiredRoles;
    use crate::policy::LoginType;
    use clock::{IdSource as _, SystemIds};
    use coder::types::SlimRole;

    fn coder_user(status: UserStatus, roles: &[&str], org: Uuid) -> User {
        User {
            id: SystemIds.uuid_v4(),
            username: "alice".into(),
            email: "alice@corp.com".into(),
            name: "Alice".into(),
            status,
            login_type: CoderLoginType::Oidc,
            organization_ids: vec![org],
            roles: roles
                .iter()
                .map(|r| SlimRole {
                    name: (*r).into(),
                    display_name: String::new(),
                    organization_id: String::new(),
                })
                .collect(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            is_service_account: false,
        }
    }

    fn desired(active: bool, site: &[&str]) -> DesiredUser {
        DesiredUser {
            scim_id: "s".into(),
            username_base: "alice".into(),
            email: "alice@corp.com".into(),
            name: "Alice".into(),
            active,
            login_type: LoginType::Oidc,
            roles: DesiredRoles {
                site: site.iter().map(|s| (*s).to_string()).collect(),
                ..DesiredRoles::default()
            },
            rule_groups: vec![],
            service_account: false,
        }
    }

    #[test]
    fn equal_users_need_nothing() {
        let org = SystemIds.uuid_v4();
        let diff = user_diff(
            &desired(true, &[]),
            "alice",
            &coder_user(UserStatus::Dormant, &[], org),
            org,
            true,
        );
        assert!(diff.is_empty(), "{diff:?}");
        assert!(diff.kinds().is_empty());
    }

    #[test]
    fn status_profile_roles_email_org_and_login_type() {
        let org = SystemIds.uuid_v4();
        let mut want = desired(false, &["auditor"]);
        want.name = "Alice S".into();
        want.email = "alice.s@corp.com".into();
        want.login_type = LoginType::Github;
        let actual = coder_user(UserStatus::Active, &["owner"], SystemIds.uuid_v4());
        let diff = user_diff(&want, "alice-s", &actual, org, true);
        assert!(diff.suspend && !diff.activate);
        assert_eq!(diff.profile, Some(("alice-s".into(), "Alice S".into())));
        assert_eq!(diff.site_roles, Some(vec!["auditor".into()]));
        assert_eq!(diff.email_pending.as_deref(), Some("alice.s@corp.com"));
        assert!(diff.join_organization);
        assert_eq!(
            diff.login_type_mismatch,
            Some((CoderLoginType::Oidc, LoginType::Github))
        );
        assert_eq!(
            diff.kinds(),
            vec![
                DriftKind::LoginType,
                DriftKind::UserStatus,
                DriftKind::UserProfile,
                DriftKind::UserRoles,
                DriftKind::UserOrganization
            ]
        );
        let diff = user_diff(
            &desired(true, &[]),
            "alice",
            &coder_user(UserStatus::Suspended, &["member"], org),
            org,
            false,
        );
        assert!(diff.activate && diff.site_roles.is_none());
    }

    #[test]
    fn org_roles_change_only_where_they_differ() {
        let (a, b, c) = (
            SystemIds.uuid_v4(),
            SystemIds.uuid_v4(),
            SystemIds.uuid_v4(),
        );
        let desired = BTreeMap::from([
            (a, BTreeSet::from(["agents-access".to_string()])),
            (b, BTreeSet::new()),
            (c, BTreeSet::new()),
        ]);
        let actual = BTreeMap::from([
            (a, vec!["organization-member".to_string()]),
            (b, vec!["organization-admin".to_string()]),
        ]);
        let changes: BTreeMap<Uuid, Vec<String>> =
            org_role_changes(&desired, &actual).into_iter().collect();
        assert_eq!(
            changes,
            BTreeMap::from([(a, vec!["agents-access".to_string()]), (b, vec![])])
        );
        let settled = BTreeMap::from([(a, vec!["agents-access".to_string()]), (b, vec![])]);
        assert!(org_role_changes(&desired, &settled).is_empty());
    }

    #[test]
    fn membership_diff_is_minimal_and_spares_unmanaged_users() {
        let ids: Vec<Uuid> = (0..5).map(|_| SystemIds.uuid_v4()).collect();
        let desired = BTreeSet::from([ids[0], ids[1], ids[2]]);
        let current = BTreeSet::from([ids[1], ids[3], ids[4]]);
        let managed = |id: &Uuid| *id != ids[4];
        let diff = membership_diff(&desired, &current, managed);
        let mut want_add = vec![ids[0], ids[2]];
        want_add.sort();
        assert_eq!(diff.add, want_add);
        assert_eq!(diff.remove, vec![ids[3]]);
        assert!(membership_diff(&desired, &desired, |_| true).is_empty());
    }
}
