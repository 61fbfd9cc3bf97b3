//! Deployment-wide routes: build info, entitlements and IdP-sync settings.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::organizations::organization_param;
use super::users::actor;
use super::{ApiError, Call, Outcome, Reply};
use crate::state::{IdpSyncOptions, World};
use uuid::Uuid;

/// Version the fake reports.
pub(crate) const FAKE_VERSION: &str = "v2.36.1-fake";

/// Premium features the fake's licence switch turns on.
const PREMIUM_FEATURES: &[&str] = &[
    "template_rbac",
    "multiple_organizations",
    "custom_roles",
    "user_role_management",
    "scim",
    "audit_log",
];

/// `GET /api/v2/buildinfo` (no auth).
pub(super) fn build_info(_world: &mut World, _call: &Call<'_>) -> Outcome {
    Reply::ok(json!({
        "version": FAKE_VERSION,
        "external_url": "https://github.com/coder/coder",
        "dashboard_url": "",
        "deployment_id": "00000000-fake-0000-0000-000000000000",
        "telemetry": false,
        "workspace_proxy": false,
        "agent_api_version": "2.0",
        "provisioner_api_version": "1.0",
        "upgrade_message": "",
        "webpush_public_key": "",
    }))
}

/// `GET /api/v2/entitlements` (no auth).
pub(super) fn entitlements(world: &mut World, _call: &Call<'_>) -> Outcome {
    let entitlement = if world.premium {
        "entitled"
    } else {
        "not_entitled"
    };
    let features: BTreeMap<&str, Value> = PREMIUM_FEATURES
        .iter()
        .map(|f| {
            (
                *f,
                // Coder enables `scim` only when its SCIM endpoint is configured.
                json!({
                    "enabled": world.premium && (*f != "scim" || world.idp_sync.coder_scim),
                    "entitlement": entitlement,
                }),
            )
        })
        .collect();
    Reply::ok(json!({
        "features": features,
        "has_license": world.premium,
        "trial": false,
        "require_telemetry": false,
        "errors": [],
        "warnings": [],
        "refreshed_at": crate::now(),
    }))
}

fn require_owner(world: &World, call: &Call<'_>) -> Result<(), ApiError> {
    if actor(world, call)?.is_owner() {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

/// `GET /api/v2/settings/idpsync/organization`.
pub(super) fn organization_sync(world: &mut World, call: &Call<'_>) -> Outcome {
    require_owner(world, call)?;
    let sync = &world.idp_sync;
    Reply::ok(json!({
        "field": sync.organization_field,
        "mapping": sync.organization_mapping,
        "organization_assign_default": sync.organization_assign_default,
    }))
}

/// An owner's read of an organization's sync settings: the organization of the path, and the
/// deployment's IdP sync options.
fn organization_sync_call<'w>(
    world: &'w World,
    call: &Call<'_>,
) -> Result<(Uuid, &'w IdpSyncOptions), ApiError> {
    require_owner(world, call)?;
    Ok((organization_param(world, call)?, &world.idp_sync))
}

/// `GET /api/v2/organizations/{organization}/settings/idpsync/groups`.
pub(super) fn group_sync(world: &mut World, call: &Call<'_>) -> Outcome {
    let (org, sync) = organization_sync_call(world, call)?;
    Reply::ok(json!({
        "field": sync.group_fields.get(&org).cloned().unwrap_or_default(),
        "mapping": sync.group_mappings.get(&org).cloned().unwrap_or_default(),
        "regex_filter": null,
        "auto_create_missing_groups": false,
        "legacy_group_name_mapping": null,
    }))
}

/// `GET /api/v2/organizations/{organization}/settings/idpsync/roles`.
pub(super) fn role_sync(world: &mut World, call: &Call<'_>) -> Outcome {
    let (org, sync) = organization_sync_call(world, call)?;
    Reply::ok(json!({
        "field": sync.role_fields.get(&org).cloned().unwrap_or_default(),
        "mapping": sync.role_mappings.get(&org).cloned().unwrap_or_default(),
    }))
}
