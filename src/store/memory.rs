//! `MemoryStore`: the embedded store for a single instance.
//!
//! Entries live in 256 partitions, each a hash table behind its own lock,
//! picked by the random bytes of the `request_uri`: no lock is shared by
//! all requests, and a lock is held for one table operation. (256 keeps
//! the partitions' locks and table headers, 16 KiB, in cache; 1 024 cost
//! a cache miss per push once the store held a few hundred thousand
//! entries.) Expired entries are swept one partition at a time, a
//! millisecond apart, so removing a million expired entries is a million
//! tiny steps, never a pause.
//!
//! What one client can hold (the defaults in brackets): at most
//! `max_pending_per_client` requests waiting for their first redemption
//! [1 000], each for at most its `expires_in`; and at most
//! `max_in_flow_per_client` flows in progress [1 000], each for at most the
//! flow window. Anyone can push and redeem for a public client, so the flows
//! are never a reason to refuse: a first redemption over the in-flow
//! allowance ends the client's oldest flow instead. An attacker can thus
//! keep a public client's push allowance full only by pushing faster than
//! the requests expire, and can end (not hold) other users' flows only by
//! starting `max_in_flow_per_client` flows of their own. The whole store
//! holds at most `max_pending` entries and `max_pending_bytes` bytes.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hashbrown::hash_table::{Entry as TableEntry, HashTable};
use sha2::{Digest, Sha256};

use super::{Completion, ParStore, PushedRequest, RedeemMode, RedeemOutcome, StoreError};
use crate::client::AuthMethod;
use crate::RequestUri;

/// Bounds of a [`MemoryStore`]: start from [`MemoryStoreConfig::default`]
/// (or [`new`](Self::new)) and change what you need with the setters of
/// the same names as the fields. The fields can be read; new ones may be
/// added (`#[non_exhaustive]`).
///
/// ```
/// use tower_par::{MemoryStore, MemoryStoreConfig};
///
/// let config = MemoryStoreConfig::new()
///     .max_pending(10_000)
///     .max_pending_per_client(100);
/// assert_eq!(config.max_pending, 10_000);
/// assert_eq!(config.max_in_flow_per_client, 1_000); // the default
/// let store = MemoryStore::with_config(config);
/// # let _ = store;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStoreConfig {
    /// Entries the store may hold, pushed or in flow (default 100 000).
    /// When full, a push is answered `503 temporarily_unavailable` with
    /// `Retry-After`. The replay cache ([`ParStore::mark_once`]) holds at
    /// most as many keys.
    pub max_pending: usize,
    /// Bytes the store's entries may hold (default 256 MiB): each entry
    /// counts its parameters, its redirect URI and its client id, plus
    /// [`MemoryStore::ENTRY_OVERHEAD`]. When full, a push is answered like
    /// a store that holds `max_pending` entries. (100 000 entries at the
    /// 64 KiB body limit would be 6.4 GiB; typical requests of about 1 KiB
    /// fit 200 000 times.)
    pub max_pending_bytes: usize,
    /// Requests per client waiting for their first redemption (default
    /// 1 000). Over it, a push is answered `429`. A redeemed request no
    /// longer counts here, so that whoever redeems a public client's
    /// requests cannot keep its allowance full for the flow window.
    pub max_pending_per_client: usize,
    /// Flows per client in progress (first redemption made, flow not yet
    /// completed; default 1 000). A first redemption over it ends the
    /// client's oldest flow (its browser then gets "not found"), so a new
    /// user is never refused and the store stays bounded.
    pub max_in_flow_per_client: usize,
    /// Inserts between two sweep steps (default 1 024); a step also runs
    /// when a millisecond has passed since the last one. A step
    /// sweeps one of the store's 256 partitions, so it is short however
    /// many entries the store holds.
    pub sweep_every: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self {
            max_pending: 100_000,
            max_pending_bytes: 256 << 20,
            max_pending_per_client: 1_000,
            max_in_flow_per_client: 1_000,
            sweep_every: 1_024,
        }
    }
}

impl MemoryStoreConfig {
    /// The defaults, as [`Default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`max_pending`](Self#structfield.max_pending).
    pub fn max_pending(mut self, entries: usize) -> Self {
        self.max_pending = entries;
        self
    }

    /// Sets [`max_pending_bytes`](Self#structfield.max_pending_bytes).
    pub fn max_pending_bytes(mut self, bytes: usize) -> Self {
        self.max_pending_bytes = bytes;
        self
    }

    /// Sets [`max_pending_per_client`](Self#structfield.max_pending_per_client).
    pub fn max_pending_per_client(mut self, requests: usize) -> Self {
        self.max_pending_per_client = requests;
        self
    }

    /// Sets [`max_in_flow_per_client`](Self#structfield.max_in_flow_per_client).
    pub fn max_in_flow_per_client(mut self, flows: usize) -> Self {
        self.max_in_flow_per_client = flows;
        self
    }

    /// Sets [`sweep_every`](Self#structfield.sweep_every).
    pub fn sweep_every(mut self, inserts: usize) -> Self {
        self.sweep_every = inserts;
        self
    }
}

/// Number of partitions (a power of two).
const SHARDS: usize = 256;
/// Wall-clock time between two sweep steps while requests arrive: a full
/// cycle over the partitions takes about `SHARDS * STEP_MS` (256 ms). A
/// step removes what expired since the last one, about `STEP_MS` worth of
/// expiries whatever the partition count, so a short step keeps the pause
/// of a mass expiry short; scanning a partition's buckets is cheap (they
/// hold the deadline, the entries are not read).
const STEP_MS: u64 = 1;

type Key = [u8; 32];

/// A partition's table. A bucket is 24 bytes: the key's hash, the entry's
/// deadline and a pointer to the entry. Growing the table and sweeping it
/// read only the buckets; the key is kept (and compared in full, after
/// its hash) in the entry.
type Table = HashTable<Bucket>;

struct Bucket {
    hash: u64,
    /// Unix milliseconds, rounded up, from which the entry is dead.
    deadline_ms: u64,
    slot: Box<Slot>,
}

impl Bucket {
    fn new(slot: Box<Slot>) -> Self {
        Self {
            hash: hash_of(&slot.key),
            deadline_ms: ceil_millis(slot.deadline()),
            slot,
        }
    }

    fn is(&self, hash: u64, key: &Key) -> bool {
        self.hash == hash && self.slot.key == *key
    }
}

/// The hash of a key: `request_uri` references are 256 bits from a CSPRNG,
/// already uniformly distributed, so their first 8 bytes are the hash.
/// Only the store's own random keys are ever inserted, so no client can
/// choose keys that collide.
fn hash_of(key: &Key) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[..8]);
    u64::from_le_bytes(b)
}

/// Which partition a key lives in: bytes the hash does not start with.
fn shard_of(key: &Key) -> usize {
    usize::from(u16::from_le_bytes([key[30], key[31]])) & (SHARDS - 1)
}

/// A client's outstanding requests; shared by its entries, so releasing an
/// entry needs no map lookup.
struct ClientCount {
    client_id: Box<str>,
    /// Entries waiting for their first redemption.
    pending: AtomicUsize,
    /// Entries in flow.
    in_flow: AtomicUsize,
    /// The client's flows, oldest first: the ones to end when it goes over
    /// its in-flow allowance. Ended flows leave lazily (they are marked), so
    /// the queue is compacted when it holds twice as many as are live.
    flows: Mutex<VecDeque<Arc<InFlow>>>,
}

impl ClientCount {
    fn new(client_id: &str) -> Self {
        Self {
            client_id: client_id.into(),
            pending: AtomicUsize::new(0),
            in_flow: AtomicUsize::new(0),
            flows: Mutex::new(VecDeque::new()),
        }
    }
}

/// A browser-bound flow (the entry is "in flow").
struct InFlow {
    /// The entry's key, to find it when the flow is ended early.
    key: Key,
    binding: [u8; 32],
    until: SystemTime,
    /// Cleared when the entry leaves the store.
    live: AtomicBool,
}

/// One pending request, stored compactly: the client is shared, the
/// parameters and the redirect URI share one allocation of their exact
/// length, and the flow state is only allocated for the (few) entries in
/// flow.
struct Slot {
    key: Key,
    client: Arc<ClientCount>,
    /// The stored form, then the redirect URI (if any).
    text: Box<str>,
    params_len: usize,
    has_redirect_uri: bool,
    pushed_at: SystemTime,
    expires_at: SystemTime,
    auth_method: AuthMethod,
    flow: Option<Arc<InFlow>>,
}

impl Slot {
    /// What the entry counts against `max_pending_bytes`.
    fn cost(&self) -> usize {
        entry_cost(self.text.len(), self.client.client_id.len())
    }

    /// The moment the entry stops being usable.
    fn deadline(&self) -> SystemTime {
        match &self.flow {
            None => self.expires_at,
            Some(f) => f.until,
        }
    }

    fn is_dead_at(&self, now: SystemTime) -> bool {
        now >= self.deadline()
    }

    fn redirect_uri(&self) -> Option<&str> {
        // `params_len` is the length of a prefix of `text`, taken at insert:
        // always a character boundary.
        self.has_redirect_uri
            .then(|| self.text.get(self.params_len..))
            .flatten()
    }

    fn request(&self) -> PushedRequest {
        PushedRequest {
            client_id: self.client.client_id.to_string(),
            auth_method: self.auth_method,
            params: self
                .text
                .get(..self.params_len)
                .unwrap_or_default()
                .to_owned(),
            redirect_uri: self.redirect_uri().map(str::to_owned),
            pushed_at: self.pushed_at,
            expires_at: self.expires_at,
        }
    }

    fn into_request(self) -> PushedRequest {
        let redirect_uri = self.redirect_uri().map(str::to_owned);
        let mut params = self.text.into_string();
        params.truncate(self.params_len);
        PushedRequest {
            client_id: self.client.client_id.to_string(),
            auth_method: self.auth_method,
            params,
            redirect_uri,
            pushed_at: self.pushed_at,
            expires_at: self.expires_at,
        }
    }
}

/// What an entry with `text_len` bytes of parameters and redirect URI, for
/// a client id of `client_id_len` bytes, counts against
/// `max_pending_bytes`.
fn entry_cost(text_len: usize, client_id_len: usize) -> usize {
    text_len
        .saturating_add(client_id_len)
        .saturating_add(MemoryStore::ENTRY_OVERHEAD)
}

/// A partition, on its own cache line so that two cores working on
/// neighbouring partitions do not contend.
#[repr(align(64))]
#[derive(Default)]
struct Shard(Mutex<Part>);

/// A partition: its table, and a moment before which nothing in it dies,
/// so that a sweep step over a partition with nothing due is a comparison.
#[derive(Default)]
struct Part {
    table: Table,
    /// Unix milliseconds; no bucket's deadline is earlier (0: unknown).
    next_deadline_ms: u64,
}

/// A counter on its own cache line: written by every push, it must not
/// share a line with fields that are only read.
#[repr(align(64))]
struct Padded(AtomicUsize);

/// Least time between two scans of a full replay cache for expired keys,
/// so that a cache full of live keys is not rescanned by every call.
const MARKS_SCAN_MS: u64 = 100;
/// Partitions of the replay cache (`mark_once` is called once per client
/// assertion or DPoP proof, far less often than the entries are touched).
const MARK_SHARDS: usize = 16;

/// Stores are told apart by a number, never by an address that a later
/// store could reuse.
static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// How many client counters each thread keeps at hand.
const CLIENT_CACHE: usize = 4;

/// A client counter kept at hand, with the id of its store.
type CachedCount = Option<(u64, Arc<ClientCount>)>;

thread_local! {
    /// The client counters this thread used last, with the id of their
    /// store: a push finds its client's counter without taking the lock of
    /// the shared client map. A cached counter is never forgotten by its
    /// store (it is held elsewhere), so every thread counts a client's
    /// requests in the same counter.
    static CLIENTS: RefCell<[CachedCount; CLIENT_CACHE]> =
        const { RefCell::new([const { None }; CLIENT_CACHE]) };
    /// Inserts made by this thread, for the sweep step count.
    static INSERTS: Cell<usize> = const { Cell::new(0) };
}

/// One partition of the replay cache: key digest -> when it may be reused.
type Marks = HashMap<[u8; 32], SystemTime>;

struct Inner {
    id: u64,
    shards: Box<[Shard]>,
    clients: RwLock<HashMap<Box<str>, Arc<ClientCount>>>,
    /// The replay cache (`mark_once`): SHA-256 digests of the keys, in
    /// `MARK_SHARDS` partitions picked by the digest's first byte, like the
    /// entries' partitions (one map design for the whole store).
    marks: Box<[Mutex<Marks>]>,
    /// Keys in `marks`, across partitions.
    marks_len: AtomicUsize,
    pending: Padded,
    /// Bytes held by the entries, as counted by [`entry_cost`].
    bytes: Padded,
    /// Unix milliseconds at which the next sweep step is due.
    next_step: AtomicU64,
    cursor: AtomicUsize,
    /// Unix seconds of the last sweep forced by a full store.
    last_full_sweep: AtomicU64,
    /// Unix milliseconds before which no recorded key expires, and of the
    /// last scan of the replay cache (at most every `MARKS_SCAN_MS`).
    marks_next_expiry: AtomicU64,
    marks_last_scan: AtomicU64,
    config: MemoryStoreConfig,
}

/// An in-memory [`ParStore`] on partitioned maps.
///
/// Expiry is checked on every read; expired entries are also swept, one
/// partition at a time, by the push path (or by a background task with the
/// `tokio` feature, `MemoryStore::spawn_sweeper`). No lock is held across
/// an `.await`, and none is shared by all requests. Clones share the same
/// entries.
///
/// ```
/// use tower_par::{MemoryStore, MemoryStoreConfig};
///
/// let store = MemoryStore::with_config(MemoryStoreConfig::default().max_pending(1_000_000));
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

fn lock(shard: &Shard) -> MutexGuard<'_, Part> {
    // A panic while a map was locked cannot leave it half-updated (every
    // update is one map call), so a poisoned lock is still usable.
    shard.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// `t + d`, or a moment some 35 000 years after `t` when that does not
/// fit in a `SystemTime`: adding a long TTL or window never panics.
fn later(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(1 << 40)))
        .unwrap_or(t)
}

/// Unix milliseconds, rounded down; saturating, so that a far-future
/// deadline never wraps into the past.
fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Unix milliseconds, rounded up (a bucket is swept only once its exact
/// deadline has passed); saturating.
fn ceil_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if d.subsec_nanos().is_multiple_of(1_000_000) {
            ms
        } else {
            ms.saturating_add(1)
        }
    })
}

impl MemoryStore {
    /// The fixed bytes an entry counts against
    /// [`MemoryStoreConfig::max_pending_bytes`] on top of its texts: about
    /// what the store's own records of an entry in flow take.
    pub const ENTRY_OVERHEAD: usize = 256;

    /// A store with the default bounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store with the given bounds.
    pub fn with_config(config: MemoryStoreConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                shards: (0..SHARDS).map(|_| Shard::default()).collect(),
                clients: RwLock::new(HashMap::new()),
                marks: (0..MARK_SHARDS)
                    .map(|_| Mutex::new(HashMap::new()))
                    .collect(),
                marks_len: AtomicUsize::new(0),
                pending: Padded(AtomicUsize::new(0)),
                bytes: Padded(AtomicUsize::new(0)),
                next_step: AtomicU64::new(0),
                cursor: AtomicUsize::new(0),
                last_full_sweep: AtomicU64::new(0),
                marks_next_expiry: AtomicU64::new(0),
                marks_last_scan: AtomicU64::new(0),
                config,
            }),
        }
    }

    /// Entries held (pushed or in flow, not yet consumed or swept).
    pub fn pending(&self) -> usize {
        self.inner.pending.0.load(Ordering::Relaxed)
    }

    /// Bytes held by the entries, as counted against
    /// [`MemoryStoreConfig::max_pending_bytes`].
    pub fn pending_bytes(&self) -> usize {
        self.inner.bytes.0.load(Ordering::Relaxed)
    }

    /// Removes every expired entry now, one partition at a time; returns
    /// how many were removed.
    pub fn sweep_expired(&self) -> usize {
        let now = SystemTime::now();
        let removed = (0..SHARDS).map(|i| self.sweep_shard(i, now)).sum();
        self.forget_idle_clients();
        self.retain_marks(|expires| *expires > now);
        removed
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

    fn sweep_shard(&self, i: usize, now: SystemTime) -> usize {
        let mut part = lock(&self.inner.shards[i]);
        let now_ms = unix_millis(now);
        if now_ms < part.next_deadline_ms {
            return 0;
        }
        let part = &mut *part;
        let before = part.table.len();
        let mut next = u64::MAX;
        part.table.retain(|b| {
            let dead = b.deadline_ms <= now_ms;
            if dead {
                self.release(&b.slot);
            } else {
                next = next.min(b.deadline_ms);
            }
            !dead
        });
        part.next_deadline_ms = next;
        before - part.table.len()
    }

    /// One sweep step, when one is due: every `sweep_every` inserts, and
    /// every `STEP_MS` of wall-clock time.
    fn maybe_step(&self, now: SystemTime) {
        let inner = &self.inner;
        // Counted per thread: a shared counter would be a cache line that
        // every push on every core writes.
        let n = INSERTS.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n
        });
        let by_count = n.is_multiple_of(inner.config.sweep_every.max(1));
        let ms = unix_millis(now);
        let due = inner.next_step.load(Ordering::Relaxed);
        let by_time = ms >= due
            && inner
                .next_step
                .compare_exchange(due, ms + STEP_MS, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if by_count || by_time {
            let i = inner.cursor.fetch_add(1, Ordering::Relaxed) % SHARDS;
            self.sweep_shard(i, now);
            if i == 0 {
                self.forget_idle_clients();
            }
        }
    }

    /// Clients with nothing pending are dropped from the counters; only
    /// during a full sweep, so that the push path never takes the lock
    /// for writing.
    fn forget_idle_clients(&self) {
        let mut clients = self
            .inner
            .clients
            .write()
            .unwrap_or_else(|e| e.into_inner());
        // A count held elsewhere (by an entry or a push in progress) stays.
        clients.retain(|_, c| {
            Arc::strong_count(c) > 1
                || c.pending.load(Ordering::Acquire) > 0
                || c.in_flow.load(Ordering::Acquire) > 0
        });
    }

    fn client_count(&self, client_id: &str) -> Arc<ClientCount> {
        let id = self.inner.id;
        let cached = CLIENTS.with(|c| {
            let mut c = c.borrow_mut();
            let hit = c.iter().position(|e| {
                e.as_ref()
                    .is_some_and(|(s, count)| *s == id && *count.client_id == *client_id)
            })?;
            // Most recently used first.
            c[..=hit].rotate_right(1);
            c[0].as_ref().map(|(_, count)| count.clone())
        });
        if let Some(count) = cached {
            return count;
        }
        let count = self.shared_client_count(client_id);
        CLIENTS.with(|c| {
            let mut c = c.borrow_mut();
            c.rotate_right(1);
            c[0] = Some((id, count.clone()));
        });
        count
    }

    fn shared_client_count(&self, client_id: &str) -> Arc<ClientCount> {
        let clients = &self.inner.clients;
        if let Some(c) = clients
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(client_id)
        {
            return c.clone();
        }
        let mut map = clients.write().unwrap_or_else(|e| e.into_inner());
        map.entry(client_id.into())
            .or_insert_with(|| Arc::new(ClientCount::new(client_id)))
            .clone()
    }

    /// Takes room for one entry of `cost` bytes in the store's bounds.
    fn reserve_room(&self, cost: usize) -> bool {
        let inner = &self.inner;
        let cfg = &inner.config;
        if inner.pending.0.fetch_add(1, Ordering::AcqRel) >= cfg.max_pending {
            inner.pending.0.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        let before = inner.bytes.0.fetch_add(cost, Ordering::AcqRel);
        if before.saturating_add(cost) > cfg.max_pending_bytes {
            inner.bytes.0.fetch_sub(cost, Ordering::AcqRel);
            inner.pending.0.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn reserve(
        &self,
        client_id: &str,
        cost: usize,
        now: SystemTime,
    ) -> Result<Arc<ClientCount>, StoreError> {
        let inner = &self.inner;
        let cfg = &inner.config;
        if !self.reserve_room(cost) {
            // Full: expired entries may be what fills it. At most once a
            // second, so that a store full of live entries is not rescanned
            // by every push; one partition at a time, so that only this
            // push waits for it.
            let secs = unix_millis(now) / 1000;
            let last = inner.last_full_sweep.load(Ordering::Relaxed);
            if last < secs
                && inner
                    .last_full_sweep
                    .compare_exchange(last, secs, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                for i in 0..SHARDS {
                    self.sweep_shard(i, now);
                }
            }
            if !self.reserve_room(cost) {
                return Err(StoreError::Full { retry_after: 5 });
            }
        }
        let client = self.client_count(client_id);
        if client.pending.fetch_add(1, Ordering::AcqRel) >= cfg.max_pending_per_client {
            client.pending.fetch_sub(1, Ordering::AcqRel);
            inner.bytes.0.fetch_sub(cost, Ordering::AcqRel);
            inner.pending.0.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::ClientLimit { retry_after: 5 });
        }
        Ok(client)
    }

    /// Gives back what an entry that left the store held: every removal
    /// path (redemption, completion, sweep, replacement, refused insert,
    /// eviction) ends here.
    fn release(&self, slot: &Slot) {
        let inner = &self.inner;
        inner.pending.0.fetch_sub(1, Ordering::AcqRel);
        inner.bytes.0.fetch_sub(slot.cost(), Ordering::AcqRel);
        match &slot.flow {
            None => slot.client.pending.fetch_sub(1, Ordering::AcqRel),
            // A flow already picked for eviction was uncounted then.
            Some(flow) if flow.live.swap(false, Ordering::AcqRel) => {
                slot.client.in_flow.fetch_sub(1, Ordering::AcqRel)
            }
            Some(_) => 0,
        };
    }

    /// Records a new flow of `client` and, over its in-flow allowance, ends
    /// its oldest flows. Called with no partition locked: ending a flow
    /// locks that flow's partition, and a partition lock is never held
    /// while the queue is locked.
    fn track_flow(&self, client: &ClientCount, flow: Arc<InFlow>) {
        let max = self.inner.config.max_in_flow_per_client.max(1);
        let victims: Vec<Arc<InFlow>> = {
            let mut flows = client.flows.lock().unwrap_or_else(|e| e.into_inner());
            flows.push_back(flow.clone());
            let live = client.in_flow.load(Ordering::Acquire);
            if flows.len() >= live.max(8).saturating_mul(2) {
                flows.retain(|f| f.live.load(Ordering::Acquire));
            }
            let mut excess = live.saturating_sub(max);
            let mut victims = Vec::new();
            // Bounded by the queue's length.
            while excess > 0 {
                let Some(oldest) = flows.pop_front() else {
                    break;
                };
                if Arc::ptr_eq(&oldest, &flow) {
                    // Never the flow just started: the others counted are
                    // still being recorded by their threads.
                    flows.push_front(oldest);
                    break;
                }
                // Claimed and uncounted under the queue lock, so that
                // concurrent redemptions never end more flows than the
                // excess (`release` does not count it again).
                if oldest.live.swap(false, Ordering::AcqRel) {
                    client.in_flow.fetch_sub(1, Ordering::AcqRel);
                    victims.push(oldest);
                    excess -= 1;
                }
            }
            victims
        };
        for victim in victims {
            self.end_flow(&victim);
        }
    }

    /// Consumes the entry of `flow`, if it is still that flow.
    fn end_flow(&self, flow: &Arc<InFlow>) {
        let key = &flow.key;
        let mut map = self.shard(key);
        let hash = hash_of(key);
        let Ok(entry) = map.table.find_entry(hash, |b| b.is(hash, key)) else {
            return;
        };
        let same = entry
            .get()
            .slot
            .flow
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(f, flow));
        if !same {
            return;
        }
        let (bucket, _) = entry.remove();
        drop(map);
        self.release(&bucket.slot);
    }

    /// Removes expired keys from a full replay cache, if any can have
    /// expired and the last scan is `MARKS_SCAN_MS` old; whether there is
    /// room now.
    fn forget_expired_marks(&self, now: SystemTime) -> bool {
        let inner = &self.inner;
        let ms = unix_millis(now);
        let last = inner.marks_last_scan.load(Ordering::Relaxed);
        let due = ms >= inner.marks_next_expiry.load(Ordering::Relaxed)
            && ms >= last.saturating_add(MARKS_SCAN_MS)
            && inner
                .marks_last_scan
                .compare_exchange(last, ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if due {
            let mut next = u64::MAX;
            self.retain_marks(|expires| {
                let live = *expires > now;
                if live {
                    next = next.min(unix_millis(*expires));
                }
                live
            });
            inner.marks_next_expiry.store(next, Ordering::Relaxed);
        }
        inner.marks_len.load(Ordering::Relaxed) < inner.config.max_pending
    }

    /// Keeps the replay-cache keys for which `live` holds, one partition
    /// lock at a time.
    fn retain_marks(&self, mut live: impl FnMut(&SystemTime) -> bool) {
        for part in self.inner.marks.iter() {
            let mut map = part.lock().unwrap_or_else(|e| e.into_inner());
            let before = map.len();
            map.retain(|_, expires| live(expires));
            self.inner
                .marks_len
                .fetch_sub(before - map.len(), Ordering::Relaxed);
        }
    }

    fn marks_part(&self, digest: &[u8; 32]) -> MutexGuard<'_, Marks> {
        // As `lock`: every update is one map call, so poison is harmless.
        self.inner.marks[usize::from(digest[0]) % MARK_SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn shard(&self, key: &Key) -> MutexGuard<'_, Part> {
        lock(&self.inner.shards[shard_of(key)])
    }
}

impl ParStore for MemoryStore {
    async fn insert(
        &self,
        uri: &RequestUri,
        request: PushedRequest,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = SystemTime::now();
        self.maybe_step(now);
        let text_len = request
            .params
            .len()
            .saturating_add(request.redirect_uri.as_ref().map_or(0, String::len));
        let cost = entry_cost(text_len, request.client_id.len());
        let client = self.reserve(&request.client_id, cost, now)?;
        let key = *uri.as_bytes();
        // One allocation for both texts: no new one when the caller left
        // exactly the room for the redirect URI after the form (the layer
        // does, unless it dropped parameters from the pushed form).
        let params_len = request.params.len();
        let mut joined = request.params;
        if let Some(r) = &request.redirect_uri {
            joined.push_str(r);
        }
        let joined = joined.into_boxed_str();
        let slot = Box::new(Slot {
            key,
            client,
            text: joined,
            params_len,
            has_redirect_uri: request.redirect_uri.is_some(),
            pushed_at: request.pushed_at,
            expires_at: request.expires_at.min(later(now, ttl)),
            auth_method: request.auth_method,
            flow: None,
        });
        let hash = hash_of(&key);
        let bucket = Bucket::new(slot);
        let mut guard = self.shard(&key);
        let part = &mut *guard;
        part.next_deadline_ms = part.next_deadline_ms.min(bucket.deadline_ms);
        // One probe of the table: `entry`, not a lookup then an insert. The
        // bucket it puts aside (a dead entry replaced, or the new one
        // refused) has its counts released once the lock is dropped.
        let (put_aside, result) = match part.table.entry(hash, |b| b.is(hash, &key), |b| b.hash) {
            TableEntry::Occupied(mut e) if e.get().slot.is_dead_at(now) => {
                (Some(std::mem::replace(e.get_mut(), bucket)), Ok(()))
            }
            TableEntry::Occupied(_) => (Some(bucket), Err(StoreError::Exists)),
            TableEntry::Vacant(e) => {
                e.insert(bucket);
                (None, Ok(()))
            }
        };
        drop(guard);
        if let Some(b) = put_aside {
            self.release(&b.slot);
        }
        result
    }

    async fn redeem(
        &self,
        uri: &RequestUri,
        client_id: &str,
        mode: RedeemMode,
    ) -> Result<RedeemOutcome, StoreError> {
        let now = SystemTime::now();
        let key = uri.as_bytes();
        // The partition lock makes the check and the transition one atomic
        // step: of two concurrent redemptions only one sees a pushed entry
        // (RFC 9126 §4).
        let mut map = self.shard(key);
        let part = &mut *map;
        let hash = hash_of(key);
        let Ok(mut entry) = part.table.find_entry(hash, |b| b.is(hash, key)) else {
            return Ok(RedeemOutcome::NotFound);
        };
        if entry.get().slot.is_dead_at(now) {
            let (dead, _) = entry.remove();
            drop(map);
            self.release(&dead.slot);
            return Ok(RedeemOutcome::NotFound);
        }
        if *entry.get().slot.client.client_id != *client_id {
            // PAR-15: left in place for its rightful client.
            return Ok(RedeemOutcome::WrongClient);
        }
        Ok(match (&entry.get().slot.flow, mode) {
            (None, RedeemMode::Consume) => {
                let (bucket, _) = entry.remove();
                drop(map);
                self.release(&bucket.slot);
                RedeemOutcome::Redeemed(bucket.slot.into_request())
            }
            (
                None,
                RedeemMode::Bind {
                    binding, window, ..
                },
            ) => {
                let bucket = entry.get_mut();
                let until = later(now, window);
                let flow = Arc::new(InFlow {
                    key: *key,
                    binding,
                    until,
                    live: AtomicBool::new(true),
                });
                bucket.slot.flow = Some(flow.clone());
                // The push slot is free again; the flow counts against the
                // in-flow allowance instead. Both under the partition lock,
                // so a removal always releases the counter it was taken
                // from.
                let client = bucket.slot.client.clone();
                client.pending.fetch_sub(1, Ordering::AcqRel);
                client.in_flow.fetch_add(1, Ordering::AcqRel);
                bucket.deadline_ms = ceil_millis(until);
                part.next_deadline_ms = part.next_deadline_ms.min(bucket.deadline_ms);
                let request = bucket.slot.request();
                drop(map);
                self.track_flow(&client, flow);
                RedeemOutcome::Redeemed(request)
            }
            (
                Some(flow),
                RedeemMode::Bind {
                    reenter: Some(r), ..
                },
            ) if flow.binding == r => RedeemOutcome::Reentered(entry.get().slot.request()),
            // In flow for another browser, or a strict redemption of a
            // request already in flow.
            (Some(_), _) => RedeemOutcome::NotFound,
        })
    }

    async fn complete(
        &self,
        uri: &RequestUri,
        binding: &[u8; 32],
    ) -> Result<Completion, StoreError> {
        let now = SystemTime::now();
        let key = uri.as_bytes();
        let mut map = self.shard(key);
        let hash = hash_of(key);
        let Ok(entry) = map.table.find_entry(hash, |b| b.is(hash, key)) else {
            return Ok(Completion::NotInFlow);
        };
        let s = &entry.get().slot;
        let in_flow = !s.is_dead_at(now) && s.flow.as_ref().is_some_and(|f| &f.binding == binding);
        if !in_flow {
            return Ok(Completion::NotInFlow);
        }
        let (bucket, _) = entry.remove();
        drop(map);
        self.release(&bucket.slot);
        Ok(Completion::Completed)
    }

    /// A read under the partition lock: nothing changes, not even for an
    /// entry that was never redeemed.
    async fn in_flow(
        &self,
        uri: &RequestUri,
        client_id: &str,
        binding: &[u8; 32],
    ) -> Result<Option<PushedRequest>, StoreError> {
        let now = SystemTime::now();
        let key = uri.as_bytes();
        let map = self.shard(key);
        let hash = hash_of(key);
        let Some(bucket) = map.table.find(hash, |b| b.is(hash, key)) else {
            return Ok(None);
        };
        let s = &bucket.slot;
        let ours = !s.is_dead_at(now)
            && *s.client.client_id == *client_id
            && s.flow.as_ref().is_some_and(|f| &f.binding == binding);
        Ok(ours.then(|| s.request()))
    }

    async fn mark_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut part = self.marks_part(&digest);
        match part.get_mut(&digest) {
            Some(expires) => {
                if *expires > now {
                    Ok(false)
                } else {
                    *expires = later(now, ttl);
                    Ok(true)
                }
            }
            None => {
                // A full cache is pruned across partitions: not under this
                // partition's lock.
                drop(part);
                // The keys may be chosen by whoever signs them (DPoP proof
                // `jti`s): the cache holds at most `max_pending`, also
                // without a sweeper.
                if self.inner.marks_len.load(Ordering::Relaxed) >= self.inner.config.max_pending
                    && !self.forget_expired_marks(now)
                {
                    return Err(StoreError::Full { retry_after: 5 });
                }
                let expires = later(now, ttl);
                let recorded = match self.marks_part(&digest).entry(digest) {
                    std::collections::hash_map::Entry::Occupied(e) if *e.get() > now => false,
                    std::collections::hash_map::Entry::Occupied(mut e) => {
                        *e.get_mut() = expires;
                        true
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(expires);
                        self.inner.marks_len.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                };
                self.inner
                    .marks_next_expiry
                    .fetch_min(unix_millis(expires), Ordering::Relaxed);
                Ok(recorded)
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

    fn req(client: &str, lifetime: Duration) -> PushedRequest {
        PushedRequest::new(client, AuthMethod::None, "a=1", SystemTime::now(), lifetime)
    }

    #[tokio::test]
    async fn capacity_bound_is_enforced_and_released() {
        let store = MemoryStore::with_config(MemoryStoreConfig {
            max_pending: 2,
            max_pending_per_client: 10,
            sweep_every: 1000,
            ..MemoryStoreConfig::default()
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
            ..MemoryStoreConfig::default()
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
            ..MemoryStoreConfig::default()
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
        // Idle clients' counters go at the next full sweep, except the few
        // this thread keeps at hand.
        let names: Vec<String> = (0..CLIENT_CACHE + 3).map(|i| format!("c{i}")).collect();
        for name in &names {
            let uri = RequestUri::generate();
            store.insert(&uri, req(name, long), long).await.unwrap();
            store.redeem(&uri, name, RedeemMode::Consume).await.unwrap();
        }
        store.sweep_expired();
        let clients = store.inner.clients.read().unwrap();
        assert_eq!(clients.len(), CLIENT_CACHE);
        // The least recently used are gone.
        assert!(!clients.contains_key("x"));
        assert!(!clients.contains_key("c0"));
        assert!(clients.contains_key(names.last().unwrap().as_str()));
    }

    #[test]
    fn every_thread_counts_a_client_in_the_same_counter() {
        let store = MemoryStore::with_config(MemoryStoreConfig {
            max_pending: 1_000,
            max_pending_per_client: 10,
            sweep_every: 1_000,
            ..MemoryStoreConfig::default()
        });
        let ttl = Duration::from_secs(60);
        // Four threads, with their own counter caches, push for one client:
        // exactly the per-client bound is accepted.
        let accepted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..10)
                            .filter(|_| {
                                futures::executor::block_on(store.insert(
                                    &RequestUri::generate(),
                                    req("shared", ttl),
                                    ttl,
                                ))
                                .is_ok()
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(accepted, 10);
        // Another store does not see this one's counters.
        let other = MemoryStore::new();
        assert!(futures::executor::block_on(other.insert(
            &RequestUri::generate(),
            req("shared", ttl),
            ttl
        ))
        .is_ok());
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

    #[tokio::test]
    async fn a_far_future_deadline_is_not_swept() {
        let store = MemoryStore::new();
        let forever = Duration::from_millis(u64::MAX);
        let uri = RequestUri::generate();
        store
            .insert(&uri, req("x", forever), forever)
            .await
            .unwrap();
        assert_eq!(store.sweep_expired(), 0);
        assert!(matches!(
            store.redeem(&uri, "x", RedeemMode::Consume).await,
            Ok(RedeemOutcome::Redeemed(_))
        ));
    }

    #[tokio::test]
    async fn a_flow_window_shorter_than_the_lifetime_is_swept_at_its_end() {
        let store = MemoryStore::new();
        let long = Duration::from_secs(60);
        let uri = RequestUri::generate();
        store.insert(&uri, req("x", long), long).await.unwrap();
        // A sweep now learns that nothing in the partition is due for 60 s.
        assert_eq!(store.sweep_expired(), 0);
        let mode = RedeemMode::Bind {
            binding: [1; 32],
            reenter: None,
            window: Duration::from_millis(20),
        };
        assert!(matches!(
            store.redeem(&uri, "x", mode).await,
            Ok(RedeemOutcome::Redeemed(_))
        ));
        tokio::time::sleep(Duration::from_millis(40)).await;
        // The binding brought the partition's next deadline forward.
        assert_eq!(store.sweep_expired(), 1);
        assert_eq!(store.pending(), 0);
    }

    fn sized(client: &str, params_len: usize, lifetime: Duration) -> PushedRequest {
        PushedRequest::new(
            client,
            AuthMethod::None,
            "p".repeat(params_len),
            SystemTime::now(),
            lifetime,
        )
        .with_redirect_uri(Some("https://c.example/cb".into()))
    }

    /// The bytes one `sized(client, params_len, _)` entry counts.
    fn cost_of(client: &str, params_len: usize) -> usize {
        params_len + "https://c.example/cb".len() + client.len() + MemoryStore::ENTRY_OVERHEAD
    }

    #[test]
    fn entry_overhead_covers_the_records_of_an_entry_in_flow() {
        let records = std::mem::size_of::<Bucket>()
            + std::mem::size_of::<Slot>()
            + std::mem::size_of::<InFlow>()
            + 2 * std::mem::size_of::<usize>() // the Arc's counts
            + std::mem::size_of::<Arc<InFlow>>(); // its place in the queue
        assert!(records <= MemoryStore::ENTRY_OVERHEAD, "{records}");
    }

    #[tokio::test]
    async fn byte_budget_refuses_with_full_and_every_removal_gives_bytes_back() {
        // Room for exactly three 16 KiB entries, whatever `max_pending`.
        let size = 16 << 10;
        let store = MemoryStore::with_config(MemoryStoreConfig {
            max_pending: 1_000,
            max_pending_bytes: 3 * cost_of("x", size),
            max_pending_per_client: 1_000,
            sweep_every: 1_000_000,
            ..MemoryStoreConfig::default()
        });
        let ttl = Duration::from_secs(60);
        let uris: Vec<RequestUri> = (0..3).map(|_| RequestUri::generate()).collect();
        for uri in &uris {
            store.insert(uri, sized("x", size, ttl), ttl).await.unwrap();
        }
        assert_eq!(store.pending_bytes(), 3 * cost_of("x", size));
        let refused = RequestUri::generate();
        assert_eq!(
            store.insert(&refused, sized("x", size, ttl), ttl).await,
            Err(StoreError::Full { retry_after: 5 })
        );
        // A smaller request still fits in nothing: the budget is bytes.
        assert!(matches!(
            store.insert(&refused, sized("x", 1, ttl), ttl).await,
            Err(StoreError::Full { .. })
        ));
        // An insert refused as `Exists` holds nothing afterwards.
        assert_eq!(
            store.insert(&uris[0], sized("x", 0, ttl), ttl).await,
            Err(StoreError::Full { retry_after: 5 })
        );
        assert_eq!(store.pending_bytes(), 3 * cost_of("x", size));

        // Consumed: room again.
        store
            .redeem(&uris[0], "x", RedeemMode::Consume)
            .await
            .unwrap();
        store
            .insert(&refused, sized("x", size, ttl), ttl)
            .await
            .unwrap();
        // Completed: room again.
        let mode = RedeemMode::Bind {
            binding: [1; 32],
            reenter: None,
            window: ttl,
        };
        store.redeem(&uris[1], "x", mode).await.unwrap();
        assert_eq!(store.pending_bytes(), 3 * cost_of("x", size));
        assert_eq!(
            store.complete(&uris[1], &[1; 32]).await.unwrap(),
            Completion::Completed
        );
        let short = Duration::from_millis(20);
        let expiring = RequestUri::generate();
        store
            .insert(&expiring, sized("x", size, short), short)
            .await
            .unwrap();
        // Swept: room again.
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(store.sweep_expired(), 1);
        let fresh = RequestUri::generate();
        store
            .insert(&fresh, sized("x", size, ttl), ttl)
            .await
            .unwrap();
        assert_eq!(store.pending(), 3);
        assert_eq!(store.pending_bytes(), 3 * cost_of("x", size));

        for uri in [&uris[2], &refused, &fresh] {
            assert!(matches!(
                store.redeem(uri, "x", RedeemMode::Consume).await,
                Ok(RedeemOutcome::Redeemed(_))
            ));
        }
        assert_eq!((store.pending(), store.pending_bytes()), (0, 0));
    }

    #[tokio::test]
    async fn an_insert_refused_as_exists_or_replacing_a_dead_entry_counts_exactly() {
        let store = MemoryStore::new();
        let short = Duration::from_millis(20);
        let ttl = Duration::from_secs(60);
        let uri = RequestUri::generate();
        store
            .insert(&uri, sized("x", 100, short), short)
            .await
            .unwrap();
        assert_eq!(
            store.insert(&uri, sized("x", 5_000, ttl), ttl).await,
            Err(StoreError::Exists)
        );
        assert_eq!(store.pending_bytes(), cost_of("x", 100));
        tokio::time::sleep(Duration::from_millis(40)).await;
        // The dead entry is replaced in place.
        store.insert(&uri, sized("yy", 7, ttl), ttl).await.unwrap();
        assert_eq!(store.pending_bytes(), cost_of("yy", 7));
        store.redeem(&uri, "yy", RedeemMode::Consume).await.unwrap();
        assert_eq!((store.pending(), store.pending_bytes()), (0, 0));
    }

    #[tokio::test]
    async fn flows_move_between_the_allowances_and_every_count_returns_to_zero() {
        let store = MemoryStore::with_config(MemoryStoreConfig {
            max_pending_per_client: 2,
            max_in_flow_per_client: 2,
            ..MemoryStoreConfig::default()
        });
        let ttl = Duration::from_secs(60);
        let short = Duration::from_millis(20);
        let counts = |store: &MemoryStore| {
            let clients = store.inner.clients.read().unwrap();
            let c = clients.get("x").unwrap();
            (
                c.pending.load(Ordering::Acquire),
                c.in_flow.load(Ordering::Acquire),
            )
        };
        let bind = |b: u8, window| RedeemMode::Bind {
            binding: [b; 32],
            reenter: Some([b; 32]),
            window,
        };
        // Five flows, two of them short: the oldest are evicted, the short
        // ones are swept, one is completed.
        let mut uris = Vec::new();
        for i in 0..5u8 {
            let uri = RequestUri::generate();
            store.insert(&uri, sized("x", 10, ttl), ttl).await.unwrap();
            assert_eq!(counts(&store).0, 1);
            let window = if i >= 3 { short } else { ttl };
            store.redeem(&uri, "x", bind(i, window)).await.unwrap();
            uris.push(uri);
        }
        assert_eq!(counts(&store), (0, 2));
        assert_eq!(store.pending(), 2);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(store.sweep_expired(), 2);
        assert_eq!(counts(&store), (0, 0));
        assert_eq!((store.pending(), store.pending_bytes()), (0, 0));
        // Many completed flows later, the queue of flows stays short.
        for i in 0..100u8 {
            let uri = RequestUri::generate();
            store.insert(&uri, sized("x", 10, ttl), ttl).await.unwrap();
            store.redeem(&uri, "x", bind(i, ttl)).await.unwrap();
            store.complete(&uri, &[i; 32]).await.unwrap();
        }
        let queued = {
            let clients = store.inner.clients.read().unwrap();
            let n = clients.get("x").unwrap().flows.lock().unwrap().len();
            n
        };
        assert!(queued <= 16, "{queued}");
        assert_eq!(counts(&store), (0, 0));
        assert_eq!((store.pending(), store.pending_bytes()), (0, 0));
    }

    #[tokio::test]
    async fn the_replay_cache_is_bounded_without_a_sweeper() {
        // Keys such as DPoP proof `jti`s are chosen by whoever signs them:
        // the cache holds at most `max_pending` of them.
        let store = MemoryStore::with_config(MemoryStoreConfig {
            max_pending: 3,
            ..MemoryStoreConfig::default()
        });
        let short = Duration::from_millis(20);
        for i in 0..3 {
            assert_eq!(store.mark_once(&format!("jti-{i}"), short).await, Ok(true));
        }
        assert_eq!(
            store.mark_once("jti-3", Duration::from_secs(60)).await,
            Err(StoreError::Full { retry_after: 5 })
        );
        // A recorded key is still recognised when the cache is full.
        assert_eq!(store.mark_once("jti-0", short).await, Ok(false));
        // Expired keys make room (without waiting for a sweep; a full cache
        // is scanned at most every 100 ms).
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(store.mark_once("jti-3", short).await, Ok(true));
        assert!(store.inner.marks_len.load(Ordering::Relaxed) <= 3);
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
