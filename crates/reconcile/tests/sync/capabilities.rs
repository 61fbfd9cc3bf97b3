//! The capability and conflict check.

use crate::harness::{Env, TestDb};
use crate::sync_tests;
use coder_fake::IdpSyncOptions;
use std::collections::BTreeMap;

sync_tests!(
    premium_owner_deployment_is_reported,
    coder_idp_sync_on_a_managed_org_is_warned
);

async fn premium_owner_deployment_is_reported(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let report = env.reconciler.check_capabilities().await.unwrap();
    assert!(report.coder_version.contains("fake"));
    assert_eq!(report.identity, "admin");
    assert!(report.is_owner && report.groups_licensed && report.groups_mirrored);
    assert!(!report.organization_sync && report.group_sync_organizations.is_empty());
    // Licensed is not enabled: Coder's own SCIM is off until its endpoint is configured.
    assert!(!report.coder_scim_enabled);
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| w.contains("Coder's own SCIM"))
    );
    env.fake.set_idp_sync(IdpSyncOptions {
        coder_scim: true,
        ..IdpSyncOptions::default()
    });
    let report = env.reconciler.check_capabilities().await.unwrap();
    assert!(report.coder_scim_enabled);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("Coder's own SCIM")),
        "{:?}",
        report.warnings
    );
    let status = env.reconciler.status().snapshot();
    assert!(status.is_ready());
    assert_eq!(status.capabilities.as_ref(), Some(&report));
    assert!(report.to_string().contains("groups mirrored:      yes"));

    // Without `groups.mirror` nothing is mirrored even with the licence.
    let no_mirror = Env::with_fake(TestDb::sqlite().await, env.fake, "[groups]\nmirror = false");
    assert!(
        !no_mirror
            .reconciler
            .check_capabilities()
            .await
            .unwrap()
            .groups_mirrored
    );
}

async fn coder_idp_sync_on_a_managed_org_is_warned(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let org = env.fake.default_organization_id();
    env.fake.set_idp_sync(IdpSyncOptions {
        organization_field: "orgs".into(),
        group_fields: BTreeMap::from([(org, "groups".into())]),
        role_fields: BTreeMap::from([(org, "roles".into())]),
        ..Default::default()
    });
    let report = env.reconciler.check_capabilities().await.unwrap();
    assert!(report.organization_sync);
    assert_eq!(report.group_sync_organizations, vec!["coder".to_string()]);
    assert_eq!(report.role_sync_organizations, vec!["coder".to_string()]);
    for needle in [
        "organization sync is on",
        "group sync is on in organization \"coder\"",
        "role sync is on",
    ] {
        assert!(
            report.warnings.iter().any(|w| w.contains(needle)),
            "{needle}: {:?}",
            report.warnings
        );
    }
    let status = env.reconciler.status().snapshot();
    assert!(status.warnings().iter().any(|w| w.contains("group sync")));
}
