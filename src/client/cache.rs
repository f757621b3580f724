//! A caching wrapper for client registries that live in a database.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Client, ClientAuthError, ClientAuthenticator, ClientCredentials, Secret};

/// Answers repeated [`ClientAuthenticator::client`] lookups from memory for
/// a while, in front of a registry that costs a database round trip.
///
/// The authorization endpoint looks clients up on every request while PAR
/// may be required for some of them, and at every redemption. With this
/// wrapper, a client found (or found missing) is remembered for `ttl`;
/// registry failures are never remembered, so an outage ends as soon as the
/// registry answers again. Authentication at the PAR endpoint always goes to
/// the wrapped registry.
///
/// At most `capacity` lookups are remembered, of ids up to 255 bytes
/// without control characters (longer ones are passed on, never kept).
/// When the cache is full, the expired lookups are dropped, at most once per
/// `ttl`; until then new answers are simply not kept, so a flood of made-up
/// `client_id`s can neither grow it nor make each lookup scan it.
///
/// A change to a client's registration (for example turning on
/// `require_pushed_authorization_requests`) takes effect after at most
/// `ttl`: keep it short (seconds) where that matters.
///
/// ```
/// use std::time::Duration;
/// use tower_par::{CachingClients, ParLayer, StaticClients};
///
/// let clients = CachingClients::new(StaticClients::new(), Duration::from_secs(5), 10_000);
/// let layer = ParLayer::new(clients);
/// # let _ = layer;
/// ```
pub struct CachingClients<C> {
    inner: C,
    ttl: Duration,
    capacity: usize,
    cache: Arc<Mutex<Cache>>,
}

#[derive(Default)]
struct Cache {
    map: HashMap<String, Cached>,
    pruned_at: Option<Instant>,
}

struct Cached {
    at: Instant,
    client: Option<Arc<Client>>,
}

impl<C> CachingClients<C> {
    /// Remembers `inner`'s lookups for `ttl`, at most `capacity` of them.
    pub fn new(inner: C, ttl: Duration, capacity: usize) -> Self {
        Self {
            inner,
            ttl,
            capacity,
            cache: Arc::default(),
        }
    }

    /// The wrapped registry.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// Forgets every remembered lookup (for example after a registration
    /// changed).
    pub fn clear(&self) {
        self.lock().map.clear();
    }

    /// Forgets the lookup of one client.
    pub fn invalidate(&self, client_id: &str) {
        self.lock().map.remove(client_id);
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        // A panic elsewhere while holding the lock leaves a usable map.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, client_id: &str, client: Option<Arc<Client>>) {
        let now = Instant::now();
        let ttl = self.ttl;
        let mut cache = self.lock();
        if cache.map.len() >= self.capacity && !cache.map.contains_key(client_id) {
            if cache.pruned_at.is_some_and(|t| now.duration_since(t) < ttl) {
                return;
            }
            cache.pruned_at = Some(now);
            cache.map.retain(|_, c| now.duration_since(c.at) < ttl);
            if cache.map.len() >= self.capacity {
                return;
            }
        }
        cache
            .map
            .insert(client_id.to_owned(), Cached { at: now, client });
    }
}

impl<C: Clone> Clone for CachingClients<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            ttl: self.ttl,
            capacity: self.capacity,
            cache: self.cache.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for CachingClients<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingClients")
            .field("inner", &self.inner)
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("cached", &self.lock().map.len())
            .finish()
    }
}

impl<C: ClientAuthenticator> ClientAuthenticator for CachingClients<C> {
    async fn authenticate(
        &self,
        credentials: &ClientCredentials,
        request: &http::request::Parts,
    ) -> Result<Arc<Client>, ClientAuthError> {
        self.inner.authenticate(credentials, request).await
    }

    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, ClientAuthError> {
        if client_id.len() > 255 || client_id.chars().any(char::is_control) {
            return self.inner.client(client_id).await;
        }
        {
            let cache = self.lock();
            if let Some(c) = cache.map.get(client_id) {
                if c.at.elapsed() < self.ttl {
                    return Ok(c.client.clone());
                }
            }
        }
        // Errors are not remembered: the next request asks again.
        let client = self.inner.client(client_id).await?;
        self.remember(client_id, client.clone());
        Ok(client)
    }

    fn may_require_par(&self) -> bool {
        self.inner.may_require_par()
    }

    /// JWT client authentication reads the registration from the wrapped
    /// registry, never from the cache: a removed client, key or method
    /// stops authenticating at once.
    async fn client_for_authentication(
        &self,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, ClientAuthError> {
        self.inner.client(client_id).await
    }

    // Secrets are not kept here: each `client_secret_jwt` verification
    // asks the wrapped registry.
    async fn client_secret(&self, client_id: &str) -> Result<Option<Secret>, ClientAuthError> {
        self.inner.client_secret(client_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::AuthMethod;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts lookups; fails while `down` is set.
    #[derive(Clone, Default)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        down: Arc<std::sync::atomic::AtomicBool>,
    }

    impl ClientAuthenticator for Counting {
        async fn authenticate(
            &self,
            _: &ClientCredentials,
            _: &http::request::Parts,
        ) -> Result<Arc<Client>, ClientAuthError> {
            Err(ClientAuthError::UnknownClient)
        }

        async fn client(&self, id: &str) -> Result<Option<Arc<Client>>, ClientAuthError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(ClientAuthError::unavailable("down"));
            }
            Ok((id == "known").then(|| Arc::new(Client::new(id, AuthMethod::None))))
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn repeats_are_answered_from_memory_and_failures_are_not_kept() {
        let inner = Counting::default();
        let cache = CachingClients::new(inner.clone(), Duration::from_secs(60), 2);
        block_on(async {
            assert!(cache.client("known").await.unwrap().is_some());
            assert!(cache.client("known").await.unwrap().is_some());
            assert!(cache.client("nobody").await.unwrap().is_none());
            assert!(cache.client("nobody").await.unwrap().is_none());
            assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
            // Full: a third id is looked up every time, never kept.
            cache.client("other").await.unwrap();
            cache.client("other").await.unwrap();
            assert_eq!(inner.calls.load(Ordering::SeqCst), 4);
            assert_eq!(cache.lock().map.len(), 2);
            // Ids no registry would issue are never kept.
            cache.clear();
            let long = "x".repeat(256);
            cache.client(&long).await.unwrap();
            cache.client("a\u{0}b").await.unwrap();
            assert_eq!(cache.lock().map.len(), 0);
            // An outage is not remembered.
            cache.client("known").await.unwrap();
            cache.invalidate("known");
            inner.down.store(true, Ordering::SeqCst);
            assert!(cache.client("known").await.is_err());
            inner.down.store(false, Ordering::SeqCst);
            assert!(cache.client("known").await.unwrap().is_some());
        });
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let inner = Counting::default();
        let cache = CachingClients::new(inner.clone(), Duration::from_millis(1), 10);
        block_on(async {
            cache.client("known").await.unwrap();
            std::thread::sleep(Duration::from_millis(5));
            cache.client("known").await.unwrap();
        });
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }
}
