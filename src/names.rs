//! Parameter names that other parsers read differently.
//!
//! The layer checks or drops parameters by exact name (PAR-8, PAR-11).
//! The service behind it, or a proxy in front of it, may not: Java's
//! `equalsIgnoreCase` and .NET binders ignore case (Unicode case, so
//! `redırect_uri` with U+0131 or `ſcope` with U+017F match), PHP turns `.`
//! and spaces into `_` and reads `redirect_uri[]` as `redirect_uri`, C
//! parsers stop at a NUL, some split pairs on `;` or decode twice. A name
//! such a parser folds onto a checked one would reach it as that
//! parameter, unvalidated. [`confusable`] says which names to refuse.

// The sanitiser lives with `ParamsError`, whose messages need it (and
// `params.rs` is compiled alone by the parsing benchmark).
use crate::params::decode;
pub(crate) use crate::params::sanitized_name as sanitized;

/// The names the layer validates, reads or drops, in lower case. A name
/// that folds onto one of them without being it is refused.
///
/// - client authentication, used and never stored (PAR-8):
///   `client_secret`, `client_assertion`, `client_assertion_type`;
/// - token-endpoint parameters, dropped (PAR-8): `grant_type`, `code`,
///   `code_verifier`, `refresh_token`;
/// - refused at push (PAR-7, PAR-24): `request_uri`, `request`;
/// - checked at push and at redemption (PAR-9, PAR-11, PAR-41):
///   `client_id`, `redirect_uri`, `response_type`, `scope`,
///   `code_challenge`, `code_challenge_method`, `prompt`, `nonce`,
///   `dpop_jkt` (DPOP-3: compared with the proof's key);
/// - read at redemption (form_post detection): `response_mode`.
const CHECKED: &[&str] = &[
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "grant_type",
    "code",
    "code_verifier",
    "refresh_token",
    "request_uri",
    "request",
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "nonce",
    "dpop_jkt",
    "response_mode",
];

/// How many times a name with `%` is decoded again, for services behind a
/// proxy that decodes once more.
const DECODE_DEPTH: usize = 3;

/// Whether `name` (decoded) must be refused: it is not printable ASCII
/// (`0x21..=0x7E`), or a common parser would read it as one of the
/// [`CHECKED`] names without it being exactly that name.
///
/// Not printable ASCII covers Unicode case folding (U+0131, U+017F, U+212A
/// KELVIN SIGN), spaces (PHP's `_`), NUL (truncation) and control
/// characters. For the rest: ASCII case, `.` and `[` read as `_` (PHP), a
/// `[...]` suffix (PHP arrays), `&`/`;` inside the name (parsers that
/// split there, or decode before splitting), and `%` escapes decoded again.
pub(crate) fn confusable(name: &str) -> bool {
    confusable_at(name, DECODE_DEPTH)
}

fn confusable_at(name: &str, depth: usize) -> bool {
    if !printable(name) {
        return true;
    }
    if CHECKED.contains(&name) {
        return false;
    }
    let folds = name
        .split(['&', ';'])
        .map(|pair| pair.split('=').next().unwrap_or_default())
        .any(|seg| {
            let base = seg.split('[').next().unwrap_or_default();
            CHECKED
                .iter()
                .any(|c| folds_to(seg, c) || folds_to(base, c))
        });
    if folds {
        return true;
    }
    if depth > 0 && name.contains('%') {
        if let Ok(again) = decode(name) {
            // Decoded again, even the exact checked name is a disguise.
            return again != name
                && (CHECKED.contains(&again.as_ref()) || confusable_at(&again, depth - 1));
        }
    }
    false
}

/// Every byte printable ASCII, space excluded.
pub(crate) fn printable(name: &str) -> bool {
    name.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Whether `seg` reads as `checked` once ASCII case is ignored and `.`
/// and `[` are taken for `_`.
fn folds_to(seg: &str, checked: &str) -> bool {
    seg.len() == checked.len()
        && seg.bytes().zip(checked.bytes()).all(|(s, c)| {
            let s = match s {
                b'.' | b'[' => b'_',
                s => s.to_ascii_lowercase(),
            };
            s == c
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_names_and_extensions_pass() {
        for ok in CHECKED.iter().copied().chain([
            "claims",
            "authorization_details",
            "ui_locales",
            "x-custom",
            "acr_values",
            "login_hint",
            "state",
            "resource",
            "dpop_jkt",
            "codes",
            "redirect-uri",
            "scope_x",
        ]) {
            assert!(!confusable(ok), "{ok}");
        }
    }

    #[test]
    fn names_other_parsers_fold_onto_checked_ones_are_refused() {
        for bad in [
            "red\u{131}rect_uri",
            "\u{17f}cope",
            "\u{212a}ode",
            "redirect.uri",
            "redirect uri",
            "redirect_uri[]",
            "redirect_uri[x]",
            "redirect[uri",
            "redirect_uri\0",
            "redirect_uri\0x",
            "Client_Secret",
            "CLIENT_ASSERTION_TYPE",
            "Grant_Type",
            "Code",
            "Refresh_Token",
            "Request",
            "REQUEST_URI",
            "Client_ID",
            "Response.Mode",
            "x;scope",
            "x&scope",
            "scope=x",
            "redirect%5Furi",
            "redirect%255Furi",
            "caf\u{e9}",
            "tab\there",
        ] {
            assert!(confusable(bad), "{bad:?}");
        }
    }

    #[test]
    fn decoding_again_is_bounded_and_strict() {
        assert!(!confusable("50%off"));
        assert!(!confusable("a%41"));
        // Three more decodings are followed; a fourth is not assumed.
        assert!(confusable("scop%252565"));
        assert!(!confusable("scop%25252565"));
    }

    #[test]
    fn sanitized_is_bounded_printable_ascii() {
        assert_eq!(sanitized("scope"), "scope");
        assert_eq!(sanitized("a\"b\\c\0d\u{131}"), "a?b?c?d?");
        let long = format!("<script>{}\u{1f511}\x07", "x".repeat(5000));
        let s = sanitized(&long);
        assert_eq!(s, format!("<script>{}...", "x".repeat(32)));
    }
}
