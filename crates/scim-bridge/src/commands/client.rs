//! `scim-bridge client create|list|revoke`: OAuth 2.0 clients that trade their id and secret at
//! `/oauth/token` for short-lived access tokens (client credentials grant).

use store::Scopes;

use crate::config::Settings;
use crate::confirm::RevokeArgs;
use crate::output::{self, OutputArgs, Row};

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
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Revoke a client by name: it gets no new access token; the ones it holds stop working on
    /// every replica within seconds.
    Revoke(RevokeArgs),
}

/// One line of `client list`.
#[derive(Debug, serde::Serialize)]
struct ClientRow {
    name: String,
    client_id: String,
    scopes: Vec<&'static str>,
    created_at: chrono::DateTime<chrono::Utc>,
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<store::OAuthClientInfo> for ClientRow {
    fn from(c: store::OAuthClientInfo) -> ClientRow {
        ClientRow {
            name: c.name,
            client_id: c.client_id,
            scopes: c.scopes.iter().map(store::Scope::as_str).collect(),
            created_at: c.created_at,
            revoked_at: c.revoked_at,
        }
    }
}

impl Row for ClientRow {
    const HEADERS: &'static [&'static str] = &["NAME", "CLIENT_ID", "SCOPES", "CREATED", "REVOKED"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.client_id.clone(),
            self.scopes.join(" "),
            output::time(self.created_at),
            output::maybe_time(self.revoked_at),
        ]
    }
}

pub async fn run(settings: &Settings, action: ClientAction) -> anyhow::Result<()> {
    let store = super::open_store(settings).await?;
    match action {
        ClientAction::Create { name, scopes } => {
            let client = store.oauth_clients().create(&name, scopes).await?;
            // Scripts read stdout; everything else goes to stderr.
            eprintln!(
                "OAuth client '{name}' created with scopes {scopes}; the secret is shown once"
            );
            println!("client_id={}", client.client_id);
            println!("client_secret={}", client.client_secret);
        }
        ClientAction::List { output } => {
            let clients = store.oauth_clients().list().await?;
            output::print_rows(output.output, clients, ClientRow::from)?;
        }
        ClientAction::Revoke(RevokeArgs { name, confirm }) => {
            confirm.ask(&format!(
                "Revoke OAuth client '{name}'? The IdP using it stops provisioning until it gets a new client."
            ))?;
            store.oauth_clients().revoke(&name).await?;
            println!(
                "OAuth client '{name}' revoked: it gets no new access token, and every replica refuses the ones it holds within seconds"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Format, render};

    fn rows() -> Vec<ClientRow> {
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        vec![
            ClientRow::from(store::OAuthClientInfo {
                name: "entra".into(),
                client_id: "3f2a9c1e-7b4d-4e8a-9f0c-2d6b8a1e5c7f".into(),
                scopes: store::Scopes::ALL,
                created_at: at("2026-11-01T09:30:00Z"),
                revoked_at: None,
            }),
            ClientRow::from(store::OAuthClientInfo {
                name: "reporting".into(),
                client_id: "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d".into(),
                scopes: store::Scopes::READ,
                created_at: at("2026-11-02T10:00:00Z"),
                revoked_at: Some(at("2026-11-30T16:45:10Z")),
            }),
        ]
    }

    crate::output::snapshot_tests! {
        client_list_table => render(Format::Table, &rows()).unwrap();
        client_list_json => render(Format::Json, &rows()).unwrap();
    }
}
