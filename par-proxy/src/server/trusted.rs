//! `trusted_proxies`: the peers whose `X-Forwarded-*`, `Forwarded` and
//! RFC 9440 `Client-Cert` headers are believed.

use std::fmt;
use std::net::IpAddr;

/// A parsed `trusted_proxies` list: IP addresses and CIDR ranges.
///
/// ```
/// use par_proxy::server::TrustedProxies;
///
/// let trusted = TrustedProxies::parse(["10.0.0.0/8", "::1"]).unwrap();
/// assert!(trusted.contains("10.1.2.3".parse().unwrap()));
/// assert!(trusted.contains("::1".parse().unwrap()));
/// assert!(!trusted.contains("192.0.2.1".parse().unwrap()));
/// assert!(TrustedProxies::parse(["10.0.0.0/33"]).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    ranges: Vec<Range>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Range {
    network: IpAddr,
    prefix: u8,
}

impl TrustedProxies {
    /// No trusted peer: every forwarding and `Client-Cert` header is
    /// stripped.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses entries such as `127.0.0.1`, `10.0.0.0/8`, `::1` or
    /// `fd00::/8`. An address inside an IPv4 range also matches in its
    /// IPv4-mapped IPv6 form (`::ffff:10.1.2.3`). The error names the
    /// entry (by position) and what is wrong with it.
    pub fn parse<I, T>(entries: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut ranges = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let entry = entry.as_ref().trim();
            let range = parse_entry(entry).map_err(|why| {
                format!("trusted_proxies[{i}]: {why} (expected an IP address or a CIDR range such as 10.0.0.0/8)")
            })?;
            ranges.push(range);
        }
        Ok(Self { ranges })
    }

    /// Whether `ip` is inside one of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.ranges
                    .iter()
                    .map(|r| format!("{}/{}", r.network, r.prefix)),
            )
            .finish()
    }
}

fn parse_entry(entry: &str) -> Result<Range, &'static str> {
    if entry.is_empty() {
        return Err("empty entry");
    }
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (entry, None),
    };
    let network: IpAddr = addr.parse().map_err(|_| "not an IP address")?;
    let network = network.to_canonical();
    let max = if network.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => {
            // Digits only: `u8::from_str` would also take `+8`.
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err("the prefix length is not a number");
            }
            let p: u8 = p.parse().map_err(|_| "the prefix length is not a number")?;
            if p > max {
                return Err("the prefix length is too long for the address");
            }
            // An IPv4-mapped IPv6 range written as such (`::ffff:10.0.0.0/104`)
            // is canonicalised to IPv4 above; keep its prefix meaningful.
            if max == 32 && addr.contains(':') {
                return Err("write IPv4-mapped ranges in IPv4 form");
            }
            p
        }
    };
    Ok(Range {
        network: mask(network, prefix),
        prefix,
    })
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl Range {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.network
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_ranges() {
        let t = TrustedProxies::parse(["127.0.0.1", "10.0.0.0/8", "fd00::/8", " 192.0.2.7/32 "])
            .unwrap();
        assert!(t.contains(ip("127.0.0.1")));
        assert!(!t.contains(ip("127.0.0.2")));
        assert!(t.contains(ip("10.255.0.1")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("fe80::1")));
        assert!(t.contains(ip("192.0.2.7")));
        // IPv4-mapped IPv6 peers (dual-stack sockets) match their IPv4 range.
        assert!(t.contains(ip("::ffff:10.1.2.3")));
        assert!(t.contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn host_bits_are_masked_and_zero_prefix_matches_all_of_a_family() {
        let t = TrustedProxies::parse(["10.1.2.3/8"]).unwrap();
        assert!(t.contains(ip("10.9.9.9")));
        let all4 = TrustedProxies::parse(["0.0.0.0/0"]).unwrap();
        assert!(all4.contains(ip("203.0.113.9")));
        assert!(!all4.contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_entries_are_refused_with_their_position() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/a",
            "example.com",
            "10.0.0/8",
            "::ffff:10.0.0.0/104",
            "10.0.0.0/8/8",
        ] {
            let err = TrustedProxies::parse(["127.0.0.1", bad]).unwrap_err();
            assert!(err.starts_with("trusted_proxies[1]: "), "{bad:?}: {err}");
        }
        assert!(TrustedProxies::none().is_empty());
        assert!(!TrustedProxies::none().contains(ip("127.0.0.1")));
    }
}
