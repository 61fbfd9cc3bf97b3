//! Per-token rate limit (governor, keyed by token name): a client over its quota gets 429 with
//! `Retry-After`, which Okta honours by rescheduling the job.

use crate::error::{ApiError, ApiResult};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

/// The limiter shared by every worker; `None` when the limit is off.
pub struct TokenRateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl TokenRateLimiter {
    /// `per_second = 0` turns the limit off; a burst below 1 counts as 1.
    pub fn new(per_second: u32, burst: u32) -> TokenRateLimiter {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        TokenRateLimiter {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// Take one request from `token_name`'s quota.
    pub fn check(&self, token_name: &str) -> ApiResult<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        match limiter.check_key(&token_name.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                // Retry-After is whole seconds (RFC 9110 §10.2.3); round up so a retry is accepted.
                let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(ApiError::RateLimited {
                    retry_after_secs: retry_after_secs.max(1),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_passes_then_429_with_retry_after_and_tokens_are_separate() {
        let limiter = TokenRateLimiter::new(1, 2);
        assert!(limiter.check("okta").is_ok());
        assert!(limiter.check("okta").is_ok());
        match limiter.check("okta") {
            Err(ApiError::RateLimited { retry_after_secs }) => {
                assert!((1..=2).contains(&retry_after_secs))
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limiter.check("entra").is_ok());
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = TokenRateLimiter::new(0, 0);
        for _ in 0..1000 {
            assert!(limiter.check("okta").is_ok());
        }
    }
}
