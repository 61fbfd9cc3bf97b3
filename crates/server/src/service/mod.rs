//! What the handlers call: one function per action, free of HTTP.

pub mod bulk;
pub mod catalogs;
pub mod discovery;
pub mod oauth;
pub mod resources;
