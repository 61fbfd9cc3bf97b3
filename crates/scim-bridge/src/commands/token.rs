//! `scim-bridge token create|list|revoke`: the bearer tokens IdPs present.

use chrono::Utc;
use store::Scopes;

use crate::config::Settings;

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
    List,
    /// Revoke a token by name; every replica refuses it within 1 s.
    Revoke { name: String },
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
                    Some(Utc::now() + chrono::Duration::from_std(d)?)
                }
                None => None,
            };
            let token = store.token_create(&name, expires_at, scopes).await?;
            match expires_at {
                Some(t) => println!(
                    "token '{name}' created with scopes {scopes}; it expires at {}",
                    t.to_rfc3339()
                ),
                None => println!("token '{name}' created with scopes {scopes}; it does not expire"),
            }
            println!("{token}");
        }
        TokenAction::List => {
            let tokens = store.token_list().await?;
            println!(
                "{:<24} {:<21} {:<6} {:<26} {:<26} {:<26} STATE",
                "NAME", "SCOPES", "SOURCE", "CREATED", "EXPIRES", "LAST USED"
            );
            let now = Utc::now();
            for t in tokens {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                let show = |d: Option<chrono::DateTime<Utc>>| {
                    d.map(|d| d.to_rfc3339()).unwrap_or_else(|| "-".into())
                };
                println!(
                    "{:<24} {:<21} {:<6} {:<26} {:<26} {:<26} {state}",
                    t.name,
                    // `Scopes`' Display ignores the width: render it first.
                    t.scopes.to_string(),
                    t.source.as_str(),
                    t.created_at.to_rfc3339(),
                    show(t.expires_at),
                    show(t.last_used_at)
                );
            }
        }
        TokenAction::Revoke { name } => {
            store.token_revoke(&name).await?;
            println!("token '{name}' revoked; every replica refuses it within 1 s");
        }
    }
    Ok(())
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
