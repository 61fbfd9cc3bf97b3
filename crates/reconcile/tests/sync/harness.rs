//! A store (SQLite or PostgreSQL), a Coder fake and a reconciler wired together.
//!
//! The tests that run the worker run on paused tokio time that moves only when the test moves
//! it (`sync_tests!(paused; …)`, `test_support::hold_time`): tokio's own auto-advance would move
//! it while the runtime waits on the fake, SQLite or PostgreSQL, and fire timeouts and polls at
//! moments that depend on the machine's load. The others reconcile one row at a time
//! ([`Env::drain`]) and need no time at all; they keep a multi-threaded runtime, which paused
//! time cannot have. A test with a running worker moves time with [`Env::advance`] or
//! [`Env::run_until`], which step from one of the worker's own wake-ups to the next (the store's
//! manual clock moving with tokio's) and, at each, wait until the worker has nothing left to do
//! at that instant ([`Env::settle`]). So what a test sees at an instant is what the worker did
//! by then, however slow the machine, and no test sleeps.

use clock::Clock as _;
use coder::{CoderClient, CoderConfig, SessionToken};
use coder_fake::{CoderFake, FakeHandle, FakeOptions, FakeState, Fault, FaultKind};
use reconcile::{DriftPlan, MemoryObserver, Policy, Reconciler, Worker, WorkerConfig, WorkerWait};
use scim::ResourceKind;
use scim::patch::{PatchOptions, parse_request};
use scim::resource::normalize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use store::{OutboxEvent, OutboxFilter, Store, StoredResource, WriteContext};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Generate `sqlite::name` and `postgres::name` tests that run `name(TestDb)`; with `paused;`
/// first, on paused time (for the tests that run the worker: see the module's doc).
#[macro_export]
macro_rules! sync_tests {
    (paused; $($name:ident),* $(,)?) => {
        test_support::backend_tests!(open = test_support::TestStore::open, paused; $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        test_support::backend_tests!(open = test_support::TestStore::open; $($name),*);
    };
}

/// A fresh store on its own database, with a manual clock.
pub use test_support::TestStore as TestDb;

pub use crate::running::{REAL_TIME_LIMIT, Running, spawn};

/// Mapping rules that make the members of the group `admins` Coder auditors.
pub const ADMINS_ARE_AUDITORS: &str =
    "[[roles.rules]]\ngroup = \"admins\"\nsite_roles = [\"auditor\"]";

/// How much of the worker's time [`Env::run_until`] gives a goal by default.
pub const GOAL_LIMIT: Duration = Duration::from_secs(15 * 60);

/// Everything a sync test needs.
pub struct Env {
    pub db: TestDb,
    pub fake: FakeHandle,
    /// The owner's client, for changes "by hand" in Coder.
    pub owner: CoderClient,
    pub reconciler: Arc<Reconciler>,
    pub observer: Arc<MemoryObserver>,
    /// Workers of other replicas that [`Env::settle`] waits for too: their observers and their
    /// stores' commit notifications.
    replicas: std::sync::Mutex<Vec<(Arc<MemoryObserver>, Arc<Notify>)>>,
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

/// The fake's options for a test: Premium or not, and no rate limit (tests count Coder calls).
pub fn fake_options(premium: bool) -> FakeOptions {
    FakeOptions {
        premium,
        rate_limit_per_minute: None,
        ..Default::default()
    }
}

impl Env {
    /// A fake (Premium or not, no rate limit) and a reconciler with the mapping rules `rules`.
    pub async fn start(db: TestDb, premium: bool, rules: &str) -> Env {
        Env::start_with(db, fake_options(premium), rules).await
    }

    /// A fake started with `options` and a reconciler with the mapping rules `rules`.
    pub async fn start_with(db: TestDb, options: FakeOptions, rules: &str) -> Env {
        let fake = CoderFake::start(options).await.unwrap();
        Env::with_fake(db, fake, rules)
    }

    pub fn with_fake(db: TestDb, fake: FakeHandle, rules: &str) -> Env {
        let observer = Arc::new(MemoryObserver::default());
        // Seeded: the worker's backoff jitter, and so when a retry is due, repeats.
        let reconciler = Arc::new(
            Reconciler::new(
                (&db.store).into(),
                client_for(&fake),
                Arc::new(policy(rules)),
                db.clock.clone(),
                observer.clone(),
            )
            .with_ids(Arc::new(clock::SeededIds::new(13))),
        );
        Env {
            owner: client_for(&fake),
            db,
            fake,
            reconciler,
            observer,
            replicas: Default::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.db.store
    }

    pub fn coder(&self) -> FakeState {
        self.fake.state()
    }

    /// Store a resource from its SCIM JSON, as a POST through the API would.
    pub async fn create(&self, kind: ResourceKind, body: Value) -> StoredResource {
        let body = normalize(kind, body, scim::Registry::standard()).unwrap();
        self.store()
            .resources()
            .create(&ctx(), kind, body)
            .await
            .unwrap()
    }

    /// An Okta-shaped user ([`user_json`]) with the attributes of `extra` on top.
    pub async fn create_user(&self, user_name: &str, extra: Value) -> StoredResource {
        self.create(ResourceKind::User, with_extra(user_json(user_name), extra))
            .await
    }

    /// `count` users `{prefix}{n}@corp.com`, `n` from 0: their ids.
    pub async fn create_users(&self, prefix: &str, count: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(count);
        for n in 0..count {
            let user = self
                .create_user(&format!("{prefix}{n}@corp.com"), json!({}))
                .await;
            ids.push(user.id);
        }
        ids
    }

    pub async fn create_group(&self, display_name: &str, members: &[&str]) -> StoredResource {
        let members: Vec<Value> = members.iter().map(|id| json!({ "value": id })).collect();
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": display_name,
            "members": members,
        });
        self.create(ResourceKind::Group, body).await
    }

    /// An active Agent with the attributes of `extra` on top.
    pub async fn create_agent(&self, name: &str, extra: Value) -> StoredResource {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Agent"],
            "name": name,
            "active": true,
        });
        self.create(ResourceKind::Agent, with_extra(body, extra))
            .await
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

    /// A PATCH with one `replace` of `path`.
    pub async fn replace(&self, kind: ResourceKind, id: &str, path: &str, value: impl Into<Value>) {
        let operation = json!({ "op": "replace", "path": path, "value": value.into() });
        self.patch(kind, id, json!([operation])).await;
    }

    /// A PATCH with one `remove` of `path`.
    pub async fn remove(&self, kind: ResourceKind, id: &str, path: &str) {
        self.patch(kind, id, json!([{ "op": "remove", "path": path }]))
            .await;
    }

    pub async fn set_active(&self, id: &str, active: bool) {
        self.replace(ResourceKind::User, id, "active", active).await;
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

    /// Queue a resource for a reconcile at normal priority, as a change to it would.
    pub async fn enqueue(&self, kind: ResourceKind, id: &str) {
        self.store()
            .outbox()
            .enqueue(kind, id, store::OutboxPriority::Normal)
            .await
            .unwrap();
    }

    /// The outbox rows `filter` selects (the first thousand).
    pub async fn outbox_rows(&self, filter: OutboxFilter) -> Vec<OutboxEvent> {
        self.store().outbox().list(filter, 1_000).await.unwrap()
    }

    /// The outbox's counts.
    pub async fn outbox_stats(&self) -> store::OutboxStats {
        self.store().outbox().stats().await.unwrap()
    }

    pub async fn mapping(&self, scim_id: &str) -> store::CoderUser {
        self.store()
            .coder_map()
            .user_get(scim_id)
            .await
            .unwrap()
            .expect("a Coder mapping")
    }

    /// Whether a SCIM user or agent maps to a Coder user.
    pub async fn is_mapped(&self, scim_id: &str) -> bool {
        let mapping = self.store().coder_map().user_get(scim_id).await.unwrap();
        mapping.is_some()
    }

    /// Whether a SCIM group maps to a Coder group.
    pub async fn is_group_mapped(&self, scim_id: &str) -> bool {
        let mapping = self.store().coder_map().group_get(scim_id).await.unwrap();
        mapping.is_some()
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

    /// The status of the Coder user a SCIM user or agent maps to.
    pub async fn coder_status(&self, scim_id: &str) -> coder_fake::UserStatus {
        self.coder_user(scim_id).await.status
    }

    pub fn worker(&self, config: WorkerConfig) -> Worker {
        Worker::from_reconciler(self.reconciler.clone(), config)
    }

    /// The worker's time: tokio's, paused.
    pub fn instant(&self) -> Instant {
        self.db.clock.instant()
    }

    /// Move time on by `by` at once, the store's clock with tokio's, whatever the worker is
    /// doing. [`Env::advance`] is the usual way; this one is for a step inside a wait.
    pub async fn jump(&self, by: Duration) {
        self.db
            .clock
            .advance(chrono::Duration::from_std(by).unwrap());
        tokio::time::advance(by).await;
    }

    /// Wait until the running worker has nothing left to do at the current instant, and return
    /// its wait: it has nothing in flight, and it found nothing to claim at this instant (or
    /// claims nothing now, and nothing wakes it before its wait ends).
    pub async fn settle(&self) -> WorkerWait {
        let now = self.instant();
        let mut wait = settle(&self.observer, &self.store().outbox().notified(), now).await;
        let replicas = self.replicas.lock().unwrap().clone();
        for (observer, commits) in replicas {
            let other = settle(&observer, &commits, now).await;
            wait.until = wait.until.min(other.until);
        }
        wait
    }

    /// Settle the worker reporting to `observer`, of a replica on its own store, with this
    /// env's worker.
    pub fn add_replica(&self, observer: Arc<MemoryObserver>, store: &Store) {
        let commits = store.outbox().notified();
        self.replicas.lock().unwrap().push((observer, commits));
    }

    /// Move time on by `by`, from one of the worker's wake-ups to the next, letting it finish
    /// what it does at each ([`Env::settle`]) before moving on.
    pub async fn advance(&self, by: Duration) {
        let target = self.instant() + by;
        let mut steps = Steps::default();
        loop {
            let wait = self.settle().await;
            let now = self.instant();
            if now >= target {
                return;
            }
            self.jump(steps.next(&wait, now, target)).await;
        }
    }

    /// Let the worker run, moving time on from one of its wake-ups to the next, until `done`
    /// holds while it has nothing to do; fails when `limit` of the worker's time passes first.
    pub async fn run_until(&self, what: &str, limit: Duration, done: impl AsyncFn() -> bool) {
        let end = self.instant() + limit;
        let mut steps = Steps::default();
        loop {
            let wait = self.settle().await;
            if done().await {
                return;
            }
            let now = self.instant();
            assert!(
                now < end,
                "not within {limit:?} of the worker's time: {what}"
            );
            self.jump(steps.next(&wait, now, end)).await;
        }
    }

    /// [`Env::run_until`] `done` holds for the fake's state, within [`GOAL_LIMIT`].
    pub async fn run_until_coder(&self, what: &str, done: impl Fn(&FakeState) -> bool) {
        self.run_until(what, GOAL_LIMIT, async || done(&self.coder()))
            .await;
    }

    /// [`Env::run_until`] the outbox has no live row, within [`GOAL_LIMIT`].
    pub async fn run_until_outbox_empty(&self) {
        self.run_until("an empty outbox", GOAL_LIMIT, async || {
            self.outbox_stats().await.depth == 0
        })
        .await;
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

    /// Change a Coder user's username and name by hand.
    pub async fn rename_by_hand(&self, coder_id: uuid::Uuid, username: &str, name: &str) {
        let profile = coder::types::UpdateUserProfileRequest {
            username: username.into(),
            name: name.into(),
        };
        self.owner.update_profile(coder_id, &profile).await.unwrap();
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

    /// Every audit record, oldest first.
    pub async fn audit(&self) -> Vec<store::AuditRecord> {
        self.store().audit().export(None).await.unwrap()
    }

    /// Every audit record about `resource_id`, whoever acted.
    pub async fn audit_of(&self, resource_id: &str) -> Vec<store::AuditRecord> {
        let mut records = self.audit().await;
        records.retain(|r| r.resource_id.as_deref() == Some(resource_id));
        records
    }

    /// Audit records the worker wrote for a resource.
    pub async fn worker_audit(&self, resource_id: &str) -> Vec<store::AuditRecord> {
        let mut records = self.audit_of(resource_id).await;
        records.retain(|r| r.actor.as_deref() == Some(reconcile::AUDIT_ACTOR));
        records
    }

    /// Drift repair's comparison of the store with Coder (its progress reports dropped).
    pub async fn drift_plan(&self) -> DriftPlan {
        reconcile::drift::plan(&self.reconciler, &mut |_| {})
            .await
            .unwrap()
    }

    /// Queue the plan's repairs, as a drift pass does, and reconcile them ([`Env::drain`]):
    /// how many rows it queued.
    pub async fn repair_through_outbox(&self, plan: &DriftPlan) -> u64 {
        let queued = reconcile::drift::enqueue(&self.store().outbox(), plan)
            .await
            .unwrap();
        self.drain().await;
        queued
    }
}

/// `body` with the attributes of `extra` added, or put in place of its own.
fn with_extra(mut body: Value, extra: Value) -> Value {
    if let (Some(target), Value::Object(extra)) = (body.as_object_mut(), extra) {
        target.extend(extra);
    }
    body
}

/// Wait until the worker that reports to `observer` has nothing left to do at `now` (see
/// [`Env::settle`]). A worker that waits for a commit is woken through `commits` to make sure
/// it looks at the queue at `now`; one that cannot be woken and waits past `now` is settled.
pub async fn settle(observer: &MemoryObserver, commits: &Notify, now: Instant) -> WorkerWait {
    let recorded = observer.recorded();
    // Asleep since its last look, which ended in a wait nothing but its timer ends.
    if let Some(wait) = recorded.last_wait
        && recorded.last_wait_look == recorded.looks
        && !wait.wakes_on_commit
        && now < wait.until
    {
        return wait;
    }
    // A spurious wake-up: the worker looks, and finds what it would have found anyway. Only a
    // look that starts from here on counts: one already under way may have missed what the
    // test just did (time standing still, its instant is no tell).
    commits.notify_one();
    // Or, from any look, a wait only its timer ends: paused or held back, it claims nothing.
    let settled = |r: &reconcile::Recorded| {
        r.last_wait_look > recorded.looks
            || (r.waits > recorded.waits
                && r.last_wait
                    .is_some_and(|wait| !wait.wakes_on_commit && now < wait.until))
    };
    let recorded = test_support::within(
        REAL_TIME_LIMIT,
        "the worker to have nothing left to do",
        observer.until(settled),
    )
    .await;
    let wait = recorded.last_wait.unwrap();
    assert!(
        wait.at >= now,
        "a look that started at {now:?} or later: {wait:?}"
    );
    wait
}

/// Wait, without moving time or waking the worker, until `done` holds for what `observer`
/// recorded.
pub async fn recorded_until(
    observer: &MemoryObserver,
    what: &str,
    done: impl Fn(&reconcile::Recorded) -> bool,
) -> reconcile::Recorded {
    test_support::within(REAL_TIME_LIMIT, what, observer.until(done)).await
}

/// How far each step of [`Env::advance`] and [`Env::run_until`] moves time.
#[derive(Default)]
struct Steps {
    /// Waits in a row that ended when they began.
    empty: u32,
}

impl Steps {
    /// To the end of the worker's `wait`, or `target` if that comes first. A worker whose
    /// waits keep ending as they begin is spinning: that fails the test.
    fn next(&mut self, wait: &WorkerWait, now: Instant, target: Instant) -> Duration {
        let step = wait.until.min(target).saturating_duration_since(now);
        self.empty = if step.is_zero() { self.empty + 1 } else { 0 };
        assert!(
            self.empty < 100,
            "the worker keeps waking at the instant it goes to sleep (it spins): {wait:?}"
        );
        step
    }
}

/// A worker for tests: the shipped intervals (paused time makes them free) but 4 reconciles at
/// once (not adapting), a 30 s lease and no drift repair.
pub fn worker_config(worker_id: &str) -> WorkerConfig {
    WorkerConfig {
        concurrency: 4,
        concurrency_min: 4,
        lease: Duration::from_secs(30),
        drift_interval: None,
        worker_id: worker_id.to_owned(),
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

pub use test_support::user_json;

/// Coder answering `count` requests with `status`, without a Retry-After.
pub fn status_fault(count: u32, status: u16) -> Fault {
    let kind = FaultKind::Status {
        status,
        retry_after: None,
    };
    Fault::next(count, kind)
}

/// Every call the fake answered for `method route` with `status`.
pub fn calls(state: &FakeState, method: &str, route: &str, status: u16) -> usize {
    state
        .calls
        .iter()
        .filter(|c| c.method == method && c.route == route && c.status == status)
        .count()
}
