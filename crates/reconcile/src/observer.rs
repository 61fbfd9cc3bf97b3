//! What the worker reports for `/metrics` (`docs/CONFIGURATION.md`, "Metrics"). The binary
//! implements [`SyncObserver`] over its Prometheus registry; every method has a no-op default.

use crate::diff::DriftKind;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use store::OutboxStats;

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
    /// The worker's adaptive concurrency limit changed (`scim_bridge_worker_concurrency_limit`).
    fn concurrency_limit(&self, _limit: usize) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl SyncObserver for NoObserver {}

/// Keeps every measurement in memory: for tests, benches and `scim-bridge reconcile`.
#[derive(Debug, Default)]
pub struct MemoryObserver {
    inner: Mutex<Recorded>,
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
    /// Every value the worker's concurrency limit took, in order.
    pub concurrency_limits: Vec<usize>,
}

impl MemoryObserver {
    /// A copy of everything seen so far.
    pub fn recorded(&self) -> Recorded {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SyncObserver for MemoryObserver {
    fn outbox(&self, stats: &OutboxStats) {
        self.lock().last_outbox = Some(stats.clone());
    }
    fn retry_scheduled(&self) {
        self.lock().retries += 1;
    }
    fn dead_lettered(&self) {
        self.lock().dead_letters += 1;
    }
    fn drift_found(&self, kind: DriftKind, count: u64) {
        *self.lock().drift.entry(kind).or_default() += count;
    }
    fn offboarded(&self, latency: Duration) {
        self.lock().offboarding.push(latency);
    }
    fn coder_auth(&self, ok: bool) {
        self.lock().coder_auth_ok = Some(ok);
    }
    fn login_type_mismatches(&self, count: u64) {
        self.lock().login_type_mismatches = Some(count);
    }
    fn concurrency_limit(&self, limit: usize) {
        self.lock().concurrency_limits.push(limit);
    }
}
