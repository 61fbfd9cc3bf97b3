//! SCIM filters (RFC 7644 §3.4.2.2).

pub mod ast;

pub use ast::{AttrPath, CompValue, CompareOp, Filter};
