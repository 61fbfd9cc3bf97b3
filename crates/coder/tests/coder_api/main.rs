//! One test binary for the Coder client: swagger conformance and behaviour against the fake.

// Test helpers outside #[test] functions fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod against_fake;
#[path = "../../../../tests/shared/sink.rs"]
mod sink;
mod swagger;
#[path = "../../../../tests/shared/tls_front.rs"]
mod tls_front;
mod transport;
