//! Ordered `application/x-www-form-urlencoded` parameters.
//!
//! RFC 6749 §3.1 forbids repeating a request parameter, and OA-9 asks for
//! malformed percent-encoding and invalid UTF-8 to be rejected rather than
//! repaired, so this parser is strict where general-purpose form decoders are
//! lenient. It never goes through a map (which would silently keep the last
//! duplicate) and remembers each pair's original bytes, so a pushed request
//! can be stored and forwarded byte for byte.

use std::borrow::Cow;
use std::fmt;

/// Parameters that may legitimately appear more than once.
///
/// RFC 8707 §2 allows several `resource` parameters.
const MULTI_VALUED: &[&str] = &["resource"];

/// Why a form could not be parsed.
///
/// ```
/// use tower_par::{Params, ParamsError};
///
/// let err = Params::parse(b"scope=a&scope=b").unwrap_err();
/// assert_eq!(err, ParamsError::Repeated("scope".into()));
/// assert_eq!(err.to_string(), "parameter 'scope' is repeated");
/// assert_eq!(Params::parse(b"state=%zz").unwrap_err(), ParamsError::MalformedEncoding);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamsError {
    /// A `%` not followed by two hexadecimal digits.
    MalformedEncoding,
    /// A name or value that is not UTF-8 once decoded.
    InvalidUtf8,
    /// A parameter that appeared more than once (RFC 6749 §3.1).
    Repeated(String),
    /// A pair without a name, such as `=x`.
    EmptyName,
    /// More parameters than any authorization request has
    /// ([`Params::MAX_PARAMS`]); refused before duplicate checking can
    /// cost quadratic time.
    TooMany,
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedEncoding => f.write_str("malformed percent-encoding"),
            Self::InvalidUtf8 => f.write_str("parameters must be UTF-8"),
            // The name is the client's: shown bounded and printable, since
            // the message reaches JSON errors and the authorization
            // endpoint's HTML page.
            Self::Repeated(name) => write!(f, "parameter '{}' is repeated", sanitized_name(name)),
            Self::EmptyName => f.write_str("parameter without a name"),
            Self::TooMany => write!(f, "more than {} parameters", Params::MAX_PARAMS),
        }
    }
}

impl std::error::Error for ParamsError {}

/// The longest part of a client-chosen name put in an error message.
const SHOWN: usize = 40;

/// A client-chosen name as it may appear in an error message: printable
/// ASCII (others, and the `"` and `\` that OA-7 excludes, shown as `?`),
/// at most 40 characters, then `...`.
pub(crate) fn sanitized_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(SHOWN)
        .map(|c| match c {
            '"' | '\\' => '?',
            c if c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect();
    if name.chars().nth(SHOWN).is_some() {
        out.push_str("...");
    }
    out
}

/// Names the layer looks up on every request, indexed at parse time so a
/// lookup (and the duplicate check) costs one `match` instead of a scan.
/// `resource` is absent on purpose: it may repeat.
const KNOWN: [&str; 19] = [
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "request_uri",
    "request",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "response_mode",
    "grant_type",
    "code",
    "code_verifier",
    "refresh_token",
];

/// Position of `name` in [`KNOWN`].
fn known_slot(name: &str) -> Option<usize> {
    Some(match name {
        "client_id" => 0,
        "response_type" => 1,
        "redirect_uri" => 2,
        "scope" => 3,
        "state" => 4,
        "nonce" => 5,
        "code_challenge" => 6,
        "code_challenge_method" => 7,
        "prompt" => 8,
        "request_uri" => 9,
        "request" => 10,
        "client_secret" => 11,
        "client_assertion" => 12,
        "client_assertion_type" => 13,
        "response_mode" => 14,
        "grant_type" => 15,
        "code" => 16,
        "code_verifier" => 17,
        "refresh_token" => 18,
        _ => return None,
    })
}

/// No pair: the value of an absent entry in the index.
const ABSENT: u16 = u16::MAX;
// Every pair index fits in the index, below ABSENT.
const _: () = assert!(Params::MAX_PARAMS < ABSENT as usize);

/// Where a name or value lives: a slice of the raw input when it needed no
/// decoding (the common case), or of the shared buffer of decoded text.
#[derive(Clone, Copy)]
struct Text {
    start: usize,
    end: usize,
    decoded: bool,
}

#[derive(Clone, Copy)]
struct Pair {
    name: Text,
    value: Text,
    raw: (usize, usize),
}

/// Authorization request parameters in arrival order.
///
/// Parsing follows RFC 6749: a parameter sent without a value is treated as
/// absent (OA-1), a repeated parameter is an error except for the
/// multi-valued `resource` (RFC 8707), and names and values must be
/// well-formed UTF-8 after percent-decoding (RFC 6749 Appendix B).
///
/// ```
/// use tower_par::Params;
///
/// let p = Params::parse(b"response_type=code&scope=openid+profile&state=").unwrap();
/// assert_eq!(p.get("scope"), Some("openid profile"));
/// assert_eq!(p.get("state"), None); // empty value = absent
/// assert!(Params::parse(b"scope=a&scope=b").is_err());
/// ```
#[derive(Clone, Default)]
pub struct Params<'a> {
    /// The input, borrowed: parsing copies only what needs decoding.
    raw: &'a str,
    // Every decoded name and value, back to back: one buffer instead of a
    // `String` per pair keeps parsing to two allocations in the common
    // case.
    decoded: String,
    pairs: Vec<Pair>,
    /// Index into `pairs` of each [`KNOWN`] name, or [`ABSENT`].
    known: [u16; KNOWN.len()],
    /// Whether every byte may appear as it is in a URL query.
    query_safe: bool,
}

impl<'a> Params<'a> {
    /// The most parameters a form may have.
    pub const MAX_PARAMS: usize = 256;

    /// Parses a form body or a query string, borrowing it.
    pub fn parse(input: &'a [u8]) -> Result<Self, ParamsError> {
        let raw = std::str::from_utf8(input).map_err(|_| ParamsError::InvalidUtf8)?;
        let mut p = Self {
            raw,
            decoded: String::new(),
            pairs: Vec::with_capacity(8),
            known: [ABSENT; KNOWN.len()],
            query_safe: true,
        };
        let mut scratch = Vec::new();
        // One pass over the bytes: segment bounds, the first `=`, and
        // whether the name or the value has anything to decode.
        let bytes = raw.as_bytes();
        let (mut start, mut eq) = (0, None);
        let (mut name_coded, mut value_coded) = (false, false);
        let mut unsafe_bytes = false;
        for i in 0..=bytes.len() {
            let class = bytes.get(i).map_or(AMP, |&b| CLASS[usize::from(b)]);
            if class == PLAIN {
                continue;
            }
            if class & UNSAFE != 0 {
                unsafe_bytes = true;
            }
            if class & AMP != 0 {
                if i > start {
                    let value_at = eq.map_or(i, |e| e + 1);
                    let name_end = eq.unwrap_or(i);
                    p.segment(
                        raw,
                        (start, i),
                        name_end,
                        value_at,
                        [name_coded, value_coded],
                        &mut scratch,
                    )?;
                }
                (start, eq) = (i + 1, None);
                (name_coded, value_coded) = (false, false);
            } else if class & EQ != 0 && eq.is_none() {
                eq = Some(i);
            } else if class & CODED != 0 {
                if eq.is_none() {
                    name_coded = true;
                } else {
                    value_coded = true;
                }
            }
        }
        p.query_safe = !unsafe_bytes;
        Ok(p)
    }

    /// Adds the pair `raw[seg.0..seg.1]`, whose name ends at `name_end` and
    /// whose value starts at `value_at`.
    fn segment(
        &mut self,
        raw: &str,
        seg: (usize, usize),
        name_end: usize,
        value_at: usize,
        coded: [bool; 2],
        scratch: &mut Vec<u8>,
    ) -> Result<(), ParamsError> {
        if name_end == seg.0 {
            return Err(ParamsError::EmptyName);
        }
        let name = self.text_at(raw, seg.0, name_end, coded[0], scratch)?;
        let value = self.text_at(raw, value_at, seg.1, coded[1], scratch)?;
        if value.start == value.end {
            // OA-1: a parameter without a value is treated as omitted.
            return Ok(());
        }
        if self.pairs.len() >= Self::MAX_PARAMS {
            return Err(ParamsError::TooMany);
        }
        let slot = known_slot(self.text_in(raw, name));
        let repeated = match slot {
            Some(k) => {
                let seen = self.known[k] != ABSENT;
                // Pair indices fit: MAX_PARAMS < ABSENT.
                self.known[k] = self.pairs.len() as u16;
                seen
            }
            None => {
                let new_name = self.text_in(raw, name);
                !MULTI_VALUED.contains(&new_name)
                    && self
                        .pairs
                        .iter()
                        .any(|q| self.text_in(raw, q.name) == new_name)
            }
        };
        if repeated {
            return Err(ParamsError::Repeated(self.text_in(raw, name).to_owned()));
        }
        self.pairs.push(Pair {
            name,
            value,
            raw: seg,
        });
        Ok(())
    }

    /// `raw[start..end]`, decoded into `self.decoded` when `coded`.
    fn text_at(
        &mut self,
        raw: &str,
        start: usize,
        end: usize,
        coded: bool,
        scratch: &mut Vec<u8>,
    ) -> Result<Text, ParamsError> {
        if !coded {
            return Ok(Text {
                start,
                end,
                decoded: false,
            });
        }
        if self.decoded.capacity() == 0 {
            // Decoded text is never longer than the input: one allocation.
            self.decoded.reserve(raw.len());
        }
        let at = self.decoded.len();
        decode_into(&raw[start..end], &mut self.decoded, scratch)?;
        Ok(Text {
            start: at,
            end: self.decoded.len(),
            decoded: true,
        })
    }

    fn text_in<'s>(&'s self, raw: &'s str, t: Text) -> &'s str {
        if t.decoded {
            &self.decoded[t.start..t.end]
        } else {
            &raw[t.start..t.end]
        }
    }

    fn text(&self, t: Text) -> &str {
        self.text_in(self.raw, t)
    }

    /// The value of a single-valued parameter, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        if let Some(k) = known_slot(name) {
            let i = self.known[k];
            return (i != ABSENT).then(|| self.text(self.pairs[usize::from(i)].value));
        }
        self.pairs
            .iter()
            .find(|p| self.text(p.name) == name)
            .map(|p| self.text(p.value))
    }

    /// Every value of `name`, in arrival order (for `resource`).
    pub fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.pairs
            .iter()
            .filter(move |p| self.text(p.name) == name)
            .map(|p| self.text(p.value))
    }

    /// Whether `name` is present with a non-empty value.
    pub fn contains(&self, name: &str) -> bool {
        if let Some(k) = known_slot(name) {
            return self.known[k] != ABSENT;
        }
        self.pairs.iter().any(|p| self.text(p.name) == name)
    }

    /// All `(name, value)` pairs in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .map(|p| (self.text(p.name), self.text(p.value)))
    }

    /// Length of the form as received.
    pub(crate) fn raw_len(&self) -> usize {
        self.raw.len()
    }

    /// Number of (non-empty) parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no (non-empty) parameters.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Re-encodes the parameters for which `keep` returns true, using each
    /// pair's original bytes, so values (JSON in `claims`, for example) reach
    /// the receiver exactly as they were sent.
    pub fn encode_filtered(&self, keep: impl FnMut(&str) -> bool) -> String {
        let mut out = String::with_capacity(self.raw.len());
        self.encode_filtered_into(&mut out, keep);
        out
    }

    /// Like [`encode_filtered`](Self::encode_filtered), appending to `out`
    /// (after a `&` when `out` is not empty).
    pub fn encode_filtered_into(&self, out: &mut String, mut keep: impl FnMut(&str) -> bool) {
        for p in &self.pairs {
            let name = self.text(p.name);
            if !keep(name) {
                continue;
            }
            let raw = &self.raw[p.raw.0..p.raw.1];
            if self.query_safe || raw.bytes().all(query_safe) {
                if !out.is_empty() {
                    out.push('&');
                }
                out.push_str(raw);
            } else {
                // A lenient client sent characters that cannot appear in a
                // URL query: re-encode the decoded pair (same value).
                append_pair(out, name, self.text(p.value));
            }
        }
    }
}

impl fmt::Debug for Params<'_> {
    // Parameter values can carry personal data (login_hint, claims): only
    // the names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Params")
            .field(
                "names",
                &self
                    .pairs
                    .iter()
                    .map(|p| self.text(p.name))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Appends `name=value` to a form string, percent-encoding both.
pub(crate) fn append_pair(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    // serde_urlencoded cannot fail on a pair of strings.
    if let Ok(encoded) = serde_urlencoded::to_string([(name, value)]) {
        out.push_str(&encoded);
    }
}

// Byte classes for the single-pass parser.
const PLAIN: u8 = 0;
const AMP: u8 = 1;
const EQ: u8 = 2;
const CODED: u8 = 4;
const UNSAFE: u8 = 8;

const CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut b = 0;
    while b < 256 {
        if !query_safe(b as u8) {
            t[b] = UNSAFE;
        }
        b += 1;
    }
    t[b'&' as usize] = AMP;
    t[b'=' as usize] = EQ;
    t[b'%' as usize] = CODED;
    t[b'+' as usize] = CODED;
    t
};

/// Bytes that may appear as they are in a URL query and a form body.
/// `;` is excluded too: some parsers split pairs on it, which would turn
/// one checked value into a second, unchecked parameter.
const fn query_safe(b: u8) -> bool {
    b.is_ascii_graphic()
        && !matches!(
            b,
            b'"' | b'#'
                | b';'
                | b'<'
                | b'>'
                | b'['
                | b'\\'
                | b']'
                | b'^'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
        )
}

/// Strict `application/x-www-form-urlencoded` decoding of one name or value.
pub(crate) fn decode(s: &str) -> Result<Cow<'_, str>, ParamsError> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    decode_into(s, &mut out, &mut Vec::new())?;
    Ok(Cow::Owned(out))
}

/// Percent- and `+`-decodes `s`, appending to `out`. Plain runs are copied
/// as they are and ASCII escapes pushed as characters; only escapes of
/// non-ASCII bytes go through `scratch`, a run at a time, to be checked as
/// UTF-8 (every byte of an encoded character is an escape, so a character
/// never spans two runs).
fn decode_into(s: &str, out: &mut String, scratch: &mut Vec<u8>) -> Result<(), ParamsError> {
    let bytes = s.as_bytes();
    let (mut i, mut plain) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push_str(&s[plain..i]);
                out.push(' ');
                i += 1;
            }
            b'%' => {
                out.push_str(&s[plain..i]);
                let b = escape_at(bytes, i)?;
                if b.is_ascii() {
                    out.push(char::from(b));
                    i += 3;
                } else {
                    scratch.clear();
                    while bytes.get(i) == Some(&b'%') {
                        let b = escape_at(bytes, i)?;
                        if b.is_ascii() {
                            break;
                        }
                        scratch.push(b);
                        i += 3;
                    }
                    let Ok(text) = std::str::from_utf8(scratch) else {
                        // As if the whole value had been decoded first: a
                        // malformed escape anywhere in it is the error.
                        let rest = &bytes[i..];
                        let malformed =
                            (0..rest.len()).any(|j| rest[j] == b'%' && escape_at(rest, j).is_err());
                        return Err(if malformed {
                            ParamsError::MalformedEncoding
                        } else {
                            ParamsError::InvalidUtf8
                        });
                    };
                    out.push_str(text);
                }
            }
            _ => {
                i += 1;
                continue;
            }
        }
        plain = i;
    }
    out.push_str(&s[plain..]);
    Ok(())
}

/// The byte encoded by the escape at `bytes[i]` (a `%`).
fn escape_at(bytes: &[u8], i: usize) -> Result<u8, ParamsError> {
    let hi = bytes.get(i + 1).and_then(|b| hex(*b));
    let lo = bytes.get(i + 2).and_then(|b| hex(*b));
    match (hi, lo) {
        (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
        _ => Err(ParamsError::MalformedEncoding),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_raw_bytes() {
        let body = b"b=2&claims=%7B%22a%22%3A1%7D&a=1&resource=x&resource=y";
        let p = Params::parse(body).unwrap();
        let names: Vec<_> = p.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["b", "claims", "a", "resource", "resource"]);
        assert_eq!(p.get("claims"), Some("{\"a\":1}"));
        assert_eq!(p.get_all("resource").collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(
            p.encode_filtered(|n| n != "a"),
            "b=2&claims=%7B%22a%22%3A1%7D&resource=x&resource=y"
        );
    }

    #[test]
    fn unsafe_raw_bytes_are_re_encoded() {
        let p = Params::parse("claims={\"a\":\"é\"}&x=1".as_bytes()).unwrap();
        let out = p.encode_filtered(|_| true);
        assert!(out.bytes().all(query_safe), "{out}");
        let again = Params::parse(out.as_bytes()).unwrap();
        assert_eq!(again.get("claims"), Some("{\"a\":\"é\"}"));
        assert!(out.ends_with("&x=1"));
    }

    #[test]
    fn oa1_repeated_parameter_is_rejected_except_resource() {
        assert_eq!(
            Params::parse(b"scope=a&x=1&scope=b").unwrap_err(),
            ParamsError::Repeated("scope".into())
        );
        assert!(Params::parse(b"resource=a&resource=b").is_ok());
    }

    #[test]
    fn oa1_empty_value_is_absent_and_does_not_count_as_repeat() {
        let p = Params::parse(b"state=&state=s1&x").unwrap();
        assert_eq!(p.get("state"), Some("s1"));
        assert!(!p.contains("x"));
    }

    #[test]
    fn oa9_malformed_encoding_and_bad_utf8_are_rejected() {
        assert_eq!(
            Params::parse(b"a=%zz").unwrap_err(),
            ParamsError::MalformedEncoding
        );
        assert_eq!(
            Params::parse(b"a=%4").unwrap_err(),
            ParamsError::MalformedEncoding
        );
        assert_eq!(
            Params::parse(b"a=%ff").unwrap_err(),
            ParamsError::InvalidUtf8
        );
        assert_eq!(
            Params::parse(b"a=\xff").unwrap_err(),
            ParamsError::InvalidUtf8
        );
        assert_eq!(Params::parse(b"=x").unwrap_err(), ParamsError::EmptyName);
    }

    #[test]
    fn non_ascii_escapes_are_decoded_and_checked_run_by_run() {
        // Two-, three- and four-byte characters, next to ASCII escapes,
        // `+` and plain text, in names and values.
        let p = Params::parse(b"n%C3%A9=caf%C3%A9+%E2%82%AC%2F%F0%9F%94%91x&r%C3%A9%41=1").unwrap();
        assert_eq!(p.get("n\u{e9}"), Some("caf\u{e9} \u{20ac}/\u{1f511}x"));
        assert_eq!(p.get("r\u{e9}A"), Some("1"));
        // Raw UTF-8 is kept as it is.
        let p = Params::parse("a=\u{e9}%20\u{e9}".as_bytes()).unwrap();
        assert_eq!(p.get("a"), Some("\u{e9} \u{e9}"));
        // A character cut short by an ASCII escape, by plain text or by the
        // end, a lone continuation byte, and an overlong encoding.
        for bad in [
            &b"a=%C3%41"[..],
            b"a=%C3A",
            b"a=%E2%82",
            b"a=%A9",
            b"a=%C0%AF",
        ] {
            assert_eq!(Params::parse(bad).unwrap_err(), ParamsError::InvalidUtf8);
        }
        // A malformed escape after an invalid character is reported, as
        // when the whole value is decoded before checking UTF-8.
        assert_eq!(
            Params::parse(b"a=%C3a%").unwrap_err(),
            ParamsError::MalformedEncoding
        );
        // A malformed escape inside a run of non-ASCII escapes.
        assert_eq!(
            Params::parse(b"a=%C3%A").unwrap_err(),
            ParamsError::MalformedEncoding
        );
        assert_eq!(decode("x%C3%A9+y").unwrap(), "x\u{e9} y");
    }

    #[test]
    fn single_pass_segment_edges() {
        let p = Params::parse(b"&a=b=c&%41=1&&flag&c%3D=x+y&").unwrap();
        assert_eq!(p.get("a"), Some("b=c"));
        assert_eq!(p.get("A"), Some("1"));
        assert_eq!(p.get("c="), Some("x y"));
        assert!(!p.contains("flag"));
        assert_eq!(p.len(), 3);
        assert_eq!(
            Params::parse(b"a=1&%61=2").unwrap_err(),
            ParamsError::Repeated("a".into())
        );
    }

    #[test]
    fn indexed_names_behave_like_the_others() {
        let p = Params::parse(b"x=1&client%5Fid=c&scope=&state=s&resource=a&resource=b").unwrap();
        assert_eq!(p.get("client_id"), Some("c"));
        assert!(p.contains("state") && !p.contains("scope") && !p.contains("nonce"));
        assert_eq!(p.get("x"), Some("1"));
        assert_eq!(p.get_all("resource").count(), 2);
        assert_eq!(
            Params::parse(b"client_id=a&client%5Fid=b").unwrap_err(),
            ParamsError::Repeated("client_id".into())
        );
        assert_eq!(KNOWN.iter().position(|k| known_slot(k).is_none()), None);
        for (i, k) in KNOWN.iter().enumerate() {
            assert_eq!(known_slot(k), Some(i));
        }
    }

    #[test]
    fn parameter_count_is_bounded() {
        let many: String = (0..Params::MAX_PARAMS + 1)
            .map(|i| format!("p{i}=1&"))
            .collect();
        assert_eq!(
            Params::parse(many.as_bytes()).unwrap_err(),
            ParamsError::TooMany
        );
        let enough: String = (0..Params::MAX_PARAMS)
            .map(|i| format!("p{i}=1&"))
            .collect();
        assert_eq!(
            Params::parse(enough.as_bytes()).unwrap().len(),
            Params::MAX_PARAMS
        );
    }

    #[test]
    fn plus_is_space_and_percent_decodes() {
        let p = Params::parse(b"s=a+b%20c%2B").unwrap();
        assert_eq!(p.get("s"), Some("a b c+"));
    }

    #[test]
    fn append_pair_encodes() {
        let mut s = String::new();
        append_pair(&mut s, "client_id", "a b&c");
        append_pair(&mut s, "x", "=");
        assert_eq!(s, "client_id=a+b%26c&x=%3D");
    }

    #[test]
    fn repeated_name_is_shown_bounded_and_sanitised() {
        let name = format!("<script>\u{131}\x01{}", "n".repeat(5000));
        let e = ParamsError::Repeated(name).to_string();
        assert!(e.len() < 80, "{e}");
        assert!(e.starts_with("parameter '<script>??nnn"), "{e}");
        assert!(e.is_ascii() && !e.contains('\x01'));
    }

    #[test]
    fn debug_hides_values() {
        let p = Params::parse(b"login_hint=alice%40example.com").unwrap();
        let d = format!("{p:?}");
        assert!(d.contains("login_hint") && !d.contains("alice"));
    }
}
