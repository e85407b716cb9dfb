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
//!   google.protobuf.UInt64Value hits_addend = 3; }`, `Entry { string key = 1; string value = 2; }`,
//!   `RateLimitOverride { uint32 requests_per_unit = 1; RateLimitUnit unit = 2; }`
//!   (`RateLimitUnit { UNKNOWN = 0; SECOND = 1; MINUTE = 2; HOUR = 3; DAY = 4; }`)
//! - `RateLimitResponse { Code overall_code = 1; repeated DescriptorStatus statuses = 2; ... }`,
//!   `Code { UNKNOWN = 0; OK = 1; OVER_LIMIT = 2; }`
//! - `DescriptorStatus { Code code = 1; RateLimit current_limit = 2; uint32 limit_remaining = 3;
//!   google.protobuf.Duration duration_until_reset = 4; Quota quota = 5; }`,
//!   `RateLimit { string name = 3; uint32 requests_per_unit = 1; Unit unit = 2; }`
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

/// A window unit of the rate limit service (`envoy.type.v3.RateLimitUnit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RlsUnit {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day.
    Day,
}

impl RlsUnit {
    /// The wire enum value.
    pub fn wire(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 2,
            Self::Hour => 3,
            Self::Day => 4,
        }
    }

    /// The window length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
            Self::Day => 86_400,
        }
    }
}

/// A descriptor's own limit (`RateLimitOverride`): the service applies it instead of its
/// configured one (envoyproxy/ratelimit only needs the domain configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LimitOverride {
    /// Hits allowed per unit.
    pub requests_per_unit: u32,
    /// The window.
    pub unit: RlsUnit,
}

/// A descriptor with, optionally, its own limit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LimitedDescriptor {
    /// Entries and hits.
    pub descriptor: Descriptor,
    /// The limit to apply, `None` for the service's configured one.
    pub limit: Option<LimitOverride>,
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
    /// The limit that applied (`current_limit.requests_per_unit`), when the service sent it.
    pub current_limit: Option<u32>,
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
    let limited: Vec<LimitedDescriptor> = descriptors
        .iter()
        .map(|d| LimitedDescriptor {
            descriptor: d.clone(),
            limit: None,
        })
        .collect();
    encode_limited_request(domain, &limited, hits_addend)
}

/// Encodes a `RateLimitRequest` whose descriptors may carry their own limit; otherwise as
/// [`encode_request`].
pub fn encode_limited_request(
    domain: &str,
    descriptors: &[LimitedDescriptor],
    hits_addend: u32,
) -> Vec<u8> {
    let mut out = Vec::new();
    put_string(&mut out, 1, domain);
    for limited in descriptors {
        put_message(
            &mut out,
            2,
            &encode_descriptor(&limited.descriptor, limited.limit),
        );
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
fn encode_descriptor(descriptor: &Descriptor, limit: Option<LimitOverride>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in &descriptor.entries {
        let mut entry = Vec::new();
        put_string(&mut entry, 1, key);
        put_string(&mut entry, 2, value);
        put_message(&mut out, 1, &entry);
    }
    if let Some(limit) = limit {
        let mut over = Vec::new();
        put_varint_field(&mut over, 1, u64::from(limit.requests_per_unit));
        put_varint_field(&mut over, 2, limit.unit.wire());
        put_message(&mut out, 2, &over);
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
            (2, Value::Bytes(b)) => status.current_limit = Some(decode_requests_per_unit(b)?),
            // uint32 on the wire: a larger varint is truncated, as protobuf does.
            (3, Value::Varint(v)) => status.limit_remaining = v as u32,
            (4, Value::Bytes(b)) => decode_duration(b, reset.get_or_insert_with(Default::default))?,
            _ => {}
        }
    }
    status.reset_seconds = reset.map(DurationParts::whole_seconds_up);
    Some(status)
}

/// The `requests_per_unit` of a `RateLimitResponse.RateLimit` (0 when absent).
fn decode_requests_per_unit(bytes: &[u8]) -> Option<u32> {
    let mut value = 0;
    let mut reader = Reader::new(bytes);
    while let Some((field, v)) = reader.next_field()? {
        if let (1, Value::Varint(v)) = (field, v) {
            value = v as u32;
        }
    }
    Some(value)
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
mod tests;
