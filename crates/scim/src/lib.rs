//! The SCIM 2.0 protocol core of scim-bridge: resource model, schemas, filters, PATCH, the Okta
//! and Entra dialects, projection, sorting and paging, SCIM error values, and stored resources
//! rendered as SCIM JSON.
//!
//! No I/O and no async: everything here is a pure function of its inputs, which is why most of
//! the bridge's tests, property tests and fuzz targets live in this crate.

pub mod catalog;
pub mod dialect;
pub mod entitlements;
pub mod error;
pub mod filter;
pub mod patch;
pub mod path;
pub mod projection;
pub mod query;
pub mod record;
pub mod render;
pub mod resource;
pub mod roles;
pub mod schema;

pub use error::{ScimError, ScimResult, ScimType};
pub use filter::Filter;
pub use path::PatchPath;
pub use record::StoredResource;
pub use schema::{Registry, ResourceKind};
