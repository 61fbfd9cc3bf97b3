//! Retry delays: exponential backoff with full jitter (a uniformly random delay between zero and
//! the exponential ceiling), so replicas retrying after one Coder outage spread out instead of
//! returning together. Randomness is a parameter, so tests and proptests are deterministic.

use rand::Rng;
use std::time::Duration;

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first retry's delay.
    pub base: Duration,
    /// Largest ceiling, whatever the attempt.
    pub cap: Duration,
}

impl Default for Backoff {
    /// 1 s doubling up to 5 min: twelve attempts (the default `max_attempts`) span about half an
    /// hour of Coder outage on average before a row is dead-lettered.
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The largest delay before retry number `attempt` (1 = first retry):
    /// `min(cap, base · 2^(attempt−1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(63);
        let factor = 1u64 << doublings;
        let nanos = self.base.as_nanos().saturating_mul(u128::from(factor));
        let nanos = nanos.min(self.cap.as_nanos());
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The delay before retry number `attempt`: uniform in `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: u32, rng: &mut dyn rand::RngCore) -> Duration {
        let ceiling = self.ceiling(attempt);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }

    /// The delay before retry number `attempt` when Coder asked for `retry_after`: never
    /// sooner than Coder asked (RFC 9110 §10.2.3), jittered on top so a burst of deferred rows
    /// does not return in one instant.
    pub fn delay_after(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut dyn rand::RngCore,
    ) -> Duration {
        let jitter = self.delay(attempt, rng);
        match retry_after {
            Some(wait) => wait + jitter.min(wait / 4 + Duration::from_millis(50)),
            None => jitter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(2), Duration::from_secs(2));
        assert_eq!(b.ceiling(9), Duration::from_secs(256));
        assert_eq!(b.ceiling(10), Duration::from_secs(300));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(300));
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_uses_the_whole_range() {
        let b = Backoff {
            base: Duration::from_secs(8),
            cap: Duration::from_secs(8),
        };
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..2000).map(|_| b.delay(1, &mut rng)).collect();
        assert!(
            delays.iter().any(|d| *d < Duration::from_secs(1)),
            "full jitter reaches near zero"
        );
        assert!(
            delays.iter().any(|d| *d > Duration::from_secs(7)),
            "and near the ceiling"
        );
    }

    proptest! {
        #[test]
        fn delay_is_within_zero_and_the_ceiling(
            base_ms in 1u64..10_000,
            cap_ms in 1u64..1_000_000,
            attempt in 0u32..200,
            seed in any::<u64>(),
        ) {
            let b = Backoff { base: Duration::from_millis(base_ms), cap: Duration::from_millis(cap_ms) };
            let mut rng = StdRng::seed_from_u64(seed);
            let delay = b.delay(attempt, &mut rng);
            prop_assert!(delay <= b.ceiling(attempt));
            prop_assert!(b.ceiling(attempt) <= b.cap);
            prop_assert!(b.ceiling(attempt) <= b.ceiling(attempt.saturating_add(1)));
        }

        #[test]
        fn retry_after_is_never_cut_short(
            wait_ms in 0u64..600_000,
            attempt in 1u32..50,
            seed in any::<u64>(),
        ) {
            let b = Backoff::default();
            let wait = Duration::from_millis(wait_ms);
            let mut rng = StdRng::seed_from_u64(seed);
            let delay = b.delay_after(attempt, Some(wait), &mut rng);
            prop_assert!(delay >= wait);
            prop_assert!(delay <= wait + wait / 4 + Duration::from_millis(50));
        }
    }
}
