//! The live audit stream: every audit record, as it commits, pushed to the SIEM's webhook
//! (`SCIM_BRIDGE_AUDIT_WEBHOOK_URL`) at least once and in order.
//!
//! One replica delivers at a time: the one holding the `webhook` sink's lease in the database
//! (renewed before every request, taken over by another replica once it runs out). It reads the
//! records after the sink's cursor, POSTs them, and moves the cursor only after a 2xx, so a
//! crash or restart resumes after the last acknowledged record: nothing is skipped, and only
//! the batch in flight can arrive twice, with the same event ids. A failing receiver is retried
//! with exponential backoff and full jitter, from the same cursor, without end: a record is
//! never dropped; the failures and the lag show in `/metrics` and `scim-bridge status`.

pub mod format;

#[cfg(test)]
#[path = "../../../../tests/shared/receiver.rs"]
mod receiver;
#[cfg(test)]
#[path = "../../../../tests/shared/sink.rs"]
mod sink;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use clock::{Clock, IdSource};
use store::{AuditRecord, Store};

use crate::config::audit_webhook::{AuditWebhookSettings, WebhookFormat, shown_url};

/// The sink's name in the database.
pub const SINK: &str = "webhook";

/// How long a replica's claim on the stream lasts without renewal.
const LEASE: Duration = Duration::from_secs(30);

/// A request that takes longer is abandoned and retried; well inside the lease, so a replica
/// never posts after another has taken the stream over.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a replica that does not hold the lease looks whether it may take it.
const STANDBY_POLL: Duration = Duration::from_secs(5);

/// Backoff after failed deliveries: 1 s doubling up to 1 min, fully jittered.
const BACKOFF: reconcile::Backoff = reconcile::Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(60),
};

/// What the stream reports to `/metrics`.
pub trait DeliveryObserver: Send + Sync {
    fn delivered(&self, records: u64);
    fn failed(&self);
    /// Seconds the oldest unacknowledged record has waited (0 when caught up).
    fn lag(&self, seconds: f64);
}

impl DeliveryObserver for server::Metrics {
    fn delivered(&self, records: u64) {
        self.inc_audit_webhook_delivered(records);
    }
    fn failed(&self) {
        self.inc_audit_webhook_failures();
    }
    fn lag(&self, seconds: f64) {
        self.set_audit_webhook_lag(seconds);
    }
}

/// The delivering task's parts.
pub struct Webhook {
    pub settings: AuditWebhookSettings,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdSource>,
    pub observer: Arc<dyn DeliveryObserver>,
    /// This replica's name on the lease.
    pub holder: String,
    /// Delays between failed deliveries.
    pub backoff: reconcile::Backoff,
    http: reqwest::Client,
}

/// One request's worth: its body, and the last record it carries.
struct Delivery {
    last_seq: i64,
    records: u64,
    body: Vec<u8>,
}

impl Webhook {
    pub fn new(
        settings: AuditWebhookSettings,
        store: Store,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        observer: Arc<dyn DeliveryObserver>,
        holder: String,
    ) -> anyhow::Result<Webhook> {
        let http = reqwest::Client::builder()
            // The receiver's answer decides; a redirect could send audit records (and the
            // signature) to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(settings.url.scheme() == "https")
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("scim-bridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Webhook {
            settings,
            store,
            clock,
            ids,
            observer,
            holder,
            backoff: BACKOFF,
            http,
        })
    }

    async fn pause(&self, wait: Duration) {
        tokio::time::sleep_until(self.clock.instant() + wait).await;
    }

    /// Deliver until `shutdown` resolves; then give the lease up.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tracing::info!(
            url = %shown_url(&self.settings.url),
            format = ?self.settings.format,
            "streaming audit records to the webhook"
        );
        tokio::pin!(shutdown);
        tokio::select! {
            () = self.deliver_forever() => {}
            () = &mut shutdown => {}
        }
        // A request cut off here was not acknowledged: the cursor did not move, and the next
        // holder sends it again.
        if let Err(e) = self.store.audit_stream().release(SINK, &self.holder).await {
            tracing::warn!(error = %e, "could not release the audit webhook lease");
        }
    }

    async fn deliver_forever(&self) {
        let mut attempt: u32 = 0;
        let mut rng = self.ids.rng();
        loop {
            match self.step().await {
                Ok(Step::Delivered) => attempt = 0,
                Ok(Step::Idle) => {
                    attempt = 0;
                    self.pause(idle_poll(self.settings.batch_wait)).await;
                }
                Ok(Step::Standby) => self.pause(STANDBY_POLL).await,
                Err(problem) => {
                    attempt = attempt.saturating_add(1);
                    self.observer.failed();
                    let wait = self.backoff.delay(attempt, &mut rng);
                    tracing::warn!(
                        error = %problem,
                        attempt,
                        retry_in = ?wait,
                        "audit webhook delivery failed; retrying from the same record"
                    );
                    if let Err(e) = self
                        .store
                        .audit_stream()
                        .failed(SINK, &self.holder, &problem)
                        .await
                    {
                        tracing::warn!(error = %e, "could not note the audit webhook failure");
                    }
                    self.pause(wait).await;
                }
            }
        }
    }

    /// Update the lag gauge from the database.
    async fn observe_lag(&self) {
        if let Ok(lag) = self.store.audit_stream().lag(SINK).await {
            let seconds = lag.oldest_pending.map_or(0.0, |oldest| {
                (self.clock.now() - oldest).num_milliseconds().max(0) as f64 / 1000.0
            });
            self.observer.lag(seconds);
        }
    }

    /// Claim the stream and deliver one batch.
    async fn step(&self) -> Result<Step, String> {
        let stream = self.store.audit_stream();
        let Some(mut cursor) = stream
            .claim(SINK, &self.holder, LEASE)
            .await
            .map_err(|e| format!("reading the audit stream's cursor: {e}"))?
        else {
            // Another replica delivers; keep the lag visible here too.
            self.observe_lag().await;
            return Ok(Step::Standby);
        };
        let limit = i64::from(self.settings.batch_size);
        let mut records = stream
            .after(cursor, limit)
            .await
            .map_err(|e| format!("reading audit records: {e}"))?;
        let Some(oldest) = records.first().map(|r| r.time) else {
            self.observer.lag(0.0);
            return Ok(Step::Idle);
        };
        self.observe_lag().await;
        // A batch that is not full waits until its oldest record has waited `batch_wait`.
        if records.len() < self.settings.batch_size as usize {
            let waited = (self.clock.now() - oldest).to_std().unwrap_or_default();
            if let Some(rest) = self.settings.batch_wait.checked_sub(waited)
                && !rest.is_zero()
            {
                self.pause(rest).await;
                // The lease is renewed right before sending, so the request ends inside it.
                if stream
                    .claim(SINK, &self.holder, LEASE)
                    .await
                    .map_err(|e| format!("renewing the audit stream's lease: {e}"))?
                    != Some(cursor)
                {
                    return Ok(Step::Standby);
                }
                records = stream
                    .after(cursor, limit)
                    .await
                    .map_err(|e| format!("reading audit records: {e}"))?;
            }
        }
        for delivery in self.deliveries(&records) {
            self.post(&delivery).await?;
            let moved = stream
                .advance(SINK, &self.holder, cursor, delivery.last_seq)
                .await
                .map_err(|e| format!("moving the audit stream's cursor: {e}"))?;
            if !moved {
                // The lease ran out during the request and another replica took over: it
                // resends from the cursor it found (duplicates, never gaps).
                tracing::warn!("the audit webhook lease passed to another replica");
                return Ok(Step::Standby);
            }
            cursor = delivery.last_seq;
            self.observer.delivered(delivery.records);
        }
        self.observe_lag().await;
        Ok(Step::Delivered)
    }

    /// JSON: one request for the batch. SET: one request per record (RFC 8935 carries one SET
    /// per POST).
    fn deliveries(&self, records: &[AuditRecord]) -> Vec<Delivery> {
        match self.settings.format {
            WebhookFormat::Json => records
                .last()
                .map(|last| Delivery {
                    last_seq: last.seq,
                    records: records.len() as u64,
                    body: format::json_lines(records),
                })
                .into_iter()
                .collect(),
            WebhookFormat::Set => {
                let issuer = self.settings.issuer.as_deref().unwrap_or_default();
                let now = self.clock.now().timestamp();
                let secret = self.settings.secret.as_ref().map(|s| s.expose());
                records
                    .iter()
                    .map(|record| {
                        let claims =
                            format::set_claims(record, issuer, &self.settings.audience, now);
                        Delivery {
                            last_seq: record.seq,
                            records: 1,
                            body: format::encode_set(&claims, secret).into_bytes(),
                        }
                    })
                    .collect()
            }
        }
    }

    async fn post(&self, delivery: &Delivery) -> Result<(), String> {
        let content_type = match self.settings.format {
            WebhookFormat::Json => format::JSON_LINES_CONTENT_TYPE,
            WebhookFormat::Set => format::SET_CONTENT_TYPE,
        };
        let mut request = self
            .http
            .post(self.settings.url.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(secret) = &self.settings.secret {
            let timestamp = self.clock.now().timestamp();
            request = request.header(
                format::SIGNATURE_HEADER,
                format::signature(secret.expose(), timestamp, &delivery.body),
            );
        }
        let response = request
            .body(delivery.body.clone())
            .send()
            .await
            // reqwest's error names the URL, query included: name the shown one instead.
            .map_err(|e| {
                format!(
                    "POST {}: {}",
                    shown_url(&self.settings.url),
                    e.without_url()
                )
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // RFC 8935 §2.3: a SET receiver explains a refusal as {"err", "description"}.
        let text = response.text().await.unwrap_or_default();
        let detail: String = text.chars().take(200).collect();
        Err(format!(
            "{} answered {status}{}",
            shown_url(&self.settings.url),
            if detail.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", detail.trim())
            }
        ))
    }
}

enum Step {
    Delivered,
    /// Caught up.
    Idle,
    /// Another replica holds the stream.
    Standby,
}

/// How often a caught-up stream looks for new records: as often as a batch may wait, within
/// 50 ms to 1 s.
fn idle_poll(batch_wait: Duration) -> Duration {
    batch_wait.clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Where the webhook stands, for `scim-bridge status`.
#[derive(Debug, serde::Serialize)]
pub struct WebhookStatus {
    /// The URL as shown (query redacted).
    pub url: String,
    /// The last record the receiver acknowledged.
    pub cursor_seq: i64,
    /// Records written but not acknowledged.
    pub pending: i64,
    /// Seconds the oldest of them has waited.
    pub lag_seconds: Option<i64>,
    pub delivered_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The replica delivering now.
    pub leased_by: Option<String>,
    /// Failed attempts since the last acknowledged delivery, and the last one's reason.
    pub failures: i64,
    pub last_error: Option<String>,
}

impl WebhookStatus {
    pub async fn read(
        store: &Store,
        settings: &AuditWebhookSettings,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<WebhookStatus> {
        let stream = store.audit_stream();
        let lag = stream.lag(SINK).await?;
        let row = stream.cursor(SINK).await?;
        let leased_by = row
            .as_ref()
            .filter(|r| r.lease_until.is_some_and(|until| until > now))
            .and_then(|r| r.leased_by.clone());
        Ok(WebhookStatus {
            url: shown_url(&settings.url),
            cursor_seq: lag.cursor_seq,
            pending: lag.pending(),
            lag_seconds: lag.oldest_pending.map(|t| (now - t).num_seconds().max(0)),
            delivered_at: row.as_ref().and_then(|r| r.delivered_at),
            leased_by,
            failures: row.as_ref().map_or(0, |r| r.failures),
            last_error: row.and_then(|r| r.last_error),
        })
    }

    /// One line for `status`.
    pub fn summary(&self) -> String {
        let lag = match self.lag_seconds {
            Some(seconds) => format!("{} record(s) behind, oldest {seconds}s old", self.pending),
            None => "caught up".to_string(),
        };
        let by = self.leased_by.as_deref().map_or_else(
            || "no replica delivering".to_string(),
            |h| format!("delivered by {h}"),
        );
        format!("{} (cursor {}, {lag}, {by})", self.url, self.cursor_seq)
    }

    /// Whether it needs a person: the receiver keeps refusing.
    pub fn failing(&self) -> Option<String> {
        (self.failures > 0).then(|| {
            format!(
                "the audit webhook failed {} time(s) since its last delivery: {}",
                self.failures,
                self.last_error.as_deref().unwrap_or("unknown error")
            )
        })
    }
}
