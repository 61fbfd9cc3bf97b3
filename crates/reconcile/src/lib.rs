//! The sync worker: converges Coder to the SCIM state held in the store.
//!
//! Level-triggered: an outbox row names WHICH resource to reconcile; [`Reconciler`] reads the
//! desired state from the store and Coder's actual state, then applies the difference, so
//! retries, duplicate rows and crashes half-way are harmless. [`Worker`] drains the outbox
//! (offboarding first, leases, backoff with full jitter, dead letters, a pause while Coder
//! refuses the token); [`drift`] compares everything in bulk and queues what differs.
//!
//! - [`Policy`]: the mapping rules (`[users]`, `[offboarding]`, `[groups]`, `[roles]`,
//!   `[agents]`, `[orphans]`).
//! - Agents (SCIM `Agent` resources and Users an `[[agents.users]]` rule marks) become Coder
//!   service accounts through the same reconcile as Users, with their own roles and an owner
//!   cascade (see `agents`).
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
//!
//! # One writer per Coder object
//!
//! The outbox holds at most one row per resource, and a row is leased to one worker at a time
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer on SQLite); a worker never runs
//! two reconciles of one resource, and cuts a reconcile off before its lease runs out. So each
//! Coder object has one writer at a time, on one replica or several:
//!
//! - a Coder user (profile, status, roles, API tokens, workspaces) is written by its SCIM
//!   User's reconcile only;
//! - a Coder group (creation, name, membership, deletion) by its SCIM Group's reconcile only.
//!   A user's reconcile that saves a mapping to a new Coder user (creation, adoption,
//!   re-creation) queues the user's groups in the transaction that saves it, and a SCIM User
//!   DELETE queues the groups that listed it, instead of writing those groups;
//! - organization membership is added by the user's reconcile; a group's reconcile adds a
//!   member to the group's organization only when Coder refuses the group PATCH for that
//!   reason. Adding is idempotent (Coder's "already a member" counts as done).
//!
//! Drift repair and the CLI queue rows; they write nothing to Coder themselves, except that
//! drift repair suspends Coder accounts no SCIM resource manages when `[orphans] action =
//! "suspend"` (no reconcile writes those: see `orphans`).
//!
//! # Level-triggered: what each path keeps true after a crash at any instant
//!
//! No effect depends on having seen a transition; the next reconcile of the resource reaches
//! the desired state from what is stored and what Coder holds.
//!
//! - **User create.** The create's username and email are stored as an intent before the
//!   request; the mapping is saved, the intent dropped and the user's groups queued in one
//!   transaction after it. If the answer is lost, the next attempt finds the user with the
//!   intent's username and email and maps it (not an adoption); otherwise it looks the email
//!   up in Coder before creating. Never created twice, never skipped. A SCIM User deleted
//!   while its create's answer was lost is found the same way and the delete policy applies.
//! - **Mapping.** A mapped Coder user that no longer exists (confirmed by listing) is
//!   provisioned again; its groups are queued with the new mapping.
//! - **Profile (username, name).** Compared with Coder's current values at each reconcile. A
//!   user the bridge created is renamed while its username is not a candidate of the desired
//!   base (an adopted one when the stored base differs from the desired one), and the
//!   candidate Coder already carries is kept, so a crash after the rename does not rename
//!   again and a crash before its record does not skip it. The mapping's username follows
//!   Coder's; a group tells managed members by Coder id, so a mapping that trails a rename
//!   still counts.
//! - **Suspend and activate.** From Coder's current status and the desired `active`.
//! - **Offboarding extras.** Every reconcile of an inactive user (or of a deleted one the
//!   policy suspends) lists its API tokens and running workspaces and removes or stops them,
//!   not only the reconcile that suspended it.
//! - **Site and organization roles.** Compared with the roles Coder reports for the user.
//! - **login_type repair.** The mismatch is read from Coder each time. Re-creation deletes the
//!   user (confirmed by listing), drops the mapping, then creates as above: a crash after the
//!   delete finds no Coder user and provisions; a crash after the create finds it by intent.
//! - **User delete.** The delete policy applies to what Coder holds: a user already gone only
//!   drops the mapping, a suspension is skipped when Coder shows the user suspended.
//! - **Group create.** Looked up by name first; a 409 on create adopts the group by name.
//! - **Group membership.** The difference between the SCIM members that have a Coder user and
//!   Coder's current members (removing only users the bridge manages). Tested end to end by
//!   SIGKILLing the real binary at random points (`tests/e2e/crash_loop.rs`).
//! - **Group rename and delete.** Compared with Coder's group; a delete answered 404 is done,
//!   and the mapping is dropped after it.
//! - **Role rules on groups.** A group's reconcile queues the users whose stored
//!   `rule_groups` differ from the group's membership; a user's reconcile computes its roles
//!   from its current groups and stores `rule_groups` last, so a crash re-queues, never skips.
//! - **Audit notes** (a pending email, a login_type flag) are deduplicated against the stored
//!   last-applied state; they are records, not effects.

pub mod agent_policy;
pub mod agent_tokens;
mod agents;
pub mod backoff;
pub mod capabilities;
pub mod desired;
pub mod diff;
mod directory;
pub mod drift;
mod error;
pub mod explain;
mod groups;
pub mod naming;
pub mod observer;
pub mod orphans;
pub mod policy;
mod reconciler;
pub mod status;
mod users;
mod worker;

pub use agents::{ISSUE_OWNERS_INACTIVE, ISSUE_SERVICE_ACCOUNTS_UNLICENSED};
pub use backoff::Backoff;
pub use capabilities::CapabilityReport;
pub use diff::DriftKind;
pub use drift::{DriftItem, DriftPlan, DriftProgress};
pub use error::{ReconcileError, ReconcileResult};
pub use groups::ISSUE_GROUP_NAME_CONFLICT;
pub use observer::{MemoryObserver, NoObserver, Recorded, SyncObserver, WorkerWait};
pub use policy::{Policy, PolicyError};
pub use reconciler::{AUDIT_ACTOR, Reconciler, Report, SyncStore};
pub use status::{PauseCause, StatusHandle, SyncStatus};
pub use users::{
    ISSUE_ADOPTION_REFUSED, ISSUE_BRIDGE_ACCOUNT, ISSUE_COULD_NOT_SUSPEND, ISSUE_DELETE_BLOCKED,
    ISSUE_EMAIL_CONFLICT, ISSUE_EMAIL_OUTSIDE_DOMAINS, ISSUE_EMAIL_PENDING,
    ISSUE_LOGIN_TYPE_MISMATCH, ISSUE_NOT_PROVISIONABLE, ISSUE_USERNAME_CONFLICT,
};
pub use worker::{Worker, WorkerConfig};
