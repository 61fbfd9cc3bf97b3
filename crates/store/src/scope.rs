//! What a credential may do. Every IdP credential (a bridge token, an imported token, a JWT, an
//! OAuth client) carries a set of scopes; the HTTP service refuses a request whose scope is
//! missing.

use std::fmt;
use std::str::FromStr;

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read SCIM resources (`GET`, `POST /.search`).
    Read,
    /// Create, change and delete SCIM resources (`POST`, `PUT`, `PATCH`, `DELETE`, each `/Bulk`
    /// write).
    Write,
}

impl Scope {
    /// Every scope, in display order.
    pub const ALL: [Scope; 2] = [Scope::Read, Scope::Write];

    /// The scope's name as tokens, JWTs and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "scim:read",
            Scope::Write => "scim:write",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Read => 1,
            Scope::Write => 2,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: the scopes are scim:read and scim:write")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Scope, UnknownScope> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_string()))
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// No scope at all.
    pub const NONE: Scopes = Scopes(0);
    /// Read only.
    pub const READ: Scopes = Scopes(1);
    /// Read and write: what a credential gets when none is named.
    pub const ALL: Scopes = Scopes(3);

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The set with `scope` added.
    pub fn with(self, scope: Scope) -> Scopes {
        Scopes(self.0 | scope.bit())
    }

    /// The scopes in the set, in display order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Whether every scope of `other` is in the set.
    pub fn contains_all(self, other: Scopes) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromStr for Scopes {
    type Err = UnknownScope;

    /// Scope names separated by spaces or commas (`scim:read scim:write`, `scim:read,scim:write`),
    /// as OAuth's `scope` parameter and the CLI write them.
    fn from_str(s: &str) -> Result<Scopes, UnknownScope> {
        s.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .try_fold(Scopes::NONE, |set, part| Ok(set.with(part.parse()?)))
    }
}

impl fmt::Display for Scopes {
    /// Space-separated, as OAuth's `scope` claim.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_from_spaces_or_commas_and_print_in_order() {
        let both: Scopes = "scim:write, scim:read".parse().unwrap();
        assert_eq!(both, Scopes::ALL);
        assert_eq!(both.to_string(), "scim:read scim:write");
        let read: Scopes = "scim:read".parse().unwrap();
        assert_eq!(read, Scopes::READ);
        assert!(read.contains(Scope::Read));
        assert!(!read.contains(Scope::Write));
        assert_eq!("".parse::<Scopes>().unwrap(), Scopes::NONE);
        assert_eq!(
            "scim:admin".parse::<Scopes>().unwrap_err(),
            UnknownScope("scim:admin".into())
        );
    }
}
