//! The fake's in-memory Coder deployment and its public snapshot types.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::faults::{ActiveOutage, Fault};

/// `codersdk.UserStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Active.
    Active,
    /// Never logged in / idle; a request with the user's key makes them active.
    Dormant,
    /// Suspended: keys answer 401.
    Suspended,
}

/// `codersdk.LoginType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginType {
    /// Password.
    Password,
    /// GitHub.
    Github,
    /// OIDC.
    Oidc,
    /// No login (service accounts).
    None,
}

/// A Coder user as the fake stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeUser {
    /// Id.
    pub id: Uuid,
    /// Username.
    pub username: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Login type.
    pub login_type: LoginType,
    /// Status.
    pub status: UserStatus,
    /// Site roles (`member` implied, not stored).
    pub roles: BTreeSet<String>,
    /// Organization memberships: organization id to organization roles.
    pub organizations: BTreeMap<Uuid, BTreeSet<String>>,
    /// Whether the account is a service account.
    pub is_service_account: bool,
    /// Soft-deleted (still answers `GET /users/{id}`, never listed).
    pub deleted: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl FakeUser {
    /// Whether the user holds the site role `owner`.
    pub fn is_owner(&self) -> bool {
        self.roles.contains("owner")
    }

    /// Whether the user may manage other users (owner or user-admin).
    pub(crate) fn is_user_admin(&self) -> bool {
        self.is_owner() || self.roles.contains("user-admin")
    }
}

/// A Coder organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeOrganization {
    /// Id (never the nil UUID, which is the "default org" alias on user creation).
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Whether this is the default organization.
    pub is_default: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A Coder group (not `Everyone`, which the fake derives from organization membership).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeGroup {
    /// Id.
    pub id: Uuid,
    /// Organization.
    pub organization_id: Uuid,
    /// Name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// `user` or `oidc`.
    pub source: String,
    /// Member user ids.
    pub members: BTreeSet<Uuid>,
}

/// A long-lived API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeApiKey {
    /// Key id (the part of the token before `-`).
    pub id: String,
    /// Owner.
    pub user_id: Uuid,
    /// Token name.
    pub token_name: String,
    /// The whole token to send as `Coder-Session-Token`.
    pub token: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// `codersdk.APIKeyScope` values (`coder:all` unless the creator asked for others).
    pub scopes: Vec<String>,
}

/// Lifetime of a token whose creator named none (Coder's default is 30 days).
pub const DEFAULT_TOKEN_LIFETIME: chrono::Duration = chrono::Duration::days(30);

/// `codersdk.WorkspaceStatus` values the fake uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceStatus {
    /// Running.
    Running,
    /// Stopped.
    Stopped,
    /// Deleted.
    Deleted,
}

/// A workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeWorkspace {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Owner.
    pub owner_id: Uuid,
    /// Organization.
    pub organization_id: Uuid,
    /// Status after the latest build.
    pub status: WorkspaceStatus,
    /// Last transition (`start`, `stop`, `delete`).
    pub transition: String,
    /// Whether a build job is still running (then a new build answers 409).
    pub build_running: bool,
    /// Number of the latest build.
    pub build_number: u64,
    /// Id of the latest build.
    pub build_id: Uuid,
}

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallLogEntry {
    /// HTTP method.
    pub method: String,
    /// Route template (swagger key), or the raw path when no route matched.
    pub route: String,
    /// Status answered; 0 when the connection was dropped.
    pub status: u16,
}

/// Settings of Coder's own IdP sync (Premium).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpSyncOptions {
    /// Organization sync claim field; non-empty = on (adding an OIDC user to an org = 400).
    #[serde(default)]
    pub organization_field: String,
    /// Organization sync mapping: claim value to organization ids.
    #[serde(default)]
    pub organization_mapping: BTreeMap<String, Vec<Uuid>>,
    /// Always keep users in the default organization.
    #[serde(default)]
    pub organization_assign_default: bool,
    /// Group sync claim field per organization; non-empty = on.
    #[serde(default)]
    pub group_fields: BTreeMap<Uuid, String>,
    /// Group sync mapping per organization: claim value to group ids.
    #[serde(default)]
    pub group_mappings: BTreeMap<Uuid, BTreeMap<String, Vec<Uuid>>>,
    /// Role sync claim field per organization; non-empty = on (org role changes for OIDC users
    /// = 400).
    #[serde(default)]
    pub role_fields: BTreeMap<Uuid, String>,
    /// Role sync mapping per organization: claim value to organization role names.
    #[serde(default)]
    pub role_mappings: BTreeMap<Uuid, BTreeMap<String, Vec<String>>>,
    /// Deployment-wide site role sync (`CODER_OIDC_USER_ROLE_FIELD`): site role changes for
    /// OIDC users = 400.
    #[serde(default)]
    pub site_role_sync: bool,
    /// Coder's own SCIM endpoint is configured (`CODER_SCIM_AUTH_HEADER`): the `scim`
    /// entitlement is then enabled, not merely licensed.
    #[serde(default)]
    pub coder_scim: bool,
}

/// A snapshot of the whole fake deployment, for assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeState {
    /// Whether Premium features (groups, IdP sync) are licensed.
    pub premium: bool,
    /// Users, deleted ones included.
    pub users: Vec<FakeUser>,
    /// Organizations.
    pub organizations: Vec<FakeOrganization>,
    /// Groups (without the derived `Everyone`).
    pub groups: Vec<FakeGroup>,
    /// API tokens.
    pub keys: Vec<FakeApiKey>,
    /// Workspaces.
    pub workspaces: Vec<FakeWorkspace>,
    /// Coder API requests answered, in order (control routes excluded).
    pub calls: Vec<CallLogEntry>,
    /// IdP-sync settings.
    pub idp_sync: IdpSyncOptions,
}

impl FakeState {
    /// The non-deleted user with this username (ignoring case).
    pub fn user(&self, username: &str) -> Option<&FakeUser> {
        self.users
            .iter()
            .find(|u| !u.deleted && u.username.eq_ignore_ascii_case(username))
    }

    /// The user with this id, deleted or not.
    pub fn user_by_id(&self, id: Uuid) -> Option<&FakeUser> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The group of `organization` with this exact name.
    pub fn group(&self, organization: Uuid, name: &str) -> Option<&FakeGroup> {
        self.groups
            .iter()
            .find(|g| g.organization_id == organization && g.name == name)
    }

    /// The default organization.
    pub fn default_organization(&self) -> Option<&FakeOrganization> {
        self.organizations.iter().find(|o| o.is_default)
    }

    /// How many logged calls hit `method route` (e.g. `"PATCH"`, `"/api/v2/groups/{group}"`).
    pub fn count_calls(&self, method: &str, route: &str) -> usize {
        self.calls
            .iter()
            .filter(|c| c.method == method && c.route == route)
            .count()
    }
}

/// Fixed-window request counter for one (user, path).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateWindow {
    pub started: Instant,
    pub count: u32,
}

/// The mutable deployment behind the fake's lock.
#[derive(Debug)]
pub(crate) struct World {
    pub premium: bool,
    pub idp_sync: IdpSyncOptions,
    pub rate_limit_per_minute: Option<u32>,
    /// Added to every Coder API request ([`crate::FakeOptions::latency`]).
    pub latency: std::time::Duration,
    pub users: BTreeMap<Uuid, FakeUser>,
    pub organizations: Vec<FakeOrganization>,
    pub groups: BTreeMap<Uuid, FakeGroup>,
    /// Keyed by the whole token.
    pub keys: BTreeMap<String, FakeApiKey>,
    pub workspaces: BTreeMap<Uuid, FakeWorkspace>,
    pub rate_windows: HashMap<(Uuid, String), RateWindow>,
    pub faults: Vec<Fault>,
    pub outage: Option<ActiveOutage>,
    pub calls: Vec<CallLogEntry>,
}

impl World {
    pub fn snapshot(&self) -> FakeState {
        FakeState {
            premium: self.premium,
            users: self.users.values().cloned().collect(),
            organizations: self.organizations.clone(),
            groups: self.groups.values().cloned().collect(),
            keys: self.keys.values().cloned().collect(),
            workspaces: self.workspaces.values().cloned().collect(),
            calls: self.calls.clone(),
            idp_sync: self.idp_sync.clone(),
        }
    }

    pub fn organization(&self, id: Uuid) -> Option<&FakeOrganization> {
        self.organizations.iter().find(|o| o.id == id)
    }

    pub fn default_organization_id(&self) -> Uuid {
        self.organizations
            .iter()
            .find(|o| o.is_default)
            .map_or(Uuid::nil(), |o| o.id)
    }

    /// The non-deleted user holding `username` or `email` (ignoring case), except `except`.
    pub fn clash(&self, username: &str, email: Option<&str>, except: Option<Uuid>) -> bool {
        self.users.values().any(|u| {
            !u.deleted
                && Some(u.id) != except
                && (u.username.eq_ignore_ascii_case(username)
                    || email.is_some_and(|e| u.email.eq_ignore_ascii_case(e)))
        })
    }

    /// Creates a long-lived token for `user` with every scope and the default lifetime.
    pub fn issue_token(
        &mut self,
        user: Uuid,
        token_name: &str,
        token: Option<String>,
    ) -> FakeApiKey {
        self.issue_scoped_token(
            user,
            token_name,
            token,
            vec!["coder:all".to_owned()],
            DEFAULT_TOKEN_LIFETIME,
        )
    }

    /// Creates a long-lived token for `user` limited to `scopes` that lives `lifetime`.
    pub fn issue_scoped_token(
        &mut self,
        user: Uuid,
        token_name: &str,
        token: Option<String>,
        scopes: Vec<String>,
        lifetime: chrono::Duration,
    ) -> FakeApiKey {
        let token = token.unwrap_or_else(|| {
            let id: String = random_alphanumeric(10);
            format!("{id}-{}", random_alphanumeric(22))
        });
        let id = token.split('-').next().unwrap_or_default().to_owned();
        let now = crate::now();
        let key = FakeApiKey {
            id,
            user_id: user,
            token_name: token_name.to_owned(),
            token: token.clone(),
            created_at: now,
            expires_at: now + lifetime,
            scopes,
        };
        self.keys.insert(token, key.clone());
        key
    }

    /// Adds a workspace owned by `owner` in their first organization.
    pub fn add_workspace(
        &mut self,
        owner: Uuid,
        name: &str,
        running: bool,
    ) -> Option<FakeWorkspace> {
        let user = self.users.get(&owner).filter(|u| !u.deleted)?;
        let organization_id = user
            .organizations
            .keys()
            .next()
            .copied()
            .unwrap_or(self.default_organization_id());
        let workspace = FakeWorkspace {
            id: crate::new_id(),
            name: name.to_owned(),
            owner_id: owner,
            organization_id,
            status: if running {
                WorkspaceStatus::Running
            } else {
                WorkspaceStatus::Stopped
            },
            transition: if running { "start" } else { "stop" }.to_owned(),
            build_running: false,
            build_number: 1,
            build_id: crate::new_id(),
        };
        self.workspaces.insert(workspace.id, workspace.clone());
        Some(workspace)
    }

    /// Starts a new build of `workspace` with `transition` and finishes it at once.
    pub fn build(&mut self, workspace: Uuid, transition: &str) {
        if let Some(w) = self.workspaces.get_mut(&workspace) {
            w.build_number += 1;
            w.build_id = crate::new_id();
            w.transition = transition.to_owned();
            w.status = match transition {
                "start" => WorkspaceStatus::Running,
                "delete" => WorkspaceStatus::Deleted,
                _ => WorkspaceStatus::Stopped,
            };
        }
    }
}

pub(crate) fn random_alphanumeric(len: usize) -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    clock::IdSource::rng(&clock::SystemIds)
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Locks the world; a panic in another request does not make the fake unusable.
pub(crate) fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(PoisonError::into_inner)
}
