//! `SCIM_BRIDGE_IDP_TOKENS_FILE`: IdP bearer tokens supplied as a file (a Kubernetes Secret),
//! one `name=token` line each, optionally followed by the token's scopes
//! (`okta=<token> scim:read`). Tokens are imported hashed at start-up.

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

/// Import the file's tokens (hashed; idempotent); returns how many lines it holds.
pub async fn import(store: &Store, path: &Path) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{SETTING}: cannot read {}: {e}", path.display()))?;
    let lines = parse(&text)?;
    for l in &lines {
        store
            .token_import(&l.name, &l.token, l.scopes)
            .await
            .map_err(|e| anyhow::anyhow!("{SETTING}: line {} ({}): {e}", l.line, l.name))?;
    }
    Ok(lines.len())
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
