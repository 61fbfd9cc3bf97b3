//! What the worker reports for `/metrics` (`docs/CONFIGURATION.md`, "Metrics"). The binary
//! implements [`SyncObserver`] over its Prometheus registry; every method has a no-op default.

use crate::diff::DriftKind;
use std::collections::BTreeMap;
use std::time::Duration;
use store::OutboxStats;
use tokio::time::Instant;

/// The worker has nothing in flight (no reconcile, no drift repair) and nothing it could start:
/// it found no row to claim at `at`, or claims nothing now (paused, or a 429's wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerWait {
    /// When the worker last looked at the queue (its monotonic time).
    pub at: Instant,
    /// When it looks again by itself: the next poll, probe, end of a 429's wait, statistics
    /// sample or drift repair.
    pub until: Instant,
    /// Whether a wake-up (a commit that queued work) makes it look again before `until`.
    pub wakes_on_commit: bool,
    /// While paused: when it next asks Coder whether it answers again.
    pub next_probe: Option<Instant>,
}

/// Receives the worker's measurements.
pub trait SyncObserver: Send + Sync + std::fmt::Debug {
    /// Queue health, sampled periodically (`scim_bridge_outbox_depth`,
    /// `scim_bridge_outbox_oldest_age_seconds`, `scim_bridge_outbox_dead_letters`).
    fn outbox(&self, _stats: &OutboxStats) {}
    /// A failed attempt was rescheduled (`scim_bridge_outbox_retries_total`).
    fn retry_scheduled(&self) {}
    /// A row was dead-lettered.
    fn dead_lettered(&self) {}
    /// Drift repair found `count` differences of `kind` (`scim_bridge_drift_found_total`).
    fn drift_found(&self, _kind: DriftKind, _count: u64) {}
    /// From the deactivation being stored to Coder acknowledging the suspension
    /// (`scim_bridge_offboarding_duration_seconds`).
    fn offboarded(&self, _latency: Duration) {}
    /// Whether Coder accepts the bridge's token (`scim_bridge_coder_auth_ok`).
    fn coder_auth(&self, _ok: bool) {}
    /// Managed users whose Coder login_type differs from the policy
    /// (`scim_bridge_login_type_mismatches`).
    fn login_type_mismatches(&self, _count: u64) {}
    /// Users whose email is outside `[users] allowed_email_domains`
    /// (`scim_bridge_users_outside_email_domains`).
    fn users_outside_email_domains(&self, _count: u64) {}
    /// The worker's adaptive concurrency limit changed (`scim_bridge_worker_concurrency_limit`).
    fn concurrency_limit(&self, _limit: usize) {}
    /// The worker starts a look at its timers and the queue (no metric: with
    /// [`SyncObserver::waiting`], what tests on paused time follow the worker by).
    fn looking(&self) {}
    /// The worker waits with nothing to do (no metric: tests on paused time move time on from
    /// here, to the worker's next look at the queue).
    fn waiting(&self, _wait: &WorkerWait) {}
    /// Drift repair found this many Coder accounts no SCIM resource manages
    /// (`scim_bridge_orphan_accounts`).
    fn orphans(&self, _count: u64) {}
    /// Drift repair suspended one of them (`scim_bridge_orphans_suspended_total`).
    fn orphan_suspended(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl SyncObserver for NoObserver {}

/// Keeps every measurement in memory: for tests, benches and `scim-bridge reconcile`. A test
/// can wait for what it expects to be recorded ([`MemoryObserver::until`]).
#[derive(Debug, Default)]
pub struct MemoryObserver {
    recorded: tokio::sync::watch::Sender<Recorded>,
}

/// What a [`MemoryObserver`] saw.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recorded {
    pub last_outbox: Option<OutboxStats>,
    pub retries: u64,
    pub dead_letters: u64,
    pub drift: BTreeMap<DriftKind, u64>,
    pub offboarding: Vec<Duration>,
    pub coder_auth_ok: Option<bool>,
    pub login_type_mismatches: Option<u64>,
    pub users_outside_email_domains: Option<u64>,
    /// Every value the worker's concurrency limit took, in order.
    pub concurrency_limits: Vec<usize>,
    /// How many looks at its timers and the queue the worker has started.
    pub looks: u64,
    /// How many times the worker waited with nothing to do.
    pub waits: u64,
    /// The last of those waits, and the look it ended.
    pub last_wait: Option<WorkerWait>,
    pub last_wait_look: u64,
    /// The last count of orphaned Coder accounts.
    pub orphans: Option<u64>,
    pub orphans_suspended: u64,
}

impl MemoryObserver {
    /// A copy of everything seen so far.
    pub fn recorded(&self) -> Recorded {
        self.recorded.borrow().clone()
    }

    /// Wait until what is recorded satisfies `done` (checked at once, then at each record).
    pub async fn until(&self, done: impl Fn(&Recorded) -> bool) -> Recorded {
        let mut recorded = self.recorded.subscribe();
        loop {
            {
                let now = recorded.borrow_and_update();
                if done(&now) {
                    return now.clone();
                }
            }
            if recorded.changed().await.is_err() {
                // The sender lives in `self`, so this cannot happen; never return unsatisfied.
                std::future::pending::<()>().await;
            }
        }
    }

    fn record(&self, change: impl FnOnce(&mut Recorded)) {
        self.recorded.send_modify(change);
    }
}

impl SyncObserver for MemoryObserver {
    fn outbox(&self, stats: &OutboxStats) {
        self.record(|r| r.last_outbox = Some(stats.clone()));
    }
    fn retry_scheduled(&self) {
        self.record(|r| r.retries += 1);
    }
    fn dead_lettered(&self) {
        self.record(|r| r.dead_letters += 1);
    }
    fn drift_found(&self, kind: DriftKind, count: u64) {
        self.record(|r| *r.drift.entry(kind).or_default() += count);
    }
    fn offboarded(&self, latency: Duration) {
        self.record(|r| r.offboarding.push(latency));
    }
    fn coder_auth(&self, ok: bool) {
        self.record(|r| r.coder_auth_ok = Some(ok));
    }
    fn login_type_mismatches(&self, count: u64) {
        self.record(|r| r.login_type_mismatches = Some(count));
    }
    fn users_outside_email_domains(&self, count: u64) {
        self.record(|r| r.users_outside_email_domains = Some(count));
    }
    fn concurrency_limit(&self, limit: usize) {
        self.record(|r| r.concurrency_limits.push(limit));
    }
    fn looking(&self) {
        self.record(|r| r.looks += 1);
    }
    fn waiting(&self, wait: &WorkerWait) {
        self.record(|r| {
            r.waits += 1;
            r.last_wait = Some(*wait);
            r.last_wait_look = r.looks;
        });
    }
    fn orphans(&self, count: u64) {
        self.record(|r| r.orphans = Some(count));
    }
    fn orphan_suspended(&self) {
        self.record(|r| r.orphans_suspended += 1);
    }
}
