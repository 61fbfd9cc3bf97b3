//! Wiring of the sync side: the Coder client, the mapping policy, the reconciler, and the
//! adapters that turn their measurements into Prometheus metrics and `/readyz` answers.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use reconcile::{DriftKind, Policy, Reconciler, StatusHandle, SyncObserver, Worker, WorkerConfig};
use store::Store;

use crate::config::Settings;

/// Metrics for Coder calls and the worker, recorded into the server's registry.
#[derive(Clone, Debug)]
pub struct MetricsObserver(pub server::Metrics);

impl coder::CallObserver for MetricsObserver {
    fn observe(&self, call: &coder::CallRecord) {
        let status = call
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "error".into());
        self.0
            .record_coder_request(call.route.path, &status, call.latency.as_secs_f64());
    }
}

/// A count as a gauge's value (saturating: a gauge is an `i64`).
fn gauge_value(count: impl TryInto<i64>) -> i64 {
    count.try_into().unwrap_or(i64::MAX)
}

impl SyncObserver for MetricsObserver {
    fn outbox(&self, stats: &store::OutboxStats) {
        self.0.set_outbox(stats);
    }
    fn retry_scheduled(&self) {
        self.0.inc_outbox_retries();
    }
    fn drift_found(&self, kind: DriftKind, count: u64) {
        for _ in 0..count {
            self.0.inc_drift_found(&kind.to_string());
        }
    }
    fn offboarded(&self, latency: Duration) {
        self.0.observe_offboarding(latency.as_secs_f64());
    }
    fn coder_auth(&self, ok: bool) {
        self.0.set_coder_auth_ok(ok);
    }
    fn login_type_mismatches(&self, count: u64) {
        self.0.set_login_type_mismatches(gauge_value(count));
    }
    fn users_outside_email_domains(&self, count: u64) {
        self.0.set_users_outside_email_domains(gauge_value(count));
    }
    fn concurrency_limit(&self, limit: usize) {
        self.0.set_worker_concurrency_limit(gauge_value(limit));
    }
    fn orphans(&self, count: u64) {
        self.0.set_orphan_accounts(gauge_value(count));
    }
    fn orphan_suspended(&self) {
        self.0.inc_orphans_suspended();
    }
}

/// `/readyz`'s Coder half, answered from the worker's status (no Coder call per probe).
pub struct WorkerReadiness(pub StatusHandle);

impl server::ReadinessProbe for WorkerReadiness {
    fn coder(&self) -> BoxFuture<'_, server::CoderReadiness> {
        Box::pin(async move {
            let s = self.0.snapshot();
            let detail = match (s.coder_reachable, s.coder_authorised, s.paused) {
                (_, _, true) => format!("paused: {}", s.pause_reason.clone().unwrap_or_default()),
                (Some(false), _, _) => "Coder is not reachable".to_string(),
                (_, Some(false), _) => "Coder refuses the bridge's token".to_string(),
                (None, _, _) => "Coder not checked yet".to_string(),
                _ => "Coder reachable and authorised".to_string(),
            };
            server::CoderReadiness {
                ready: s.is_ready(),
                detail,
                warnings: s.warnings(),
            }
        })
    }
}

/// The mapping rules from the settings' TOML sections.
pub fn policy(settings: &Settings) -> anyhow::Result<Policy> {
    Policy::from_toml(&settings.rules).map_err(|e| {
        crate::exit::with(
            crate::exit::Exit::Config,
            anyhow::anyhow!("SCIM_BRIDGE_CONFIG: {e}"),
        )
    })
}

/// A Coder client for the configured deployment, on the run's `clock` (the store's).
pub fn coder_client(
    coder: &coder::CoderConfig,
    metrics: Option<&server::Metrics>,
    clock: Arc<dyn clock::Clock>,
) -> anyhow::Result<coder::CoderClient> {
    let client = coder::CoderClient::new(coder.clone())
        .map_err(|e| anyhow::anyhow!("SCIM_BRIDGE_CODER_URL: {e}"))?
        .with_clock(clock);
    Ok(match metrics {
        Some(m) => client.with_observer(Arc::new(MetricsObserver(m.clone()))),
        None => client,
    })
}

/// Keep `scim_bridge_token_expiry_timestamp_seconds{kind="coder"}` at the expiry of the bridge's
/// own Coder token (the API key `key_id`), read from Coder at start and then hourly: a token
/// renewed in Coder shows its new date without a restart. Runs until the process ends.
pub async fn watch_coder_token_expiry(
    client: coder::CoderClient,
    key_id: String,
    metrics: server::Metrics,
) {
    let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        match client.own_api_key(&key_id).await {
            Ok(key) => {
                let name = if key.token_name.is_empty() {
                    key.id
                } else {
                    key.token_name
                };
                metrics.set_token_expiries("coder", &[(name, key.expires_at.timestamp())]);
            }
            Err(e) => tracing::debug!(error = %e, "could not read the Coder token's expiry"),
        }
    }
}

/// The reconciler over `store`, on the store's clock and id source, or an error naming the
/// missing Coder settings.
pub fn reconciler(
    settings: &Settings,
    store: &Store,
    metrics: Option<&server::Metrics>,
) -> anyhow::Result<Arc<Reconciler>> {
    let Some(coder) = &settings.coder else {
        anyhow::bail!(
            "SCIM_BRIDGE_CODER_URL: no Coder deployment is configured (set SCIM_BRIDGE_CODER_URL and SCIM_BRIDGE_CODER_TOKEN)"
        );
    };
    let client = coder_client(coder, metrics, store.clock())?;
    let observer: Arc<dyn SyncObserver> = match metrics {
        Some(m) => Arc::new(MetricsObserver(m.clone())),
        None => Arc::new(reconcile::NoObserver),
    };
    Ok(Arc::new(Reconciler::new(
        store.into(),
        client,
        Arc::new(policy(settings)?),
        store.clock(),
        observer,
    )))
}

/// The outbox worker as configured.
pub fn worker(settings: &Settings, reconciler: Arc<Reconciler>) -> Worker {
    let config = WorkerConfig {
        concurrency: settings.worker.concurrency as usize,
        concurrency_min: settings.worker.concurrency_min as usize,
        max_attempts: settings.worker.max_attempts,
        lease: settings.worker.lease,
        drift_interval: (!settings.worker.drift_interval.is_zero())
            .then_some(settings.worker.drift_interval),
        ..WorkerConfig::default()
    };
    Worker::from_reconciler(reconciler, config)
}
