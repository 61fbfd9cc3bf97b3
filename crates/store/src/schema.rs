//! Where a database's schema stands against the migrations this build carries. Only `migrate`,
//! `serve` and `demo` change a schema; every other command reads this and refuses to run on a
//! schema it was not built for, instead of migrating behind the operator's back.

use std::fmt;

/// The database's schema compared with this build's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaStatus {
    /// Every migration of this build is applied unchanged, and no other.
    Current,
    /// These migrations of this build are not applied yet (all of them on a new database).
    Behind {
        /// Versions not applied, in order.
        pending: Vec<i64>,
    },
    /// The database holds migrations this build does not know: a newer release migrated it.
    Ahead {
        /// Versions applied that this build does not carry, in order.
        unknown: Vec<i64>,
    },
    /// A migration of this version is applied with other contents than this build's.
    Changed {
        /// Versions whose checksums differ, in order.
        versions: Vec<i64>,
    },
}

/// The versions of the `migrations` (`(version, checksum)`) that `keep` selects, in order.
fn versions_where<C>(migrations: &[(i64, C)], keep: impl Fn(&(i64, C)) -> bool) -> Vec<i64> {
    let mut versions: Vec<i64> = migrations
        .iter()
        .filter(|migration| keep(migration))
        .map(|(version, _)| *version)
        .collect();
    versions.sort_unstable();
    versions
}

impl SchemaStatus {
    /// Compares applied migrations `(version, checksum)` with this build's.
    pub(crate) fn compare(known: &[(i64, &[u8])], applied: &[(i64, Vec<u8>)]) -> SchemaStatus {
        let unknown = versions_where(applied, |(v, _)| !known.iter().any(|(k, _)| k == v));
        if !unknown.is_empty() {
            return SchemaStatus::Ahead { unknown };
        }
        let versions = versions_where(known, |(v, sum)| {
            applied.iter().any(|(a, s)| a == v && s.as_slice() != *sum)
        });
        if !versions.is_empty() {
            return SchemaStatus::Changed { versions };
        }
        let pending = versions_where(known, |(v, _)| !applied.iter().any(|(a, _)| a == v));
        if pending.is_empty() {
            SchemaStatus::Current
        } else {
            SchemaStatus::Behind { pending }
        }
    }
}

impl fmt::Display for SchemaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[i64]| {
            v.iter()
                .map(|n| format!("{n:04}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            SchemaStatus::Current => write!(f, "the schema is current"),
            SchemaStatus::Behind { pending } => write!(
                f,
                "the database schema is not up to date (migrations {} not applied); run `scim-bridge migrate` first",
                list(pending)
            ),
            SchemaStatus::Ahead { unknown } => write!(
                f,
                "the database schema is newer than this scim-bridge (migrations {} are unknown to it): \
                 use the release that ran `scim-bridge migrate` on it, or a later one",
                list(unknown)
            ),
            SchemaStatus::Changed { versions } => write!(
                f,
                "migrations {} in the database differ from this scim-bridge's: the database was migrated \
                 by another build; use that build, or restore a backup and run `scim-bridge migrate`",
                list(versions)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"a";
    const B: &[u8] = b"b";

    #[test]
    fn applied_migrations_compare_with_the_build() {
        let known = [(1, A), (2, B)];
        assert_eq!(
            SchemaStatus::compare(&known, &[(1, A.to_vec()), (2, B.to_vec())]),
            SchemaStatus::Current
        );
        assert_eq!(
            SchemaStatus::compare(&known, &[]),
            SchemaStatus::Behind {
                pending: vec![1, 2]
            }
        );
        assert_eq!(
            SchemaStatus::compare(&known, &[(1, A.to_vec())]),
            SchemaStatus::Behind { pending: vec![2] }
        );
        assert_eq!(
            SchemaStatus::compare(&known, &[(1, A.to_vec()), (2, B.to_vec()), (3, A.to_vec())]),
            SchemaStatus::Ahead { unknown: vec![3] }
        );
        assert_eq!(
            SchemaStatus::compare(&known, &[(1, B.to_vec())]),
            SchemaStatus::Changed { versions: vec![1] }
        );
    }

    #[test]
    fn every_refusal_names_what_to_do() {
        let behind = SchemaStatus::Behind { pending: vec![3] }.to_string();
        assert!(
            behind.contains("scim-bridge migrate") && behind.contains("0003"),
            "{behind}"
        );
        let ahead = SchemaStatus::Ahead { unknown: vec![7] }.to_string();
        assert!(ahead.contains("newer") && ahead.contains("0007"), "{ahead}");
        let changed = SchemaStatus::Changed { versions: vec![2] }.to_string();
        assert!(changed.contains("scim-bridge migrate"), "{changed}");
    }
}
