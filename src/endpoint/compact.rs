//! Keeping pushed parameters out of the browser.
//!
//! A legacy authorization endpoint that sends the browser to a login page
//! usually puts the URL it received into the redirect (`/login?return_to=
//! /authorize?client_id=..&code_challenge=..&state=..`), which hands the
//! whole pushed request back to the front channel (M-3). For responses to a
//! request in flow, the layer rewrites such embedded URLs in `Location` and
//! `Refresh` headers to the compact `authorize_path?client_id=..&request_uri=..`,
//! which the same browser can re-enter. HTML bodies are never rewritten.

use std::borrow::Cow;

use crate::params::{decode, Params};
use crate::RequestUri;

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    push_component(&mut out, s);
    out
}

/// Appends `s` percent-encoded (all but RFC 3986 unreserved characters).
pub(crate) fn push_component(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// `{authorize_path}?client_id=..&request_uri=..`, the compact form of a
/// flow's request, built in one allocation.
pub(crate) fn compact_url(authorize_path: &str, client_id: &str, uri: &RequestUri) -> String {
    let mut out = String::with_capacity(
        authorize_path.len() + client_id.len() * 3 + RequestUri::URN_LEN + 40,
    );
    out.push_str(authorize_path);
    out.push_str("?client_id=");
    push_component(&mut out, client_id);
    out.push_str("&request_uri=");
    let start = out.len();
    uri.push_to(&mut out);
    // The URN is ASCII; only its `:` need escaping.
    let urn = out.split_off(start);
    push_component(&mut out, &urn);
    out
}

/// RFC 3986 §3.1: the length of the scheme `url` starts with
/// (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` before a `:`). A `:`
/// after the first `/`, `?` or `#` is not a scheme's: it belongs to a
/// path, a query (`?redirect_uri=https://..`) or a fragment.
fn scheme_len(url: &str) -> Option<usize> {
    let end = url.find([':', '/', '?', '#'])?;
    let scheme = &url.as_bytes()[..end];
    let valid = url.as_bytes()[end] == b':'
        && scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some(end)
}

/// The part of a URL before its path: `scheme://authority`, `//authority`,
/// `scheme:`, or empty for a relative reference.
fn split_origin(url: &str) -> (&str, &str) {
    let authority = match scheme_len(url) {
        Some(n) if url[n + 1..].starts_with("//") => n + 3,
        Some(n) => return url.split_at(n + 1),
        None if url.starts_with("//") => 2,
        None => return ("", url),
    };
    let end = url[authority..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |j| authority + j);
    url.split_at(end)
}

/// If `url` is an authorization request of this flow in expanded form,
/// its compact replacement.
fn compact_if_expanded(
    url: &str,
    authorize_path: &str,
    client_id: &str,
    compact: &str,
) -> Option<String> {
    let (origin, rest) = split_origin(url);
    let (path_query, fragment) = rest
        .split_once('#')
        .map_or((rest, None), |(a, f)| (a, Some(f)));
    let (path, query) = path_query.split_once('?')?;
    if path.strip_suffix('/').unwrap_or(path) != authorize_path {
        return None;
    }
    let params = Params::parse(query.as_bytes()).ok()?;
    if params.get("client_id") != Some(client_id) || params.contains("request_uri") {
        return None;
    }
    let mut out = format!("{origin}{path}?{compact}");
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Some(out)
}

/// Rewrites a `Location` value that is, or embeds as a query parameter
/// value (percent-encoded once or twice), the expanded authorization
/// request of this flow. `None` when there is nothing to rewrite.
pub(crate) fn compact_location(
    location: &str,
    authorize_path: &str,
    client_id: &str,
    compact: &str,
) -> Option<String> {
    if let Some(direct) = compact_if_expanded(location, authorize_path, client_id, compact) {
        return Some(direct);
    }
    let (head, fragment) = location
        .split_once('#')
        .map_or((location, None), |(a, f)| (a, Some(f)));
    let (base, query) = head
        .split_once('?')
        .map_or((head, None), |(b, q)| (b, Some(q)));
    let new_query =
        query.and_then(|q| compact_query(q, authorize_path, client_id, compact, NESTING));
    // Hash-routed login pages carry the return URL in the fragment
    // (`/#/login?redirect=..`, `/login#return_to=..`).
    let new_fragment = fragment.and_then(|f| {
        let (route, q) = f.split_once('?').map_or(("", f), |(r, q)| (r, q));
        let sep = if route.is_empty() && !f.starts_with('?') {
            ""
        } else {
            "?"
        };
        compact_query(q, authorize_path, client_id, compact, NESTING)
            .map(|nq| format!("{route}{sep}{nq}"))
    });
    if new_query.is_none() && new_fragment.is_none() {
        return None;
    }
    let mut out = String::with_capacity(location.len());
    out.push_str(base);
    if let Some(q) = new_query.as_deref().or(query) {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = new_fragment.as_deref().or(fragment) {
        out.push('#');
        out.push_str(f);
    }
    Some(out)
}

/// How many levels a query value may nest another query that holds the
/// request (`return=next%3Dhttps%253A..`): a bound on the work per header.
const NESTING: u8 = 2;

/// Rewrites the values of `query` that hold the expanded request.
fn compact_query(
    query: &str,
    authorize_path: &str,
    client_id: &str,
    compact: &str,
    depth: u8,
) -> Option<String> {
    let mut out = String::with_capacity(query.len());
    let mut changed = false;
    let mut start = 0;
    for segment in query.split('&') {
        let segment_start = start;
        start += segment.len() + 1;
        if segment_start > 0 {
            out.push('&');
        }
        let Some((name, value)) = segment.split_once('=') else {
            out.push_str(segment);
            continue;
        };
        if value.contains('?') {
            // Put in without encoding, the URL runs to the end of the
            // query, its `&`s and all.
            let raw = &query[segment_start + name.len() + 1..];
            if let Some(url) = compact_if_expanded(raw, authorize_path, client_id, compact) {
                out.push_str(name);
                out.push('=');
                out.push_str(&url);
                return Some(out);
            }
        }
        match compact_value(value, authorize_path, client_id, compact, depth) {
            Some(new_value) => {
                changed = true;
                out.push_str(name);
                out.push('=');
                out.push_str(&new_value);
            }
            None => out.push_str(segment),
        }
    }
    changed.then_some(out)
}

/// A query value holding the expanded request, encoded once or twice, or
/// a query that holds it (up to `depth` levels).
fn compact_value(
    value: &str,
    authorize_path: &str,
    client_id: &str,
    compact: &str,
    depth: u8,
) -> Option<String> {
    let once = decode(value).ok()?;
    if let Some(url) = compact_if_expanded(&once, authorize_path, client_id, compact) {
        return Some(encode_component(&url));
    }
    if depth > 0 && once.contains('=') {
        if let Some(q) = compact_query(&once, authorize_path, client_id, compact, depth - 1) {
            return Some(encode_component(&q));
        }
    }
    let twice = decode(&once).ok()?;
    let url = compact_if_expanded(&twice, authorize_path, client_id, compact)?;
    Some(encode_component(&encode_component(&url)))
}

/// Rewrites the `url=` part of a `Refresh` header value.
pub(crate) fn compact_refresh(
    refresh: &str,
    authorize_path: &str,
    client_id: &str,
    compact: &str,
) -> Option<String> {
    let (prefix, url) = split_refresh(refresh)?;
    let new = compact_location(url, authorize_path, client_id, compact)?;
    Some(format!("{prefix}{new}"))
}

/// A `Refresh` value split into everything before its URL, and the URL, as
/// browsers read it (the HTML "shared declarative refresh steps"): a delay,
/// then `;` or `,`, then optionally `url` and `=` (any case, spaces around),
/// then the URL, optionally quoted. `None` for a delay alone.
fn split_refresh(refresh: &str) -> Option<(&str, &str)> {
    let b = refresh.as_bytes();
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut i = 0;
    ws(&mut i);
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    ws(&mut i);
    if i < b.len() && (b[i] == b';' || b[i] == b',') {
        i += 1;
    }
    ws(&mut i);
    if b.len() >= i + 3 && b[i..i + 3].eq_ignore_ascii_case(b"url") {
        let mut j = i + 3;
        ws(&mut j);
        if b.get(j) == Some(&b'=') {
            i = j + 1;
            ws(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
        i += 1;
    }
    let url = refresh[i..].trim_end().trim_end_matches(['"', '\'']);
    (!url.is_empty()).then(|| (&refresh[..i], url))
}

/// The URL a `Refresh` header sends the browser to.
pub(crate) fn refresh_url(refresh: &str) -> Option<&str> {
    split_refresh(refresh).map(|(_, url)| url)
}

/// Whether `location` sends the browser to the pushed `redirect_uri`.
///
/// The authorization server only sends the browser to a client's
/// `redirect_uri` to deliver the authorization response, whatever it
/// carries (`code`, `error`, a JARM `response`, fragment tokens, or only
/// `state` for `response_type=none`), so any such redirect ends the flow.
/// Both URLs are compared in their RFC 3986 §6.2.2 / §6.2.3 normal form, so
/// that a server which rebuilds the URL (`HTTPS://C.Example:443` for
/// `https://c.example`, `/` for an empty path, `%2f` for `%2F`) still ends
/// the flow; a different scheme, userinfo, host, port or path never matches.
pub(crate) fn is_authorization_response(location: &str, redirect_uri: &str) -> bool {
    if let Some(rest) = location.strip_prefix(redirect_uri) {
        if continues_redirect_uri(rest, redirect_uri) {
            return true;
        }
    }
    let (Some((loc_base, loc_rest)), Some((cb_base, cb_rest))) =
        (normalize(location), normalize(redirect_uri))
    else {
        return false;
    };
    if loc_base != cb_base {
        return false;
    }
    let (loc_rest, cb_rest) = (normalize_hex(loc_rest), normalize_hex(cb_rest));
    loc_rest
        .strip_prefix(cb_rest.as_ref())
        .is_some_and(|rest| continues_redirect_uri(rest, &cb_rest))
}

/// Whether `rest`, what follows the redirect URI in a URL, is nothing, or
/// its query or fragment.
fn continues_redirect_uri(rest: &str, redirect_uri: &str) -> bool {
    match rest.chars().next() {
        None | Some('?') | Some('#') => true,
        // The redirect URI may already have a query (OA-3): parameters are
        // appended with `&`.
        Some('&') => redirect_uri.contains('?'),
        _ => false,
    }
}

/// An absolute URL split into its normalised `scheme://authority/path`
/// (RFC 3986 §6.2.2.1 case, §6.2.2.2 hex case, §6.2.3 default port and
/// empty path) and the rest, from its `?` or `#` on. `None` for a relative
/// reference or an authority that is not one.
fn normalize(url: &str) -> Option<(String, &str)> {
    let n = scheme_len(url)?;
    let scheme = url[..n].to_ascii_lowercase();
    let after = &url[n + 1..];
    let end = after.find(['?', '#']).unwrap_or(after.len());
    let (hier, rest) = after.split_at(end);
    let mut out = String::with_capacity(url.len());
    out.push_str(&scheme);
    out.push(':');
    let path = match hier.strip_prefix("//") {
        Some(auth_path) => {
            let slash = auth_path.find('/').unwrap_or(auth_path.len());
            let (authority, path) = auth_path.split_at(slash);
            out.push_str("//");
            push_authority(&mut out, &scheme, authority)?;
            if path.is_empty() {
                "/"
            } else {
                path
            }
        }
        None => hier,
    };
    out.push_str(&normalize_hex(&remove_dot_segments(path)));
    Some((out, rest))
}

/// RFC 3986 §5.2.4, for paths (`/x/../cb` is `/cb`).
fn remove_dot_segments(path: &str) -> Cow<'_, str> {
    if !path.split('/').any(|s| s == "." || s == "..") {
        return Cow::Borrowed(path);
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    Cow::Owned(out.join("/"))
}

/// RFC 3986 §5.2: a `Location` that is a reference relative to the
/// authorization server (`/cb?code=..`, `//c.example/cb?code=..`) resolved
/// against its origin, the configured issuer's; unchanged without one.
pub(crate) fn resolve_location<'a>(location: &'a str, origin: Option<&str>) -> Cow<'a, str> {
    let Some(origin) = origin else {
        return Cow::Borrowed(location);
    };
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = origin.split_once(':').map_or("https", |(s, _)| s);
        return Cow::Owned(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Cow::Owned(format!("{origin}{location}"));
    }
    Cow::Borrowed(location)
}

/// `userinfo@host:port` with the host in lower case and the port only
/// when it is not the scheme's default. Userinfo is case-sensitive.
fn push_authority(out: &mut String, scheme: &str, authority: &str) -> Option<()> {
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    // An IPv6 literal holds `:` too: the port follows its `]`.
    let host_end = if host_port.starts_with('[') {
        host_port.find(']')? + 1
    } else {
        host_port.find(':').unwrap_or(host_port.len())
    };
    let (host, port) = host_port.split_at(host_end);
    let port = match port.strip_prefix(':') {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 5 => {
            Some(p.parse::<u32>().ok()?)
        }
        Some(_) => return None,
    };
    let default = match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    };
    if let Some(u) = userinfo {
        out.push_str(&normalize_hex(u));
        out.push('@');
    }
    out.push_str(&normalize_hex(&host.to_ascii_lowercase()));
    if let Some(p) = port.filter(|&p| Some(p) != default) {
        out.push(':');
        super::push_decimal(out, u64::from(p));
    }
    Some(())
}

/// RFC 3986 §6.2.2.1: the hex digits of percent-encodings in upper case.
fn normalize_hex(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    let lower_hex = |i: usize| {
        b[i] == b'%'
            && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
            && (b[i + 1].is_ascii_lowercase() || b[i + 2].is_ascii_lowercase())
    };
    if !(0..b.len()).any(lower_hex) {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if lower_hex(i) {
            out.extend([
                b'%',
                b[i + 1].to_ascii_uppercase(),
                b[i + 2].to_ascii_uppercase(),
            ]);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    // Only ASCII letters changed: still UTF-8, so nothing is lost.
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "client_id=demo&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aabc";
    const EXPANDED: &str =
        "/authorize?client_id=demo&response_type=code&code_challenge=XYZ&state=s1";

    #[test]
    fn m3_direct_redirect_to_expanded_authorize_url() {
        let out = compact_location(
            &format!("https://as.example{EXPANDED}"),
            "/authorize",
            "demo",
            C,
        )
        .unwrap();
        assert_eq!(out, format!("https://as.example/authorize?{C}"));
    }

    #[test]
    fn m3_return_to_encoded_once_and_twice() {
        let once = format!("/login?return_to={}&x=1", encode_component(EXPANDED));
        let out = compact_location(&once, "/authorize", "demo", C).unwrap();
        assert_eq!(
            out,
            format!(
                "/login?return_to={}&x=1",
                encode_component(&format!("/authorize?{C}"))
            )
        );
        assert!(!out.contains("XYZ") && !out.contains("s1"));

        let twice = format!(
            "https://idp.example/sso?next={}",
            encode_component(&encode_component(&format!("http://as.example{EXPANDED}")))
        );
        let out = compact_location(&twice, "/authorize", "demo", C).unwrap();
        assert!(!out.contains("XYZ"));
        let inner = decode(&decode(out.split_once("next=").unwrap().1).unwrap())
            .unwrap()
            .into_owned();
        assert_eq!(inner, format!("http://as.example/authorize?{C}"));
    }

    #[test]
    fn m3_a_return_url_in_the_fragment_is_compacted() {
        for location in [
            format!("/#/login?redirect={}", encode_component(EXPANDED)),
            format!("/login#return_to={}", encode_component(EXPANDED)),
            format!("/login?x=1#return_to={}&y=2", encode_component(EXPANDED)),
        ] {
            let out = compact_location(&location, "/authorize", "demo", C).unwrap();
            assert!(!out.contains("XYZ") && !out.contains("s1"), "{out}");
            assert!(
                out.contains(&encode_component(&format!("/authorize?{C}"))),
                "{out}"
            );
        }
        let out = compact_location(
            &format!("/#/login?redirect={}", encode_component(EXPANDED)),
            "/authorize",
            "demo",
            C,
        )
        .unwrap();
        assert!(out.starts_with("/#/login?redirect="), "{out}");
    }

    #[test]
    fn unrelated_locations_are_left_alone() {
        assert_eq!(
            compact_location("/login?return_to=%2Fhome", "/authorize", "demo", C),
            None
        );
        assert_eq!(
            compact_location(
                "https://c.example/cb?code=1&state=s1",
                "/authorize",
                "demo",
                C
            ),
            None
        );
        // Another client's request, or an already compact one.
        let other = format!(
            "/login?return_to={}",
            encode_component("/authorize?client_id=other&state=s")
        );
        assert_eq!(compact_location(&other, "/authorize", "demo", C), None);
        let compact = format!(
            "/login?return_to={}",
            encode_component(&format!("/authorize?{C}"))
        );
        assert_eq!(compact_location(&compact, "/authorize", "demo", C), None);
    }

    #[test]
    fn scheme_relative_url_with_multibyte_authority_does_not_panic() {
        // `//a€` has no path: the origin is the whole string.
        assert_eq!(split_origin("//a\u{20ac}"), ("//a\u{20ac}", ""));
        assert_eq!(
            compact_location("/login?h=%2F%2Fa%E2%82%AC", "/authorize", "demo", C),
            None
        );
    }

    #[test]
    fn compact_url_encodes_both_values() {
        let uri = RequestUri::generate();
        let url = compact_url("/authorize", "c 1/é", &uri);
        let expected = format!(
            "/authorize?client_id={}&request_uri={}",
            encode_component("c 1/é"),
            encode_component(&uri.to_string())
        );
        assert_eq!(url, expected);
        assert!(url.starts_with("/authorize?client_id=c%201%2F%C3%A9&request_uri=urn%3Aietf%3A"));
    }

    #[test]
    fn refresh_header() {
        let r = format!("0; url=/login?return_to={}", encode_component(EXPANDED));
        let out = compact_refresh(&r, "/authorize", "demo", C).unwrap();
        assert!(out.starts_with("0; url=/login?return_to=") && !out.contains("XYZ"));
        assert_eq!(
            refresh_url("5; URL='https://c.example/cb?code=1'"),
            Some("https://c.example/cb?code=1")
        );
        assert_eq!(refresh_url("5"), None);
    }

    #[test]
    fn refresh_is_read_as_browsers_read_it() {
        for (value, url) in [
            ("0; url=/login?a=1", "/login?a=1"),
            ("0;URL = '/login?a=1'", "/login?a=1"),
            ("0;/login?a=1", "/login?a=1"),
            (
                "5, \"https://c.example/cb?code=1\"",
                "https://c.example/cb?code=1",
            ),
            (
                "0; url=/p?x=1&url=https://c.example/cb",
                "/p?x=1&url=https://c.example/cb",
            ),
        ] {
            assert_eq!(refresh_url(value), Some(url), "{value}");
        }
        assert_eq!(refresh_url("5"), None);
        // The URL is the page, not a `url=` inside its query.
        assert!(!is_authorization_response(
            refresh_url("0;/page?url=https://c.example/cb").unwrap(),
            "https://c.example/cb"
        ));
    }

    #[test]
    fn relative_and_dot_segment_locations_to_the_redirect_uri_are_recognised() {
        let cb = "https://as.example/app/cb";
        let origin = Some("https://as.example");
        for location in [
            "/app/cb?code=1",
            "//as.example/app/cb?code=1",
            "/app/x/../cb?code=1",
        ] {
            let resolved = resolve_location(location, origin);
            assert!(is_authorization_response(&resolved, cb), "{location}");
        }
        assert!(is_authorization_response(
            "https://as.example/app/./cb#code=1",
            cb
        ));
        for location in [
            "/app/cb2?code=1",
            "/login?return_to=/app/cb",
            "/app/cb/../x?code=1",
        ] {
            let resolved = resolve_location(location, origin);
            assert!(!is_authorization_response(&resolved, cb), "{location}");
        }
        // Without a configured issuer, a relative Location is not resolved.
        assert!(!is_authorization_response(
            &resolve_location("/app/cb?code=1", None),
            cb
        ));
    }

    #[test]
    fn recognises_the_authorization_response() {
        let cb = "https://c.example/cb";
        assert!(is_authorization_response(
            "https://c.example/cb?code=abc&state=s",
            cb
        ));
        assert!(is_authorization_response(
            "https://c.example/cb?state=s&error=access_denied",
            cb
        ));
        assert!(is_authorization_response(
            "https://c.example/cb#code=abc",
            cb
        ));
        assert!(!is_authorization_response(
            "https://c.example/cb2?code=abc",
            cb
        ));
        // Any response, e.g. JARM or response_type=none.
        assert!(is_authorization_response(
            "https://c.example/cb?state=s",
            cb
        ));
        assert!(is_authorization_response(
            "https://c.example/cb?response=eyJ",
            cb
        ));
        assert!(is_authorization_response("https://c.example/cb", cb));
        // Not the client's URI.
        assert!(!is_authorization_response(
            "https://c.example/cb.evil.example/?code=1",
            cb
        ));
        assert!(!is_authorization_response(
            "https://c.example/cbx?code=1",
            cb
        ));
        assert!(!is_authorization_response(
            "https://c.example/cb&code=1",
            cb
        ));
        assert!(is_authorization_response(
            "https://c.example/cb?x=1&code=abc",
            "https://c.example/cb?x=1"
        ));
    }

    /// A pushed request whose values hold unencoded URLs, as a client
    /// that pushes `-d redirect_uri=http://..` sends it.
    const UNENCODED: [&str; 4] = [
        "/authorize?client_id=demo&redirect_uri=http://c.example/cb&code_challenge=XYZ&state=s1",
        "/authorize?client_id=demo&resource=https://rs.example/api&code_challenge=XYZ&state=s1",
        "/authorize?client_id=demo&code_challenge=XYZ&x_return=app://open?y=1&state=s1",
        "/authorize?client_id=demo&code_challenge=XYZ&state=s1&login_hint=mailto:a@b.example",
    ];

    #[test]
    fn m3_a_scheme_is_only_a_scheme_before_the_first_slash_question_mark_or_hash() {
        assert_eq!(scheme_len("https://as.example/x"), Some(5));
        assert_eq!(scheme_len("com.example.app+x-1:/cb"), Some(19));
        assert_eq!(scheme_len("/authorize?r=http://x"), None);
        assert_eq!(scheme_len("authorize?r=http://x"), None);
        assert_eq!(scheme_len("a#http://x"), None);
        assert_eq!(scheme_len("1http://x"), None);
        assert_eq!(scheme_len(":x"), None);
        assert_eq!(
            split_origin("/authorize?r=http://x/y"),
            ("", "/authorize?r=http://x/y")
        );
        assert_eq!(
            split_origin("https://as.example?r=http://x/y"),
            ("https://as.example", "?r=http://x/y")
        );
        assert_eq!(
            split_origin("//as.example/authorize?r=http://x/y"),
            ("//as.example", "/authorize?r=http://x/y")
        );
        assert_eq!(
            split_origin("https:/authorize?r=http://x"),
            ("https:", "/authorize?r=http://x")
        );
    }

    #[test]
    fn m3_pushed_values_holding_unencoded_urls_are_compacted_in_every_return_url_form() {
        for expanded in UNENCODED {
            for origin in [
                "",
                "https://as.example",
                "//as.example",
                "http://127.0.0.1:3000",
            ] {
                let url = format!("{origin}{expanded}");
                let want = format!("{origin}/authorize?{C}");
                // The authorize URL itself.
                assert_eq!(
                    compact_location(&url, "/authorize", "demo", C).as_deref(),
                    Some(want.as_str()),
                    "{url}"
                );
                // Embedded once and twice.
                let once = format!("/login?return_to={}&x=1", encode_component(&url));
                let out = compact_location(&once, "/authorize", "demo", C).unwrap();
                assert_eq!(
                    out,
                    format!("/login?return_to={}&x=1", encode_component(&want)),
                    "{url}"
                );
                let twice = format!(
                    "https://idp.example/sso?next={}",
                    encode_component(&encode_component(&url))
                );
                let out = compact_location(&twice, "/authorize", "demo", C).unwrap();
                let inner = decode(&decode(out.split_once("next=").unwrap().1).unwrap())
                    .unwrap()
                    .into_owned();
                assert_eq!(inner, want, "{url}");
                // In a Refresh header.
                let refresh = format!("0; url={once}");
                let out = compact_refresh(&refresh, "/authorize", "demo", C).unwrap();
                for leaked in ["XYZ", "s1", "c.example", "rs.example", "app%3A", "mailto"] {
                    assert!(!decode(&out).unwrap().contains(leaked), "{leaked}: {out}");
                }
            }
        }
    }

    #[test]
    fn completion_matches_rfc3986_normalised_forms_of_the_redirect_uri() {
        let cb = "https://c.example/cb";
        for location in [
            "HTTPS://c.example/cb?code=1",
            "https://C.Example/cb?code=1",
            "https://c.example:443/cb?code=1",
            "https://c.example:/cb?code=1",
            "https://c.example:0443/cb#code=1",
        ] {
            assert!(is_authorization_response(location, cb), "{location}");
        }
        // An empty path is `/`; a default port may be dropped too.
        assert!(is_authorization_response(
            "http://c.example/?code=1",
            "http://c.example"
        ));
        assert!(is_authorization_response(
            "http://c.example?code=1",
            "http://C.EXAMPLE:80/"
        ));
        assert!(is_authorization_response(
            "https://c.example/a%2fb?code=1",
            "https://c.example/a%2Fb"
        ));
        assert!(is_authorization_response(
            "https://c.example/cb?x=%c3%a9&code=1",
            "https://c.example/cb?x=%C3%A9"
        ));
        assert!(is_authorization_response(
            "http://[::1]:8080/cb?code=1",
            "http://[::1]:8080/cb"
        ));
        assert!(is_authorization_response(
            "com.example.App:/cb?code=1",
            "com.example.app:/cb"
        ));
    }

    #[test]
    fn completion_never_matches_another_redirect_uri_after_normalising() {
        let cb = "https://c.example/cb";
        for location in [
            // Another path (paths are case-sensitive), host, port, scheme.
            "https://c.example/CB?code=1",
            "https://c.example/cb/?code=1",
            "https://c.example/?code=1",
            "https://c.example.evil/cb?code=1",
            "https://c.example:8443/cb?code=1",
            "https://c.example:443x/cb?code=1",
            "http://c.example/cb?code=1",
            "https://c.example:80/cb?code=1",
            // Userinfo, added or changed.
            "https://u@c.example/cb?code=1",
            "https://c.example@evil.example/cb?code=1",
            // Prefix tricks.
            "https://c.example/cb.evil.example/?code=1",
            "https://c.example/cbx?code=1",
            "https://C.EXAMPLE/cb&code=1",
            "//c.example/cb?code=1",
            "/cb?code=1",
        ] {
            assert!(!is_authorization_response(location, cb), "{location}");
        }
        assert!(!is_authorization_response(
            "https://U@c.example/cb?code=1",
            "https://u@c.example/cb"
        ));
        assert!(!is_authorization_response(
            "https://c.example/cb?X=1&code=1",
            "https://c.example/cb?x=1"
        ));
        assert!(!is_authorization_response(
            "http://c.example:8080/cb?code=1",
            "http://c.example/cb"
        ));
    }

    #[test]
    fn m3_a_query_nested_in_a_value_and_unencoded_return_urls_are_compacted() {
        for expanded in [EXPANDED, UNENCODED[0]] {
            let full = format!("https://as.example{expanded}");
            let want = format!("https://as.example/authorize?{C}");
            // `return` holds a query whose `next` holds the request.
            let nested = format!(
                "https://idp.example/sso?return={}",
                encode_component(&format!("next={}&lang=en", encode_component(&full)))
            );
            let out = compact_location(&nested, "/authorize", "demo", C).unwrap();
            let inner = decode(out.split_once("return=").unwrap().1).unwrap();
            assert_eq!(
                inner,
                format!("next={}&lang=en", encode_component(&want)),
                "{out}"
            );
            // The same, with the request put in the inner query unencoded.
            let raw = format!(
                "https://idp.example/sso?return={}",
                encode_component(&format!("next={full}"))
            );
            let out = compact_location(&raw, "/authorize", "demo", C).unwrap();
            let inner = decode(out.split_once("return=").unwrap().1).unwrap();
            assert_eq!(inner, format!("next={want}"), "{out}");
            // And unencoded in the Location itself.
            let out = compact_location(
                &format!("/login?x=1&return_to={full}"),
                "/authorize",
                "demo",
                C,
            )
            .unwrap();
            assert_eq!(out, format!("/login?x=1&return_to={want}"));
        }
    }
}
