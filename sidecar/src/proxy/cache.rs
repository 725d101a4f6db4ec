//! Tokens cached per (identity, resource): single-flight fetches, refresh ahead of expiry, LRU-bounded.
//!
//! # Guarantees
//! - At most one upstream fetch per key runs at a time; a request that waits
//!   for a fetch that completed after it arrived takes that fetch's outcome
//!   (token or error) instead of starting another, so N concurrent requests,
//!   `bypass_cache` ones included, make one upstream call.
//! - A token is served while [`Freshness`] allows; in its refresh window the
//!   cached token is served and one background fetch replaces it.
//! - At most `capacity` keys are kept; the least recently used goes first.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::debug;

use super::token::{Freshness, Token, unix_now};

/// After a failed background refresh, wait this long before trying again
/// (the cached token is still good meanwhile).
const REFRESH_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// What a token is cached under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Index of the identity in the proxy's configuration.
    pub identity: usize,
    /// The resource, exactly as requested.
    pub resource: String,
}

/// Where tokens come from: upstream with retries, or a fake in tests.
pub trait Fetcher: Send + Sync + 'static {
    /// Why a fetch failed; handed to every request that waited for it.
    type Error: Clone + Send + Sync + 'static;

    /// Fetches a token for `key`.
    fn fetch(&self, key: &Key) -> impl Future<Output = Result<Token, Self::Error>> + Send;
}

/// How a lookup was answered (for metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// From the cache.
    Hit,
    /// Waited for a fetch another request started.
    Coalesced,
    /// Fetched for this request.
    Miss,
}

impl Lookup {
    /// Metric label.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Coalesced => "coalesced",
            Self::Miss => "miss",
        }
    }
}

/// The cache.
#[derive(Debug)]
pub struct TokenCache<F: Fetcher> {
    fetcher: F,
    capacity: usize,
    slots: Mutex<Slots<F::Error>>,
}

#[derive(Debug)]
struct Slots<E> {
    map: HashMap<Key, (Arc<Slot<E>>, u64)>,
    tick: u64,
}

/// One key: a lock that serializes fetches, and what the last fetch gave.
#[derive(Debug)]
struct Slot<E> {
    fetch: tokio::sync::Mutex<()>,
    state: Mutex<SlotState<E>>,
}

#[derive(Debug)]
struct SlotState<E> {
    token: Option<Arc<Token>>,
    /// When the last fetch completed, and its outcome.
    last: Option<(Instant, Result<Arc<Token>, E>)>,
    refreshing: bool,
    no_refresh_until: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the cache down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// === impl TokenCache ===

impl<F: Fetcher> TokenCache<F> {
    /// A cache of at most `capacity` keys (at least one) over `fetcher`.
    pub fn new(fetcher: F, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            fetcher,
            capacity: capacity.max(1),
            slots: Mutex::new(Slots {
                map: HashMap::new(),
                tick: 0,
            }),
        })
    }

    /// The fetcher.
    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        lock(&self.slots).map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A token for `key`: cached, coalesced with a running fetch, or fetched.
    /// `bypass` skips the cached token, not the coalescing.
    pub async fn get(
        self: &Arc<Self>,
        key: &Key,
        bypass: bool,
    ) -> (Result<Arc<Token>, F::Error>, Lookup) {
        let arrived = Instant::now();
        let slot = self.slot(key);
        if !bypass && let Some(token) = self.serve_cached(key, &slot) {
            return (Ok(token), Lookup::Hit);
        }
        let _fetching = slot.fetch.lock().await;
        {
            let state = lock(&slot.state);
            if let Some((done, outcome)) = &state.last
                && *done >= arrived
            {
                return (outcome.clone(), Lookup::Coalesced);
            }
        }
        let outcome = self.fetcher.fetch(key).await.map(Arc::new);
        slot.store(&outcome, Instant::now());
        (outcome, Lookup::Miss)
    }

    /// The cached token if it may be served, starting its refresh when due.
    fn serve_cached(self: &Arc<Self>, key: &Key, slot: &Arc<Slot<F::Error>>) -> Option<Arc<Token>> {
        let mut state = lock(&slot.state);
        let token = state.token.clone()?;
        match token.freshness(unix_now()) {
            Freshness::Fresh => Some(token),
            Freshness::Stale => None,
            Freshness::RefreshAhead => {
                let paused = state.no_refresh_until.is_some_and(|t| Instant::now() < t);
                if !state.refreshing && !paused {
                    state.refreshing = true;
                    self.spawn_refresh(key.clone(), slot.clone());
                }
                Some(token)
            }
        }
    }

    fn spawn_refresh(self: &Arc<Self>, key: Key, slot: Arc<Slot<F::Error>>) {
        let cache = self.clone();
        let triggered = Instant::now();
        tokio::spawn(async move {
            let _fetching = slot.fetch.lock().await;
            let already = lock(&slot.state)
                .last
                .as_ref()
                .is_some_and(|(done, _)| *done >= triggered);
            if !already {
                debug!(identity = key.identity, resource = %key.resource, "refreshing ahead of expiry");
                let outcome = cache.fetcher.fetch(&key).await.map(Arc::new);
                let now = Instant::now();
                slot.store(&outcome, now);
                if outcome.is_err() {
                    lock(&slot.state).no_refresh_until = Some(now + REFRESH_RETRY_PAUSE);
                }
            }
            lock(&slot.state).refreshing = false;
        });
    }

    /// The slot of `key`, created (evicting the least recently used) if new.
    fn slot(&self, key: &Key) -> Arc<Slot<F::Error>> {
        let mut slots = lock(&self.slots);
        slots.tick += 1;
        let tick = slots.tick;
        if let Some((slot, used)) = slots.map.get_mut(key) {
            *used = tick;
            return slot.clone();
        }
        if slots.map.len() >= self.capacity
            && let Some(oldest) = slots
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            // A fetch still running on the evicted slot completes for its own waiters.
            slots.map.remove(&oldest);
        }
        let slot = Arc::new(Slot {
            fetch: tokio::sync::Mutex::new(()),
            state: Mutex::new(SlotState {
                token: None,
                last: None,
                refreshing: false,
                no_refresh_until: None,
            }),
        });
        slots.map.insert(key.clone(), (slot.clone(), tick));
        slot
    }
}

// === impl Slot ===

impl<E: Clone> Slot<E> {
    fn store(&self, outcome: &Result<Arc<Token>, E>, done: Instant) {
        let mut state = lock(&self.state);
        if let Ok(token) = outcome {
            state.token = Some(token.clone());
            state.no_refresh_until = None;
        }
        state.last = Some((done, outcome.clone()));
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
