//! Group commit for SQLite.
//!
//! A durable SQLite commit costs one fsync of the WAL (about 1 ms on the machines measured in
//! docs/BENCHMARKS.md), and SQLite's `synchronous=FULL` pays it per transaction, which caps
//! the single writer at a few hundred commits a second. Instead the writer runs with
//! `synchronous=NORMAL` (a commit appends its frames to the WAL without syncing) and every
//! write waits here, before the caller is answered, until an fsync of the WAL that began after
//! its commit has finished. One leader syncs for every commit queued behind it, so concurrent
//! writers share one fsync. Durability is that of `synchronous=FULL`: nothing is acknowledged
//! before its WAL frames are on disk (SQLite still syncs the WAL itself before each
//! checkpoint). Other connections may read a committed change a moment before it is
//! acknowledged.

use std::path::PathBuf;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::error::{StoreError, StoreResult};

#[derive(Debug, Default)]
struct SyncState {
    /// Tickets handed out: one per commit that wants durability.
    requested: u64,
    /// Every ticket up to this one is durable.
    synced: u64,
    /// A leader is syncing now.
    syncing: bool,
}

/// Shares WAL fsyncs between concurrent commits.
#[derive(Debug)]
pub(crate) struct WalSync {
    wal: PathBuf,
    state: Mutex<SyncState>,
    done: Notify,
}

impl WalSync {
    /// Group commit for the database file `db` (its WAL is `db-wal`).
    pub(crate) fn new(db: PathBuf) -> WalSync {
        let mut wal = db.into_os_string();
        wal.push("-wal");
        WalSync {
            wal: PathBuf::from(wal),
            state: Mutex::new(SyncState::default()),
            done: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Return once everything committed before this call is on disk.
    pub(crate) async fn wait_durable(&self) -> StoreResult<()> {
        let ticket = {
            let mut s = self.lock();
            s.requested += 1;
            s.requested
        };
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            // Registered before the check, so a leader finishing in between still wakes us.
            notified.as_mut().enable();
            let lead = {
                let mut s = self.lock();
                if s.synced >= ticket {
                    return Ok(());
                }
                if s.syncing {
                    None
                } else {
                    s.syncing = true;
                    Some(s.requested)
                }
            };
            let Some(target) = lead else {
                notified.await;
                continue;
            };
            let wal = self.wal.clone();
            let result = tokio::task::spawn_blocking(move || sync_file(&wal)).await;
            {
                let mut s = self.lock();
                s.syncing = false;
                if matches!(result, Ok(Ok(()))) {
                    s.synced = s.synced.max(target);
                }
            }
            self.done.notify_waiters();
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(sync_error(&self.wal, e)),
                Err(e) => return Err(sync_error(&self.wal, std::io::Error::other(e))),
            }
        }
    }
}

fn sync_error(wal: &std::path::Path, e: std::io::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::new(
        e.kind(),
        format!("syncing {}: {e}", wal.display()),
    )))
}

fn sync_file(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new().read(true).open(path) {
        // fsync is per file, not per descriptor: this flushes the frames the writer appended.
        Ok(file) => file.sync_data(),
        // No WAL yet means nothing was written through it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_waiters_all_return_and_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(dir.path().join("x.db-wal"), b"frames").unwrap();
        let sync = Arc::new(WalSync::new(db));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let s = sync.clone();
            tasks.push(tokio::spawn(async move { s.wait_durable().await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let s = sync.lock();
        assert_eq!(s.requested, 64);
        assert_eq!(s.synced, 64, "every ticket is covered by a finished sync");
        assert!(!s.syncing);
    }

    #[tokio::test]
    async fn a_failed_sync_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the WAL should be: opening it read-only works, but make the path
        // unusable by pointing inside a file instead.
        let file = dir.path().join("plain");
        std::fs::write(&file, b"").unwrap();
        let sync = WalSync::new(file.join("db"));
        let err = sync.wait_durable().await.unwrap_err();
        assert!(err.to_string().contains("syncing"), "{err}");
    }
}
