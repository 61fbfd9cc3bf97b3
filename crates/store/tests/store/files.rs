//! The SQLite database and its `-wal` and `-shm` companions are readable by their owner only.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use store::{Store, StoreOptions};

use crate::harness::create_user;

/// The permission bits in octal, as `ls -l` and `chmod` speak of them.
fn mode(path: &Path) -> String {
    format!(
        "{:04o}",
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    )
}

fn companions(db: &Path) -> [std::path::PathBuf; 3] {
    ["", "-wal", "-shm"].map(|suffix| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        name.into()
    })
}

/// Under the common umask 022, SQLite alone makes 0644 files: the store makes all three 0600.
/// (Each nextest test is its own process, so setting the umask touches no other test.)
#[tokio::test]
async fn a_new_database_and_its_wal_and_shm_are_owner_only() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bridge.db");
    let store = Store::connect(
        &format!("sqlite://{}", db.display()),
        StoreOptions::default(),
    )
    .await
    .unwrap();
    create_user(&store, "alice@example.com").await;
    for file in companions(&db) {
        assert!(
            file.exists(),
            "{} exists while the store is open",
            file.display()
        );
        assert_eq!(mode(&file), "0600", "{}", file.display());
    }
    // A file made beside it under the same umask is 0644: the umask really was permissive.
    let control = dir.path().join("control");
    std::fs::write(&control, "").unwrap();
    assert_eq!(mode(&control), "0644");
}

/// A database other users could read (made by an older version, or copied in by hand) is
/// tightened to 0600 when the store opens it, `-wal` and `-shm` included.
#[tokio::test]
async fn an_existing_database_others_can_read_is_tightened() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bridge.db");
    let url = format!("sqlite://{}", db.display());
    let store = Store::connect(&url, StoreOptions::default()).await.unwrap();
    create_user(&store, "alice@example.com").await;
    for file in companions(&db) {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
    }
    let reopened = Store::connect(&url, StoreOptions::default()).await.unwrap();
    create_user(&reopened, "bob@example.com").await;
    for file in companions(&db) {
        assert_eq!(mode(&file), "0600", "{}", file.display());
    }
}
