#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// Hands out tokens `t1`, `t2`, … of `lifetime` seconds after `delay`; fails when `fail` is set.
#[derive(Debug, Default)]
struct Fake {
    calls: AtomicU64,
    lifetime: AtomicU64,
    /// How old tokens are when handed out (to land in the refresh window at once).
    age: u64,
    delay_ms: u64,
    fail: std::sync::atomic::AtomicBool,
}

impl Fetcher for Fake {
    type Error = String;

    async fn fetch(&self, _key: &Key) -> Result<Token, String> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(self.delay_ms)).await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(format!("failure {n}"));
        }
        let now = unix_now() - self.age;
        let lifetime = self.lifetime.load(Ordering::SeqCst);
        Ok(Token {
            access_token: format!("t{n}"),
            expires_on: now + lifetime,
            ext_expires_on: now + lifetime,
            not_before: now,
            fetched_on: now,
            object_id: None,
        })
    }
}

fn fake(lifetime: u64, delay_ms: u64) -> Fake {
    aged(lifetime, 0, delay_ms)
}

fn aged(lifetime: u64, age: u64, delay_ms: u64) -> Fake {
    let f = Fake {
        delay_ms,
        age,
        ..Fake::default()
    };
    f.lifetime.store(lifetime, Ordering::SeqCst);
    f
}

fn key(resource: &str) -> Key {
    Key {
        identity: 0,
        resource: resource.into(),
    }
}

fn calls(cache: &TokenCache<Fake>) -> u64 {
    cache.fetcher().calls.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_second_lookup_is_a_hit() {
    let cache = TokenCache::new(fake(3600, 0), 8);
    let (first, how) = cache.get(&key("r"), false).await;
    assert_eq!(
        (first.unwrap().access_token.as_str(), how),
        ("t1", Lookup::Miss)
    );
    let (second, how) = cache.get(&key("r"), false).await;
    assert_eq!(
        (second.unwrap().access_token.as_str(), how),
        ("t1", Lookup::Hit)
    );
    assert_eq!(calls(&cache), 1);
}

#[tokio::test]
async fn concurrent_lookups_make_one_fetch_and_share_it() {
    let cache = TokenCache::new(fake(3600, 50), 8);
    let lookups: Vec<_> = (0..50)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get(&key("r"), i % 2 == 0).await })
        })
        .collect();
    for lookup in lookups {
        let (token, _) = lookup.await.unwrap();
        assert_eq!(token.unwrap().access_token, "t1");
    }
    assert_eq!(calls(&cache), 1);
}

#[tokio::test]
async fn waiters_share_a_failure_instead_of_retrying_one_by_one() {
    let cache = TokenCache::new(fake(3600, 50), 8);
    cache.fetcher().fail.store(true, Ordering::SeqCst);
    let lookups: Vec<_> = (0..10)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get(&key("r"), false).await.0 })
        })
        .collect();
    for lookup in lookups {
        assert_eq!(lookup.await.unwrap().unwrap_err(), "failure 1");
    }
    // A later request tries again.
    assert_eq!(
        cache.get(&key("r"), false).await.0.unwrap_err(),
        "failure 2"
    );
}

#[tokio::test]
async fn bypass_fetches_anew_when_nothing_is_running() {
    let cache = TokenCache::new(fake(3600, 0), 8);
    let _ = cache.get(&key("r"), false).await;
    let (token, how) = cache.get(&key("r"), true).await;
    assert_eq!(
        (token.unwrap().access_token.as_str(), how),
        ("t2", Lookup::Miss)
    );
    assert_eq!(
        cache.get(&key("r"), false).await.0.unwrap().access_token,
        "t2"
    );
}

#[tokio::test]
async fn a_token_in_its_refresh_window_is_served_and_replaced_in_the_background() {
    // 100 s tokens handed out 55 s old: refreshed below 50 s left, served above 16 s.
    let cache = TokenCache::new(aged(100, 55, 0), 8);
    let _ = cache.get(&key("r"), false).await;
    let (token, how) = cache.get(&key("r"), false).await;
    assert_eq!(
        (token.unwrap().access_token.as_str(), how),
        ("t1", Lookup::Hit)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock(&cache.slot(&key("r")).state).refreshing && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(calls(&cache), 2);
    let (token, how) = cache.get(&key("r"), false).await;
    assert_eq!(
        (token.unwrap().access_token.as_str(), how),
        ("t2", Lookup::Hit)
    );
}

#[tokio::test]
async fn an_expired_token_is_fetched_again() {
    let cache = TokenCache::new(fake(0, 0), 8);
    let _ = cache.get(&key("r"), false).await;
    let (_, how) = cache.get(&key("r"), false).await;
    assert_eq!(how, Lookup::Miss);
    assert_eq!(calls(&cache), 2);
}

#[tokio::test]
async fn the_least_recently_used_key_is_evicted() {
    let cache = TokenCache::new(fake(3600, 0), 2);
    let _ = cache.get(&key("a"), false).await;
    let _ = cache.get(&key("b"), false).await;
    let _ = cache.get(&key("a"), false).await;
    let _ = cache.get(&key("c"), false).await;
    assert_eq!(cache.len(), 2);
    assert_eq!(calls(&cache), 3);
    assert_eq!(cache.get(&key("a"), false).await.1, Lookup::Hit);
    assert_eq!(cache.get(&key("b"), false).await.1, Lookup::Miss);
}
