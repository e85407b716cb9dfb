//! The `generic_assignment` heuristic: a secret-looking name (`api_key`, `token`, `password`,
//! `client_secret`, `authorization`, …) followed by `=`, `:`, `:=` or `=>` and a high-entropy
//! value, in any of the shapes prompts and logs carry them: `KEY=value`, `key: value`,
//! `"key": "value"`, `{\"key\": \"value\"}` (JSON inside a JSON string), `?key=value&…`.
//!
//! A value counts as a secret when all of these hold (the threshold, documented):
//! * 10 to 256 printable ASCII bytes (8 for password-like names: `password`, `passwd`, `pwd`,
//!   `passphrase`, `secret`), no whitespace;
//! * it contains a letter, and a digit or a symbol other than `_ . -` (so plain words,
//!   identifiers such as `os.environ` or `get_token`, and plain numbers never match);
//! * it is not a placeholder (`xxxx`, `****`, `...`, `your…`, `example`, `changeme`, `${…}`,
//!   `{{…}}`, `<…>`, `%s`, `[REDACTED…`) nor a URL;
//! * its Shannon entropy is at least `min(threshold, log2(len) − 0.5)` bits per byte, where
//!   `threshold` defaults to [`DEFAULT_ENTROPY_THRESHOLD`] (3.0). The length term keeps short
//!   random values reachable (a 10-byte value can have at most log2(10) ≈ 3.3 bits per byte);
//!   password-like names get 0.5 bit less.
//!
//! When the name looks like an AWS secret key name (`aws_secret_access_key`, `SecretAccessKey`)
//! and the value is 40 base64 bytes, the finding is reported as `aws_secret_key` instead.

use super::bytes::{bounded_run, is_base64, literal_at, shannon_entropy, LiteralMatch, RunEnd};
use super::scan::{KindId, ScanState};

/// Default minimum Shannon entropy (bits per byte) of a generic assignment value.
pub const DEFAULT_ENTROPY_THRESHOLD: f64 = 3.0;
/// Entropy discount for password-like names: a human-chosen password is less random than a
/// generated key, and the name already says it is a secret.
const PASSWORD_ENTROPY_DISCOUNT: f64 = 0.5;
/// Longest key name looked at, in bytes (longer names are judged on their last 64 bytes).
pub(crate) const KEY_MAX: usize = 64;
/// Longest value accepted, in bytes.
pub(crate) const VALUE_MAX: usize = 256;
/// Most spaces or tabs allowed around the operator.
const MAX_GAP: usize = 8;
/// Longest stretch of input after the operator that a verdict depends on.
pub(crate) const GENERIC_REACH: usize = 2 + MAX_GAP + 2 + 8 + VALUE_MAX + 2;

/// Kinds the heuristic reports.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GenericKinds {
    pub generic: KindId,
    pub aws_secret: Option<KindId>,
}

/// What the name in front of the operator says about the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyClass {
    /// `api_key`, `token`, `credentials`, …
    Secret,
    /// `password`, `secret`, …: shorter values accepted.
    Password,
    /// `aws_secret_access_key`, …
    AwsSecret,
    /// `authorization`: the value may start with a scheme word (`Bearer`, `Basic`, …).
    Authorization,
}

/// Name suffixes (lower-cased, separators removed) that end in a secret word but name
/// something public or non-secret.
const EXCLUDED_SUFFIXES: &[&[u8]] = &[
    b"publickey",
    b"pubkey",
    b"cachekey",
    b"idempotencykey",
    b"primarykey",
    b"foreignkey",
    b"sortkey",
    b"partitionkey",
    b"hotkey",
    b"monkey",
    b"turkey",
    b"donkey",
    b"whiskey",
    b"jockey",
    b"hockey",
    b"pagetoken",
    b"continuationtoken",
    b"synctoken",
    b"nexttoken",
];
const PASSWORD_SUFFIXES: &[&[u8]] = &[b"password", b"passwd", b"pwd", b"passphrase", b"secret"];
const SECRET_SUFFIXES: &[&[u8]] = &[
    b"key",
    b"token",
    b"credential",
    b"credentials",
    b"auth",
    b"secretkey",
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn classify_key(normalized: &[u8]) -> Option<KeyClass> {
    let ends = |list: &[&[u8]]| list.iter().any(|s| normalized.ends_with(s));
    if ends(EXCLUDED_SUFFIXES) {
        None
    } else if contains(normalized, b"secretaccesskey")
        || (contains(normalized, b"aws") && contains(normalized, b"secret"))
    {
        Some(KeyClass::AwsSecret)
    } else if normalized.ends_with(b"authorization") {
        Some(KeyClass::Authorization)
    } else if ends(PASSWORD_SUFFIXES) {
        Some(KeyClass::Password)
    } else if ends(SECRET_SUFFIXES) {
        Some(KeyClass::Secret)
    } else {
        None
    }
}

fn byte_before(text: &[u8], i: usize) -> Option<u8> {
    i.checked_sub(1).and_then(|j| text.get(j)).copied()
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

/// Reads the key name that ends right before `key_end` (skipping spaces and a closing quote,
/// possibly JSON-escaped) and classifies it.
fn key_before(text: &[u8], key_end: usize) -> Option<KeyClass> {
    let mut i = key_end;
    let mut gap = 0;
    while gap < MAX_GAP && matches!(byte_before(text, i), Some(b' ' | b'\t')) {
        i -= 1;
        gap += 1;
    }
    if matches!(byte_before(text, i), Some(b'"' | b'\'' | b'`')) {
        i -= 1;
        if byte_before(text, i) == Some(b'\\') {
            i -= 1;
        }
    }
    let name_end = i;
    while name_end - i < KEY_MAX && byte_before(text, i).is_some_and(is_key_byte) {
        i -= 1;
    }
    let mut normalized = [0u8; KEY_MAX];
    let mut len = 0;
    for &b in text
        .get(i..name_end)?
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
    {
        if let Some(slot) = normalized.get_mut(len) {
            *slot = b.to_ascii_lowercase();
            len += 1;
        }
    }
    classify_key(normalized.get(..len)?)
}

/// Bytes of an unquoted value: printable ASCII except quotes, brackets and separators.
fn is_unquoted_value_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b"\"'`<>(){}[],;&\\".contains(&b)
}

const PLACEHOLDER_MARKERS: &[&[u8]] = &[
    b"xxxx",
    b"****",
    b"...",
    b"your",
    b"example",
    b"redacted",
    b"changeme",
    b"placeholder",
    b"${",
    b"{{",
    b"<",
    b"%s",
    b"://",
];

/// Whether `value` passes the documented secret threshold.
fn looks_secret(value: &[u8], class: KeyClass, entropy_threshold: f64) -> bool {
    let min_len = if class == KeyClass::Password { 8 } else { 10 };
    if value.len() < min_len || value.len() > VALUE_MAX {
        return false;
    }
    let has_letter = value.iter().any(u8::is_ascii_alphabetic);
    let has_digit_or_symbol = value
        .iter()
        .any(|&b| !b.is_ascii_alphabetic() && !b"_.-".contains(&b));
    if !has_letter || !has_digit_or_symbol {
        return false;
    }
    let lower: Vec<u8> = value.iter().map(u8::to_ascii_lowercase).collect();
    if PLACEHOLDER_MARKERS.iter().any(|m| contains(&lower, m)) {
        return false;
    }
    let length_bound = (value.len() as f64).log2() - 0.5;
    let mut required = entropy_threshold.min(length_bound);
    if class == KeyClass::Password {
        required -= PASSWORD_ENTROPY_DISCOUNT;
    }
    shannon_entropy(value) >= required
}

/// Checks for `name <op> value` around the operator byte at `op_at` (`=` or `:`).
pub(crate) fn generic_assignment(
    st: &mut ScanState<'_>,
    op_at: usize,
    kinds: GenericKinds,
    entropy_threshold: f64,
) {
    let text = st.text;
    let Some(&op) = text.get(op_at) else {
        return;
    };
    let next = text.get(op_at + 1).copied();
    if next.is_none() && !st.eof {
        return st.pending(op_at + 1);
    }
    let prev = byte_before(text, op_at);
    let mut key_end = op_at;
    let mut value_from = op_at + 1;
    match op {
        b':' => {
            if matches!(next, Some(b':' | b'=')) || prev == Some(b':') {
                return;
            }
        }
        b'=' => {
            if next == Some(b'=') {
                return;
            }
            match prev {
                Some(b':') => key_end = op_at - 1,
                Some(
                    b'=' | b'!' | b'<' | b'>' | b'+' | b'-' | b'*' | b'/' | b'%' | b'&' | b'|'
                    | b'^' | b'~',
                ) => return,
                _ => {}
            }
            if next == Some(b'>') {
                value_from = op_at + 2;
            }
        }
        _ => return,
    }
    let Some(class) = key_before(text, key_end) else {
        return;
    };
    let value_start = match value_start(st, value_from, class) {
        Some(start) => start,
        None => return,
    };
    let (start, quote) = value_start;
    let end = match quote {
        Some(q) => {
            match bounded_run(text, start, VALUE_MAX, st.eof, |b| {
                b != q && b != b'\\' && b.is_ascii_graphic()
            }) {
                RunEnd::Closed(end) if matches!(text.get(end), Some(&c) if c == q || c == b'\\') => {
                    end
                }
                RunEnd::Closed(_) | RunEnd::TooLong => return,
                RunEnd::Open => return st.pending(start),
            }
        }
        None => match bounded_run(text, start, VALUE_MAX, st.eof, is_unquoted_value_byte) {
            RunEnd::Closed(mut end) => {
                while end > start && text.get(end - 1) == Some(&b'.') {
                    end -= 1;
                }
                end
            }
            RunEnd::TooLong => return,
            RunEnd::Open => return st.pending(start),
        },
    };
    let value = text.get(start..end).unwrap_or(&[]);
    if !looks_secret(value, class, entropy_threshold) {
        return;
    }
    let kind = match kinds.aws_secret {
        Some(aws)
            if class == KeyClass::AwsSecret
                && value.len() == 40
                && value.iter().all(|&b| is_base64(b)) =>
        {
            aws
        }
        _ => kinds.generic,
    };
    st.found(start, end, kind);
}

/// Finds where the value begins after the operator: skips spaces, an opening quote (possibly
/// JSON-escaped) and, for `authorization`, a scheme word. Returns the start and the quote byte.
/// `None` means no value here (or, while streaming, not known yet: then pending is recorded).
fn value_start(
    st: &mut ScanState<'_>,
    value_from: usize,
    class: KeyClass,
) -> Option<(usize, Option<u8>)> {
    let text = st.text;
    let mut i = value_from;
    let mut gap = 0;
    while gap < MAX_GAP && matches!(text.get(i), Some(b' ' | b'\t')) {
        i += 1;
        gap += 1;
    }
    let mut quote = None;
    match text.get(i) {
        None => {
            st.pending(value_from);
            return None;
        }
        Some(b'\\') => match text.get(i + 1) {
            Some(b'"') => {
                quote = Some(b'"');
                i += 2;
            }
            None => {
                st.pending(value_from);
                return None;
            }
            Some(_) => return None,
        },
        Some(&q @ (b'"' | b'\'' | b'`')) => {
            quote = Some(q);
            i += 1;
        }
        Some(_) => {}
    }
    if class == KeyClass::Authorization {
        for scheme in [&b"bearer "[..], b"basic ", b"token ", b"digest "] {
            match literal_at(text, i, scheme, true) {
                LiteralMatch::Full => {
                    i += scheme.len();
                    while matches!(text.get(i), Some(b' ')) {
                        i += 1;
                    }
                    break;
                }
                LiteralMatch::Partial => {
                    st.pending(value_from);
                    return None;
                }
                LiteralMatch::No => {}
            }
        }
    }
    Some((i, quote))
}
