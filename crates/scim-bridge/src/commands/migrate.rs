//! `scim-bridge migrate`: apply the embedded migrations.

use store::{Store, StoreOptions};

use crate::config::Settings;

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let options = StoreOptions {
        run_migrations: false,
        ..StoreOptions::default()
    };
    let store = Store::connect(settings.database_url.expose(), options)
        .await
        .map_err(|e| anyhow::anyhow!("opening the database (SCIM_BRIDGE_DATABASE_URL): {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
    println!("migrations applied ({})", store.backend_name());
    Ok(())
}
