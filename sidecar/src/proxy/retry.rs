//! Retries of upstream calls: exponential backoff with full jitter, `Retry-After`, a total deadline.
//!
//! The deadline is shorter than the SDKs' own timeouts, so that a pod's SDK
//! gets the proxy's answer (and retries by its own rules) instead of timing
//! out on a proxy that is still waiting.

use std::future::Future;
use std::time::{Duration, SystemTime};

use ring::rand::{SecureRandom, SystemRandom};

/// How upstream calls are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// All attempts and waits of one fetch end by then.
    pub deadline: Duration,
    /// One attempt (connect, send, read the answer) ends by then.
    pub attempt_timeout: Duration,
    /// The first backoff ceiling; doubled per attempt.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(5),
            base: Duration::from_millis(500),
            cap: Duration::from_secs(4),
        }
    }
}

/// What the retry loop needs to know about an attempt's failure.
pub trait Retryable {
    /// Whether another attempt may succeed (429, 5xx, 404, 410, timeouts, connection errors).
    fn retryable(&self) -> bool;
    /// The wait upstream asked for.
    fn retry_after(&self) -> Option<Duration>;
    /// The error of an attempt that ran out of time.
    fn timed_out() -> Self;
}

/// Runs `attempt` (each bounded by the per-attempt timeout, and dropped when
/// it passes) until it succeeds, fails for good, or the next try would end
/// past the deadline; returns the last outcome and how many attempts ran.
pub async fn run<T, E, F, Fut>(policy: &RetryPolicy, mut attempt: F) -> (Result<T, E>, u32)
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + policy.deadline;
    let mut attempts = 0;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let timeout = policy.attempt_timeout.min(left);
        attempts += 1;
        let outcome = tokio::time::timeout(timeout, attempt())
            .await
            .unwrap_or_else(|_| Err(E::timed_out()));
        let error = match outcome {
            Ok(value) => return (Ok(value), attempts),
            Err(e) if !e.retryable() => return (Err(e), attempts),
            Err(e) => e,
        };
        // Never sooner than upstream asked, and never a tight loop on `Retry-After: 0`.
        let jitter = full_jitter(policy, attempts - 1);
        let wait = error
            .retry_after()
            .map_or(jitter, |asked| asked.max(jitter));
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // Waiting past the deadline only delays the answer the caller will get anyway.
        if wait >= left || left.is_zero() {
            return (Err(error), attempts);
        }
        tokio::time::sleep(wait).await;
    }
}

/// A uniformly random wait in `[0, min(cap, base · 2^n)]`.
pub fn full_jitter(policy: &RetryPolicy, n: u32) -> Duration {
    let ceiling = policy
        .base
        .saturating_mul(2u32.saturating_pow(n.min(16)))
        .min(policy.cap);
    let mut bytes = [0u8; 4];
    // Without randomness, waiting the full ceiling is still a backoff.
    let fraction = match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    };
    ceiling.mul_f64(fraction)
}

/// Parses `Retry-After`: delay seconds, or an HTTP date (past dates mean now).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[derive(Debug, PartialEq)]
    enum E {
        Again(Option<u64>),
        Fatal,
        Timeout,
    }

    impl Retryable for E {
        fn retryable(&self) -> bool {
            !matches!(self, E::Fatal)
        }
        fn retry_after(&self) -> Option<Duration> {
            match self {
                E::Again(s) => s.map(Duration::from_secs),
                _ => None,
            }
        }
        fn timed_out() -> Self {
            E::Timeout
        }
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            deadline: Duration::from_millis(500),
            attempt_timeout: Duration::from_millis(100),
            base: Duration::from_millis(10),
            cap: Duration::from_millis(40),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let n = Cell::new(0);
        let (out, attempts) = run(&quick(), || {
            n.set(n.get() + 1);
            let k = n.get();
            async move { if k < 3 { Err(E::Again(None)) } else { Ok(k) } }
        })
        .await;
        assert_eq!((out, attempts), (Ok(3), 3));
    }

    #[tokio::test]
    async fn other_failures_are_not_retried() {
        let (out, attempts) = run(&quick(), || async { Err::<(), _>(E::Fatal) }).await;
        assert_eq!((out, attempts), (Err(E::Fatal), 1));
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_deadline_ends_at_once() {
        let started = std::time::Instant::now();
        let (out, attempts) = run(&quick(), || async { Err::<(), _>(E::Again(Some(30))) }).await;
        assert_eq!((out, attempts), (Err(E::Again(Some(30))), 1));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn slow_attempts_time_out_and_the_loop_ends_by_the_deadline() {
        let started = std::time::Instant::now();
        let (out, attempts) = run(&quick(), || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<(), E>(())
        })
        .await;
        assert_eq!(out, Err(E::Timeout));
        assert!(attempts >= 2);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_under_the_capped_ceiling() {
        let p = quick();
        for n in 0..40 {
            assert!(full_jitter(&p, n) <= p.cap);
        }
        assert!(full_jitter(&p, 0) <= p.base);
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let parsed = parse_retry_after(&later).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
