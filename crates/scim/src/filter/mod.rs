//! SCIM filters (RFC 7644 §3.4.2.2): parsing, printing, evaluation and the part the store can
//! answer from indexed columns.
//!
//! # Why our own winnow parser and not `scim_v2`
//!
//! `scim_v2` 1.0.0 (MIT) has a complete LALRPOP grammar for filters and PATCH paths with depth
//! and term limits, but adopting it would cost more than the ~400 lines of grammar here:
//! - its AST (n-ary `and`/`or`, a separate `ValFilter` type, string-typed values) is not the one
//!   the store pushes down to SQL, so every filter would be converted, and its User model drops
//!   extension attributes, so only the grammar would be used;
//! - its errors are LALRPOP token errors, while an IdP needs `invalidFilter` with a position
//!   and what was expected;
//! - the leniencies real IdPs need — unquoted values from the Microsoft Postman collection,
//!   Entra's `emails[type eq "work"].value eq "x"` — would mean forking the grammar.
//!
//! So the grammar is ours, on `winnow` (already a dependency): see [`grammar`](self) internals.
//!
//! # Leniencies and decisions
//! - Operators, `and`/`or`/`not`, `true`/`false`/`null` and attribute names are case-insensitive
//!   (`USERNAME EQ "x"`, `name.FamilyName`).
//! - An unquoted value that is not `true`/`false`/`null` or a JSON number is a string
//!   (`name.FamilyName eq Employee`, sent by the Microsoft SCIM Postman collection).
//! - `attr[valFilter].sub op value` (Entra) is read as `attr[valFilter and sub op value]`.
//! - Inside `[ ]` only bare sub-attribute names are allowed, and `[ ]` do not nest: SCIM has no
//!   complex attributes inside complex attributes (RFC 7643 §2.3.8).
//! - Bounds: [`MAX_DEPTH`] nested `(`, `not (` and `[`, and [`MAX_TERMS`] comparisons; beyond them
//!   the filter is rejected with `invalidFilter`, so recursion and work stay bounded.
//!
//! Evaluation rules are documented in [`eval`].

pub mod ast;
mod display;
pub mod eval;
pub(crate) mod grammar;
pub mod index;

pub use ast::{AttrPath, CompValue, CompareOp, Filter};
pub use eval::{matches, matches_element, validate};
pub use index::{IndexedColumn, IndexedPredicate, indexed};

use crate::error::{ScimError, ScimResult};

/// The deepest nesting of `(`, `not (` and `[` a filter may have.
pub const MAX_DEPTH: usize = 32;

/// The most comparisons (`op value` or `pr`) a filter may have.
pub const MAX_TERMS: usize = 256;

/// Parse a filter. A filter that does not follow the grammar, or exceeds [`MAX_DEPTH`] or
/// [`MAX_TERMS`], is an `invalidFilter` error whose detail gives the column and byte offset and
/// what was expected there.
pub fn parse(input: &str) -> ScimResult<Filter> {
    grammar::Grammar::new(input)
        .filter()
        .map_err(|e| ScimError::invalid_filter(format!("invalid filter {e}")))
}

#[cfg(test)]
pub(crate) mod tests;
