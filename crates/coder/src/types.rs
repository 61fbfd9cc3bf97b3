//! Request and response bodies, named after Coder's `codersdk.*` swagger definitions.
//!
//! Field names are exactly Coder's JSON names. Responses keep only the fields the bridge reads
//! and tolerate everything else (Coder adds fields often); Go's `null` for an empty slice or map
//! is read as empty.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// Coder's id of the default organization when creating a user: "put the user in the default
/// organization", whatever its real id is.
pub const DEFAULT_ORGANIZATION_ALIAS: Uuid = Uuid::nil();

/// Site role that may do everything, including granting roles.
pub const ROLE_OWNER: &str = "owner";

/// Reads JSON `null` as the type's default (Go encodes a nil slice or map as `null`).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `codersdk.BuildInfoResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// Semantic version of the Coder build.
    pub version: String,
    /// Link to the release or commit.
    #[serde(default)]
    pub external_url: String,
    /// URL of the deployment's dashboard.
    #[serde(default)]
    pub dashboard_url: String,
    /// Unique id of the deployment.
    #[serde(default)]
    pub deployment_id: String,
}

/// `codersdk.Entitlement`: how a feature is licensed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entitlement {
    /// Licensed.
    Entitled,
    /// Licence expired recently; still works.
    GracePeriod,
    /// Not licensed.
    NotEntitled,
    /// A value this client does not know yet.
    #[serde(other)]
    Unknown,
}

/// `codersdk.Feature`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    /// Whether the feature is switched on.
    #[serde(default)]
    pub enabled: bool,
    /// Licence state of the feature.
    pub entitlement: Entitlement,
}

/// `codersdk.Entitlements`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entitlements {
    /// Features by name (`template_rbac`, `multiple_organizations`, `scim`, ...).
    #[serde(default, deserialize_with = "null_as_default")]
    pub features: BTreeMap<String, Feature>,
    /// Whether a licence is installed.
    #[serde(default)]
    pub has_license: bool,
    /// Whether the licence is a trial.
    #[serde(default)]
    pub trial: bool,
    /// Licence errors.
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<String>,
    /// Licence warnings.
    #[serde(default, deserialize_with = "null_as_default")]
    pub warnings: Vec<String>,
}

impl Entitlements {
    /// Whether `feature` is enabled and licensed (entitled or in its grace period).
    pub fn allows(&self, feature: &str) -> bool {
        self.features.get(feature).is_some_and(|f| {
            f.enabled
                && matches!(
                    f.entitlement,
                    Entitlement::Entitled | Entitlement::GracePeriod
                )
        })
    }
}

/// `codersdk.UserStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Active.
    Active,
    /// Created but never logged in / inactive for a while; counts as not using a seat.
    Dormant,
    /// Suspended: cannot log in, API keys answer 401.
    Suspended,
    /// A value this client does not know yet.
    #[serde(other)]
    Unknown,
}

/// `codersdk.LoginType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginType {
    /// Username and password.
    Password,
    /// GitHub OAuth.
    Github,
    /// OpenID Connect.
    Oidc,
    /// API token only (legacy).
    Token,
    /// No login (service accounts).
    None,
    /// Empty or unknown value.
    #[serde(other, rename = "")]
    Unknown,
}

/// `codersdk.SlimRole`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlimRole {
    /// Role name (`owner`, `organization-admin`).
    pub name: String,
    /// Human name.
    #[serde(default)]
    pub display_name: String,
    /// Organization of an organization role; empty for site roles.
    #[serde(default)]
    pub organization_id: String,
}

/// `codersdk.User`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub id: Uuid,
    /// Username (unique ignoring case).
    pub username: String,
    /// Email (unique ignoring case).
    pub email: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Account state.
    pub status: UserStatus,
    /// How the user logs in.
    pub login_type: LoginType,
    /// Organizations the user belongs to.
    #[serde(default, deserialize_with = "null_as_default")]
    pub organization_ids: Vec<Uuid>,
    /// Site roles (`member` is implied and not listed).
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<SlimRole>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Whether this is a service account.
    #[serde(default)]
    pub is_service_account: bool,
}

impl User {
    /// Whether the user holds the site role `name`.
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|role| role.name == name)
    }
}

/// `codersdk.ReducedUser`, as listed in a group's members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReducedUser {
    /// User id.
    pub id: Uuid,
    /// Username.
    pub username: String,
    /// Email.
    pub email: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
}

/// `codersdk.GetUsersResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersPage {
    /// This page of users.
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<User>,
    /// Number of users matching the query, over all pages.
    #[serde(default)]
    pub count: u64,
}

/// `codersdk.CreateUserRequestWithOrgs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateUserRequest {
    /// Email: required for people, empty (and then not sent) for a service account, which
    /// Coder creates without one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// Username (required, see [`crate::is_valid_username`]).
    pub username: String,
    /// Display name: at most 128 characters, no surrounding white space.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Login type; cannot be changed later by any endpoint.
    pub login_type: LoginType,
    /// At least one organization; [`DEFAULT_ORGANIZATION_ALIAS`] means the default one.
    pub organization_ids: Vec<Uuid>,
    /// Initial status; Coder defaults to `dormant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_status: Option<UserStatus>,
    /// A service account: an admin-managed account that cannot log in (`login_type` `none`, no
    /// email). Coder Premium only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub service_account: bool,
}

/// `codersdk.UpdateUserProfileRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateUserProfileRequest {
    /// New or unchanged username (required).
    pub username: String,
    /// Display name. Always sent: Coder clears the name when it is missing.
    pub name: String,
}

/// `codersdk.UpdateRoles`: replaces a whole role set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateRoles {
    /// Role names.
    pub roles: Vec<String>,
}

/// `GET /api/v2/users/{user}/roles`. Swagger says `codersdk.User`; Coder's handler answers
/// `{roles, organization_roles}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRoles {
    /// Site role names.
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<String>,
    /// Organization role names by organization id.
    #[serde(default, deserialize_with = "null_as_default")]
    pub organization_roles: BTreeMap<Uuid, Vec<String>>,
}

/// `codersdk.Organization`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Organization id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Human name.
    #[serde(default)]
    pub display_name: String,
    /// Whether this is the deployment's default organization.
    pub is_default: bool,
}

/// `codersdk.OrganizationMember`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationMember {
    /// Member's user id.
    pub user_id: Uuid,
    /// Organization id.
    pub organization_id: Uuid,
    /// Organization roles.
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<SlimRole>,
}

/// `codersdk.OrganizationMemberWithUserData`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationMemberWithUserData {
    /// Member's user id.
    pub user_id: Uuid,
    /// Organization id.
    pub organization_id: Uuid,
    /// Username.
    pub username: String,
    /// Email.
    #[serde(default)]
    pub email: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Organization roles.
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<SlimRole>,
    /// Site roles.
    #[serde(default, deserialize_with = "null_as_default")]
    pub global_roles: Vec<SlimRole>,
}

/// `codersdk.GroupSource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupSource {
    /// Created through the API.
    User,
    /// Created by Coder's own OIDC group sync.
    Oidc,
    /// A value this client does not know yet.
    #[serde(other)]
    Unknown,
}

/// `codersdk.Group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Group id; the `Everyone` group's id equals its organization's id.
    pub id: Uuid,
    /// Name (lookups ignore case, creation compares exactly).
    pub name: String,
    /// Human name.
    #[serde(default)]
    pub display_name: String,
    /// Organization id.
    pub organization_id: Uuid,
    /// Members.
    #[serde(default, deserialize_with = "null_as_default")]
    pub members: Vec<ReducedUser>,
    /// Member count, even when the members are not listed.
    #[serde(default)]
    pub total_member_count: u64,
    /// Who created the group.
    pub source: GroupSource,
}

/// `codersdk.CreateGroupRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateGroupRequest {
    /// Name: username pattern, at most 255 characters.
    pub name: String,
    /// Human name: at most 64 characters, no surrounding white space.
    pub display_name: String,
}

/// `codersdk.PatchGroupRequest`. Coder rejects the whole patch when one user to add is already a
/// member or not in the group's organization, so diff against the current members first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PatchGroupRequest {
    /// Users to add.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add_users: Vec<Uuid>,
    /// Users to remove.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove_users: Vec<Uuid>,
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New human name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// `codersdk.Response`: Coder's message object, also its error body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageResponse {
    /// Actionable message.
    #[serde(default)]
    pub message: String,
    /// Technical detail.
    #[serde(default)]
    pub detail: String,
    /// Field-level problems.
    #[serde(default, deserialize_with = "null_as_default")]
    pub validations: Vec<ValidationError>,
}

/// `codersdk.ValidationError`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// JSON field name.
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

/// `codersdk.APIKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Key id (the part of the token before `-`).
    pub id: String,
    /// Owner.
    pub user_id: Uuid,
    /// Name the user gave the token.
    #[serde(default)]
    pub token_name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry time.
    pub expires_at: DateTime<Utc>,
    /// What the token may do (`codersdk.APIKeyScope` values such as `workspace:read`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub scopes: Vec<String>,
    /// Lifetime the token was created with, in seconds.
    #[serde(default)]
    pub lifetime_seconds: i64,
}

/// `codersdk.CreateTokenRequest`: a long-lived API token for a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateTokenRequest {
    /// Unique per user; Coder answers 409 for a name the user already has.
    pub token_name: String,
    /// `codersdk.APIKeyScope` values; empty means Coder's default (`all`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Objects the token is limited to; empty means no limit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_list: Vec<AllowListTarget>,
    /// Lifetime as a Go `time.Duration`: an integer number of nanoseconds.
    pub lifetime: i64,
}

impl CreateTokenRequest {
    /// A token named `token_name` that lives `lifetime` with `scopes`.
    pub fn new(token_name: &str, lifetime: std::time::Duration, scopes: Vec<String>) -> Self {
        CreateTokenRequest {
            token_name: token_name.to_owned(),
            scopes,
            allow_list: Vec::new(),
            lifetime: i64::try_from(lifetime.as_nanos()).unwrap_or(i64::MAX),
        }
    }
}

/// `codersdk.APIAllowListTarget`: one object (`type`, `id`) a token is limited to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowListTarget {
    /// `codersdk.RBACResource`, e.g. `workspace`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The object's id, or `*`.
    pub id: String,
}

/// `codersdk.GenerateAPIKeyResponse`: the new token, shown once.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct GeneratedApiKey {
    /// The whole token (`<id>-<secret>`).
    pub key: String,
}

impl std::fmt::Debug for GeneratedApiKey {
    // The secret never reaches a log through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GeneratedApiKey { key: <redacted> }")
    }
}

/// `codersdk.WorkspaceStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceStatus {
    /// Build queued.
    Pending,
    /// Starting.
    Starting,
    /// Running.
    Running,
    /// Stopping.
    Stopping,
    /// Stopped.
    Stopped,
    /// Last build failed.
    Failed,
    /// Cancelling a build.
    Canceling,
    /// Build cancelled.
    Canceled,
    /// Being deleted.
    Deleting,
    /// Deleted.
    Deleted,
    /// A value this client does not know yet.
    #[serde(other)]
    Unknown,
}

/// `codersdk.WorkspaceTransition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceTransition {
    /// Start.
    Start,
    /// Stop.
    Stop,
    /// Delete.
    Delete,
    /// A value this client does not know yet.
    #[serde(other)]
    Unknown,
}

/// `codersdk.WorkspaceBuild` (the fields the bridge reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceBuild {
    /// Build id.
    pub id: Uuid,
    /// Workspace id.
    pub workspace_id: Uuid,
    /// Sequence number within the workspace.
    #[serde(default)]
    pub build_number: u64,
    /// What the build does.
    pub transition: WorkspaceTransition,
    /// Workspace status this build leads to.
    pub status: WorkspaceStatus,
}

/// `codersdk.Workspace` (the fields the bridge reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// Workspace id.
    pub id: Uuid,
    /// Name, unique per owner.
    pub name: String,
    /// Owner's user id.
    pub owner_id: Uuid,
    /// Owner's username.
    pub owner_name: String,
    /// Organization id.
    pub organization_id: Uuid,
    /// Most recent build; its status is the workspace's status.
    pub latest_build: WorkspaceBuild,
}

/// `codersdk.WorkspacesResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspacesPage {
    /// Workspaces on this page.
    #[serde(default, deserialize_with = "null_as_default")]
    pub workspaces: Vec<Workspace>,
    /// Number matching the query.
    #[serde(default)]
    pub count: u64,
}

/// `codersdk.CreateWorkspaceBuildRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateWorkspaceBuildRequest {
    /// `stop` for offboarding.
    pub transition: WorkspaceTransition,
}

/// `codersdk.OrganizationSyncSettings`: Coder's own OIDC organization sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationSyncSettings {
    /// Claim holding organizations; empty means the sync is off.
    #[serde(default)]
    pub field: String,
    /// Claim value to organization ids.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mapping: BTreeMap<String, Vec<Uuid>>,
    /// Whether every user is always put in the default organization.
    #[serde(default)]
    pub organization_assign_default: bool,
}

/// `codersdk.GroupSyncSettings`: Coder's own OIDC group sync for one organization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSyncSettings {
    /// Claim holding groups; empty means the sync is off.
    #[serde(default)]
    pub field: String,
    /// Claim value to group ids.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mapping: BTreeMap<String, Vec<Uuid>>,
    /// Filter on claim values.
    #[serde(default)]
    pub regex_filter: Option<String>,
    /// Whether missing groups are created at login.
    #[serde(default)]
    pub auto_create_missing_groups: bool,
}

/// `codersdk.RoleSyncSettings`: Coder's own OIDC role sync for one organization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleSyncSettings {
    /// Claim holding roles; empty means the sync is off.
    #[serde(default)]
    pub field: String,
    /// Claim value to organization role names.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mapping: BTreeMap<String, Vec<String>>,
}

macro_rules! sync_is_on {
    ($($settings:ty),*) => {$(
        impl $settings {
            /// Whether Coder applies this sync at every OIDC login (a claim field is set).
            pub fn is_on(&self) -> bool {
                !self.field.is_empty()
            }
        }
    )*};
}
sync_is_on!(
    OrganizationSyncSettings,
    GroupSyncSettings,
    RoleSyncSettings
);

/// Whether `name` is a valid Coder username (also the rule for group names, with a longer
/// limit): `^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$`, 1 to 32 characters, not `new` or `create`.
pub fn is_valid_username(name: &str) -> bool {
    name.len() <= 32 && !matches!(name, "new" | "create") && is_name_pattern(name)
}

/// `^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$`: alphanumeric runs joined by single hyphens.
fn is_name_pattern(name: &str) -> bool {
    !name.is_empty()
        && name
            .split('-')
            .all(|run| !run.is_empty() && run.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rule_matches_coder() {
        for ok in ["a", "alice-smith", "A1-b2-C3", &"x".repeat(32)] {
            assert!(is_valid_username(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "alice.smith",
            "new",
            "create",
            "é",
            &"x".repeat(33),
        ] {
            assert!(!is_valid_username(bad), "{bad}");
        }
    }

    #[test]
    fn go_nulls_read_as_empty() {
        let page: UsersPage = serde_json::from_str(r#"{"users":null,"count":0}"#).unwrap();
        assert!(page.users.is_empty());
        let roles: UserRoles =
            serde_json::from_str(r#"{"roles":null,"organization_roles":null}"#).unwrap();
        assert!(roles.roles.is_empty() && roles.organization_roles.is_empty());
    }

    #[test]
    fn unknown_enum_values_do_not_fail_decoding() {
        let status: UserStatus = serde_json::from_str(r#""frozen""#).unwrap();
        assert_eq!(status, UserStatus::Unknown);
        let login: LoginType = serde_json::from_str(r#""""#).unwrap();
        assert_eq!(login, LoginType::Unknown);
        assert_eq!(
            serde_json::to_string(&LoginType::Oidc).unwrap(),
            r#""oidc""#
        );
    }

    #[test]
    fn entitlements_need_enabled_and_licensed() {
        let e: Entitlements = serde_json::from_str(
            r#"{"features":{"template_rbac":{"enabled":true,"entitlement":"grace_period"},
                "scim":{"enabled":false,"entitlement":"entitled"},
                "multiple_organizations":{"enabled":true,"entitlement":"not_entitled"}}}"#,
        )
        .unwrap();
        assert!(e.allows("template_rbac"));
        assert!(!e.allows("scim"));
        assert!(!e.allows("multiple_organizations"));
        assert!(!e.allows("absent"));
    }

    #[test]
    fn patch_group_sends_only_what_changes() {
        let patch = PatchGroupRequest {
            add_users: vec![Uuid::nil()],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            serde_json::json!({"add_users": ["00000000-0000-0000-0000-000000000000"]})
        );
    }
}
