//! Readiness beyond the database: whether Coder is reachable and accepts the bridge's token.
//! The worker knows that; it hands the server a [`ReadinessProbe`].

use futures::future::BoxFuture;

/// What the probe reports about Coder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoderReadiness {
    /// Whether the bridge can converge Coder now.
    pub ready: bool,
    /// One line for operators: why it is (not) ready.
    pub detail: String,
    /// Conditions that do not block readiness but need an operator (e.g. a token that expires
    /// soon, a non-Premium deployment with group mirroring on).
    pub warnings: Vec<String>,
}

/// Asked on every `GET /readyz`; should answer from state the worker keeps rather than call
/// Coder each time.
pub trait ReadinessProbe: Send + Sync + 'static {
    /// The current state of the Coder side.
    fn coder(&self) -> BoxFuture<'_, CoderReadiness>;
}

/// The probe when no Coder URL is configured: SCIM changes are stored and queued, nothing is
/// synced, and the service is ready (that is the documented mode), with a warning.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoderNotConfigured;

impl ReadinessProbe for CoderNotConfigured {
    fn coder(&self) -> BoxFuture<'_, CoderReadiness> {
        Box::pin(async {
            CoderReadiness {
                ready: true,
                detail: "Coder is not configured".into(),
                warnings: vec![
                    "no Coder URL is set: SCIM changes are stored and queued but not synced".into(),
                ],
            }
        })
    }
}
