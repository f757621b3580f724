//! Header rewriting between the client and the upstream: hop-by-hop
//! fields (RFC 9110 §7.6.1) and the forwarding fields (`X-Forwarded-*`,
//! RFC 7239 `Forwarded`).

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1,
/// plus the legacy `Keep-Alive` and `Proxy-Connection`).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(super) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(super) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(super) const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// RFC 9440 client certificate fields: believed only from trusted peers.
const CLIENT_CERT: [HeaderName; 2] = [
    HeaderName::from_static("client-cert"),
    HeaderName::from_static("client-cert-chain"),
];

/// Whether the request asks for a protocol switch (`Upgrade`, or the
/// `upgrade` connection option).
pub(super) fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        || connection_options(headers).any(|o| o.eq_ignore_ascii_case("upgrade"))
}

/// The comma-separated tokens of every `Connection` field.
fn connection_options(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes the hop-by-hop fields, and every field `Connection` names
/// (RFC 9110 §7.6.1).
pub(super) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = connection_options(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// What the forwarding fields say about one hop.
pub(super) struct Hop<'a> {
    /// The client's address, when the server told us.
    pub(super) peer: Option<SocketAddr>,
    /// Whether the client reached us over TLS.
    pub(super) tls: bool,
    /// The `Host` the client asked for.
    pub(super) host: Option<&'a HeaderValue>,
    /// Whether the peer's own forwarding fields are believed.
    pub(super) trusted: bool,
}

/// Adds this hop to `X-Forwarded-For/Proto/Host` and `Forwarded`. From an
/// untrusted peer the incoming forwarding fields and the RFC 9440
/// `Client-Cert` fields are dropped first, so the upstream only ever
/// sees what this proxy vouches for.
pub(super) fn add_forwarding(headers: &mut HeaderMap, hop: &Hop<'_>) {
    if !hop.trusted {
        for name in [
            X_FORWARDED_FOR,
            X_FORWARDED_PROTO,
            X_FORWARDED_HOST,
            FORWARDED,
        ] {
            headers.remove(name);
        }
        for name in CLIENT_CERT {
            headers.remove(name);
        }
    }
    let proto = if hop.tls { "https" } else { "http" };

    if let Some(peer) = hop.peer {
        let ip = peer.ip().to_string();
        append_list(headers, X_FORWARDED_FOR, &ip);
    }
    // A trusted front proxy already said what the client used; a second
    // value would make the field ambiguous.
    if !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if let Some(host) = hop.host {
        if !headers.contains_key(X_FORWARDED_HOST) {
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
    }

    // RFC 7239 §4: for=, proto=, host=; IPv6 nodes quoted (§6).
    let mut element = String::from("for=");
    match hop.peer.map(|p| p.ip()) {
        Some(IpAddr::V4(ip)) => element.push_str(&ip.to_string()),
        Some(IpAddr::V6(ip)) => {
            element.push_str("\"[");
            element.push_str(&ip.to_string());
            element.push_str("]\"");
        }
        // RFC 7239 §6.2: the node is not known.
        None => element.push_str("unknown"),
    }
    element.push_str(";proto=");
    element.push_str(proto);
    if let Some(host) = hop.host.and_then(|h| h.to_str().ok()) {
        element.push_str(";host=");
        push_value(&mut element, host);
    }
    append_list(headers, FORWARDED, &element);
}

/// Appends `item` to the comma-separated list `name` holds (all its lines
/// joined), as a single field line.
fn append_list(headers: &mut HeaderMap, name: HeaderName, item: &str) {
    let mut list = String::new();
    for v in headers.get_all(&name) {
        if let Ok(v) = v.to_str() {
            let v = v.trim();
            if !v.is_empty() {
                list.push_str(v);
                list.push_str(", ");
            }
        }
    }
    list.push_str(item);
    match HeaderValue::from_str(&list) {
        Ok(value) => {
            headers.insert(name, value);
        }
        // Only our own item: it is always a valid field value.
        Err(_) => {
            if let Ok(value) = HeaderValue::from_str(item) {
                headers.insert(name, value);
            }
        }
    }
}

/// RFC 7239 §4 value: a token, or else a quoted-string.
fn push_value(out: &mut String, value: &str) {
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !value.is_empty() && value.chars().all(is_tchar) {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_fields_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("X-A, , x-b"));
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-b", HeaderValue::from_static("1"));
        h.insert("x-c", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-c"));
    }

    #[test]
    fn forwarded_quotes_ipv6_and_hosts_with_ports() {
        let mut h = HeaderMap::new();
        let host = HeaderValue::from_static("as.example:8443");
        add_forwarding(
            &mut h,
            &Hop {
                peer: Some("[::1]:5000".parse().unwrap()),
                tls: true,
                host: Some(&host),
                trusted: false,
            },
        );
        assert_eq!(
            h.get(FORWARDED).unwrap(),
            "for=\"[::1]\";proto=https;host=\"as.example:8443\""
        );
        assert_eq!(h.get(X_FORWARDED_FOR).unwrap(), "::1");
        assert_eq!(h.get(X_FORWARDED_PROTO).unwrap(), "https");
        assert_eq!(h.get(X_FORWARDED_HOST).unwrap(), "as.example:8443");
    }
}
