//! Integration tests of the protocol core, in one test binary: IdP fixtures, PATCH properties,
//! projection, sorting and paging.

// Test helpers outside #[test] functions may panic on broken fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fixtures;
mod large_groups;
mod patch_properties;
mod query;
