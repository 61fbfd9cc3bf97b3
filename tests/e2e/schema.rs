//! Only `migrate`, `serve` and `demo` change the database's schema: the other commands refuse a
//! schema they were not built for, with what to do, and leave it as it is.

use sqlx::Connection;

use crate::support::{cli, fresh_database};

/// Runs `sql` on the database and returns the first column of the first row as text.
async fn one_value(url: &str, sql: &str) -> String {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar::<_, String>(sql)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar::<_, String>(sql)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    }
}

async fn execute(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
}

/// Tables in the database, as one comma-separated text.
async fn tables(url: &str) -> String {
    let sql = if url.starts_with("sqlite:") {
        "SELECT COALESCE(group_concat(name, ','), '') FROM \
         (SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name)"
    } else {
        "SELECT COALESCE(string_agg(tablename, ',' ORDER BY tablename), '') \
         FROM pg_tables WHERE schemaname = current_schema()"
    };
    one_value(url, sql).await
}

fn run(envs: &[(String, String)], args: &[&str]) -> (bool, String) {
    let out = cli(envs, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn commands_other_than_migrate_leave_the_schema_alone() {
    for db in crate::support::available() {
        let database = fresh_database(&db).await;
        let url = database.url().to_owned();
        let envs = vec![("SCIM_BRIDGE_DATABASE_URL".to_string(), url.clone())];

        // A database nobody migrated: every reading or writing command refuses and creates no
        // table.
        for args in [
            &["token", "create", "--name", "early"][..],
            &["token", "list"],
            &["outbox", "status"],
            &["audit", "verify"],
            &["status"],
        ] {
            let (ok, text) = run(&envs, args);
            assert!(!ok, "{args:?} ran on an unmigrated database: {text}");
            assert!(
                text.contains("run `scim-bridge migrate` first"),
                "{args:?}: {text}"
            );
        }
        assert_eq!(tables(&url).await, "", "a refused command created tables");

        let (ok, text) = run(&envs, &["migrate"]);
        assert!(ok, "{text}");
        let (ok, text) = run(&envs, &["token", "create", "--name", "after"]);
        assert!(ok, "{text}");

        // A newer release's migration: commands refuse, and so does `migrate` (no downgrade).
        let checksum = if url.starts_with("sqlite:") {
            "X'00'"
        } else {
            "'\\x00'::bytea"
        };
        execute(
            &url,
            &format!(
                "INSERT INTO _sqlx_migrations \
                 (version, description, success, checksum, execution_time) \
                 VALUES (9999, 'from a newer release', TRUE, {checksum}, 0)"
            ),
        )
        .await;
        let before = tables(&url).await;
        for args in [&["token", "list"][..], &["migrate"]] {
            let (ok, text) = run(&envs, args);
            assert!(!ok, "{args:?} ran on a newer schema: {text}");
            assert!(
                text.contains("newer than this scim-bridge") && text.contains("9999"),
                "{args:?}: {text}"
            );
        }
        assert_eq!(tables(&url).await, before);
    }
}
