//! Criterion benches of secret masking, natively through `tollgate::masking`: scan and mask
//! throughput on a 64 KiB chat prompt with no secret and with a few dozen secrets, and the
//! streaming masker fed 4 KiB chunks (what an error body or a masked stream costs per byte).
//!
//! `masking/adversarial`: the inputs of `tollgate::masking::adversarial` (about 100 KiB runs of a
//! detector's anchor that start candidates and never finish one), masked whole and streamed in
//! 4 KiB chunks. These were a timed unit test (it failed under load); here a regression shows as
//! a jump in time. On the 2 shared cores of the build machine (December 2026) a run took from
//! 0.13 ms (`letter_run`) to 130 ms whole / 180 ms streamed (`pem_header_run`, the slowest).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate::masking::adversarial::adversarial_inputs;
use tollgate::masking::{MaskEngine, MaskSettings, StreamMasker};

const PROMPT_BYTES: usize = 64 * 1024;
const CHUNK_BYTES: usize = 4 * 1024;

/// SplitMix64, for reproducible filler and fake secrets.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn string(&mut self, charset: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(charset[(self.next() % charset.len() as u64) as usize]))
            .collect()
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Prose and code of the kind prompts carry (words, `key: value` pairs, URLs, JSON), with no
/// secret in it.
const FILLER: &[&str] = &[
    "The deployment pipeline failed again after the last merge, and the logs say the cache ",
    "entry build-cache-v2 was not found; token usage looks normal. ",
    "Here is the function: fn parse(input: &str) -> Result<Config, Error> { let x = 3; } ",
    "See https://docs.example.com/guide?page=2&lang=en for the details. ",
    "{\"user\": \"alice\", \"retries\": 3, \"timeout_ms\": 2500, \"region\": \"eu-west-1\"} ",
    "Bearer tokens are described in RFC 6750; the password field must not be empty. ",
    "SELECT id, name FROM users WHERE created_at > '2024-01-01' ORDER BY id; ",
];

/// A JSON chat body of about `PROMPT_BYTES` whose one message holds `secrets` spread evenly.
fn prompt(secrets: &[String]) -> Vec<u8> {
    let mut content = String::with_capacity(PROMPT_BYTES);
    let mut i = 0;
    let mut next_secret = 0;
    let target = PROMPT_BYTES - 200;
    while content.len() < target {
        content.push_str(FILLER[i % FILLER.len()]);
        i += 1;
        let due = (next_secret + 1) * target / (secrets.len() + 1);
        if next_secret < secrets.len() && content.len() >= due {
            content.push_str(&secrets[next_secret]);
            content.push(' ');
            next_secret += 1;
        }
    }
    serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": content}]
    })
    .to_string()
    .into_bytes()
}

/// 32 secrets of assorted kinds.
fn secrets() -> Vec<String> {
    let mut rng = Prng(42);
    let mut out = Vec::new();
    for i in 0..32 {
        out.push(match i % 8 {
            0 => format!("sk-proj-{}A1b", rng.string(BASE64URL, 153)),
            1 => format!("sk-ant-api03-{}AA", rng.string(BASE64URL, 93)),
            2 => format!("AIza{}", rng.string(BASE64URL, 35)),
            3 => format!(
                "AKIA{}",
                rng.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
            ),
            4 => format!("ghp_{}", rng.string(ALNUM, 36)),
            5 => format!("xoxb-123456789012-1234567890123-{}", rng.string(ALNUM, 24)),
            6 => format!("api_key=\"{}\"", rng.string(ALNUM, 40)),
            _ => format!(
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIn0.{}",
                rng.string(BASE64URL, 43)
            ),
        });
    }
    out
}

fn engine() -> MaskEngine {
    MaskEngine::new(&MaskSettings::default()).expect("default settings compile")
}

fn whole_prompt(c: &mut Criterion) {
    let engine = engine();
    let clean = prompt(&[]);
    let dirty = prompt(&secrets());
    assert!(engine.scan(&clean).is_empty(), "the filler has no secret");
    assert_eq!(
        engine.scan(&dirty).len(),
        32,
        "every planted secret is found"
    );

    let mut g = c.benchmark_group("masking/prompt_64k");
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.bench_function("scan_clean", |b| b.iter(|| engine.scan(black_box(&clean))));
    g.bench_function("mask_clean", |b| {
        b.iter(|| engine.mask(black_box(&clean)).is_clean())
    });
    g.throughput(Throughput::Bytes(dirty.len() as u64));
    g.bench_function("scan_32_secrets", |b| {
        b.iter(|| engine.scan(black_box(&dirty)))
    });
    g.bench_function("mask_32_secrets", |b| {
        b.iter(|| engine.mask(black_box(&dirty)).bytes.len())
    });
    g.finish();
}

fn streaming(c: &mut Criterion) {
    let engine = Arc::new(engine());
    let clean = prompt(&[]);
    let dirty = prompt(&secrets());

    let mut g = c.benchmark_group("masking/stream_4k_chunks");
    for (name, body) in [("clean", &clean), ("32_secrets", &dirty)] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut masker = StreamMasker::new(Arc::clone(&engine));
                let mut out = 0;
                for chunk in black_box(body).chunks(CHUNK_BYTES) {
                    out += masker.push(chunk).len();
                }
                out + masker.finish().len()
            })
        });
    }
    g.finish();
}

fn adversarial(c: &mut Criterion) {
    let engine = Arc::new(engine());
    let mut g = c.benchmark_group("masking/adversarial");
    g.sample_size(10);
    for input in adversarial_inputs() {
        let bytes = input.bytes;
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("{}/whole", input.name), |b| {
            b.iter(|| engine.mask(black_box(&bytes)).bytes.len())
        });
        g.bench_function(format!("{}/stream", input.name), |b| {
            b.iter(|| {
                let mut masker = StreamMasker::new(Arc::clone(&engine));
                let mut out = 0;
                for chunk in black_box(&bytes).chunks(CHUNK_BYTES) {
                    out += masker.push(chunk).len();
                }
                out + masker.finish().len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, whole_prompt, streaming, adversarial);
criterion_main!(benches);
