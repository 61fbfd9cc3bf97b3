//! The SCIM 2.0 protocol core of scim-bridge: resource model, schemas, filters, PATCH, the Okta
//! and Entra dialects, projection, sorting and paging, and SCIM error values.
//!
//! No I/O and no async: everything here is a pure function of its inputs, which is why most of
//! the bridge's tests, property tests and fuzz targets live in this crate.

pub mod error;
pub mod filter;
pub mod schema;

pub use error::{ScimError, ScimResult, ScimType};
pub use schema::{Registry, ResourceKind};
