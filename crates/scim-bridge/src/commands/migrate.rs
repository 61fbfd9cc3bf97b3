//! `scim-bridge migrate [--copy-from sqlite://FILE]`: apply the embedded migrations, then
//! optionally copy an SQLite store into the (PostgreSQL) database, the move docs/operations.md
//! describes.

use store::{Store, StoreOptions};

use crate::config::Settings;
use crate::exit::{self, Exit};

/// Options of `scim-bridge migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// After migrating, copy this SQLite store (`sqlite:///path/scim-bridge.db`) into the
    /// database, which must be PostgreSQL and empty. Stop the bridge that uses the file first.
    #[arg(long, value_name = "URL")]
    pub copy_from: Option<String>,
}

pub async fn run(settings: &Settings, args: &MigrateArgs) -> anyhow::Result<()> {
    let options = StoreOptions {
        run_migrations: false,
        ..super::store_options(settings)
    };
    let store = Store::connect(settings.database_url.expose(), options)
        .await
        .map_err(|e| {
            exit::with(
                Exit::NotReady,
                anyhow::anyhow!("opening the database (SCIM_BRIDGE_DATABASE_URL): {e}"),
            )
        })?;
    // Migrations only go forward: a schema from a newer release is left as it is.
    if let status @ store::SchemaStatus::Ahead { .. } = store.schema_status().await? {
        return Err(exit::with(Exit::NotReady, anyhow::anyhow!("{status}")));
    }
    store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
    println!("migrations applied ({})", store.backend_name());
    if let Some(source_url) = &args.copy_from {
        copy(&store, source_url, settings).await?;
    }
    Ok(())
}

/// Copy the SQLite store at `source_url` into `target` and check the copied audit chain.
async fn copy(target: &Store, source_url: &str, settings: &Settings) -> anyhow::Result<()> {
    let Some(file) = sqlite_file(source_url) else {
        return Err(exit::usage(
            "--copy-from takes a sqlite:// URL, e.g. sqlite:///data/scim-bridge.db",
        ));
    };
    // Opening a missing SQLite file would create an empty one.
    if !std::path::Path::new(file).is_file() {
        anyhow::bail!("--copy-from: there is no SQLite store at {file}");
    }
    // The target's clock and ids: one of each for the run.
    let source = Store::connect(
        source_url,
        StoreOptions {
            run_migrations: false,
            clock: target.clock(),
            ids: target.ids(),
            ..super::store_options(settings)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("opening the SQLite store {file}: {e}"))?;
    let bar = crate::output::spinner(format!("copying {file} into {}", target.backend_name()));
    let report = target.copy_from(&source).await;
    bar.finish_and_clear();
    let report = report.map_err(|e| anyhow::anyhow!("copying {file}: {e}"))?;
    println!("copied {file} into {}:", target.backend_name());
    for (table, rows) in &report.tables {
        println!("  {table:<14} {rows:>9} rows");
    }
    let verified = target
        .audit()
        .verify()
        .await
        .map_err(|e| anyhow::anyhow!("verifying the copied audit chain: {e}"))?;
    if let Some((seq, why)) = verified.first_broken {
        anyhow::bail!("the copied audit chain does not verify at record {seq}: {why}");
    }
    let (seq, hash) = &report.audit_head;
    println!(
        "audit chain intact: {} records, head {seq} {hash} (the same as the source's)",
        verified.checked
    );
    Ok(())
}

/// The file a `sqlite://path` or `sqlite:path` URL names, without its `?options`.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split_once('?').map_or(rest, |(path, _)| path))
}

#[cfg(test)]
mod tests {
    use super::sqlite_file;

    #[test]
    fn sqlite_file_reads_the_path_of_a_sqlite_url() {
        assert_eq!(
            sqlite_file("sqlite:///data/scim-bridge.db"),
            Some("/data/scim-bridge.db")
        );
        assert_eq!(sqlite_file("sqlite:store.db?mode=rwc"), Some("store.db"));
        assert_eq!(sqlite_file("postgres://db/scim"), None);
    }
}
