//! Users and instant offboarding.

use crate::harness::{ADMINS_ARE_AUDITORS, Env, TestDb, calls};
use crate::sync_tests;
use coder::types::LoginType;
use coder_fake::{Fault, FaultKind, LoginType as FakeLoginType, UserStatus, WorkspaceStatus};
use reconcile::{
    ISSUE_DELETE_BLOCKED, ISSUE_EMAIL_PENDING, ISSUE_LOGIN_TYPE_MISMATCH, ISSUE_NOT_PROVISIONABLE,
};
use scim::ResourceKind;
use serde_json::json;

sync_tests!(
    creates_the_user_with_a_valid_username_name_email_and_organization,
    username_collisions_get_a_suffix,
    a_user_with_the_same_email_is_adopted,
    login_type_comes_from_the_policy_and_its_overrides,
    a_login_type_mismatch_is_flagged_with_the_fix,
    a_login_type_mismatch_is_fixed_by_recreating_when_allowed,
    renames_and_name_changes_go_through_the_profile,
    an_email_change_is_recorded_as_pending,
    deactivation_suspends_first_then_removes_tokens_and_stops_workspaces,
    delete_suspends_by_default,
    delete_policy_delete_removes_the_user_or_falls_back_to_suspend,
    a_user_deleted_by_hand_in_coder_is_provisioned_again,
    a_user_without_an_email_is_reported_not_provisioned,
    reconciling_twice_changes_nothing,
    a_create_whose_answer_was_lost_is_found_not_repeated,
    a_user_deleted_before_its_lost_create_was_found_gets_the_delete_policy,
    a_rename_recorded_ahead_of_coder_is_still_applied,
);

async fn creates_the_user_with_a_valid_username_name_email_and_organization(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let alice = env
        .create_user(
            "alice.smith@corp.com",
            json!({ "displayName": "  Alice Smith  " }),
        )
        .await;
    env.drain().await;

    let user = env.coder_user(&alice.id).await;
    assert_eq!(user.username, "alice-smith");
    assert_eq!(user.email, "alice.smith@corp.com");
    assert_eq!(user.name, "Alice Smith");
    assert_eq!(user.login_type, FakeLoginType::Oidc);
    assert_ne!(user.status, UserStatus::Suspended);
    assert!(
        user.organizations
            .contains_key(&env.fake.default_organization_id())
    );
    let mapping = env.mapping(&alice.id).await;
    assert_eq!(
        (
            mapping.coder_username.as_str(),
            mapping.adopted,
            mapping.login_type.as_str()
        ),
        ("alice-smith", false, "oidc")
    );

    let audit = env.worker_audit(&alice.id).await;
    assert_eq!(
        audit.len(),
        1,
        "one record per reconcile that changed Coder"
    );
    assert_eq!(audit[0].change["coder_calls"][0]["call"], "create_user");
    assert_eq!(audit[0].change["coder_calls"][0]["outcome"], "ok");
    assert_eq!(audit[0].result, "ok");
}

async fn username_collisions_get_a_suffix(db: TestDb) {
    let env = Env::start(db, false, "").await;
    // Taken in Coder by a user the bridge does not manage…
    env.hand_made_user("alice-smith", "someone@else.com", LoginType::Password)
        .await;
    let first = env.create_user("alice.smith@corp.com", json!({})).await;
    // …and in the mapping by another SCIM user.
    let second = env.create_user("alice.smith@other.com", json!({})).await;
    let long = env
        .create_user(&format!("{}@corp.com", "x".repeat(40)), json!({}))
        .await;
    let long_twin = env
        .create_user(&format!("{}@other.com", "x".repeat(40)), json!({}))
        .await;
    env.drain().await;

    assert_eq!(env.coder_user(&first.id).await.username, "alice-smith-2");
    assert_eq!(env.coder_user(&second.id).await.username, "alice-smith-3");
    assert_eq!(env.coder_user(&long.id).await.username, "x".repeat(32));
    assert_eq!(
        env.coder_user(&long_twin.id).await.username,
        format!("{}-2", "x".repeat(30))
    );
    let state = env.coder();
    assert_eq!(
        state.user("alice-smith").unwrap().email,
        "someone@else.com",
        "the unmanaged user is untouched"
    );
}

async fn a_user_with_the_same_email_is_adopted(db: TestDb) {
    let env = Env::start(db, false, "[users]\nadopt_existing = true").await;
    let existing = env
        .hand_made_user("bobby", "Bob@Corp.com", LoginType::Oidc)
        .await;
    let bob = env
        .create_user("bob@corp.com", json!({ "displayName": "Bob" }))
        .await;
    let before = env.coder().calls.len();
    env.drain().await;

    let mapping = env.mapping(&bob.id).await;
    assert!(mapping.adopted);
    assert_eq!(mapping.coder_user_id, existing.id);
    assert_eq!(
        mapping.coder_username, "bobby",
        "an adopted user keeps its username"
    );
    assert!(
        env.coder().calls[before..]
            .iter()
            .all(|c| c.method != "POST"),
        "no duplicate user"
    );
    let audit = env.worker_audit(&bob.id).await;
    assert!(
        audit.iter().any(|r| r.change["notes"]
            .to_string()
            .contains("adopted existing Coder user bobby")),
        "{audit:?}"
    );
}

async fn login_type_comes_from_the_policy_and_its_overrides(db: TestDb) {
    let rules = r#"
        [[users.login_type_overrides]]
        email_domain = "contractors.example.com"
        login_type = "github"
        [[users.login_type_overrides]]
        group = "password-people"
        login_type = "password"
    "#;
    let env = Env::start(db, false, rules).await;
    let staff = env.create_user("staff@corp.com", json!({})).await;
    let contractor = env
        .create_user("c@contractors.example.com", json!({}))
        .await;
    let member = env.create_user("p@corp.com", json!({})).await;
    env.create_group("Password-People", &[&member.id]).await;
    env.drain().await;

    assert_eq!(
        env.coder_user(&staff.id).await.login_type,
        FakeLoginType::Oidc
    );
    assert_eq!(
        env.coder_user(&contractor.id).await.login_type,
        FakeLoginType::Github
    );
    assert_eq!(
        env.coder_user(&member.id).await.login_type,
        FakeLoginType::Password
    );
}

async fn a_login_type_mismatch_is_flagged_with_the_fix(db: TestDb) {
    let env = Env::start(db, false, "[users]\nadopt_existing = true").await;
    env.hand_made_user("carol", "carol@corp.com", LoginType::Password)
        .await;
    let carol = env.create_user("carol@corp.com", json!({})).await;
    env.drain().await;

    let issues = env.issues(ISSUE_LOGIN_TYPE_MISMATCH).await;
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].resource_id, carol.id);
    assert!(
        issues[0].detail.contains("login_type password") && issues[0].detail.contains("Fix:"),
        "{}",
        issues[0].detail
    );
    assert_eq!(
        env.coder_user(&carol.id).await.login_type,
        FakeLoginType::Password,
        "not recreated by default"
    );

    // Audited once, not at every reconcile.
    env.enqueue(ResourceKind::User, &carol.id).await;
    env.drain().await;
    let notes: Vec<_> = env
        .worker_audit(&carol.id)
        .await
        .into_iter()
        .filter(|r| {
            r.change["notes"]
                .to_string()
                .contains("login_type password")
        })
        .collect();
    assert_eq!(notes.len(), 1);
}

async fn a_login_type_mismatch_is_fixed_by_recreating_when_allowed(db: TestDb) {
    let rules = "[users]\nrecreate_on_login_type_mismatch = true\nadopt_existing = true";
    let env = Env::start(db, false, rules).await;
    let old_dave = env
        .hand_made_user("dave", "dave@corp.com", LoginType::Github)
        .await
        .id;
    env.hand_made_user("erin", "erin@corp.com", LoginType::Github)
        .await;
    env.fake.create_workspace("erin", "dev", false).unwrap();
    let dave = env.create_user("dave@corp.com", json!({})).await;
    let erin = env.create_user("erin@corp.com", json!({})).await;
    env.drain().await;

    let new_dave = env.coder_user(&dave.id).await;
    assert_eq!(new_dave.login_type, FakeLoginType::Oidc);
    assert_ne!(new_dave.id, old_dave, "recreated with a new id");
    assert!(env.coder().user_by_id(old_dave).unwrap().deleted);
    assert_eq!(
        env.mapping(&dave.id).await.coder_user_id,
        new_dave.id,
        "the mapping follows"
    );
    // Erin owns a workspace: flagged instead.
    assert_eq!(
        env.coder_user(&erin.id).await.login_type,
        FakeLoginType::Github
    );
    let issues = env.issues(ISSUE_LOGIN_TYPE_MISMATCH).await;
    assert_eq!(
        issues
            .iter()
            .map(|i| i.resource_id.as_str())
            .collect::<Vec<_>>(),
        vec![erin.id.as_str()]
    );
}

async fn renames_and_name_changes_go_through_the_profile(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let user = env
        .create_user("frank@corp.com", json!({ "displayName": "Frank" }))
        .await;
    env.drain().await;
    let id = env.coder_user(&user.id).await.id;

    env.patch(
        ResourceKind::User,
        &user.id,
        json!([
            { "op": "replace", "path": "userName", "value": "frank.jones@corp.com" },
            { "op": "replace", "path": "displayName", "value": "Frank Jones" }
        ]),
    )
    .await;
    env.drain().await;
    let renamed = env.coder_user(&user.id).await;
    assert_eq!(
        (renamed.id, renamed.username.as_str(), renamed.name.as_str()),
        (id, "frank-jones", "Frank Jones")
    );
    assert_eq!(env.mapping(&user.id).await.coder_username, "frank-jones");
    assert_eq!(
        calls(&env.coder(), "PUT", "/api/v2/users/{user}/profile", 200),
        1
    );

    // Renamed by hand in Coder: put back.
    env.rename_by_hand(id, "hand-made", "X").await;
    env.enqueue(ResourceKind::User, &user.id).await;
    env.drain().await;
    let restored = env.coder_user(&user.id).await;
    assert_eq!(
        (restored.username.as_str(), restored.name.as_str()),
        ("frank-jones", "Frank Jones")
    );
}

async fn an_email_change_is_recorded_as_pending(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let user = env.create_user("gina@corp.com", json!({})).await;
    env.drain().await;
    let email = json!([{ "value": "gina.new@corp.com", "primary": true }]);
    env.replace(ResourceKind::User, &user.id, "emails", email)
        .await;
    env.drain().await;

    assert_eq!(
        env.coder_user(&user.id).await.email,
        "gina@corp.com",
        "Coder has no endpoint for it"
    );
    let issues = env.issues(ISSUE_EMAIL_PENDING).await;
    assert_eq!(issues.len(), 1);
    assert!(
        issues[0].detail.contains("gina.new@corp.com")
            && issues[0].detail.contains("next OIDC login")
    );
    let audit = env.worker_audit(&user.id).await;
    assert!(
        audit
            .iter()
            .any(|r| r.change["notes"].to_string().contains("next login")),
        "{audit:?}"
    );
}

async fn deactivation_suspends_first_then_removes_tokens_and_stops_workspaces(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let user = env.create_user("hank@corp.com", json!({})).await;
    env.drain().await;
    let username = env.coder_user(&user.id).await.username;
    env.fake.create_api_token(&username, "ci").unwrap();
    env.fake.create_api_token(&username, "laptop").unwrap();
    env.fake.create_workspace(&username, "dev", true).unwrap();

    env.set_active(&user.id, false).await;
    let queued = env.outbox_rows(store::OutboxFilter::Pending).await;
    assert_eq!(
        queued[0].priority,
        store::OutboxPriority::Offboarding,
        "deactivation jumps the queue"
    );
    let event = env
        .store()
        .outbox()
        .claim("t", chrono::Duration::seconds(30), 1)
        .await
        .unwrap()
        .remove(0);
    let report = env
        .reconciler
        .reconcile_user(&event.resource_id)
        .await
        .unwrap();
    env.store().outbox().complete(&event).await.unwrap();
    assert!(
        report.suspended_at.is_some(),
        "the report carries the suspension time for the latency metric"
    );

    let state = env.coder();
    let coder_user = state.user(&username).unwrap();
    assert_eq!(coder_user.status, UserStatus::Suspended);
    assert!(
        state.keys.iter().all(|k| k.user_id != coder_user.id),
        "listable tokens deleted"
    );
    assert!(
        state
            .workspaces
            .iter()
            .all(|w| w.status != WorkspaceStatus::Running)
    );
    let calls: Vec<_> = report
        .calls
        .iter()
        .map(|c| c["call"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(calls[0], "suspend_user", "suspension first: {calls:?}");
    assert_eq!(calls.iter().filter(|c| *c == "delete_api_key").count(), 2);

    env.set_active(&user.id, true).await;
    env.drain().await;
    assert_eq!(env.coder_status(&user.id).await, UserStatus::Active);
}

async fn delete_suspends_by_default(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let user = env.create_user("ivan@corp.com", json!({})).await;
    env.drain().await;
    let id = env.coder_user(&user.id).await.id;
    env.delete(ResourceKind::User, &user.id).await;
    env.drain().await;
    let state = env.coder();
    let coder_user = state.user_by_id(id).unwrap();
    assert_eq!(
        (coder_user.status, coder_user.deleted),
        (UserStatus::Suspended, false)
    );
    assert!(env.is_mapped(&user.id).await, "still managed");
}

async fn delete_policy_delete_removes_the_user_or_falls_back_to_suspend(db: TestDb) {
    let env = Env::start(db, false, "[users]\ndelete_policy = \"delete\"").await;
    let plain = env.create_user("judy@corp.com", json!({})).await;
    let busy = env.create_user("kurt@corp.com", json!({})).await;
    env.drain().await;
    let plain_id = env.coder_user(&plain.id).await.id;
    let busy_user = env.coder_user(&busy.id).await;
    env.fake
        .create_workspace(&busy_user.username, "dev", false)
        .unwrap();

    env.delete(ResourceKind::User, &plain.id).await;
    env.delete(ResourceKind::User, &busy.id).await;
    env.drain().await;

    let state = env.coder();
    assert!(state.user_by_id(plain_id).unwrap().deleted);
    assert!(
        !env.is_mapped(&plain.id).await,
        "mapping removed after a confirmed delete"
    );
    let busy_now = state.user_by_id(busy_user.id).unwrap();
    assert_eq!(
        (busy_now.deleted, busy_now.status),
        (false, UserStatus::Suspended),
        "417 falls back to suspend"
    );
    let issues = env.issues(ISSUE_DELETE_BLOCKED).await;
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].resource_id, busy.id);
}

async fn a_user_deleted_by_hand_in_coder_is_provisioned_again(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let user = env.create_user("lena@corp.com", json!({})).await;
    env.drain().await;
    let old = env.coder_user(&user.id).await.id;
    env.owner.delete_user(old).await.unwrap();
    env.enqueue(ResourceKind::User, &user.id).await;
    env.drain().await;
    let again = env.coder_user(&user.id).await;
    assert_ne!(again.id, old);
    assert_eq!(again.username, "lena");
}

async fn a_user_without_an_email_is_reported_not_provisioned(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let user = env.create_user("E12345", json!({ "emails": [] })).await;
    env.drain().await;
    assert!(!env.is_mapped(&user.id).await);
    assert_eq!(env.issues(ISSUE_NOT_PROVISIONABLE).await.len(), 1);
}

async fn reconciling_twice_changes_nothing(db: TestDb) {
    let env = Env::start(db, false, ADMINS_ARE_AUDITORS).await;
    let user = env.create_user("mia@corp.com", json!({})).await;
    env.create_group("admins", &[&user.id]).await;
    env.drain().await;
    let before = env.coder().calls.len();
    let audit_before = env.worker_audit(&user.id).await.len();
    let report = env.reconciler.reconcile_user(&user.id).await.unwrap();
    assert!(
        report.calls.is_empty(),
        "level-triggered: a duplicate is harmless: {:?}",
        report.calls
    );
    let state = env.coder();
    assert!(
        state.calls[before..].iter().all(|c| c.method == "GET"),
        "only reads: {:?}",
        &state.calls[before..]
    );
    assert_eq!(env.worker_audit(&user.id).await.len(), audit_before);
}

/// Reconcile `scim_id` once with Coder making the user but answering 502.
async fn lose_the_create_answer(env: &Env, scim_id: &str) {
    env.fake
        .inject(
            Fault::next(1, FaultKind::StatusAfterEffect { status: 502 })
                .on_paths("/api/v2/users")
                .on_method("POST"),
        )
        .unwrap();
    assert!(env.reconciler.reconcile_user(scim_id).await.is_err());
}

/// Whether a create of `scim_id`'s Coder user is recorded as under way.
async fn has_create_intent(env: &Env, scim_id: &str) -> bool {
    let intent = env.store().coder_map().intent_get(scim_id).await.unwrap();
    intent.is_some()
}

/// Coder makes the user but the answer is lost (here a 502 after the effect; a crash between
/// the request and the saved mapping is the same). The next reconcile finds the user the create
/// made, by the recorded intent, and neither creates a second one nor takes it for someone
/// else's account.
async fn a_create_whose_answer_was_lost_is_found_not_repeated(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let user = env.create_user("lost@corp.com", json!({})).await;
    lose_the_create_answer(&env, &user.id).await;
    env.reconciler.reconcile_user(&user.id).await.unwrap();
    let state = env.coder();
    assert_eq!(
        calls(&state, "POST", "/api/v2/users", 502),
        1,
        "{:?}",
        state.calls
    );
    assert_eq!(calls(&state, "POST", "/api/v2/users", 201), 0);
    assert_eq!(
        state
            .users
            .iter()
            .filter(|u| u.email == "lost@corp.com")
            .count(),
        1,
        "created once"
    );
    let mapping = env.mapping(&user.id).await;
    assert!(!mapping.adopted, "the bridge's own create, not an adoption");
    assert_eq!(mapping.coder_user_id, env.coder_user(&user.id).await.id);
    assert!(
        !has_create_intent(&env, &user.id).await,
        "the intent goes with the saved mapping"
    );
    let audit = env.worker_audit(&user.id).await;
    assert!(
        audit
            .iter()
            .any(|r| r.change.to_string().contains("answer was lost")),
        "{audit:?}"
    );
}

/// The IdP deletes the user while the create's answer is lost: the Coder user the create made
/// is still found and the delete policy (suspend) applies to it, instead of being left active
/// and unmanaged.
async fn a_user_deleted_before_its_lost_create_was_found_gets_the_delete_policy(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let user = env.create_user("gone@corp.com", json!({})).await;
    lose_the_create_answer(&env, &user.id).await;
    assert_eq!(calls(&env.coder(), "POST", "/api/v2/users", 502), 1);
    env.delete(ResourceKind::User, &user.id).await;
    env.reconciler.reconcile_user(&user.id).await.unwrap();
    let state = env.coder();
    let coder_user = state
        .users
        .iter()
        .find(|u| u.email == "gone@corp.com")
        .expect("the create made the user");
    assert_eq!(coder_user.status, UserStatus::Suspended);
    assert!(!has_create_intent(&env, &user.id).await);
}

/// The stored record says the new username base was applied, Coder still has the old name (a
/// crash between a lost create and a rename leaves exactly this): Coder's name decides, and the
/// rename is applied.
async fn a_rename_recorded_ahead_of_coder_is_still_applied(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let user = env.create_user("before@corp.com", json!({})).await;
    env.drain().await;
    env.replace(ResourceKind::User, &user.id, "userName", "after@corp.com")
        .await;
    let mut mapping = env.mapping(&user.id).await;
    mapping.last_applied["username_base"] = json!("after");
    env.store().coder_map().user_upsert(&mapping).await.unwrap();
    env.drain().await;
    assert_eq!(env.coder_user(&user.id).await.username, "after");
    assert_eq!(env.mapping(&user.id).await.coder_username, "after");
}
