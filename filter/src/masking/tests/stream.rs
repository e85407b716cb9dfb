//! Streams: masking a body chunk by chunk gives what masking it whole gives — split at every
//! offset, with many secrets and noise, on adversarial and anchor-rich random inputs — with a
//! bounded hold-back, and regressions found by fuzzing.

use super::*;
use crate::masking::adversarial::{adversarial_inputs, AdversarialInput};

fn stream_all(engine: &MaskEngine, chunks: &[&[u8]]) -> Vec<u8> {
    let mut masker = StreamMasker::new(engine);
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(masker.push(chunk));
    }
    out.extend(masker.finish());
    out
}

#[test]
fn streams_split_at_every_offset_equal_whole_masking() {
    let (engine, samples) = engine_and_samples(7);
    for sample in &samples {
        let body = serde_json::json!({
            "messages": [{"role": "user", "content": plant_in_prose(&sample.snippet)}]
        })
        .to_string();
        let bytes = body.as_bytes();
        let whole = engine.mask(bytes).bytes.into_owned();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            let out = stream_all(&engine, &[a, b]);
            assert_masked(&out, sample, "stream");
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&whole),
                "{} split at {split}",
                sample.kind
            );
        }
        // Byte-by-byte and three-way splits too.
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            stream_all(&engine, &singles),
            whole,
            "{} byte by byte",
            sample.kind
        );
        for size in [2, 3, 7, 16, 61, 256] {
            let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
            assert_eq!(
                stream_all(&engine, &chunks),
                whole,
                "{} chunks of {size}",
                sample.kind
            );
        }
    }
}

#[test]
fn stream_of_many_secrets_and_noise_equals_whole() {
    let (engine, samples) = engine_and_samples(11);
    let mut rng = Rng::new(99);
    let mut body = String::new();
    for sample in &samples {
        let n = rng.below(300);
        body.push_str(&corpus::prose(&mut rng, n));
        body.push_str(&sample.snippet);
        body.push(' ');
    }
    let bytes = body.as_bytes();
    let whole = engine.mask(bytes);
    for sample in &samples {
        assert_masked(&whole.bytes, sample, "many");
    }
    for seed in 0..30 {
        let mut rng = Rng::new(seed);
        let mut chunks = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = rng.range(1, 900).min(rest.len());
            let (a, b) = rest.split_at(n);
            chunks.push(a);
            rest = b;
        }
        let out = stream_all(&engine, &chunks);
        assert_eq!(out, whole.bytes.as_ref(), "seed {seed}");
    }
    let mut masker = StreamMasker::new(Rc::new(engine.clone()));
    for chunk in bytes.chunks(512) {
        masker.push(chunk);
    }
    masker.finish();
    assert_eq!(
        masker.findings().iter().map(|f| f.count).sum::<usize>(),
        whole.total()
    );
}

#[test]
fn stream_holdback_is_bounded() {
    let engine = MaskEngine::new(&MaskSettings::default()).unwrap();
    let mut rng = Rng::new(5);
    let text = corpus::prose(&mut rng, 200 * 1024);
    let mut masker = StreamMasker::new(&engine);
    let mut forwarded = 0;
    for chunk in text.as_bytes().chunks(1024) {
        forwarded += masker.push(chunk).len();
        // Ordinary text is forwarded almost at once: only a short tail waits.
        assert!(
            masker.held_back() <= 300,
            "held back {}",
            masker.held_back()
        );
        assert!(masker.buffered() <= STREAM_CONTEXT + 300 + 1024);
    }
    forwarded += masker.finish().len();
    for f in engine.scan(text.as_bytes()) {
        eprintln!("{} {:?}", f.kind, &text[f.range]);
    }
    assert_eq!(forwarded, text.len());

    // An unterminated PEM header holds back at most the PEM cap.
    let mut masker = StreamMasker::new(&engine);
    masker.push(b"here: -----BEGIN RSA PRIVATE KEY-----\n");
    for _ in 0..400 {
        masker.push(b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\n");
        assert!(masker.held_back() <= engine.max_holdback() + 64);
    }
    let rest = masker.finish();
    assert!(!String::from_utf8_lossy(&rest).contains("QUJDREVGR0hJSktMTU5PUFFSU1RV"));
}

/// Adversarial inputs never panic, and the stream masks them as the whole body is masked. Their
/// speed is measured by the criterion bench `masking/adversarial` (`benches/benches/masking.rs`),
/// not here: a wall-clock bound fails under load.
#[test]
fn adversarial_inputs_never_panic_and_stream_as_they_mask_whole() {
    let engine = engine_and_samples(1).0;
    for AdversarialInput { name, bytes: input } in adversarial_inputs() {
        let input = &input;
        let whole = engine.mask(input).bytes.into_owned();
        let mut masker = StreamMasker::new(&engine);
        let mut streamed = Vec::new();
        for chunk in input.chunks(4096) {
            streamed.extend(masker.push(chunk));
            assert!(masker.held_back() <= engine.max_holdback() + 4096);
        }
        streamed.extend(masker.finish());
        if input.starts_with(b"-----BEGIN") {
            // A chain of overlapping unterminated blocks: pieces may be cut differently, but
            // everything is still masked.
            assert!(!String::from_utf8_lossy(&streamed).contains("-----BEGIN"));
        } else {
            assert!(streamed == whole, "stream differs on {name}");
        }
    }
}

/// Random bytes sprinkled with detector anchors mask the same cut anywhere as whole.
#[test]
fn anchor_rich_random_inputs_stream_as_they_mask_whole() {
    let engine = engine_and_samples(1).0;
    let mut rng = Rng::new(77);
    for _ in 0..200 {
        let len = rng.below(3000);
        let mut input = rng.bytes(len);
        // Sprinkle anchor-rich fragments into random bytes.
        for _ in 0..rng.below(20) {
            let at = rng.below(input.len().max(1));
            let frag = rng.pick(&[
                "sk-",
                "eyJ",
                "AIza",
                "key=",
                ": \"",
                "-----BEGIN ",
                "Bearer ",
                "\\\"",
                "hooks.slack.com/services/",
            ]);
            input.splice(at.min(input.len())..at.min(input.len()), frag.bytes());
        }
        let whole = engine.mask(&input).bytes.into_owned();
        let split = rng.below(input.len() + 1);
        let (a, b) = input.split_at(split);
        assert!(
            stream_all(&engine, &[a, b]) == whole,
            "random input {input:?}"
        );
    }
}

/// Regression (found by `make fuzz`, target `masking`): two PEM blocks sharing the `-----` of
/// the first block's end marker, the first longer than the stream's left context. Once the
/// first block's header left the context, the second was found again from its unclipped start,
/// before the forwarded point, and its marker was rendered once per drain (an empty clipped range
/// still rendered a marker, and a crossing finding was not held back).
#[test]
fn stream_renders_a_finding_reaching_into_the_context_once() {
    let engine = MaskEngine::new(&MaskSettings::default()).unwrap();
    let mut text = b"-----BEGIN R PRIVATE KEY-----".to_vec();
    text.extend(std::iter::repeat_n(b'a', 456));
    text.extend_from_slice(b"-----END RSA PRIVATE KEY-----BEGIN PRIVATE KEY----------END a");
    let whole = engine.mask(&text).bytes.into_owned();
    assert_eq!(
        String::from_utf8_lossy(&whole)
            .matches("[REDACTED:private_key")
            .count(),
        2
    );
    for cut in 0..=text.len() {
        let (a, b) = text.split_at(cut);
        assert!(
            stream_all(&engine, &[a, b, b""]) == whole,
            "split at {cut} differs"
        );
    }
}
