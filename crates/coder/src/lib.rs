//! Typed client for the Coder REST API, as used by scim-bridge's sync worker.
//!
//! - [`CoderClient`]: one method per Coder call the bridge makes; the routes are listed as data
//!   in [`ROUTES`] and checked against Coder's `swagger.json` (`api/swagger.json`) by tests.
//! - [`CoderError`]: every failure classified as retryable, auth, unlicensed or permanent.
//! - Request/response bodies in [`types`], named after `codersdk.*` definitions.
//!
//! The Coder behaviour this client relies on is reproduced by `coder-fake` and checked against
//! the client in `tests/coder_api/against_fake.rs`.

#![warn(missing_docs)]

mod client;
mod config;
mod error;
pub mod routes;
pub mod types;

pub use client::{
    BYPASS_RATE_LIMIT_HEADER, CallObserver, CallRecord, CoderClient, Identity,
    SESSION_TOKEN_HEADER, UserQuery,
};
pub use config::{CoderConfig, SessionToken};
pub use error::CoderError;
pub use routes::{Method, ROUTES, Route};
pub use types::is_valid_username;
