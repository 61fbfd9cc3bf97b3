//! Paused tokio time that moves only when the test moves it, for tests that do real I/O.
//!
//! With `#[tokio::test(start_paused = true)]` tokio advances paused time by itself whenever the
//! runtime has nothing to run, to the next timer. A test whose futures wait on real I/O (the
//! Coder fake over loopback, SQLite's worker thread, PostgreSQL) leaves the runtime idle while
//! the answer travels, so time would jump and fire the HTTP client's and the pool's timeouts,
//! the worker's polls and leases, at moments that depend on the machine's load. tokio does not
//! auto-advance while a `spawn_blocking` task runs ("Preventing auto-advance" in the docs of
//! `tokio::time::pause`): [`hold_time`] keeps one parked for the whole test, so time moves
//! only through `tokio::time::advance`.

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

/// While this lives, paused tokio time does not advance by itself. Drop it to let it.
#[derive(Debug)]
pub struct TimeHold {
    _release: mpsc::Sender<()>,
}

/// Stop tokio's auto-advance for as long as the returned hold lives. Call it first in a test
/// on paused time, before any I/O: a connection attempt already in flight could be timed out.
pub fn hold_time() -> TimeHold {
    let (release, held) = mpsc::channel::<()>();
    // Parks one thread of the blocking pool until the hold is dropped (the channel closes).
    drop(tokio::task::spawn_blocking(move || {
        let _ = held.recv();
    }));
    TimeHold { _release: release }
}

/// Await `future`, failing the test when it takes longer than `limit` of real time. Paused
/// time cannot bound a wait its own timers never end, so this bound is measured by a parked
/// thread of the blocking pool (which also holds auto-advance off while it waits).
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    let (done, waiting) = mpsc::channel::<()>();
    let expired = tokio::task::spawn_blocking(move || {
        matches!(
            waiting.recv_timeout(limit),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
    });
    tokio::select! {
        biased;
        value = future => {
            drop(done);
            value
        }
        expired = expired => {
            if matches!(expired, Ok(true)) {
                panic!("not within {limit:?} of real time: {what}");
            }
            panic!("the real-time bound on {what} ended early: {expired:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clock::Clock as _;

    /// Tokio's time, paused in these tests.
    fn now() -> tokio::time::Instant {
        clock::SystemClock.instant()
    }

    /// Waits for an answer from a thread outside the runtime, as a reply from a server or
    /// SQLite's worker thread arrives: the runtime is idle meanwhile.
    async fn slow_answer() {
        let (answer, answered) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let _ = answer.send(());
        });
        answered.await.expect("answered");
    }

    #[tokio::test(start_paused = true)]
    async fn unheld_paused_time_jumps_while_the_runtime_waits_on_io() {
        let start = now();
        let sleep = tokio::spawn(tokio::time::sleep(Duration::from_secs(60)));
        slow_answer().await;
        assert_eq!(now() - start, Duration::from_secs(60));
        assert!(sleep.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn held_time_moves_only_when_advanced() {
        let _time = hold_time();
        let start = now();
        let sleep = tokio::spawn(tokio::time::sleep(Duration::from_secs(60)));
        slow_answer().await;
        assert_eq!(now(), start, "time stood still while the runtime waited");
        assert!(!sleep.is_finished());
        tokio::time::advance(Duration::from_millis(59_999)).await;
        slow_answer().await;
        assert!(!sleep.is_finished(), "59.999 s of 60");
        tokio::time::advance(Duration::from_millis(1)).await;
        within(Duration::from_secs(30), "the sleep", sleep)
            .await
            .expect("slept");
        assert_eq!(now() - start, Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "not within 10ms of real time: never")]
    async fn within_fails_a_wait_that_does_not_end() {
        let _time = hold_time();
        within(
            Duration::from_millis(10),
            "never",
            std::future::pending::<()>(),
        )
        .await;
    }
}
