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

/// Fields in which a proxy describes the client, the original request or
/// its own hop: dropped from a peer that is not a trusted proxy, since a
/// client could otherwise tell the upstream its address, scheme, port,
/// host, path prefix or even another request target (`X-Original-URL`,
/// `X-Rewrite-URL`, which IIS and some frameworks route by). The
/// `X-Forwarded-For/Proto/Host` and `Forwarded` this hop adds come after.
const FORWARDING: [HeaderName; 23] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    FORWARDED,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-ssl"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-original-host"),
    HeaderName::from_static("front-end-https"),
    // Client-address fields that frameworks (Rails' `remote_ip`, PHP
    // helpers) and CDNs read: an upstream's per-IP limits must not be
    // steered by the client.
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
    HeaderName::from_static("fastly-client-ip"),
    HeaderName::from_static("x-forwarded-protocol"),
    HeaderName::from_static("x-url-scheme"),
    HeaderName::from_static("x-host"),
];

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

/// Removes every field whose name contains `_`, from any peer (nginx's
/// `underscores_in_headers off`): CGI, PHP, WSGI and Rack map `-` and `_`
/// alike to `HTTP_*` variables, so `Client_Cert` or `X_Forwarded_For`
/// would reach the upstream's application as the field of the dashed name
/// that [`add_forwarding`] removes.
pub(super) fn remove_underscored(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Removes from every `Cookie` line the cookies named `<base>_*` or
/// `__Host-<base>_*` (the layer's flow-binding cookies, whose values are
/// secrets of the layer's); a line left empty is dropped. A line without
/// such a cookie is kept as it is; in one with, the other cookies keep
/// their bytes and order, joined by `; `.
pub(super) fn remove_flow_cookies(headers: &mut HeaderMap, base: &str) {
    let plain = format!("{base}_");
    let host = format!("__Host-{base}_");
    let is_flow = |pair: &[u8]| {
        let pair = pair.trim_ascii_start();
        pair.starts_with(plain.as_bytes()) || pair.starts_with(host.as_bytes())
    };
    if !headers
        .get_all(header::COOKIE)
        .iter()
        .any(|v| v.as_bytes().split(|&b| b == b';').any(is_flow))
    {
        return;
    }
    let lines: Vec<HeaderValue> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| {
            if !v.as_bytes().split(|&b| b == b';').any(is_flow) {
                return Some(v.clone());
            }
            let mut kept: Vec<u8> = Vec::with_capacity(v.len());
            for pair in v.as_bytes().split(|&b| b == b';') {
                let pair = pair.trim_ascii();
                if pair.is_empty() || is_flow(pair) {
                    continue;
                }
                if !kept.is_empty() {
                    kept.extend_from_slice(b"; ");
                }
                kept.extend_from_slice(pair);
            }
            // Bytes of a valid value, minus some: still a valid value.
            HeaderValue::from_bytes(&kept)
                .ok()
                .filter(|_| !kept.is_empty())
        })
        .collect();
    headers.remove(header::COOKIE);
    for line in lines {
        headers.append(header::COOKIE, line);
    }
}

/// Adds this hop to `X-Forwarded-For/Proto/Host` and `Forwarded`. From an
/// untrusted peer the incoming forwarding fields and the RFC 9440
/// `Client-Cert` fields are dropped first, so the upstream only ever
/// sees what this proxy vouches for.
pub(super) fn add_forwarding(headers: &mut HeaderMap, hop: &Hop<'_>) {
    if !hop.trusted {
        for name in FORWARDING {
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
    fn flow_cookies_are_removed_and_the_others_kept_in_order() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static(
                "a=1; par_flow_AbCdEfGhIjKl=s1;b=\"x y\" ;  __Host-par_flow_x=s2",
            ),
        );
        h.append(header::COOKIE, HeaderValue::from_static("par_flow_z=s3"));
        h.append(header::COOKIE, HeaderValue::from_static("c=3;;d=4"));
        h.append(
            header::COOKIE,
            HeaderValue::from_static("par_flowx=5; Par_flow_y=6"),
        );
        remove_flow_cookies(&mut h, "par_flow");
        let lines: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(
            lines,
            ["a=1; b=\"x y\"", "c=3;;d=4", "par_flowx=5; Par_flow_y=6"]
        );

        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("__Host-par_flow_a=1"),
        );
        remove_flow_cookies(&mut h, "par_flow");
        assert!(!h.contains_key(header::COOKIE));
    }

    #[test]
    fn underscored_fields_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("client_cert", HeaderValue::from_static(":AAAA:"));
        h.insert("x_forwarded_for", HeaderValue::from_static("203.0.113.9"));
        h.insert("x-a", HeaderValue::from_static("1"));
        remove_underscored(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-a"));
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
