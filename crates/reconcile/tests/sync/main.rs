//! The sync worker against the Coder fake over real HTTP on 127.0.0.1, with the store on SQLite
//! (a temp file) and on PostgreSQL (a fresh database per test, when reachable). Every sync rule
//! (users, offboarding, groups, roles, capabilities, drift) has a test here. The worker's tests
//! run on tokio's paused time, with the store's `ManualClock` moving along: only the test moves
//! it, so polls, probes, backoff, leases and grace periods need no sleeping (see `harness`).

// Test code: helpers may unwrap and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;
mod running;
#[path = "../../../../tests/shared/sink.rs"]
mod sink;

mod agents;
mod capabilities;
mod drift;
mod email_domains;
mod entitlements;
mod groups;
mod initial_sync;
mod orphans;
mod restore;
mod roles;
mod trust;
mod users;
mod worker;
