//! The client against the Coder fake over real HTTP on 127.0.0.1: every Coder behaviour the
//! bridge depends on, and the client's error classes.

use clock::{Clock as _, IdSource as _};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coder::types::*;
use coder::{CallObserver, CallRecord, CoderClient, CoderConfig, CoderError, SessionToken};
use coder_fake::{CoderFake, FakeHandle, FakeOptions, Fault, FaultKind, IdpSyncOptions};
use uuid::Uuid;

fn config(fake: &FakeHandle, token: &str) -> CoderConfig {
    CoderConfig::new(fake.base_url().parse().unwrap(), SessionToken::new(token))
}

fn client(fake: &FakeHandle, token: &str) -> CoderClient {
    CoderClient::new(config(fake, token)).unwrap()
}

async fn start(options: FakeOptions) -> (FakeHandle, CoderClient) {
    let fake = CoderFake::start(options).await.unwrap();
    let owner = client(&fake, fake.owner_token());
    (fake, owner)
}

async fn premium() -> (FakeHandle, CoderClient) {
    start(FakeOptions {
        premium: true,
        extra_organizations: vec!["other".into()],
        ..Default::default()
    })
    .await
}

fn new_user(username: &str, email: &str, login_type: LoginType) -> CreateUserRequest {
    CreateUserRequest {
        email: email.into(),
        username: username.into(),
        name: String::new(),
        login_type,
        organization_ids: vec![DEFAULT_ORGANIZATION_ALIAS],
        user_status: None,
        service_account: false,
    }
}

/// An OIDC user with a display name.
fn named_user(username: &str, email: &str, name: &str) -> CreateUserRequest {
    CreateUserRequest {
        name: name.into(),
        ..new_user(username, email, LoginType::Oidc)
    }
}

async fn create(owner: &CoderClient, username: &str) -> User {
    owner
        .create_user(&new_user(
            username,
            &format!("{username}@example.com"),
            LoginType::Oidc,
        ))
        .await
        .unwrap()
}

fn permanent_status(result: Result<impl std::fmt::Debug, CoderError>) -> u16 {
    match result {
        Err(CoderError::Permanent { status, .. }) => status,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

/// A failure without an answer (dropped, timed out): retryable, and no status.
fn assert_unanswered(error: CoderError) {
    assert!(
        matches!(error, CoderError::Retryable { status: None, .. }),
        "{error:?}"
    );
}

/// A fake whose API rate limit is `per_minute` (`None`: no limit).
async fn rate_limited(per_minute: Option<u32>) -> (FakeHandle, CoderClient) {
    start(FakeOptions {
        rate_limit_per_minute: per_minute,
        ..Default::default()
    })
    .await
}

/// A client of `fake` with the owner's token, paced at `per_second` calls.
fn paced(fake: &FakeHandle, per_second: u32) -> CoderClient {
    let mut config = config(fake, fake.owner_token());
    config.rate_limit_per_second = NonZeroU32::new(per_second);
    CoderClient::new(config).unwrap()
}

/// A raw `GET` of `path` with the owner's session token: what the typed client never sends.
async fn owner_get(fake: &FakeHandle, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", fake.base_url()))
        .header("Coder-Session-Token", fake.owner_token())
        .send()
        .await
        .unwrap()
}

/// The id of the user a lookup found.
fn found_id(found: Result<Option<User>, CoderError>) -> Option<Uuid> {
    found.unwrap().map(|u| u.id)
}

/// Add `users` to group `id` and change nothing else.
async fn add_to_group(owner: &CoderClient, id: Uuid, users: Vec<Uuid>) -> Group {
    let patch = PatchGroupRequest {
        add_users: users,
        ..Default::default()
    };
    owner.patch_group(id, &patch).await.unwrap()
}

/// The fake's own record of group `id`.
fn fake_group(fake: &FakeHandle, id: Uuid) -> coder_fake::FakeGroup {
    fake.state()
        .groups
        .into_iter()
        .find(|g| g.id == id)
        .unwrap()
}

/// A service account in the default organization.
async fn service_account(
    owner: &CoderClient,
    username: &str,
    name: &str,
) -> Result<User, CoderError> {
    owner
        .create_service_account(username, name, vec![DEFAULT_ORGANIZATION_ALIAS])
        .await
}

#[tokio::test]
async fn buildinfo_and_entitlements_need_no_auth() {
    let (fake, _) = start(FakeOptions::default()).await;
    let anonymous = client(&fake, "not-a-token");
    assert!(!anonymous.build_info().await.unwrap().version.is_empty());
    assert!(
        !anonymous
            .entitlements()
            .await
            .unwrap()
            .allows(coder::routes::FEATURE_TEMPLATE_RBAC)
    );
    fake.set_premium(true);
    assert!(
        anonymous
            .entitlements()
            .await
            .unwrap()
            .allows(coder::routes::FEATURE_TEMPLATE_RBAC)
    );
}

#[tokio::test]
async fn a_bad_token_is_an_auth_error_and_bearer_works_too() {
    let (fake, _) = start(FakeOptions::default()).await;
    let err = client(&fake, "nope-nope")
        .organizations()
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    assert_eq!(err.status(), Some(401));
    let response = reqwest::Client::new()
        .get(format!("{}/api/v2/users/me", fake.base_url()))
        .bearer_auth(fake.owner_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn create_user_rules() {
    let (fake, owner) = start(FakeOptions::default()).await;
    let alice = named_user("alice-smith", "Alice@Example.com", "Alice Smith");
    let alice = owner.create_user(&alice).await.unwrap();
    assert_eq!(alice.status, UserStatus::Dormant, "Coder's default status");
    assert_eq!(alice.login_type, LoginType::Oidc);
    assert_eq!(
        alice.organization_ids,
        vec![fake.default_organization_id()],
        "nil UUID = default org"
    );

    // 409 on username OR email, ignoring case.
    let clash = owner
        .create_user(&new_user(
            "ALICE-SMITH",
            "other@example.com",
            LoginType::Oidc,
        ))
        .await;
    assert!(clash.as_ref().unwrap_err().is_conflict(), "{clash:?}");
    let clash = owner
        .create_user(&new_user("someone", "alice@EXAMPLE.com", LoginType::Oidc))
        .await;
    assert!(
        matches!(clash, Err(CoderError::Permanent { status: 409, ref message, .. }) if message == "User already exists.")
    );

    for bad in ["alice.smith", "new", "create", "-a", &"x".repeat(33)] {
        let err = owner
            .create_user(&new_user(bad, "x@example.com", LoginType::Oidc))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(400), "{bad}");
        assert!(
            err.validations().iter().any(|v| v.field == "username"),
            "{bad}: {err:?}"
        );
        assert!(!coder::is_valid_username(bad));
    }
    let padded = named_user("bob", "bob@example.com", " padded");
    let err = owner.create_user(&padded).await.unwrap_err();
    assert!(
        err.validations().iter().any(|v| v.field == "name"),
        "{err:?}"
    );
    let err = owner
        .create_user(&CreateUserRequest {
            organization_ids: vec![],
            ..new_user("bob", "bob@example.com", LoginType::Oidc)
        })
        .await
        .unwrap_err();
    assert!(
        err.validations()
            .iter()
            .any(|v| v.field == "organization_ids"),
        "{err:?}"
    );

    // Missing login_type is refused (raw body: the typed request always sends it).
    let response = reqwest::Client::new()
        .post(format!("{}/api/v2/users", fake.base_url()))
        .header("Coder-Session-Token", fake.owner_token())
        .json(&serde_json::json!({"email": "c@example.com", "username": "carol", "organization_ids": [Uuid::nil()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["validations"][0]["field"], "login_type");

    // Lookups by email and username never use {user} with an email.
    let by_email = owner.find_user_by_email("ALICE@example.com").await;
    assert_eq!(found_id(by_email), Some(alice.id));
    let by_username = owner.find_user_by_username("Alice-Smith").await;
    assert_eq!(found_id(by_username), Some(alice.id));
    let nobody = owner.find_user_by_email("nobody@example.com").await;
    assert_eq!(found_id(nobody), None);
    assert!(fake.state().user("alice-smith").is_some());
}

#[tokio::test]
async fn deleted_users_answer_by_id_but_are_never_listed() {
    let (fake, owner) = start(FakeOptions::default()).await;
    let bob = create(&owner, "bob").await;
    fake.create_api_token("bob", "laptop").unwrap();
    owner.delete_user(bob.id).await.unwrap();
    assert_eq!(
        owner.user(bob.id).await.unwrap().username,
        "bob",
        "GET by id answers for deleted users"
    );
    assert!(owner.find_user_by_username("bob").await.unwrap().is_none());
    assert!(!owner.user_is_listed(bob.id).await.unwrap());
    let state = fake.state();
    assert!(state.user_by_id(bob.id).unwrap().deleted);
    assert!(
        state.user_by_id(bob.id).unwrap().organizations.is_empty(),
        "memberships removed"
    );
    assert!(
        state.keys.iter().all(|k| k.user_id != bob.id),
        "keys removed"
    );
    // Username and email are free again.
    let again = create(&owner, "bob").await;
    assert_ne!(again.id, bob.id);
    assert!(owner.user_is_listed(again.id).await.unwrap());
}

#[tokio::test]
async fn suspension_blocks_keys_and_stops_workspaces_until_reactivation() {
    let (fake, owner) = start(FakeOptions::default()).await;
    let carol = create(&owner, "carol").await;
    let key = fake.create_api_token("carol", "cli").unwrap();
    let workspace = fake.create_workspace("carol", "dev", true).unwrap();
    let as_carol = client(&fake, &key.token);
    assert_eq!(as_carol.identify().await.unwrap().user.id, carol.id);
    assert!(!as_carol.identify().await.unwrap().is_owner);
    assert_eq!(
        owner.user(carol.id).await.unwrap().status,
        UserStatus::Active,
        "a used key makes a dormant user active"
    );

    for call in ["first", "again: idempotent"] {
        let user = owner.suspend_user(carol.id).await.unwrap();
        assert_eq!(user.status, UserStatus::Suspended, "{call}");
    }
    match as_carol.organizations().await {
        Err(CoderError::Auth {
            status: 401,
            message,
        }) => assert!(message.starts_with("User is not active"), "{message}"),
        other => panic!("expected 401, got {other:?}"),
    }
    let workspaces = owner.workspaces_owned_by("carol").await.unwrap();
    assert_eq!(workspaces.len(), 1);
    assert_eq!(workspaces[0].id, workspace.id);
    assert_eq!(
        workspaces[0].latest_build.status,
        WorkspaceStatus::Stopped,
        "auto-stopped"
    );

    for call in ["first", "again: idempotent"] {
        let user = owner.activate_user(carol.id).await.unwrap();
        assert_eq!(user.status, UserStatus::Active, "{call}");
    }
    assert!(
        as_carol.organizations().await.is_ok(),
        "keys work again after reactivation"
    );

    // Suspending yourself or an owner answers 400.
    let me = owner.identify().await.unwrap().user;
    assert_eq!(permanent_status(owner.suspend_user(me.id).await), 400);
    owner
        .set_site_roles(carol.id, &["owner".into()])
        .await
        .unwrap();
    assert_eq!(permanent_status(owner.suspend_user(carol.id).await), 400);
}

#[tokio::test]
async fn deleting_a_user_with_a_workspace_answers_417_and_builds_conflict() {
    let (fake, owner) = start(FakeOptions::default()).await;
    let dave = create(&owner, "dave").await;
    let workspace = fake.create_workspace("dave", "dev", true).unwrap();
    assert_eq!(permanent_status(owner.delete_user(dave.id).await), 417);
    assert!(!fake.state().user_by_id(dave.id).unwrap().deleted);

    let build = owner.stop_workspace(workspace.id).await.unwrap();
    assert_eq!(build.transition, WorkspaceTransition::Stop);
    assert_eq!(build.status, WorkspaceStatus::Stopped);
    fake.set_build_running(workspace.id, true).unwrap();
    let busy = owner.stop_workspace(workspace.id).await.unwrap_err();
    assert!(busy.is_conflict(), "{busy:?}");
    assert_eq!(
        permanent_status(owner.delete_user(dave.id).await),
        417,
        "a stopped workspace still counts"
    );
}

#[tokio::test]
async fn profile_updates_and_login_type_is_only_for_the_caller() {
    let (fake, owner) = start(FakeOptions::default()).await;
    let erin = create(&owner, "erin").await;
    create(&owner, "frank").await;
    let renamed = owner
        .update_profile(
            erin.id,
            &UpdateUserProfileRequest {
                username: "erin-b".into(),
                name: "Erin B".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.username.as_str(), renamed.name.as_str()),
        ("erin-b", "Erin B")
    );
    let taken = owner
        .update_profile(
            erin.id,
            &UpdateUserProfileRequest {
                username: "FRANK".into(),
                name: String::new(),
            },
        )
        .await;
    assert!(taken.unwrap_err().is_conflict());

    let login_type = async |user: String| {
        let path = format!("/api/v2/users/{user}/login-type");
        owner_get(&fake, &path).await.status()
    };
    assert_eq!(login_type("me".into()).await, 200);
    assert_eq!(
        login_type(erin.id.to_string()).await,
        403,
        "even for an owner"
    );
    // {user} never accepts an email.
    let found = owner.find_user_by_email("erin@example.com").await;
    assert!(found_id(found).is_some());
    let by_email = owner_get(&fake, "/api/v2/users/erin@example.com").await;
    assert_eq!(by_email.status(), 404);
}

#[tokio::test]
async fn site_and_organization_roles() {
    let (fake, owner) = premium().await;
    let org = fake.default_organization_id();
    let gina = create(&owner, "gina").await;
    let user = owner
        .set_site_roles(gina.id, &["template-admin".into(), "member".into()])
        .await
        .unwrap();
    assert!(user.has_role("template-admin") && !user.has_role("member"));
    assert_eq!(
        permanent_status(
            owner
                .set_site_roles(gina.id, &["agents-access".into()])
                .await
        ),
        400
    );
    let me = owner.identify().await.unwrap().user;
    assert_eq!(
        permanent_status(owner.set_site_roles(me.id, &[]).await),
        400,
        "own roles"
    );

    let member = owner
        .set_organization_member_roles(org, gina.id, &["organization-admin".into()])
        .await
        .unwrap();
    assert_eq!(
        member
            .roles
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["organization-admin"]
    );
    assert!(
        owner
            .set_organization_member_roles(org, gina.id, &["agents-access".into()])
            .await
            .is_ok()
    );
    let roles = owner.user_roles(gina.id).await.unwrap();
    assert_eq!(roles.roles, ["template-admin"]);
    assert_eq!(roles.organization_roles[&org], ["agents-access"]);

    // Only an owner may grant roles beyond member: a user-admin's token is refused.
    let hank = create(&owner, "hank").await;
    owner
        .set_site_roles(hank.id, &["user-admin".into()])
        .await
        .unwrap();
    let as_hank = client(&fake, &fake.create_api_token("hank", "t").unwrap().token);
    let err = as_hank
        .set_site_roles(gina.id, &["template-admin".into(), "auditor".into()])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));

    // With role sync on, org role changes for OIDC users answer 400.
    fake.set_idp_sync(IdpSyncOptions {
        role_fields: [(org, "roles".to_owned())].into(),
        ..Default::default()
    });
    assert_eq!(
        permanent_status(owner.set_organization_member_roles(org, gina.id, &[]).await),
        400
    );
    fake.set_idp_sync(IdpSyncOptions {
        site_role_sync: true,
        ..Default::default()
    });
    assert_eq!(
        permanent_status(owner.set_site_roles(gina.id, &[]).await),
        400
    );
}

#[tokio::test]
async fn organization_membership() {
    let (fake, owner) = premium().await;
    let default = owner.default_organization().await.unwrap();
    assert!(default.is_default);
    assert_eq!(default.id, fake.default_organization_id());
    let other = fake.organization_id("other").unwrap();
    assert_eq!(owner.organizations().await.unwrap().len(), 2);

    let ivan = create(&owner, "ivan").await;
    owner.add_organization_member(other, ivan.id).await.unwrap();
    assert_eq!(
        permanent_status(owner.add_organization_member(other, ivan.id).await),
        400,
        "already a member"
    );
    let members = owner.organization_members(other).await.unwrap();
    assert!(
        members
            .iter()
            .any(|m| m.user_id == ivan.id && m.username == "ivan")
    );

    let group = owner
        .create_group(
            other,
            &CreateGroupRequest {
                name: "ops".into(),
                display_name: String::new(),
            },
        )
        .await
        .unwrap();
    add_to_group(&owner, group.id, vec![ivan.id]).await;
    owner
        .remove_organization_member(other, ivan.id)
        .await
        .unwrap();
    assert!(
        owner.group(group.id).await.unwrap().members.is_empty(),
        "leaving an org leaves its groups"
    );

    fake.set_idp_sync(IdpSyncOptions {
        organization_field: "orgs".into(),
        ..Default::default()
    });
    assert_eq!(
        permanent_status(owner.add_organization_member(other, ivan.id).await),
        400,
        "org sync owns OIDC users"
    );
    let pw = owner
        .create_user(&new_user("judy", "judy@example.com", LoginType::Password))
        .await
        .unwrap();
    assert!(
        owner.add_organization_member(other, pw.id).await.is_ok(),
        "only OIDC users are synced"
    );
}

#[tokio::test]
async fn group_rules_and_all_or_nothing_patch() {
    let (fake, owner) = premium().await;
    let org = fake.default_organization_id();
    let named = |name: &str| CreateGroupRequest {
        name: name.into(),
        display_name: String::new(),
    };
    let devs = owner
        .create_group(
            org,
            &CreateGroupRequest {
                name: "Devs".into(),
                display_name: "Developers".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(devs.source, GroupSource::User);
    owner
        .create_group(org, &named("devs"))
        .await
        .expect("exact-match duplicates only: Devs and devs coexist");
    assert!(
        owner
            .create_group(org, &named("Devs"))
            .await
            .unwrap_err()
            .is_conflict()
    );
    assert_eq!(
        permanent_status(owner.create_group(org, &named("Everyone")).await),
        400
    );
    assert_eq!(
        permanent_status(owner.create_group(org, &named("a b")).await),
        400
    );
    assert_eq!(
        permanent_status(owner.create_group(org, &named(&"g".repeat(256))).await),
        400
    );
    owner
        .create_group(org, &named(&"g".repeat(255)))
        .await
        .unwrap();
    let long_display = CreateGroupRequest {
        name: "qa".into(),
        display_name: "d".repeat(65),
    };
    assert_eq!(
        permanent_status(owner.create_group(org, &long_display).await),
        400
    );

    let groups = owner.groups(org).await.unwrap();
    assert_eq!(groups[0].name, "Everyone");
    assert_eq!(groups[0].id, org, "Everyone's id is the org id");
    let qa = owner.create_group(org, &named("qa-team")).await.unwrap();
    assert_eq!(
        owner.group_by_name(org, "QA-TEAM").await.unwrap().id,
        qa.id,
        "lookups ignore case"
    );

    let (u1, u2, u3) = (
        create(&owner, "u1").await,
        create(&owner, "u2").await,
        create(&owner, "u3").await,
    );
    let outsider = owner
        .create_user(&CreateUserRequest {
            organization_ids: vec![fake.organization_id("other").unwrap()],
            ..new_user("outsider", "outsider@example.com", LoginType::Oidc)
        })
        .await
        .unwrap();
    let patched = add_to_group(&owner, qa.id, vec![u1.id, u2.id]).await;
    assert_eq!(patched.members.len(), 2);

    // One bad add (already a member) rolls back the whole PATCH: no add, no remove, no rename.
    let before = fake_group(&fake, qa.id);
    let mixed = PatchGroupRequest {
        add_users: vec![u3.id, u1.id],
        remove_users: vec![u2.id],
        name: Some("renamed".into()),
        display_name: Some("Renamed".into()),
    };
    assert_eq!(
        permanent_status(owner.patch_group(qa.id, &mixed).await),
        400
    );
    let outside = PatchGroupRequest {
        add_users: vec![u3.id, outsider.id],
        ..Default::default()
    };
    assert_eq!(
        permanent_status(owner.patch_group(qa.id, &outside).await),
        400,
        "not in the group's org"
    );
    let after = fake_group(&fake, qa.id);
    assert_eq!(before, after, "a rejected PATCH changes nothing");

    let good = PatchGroupRequest {
        add_users: vec![u3.id],
        remove_users: vec![u1.id],
        name: Some("quality".into()),
        display_name: None,
    };
    let group = owner.patch_group(qa.id, &good).await.unwrap();
    let mut members: Vec<_> = group.members.iter().map(|m| m.id).collect();
    members.sort();
    let mut expected = vec![u2.id, u3.id];
    expected.sort();
    assert_eq!((group.name.as_str(), members), ("quality", expected));

    let message = owner.delete_group(qa.id).await.unwrap();
    assert!(
        !message.message.is_empty(),
        "DELETE answers a message object"
    );
    assert!(owner.group(qa.id).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn every_group_route_answers_403_unlicensed_without_premium() {
    let (fake, owner) = start(FakeOptions::default()).await;
    let org = fake.default_organization_id();
    let err = owner.groups(org).await.unwrap_err();
    assert!(
        matches!(
            err,
            CoderError::Unlicensed {
                feature: "template_rbac",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        !err.is_auth(),
        "a licence gap must not pause the worker as bad credentials"
    );
    let create = CreateGroupRequest {
        name: "devs".into(),
        display_name: String::new(),
    };
    assert_eq!(
        owner.create_group(org, &create).await.unwrap_err().status(),
        Some(403)
    );
    assert_eq!(owner.group(org).await.unwrap_err().status(), Some(403));
    fake.set_premium(true);
    assert!(owner.create_group(org, &create).await.is_ok());
}

#[tokio::test]
async fn api_tokens_list_null_as_empty_and_delete() {
    let (fake, owner) = start(FakeOptions::default()).await;
    let kim = create(&owner, "kim").await;
    assert!(
        owner.api_tokens(kim.id).await.unwrap().is_empty(),
        "JSON null = no tokens"
    );
    let key = fake.create_api_token("kim", "ci").unwrap();
    let tokens = owner.api_tokens(kim.id).await.unwrap();
    assert_eq!(
        tokens.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
        [key.id.as_str()]
    );
    owner.delete_api_key(kim.id, &key.id).await.unwrap();
    assert!(owner.api_tokens(kim.id).await.unwrap().is_empty());
    assert!(
        client(&fake, &key.token)
            .organizations()
            .await
            .unwrap_err()
            .is_auth(),
        "a deleted key stops working"
    );
    assert!(
        owner
            .delete_api_key(kim.id, &key.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn idp_sync_settings_and_an_oidc_login_undoing_group_changes() {
    let (fake, owner) = premium().await;
    let org = fake.default_organization_id();
    assert!(!owner.organization_sync_settings().await.unwrap().is_on());
    let sre = owner
        .create_group(
            org,
            &CreateGroupRequest {
                name: "sre".into(),
                display_name: String::new(),
            },
        )
        .await
        .unwrap();
    let devs = owner
        .create_group(
            org,
            &CreateGroupRequest {
                name: "devs".into(),
                display_name: String::new(),
            },
        )
        .await
        .unwrap();
    fake.set_idp_sync(IdpSyncOptions {
        group_fields: [(org, "groups".to_owned())].into(),
        group_mappings: [(org, [("idp-sre".to_owned(), vec![sre.id])].into())].into(),
        role_fields: [(org, "roles".to_owned())].into(),
        ..Default::default()
    });
    let groups = owner.group_sync_settings(org).await.unwrap();
    assert!(groups.is_on());
    assert_eq!(groups.mapping["idp-sre"], [sre.id]);
    assert!(owner.role_sync_settings(org).await.unwrap().is_on());

    let liz = create(&owner, "liz").await;
    add_to_group(&owner, devs.id, vec![liz.id]).await;
    fake.oidc_login("liz", &["idp-sre".into()]).unwrap();
    assert!(
        owner.group(devs.id).await.unwrap().members.is_empty(),
        "group sync removed the bridge's membership"
    );
    assert_eq!(owner.group(sre.id).await.unwrap().members[0].id, liz.id);
}

#[tokio::test]
async fn rate_limit_429_with_reset_and_owner_bypass() {
    let (fake, owner) = rate_limited(Some(2)).await;
    owner.organizations().await.unwrap();
    owner.organizations().await.unwrap();
    let limited = owner.organizations().await.unwrap_err();
    assert!(limited.is_retryable());
    assert_eq!(limited.status(), Some(429));
    let wait = limited
        .retry_after()
        .expect("the window reset tells how long to wait");
    assert!(wait <= Duration::from_secs(60), "{wait:?}");
    let response = owner_get(&fake, "/api/v2/workspaces").await;
    let header = |name| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(
        (header("X-RateLimit-Limit"), header("X-RateLimit-Remaining")),
        ("2".into(), "1".into())
    );
    assert!(
        !owner
            .user_is_listed(clock::SystemIds.uuid_v4())
            .await
            .unwrap(),
        "an unknown id is not listed"
    );
    // Other paths have their own window; `users/me` identifies the owner, which then bypasses.
    assert!(owner.identify().await.unwrap().is_owner);
    for _ in 0..5 {
        owner.organizations().await.unwrap();
    }
    let state = fake.state();
    assert_eq!(state.count_calls("GET", "/api/v2/organizations"), 8);
    assert_eq!(state.calls.iter().filter(|c| c.status == 429).count(), 1);
}

#[tokio::test]
async fn faults_are_classified() {
    let (fake, owner) = start(FakeOptions::default()).await;
    fake.inject(Fault::next(
        1,
        FaultKind::Status {
            status: 503,
            retry_after: Some("7".into()),
        },
    ))
    .unwrap();
    let err = owner.organizations().await.unwrap_err();
    assert_eq!(
        (err.is_retryable(), err.status(), err.retry_after()),
        (true, Some(503), Some(Duration::from_secs(7)))
    );

    let later = clock::SystemClock.now() + chrono::Duration::seconds(90);
    let date = later.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    fake.inject(Fault::next(
        1,
        FaultKind::Status {
            status: 429,
            retry_after: Some(date),
        },
    ))
    .unwrap();
    let wait = owner
        .organizations()
        .await
        .unwrap_err()
        .retry_after()
        .unwrap();
    assert!(
        wait > Duration::from_secs(80) && wait <= Duration::from_secs(90),
        "{wait:?}"
    );

    fake.inject(Fault::next(1, FaultKind::Drop).on_paths("/api/v2/organizations"))
        .unwrap();
    assert_unanswered(owner.organizations().await.unwrap_err());
    assert!(
        owner.organizations().await.is_ok(),
        "the fault was bounded to one request"
    );

    let mut slow = config(&fake, fake.owner_token());
    slow.timeout = Duration::from_millis(200);
    let slow = CoderClient::new(slow).unwrap();
    fake.inject(Fault::next(1, FaultKind::Latency { millis: 1_000 }))
        .unwrap();
    assert_unanswered(slow.organizations().await.unwrap_err());

    assert!(
        fake.inject(Fault::next(0, FaultKind::Drop)).is_err(),
        "faults must be bounded"
    );
    let state = fake.state();
    assert!(
        state
            .calls
            .iter()
            .any(|c| c.status == 0 && c.route == "/api/v2/organizations")
    );
}

#[tokio::test]
async fn a_body_over_4_mib_answers_413() {
    let (fake, owner) = premium().await;
    let huge = CreateGroupRequest {
        name: "big".into(),
        display_name: "x".repeat(5 << 20),
    };
    assert_eq!(
        permanent_status(
            owner
                .create_group(fake.default_organization_id(), &huge)
                .await
        ),
        413
    );
}

#[tokio::test]
async fn nothing_answers_on_a_closed_port_and_that_is_retryable() {
    let url = format!("http://127.0.0.1:{}", test_support::free_port());
    let client = CoderClient::new(CoderConfig::new(
        url.parse().unwrap(),
        SessionToken::new("t"),
    ))
    .unwrap();
    assert!(client.organizations().await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn outbound_pacing_is_shared_by_clones() {
    let (fake, _) = rate_limited(None).await;
    let paced = paced(&fake, 20);
    let clone = paced.clone();
    let started = clock::SystemClock.instant();
    // 20 may burst; the other 21 wait for 20/s, so the whole takes at least about a second.
    for i in 0..41 {
        let c = if i % 2 == 0 { &paced } else { &clone };
        c.build_info().await.unwrap();
    }
    assert!(
        clock::SystemClock.elapsed(started) >= Duration::from_millis(950),
        "{:?}",
        clock::SystemClock.elapsed(started)
    );
}

#[tokio::test]
async fn an_owner_token_is_not_paced() {
    let (fake, _) = rate_limited(None).await;
    let client = paced(&fake, 1);
    assert!(client.identify().await.unwrap().is_owner);
    let started = clock::SystemClock.instant();
    // Paced at 1/s these would take at least 9 s; an owner bypasses Coder's limit instead.
    for _ in 0..10 {
        client.build_info().await.unwrap();
    }
    assert!(
        clock::SystemClock.elapsed(started) < Duration::from_secs(5),
        "{:?}",
        clock::SystemClock.elapsed(started)
    );
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Option<u16>)>>);

impl CallObserver for Recorder {
    fn observe(&self, call: &CallRecord) {
        self.0
            .lock()
            .unwrap()
            .push((call.route.to_string(), call.status));
    }
}

#[tokio::test]
async fn the_observer_sees_route_templates_and_statuses() {
    let (fake, owner) = start(FakeOptions::default()).await;
    let recorder = Arc::new(Recorder::default());
    let observed = owner.with_observer(recorder.clone());
    let mia = create(&observed, "mia").await;
    let _ = observed.user(clock::SystemIds.uuid_v4()).await;
    observed.suspend_user(mia.id).await.unwrap();
    fake.inject(Fault::next(1, FaultKind::Drop)).unwrap();
    let _ = observed.organizations().await;
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("POST /api/v2/users".to_owned(), Some(201)),
            ("GET /api/v2/users/{user}".to_owned(), Some(404)),
            (
                "PUT /api/v2/users/{user}/status/suspend".to_owned(),
                Some(200)
            ),
            ("GET /api/v2/organizations".to_owned(), None),
        ]
    );
}

#[tokio::test]
async fn listing_all_users_follows_pages() {
    let (_fake, owner) = start(FakeOptions::default()).await;
    for i in 0..104 {
        create(&owner, &format!("user{i:03}")).await;
    }
    let all = owner.list_all_users(None).await.unwrap();
    assert_eq!(all.len(), 105, "104 users and the owner, over two pages");
    let mut ids: Vec<_> = all.iter().map(|u| u.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 105, "no user twice");
    let page = owner
        .list_users(&coder::UserQuery {
            q: Some("username:user007".into()),
            limit: Some(10),
            offset: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (page.count, page.users[0].username.as_str()),
        (1, "user007")
    );
}

#[tokio::test]
async fn only_an_owner_bypasses_the_rate_limit() {
    let (fake, owner) = rate_limited(Some(1)).await;
    assert!(
        owner.identify().await.unwrap().is_owner,
        "from now on the owner bypasses"
    );
    let nora = create(&owner, "nora").await;
    assert!(
        owner.find_user_by_username("nora").await.unwrap().is_some(),
        "same path, not limited"
    );
    owner
        .set_site_roles(nora.id, &["user-admin".into()])
        .await
        .unwrap();
    let as_nora = client(&fake, &fake.create_api_token("nora", "t").unwrap().token);
    assert!(!as_nora.identify().await.unwrap().is_owner);
    as_nora.organizations().await.unwrap();
    let limited = as_nora.organizations().await.unwrap_err();
    assert_eq!(
        limited.status(),
        Some(429),
        "no bypass header for a non-owner"
    );
}

#[tokio::test]
async fn everyone_is_derived_and_read_only() {
    let (fake, owner) = premium().await;
    let org = fake.default_organization_id();
    let olga = owner
        .create_user(&CreateUserRequest {
            service_account: false,
            user_status: Some(UserStatus::Active),
            ..new_user("olga", "olga@example.com", LoginType::Password)
        })
        .await
        .unwrap();
    assert_eq!(
        olga.status,
        UserStatus::Active,
        "an explicit status is kept"
    );
    let everyone = owner.group(org).await.unwrap();
    assert_eq!(everyone.name, "Everyone");
    assert!(
        everyone.members.iter().any(|m| m.id == olga.id),
        "org members are Everyone's members"
    );
    let add = PatchGroupRequest {
        add_users: vec![olga.id],
        ..Default::default()
    };
    assert_eq!(permanent_status(owner.patch_group(org, &add).await), 400);
    assert_eq!(permanent_status(owner.delete_group(org).await), 400);
    assert!(owner.group_by_name(org, "everyone").await.is_ok());
}

#[tokio::test]
async fn a_create_that_worked_but_answered_500_is_found_by_lookup() {
    let (fake, owner) = start(FakeOptions::default()).await;
    let fault =
        Fault::next(1, FaultKind::StatusAfterEffect { status: 500 }).on_paths("/api/v2/users");
    fake.inject(fault).unwrap();
    let request = new_user("pat", "pat@example.com", LoginType::Oidc);
    let err = owner.create_user(&request).await.unwrap_err();
    assert_eq!((err.is_retryable(), err.status()), (true, Some(500)));
    assert!(
        owner.create_user(&request).await.unwrap_err().is_conflict(),
        "the first try took effect"
    );
    let found = owner.find_user_by_email("pat@example.com").await;
    assert!(found_id(found).is_some());
}

#[tokio::test]
async fn a_service_account_has_no_email_and_cannot_log_in() {
    let (fake, owner) = premium().await;
    let bot = service_account(&owner, "review-bot", "Review bot")
        .await
        .unwrap();
    assert!(bot.is_service_account);
    assert_eq!(bot.login_type, LoginType::None);
    assert_eq!(bot.email, "");
    // A second service account has no email either: empty emails do not clash.
    service_account(&owner, "deploy-bot", "").await.unwrap();
    assert_eq!(
        permanent_status(service_account(&owner, "review-bot", "").await),
        409
    );
    // `none` is for service accounts only.
    assert_eq!(
        permanent_status(
            owner
                .create_user(&new_user("person", "p@example.com", LoginType::None))
                .await
        ),
        400
    );
    let mut with_email = new_user("mailbot", "m@example.com", LoginType::None);
    with_email.service_account = true;
    assert_eq!(permanent_status(owner.create_user(&with_email).await), 400);
    assert!(
        fake.state()
            .users
            .iter()
            .any(|u| u.username == "review-bot")
    );
}

#[tokio::test]
async fn without_premium_a_service_account_is_unlicensed_not_an_auth_failure() {
    let (fake, owner) = start(FakeOptions::default()).await;
    let error = service_account(&owner, "review-bot", "").await.unwrap_err();
    assert!(
        matches!(
            &error,
            CoderError::Unlicensed { feature, .. }
                if *feature == coder::routes::FEATURE_SERVICE_ACCOUNTS
        ),
        "{error:?}"
    );
    assert!(!error.needs_operator());
    // People are still created on the same route with the same token.
    create(&owner, "kim").await;
    assert!(!fake.state().users.iter().any(|u| u.is_service_account));
}

#[tokio::test]
async fn a_scoped_short_lived_token_is_minted_listed_and_deleted() {
    let (fake, owner) = premium().await;
    let bot = service_account(&owner, "review-bot", "").await.unwrap();
    let request = CreateTokenRequest::new(
        "ci-run-1",
        Duration::from_secs(4 * 3600),
        vec!["workspace:read".into(), "workspace:ssh".into()],
    );
    let minted = owner.create_api_token(bot.id, &request).await.unwrap();
    assert!(
        !format!("{minted:?}").contains(&minted.key),
        "Debug hides the secret"
    );
    let tokens = owner.api_tokens(bot.id).await.unwrap();
    assert_eq!(tokens.len(), 1);
    let token = &tokens[0];
    assert_eq!(token.token_name, "ci-run-1");
    assert_eq!(token.scopes, ["workspace:read", "workspace:ssh"]);
    assert_eq!(token.lifetime_seconds, 4 * 3600);
    assert_eq!(
        (token.expires_at - token.created_at).num_seconds(),
        4 * 3600
    );
    assert!(minted.key.starts_with(&token.id));
    // The minted token authenticates as the service account.
    let as_bot = client(&fake, &minted.key);
    assert_eq!(as_bot.identify().await.unwrap().user.id, bot.id);
    // Same name again: 409; an unknown scope: 400.
    assert_eq!(
        permanent_status(owner.create_api_token(bot.id, &request).await),
        409
    );
    let bad = CreateTokenRequest::new("x", Duration::from_secs(60), vec!["Not A Scope".into()]);
    assert_eq!(
        permanent_status(owner.create_api_token(bot.id, &bad).await),
        400
    );
    owner.delete_api_key(bot.id, &token.id).await.unwrap();
    assert!(owner.api_tokens(bot.id).await.unwrap().is_empty());
    assert!(as_bot.organizations().await.unwrap_err().is_auth());
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (fake, owner) = premium().await;
    let kim = create(&owner, "kim").await;
    let request = CreateTokenRequest::new("short", Duration::from_millis(1), Vec::new());
    let minted = owner.create_api_token(kim.id, &request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        client(&fake, &minted.key)
            .organizations()
            .await
            .unwrap_err()
            .is_auth()
    );
}
