//! Correlation ids: the request id every header, log line and error body carries, and the W3C
//! `traceparent` forwarded upstream as a child span.
//!
//! Pure logic: it takes the incoming header values and random bytes, and returns the values to
//! forward. It never reads or writes headers itself.

use crate::random::IdRng;

/// Default upper bound on an accepted request id's length.
pub const DEFAULT_MAX_REQUEST_ID_LEN: usize = 128;

/// Returns true when `value` is an acceptable request id: 1..=`max_len` bytes drawn from
/// `[A-Za-z0-9._:-]`, the characters of UUIDs, ULIDs and most tracing ids.
pub fn is_valid_request_id(value: &str, max_len: usize) -> bool {
    !value.is_empty()
        && value.len() <= max_len
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Formats 16 random bytes as an RFC 9562 UUID version 4 string.
pub fn uuid_v4(rng: &mut IdRng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        push_hex_byte(&mut out, *b);
    }
    out
}

/// How the request id was obtained, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestIdSource {
    /// The client (or Envoy) sent a valid id in the canonical header.
    Canonical,
    /// A valid id came in one of the configured alias headers.
    Alias,
    /// No valid id arrived; a fresh UUIDv4 was generated.
    Generated,
}

/// Picks the request id from the candidates (canonical header first, then aliases in order):
/// the first valid one wins, otherwise a fresh UUIDv4 from the generator `fresh` returns.
/// `fresh` is called only then: a request that brings a valid id (Envoy generates one by
/// default) draws nothing from the host's random source.
pub fn choose_request_id<'a>(
    canonical: Option<&str>,
    aliases: impl IntoIterator<Item = Option<&'a str>>,
    max_len: usize,
    fresh: impl FnOnce() -> IdRng,
) -> (String, RequestIdSource) {
    if let Some(v) = canonical.map(str::trim) {
        if is_valid_request_id(v, max_len) {
            return (v.to_string(), RequestIdSource::Canonical);
        }
    }
    for v in aliases.into_iter().flatten().map(str::trim) {
        if is_valid_request_id(v, max_len) {
            return (v.to_string(), RequestIdSource::Alias);
        }
    }
    (uuid_v4(&mut fresh()), RequestIdSource::Generated)
}

/// A parsed W3C trace context (`traceparent`, version 00 semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// 16 lowercase hex digits, not all zero: the span that sent the request.
    pub parent_id: String,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value; `None` when it is malformed.
    ///
    /// Version `00` must be exactly 55 characters; a higher version is read by its first 55
    /// characters as the spec requires, and version `ff` is invalid.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let bytes = value.as_bytes();
        let version = value.get(0..2)?;
        if !is_lower_hex(version) || version == "ff" {
            return None;
        }
        if version == "00" && bytes.len() != 55 {
            return None;
        }
        if bytes.len() < 55 || (bytes.len() > 55 && bytes.get(55) != Some(&b'-')) {
            return None;
        }
        if bytes.get(2) != Some(&b'-')
            || bytes.get(35) != Some(&b'-')
            || bytes.get(52) != Some(&b'-')
        {
            return None;
        }
        let trace_id = value.get(3..35)?;
        let parent_id = value.get(36..52)?;
        let flags = value.get(53..55)?;
        if !is_lower_hex(trace_id) || !is_lower_hex(parent_id) || !is_lower_hex(flags) {
            return None;
        }
        if trace_id.bytes().all(|b| b == b'0') || parent_id.bytes().all(|b| b == b'0') {
            return None;
        }
        Some(Self {
            trace_id: trace_id.to_string(),
            parent_id: parent_id.to_string(),
            flags: u8::from_str_radix(flags, 16).ok()?,
        })
    }

    /// Starts a new trace with random ids (sampled flag set).
    pub fn new_root(rng: &mut IdRng) -> Self {
        Self {
            trace_id: random_hex_nonzero(rng, 16),
            parent_id: random_hex_nonzero(rng, 8),
            flags: 0x01,
        }
    }

    /// The context to send upstream: same trace and flags, a fresh span id as the parent.
    pub fn child(&self, rng: &mut IdRng) -> Self {
        Self {
            trace_id: self.trace_id.clone(),
            parent_id: random_hex_nonzero(rng, 8),
            flags: self.flags,
        }
    }

    /// Formats as a version-00 `traceparent` header value.
    pub fn header_value(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.parent_id, self.flags)
    }
}

/// What to forward upstream for the incoming trace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceDecision {
    /// The `traceparent` to send upstream (a child of the incoming one, or a new root).
    pub upstream: TraceParent,
    /// True when the incoming value was kept (so `tracestate` may be kept too).
    pub continued: bool,
}

/// Decides the upstream trace context from the incoming `traceparent` header, if any.
pub fn decide_trace(incoming: Option<&str>, rng: &mut IdRng) -> TraceDecision {
    match incoming.and_then(TraceParent::parse) {
        Some(parent) => TraceDecision {
            upstream: parent.child(rng),
            continued: true,
        },
        None => TraceDecision {
            upstream: TraceParent::new_root(rng),
            continued: false,
        },
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn random_hex_nonzero(rng: &mut IdRng, len: usize) -> String {
    let mut bytes = vec![0u8; len];
    loop {
        rng.fill(&mut bytes);
        if bytes.iter().any(|b| *b != 0) {
            return to_hex(&bytes);
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        push_hex_byte(&mut out, *b);
    }
    out
}

fn push_hex_byte(out: &mut String, b: u8) {
    for nibble in [b >> 4, b & 0x0f] {
        out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn uuid_has_version_and_variant() {
        let mut rng = IdRng::new(42);
        let id = uuid_v4(&mut rng);
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert!(matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert!(is_valid_request_id(&id, 36));
    }

    /// A generator that must not be asked for: a kept id draws nothing.
    fn never() -> IdRng {
        panic!("a kept request id drew from the random source")
    }

    #[test]
    fn valid_canonical_id_is_kept() {
        let (id, src) = choose_request_id(Some("abc-123"), [Some("alias-1")], 128, never);
        assert_eq!((id.as_str(), src), ("abc-123", RequestIdSource::Canonical));
    }

    #[test]
    fn alias_used_when_canonical_missing_or_bad() {
        let (id, src) = choose_request_id(Some("bad id!"), [None, Some("corr-9")], 128, never);
        assert_eq!((id.as_str(), src), ("corr-9", RequestIdSource::Alias));
    }

    #[test]
    fn oversized_or_garbage_id_is_replaced() {
        let fresh = || IdRng::new(1);
        let long = "a".repeat(129);
        let (id, src) = choose_request_id(Some(&long), [], 128, fresh);
        assert_eq!(src, RequestIdSource::Generated);
        assert_eq!(id.len(), 36);
        assert_eq!(id, uuid_v4(&mut IdRng::new(1)));
        let (_, src) = choose_request_id(Some("<script>"), [], 128, fresh);
        assert_eq!(src, RequestIdSource::Generated);
        let (_, src) = choose_request_id(Some(""), [], 128, fresh);
        assert_eq!(src, RequestIdSource::Generated);
    }

    #[test]
    fn traceparent_round_trips() {
        let tp = TraceParent::parse(VALID).unwrap();
        assert_eq!(tp.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.header_value(), VALID);
    }

    #[test]
    fn malformed_traceparents_are_rejected() {
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "accepted {bad:?}");
        }
    }

    #[test]
    fn future_version_is_read_by_its_prefix() {
        let v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        assert!(TraceParent::parse(v).is_some());
    }

    #[test]
    fn valid_trace_continues_with_new_span() {
        let mut rng = IdRng::new(3);
        let d = decide_trace(Some(VALID), &mut rng);
        assert!(d.continued);
        assert_eq!(d.upstream.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(d.upstream.parent_id, "00f067aa0ba902b7");
        assert!(TraceParent::parse(&d.upstream.header_value()).is_some());
    }

    #[test]
    fn malformed_trace_starts_a_new_root() {
        let mut rng = IdRng::new(3);
        let d = decide_trace(Some("00-zz"), &mut rng);
        assert!(!d.continued);
        assert!(TraceParent::parse(&d.upstream.header_value()).is_some());
    }
}
