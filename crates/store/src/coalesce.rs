//! Coalesced lookups: concurrent reads of the same shape share one statement.
//!
//! The IdPs' hot path is `GET /Users?filter=userName eq "…"`, one small indexed read. On SQLite
//! most of its cost is not the read but the hand-off to the connection's own thread and back
//! (sqlx runs every SQLite statement there). Under load, lookups that arrive while one is in
//! flight queue here and go out together as one statement: one hand-off for the batch. The
//! runners read on connections they keep (see `Backend::lookup_conns`), so no return to the
//! pool adds a second hand-off.
//!
//! Consistency: a lookup joins only a batch that has not started, so its statement begins after
//! the lookup was asked for and sees every write acknowledged before it. A runner is a spawned
//! task, so a caller that goes away (a client disconnecting) strands nobody else in its batch.

use std::sync::Mutex;
use tokio::sync::oneshot;

/// Keys per statement. Batches are padded to a power of two (see [`padded_len`]), so each
/// connection prepares at most a handful of statement shapes.
pub(crate) const MAX_BATCH: usize = 32;

/// How many batches may be in flight at once. One and two measured alike on two cores; two
/// keep one slow batch from holding up every lookup behind it. More would only split batches.
const MAX_RUNNERS: usize = 2;

/// A caller's side: its answer to come.
pub(crate) type Reply<V> = oneshot::Receiver<Option<V>>;

/// A caller waiting for its key. `None` means the batch failed: the caller reads alone, so
/// that it gets its own error.
pub(crate) struct Waiter<K, V> {
    pub key: K,
    pub reply: oneshot::Sender<Option<V>>,
}

/// The queue of lookups not yet sent, and how many runners are sending batches.
pub(crate) struct Coalescer<K, V> {
    state: Mutex<State<K, V>>,
}

struct State<K, V> {
    queue: Vec<Waiter<K, V>>,
    runners: usize,
}

impl<K, V> std::fmt::Debug for Coalescer<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (queued, runners) = self
            .state
            .lock()
            .map(|s| (s.queue.len(), s.runners))
            .unwrap_or_default();
        f.debug_struct("Coalescer")
            .field("queued", &queued)
            .field("runners", &runners)
            .finish()
    }
}

impl<K, V> Default for Coalescer<K, V> {
    fn default() -> Self {
        Coalescer {
            state: Mutex::new(State {
                queue: Vec::new(),
                runners: 0,
            }),
        }
    }
}

impl<K, V> Coalescer<K, V> {
    /// Queue a lookup. When no runner is free to pick it up, the caller gets the batch to
    /// start a runner with (it is then counted as running until [`Coalescer::next_batch`]
    /// answers `None`).
    pub fn enqueue(&self, key: K) -> (Reply<V>, Option<Vec<Waiter<K, V>>>) {
        let (reply, receiver) = oneshot::channel();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.queue.push(Waiter { key, reply });
        let start = (state.runners < MAX_RUNNERS).then(|| {
            state.runners += 1;
            take_batch(&mut state.queue)
        });
        (receiver, start)
    }

    /// What a runner sends next, once its last batch is answered; `None` retires it.
    pub fn next_batch(&self) -> Option<Vec<Waiter<K, V>>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.queue.is_empty() {
            state.runners -= 1;
            None
        } else {
            Some(take_batch(&mut state.queue))
        }
    }
}

/// The oldest queued lookups, at most [`MAX_BATCH`].
fn take_batch<K, V>(queue: &mut Vec<Waiter<K, V>>) -> Vec<Waiter<K, V>> {
    if queue.len() <= MAX_BATCH {
        std::mem::take(queue)
    } else {
        queue.drain(..MAX_BATCH).collect()
    }
}

/// The number of bound keys for `n` distinct keys: the next power of two (the last key is
/// repeated), so a connection's statement cache holds a few shapes, not one per batch size.
pub(crate) fn padded_len(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_lookups_start_runners_and_later_ones_queue_for_them() {
        let lookups: Coalescer<u32, u32> = Coalescer::default();
        let (_a, first) = lookups.enqueue(1);
        assert_eq!(first.map(|b| b.len()), Some(1));
        let (_b, second) = lookups.enqueue(2);
        assert_eq!(
            second.map(|b| b.len()),
            Some(1),
            "a second runner may start"
        );
        let mut queued = Vec::new();
        for key in 3..6 {
            let (rx, start) = lookups.enqueue(key);
            assert!(start.is_none(), "both runners are busy: {key} waits");
            queued.push(rx);
        }
        let next = lookups.next_batch().expect("the queue is not empty");
        let keys: Vec<u32> = next.iter().map(|w| w.key).collect();
        assert_eq!(keys, [3, 4, 5], "oldest first, all in one batch");
        assert!(lookups.next_batch().is_none(), "the first runner retires");
        assert!(lookups.next_batch().is_none(), "so does the second");
        let (_c, again) = lookups.enqueue(9);
        assert!(again.is_some(), "with no runner left, a lookup starts one");
    }

    #[test]
    fn a_batch_holds_at_most_max_batch_keys_oldest_first() {
        let lookups: Coalescer<usize, ()> = Coalescer::default();
        let mut receivers = Vec::new();
        for key in 0..MAX_RUNNERS {
            let (rx, start) = lookups.enqueue(key);
            assert!(start.is_some());
            receivers.push(rx);
        }
        for key in 0..(MAX_BATCH + 3) {
            receivers.push(lookups.enqueue(100 + key).0);
        }
        let first = lookups.next_batch().expect("queued");
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!(first[0].key, 100);
        let rest = lookups.next_batch().expect("queued");
        assert_eq!(
            rest.iter().map(|w| w.key).collect::<Vec<_>>(),
            [100 + MAX_BATCH, 101 + MAX_BATCH, 102 + MAX_BATCH]
        );
    }

    #[test]
    fn a_caller_that_went_away_does_not_stop_the_others_replies() {
        let lookups: Coalescer<u32, &'static str> = Coalescer::default();
        let _runners: Vec<_> = (0..MAX_RUNNERS)
            .map(|k| lookups.enqueue(k as u32))
            .collect();
        let (gone, _) = lookups.enqueue(10);
        let (mut stays, _) = lookups.enqueue(11);
        drop(gone);
        let batch = lookups.next_batch().expect("queued");
        let sent: Vec<bool> = batch
            .into_iter()
            .map(|w| w.reply.send(Some("found")).is_ok())
            .collect();
        assert_eq!(sent, [false, true]);
        assert_eq!(stays.try_recv(), Ok(Some("found")));
    }

    #[test]
    fn padding_rounds_up_to_a_power_of_two() {
        let padded: Vec<usize> = [0, 1, 2, 3, 5, 8, 9, 32].map(padded_len).to_vec();
        assert_eq!(padded, [1, 1, 2, 4, 8, 8, 16, 32]);
    }
}
