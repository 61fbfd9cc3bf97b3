//! The outbox worker: claims rows (offboarding first, then oldest), reconciles up to
//! `concurrency` resources at once, and settles each row: complete, retry with backoff, defer
//! (429, or paused on an auth failure, neither of which spends an attempt), or dead-letter.
//!
//! It wakes at once on the store's notification (and, on PostgreSQL, other replicas'); the poll
//! interval only catches rows whose backoff ended or whose lease expired (a crashed worker's
//! claim). Rows are leased, so a replica that dies mid-reconcile loses its claim to another
//! after `lease`; a reconcile is cut off before its lease runs out so two never overlap.

use crate::backoff::Backoff;
use crate::drift;
use crate::error::{ReconcileError, ReconcileResult};
use crate::observer::SyncObserver;
use crate::policy::Policy;
use crate::reconciler::{Reconciler, Report};
use crate::status::StatusHandle;
use crate::users::ISSUE_LOGIN_TYPE_MISMATCH;
use coder::{CoderClient, CoderError};
use rand::SeedableRng;
use rand::rngs::StdRng;
use scim::ResourceKind;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use store::{Clock, OutboxEvent, Store};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The longest a resource waiting on another one (see [`ReconcileError::Waiting`]) waits
/// before it is looked at again.
const WAITING_RECHECK: Duration = Duration::from_secs(5);

/// How the worker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Resources reconciled at once.
    pub concurrency: usize,
    /// Attempts before a row is dead-lettered.
    pub max_attempts: u32,
    /// How long a claim holds a row; a reconcile is cut off at three quarters of it.
    pub lease: Duration,
    /// Period of drift repair; `None` turns it off.
    pub drift_interval: Option<Duration>,
    /// This worker's name in leases (unique per replica).
    pub worker_id: String,
    /// How often to look for rows whose backoff or lease ran out.
    pub poll_interval: Duration,
    /// Retry delays.
    pub backoff: Backoff,
    /// While paused on an auth failure, how often to check whether Coder accepts the token.
    pub auth_probe_interval: Duration,
    /// How often to sample queue health for the observer.
    pub stats_interval: Duration,
    /// On shutdown, how long in-flight reconciles may finish before their leases are released.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    /// The documented defaults (`docs/CONFIGURATION.md`): 4 at once, 12 attempts, drift every
    /// 15 minutes.
    fn default() -> Self {
        WorkerConfig {
            concurrency: 4,
            max_attempts: 12,
            lease: Duration::from_secs(120),
            drift_interval: Some(Duration::from_secs(15 * 60)),
            worker_id: format!("worker-{}", uuid::Uuid::new_v4()),
            poll_interval: Duration::from_secs(1),
            backoff: Backoff::default(),
            auth_probe_interval: Duration::from_secs(15),
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

/// Mutable state of the claim loop.
struct LoopState {
    paused: bool,
    /// No claims before this (a 429's `Retry-After`, for the whole worker: Coder's limit is per
    /// token, so every call would meet it).
    gate: Option<Instant>,
    next_probe: Instant,
    in_flight: HashSet<(ResourceKind, String)>,
}

impl Worker {
    /// A worker applying `policy` from `store` to Coder through `client`. Time comes from
    /// `clock` (leases, backoff); measurements go to `observer`.
    pub fn new(
        store: Store,
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

    /// A worker around an existing reconciler (shares its status and caches).
    pub fn from_reconciler(reconciler: Arc<Reconciler>, config: WorkerConfig) -> Worker {
        Worker {
            reconciler,
            config,
            rng: Box::new(StdRng::from_os_rng()),
        }
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
        let mut wakeups = store.outbox_wakeups().await?;
        let mut state = LoopState {
            paused: false,
            gate: None,
            next_probe: Instant::now(),
            in_flight: HashSet::new(),
        };
        if let Err(e) = self.reconciler.check_capabilities().await {
            tracing::warn!(error = %e, "Coder capability check failed at start-up");
            if e.is_auth() {
                self.pause(&mut state, &e.to_string());
            }
        } else {
            self.reconciler.observer.coder_auth(true);
        }
        let mut tasks: JoinSet<TaskResult> = JoinSet::new();
        let mut drift_task: Option<JoinHandle<ReconcileResult<u64>>> = None;
        let mut next_drift = self.config.drift_interval.map(|d| Instant::now() + d);
        let mut next_stats = Instant::now();
        tokio::pin!(shutdown);

        loop {
            let now = Instant::now();
            if state.paused && now >= state.next_probe {
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
                && !state.paused
            {
                drift_task = Some(tokio::spawn(run_drift(self.reconciler.clone())));
                next_drift = Some(now + interval);
            }
            let gated = state.gate.is_some_and(|g| now < g);
            if !state.paused && !gated && tasks.len() < self.config.concurrency {
                self.claim(&mut tasks, &mut state).await;
            }
            let mut wake_at = now + self.config.poll_interval;
            for at in [
                state.paused.then_some(state.next_probe),
                state.gate,
                next_drift,
                Some(next_stats),
            ]
            .into_iter()
            .flatten()
            {
                wake_at = wake_at.min(at.max(now));
            }
            let gated = state.gate.is_some_and(|g| Instant::now() < g);
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok((event, result)) = joined {
                        self.settle(&mut state, event, result).await;
                    }
                }
                () = wakeups.wait(), if !state.paused && !gated => {}
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
        let free = self.config.concurrency.saturating_sub(tasks.len());
        let lease =
            chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::seconds(120));
        let limit = u32::try_from(free).unwrap_or(u32::MAX);
        let events = match self
            .reconciler
            .store
            .outbox_claim(&self.config.worker_id, lease, limit)
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
            if state.in_flight.contains(&key) {
                // Our own earlier claim's lease ran out while it still runs: never two at once.
                let later = self.reconciler.now() + chrono::Duration::seconds(1);
                if let Err(e) = self
                    .reconciler
                    .store
                    .outbox_defer(&event, "already being reconciled", later)
                    .await
                {
                    tracing::warn!(error = %e, "outbox defer failed");
                }
                continue;
            }
            state.in_flight.insert(key);
            let reconciler = self.reconciler.clone();
            let limit = self.config.lease.mul_f64(0.75);
            tasks.spawn(async move {
                let result = match tokio::time::timeout(limit, dispatch(&reconciler, &event)).await
                {
                    Ok(result) => result,
                    Err(_) => Err(ReconcileError::Coder(CoderError::Retryable {
                        reason: format!("reconcile took longer than {limit:?}"),
                        status: None,
                        retry_after: None,
                    })),
                };
                (event, result)
            });
        }
    }

    /// Settle a finished reconcile's row.
    async fn settle(
        &mut self,
        state: &mut LoopState,
        event: OutboxEvent,
        result: ReconcileResult<Report>,
    ) {
        state
            .in_flight
            .remove(&(event.kind, event.resource_id.clone()));
        let store = &self.reconciler.store;
        let observer = &self.reconciler.observer;
        let outcome = match result {
            Ok(report) => {
                if let Some(at) = report.suspended_at {
                    // The deactivation was stored when the row was queued or, if it coalesced
                    // into an older row, when the resource last changed.
                    let since = report
                        .resource_changed_at
                        .map_or(event.enqueued_at, |c| c.max(event.enqueued_at));
                    observer.offboarded((at - since).to_std().unwrap_or_default());
                }
                store.outbox_complete(&event).await.map(drop)
            }
            Err(e) if e.is_auth() => {
                self.pause(state, &e.to_string());
                store
                    .outbox_defer(&event, &e.to_string(), self.reconciler.now())
                    .await
                    .map(drop)
            }
            Err(e) if e.is_rate_limited() => {
                let wait = e.retry_after().unwrap_or(Duration::from_secs(1));
                state.gate = Some(
                    state
                        .gate
                        .map_or(Instant::now() + wait, |g| g.max(Instant::now() + wait)),
                );
                let attempt = u32::try_from(event.attempts).unwrap_or(0).saturating_add(1);
                let delay = self
                    .config
                    .backoff
                    .delay_after(attempt, Some(wait), &mut *self.rng);
                let until =
                    self.reconciler.now() + chrono::Duration::from_std(delay).unwrap_or_default();
                store
                    .outbox_defer(&event, &e.to_string(), until)
                    .await
                    .map(drop)
            }
            Err(e @ ReconcileError::Waiting(_)) => {
                // Waiting on another resource (a group member whose Coder user is still queued)
                // is not a failure: spend no attempt, and look again soon rather than after a
                // growing backoff, so a group follows its members within seconds.
                let attempt = u32::try_from(event.attempts).unwrap_or(0).saturating_add(1);
                let delay = self
                    .config
                    .backoff
                    .delay_after(attempt, None, &mut *self.rng)
                    .min(WAITING_RECHECK);
                let until =
                    self.reconciler.now() + chrono::Duration::from_std(delay).unwrap_or_default();
                store
                    .outbox_defer(&event, &e.to_string(), until)
                    .await
                    .map(drop)
            }
            Err(e) => {
                let attempt = u32::try_from(event.attempts).unwrap_or(0).saturating_add(1);
                let reason = e.to_string();
                tracing::info!(kind = event.kind.name(), id = %event.resource_id, attempt, error = %reason, "reconcile failed");
                if attempt >= self.config.max_attempts {
                    let dead = store
                        .outbox_dead_letter(&event, &format!("after {attempt} attempts: {reason}"))
                        .await;
                    if matches!(dead, Ok(true)) {
                        observer.dead_lettered();
                    }
                    dead.map(drop)
                } else {
                    let delay =
                        self.config
                            .backoff
                            .delay_after(attempt, e.retry_after(), &mut *self.rng);
                    let until = self.reconciler.now()
                        + chrono::Duration::from_std(delay).unwrap_or_default();
                    observer.retry_scheduled();
                    store.outbox_fail(&event, &reason, until).await
                }
            }
        };
        if let Err(e) = outcome {
            // The lease runs out and the row is claimed again: nothing is lost.
            tracing::warn!(error = %e, "could not settle an outbox row");
        }
    }

    fn pause(&self, state: &mut LoopState, reason: &str) {
        if !state.paused {
            tracing::error!(
                reason,
                "Coder refused the bridge's token; the worker is paused"
            );
        }
        state.paused = true;
        state.next_probe = Instant::now() + self.config.auth_probe_interval;
        self.reconciler.observer.coder_auth(false);
        let reason = reason.to_owned();
        self.reconciler.status.update(|s| {
            s.paused = true;
            s.pause_reason = Some(reason);
            s.coder_authorised = Some(false);
        });
    }

    /// While paused: resume when Coder accepts the token again.
    async fn probe(&self, state: &mut LoopState) {
        match self.reconciler.check_capabilities().await {
            Ok(_) => {
                tracing::info!("Coder accepts the bridge's token again; the worker resumes");
                state.paused = false;
                self.reconciler.observer.coder_auth(true);
                self.reconciler.status.update(|s| {
                    s.paused = false;
                    s.pause_reason = None;
                });
            }
            Err(_) => state.next_probe = Instant::now() + self.config.auth_probe_interval,
        }
    }

    async fn report_stats(&self) {
        let store = &self.reconciler.store;
        if let Ok(stats) = store.outbox_stats().await {
            self.reconciler.observer.outbox(&stats);
        }
        if let Ok(issues) = store.sync_issue_list(false).await {
            let mismatches = issues
                .iter()
                .filter(|i| i.issue_type == ISSUE_LOGIN_TYPE_MISMATCH)
                .count() as u64;
            self.reconciler.observer.login_type_mismatches(mismatches);
            self.reconciler
                .status
                .update(|s| s.login_type_mismatches = mismatches);
        }
    }

    /// Let in-flight reconciles finish for a while, then release every lease still held.
    async fn shut_down(&mut self, mut tasks: JoinSet<TaskResult>, state: &mut LoopState) {
        let deadline = Instant::now() + self.config.shutdown_grace;
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
            .outbox_release_leases(&self.config.worker_id)
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
    match event.kind {
        ResourceKind::User => reconciler.reconcile_user(&event.resource_id).await,
        ResourceKind::Group => reconciler.reconcile_group(&event.resource_id).await,
    }
}

/// One periodic drift repair: plan, then queue the fixes.
async fn run_drift(reconciler: Arc<Reconciler>) -> ReconcileResult<u64> {
    let plan = drift::plan(&reconciler, &mut |_| {}).await?;
    if !plan.is_empty() {
        tracing::info!(differences = plan.items.len(), "drift repair queued fixes");
    }
    drift::enqueue(reconciler.store(), &plan).await
}
