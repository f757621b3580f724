//! Constant-time verification of client secrets kept as SHA-256 digests.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 digest of a client secret, the form to keep in a client
/// database and to check with [`verify_secret_sha256`].
///
/// ```
/// let digest = tower_par::secret_sha256("app-secret");
/// assert!(tower_par::verify_secret_sha256("app-secret", &digest));
/// ```
pub fn secret_sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `presented` is the secret whose SHA-256 digest is
/// `expected_sha256`, compared in constant time (AUTH-1: the time taken
/// says nothing about how much of the secret was right).
///
/// For client databases of your own: keep the digest, never the secret,
/// and when the client is unknown compare against a fixed dummy digest so
/// that an unknown client takes as long as a wrong secret.
/// [`StaticClients`](crate::StaticClients) does the same. Client secrets
/// must be long random values (a fast digest is right for those); this is
/// not a password hash.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use tower_par::{
///     verify_secret_sha256, AuthMethod, Client, ClientAuthError, ClientAuthenticator,
///     ClientCredentials,
/// };
///
/// /// Clients and their secret digests, as a database would return them.
/// #[derive(Clone)]
/// struct Db(Arc<HashMap<String, (Arc<Client>, [u8; 32])>>);
///
/// /// Compared against when the client is unknown (flat timing).
/// const DUMMY: [u8; 32] = [0x5a; 32];
///
/// impl ClientAuthenticator for Db {
///     async fn authenticate(
///         &self,
///         credentials: &ClientCredentials,
///         _request: &http::request::Parts,
///     ) -> Result<Arc<Client>, ClientAuthError> {
///         let row = self.0.get(&credentials.client_id);
///         let presented = credentials.secret.as_ref().map_or("", |s| s.expose());
///         let ok = verify_secret_sha256(presented, row.map_or(&DUMMY, |(_, d)| d));
///         let (client, _) = row.ok_or(ClientAuthError::UnknownClient)?;
///         if client.auth_method != credentials.method {
///             return Err(ClientAuthError::MethodNotAllowed);
///         }
///         if !ok || credentials.secret.is_none() {
///             return Err(ClientAuthError::BadCredentials);
///         }
///         Ok(client.clone())
///     }
///
///     async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, ClientAuthError> {
///         Ok(self.0.get(client_id).map(|(c, _)| c.clone()))
///     }
/// }
///
/// let app = Client::new("app", AuthMethod::ClientSecretBasic).redirect_uri("https://app.example/cb");
/// let db = Db(Arc::new(HashMap::from([(
///     "app".to_string(),
///     (Arc::new(app), tower_par::secret_sha256("app-secret")),
/// )])));
/// let layer = tower_par::ParLayer::new(db);
/// # let _ = layer;
/// ```
pub fn verify_secret_sha256(presented: &str, expected_sha256: &[u8; 32]) -> bool {
    secret_sha256(presented).ct_eq(expected_sha256).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_secret_of_the_digest() {
        let digest = secret_sha256("s3cr+t");
        assert!(verify_secret_sha256("s3cr+t", &digest));
        assert!(!verify_secret_sha256("s3cr+T", &digest));
        assert!(!verify_secret_sha256("", &digest));
        assert!(!verify_secret_sha256("s3cr+t", &[0; 32]));
    }
}
