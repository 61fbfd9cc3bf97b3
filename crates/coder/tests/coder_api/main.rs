//! One test binary for the Coder client: swagger conformance and behaviour against the fake.

// Test helpers outside #[test] functions fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod against_fake;
mod swagger;
