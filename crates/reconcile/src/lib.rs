//! The sync worker: converges Coder to the SCIM state held in the store (issue 4).
//!
//! Level-triggered: an outbox row names WHICH resource to reconcile; [`Reconciler`] reads the
//! desired state from the store and Coder's actual state, then applies the difference, so
//! retries, duplicate rows and crashes half-way are harmless. [`Worker`] drains the outbox
//! (offboarding first, leases, backoff with full jitter, dead letters, a pause while Coder
//! refuses the token); [`drift`] compares everything in bulk and queues what differs.
//!
//! - [`Policy`]: the mapping rules (`[users]`, `[offboarding]`, `[groups]`, `[roles]`).
//! - [`capabilities::check`]: what the Coder deployment offers and which of its own features
//!   would undo the bridge's work.
//! - New users: Coder's users are listed once and an email the listing lacks is created
//!   without a lookup; Coder's 409 on a taken email is the check (see `directory`).
//! - [`StatusHandle`]: the state `/readyz` and `scim-bridge status` show.
//! - [`SyncObserver`]: measurements for `/metrics`.
//!
//! The pure parts (desired state, naming, diffs, role computation, backoff) have no I/O and
//! carry most unit and property tests; the rest is tested against the Coder fake on SQLite and
//! PostgreSQL (`tests/sync`).

pub mod backoff;
pub mod capabilities;
pub mod desired;
pub mod diff;
mod directory;
pub mod drift;
mod error;
mod groups;
pub mod naming;
pub mod observer;
pub mod policy;
mod reconciler;
pub mod status;
mod users;
mod worker;

pub use backoff::Backoff;
pub use capabilities::CapabilityReport;
pub use diff::DriftKind;
pub use drift::{DriftItem, DriftPlan, DriftProgress};
pub use error::{ReconcileError, ReconcileResult};
pub use groups::ISSUE_GROUP_NAME_CONFLICT;
pub use observer::{MemoryObserver, NoObserver, SyncObserver};
pub use policy::{Policy, PolicyError};
pub use reconciler::{AUDIT_ACTOR, Reconciler, Report};
pub use status::{PauseCause, StatusHandle, SyncStatus};
pub use users::{
    ISSUE_BRIDGE_ACCOUNT, ISSUE_COULD_NOT_SUSPEND, ISSUE_DELETE_BLOCKED, ISSUE_EMAIL_CONFLICT,
    ISSUE_EMAIL_PENDING, ISSUE_LOGIN_TYPE_MISMATCH, ISSUE_NOT_PROVISIONABLE,
    ISSUE_USERNAME_CONFLICT,
};
pub use worker::{Worker, WorkerConfig};
