//! `[users] allowed_email_domains`: users Coder would refuse at OIDC login.

use crate::harness::{Env, TestDb, policy};
use crate::sync_tests;
use reconcile::{DriftKind, ISSUE_EMAIL_OUTSIDE_DOMAINS, MemoryObserver, Reconciler};
use scim::ResourceKind;
use serde_json::json;
use std::sync::Arc;

sync_tests!(
    an_outside_email_is_provisioned_with_an_issue_an_email_change_clears,
    skip_creates_no_account_until_the_email_is_allowed,
    a_rules_change_opens_and_clears_the_issue_through_drift,
);

const CORP_ONLY: &str = "[users]\nallowed_email_domains = [\"corp.example\"]";

async fn set_email(env: &Env, id: &str, email: &str) {
    let emails = json!([{ "value": email, "primary": true }]);
    env.replace(ResourceKind::User, id, "emails", emails).await;
}

async fn issue_ids(env: &Env) -> Vec<String> {
    let mut ids: Vec<String> = env
        .issues(ISSUE_EMAIL_OUTSIDE_DOMAINS)
        .await
        .into_iter()
        .map(|i| i.resource_id)
        .collect();
    ids.sort();
    ids
}

async fn an_outside_email_is_provisioned_with_an_issue_an_email_change_clears(db: TestDb) {
    let env = Env::start(db, false, CORP_ONLY).await;
    let inside = env.create_user("alice@CORP.Example", json!({})).await;
    let outside = env.create_user("bob@gmail.example", json!({})).await;
    // Coder compares the whole domain: a subdomain, or a domain that merely ends the same way,
    // is outside.
    let sub = env.create_user("carol@eu.corp.example", json!({})).await;
    let lookalike = env.create_user("dan@evilcorp.example", json!({})).await;
    env.drain().await;

    for user in [&inside, &outside, &sub, &lookalike] {
        env.coder_user(&user.id).await;
    }
    let mut expected = vec![outside.id.clone(), sub.id.clone(), lookalike.id.clone()];
    expected.sort();
    assert_eq!(issue_ids(&env).await, expected);
    let issue = env
        .issues(ISSUE_EMAIL_OUTSIDE_DOMAINS)
        .await
        .into_iter()
        .find(|i| i.resource_id == outside.id)
        .unwrap();
    assert!(
        issue.detail.contains("CODER_OIDC_EMAIL_DOMAIN")
            && issue.detail.contains("bob@gmail.example")
            && issue.detail.contains("provisioned all the same"),
        "{}",
        issue.detail
    );

    set_email(&env, &outside.id, "bob@corp.example").await;
    env.drain().await;
    let mut expected = vec![sub.id.clone(), lookalike.id.clone()];
    expected.sort();
    assert_eq!(issue_ids(&env).await, expected, "level-triggered: cleared");
    env.delete(ResourceKind::User, &sub.id).await;
    env.drain().await;
    assert_eq!(issue_ids(&env).await, vec![lookalike.id]);
    let plan = env.drift_plan().await;
    assert!(plan.items.iter().all(|i| i.kind != DriftKind::EmailDomain));
}

async fn skip_creates_no_account_until_the_email_is_allowed(db: TestDb) {
    let env = Env::start(
        db,
        false,
        &format!("{CORP_ONLY}\noutside_domain = \"skip\""),
    )
    .await;
    let bob = env.create_user("bob@gmail.example", json!({})).await;
    let alice = env.create_user("alice@corp.example", json!({})).await;
    env.drain().await;
    env.coder_user(&alice.id).await;
    assert!(!env.is_mapped(&bob.id).await);
    assert!(
        !env.coder()
            .users
            .iter()
            .any(|u| u.email == "bob@gmail.example"),
        "no Coder account for bob"
    );
    let issues = env.issues(ISSUE_EMAIL_OUTSIDE_DOMAINS).await;
    assert_eq!(issues.len(), 1);
    assert!(
        issues[0].detail.contains("no Coder account"),
        "{}",
        issues[0].detail
    );
    // Left out on purpose: drift repair does not queue it again and again.
    let plan = env.drift_plan().await;
    assert!(plan.is_empty(), "{plan}");

    set_email(&env, &bob.id, "bob@corp.example").await;
    env.drain().await;
    assert_eq!(env.coder_user(&bob.id).await.email, "bob@corp.example");
    assert!(env.issues(ISSUE_EMAIL_OUTSIDE_DOMAINS).await.is_empty());

    // Managed already: an email that moves outside keeps the account managed, so the
    // deactivation still suspends it.
    set_email(&env, &bob.id, "bob@gmail.example").await;
    env.drain().await;
    let issues = env.issues(ISSUE_EMAIL_OUTSIDE_DOMAINS).await;
    assert!(
        issues[0].detail.contains("stays managed"),
        "{}",
        issues[0].detail
    );
    env.set_active(&bob.id, false).await;
    env.drain().await;
    assert_eq!(
        env.coder_status(&bob.id).await,
        coder_fake::UserStatus::Suspended
    );
}

/// The same store and Coder under other rules, as after a restart with a changed file.
fn with_rules(env: &mut Env, rules: &str) {
    env.reconciler = Arc::new(Reconciler::new(
        (&env.db.store).into(),
        crate::harness::client_for(&env.fake),
        Arc::new(policy(rules)),
        env.db.clock.clone(),
        Arc::new(MemoryObserver::default()),
    ));
}

async fn a_rules_change_opens_and_clears_the_issue_through_drift(db: TestDb) {
    let mut env = Env::start(db, false, "").await;
    let bob = env.create_user("bob@partner.example", json!({})).await;
    env.create_user("alice@corp.example", json!({})).await;
    env.drain().await;
    assert!(env.issues(ISSUE_EMAIL_OUTSIDE_DOMAINS).await.is_empty());

    with_rules(&mut env, CORP_ONLY);
    let plan = env.drift_plan().await;
    assert_eq!(plan.items.len(), 1, "{plan}");
    assert_eq!(
        (plan.items[0].kind, plan.items[0].id.as_str()),
        (DriftKind::EmailDomain, bob.id.as_str())
    );
    env.repair_through_outbox(&plan).await;
    assert_eq!(issue_ids(&env).await, vec![bob.id.clone()]);
    assert!(env.drift_plan().await.is_empty());

    // The domain is added (to CODER_OIDC_EMAIL_DOMAIN and to the rules): the issue clears.
    with_rules(
        &mut env,
        "[users]\nallowed_email_domains = [\"corp.example\", \"Partner.Example\"]",
    );
    let plan = env.drift_plan().await;
    assert_eq!(plan.items.len(), 1, "{plan}");
    assert_eq!(plan.items[0].kind, DriftKind::EmailDomain);
    env.repair_through_outbox(&plan).await;
    assert!(env.issues(ISSUE_EMAIL_OUTSIDE_DOMAINS).await.is_empty());
}

/// The worker runs on paused time, so its test lives apart from the row-by-row ones.
mod worker {
    use super::CORP_ONLY;
    use crate::harness::{Env, GOAL_LIMIT, TestDb, spawn, worker_config};
    use crate::sync_tests;
    use serde_json::json;

    sync_tests!(paused; the_worker_counts_users_outside_the_domains);

    async fn the_worker_counts_users_outside_the_domains(db: TestDb) {
        let env = Env::start(db, false, CORP_ONLY).await;
        env.create_user("bob@gmail.example", json!({})).await;
        env.create_user("eve@other.example", json!({})).await;
        env.create_user("alice@corp.example", json!({})).await;
        let running = spawn(env.worker(worker_config("w1")));
        env.run_until("the outside users counted", GOAL_LIMIT, async || {
            env.observer.recorded().users_outside_email_domains == Some(2)
        })
        .await;
        running.stop().await;
    }
}
