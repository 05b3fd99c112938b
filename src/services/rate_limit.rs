//! Keyed rate limits by the generic cell rate algorithm: each key keeps one
//! instant (its theoretical arrival time), so a limit costs a map entry per
//! active client and a lock held for a few instructions. Per instance: with
//! several instances behind a balancer each counts its own share.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before the idle ones are swept.
const SWEEP_AT: usize = 10_000;

/// `rate` events per `period`, with bursts of up to `burst` at once.
#[derive(Debug)]
pub struct RateLimiter<K> {
    /// Time one event costs.
    interval: Duration,
    /// How far ahead of now a key's arrival time may run (`burst` events).
    tolerance: Duration,
    arrivals: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `None` when `rate` is 0 (no limit).
    pub fn new(rate: u32, period: Duration, burst: u32) -> Option<Self> {
        if rate == 0 {
            return None;
        }
        let interval = period / rate;
        Some(Self {
            interval,
            tolerance: interval * burst.max(1),
            arrivals: Mutex::new(HashMap::new()),
        })
    }

    /// `rate` per second with bursts of twice that.
    pub fn per_second(rate: u32) -> Option<Self> {
        Self::new(rate, Duration::from_secs(1), rate.saturating_mul(2))
    }

    /// Counts one event of `key`: `Err(wait)` when it is over the limit
    /// (nothing is counted then).
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut arrivals = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        let next = self.next_arrival(arrivals.get(key).copied(), now);
        let ahead = next.saturating_duration_since(now);
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        if arrivals.len() >= SWEEP_AT && !arrivals.contains_key(key) {
            arrivals.retain(|_, at| *at > now);
        }
        arrivals.insert(key.clone(), next);
        Ok(())
    }

    /// Whether one more event of `key` would pass, without counting it:
    /// `Err(wait)` when it would not.
    pub fn peek(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let arrivals = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        let next = self.next_arrival(arrivals.get(key).copied(), now);
        let ahead = next.saturating_duration_since(now);
        if ahead > self.tolerance {
            Err(ahead - self.tolerance)
        } else {
            Ok(())
        }
    }

    fn next_arrival(&self, stored: Option<Instant>, now: Instant) -> Instant {
        stored.map_or(now, |at| at.max(now)) + self.interval
    }

    /// Keys currently tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// Whole seconds to put in `Retry-After` (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter = RateLimiter::new(10, Duration::from_secs(1), 5).unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.check(&"a", t0).is_ok());
        }
        let wait = limiter.check(&"a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Another key has its own budget.
        assert!(limiter.check(&"b", t0).is_ok());
        // One interval later one more passes, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limiter.check(&"a", t1).is_ok());
        assert!(limiter.check(&"a", t1).is_err());
        // After a quiet second the whole burst is back.
        let t2 = t1 + Duration::from_secs(1);
        for _ in 0..5 {
            assert!(limiter.check(&"a", t2).is_ok());
        }
        assert!(limiter.check(&"a", t2).is_err());
    }

    #[test]
    fn peek_counts_nothing() {
        let limiter = RateLimiter::new(1, Duration::from_secs(60), 2).unwrap();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(limiter.peek(&1, t0).is_ok());
        }
        limiter.check(&1, t0).unwrap();
        limiter.check(&1, t0).unwrap();
        let wait = limiter.peek(&1, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60));
        assert_eq!(retry_after_secs(wait), 60);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    }

    #[test]
    fn zero_means_no_limit_and_idle_keys_are_swept() {
        assert!(RateLimiter::<u32>::per_second(0).is_none());
        let limiter = RateLimiter::new(1000, Duration::from_secs(1), 1).unwrap();
        let t0 = Instant::now();
        for key in 0..SWEEP_AT as u32 {
            limiter.check(&key, t0).unwrap();
        }
        assert_eq!(limiter.tracked(), SWEEP_AT);
        limiter
            .check(&u32::MAX, t0 + Duration::from_secs(1))
            .unwrap();
        assert_eq!(limiter.tracked(), 1);
    }
}
