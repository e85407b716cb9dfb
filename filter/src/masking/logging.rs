//! Masking helpers for access and debug logs: header values masked by header name (the value
//! is never inspected), query parameters masked by parameter name, and whole log lines masked
//! with both plus the engine.

use std::borrow::Cow;

use super::engine::MaskEngine;
use super::template::push_last4;

/// Header names whose values are credentials and are always masked in logs.
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-auth-token",
    "x-amz-security-token",
    "cookie",
    "set-cookie",
];

/// Query parameter names whose values are credentials (compared ASCII-case-insensitively).
pub const SENSITIVE_QUERY_PARAMS: &[&str] = &[
    "key",
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "access_token",
    "token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
    "secret",
];

/// Text written in place of a masked header or query value.
pub const REDACTED: &str = "[REDACTED]";

/// `[REDACTED …last4]`, or `[REDACTED]` when the value is short (< 16 bytes) or reveals
/// nothing useful.
fn redact_keep_last4(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(20);
    push_last4(&mut out, bytes);
    if out == b"****" {
        return REDACTED.to_owned();
    }
    format!("[REDACTED …{}]", String::from_utf8_lossy(&out))
}

/// Masks an `Authorization`-style value, keeping the scheme word: `Bearer [REDACTED …a1b2]`.
/// `Basic` credentials never show their last bytes (they are base64 of the password's end).
fn mask_credentials(value: &str) -> String {
    let trimmed = value.trim();
    match trimmed.split_once(' ') {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme.len() <= 32
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            if scheme.eq_ignore_ascii_case("basic") {
                format!("{scheme} {REDACTED}")
            } else {
                format!("{scheme} {}", redact_keep_last4(rest.trim()))
            }
        }
        _ => redact_keep_last4(trimmed),
    }
}

/// Masks every cookie value, keeping the names: `a=[REDACTED]; b=[REDACTED]`.
fn mask_cookie(value: &str) -> String {
    value
        .split(';')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{name}={REDACTED}"),
            None => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Masks the cookie value of a `Set-Cookie` header, keeping its name and attributes.
fn mask_set_cookie(value: &str) -> String {
    match value.split_once(';') {
        Some((first, attributes)) => format!("{};{attributes}", mask_cookie(first)),
        None => mask_cookie(value),
    }
}

/// The value of header `name` as it may be logged: credentials headers ([`SENSITIVE_HEADERS`])
/// are masked whatever their content; other values are returned unchanged.
pub fn mask_header_value<'a>(name: &str, value: &'a str) -> Cow<'a, str> {
    let name = name.trim();
    let is = |h: &str| name.eq_ignore_ascii_case(h);
    if is("cookie") {
        Cow::Owned(mask_cookie(value))
    } else if is("set-cookie") {
        Cow::Owned(mask_set_cookie(value))
    } else if is("authorization") || is("proxy-authorization") {
        Cow::Owned(mask_credentials(value))
    } else if SENSITIVE_HEADERS.iter().any(|h| is(h)) {
        Cow::Owned(redact_keep_last4(value.trim()))
    } else {
        Cow::Borrowed(value)
    }
}

/// Whether a byte ends a query parameter value inside a path or a log line.
fn ends_query_value(b: u8) -> bool {
    matches!(
        b,
        b'&' | b'#' | b';' | b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b'<' | b'>'
    )
}

/// Masks the values of credential query parameters ([`SENSITIVE_QUERY_PARAMS`]) in a request
/// path, or anywhere in a log line: `/v1/models?key=AIza…&alt=json` becomes
/// `/v1/models?key=[REDACTED]&alt=json`. A parameter is recognised after `?`, `&` or `;`.
pub fn mask_query(path: &str) -> Cow<'_, str> {
    let bytes = path.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let is_separator = matches!(bytes.get(i), Some(b'?' | b'&' | b';'));
        i += 1;
        if !is_separator {
            continue;
        }
        let name_start = i;
        let name_end = bytes
            .get(name_start..)
            .and_then(|rest| {
                rest.iter()
                    .position(|&b| b == b'=' || ends_query_value(b) || b == b'?')
            })
            .map_or(bytes.len(), |p| name_start + p);
        if bytes.get(name_end) != Some(&b'=') {
            continue;
        }
        let name = path.get(name_start..name_end).unwrap_or("");
        if !SENSITIVE_QUERY_PARAMS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let value_start = name_end + 1;
        let value_end = bytes
            .get(value_start..)
            .and_then(|rest| rest.iter().position(|&b| ends_query_value(b)))
            .map_or(bytes.len(), |p| value_start + p);
        if value_end == value_start {
            continue;
        }
        let buffer = out.get_or_insert_with(|| String::with_capacity(path.len()));
        buffer.push_str(path.get(copied..value_start).unwrap_or(""));
        buffer.push_str(REDACTED);
        copied = value_end;
        i = value_end;
    }
    match out {
        Some(mut buffer) => {
            buffer.push_str(path.get(copied..).unwrap_or(""));
            Cow::Owned(buffer)
        }
        None => Cow::Borrowed(path),
    }
}

impl MaskEngine {
    /// A log line safe to write: credential query parameters masked by name, then every secret
    /// the engine finds masked with its template.
    pub fn mask_log_line(&self, line: &str) -> String {
        let by_name = mask_query(line);
        self.mask_str(&by_name).into_owned()
    }
}
