//! Agents and agent users as Coder service accounts: least privilege, Premium, owners and the
//! cascade, against the Coder fake.

use crate::harness::{Env, TestDb};
use crate::sync_tests;
use coder_fake::{LoginType as FakeLoginType, UserStatus};
use reconcile::DriftKind;
use scim::ResourceKind;
use serde_json::{Value, json};
use store::{OutboxFilter, OutboxPriority};

sync_tests!(
    an_agent_becomes_a_service_account_without_email_or_login,
    without_premium_a_sync_issue_names_premium_and_people_still_sync,
    agents_hold_only_the_roles_agent_rules_name,
    an_agent_joins_its_groups,
    the_last_owner_leaving_suspends_the_agent_and_deletes_its_tokens,
    an_owner_back_does_not_reactivate_the_agent_unless_configured,
    reactivate_with_owner_brings_the_agent_back_with_its_owner,
    deleting_an_agent_suspends_it_and_deletes_its_tokens,
    a_user_marked_as_an_agent_becomes_a_service_account,
    agent_tokens_are_minted_within_bounds_listed_revoked_and_audited,
    explain_shows_owners_and_why_the_agent_is_suspended,
    an_owner_named_by_a_later_patch_takes_part_in_the_cascade,
    drift_repair_converges_an_agent_changed_by_hand,
    drift_repair_keeps_an_agent_its_owners_left_suspended,
);

fn owners(ids: &[&str]) -> Value {
    json!({ "owners": ids.iter().map(|id| json!({ "value": id })).collect::<Vec<_>>() })
}

async fn an_agent_becomes_a_service_account_without_email_or_login(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let agent = env
        .create_agent(
            "Review Bot",
            json!({ "displayName": "Review bot", "description": "Reviews merge requests" }),
        )
        .await;
    env.drain().await;
    let account = env.coder_user(&agent.id).await;
    assert!(account.is_service_account);
    assert_eq!(account.username, "review-bot");
    assert_eq!(account.email, "");
    assert_eq!(account.name, "Review bot");
    assert_eq!(account.login_type, FakeLoginType::None);
    assert_ne!(account.status, UserStatus::Suspended);
    assert!(
        account.roles.is_empty(),
        "no site role: {:?}",
        account.roles
    );
    let audit = env.worker_audit(&agent.id).await;
    assert!(
        audit
            .iter()
            .any(|r| r.change.to_string().contains("create_service_account")),
        "the create is audited"
    );
    // A second pass changes nothing.
    env.enqueue(ResourceKind::Agent, &agent.id).await;
    let before = env.coder().calls.len();
    env.drain().await;
    let writes = env.coder().calls[before..]
        .iter()
        .filter(|c| c.method != "GET")
        .count();
    assert_eq!(writes, 0, "reconciling again writes nothing");
}

async fn without_premium_a_sync_issue_names_premium_and_people_still_sync(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let agent = env.create_agent("deploy-bot", json!({})).await;
    let alice = env.create_user("alice@corp.example", json!({})).await;
    env.drain().await;
    assert!(env.coder().user("alice").is_some());
    assert!(!env.coder().users.iter().any(|u| u.is_service_account));
    let issues = env
        .issues(reconcile::ISSUE_SERVICE_ACCOUNTS_UNLICENSED)
        .await;
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].resource_id, agent.id);
    assert!(issues[0].detail.contains("Premium"), "{}", issues[0].detail);
    assert!(!env.is_mapped(&agent.id).await);
    // Licensed later: the next reconcile provisions the agent and closes the issue.
    env.fake.set_premium(true);
    env.enqueue(ResourceKind::Agent, &agent.id).await;
    env.drain().await;
    assert!(env.coder_user(&agent.id).await.is_service_account);
    assert!(
        env.issues(reconcile::ISSUE_SERVICE_ACCOUNTS_UNLICENSED)
            .await
            .is_empty()
    );
    assert!(!env.coder_user(&alice.id).await.is_service_account);
}

async fn agents_hold_only_the_roles_agent_rules_name(db: TestDb) {
    let rules = r#"
        [roles]
        baseline_site_roles = ["auditor"]
        [[roles.rules]]
        group = "admins"
        site_roles = ["owner", "template-admin"]
        [agents.org_roles]
        default = ["agents-access"]
        [[agents.rules]]
        group = "reviewers"
        site_roles = ["auditor"]
    "#;
    let env = Env::start(db, true, rules).await;
    let plain = env.create_agent("plain-bot", json!({})).await;
    let reviewer = env.create_agent("review-bot", json!({})).await;
    let person = env.create_user("ann@corp.example", json!({})).await;
    env.create_group("admins", &[&plain.id, &person.id]).await;
    env.create_group("reviewers", &[&reviewer.id]).await;
    env.drain().await;
    let plain_account = env.coder_user(&plain.id).await;
    assert!(
        plain_account.roles.is_empty(),
        "people's roles never reach an agent: {:?}",
        plain_account.roles
    );
    let org = env.fake.default_organization_id();
    assert!(plain_account.organizations[&org].contains("agents-access"));
    let reviewer_account = env.coder_user(&reviewer.id).await;
    assert_eq!(
        reviewer_account.roles.iter().collect::<Vec<_>>(),
        ["auditor"]
    );
    // The person still gets the people's rules.
    assert!(env.coder_user(&person.id).await.roles.contains("owner"));
}

async fn an_agent_joins_its_groups(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let agent = env.create_agent("ci-bot", json!({})).await;
    let group = env.create_group("Builders", &[&agent.id]).await;
    env.drain().await;
    let account = env.coder_user(&agent.id).await;
    let group_id = env.coder_group_id(&group.id).await;
    let state = env.coder();
    let coder_group = state.groups.iter().find(|g| g.id == group_id).unwrap();
    assert!(coder_group.members.contains(&account.id));
    // The Agent's groups attribute is computed from the membership.
    let stored = env
        .store()
        .resources()
        .get(ResourceKind::Agent, &agent.id, store::GetOptions::default())
        .await
        .unwrap();
    assert_eq!(stored.groups.unwrap()[0].value, group.id);
}

async fn mint(env: &Env, username: &str, name: &str) {
    env.fake.create_api_token(username, name).unwrap();
}

async fn the_last_owner_leaving_suspends_the_agent_and_deletes_its_tokens(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let ann = env.create_user("ann@corp.example", json!({})).await;
    let bob = env.create_user("bob@corp.example", json!({})).await;
    let agent = env
        .create_agent("helper-bot", owners(&[&ann.id, &bob.id]))
        .await;
    env.drain().await;
    mint(&env, "helper-bot", "run-1").await;
    mint(&env, "helper-bot", "run-2").await;

    env.set_active(&ann.id, false).await;
    env.drain().await;
    let account = env.coder_user(&agent.id).await;
    assert_ne!(account.status, UserStatus::Suspended, "bob is still active");
    assert_eq!(
        env.coder()
            .keys
            .iter()
            .filter(|k| k.user_id == account.id)
            .count(),
        2
    );

    env.set_active(&bob.id, false).await;
    // Bob's offboarding queues his agents at his priority.
    env.reconciler.reconcile_user(&bob.id).await.unwrap();
    let queued = env.outbox_rows(OutboxFilter::Pending).await;
    let row = queued
        .iter()
        .find(|e| e.kind == ResourceKind::Agent && e.resource_id == agent.id)
        .expect("the agent is queued");
    assert_eq!(row.priority, OutboxPriority::Offboarding);
    env.drain().await;
    let account = env.coder_user(&agent.id).await;
    assert_eq!(account.status, UserStatus::Suspended);
    assert!(
        !env.coder().keys.iter().any(|k| k.user_id == account.id),
        "every token of the agent is deleted"
    );
    let issues = env.issues(reconcile::ISSUE_OWNERS_INACTIVE).await;
    assert_eq!(issues.len(), 1);
    assert!(
        issues[0].detail.contains("no owner"),
        "{}",
        issues[0].detail
    );
}

async fn an_owner_back_does_not_reactivate_the_agent_unless_configured(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let ann = env.create_user("ann@corp.example", json!({})).await;
    let agent = env.create_agent("helper-bot", owners(&[&ann.id])).await;
    env.drain().await;
    env.delete(ResourceKind::User, &ann.id).await;
    env.drain().await;
    assert_eq!(
        env.coder_status(&agent.id).await,
        UserStatus::Suspended,
        "a deleted owner suspends the agent"
    );

    // The IdP gives the agent a new, active owner.
    let ann2 = env.create_user("ann2@corp.example", json!({})).await;
    let new_owner = json!([{ "value": ann2.id }]);
    env.replace(ResourceKind::Agent, &agent.id, "owners", new_owner)
        .await;
    // Same instant as the cascade: not a later change of the agent.
    env.drain().await;
    let still = env.coder_user(&agent.id).await;
    assert_eq!(still.status, UserStatus::Suspended);
    let issue = &env.issues(reconcile::ISSUE_OWNERS_INACTIVE).await[0];
    assert!(
        issue.detail.contains("reactivate_with_owner"),
        "{}",
        issue.detail
    );

    // A later change of the agent in the IdP (off, then on again) is a deliberate reactivation.
    for active in [false, true] {
        env.db.clock.advance(chrono::Duration::minutes(5));
        env.replace(ResourceKind::Agent, &agent.id, "active", active)
            .await;
    }
    env.drain().await;
    assert_ne!(env.coder_status(&agent.id).await, UserStatus::Suspended);
    assert!(
        env.issues(reconcile::ISSUE_OWNERS_INACTIVE)
            .await
            .is_empty()
    );
}

async fn reactivate_with_owner_brings_the_agent_back_with_its_owner(db: TestDb) {
    let env = Env::start(db, true, "[agents]\nreactivate_with_owner = true").await;
    let ann = env.create_user("ann@corp.example", json!({})).await;
    let agent = env.create_agent("helper-bot", owners(&[&ann.id])).await;
    env.drain().await;
    env.set_active(&ann.id, false).await;
    env.drain().await;
    assert_eq!(env.coder_status(&agent.id).await, UserStatus::Suspended);
    env.set_active(&ann.id, true).await;
    env.drain().await;
    assert_ne!(env.coder_status(&agent.id).await, UserStatus::Suspended);
}

async fn deleting_an_agent_suspends_it_and_deletes_its_tokens(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let agent = env.create_agent("temp-bot", json!({})).await;
    env.drain().await;
    mint(&env, "temp-bot", "run-1").await;
    let account = env.coder_user(&agent.id).await;
    env.delete(ResourceKind::Agent, &agent.id).await;
    env.drain().await;
    let state = env.coder();
    let after = state.user_by_id(account.id).unwrap();
    assert_eq!(after.status, UserStatus::Suspended);
    assert!(!state.keys.iter().any(|k| k.user_id == account.id));
}

async fn a_user_marked_as_an_agent_becomes_a_service_account(db: TestDb) {
    let env = Env::start(db, true, "[[agents.users]]\nuser_type = \"Agent\"").await;
    let bot = env
        .create_user(
            "build-agent@corp.example",
            json!({ "userType": "Agent", "displayName": "Build agent" }),
        )
        .await;
    let person = env.create_user("carol@corp.example", json!({})).await;
    env.drain().await;
    let account = env.coder_user(&bot.id).await;
    assert!(account.is_service_account);
    assert_eq!(account.email, "");
    assert_eq!(account.login_type, FakeLoginType::None);
    assert_eq!(account.username, "build-agent");
    let human = env.coder_user(&person.id).await;
    assert!(!human.is_service_account);
    assert_eq!(human.login_type, FakeLoginType::Oidc);
}

async fn agent_tokens_are_minted_within_bounds_listed_revoked_and_audited(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let agent = env.create_agent("review-bot", json!({})).await;
    let person = env.create_user("dana@corp.example", json!({})).await;
    env.drain().await;
    let hours = |h: u64| std::time::Duration::from_secs(h * 3600);
    let r = &env.reconciler;
    for (lifetime, scopes, why) in [
        (hours(5), vec![], "max_token_lifetime"),
        (hours(1), vec!["coder:all".to_owned()], "token_scopes"),
        (hours(1), vec!["template:update".to_owned()], "token_scopes"),
    ] {
        let error = r
            .mint_agent_token("review-bot", lifetime, scopes, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(why), "{error}");
    }
    // A person's account never gets an agent token.
    let error = r
        .mint_agent_token("dana", hours(1), vec![], None)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not an agent"), "{error}");
    assert!(
        env.coder()
            .keys
            .iter()
            .all(|k| k.token_name != "scim-bridge")
    );

    let minted = r
        .mint_agent_token(
            "review-bot",
            hours(4),
            vec!["workspace:read".into()],
            Some("ci-1".into()),
        )
        .await
        .unwrap();
    let account = env.coder_user(&agent.id).await;
    let key = env
        .coder()
        .keys
        .iter()
        .find(|k| k.user_id == account.id)
        .cloned()
        .expect("the token exists in Coder");
    assert_eq!(key.token, minted.secret);
    assert_eq!(key.scopes, ["workspace:read"]);
    assert_eq!((key.expires_at - key.created_at).num_hours(), 4);
    let audit = env.audit_of(&agent.id).await;
    let mint = audit
        .iter()
        .find(|a| a.operation == "agent.token.mint")
        .expect("the mint is audited");
    assert_eq!(mint.actor.as_deref(), Some("cli"));
    assert!(
        !mint.change.to_string().contains(&minted.secret),
        "never the token"
    );
    assert_eq!(mint.change["token_name"], "ci-1");

    let (_, listed) = r.agent_tokens("review-bot").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].token_name, "ci-1");
    let revoked = r
        .revoke_agent_tokens("review-bot", Some("ci-1"))
        .await
        .unwrap();
    assert_eq!(revoked, [key.id.as_str()]);
    assert!(!env.coder().keys.iter().any(|k| k.user_id == account.id));
    assert!(
        env.audit_of(&agent.id)
            .await
            .iter()
            .any(|a| a.operation == "agent.token.revoke")
    );
    let _ = person;
}

async fn explain_shows_owners_and_why_the_agent_is_suspended(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let ann = env.create_user("ann@corp.example", json!({})).await;
    env.create_agent("helper-bot", owners(&[&ann.id])).await;
    env.drain().await;
    let before = env.reconciler.explain_agent("helper-bot").await.unwrap();
    assert!(before.cascade.is_none());
    assert_eq!(before.owners[0].active, Some(true));
    env.set_active(&ann.id, false).await;
    env.drain().await;
    let after = env.reconciler.explain_agent("helper-bot").await.unwrap();
    assert_eq!(after.owners[0].active, Some(false));
    let (_, why) = after.cascade.expect("the cascade is explained");
    assert!(why.contains("no owner"), "{why}");
    assert_eq!(
        after.account.coder_user.status,
        coder::types::UserStatus::Suspended
    );
    // A suspended agent gets no token.
    let error = env
        .reconciler
        .mint_agent_token(
            "helper-bot",
            std::time::Duration::from_secs(60),
            vec![],
            None,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("suspended"), "{error}");
}

/// Owners set after the agent was created (a PATCH) are found through the store's owner index:
/// the owner's offboarding queues the agent, and a former owner's does not.
async fn an_owner_named_by_a_later_patch_takes_part_in_the_cascade(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let ann = env.create_user("ann@corp.example", json!({})).await;
    let carl = env.create_user("carl@corp.example", json!({})).await;
    let agent = env.create_agent("late-bot", owners(&[&ann.id])).await;
    env.drain().await;
    let new_owner = json!([{ "value": carl.id }]);
    env.replace(ResourceKind::Agent, &agent.id, "owners", new_owner)
        .await;
    env.drain().await;

    // Ann owns nothing any more: her leaving queues no agent.
    env.set_active(&ann.id, false).await;
    env.reconciler.reconcile_user(&ann.id).await.unwrap();
    let queued_agents = |rows: Vec<store::OutboxEvent>| {
        rows.into_iter()
            .filter(|e| e.kind == ResourceKind::Agent)
            .collect::<Vec<_>>()
    };
    let pending = env.outbox_rows(OutboxFilter::Pending).await;
    assert!(queued_agents(pending).is_empty());
    env.drain().await;
    assert_ne!(env.coder_status(&agent.id).await, UserStatus::Suspended);

    // Carl is deleted: his agent is queued at offboarding priority and suspended.
    env.delete(ResourceKind::User, &carl.id).await;
    env.reconciler.reconcile_user(&carl.id).await.unwrap();
    let pending = env.outbox_rows(OutboxFilter::Pending).await;
    let rows = queued_agents(pending);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].resource_id.as_str(), rows[0].priority),
        (agent.id.as_str(), OutboxPriority::Offboarding)
    );
    env.drain().await;
    assert_eq!(env.coder_status(&agent.id).await, UserStatus::Suspended);
}

/// An agent's service account changed in Coder by hand (reactivated after the IdP deactivated
/// it, renamed, given a role, taken out of its group) is found by drift repair and put back.
async fn drift_repair_converges_an_agent_changed_by_hand(db: TestDb) {
    let rules = "[[agents.rules]]\ngroup = \"reviewers\"\nsite_roles = [\"auditor\"]";
    let env = Env::start(db, true, rules).await;
    let agent = env
        .create_agent("fix-bot", json!({"displayName": "Fix bot"}))
        .await;
    let idle = env.create_agent("idle-bot", json!({})).await;
    let group = env.create_group("reviewers", &[&agent.id]).await;
    env.drain().await;
    env.replace(ResourceKind::Agent, &idle.id, "active", false)
        .await;
    env.drain().await;
    assert!(env.drift_plan().await.is_empty());

    let account = env.coder_user(&agent.id).await.id;
    let idle_account = env.coder_user(&idle.id).await.id;
    env.owner.activate_user(idle_account).await.unwrap();
    env.rename_by_hand(account, "renamed", "R").await;
    env.owner
        .set_site_roles(account, &["template-admin".to_owned()])
        .await
        .unwrap();
    env.patch_group_by_hand(&group.id, vec![], vec![account])
        .await;

    let plan = env.drift_plan().await;
    assert_eq!(plan.agents_checked, 2, "{plan}");
    let mut found: Vec<(DriftKind, &str, String)> = plan
        .items
        .iter()
        .map(|i| (i.kind, i.resource.name(), i.id.clone()))
        .collect();
    found.sort();
    let mut want = vec![
        (DriftKind::UserStatus, "Agent", idle.id.clone()),
        (DriftKind::UserProfile, "Agent", agent.id.clone()),
        (DriftKind::UserRoles, "Agent", agent.id.clone()),
        (DriftKind::GroupMembers, "Group", group.id.clone()),
    ];
    want.sort();
    assert_eq!(found, want, "{plan}");
    let status = plan
        .items
        .iter()
        .find(|i| i.kind == DriftKind::UserStatus)
        .unwrap();
    assert_eq!(status.priority, OutboxPriority::Offboarding);

    env.repair_through_outbox(&plan).await;
    let after = env.drift_plan().await;
    assert!(after.is_empty(), "{after}");
    let fixed = env.coder_user(&agent.id).await;
    assert_eq!(fixed.username, "fix-bot");
    assert_eq!(fixed.roles.iter().collect::<Vec<_>>(), ["auditor"]);
    assert_eq!(env.coder_status(&idle.id).await, UserStatus::Suspended);
}

/// Drift repair wants what the owner cascade wants: an agent whose owners all left stays
/// suspended (reactivated by hand, it is suspended again), also once an owner is back while
/// `reactivate_with_owner` is false.
async fn drift_repair_keeps_an_agent_its_owners_left_suspended(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let ann = env.create_user("ann@corp.example", json!({})).await;
    let agent = env.create_agent("owned-bot", owners(&[&ann.id])).await;
    env.drain().await;
    env.set_active(&ann.id, false).await;
    env.drain().await;
    let account = env.coder_user(&agent.id).await.id;
    assert_eq!(env.coder_status(&agent.id).await, UserStatus::Suspended);

    env.owner.activate_user(account).await.unwrap();
    let plan = env.drift_plan().await;
    assert_eq!(plan.items.len(), 1, "{plan}");
    assert_eq!(
        (
            plan.items[0].kind,
            plan.items[0].resource,
            plan.items[0].priority
        ),
        (
            DriftKind::UserStatus,
            ResourceKind::Agent,
            OutboxPriority::Offboarding
        )
    );
    env.repair_through_outbox(&plan).await;
    assert_eq!(env.coder_status(&agent.id).await, UserStatus::Suspended);

    // Ann is back; the agent stays suspended, and drift repair agrees.
    env.set_active(&ann.id, true).await;
    env.drain().await;
    assert_eq!(env.coder_status(&agent.id).await, UserStatus::Suspended);
    let plan = env.drift_plan().await;
    assert!(plan.is_empty(), "{plan}");
}
