//! Criterion benches of virtual API keys, natively through `tollgate::keys`'s public API: the
//! whole `authenticate` decision for one request (find the key in the headers, one SHA-256, a map
//! lookup and a constant-time compare) against 1 and 10,000 inline keys, and a refused key. Its
//! natural comparison is `jwt_authenticate/es256_cached` in `benches/jwt.rs`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use tollgate::keys::secret::{encode, KeyDigest};
use tollgate::keys::{authenticate, compile, inline_availability, KeyOutcome, RawKeys};

const NOW: u64 = 1_750_000_000;

fn key(i: u32) -> String {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&KeyDigest::of(&format!("bench-{i}")).0);
    encode(&bytes)
}

fn settings(n: u32) -> tollgate::keys::KeySettings {
    let entries: Vec<_> = (0..n)
        .map(|i| {
            json!({"id": format!("k{i}"), "sha256": KeyDigest::of(&key(i)).to_hex(),
                "owner": "o", "team": format!("t{}", i % 10), "models": ["gpt-4o*"]})
        })
        .collect();
    let raw: RawKeys = serde_json::from_value(json!({ "inline": entries })).expect("raw keys");
    compile(raw, "keys").expect("valid keys")
}

fn keys(c: &mut Criterion) {
    for n in [1u32, 10_000] {
        let s = settings(n);
        let available = inline_availability(&s).expect("inline");
        let headers: Vec<(String, String)> = vec![
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), format!("Bearer {}", key(n / 2))),
        ];
        c.bench_function(&format!("keys_authenticate/{n}_inline_keys"), |b| {
            b.iter(|| {
                let outcome = authenticate(&s, black_box(&headers), &available, NOW);
                assert!(matches!(outcome, KeyOutcome::Allow(_)));
            })
        });
    }
    let s = settings(10_000);
    let available = inline_availability(&s).expect("inline");
    let headers: Vec<(String, String)> = vec![("x-api-key".into(), key(99_999))];
    c.bench_function("keys_authenticate/unknown_key_10000", |b| {
        b.iter(|| {
            let outcome = authenticate(&s, black_box(&headers), &available, NOW);
            assert!(matches!(outcome, KeyOutcome::Deny(_)));
        })
    });
}

criterion_group!(benches, keys);
criterion_main!(benches);
