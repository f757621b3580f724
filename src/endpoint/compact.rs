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
fn encode_component(s: &str) -> String {
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

/// The part of a URL before its path: `scheme://authority`, or empty.
fn split_origin(url: &str) -> (&str, &str) {
    if let Some(i) = url.find("://") {
        let after = i + 3;
        let end = url[after..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |j| after + j);
        (&url[..end], &url[end..])
    } else if let Some(rest) = url.strip_prefix("//") {
        let end = rest.find(['/', '?', '#']).map_or(url.len(), |j| j + 2);
        (&url[..end], &url[end..])
    } else {
        ("", url)
    }
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
    let (base, query) = head.split_once('?')?;
    let mut changed = false;
    let mut segments: Vec<Cow<'_, str>> = Vec::new();
    for segment in query.split('&') {
        let Some((name, value)) = segment.split_once('=') else {
            segments.push(Cow::Borrowed(segment));
            continue;
        };
        match compact_value(value, authorize_path, client_id, compact) {
            Some(new_value) => {
                changed = true;
                segments.push(Cow::Owned(format!("{name}={new_value}")));
            }
            None => segments.push(Cow::Borrowed(segment)),
        }
    }
    if !changed {
        return None;
    }
    let mut out = format!("{base}?{}", segments.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Some(out)
}

/// A query value holding the expanded request, encoded once or twice.
fn compact_value(
    value: &str,
    authorize_path: &str,
    client_id: &str,
    compact: &str,
) -> Option<String> {
    let once = decode(value).ok()?;
    if let Some(url) = compact_if_expanded(&once, authorize_path, client_id, compact) {
        return Some(encode_component(&url));
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

/// A `Refresh` value split into everything up to `url=`, and the URL.
fn split_refresh(refresh: &str) -> Option<(&str, &str)> {
    // ASCII case-insensitive search: byte offsets stay valid in `refresh`.
    let i = refresh
        .as_bytes()
        .windows(4)
        .position(|w| w.eq_ignore_ascii_case(b"url="))?
        + 4;
    let url = refresh[i..].trim().trim_matches(|c| c == '"' || c == '\'');
    Some((&refresh[..i], url))
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
pub(crate) fn is_authorization_response(location: &str, redirect_uri: &str) -> bool {
    let Some(rest) = location.strip_prefix(redirect_uri) else {
        return false;
    };
    match rest.chars().next() {
        None | Some('?') | Some('#') => true,
        // The redirect URI may already have a query (OA-3): parameters are
        // appended with `&`.
        Some('&') => redirect_uri.contains('?'),
        _ => false,
    }
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
}
