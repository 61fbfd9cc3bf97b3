//! A store (SQLite or PostgreSQL), a Coder fake and a reconciler wired together.

use clock::Clock as _;
use coder::{CoderClient, CoderConfig, SessionToken};
use coder_fake::{CoderFake, FakeHandle, FakeOptions, FakeState};
use reconcile::{MemoryObserver, Policy, Reconciler, Worker, WorkerConfig};
use scim::ResourceKind;
use scim::patch::{PatchOptions, parse_request};
use scim::resource::normalize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use store::{Store, StoredResource, WriteContext};
use tokio::sync::oneshot;

/// Generate `sqlite::name` and `postgres::name` tests that run `name(TestDb)`.
#[macro_export]
macro_rules! sync_tests {
    ($($name:ident),* $(,)?) => {
        test_support::backend_tests!(open = test_support::TestStore::open; $($name),*);
    };
}

/// A fresh store on its own database, with a manual clock.
pub use test_support::TestStore as TestDb;

/// Everything a sync test needs.
pub struct Env {
    pub db: TestDb,
    pub fake: FakeHandle,
    /// The owner's client, for changes "by hand" in Coder.
    pub owner: CoderClient,
    pub reconciler: Arc<Reconciler>,
    pub observer: Arc<MemoryObserver>,
}

pub fn policy(text: &str) -> Policy {
    Policy::from_toml(&text.parse().unwrap()).unwrap()
}

pub fn client_for(fake: &FakeHandle) -> CoderClient {
    CoderClient::new(CoderConfig::new(
        fake.base_url().parse().unwrap(),
        SessionToken::new(fake.owner_token()),
    ))
    .unwrap()
}

impl Env {
    /// A fake (Premium or not, no rate limit) and a reconciler with the mapping rules `rules`.
    pub async fn start(db: TestDb, premium: bool, rules: &str) -> Env {
        let fake = CoderFake::start(FakeOptions {
            premium,
            rate_limit_per_minute: None,
            ..Default::default()
        })
        .await
        .unwrap();
        Env::with_fake(db, fake, rules)
    }

    pub fn with_fake(db: TestDb, fake: FakeHandle, rules: &str) -> Env {
        let observer = Arc::new(MemoryObserver::default());
        let reconciler = Arc::new(Reconciler::new(
            (&db.store).into(),
            client_for(&fake),
            Arc::new(policy(rules)),
            db.clock.clone(),
            observer.clone(),
        ));
        Env {
            owner: client_for(&fake),
            db,
            fake,
            reconciler,
            observer,
        }
    }

    pub fn store(&self) -> &Store {
        &self.db.store
    }

    pub fn coder(&self) -> FakeState {
        self.fake.state()
    }

    pub async fn create_user(&self, user_name: &str, extra: Value) -> StoredResource {
        let mut body = user_json(user_name);
        if let (Some(target), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            target.extend(extra.clone());
        }
        let body = normalize(ResourceKind::User, body, scim::Registry::standard()).unwrap();
        self.store()
            .resources()
            .create(&ctx(), ResourceKind::User, body)
            .await
            .unwrap()
    }

    pub async fn create_group(&self, display_name: &str, members: &[&str]) -> StoredResource {
        let members: Vec<Value> = members.iter().map(|id| json!({ "value": id })).collect();
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": display_name,
            "members": members,
        });
        let body = normalize(ResourceKind::Group, body, scim::Registry::standard()).unwrap();
        self.store()
            .resources()
            .create(&ctx(), ResourceKind::Group, body)
            .await
            .unwrap()
    }

    pub async fn patch(&self, kind: ResourceKind, id: &str, operations: Value) {
        let request = parse_request(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": operations,
        }))
        .unwrap();
        self.store()
            .resources()
            .patch(&ctx(), kind, id, None, &request, &PatchOptions::default())
            .await
            .unwrap();
    }

    pub async fn set_active(&self, id: &str, active: bool) {
        self.patch(
            ResourceKind::User,
            id,
            json!([{ "op": "replace", "path": "active", "value": active }]),
        )
        .await;
    }

    pub async fn delete(&self, kind: ResourceKind, id: &str) {
        self.store()
            .resources()
            .delete(&ctx(), kind, id, None)
            .await
            .unwrap();
    }

    /// Reconcile every queued row, as the worker would but one at a time, until the outbox is
    /// empty. Panics on a failed reconcile.
    pub async fn drain(&self) {
        for _ in 0..200 {
            let events = self
                .store()
                .outbox()
                .claim("test-drain", chrono::Duration::seconds(60), 50)
                .await
                .unwrap();
            if events.is_empty() {
                return;
            }
            for event in events {
                let result = self
                    .reconciler
                    .reconcile(event.kind, &event.resource_id)
                    .await;
                if let Err(e) = result {
                    panic!(
                        "reconcile of {} {} failed: {e}",
                        event.kind.name(),
                        event.resource_id
                    );
                }
                self.store().outbox().complete(&event).await.unwrap();
            }
        }
        panic!("the outbox did not drain");
    }

    pub async fn mapping(&self, scim_id: &str) -> store::CoderUser {
        self.store()
            .coder_map()
            .user_get(scim_id)
            .await
            .unwrap()
            .expect("a Coder mapping")
    }

    /// The non-deleted Coder user a SCIM user maps to.
    pub async fn coder_user(&self, scim_id: &str) -> coder_fake::FakeUser {
        let mapping = self.mapping(scim_id).await;
        let state = self.coder();
        let user = state
            .user_by_id(mapping.coder_user_id)
            .expect("the mapped Coder user")
            .clone();
        assert!(!user.deleted, "mapped user {} is deleted", user.username);
        user
    }

    pub fn worker(&self, config: WorkerConfig) -> Worker {
        Worker::from_reconciler(self.reconciler.clone(), config)
    }

    /// Wait (real time, bounded) until `done` holds for the fake's state.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&FakeState) -> bool) {
        let deadline = clock::SystemClock.instant() + Duration::from_secs(30);
        loop {
            if done(&self.coder()) {
                return;
            }
            assert!(
                clock::SystemClock.instant() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A Coder user made by hand (not by the bridge).
    pub async fn hand_made_user(
        &self,
        username: &str,
        email: &str,
        login_type: coder::types::LoginType,
    ) -> coder::types::User {
        let request = coder::types::CreateUserRequest {
            email: email.into(),
            username: username.into(),
            name: String::new(),
            login_type,
            organization_ids: vec![coder::types::DEFAULT_ORGANIZATION_ALIAS],
            user_status: None,
            service_account: false,
        };
        self.owner.create_user(&request).await.unwrap()
    }

    /// The id of the Coder group a SCIM group is mirrored to.
    pub async fn coder_group_id(&self, scim_id: &str) -> uuid::Uuid {
        self.store()
            .coder_map()
            .group_get(scim_id)
            .await
            .unwrap()
            .expect("a group mapping")
            .coder_group_id
    }

    /// Change a Coder group's members by hand.
    pub async fn patch_group_by_hand(
        &self,
        scim_id: &str,
        add: Vec<uuid::Uuid>,
        remove: Vec<uuid::Uuid>,
    ) {
        let patch = coder::types::PatchGroupRequest {
            add_users: add,
            remove_users: remove,
            ..Default::default()
        };
        self.owner
            .patch_group(self.coder_group_id(scim_id).await, &patch)
            .await
            .unwrap();
    }

    /// Wait (real time, bounded) until the outbox has no live row.
    pub async fn wait_for_empty_outbox(&self) {
        for _ in 0..300 {
            if self.store().outbox().stats().await.unwrap().depth == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!("the outbox did not empty");
    }

    /// Open sync issues of a type.
    pub async fn issues(&self, issue_type: &str) -> Vec<store::SyncIssue> {
        self.store()
            .sync_issues()
            .list(false)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.issue_type == issue_type)
            .collect()
    }

    /// Audit records the worker wrote for a resource.
    pub async fn worker_audit(&self, resource_id: &str) -> Vec<store::AuditRecord> {
        self.store()
            .audit()
            .export(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| {
                r.actor.as_deref() == Some(reconcile::AUDIT_ACTOR)
                    && r.resource_id.as_deref() == Some(resource_id)
            })
            .collect()
    }
}

/// A running worker and the means to stop it.
pub struct Running {
    stop: oneshot::Sender<()>,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn spawn(worker: Worker) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        worker
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running { stop, task }
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// A quick worker for tests: 4 at once (not adapting), polls every 25 ms, no drift, short
/// probes.
pub fn worker_config(worker_id: &str) -> WorkerConfig {
    WorkerConfig {
        concurrency: 4,
        concurrency_min: 4,
        max_attempts: 12,
        lease: Duration::from_secs(30),
        drift_interval: None,
        worker_id: worker_id.to_owned(),
        poll_interval: Duration::from_millis(25),
        auth_probe_interval: Duration::from_millis(100),
        outage_probe_interval: Duration::from_millis(100),
        stats_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(5),
        ..WorkerConfig::default()
    }
}

pub fn ctx() -> WriteContext {
    WriteContext {
        request_id: "req-test".into(),
        token_name: Some("okta".into()),
        source_addr: None,
        operation: String::new(),
    }
}

/// An Okta-shaped user whose email is its userName.
pub fn user_json(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": { "givenName": "Given", "familyName": "Family" },
        "emails": [{ "value": user_name, "type": "work", "primary": true }],
        "active": true,
    })
}

/// Every call the fake answered for `method route` with `status`.
pub fn calls(state: &FakeState, method: &str, route: &str, status: u16) -> usize {
    state
        .calls
        .iter()
        .filter(|c| c.method == method && c.route == route && c.status == status)
        .count()
}
