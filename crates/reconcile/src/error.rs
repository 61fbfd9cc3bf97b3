//! The crate's one error type.

use coder::CoderError;
use std::time::Duration;
use store::StoreError;

/// Why a reconcile (or a worker step) did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Coder failed or refused a call. Its class (retryable, auth, permanent) decides what the
    /// worker does with the outbox row.
    #[error(transparent)]
    Coder(#[from] CoderError),
    /// The bridge's own database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The resource cannot be finished yet because something it needs is not in Coder yet (a
    /// group member whose Coder user is still queued); retried with backoff.
    #[error("waiting: {0}")]
    Waiting(String),
    /// The desired state cannot be applied as configured (e.g. an organization named in the
    /// policy does not exist in Coder).
    #[error("cannot apply: {0}")]
    Unappliable(String),
}

/// Results of this crate.
pub type ReconcileResult<T> = Result<T, ReconcileError>;

impl ReconcileError {
    /// Coder refused the bridge's credentials: pause the worker, spend no retries.
    pub fn is_auth(&self) -> bool {
        matches!(self, ReconcileError::Coder(e) if e.is_auth())
    }

    /// The wait Coder asked for (`Retry-After` on a 429 or 503).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ReconcileError::Coder(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Coder answered 429: the row is deferred, not failed.
    pub fn is_rate_limited(&self) -> bool {
        matches!(
            self,
            ReconcileError::Coder(CoderError::Retryable {
                status: Some(429),
                ..
            })
        )
    }
}
