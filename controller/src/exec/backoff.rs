//! Waiting between attempts: exponential backoff with jitter, `Retry-After` honoured and never undercut, spread of periodic reads.

use std::time::Duration;

/// The wait before attempt `failures + 1` after `failures` failures in a row:
/// `base · 2^(failures-1)`, capped at `max`, drawn uniformly from its upper
/// half so targets that failed together do not retry together.
pub(super) fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let full = base.saturating_mul(1 << exp).min(max);
    full.mul_f64(0.5 + fastrand::f64() / 2.0)
}

/// `retry_after` plus up to 10 % (ARM asked for at least that long; a little
/// more keeps throttled targets from returning in lockstep).
pub(super) fn after_throttle(retry_after: Duration) -> Duration {
    retry_after + retry_after.mul_f64(fastrand::f64() / 10.0)
}

/// `interval` shortened by up to a quarter, so periodic reads of many targets spread out.
pub(super) fn spread(interval: Duration) -> Duration {
    interval.mul_f64(1.0 - fastrand::f64() / 4.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        let (base, max) = (Duration::from_secs(2), Duration::from_secs(60));
        for _ in 0..100 {
            let first = backoff(base, max, 1);
            assert!(
                first >= Duration::from_secs(1) && first <= base,
                "{first:?}"
            );
            let third = backoff(base, max, 3);
            assert!(third >= Duration::from_secs(4) && third <= Duration::from_secs(8));
            let many = backoff(base, max, 1000);
            assert!(many >= max / 2 && many <= max, "{many:?}");
        }
    }

    #[test]
    fn throttled_targets_never_return_before_retry_after() {
        for _ in 0..100 {
            let d = after_throttle(Duration::from_secs(10));
            assert!(d >= Duration::from_secs(10) && d <= Duration::from_secs(11));
            let s = spread(Duration::from_secs(100));
            assert!(s >= Duration::from_secs(75) && s <= Duration::from_secs(100));
        }
    }
}
