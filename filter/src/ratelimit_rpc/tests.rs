//! Tests of the rate limit wire format.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;

// ---- a hand-built decoder of RateLimitRequest, independent of the module's reader ----

#[derive(Debug, Default, PartialEq)]
struct DecodedRequest {
    domain: String,
    descriptors: Vec<Descriptor>,
    /// Each descriptor's override as (requests_per_unit, unit wire value).
    limits: Vec<Option<(u64, u64)>>,
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
                let mut limit = None;
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
                        (2, 2) => {
                            let (mut rpu, mut unit) = (0, 0);
                            for (lf, lw, lv, _) in fields(&b2) {
                                assert_eq!(lw, 0);
                                match lf {
                                    1 => rpu = lv,
                                    2 => unit = lv,
                                    other => panic!("override field {other}"),
                                }
                            }
                            limit = Some((rpu, unit));
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
                req.limits.push(limit);
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
            limits: vec![None; descriptors.len()],
            descriptors,
            hits_addend: u32::MAX,
        }
    );
}

#[test]
fn limit_overrides_are_encoded_between_entries_and_hits() {
    let limited = vec![
        LimitedDescriptor {
            descriptor: user("alice", Some(700)),
            limit: Some(LimitOverride {
                requests_per_unit: 2000,
                unit: RlsUnit::Minute,
            }),
        },
        LimitedDescriptor {
            descriptor: user("bob", None),
            limit: None,
        },
        LimitedDescriptor {
            descriptor: user("carol", Some(0)),
            limit: Some(LimitOverride {
                requests_per_unit: u32::MAX,
                unit: RlsUnit::Day,
            }),
        },
    ];
    let bytes = encode_limited_request("tollgate", &limited, 0);
    let back = decode_request(&bytes);
    assert_eq!(
        back.limits,
        vec![Some((2000, 2)), None, Some((u64::from(u32::MAX), 4))]
    );
    assert_eq!(back.descriptors[0], user("alice", Some(700)));
    assert_eq!(back.descriptors[2].hits_addend, Some(0));
    // Known bytes of the first descriptor: entry, then override {2000, MINUTE}, then hits 700.
    let first = encode_limited_request("d", &limited[..1], 0);
    let expected: Vec<u8> = [
        &[0x0a, 0x01, b'd', 0x12, 0x1b][..],
        &[0x0a, 0x0d, 0x0a, 0x04],
        b"user",
        &[0x12, 0x05],
        b"alice",
        &[0x12, 0x05, 0x08, 0xd0, 0x0f, 0x10, 0x02],
        &[0x1a, 0x03, 0x08, 0xbc, 0x05],
    ]
    .concat();
    assert_eq!(first, expected);
    // Units map to their wire values and lengths.
    let units = [
        RlsUnit::Second,
        RlsUnit::Minute,
        RlsUnit::Hour,
        RlsUnit::Day,
    ];
    let wire: Vec<u64> = units.iter().map(|u| u.wire()).collect();
    let secs: Vec<u64> = units.iter().map(|u| u.seconds()).collect();
    assert_eq!(wire, vec![1, 2, 3, 4]);
    assert_eq!(secs, vec![1, 60, 3600, 86_400]);
    // Without overrides, the plain encoder writes the same bytes.
    let plain = vec![user("bob", None)];
    assert_eq!(
        encode_request("tollgate", &plain, 5),
        encode_limited_request("tollgate", &limited[1..2], 5)
    );
}

#[test]
fn current_limit_is_read_from_the_status() {
    let mut limit = Vec::new();
    put_message(&mut limit, 3, b"name");
    put_varint_field(&mut limit, 1, 4_000_000_000);
    put_varint_field(&mut limit, 2, 4);
    let mut status = Vec::new();
    put_varint_field(&mut status, 1, 1);
    put_message(&mut status, 2, &limit);
    put_varint_field(&mut status, 3, 12);
    let mut bytes = Vec::new();
    put_message(&mut bytes, 2, &status);
    put_message(&mut bytes, 2, &[0x12, 0x00]);
    let v = decode_response(&bytes).unwrap();
    assert_eq!(v.statuses[0].current_limit, Some(4_000_000_000));
    assert_eq!(v.statuses[0].limit_remaining, 12);
    assert_eq!(v.statuses[1].current_limit, Some(0), "present but empty");
    assert_eq!(decode_response(&[0x12, 0x03, 0x12, 0x01, 0x80]), None);
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
            current_limit: Some(1000),
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
            current_limit: None,
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
