//! Observability hooks: `tracing` events (feature `tracing`) and `metrics`
//! counters and histograms (feature `metrics`); without either they compile
//! to nothing. They never receive parameter values, secrets or a full
//! `request_uri` (PAR-43): only client ids, a short fingerprint of the
//! reference and error codes.
//!
//! Metrics: `tower_par_pushed_total`, `tower_par_redeemed_total`,
//! `tower_par_reentered_total`, `tower_par_completed_total`,
//! `tower_par_rejected_total{endpoint, error}` (counters) and
//! `tower_par_flow_duration_seconds` (histogram, push to completion).

#![allow(unused_variables)]

use std::time::SystemTime;

use crate::error::OAuthError;
use crate::RequestUri;

pub(crate) fn pushed(client_id: &str, uri: &RequestUri) {
    #[cfg(feature = "tracing")]
    tracing::info!(target: "tower_par", client_id, request_uri = %uri.fingerprint(), "pushed authorization request stored");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_par_pushed_total").increment(1);
}

pub(crate) fn redeemed(client_id: &str, uri: &RequestUri) {
    #[cfg(feature = "tracing")]
    tracing::info!(target: "tower_par", client_id, request_uri = %uri.fingerprint(), "request_uri redeemed");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_par_redeemed_total").increment(1);
}

pub(crate) fn reentered(client_id: &str, uri: &RequestUri) {
    #[cfg(feature = "tracing")]
    tracing::info!(target: "tower_par", client_id, request_uri = %uri.fingerprint(), "flow re-entered");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_par_reentered_total").increment(1);
}

pub(crate) fn completed(client_id: &str, uri: &RequestUri, pushed_at: SystemTime) {
    let flow_secs = pushed_at.elapsed().map_or(0.0, |d| d.as_secs_f64());
    #[cfg(feature = "tracing")]
    tracing::info!(target: "tower_par", client_id, request_uri = %uri.fingerprint(), flow_secs, "flow completed");
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("tower_par_completed_total").increment(1);
        metrics::histogram!("tower_par_flow_duration_seconds").record(flow_secs);
    }
}

pub(crate) fn rejected(endpoint: &'static str, e: &OAuthError) {
    #[cfg(feature = "tracing")]
    // The code only: a description can quote a parameter value.
    tracing::info!(target: "tower_par", endpoint, error = e.code(), status = e.status().as_u16(), "request rejected");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_par_rejected_total", "endpoint" => endpoint, "error" => e.code().to_owned()).increment(1);
}

pub(crate) fn auth_failed(client_id: &str, reason: &crate::ClientAuthError) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "tower_par", client_id, reason = %reason, "client authentication failed");
}

/// A client's keys could not be had (fetch failure, misregistration): the
/// client is answered like any failed authentication (AUTH-1), the detail
/// is logged here.
#[cfg(feature = "jwt")]
pub(crate) fn keys_unavailable(client_id: &str, why: &str) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "tower_par", client_id, why, "client keys unavailable");
    #[cfg(not(feature = "tracing"))]
    let _ = (client_id, why);
}
