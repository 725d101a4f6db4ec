//! Warning Events for blocked attempts, at most one per pod per interval, sent off the responder's path.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use podid_core::guard::GuardPod;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::metrics::{EventLabels, Metrics};

/// Event reason on the pod.
pub const REASON: &str = "IMDSBlocked";
/// Event action.
pub const ACTION: &str = "BlockIMDS";
/// Reporting controller of the Events.
pub const REPORTING_CONTROLLER: &str = "podid.io/node-guard";
/// How many distinct pods the limiter remembers before it forgets expired ones.
const MAX_TRACKED: usize = 4096;

/// One blocked connection of a known pod.
#[derive(Clone, Debug)]
pub struct Blocked {
    /// The pod.
    pub pod: GuardPod,
    /// The Event's note (the 403's description).
    pub note: String,
}

/// Somewhere Events go: the API server, the log, or a fake.
pub trait EventSink: Send + Sync + 'static {
    /// Publishes one Warning Event on `blocked.pod`.
    fn publish(&self, blocked: &Blocked) -> impl Future<Output = Result<(), String>> + Send;
}

/// File mode's sink: a log line per Event.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogSink;

impl EventSink for LogSink {
    async fn publish(&self, blocked: &Blocked) -> Result<(), String> {
        info!(pod = %blocked.pod, reason = REASON, note = %blocked.note, "event");
        Ok(())
    }
}

/// At most one Event per pod per `interval`.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    last: HashMap<String, Instant>,
}

impl RateLimiter {
    /// A limiter letting one Event per pod through every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: HashMap::new(),
        }
    }

    /// Whether an Event for `key` may go out at `now` (and, if so, records it).
    pub fn allow(&mut self, key: &str, now: Instant) -> bool {
        if let Some(at) = self.last.get(key)
            && now.duration_since(*at) < self.interval
        {
            return false;
        }
        if self.last.len() >= MAX_TRACKED {
            let interval = self.interval;
            self.last.retain(|_, at| now.duration_since(*at) < interval);
        }
        if self.last.len() >= MAX_TRACKED {
            return false;
        }
        self.last.insert(key.to_owned(), now);
        true
    }
}

/// Sends the Events that pass the limiter until the channel closes.
pub async fn run<S: EventSink>(
    sink: S,
    interval: Duration,
    metrics: Metrics,
    mut rx: mpsc::Receiver<Blocked>,
) {
    let mut limiter = RateLimiter::new(interval);
    while let Some(blocked) = rx.recv().await {
        let key = format!("{}/{}", blocked.pod, blocked.pod.uid);
        let result = if !limiter.allow(&key, Instant::now()) {
            "suppressed"
        } else if let Err(e) = sink.publish(&blocked).await {
            warn!(pod = %blocked.pod, error = %e, "blocked-access Event not written");
            "failed"
        } else {
            "sent"
        };
        metrics.events.get_or_create(&EventLabels { result }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_pod_per_interval_and_memory_is_bounded() {
        let mut limiter = RateLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(limiter.allow("a", t0));
        assert!(!limiter.allow("a", t0 + Duration::from_secs(59)));
        assert!(limiter.allow("b", t0 + Duration::from_secs(1)));
        assert!(limiter.allow("a", t0 + Duration::from_secs(60)));
        for i in 0..MAX_TRACKED * 2 {
            let _ = limiter.allow(&i.to_string(), t0 + Duration::from_secs(61));
        }
        assert!(limiter.last.len() <= MAX_TRACKED);
        // Once the remembered ones expire, new pods get their Event again.
        assert!(limiter.allow("late", t0 + Duration::from_secs(200)));
    }
}
