//! Where pushed requests wait for their redemption.
//!
//! [`ParStore`] is shaped for shared backends: every operation is one atomic
//! step that a server-side engine (Redis `SET NX PX`, `GETDEL`, a Lua
//! script) can perform, so two instances can never both redeem the same
//! `request_uri`. Expiry is data ([`PushedRequest::expires_at`]) as well as a
//! TTL, so a store that cannot expire entries on its own still refuses them
//! on read. [`MemoryStore`] is the embedded implementation; the same
//! conformance suite runs against every store.
//!
//! An entry's life: **pushed** (inserted, redeemable until `expires_at`)
//! → **in flow** (first redemption bound it to one browser; re-entries by
//! that browser get the same request until the flow window ends) →
//! **consumed** (the authorization response went back to the client, or the
//! window ended; the entry is gone). With strict one-time use an entry goes
//! from pushed to consumed at its first redemption.
//!
//! # What one client can hold
//!
//! Anyone can push and redeem for a public client, so the bounds are
//! shaped so that nobody can lock a client out for longer than a request
//! lives:
//!
//! - **Pushed** entries count against the client's push allowance
//!   ([`MemoryStoreConfig::max_pending_per_client`], default 1 000; over it
//!   a push is answered `429` with `Retry-After`). Each leaves it at its
//!   first redemption or at its `expires_in` (60 s by default), so an
//!   attacker holds the allowance only by pushing faster than that.
//! - Entries **in flow** count against a separate in-flow allowance
//!   (`max_in_flow_per_client` in [`MemoryStoreConfig`] and
//!   `RedisStoreConfig`, default 1 000) for at most the flow window. It is
//!   never a reason to refuse: a first redemption over it consumes the
//!   client's oldest flow, whose browser then gets "not found". An attacker
//!   who starts 1 000 flows of a client ends that client's older flows,
//!   but never stops its new users, and the flows he started end with
//!   their window (10 minutes by default) or sooner.
//! - The whole [`MemoryStore`] holds at most
//!   [`MemoryStoreConfig::max_pending`] entries (100 000) and
//!   [`MemoryStoreConfig::max_pending_bytes`] bytes (256 MiB); over either,
//!   a push is answered `503` with `Retry-After`.

mod memory;

pub use memory::{MemoryStore, MemoryStoreConfig};
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreConfig};

#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::client::AuthMethod;
use crate::RequestUri;

/// A validated authorization request, as stored at push time.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_par::{AuthMethod, PushedRequest};
///
/// let now = SystemTime::now();
/// let request = PushedRequest::new("app", AuthMethod::None, "response_type=code&login_hint=ann", now, Duration::from_secs(60))
///     .with_redirect_uri(Some("https://app.example/cb".into()));
/// assert!(!request.is_expired_at(now));
/// assert!(request.is_expired_at(now + Duration::from_secs(60)));
/// // `Debug` keeps the parameters (personal data) out of logs.
/// assert!(!format!("{request:?}").contains("login_hint"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushedRequest {
    /// The client the `request_uri` is bound to (PAR-15).
    pub client_id: String,
    /// How that client authenticated when it pushed.
    pub auth_method: AuthMethod,
    /// The authorization request, `application/x-www-form-urlencoded`,
    /// exactly as pushed minus client-authentication parameters.
    pub params: String,
    /// The `redirect_uri` the authorization response goes to: the pushed
    /// one, or the client's only registered one. Used to recognise the end
    /// of a flow.
    pub redirect_uri: Option<String>,
    /// When it was pushed.
    pub pushed_at: SystemTime,
    /// When its `request_uri` stops being redeemable (PAR-29).
    pub expires_at: SystemTime,
}

impl PushedRequest {
    /// A pushed request that expires `lifetime` after `pushed_at`.
    pub fn new(
        client_id: impl Into<String>,
        auth_method: AuthMethod,
        params: impl Into<String>,
        pushed_at: SystemTime,
        lifetime: Duration,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            auth_method,
            params: params.into(),
            redirect_uri: None,
            pushed_at,
            expires_at: pushed_at + lifetime,
        }
    }

    /// Sets the redirect URI the flow ends at.
    #[must_use]
    pub fn with_redirect_uri(mut self, redirect_uri: Option<String>) -> Self {
        self.redirect_uri = redirect_uri;
        self
    }

    /// Whether the request has expired at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }
}

impl fmt::Debug for PushedRequest {
    // The parameters may hold personal data (login_hint, claims): not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushedRequest")
            .field("client_id", &self.client_id)
            .field("auth_method", &self.auth_method)
            .field("params", &format_args!("<{} bytes>", self.params.len()))
            .field("redirect_uri", &self.redirect_uri.is_some())
            .field("pushed_at", &self.pushed_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How a redemption treats the entry.
///
/// The layer picks the mode from its [`Redemption`](crate::Redemption)
/// policy.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_par::{
///     AuthMethod, Completion, MemoryStore, ParStore, PushedRequest, RedeemMode, RedeemOutcome,
///     RequestUri, StoreError,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// let store = MemoryStore::new();
/// let ttl = Duration::from_secs(60);
/// let request = PushedRequest::new("app", AuthMethod::None, "response_type=code", SystemTime::now(), ttl);
/// let uri = RequestUri::generate();
/// store.insert(&uri, request, ttl).await?;
///
/// let first = RedeemMode::Bind { binding: [1; 32], reenter: None, window: Duration::from_secs(600) };
/// assert!(matches!(store.redeem(&uri, "app", first).await?, RedeemOutcome::Redeemed(_)));
/// // The browser that holds the binding's secret comes back: re-entry.
/// let again = RedeemMode::Bind { binding: [2; 32], reenter: Some([1; 32]), window: Duration::from_secs(600) };
/// assert!(matches!(store.redeem(&uri, "app", again).await?, RedeemOutcome::Reentered(_)));
/// // Another browser gets nothing.
/// let other = RedeemMode::Bind { binding: [3; 32], reenter: Some([9; 32]), window: Duration::from_secs(600) };
/// assert_eq!(store.redeem(&uri, "app", other).await?, RedeemOutcome::NotFound);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedeemMode {
    /// Remove the entry at the first redemption (strict one-time use).
    Consume,
    /// Move a pushed entry to "in flow", bound to `binding` (the digest of
    /// a fresh browser secret the layer is about to set as a cookie) until
    /// `window` has passed; an entry already in flow whose binding equals
    /// `reenter` (the digest of a secret the browser presented) is returned
    /// again (re-entry). A presented secret never becomes the binding of a
    /// new flow, so a cookie planted in a browser cannot claim its flows.
    Bind {
        /// Digest of the fresh secret for a first redemption.
        binding: [u8; 32],
        /// Digest of a secret the browser presented, for re-entry.
        reenter: Option<[u8; 32]>,
        /// How long the flow may last after its first redemption.
        window: Duration,
    },
}

/// The result of an attempt to redeem a `request_uri`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_par::{
///     AuthMethod, Completion, MemoryStore, ParStore, PushedRequest, RedeemMode, RedeemOutcome,
///     RequestUri, StoreError,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// let store = MemoryStore::new();
/// let ttl = Duration::from_secs(60);
/// let request = PushedRequest::new("app", AuthMethod::None, "response_type=code", SystemTime::now(), ttl);
/// let uri = RequestUri::generate();
/// store.insert(&uri, request.clone(), ttl).await?;
///
/// // Another client cannot redeem (nor burn) it.
/// assert_eq!(store.redeem(&uri, "intruder", RedeemMode::Consume).await?, RedeemOutcome::WrongClient);
/// assert_eq!(store.redeem(&uri, "app", RedeemMode::Consume).await?, RedeemOutcome::Redeemed(request));
/// // One-time use.
/// assert_eq!(store.redeem(&uri, "app", RedeemMode::Consume).await?, RedeemOutcome::NotFound);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedeemOutcome {
    /// First redemption: the request, now consumed ([`RedeemMode::Consume`])
    /// or in flow ([`RedeemMode::Bind`]). Nobody else can redeem it.
    Redeemed(PushedRequest),
    /// The same browser came back during its flow: the same request again.
    Reentered(PushedRequest),
    /// Unknown, expired, consumed, or in flow for another browser.
    NotFound,
    /// It exists but is bound to another client; it was left in the store,
    /// so a foreign client cannot burn someone else's `request_uri`.
    WrongClient,
}

/// The result of [`ParStore::complete`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_par::{
///     AuthMethod, Completion, MemoryStore, ParStore, PushedRequest, RedeemMode, RedeemOutcome,
///     RequestUri, StoreError,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// let store = MemoryStore::new();
/// let ttl = Duration::from_secs(60);
/// let request = PushedRequest::new("app", AuthMethod::None, "response_type=code", SystemTime::now(), ttl);
/// let uri = RequestUri::generate();
/// store.insert(&uri, request, ttl).await?;
/// let bind = RedeemMode::Bind { binding: [1; 32], reenter: None, window: Duration::from_secs(600) };
/// store.redeem(&uri, "app", bind).await?;
///
/// // Only the browser the flow is bound to completes it, once.
/// assert_eq!(store.complete(&uri, &[7; 32]).await?, Completion::NotInFlow);
/// assert_eq!(store.complete(&uri, &[1; 32]).await?, Completion::Completed);
/// assert_eq!(store.complete(&uri, &[1; 32]).await?, Completion::NotInFlow);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Completion {
    /// The flow was in progress for this binding and is now consumed.
    Completed,
    /// Nothing to complete: already completed, expired, unknown, or bound
    /// to another browser.
    NotInFlow,
}

/// A store failure.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_par::{
///     AuthMethod, Completion, MemoryStore, ParStore, PushedRequest, RedeemMode, RedeemOutcome,
///     RequestUri, StoreError,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// let store = MemoryStore::new();
/// let ttl = Duration::from_secs(60);
/// let request = PushedRequest::new("app", AuthMethod::None, "response_type=code", SystemTime::now(), ttl);
/// let uri = RequestUri::generate();
/// store.insert(&uri, request.clone(), ttl).await?;
/// // Insert never overwrites.
/// assert_eq!(store.insert(&uri, request, ttl).await, Err(StoreError::Exists));
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The store holds as many pending requests as it may: answered with
    /// `503 temporarily_unavailable` and `Retry-After`.
    Full {
        /// Suggested wait before retrying, in seconds.
        retry_after: u64,
    },
    /// This client has too many outstanding requests: answered with `429`.
    ClientLimit {
        /// Suggested wait before retrying, in seconds.
        retry_after: u64,
    },
    /// The key is already taken (insert is insert-if-absent).
    Exists,
    /// The backend failed or could not be reached: answered with `503`.
    /// The underlying error is kept as the [`source`](std::error::Error::source),
    /// for logs; clients never see it. Build it with
    /// [`StoreError::unavailable`].
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// The backend failed: keeps `err` as the source.
    ///
    /// ```
    /// use std::error::Error as _;
    /// use tower_par::StoreError;
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    /// let e = StoreError::unavailable(io);
    /// assert_eq!(e.to_string(), "store unavailable");
    /// assert_eq!(e.source().unwrap().to_string(), "refused");
    /// ```
    pub fn unavailable(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unavailable(err.into())
    }
}

/// Variants are equal when they are the same; two `Unavailable` errors when
/// their sources read the same.
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Full { retry_after: a }, Self::Full { retry_after: b })
            | (Self::ClientLimit { retry_after: a }, Self::ClientLimit { retry_after: b }) => {
                a == b
            }
            (Self::Exists, Self::Exists) => true,
            (Self::Unavailable(a), Self::Unavailable(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

impl Eq for StoreError {}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { .. } => f.write_str("store is full"),
            Self::ClientLimit { .. } => {
                f.write_str("too many outstanding requests for this client")
            }
            Self::Exists => f.write_str("key already exists"),
            // The cause is the source: `Display` stays safe to show.
            Self::Unavailable(_) => f.write_str("store unavailable"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unavailable(e) => Some(&**e),
            _ => None,
        }
    }
}

/// Storage for pushed requests, shared by all clones of a layer (and, for a
/// shared backend, by all instances).
///
/// Every method must be atomic with respect to every other call on any
/// clone or instance. Implement it with `async fn`:
///
/// ```
/// use std::time::Duration;
/// use tower_par::{Completion, MemoryStore, ParStore, PushedRequest, RedeemMode, RedeemOutcome, RequestUri, StoreError};
///
/// /// A store that counts redemptions, delegating to the memory store.
/// #[derive(Clone, Default)]
/// struct Counting {
///     inner: MemoryStore,
///     redeemed: std::sync::Arc<std::sync::atomic::AtomicU64>,
/// }
///
/// impl ParStore for Counting {
///     async fn insert(&self, uri: &RequestUri, request: PushedRequest, ttl: Duration) -> Result<(), StoreError> {
///         self.inner.insert(uri, request, ttl).await
///     }
///     async fn redeem(&self, uri: &RequestUri, client_id: &str, mode: RedeemMode) -> Result<RedeemOutcome, StoreError> {
///         let r = self.inner.redeem(uri, client_id, mode).await?;
///         if matches!(r, RedeemOutcome::Redeemed(_)) {
///             self.redeemed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         }
///         Ok(r)
///     }
///     async fn complete(&self, uri: &RequestUri, binding: &[u8; 32]) -> Result<Completion, StoreError> {
///         self.inner.complete(uri, binding).await
///     }
///     async fn mark_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
///         self.inner.mark_once(key, ttl).await
///     }
/// }
/// ```
pub trait ParStore: Clone + Send + Sync + 'static {
    /// Stores `request` under `uri` for `ttl`, only if `uri` is not already
    /// present ([`StoreError::Exists`] otherwise).
    fn insert(
        &self,
        uri: &RequestUri,
        request: PushedRequest,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Redeems the request if it exists, has not expired and is bound to
    /// `client_id`, in one atomic step (RFC 9126 §4): with
    /// [`RedeemMode::Consume`] it is removed; with [`RedeemMode::Bind`] a
    /// pushed entry moves to "in flow" for that binding, and an entry in
    /// flow for the same binding is returned again. An entry bound to
    /// another client is left untouched.
    ///
    /// Lifetimes: a pushed entry must be redeemed before
    /// [`PushedRequest::expires_at`]; an entry in flow lives until its
    /// window ends, whatever `expires_at` says.
    fn redeem(
        &self,
        uri: &RequestUri,
        client_id: &str,
        mode: RedeemMode,
    ) -> impl Future<Output = Result<RedeemOutcome, StoreError>> + Send;

    /// Ends a flow: atomically consumes an entry that is in flow for
    /// `binding`. Of two concurrent completions only one gets
    /// [`Completion::Completed`].
    fn complete(
        &self,
        uri: &RequestUri,
        binding: &[u8; 32],
    ) -> impl Future<Output = Result<Completion, StoreError>> + Send;

    /// Records `key` for `ttl`; `true` the first time, `false` while it is
    /// still recorded, atomically across clones and instances. The replay
    /// cache: the layer calls it for every client assertion `jti`
    /// (`private_key_jwt`, `client_secret_jwt`) and every DPoP proof `jti`,
    /// at the PAR endpoint and at [`TokenEndpoint`](crate::TokenEndpoint).
    ///
    /// Required, on purpose: a default that answered `true` would switch
    /// replay protection off without a word, for every store written
    /// before it. A store that cannot keep such records (and serves no JWT
    /// clients) can fail closed, which answers those requests with `503`:
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_par::StoreError;
    /// # struct NoReplayCache;
    /// # impl NoReplayCache {
    /// async fn mark_once(&self, _key: &str, _ttl: Duration) -> Result<bool, StoreError> {
    ///     Err(StoreError::unavailable("this store keeps no replay cache"))
    /// }
    /// # }
    /// ```
    fn mark_once(
        &self,
        key: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The request of a flow in progress for `binding` and `client_id`,
    /// without changing it: `None` when the entry is unknown, expired,
    /// consumed, bound to another client or to another browser, or not
    /// redeemed yet. The layer asks it when a response on a later step of
    /// a flow (a login or consent path of the authorization server) could
    /// be the authorization response, to learn the flow's `redirect_uri`.
    ///
    /// Provided, built on [`redeem`](ParStore::redeem): a re-entry attempt
    /// for `binding` under a fresh random binding of its own. That leaves
    /// an entry in flow untouched; an entry that was pushed but never
    /// redeemed is moved to "in flow" for a binding nobody holds, with a
    /// window of one millisecond, which ends it: what anyone who knows its
    /// `request_uri` and `client_id` could do by redeeming it. Stores that
    /// can read an entry without a transition override it.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use tower_par::{
    ///     AuthMethod, MemoryStore, ParStore, PushedRequest, RedeemMode, RedeemOutcome, RequestUri,
    ///     StoreError,
    /// };
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StoreError> {
    /// let store = MemoryStore::new();
    /// let ttl = Duration::from_secs(60);
    /// let request = PushedRequest::new("app", AuthMethod::None, "response_type=code", SystemTime::now(), ttl);
    /// let uri = RequestUri::generate();
    /// store.insert(&uri, request, ttl).await?;
    /// // Pushed, not redeemed yet: nothing, and the entry stays pushed.
    /// assert!(store.in_flow(&uri, "app", &[1; 32]).await?.is_none());
    /// let bind = RedeemMode::Bind { binding: [1; 32], reenter: None, window: Duration::from_secs(600) };
    /// assert!(matches!(store.redeem(&uri, "app", bind).await?, RedeemOutcome::Redeemed(_)));
    /// assert!(store.in_flow(&uri, "app", &[1; 32]).await?.is_some());
    /// // Another browser's binding, or another client, learns nothing.
    /// assert!(store.in_flow(&uri, "app", &[2; 32]).await?.is_none());
    /// assert!(store.in_flow(&uri, "other", &[1; 32]).await?.is_none());
    /// # Ok(()) }
    /// ```
    fn in_flow(
        &self,
        uri: &RequestUri,
        client_id: &str,
        binding: &[u8; 32],
    ) -> impl Future<Output = Result<Option<PushedRequest>, StoreError>> + Send {
        let mut fresh = [0u8; 32];
        crate::request_uri::fill_random(&mut fresh);
        let mode = RedeemMode::Bind {
            binding: fresh,
            reenter: Some(*binding),
            window: Duration::from_millis(1),
        };
        async move {
            Ok(match self.redeem(uri, client_id, mode).await? {
                RedeemOutcome::Reentered(request) => Some(request),
                _ => None,
            })
        }
    }
}
