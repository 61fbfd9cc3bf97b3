//! `scim-bridge client create|list|revoke`: OAuth 2.0 clients that trade their id and secret at
//! `/oauth/token` for short-lived access tokens (client credentials grant).

use store::Scopes;

use crate::config::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum ClientAction {
    /// Create a client. stdout is exactly two lines, `client_id=…` and `client_secret=…`; the
    /// secret is shown once and stored only as a hash.
    Create {
        #[arg(long)]
        name: String,
        /// What its access tokens may do at most: scim:read, scim:write, or both (comma or space
        /// separated).
        #[arg(long, default_value = "scim:read,scim:write", value_parser = super::token::parse_scopes)]
        scopes: Scopes,
    },
    /// List clients (never their secrets).
    List,
    /// Revoke a client by name: it gets no new access token; the ones it holds stop working on
    /// every replica within seconds.
    Revoke { name: String },
}

pub async fn run(settings: &Settings, action: ClientAction) -> anyhow::Result<()> {
    let store = super::open_store(settings).await?;
    match action {
        ClientAction::Create { name, scopes } => {
            let client = store.oauth_client_create(&name, scopes).await?;
            // Scripts read stdout; everything else goes to stderr.
            eprintln!(
                "OAuth client '{name}' created with scopes {scopes}; the secret is shown once"
            );
            println!("client_id={}", client.client_id);
            println!("client_secret={}", client.client_secret);
        }
        ClientAction::List => {
            let clients = store.oauth_client_list().await?;
            println!(
                "{:<24} {:<38} {:<21} {:<26} REVOKED",
                "NAME", "CLIENT_ID", "SCOPES", "CREATED"
            );
            for c in clients {
                println!(
                    "{:<24} {:<38} {:<21} {:<26} {}",
                    c.name,
                    c.client_id,
                    // `Scopes`' Display ignores the width: render it first.
                    c.scopes.to_string(),
                    c.created_at.to_rfc3339(),
                    c.revoked_at
                        .map(|d| d.to_rfc3339())
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
        ClientAction::Revoke { name } => {
            store.oauth_client_revoke(&name).await?;
            println!(
                "OAuth client '{name}' revoked: it gets no new access token, and every replica refuses the ones it holds within seconds"
            );
        }
    }
    Ok(())
}
