//! Clients' published keys (RFC 7591 `jwks_uri`): the [`JwksFetcher`]
//! trait, the layer's bounded per-URI cache in front of it, and the
//! built-in [`HttpJwksFetcher`] (feature `jwks-fetch`).
//!
//! The cache keeps each URI's set for the response's `max-age`, held within
//! [`JwksCacheConfig`]'s bounds. A JWT naming a `kid` (or, without `kid`,
//! an algorithm) that no cached key fits may mean the client rotated its
//! keys: the set is then fetched again, at most once per
//! [`refetch_interval`](JwksCacheConfig::refetch_interval) per URI, so that
//! tokens with made-up `kid`s cannot make the layer hammer the client's
//! server. Concurrent misses for one URI share one fetch.
//!
//! Only the registered `jwks_uri` is ever fetched: a JWT's `jku`, `x5u`,
//! `x5c` or `jwk` header is never followed for client authentication or
//! request objects (AUTH-15).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::{FutureExt, Shared};

use super::{Client, Jwks};
use crate::config::{ConfigError, Setting};
use crate::jose::{self, Alg, JoseError, Jwt};
use crate::validate::BoxFuture;

/// A JWK Set fetched from a `jwks_uri`, with how long it may be cached.
///
/// ```
/// use std::time::Duration;
/// use tower_par::{FetchedJwks, Jwks};
///
/// let jwks = Jwks::from_json(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
///   "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)?;
/// // What a `JwksFetcher` returns for `Cache-Control: max-age=300`.
/// let fetched = FetchedJwks::new(jwks, Some(Duration::from_secs(300)));
/// assert_eq!(fetched.max_age, Some(Duration::from_secs(300)));
/// assert!(!fetched.jwks.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FetchedJwks {
    /// The keys.
    pub jwks: Jwks,
    /// The response's freshness lifetime (`Cache-Control: max-age`), if it
    /// gave one; `no-store` or `no-cache` count as zero. The cache holds it
    /// within [`JwksCacheConfig::min_ttl`] and [`JwksCacheConfig::max_ttl`].
    pub max_age: Option<Duration>,
}

impl FetchedJwks {
    /// A fetched set and its `max-age`.
    pub fn new(jwks: Jwks, max_age: Option<Duration>) -> Self {
        Self { jwks, max_age }
    }
}

/// Why a `jwks_uri` could not be fetched. The text is shown to the client
/// in the `error_description` of its failed authentication: say what went
/// wrong (a status, a timeout, a malformed set), not internal details.
///
/// ```
/// use tower_par::JwksFetchError;
///
/// let err = JwksFetchError::new("jwks_uri answered 503");
/// assert_eq!(err.description(), "jwks_uri answered 503");
/// assert_eq!(err.to_string(), "jwks_uri answered 503");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksFetchError(String);

impl JwksFetchError {
    /// An error with this description.
    pub fn new(description: impl Into<String>) -> Self {
        Self(description.into())
    }

    /// The description.
    pub fn description(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JwksFetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JwksFetchError {}

/// Fetches a client's JWK Set from its registered `jwks_uri`.
///
/// The layer calls it through its cache (see [`JwksCacheConfig`]), never
/// for a URI taken from a token. With the `jwks-fetch` feature (default)
/// the layer uses [`HttpJwksFetcher`] unless
/// [`ParLayer::jwks_fetcher`](crate::ParLayer::jwks_fetcher) sets another,
/// for example one that goes through an egress proxy or reads keys from a
/// database:
///
/// ```
/// use std::collections::HashMap;
/// use std::time::Duration;
/// use tower_par::{BoxFuture, FetchedJwks, Jwks, JwksFetchError, JwksFetcher, ParLayer, StaticClients};
///
/// /// Keys kept by the deployment, by URI.
/// struct KnownKeys(HashMap<String, String>);
///
/// impl JwksFetcher for KnownKeys {
///     fn fetch<'a>(&'a self, jwks_uri: &'a str) -> BoxFuture<'a, Result<FetchedJwks, JwksFetchError>> {
///         Box::pin(async move {
///             let text = self.0.get(jwks_uri).ok_or_else(|| JwksFetchError::new("unknown jwks_uri"))?;
///             let jwks = Jwks::from_published(text).map_err(JwksFetchError::new)?;
///             Ok(FetchedJwks::new(jwks, Some(Duration::from_secs(3600))))
///         })
///     }
/// }
///
/// let layer = ParLayer::new(StaticClients::new()).jwks_fetcher(KnownKeys(HashMap::new()));
/// # let _ = layer;
/// ```
pub trait JwksFetcher: Send + Sync + 'static {
    /// Fetches the JWK Set published at `jwks_uri`.
    fn fetch<'a>(&'a self, jwks_uri: &'a str)
        -> BoxFuture<'a, Result<FetchedJwks, JwksFetchError>>;
}

/// How the layer caches fetched JWK Sets.
///
/// ```
/// use std::time::Duration;
/// use tower_par::{JwksCacheConfig, ParLayer, StaticClients};
///
/// let mut cache = JwksCacheConfig::default();
/// cache.refetch_interval = Duration::from_secs(30);
/// let layer = ParLayer::new(StaticClients::new()).jwks_cache(cache)?;
/// # let _ = layer;
/// # Ok::<(), tower_par::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksCacheConfig {
    /// How long a set is kept when the response gives no `max-age`
    /// (default 5 minutes).
    pub default_ttl: Duration,
    /// The shortest a set is kept, whatever `max-age` says (default 1
    /// minute): a `no-store` response does not mean a fetch per request.
    pub min_ttl: Duration,
    /// The longest a set is kept, whatever `max-age` says (default 24
    /// hours): a removed key stops working within this time.
    pub max_ttl: Duration,
    /// The least time between two fetches of one URI caused by a JWT whose
    /// `kid` (or algorithm) no cached key fits (default 60 s). A failed
    /// fetch is also remembered for this long, at most 5 s.
    pub refetch_interval: Duration,
    /// How many URIs the cache holds (default 1 024); past that, the set
    /// fetched longest ago is dropped.
    pub max_entries: usize,
}

impl Default for JwksCacheConfig {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(300),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            refetch_interval: Duration::from_secs(60),
            max_entries: 1024,
        }
    }
}

impl JwksCacheConfig {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let second = Duration::from_secs(1);
        let week = Duration::from_secs(7 * 24 * 3600);
        if self.min_ttl < second
            || self.max_ttl > week
            || self.min_ttl > self.max_ttl
            || !(self.min_ttl..=self.max_ttl).contains(&self.default_ttl)
        {
            return Err(ConfigError::out_of_range(
                Setting::JwksCache,
                "jwks cache: need 1 s <= min_ttl <= default_ttl <= max_ttl <= 7 days",
            ));
        }
        if !(second..=Duration::from_secs(3600)).contains(&self.refetch_interval) {
            return Err(ConfigError::out_of_range(
                Setting::JwksCache,
                "jwks cache: refetch_interval must be 1 s to 1 hour",
            ));
        }
        if !(1..=1_000_000).contains(&self.max_entries) {
            return Err(ConfigError::out_of_range(
                Setting::JwksCache,
                "jwks cache: max_entries must be 1 to 1 000 000",
            ));
        }
        Ok(())
    }

    fn ttl(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.default_ttl)
            .clamp(self.min_ttl, self.max_ttl)
    }

    fn failure_backoff(&self) -> Duration {
        self.refetch_interval.min(Duration::from_secs(5))
    }
}

/// Why a client's keys could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeysError {
    /// The client registered neither `jwks` nor `jwks_uri`.
    NoKeys,
    /// It registered a `jwks_uri`, and the layer has no fetcher.
    NoFetcher,
    /// Its `jwks_uri` could not be fetched (the fetcher's description).
    Fetch(String),
    /// Its key members are inconsistent.
    Invalid(String),
    /// Every cache slot was fetched within the refetch interval.
    CacheFull,
}

impl KeysError {
    /// A client-safe description.
    pub(crate) fn description(&self) -> String {
        match self {
            Self::NoKeys => "the client has no registered keys (jwks or jwks_uri)".into(),
            Self::NoFetcher => "the client's keys are registered as a jwks_uri, and this server \
                                has no JWKS fetcher to retrieve them"
                .into(),
            Self::Fetch(why) => format!("the client's jwks_uri could not be fetched: {why}"),
            Self::Invalid(why) => format!("the client's keys are misregistered: {why}"),
            Self::CacheFull => "too many key sets are being fetched; retry later".into(),
        }
    }
}

type FetchResult = Result<Jwks, String>;
type SharedFetch = Shared<BoxFuture<'static, FetchResult>>;

/// One URI's cache slot.
struct Slot {
    /// The last good set and when it stops being fresh.
    keys: Option<(Jwks, Instant)>,
    /// When the last fetch started (for the refetch interval and eviction).
    fetched_at: Instant,
    /// The last failure and until when it is the answer.
    failure: Option<(String, Instant)>,
    /// The fetch in progress, shared by every waiter.
    in_flight: Option<SharedFetch>,
}

struct CacheInner {
    fetcher: Option<Arc<dyn JwksFetcher>>,
    settings: JwksCacheConfig,
    slots: Mutex<HashMap<String, Slot>>,
}

/// The layer's view of clients' keys: inline `jwks`, or `jwks_uri` through
/// the fetcher and its cache. Clones share the cache.
#[derive(Clone)]
pub(crate) struct ClientKeys {
    inner: Arc<CacheInner>,
}

impl fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKeys")
            .field("fetcher", &self.inner.fetcher.is_some())
            .field("settings", &self.inner.settings)
            .field("cached", &self.lock().len())
            .finish()
    }
}

/// What the cache decided under its lock.
enum Step {
    Ready(Jwks),
    Failed(String),
    Wait(SharedFetch),
    CacheFull,
}

impl ClientKeys {
    /// A cache in front of `fetcher` (none: `jwks_uri` clients fail).
    pub(crate) fn new(fetcher: Option<Arc<dyn JwksFetcher>>, settings: JwksCacheConfig) -> Self {
        Self {
            inner: Arc::new(CacheInner {
                fetcher,
                settings,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The layer's default: the built-in fetcher with the `jwks-fetch`
    /// feature, none without.
    pub(crate) fn default_for_layer() -> Self {
        #[cfg(feature = "jwks-fetch")]
        let fetcher: Option<Arc<dyn JwksFetcher>> = Some(Arc::new(HttpJwksFetcher::new()));
        #[cfg(not(feature = "jwks-fetch"))]
        let fetcher: Option<Arc<dyn JwksFetcher>> = None;
        Self::new(fetcher, JwksCacheConfig::default())
    }

    /// The same cache settings with another fetcher (and an empty cache).
    pub(crate) fn with_fetcher(&self, fetcher: Arc<dyn JwksFetcher>) -> Self {
        Self::new(Some(fetcher), self.inner.settings)
    }

    /// The same fetcher with other settings (and an empty cache).
    pub(crate) fn with_settings(&self, settings: JwksCacheConfig) -> Self {
        Self::new(self.inner.fetcher.clone(), settings)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while holding the lock leaves the map consistent (every
        // update is one assignment): carry on with it.
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The keys that verify `client`'s JWTs: its inline `jwks`, or the set
    /// at its `jwks_uri` (cached; fetched again, within the refetch
    /// interval, when no cached key fits the token's `kid` and `alg`).
    ///
    /// This is the one lookup for client assertions and request objects
    /// (JAR-5) alike. The keys still have to be checked against the token:
    /// [`jose::verify_with_keys`].
    pub(crate) async fn keys_for(
        &self,
        client: &Client,
        kid: Option<&str>,
        alg: Alg,
    ) -> Result<Jwks, KeysError> {
        // A registry other than `StaticClients` may hand out any `Client`:
        // its key members are checked here, where they are used.
        if client.jwks.is_some() && client.jwks_uri.is_some() {
            return Err(KeysError::Invalid(
                "the client registers both jwks and jwks_uri (RFC 7591 §2)".into(),
            ));
        }
        if let Some(jwks) = &client.jwks {
            return Ok(jwks.clone());
        }
        let uri = client.jwks_uri.as_deref().ok_or(KeysError::NoKeys)?;
        super::registry::check_jwks_uri(uri).map_err(KeysError::Invalid)?;
        let fetcher = self.inner.fetcher.as_ref().ok_or(KeysError::NoFetcher)?;
        let step = self.step(uri, fetcher, kid, alg);
        match step {
            Step::Ready(jwks) => Ok(jwks),
            Step::Failed(why) => Err(KeysError::Fetch(why)),
            Step::CacheFull => Err(KeysError::CacheFull),
            Step::Wait(fetch) => fetch.await.map_err(KeysError::Fetch),
        }
    }

    /// Peeks at `token`'s header, finds `client`'s keys for it, and
    /// verifies it with one of them using an algorithm in `allowed`: the
    /// whole of [`keys_for`](Self::keys_for) and
    /// [`jose::verify_with_keys`], for callers that need nothing between.
    /// Claims are left to the caller.
    pub(crate) async fn verify_with_client_keys(
        &self,
        client: &Client,
        token: &str,
        allowed: &[Alg],
    ) -> Result<Jwt, JoseError> {
        let header = jose::peek(token)?.header;
        let jwks = self
            .keys_for(client, header.kid.as_deref(), header.alg)
            .await
            .map_err(|e| JoseError(e.description()))?;
        jose::verify_with_keys(token, &jwks.keys, allowed)
    }

    /// Decides, under the lock, whether the cached set answers, a failure
    /// is remembered, or a fetch (new or in progress) must be awaited.
    fn step(&self, uri: &str, fetcher: &Arc<dyn JwksFetcher>, kid: Option<&str>, alg: Alg) -> Step {
        let settings = &self.inner.settings;
        let now = Instant::now();
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(uri) {
            if let Some(fetch) = &slot.in_flight {
                return Step::Wait(fetch.clone());
            }
            if let Some((jwks, fresh_until)) = &slot.keys {
                if now < *fresh_until {
                    let fits = jwks.keys.has_key_for(kid, alg);
                    let may_refetch =
                        now.duration_since(slot.fetched_at) >= settings.refetch_interval;
                    if fits || !may_refetch {
                        return Step::Ready(jwks.clone());
                    }
                }
            }
            if let Some((why, until)) = &slot.failure {
                if now < *until {
                    return Step::Failed(why.clone());
                }
            }
            let fetch = self.start(uri, fetcher);
            slot.fetched_at = now;
            slot.in_flight = Some(fetch.clone());
            return Step::Wait(fetch);
        }
        if slots.len() >= settings.max_entries && !evict(&mut slots, now, settings.refetch_interval)
        {
            return Step::CacheFull;
        }
        let fetch = self.start(uri, fetcher);
        slots.insert(
            uri.to_owned(),
            Slot {
                keys: None,
                fetched_at: now,
                failure: None,
                in_flight: Some(fetch.clone()),
            },
        );
        Step::Wait(fetch)
    }

    /// A shared fetch of `uri` that records its own outcome in the slot,
    /// whichever waiter drives it to completion.
    fn start(&self, uri: &str, fetcher: &Arc<dyn JwksFetcher>) -> SharedFetch {
        let fetcher = fetcher.clone();
        // Weak: the slot holds this future, which must not keep the cache
        // alive.
        let cache = Arc::downgrade(&self.inner);
        let uri = uri.to_owned();
        let fut: BoxFuture<'static, FetchResult> = Box::pin(async move {
            let outcome = fetcher.fetch(&uri).await;
            if let Some(cache) = cache.upgrade() {
                ClientKeys { inner: cache }.finish(&uri, &outcome);
            }
            outcome
                .map(|fetched| fetched.jwks)
                .map_err(|e| e.description().to_owned())
        });
        fut.shared()
    }

    fn finish(&self, uri: &str, outcome: &Result<FetchedJwks, JwksFetchError>) {
        let settings = &self.inner.settings;
        let now = Instant::now();
        let mut slots = self.lock();
        // The slot may have been evicted meanwhile: then nothing is kept.
        let Some(slot) = slots.get_mut(uri) else {
            return;
        };
        slot.in_flight = None;
        match outcome {
            Ok(fetched) => {
                let ttl = settings.ttl(fetched.max_age);
                slot.keys = Some((fetched.jwks.clone(), now + ttl));
                slot.failure = None;
            }
            Err(e) => {
                // A set that is no longer fresh is not used again after a
                // failed refresh: a key the client removed must stop working.
                if slot.keys.as_ref().is_some_and(|(_, until)| now >= *until) {
                    slot.keys = None;
                }
                slot.failure = Some((e.description().to_owned(), now + settings.failure_backoff()));
            }
        }
    }
}

/// A fetch in progress for this long was abandoned by its waiters (a
/// fetch is driven by the requests awaiting it): its slot may go.
const ABANDONED: Duration = Duration::from_secs(600);

/// Makes room for one slot: drops every stale slot, or else the one
/// fetched longest ago. Slots with a fetch in progress stay (their waiters
/// hold them) unless abandoned. `false` when every slot is busy.
fn evict(slots: &mut HashMap<String, Slot>, now: Instant, refetch_interval: Duration) -> bool {
    let before = slots.len();
    slots.retain(|_, s| {
        (s.in_flight.is_some() && now.duration_since(s.fetched_at) < ABANDONED)
            || s.keys.as_ref().is_some_and(|(_, until)| now < *until)
            || s.failure.as_ref().is_some_and(|(_, until)| now < *until)
    });
    if slots.len() < before {
        return true;
    }
    // A slot fetched within the refetch interval stays: evicting it would
    // let requests that rotate over more URIs than the cache holds force
    // one fetch each.
    let oldest = slots
        .iter()
        .filter(|(_, s)| {
            s.in_flight.is_none() && now.duration_since(s.fetched_at) >= refetch_interval
        })
        .min_by_key(|(_, s)| s.fetched_at)
        .map(|(k, _)| k.clone());
    match oldest {
        Some(k) => {
            slots.remove(&k);
            true
        }
        None => false,
    }
}

/// Reads a response's freshness lifetime from its `Cache-Control` values
/// (RFC 9111 §5.2.2): `no-store` and `no-cache` give zero, otherwise
/// `max-age` (`s-maxage` is for shared caches, which the layer is not).
#[cfg_attr(not(feature = "jwks-fetch"), allow(dead_code))]
pub(crate) fn max_age<'a>(cache_control: impl IntoIterator<Item = &'a str>) -> Option<Duration> {
    let mut max_age = None;
    for value in cache_control {
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age") {
                if let Some(a) =
                    arg.filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
                {
                    // RFC 9111 §1.2.2: a delta too large to represent is
                    // "a long time".
                    max_age = Some(Duration::from_secs(a.parse().unwrap_or(u64::MAX)));
                }
            }
        }
    }
    max_age
}

#[cfg(feature = "jwks-fetch")]
pub use http_fetcher::HttpJwksFetcher;

#[cfg(feature = "jwks-fetch")]
mod http_fetcher {
    use std::fmt;
    use std::net::IpAddr;
    use std::sync::OnceLock;
    use std::time::Duration;

    use bytes::Bytes;
    use http::{header, Request, StatusCode, Uri};
    use http_body_util::{BodyExt, Empty, Limited};
    use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::client::legacy::Client as HttpClient;
    use hyper_util::rt::TokioExecutor;

    use super::{max_age, FetchedJwks, JwksFetchError, JwksFetcher};
    use crate::client::Jwks;
    use crate::validate::BoxFuture;

    type Connector = HttpsConnector<HttpConnector>;

    /// The built-in [`JwksFetcher`] (feature `jwks-fetch`, on by default):
    /// `GET jwks_uri` over HTTPS with hyper-util's client, rustls (ring
    /// provider) and the Mozilla root certificates of `webpki-roots`.
    ///
    /// - `https` URIs only, except plain `http` to a loopback host
    ///   (`localhost`, `127.0.0.0/8`, `[::1]`), for development;
    /// - no redirects followed: the answer must be `200` with a JWK Set
    ///   ([`Jwks::from_published`]);
    /// - the whole exchange within a timeout (default 5 s), the body within
    ///   a size limit (default 64 KiB);
    /// - its `Cache-Control: max-age` tells the layer's cache how long to
    ///   keep the set.
    ///
    /// It needs a tokio runtime (it spawns its connections there). The
    /// client is built at the first fetch.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_par::{HttpJwksFetcher, ParLayer, StaticClients};
    ///
    /// let fetcher = HttpJwksFetcher::new()
    ///     .timeout(Duration::from_secs(2))
    ///     .max_body_size(32 * 1024);
    /// let layer = ParLayer::new(StaticClients::new()).jwks_fetcher(fetcher);
    /// # let _ = layer;
    /// ```
    pub struct HttpJwksFetcher {
        timeout: Duration,
        max_body: usize,
        client: OnceLock<Result<HttpClient<Connector, Empty<Bytes>>, String>>,
    }

    impl HttpJwksFetcher {
        /// A fetcher with a 5 s timeout and a 64 KiB body limit.
        pub fn new() -> Self {
            Self {
                timeout: Duration::from_secs(5),
                max_body: 64 * 1024,
                client: OnceLock::new(),
            }
        }

        /// How long one fetch may take, connection included (default 5 s).
        #[must_use]
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.timeout = timeout;
            self
        }

        /// The largest JWK Set accepted, in bytes (default 64 KiB).
        #[must_use]
        pub fn max_body_size(mut self, bytes: usize) -> Self {
            self.max_body = bytes;
            self
        }

        fn client(&self) -> Result<&HttpClient<Connector, Empty<Bytes>>, JwksFetchError> {
            self.client
                .get_or_init(|| {
                    let mut http = HttpConnector::new();
                    // The scheme is checked before each fetch.
                    http.enforce_http(false);
                    http.set_connect_timeout(Some(self.timeout));
                    let https = HttpsConnectorBuilder::new()
                        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
                        .map_err(|e| format!("TLS setup failed: {e}"))?
                        .https_or_http()
                        .enable_http1()
                        .wrap_connector(http);
                    Ok(HttpClient::builder(TokioExecutor::new())
                        .pool_idle_timeout(Duration::from_secs(30))
                        .pool_max_idle_per_host(2)
                        .build(https))
                })
                .as_ref()
                .map_err(|e| JwksFetchError::new(e.clone()))
        }

        async fn get(&self, uri: Uri) -> Result<FetchedJwks, JwksFetchError> {
            let req = Request::get(uri)
                .header(
                    header::ACCEPT,
                    "application/jwk-set+json, application/json;q=0.9",
                )
                .header(header::USER_AGENT, "tower-par")
                .body(Empty::new())
                .map_err(|_| JwksFetchError::new("jwks_uri is not a valid request URI"))?;
            let res = self
                .client()?
                .request(req)
                .await
                .map_err(|_| JwksFetchError::new("the connection to jwks_uri failed"))?;
            if res.status() != StatusCode::OK {
                return Err(JwksFetchError::new(format!(
                    "jwks_uri answered HTTP {}, expected 200",
                    res.status().as_u16()
                )));
            }
            let too_large = || {
                JwksFetchError::new(format!(
                    "the JWK Set at jwks_uri is larger than {} bytes",
                    self.max_body
                ))
            };
            let declared = res
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.max_body as u64) {
                return Err(too_large());
            }
            let max_age = max_age(
                res.headers()
                    .get_all(header::CACHE_CONTROL)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            let body = Limited::new(res.into_body(), self.max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        too_large()
                    } else {
                        JwksFetchError::new("the JWK Set could not be read from jwks_uri")
                    }
                })?
                .to_bytes();
            let text = std::str::from_utf8(&body)
                .map_err(|_| JwksFetchError::new("the JWK Set at jwks_uri is not UTF-8"))?;
            let jwks = Jwks::from_published(text).map_err(|e| {
                JwksFetchError::new(format!("jwks_uri did not return a valid JWK Set ({e})"))
            })?;
            Ok(FetchedJwks::new(jwks, max_age))
        }
    }

    impl Default for HttpJwksFetcher {
        fn default() -> Self {
            Self::new()
        }
    }

    impl fmt::Debug for HttpJwksFetcher {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("HttpJwksFetcher")
                .field("timeout", &self.timeout)
                .field("max_body", &self.max_body)
                .finish_non_exhaustive()
        }
    }

    impl JwksFetcher for HttpJwksFetcher {
        fn fetch<'a>(
            &'a self,
            jwks_uri: &'a str,
        ) -> BoxFuture<'a, Result<FetchedJwks, JwksFetchError>> {
            Box::pin(async move {
                let uri = allowed_uri(jwks_uri)?;
                // Its connections and its timer live on tokio: refuse
                // rather than panic elsewhere.
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(JwksFetchError::new(
                        "the server cannot fetch jwks_uri (its JWKS fetcher needs a tokio runtime)",
                    ));
                }
                match tokio::time::timeout(self.timeout, self.get(uri)).await {
                    Ok(result) => result,
                    Err(_) => Err(JwksFetchError::new(format!(
                        "jwks_uri did not answer within {} ms",
                        self.timeout.as_millis()
                    ))),
                }
            })
        }
    }

    /// `https`, or `http` to a loopback host.
    fn allowed_uri(jwks_uri: &str) -> Result<Uri, JwksFetchError> {
        let bad = || {
            JwksFetchError::new(
                "jwks_uri must be an absolute https URL (plain http only to a loopback host)",
            )
        };
        let uri: Uri = jwks_uri.parse().map_err(|_| bad())?;
        let host = uri.host().ok_or_else(bad)?;
        match uri.scheme_str() {
            Some("https") => Ok(uri),
            Some("http") if is_loopback(host) => Ok(uri),
            _ => Err(bad()),
        }
    }

    fn is_loopback(host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn only_https_or_loopback_http_is_fetched() {
            assert!(allowed_uri("https://client.example/jwks").is_ok());
            assert!(allowed_uri("http://127.0.0.1:8080/jwks").is_ok());
            assert!(allowed_uri("http://127.3.4.5/jwks").is_ok());
            assert!(allowed_uri("http://[::1]:9/jwks").is_ok());
            assert!(allowed_uri("http://localhost/jwks").is_ok());
            assert!(allowed_uri("http://client.example/jwks").is_err());
            assert!(allowed_uri("http://10.0.0.1/jwks").is_err());
            assert!(allowed_uri("ftp://client.example/jwks").is_err());
            assert!(allowed_uri("/jwks").is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_directives() {
        assert_eq!(max_age(["max-age=600"]), Some(Duration::from_secs(600)));
        assert_eq!(
            max_age(["public, MAX-AGE=\"30\""]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(max_age(["max-age=60", "no-cache"]), Some(Duration::ZERO));
        assert_eq!(max_age(["no-store"]), Some(Duration::ZERO));
        assert_eq!(max_age(["max-age=abc"]), None);
        assert_eq!(max_age(["max-age="]), None);
        assert_eq!(max_age(["s-maxage=60"]), None);
        assert_eq!(
            max_age(["max-age=99999999999999999999999"]),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(max_age(Vec::<&str>::new()), None);
    }

    use crate::client::AuthMethod;

    const ED25519: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    /// Serves one fixed set for any URI.
    struct Fixed;

    impl JwksFetcher for Fixed {
        fn fetch<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<FetchedJwks, JwksFetchError>> {
            Box::pin(async {
                let jwks = Jwks::from_published(ED25519).map_err(JwksFetchError::new)?;
                Ok(FetchedJwks::new(jwks, None))
            })
        }
    }

    #[tokio::test]
    async fn jwks_uri_without_a_fetcher_fails_clearly() {
        let keys = ClientKeys::new(None, JwksCacheConfig::default());
        let client = Client::new("c", AuthMethod::PrivateKeyJwt).jwks_uri("https://c.example/jwks");
        let err = keys.keys_for(&client, None, Alg::EdDSA).await.unwrap_err();
        assert_eq!(err, KeysError::NoFetcher);
        assert!(err.description().contains("no JWKS fetcher"));
        let bare = Client::new("c", AuthMethod::PrivateKeyJwt);
        assert_eq!(
            keys.keys_for(&bare, None, Alg::EdDSA).await.unwrap_err(),
            KeysError::NoKeys
        );
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_max_entries() {
        // Slots fetched within the refetch interval are not evicted: the
        // third URI waits (a rotation over many URIs cannot force a fetch
        // per request).
        let settings = JwksCacheConfig {
            max_entries: 2,
            ..JwksCacheConfig::default()
        };
        let keys = ClientKeys::new(Some(Arc::new(Fixed)), settings);
        for i in 0..2 {
            let client = Client::new("c", AuthMethod::PrivateKeyJwt)
                .jwks_uri(format!("https://c{i}.example/jwks"));
            assert!(keys.keys_for(&client, Some("k1"), Alg::EdDSA).await.is_ok());
        }
        let third = Client::new("c", AuthMethod::PrivateKeyJwt).jwks_uri("https://c2.example/jwks");
        assert_eq!(
            keys.keys_for(&third, Some("k1"), Alg::EdDSA)
                .await
                .unwrap_err(),
            KeysError::CacheFull
        );
        // Past the interval they are.
        let settings = JwksCacheConfig {
            max_entries: 2,
            refetch_interval: Duration::ZERO,
            ..JwksCacheConfig::default()
        };
        let keys = ClientKeys::new(Some(Arc::new(Fixed)), settings);
        for i in 0..5 {
            let client = Client::new("c", AuthMethod::PrivateKeyJwt)
                .jwks_uri(format!("https://c{i}.example/jwks"));
            let jwks = keys
                .keys_for(&client, Some("k1"), Alg::EdDSA)
                .await
                .unwrap();
            assert_eq!(jwks.len(), 1);
            assert!(keys.lock().len() <= 2);
        }
        let token = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.e30.AAAA";
        let client =
            Client::new("c", AuthMethod::PrivateKeyJwt).jwks_uri("https://c9.example/jwks");
        let err = keys
            .verify_with_client_keys(&client, token, &[Alg::EdDSA])
            .await
            .unwrap_err();
        assert!(
            err.0.contains("signature") || err.0.contains("well-formed"),
            "{err}"
        );
    }

    #[test]
    fn ttl_is_clamped_and_settings_are_checked() {
        let c = JwksCacheConfig::default();
        assert!(c.check().is_ok());
        assert_eq!(c.ttl(None), Duration::from_secs(300));
        assert_eq!(c.ttl(Some(Duration::ZERO)), Duration::from_secs(60));
        assert_eq!(c.ttl(Some(Duration::from_secs(u64::MAX))), c.max_ttl);
        let mut bad = c;
        bad.min_ttl = Duration::ZERO;
        assert!(bad.check().is_err());
        let mut bad = c;
        bad.default_ttl = Duration::from_secs(30);
        assert!(bad.check().is_err());
        let mut bad = c;
        bad.max_entries = 0;
        assert!(bad.check().is_err());
    }
}
