//! The capability and conflict check run at start-up and for `/readyz`: what the Coder
//! deployment can do for the bridge, and which of Coder's own features would undo its work.

use crate::policy::{OrganizationRef, Policy};
use coder::types::{Organization, ROLE_OWNER};
use coder::{CoderClient, CoderError};
use serde::Serialize;
use std::fmt;
use uuid::Uuid;

/// Coder's entitlement for groups.
pub const FEATURE_GROUPS: &str = "template_rbac";
/// Coder's entitlement for its own SCIM endpoint.
pub const FEATURE_SCIM: &str = "scim";

/// What the check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CapabilityReport {
    /// Coder's version (buildinfo).
    pub coder_version: String,
    /// The Coder user the bridge's token belongs to.
    pub identity: String,
    /// Whether that user is an `owner` (needed to grant roles and manage others' API keys).
    pub is_owner: bool,
    /// Whether Coder licenses groups (Premium `template_rbac`).
    pub groups_licensed: bool,
    /// Whether SCIM groups are mirrored to Coder groups (licensed and `groups.mirror`).
    pub groups_mirrored: bool,
    /// Whether Coder's own SCIM endpoint is enabled.
    pub coder_scim_enabled: bool,
    /// Whether Coder's OIDC organization sync is on.
    pub organization_sync: bool,
    /// Managed organizations where Coder's OIDC group sync is on.
    pub group_sync_organizations: Vec<String>,
    /// Managed organizations where Coder's OIDC role sync is on.
    pub role_sync_organizations: Vec<String>,
    /// What an operator should know or fix, in plain words.
    pub warnings: Vec<String>,
}

impl fmt::Display for CapabilityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "Coder version:        {}", self.coder_version)?;
        writeln!(
            f,
            "bridge identity:      {} (owner: {})",
            self.identity,
            yes_no(self.is_owner)
        )?;
        writeln!(f, "groups licensed:      {}", yes_no(self.groups_licensed))?;
        writeln!(f, "groups mirrored:      {}", yes_no(self.groups_mirrored))?;
        writeln!(
            f,
            "Coder SCIM enabled:   {}",
            yes_no(self.coder_scim_enabled)
        )?;
        writeln!(
            f,
            "Coder org sync:       {}",
            yes_no(self.organization_sync)
        )?;
        writeln!(
            f,
            "Coder group sync in:  {}",
            list_or_none(&self.group_sync_organizations)
        )?;
        writeln!(
            f,
            "Coder role sync in:   {}",
            list_or_none(&self.role_sync_organizations)
        )?;
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// The organization a policy key names: `default`, a name (ignoring case) or an id.
pub fn resolve_organization<'a>(
    organizations: &'a [Organization],
    key: &OrganizationRef,
) -> Option<&'a Organization> {
    match key {
        OrganizationRef::Default => organizations.iter().find(|o| o.is_default),
        OrganizationRef::Named(name) => organizations.iter().find(|o| {
            o.name.eq_ignore_ascii_case(name) || Uuid::parse_str(name).is_ok_and(|id| id == o.id)
        }),
    }
}

/// The organizations the policy puts users in or grants roles in, as policy keys.
pub fn managed_organization_keys(policy: &Policy) -> Vec<OrganizationRef> {
    let mut keys = vec![policy.users.organization.clone()];
    for rule in &policy.roles.rules {
        for org in rule.org_roles.keys() {
            let key = OrganizationRef::Named(org.clone());
            let key = if org.eq_ignore_ascii_case("default") {
                OrganizationRef::Default
            } else {
                key
            };
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// Settings a Premium deployment may hide: an unlicensed or absent route means "off".
fn off_when_unavailable<T: Default>(result: Result<T, CoderError>) -> Result<T, CoderError> {
    match result {
        Err(CoderError::Unlicensed { .. }) => Ok(T::default()),
        Err(e) if e.is_not_found() => Ok(T::default()),
        other => other,
    }
}

/// Check what the deployment at `client` offers and what conflicts with `policy`. Fails when
/// Coder cannot be reached or refuses the token (the caller reports not ready).
pub async fn check(client: &CoderClient, policy: &Policy) -> Result<CapabilityReport, CoderError> {
    let build = client.build_info().await?;
    let entitlements = client.entitlements().await?;
    let identity = client.identify().await?;
    let organizations = client.organizations().await?;

    let mut report = CapabilityReport {
        coder_version: build.version,
        identity: identity.user.username.clone(),
        is_owner: identity.user.has_role(ROLE_OWNER),
        groups_licensed: entitlements.allows(FEATURE_GROUPS),
        coder_scim_enabled: entitlements
            .features
            .get(FEATURE_SCIM)
            .is_some_and(|f| f.enabled),
        ..CapabilityReport::default()
    };
    report.groups_mirrored = report.groups_licensed && policy.groups.mirror;

    if !report.is_owner {
        report.warnings.push(format!(
            "the bridge's Coder token belongs to {:?}, who is not an owner: it cannot grant roles, delete other users' API tokens or bypass Coder's rate limit",
            report.identity
        ));
    }
    if policy.groups.mirror && !report.groups_licensed {
        report.warnings.push(
            "groups are not mirrored: Coder groups need Premium (entitlement template_rbac); SCIM groups are still kept and used for role mapping".into(),
        );
    }
    if report.coder_scim_enabled {
        report.warnings.push(
            "Coder's own SCIM endpoint is enabled (entitlement scim): it and the bridge would race over the same users; provision through one of them only".into(),
        );
    }

    let mut managed = Vec::new();
    for key in managed_organization_keys(policy) {
        match resolve_organization(&organizations, &key) {
            Some(org) => managed.push(org.clone()),
            None => report.warnings.push(format!(
                "organization {key:?} named in the policy does not exist in Coder"
            )),
        }
    }

    let org_sync = off_when_unavailable(client.organization_sync_settings().await)?;
    report.organization_sync = org_sync.is_on();
    if report.organization_sync {
        report.warnings.push(format!(
            "Coder's OIDC organization sync is on (claim {:?}): it resets organization memberships at every login and refuses adding OIDC users to organizations by API; turn it off for users the bridge manages",
            org_sync.field
        ));
    }
    for org in &managed {
        let groups = off_when_unavailable(client.group_sync_settings(org.id).await)?;
        if groups.is_on() {
            report.group_sync_organizations.push(org.name.clone());
            report.warnings.push(format!(
                "Coder's OIDC group sync is on in organization {:?} (claim {:?}): every login resets group memberships the bridge set; turn it off or stop mirroring groups",
                org.name, groups.field
            ));
        }
        let roles = off_when_unavailable(client.role_sync_settings(org.id).await)?;
        if roles.is_on() {
            report.role_sync_organizations.push(org.name.clone());
            report.warnings.push(format!(
                "Coder's OIDC role sync is on in organization {:?} (claim {:?}): it overrides the bridge's organization roles and refuses role changes for OIDC users",
                org.name, roles.field
            ));
        }
    }
    Ok(report)
}
