//! `RedisStore`: pushed requests shared by many instances through Redis
//! (or Valkey), each operation one atomic server-side step, encrypted at
//! rest.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Completion, ParStore, PushedRequest, RedeemMode, RedeemOutcome, StoreError};
use crate::client::AuthMethod;
use crate::RequestUri;

/// Layout of a stored value, so the scripts can read the plain fields
/// without decoding anything: `state(1) | client_tag(64) | binding(64) |
/// nonce(12) + ciphertext`.
const STATE: usize = 1;
const TAG_END: usize = STATE + 64;
const BINDING_END: usize = TAG_END + 64;
const NO_BINDING: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// ARGV: client tag, mode, fresh binding, window (ms), presented binding.
/// Returns `{outcome, value}`: 0 not found, 1 wrong client, 2 redeemed,
/// 3 re-entered.
const REDEEM: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return {0, ''} end
if string.sub(v, 2, 65) ~= ARGV[1] then return {1, ''} end
local state = string.sub(v, 1, 1)
local payload = string.sub(v, 130)
if ARGV[2] == 'consume' then
  if state ~= 'p' then return {0, ''} end
  redis.call('DEL', KEYS[1])
  return {2, payload}
end
if state == 'p' then
  redis.call('SET', KEYS[1], 'f' .. ARGV[1] .. ARGV[3] .. payload, 'XX', 'PX', ARGV[4])
  return {2, payload}
end
if ARGV[5] ~= '' and string.sub(v, 66, 129) == ARGV[5] then return {3, payload} end
return {0, ''}
";

/// Returns 1 when the flow bound to ARGV[1] was consumed.
const COMPLETE: &str = r"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 1) == 'f' and string.sub(v, 66, 129) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// Settings of a [`RedisStore`].
#[derive(Clone)]
pub struct RedisStoreConfig {
    url: String,
    prefix: String,
    timeout: Duration,
}

impl RedisStoreConfig {
    /// Settings for `url`: `redis://[user:password@]host:port[/db]` or
    /// `rediss://` for TLS (with the `redis` crate's TLS features).
    /// Defaults: key prefix `tower-par:`, operation timeout 250 ms.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "tower-par:".into(),
            timeout: Duration::from_millis(250),
        }
    }

    /// Prefix of every key (to share a database with other applications).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one operation may take before the request is answered
    /// `503 temporarily_unavailable`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for RedisStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreConfig")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A [`ParStore`] on Redis or Valkey, for deployments with several
/// instances: a request pushed to one instance can be redeemed on any other.
///
/// - Every operation is one atomic server-side step: insert is
///   `SET NX PX`, redemption and completion are small Lua scripts, the
///   replay cache is `SET NX PX`. Two instances can never both redeem a
///   `request_uri`. Redis expires the entries itself; no sweeper runs.
/// - Keys are a hash of the `request_uri`, never the reference itself, so a
///   copy of the keyspace cannot be replayed at the authorization endpoint.
/// - Values are encrypted with ChaCha20-Poly1305 under a key derived from
///   the reference: a dump of Redis reveals no stored parameter (they can
///   hold personal data such as `login_hint` or `claims`) without the
///   `request_uri`. The client binding is a hash under the same reference.
/// - When Redis cannot be reached or answers too slowly (default 250 ms),
///   the PAR endpoint answers `503 temporarily_unavailable` with
///   `Retry-After`, the authorization endpoint an error page; the
///   connection is re-established on its own when Redis is back.
///
/// ```no_run
/// use tower_par::{ParLayer, RedisStore, RedisStoreConfig, StaticClients};
///
/// # async fn run(clients: StaticClients) -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect(RedisStoreConfig::new("redis://127.0.0.1:6379/0").prefix("as1:")).await?;
/// let layer = ParLayer::new(clients).with_store(store);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    config: Arc<RedisStoreConfig>,
    redeem: Arc<Script>,
    complete: Arc<Script>,
}

/// What the ciphertext holds.
#[derive(Serialize, Deserialize)]
struct Sealed {
    client_id: String,
    auth_method: AuthMethod,
    params: String,
    redirect_uri: Option<String>,
    pushed_at_ns: u64,
    expires_at_ns: u64,
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn from_unix_ns(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// SHA-256 of a domain label and parts, so the derived values cannot be
/// confused with each other.
fn derive(label: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"tower-par/");
    h.update(label.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// The URL without user info and without query (`redis+unix` URLs carry
/// `?pass=`).
fn redact(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// The error's kind and code (e.g. `READONLY`), never its detail, which
/// may echo a URL with a password or command arguments.
fn describe(e: &redis::RedisError) -> String {
    match e.code() {
        Some(code) => format!("{:?} ({code})", e.kind()),
        None => format!("{:?}", e.kind()),
    }
}

fn unavailable(e: impl fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// Connects to Redis. Fails when it cannot be reached now; once
    /// connected, lost connections are re-established on their own.
    pub async fn connect(config: RedisStoreConfig) -> Result<Self, StoreError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {}", describe(&e))))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(config.timeout.max(Duration::from_millis(500)))
            .set_response_timeout(config.timeout)
            .set_number_of_retries(1)
            .set_max_delay(1000);
        let conn = tokio::time::timeout(
            config.timeout.max(Duration::from_secs(2)),
            ConnectionManager::new_with_config(client, manager_config),
        )
        .await
        .map_err(|_| unavailable("timed out connecting to Redis"))?
        .map_err(|e| unavailable(format!("cannot connect to Redis: {}", describe(&e))))?;
        Ok(Self {
            conn,
            config: Arc::new(config),
            redeem: Arc::new(Script::new(REDEEM)),
            complete: Arc::new(Script::new(COMPLETE)),
        })
    }

    /// The same connection with another key prefix (tenants sharing one
    /// Redis database).
    pub fn with_prefix(&self, prefix: impl Into<String>) -> Self {
        let mut config = (*self.config).clone();
        config.prefix = prefix.into();
        Self {
            config: Arc::new(config),
            ..self.clone()
        }
    }

    /// The Redis key of a `request_uri`: a hash, never the reference.
    pub fn key_for(&self, uri: &RequestUri) -> String {
        format!(
            "{}par:{}",
            self.config.prefix,
            hex(&derive("key", &[uri.as_bytes()]))
        )
    }

    fn client_tag(uri: &RequestUri, client_id: &str) -> String {
        hex(&derive("client", &[uri.as_bytes(), client_id.as_bytes()]))
    }

    fn cipher(uri: &RequestUri) -> ChaCha20Poly1305 {
        let key = derive("seal", &[uri.as_bytes()]);
        ChaCha20Poly1305::new(Key::from_slice(&key))
    }

    fn seal(&self, uri: &RequestUri, key: &str, r: &PushedRequest) -> Result<Vec<u8>, StoreError> {
        let sealed = Sealed {
            client_id: r.client_id.clone(),
            auth_method: r.auth_method,
            params: r.params.clone(),
            redirect_uri: r.redirect_uri.clone(),
            pushed_at_ns: unix_ns(r.pushed_at),
            expires_at_ns: unix_ns(r.expires_at),
        };
        let plain = serde_json::to_vec(&sealed).map_err(unavailable)?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = Self::cipher(uri)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: key.as_bytes(),
                },
            )
            .map_err(|_| unavailable("encryption failed"))?;
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open(
        &self,
        uri: &RequestUri,
        key: &str,
        payload: &[u8],
    ) -> Result<PushedRequest, StoreError> {
        if payload.len() < 12 {
            return Err(unavailable("stored value is truncated"));
        }
        let (nonce, ct) = payload.split_at(12);
        let plain = Self::cipher(uri)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: key.as_bytes(),
                },
            )
            .map_err(|_| unavailable("stored value failed authentication"))?;
        let s: Sealed = serde_json::from_slice(&plain).map_err(unavailable)?;
        let mut r = PushedRequest::new(
            s.client_id,
            s.auth_method,
            s.params,
            from_unix_ns(s.pushed_at_ns),
            Duration::ZERO,
        )
        .with_redirect_uri(s.redirect_uri);
        r.expires_at = from_unix_ns(s.expires_at_ns);
        Ok(r)
    }

    async fn timed<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.config.timeout, op).await {
            Ok(Ok(v)) => Ok(v),
            // The error kind only: messages may echo command arguments.
            Ok(Err(e)) => Err(unavailable(format!("Redis error: {}", describe(&e)))),
            Err(_) => Err(unavailable("Redis timed out")),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl ParStore for RedisStore {
    async fn insert(
        &self,
        uri: &RequestUri,
        request: PushedRequest,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        // Redis enforces the lifetime: the TTL, or what is left of
        // `expires_at` if that is sooner. An already expired request is
        // never handed out, so it is not stored at all.
        let remaining = request
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let ttl = ttl.min(remaining);
        if ttl.is_zero() {
            return Ok(());
        }
        let key = self.key_for(uri);
        let mut value = Vec::with_capacity(BINDING_END + 64 + request.params.len() * 2);
        value.push(b'p');
        value.extend_from_slice(Self::client_tag(uri, &request.client_id).as_bytes());
        value.extend_from_slice(NO_BINDING.as_bytes());
        value.extend_from_slice(&self.seal(uri, &key, &request)?);
        let mut conn = self.conn.clone();
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(millis(ttl)));
        let set: Option<String> = self.timed(conn.set_options(&key, value, opts)).await?;
        match set {
            Some(_) => Ok(()),
            None => Err(StoreError::Exists),
        }
    }

    async fn redeem(
        &self,
        uri: &RequestUri,
        client_id: &str,
        mode: RedeemMode,
    ) -> Result<RedeemOutcome, StoreError> {
        let key = self.key_for(uri);
        let tag = Self::client_tag(uri, client_id);
        let mut inv = self.redeem.key(&key);
        inv.arg(&tag);
        match mode {
            RedeemMode::Consume => {
                inv.arg("consume").arg(NO_BINDING).arg(0).arg("");
            }
            RedeemMode::Bind {
                binding,
                reenter,
                window,
            } => {
                inv.arg("bind").arg(hex(&binding)).arg(millis(window));
                inv.arg(reenter.map(|r| hex(&r)).unwrap_or_default());
            }
        }
        let mut conn = self.conn.clone();
        let (outcome, payload): (i64, Vec<u8>) = self.timed(inv.invoke_async(&mut conn)).await?;
        let open = |p: &[u8]| self.open(uri, &key, p);
        Ok(match outcome {
            1 => RedeemOutcome::WrongClient,
            2 => RedeemOutcome::Redeemed(open(&payload)?),
            3 => RedeemOutcome::Reentered(open(&payload)?),
            _ => RedeemOutcome::NotFound,
        })
    }

    async fn complete(
        &self,
        uri: &RequestUri,
        binding: &[u8; 32],
    ) -> Result<Completion, StoreError> {
        let key = self.key_for(uri);
        let mut conn = self.conn.clone();
        let mut inv = self.complete.key(&key);
        inv.arg(hex(binding));
        let done: i64 = self.timed(inv.invoke_async(&mut conn)).await?;
        Ok(if done == 1 {
            Completion::Completed
        } else {
            Completion::NotInFlow
        })
    }

    async fn mark_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = format!(
            "{}once:{}",
            self.config.prefix,
            hex(&derive("once", &[key.as_bytes()]))
        );
        let mut conn = self.conn.clone();
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(millis(ttl)));
        let set: Option<String> = self.timed(conn.set_options(&key, 1, opts)).await?;
        Ok(set.is_some())
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &*self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_credentials() {
        let c = RedisStoreConfig::new("redis://user:hunter2@127.0.0.1:6379/2");
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2") && !d.contains("user:"), "{d}");
        assert!(d.contains("127.0.0.1:6379/2"));
        let unix = RedisStoreConfig::new("redis+unix:///run/redis.sock?db=1&pass=hunter2");
        assert!(!format!("{unix:?}").contains("hunter2"));
    }

    #[test]
    fn layout_constants_match_the_scripts() {
        assert_eq!(NO_BINDING.len(), 64);
        assert_eq!(BINDING_END + 1, 130); // Lua's string.sub(v, 130)
        assert_eq!(TAG_END + 1, 66);
    }
}
