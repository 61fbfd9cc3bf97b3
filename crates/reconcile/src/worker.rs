//! The outbox worker: claims rows (offboarding first, then oldest), reconciles up to
//! `concurrency` resources at once, and settles each row: complete, retry with backoff, defer
//! (429, or paused, neither of which spends an attempt), or dead-letter.
//!
//! Per-row backoff is for failures of that row, and the bridge's own database going away (a
//! PostgreSQL restart or failover) is not one: such a row is put back without spending an
//! attempt, and a row that could not be settled while the database was away is put back, due,
//! as soon as it answers again rather than when its lease runs out.
//!
//! A failure that says Coder as a whole is
//! unavailable (no answer, 502/503/504) or refuses the token (401/403) pauses the whole worker
//! instead: it claims nothing and probes Coder, and when a probe succeeds every waiting row is
//! due at once. While an offboarding row is in flight only offboarding rows are claimed, so
//! after an outage the deactivations reach Coder before the rest.
//!
//! It wakes at once on the store's notification (and, on PostgreSQL, other replicas'); the poll
//! interval only catches rows whose backoff ended or whose lease expired (a crashed worker's
//! claim). Rows are leased, so a replica that dies mid-reconcile loses its claim to another
//! after `lease`; a reconcile is cut off before its lease runs out so two never overlap.

use crate::backoff::Backoff;
use crate::drift;
use crate::error::{ReconcileError, ReconcileResult};
use crate::observer::{SyncObserver, WorkerWait};
use crate::policy::Policy;
use crate::reconciler::SyncStore;
use crate::reconciler::{Reconciler, Report};
use crate::status::{PauseCause, StatusHandle};
use crate::users::{ISSUE_EMAIL_OUTSIDE_DOMAINS, ISSUE_LOGIN_TYPE_MISMATCH};
use coder::CoderClient;
use scim::ResourceKind;
use std::collections::HashMap;
use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;
use store::{Clock, OutboxEvent, OutboxPriority, StoreResult};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The longest a resource waiting on another one (see [`ReconcileError::Waiting`]) waits
/// before it is looked at again.
const WAITING_RECHECK: Duration = Duration::from_secs(5);

/// Outage-class failures (see [`ReconcileError::is_coder_unavailable`]) of one row, each
/// followed by a probe that found Coder answering, after which they count as the row's own
/// failures: a request Coder never answers (one that times out every time) must reach the
/// dead-letter queue rather than pause the worker forever.
const OUTAGE_STRIKES: u32 = 3;

/// How long a `Retry-After` on a 502/503/504 holds the worker's next probe back: at most five
/// minutes, and at least a second, so that a `Retry-After: 0` (or a date already past) does not
/// make a paused worker ask Coder again at once, over and over. A second, like the first backoff
/// and the wait after a 429 that names none.
const PROBE_WAIT: RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(300);

/// How the worker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The most resources reconciled at once: the ceiling of the adaptive limit.
    pub concurrency: usize,
    /// The fewest resources reconciled at once, however often Coder answers 429: the floor of
    /// the adaptive limit, which also starts there.
    pub concurrency_min: usize,
    /// Attempts before a row is dead-lettered.
    pub max_attempts: u32,
    /// How long a claim holds a row; a reconcile is cut off at three quarters of it.
    pub lease: Duration,
    /// Period of drift repair; `None` turns it off.
    pub drift_interval: Option<Duration>,
    /// This worker's name in leases (unique per replica). Left empty (the default), the worker
    /// is named `worker-<uuid>` from the run's id source when it is built.
    pub worker_id: String,
    /// How often to look for rows whose backoff or lease ran out.
    pub poll_interval: Duration,
    /// Retry delays.
    pub backoff: Backoff,
    /// While paused on a refused token or a redirect, how often to check whether Coder accepts
    /// the bridge's calls again.
    pub auth_probe_interval: Duration,
    /// While paused because Coder is unavailable, how often to check whether it answers again
    /// (a `Retry-After` Coder sent is honoured instead, held between 1 s and 5 min). Bounds the
    /// delay between Coder's return and the first change applied.
    pub outage_probe_interval: Duration,
    /// How often to sample queue health for the observer.
    pub stats_interval: Duration,
    /// On shutdown, how long in-flight reconciles may finish before their leases are released.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    /// The documented defaults (`docs/CONFIGURATION.md`): 1 to 32 at once, 12 attempts, drift
    /// every 15 minutes.
    fn default() -> Self {
        WorkerConfig {
            concurrency: 32,
            concurrency_min: 1,
            max_attempts: 12,
            lease: Duration::from_secs(120),
            drift_interval: Some(Duration::from_secs(15 * 60)),
            worker_id: String::new(),
            poll_interval: Duration::from_secs(1),
            backoff: Backoff::default(),
            auth_probe_interval: Duration::from_secs(15),
            outage_probe_interval: Duration::from_secs(2),
            stats_interval: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The outbox worker. Build it with [`Worker::new`], then [`Worker::run`] it until shutdown.
pub struct Worker {
    reconciler: Arc<Reconciler>,
    config: WorkerConfig,
    rng: Box<dyn rand::RngCore + Send + Sync>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a finished task hands back to the loop.
type TaskResult = (OutboxEvent, ReconcileResult<Report>);

/// A resource as the claim loop tracks it.
type ResourceKey = (ResourceKind, String);

/// Mutable state of the claim loop.
struct LoopState {
    /// Set while the worker claims nothing and probes Coder instead.
    paused: Option<PauseCause>,
    /// No claims before this (a 429's `Retry-After`, for the whole worker: Coder's limit is per
    /// token, so every call would meet it).
    gate: Option<Instant>,
    next_probe: Instant,
    /// Resources being reconciled, with their row's priority.
    in_flight: HashMap<ResourceKey, OutboxPriority>,
    /// Outage-class failures per row since it last settled otherwise ([`OUTAGE_STRIKES`]).
    outage_strikes: HashMap<ResourceKey, u32>,
    /// How many reconciles may run at once now.
    limit: Limit,
    /// Rows finished while the database was away, so not settled: each is put back, due now,
    /// with its reason, once the database answers.
    unsettled: Vec<(OutboxEvent, String)>,
}

/// The adaptive concurrency limit, additive increase, multiplicative decrease: while the worker
/// has more work than the limit lets it start, each reconcile that finishes without a 429 raises
/// the limit (by one each until the first 429, doubling it per round of reconciles; then by one
/// per round), and a 429 halves it, once per round. So the number of Coder calls in flight grows
/// with Coder's latency, where more of them are needed to keep the same pace, up to the
/// ceiling, and falls as soon as Coder says it is overloaded.
#[derive(Debug, Clone)]
struct Limit {
    value: f64,
    floor: f64,
    ceiling: f64,
    /// Until the first 429: grow by one per finished reconcile.
    slow_start: bool,
    /// Reconciles to finish before another 429 may halve the limit again (one round).
    cut_hold: usize,
}

impl Limit {
    fn new(floor: usize, ceiling: usize) -> Limit {
        let ceiling = ceiling.max(1) as f64;
        let floor = (floor.max(1) as f64).min(ceiling);
        Limit {
            value: floor,
            floor,
            ceiling,
            slow_start: true,
            cut_hold: 0,
        }
    }

    fn get(&self) -> usize {
        self.value as usize
    }

    /// A reconcile finished without a 429; `saturated` when the limit held work back.
    fn succeeded(&mut self, saturated: bool) {
        self.cut_hold = self.cut_hold.saturating_sub(1);
        if !saturated {
            return;
        }
        let step = if self.slow_start {
            1.0
        } else {
            1.0 / self.value
        };
        self.value = (self.value + step).min(self.ceiling);
    }

    /// Coder answered 429: halve, unless this round was halved already.
    fn rate_limited(&mut self) {
        self.slow_start = false;
        if self.cut_hold > 0 {
            self.cut_hold -= 1;
            return;
        }
        self.value = (self.value / 2.0).max(self.floor);
        self.cut_hold = self.get();
    }
}

impl LoopState {
    fn paused(&self) -> bool {
        self.paused.is_some()
    }
}

/// Whether `error` pauses the whole worker, and why.
fn pause_cause(error: &ReconcileError) -> Option<PauseCause> {
    if error.is_auth() {
        Some(PauseCause::TokenRefused)
    } else if matches!(
        error,
        ReconcileError::Coder(coder::CoderError::Redirect { .. })
    ) {
        Some(PauseCause::Redirected)
    } else if error.is_coder_unavailable() {
        Some(PauseCause::CoderUnavailable)
    } else {
        None
    }
}

impl Worker {
    /// A worker applying `policy` from `store` to Coder through `client`. Time comes from
    /// `clock` (leases, backoff); measurements go to `observer`.
    pub fn new(
        store: SyncStore,
        client: CoderClient,
        policy: Arc<Policy>,
        config: WorkerConfig,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn SyncObserver>,
    ) -> Worker {
        Worker::from_reconciler(
            Arc::new(Reconciler::new(store, client, policy, clock, observer)),
            config,
        )
    }

    /// A worker around an existing reconciler (shares its status and caches, and draws its name
    /// and jitter from its id source).
    pub fn from_reconciler(reconciler: Arc<Reconciler>, mut config: WorkerConfig) -> Worker {
        if config.worker_id.is_empty() {
            config.worker_id = format!("worker-{}", reconciler.ids.uuid_v4());
        }
        Worker {
            rng: Box::new(reconciler.ids.rng()),
            reconciler,
            config,
        }
    }

    /// The worker's monotonic time, from the reconciler's clock.
    fn now(&self) -> Instant {
        self.reconciler.clock.instant()
    }

    /// Use `rng` for backoff jitter (tests pass a seeded one).
    pub fn with_rng(mut self, rng: impl rand::RngCore + Send + Sync + 'static) -> Worker {
        self.rng = Box::new(rng);
        self
    }

    /// The status `/readyz` and `scim-bridge status` read.
    pub fn status(&self) -> StatusHandle {
        self.reconciler.status()
    }

    /// The reconciler the worker's tasks use.
    pub fn reconciler(&self) -> Arc<Reconciler> {
        self.reconciler.clone()
    }

    /// Run until `shutdown` completes, then let in-flight reconciles finish (up to
    /// `shutdown_grace`) and release this worker's leases. Errors only when the store cannot
    /// give wake-ups at start.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> ReconcileResult<()> {
        let store = self.reconciler.store.clone();
        let mut wakeups = store.outbox.wakeups().await?;
        let mut state = LoopState {
            paused: None,
            gate: None,
            next_probe: self.now(),
            in_flight: HashMap::new(),
            outage_strikes: HashMap::new(),
            limit: Limit::new(self.config.concurrency_min, self.config.concurrency),
            unsettled: Vec::new(),
        };
        self.publish_limit(&state);
        if let Err(e) = self.reconciler.check_capabilities().await {
            tracing::warn!(error = %e, "Coder capability check failed at start-up");
            let e = ReconcileError::Coder(e);
            if let Some(cause) = pause_cause(&e) {
                self.pause(&mut state, cause, &e);
            }
        } else {
            self.reconciler.observer.coder_auth(true);
        }
        let mut tasks: JoinSet<TaskResult> = JoinSet::new();
        let mut drift_task: Option<JoinHandle<ReconcileResult<u64>>> = None;
        let mut next_drift = self.config.drift_interval.map(|d| self.now() + d);
        let mut next_stats = self.now();
        tokio::pin!(shutdown);

        loop {
            let now = self.now();
            self.reconciler.observer.looking();
            // A 429's wait that has ended holds nothing back, and must not keep the wake-up
            // below at `now` (the loop would spin).
            if state.gate.is_some_and(|g| now >= g) {
                state.gate = None;
            }
            if state.paused() && now >= state.next_probe {
                self.probe(&mut state).await;
            }
            if now >= next_stats {
                self.report_stats().await;
                next_stats = now + self.config.stats_interval;
            }
            if drift_task.as_ref().is_some_and(JoinHandle::is_finished)
                && let Some(Ok(Err(e))) =
                    drift_task.take().and_then(futures::FutureExt::now_or_never)
            {
                tracing::warn!(error = %e, "drift repair failed");
            }
            if let (Some(at), Some(interval)) = (next_drift, self.config.drift_interval)
                && now >= at
                && drift_task.is_none()
                && !state.paused()
            {
                drift_task = Some(tokio::spawn(run_drift(self.reconciler.clone())));
                next_drift = Some(now + interval);
            }
            let database_answers = self.resettle(&mut state).await;
            let gated = state.gate.is_some_and(|g| now < g);
            if database_answers && !state.paused() && !gated && tasks.len() < state.limit.get() {
                self.claim(&mut tasks, &mut state).await;
            }
            let mut wake_at = now + self.config.poll_interval;
            for at in [
                state.paused().then_some(state.next_probe),
                state.gate,
                next_drift,
                Some(next_stats),
            ]
            .into_iter()
            .flatten()
            {
                wake_at = wake_at.min(at.max(now));
            }
            let gated = state.gate.is_some_and(|g| self.now() < g);
            if tasks.is_empty() && drift_task.as_ref().is_none_or(JoinHandle::is_finished) {
                self.reconciler.observer.waiting(&WorkerWait {
                    at: now,
                    until: wake_at,
                    wakes_on_commit: !state.paused() && !gated,
                    next_probe: state.paused().then_some(state.next_probe),
                });
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok((event, result)) = joined {
                        // At the limit when this one started: more work may have waited.
                        let saturated = tasks.len() + 1 >= state.limit.get();
                        self.adapt(&mut state, &result, saturated);
                        self.settle(&mut state, event, result).await;
                    }
                }
                () = wakeups.wait(), if !state.paused() && !gated => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
        self.shut_down(tasks, &mut state).await;
        if let Some(task) = drift_task {
            task.abort();
        }
        Ok(())
    }

    /// Claim as many rows as there are free slots and start their reconciles.
    async fn claim(&mut self, tasks: &mut JoinSet<TaskResult>, state: &mut LoopState) {
        let free = state.limit.get().saturating_sub(tasks.len());
        let lease =
            chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::seconds(120));
        let limit = u32::try_from(free).unwrap_or(u32::MAX);
        // Offboarding goes first: while a deactivation is in flight nothing else starts, so
        // no other write reaches Coder before it.
        let at_least = if state
            .in_flight
            .values()
            .any(|p| *p == OutboxPriority::Offboarding)
        {
            OutboxPriority::Offboarding
        } else {
            OutboxPriority::Normal
        };
        let events = match self
            .reconciler
            .store
            .outbox
            .claim_priority(&self.config.worker_id, lease, limit, at_least)
            .await
        {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "outbox claim failed");
                return;
            }
        };
        for event in events {
            let key = (event.kind, event.resource_id.clone());
            if state.in_flight.contains_key(&key) {
                // Our own earlier claim's lease ran out while it still runs: never two at once.
                let later = self.reconciler.now() + chrono::Duration::seconds(1);
                if let Err(e) = self
                    .reconciler
                    .store
                    .outbox
                    .defer(&event, "already being reconciled", later)
                    .await
                {
                    tracing::warn!(error = %e, "outbox defer failed");
                }
                continue;
            }
            state.in_flight.insert(key, event.priority);
            let reconciler = self.reconciler.clone();
            let limit = self.config.lease.mul_f64(0.75);
            tasks.spawn(async move {
                let result = match tokio::time::timeout(limit, dispatch(&reconciler, &event)).await
                {
                    Ok(result) => result,
                    Err(_) => Err(ReconcileError::TookTooLong(limit)),
                };
                (event, result)
            });
        }
    }

    /// Move the concurrency limit after a finished reconcile: down on a 429, up on anything
    /// else but an outage (which pauses the worker instead).
    fn adapt(&self, state: &mut LoopState, result: &ReconcileResult<Report>, saturated: bool) {
        let before = state.limit.get();
        match result {
            Err(e) if e.is_rate_limited() => state.limit.rate_limited(),
            Err(e) if e.is_coder_unavailable() || e.is_store_unavailable() => {}
            _ => state.limit.succeeded(saturated),
        }
        if state.limit.get() != before {
            if state.limit.get() < before {
                tracing::info!(
                    from = before,
                    to = state.limit.get(),
                    "Coder answered 429; reconciling fewer resources at once"
                );
            }
            self.publish_limit(state);
        }
    }

    fn publish_limit(&self, state: &LoopState) {
        let limit = state.limit.get();
        self.reconciler.observer.concurrency_limit(limit);
        self.reconciler
            .status
            .update(|s| s.concurrency_limit = Some(limit));
    }

    /// Settle a finished reconcile's row.
    async fn settle(
        &mut self,
        state: &mut LoopState,
        event: OutboxEvent,
        result: ReconcileResult<Report>,
    ) {
        let key = (event.kind, event.resource_id.clone());
        state.in_flight.remove(&key);
        // An outage-class failure pauses the worker unless this row keeps failing that way
        // while Coder answers the probes: then it is the row's own failure.
        let unavailable = matches!(&result, Err(e) if e.is_coder_unavailable());
        let row_failure = unavailable && {
            let strikes = state.outage_strikes.entry(key.clone()).or_insert(0);
            *strikes += 1;
            *strikes > OUTAGE_STRIKES
        };
        if !unavailable {
            state.outage_strikes.remove(&key);
        }
        let attempt = u32::try_from(event.attempts).unwrap_or(0).saturating_add(1);
        let outcome = match result {
            Ok(report) => {
                if let Some(at) = report.suspended_at {
                    // The deactivation was stored when the row was queued or, if it coalesced
                    // into an older row, when the resource last changed.
                    let since = report
                        .resource_changed_at
                        .map_or(event.enqueued_at, |c| c.max(event.enqueued_at));
                    let latency = (at - since).to_std().unwrap_or_default();
                    self.reconciler.observer.offboarded(latency);
                }
                self.reconciler
                    .store
                    .outbox
                    .complete(&event)
                    .await
                    .map(drop)
            }
            // Nothing wrong with this row: it waits, due, for the worker to resume.
            Err(e) if e.needs_operator() || (unavailable && !row_failure) => {
                if let Some(cause) = pause_cause(&e) {
                    self.pause(state, cause, &e);
                }
                self.defer(&event, &e, Duration::ZERO).await
            }
            Err(e) if e.is_rate_limited() => {
                let wait = e.retry_after().unwrap_or(Duration::from_secs(1));
                state.gate = Some(
                    state
                        .gate
                        .map_or(self.now() + wait, |g| g.max(self.now() + wait)),
                );
                let delay = self
                    .config
                    .backoff
                    .delay_after(attempt, Some(wait), &mut *self.rng);
                self.defer(&event, &e, delay).await
            }
            // The database went away under the reconcile: no fault of the row, and Coder is
            // converged from what is stored, so it runs again once the database is back.
            Err(e) if e.is_store_unavailable() => {
                self.defer(&event, &e, self.config.poll_interval).await
            }
            Err(e @ ReconcileError::Waiting(_)) => {
                // Waiting on another resource (a group member whose Coder user is still queued)
                // is not a failure: spend no attempt, and look again soon rather than after a
                // growing backoff, so a group follows its members within seconds.
                let delay = self
                    .config
                    .backoff
                    .delay_after(attempt, None, &mut *self.rng)
                    .min(WAITING_RECHECK);
                self.defer(&event, &e, delay).await
            }
            Err(e) => self.fail(state, &key, &event, attempt, &e).await,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "could not settle an outbox row");
            if e.is_unavailable() {
                state.unsettled.push((event, e.to_string()));
            }
            // Otherwise the lease runs out and the row is claimed again: nothing is lost.
        }
    }

    /// Spend attempt number `attempt` of `event` on `error`: retry after a backoff, or
    /// dead-letter the row once it has had `max_attempts`.
    async fn fail(
        &mut self,
        state: &mut LoopState,
        key: &ResourceKey,
        event: &OutboxEvent,
        attempt: u32,
        error: &ReconcileError,
    ) -> StoreResult<()> {
        let reason = error.to_string();
        tracing::info!(kind = event.kind.name(), id = %event.resource_id, attempt, error = %reason, "reconcile failed");
        let outbox = &self.reconciler.store.outbox;
        if attempt >= self.config.max_attempts {
            state.outage_strikes.remove(key);
            let dead = outbox
                .dead_letter(event, &format!("after {attempt} attempts: {reason}"))
                .await;
            if matches!(dead, Ok(true)) {
                self.reconciler.observer.dead_lettered();
            }
            return dead.map(drop);
        }
        let delay = self
            .config
            .backoff
            .delay_after(attempt, error.retry_after(), &mut *self.rng);
        self.reconciler.observer.retry_scheduled();
        outbox.fail(event, &reason, self.due_in(delay)).await
    }

    /// Put `event` back without spending an attempt, due `delay` from now.
    async fn defer(
        &self,
        event: &OutboxEvent,
        error: &ReconcileError,
        delay: Duration,
    ) -> StoreResult<()> {
        let outbox = &self.reconciler.store.outbox;
        outbox
            .defer(event, &error.to_string(), self.due_in(delay))
            .await
            .map(drop)
    }

    /// The store's time `delay` from now: when a put-back row is due.
    fn due_in(&self, delay: Duration) -> chrono::DateTime<chrono::Utc> {
        self.reconciler.now() + chrono::Duration::from_std(delay).unwrap_or_default()
    }

    /// Put back, due now, the rows that could not be settled while the database was away.
    /// Returns whether the database answers (true when there was nothing to put back).
    async fn resettle(&self, state: &mut LoopState) -> bool {
        let now = self.reconciler.now();
        let mut waiting = std::mem::take(&mut state.unsettled).into_iter();
        while let Some((event, reason)) = waiting.next() {
            match self
                .reconciler
                .store
                .outbox
                .defer(&event, &reason, now)
                .await
            {
                Err(e) if e.is_unavailable() => {
                    state.unsettled.push((event, reason));
                    state.unsettled.extend(waiting);
                    return false;
                }
                Err(e) => tracing::warn!(error = %e, "could not put an outbox row back"),
                Ok(_) => {}
            }
        }
        true
    }

    /// Stop claiming and probe Coder. A refused token or a redirect outranks an outage: it
    /// needs an operator, so an outage-class failure does not hide it.
    fn pause(&self, state: &mut LoopState, cause: PauseCause, error: &ReconcileError) {
        let cause = match (state.paused, cause) {
            (
                Some(held @ (PauseCause::TokenRefused | PauseCause::Redirected)),
                PauseCause::CoderUnavailable,
            ) => held,
            _ => cause,
        };
        self.hold(state, cause, error);
    }

    /// Stay paused for `cause` until the next probe.
    fn hold(&self, state: &mut LoopState, cause: PauseCause, error: &ReconcileError) {
        let reason = error.to_string();
        if state.paused != Some(cause) {
            match cause {
                PauseCause::TokenRefused => tracing::error!(
                    reason,
                    "Coder refused the bridge's token; the worker is paused"
                ),
                PauseCause::CoderUnavailable => tracing::warn!(
                    reason,
                    "Coder is unavailable; the worker is paused and probes it"
                ),
                PauseCause::Redirected => tracing::error!(
                    reason,
                    "Coder answered a redirect; the worker is paused until the Coder URL is fixed"
                ),
            }
        }
        state.paused = Some(cause);
        let wait = match cause {
            PauseCause::TokenRefused | PauseCause::Redirected => self.config.auth_probe_interval,
            PauseCause::CoderUnavailable => error
                .retry_after()
                .map_or(self.config.outage_probe_interval, |wait| {
                    wait.clamp(*PROBE_WAIT.start(), *PROBE_WAIT.end())
                }),
        };
        state.next_probe = self.now() + wait;
        // The metric alerts on what needs an operator; the status blames the token only when
        // Coder refused it.
        if cause != PauseCause::CoderUnavailable {
            self.reconciler.observer.coder_auth(false);
        }
        self.reconciler.status.update(|s| {
            s.paused = true;
            s.pause_cause = Some(cause);
            s.pause_reason = Some(reason);
            if cause == PauseCause::TokenRefused {
                s.coder_authorised = Some(false);
            }
        });
    }

    /// While paused: resume when Coder answers and accepts the token again.
    async fn probe(&self, state: &mut LoopState) {
        match self.reconciler.check_capabilities().await {
            Ok(_) => self.resume(state).await,
            Err(e) => {
                let e = ReconcileError::Coder(e);
                let cause = pause_cause(&e)
                    .or(state.paused)
                    .unwrap_or(PauseCause::CoderUnavailable);
                self.hold(state, cause, &e);
            }
        }
    }

    /// Coder answers again: every row that waited is due at once, and the claim order takes
    /// offboarding first.
    async fn resume(&self, state: &mut LoopState) {
        let cause = state.paused.take();
        tracing::info!(
            ?cause,
            "Coder answers and accepts the bridge's token again; the worker resumes"
        );
        self.reconciler.observer.coder_auth(true);
        self.reconciler.status.update(|s| {
            s.paused = false;
            s.pause_cause = None;
            s.pause_reason = None;
        });
        match self.reconciler.store.outbox.due_now().await {
            Ok(rows) => tracing::info!(rows, "waiting outbox rows are due now"),
            // They become due by themselves when their wait ends.
            Err(e) => tracing::warn!(error = %e, "could not make waiting rows due"),
        }
    }

    async fn report_stats(&self) {
        let store = &self.reconciler.store;
        if let Ok(stats) = store.outbox.stats().await {
            self.reconciler.observer.outbox(&stats);
        }
        if let Ok(issues) = store.sync_issues.list(false).await {
            let mismatches = issues
                .iter()
                .filter(|i| i.issue_type == ISSUE_LOGIN_TYPE_MISMATCH)
                .count() as u64;
            self.reconciler.observer.login_type_mismatches(mismatches);
            let outside = issues
                .iter()
                .filter(|i| i.issue_type == ISSUE_EMAIL_OUTSIDE_DOMAINS)
                .count() as u64;
            self.reconciler
                .observer
                .users_outside_email_domains(outside);
            self.reconciler
                .status
                .update(|s| s.login_type_mismatches = mismatches);
        }
    }

    /// Let in-flight reconciles finish for a while, then release every lease still held.
    async fn shut_down(&mut self, mut tasks: JoinSet<TaskResult>, state: &mut LoopState) {
        let deadline = self.now() + self.config.shutdown_grace;
        while !tasks.is_empty() {
            match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(Some(Ok((event, result)))) => self.settle(state, event, result).await,
                Ok(Some(Err(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
        tasks.abort_all();
        match self
            .reconciler
            .store
            .outbox
            .release_leases(&self.config.worker_id)
            .await
        {
            Ok(released) => tracing::info!(released, "worker stopped; leases released"),
            Err(e) => {
                tracing::warn!(error = %e, "could not release leases; they expire by themselves")
            }
        }
    }
}

/// Reconcile the resource an outbox row names.
async fn dispatch(reconciler: &Reconciler, event: &OutboxEvent) -> ReconcileResult<Report> {
    reconciler.reconcile(event.kind, &event.resource_id).await
}

/// One periodic drift repair: plan, then queue the fixes and apply `[orphans]`.
async fn run_drift(reconciler: Arc<Reconciler>) -> ReconcileResult<u64> {
    let plan = drift::plan(&reconciler, &mut |_| {}).await?;
    if !plan.is_empty() {
        tracing::info!(differences = plan.items.len(), "drift repair queued fixes");
    }
    Ok(drift::repair(&reconciler, &plan).await?.queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::{MemoryObserver, NoObserver, Recorded};
    use clock::{IdSource as _, SeededIds};
    use coder::{CoderConfig, SessionToken};
    use coder_fake::{CoderFake, FakeOptions, Fault, FaultKind, MAX_FAULT_COUNT};

    /// A real-time bound on each wait for the worker: a hang fails the test.
    const REAL_TIME_LIMIT: Duration = Duration::from_secs(120);
    const MILLI: Duration = Duration::from_millis(1);

    fn client(url: &str, token: &str) -> CoderClient {
        CoderClient::new(CoderConfig::new(
            url.parse().unwrap(),
            SessionToken::new(token),
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn an_unnamed_worker_is_named_from_the_store_s_ids() {
        let db = test_support::TestDatabase::sqlite();
        let options = store::StoreOptions {
            ids: Arc::new(SeededIds::new(5)),
            ..store::StoreOptions::default()
        };
        let store = store::Store::connect(db.url(), options).await.unwrap();
        let worker = |config| {
            let client = client("http://127.0.0.1:9", "unused");
            let policy = Arc::new(Policy::default());
            Worker::new(
                (&store).into(),
                client,
                policy,
                config,
                store.clock(),
                Arc::new(NoObserver),
            )
        };
        let expected = format!("worker-{}", SeededIds::new(5).uuid_v4());
        assert_eq!(worker(WorkerConfig::default()).config.worker_id, expected);

        let named = WorkerConfig {
            worker_id: "replica-a".to_owned(),
            ..WorkerConfig::default()
        };
        assert_eq!(worker(named).config.worker_id, "replica-a");
    }

    /// Coder answers every call 503 with `Retry-After: 0`: the paused worker still waits a
    /// second (the floor of [`PROBE_WAIT`]) between probes, asking nothing a moment before and
    /// once at it. On paused time that moves only when the test moves it, where a zero wait
    /// would be a loop.
    #[tokio::test(start_paused = true)]
    async fn a_retry_after_of_zero_holds_the_next_probe_back_a_second() {
        let _time = test_support::hold_time();
        let fake = CoderFake::start(FakeOptions::default()).await.unwrap();
        let unavailable = FaultKind::Status {
            status: 503,
            retry_after: Some("0".into()),
        };
        fake.inject(Fault::next(MAX_FAULT_COUNT, unavailable))
            .unwrap();
        let db = test_support::TestStore::sqlite().await;
        let observer = Arc::new(MemoryObserver::default());
        let worker = Worker::new(
            (&db.store).into(),
            client(fake.base_url(), fake.owner_token()),
            Arc::new(Policy::default()),
            WorkerConfig {
                drift_interval: None,
                ..WorkerConfig::default()
            },
            db.clock.clone(),
            observer.clone(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(worker.run(async {
            let _ = stopped.await;
        }));
        // Waits until the worker has probed (or checked at start) and waits again: the wait.
        let probed = async |waits: u64| {
            let recorded = observer.until(|r: &Recorded| r.waits > waits);
            let recorded = test_support::within(REAL_TIME_LIMIT, "a wait", recorded).await;
            recorded.last_wait.unwrap()
        };

        // The start-up check met the 503: paused, the next probe a second away.
        let floor = *PROBE_WAIT.start();
        let wait = probed(0).await;
        assert_eq!(wait.next_probe, Some(wait.at + floor));
        let (calls, looks) = (fake.state().calls.len(), observer.recorded().looks);
        tokio::time::advance(floor - MILLI).await;
        let recorded = observer.recorded();
        assert_eq!(fake.state().calls.len(), calls, "nothing reached Coder");
        assert_eq!(recorded.looks, looks, "the worker slept");
        tokio::time::advance(MILLI).await;
        let wait = probed(recorded.waits).await;
        assert_eq!(fake.state().calls.len(), calls + 1, "one probe");
        assert_eq!(
            wait.next_probe,
            Some(wait.at + floor),
            "and a second to the next"
        );

        stop.send(()).unwrap();
        let stopped = test_support::within(REAL_TIME_LIMIT, "the worker to stop", running).await;
        stopped.unwrap().unwrap();
    }
}
