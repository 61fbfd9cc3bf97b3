//! Coder names from SCIM values. Coder's rules for users and groups: usernames
//! and group names match `^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$` (usernames 1–32 characters, not
//! `new` or `create`; group names up to 255), user names at most 128 characters and group
//! display names at most 64, without surrounding white space.

/// Longest Coder username.
pub const USERNAME_MAX: usize = 32;
/// Longest Coder group name.
pub const GROUP_NAME_MAX: usize = 255;
/// Longest Coder user display name.
pub const USER_NAME_MAX: usize = 128;
/// Longest Coder group display name.
pub const GROUP_DISPLAY_NAME_MAX: usize = 64;

/// Names Coder reserves for its own routes.
const RESERVED_USERNAMES: &[&str] = &["new", "create"];

/// Group names Coder reserves: `Everyone` is the implicit group of each organization (and
/// lookups by name ignore case).
const RESERVED_GROUP_NAMES: &[&str] = &["new", "create", "everyone"];

/// The slug of `text` within `max` bytes: ASCII letters and digits kept (lower-cased), every
/// other run of characters one hyphen, no hyphen at either end. Empty when nothing is left.
fn slug(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    let mut pending_hyphen = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if pending_hyphen && !out.is_empty() {
                out.push('-');
            }
            pending_hyphen = false;
            out.push(c.to_ascii_lowercase());
        } else {
            pending_hyphen = true;
        }
        if out.len() >= max {
            break;
        }
    }
    out.truncate(max);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The Coder username base for a SCIM user: the slug of `source`'s local part when it is an
/// email address (`alice.smith@corp.com` → `alice-smith`), else of the whole value. Falls back
/// to `user` when nothing usable is left and avoids Coder's reserved names.
pub fn username_base(source: &str) -> String {
    let local = source.trim().split('@').next().unwrap_or_default();
    let base = slug(local, USERNAME_MAX);
    if base.is_empty() {
        return "user".to_owned();
    }
    if RESERVED_USERNAMES.contains(&base.as_str()) {
        return format!("{base}-user");
    }
    base
}

/// The `n`th candidate for `base`: `base` itself for n ≤ 1, else `base-n` with `base` cut so
/// the whole stays within 32 characters (`alice-smith-2`).
pub fn username_candidate(base: &str, n: u32) -> String {
    if n <= 1 {
        return base.to_owned();
    }
    let suffix = format!("-{n}");
    let mut head = base[..base.len().min(USERNAME_MAX.saturating_sub(suffix.len()))].to_owned();
    while head.ends_with('-') {
        head.pop();
    }
    if head.is_empty() {
        head.push_str("user");
    }
    format!("{head}{suffix}")
}

/// The Coder group name for a SCIM group's displayName (`Platform Team` → `platform-team`).
pub fn group_name(display_name: &str) -> String {
    let name = slug(display_name, GROUP_NAME_MAX);
    if name.is_empty() {
        "group".to_owned()
    } else if RESERVED_GROUP_NAMES.contains(&name.as_str()) {
        format!("{name}-group")
    } else {
        name
    }
}

/// `text` trimmed and cut to `max` characters (then trimmed again, so a cut never leaves white
/// space at the end).
pub fn bounded_display(text: &str, max: usize) -> String {
    let trimmed = text.trim();
    match trimmed.char_indices().nth(max) {
        Some((cut, _)) => trimmed[..cut].trim_end().to_owned(),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coder::is_valid_username;
    use proptest::prelude::*;

    #[test]
    fn usernames_from_idp_values() {
        assert_eq!(username_base("alice.smith@corp.com"), "alice-smith");
        assert_eq!(username_base("Bob_O'Neil"), "bob-o-neil");
        assert_eq!(username_base("  --x--  "), "x");
        assert_eq!(username_base("émile.zola@x"), "mile-zola");
        assert_eq!(username_base("日本@x"), "user");
        assert_eq!(username_base("new@corp.com"), "new-user");
        assert_eq!(username_base(&"a".repeat(40)), "a".repeat(32));
        assert_eq!(
            username_base(&format!("{}.b", "a".repeat(31))),
            "a".repeat(31)
        );
    }

    #[test]
    fn suffixes_keep_the_limit() {
        assert_eq!(username_candidate("alice-smith", 1), "alice-smith");
        assert_eq!(username_candidate("alice-smith", 2), "alice-smith-2");
        let long = "a".repeat(32);
        assert_eq!(
            username_candidate(&long, 2),
            format!("{}-2", "a".repeat(30))
        );
        assert_eq!(
            username_candidate(&format!("{}-b", "a".repeat(29)), 12),
            format!("{}-12", "a".repeat(29))
        );
    }

    #[test]
    fn group_and_display_names() {
        assert_eq!(group_name("Platform Team (EU)"), "platform-team-eu");
        assert_eq!(group_name("!!!"), "group");
        assert_eq!(group_name("Everyone"), "everyone-group");
        assert_eq!(bounded_display("  Ops  ", GROUP_DISPLAY_NAME_MAX), "Ops");
        assert_eq!(
            bounded_display(&format!("{} b", "x".repeat(63)), 64),
            "x".repeat(63)
        );
        assert_eq!(bounded_display(&"é".repeat(70), 64).chars().count(), 64);
    }

    proptest! {
        #[test]
        fn every_derived_username_is_valid(source in "\\PC{0,60}", n in 1u32..10_000) {
            let base = username_base(&source);
            prop_assert!(is_valid_username(&base), "{base:?}");
            let candidate = username_candidate(&base, n);
            prop_assert!(is_valid_username(&candidate), "{candidate:?}");
        }

        #[test]
        fn every_group_name_matches_the_pattern(source in "\\PC{0,300}") {
            let name = group_name(&source);
            prop_assert!(!name.is_empty() && name.len() <= GROUP_NAME_MAX);
            prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            prop_assert!(!name.starts_with('-') && !name.ends_with('-') && !name.contains("--"));
            prop_assert!(!RESERVED_GROUP_NAMES.contains(&name.as_str()));
        }
    }
}
