//! One module per subcommand.

pub mod audit;
pub mod client;
pub mod demo;
pub mod migrate;
pub mod outbox;
pub mod reconcile;
pub mod serve;
pub mod status;
pub mod token;

use store::{Store, StoreOptions};

use crate::config::Settings;

/// The store's options from the settings: the audit keys every command hashes and verifies with.
pub fn store_options(settings: &Settings) -> StoreOptions {
    StoreOptions {
        audit_keys: settings.audit_keys.clone(),
        ..StoreOptions::default()
    }
}

/// Open the store without running migrations: only `migrate` and `serve` change the schema.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let options = StoreOptions {
        run_migrations: false,
        ..store_options(settings)
    };
    let store = Store::connect(settings.database_url.expose(), options)
        .await
        .map_err(|e| anyhow::anyhow!("opening the database (SCIM_BRIDGE_DATABASE_URL): {e}"))?;
    if !store.migrations_current().await.unwrap_or(false) {
        store
            .migrate()
            .await
            .map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
    }
    Ok(store)
}
