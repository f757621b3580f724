//! Observability hooks. With the `tracing` feature they emit events; without
//! it they compile to nothing. They never receive parameter values, secrets
//! or a full `request_uri` (PAR-43): only client ids, a short fingerprint of
//! the reference and error codes.

use crate::error::OAuthError;
use crate::RequestUri;

#[cfg(feature = "tracing")]
pub(crate) fn pushed(client_id: &str, uri: &RequestUri) {
    tracing::info!(target: "tower_par", client_id, request_uri = %uri.fingerprint(), "pushed authorization request stored");
}

#[cfg(feature = "tracing")]
pub(crate) fn redeemed(client_id: &str, uri: &RequestUri) {
    tracing::info!(target: "tower_par", client_id, request_uri = %uri.fingerprint(), "request_uri redeemed");
}

#[cfg(feature = "tracing")]
pub(crate) fn rejected(endpoint: &'static str, e: &OAuthError) {
    tracing::info!(target: "tower_par", endpoint, error = e.code(), reason = e.description(), "request rejected");
}

#[cfg(feature = "tracing")]
pub(crate) fn auth_failed(client_id: &str, reason: &crate::ClientAuthError) {
    tracing::debug!(target: "tower_par", client_id, reason = %reason, "client authentication failed");
}

#[cfg(not(feature = "tracing"))]
pub(crate) fn pushed(_: &str, _: &RequestUri) {}

#[cfg(not(feature = "tracing"))]
pub(crate) fn redeemed(_: &str, _: &RequestUri) {}

#[cfg(not(feature = "tracing"))]
pub(crate) fn rejected(_: &'static str, _: &OAuthError) {}

#[cfg(not(feature = "tracing"))]
pub(crate) fn auth_failed(_: &str, _: &crate::ClientAuthError) {}
