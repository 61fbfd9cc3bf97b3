//! The storage suite. Every test runs against SQLite (a temp file) and against PostgreSQL (a
//! fresh database per test) when it is reachable; see `harness`.

// Helpers outside #[test] functions may unwrap and panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;
#[path = "../../../../tests/shared/tls_front.rs"]
mod tls_front;

mod agent_owners;
mod audit;
mod audit_stream;
mod audit_trail;
mod coder;
mod copy;
mod files;
mod lifecycle;
mod oauth_clients;
mod outbox;
mod paging;
mod resources;
mod tls;
mod tokens;
