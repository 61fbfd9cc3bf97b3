//! One module per subcommand.

pub mod agent;
pub mod audit;
pub mod client;
pub mod demo;
pub mod explain;
pub mod healthcheck;
pub mod migrate;
pub mod outbox;
pub mod reconcile;
pub mod report;
pub mod serve;
pub mod status;
pub mod token;

use store::{Store, StoreOptions};

use crate::config::Settings;
use crate::exit::{self, Exit};

/// The store's options from the settings: the audit keys every command hashes and verifies with.
pub fn store_options(settings: &Settings) -> StoreOptions {
    StoreOptions {
        audit_keys: settings.audit_keys.clone(),
        ..StoreOptions::default()
    }
}

/// Open the store without touching its schema: only `migrate`, `serve` and `demo` change it. A
/// schema this build was not made for (not migrated yet, or migrated by a newer release) is
/// refused with what to do, before the command reads or writes anything.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let options = StoreOptions {
        run_migrations: false,
        ..store_options(settings)
    };
    let not_ready = |e: anyhow::Error| exit::with(Exit::NotReady, e);
    let store = Store::connect(settings.database_url.expose(), options)
        .await
        .map_err(|e| {
            not_ready(anyhow::anyhow!(
                "opening the database (SCIM_BRIDGE_DATABASE_URL): {e}"
            ))
        })?;
    let status = store.schema_status().await.map_err(|e| {
        not_ready(anyhow::anyhow!(
            "reading the database's schema version: {e}"
        ))
    })?;
    if status != store::SchemaStatus::Current {
        return Err(not_ready(anyhow::anyhow!("{status}")));
    }
    Ok(store)
}
