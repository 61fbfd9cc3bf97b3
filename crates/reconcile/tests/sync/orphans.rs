//! `[orphans]`: Coder accounts no SCIM resource manages, reported or suspended by drift repair,
//! and the accounts that must survive `suspend` whatever happens.

use crate::harness::{Env, TestDb, calls};
use crate::sync_tests;
use coder::types::LoginType;
use coder_fake::UserStatus;
use reconcile::drift;
use reconcile::orphans::{AUDIT_OPERATION, OrphanDisposition};
use serde_json::json;

sync_tests!(
    report_mode_lists_orphans_and_changes_nothing,
    suspend_mode_spares_the_bridge_allow_listed_managed_and_claimed_accounts,
);

const SUSPEND_ROUTE: &str = "/api/v2/users/{user}/status/suspend";

async fn orphan_audit(env: &Env) -> Vec<store::AuditRecord> {
    let mut records = env.audit().await;
    records.retain(|r| r.operation == AUDIT_OPERATION);
    records
}

async fn report_mode_lists_orphans_and_changes_nothing(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let managed = env.create_user("ann@corp.com", json!({})).await;
    env.drain().await;
    env.hand_made_user("stray", "stray@corp.com", LoginType::Password)
        .await;

    let plan = env.drift_plan().await;
    let found: Vec<(&str, OrphanDisposition)> = plan
        .orphans
        .iter()
        .map(|o| (o.user.username.as_str(), o.disposition))
        .collect();
    // The fake's `admin` is the owner whose token the bridge uses.
    assert_eq!(
        found,
        vec![
            ("admin", OrphanDisposition::BridgeAccount),
            ("stray", OrphanDisposition::Report),
        ]
    );
    assert!(plan.is_empty(), "orphans are not SCIM drift: {plan}");
    assert!(plan.to_string().contains("stray <stray@corp.com>"));
    let repaired = drift::repair(&env.reconciler, &plan).await.unwrap();
    assert_eq!(repaired.orphans_suspended, 0);

    let state = env.coder();
    assert_eq!(calls(&state, "PUT", SUSPEND_ROUTE, 200), 0);
    assert_ne!(state.user("stray").unwrap().status, UserStatus::Suspended);
    assert!(orphan_audit(&env).await.is_empty());
    assert_eq!(env.observer.recorded().orphans, Some(2));
    let warnings = env.reconciler.status().snapshot().warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("1 Coder account(s) are not managed")),
        "{warnings:?}"
    );
    assert_ne!(env.coder_status(&managed.id).await, UserStatus::Suspended);
}

async fn suspend_mode_spares_the_bridge_allow_listed_managed_and_claimed_accounts(db: TestDb) {
    let env = Env::start(
        db,
        true,
        "[orphans]\naction = \"suspend\"\nallow = [\"breakglass\", \"Oncall@Corp.com\"]",
    )
    .await;
    let managed = env.create_user("ann@corp.com", json!({})).await;
    let agent = env.create_agent("Review Bot", json!({})).await;
    env.drain().await;
    // Attackers' favourites: a hand-made account named like the allow-list, one whose email is
    // on it, one a SCIM User is about to claim by email, and one nobody manages.
    env.hand_made_user("breakglass", "bg@corp.com", LoginType::Password)
        .await;
    env.hand_made_user("oncall", "oncall@corp.com", LoginType::Password)
        .await;
    env.hand_made_user("bob", "bob@corp.com", LoginType::Oidc)
        .await;
    env.create_user("bob@corp.com", json!({})).await;
    env.hand_made_user("stray", "stray@corp.com", LoginType::Password)
        .await;

    let plan = env.drift_plan().await;
    let repaired = drift::repair(&env.reconciler, &plan).await.unwrap();
    assert_eq!(repaired.orphans_suspended, 1, "{plan}");

    let state = env.coder();
    // One suspension, of `stray`: no attempt at any other account, not even one Coder refuses.
    assert_eq!(state.count_calls("PUT", SUSPEND_ROUTE), 1);
    assert_eq!(state.user("stray").unwrap().status, UserStatus::Suspended);
    for spared in ["admin", "breakglass", "oncall", "bob"] {
        assert_ne!(
            state.user(spared).unwrap().status,
            UserStatus::Suspended,
            "{spared} was suspended"
        );
    }
    assert_ne!(env.coder_status(&managed.id).await, UserStatus::Suspended);
    assert_ne!(env.coder_status(&agent.id).await, UserStatus::Suspended);

    let audit = orphan_audit(&env).await;
    assert_eq!(audit.len(), 1);
    let stray = state.user("stray").unwrap().id.to_string();
    assert_eq!(audit[0].resource_id.as_deref(), Some(stray.as_str()));
    assert_eq!(audit[0].resource_type.as_deref(), Some("CoderUser"));
    assert_eq!(audit[0].result, "ok");
    assert_eq!(env.observer.recorded().orphans_suspended, 1);

    // The next drift repair finds it suspended and does nothing more.
    let again = env.drift_plan().await;
    assert_eq!(
        drift::repair(&env.reconciler, &again)
            .await
            .unwrap()
            .orphans_suspended,
        0
    );
    assert_eq!(env.coder().count_calls("PUT", SUSPEND_ROUTE), 1);
}
