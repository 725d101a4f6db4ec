//! IMDS throttling: token buckets and a concurrency cap per VM, with the limits Azure documents as defaults.

use std::time::{Duration, Instant};

/// A sustained request rate with a burst allowance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size: requests allowed at once after a quiet period.
    pub burst: f64,
}

impl Rate {
    /// A bucket of `burst` refilled by `per_minute` tokens a minute (how ARM
    /// documents its limits: "Update VM" 12, refilled 4 per minute).
    pub fn per_minute(per_minute: f64, burst: f64) -> Self {
        Self {
            per_second: per_minute / 60.0,
            burst,
        }
    }

    /// `n` requests per second, with a bucket of `n`.
    pub fn per_second(n: f64) -> Self {
        Self {
            per_second: n,
            burst: n,
        }
    }
}

/// IMDS limits per VM; `None` turns a limit off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImdsLimits {
    /// Managed-identity category (token requests): 20/s in Azure.
    pub identity_rate: Option<Rate>,
    /// Managed-identity category concurrency: 5 in Azure.
    pub identity_concurrency: Option<usize>,
    /// Every other IMDS path: 5/s in Azure.
    pub metadata_rate: Option<Rate>,
}

impl Default for ImdsLimits {
    fn default() -> Self {
        Self {
            identity_rate: Some(Rate::per_second(20.0)),
            identity_concurrency: Some(5),
            metadata_rate: Some(Rate::per_second(5.0)),
        }
    }
}

impl ImdsLimits {
    /// No throttling at all (for tests of other components).
    pub fn unlimited() -> Self {
        Self {
            identity_rate: None,
            identity_concurrency: None,
            metadata_rate: None,
        }
    }
}

/// A token bucket; time is passed in so the arithmetic is testable.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            last: now,
        }
    }

    /// Whole tokens left now, without taking one.
    pub fn remaining(&mut self, rate: Rate, now: Instant) -> u64 {
        self.refill(rate, now);
        self.tokens.max(0.0).floor() as u64
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.last = now;
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if rate.per_second <= 0.0 {
            return Err(Duration::from_secs(60));
        }
        Err(Duration::from_secs_f64(
            (1.0 - self.tokens) / rate.per_second,
        ))
    }
}

/// `Retry-After` seconds for a wait: rounded up, at least 1 (0 would invite
/// clients to hammer the endpoint).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_drains_then_refills_at_the_rate() {
        let rate = Rate::per_second(20.0);
        let t0 = Instant::now();
        let mut b = TokenBucket::full(rate, t0);
        for _ in 0..20 {
            assert!(b.take(rate, t0).is_ok());
        }
        let wait = b.take(rate, t0).err();
        assert!(wait.is_some_and(|w| w <= Duration::from_millis(50)));
        assert!(b.take(rate, t0 + Duration::from_millis(60)).is_ok());
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
    }
}
