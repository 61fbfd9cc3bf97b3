//! Time and randomness as parameters. Code that stamps, times out, paces, backs off or names
//! things takes a [`Clock`] and an [`IdSource`] instead of asking the system, so a test sets
//! the time and moves it instead of sleeping, and can make ids repeatable.
//!
//! This crate is the only code that reads the system clock or the global random generator:
//! `clippy.toml` forbids those calls everywhere else (`disallowed-methods`), and the system
//! implementations below are the one `#[allow]`. It is a crate of its own, below every other
//! one, because the store, the Coder client, the HTTP service and the worker all need it and
//! none of them should depend on another for it.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rand::{RngCore, SeedableRng};
use std::sync::Mutex;
use tokio::time::Instant;
use uuid::Uuid;

/// The source of "now".
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Wall time: what is stored or shown (timestamps, leases, expiries, `Retry-After` dates).
    fn now(&self) -> DateTime<Utc>;

    /// Monotonic time, for intervals and deadlines inside this process (caches, pacing, the
    /// worker's timers). tokio's `Instant`, so `sleep_until` takes it and a test's paused time
    /// (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`) moves it.
    fn instant(&self) -> Instant;

    /// How long since `earlier`, on [`Clock::instant`]'s time.
    fn elapsed(&self, earlier: Instant) -> std::time::Duration {
        self.instant().saturating_duration_since(earlier)
    }
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

// The one place that reads the system clock.
#[allow(clippy::disallowed_methods)]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// Real elapsed time, for figures that are reported and never decided on (what a test or a
/// benchmark prints): the system's monotonic clock, which a test's paused tokio time does not
/// stop. Anything the bridge does by time takes a [`Clock`] instead.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(std::time::Instant);

// Measurement only: the one other place that reads the system clock.
#[allow(clippy::disallowed_methods)]
impl Stopwatch {
    /// A stopwatch running from now.
    pub fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    /// Real time since [`Stopwatch::start`].
    pub fn elapsed(&self) -> std::time::Duration {
        self.0.elapsed()
    }
}

/// A test clock whose wall time only moves when told to. Its monotonic time is tokio's: a test
/// that needs that to stand still too runs on paused time and advances both.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Set the current instant.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.lock() = to;
    }

    /// Move the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        *self.lock() += by;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }

    fn instant(&self) -> Instant {
        SystemClock.instant()
    }
}

/// `clock.now()` cut to whole microseconds: PostgreSQL keeps microseconds, so a timestamp read
/// back from either backend equals the one written.
pub fn now_micros(clock: &dyn Clock) -> DateTime<Utc> {
    let now = clock.now();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}

/// The source of ids and secrets.
pub trait IdSource: Send + Sync + std::fmt::Debug {
    /// Fill `bytes` with random bytes fit for secrets (tokens, client secrets).
    fn fill(&self, bytes: &mut [u8]);

    /// A time-ordered (version 7) UUID, for ids that are indexed.
    fn uuid_v7(&self) -> Uuid;

    /// A random (version 4) UUID.
    fn uuid_v4(&self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// A generator seeded from this source, for what needs many cheap random numbers and no
    /// secrecy (backoff jitter).
    fn rng(&self) -> rand::rngs::StdRng {
        let mut seed = [0u8; 32];
        self.fill(&mut seed);
        rand::rngs::StdRng::from_seed(seed)
    }
}

/// The system's generator: ids and secrets from the thread-local CSPRNG (seeded by the OS).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemIds;

// The one place that reads the global random generator.
#[allow(clippy::disallowed_methods)]
impl IdSource for SystemIds {
    fn fill(&self, bytes: &mut [u8]) {
        rand::rng().fill_bytes(bytes);
    }

    fn uuid_v7(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// A test generator: the same seed gives the same ids and secrets, in the same order.
/// Version 7 UUIDs carry a counter instead of the time, so they sort in the order made.
#[derive(Debug)]
pub struct SeededIds {
    state: Mutex<(rand::rngs::StdRng, u64)>,
}

impl SeededIds {
    pub fn new(seed: u64) -> Self {
        SeededIds {
            state: Mutex::new((rand::rngs::StdRng::seed_from_u64(seed), 0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (rand::rngs::StdRng, u64)> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl IdSource for SeededIds {
    fn fill(&self, bytes: &mut [u8]) {
        self.lock().0.fill_bytes(bytes);
    }

    fn uuid_v7(&self) -> Uuid {
        let mut state = self.lock();
        state.1 += 1;
        let mut random = [0u8; 10];
        state.0.fill_bytes(&mut random);
        uuid::Builder::from_unix_timestamp_millis(state.1, &random).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(start());
        assert_eq!(clock.now(), start());
        clock.advance(chrono::Duration::seconds(90));
        assert_eq!(clock.now(), start() + chrono::Duration::seconds(90));
        clock.set(start());
        assert_eq!(clock.now(), start());
    }

    #[test]
    fn monotonic_time_is_tokios_and_wall_time_stays_put() {
        let clock = ManualClock::new(start());
        let before = clock.instant();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(clock.elapsed(before) >= std::time::Duration::from_millis(5));
        assert_eq!(clock.now(), start(), "wall time moves only when told");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopwatch_measures_real_time_while_tokio_time_stands_still() {
        let watch = Stopwatch::start();
        let paused = SystemClock.instant();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(watch.elapsed() >= std::time::Duration::from_millis(5));
        assert_eq!(SystemClock.instant(), paused);
    }

    #[test]
    fn now_is_truncated_to_microseconds() {
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00.123456789Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            now_micros(&ManualClock::new(t)).to_rfc3339(),
            "2026-01-01T00:00:00.123456+00:00"
        );
    }

    #[test]
    fn seeded_ids_repeat_and_sort_in_the_order_made() {
        let (a, b) = (SeededIds::new(7), SeededIds::new(7));
        let first: Vec<Uuid> = (0..3).map(|_| a.uuid_v7()).collect();
        let again: Vec<Uuid> = (0..3).map(|_| b.uuid_v7()).collect();
        assert_eq!(first, again);
        assert!(first.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a.uuid_v4().get_version_num(), 4);
        assert_ne!(SystemIds.uuid_v4(), SystemIds.uuid_v4());
    }
}
