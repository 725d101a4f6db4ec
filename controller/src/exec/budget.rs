//! A target's write budget: ARM's per-resource token bucket mirrored locally, so sustained churn waits (and coalesces) instead of drawing 429s.

use std::time::Duration;

use tokio::time::Instant;

/// ARM's per-resource write limit ("Update VM": a bucket of 12, refilled 4 a minute).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WriteBudget {
    /// Writes allowed in a row.
    pub burst: f64,
    /// Writes regained a minute.
    pub per_minute: f64,
}

impl Default for WriteBudget {
    fn default() -> Self {
        Self {
            burst: 12.0,
            per_minute: 4.0,
        }
    }
}

/// One target's bucket.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(super) fn full(budget: &WriteBudget, now: Instant) -> Self {
        Self {
            tokens: budget.burst,
            at: now,
        }
    }

    fn refill(&mut self, budget: &WriteBudget, now: Instant) {
        let gained =
            now.saturating_duration_since(self.at).as_secs_f64() * budget.per_minute / 60.0;
        self.tokens = (self.tokens + gained).min(budget.burst);
        self.at = now;
    }

    /// When the next write fits the budget.
    pub(super) fn ready_at(&self, budget: &WriteBudget, now: Instant) -> Instant {
        let mut b = *self;
        b.refill(budget, now);
        if b.tokens >= 1.0 || budget.per_minute <= 0.0 {
            return now;
        }
        let secs = (1.0 - b.tokens) * 60.0 / budget.per_minute;
        now + Duration::from_secs_f64(secs.min(3600.0))
    }

    /// Whether the bucket is back to its full burst.
    pub(super) fn is_full(&self, budget: &WriteBudget, now: Instant) -> bool {
        let mut b = *self;
        b.refill(budget, now);
        b.tokens >= budget.burst
    }

    /// Spends `writes` (it may go below zero: ARM counted them anyway).
    pub(super) fn spend(&mut self, budget: &WriteBudget, writes: u32, now: Instant) {
        self.refill(budget, now);
        self.tokens -= f64::from(writes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_bucket_is_ready_again_after_its_refill_time() {
        let budget = WriteBudget::default();
        let now = Instant::now();
        let mut b = Bucket::full(&budget, now);
        assert_eq!(b.ready_at(&budget, now), now);
        b.spend(&budget, 12, now);
        assert_eq!(b.ready_at(&budget, now), now + Duration::from_secs(15));
        b.spend(&budget, 1, now);
        assert_eq!(b.ready_at(&budget, now), now + Duration::from_secs(30));
        assert!(!b.is_full(&budget, now));
        let later = now + Duration::from_secs(3600);
        assert_eq!(b.ready_at(&budget, later), later, "refilled");
        assert!(b.is_full(&budget, later));
    }
}
