//! `scim-bridge token create|list|revoke`: the bearer tokens IdPs present.

use chrono::Utc;
use store::Scopes;

use crate::config::Settings;
use crate::confirm::RevokeArgs;
use crate::output::{self, OutputArgs, Row};

#[derive(Debug, clap::Subcommand)]
pub enum TokenAction {
    /// Create a token; it is printed once, as the last line of stdout, and stored only as a hash.
    Create {
        #[arg(long)]
        name: String,
        /// Lifetime such as 90d or 12h; without it the token does not expire.
        #[arg(long)]
        expires_in: Option<String>,
        /// What the token may do: scim:read, scim:write, or both (comma or space separated).
        #[arg(long, default_value = "scim:read,scim:write", value_parser = parse_scopes)]
        scopes: Scopes,
    },
    /// List tokens (never their values).
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Revoke a token by name; every replica refuses it within 1 s.
    Revoke(RevokeArgs),
}

pub async fn run(settings: &Settings, action: TokenAction) -> anyhow::Result<()> {
    let store = super::open_store(settings).await?;
    match action {
        TokenAction::Create {
            name,
            expires_in,
            scopes,
        } => {
            let expires_at = match expires_in {
                Some(raw) => {
                    let d = humantime::parse_duration(&raw).map_err(|e| {
                        anyhow::anyhow!("--expires-in: '{raw}' is not a duration such as 90d: {e}")
                    })?;
                    Some(store.clock().now() + chrono::Duration::from_std(d)?)
                }
                None => None,
            };
            let token = store.tokens().create(&name, expires_at, scopes).await?;
            match expires_at {
                Some(t) => println!(
                    "token '{name}' created with scopes {scopes}; it expires at {}",
                    t.to_rfc3339()
                ),
                None => println!("token '{name}' created with scopes {scopes}; it does not expire"),
            }
            println!("{token}");
        }
        TokenAction::List { output } => {
            let now = store.clock().now();
            let tokens = store.tokens().list().await?;
            output::print_rows(output.output, tokens, |t| TokenRow::new(t, now))?;
        }
        TokenAction::Revoke(RevokeArgs { name, confirm }) => {
            confirm.ask(&format!(
                "Revoke token '{name}'? The IdP using it stops provisioning until it gets a new token."
            ))?;
            store.tokens().revoke(&name).await?;
            println!("token '{name}' revoked; every replica refuses it within 1 s");
        }
    }
    Ok(())
}

/// One line of `token list`.
#[derive(Debug, serde::Serialize)]
struct TokenRow {
    name: String,
    scopes: Vec<&'static str>,
    source: &'static str,
    created_at: chrono::DateTime<Utc>,
    expires_at: Option<chrono::DateTime<Utc>>,
    last_used_at: Option<chrono::DateTime<Utc>>,
    revoked_at: Option<chrono::DateTime<Utc>>,
    /// `active`, `expired` or `revoked`.
    state: &'static str,
}

impl TokenRow {
    fn new(t: store::TokenInfo, now: chrono::DateTime<Utc>) -> TokenRow {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        TokenRow {
            name: t.name,
            scopes: t.scopes.iter().map(store::Scope::as_str).collect(),
            source: t.source.as_str(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
            state,
        }
    }
}

impl Row for TokenRow {
    const HEADERS: &'static [&'static str] = &[
        "NAME",
        "SCOPES",
        "SOURCE",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "STATE",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.scopes.join(" "),
            self.source.into(),
            output::time(self.created_at),
            output::maybe_time(self.expires_at),
            output::maybe_time(self.last_used_at),
            self.state.into(),
        ]
    }
}

/// `--scopes`: at least one known scope; an unknown name is an error that lists the scopes.
pub(super) fn parse_scopes(raw: &str) -> Result<Scopes, String> {
    let scopes: Scopes = raw
        .parse()
        .map_err(|e: store::UnknownScope| e.to_string())?;
    if scopes.is_empty() {
        return Err("name at least one scope: scim:read, scim:write".into());
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Format, render};
    use store::TokenSource::{Cli, File};

    fn at(s: &str) -> chrono::DateTime<Utc> {
        s.parse().unwrap()
    }

    fn rows() -> Vec<TokenRow> {
        let now = at("2026-12-03T08:00:00Z");
        let token = |name: &str, scopes, source, expires: Option<&str>, revoked: Option<&str>| {
            TokenRow::new(
                store::TokenInfo {
                    name: name.into(),
                    scopes,
                    source,
                    created_at: at("2026-11-01T09:30:00.123456Z"),
                    expires_at: expires.map(at),
                    revoked_at: revoked.map(at),
                    last_used_at: Some(at("2026-12-03T07:59:58Z")),
                },
                now,
            )
        };
        vec![
            token("okta", Scopes::ALL, Cli, Some("2027-03-01T00:00:00Z"), None),
            token("entra-reader", Scopes::READ, File, None, None),
            token("old", Scopes::ALL, Cli, Some("2026-12-01T00:00:00Z"), None),
            token("gone", Scopes::ALL, Cli, None, Some("2026-11-20T10:00:00Z")),
        ]
    }

    crate::output::snapshot_tests! {
        token_list_table => render(Format::Table, &rows()).unwrap();
        token_list_json => render(Format::Json, &rows()).unwrap();
    }
}
