//! The mapping rules: how SCIM Users and Groups become Coder users, groups and roles. Read from
//! the `[users]`, `[offboarding]`, `[groups]` and `[roles]` tables of the TOML configuration
//! (`docs/CONFIGURATION.md`), with the documented defaults, and validated once at start-up so a
//! mistake is reported with the key that holds it instead of surfacing as Coder 400s.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Site roles Coder lets an owner grant (`member` is implied).
pub const SITE_ROLES: &[&str] = &["owner", "template-admin", "user-admin", "auditor"];

/// Roles that look like site roles but are organization roles in Coder.
// Coder moved `agents-access` to the organization scope in April 2026; as a site role it
// answers 400.
const ORG_ONLY_ROLES: &[&str] = &["agents-access"];

/// A mistake in the mapping rules, naming the key that holds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct PolicyError {
    /// The TOML key, e.g. `roles.rules[2].site_roles`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl PolicyError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// How a Coder user signs in. Chosen at creation; Coder has no endpoint to change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginType {
    Oidc,
    Github,
    Password,
    None,
}

impl LoginType {
    /// The Coder client's value.
    pub fn to_coder(self) -> coder::types::LoginType {
        match self {
            LoginType::Oidc => coder::types::LoginType::Oidc,
            LoginType::Github => coder::types::LoginType::Github,
            LoginType::Password => coder::types::LoginType::Password,
            LoginType::None => coder::types::LoginType::None,
        }
    }

    /// The name Coder uses.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginType::Oidc => "oidc",
            LoginType::Github => "github",
            LoginType::Password => "password",
            LoginType::None => "none",
        }
    }
}

impl fmt::Display for LoginType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SCIM attribute a Coder username is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum UsernameSource {
    /// `userName` (its local part when it is an email address).
    #[default]
    #[serde(rename = "userName")]
    UserName,
    /// The local part of the user's email.
    #[serde(rename = "email")]
    Email,
}

/// What a SCIM User DELETE does to the Coder user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserDeletePolicy {
    /// Suspend the user (keeps workspaces and history).
    #[default]
    Suspend,
    /// Delete the user; falls back to suspending when Coder answers 417 (workspaces exist).
    Delete,
}

/// What a SCIM Group DELETE does to the Coder group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupDeletePolicy {
    #[default]
    Delete,
    /// Leave the Coder group as it is and stop managing it.
    Keep,
}

/// What happens to a user whose email is outside `[users] allowed_email_domains`
/// (`[users] outside_domain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutsideDomain {
    /// Create the Coder account all the same (a sync issue says the user cannot sign in).
    #[default]
    Provision,
    /// Create no Coder account (a sync issue says why); an account the bridge already manages
    /// stays managed, so the user's offboarding still reaches Coder.
    Skip,
}

impl OutsideDomain {
    /// The TOML value.
    pub fn as_str(self) -> &'static str {
        match self {
            OutsideDomain::Provision => "provision",
            OutsideDomain::Skip => "skip",
        }
    }

    /// From a flag or variable's value.
    pub fn parse(raw: &str) -> Result<OutsideDomain, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "provision" => Ok(OutsideDomain::Provision),
            "skip" => Ok(OutsideDomain::Skip),
            _ => Err(format!(
                "unknown value {raw:?}: expected \"provision\" or \"skip\""
            )),
        }
    }
}

/// An email domain as written in the rules (`corp.example`, or `@corp.example` as Coder also
/// takes it), lower-cased. Coder compares the whole domain, so a wildcard or a leading dot
/// would never match: refused.
pub fn parse_email_domain(raw: &str) -> Result<String, String> {
    let domain = raw.trim().trim_start_matches('@').to_lowercase();
    if domain.is_empty()
        || domain.contains('@')
        || domain.contains(char::is_whitespace)
        || domain.contains(',')
    {
        return Err(format!("{raw:?} is not a domain such as \"corp.example\""));
    }
    if domain.contains('*') || domain.starts_with('.') {
        return Err(format!(
            "{raw:?}: domains are compared whole, as Coder compares CODER_OIDC_EMAIL_DOMAIN (no wildcards, no subdomains): list each domain, e.g. \"eu.corp.example\""
        ));
    }
    Ok(domain)
}

/// The part of `email` after its last `@`, as Coder takes it for `CODER_OIDC_EMAIL_DOMAIN`.
pub fn email_domain(email: &str) -> Option<&str> {
    email.trim().rsplit_once('@').map(|(_, domain)| domain)
}

/// The organization new users join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrganizationRef {
    /// The organization with `is_default: true`.
    Default,
    /// An organization by name or id.
    Named(String),
}

impl OrganizationRef {
    /// `default` (any case) or a name or id, as the configuration writes an organization.
    pub fn parse(text: &str) -> OrganizationRef {
        if text.eq_ignore_ascii_case("default") {
            OrganizationRef::Default
        } else {
            OrganizationRef::Named(text.to_owned())
        }
    }
}

/// The SCIM group a rule names, by one attribute only: a group whose displayName equals
/// another group's externalId must not borrow that group's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSelector {
    /// `group = "…"`: the displayName, ignoring case (as SCIM compares it).
    DisplayName(String),
    /// `group_external_id = "…"`: the externalId, exactly (it is the IdP's identifier).
    ExternalId(String),
}

impl GroupSelector {
    /// Whether the group with this displayName and externalId is the one named.
    pub fn matches(&self, display_name: Option<&str>, external_id: Option<&str>) -> bool {
        match self {
            GroupSelector::DisplayName(name) => {
                display_name.is_some_and(|d| d.trim().eq_ignore_ascii_case(name))
            }
            GroupSelector::ExternalId(id) => external_id.is_some_and(|e| e == id),
        }
    }

    /// From a rule's `group` and `group_external_id` (exactly one), checked under `key`.
    pub(crate) fn parse(
        key: &str,
        display_name: Option<String>,
        external_id: Option<String>,
    ) -> Result<GroupSelector, PolicyError> {
        let (field, value, make): (_, _, fn(String) -> GroupSelector) = match (
            display_name,
            external_id,
        ) {
            (Some(name), None) => ("group", name, GroupSelector::DisplayName),
            (None, Some(id)) => ("group_external_id", id, GroupSelector::ExternalId),
            (Some(_), Some(_)) => {
                return Err(PolicyError::new(
                    key,
                    "give group (the displayName) or group_external_id (the externalId), not both",
                ));
            }
            (None, None) => {
                return Err(PolicyError::new(
                    key,
                    "needs group (the SCIM group's displayName) or group_external_id (its externalId)",
                ));
            }
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(PolicyError::new(
                format!("{key}.{field}"),
                "must name a SCIM group",
            ));
        }
        Ok(make(value.to_owned()))
    }
}

/// Which users a login type override applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideSelector {
    /// Users whose email is in this domain (lower case, no `@`).
    EmailDomain(String),
    /// Members of this SCIM group.
    Group(GroupSelector),
}

/// A login type for some users instead of the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginTypeOverride {
    pub selector: OverrideSelector,
    pub login_type: LoginType,
}

/// `[users]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPolicy {
    pub login_type: LoginType,
    pub username_from: UsernameSource,
    pub delete_policy: UserDeletePolicy,
    pub recreate_on_login_type_mismatch: bool,
    pub organization: OrganizationRef,
    /// First match wins, in file order.
    pub login_type_overrides: Vec<LoginTypeOverride>,
    /// Take over a Coder account that already has the SCIM user's email (otherwise a sync
    /// issue says what collided and the account is left alone).
    pub adopt_existing: bool,
    /// Emails or usernames (lower case) of `owner` accounts that may be adopted; no other owner
    /// ever is.
    pub adopt_owners: Vec<String>,
    /// The email domains Coder accepts OIDC logins from (`CODER_OIDC_EMAIL_DOMAIN`), lower
    /// case; empty: every domain.
    pub allowed_email_domains: Vec<String>,
    /// What happens to a user whose email is outside them.
    pub outside_domain: OutsideDomain,
}

impl UserPolicy {
    /// Whether an account holding the `owner` role with this email and username may be adopted.
    pub fn may_adopt_owner(&self, email: &str, username: &str) -> bool {
        self.adopt_owners
            .iter()
            .any(|o| o.eq_ignore_ascii_case(email) || o.eq_ignore_ascii_case(username))
    }

    /// Whether Coder would accept an OIDC login with `email` under `allowed_email_domains`
    /// (always, when it lists none). As Coder checks `CODER_OIDC_EMAIL_DOMAIN`: the part after
    /// the last `@`, ignoring case, equal to a listed domain; a subdomain is another domain.
    pub fn email_domain_allowed(&self, email: &str) -> bool {
        if self.allowed_email_domains.is_empty() {
            return true;
        }
        email_domain(email).is_some_and(|domain| {
            let domain = domain.to_lowercase();
            self.allowed_email_domains.contains(&domain)
        })
    }
}

/// `[offboarding]`: what follows the suspension of a deactivated user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffboardingPolicy {
    pub delete_api_tokens: bool,
    pub stop_workspaces: bool,
    /// Apply `delete_api_tokens` and `stop_workspaces` to adopted accounts holding the `owner`
    /// role too (off: an adopted owner is only suspended, which Coder may refuse).
    pub adopted_owners: bool,
}

/// `[groups]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupPolicy {
    /// Mirror SCIM groups to Coder groups (needs Premium's `template_rbac`).
    pub mirror: bool,
    pub delete_policy: GroupDeletePolicy,
}

/// One `[[roles.rules]]` entry: members of `group` get these roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRule {
    pub group: GroupSelector,
    pub site_roles: Vec<String>,
    /// Organization roles by organization name/id, or `default`.
    pub org_roles: BTreeMap<String, Vec<String>>,
}

impl RoleRule {
    /// A rule from its TOML fields under `key`: one group selector, checked site roles, and at
    /// least one role.
    pub(crate) fn parse(
        key: &str,
        group: Option<String>,
        group_external_id: Option<String>,
        site_roles: Vec<String>,
        org_roles: BTreeMap<String, Vec<String>>,
    ) -> Result<RoleRule, PolicyError> {
        let group = GroupSelector::parse(key, group, group_external_id)?;
        let org_roles = check_org_roles(&format!("{key}.org_roles"), org_roles)?;
        if site_roles.is_empty() && org_roles.values().all(Vec::is_empty) {
            return Err(PolicyError::new(
                key,
                "grants no role: give site_roles or org_roles",
            ));
        }
        Ok(RoleRule {
            group,
            site_roles,
            org_roles,
        })
    }
}

/// `[roles]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RolePolicy {
    /// Site roles every managed user gets.
    pub baseline_site_roles: Vec<String>,
    pub rules: Vec<RoleRule>,
    /// `[roles.grantable]`: the roles an IdP may grant on a User's `roles` (listed at
    /// `/Roles`); not enabled when the table is absent.
    pub grantable: scim::roles::RoleCatalog,
}

/// `[entitlements]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntitlementPolicy {
    /// `[entitlements.grantable]`: the organization memberships an IdP may grant on a User's
    /// `entitlements` (listed at `/Entitlements`); not enabled when the table is absent.
    pub grantable: scim::entitlements::EntitlementCatalog,
}

/// Site roles `[roles.grantable]` offers when it does not say: every site role but `owner`,
/// which is offered only when listed.
pub const DEFAULT_GRANTABLE_SITE_ROLES: &[&str] = &["template-admin", "user-admin", "auditor"];

/// The validated mapping rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub users: UserPolicy,
    pub offboarding: OffboardingPolicy,
    pub groups: GroupPolicy,
    pub roles: RolePolicy,
    pub entitlements: EntitlementPolicy,
    /// `[agents]`: agents and agent users as Coder service accounts.
    pub agents: crate::agent_policy::AgentPolicy,
    /// `[orphans]`: Coder accounts no SCIM resource manages.
    pub orphans: crate::orphans::OrphanPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            users: UserPolicy {
                login_type: LoginType::Oidc,
                username_from: UsernameSource::UserName,
                delete_policy: UserDeletePolicy::Suspend,
                recreate_on_login_type_mismatch: false,
                organization: OrganizationRef::Default,
                login_type_overrides: Vec::new(),
                adopt_existing: false,
                adopt_owners: Vec::new(),
                allowed_email_domains: Vec::new(),
                outside_domain: OutsideDomain::Provision,
            },
            offboarding: OffboardingPolicy {
                delete_api_tokens: true,
                stop_workspaces: true,
                adopted_owners: false,
            },
            groups: GroupPolicy {
                mirror: true,
                delete_policy: GroupDeletePolicy::Delete,
            },
            roles: RolePolicy::default(),
            entitlements: EntitlementPolicy::default(),
            agents: crate::agent_policy::AgentPolicy::default(),
            orphans: crate::orphans::OrphanPolicy::default(),
        }
    }
}

// ----- the TOML shapes, as written -----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    login_type: Option<LoginType>,
    username_from: Option<UsernameSource>,
    delete_policy: Option<UserDeletePolicy>,
    recreate_on_login_type_mismatch: Option<bool>,
    organization: Option<String>,
    #[serde(default)]
    login_type_overrides: Vec<OverrideFile>,
    adopt_existing: Option<bool>,
    #[serde(default)]
    adopt_owners: Vec<String>,
    #[serde(default)]
    allowed_email_domains: Vec<String>,
    outside_domain: Option<OutsideDomain>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideFile {
    email_domain: Option<String>,
    group: Option<String>,
    group_external_id: Option<String>,
    login_type: LoginType,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OffboardingFile {
    delete_api_tokens: Option<bool>,
    stop_workspaces: Option<bool>,
    adopted_owners: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsFile {
    mirror: Option<bool>,
    delete_policy: Option<GroupDeletePolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesFile {
    #[serde(default)]
    baseline_site_roles: Vec<String>,
    #[serde(default)]
    rules: Vec<RuleFile>,
    grantable: Option<GrantableFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantableFile {
    site_roles: Option<Vec<String>>,
    #[serde(default)]
    org_roles: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntitlementsFile {
    grantable: Option<GrantableEntitlementsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantableEntitlementsFile {
    #[serde(default)]
    organizations: Vec<String>,
}

/// A `[[roles.rules]]` or `[[agents.rules]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleFile {
    pub(crate) group: Option<String>,
    pub(crate) group_external_id: Option<String>,
    #[serde(default)]
    pub(crate) site_roles: Vec<String>,
    #[serde(default)]
    pub(crate) org_roles: BTreeMap<String, Vec<String>>,
}

/// Emails or Coder usernames, trimmed and in lower case (compared ignoring case); an empty
/// entry is an error naming it (`key[i]`).
pub(crate) fn account_names(key: &str, entries: &[String]) -> Result<Vec<String>, PolicyError> {
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                return Err(PolicyError::new(
                    format!("{key}[{i}]"),
                    "must be an email or a Coder username",
                ));
            }
            Ok(entry)
        })
        .collect()
}

/// Deserialise the table `key` of `table`, or its default when absent; errors name the table.
fn section<T: for<'de> Deserialize<'de> + Default>(
    table: &toml::Table,
    key: &str,
) -> Result<T, PolicyError> {
    match table.get(key) {
        None => Ok(T::default()),
        Some(toml::Value::Table(_)) => {
            let value = table
                .get(key)
                .cloned()
                .unwrap_or(toml::Value::Table(toml::Table::new()));
            value
                .try_into()
                .map_err(|e: toml::de::Error| PolicyError::new(key, e.message().to_owned()))
        }
        Some(_) => Err(PolicyError::new(key, "must be a table")),
    }
}

impl Policy {
    /// Read and validate the `[users]`, `[offboarding]`, `[groups]`, `[roles]`, `[entitlements]`,
    /// `[agents]` and `[orphans]` tables of
    /// `table` (other keys are process settings and are not looked at). Absent tables and keys
    /// take the documented defaults; unknown keys inside them are errors.
    pub fn from_toml(table: &toml::Table) -> Result<Policy, PolicyError> {
        let users: UsersFile = section(table, "users")?;
        let offboarding: OffboardingFile = section(table, "offboarding")?;
        let groups: GroupsFile = section(table, "groups")?;
        let roles: RolesFile = section(table, "roles")?;
        let entitlements: EntitlementsFile = section(table, "entitlements")?;
        let defaults = Policy::default();

        let organization = match users.organization {
            None => OrganizationRef::Default,
            Some(name) if name.trim().is_empty() => {
                return Err(PolicyError::new(
                    "users.organization",
                    "must name an organization or be \"default\"",
                ));
            }
            Some(name) => OrganizationRef::parse(name.trim()),
        };
        let login_type = users.login_type.unwrap_or(defaults.users.login_type);
        check_login_type("users.login_type", login_type)?;
        let mut login_type_overrides = Vec::new();
        for (i, entry) in users.login_type_overrides.into_iter().enumerate() {
            let key = format!("users.login_type_overrides[{i}]");
            check_login_type(&format!("{key}.login_type"), entry.login_type)?;
            let by_group = entry.group.is_some() || entry.group_external_id.is_some();
            let selector = match entry.email_domain {
                Some(domain) if !by_group => OverrideSelector::EmailDomain(
                    parse_email_domain(&domain)
                        .map_err(|e| PolicyError::new(format!("{key}.email_domain"), e))?,
                ),
                None if by_group => OverrideSelector::Group(GroupSelector::parse(
                    &key,
                    entry.group,
                    entry.group_external_id,
                )?),
                _ => {
                    return Err(PolicyError::new(
                        key,
                        "needs exactly one of email_domain, group or group_external_id",
                    ));
                }
            };
            login_type_overrides.push(LoginTypeOverride {
                selector,
                login_type: entry.login_type,
            });
        }

        let adopt_owners = account_names("users.adopt_owners", &users.adopt_owners)?;

        let entitlement_catalog = match entitlements.grantable {
            None => scim::entitlements::EntitlementCatalog::default(),
            Some(file) => grantable_entitlements(file, &organization)?,
        };
        let mut allowed_email_domains = Vec::new();
        for (i, entry) in users.allowed_email_domains.iter().enumerate() {
            let domain = parse_email_domain(entry)
                .map_err(|e| PolicyError::new(format!("users.allowed_email_domains[{i}]"), e))?;
            if !allowed_email_domains.contains(&domain) {
                allowed_email_domains.push(domain);
            }
        }
        let outside_domain = users.outside_domain.unwrap_or_default();

        let baseline_site_roles =
            check_site_roles("roles.baseline_site_roles", roles.baseline_site_roles)?;
        let mut rules = Vec::new();
        for (i, rule) in roles.rules.into_iter().enumerate() {
            rules.push(RoleRule::parse(
                &format!("roles.rules[{i}]"),
                rule.group,
                rule.group_external_id,
                check_site_roles(&format!("roles.rules[{i}].site_roles"), rule.site_roles)?,
                rule.org_roles,
            )?);
        }

        Ok(Policy {
            users: UserPolicy {
                login_type,
                username_from: users.username_from.unwrap_or_default(),
                delete_policy: users.delete_policy.unwrap_or_default(),
                recreate_on_login_type_mismatch: users
                    .recreate_on_login_type_mismatch
                    .unwrap_or(defaults.users.recreate_on_login_type_mismatch),
                organization,
                login_type_overrides,
                adopt_existing: users
                    .adopt_existing
                    .unwrap_or(defaults.users.adopt_existing),
                adopt_owners,
                allowed_email_domains,
                outside_domain,
            },
            offboarding: OffboardingPolicy {
                delete_api_tokens: offboarding
                    .delete_api_tokens
                    .unwrap_or(defaults.offboarding.delete_api_tokens),
                stop_workspaces: offboarding
                    .stop_workspaces
                    .unwrap_or(defaults.offboarding.stop_workspaces),
                adopted_owners: offboarding
                    .adopted_owners
                    .unwrap_or(defaults.offboarding.adopted_owners),
            },
            groups: GroupPolicy {
                mirror: groups.mirror.unwrap_or(defaults.groups.mirror),
                delete_policy: groups.delete_policy.unwrap_or_default(),
            },
            roles: RolePolicy {
                baseline_site_roles,
                rules,
                grantable: match roles.grantable {
                    None => scim::roles::RoleCatalog::default(),
                    Some(file) => grantable(file)?,
                },
            },
            entitlements: EntitlementPolicy {
                grantable: entitlement_catalog,
            },
            agents: crate::agent_policy::AgentPolicy::from_toml(table)?,
            orphans: section::<crate::orphans::OrphansFile>(table, "orphans")?.validate()?,
        })
    }

    /// Whether any rule (role or login type) looks at a user's group memberships: only then
    /// does a user's reconcile read its groups, and a group's membership change re-queue users.
    pub fn uses_groups(&self) -> bool {
        self.agents.uses_groups()
            || !self.roles.rules.is_empty()
            || self
                .users
                .login_type_overrides
                .iter()
                .any(|o| matches!(o.selector, OverrideSelector::Group(_)))
    }

    /// Whether a rule names the group with this displayName and externalId.
    pub fn mentions_group(&self, display_name: Option<&str>, external_id: Option<&str>) -> bool {
        let names = |selector: &GroupSelector| selector.matches(display_name, external_id);
        self.agents.mentions_group(display_name, external_id)
            || self.roles.rules.iter().any(|r| names(&r.group))
            || self
                .users
                .login_type_overrides
                .iter()
                .any(|o| match &o.selector {
                    OverrideSelector::Group(g) => names(g),
                    OverrideSelector::EmailDomain(_) => false,
                })
    }
}

/// `[roles.grantable]` as the catalog `/Roles` lists: site roles, then each organization's.
fn grantable(file: GrantableFile) -> Result<scim::roles::RoleCatalog, PolicyError> {
    use scim::roles::GrantableRole;
    let site = match file.site_roles {
        Some(names) => check_site_roles("roles.grantable.site_roles", names)?,
        None => DEFAULT_GRANTABLE_SITE_ROLES
            .iter()
            .map(|r| (*r).to_owned())
            .collect(),
    };
    let orgs = check_org_roles("roles.grantable.org_roles", file.org_roles)?;
    let mut roles: Vec<GrantableRole> = site.iter().map(|r| GrantableRole::site(r)).collect();
    for (org, names) in &orgs {
        if org.contains(':') {
            return Err(PolicyError::new(
                format!("roles.grantable.org_roles.{org}"),
                "an organization key must not contain ':' (it separates the organization from the role in a role's id)",
            ));
        }
        roles.extend(names.iter().map(|n| GrantableRole::in_organization(org, n)));
    }
    Ok(scim::roles::RoleCatalog::new(roles))
}

fn check_login_type(key: &str, login_type: LoginType) -> Result<(), PolicyError> {
    // Coder refuses `none` for anyone but service accounts.
    if login_type == LoginType::None {
        return Err(PolicyError::new(
            key,
            "\"none\" is only for Coder service accounts; use oidc, github or password",
        ));
    }
    Ok(())
}

/// `[entitlements.grantable]` as the catalog `/Entitlements` lists: one membership per
/// organization, in the order written. The users' own organization (`users.organization`) is
/// refused: every managed user is a member there, so it grants nothing.
fn grantable_entitlements(
    file: GrantableEntitlementsFile,
    home: &OrganizationRef,
) -> Result<scim::entitlements::EntitlementCatalog, PolicyError> {
    use scim::entitlements::GrantableEntitlement;
    let mut offered: Vec<GrantableEntitlement> = Vec::new();
    for (i, name) in file.organizations.iter().enumerate() {
        let key = format!("entitlements.grantable.organizations[{i}]");
        let name = name.trim();
        if name.is_empty() {
            return Err(PolicyError::new(key, "must name an organization"));
        }
        if name.contains([':', '/']) {
            return Err(PolicyError::new(
                key,
                "an organization name or id has no ':' or '/' (it is the id of a SCIM resource)",
            ));
        }
        let is_home = match (OrganizationRef::parse(name), home) {
            (OrganizationRef::Default, OrganizationRef::Default) => true,
            (OrganizationRef::Named(a), OrganizationRef::Named(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        };
        if is_home {
            return Err(PolicyError::new(
                key,
                format!(
                    "{name:?} is users.organization: every managed user is a member there already"
                ),
            ));
        }
        if !offered.iter().any(|o| o.id.eq_ignore_ascii_case(name)) {
            offered.push(GrantableEntitlement::organization(name));
        }
    }
    Ok(scim::entitlements::EntitlementCatalog::new(offered))
}

/// Organization roles by organization (`default`, a name or an id), checked under `key`.
pub(crate) fn check_org_roles(
    key: &str,
    org_roles: BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, Vec<String>>, PolicyError> {
    let mut checked_roles = BTreeMap::new();
    for (org, names) in org_roles {
        let org_key = format!("{key}.{org}");
        if org.trim().is_empty() {
            return Err(PolicyError::new(
                org_key,
                "the organization name must not be empty",
            ));
        }
        let mut checked = Vec::new();
        for name in names {
            let name = name.trim().to_owned();
            if name.is_empty() {
                return Err(PolicyError::new(&org_key, "role names must not be empty"));
            }
            if SITE_ROLES.contains(&name.as_str()) {
                return Err(PolicyError::new(
                    &org_key,
                    format!("{name:?} is a site role: put it in site_roles"),
                ));
            }
            if !checked.contains(&name) {
                checked.push(name);
            }
        }
        checked_roles.insert(org.trim().to_owned(), checked);
    }
    Ok(checked_roles)
}

pub(crate) fn check_site_roles(key: &str, roles: Vec<String>) -> Result<Vec<String>, PolicyError> {
    let mut checked = Vec::new();
    for role in roles {
        let role = role.trim().to_owned();
        if ORG_ONLY_ROLES.contains(&role.as_str()) {
            return Err(PolicyError::new(
                key,
                format!(
                    "{role:?} is an organization role in Coder: put it in org_roles, e.g. org_roles = {{ default = [\"{role}\"] }}"
                ),
            ));
        }
        if role == "member" {
            return Err(PolicyError::new(
                key,
                "\"member\" is implied for every user; leave it out",
            ));
        }
        if !SITE_ROLES.contains(&role.as_str()) {
            return Err(PolicyError::new(
                key,
                format!(
                    "unknown site role {role:?}; expected one of {}",
                    SITE_ROLES.join(", ")
                ),
            ));
        }
        if !checked.contains(&role) {
            checked.push(role);
        }
    }
    Ok(checked)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::from_toml(&text.parse::<toml::Table>().unwrap())
    }

    /// The error `text` is refused with, which names `key`.
    pub(crate) fn refused(text: &str, key: &str) -> PolicyError {
        let error = parse(text).unwrap_err();
        assert_eq!(error.key, key, "{text}: {error}");
        error
    }

    #[test]
    fn empty_file_takes_the_documented_defaults() {
        let policy = parse("").unwrap();
        assert_eq!(policy, Policy::default());
        assert_eq!(policy.users.login_type, LoginType::Oidc);
        assert_eq!(policy.users.delete_policy, UserDeletePolicy::Suspend);
        assert!(policy.offboarding.delete_api_tokens && policy.offboarding.stop_workspaces);
        assert!(policy.groups.mirror);
        assert_eq!(policy.groups.delete_policy, GroupDeletePolicy::Delete);
        assert!(!policy.uses_groups());
        assert!(!policy.users.adopt_existing && policy.users.adopt_owners.is_empty());
        assert!(!policy.offboarding.adopted_owners);
    }

    #[test]
    fn documented_example_parses() {
        let policy = parse(include_str!("../tests/fixtures/policy.toml")).unwrap();
        assert_eq!(policy.users.username_from, UsernameSource::UserName);
        assert_eq!(policy.users.login_type_overrides.len(), 2);
        assert_eq!(
            policy.users.login_type_overrides[0].selector,
            OverrideSelector::EmailDomain("contractors.example.com".into())
        );
        assert_eq!(
            policy.users.login_type_overrides[1].login_type,
            LoginType::Github
        );
        assert_eq!(policy.roles.rules.len(), 4);
        assert_eq!(
            policy.roles.rules[3].org_roles["default"],
            vec!["agents-access".to_string()]
        );
        assert!(policy.uses_groups());
        assert!(policy.mentions_group(Some("Coder-Admins"), None));
        assert!(policy.mentions_group(Some("GitHub-Users"), None));
        assert!(
            !policy.mentions_group(None, Some("github-users")),
            "group = names the displayName only"
        );
        assert!(!policy.mentions_group(Some("devs"), Some("x")));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[users]\nlogin_typ = \"oidc\"", "users"),
            ("[users]\nlogin_type = \"saml\"", "users"),
            ("[users]\nlogin_type = \"none\"", "users.login_type"),
            ("[users]\norganization = \"  \"", "users.organization"),
            (
                "[[users.login_type_overrides]]\nlogin_type = \"github\"",
                "users.login_type_overrides[0]",
            ),
            (
                "[[users.login_type_overrides]]\nemail_domain = \"a@b\"\nlogin_type = \"github\"",
                "users.login_type_overrides[0].email_domain",
            ),
            (
                "[roles]\nbaseline_site_roles = [\"admin\"]",
                "roles.baseline_site_roles",
            ),
            (
                "[[roles.rules]]\ngroup = \"x\"\nsite_roles = [\"agents-access\"]",
                "roles.rules[0].site_roles",
            ),
            ("[[roles.rules]]\ngroup = \"x\"", "roles.rules[0]"),
            (
                "[[roles.rules]]\ngroup = \"\"\nsite_roles = [\"owner\"]",
                "roles.rules[0].group",
            ),
            (
                "[[roles.rules]]\ngroup_external_id = \" \"\nsite_roles = [\"owner\"]",
                "roles.rules[0].group_external_id",
            ),
            (
                "[[roles.rules]]\ngroup = \"x\"\ngroup_external_id = \"x\"\nsite_roles = [\"owner\"]",
                "roles.rules[0]",
            ),
            (
                "[[roles.rules]]\nsite_roles = [\"owner\"]",
                "roles.rules[0]",
            ),
            (
                "[[users.login_type_overrides]]\nemail_domain = \"a.b\"\ngroup = \"g\"\nlogin_type = \"github\"",
                "users.login_type_overrides[0]",
            ),
            (
                "[[roles.rules]]\ngroup = \"x\"\norg_roles = { default = [\"owner\"] }",
                "roles.rules[0].org_roles.default",
            ),
            ("[groups]\ndelete_policy = \"archive\"", "groups"),
            ("[users]\nadopt_owners = [\" \"]", "users.adopt_owners[0]"),
            ("offboarding = 3", "offboarding"),
            (
                "[roles.grantable]\nsite_roles = [\"agents-access\"]",
                "roles.grantable.site_roles",
            ),
            (
                "[roles.grantable]\norg_roles = { default = [\"auditor\"] }",
                "roles.grantable.org_roles.default",
            ),
            (
                "[roles.grantable]\norg_roles = { \"a:b\" = [\"organization-admin\"] }",
                "roles.grantable.org_roles.a:b",
            ),
            ("[roles.grantable]\nsite_role = []", "roles"),
            (
                "[users]\nallowed_email_domains = [\"*.corp.example\"]",
                "users.allowed_email_domains[0]",
            ),
            (
                "[users]\nallowed_email_domains = [\"corp.example\", \"a b\"]",
                "users.allowed_email_domains[1]",
            ),
            ("[users]\nallowed_email_domains = \"corp.example\"", "users"),
            ("[users]\noutside_domain = \"drop\"", "users"),
        ];
        for (text, key) in cases {
            refused(text, key);
        }
        let error =
            parse("[[roles.rules]]\ngroup = \"x\"\nsite_roles = [\"agents-access\"]").unwrap_err();
        assert!(error.message.contains("org_roles"), "{error}");
        assert!(
            parse("[users]\nlogin_typ = \"oidc\"")
                .unwrap_err()
                .message
                .contains("login_typ")
        );
    }

    #[test]
    fn allowed_email_domains_are_normalised_and_outside_domain_defaults_to_provision() {
        let policy = parse(
            "[users]\nallowed_email_domains = [\"Corp.Example\", \"@partner.example\", \"corp.example\"]",
        )
        .unwrap();
        assert_eq!(
            policy.users.allowed_email_domains,
            ["corp.example", "partner.example"]
        );
        assert_eq!(policy.users.outside_domain, OutsideDomain::Provision);
        assert!(policy.users.email_domain_allowed("a@PARTNER.example"));
        assert!(!policy.users.email_domain_allowed("a@sub.partner.example"));
        assert!(!policy.users.email_domain_allowed("not-an-email"));
        let skip = parse("[users]\noutside_domain = \"skip\"").unwrap();
        assert_eq!(skip.users.outside_domain, OutsideDomain::Skip);
        assert!(skip.users.email_domain_allowed("anyone@anywhere.example"));
        assert_eq!(OutsideDomain::parse(" Skip "), Ok(OutsideDomain::Skip));
        assert!(OutsideDomain::parse("drop").is_err());
    }

    #[test]
    fn a_rule_matches_the_attribute_it_names_only() {
        let policy = parse(
            "[[roles.rules]]\ngroup = \"Admins\"\nsite_roles = [\"owner\"]\n[[roles.rules]]\ngroup_external_id = \"ext-42\"\nsite_roles = [\"auditor\"]",
        )
        .unwrap();
        let (by_name, by_id) = (&policy.roles.rules[0].group, &policy.roles.rules[1].group);
        assert_eq!(by_name, &GroupSelector::DisplayName("Admins".into()));
        assert!(by_name.matches(Some(" admins "), None));
        assert!(!by_name.matches(Some("other"), Some("Admins")));
        assert!(by_id.matches(Some("anything"), Some("ext-42")));
        assert!(!by_id.matches(Some("ext-42"), None));
        assert!(!by_id.matches(None, Some("EXT-42")), "externalId is exact");
    }

    #[test]
    fn grantable_entitlements_are_organizations_but_not_the_home_one() {
        assert!(!parse("").unwrap().entitlements.grantable.is_enabled());
        let policy =
            parse("[entitlements.grantable]\norganizations = [\" eng \", \"Research\", \"ENG\"]")
                .unwrap();
        let ids: Vec<&str> = policy
            .entitlements
            .grantable
            .entitlements()
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(ids, ["eng", "Research"]);
        for (text, key) in [
            (
                "[entitlements.grantable]\norganizations = [\"default\"]",
                "entitlements.grantable.organizations[0]",
            ),
            (
                "[users]\norganization = \"Eng\"\n[entitlements.grantable]\norganizations = [\"x\", \"eng\"]",
                "entitlements.grantable.organizations[1]",
            ),
            (
                "[entitlements.grantable]\norganizations = [\"a:b\"]",
                "entitlements.grantable.organizations[0]",
            ),
            (
                "[entitlements.grantable]\norganizations = [\" \"]",
                "entitlements.grantable.organizations[0]",
            ),
            (
                "[entitlements.grantable]\norganisations = []",
                "entitlements",
            ),
        ] {
            refused(text, key);
        }
        // Another home organization: default may be offered.
        let policy = parse(
            "[users]\norganization = \"Eng\"\n[entitlements.grantable]\norganizations = [\"default\"]",
        )
        .unwrap();
        assert_eq!(policy.entitlements.grantable.entitlements().len(), 1);
    }

    #[test]
    fn grantable_roles_offer_owner_only_when_listed() {
        assert!(!parse("").unwrap().roles.grantable.is_enabled());
        let ids = |text: &str| -> Vec<String> {
            let policy = parse(text).unwrap();
            assert!(policy.roles.grantable.is_enabled());
            policy
                .roles
                .grantable
                .roles()
                .iter()
                .map(|r| r.id.clone())
                .collect()
        };
        assert_eq!(
            ids("[roles.grantable]"),
            ["template-admin", "user-admin", "auditor"]
        );
        assert_eq!(
            ids(
                "[roles.grantable]\nsite_roles = [\"owner\", \"auditor\"]\norg_roles = { default = [\"organization-admin\"], Eng = [\"organization-auditor\"] }"
            ),
            [
                "owner",
                "auditor",
                "Eng:organization-auditor",
                "default:organization-admin"
            ]
        );
    }

    #[test]
    fn other_settings_are_not_looked_at() {
        let policy = parse(
            "listen = \"0.0.0.0:1\"\n[worker]\nconcurrency = 2\n[users]\norganization = \"Eng\"",
        )
        .unwrap();
        assert_eq!(
            policy.users.organization,
            OrganizationRef::Named("Eng".into())
        );
    }
}
