//! `MemoryStore`: the embedded store for a single instance.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use sha2::{Digest, Sha256};

use super::{ParStore, PushedRequest, Redemption, StoreError};
use crate::RequestUri;

/// Bounds of a [`MemoryStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStoreConfig {
    /// Pending requests the store may hold (default 100 000). When full, a
    /// push is answered `503 temporarily_unavailable` with `Retry-After`.
    pub max_pending: usize,
    /// Outstanding requests per client (default 1 000). Over it, a push is
    /// answered `429`.
    pub max_pending_per_client: usize,
    /// Expired entries are swept after this many inserts (default 1 024),
    /// at most once a second, by whichever push crosses the mark.
    pub sweep_every: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self {
            max_pending: 100_000,
            max_pending_per_client: 1_000,
            sweep_every: 1_024,
        }
    }
}

struct Inner {
    entries: DashMap<[u8; 32], PushedRequest>,
    per_client: DashMap<Box<str>, usize>,
    marks: DashMap<[u8; 32], SystemTime>,
    pending: AtomicUsize,
    inserts: AtomicUsize,
    sweeping: AtomicBool,
    last_sweep: AtomicU64,
    config: MemoryStoreConfig,
}

/// An in-memory [`ParStore`] on a sharded concurrent map.
///
/// Expiry is checked on every read; expired entries are also swept, in
/// amortised steps from the push path, or by a background task with the
/// `tokio` feature ([`MemoryStore::spawn_sweeper`]). No lock is held across
/// an `.await`. Clones share the same entries.
///
/// ```
/// use tower_par::{MemoryStore, MemoryStoreConfig};
///
/// let store = MemoryStore::with_config(MemoryStoreConfig {
///     max_pending: 1_000_000,
///     ..MemoryStoreConfig::default()
/// });
/// assert_eq!(store.pending(), 0);
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_config(MemoryStoreConfig::default())
    }
}

impl MemoryStore {
    /// A store with the default bounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store with the given bounds.
    pub fn with_config(config: MemoryStoreConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                entries: DashMap::new(),
                per_client: DashMap::new(),
                marks: DashMap::new(),
                pending: AtomicUsize::new(0),
                inserts: AtomicUsize::new(0),
                sweeping: AtomicBool::new(false),
                last_sweep: AtomicU64::new(0),
                config,
            }),
        }
    }

    /// Pending (pushed, not yet redeemed or swept) requests.
    pub fn pending(&self) -> usize {
        self.inner.pending.load(Ordering::Relaxed)
    }

    /// Removes every expired entry now; returns how many were removed.
    pub fn sweep_expired(&self) -> usize {
        let inner = &self.inner;
        if inner.sweeping.swap(true, Ordering::Acquire) {
            return 0;
        }
        let now = SystemTime::now();
        inner.last_sweep.store(unix_secs(now), Ordering::Relaxed);
        let mut released = Vec::new();
        inner.entries.retain(|_, r| {
            if r.is_expired_at(now) {
                released.push(std::mem::take(&mut r.client_id));
                false
            } else {
                true
            }
        });
        // Counters are updated after `retain` so that no two map locks are
        // ever held at once.
        for client_id in &released {
            self.release(client_id);
        }
        inner.marks.retain(|_, expires| *expires > now);
        inner.sweeping.store(false, Ordering::Release);
        released.len()
    }

    /// Starts a task that sweeps expired entries every `period`; it ends
    /// when the last clone of the store is dropped.
    #[cfg(feature = "tokio")]
    pub fn spawn_sweeper(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(inner) => {
                        MemoryStore { inner }.sweep_expired();
                    }
                    None => return,
                }
            }
        })
    }

    fn maybe_sweep(&self, now: SystemTime, force: bool) {
        let inner = &self.inner;
        let n = inner.inserts.fetch_add(1, Ordering::Relaxed) + 1;
        let due = force || n % inner.config.sweep_every.max(1) == 0;
        if due && inner.last_sweep.load(Ordering::Relaxed) < unix_secs(now) {
            self.sweep_expired();
        }
    }

    fn reserve(&self, client_id: &str, now: SystemTime) -> Result<(), StoreError> {
        let inner = &self.inner;
        let cfg = &inner.config;
        if inner.pending.fetch_add(1, Ordering::AcqRel) >= cfg.max_pending {
            inner.pending.fetch_sub(1, Ordering::AcqRel);
            // Full: expired entries may be what fills it.
            self.maybe_sweep(now, true);
            if inner.pending.fetch_add(1, Ordering::AcqRel) >= cfg.max_pending {
                inner.pending.fetch_sub(1, Ordering::AcqRel);
                return Err(StoreError::Full { retry_after: 5 });
            }
        }
        let over = if let Some(mut n) = inner.per_client.get_mut(client_id) {
            if *n >= cfg.max_pending_per_client {
                true
            } else {
                *n += 1;
                false
            }
        } else {
            let mut n = inner.per_client.entry(client_id.into()).or_insert(0);
            if *n >= cfg.max_pending_per_client {
                true
            } else {
                *n += 1;
                false
            }
        };
        if over {
            inner.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::ClientLimit { retry_after: 5 });
        }
        Ok(())
    }

    fn release(&self, client_id: &str) {
        let inner = &self.inner;
        inner.pending.fetch_sub(1, Ordering::AcqRel);
        let now_zero = match inner.per_client.get_mut(client_id) {
            Some(mut n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        };
        if now_zero {
            inner.per_client.remove_if(client_id, |_, n| *n == 0);
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl ParStore for MemoryStore {
    async fn insert(
        &self,
        uri: &RequestUri,
        mut request: PushedRequest,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = SystemTime::now();
        self.maybe_sweep(now, false);
        request.expires_at = request.expires_at.min(now + ttl);
        self.reserve(&request.client_id, now)?;
        match self.inner.entries.entry(*uri.as_bytes()) {
            Entry::Occupied(mut e) if e.get().is_expired_at(now) => {
                let old = std::mem::replace(e.get_mut(), request);
                drop(e);
                self.release(&old.client_id);
                Ok(())
            }
            Entry::Occupied(e) => {
                drop(e);
                self.release(&request.client_id);
                Err(StoreError::Exists)
            }
            Entry::Vacant(e) => {
                e.insert(request);
                Ok(())
            }
        }
    }

    async fn redeem(&self, uri: &RequestUri, client_id: &str) -> Result<Redemption, StoreError> {
        let now = SystemTime::now();
        let key = uri.as_bytes();
        // RFC 9126 §4: one-time use. `remove_if` is the atomic step: of two
        // concurrent redemptions only one gets the entry.
        if let Some((_, request)) = self
            .inner
            .entries
            .remove_if(key, |_, r| r.client_id == client_id)
        {
            self.release(&request.client_id);
            return Ok(if request.is_expired_at(now) {
                Redemption::NotFound
            } else {
                Redemption::Redeemed(request)
            });
        }
        let expired = match self.inner.entries.get(key) {
            None => return Ok(Redemption::NotFound),
            Some(r) => r.is_expired_at(now),
        };
        if !expired {
            // Bound to another client: left in place (PAR-15).
            return Ok(Redemption::WrongClient);
        }
        if let Some((_, old)) = self
            .inner
            .entries
            .remove_if(key, |_, r| r.is_expired_at(now))
        {
            self.release(&old.client_id);
        }
        Ok(Redemption::NotFound)
    }

    async fn mark_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        match self.inner.marks.entry(digest) {
            Entry::Occupied(mut e) => {
                if *e.get() > now {
                    Ok(false)
                } else {
                    *e.get_mut() = now + ttl;
                    Ok(true)
                }
            }
            Entry::Vacant(e) => {
                e.insert(now + ttl);
                Ok(true)
            }
        }
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("pending", &self.pending())
            .field("config", &self.inner.config)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::AuthMethod;

    fn req(client: &str, lifetime: Duration) -> PushedRequest {
        PushedRequest::new(client, AuthMethod::None, "a=1", SystemTime::now(), lifetime)
    }

    #[tokio::test]
    async fn capacity_bound_is_enforced_and_released() {
        let store = MemoryStore::with_config(MemoryStoreConfig {
            max_pending: 2,
            max_pending_per_client: 10,
            sweep_every: 1000,
        });
        let ttl = Duration::from_secs(60);
        let (a, b, c) = (
            RequestUri::generate(),
            RequestUri::generate(),
            RequestUri::generate(),
        );
        store.insert(&a, req("x", ttl), ttl).await.unwrap();
        store.insert(&b, req("y", ttl), ttl).await.unwrap();
        assert!(matches!(
            store.insert(&c, req("z", ttl), ttl).await,
            Err(StoreError::Full { .. })
        ));
        assert!(matches!(
            store.redeem(&a, "x").await,
            Ok(Redemption::Redeemed(_))
        ));
        store.insert(&c, req("z", ttl), ttl).await.unwrap();
        assert_eq!(store.pending(), 2);
    }

    #[tokio::test]
    async fn per_client_cap() {
        let store = MemoryStore::with_config(MemoryStoreConfig {
            max_pending: 100,
            max_pending_per_client: 2,
            sweep_every: 1000,
        });
        let ttl = Duration::from_secs(60);
        let first = RequestUri::generate();
        store.insert(&first, req("x", ttl), ttl).await.unwrap();
        store
            .insert(&RequestUri::generate(), req("x", ttl), ttl)
            .await
            .unwrap();
        let third = store
            .insert(&RequestUri::generate(), req("x", ttl), ttl)
            .await;
        assert!(matches!(third, Err(StoreError::ClientLimit { .. })));
        // Other clients are not affected.
        store
            .insert(&RequestUri::generate(), req("y", ttl), ttl)
            .await
            .unwrap();
        store.redeem(&first, "x").await.unwrap();
        store
            .insert(&RequestUri::generate(), req("x", ttl), ttl)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn full_store_sweeps_expired_entries_before_refusing() {
        let store = MemoryStore::with_config(MemoryStoreConfig {
            max_pending: 1,
            max_pending_per_client: 10,
            sweep_every: 1000,
        });
        let short = Duration::from_millis(30);
        store
            .insert(&RequestUri::generate(), req("x", short), short)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let ttl = Duration::from_secs(60);
        store
            .insert(&RequestUri::generate(), req("x", ttl), ttl)
            .await
            .unwrap();
        assert_eq!(store.pending(), 1);
    }

    #[tokio::test]
    async fn sweep_removes_only_expired() {
        let store = MemoryStore::new();
        let short = Duration::from_millis(20);
        let long = Duration::from_secs(60);
        for _ in 0..5 {
            store
                .insert(&RequestUri::generate(), req("x", short), short)
                .await
                .unwrap();
        }
        let keep = RequestUri::generate();
        store.insert(&keep, req("x", long), long).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(store.sweep_expired(), 5);
        assert_eq!(store.pending(), 1);
        assert!(matches!(
            store.redeem(&keep, "x").await,
            Ok(Redemption::Redeemed(_))
        ));
        assert_eq!(store.pending(), 0);
        assert!(store.inner.per_client.is_empty());
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn background_sweeper_runs() {
        let store = MemoryStore::new();
        let short = Duration::from_millis(10);
        store
            .insert(&RequestUri::generate(), req("x", short), short)
            .await
            .unwrap();
        let task = store.spawn_sweeper(Duration::from_millis(20));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(store.pending(), 0);
        task.abort();
    }
}
