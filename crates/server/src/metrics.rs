//! The bridge's Prometheus metrics (`GET /metrics`), with the families `docs/CONFIGURATION.md`
//! lists. The HTTP ones are recorded by this crate; the others are recorded by the worker and
//! the binary through the methods here.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    endpoint: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CoderLabels {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    /// `idp` (a bearer token IdPs present) or `coder` (the bridge's own Coder token).
    kind: String,
    name: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request latencies: 0.5 ms to about 8 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// Offboarding: 0.1 s to about 1.8 h (Coder may be down for a while).
fn offboarding_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 17))
}

/// The families, each once: its field, type and constructor, then its name and help as
/// `/metrics` shows them. Registered in this order.
macro_rules! families {
    ($($field:ident: $ty:ty = $new:expr, $name:literal, $help:literal;)*) => {
        struct Families {
            registry: Registry,
            $($field: $ty,)*
            token_expiry_shown: std::sync::Mutex<Vec<TokenLabels>>,
        }

        impl Families {
            fn new() -> Families {
                let mut registry = Registry::default();
                $(
                    let $field: $ty = $new;
                    registry.register($name, $help, $field.clone());
                )*
                Families {
                    registry,
                    $($field,)*
                    token_expiry_shown: std::sync::Mutex::default(),
                }
            }
        }
    };
}

families! {
    http_requests: Family<HttpLabels, Counter> = Family::default(), "scim_bridge_http_requests", "SCIM requests";
    http_duration: HistogramFamily<EndpointLabels> = Family::new_with_constructor(latency_histogram), "scim_bridge_http_request_duration_seconds", "SCIM request latency";
    outbox_depth: Gauge = Gauge::default(), "scim_bridge_outbox_depth", "Outbox rows waiting (not dead)";
    outbox_oldest_age: Gauge<f64, AtomicU64> = Gauge::default(), "scim_bridge_outbox_oldest_age_seconds", "Age of the oldest waiting outbox row";
    outbox_retries: Counter = Counter::default(), "scim_bridge_outbox_retries", "Failed attempts that were rescheduled";
    ops_store_reads: Counter = Counter::default(), "scim_bridge_ops_store_reads", "Reads of the store made for /metrics and /readyz (at most one per 5 s)";
    outbox_dead_letters: Gauge = Gauge::default(), "scim_bridge_outbox_dead_letters", "Dead-lettered outbox rows";
    coder_requests: Family<CoderLabels, Counter> = Family::default(), "scim_bridge_coder_requests", "Calls to Coder";
    coder_duration: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram), "scim_bridge_coder_request_duration_seconds", "Coder call latency";
    coder_auth_ok: Gauge = Gauge::default(), "scim_bridge_coder_auth_ok", "1 while Coder accepts the bridge's token, 0 when it answers 401/403";
    drift_found: Family<KindLabels, Counter> = Family::default(), "scim_bridge_drift_found", "Differences found by drift repair";
    offboarding: Histogram = offboarding_histogram(), "scim_bridge_offboarding_duration_seconds", "From the SCIM deactivation being stored to Coder acknowledging the suspension";
    login_type_mismatches: Gauge = Gauge::default(), "scim_bridge_login_type_mismatches", "Managed users whose Coder login_type differs from the policy";
    users_outside_email_domains: Gauge = Gauge::default(), "scim_bridge_users_outside_email_domains", "Users whose email is outside [users] allowed_email_domains (Coder refuses their OIDC logins)";
    worker_concurrency_limit: Gauge = Gauge::default(), "scim_bridge_worker_concurrency_limit", "Resources the worker reconciles at once now (adapts to Coder's 429s)";
    orphan_accounts: Gauge = Gauge::default(), "scim_bridge_orphan_accounts", "Coder accounts no SCIM resource manages, at the last drift repair (the bridge's own and allow-listed ones included)";
    orphans_suspended: Counter = Counter::default(), "scim_bridge_orphans_suspended", "Coder accounts no SCIM resource manages that drift repair suspended ([orphans] action = \"suspend\")";
    build_info: Family<BuildLabels, Gauge> = Family::default(), "scim_bridge_build_info", "The running build: its version and commit as labels (always 1)";
    token_expiry: Family<TokenLabels, Gauge> = Family::default(), "scim_bridge_token_expiry_timestamp_seconds", "When each token that expires does so (Unix time); tokens without an expiry are absent";
    audit_webhook_delivered: Counter = Counter::default(), "scim_bridge_audit_webhook_delivered", "Audit records the SIEM webhook acknowledged (a record sent again counts again)";
    audit_webhook_failures: Counter = Counter::default(), "scim_bridge_audit_webhook_failures", "Failed audit webhook deliveries (each is retried from the same record)";
    audit_webhook_lag: Gauge<f64, AtomicU64> = Gauge::default(), "scim_bridge_audit_webhook_lag_seconds", "Age of the oldest audit record the SIEM webhook has not acknowledged (0 when caught up)";
}

/// The metric registry and its families. Cheap to clone; every clone records into the same
/// registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Families>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry holding every `scim_bridge_*` family.
    pub fn new() -> Metrics {
        Metrics {
            inner: Arc::new(Families::new()),
        }
    }

    /// Audit records the SIEM webhook acknowledged.
    pub fn inc_audit_webhook_delivered(&self, records: u64) {
        self.inner.audit_webhook_delivered.inc_by(records);
    }

    /// A failed audit webhook delivery.
    pub fn inc_audit_webhook_failures(&self) {
        self.inner.audit_webhook_failures.inc();
    }

    /// How long the oldest unacknowledged audit record has waited.
    pub fn set_audit_webhook_lag(&self, seconds: f64) {
        self.inner.audit_webhook_lag.set(seconds);
    }

    /// The registry, for callers that encode it themselves.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The Prometheus (OpenMetrics) text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }

    /// One SCIM request: `endpoint` is the route pattern (`/scim/v2/Users/{id}`), never the raw
    /// path, so the label set stays small.
    pub fn record_http(&self, endpoint: &str, method: &str, status: u16, seconds: f64) {
        let m = &self.inner;
        m.http_requests
            .get_or_create(&HttpLabels {
                endpoint: endpoint.into(),
                method: method.into(),
                status: status.to_string(),
            })
            .inc();
        m.http_duration
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.into(),
                method: method.into(),
            })
            .observe(seconds);
    }

    /// The outbox gauges from the store's statistics.
    pub fn set_outbox(&self, stats: &store::OutboxStats) {
        let m = &self.inner;
        m.outbox_depth.set(stats.depth);
        m.outbox_dead_letters.set(stats.dead);
        let age = stats
            .oldest_age
            .map_or(0.0, |age| age.num_milliseconds() as f64 / 1000.0);
        m.outbox_oldest_age.set(age.max(0.0));
    }

    /// `/metrics` or `/readyz` read the store (their cache had expired).
    pub fn inc_ops_store_reads(&self) {
        self.inner.ops_store_reads.inc();
    }

    /// A failed outbox attempt that was rescheduled.
    pub fn inc_outbox_retries(&self) {
        self.inner.outbox_retries.inc();
    }

    /// One call to Coder: `route` is the route template, `status` the HTTP status or an error
    /// class (`timeout`, `connect`).
    pub fn record_coder_request(&self, route: &str, status: &str, seconds: f64) {
        let m = &self.inner;
        m.coder_requests
            .get_or_create(&CoderLabels {
                route: route.into(),
                status: status.into(),
            })
            .inc();
        m.coder_duration
            .get_or_create(&RouteLabels {
                route: route.into(),
            })
            .observe(seconds);
    }

    /// Whether Coder accepts the bridge's token.
    pub fn set_coder_auth_ok(&self, ok: bool) {
        self.inner.coder_auth_ok.set(i64::from(ok));
    }

    /// Drift repair found a difference of `kind`.
    pub fn inc_drift_found(&self, kind: &str) {
        self.inner
            .drift_found
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// A deactivation reached Coder `seconds` after it was stored.
    pub fn observe_offboarding(&self, seconds: f64) {
        self.inner.offboarding.observe(seconds);
    }

    /// Managed users whose Coder login type differs from the policy.
    pub fn set_login_type_mismatches(&self, count: i64) {
        self.inner.login_type_mismatches.set(count);
    }

    /// Users whose email is outside `[users] allowed_email_domains`.
    pub fn set_users_outside_email_domains(&self, count: i64) {
        self.inner.users_outside_email_domains.set(count);
    }

    /// The worker's adaptive concurrency limit.
    pub fn set_worker_concurrency_limit(&self, limit: i64) {
        self.inner.worker_concurrency_limit.set(limit);
    }

    /// Coder accounts no SCIM resource manages, as the last drift repair counted.
    pub fn set_orphan_accounts(&self, count: i64) {
        self.inner.orphan_accounts.set(count);
    }

    /// Drift repair suspended an orphaned Coder account.
    pub fn inc_orphans_suspended(&self) {
        self.inner.orphans_suspended.inc();
    }

    /// `scim_bridge_build_info{version, commit} 1`, set once at start-up.
    pub fn set_build_info(&self, version: &str, commit: &str) {
        self.inner
            .build_info
            .get_or_create(&BuildLabels {
                version: version.into(),
                commit: commit.into(),
            })
            .set(1);
    }

    /// The expiry of every token of `kind` that has one (`name`, Unix time); tokens of that
    /// kind not listed (revoked, or no expiry) disappear from the family.
    pub fn set_token_expiries(&self, kind: &str, expiries: &[(String, i64)]) {
        let family = &self.inner.token_expiry;
        // prometheus-client cannot list a family's label sets: remember what was set.
        let mut shown = self
            .inner
            .token_expiry_shown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shown.retain(|labels| {
            let stays = labels.kind != kind;
            if !stays {
                family.remove(labels);
            }
            stays
        });
        for (name, at) in expiries {
            let labels = TokenLabels {
                kind: kind.into(),
                name: name.clone(),
            };
            family.get_or_create(&labels).set(*at);
            shown.push(labels);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_family_is_rendered() {
        let metrics = Metrics::new();
        metrics.record_http("/scim/v2/Users", "GET", 200, 0.002);
        metrics.record_coder_request("/api/v2/users", "200", 0.05);
        metrics.inc_drift_found("user");
        metrics.set_coder_auth_ok(true);
        let text = metrics.render();
        for family in [
            "scim_bridge_http_requests_total",
            "scim_bridge_http_request_duration_seconds",
            "scim_bridge_outbox_depth",
            "scim_bridge_outbox_oldest_age_seconds",
            "scim_bridge_outbox_retries_total",
            "scim_bridge_ops_store_reads_total",
            "scim_bridge_outbox_dead_letters",
            "scim_bridge_coder_requests_total",
            "scim_bridge_coder_request_duration_seconds",
            "scim_bridge_coder_auth_ok",
            "scim_bridge_drift_found_total",
            "scim_bridge_offboarding_duration_seconds",
            "scim_bridge_login_type_mismatches",
            "scim_bridge_users_outside_email_domains",
            "scim_bridge_worker_concurrency_limit",
            "scim_bridge_orphan_accounts",
            "scim_bridge_orphans_suspended_total",
            "scim_bridge_build_info",
            "scim_bridge_token_expiry_timestamp_seconds",
        ] {
            assert!(text.contains(family), "{family} missing from\n{text}");
        }
        assert!(text.contains(r#"scim_bridge_http_requests_total{endpoint="/scim/v2/Users",method="GET",status="200"} 1"#));
        assert!(text.contains("scim_bridge_coder_auth_ok 1"));
    }

    #[test]
    fn build_info_and_token_expiries_are_labelled_gauges() {
        let metrics = Metrics::new();
        metrics.set_build_info("0.1.0", "0123456789ab");
        metrics.set_token_expiries(
            "idp",
            &[
                ("okta".into(), 1_800_000_000),
                ("entra".into(), 1_900_000_000),
            ],
        );
        metrics.set_token_expiries("coder", &[("bridge".into(), 1_700_000_000)]);
        let text = metrics.render();
        for line in [
            r#"scim_bridge_build_info{version="0.1.0",commit="0123456789ab"} 1"#,
            r#"scim_bridge_token_expiry_timestamp_seconds{kind="idp",name="okta"} 1800000000"#,
            r#"scim_bridge_token_expiry_timestamp_seconds{kind="idp",name="entra"} 1900000000"#,
            r#"scim_bridge_token_expiry_timestamp_seconds{kind="coder",name="bridge"} 1700000000"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // A token revoked since leaves the family; the other kind is left alone.
        metrics.set_token_expiries("idp", &[("okta".into(), 1_800_000_000)]);
        let text = metrics.render();
        assert!(!text.contains(r#"name="entra""#), "{text}");
        assert!(
            text.contains(r#"name="okta""#) && text.contains(r#"name="bridge""#),
            "{text}"
        );
    }
}
