//! A read-through cache of describe results (SPEC D9).
//!
//! The restore asks the same questions many times — which AZ a DR subnet is in, what an
//! instance type offers, which DR certificate matches — and the answers do not change under it
//! unless pilotlight itself changes them. [`DescribeCache::get_or_fetch`] answers from the cache
//! while an entry is younger than the TTL and otherwise runs the describe and keeps its result.
//! Entries are keyed by a *kind* (a closed set of names such as `instance_types`, `subnets`)
//! and a key inside it; pilotlight's own writes call [`DescribeCache::invalidate`] for what they
//! change. Hits and misses are counted per kind (`pilotlight_aws_cache_hits` and
//! `pilotlight_aws_cache_misses`), and a cache built with [`DescribeCache::disabled`] always
//! misses: the no-cache baseline the benchmark compares against.
//!
//! Concurrent misses for the same entry each fetch; the cache does not coalesce them, which
//! keeps a slow describe from holding up unrelated ones.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of the cache counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub kind: &'static str,
}

/// Hit and miss counters.
#[derive(Debug, Clone, Default)]
pub struct CacheMetrics {
    pub hits: Family<CacheLabels, Counter>,
    pub misses: Family<CacheLabels, Counter>,
}

impl CacheMetrics {
    /// Registers `aws_cache_hits` and `aws_cache_misses` (pass the `pilotlight`-prefixed
    /// registry).
    pub fn register(registry: &mut Registry) -> CacheMetrics {
        let m = CacheMetrics::default();
        let r = registry.sub_registry_with_prefix("aws_cache");
        r.register(
            "hits",
            "Describe results answered from pilotlight's cache, by kind",
            m.hits.clone(),
        );
        r.register(
            "misses",
            "Describe results fetched from AWS because the cache had none, by kind",
            m.misses.clone(),
        );
        m
    }

    /// Hits of `kind` so far.
    pub fn hits_of(&self, kind: &'static str) -> u64 {
        self.hits.get_or_create(&CacheLabels { kind }).get()
    }

    /// Misses of `kind` so far.
    pub fn misses_of(&self, kind: &'static str) -> u64 {
        self.misses.get_or_create(&CacheLabels { kind }).get()
    }
}

type Value = Arc<dyn Any + Send + Sync>;

#[derive(Debug)]
struct Entry {
    value: Value,
    stored: Instant,
}

/// The cache; cheap to clone, clones share entries.
#[derive(Debug, Clone)]
pub struct DescribeCache {
    entries: Arc<Mutex<HashMap<(&'static str, String), Entry>>>,
    ttl: Duration,
    metrics: CacheMetrics,
}

impl DescribeCache {
    /// A cache keeping entries for `ttl`.
    pub fn new(ttl: Duration, metrics: CacheMetrics) -> DescribeCache {
        DescribeCache {
            entries: Arc::default(),
            ttl,
            metrics,
        }
    }

    /// A cache that keeps nothing: every lookup is a miss and fetches.
    pub fn disabled(metrics: CacheMetrics) -> DescribeCache {
        DescribeCache::new(Duration::ZERO, metrics)
    }

    /// Whether entries are kept at all.
    pub fn is_enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The counters.
    pub fn metrics(&self) -> &CacheMetrics {
        &self.metrics
    }

    /// The cached value of (`kind`, `key`) if it is fresh, else the result of `fetch`, which is
    /// kept when it succeeds. Errors are not cached.
    ///
    /// # Errors
    /// `fetch`'s error.
    pub async fn get_or_fetch<V, E, F, Fut>(
        &self,
        kind: &'static str,
        key: &str,
        fetch: F,
    ) -> Result<V, E>
    where
        V: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(v) = self.lookup::<V>(kind, key) {
            self.metrics.hits.get_or_create(&CacheLabels { kind }).inc();
            return Ok(v);
        }
        self.metrics
            .misses
            .get_or_create(&CacheLabels { kind })
            .inc();
        let value = fetch().await?;
        self.put(kind, key, value.clone());
        Ok(value)
    }

    /// Stores a value directly (a write's own answer, known without a describe).
    pub fn put<V: Send + Sync + 'static>(&self, kind: &'static str, key: &str, value: V) {
        if !self.is_enabled() {
            return;
        }
        self.lock().insert(
            (kind, key.to_owned()),
            Entry {
                value: Arc::new(value),
                stored: Instant::now(),
            },
        );
    }

    /// Forgets one entry: after pilotlight changed what it describes.
    pub fn invalidate(&self, kind: &'static str, key: &str) {
        self.lock().remove(&(kind, key.to_owned()));
    }

    /// Forgets every entry of `kind`.
    pub fn invalidate_kind(&self, kind: &'static str) {
        self.lock().retain(|(k, _), _| *k != kind);
    }

    /// Entries held (fresh or not).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup<V: Clone + 'static>(&self, kind: &'static str, key: &str) -> Option<V> {
        let mut entries = self.lock();
        let k = (kind, key.to_owned());
        let entry = entries.get(&k)?;
        if entry.stored.elapsed() >= self.ttl {
            entries.remove(&k);
            return None;
        }
        entry.value.downcast_ref::<V>().cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(&'static str, String), Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fetch_ok(n: &std::sync::atomic::AtomicU32, v: u32) -> Result<u32, String> {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(v)
    }

    #[tokio::test]
    async fn second_lookup_hits_and_invalidation_refetches() {
        let cache = DescribeCache::new(Duration::from_secs(60), CacheMetrics::default());
        let calls = std::sync::atomic::AtomicU32::new(0);
        let a: u32 = cache
            .get_or_fetch("subnets", "s-1", || fetch_ok(&calls, 7))
            .await
            .unwrap();
        let b: u32 = cache
            .get_or_fetch("subnets", "s-1", || fetch_ok(&calls, 8))
            .await
            .unwrap();
        assert_eq!((a, b), (7, 7));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(cache.metrics().hits_of("subnets"), 1);
        assert_eq!(cache.metrics().misses_of("subnets"), 1);

        cache.invalidate("subnets", "s-1");
        let c: u32 = cache
            .get_or_fetch("subnets", "s-1", || fetch_ok(&calls, 9))
            .await
            .unwrap();
        assert_eq!(c, 9);
        assert_eq!(cache.metrics().misses_of("subnets"), 2);
    }

    #[tokio::test]
    async fn errors_are_not_cached_and_disabled_always_misses() {
        let cache = DescribeCache::new(Duration::from_secs(60), CacheMetrics::default());
        let e: Result<u32, String> = cache
            .get_or_fetch("images", "ami-1", || async { Err("boom".to_owned()) })
            .await;
        assert!(e.is_err());
        assert!(cache.is_empty());

        let off = DescribeCache::disabled(CacheMetrics::default());
        let calls = std::sync::atomic::AtomicU32::new(0);
        for _ in 0..3 {
            let _: u32 = off
                .get_or_fetch("images", "ami-1", || fetch_ok(&calls, 1))
                .await
                .unwrap();
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(off.metrics().hits_of("images"), 0);
    }

    #[tokio::test]
    async fn expired_entries_miss() {
        let cache = DescribeCache::new(Duration::from_millis(1), CacheMetrics::default());
        cache.put("offerings", "r5.large", 1u32);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if cache.lookup::<u32>("offerings", "r5.large").is_none() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("entry did not expire");
    }
}
