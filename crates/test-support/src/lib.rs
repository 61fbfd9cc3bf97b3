//! What every test suite of the bridge shares: a fresh database per test on SQLite or PostgreSQL
//! (removed when the test ends), a store on it with a manual clock, the macro that runs a test on both, a port nothing listens on,
//! a bounded wait for an HTTP server, and paused tokio time that only the test moves.
//!
//! The PostgreSQL server is `SCIM_BRIDGE_TEST_POSTGRES_URL` when set, and then it is required: a
//! PostgreSQL variant fails when that server cannot be reached. When the variable is not set,
//! the default local server is tried and the PostgreSQL variants are skipped, loudly, if it is
//! not there.

// Test support: a failed set-up is the test failing, with the reason in the panic.
#![allow(clippy::panic, clippy::expect_used)]

use clock::{IdSource as _, SystemIds};
use sqlx::Connection;
use std::time::Duration;

mod paused;
mod store;
pub use paused::{TimeHold, hold_time, within};
pub use store::{TestStore, start_time};

/// An Okta-shaped User body whose email is its userName: what the store and worker suites create.
pub fn user_json(user_name: &str) -> serde_json::Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": { "givenName": "Given", "familyName": "Family" },
        "emails": [{ "value": user_name, "type": "work", "primary": true }],
        "active": true,
    })
}

/// The variable that names (and requires) the PostgreSQL server the tests use.
pub const POSTGRES_URL_VAR: &str = "SCIM_BRIDGE_TEST_POSTGRES_URL";
/// The server tried when the variable is not set.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// How long connecting to the PostgreSQL server may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test: a file in a temporary directory, or a new database on
/// the PostgreSQL server. Dropping it removes the directory or drops the database (ending any
/// connection still open to it).
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    backend: Backend,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// A fresh database on `backend`; `None` only for PostgreSQL when it is not required and not
    /// reachable (see [`TestDatabase::postgres`]).
    pub async fn new(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => Some(TestDatabase::sqlite()),
            Backend::Postgres => TestDatabase::postgres().await,
        }
    }

    /// A database file in a new temporary directory (created on first connection).
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("a temporary directory");
        TestDatabase {
            url: format!("sqlite://{}", dir.path().join("store.db").display()),
            backend: Backend::Sqlite,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A new database on the PostgreSQL server. Panics when `SCIM_BRIDGE_TEST_POSTGRES_URL` is
    /// set and the server cannot be reached; `None` (said on stderr) when it is not set and the
    /// default server is not there.
    pub async fn postgres() -> Option<TestDatabase> {
        let required = postgres_configured();
        let admin_url = required
            .clone()
            .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
        match TestDatabase::postgres_at(&admin_url).await {
            Ok(db) => Some(db),
            Err(e) if required.is_none() => {
                eprintln!(
                    "\n!!!!! PostgreSQL is NOT reachable at {admin_url} ({e}): the PostgreSQL variant \
                     of this test was SKIPPED. Start it or set {POSTGRES_URL_VAR}. !!!!!\n"
                );
                None
            }
            Err(e) => panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {e}"),
        }
    }

    /// A new database on the server at `admin_url` (any database on it that the user may connect
    /// to); an error when the server cannot be reached.
    pub async fn postgres_at(admin_url: &str) -> Result<TestDatabase, String> {
        let mut admin =
            tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect(admin_url))
                .await
                .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
                .map_err(|e| e.to_string())?;
        let name = format!("scimb_test_{}", SystemIds.uuid_v4().simple());
        // template0: CREATE DATABASE refuses a template another session is connected to, and a
        // parallel test may be connected to template1.
        sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE template0"))
            .execute(&mut admin)
            .await
            .map_err(|e| e.to_string())?;
        let mut url = url::Url::parse(admin_url).map_err(|e| e.to_string())?;
        url.set_path(&format!("/{name}"));
        Ok(TestDatabase {
            url: url.to_string(),
            backend: Backend::Postgres,
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.to_owned(),
                name,
            },
        })
    }

    /// The database URL, for `Store::connect`, a second replica or a raw connection.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn is_postgres(&self) -> bool {
        self.backend == Backend::Postgres
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs inside the test's runtime, which cannot block on itself: drop the database
        // from a thread with a runtime of its own. FORCE ends the connections still open to it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop the test database {}", self.url);
        }
    }
}

/// The PostgreSQL server named by `SCIM_BRIDGE_TEST_POSTGRES_URL`, when set and not empty.
pub fn postgres_configured() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.is_empty())
}

/// A loopback port nothing listens on (it was free a moment ago): for "nothing answers there".
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("the bound address").port()
}

/// Wait until `GET url` answers 2xx, polling for at most `limit`; panics with `url` after that.
pub async fn wait_http(client: &reqwest::Client, url: &str, limit: Duration) {
    let polled = tokio::time::timeout(limit, async {
        loop {
            if let Ok(response) = client.get(url).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if polled.is_err() {
        panic!("{url} did not answer 2xx within {limit:?}");
    }
}

/// Run each named `async fn` once on SQLite and once on PostgreSQL.
///
/// - `backend_tests!(open = path; names…)`: modules `sqlite` and `postgres`, each with a test per
///   name that calls `name(fixture)`, the fixture being `path(Backend).await` (an `Option`:
///   `None` skips, see [`TestDatabase::postgres`]).
/// - `backend_tests!(open = path, by_ref; names…)`: the same, calling `name(&fixture)`.
/// - `backend_tests!(open = path, paused; names…)`: like the first, on paused tokio time that
///   moves only when the test advances it ([`hold_time`], taken before the fixture opens).
/// - `backend_tests!(per_test; names…)`: a module per name with tests `sqlite` and `postgres`
///   that call `name(Backend)`; the test opens what it needs.
#[macro_export]
macro_rules! backend_tests {
    (open = $open:path; $($name:ident),* $(,)?) => {
        $crate::backend_tests!(@by_backend $open, by_value, real, $($name),*);
    };
    (open = $open:path, by_ref; $($name:ident),* $(,)?) => {
        $crate::backend_tests!(@by_backend $open, by_ref, real, $($name),*);
    };
    (open = $open:path, paused; $($name:ident),* $(,)?) => {
        $crate::backend_tests!(@by_backend $open, by_value, paused, $($name),*);
    };
    (@call by_value, $test:path, $fixture:ident) => { $test($fixture).await };
    (@call by_ref, $test:path, $fixture:ident) => { $test(&$fixture).await };
    (@test real, $open:path, $mode:ident, $backend:ident, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let Some(fixture) = $open($crate::Backend::$backend).await else { return };
            $crate::backend_tests!(@call $mode, super::$name, fixture);
        }
    };
    (@test paused, $open:path, $mode:ident, $backend:ident, $name:ident) => {
        #[tokio::test(start_paused = true)]
        async fn $name() {
            let _time = $crate::hold_time();
            let Some(fixture) = $open($crate::Backend::$backend).await else { return };
            $crate::backend_tests!(@call $mode, super::$name, fixture);
        }
    };
    (@by_backend $open:path, $mode:ident, $time:ident, $($name:ident),*) => {
        mod sqlite {
            $( $crate::backend_tests!(@test $time, $open, $mode, Sqlite, $name); )*
        }
        mod postgres {
            $( $crate::backend_tests!(@test $time, $open, $mode, Postgres, $name); )*
        }
    };
    (per_test; $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
                }
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[tokio::test]
    async fn an_unreachable_postgres_server_is_an_error_not_a_skip() {
        let closed = format!("postgres://postgres@127.0.0.1:{}/test", free_port());
        assert!(TestDatabase::postgres_at(&closed).await.is_err());
    }

    /// The rule the PostgreSQL variants follow: with the variable set, an unreachable server
    /// fails the test. Run in a child process so the variable is set for it alone.
    #[test]
    fn a_required_postgres_server_that_is_unreachable_fails_the_test() {
        const CHILD: &str = "SCIM_BRIDGE_TEST_SUPPORT_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(TestDatabase::postgres());
            return;
        }
        let closed = format!("postgres://postgres@127.0.0.1:{}/test", free_port());
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::a_required_postgres_server_that_is_unreachable_fails_the_test",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env(POSTGRES_URL_VAR, &closed)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "the child passed: {stderr}");
        assert!(
            stderr.contains("is set but PostgreSQL is unreachable"),
            "{stderr}"
        );
    }

    #[tokio::test]
    async fn a_sqlite_database_is_removed_with_its_directory() {
        let db = TestDatabase::sqlite();
        let file = db.url().trim_start_matches("sqlite://").to_owned();
        let dir = Path::new(&file).parent().unwrap().to_owned();
        assert!(dir.exists());
        drop(db);
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn a_postgres_database_is_dropped_with_the_guard() {
        let Some(db) = TestDatabase::postgres().await else {
            return;
        };
        let Cleanup::Postgres { admin_url, name } = &db.cleanup else {
            unreachable!()
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
        sqlx::query("CREATE TABLE t (x int)")
            .execute(&mut conn)
            .await
            .unwrap();
        drop(db);
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(
            left, 0,
            "the database is dropped, even with a connection open"
        );
    }

    #[tokio::test]
    async fn wait_http_gives_up_on_a_closed_port() {
        let url = format!("http://127.0.0.1:{}/healthz", free_port());
        let waited = tokio::spawn(async move {
            wait_http(&reqwest::Client::new(), &url, Duration::from_millis(200)).await
        })
        .await;
        assert!(waited.is_err_and(|e| e.is_panic()));
    }
}
