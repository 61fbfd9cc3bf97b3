//! Bearer tokens the IdPs present. Only SHA-256 digests are stored; the plaintext is shown once,
//! when the token is made.

use crate::clock::{Clock, IdSource};
use crate::error::StoreError;
use crate::scope::Scopes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// Every token the bridge issues starts with this, so a leaked one is recognisable (secret
/// scanners, logs) and the audit redaction can find it.
pub const TOKEN_PREFIX: &str = "scimb_";

/// Imported tokens (from the IdP tokens file) must carry at least this much entropy, as
/// estimated by [`check_imported_token`]: a bearer token must not be guessable.
pub const MIN_IMPORTED_TOKEN_BITS: u32 = 128;

/// Runs of this many identical (`aaaaaaaa`) or consecutive (`01234567`) characters mark a token
/// as made by hand. A random token of any common alphabet holds one with a probability below
/// one in a million.
const MAX_PATTERN_RUN: usize = 8;

/// Fewer distinct characters than this is too little variety (`passwordpassword…`). Random
/// hex of 32 characters has fewer with a probability below one in a million.
const MIN_DISTINCT_CHARS: usize = 8;

/// How a token came to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// Made by `scim-bridge token create`; only `token revoke` ends it.
    Cli,
    /// Imported from `SCIM_BRIDGE_IDP_TOKENS_FILE`; revoked when its name leaves the file.
    File,
}

impl TokenSource {
    /// The name stored in `api_tokens.source` and shown by `token list`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Cli => "cli",
            TokenSource::File => "file",
        }
    }

    /// The stored name back; the column's CHECK admits only these two.
    pub(crate) fn from_stored(stored: &str) -> TokenSource {
        if stored == "file" {
            TokenSource::File
        } else {
            TokenSource::Cli
        }
    }
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the store knows about a token; never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub name: String,
    /// What the token may do.
    pub scopes: Scopes,
    /// How it came to exist.
    pub source: TokenSource,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A fresh token: the prefix and 256 random bits in hex.
pub(crate) fn generate(ids: &dyn IdSource) -> String {
    let mut secret = [0u8; 32];
    ids.fill(&mut secret);
    format!("{TOKEN_PREFIX}{}", hex::encode(secret))
}

/// The stored form of a token.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What [`crate::Tokens::import`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenImport {
    /// The token was already active under this name.
    Unchanged,
    /// The token was added.
    Created,
    /// The token was added and the name's previous token revoked.
    Rotated,
    /// The token was already active under this name; its scopes were changed.
    Rescoped,
}

/// Token names appear in logs, metrics and the audit log: keep them short and plain.
pub(crate) fn check_name(name: &str) -> Result<(), StoreError> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty() || name.len() > 64 || !plain {
        return Err(StoreError::invalid_value(
            "a token name is 1 to 64 characters of letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

/// Refuse an imported token that could be guessed, with a message that names the weakness and
/// never contains the token.
///
/// The estimate is deliberately simple and errs towards refusing hand-made tokens: the length
/// (after the bridge's own `scimb_` prefix) times log2 of the size of the character classes used
/// (16 for hex; else 26 for each letter case, 10 for digits, 32 for ASCII punctuation and 64
/// beyond ASCII) must reach [`MIN_IMPORTED_TOKEN_BITS`], and the token must not show low
/// variety: few distinct characters, long runs of one character or of consecutive characters, or
/// a shorter string repeated. A generated token (`openssl rand -hex 32`) passes.
pub fn check_imported_token(plaintext: &str) -> Result<(), StoreError> {
    let weak = |why: String| {
        StoreError::invalid_value(format!(
            "the token is too weak ({why}); an imported token needs at least \
             {MIN_IMPORTED_TOKEN_BITS} bits of entropy: generate one with `openssl rand -hex 32`"
        ))
    };
    if plaintext.chars().any(char::is_whitespace) {
        return Err(StoreError::invalid_value(
            "an imported token must not contain white space",
        ));
    }
    let body: Vec<char> = plaintext
        .strip_prefix(TOKEN_PREFIX)
        .unwrap_or(plaintext)
        .chars()
        .collect();
    let bits = estimated_bits(&body);
    if bits < f64::from(MIN_IMPORTED_TOKEN_BITS) {
        return Err(weak(format!(
            "about {} bits in {} characters",
            bits.floor(),
            body.len()
        )));
    }
    let distinct = body.iter().collect::<std::collections::HashSet<_>>().len();
    if distinct < MIN_DISTINCT_CHARS {
        return Err(weak(format!("only {distinct} distinct characters")));
    }
    if let Some(what) = pattern_run(&body) {
        return Err(weak(format!(
            "{MAX_PATTERN_RUN} or more {what} characters in a row"
        )));
    }
    if let Some(period) = repeated_unit(&body) {
        return Err(weak(format!("a string of {period} characters repeated")));
    }
    Ok(())
}

/// Length × log2(size of the character classes the token draws from).
fn estimated_bits(chars: &[char]) -> f64 {
    let has = |f: fn(&char) -> bool| chars.iter().any(f);
    let (lower, upper) = (has(char::is_ascii_lowercase), has(char::is_ascii_uppercase));
    let hex = chars.iter().all(char::is_ascii_hexdigit) && !(lower && upper);
    let alphabet: u32 = if hex {
        16
    } else {
        [
            (lower, 26),
            (upper, 26),
            (has(char::is_ascii_digit), 10),
            (has(char::is_ascii_punctuation), 32),
            (has(|c| !c.is_ascii()), 64),
        ]
        .iter()
        .filter(|(present, _)| *present)
        .map(|(_, size)| size)
        .sum()
    };
    if alphabet < 2 {
        return 0.0;
    }
    chars.len() as f64 * f64::from(alphabet).log2()
}

/// A run of [`MAX_PATTERN_RUN`] identical or consecutive (ascending or descending) characters.
fn pattern_run(chars: &[char]) -> Option<&'static str> {
    let step = |a: char, b: char| i64::from(u32::from(b)) - i64::from(u32::from(a));
    for (what, wanted) in [("identical", &[0][..]), ("consecutive", &[1, -1][..])] {
        for &d in wanted {
            let mut run = 1;
            for pair in chars.windows(2) {
                run = if step(pair[0], pair[1]) == d {
                    run + 1
                } else {
                    1
                };
                if run >= MAX_PATTERN_RUN {
                    return Some(what);
                }
            }
        }
    }
    None
}

/// The length of a shorter string the token mostly (nine tenths) repeats, if any. Units up to
/// 64 characters are checked: a longer unit already carries enough entropy on its own.
fn repeated_unit(chars: &[char]) -> Option<usize> {
    (1..=(chars.len() / 2).min(64)).find(|&period| {
        let compared = chars.len() - period;
        let same = chars
            .iter()
            .zip(&chars[period..])
            .filter(|(a, b)| a == b)
            .count();
        same * 10 >= compared * 9
    })
}

/// A token's scopes as stored. A value this version cannot read grants nothing (fail closed).
pub(crate) fn stored_scopes(name: &str, stored: &str) -> Scopes {
    stored.parse().unwrap_or_else(|e| {
        tracing::warn!(token = %name, error = %e, "the token's stored scopes are not readable; it grants nothing");
        Scopes::NONE
    })
}

/// A token needs a scope to be of any use; an empty set is a mistake on the command line.
pub(crate) fn check_scopes(scopes: Scopes) -> Result<(), StoreError> {
    if scopes.is_empty() {
        return Err(StoreError::invalid_value(
            "a token needs at least one scope (scim:read, scim:write)",
        ));
    }
    Ok(())
}

/// One active token as the verifier holds it.
#[derive(Debug, Clone)]
pub(crate) struct VerifierEntry {
    pub name: String,
    pub scopes: Scopes,
    pub digest: [u8; 32],
    pub expires_at: Option<DateTime<Utc>>,
}

/// The token a presented bearer token matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken<'a> {
    /// The token's name (audit actor, rate-limit key).
    pub name: &'a str,
    /// What it may do.
    pub scopes: Scopes,
}

/// A snapshot of the active tokens that checks a presented bearer token in constant time.
///
/// The server caches it and calls [`TokenVerifier::verify`] per request, and rebuilds it with
/// [`crate::Tokens::verifier`] after a token is made or revoked (or periodically, so other
/// replicas' changes are picked up).
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    entries: Vec<VerifierEntry>,
    clock: Arc<dyn Clock>,
}

impl TokenVerifier {
    pub(crate) fn new(entries: Vec<VerifierEntry>, clock: Arc<dyn Clock>) -> Self {
        TokenVerifier { entries, clock }
    }

    /// The name of the active, unexpired token `presented` is, or `None`.
    pub fn verify(&self, presented: &str) -> Option<&str> {
        self.check(presented).map(|token| token.name)
    }

    /// The name and scopes of the active, unexpired token `presented` is, or `None`.
    ///
    /// The presented token is hashed once and its digest compared with every stored digest
    /// using `subtle`, without an early exit, so the time taken does not depend on which
    /// token (if any) matched or on how many leading bytes agree.
    pub fn check(&self, presented: &str) -> Option<VerifiedToken<'_>> {
        let presented = digest(presented);
        let now = self.clock.now();
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, entry) in self.entries.iter().enumerate() {
            // Expiry is not secret; folding it into the Choice keeps the loop branch-free anyway.
            let unexpired = Choice::from(u8::from(entry.expires_at.is_none_or(|at| at > now)));
            let hit = entry.digest.ct_eq(&presented) & unexpired;
            index = u64::conditional_select(&index, &(i as u64), hit);
            found |= hit;
        }
        if bool::from(found) {
            usize::try_from(index)
                .ok()
                .and_then(|i| self.entries.get(i))
                .map(|e| VerifiedToken {
                    name: &e.name,
                    scopes: e.scopes,
                })
        } else {
            None
        }
    }

    /// How many tokens the snapshot holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is active (every request will be refused).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::clock::SystemIds;
    use chrono::Duration;

    #[test]
    fn generated_tokens_are_prefixed_and_distinct() {
        let a = generate(&SystemIds);
        let b = generate(&SystemIds);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
    }

    #[test]
    fn generated_and_well_made_tokens_pass_the_strength_check() {
        for _ in 0..200 {
            check_imported_token(&generate(&SystemIds)).unwrap();
        }
        for token in [
            // openssl rand -hex 16 / -hex 32 / -base64 24 / -base64 32
            "9f86d081884c7d659a2feaa0c55ad015",
            "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
            "q1zVb7Kx0e3mRk+5T/2yWcN8pLfA9hJu",
            "n0xB1pVw4h6T+q2sZgKd8YcL3mRf7JaQe5Uo9WtXy1E=",
            // A passphrase-style token of words and separators.
            "ember-Quartz-57-lantern-Velvet-orbit-93-Thistle",
        ] {
            check_imported_token(token).unwrap_or_else(|e| panic!("{token}: {e}"));
        }
    }

    #[test]
    fn short_and_low_variety_tokens_are_refused_without_showing_them() {
        let cases = [
            ("0123abcd0123abcd0123abcd0123abc", "bits"), // 31 hex: 124 bits
            ("Short-Token-1", "bits"),                   // 13 characters
            ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "distinct"),
            ("passwordpasswordpasswordpasswordpassword", "distinct"),
            ("xK9#mQ2$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "identical"),
            ("abcdefghijklmnopqrstuvwxyz0123456789ABCDEF", "consecutive"),
            ("zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONM", "consecutive"),
            ("Abc123!?Abc123!?Abc123!?Abc123!?Abc123!?", "repeated"),
            // The bridge's own prefix carries no entropy: 31 hex characters after it.
            ("scimb_9f86d081884c7d659a2feaa0c55ad01", "bits"),
        ];
        for (token, weakness) in cases {
            let message = check_imported_token(token).unwrap_err().to_string();
            assert!(message.contains(weakness), "{token}: {message}");
            assert!(message.contains("openssl rand -hex 32"), "{message}");
            assert!(
                !message.contains(token),
                "the message shows the token: {message}"
            );
        }
        assert!(check_imported_token("white space token 0123456789abcdef0123456789").is_err());
    }

    #[test]
    fn verify_finds_the_right_token_and_honours_expiry() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let clock = Arc::new(ManualClock::new(start));
        let entries = vec![
            VerifierEntry {
                name: "okta".into(),
                scopes: Scopes::ALL,
                digest: digest("t-okta"),
                expires_at: None,
            },
            VerifierEntry {
                name: "entra".into(),
                scopes: Scopes::READ,
                digest: digest("t-entra"),
                expires_at: Some(start + Duration::hours(1)),
            },
        ];
        let v = TokenVerifier::new(entries, clock.clone());
        assert_eq!(v.verify("t-okta"), Some("okta"));
        assert_eq!(v.verify("t-entra"), Some("entra"));
        assert_eq!(
            v.check("t-entra"),
            Some(VerifiedToken {
                name: "entra",
                scopes: Scopes::READ
            })
        );
        assert_eq!(v.check("t-okta").map(|t| t.scopes), Some(Scopes::ALL));
        assert_eq!(v.verify("t-other"), None);
        assert_eq!(v.verify(""), None);
        clock.advance(Duration::hours(1));
        assert_eq!(v.verify("t-entra"), None);
        assert_eq!(v.verify("t-okta"), Some("okta"));
    }
}
