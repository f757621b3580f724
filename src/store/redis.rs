//! `RedisStore`: pushed requests shared by many instances through Redis
//! (or Valkey), each operation one atomic server-side step, encrypted at
//! rest.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Completion, ParStore, PushedRequest, RedeemMode, RedeemOutcome, StoreError};
use crate::client::AuthMethod;
use crate::RequestUri;

/// Layout of a stored value: a header the scripts read without decoding
/// anything, then the sealed request.
///
/// `state(1) | client_tag(64) | flows(64) | binding(64) | until(16) |
/// mac(64) | nonce(12) + ciphertext`, all header fields lowercase hex but
/// the state (`p` pushed, `f` in flow). `flows` names the client's set of
/// flows; `until` is the end of the flow window (Unix ms); `mac` is an
/// HMAC-SHA-256 of the Redis key and every header field before it, under a
/// key derived from the `request_uri` (and the store's secret).
const STATE: usize = 1;
const TAG_END: usize = STATE + 64;
const FLOWS_END: usize = TAG_END + 64;
const BINDING_END: usize = FLOWS_END + 64;
const UNTIL_END: usize = BINDING_END + 16;
const HEADER_END: usize = UNTIL_END + 64;
const NO_BINDING: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const NO_UNTIL: &str = "0000000000000000";

/// KEYS: the entry, the client's set of flows. ARGV: the exact header of
/// the entry while pushed (Rust computes it, MAC included, so a changed
/// header is never acted on), mode, the header once in flow, window (ms),
/// presented binding, now (µs), window (µs), in-flow allowance.
/// Returns `{outcome, value}`: 0 not found, 1 wrong client, 2 redeemed
/// (the sealed request), 3 re-entered (the whole value: Rust checks the
/// header's MAC), 4 the header was changed.
///
/// Binding moves the entry into the client's set of flows (score: bind
/// time, strictly increasing, so the oldest is popped first); over the
/// allowance the oldest flows are consumed. The set expires with the
/// newest flow's window, members older than a window are dropped.
const REDEEM: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return {0, ''} end
if string.sub(v, 2, 65) ~= string.sub(ARGV[1], 2, 65) then return {1, ''} end
local state = string.sub(v, 1, 1)
local payload = string.sub(v, 274)
if state == 'p' then
  if string.sub(v, 1, 273) ~= ARGV[1] then return {4, ''} end
  if ARGV[2] == 'consume' then
    redis.call('DEL', KEYS[1])
    return {2, payload}
  end
  redis.call('SET', KEYS[1], ARGV[3] .. payload, 'XX', 'PX', ARGV[4])
  local now = tonumber(ARGV[6])
  -- Scores as integers in text: Lua prints numbers with 14 digits only.
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%d', now - tonumber(ARGV[7])))
  local max = tonumber(ARGV[8])
  while redis.call('ZCARD', KEYS[2]) >= max do
    local oldest = redis.call('ZPOPMIN', KEYS[2])
    if oldest[1] then redis.call('DEL', oldest[1]) end
  end
  local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if top[2] and tonumber(top[2]) >= now then now = tonumber(top[2]) + 1 end
  redis.call('ZADD', KEYS[2], string.format('%d', now), KEYS[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return {2, payload}
end
if ARGV[2] == 'bind' and ARGV[5] ~= '' and string.sub(v, 130, 193) == ARGV[5] then
  return {3, v}
end
return {0, ''}
";

/// ARGV: the binding, the key prefix. Consumes the flow bound to ARGV[1]
/// and returns its header (Rust checks its MAC before reporting a
/// completion), or ''.
const COMPLETE: &str = r"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 1) == 'f' and string.sub(v, 130, 193) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', ARGV[2] .. 'flows:' .. string.sub(v, 66, 129), KEYS[1])
  return string.sub(v, 1, 273)
end
return ''
";

/// Settings of a [`RedisStore`].
///
/// ```
/// use std::time::Duration;
/// use tower_par::RedisStoreConfig;
///
/// let config = RedisStoreConfig::new("redis://:hunter2@cache.internal:6379/0")
///     .secret([7u8; 32])
///     .prefix("as1:")
///     .timeout(Duration::from_millis(100))
///     .max_in_flow_per_client(100);
/// // `Debug` shows neither the password nor the secret.
/// let debug = format!("{config:?}");
/// assert!(debug.contains("redis://***@cache.internal:6379/0"));
/// assert!(!debug.contains("hunter2"));
/// assert!(debug.contains("secret: true"));
/// ```
#[derive(Clone)]
pub struct RedisStoreConfig {
    url: String,
    prefix: String,
    timeout: Duration,
    secret: Vec<u8>,
    max_in_flow_per_client: usize,
}

impl RedisStoreConfig {
    /// Settings for `url`: `redis://[user:password@]host:port[/db]` or
    /// `rediss://` for TLS (with the `redis` crate's TLS features).
    /// Defaults: key prefix `tower-par:`, operation timeout 250 ms, no
    /// secret, 1 000 flows in progress per client.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "tower-par:".into(),
            timeout: Duration::from_millis(250),
            secret: Vec::new(),
            max_in_flow_per_client: 1_000,
        }
    }

    /// A secret shared by every instance (32 random bytes or more), mixed
    /// into the keys that encrypt and authenticate the stored values.
    /// Without it those keys come from the `request_uri` alone, so whoever
    /// can write to Redis and knows a `request_uri` (the browser that
    /// carried it, say) can forge that entry; with it they cannot. Changing
    /// it makes the stored requests unreadable (they are then refused).
    #[must_use]
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = secret.as_ref().to_vec();
        self
    }

    /// Flows in progress per client (default 1 000): a first redemption
    /// over it consumes the client's oldest flow, whose browser then gets
    /// "not found". Requests not yet redeemed do not count here.
    #[must_use]
    pub fn max_in_flow_per_client(mut self, max: usize) -> Self {
        self.max_in_flow_per_client = max.max(1);
        self
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
            .field("secret", &(!self.secret.is_empty()))
            .field("max_in_flow_per_client", &self.max_in_flow_per_client)
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
/// - A client may have up to [`RedisStoreConfig::max_in_flow_per_client`]
///   flows in progress (default 1 000), each for at most the flow window;
///   a first redemption over it consumes the client's oldest flow, so
///   whoever starts flows for a public client can end other users' flows
///   but never make the client's new users wait. Each client has a sorted
///   set of its flows beside the entries, which expires with its newest
///   flow.
///
/// # Threat model: write access to Redis
///
/// The header the scripts act on (state, client, browser binding, end of
/// the flow window) is authenticated with an HMAC beside the encrypted
/// request, both under keys derived from the `request_uri` and
/// [`RedisStoreConfig::secret`]. The scripts act on a pushed entry only if
/// its header is exactly the one the store computed, and the store checks
/// the header of an entry in flow before a re-entry or a completion counts.
/// So someone who can write to Redis but lacks the secret (or, without a
/// secret, the `request_uri`) cannot reset a flow to "pushed", rebind it to
/// another browser, extend its window or swap headers between entries: the
/// entry is refused (an error or "not found"), never redeemed. What such a
/// writer can still do: delete entries or flush the database (denial of
/// service), and put back a value they copied earlier (a rollback, which
/// no store the writer controls can detect; the request still expires at
/// its authenticated `expires_at`). Without a secret, whoever knows a
/// `request_uri` and can write to Redis can forge its entry outright.
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
    StoreError::unavailable(e.to_string())
}

impl RedisStore {
    /// Connects to Redis. Fails when it cannot be reached now; once
    /// connected, lost connections are re-established on their own.
    pub async fn connect(config: RedisStoreConfig) -> Result<Self, StoreError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| StoreError::unavailable(format!("invalid Redis URL: {}", describe(&e))))?;
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

    /// The id of a client's set of flows: the same for all its entries, so
    /// a dump links entries of one client, but names no client without the
    /// secret.
    fn flows_id(&self, client_id: &str) -> String {
        hex(&derive(
            "flows",
            &[&self.config.secret, client_id.as_bytes()],
        ))
    }

    fn flows_key(&self, client_id: &str) -> String {
        format!("{}flows:{}", self.config.prefix, self.flows_id(client_id))
    }

    fn cipher(&self, uri: &RequestUri) -> ChaCha20Poly1305 {
        let key = derive("seal", &[&self.config.secret, uri.as_bytes()]);
        ChaCha20Poly1305::new(Key::from_slice(&key))
    }

    /// A header with its MAC, bound to the entry's Redis key.
    fn header(&self, uri: &RequestUri, key: &str, fields: &HeaderFields<'_>) -> String {
        let mut h = String::with_capacity(HEADER_END);
        h.push(char::from(fields.state));
        h.push_str(fields.tag);
        h.push_str(fields.flows);
        h.push_str(fields.binding);
        h.push_str(fields.until);
        let mac = self.mac(uri, key, h.as_bytes());
        h.push_str(&hex(&mac));
        h
    }

    fn mac(&self, uri: &RequestUri, key: &str, fields: &[u8]) -> [u8; 32] {
        let mac_key = derive("header", &[&self.config.secret, uri.as_bytes()]);
        let mut msg = Vec::with_capacity(16 + key.len() + fields.len());
        for part in [key.as_bytes(), fields] {
            msg.extend_from_slice(&(part.len() as u64).to_be_bytes());
            msg.extend_from_slice(part);
        }
        hmac_sha256(&mac_key, &msg)
    }

    /// Checks a header read back from Redis: its MAC, and that it is the
    /// header of an entry in flow for `binding` (when given) whose window
    /// has not ended. Returns the end of the window.
    fn check_in_flow(
        &self,
        uri: &RequestUri,
        key: &str,
        header: &[u8],
        binding: Option<&[u8; 32]>,
    ) -> Result<Option<SystemTime>, StoreError> {
        let tampered = || unavailable("stored value failed authentication");
        if header.len() < HEADER_END {
            return Err(tampered());
        }
        let (fields, mac) = header[..HEADER_END].split_at(UNTIL_END);
        let expected = hex(&self.mac(uri, key, fields));
        if !bool::from(expected.as_bytes().ct_eq(mac)) || fields[0] != b'f' {
            return Err(tampered());
        }
        if binding.is_some_and(|b| hex(b).as_bytes() != &fields[FLOWS_END..BINDING_END]) {
            return Ok(None);
        }
        let until = std::str::from_utf8(&fields[BINDING_END..UNTIL_END])
            .ok()
            .and_then(|u| u64::from_str_radix(u, 16).ok())
            .ok_or_else(tampered)?;
        let until = UNIX_EPOCH + Duration::from_millis(until);
        Ok((SystemTime::now() < until).then_some(until))
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
        crate::request_uri::fill_random(&mut nonce);
        let aad = Self::aad(key, &Self::client_tag(uri, &r.client_id));
        let ct = self
            .cipher(uri)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| unavailable("encryption failed"))?;
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// What the sealed request is bound to: its Redis key and its client,
    /// so a sealed request moved to another entry or client is refused.
    fn aad(key: &str, tag: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(key.len() + tag.len() + 1);
        aad.extend_from_slice(key.as_bytes());
        aad.push(b'|');
        aad.extend_from_slice(tag.as_bytes());
        aad
    }

    fn open(
        &self,
        uri: &RequestUri,
        key: &str,
        client_id: &str,
        payload: &[u8],
    ) -> Result<PushedRequest, StoreError> {
        if payload.len() < 12 {
            return Err(unavailable("stored value is truncated"));
        }
        let (nonce, ct) = payload.split_at(12);
        let aad = Self::aad(key, &Self::client_tag(uri, client_id));
        let plain = self
            .cipher(uri)
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
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

    /// The header of an entry pushed for `client_id`: the only one the
    /// redemption script acts on.
    fn pushed_header(&self, uri: &RequestUri, key: &str, client_id: &str) -> String {
        let fields = HeaderFields {
            state: b'p',
            tag: &Self::client_tag(uri, client_id),
            flows: &self.flows_id(client_id),
            binding: NO_BINDING,
            until: NO_UNTIL,
        };
        self.header(uri, key, &fields)
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

/// The fields of a header, before its MAC.
struct HeaderFields<'a> {
    state: u8,
    tag: &'a str,
    flows: &'a str,
    binding: &'a str,
    until: &'a str,
}

/// HMAC-SHA-256 (RFC 2104) with a 32-byte key.
fn hmac_sha256(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    // Any key length is valid for HMAC: `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
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
        let mut value = Vec::with_capacity(HEADER_END + 64 + request.params.len() * 2);
        value.extend_from_slice(self.pushed_header(uri, &key, &request.client_id).as_bytes());
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
        let now = SystemTime::now();
        let pushed = self.pushed_header(uri, &key, client_id);
        let mut inv = self.redeem.key(&key);
        inv.key(self.flows_key(client_id)).arg(&pushed);
        match mode {
            RedeemMode::Consume => {
                inv.arg("consume")
                    .arg("")
                    .arg(1)
                    .arg("")
                    .arg(0)
                    .arg(0)
                    .arg(1);
            }
            RedeemMode::Bind {
                binding,
                reenter,
                window,
            } => {
                let until = (unix_ns(now) / 1_000_000).saturating_add(millis(window));
                let fields = HeaderFields {
                    state: b'f',
                    tag: &Self::client_tag(uri, client_id),
                    flows: &self.flows_id(client_id),
                    binding: &hex(&binding),
                    until: &format!("{until:016x}"),
                };
                inv.arg("bind")
                    .arg(self.header(uri, &key, &fields))
                    .arg(millis(window));
                inv.arg(reenter.map(|r| hex(&r)).unwrap_or_default());
                inv.arg(unix_ns(now) / 1_000)
                    .arg(u64::try_from(window.as_micros()).unwrap_or(u64::MAX));
                inv.arg(self.config.max_in_flow_per_client.max(1));
            }
        }
        let mut conn = self.conn.clone();
        let (outcome, value): (i64, Vec<u8>) = self.timed(inv.invoke_async(&mut conn)).await?;
        let open = |p: &[u8]| self.open(uri, &key, client_id, p);
        Ok(match outcome {
            1 => RedeemOutcome::WrongClient,
            2 => {
                let request = open(&value)?;
                // PAR-29, checked on the authenticated data too: a TTL
                // that someone removed does not make a request valid again.
                if request.is_expired_at(now) {
                    RedeemOutcome::NotFound
                } else {
                    RedeemOutcome::Redeemed(request)
                }
            }
            3 => {
                let RedeemMode::Bind {
                    reenter: Some(reenter),
                    ..
                } = mode
                else {
                    return Ok(RedeemOutcome::NotFound);
                };
                match self.check_in_flow(uri, &key, &value, Some(&reenter))? {
                    Some(_) => RedeemOutcome::Reentered(open(&value[HEADER_END..])?),
                    None => RedeemOutcome::NotFound,
                }
            }
            4 => return Err(unavailable("stored value failed authentication")),
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
        inv.arg(hex(binding)).arg(&self.config.prefix);
        let header: Vec<u8> = self.timed(inv.invoke_async(&mut conn)).await?;
        if header.is_empty() {
            return Ok(Completion::NotInFlow);
        }
        // The flow is gone either way; it completes only if its header was
        // the store's own, so a rewritten binding never delivers a
        // response.
        Ok(
            match self.check_in_flow(uri, &key, &header, Some(binding))? {
                Some(_) => Completion::Completed,
                None => Completion::NotInFlow,
            },
        )
    }

    /// One `GET`: an entry in flow for this client and binding (its header
    /// MAC checked, its request opened) is returned; nothing is written,
    /// so a pushed entry stays pushed.
    async fn in_flow(
        &self,
        uri: &RequestUri,
        client_id: &str,
        binding: &[u8; 32],
    ) -> Result<Option<PushedRequest>, StoreError> {
        let key = self.key_for(uri);
        let mut conn = self.conn.clone();
        let value: Option<Vec<u8>> = self.timed(conn.get(&key)).await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let tag = Self::client_tag(uri, client_id);
        if value.first() != Some(&b'f') || value.get(STATE..TAG_END) != Some(tag.as_bytes()) {
            return Ok(None);
        }
        match self.check_in_flow(uri, &key, &value, Some(binding))? {
            Some(_) => Ok(Some(self.open(
                uri,
                &key,
                client_id,
                &value[HEADER_END..],
            )?)),
            None => Ok(None),
        }
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
        assert_eq!(NO_UNTIL.len(), UNTIL_END - BINDING_END);
        // Lua's string.sub is 1-based and inclusive.
        assert_eq!(TAG_END + 1, 66); // flows: sub(v, 66, 129)
        assert_eq!(FLOWS_END + 1, 130); // binding: sub(v, 130, 193)
        assert_eq!(BINDING_END, 193);
        assert_eq!(HEADER_END, 273); // header: sub(v, 1, 273)
        assert!(REDEEM.contains("string.sub(v, 274)"));
        assert!(REDEEM.contains("string.sub(v, 130, 193)"));
        assert!(COMPLETE.contains("string.sub(v, 66, 129)"));
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2 needs a 4-byte key; HMAC pads keys with
        // zeros, so "Jefe" and "Jefe" + 28 zero bytes give the same MAC.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hex(&hmac_sha256(&key, b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
