//! `MemoryStore`: the embedded store for a single instance.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use sha2::{Digest, Sha256};

use super::{Completion, ParStore, PushedRequest, RedeemMode, RedeemOutcome, StoreError};
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

/// Where an entry is in its life (see the module docs of `store`).
#[derive(Clone, Copy)]
enum State {
    Pushed,
    InFlow {
        binding: [u8; 32],
        until: SystemTime,
    },
}

struct Slot {
    request: PushedRequest,
    state: State,
}

impl Slot {
    /// The moment the entry stops being usable.
    fn deadline(&self) -> SystemTime {
        match self.state {
            State::Pushed => self.request.expires_at,
            State::InFlow { until, .. } => until,
        }
    }

    fn is_dead_at(&self, now: SystemTime) -> bool {
        now >= self.deadline()
    }
}

struct Inner {
    entries: DashMap<[u8; 32], Slot>,
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
        inner.entries.retain(|_, slot| {
            if slot.is_dead_at(now) {
                released.push(std::mem::take(&mut slot.request.client_id));
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

impl MemoryStore {
    /// Removes the entry if `pred` holds, as one atomic step.
    fn take_if(&self, key: &[u8; 32], pred: impl FnOnce(&Slot) -> bool) -> RedeemOutcome {
        match self.inner.entries.remove_if(key, |_, s| pred(s)) {
            Some((_, slot)) => {
                self.release(&slot.request.client_id);
                RedeemOutcome::Redeemed(slot.request)
            }
            None => RedeemOutcome::NotFound,
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
        let slot = Slot {
            request,
            state: State::Pushed,
        };
        match self.inner.entries.entry(*uri.as_bytes()) {
            Entry::Occupied(mut e) if e.get().is_dead_at(now) => {
                let old = std::mem::replace(e.get_mut(), slot);
                drop(e);
                self.release(&old.request.client_id);
                Ok(())
            }
            Entry::Occupied(e) => {
                drop(e);
                self.release(&slot.request.client_id);
                Err(StoreError::Exists)
            }
            Entry::Vacant(e) => {
                e.insert(slot);
                Ok(())
            }
        }
    }

    async fn redeem(
        &self,
        uri: &RequestUri,
        client_id: &str,
        mode: RedeemMode,
    ) -> Result<RedeemOutcome, StoreError> {
        let now = SystemTime::now();
        let key = uri.as_bytes();
        let outcome = {
            // The shard's write lock makes the check and the transition one
            // atomic step: of two concurrent redemptions only one sees
            // `Pushed` (RFC 9126 §4).
            let Some(mut slot) = self.inner.entries.get_mut(key) else {
                return Ok(RedeemOutcome::NotFound);
            };
            if slot.is_dead_at(now) {
                None
            } else if slot.request.client_id != client_id {
                // PAR-15: left in place for its rightful client.
                return Ok(RedeemOutcome::WrongClient);
            } else {
                match (slot.state, mode) {
                    (State::Pushed, RedeemMode::Consume) => {
                        drop(slot);
                        return Ok(self.take_if(key, |s| {
                            matches!(s.state, State::Pushed) && !s.is_dead_at(now)
                        }));
                    }
                    (
                        State::Pushed,
                        RedeemMode::Bind {
                            binding, window, ..
                        },
                    ) => {
                        slot.state = State::InFlow {
                            binding,
                            until: now + window,
                        };
                        Some(RedeemOutcome::Redeemed(slot.request.clone()))
                    }
                    (
                        State::InFlow { binding, .. },
                        RedeemMode::Bind {
                            reenter: Some(r), ..
                        },
                    ) if binding == r => Some(RedeemOutcome::Reentered(slot.request.clone())),
                    // In flow for another browser, or a strict redemption
                    // of a request already in flow.
                    (State::InFlow { .. }, _) => Some(RedeemOutcome::NotFound),
                }
            }
        };
        match outcome {
            Some(outcome) => Ok(outcome),
            None => {
                self.take_if(key, |s| s.is_dead_at(now));
                Ok(RedeemOutcome::NotFound)
            }
        }
    }

    async fn complete(
        &self,
        uri: &RequestUri,
        binding: &[u8; 32],
    ) -> Result<Completion, StoreError> {
        let now = SystemTime::now();
        let taken = self.take_if(uri.as_bytes(), |s| {
            !s.is_dead_at(now)
                && matches!(s.state, State::InFlow { binding: b, .. } if &b == binding)
        });
        Ok(match taken {
            RedeemOutcome::Redeemed(_) => Completion::Completed,
            _ => Completion::NotInFlow,
        })
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
            store.redeem(&a, "x", RedeemMode::Consume).await,
            Ok(RedeemOutcome::Redeemed(_))
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
        store
            .redeem(&first, "x", RedeemMode::Consume)
            .await
            .unwrap();
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
            store.redeem(&keep, "x", RedeemMode::Consume).await,
            Ok(RedeemOutcome::Redeemed(_))
        ));
        assert_eq!(store.pending(), 0);
        assert!(store.inner.per_client.is_empty());
    }

    #[tokio::test]
    async fn flow_window_outlives_push_lifetime_and_sweeps_after() {
        let store = MemoryStore::new();
        let short = Duration::from_millis(30);
        let uri = RequestUri::generate();
        store.insert(&uri, req("x", short), short).await.unwrap();
        let mode = RedeemMode::Bind {
            binding: [1; 32],
            reenter: Some([1; 32]),
            window: Duration::from_millis(150),
        };
        assert!(matches!(
            store.redeem(&uri, "x", mode).await,
            Ok(RedeemOutcome::Redeemed(_))
        ));
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Past expires_in, inside the flow window: re-entry still works.
        assert!(matches!(
            store.redeem(&uri, "x", mode).await,
            Ok(RedeemOutcome::Reentered(_))
        ));
        assert_eq!(store.sweep_expired(), 0);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            store.redeem(&uri, "x", mode).await,
            Ok(RedeemOutcome::NotFound)
        );
        assert_eq!(store.pending(), 0);
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
