//! `Jwks`: a client's registered public keys (RFC 7591 `jwks`).

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// A client's public keys: an RFC 7517 JWK Set, checked when it is built.
///
/// Each key must be a public RSA (2048 bits or more), P-256, P-384 or
/// Ed25519 key for signatures; a private member (`d`, `p`, ...), a
/// symmetric key or a key whose `use` is not `sig` refuses the whole set,
/// so that a registration mistake shows at start-up rather than as a
/// failed login. Without the `jwt` feature the set is kept as JSON and not
/// checked.
///
/// ```
/// use tower_par::Jwks;
///
/// let jwks = Jwks::from_json(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
///   "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)?;
/// assert_eq!(jwks.len(), 1);
/// assert!(Jwks::from_json(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Clone)]
pub struct Jwks {
    json: Arc<Value>,
    len: usize,
    #[cfg(feature = "jwt")]
    pub(crate) keys: crate::jose::KeySet,
}

impl Jwks {
    /// Parses a JWK Set from its JSON text.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("jwks is not JSON: {e}"))?;
        Self::from_value(value)
    }

    /// Builds a JWK Set from parsed JSON (`{"keys":[..]}`).
    pub fn from_value(value: Value) -> Result<Self, String> {
        let len = value
            .get("keys")
            .and_then(Value::as_array)
            .map(Vec::len)
            .ok_or_else(|| "jwks must be an object with a 'keys' array".to_owned())?;
        #[cfg(feature = "jwt")]
        let keys = crate::jose::KeySet::from_json(&value).map_err(|e| format!("jwks: {e}"))?;
        Ok(Self {
            json: Arc::new(value),
            len,
            #[cfg(feature = "jwt")]
            keys,
        })
    }

    /// The most keys a published set may hold ([`Jwks::from_published`]).
    pub const MAX_PUBLISHED_KEYS: usize = 64;

    /// Parses a JWK Set as a client publishes it at its `jwks_uri`: keys
    /// this layer cannot verify with (encryption keys, `use` other than
    /// `sig`, other key types, RSA keys under 2048 bits) are skipped instead
    /// of refusing the set, since such sets often list them. A private key
    /// member (`d`, ...) still refuses the set, and so does a set of more
    /// than [`MAX_PUBLISHED_KEYS`](Self::MAX_PUBLISHED_KEYS) keys, or of
    /// more signature keys than a registered set may hold.
    /// [`len`](Self::len) counts the keys kept. For a `JwksFetcher` of
    /// your own.
    ///
    /// ```
    /// use tower_par::Jwks;
    ///
    /// let published = r#"{"keys":[
    ///   {"kty":"OKP","crv":"Ed25519","kid":"sig","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
    ///   {"kty":"OKP","crv":"X25519","kid":"enc","use":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    /// ]}"#;
    /// # #[cfg(feature = "jwt")] {
    /// assert_eq!(Jwks::from_published(published)?.len(), 1);
    /// // Registered inline, the same set is a mistake to report.
    /// assert!(Jwks::from_json(published).is_err());
    /// # }
    /// # Ok::<(), String>(())
    /// ```
    pub fn from_published(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("jwks is not JSON: {e}"))?;
        #[cfg(feature = "jwt")]
        {
            let (keys, _skipped) =
                crate::jose::KeySet::from_published_json(&value, Self::MAX_PUBLISHED_KEYS)
                    .map_err(|e| format!("jwks: {e}"))?;
            Ok(Self {
                json: Arc::new(value),
                len: keys.len(),
                keys,
            })
        }
        #[cfg(not(feature = "jwt"))]
        {
            let len = value
                .get("keys")
                .and_then(Value::as_array)
                .map(Vec::len)
                .ok_or_else(|| "jwks must be an object with a 'keys' array".to_owned())?;
            if len > Self::MAX_PUBLISHED_KEYS {
                return Err(format!(
                    "jwks: the JWK Set has more than {} keys",
                    Self::MAX_PUBLISHED_KEYS
                ));
            }
            Ok(Self {
                json: Arc::new(value),
                len,
            })
        }
    }

    /// The JWK Set as JSON.
    pub fn as_json(&self) -> &Value {
        &self.json
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set has no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl PartialEq for Jwks {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl Eq for Jwks {}

impl fmt::Debug for Jwks {
    // Public keys are not secret, but a key listing is noise in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jwks(<{} keys>)", self.len)
    }
}
