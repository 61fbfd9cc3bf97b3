//! Rate limits (governor): per token for authenticated requests, and per client address for
//! failed authentication. Over either, 429 with `Retry-After`, which Okta honours by
//! rescheduling the job.

use crate::error::{ApiError, ApiResult};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The limiter shared by every worker; `None` when the limit is off.
pub struct TokenRateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl TokenRateLimiter {
    /// `per_second = 0` turns the limit off; a burst below 1 counts as 1.
    pub fn new(per_second: u32, burst: u32) -> TokenRateLimiter {
        TokenRateLimiter {
            limiter: keyed(per_second, burst),
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
            Err(not_until) => Err(ApiError::RateLimited {
                retry_after_secs: whole_seconds(not_until.wait_time_from(self.clock.now())),
            }),
        }
    }
}

/// A keyed limiter of `per_second` with `burst`; `None` when `per_second` is 0.
fn keyed<K: Hash + Eq + Clone>(per_second: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_second).map(|rate| {
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
    })
}

/// Retry-After is whole seconds (RFC 9110 §10.2.3); rounded up, at least 1, so a retry is
/// accepted.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Failed authentication per client address (governor, keyed by address; an IPv6 client by its
/// /64, the smallest block a host is usually given). An address over its allowance gets 429 with
/// `Retry-After` before any credential work is done, so a flood of bad tokens costs neither
/// token reloads nor signature checks. A credential the service already knows still passes from
/// that address: the limit counts failures, and valid IdP traffic behind the same proxy or NAT
/// must not pay for an attacker's.
pub struct AuthFailureLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses over their allowance, until when; read before any credential work.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    last_pruned: Mutex<Instant>,
    clock: DefaultClock,
    /// Our time, for the blocked-until marks (governor keeps its own).
    time: Arc<dyn clock::Clock>,
}

/// Past this many tracked addresses, state that has gone back to fresh is dropped (at most once
/// a second), so a flood from many addresses does not grow memory without bound.
const PRUNE_ABOVE: usize = 4096;

impl AuthFailureLimiter {
    /// `per_second = 0` turns the limit off; a burst below 1 counts as 1.
    pub fn new(per_second: u32, burst: u32, time: Arc<dyn clock::Clock>) -> AuthFailureLimiter {
        AuthFailureLimiter {
            limiter: keyed(per_second, burst),
            blocked: Mutex::new(HashMap::new()),
            last_pruned: Mutex::new(time.instant()),
            clock: DefaultClock::default(),
            time,
        }
    }

    /// 429 while `addr` is over its allowance; takes nothing from it.
    pub fn check(&self, addr: Option<IpAddr>) -> ApiResult<()> {
        if self.limiter.is_none() {
            return Ok(());
        }
        let key = key(addr);
        let Ok(blocked) = self.blocked.lock() else {
            return Ok(());
        };
        let now = self.time.instant();
        match blocked.get(&key) {
            Some(until) if *until > now => Err(ApiError::AuthFailuresLimited {
                retry_after_secs: whole_seconds(until.saturating_duration_since(now)),
            }),
            _ => Ok(()),
        }
    }

    /// One failed authentication from `addr`: 429 once its allowance is spent.
    pub fn record_failure(&self, addr: Option<IpAddr>) -> ApiResult<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let key = key(addr);
        let outcome = limiter.check_key(&key);
        self.prune(limiter);
        match outcome {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                if let Ok(mut blocked) = self.blocked.lock() {
                    blocked.insert(key, self.time.instant() + wait);
                }
                Err(ApiError::AuthFailuresLimited {
                    retry_after_secs: whole_seconds(wait),
                })
            }
        }
    }

    fn prune(&self, limiter: &DefaultKeyedRateLimiter<IpAddr>) {
        let Ok(mut last) = self.last_pruned.lock() else {
            return;
        };
        if self.time.elapsed(*last) < Duration::from_secs(1) {
            return;
        }
        *last = self.time.instant();
        if limiter.len() > PRUNE_ABOVE {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Ok(mut blocked) = self.blocked.lock()
            && blocked.len() > PRUNE_ABOVE
        {
            let now = self.time.instant();
            blocked.retain(|_, until| *until > now);
            blocked.shrink_to_fit();
        }
    }
}

/// The address a failure counts against.
fn key(addr: Option<IpAddr>) -> IpAddr {
    match addr {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
        },
        Some(v4) => v4,
        // No peer address (not over TCP): one shared allowance.
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
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
    fn failures_are_limited_per_address_and_checked_without_taking() {
        let limiter = AuthFailureLimiter::new(1, 3, Arc::new(clock::SystemClock));
        let attacker = Some("203.0.113.9".parse().unwrap());
        for _ in 0..3 {
            assert!(limiter.check(attacker).is_ok());
            assert!(limiter.record_failure(attacker).is_ok());
        }
        assert!(matches!(
            limiter.record_failure(attacker),
            Err(ApiError::AuthFailuresLimited {
                retry_after_secs: 1
            })
        ));
        // Checking again and again takes nothing and keeps answering 429.
        for _ in 0..10 {
            assert!(matches!(
                limiter.check(attacker),
                Err(ApiError::AuthFailuresLimited { .. })
            ));
        }
        assert!(limiter.check(Some("198.51.100.1".parse().unwrap())).is_ok());
        // One IPv6 host, many addresses in its /64: one allowance.
        let v6 = AuthFailureLimiter::new(1, 2, Arc::new(clock::SystemClock));
        assert!(
            v6.record_failure(Some("2001:db8::1".parse().unwrap()))
                .is_ok()
        );
        assert!(
            v6.record_failure(Some("2001:db8::2".parse().unwrap()))
                .is_ok()
        );
        assert!(
            v6.record_failure(Some("2001:db8::3".parse().unwrap()))
                .is_err()
        );
        assert!(v6.check(Some("2001:db8::4".parse().unwrap())).is_err());
        assert!(v6.check(Some("2001:db8:0:1::1".parse().unwrap())).is_ok());
        let off = AuthFailureLimiter::new(0, 0, Arc::new(clock::SystemClock));
        for _ in 0..100 {
            assert!(off.record_failure(attacker).is_ok());
        }
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = TokenRateLimiter::new(0, 0);
        for _ in 0..1000 {
            assert!(limiter.check("okta").is_ok());
        }
    }
}
