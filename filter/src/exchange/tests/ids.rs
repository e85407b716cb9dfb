//! Correlation ids: generated from the host's random source, never from another id.

use super::*;
use crate::correlation::uuid_v4;
use crate::exchange::host::Map;
use crate::random::IdRng;

/// The 8-byte little-endian words at the start of a UUID's hex, for each way the version
/// nibble could have hidden the generator output.
fn candidate_outputs(id: &str) -> Vec<u64> {
    let hex: String = id.chars().filter(char::is_ascii_hexdigit).collect();
    let bytes: Vec<u8> = (0..8)
        .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap())
        .collect();
    (0..16u8)
        .map(|nibble| {
            let mut b = bytes.clone();
            b[6] = (b[6] & 0x0f) | (nibble << 4);
            u64::from_le_bytes(b.try_into().unwrap())
        })
        .collect()
}

#[test]
fn a_request_id_does_not_predict_the_next_requests_ids() {
    // Behaviour 7: each request's generator was seeded with the previous request's first
    // output, which is the start of its visible id: id n gave away id n+1 and its trace ids.
    let mut host = FakeHost::new();
    let vm = vm(&mut host, "{}");
    let mut ids = Vec::new();
    let mut traces = Vec::new();
    for _ in 0..20 {
        let mut r = Driver::new(&vm);
        r.send(&mut host, &chat_headers(&[]), &[]);
        ids.push(r.ex.request_id().to_string());
        traces.push(host.get(Map::Request, "traceparent").unwrap().to_string());
    }
    for pair in ids.windows(2) {
        let predicted: Vec<String> = candidate_outputs(&pair[0])
            .into_iter()
            .map(|seed| uuid_v4(&mut IdRng::new(seed)))
            .collect();
        assert!(
            !predicted.contains(&pair[1]),
            "{} predicts {}",
            pair[0],
            pair[1]
        );
    }
    for (id, trace) in ids.iter().zip(&traces) {
        let compact: String = id.chars().filter(|c| *c != '-').collect();
        assert!(!trace.contains(&compact[..16]), "{trace} reuses {id}");
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
}

#[test]
fn ids_come_from_the_hosts_random_source() {
    let draw = |seed: u64| {
        let mut host = FakeHost::new();
        host.rng = IdRng::new(seed);
        let vm = vm(&mut host, "{}");
        let mut r = Driver::new(&vm);
        r.send(&mut host, &chat_headers(&[]), &[]);
        r.ex.request_id().to_string()
    };
    assert_eq!(draw(1), draw(1), "the same random source gives the same id");
    assert_ne!(draw(1), draw(2), "another random source gives another id");
}
