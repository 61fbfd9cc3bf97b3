//! `SCIM_BRIDGE_IDP_TOKENS_FILE`: IdP bearer tokens supplied as a file (a Kubernetes Secret),
//! one `name=token` line each, optionally followed by the token's scopes
//! (`okta=<token> scim:read`). Tokens are imported hashed at start-up.
//!
//! The file is the source of truth for the tokens it brought: a name removed from it is revoked
//! at the next start (audited, actor `tokens-file`); tokens made with `token create` are never
//! touched. Every token must pass [`store::check_imported_token`] (at least 128 bits of
//! entropy, no low-variety patterns) before anything is changed.

use std::path::Path;

use store::{Scopes, Store};

const SETTING: &str = "SCIM_BRIDGE_IDP_TOKENS_FILE";

/// One token line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TokenLine {
    /// 1-based, for error messages.
    line: usize,
    name: String,
    token: String,
    scopes: Scopes,
}

/// The token lines of `text`; blank lines and `#` comments are skipped. Errors name the line
/// and never contain the token.
fn parse(text: &str) -> anyhow::Result<Vec<TokenLine>> {
    let mut lines: Vec<TokenLine> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let Some((name, rest)) = raw.split_once('=') else {
            anyhow::bail!("{SETTING}: line {line} is not name=token");
        };
        let name = name.trim();
        // The token holds no white space (the import refuses it); what follows it is scopes.
        let rest = rest.trim();
        let (token, scopes) = match rest.split_once(char::is_whitespace) {
            Some((token, scopes)) => {
                let scopes: Scopes = scopes
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{SETTING}: line {line} ({name}): {e}"))?;
                (token, scopes)
            }
            None => (rest, Scopes::ALL),
        };
        if let Some(first) = lines.iter().find(|l| l.name == name) {
            anyhow::bail!(
                "{SETTING}: line {line} ({name}): the name is already used on line {}",
                first.line
            );
        }
        lines.push(TokenLine {
            line,
            name: name.to_string(),
            token: token.to_string(),
            scopes,
        });
    }
    Ok(lines)
}

/// What [`sync`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokensFileReport {
    /// Token lines in the file.
    pub lines: usize,
    /// Names imported earlier and no longer in the file, now revoked.
    pub revoked: Vec<String>,
}

/// Bring the store in line with the file: check every token's strength, revoke the file's
/// tokens whose names left it, then import its lines (hashed; idempotent). An error names the
/// line and the token's name, never the token.
pub async fn sync(store: &Store, path: &Path) -> anyhow::Result<TokensFileReport> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{SETTING}: cannot read {}: {e}", path.display()))?;
    let lines = parse(&text)?;
    let at = |l: &TokenLine, e: store::StoreError| {
        anyhow::anyhow!("{SETTING}: line {} ({}): {e}", l.line, l.name)
    };
    // A weak line stops the start before any token is revoked or imported.
    for l in &lines {
        store::check_imported_token(&l.token).map_err(|e| at(l, e))?;
    }
    let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    let revoked = store.tokens().revoke_removed_from_file(&names).await?;
    for l in &lines {
        store
            .tokens()
            .import(&l.name, &l.token, l.scopes)
            .await
            .map_err(|e| at(l, e))?;
    }
    Ok(TokensFileReport {
        lines: lines.len(),
        revoked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_optional_scopes_and_errors_never_show_the_token() {
        let text = "# IdP tokens\n\nokta = tok-a \nentra=tok-b scim:read\nother=tok=c scim:read,scim:write\n";
        let lines = parse(text).unwrap();
        let got: Vec<_> = lines
            .iter()
            .map(|l| (l.line, l.name.as_str(), l.token.as_str(), l.scopes))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, "okta", "tok-a", Scopes::ALL),
                (4, "entra", "tok-b", Scopes::READ),
                (5, "other", "tok=c", Scopes::ALL),
            ]
        );
        let e = parse("okta=secret-value scim:admin\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 1 (okta)") && e.contains("scim:admin"),
            "{e}"
        );
        assert!(!e.contains("secret-value"), "{e}");
        let e = parse("okta=a\nokta=secret-value\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2 (okta)") && e.contains("line 1"), "{e}");
        assert!(!e.contains("secret-value"), "{e}");
        let e = parse("just-a-secret-value\n").unwrap_err().to_string();
        assert!(e.contains("line 1 is not name=token"), "{e}");
        assert!(!e.contains("secret-value"), "{e}");
    }
}
