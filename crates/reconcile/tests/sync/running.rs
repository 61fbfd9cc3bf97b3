//! A running worker and the means to stop it: the sync tests' (through `harness`) and the sync
//! bench's (`#[path]`-included). It depends on the reconcile crate, tokio and test-support alone.

use reconcile::Worker;
use std::time::Duration;
use tokio::sync::oneshot;

/// The longest any one wait on the worker may take in real time before the test fails: a bound
/// for a hang, far above what a passing test takes on a loaded machine (the longest wait, 200
/// changes after an outage on PostgreSQL, takes about 5 s alone and 30 s under a load of 20).
pub const REAL_TIME_LIMIT: Duration = Duration::from_secs(300);

/// A running worker and the means to stop it.
pub struct Running {
    stop: oneshot::Sender<()>,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn spawn(worker: Worker) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        worker
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running { stop, task }
}

impl Running {
    /// Stop the worker and wait until it has released its leases.
    pub async fn stop(self) {
        let task = self.begin_stop();
        test_support::within(REAL_TIME_LIMIT, "the worker to stop", task)
            .await
            .unwrap();
    }

    /// Tell the worker to stop, without waiting: the task to await.
    pub fn begin_stop(self) -> tokio::task::JoinHandle<()> {
        let _ = self.stop.send(());
        self.task
    }
}
