//! The rate limit service's answer (`RateLimitResponse`, bare protobuf) as
//! `ratelimit_rpc::decode_response` reads it.
//!
//! Two inputs from one byte string, chosen by the first byte:
//! - even: the rest is decoded as is (any bytes: truncated varints, bad wire types, deep groups);
//!   it must not panic, must be deterministic, and whatever decodes keeps decoding the same when a
//!   well-formed unknown field is appended (unknown fields are skipped, never fatal);
//! - odd: the rest describes a verdict (codes, remaining counts, reset durations, unknown fields of
//!   every wire type to interleave); the harness encodes it with its own encoder and the decoder
//!   must return exactly that verdict, and `None` for every strict prefix that cuts a field.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::ratelimit_rpc::{decode_response, DescriptorStatus, RlsCode, RlsVerdict};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        raw(rest);
    } else {
        round_trip(rest);
    }
});

fn raw(bytes: &[u8]) {
    let first = decode_response(bytes);
    assert_eq!(first, decode_response(bytes), "not deterministic");
    if let Some(verdict) = first {
        // Unknown field 99 of each simple wire type appended: still the same verdict.
        for tail in [
            &[0x98, 0x06, 0x2a][..],
            &[0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8][..],
            &[0x9a, 0x06, 2, b'h', b'i'][..],
            &[0x9d, 0x06, 1, 2, 3, 4][..],
            &[0x9b, 0x06, 0x08, 0x01, 0x9c, 0x06][..],
        ] {
            let mut longer = bytes.to_vec();
            longer.extend_from_slice(tail);
            assert_eq!(
                decode_response(&longer).as_ref(),
                Some(&verdict),
                "an appended unknown field changed the verdict"
            );
        }
    }
}

/// A byte source that yields zeros when exhausted.
struct Source<'a>(&'a [u8]);

impl Source<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        let width = self.byte() % 9;
        (0..width).fold(0u64, |acc, _| (acc << 8) | u64::from(self.byte()))
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    put_varint(out, (field << 3) | wire_type);
}

fn put_len(out: &mut Vec<u8>, field: u64, body: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// Maybe writes an unknown field (numbers 16..=79, never a known one) of a fuzz-chosen type.
fn maybe_unknown(out: &mut Vec<u8>, src: &mut Source<'_>) {
    let choice = src.byte();
    if choice % 4 != 0 {
        return;
    }
    let field = 16 + u64::from(choice >> 2);
    match src.byte() % 5 {
        0 => {
            put_key(out, field, 0);
            put_varint(out, src.u64());
        }
        1 => {
            put_key(out, field, 1);
            out.extend_from_slice(&src.u64().to_le_bytes());
        }
        2 => {
            let body: Vec<u8> = (0..src.byte() % 8).map(|_| src.byte()).collect();
            put_len(out, field, &body);
        }
        3 => {
            put_key(out, field, 5);
            out.extend_from_slice(&(src.u64() as u32).to_le_bytes());
        }
        _ => {
            // A group holding one varint field.
            put_key(out, field, 3);
            put_key(out, 1, 0);
            put_varint(out, src.u64());
            put_key(out, field, 4);
        }
    }
}

fn code_wire(code: u8) -> (u64, RlsCode) {
    match code % 4 {
        0 => (0, RlsCode::Unknown),
        1 => (1, RlsCode::Ok),
        2 => (2, RlsCode::OverLimit),
        _ => (7, RlsCode::Unknown),
    }
}

fn round_trip(bytes: &[u8]) {
    let mut src = Source(bytes);
    let mut expected = RlsVerdict::default();
    let mut wire = Vec::new();
    let statuses = src.byte() % 6;
    for _ in 0..statuses {
        maybe_unknown(&mut wire, &mut src);
        let mut body = Vec::new();
        let mut status = DescriptorStatus::default();
        let (code_value, code) = code_wire(src.byte());
        if code_value != 0 {
            put_key(&mut body, 1, 0);
            put_varint(&mut body, code_value);
            status.code = code;
        }
        maybe_unknown(&mut body, &mut src);
        let remaining = src.u64();
        if remaining != 0 {
            put_key(&mut body, 3, 0);
            put_varint(&mut body, remaining);
            // uint32 on the wire: protobuf truncates a wider varint.
            status.limit_remaining = remaining as u32;
        }
        if src.byte() % 2 == 1 {
            let seconds = src.u64() as i64 % 100_000;
            let nanos = (src.u64() % 1_000_000_000) as i32;
            let mut duration = Vec::new();
            if seconds != 0 {
                put_key(&mut duration, 1, 0);
                put_varint(&mut duration, seconds as u64);
            }
            if nanos != 0 {
                put_key(&mut duration, 2, 0);
                put_varint(&mut duration, nanos as u64);
            }
            put_len(&mut body, 4, &duration);
            let whole = u64::try_from(seconds).unwrap_or(0);
            status.reset_seconds = Some(if nanos > 0 && seconds >= 0 {
                whole + 1
            } else {
                whole
            });
        }
        maybe_unknown(&mut body, &mut src);
        put_len(&mut wire, 2, &body);
        expected.statuses.push(status);
    }
    let (overall_value, overall) = code_wire(src.byte());
    if overall_value != 0 {
        put_key(&mut wire, 1, 0);
        put_varint(&mut wire, overall_value);
        expected.overall = overall;
    }
    maybe_unknown(&mut wire, &mut src);

    assert_eq!(
        decode_response(&wire).as_ref(),
        Some(&expected),
        "encoded {wire:02x?}"
    );
    // Every strict prefix ends inside a top-level field unless it ends on a field boundary;
    // either way the decoder must answer without panicking, and a prefix that cuts a field
    // must be refused.
    let boundaries = field_boundaries(&wire);
    for cut in 0..wire.len() {
        let result = decode_response(&wire[..cut]);
        if !boundaries.contains(&cut) {
            assert_eq!(
                result, None,
                "prefix of {cut} bytes cuts a field: {wire:02x?}"
            );
        }
    }
}

/// Offsets where a top-level field of `wire` (as the harness wrote it) ends.
fn field_boundaries(wire: &[u8]) -> Vec<usize> {
    let mut out = vec![0];
    let mut pos = 0;
    let varint = |pos: &mut usize| -> u64 {
        let mut value = 0u64;
        let mut shift = 0;
        while let Some(&b) = wire.get(*pos) {
            *pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        value
    };
    let mut depth = 0usize;
    while pos < wire.len() {
        let key = varint(&mut pos);
        match key & 7 {
            0 => {
                varint(&mut pos);
            }
            1 => pos += 8,
            2 => {
                let len = varint(&mut pos) as usize;
                pos += len;
            }
            3 => depth += 1,
            4 => depth = depth.saturating_sub(1),
            _ => pos += 4,
        }
        if depth == 0 {
            out.push(pos);
        }
    }
    out
}
