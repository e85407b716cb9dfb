//! The wire format of Envoy's global rate limit service
//! (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, what envoyproxy/ratelimit
//! implements): encoding a `RateLimitRequest` that charges hits to descriptors, and decoding the
//! `RateLimitResponse` verdict. Hand-written protobuf for these few tiny messages, so the filter
//! needs no protobuf dependency.
//!
//! Field numbers (envoy `api/envoy/service/ratelimit/v3/rls.proto` and
//! `api/envoy/extensions/common/ratelimit/v3/ratelimit.proto`):
//!
//! - `RateLimitRequest { string domain = 1; repeated RateLimitDescriptor descriptors = 2;
//!   uint32 hits_addend = 3; }`
//! - `RateLimitDescriptor { repeated Entry entries = 1; RateLimitOverride limit = 2;
//!   google.protobuf.UInt64Value hits_addend = 3; }`, `Entry { string key = 1; string value = 2; }`
//! - `RateLimitResponse { Code overall_code = 1; repeated DescriptorStatus statuses = 2; ... }`,
//!   `Code { UNKNOWN = 0; OK = 1; OVER_LIMIT = 2; }`
//! - `DescriptorStatus { Code code = 1; RateLimit current_limit = 2; uint32 limit_remaining = 3;
//!   google.protobuf.Duration duration_until_reset = 4; Quota quota = 5; }`
//! - `google.protobuf.Duration { int64 seconds = 1; int32 nanos = 2; }`
//!
//! The bytes here are the bare protobuf message: the host's gRPC call adds and strips the 5-byte
//! gRPC frame. Decoding skips unknown fields of every wire type (a known field arriving with an
//! unexpected wire type is skipped as unknown) and returns `None` on malformed input (overlong
//! varints, truncated lengths, invalid wire types, field number 0, unbalanced groups); it never
//! panics.

/// The gRPC service name to pass to the host's gRPC call.
pub const GRPC_SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";

/// The gRPC method name to pass to the host's gRPC call.
pub const GRPC_METHOD: &str = "ShouldRateLimit";

/// One rate limit descriptor: ordered key/value entries and, optionally, its own hit count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Descriptor {
    /// The descriptor entries, in order (e.g. `[("user", "key:0123456789abcdef")]`).
    pub entries: Vec<(String, String)>,
    /// Hits to charge to this descriptor, overriding the request-level `hits_addend`
    /// (`Some(0)` means check without charging). `None` leaves the field out.
    pub hits_addend: Option<u64>,
}

/// The response code of the rate limit service, overall or per descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RlsCode {
    /// The service did not say (also used for codes this module does not know).
    #[default]
    Unknown,
    /// Under the limit.
    Ok,
    /// Over the limit.
    OverLimit,
}

impl RlsCode {
    /// Maps a wire enum value; unknown values become [`RlsCode::Unknown`].
    fn from_wire(value: u64) -> Self {
        match value {
            1 => Self::Ok,
            2 => Self::OverLimit,
            _ => Self::Unknown,
        }
    }
}

/// The service's answer for one descriptor, in request order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DescriptorStatus {
    /// The code for this descriptor.
    pub code: RlsCode,
    /// What is left of the limit in the current window (0 when over the limit or unset).
    pub limit_remaining: u32,
    /// Whole seconds until the window resets (rounded up, negatives clamped to 0); `None` when the
    /// service did not send `duration_until_reset`.
    pub reset_seconds: Option<u64>,
}

/// A decoded `RateLimitResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RlsVerdict {
    /// The overall code across all descriptors.
    pub overall: RlsCode,
    /// One status per descriptor sent (as reported by the service).
    pub statuses: Vec<DescriptorStatus>,
}

impl RlsVerdict {
    /// Whether the service said the request is over the limit.
    pub fn is_over_limit(&self) -> bool {
        self.overall == RlsCode::OverLimit
    }
}

/// Encodes a `RateLimitRequest` for `domain` charging `hits_addend` hits to each descriptor that
/// does not carry its own count (the service treats 0 as 1). Empty strings and a zero
/// `hits_addend` are left out, as proto3 does.
pub fn encode_request(domain: &str, descriptors: &[Descriptor], hits_addend: u32) -> Vec<u8> {
    let mut out = Vec::new();
    put_string(&mut out, 1, domain);
    for descriptor in descriptors {
        put_message(&mut out, 2, &encode_descriptor(descriptor));
    }
    if hits_addend != 0 {
        put_varint_field(&mut out, 3, u64::from(hits_addend));
    }
    out
}

/// Decodes a `RateLimitResponse`; `None` when the bytes are not a well-formed protobuf message.
pub fn decode_response(bytes: &[u8]) -> Option<RlsVerdict> {
    let mut verdict = RlsVerdict::default();
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, Value::Varint(v)) => verdict.overall = RlsCode::from_wire(v),
            (2, Value::Bytes(b)) => verdict.statuses.push(decode_status(b)?),
            _ => {}
        }
    }
    Some(verdict)
}

/// Encodes one `RateLimitDescriptor` (without its outer tag).
fn encode_descriptor(descriptor: &Descriptor) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in &descriptor.entries {
        let mut entry = Vec::new();
        put_string(&mut entry, 1, key);
        put_string(&mut entry, 2, value);
        put_message(&mut out, 1, &entry);
    }
    if let Some(hits) = descriptor.hits_addend {
        // google.protobuf.UInt64Value { uint64 value = 1; }: presence is the message itself.
        let mut wrapper = Vec::new();
        if hits != 0 {
            put_varint_field(&mut wrapper, 1, hits);
        }
        put_message(&mut out, 3, &wrapper);
    }
    out
}

/// Decodes one `DescriptorStatus`.
fn decode_status(bytes: &[u8]) -> Option<DescriptorStatus> {
    let mut status = DescriptorStatus::default();
    let mut reset: Option<DurationParts> = None;
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, Value::Varint(v)) => status.code = RlsCode::from_wire(v),
            // uint32 on the wire: a larger varint is truncated, as protobuf does.
            (3, Value::Varint(v)) => status.limit_remaining = v as u32,
            (4, Value::Bytes(b)) => decode_duration(b, reset.get_or_insert_with(Default::default))?,
            _ => {}
        }
    }
    status.reset_seconds = reset.map(DurationParts::whole_seconds_up);
    Some(status)
}

/// The fields of a `google.protobuf.Duration`.
#[derive(Debug, Default, Clone, Copy)]
struct DurationParts {
    seconds: i64,
    nanos: i32,
}

impl DurationParts {
    /// Whole seconds, rounded up when there are positive nanos; negatives clamp to 0.
    fn whole_seconds_up(self) -> u64 {
        let seconds = u64::try_from(self.seconds).unwrap_or(0);
        if self.nanos > 0 && self.seconds >= 0 {
            seconds.saturating_add(1)
        } else {
            seconds
        }
    }
}

/// Merges a `google.protobuf.Duration` into `parts` (repeated occurrences merge, as protobuf does).
fn decode_duration(bytes: &[u8], parts: &mut DurationParts) -> Option<()> {
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            // int64/int32 are two's complement varints; truncation is protobuf's rule.
            (1, Value::Varint(v)) => parts.seconds = v as i64,
            (2, Value::Varint(v)) => parts.nanos = v as i32,
            _ => {}
        }
    }
    Some(())
}

/// Protobuf wire types.
const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_START_GROUP: u64 = 3;
const WIRE_END_GROUP: u64 = 4;
const WIRE_FIXED32: u64 = 5;

/// How deeply (deprecated) groups may nest before the input is rejected.
const MAX_GROUP_DEPTH: usize = 64;

/// Appends a base-128 varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a field key.
fn put_tag(out: &mut Vec<u8>, field: u32, wire_type: u64) {
    put_varint(out, (u64::from(field) << 3) | wire_type);
}

/// Appends a varint field.
fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    put_tag(out, field, WIRE_VARINT);
    put_varint(out, value);
}

/// Appends a length-delimited field holding an embedded message (written even when empty).
fn put_message(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    put_tag(out, field, WIRE_LEN);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// Appends a string field, leaving it out when empty (proto3 default).
fn put_string(out: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        put_message(out, field, value.as_bytes());
    }
}

/// A decoded field value; fixed-width and group values are only skipped.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Skipped,
}

/// A cursor over one protobuf message.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Reads a varint; `None` when truncated or longer than 64 bits.
    fn varint(&mut self) -> Option<u64> {
        let mut value: u64 = 0;
        for (i, byte) in self.rest.iter().enumerate().take(10) {
            let low = u64::from(byte & 0x7f);
            if i == 9 && low > 1 {
                return None;
            }
            value |= low << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = self.rest.get(i + 1..)?;
                return Some(value);
            }
        }
        None
    }

    /// Takes `n` bytes; `None` when fewer remain.
    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        let (head, tail) = self.rest.split_at_checked(n)?;
        self.rest = tail;
        Some(head)
    }

    /// Reads a field key: (field number, wire type); field number 0 is malformed.
    fn key(&mut self) -> Option<(u64, u64)> {
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return None;
        }
        Some((field, key & 7))
    }

    /// The next field, `Ok(None)`-style: `Some(None)` at the end, `None` when malformed.
    fn next_field(&mut self) -> Option<Option<(u64, Value<'a>)>> {
        if self.rest.is_empty() {
            return Some(None);
        }
        let (field, wire_type) = self.key()?;
        let value = match wire_type {
            WIRE_VARINT => Value::Varint(self.varint()?),
            WIRE_FIXED64 => {
                self.take(8)?;
                Value::Skipped
            }
            WIRE_LEN => {
                let len = self.varint()?;
                Value::Bytes(self.take(len)?)
            }
            WIRE_START_GROUP => {
                self.skip_group(field)?;
                Value::Skipped
            }
            WIRE_FIXED32 => {
                self.take(4)?;
                Value::Skipped
            }
            // A stray end-group, or wire types 6 and 7.
            _ => return None,
        };
        Some(Some((field, value)))
    }

    /// Skips a group whose start tag (for `field`) was just read, through its matching end tag.
    fn skip_group(&mut self, field: u64) -> Option<()> {
        let mut open: Vec<u64> = vec![field];
        while let Some(&innermost) = open.last() {
            let (f, wire_type) = self.key()?;
            match wire_type {
                WIRE_VARINT => {
                    self.varint()?;
                }
                WIRE_FIXED64 => {
                    self.take(8)?;
                }
                WIRE_LEN => {
                    let len = self.varint()?;
                    self.take(len)?;
                }
                WIRE_START_GROUP => {
                    if open.len() >= MAX_GROUP_DEPTH {
                        return None;
                    }
                    open.push(f);
                }
                WIRE_END_GROUP => {
                    if f != innermost {
                        return None;
                    }
                    open.pop();
                }
                WIRE_FIXED32 => {
                    self.take(4)?;
                }
                _ => return None,
            }
        }
        Some(())
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    // ---- a hand-built decoder of RateLimitRequest, independent of the module's reader ----

    #[derive(Debug, Default, PartialEq)]
    struct DecodedRequest {
        domain: String,
        descriptors: Vec<Descriptor>,
        hits_addend: u32,
    }

    fn read_varint(bytes: &[u8], pos: &mut usize) -> u64 {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let b = bytes[*pos];
            *pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return value;
            }
            shift += 7;
        }
    }

    /// Splits a message into (field, wire type, payload) where payload is the varint value or
    /// the length-delimited bytes; panics on anything else (the encoder only emits these).
    fn fields(bytes: &[u8]) -> Vec<(u64, u64, u64, Vec<u8>)> {
        let mut pos = 0;
        let mut out = Vec::new();
        while pos < bytes.len() {
            let key = read_varint(bytes, &mut pos);
            let (field, wt) = (key >> 3, key & 7);
            match wt {
                0 => out.push((field, wt, read_varint(bytes, &mut pos), Vec::new())),
                2 => {
                    let len = read_varint(bytes, &mut pos) as usize;
                    out.push((field, wt, 0, bytes[pos..pos + len].to_vec()));
                    pos += len;
                }
                other => panic!("unexpected wire type {other}"),
            }
        }
        out
    }

    fn decode_request(bytes: &[u8]) -> DecodedRequest {
        let mut req = DecodedRequest::default();
        for (field, wt, v, b) in fields(bytes) {
            match (field, wt) {
                (1, 2) => req.domain = String::from_utf8(b).unwrap(),
                (2, 2) => {
                    let mut d = Descriptor::default();
                    for (f, w, v2, b2) in fields(&b) {
                        match (f, w) {
                            (1, 2) => {
                                let (mut k, mut val) = (String::new(), String::new());
                                for (ef, ew, _, eb) in fields(&b2) {
                                    assert_eq!(ew, 2);
                                    match ef {
                                        1 => k = String::from_utf8(eb).unwrap(),
                                        2 => val = String::from_utf8(eb).unwrap(),
                                        other => panic!("entry field {other}"),
                                    }
                                }
                                d.entries.push((k, val));
                            }
                            (3, 2) => {
                                let mut hits = 0;
                                for (wf, ww, wv, _) in fields(&b2) {
                                    assert_eq!((wf, ww), (1, 0));
                                    hits = wv;
                                }
                                d.hits_addend = Some(hits);
                            }
                            other => panic!("descriptor field {other:?} {v2}"),
                        }
                    }
                    req.descriptors.push(d);
                }
                (3, 0) => req.hits_addend = u32::try_from(v).unwrap(),
                other => panic!("request field {other:?}"),
            }
        }
        req
    }

    fn user(value: &str, hits: Option<u64>) -> Descriptor {
        Descriptor {
            entries: vec![("user".to_string(), value.to_string())],
            hits_addend: hits,
        }
    }

    // ---- a tiny pseudo-random source for the garbage loops ----

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    // ---- encoding ----

    #[test]
    fn known_request_bytes_with_descriptor_hits() {
        let bytes = encode_request("tollgate", &[user("key:ab", Some(150))], 0);
        let expected: Vec<u8> = [
            &[0x0a, 0x08][..],
            b"tollgate",
            // descriptors (field 2), 21 bytes
            &[0x12, 0x15],
            // entry (field 1), 14 bytes: key "user", value "key:ab"
            &[0x0a, 0x0e, 0x0a, 0x04],
            b"user",
            &[0x12, 0x06],
            b"key:ab",
            // hits_addend UInt64Value (field 3), 3 bytes: value=150 → 0x96 0x01
            &[0x1a, 0x03, 0x08, 0x96, 0x01],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn known_request_bytes_with_request_hits() {
        let d = Descriptor {
            entries: vec![("k".into(), "v".into())],
            hits_addend: None,
        };
        let bytes = encode_request("d", &[d], 300);
        assert_eq!(
            bytes,
            vec![
                0x0a, 0x01, b'd', // domain
                0x12, 0x08, 0x0a, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v', // descriptor
                0x18, 0xac, 0x02, // hits_addend = 300
            ]
        );
    }

    #[test]
    fn zero_descriptor_hits_are_present_but_empty_and_zero_request_hits_are_omitted() {
        let bytes = encode_request("", &[user("u", Some(0))], 0);
        // No domain, no request hits_addend; the descriptor carries an empty UInt64Value.
        assert_eq!(
            bytes,
            vec![
                0x12, 0x0d, 0x0a, 0x09, 0x0a, 0x04, b'u', b's', b'e', b'r', 0x12, 0x01, b'u', 0x1a,
                0x00
            ]
        );
        let back = decode_request(&bytes);
        assert_eq!(back.descriptors[0].hits_addend, Some(0));
        assert_eq!(back.hits_addend, 0);
    }

    #[test]
    fn request_round_trips_through_an_independent_decoder() {
        let descriptors = vec![
            user("key:0123456789abcdef", Some(1234)),
            Descriptor {
                entries: vec![
                    ("tenant".into(), "acme".into()),
                    ("model".into(), "gpt-4o-mini".into()),
                ],
                hits_addend: None,
            },
            user("sub:ü\u{1F600}", Some(u64::MAX)),
            Descriptor::default(),
        ];
        let bytes = encode_request("tollgate", &descriptors, u32::MAX);
        let back = decode_request(&bytes);
        assert_eq!(
            back,
            DecodedRequest {
                domain: "tollgate".into(),
                descriptors,
                hits_addend: u32::MAX,
            }
        );
    }

    #[test]
    fn long_values_use_multi_byte_lengths() {
        let long = "x".repeat(300);
        let bytes = encode_request(&long, &[user(&long, Some(1 << 40))], 7);
        let back = decode_request(&bytes);
        assert_eq!(back.domain, long);
        assert_eq!(back.descriptors[0].entries[0].1, long);
        assert_eq!(back.descriptors[0].hits_addend, Some(1 << 40));
        assert_eq!(&bytes[..3], &[0x0a, 0xac, 0x02]);
    }

    // ---- decoding ----

    /// What envoyproxy/ratelimit sends for one OK descriptor with a per-minute limit.
    fn ok_response() -> Vec<u8> {
        vec![
            0x08, 0x01, // overall_code OK
            0x12, 0x10, // statuses, 16 bytes
            0x08, 0x01, // code OK
            0x12, 0x05, 0x08, 0xe8, 0x07, 0x10, 0x02, // current_limit {1000, MINUTE}
            0x18, 0xac, 0x02, // limit_remaining 300
            0x22, 0x02, 0x08, 0x2a, // duration_until_reset {seconds 42}
        ]
    }

    #[test]
    fn decodes_a_known_ok_response() {
        let v = decode_response(&ok_response()).unwrap();
        assert_eq!(v.overall, RlsCode::Ok);
        assert!(!v.is_over_limit());
        assert_eq!(
            v.statuses,
            vec![DescriptorStatus {
                code: RlsCode::Ok,
                limit_remaining: 300,
                reset_seconds: Some(42),
            }]
        );
    }

    #[test]
    fn decodes_over_limit_with_nanos_rounding_up_and_missing_reset() {
        let bytes = vec![
            0x08, 0x02, // overall OVER_LIMIT
            0x12, 0x08, 0x08, 0x02, 0x22, 0x04, 0x08, 0x05, 0x10, 0x01, // 5s + 1ns
            0x12, 0x02, 0x08, 0x01, // OK, no reset
            0x12, 0x00, // empty status
        ];
        let v = decode_response(&bytes).unwrap();
        assert!(v.is_over_limit());
        assert_eq!(v.statuses.len(), 3);
        assert_eq!(v.statuses[0].code, RlsCode::OverLimit);
        assert_eq!(v.statuses[0].reset_seconds, Some(6));
        assert_eq!(v.statuses[0].limit_remaining, 0);
        assert_eq!(v.statuses[1].reset_seconds, None);
        assert_eq!(v.statuses[2], DescriptorStatus::default());
    }

    #[test]
    fn empty_response_is_unknown_and_unknown_codes_map_to_unknown() {
        assert_eq!(decode_response(&[]).unwrap(), RlsVerdict::default());
        let v = decode_response(&[0x08, 0x07]).unwrap();
        assert_eq!(v.overall, RlsCode::Unknown);
    }

    #[test]
    fn negative_duration_clamps_to_zero() {
        let mut status = vec![0x22];
        let mut dur = Vec::new();
        put_varint_field(&mut dur, 1, (-5i64) as u64);
        put_varint(&mut status, dur.len() as u64);
        status.extend_from_slice(&dur);
        let mut bytes = vec![0x12];
        put_varint(&mut bytes, status.len() as u64);
        bytes.extend_from_slice(&status);
        let v = decode_response(&bytes).unwrap();
        assert_eq!(v.statuses[0].reset_seconds, Some(0));
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let mut bytes = Vec::new();
        // Unknown varint field 9.
        put_varint_field(&mut bytes, 9, 123_456);
        // Unknown fixed64 field 10.
        put_tag(&mut bytes, 10, WIRE_FIXED64);
        bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        // response_headers_to_add (3), raw_body (5): length-delimited, ignored.
        put_message(&mut bytes, 3, b"\x0a\x01a\x12\x01b");
        put_message(&mut bytes, 5, b"over limit");
        // A group (field 11) with nested content and a nested group (12).
        put_tag(&mut bytes, 11, WIRE_START_GROUP);
        put_varint_field(&mut bytes, 1, 5);
        put_tag(&mut bytes, 12, WIRE_START_GROUP);
        put_message(&mut bytes, 2, b"zz");
        put_tag(&mut bytes, 12, WIRE_END_GROUP);
        put_tag(&mut bytes, 11, WIRE_END_GROUP);
        // Unknown fixed32 field 13.
        put_tag(&mut bytes, 13, WIRE_FIXED32);
        bytes.extend_from_slice(&[9, 9, 9, 9]);
        // A known field with the wrong wire type is skipped too.
        put_message(&mut bytes, 1, b"xx");
        // Then the real content.
        bytes.extend_from_slice(&ok_response());
        // And unknown fields inside a status (quota = 5) and inside the duration.
        let mut status = Vec::new();
        put_varint_field(&mut status, 1, 2);
        put_message(&mut status, 5, b"\x08\x01");
        put_tag(&mut status, 7, WIRE_FIXED32);
        status.extend_from_slice(&[0, 0, 0, 0]);
        let mut dur = Vec::new();
        put_varint_field(&mut dur, 1, 3);
        put_varint_field(&mut dur, 15, 99);
        put_message(&mut status, 4, &dur);
        put_message(&mut bytes, 2, &status);

        let v = decode_response(&bytes).unwrap();
        assert_eq!(v.overall, RlsCode::Ok);
        assert_eq!(v.statuses.len(), 2);
        assert_eq!(v.statuses[0].limit_remaining, 300);
        assert_eq!(
            v.statuses[1],
            DescriptorStatus {
                code: RlsCode::OverLimit,
                limit_remaining: 0,
                reset_seconds: Some(3),
            }
        );
    }

    #[test]
    fn repeated_scalars_take_the_last_value_and_durations_merge() {
        let mut status = Vec::new();
        put_varint_field(&mut status, 3, 10);
        put_varint_field(&mut status, 3, 20);
        put_message(&mut status, 4, &[0x08, 0x07]); // seconds 7
        put_message(&mut status, 4, &[0x10, 0x01]); // nanos 1, seconds kept
        let mut bytes = Vec::new();
        put_varint_field(&mut bytes, 1, 2);
        put_varint_field(&mut bytes, 1, 1);
        put_message(&mut bytes, 2, &status);
        let v = decode_response(&bytes).unwrap();
        assert_eq!(v.overall, RlsCode::Ok);
        assert_eq!(v.statuses[0].limit_remaining, 20);
        assert_eq!(v.statuses[0].reset_seconds, Some(8));
    }

    #[test]
    fn malformed_inputs_are_rejected() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated key varint", vec![0x80]),
            ("truncated value varint", vec![0x08, 0x80]),
            (
                "varint longer than 10 bytes",
                [&[0x08][..], &[0xff; 10], &[0x01]].concat(),
            ),
            (
                "10th varint byte overflows",
                [&[0x08][..], &[0xff; 9], &[0x02]].concat(),
            ),
            ("length past the end", vec![0x12, 0x05, 0x08]),
            ("huge length", [&[0x12][..], &[0xff; 9], &[0x01]].concat()),
            ("truncated fixed64", vec![0x09, 1, 2, 3]),
            ("truncated fixed32", vec![0x0d, 1]),
            ("field number 0", vec![0x00, 0x01]),
            ("wire type 6", vec![0x0e]),
            ("wire type 7", vec![0x0f]),
            ("stray end group", vec![0x0c]),
            ("unterminated group", vec![0x0b, 0x08, 0x01]),
            ("mismatched end group", vec![0x0b, 0x14]),
            ("bad status inside", vec![0x12, 0x02, 0x08, 0x80]),
            ("bad duration inside", vec![0x12, 0x03, 0x22, 0x01, 0x80]),
        ];
        for (name, bytes) in cases {
            assert_eq!(decode_response(&bytes), None, "{name}");
        }
        // Maximal valid varint (u64::MAX) is accepted.
        let max = [&[0x08][..], &[0xff; 9], &[0x01]].concat();
        assert_eq!(decode_response(&max).unwrap().overall, RlsCode::Unknown);
    }

    #[test]
    fn deeply_nested_groups_are_rejected_without_recursion() {
        let mut bytes = Vec::new();
        for _ in 0..10_000 {
            put_tag(&mut bytes, 20, WIRE_START_GROUP);
        }
        for _ in 0..10_000 {
            put_tag(&mut bytes, 20, WIRE_END_GROUP);
        }
        assert_eq!(decode_response(&bytes), None);
        let mut ok = Vec::new();
        for _ in 0..MAX_GROUP_DEPTH {
            put_tag(&mut ok, 20, WIRE_START_GROUP);
        }
        for _ in 0..MAX_GROUP_DEPTH {
            put_tag(&mut ok, 20, WIRE_END_GROUP);
        }
        assert!(decode_response(&ok).is_some());
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let len = (rng.next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = decode_response(&bytes);
            // Mutations of a valid response exercise deeper paths.
            let mut valid = ok_response();
            let i = (rng.next() as usize) % valid.len();
            valid[i] = rng.next() as u8;
            if round % 3 == 0 {
                valid.truncate((rng.next() as usize) % valid.len());
            }
            let _ = decode_response(&valid);
        }
    }

    #[test]
    fn every_prefix_of_a_valid_response_decodes_or_fails_cleanly() {
        let full = ok_response();
        for n in 0..full.len() {
            let _ = decode_response(&full[..n]);
        }
        assert!(decode_response(&full).is_some());
    }
}
