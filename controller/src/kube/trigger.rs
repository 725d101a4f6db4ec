//! When to recompute the desired state: after the index changed and then stayed quiet a moment (debounce).

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};

/// Debounce timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Debounce {
    /// Fire once no change came for this long…
    pub quiet: Duration,
    /// …or this long after the first change, whichever is first (a steady
    /// trickle of pod updates must not postpone a pass for ever).
    pub max_delay: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Self {
            quiet: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// Turns the index's change notifications into debounced pass triggers.
#[derive(Debug)]
pub struct Trigger {
    changes: watch::Receiver<u64>,
    debounce: Debounce,
}

impl Trigger {
    /// A trigger on `changes` (from [`super::ClusterIndex::subscribe`]); changes
    /// made before this call are considered seen.
    pub fn new(mut changes: watch::Receiver<u64>, debounce: Debounce) -> Self {
        changes.mark_unchanged();
        Self { changes, debounce }
    }

    /// Waits for the next burst of changes to settle. Returns `false` when the
    /// index is gone (no change can come any more).
    ///
    /// # Guarantees
    /// Returns at most `max_delay` after the first change of a burst, and
    /// every change is followed by a return (none is lost between calls).
    pub async fn settled(&mut self) -> bool {
        if self.changes.changed().await.is_err() {
            return false;
        }
        let latest = Instant::now() + self.debounce.max_delay;
        loop {
            let deadline = latest.min(Instant::now() + self.debounce.quiet);
            match timeout_at(deadline, self.changes.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return true,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const D: Debounce = Debounce {
        quiet: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    };

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_fires_once_after_the_quiet_period() {
        let (tx, rx) = watch::channel(0u64);
        let mut trigger = Trigger::new(rx, D);
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            for i in 1..=5 {
                tx.send(i).unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tx
        });
        assert!(trigger.settled().await);
        // Last change at 200 ms, quiet for 100 ms after it.
        assert_eq!(start.elapsed(), Duration::from_millis(300));
        let _tx = writer.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_trickle_fires_after_the_maximum_delay() {
        let (tx, rx) = watch::channel(0u64);
        let mut trigger = Trigger::new(rx, D);
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            for i in 1..=100 {
                tx.send(i).unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        assert!(trigger.settled().await);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        writer.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_index_ends_the_trigger() {
        let (tx, rx) = watch::channel(0u64);
        let mut trigger = Trigger::new(rx, D);
        drop(tx);
        assert!(!trigger.settled().await);
    }
}
