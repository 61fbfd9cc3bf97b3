//! The worker's state as `/readyz` and `scim-bridge status` show it, shared between the worker
//! and the HTTP server through a cheap handle.

use crate::capabilities::CapabilityReport;
use serde::Serialize;
use std::sync::{Arc, RwLock};

/// Why the worker stopped claiming work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseCause {
    /// Coder refused the bridge's token (401/403): an operator must fix the token.
    TokenRefused,
    /// Coder as a whole did not answer (refused or dropped connections, timeouts, 502/503/504):
    /// it resumes by itself.
    CoderUnavailable,
    /// Coder, or a proxy in front of it, answered a redirect, which the client does not follow
    /// so the token never reaches another host: an operator must fix the Coder URL.
    Redirected,
}

/// What the bridge knows about its Coder connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncStatus {
    /// Whether Coder answered the last call (None: not tried yet).
    pub coder_reachable: Option<bool>,
    /// Whether Coder accepted the bridge's token at the last call that needed it.
    pub coder_authorised: Option<bool>,
    /// The worker stopped applying changes because Coder refused its credentials, is
    /// unavailable or answered a redirect; it resumes by itself once a probe succeeds.
    pub paused: bool,
    /// Which of these.
    pub pause_cause: Option<PauseCause>,
    /// Why it paused (Coder's message or the connection error).
    pub pause_reason: Option<String>,
    /// The last capability and conflict check.
    pub capabilities: Option<CapabilityReport>,
    /// Managed users whose Coder login_type differs from the policy (open
    /// `login_type_mismatch` issues, with the manual fix in `scim-bridge status`).
    pub login_type_mismatches: u64,
    /// How many resources the worker reconciles at once now (it adapts; `None` before it runs).
    pub concurrency_limit: Option<usize>,
    /// Coder accounts no SCIM resource manages that the last drift repair left alone because
    /// `[orphans] action = "report"`.
    pub orphans_reported: u64,
}

impl SyncStatus {
    /// Whether `/readyz` should pass: Coder reachable, the token accepted, the worker running.
    /// Unknown counts as not ready only once a check has failed.
    pub fn is_ready(&self) -> bool {
        self.coder_reachable != Some(false) && self.coder_authorised != Some(false) && !self.paused
    }

    /// Every warning to show an operator: the capability report's plus the worker's own.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self
            .capabilities
            .as_ref()
            .map(|c| c.warnings.clone())
            .unwrap_or_default();
        if self.paused {
            warnings.push(match self.pause_cause {
                Some(PauseCause::Redirected) => format!(
                    "the worker is paused: {}; it resumes when Coder answers without a redirect",
                    self.pause_reason.as_deref().unwrap_or("Coder answered a redirect")
                ),
                Some(PauseCause::CoderUnavailable) => format!(
                    "the worker is paused: Coder is unavailable ({}); changes are queued and applied, offboarding first, as soon as Coder answers again",
                    self.pause_reason.as_deref().unwrap_or("no answer")
                ),
                _ => format!(
                    "the worker is paused: Coder refused the bridge's token ({}); it resumes when Coder accepts it",
                    self.pause_reason.as_deref().unwrap_or("401/403")
                ),
            });
        }
        if self.login_type_mismatches > 0 {
            warnings.push(format!(
                "{} managed user(s) have a Coder login_type that differs from the policy; see `scim-bridge status` for the fix",
                self.login_type_mismatches
            ));
        }
        if self.orphans_reported > 0 {
            warnings.push(format!(
                "{} Coder account(s) are not managed by any SCIM resource ([orphans] action = \"report\"); `scim-bridge report access` lists them",
                self.orphans_reported
            ));
        }
        warnings
    }
}

/// A shared, cloneable view of [`SyncStatus`].
#[derive(Debug, Clone, Default)]
pub struct StatusHandle(Arc<RwLock<SyncStatus>>);

impl StatusHandle {
    /// A copy of the current status.
    pub fn snapshot(&self) -> SyncStatus {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Change the status in place.
    pub fn update(&self, change: impl FnOnce(&mut SyncStatus)) {
        change(
            &mut self
                .0
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }
}
