//! A client database and a store of pushed requests on SQLite, through
//! `sqlx`: what an adopter writes to keep tower-par's state in their own
//! database. Shared by the `sqlite` example and `tests/sqlite.rs`.
//!
//! Two tables of one SQLite file, created if absent by [`open`]:
//!
//! - `clients`: one row per client, with the SHA-256 of its secret (never
//!   the secret), its redirect URIs (a JSON array) and `require_par`.
//! - `pushed_requests`: one row per `request_uri`, keyed by the SHA-256 of
//!   the reference (the row never holds the reference itself), with its
//!   expiry as data (`deadline`, Unix nanoseconds) so a read never hands
//!   out an expired row, swept or not. `once_keys` is the replay cache.
//!
//! Every store operation is one atomic step: a single statement with
//! `RETURNING`, or (for a first redemption that binds a flow and may end
//! the client's oldest one) one `BEGIN IMMEDIATE` transaction. SQLite
//! serialises writers, so two connections can never both redeem a
//! `request_uri`. The parameters are stored in clear: protect the file
//! (it is created `0600` on Unix).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use subtle::ConstantTimeEq;
use tower_par::{
    AuthMethod, Client, ClientAuthError, ClientAuthenticator, ClientCredentials, Completion,
    ParStore, PushedRequest, RedeemMode, RedeemOutcome, RequestUri, StoreError,
};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS clients (
        client_id TEXT PRIMARY KEY NOT NULL,
        token_endpoint_auth_method TEXT NOT NULL,
        secret_sha256 BLOB,
        redirect_uris TEXT NOT NULL DEFAULT '[]',
        require_par INTEGER NOT NULL DEFAULT 0
    )",
    "CREATE TABLE IF NOT EXISTS pushed_requests (
        key BLOB PRIMARY KEY NOT NULL,
        client_id TEXT NOT NULL,
        auth_method TEXT NOT NULL,
        params TEXT NOT NULL,
        redirect_uri TEXT,
        pushed_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        deadline INTEGER NOT NULL,
        binding BLOB,
        bound_at INTEGER
    ) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS pushed_requests_deadline ON pushed_requests (deadline)",
    "CREATE INDEX IF NOT EXISTS pushed_requests_flows
        ON pushed_requests (client_id, bound_at) WHERE binding IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS once_keys (
        key BLOB PRIMARY KEY NOT NULL,
        deadline INTEGER NOT NULL
    ) WITHOUT ROWID",
];

/// Opens (creating if needed) the SQLite database at `path` and its tables.
pub async fn open(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    #[cfg(unix)]
    {
        // Created here first so that it is private from the start: it holds
        // pushed parameters (personal data) and secret digests.
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(&pool).await?;
    }
    Ok(pool)
}

// --- the client database ----------------------------------------------------

/// Compared against when a client is unknown or has no secret, so that an
/// unknown client costs the same work as a wrong secret (AUTH-1).
const DUMMY_DIGEST: [u8; 32] = [0x5a; 32];

/// Clients registered in the `clients` table.
///
/// `authenticate` checks `client_secret_basic`, `client_secret_post` and
/// `none`. JWT assertions are verified by the layer itself with
/// [`ClientAuthenticator::client`]; a table that keeps only digests cannot
/// offer `client_secret_jwt`, and one without keys cannot offer
/// `private_key_jwt`, so such rows never authenticate.
#[derive(Clone, Debug)]
pub struct SqliteClients {
    pool: SqlitePool,
}

fn client_unavailable(e: impl std::fmt::Display) -> ClientAuthError {
    ClientAuthError::unavailable(format!("client database: {e}"))
}

impl SqliteClients {
    /// Clients of the database behind `pool` (see [`open`]).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Registers (or replaces) a client; only the SHA-256 of `secret` is
    /// kept.
    pub async fn register(&self, client: &Client, secret: Option<&str>) -> Result<(), sqlx::Error> {
        let digest = secret.map(|s| Sha256::digest(s.as_bytes()).to_vec());
        let uris = serde_json::to_string(&client.redirect_uris)
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(
            "INSERT OR REPLACE INTO clients
                (client_id, token_endpoint_auth_method, secret_sha256, redirect_uris, require_par)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&client.client_id)
        .bind(client.auth_method.as_str())
        .bind(digest)
        .bind(uris)
        .bind(client.require_par)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The client and its secret digest, or `None` when unknown.
    async fn lookup(
        &self,
        client_id: &str,
    ) -> Result<Option<(Arc<Client>, Option<[u8; 32]>)>, ClientAuthError> {
        let row = sqlx::query(
            "SELECT token_endpoint_auth_method, secret_sha256, redirect_uris, require_par
             FROM clients WHERE client_id = ?1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(client_unavailable)?;
        let Some(row) = row else {
            return Ok(None);
        };
        // A row the layer cannot use is a database fault, not an unknown
        // client: answered 503, and never cached as "absent".
        let method: String = row.try_get(0).map_err(client_unavailable)?;
        let method: AuthMethod = method.parse().map_err(client_unavailable)?;
        let digest: Option<Vec<u8>> = row.try_get(1).map_err(client_unavailable)?;
        let digest = match digest {
            None => None,
            Some(d) => Some(
                <[u8; 32]>::try_from(d.as_slice())
                    .map_err(|_| client_unavailable("secret_sha256 is not 32 bytes"))?,
            ),
        };
        let uris: String = row.try_get(2).map_err(client_unavailable)?;
        let uris: Vec<String> = serde_json::from_str(&uris).map_err(client_unavailable)?;
        let require_par: bool = row.try_get(3).map_err(client_unavailable)?;
        let client = uris
            .into_iter()
            .fold(Client::new(client_id, method), Client::redirect_uri)
            .require_par(require_par);
        Ok(Some((Arc::new(client), digest)))
    }
}

impl ClientAuthenticator for SqliteClients {
    async fn authenticate(
        &self,
        credentials: &ClientCredentials,
        _request: &http::request::Parts,
    ) -> Result<Arc<Client>, ClientAuthError> {
        // The layer verifies JWT assertions itself, through `client()`.
        if credentials.method.uses_assertion() {
            return Err(ClientAuthError::MethodNotAllowed);
        }
        let found = self.lookup(&credentials.client_id).await?;
        let presented: [u8; 32] = match &credentials.secret {
            Some(s) => Sha256::digest(s.expose().as_bytes()).into(),
            None => [0; 32],
        };
        // Same work whether or not the client exists (AUTH-1, AUTH-5).
        let expected = found.as_ref().and_then(|(_, d)| *d).unwrap_or(DUMMY_DIGEST);
        let secret_ok: bool = presented.ct_eq(&expected).into();
        let (client, digest) = found.ok_or(ClientAuthError::UnknownClient)?;
        if client.auth_method != credentials.method {
            return Err(ClientAuthError::MethodNotAllowed);
        }
        if credentials.method.uses_secret() && !(digest.is_some() && secret_ok) {
            return Err(ClientAuthError::BadCredentials);
        }
        Ok(client)
    }

    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, ClientAuthError> {
        Ok(self.lookup(client_id).await?.map(|(client, _)| client))
    }
}

// --- the store of pushed requests ---------------------------------------------

/// Pushed requests in the `pushed_requests` table.
///
/// Bounds: at most `max_in_flow_per_client` flows per client (a first
/// redemption over it ends the client's oldest flow, like the built-in
/// stores). There is no per-client push bound: put a rate limit in front of
/// the PAR endpoint. [`SqliteStore::sweep_expired`] removes dead rows.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    max_in_flow_per_client: i64,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::unavailable(format!("pushed-request database: {e}"))
}

/// Unix nanoseconds (negative before 1970), saturating.
fn ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

fn from_ns(n: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(n.unsigned_abs());
    if n >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

fn span_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The row key of a `request_uri`: a digest, never the reference.
fn key_of(uri: &RequestUri) -> Vec<u8> {
    Sha256::digest(uri.as_bytes()).to_vec()
}

const COLUMNS: &str = "client_id, auth_method, params, redirect_uri, pushed_at, expires_at";

fn request_of(row: &SqliteRow) -> Result<PushedRequest, StoreError> {
    let client_id: String = row.try_get("client_id").map_err(unavailable)?;
    let method: String = row.try_get("auth_method").map_err(unavailable)?;
    let method: AuthMethod = method.parse().map_err(unavailable)?;
    let params: String = row.try_get("params").map_err(unavailable)?;
    let redirect_uri: Option<String> = row.try_get("redirect_uri").map_err(unavailable)?;
    let pushed_at = from_ns(row.try_get("pushed_at").map_err(unavailable)?);
    let expires_at = from_ns(row.try_get("expires_at").map_err(unavailable)?);
    let mut request = PushedRequest::new(client_id, method, params, pushed_at, Duration::ZERO)
        .with_redirect_uri(redirect_uri);
    request.expires_at = expires_at;
    Ok(request)
}

impl SqliteStore {
    /// Pushed requests in the database behind `pool` (see [`open`]), at
    /// most 1 000 flows in progress per client.
    pub fn new(pool: SqlitePool) -> Self {
        Self {
            pool,
            max_in_flow_per_client: 1_000,
        }
    }

    /// Sets how many flows one client may have in progress (at least 1).
    #[must_use]
    pub fn max_in_flow_per_client(mut self, max: usize) -> Self {
        self.max_in_flow_per_client = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
        self
    }

    /// Deletes the rows that can no longer be used; returns how many.
    pub async fn sweep_expired(&self) -> Result<u64, StoreError> {
        let now = ns(SystemTime::now());
        let mut removed = 0;
        for table in ["pushed_requests", "once_keys"] {
            removed += sqlx::query(&format!("DELETE FROM {table} WHERE deadline <= ?1"))
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?
                .rows_affected();
        }
        Ok(removed)
    }

    /// The live row under `key`, if any: read by a redemption that changed
    /// nothing, to tell a foreign client or a re-entry from "not found".
    async fn live_row<'e, E>(
        executor: E,
        key: &[u8],
        now: i64,
    ) -> Result<Option<SqliteRow>, StoreError>
    where
        E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
    {
        sqlx::query(&format!(
            "SELECT {COLUMNS}, binding FROM pushed_requests WHERE key = ?1 AND deadline > ?2"
        ))
        .bind(key)
        .bind(now)
        .fetch_optional(executor)
        .await
        .map_err(unavailable)
    }
}

impl ParStore for SqliteStore {
    async fn insert(
        &self,
        uri: &RequestUri,
        request: PushedRequest,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = SystemTime::now();
        // The row dies at the TTL or at `expires_at`, whichever is sooner.
        // An already expired request would never be handed out: not stored.
        let deadline = ns(now)
            .saturating_add(span_ns(ttl))
            .min(ns(request.expires_at));
        if deadline <= ns(now) {
            return Ok(());
        }
        // Insert-if-absent; a dead row under the same key is replaced.
        let done = sqlx::query(
            "INSERT INTO pushed_requests
                (key, client_id, auth_method, params, redirect_uri, pushed_at, expires_at,
                 deadline, binding, bound_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL)
             ON CONFLICT (key) DO UPDATE SET
                client_id = excluded.client_id, auth_method = excluded.auth_method,
                params = excluded.params, redirect_uri = excluded.redirect_uri,
                pushed_at = excluded.pushed_at, expires_at = excluded.expires_at,
                deadline = excluded.deadline, binding = NULL, bound_at = NULL
             WHERE pushed_requests.deadline <= ?9",
        )
        .bind(key_of(uri))
        .bind(&request.client_id)
        .bind(request.auth_method.as_str())
        .bind(&request.params)
        .bind(&request.redirect_uri)
        .bind(ns(request.pushed_at))
        .bind(ns(request.expires_at))
        .bind(deadline)
        .bind(ns(now))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Exists)
        }
    }

    async fn redeem(
        &self,
        uri: &RequestUri,
        client_id: &str,
        mode: RedeemMode,
    ) -> Result<RedeemOutcome, StoreError> {
        let key = key_of(uri);
        let now = ns(SystemTime::now());
        match mode {
            RedeemMode::Consume => {
                // RFC 9126 §4: one-time use, in one statement.
                let row = sqlx::query(&format!(
                    "DELETE FROM pushed_requests
                     WHERE key = ?1 AND client_id = ?2 AND binding IS NULL AND deadline > ?3
                     RETURNING {COLUMNS}"
                ))
                .bind(&key)
                .bind(client_id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
                if let Some(row) = row {
                    return Ok(RedeemOutcome::Redeemed(request_of(&row)?));
                }
                // Nothing consumed: tell a foreign client's attempt apart
                // (PAR-15; the entry stays for its owner).
                let live = Self::live_row(&self.pool, &key, now).await?;
                Ok(match live {
                    Some(row) if !same_client(&row, client_id)? => RedeemOutcome::WrongClient,
                    _ => RedeemOutcome::NotFound,
                })
            }
            RedeemMode::Bind {
                binding,
                reenter,
                window,
            } => {
                // Binding may end the client's oldest flow: both in one
                // write transaction, taken up front (no upgrade deadlock).
                let mut tx = self
                    .pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(unavailable)?;
                let bound = sqlx::query(&format!(
                    "UPDATE pushed_requests
                     SET binding = ?4, bound_at = ?3, deadline = ?5
                     WHERE key = ?1 AND client_id = ?2 AND binding IS NULL AND deadline > ?3
                     RETURNING {COLUMNS}"
                ))
                .bind(&key)
                .bind(client_id)
                .bind(now)
                .bind(binding.as_slice())
                .bind(now.saturating_add(span_ns(window)))
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
                let outcome = match bound {
                    Some(row) => {
                        // Over the in-flow allowance: the oldest flows end.
                        sqlx::query(
                            "DELETE FROM pushed_requests WHERE key IN (
                                SELECT key FROM pushed_requests
                                WHERE client_id = ?1 AND binding IS NOT NULL AND deadline > ?2
                                  AND key <> ?3
                                ORDER BY bound_at DESC, key DESC LIMIT -1 OFFSET ?4)",
                        )
                        .bind(client_id)
                        .bind(now)
                        .bind(&key)
                        .bind(self.max_in_flow_per_client - 1)
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                        RedeemOutcome::Redeemed(request_of(&row)?)
                    }
                    None => match Self::live_row(&mut *tx, &key, now).await? {
                        None => RedeemOutcome::NotFound,
                        Some(row) if !same_client(&row, client_id)? => RedeemOutcome::WrongClient,
                        Some(row) => {
                            let bound_to: Option<Vec<u8>> =
                                row.try_get("binding").map_err(unavailable)?;
                            // Only the secret the browser presented re-enters;
                            // the fresh one never claims an existing flow.
                            let reenters = match (bound_to, reenter) {
                                (Some(b), Some(r)) => bool::from(b.as_slice().ct_eq(&r)),
                                _ => false,
                            };
                            if reenters {
                                RedeemOutcome::Reentered(request_of(&row)?)
                            } else {
                                RedeemOutcome::NotFound
                            }
                        }
                    },
                };
                tx.commit().await.map_err(unavailable)?;
                Ok(outcome)
            }
            // A mode this example does not know: refuse rather than guess.
            _ => Ok(RedeemOutcome::NotFound),
        }
    }

    async fn complete(
        &self,
        uri: &RequestUri,
        binding: &[u8; 32],
    ) -> Result<Completion, StoreError> {
        let done = sqlx::query(
            "DELETE FROM pushed_requests
             WHERE key = ?1 AND binding = ?2 AND deadline > ?3",
        )
        .bind(key_of(uri))
        .bind(binding.as_slice())
        .bind(ns(SystemTime::now()))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(if done.rows_affected() == 1 {
            Completion::Completed
        } else {
            Completion::NotInFlow
        })
    }

    async fn mark_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = ns(SystemTime::now());
        // Insert-or-ignore; an expired key is recorded afresh.
        let done = sqlx::query(
            "INSERT INTO once_keys (key, deadline) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET deadline = excluded.deadline
             WHERE once_keys.deadline <= ?3",
        )
        .bind(Sha256::digest(key.as_bytes()).to_vec())
        .bind(now.saturating_add(span_ns(ttl)))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }
}

fn same_client(row: &SqliteRow, client_id: &str) -> Result<bool, StoreError> {
    let stored: String = row.try_get("client_id").map_err(unavailable)?;
    Ok(stored == client_id)
}
