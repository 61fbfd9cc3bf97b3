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
    /// The reconcile was cut off before its lease ran out (each Coder call answered, but all
    /// of them together took too long): a failure of this resource, retried with backoff.
    #[error("reconcile took longer than {0:?}")]
    TookTooLong(Duration),
}

/// Results of this crate.
pub type ReconcileResult<T> = Result<T, ReconcileError>;

impl ReconcileError {
    /// Coder refused the bridge's credentials: pause the worker, spend no retries.
    pub fn is_auth(&self) -> bool {
        matches!(self, ReconcileError::Coder(e) if e.is_auth())
    }

    /// Every call will fail this way until an operator fixes the bridge's Coder token or URL
    /// (401/403, a redirect).
    pub fn needs_operator(&self) -> bool {
        matches!(self, ReconcileError::Coder(e) if e.needs_operator())
    }

    /// The wait Coder asked for (`Retry-After` on a 429 or 503).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ReconcileError::Coder(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Coder as a whole is unavailable, not this resource: no HTTP answer came (connection
    /// refused or reset, timeout) or a gateway answered 502, 503 or 504. The worker pauses and
    /// probes Coder; the row spends no attempt.
    pub fn is_coder_unavailable(&self) -> bool {
        matches!(
            self,
            ReconcileError::Coder(CoderError::Retryable {
                status: None | Some(502..=504),
                ..
            })
        )
    }

    /// The bridge's database is away (see [`StoreError::is_unavailable`]): the row is put back,
    /// not failed.
    pub fn is_store_unavailable(&self) -> bool {
        matches!(self, ReconcileError::Store(e) if e.is_unavailable())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn retryable(status: Option<u16>, retry_after: Option<Duration>) -> ReconcileError {
        ReconcileError::Coder(CoderError::Retryable {
            reason: "r".into(),
            status,
            retry_after,
        })
    }

    #[test]
    fn outages_are_told_apart_from_failures_of_the_row() {
        for status in [None, Some(502), Some(503), Some(504)] {
            assert!(retryable(status, None).is_coder_unavailable(), "{status:?}");
        }
        // A 500 is Coder failing this request; a 429 is rate limiting, held by its own gate.
        for status in [Some(500), Some(429)] {
            assert!(
                !retryable(status, None).is_coder_unavailable(),
                "{status:?}"
            );
        }
        assert!(retryable(Some(429), Some(Duration::from_secs(3))).is_rate_limited());
        let auth = ReconcileError::Coder(CoderError::Auth {
            status: 401,
            message: "m".into(),
        });
        assert!(auth.is_auth() && !auth.is_coder_unavailable());
        assert!(!ReconcileError::TookTooLong(Duration::from_secs(90)).is_coder_unavailable());
        assert!(!ReconcileError::Waiting("w".into()).is_coder_unavailable());
    }
}
