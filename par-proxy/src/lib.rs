//! `par-proxy`: a reverse proxy that adds OAuth 2.0 Pushed Authorization
//! Requests (RFC 9126) to any authorization server, built on the
//! `tower-par` layer's public API.
//!
//! The binary is the product; this library is how its parts (and its
//! tests) reach each other:
//!
//! - [`config`]: the TOML configuration, environment overrides, `--check-config`;
//! - [`layer`]: the `ParLayer` the configuration describes;
//! - [`forward`]: the upstream forwarder (hop-by-hop headers, `Forwarded`,
//!   timeouts, `forward_as`);
//! - [`server`]: listeners, TLS and mTLS, health, metrics, graceful shutdown;
//! - [`demo`]: `--demo`, the demo authorization server behind the proxy.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod demo;
pub mod forward;
pub mod layer;
pub mod server;

use std::net::SocketAddr;

/// What the server knows about the connection a request arrived on; put
/// in every request's extensions before the layer and the forwarder see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The local address the connection was accepted on.
    pub local: SocketAddr,
    /// Whether the connection is TLS (terminated by this proxy).
    pub tls: bool,
    /// Whether `peer` is listed in `trusted_proxies`: its `X-Forwarded-*`,
    /// `Forwarded` and `Client-Cert` headers are believed.
    pub trusted: bool,
}
