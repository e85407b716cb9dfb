//! Tests of the masking engine against generated fake secrets (planted in prompts, error
//! bodies, streams split at every offset, log lines) and an ordinary-text corpus for the
//! false-positive rate. Streaming is tested in [`stream`].
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::rc::Rc;

use super::corpus::{self, Rng, Sample, ALNUM};
use super::*;

mod stream;

fn settings_with_custom() -> MaskSettings {
    MaskSettings {
        custom_patterns: vec![CustomPattern {
            name: "acme_key".to_owned(),
            prefix: "acme_".to_owned(),
            charset: "A-Za-z0-9".to_owned(),
            min_len: 32,
            max_len: 32,
        }],
        ..MaskSettings::default()
    }
}

/// An engine with the custom pattern and a known literal, plus every sample it must mask.
fn engine_and_samples(seed: u64) -> (MaskEngine, Vec<Sample>) {
    let mut rng = Rng::new(seed);
    let mut samples = corpus::samples(&mut rng);
    samples.push(corpus::custom_sample(&mut rng));
    let literal = corpus::known_literal(&mut rng);
    samples.push(Sample {
        kind: KNOWN_SECRET_KIND,
        secret: literal.clone(),
        snippet: literal.clone(),
    });
    let engine = MaskEngine::with_known_secrets(&settings_with_custom(), [literal]).unwrap();
    (engine, samples)
}

fn assert_masked(output: &[u8], sample: &Sample, context: &str) {
    let text = String::from_utf8_lossy(output);
    for needle in sample.needles() {
        assert!(
            !text.contains(&needle),
            "{context}: {} secret survived: {needle:?}\nin: {text}",
            sample.kind
        );
    }
}

fn plant_in_prose(snippet: &str) -> String {
    format!("Hello, here is the config I use:\n{snippet}\nCan you tell me why it fails?")
}

#[test]
fn every_shape_is_found_with_its_kind() {
    for seed in 0..40 {
        let (engine, samples) = engine_and_samples(seed);
        for sample in &samples {
            let text = plant_in_prose(&sample.snippet);
            let findings = engine.scan(text.as_bytes());
            let secret_at = text.find(&sample.secret).unwrap();
            let covering = findings
                .iter()
                .find(|f| {
                    f.range.start <= secret_at && f.range.end >= secret_at + sample.secret.len()
                })
                .unwrap_or_else(|| {
                    panic!(
                        "seed {seed}: {} not found in {text:?}: {findings:?}",
                        sample.kind
                    )
                });
            assert_eq!(covering.kind, sample.kind, "seed {seed}: {text}");
            let masked = engine.mask(text.as_bytes());
            assert_masked(&masked.bytes, sample, "prose");
            assert!(masked.findings.iter().any(|f| f.kind == sample.kind));
        }
    }
}

#[test]
fn planted_in_json_prompts_and_error_bodies_stays_valid_json() {
    for seed in 100..130 {
        let (engine, samples) = engine_and_samples(seed);
        for sample in &samples {
            let prompt = serde_json::json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": plant_in_prose(&sample.snippet)}
                ],
                "max_tokens": 512
            })
            .to_string();
            let error = serde_json::json!({"error": {
                "message": format!("Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.", sample.snippet),
                "type": "invalid_request_error",
                "code": "invalid_api_key"
            }})
            .to_string();
            for body in [prompt, error] {
                let masked = engine.mask(body.as_bytes());
                assert!(
                    !masked.is_clean(),
                    "{}: nothing masked in {body}",
                    sample.kind
                );
                let escaped: Vec<Sample> = vec![Sample {
                    secret: serde_json::to_string(&sample.secret)
                        .unwrap()
                        .trim_matches('"')
                        .to_owned(),
                    ..sample.clone()
                }];
                assert_masked(&masked.bytes, &escaped[0], "json");
                assert_masked(&masked.bytes, sample, "json");
                let parsed: serde_json::Value = serde_json::from_slice(&masked.bytes)
                    .unwrap_or_else(|e| panic!("{}: invalid JSON after masking: {e}", sample.kind));
                assert!(parsed.is_object());
            }
        }
    }
}

#[test]
fn log_lines_are_masked() {
    let (engine, samples) = engine_and_samples(21);
    for sample in &samples {
        let lines = [
            format!(
                "GET /v1/models?alt=json&key={} HTTP/1.1 200 12ms",
                sample.secret
            ),
            format!("upstream said: {} (status 401)", sample.snippet),
            format!("authorization: Bearer {}", sample.secret),
        ];
        for line in &lines {
            let masked = engine.mask_log_line(line);
            if !sample.secret.contains('\n') {
                assert!(
                    !masked.contains(&sample.secret),
                    "{}: {masked}",
                    sample.kind
                );
            }
        }
    }
    let line = "GET /v1beta/models/gemini:generateContent?key=abc&alt=sse 200";
    assert_eq!(
        engine.mask_log_line(line),
        "GET /v1beta/models/gemini:generateContent?key=[REDACTED]&alt=sse 200"
    );
}

#[test]
fn ordinary_text_false_positive_rate() {
    let engine = engine_and_samples(1).0;
    let mut total_bytes = 0usize;
    let mut total_findings = 0usize;
    let corpora = (2024..2028).flat_map(|seed| corpus::ordinary_corpus(&mut Rng::new(seed)));
    for (label, text) in corpora {
        let findings = engine.scan(text.as_bytes());
        for f in &findings {
            eprintln!(
                "false positive in {label}: {} {:?}",
                f.kind,
                String::from_utf8_lossy(&text.as_bytes()[f.range.clone()])
            );
        }
        total_bytes += text.len();
        total_findings += findings.len();
    }
    let per_kb = total_findings as f64 / (total_bytes as f64 / 1024.0);
    eprintln!(
        "false positives: {total_findings} in {} KiB = {per_kb:.4} per KiB",
        total_bytes / 1024
    );
    assert!(total_bytes > 1024 * 1024);
    // Threshold: fewer than 1 false positive per 100 KiB of ordinary text.
    assert!(per_kb < 0.01, "false-positive rate {per_kb} per KiB");
}

#[test]
fn anthropic_wins_over_openai_and_specific_over_generic() {
    let engine = MaskEngine::new(&MaskSettings::default()).unwrap();
    let mut rng = Rng::new(3);
    let key = format!("sk-ant-api03-{}AA", rng.string(93, ALNUM));
    let findings = engine.scan(format!("ANTHROPIC_API_KEY={key}").as_bytes());
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, "anthropic_key");
    let openai = format!(
        "sk-proj-{}T3BlbkFJ{}",
        rng.string(74, ALNUM),
        rng.string(74, ALNUM)
    );
    let findings = engine.scan(format!("{{\"api_key\": \"{openai}\"}}").as_bytes());
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, "openai_key");
}

#[test]
fn mask_format_default_and_custom_templates() {
    let engine = MaskEngine::new(&MaskSettings::default()).unwrap();
    let key = format!("ghp_{}a1b2", "Z".repeat(32));
    let text = format!("token {key} end");
    let masked = engine.mask(text.as_bytes());
    assert_eq!(
        String::from_utf8(masked.bytes.into_owned()).unwrap(),
        "token [REDACTED:github_token …a1b2] end"
    );
    assert_eq!(
        masked.findings,
        vec![FindingSummary {
            kind: "github_token".to_owned(),
            count: 1
        }]
    );

    let settings = MaskSettings {
        template: "<secret:{kind}>".to_owned(),
        ..MaskSettings::default()
    };
    let engine = MaskEngine::new(&settings).unwrap();
    let masked = engine.mask_str(&text);
    assert_eq!(masked, "token <secret:github_token> end");

    for bad in ["a\"b", "a\\b", "{kind} {oops}", "", "x\ny", "{kind"] {
        let settings = MaskSettings {
            template: bad.to_owned(),
            ..MaskSettings::default()
        };
        assert!(MaskEngine::new(&settings).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn short_secrets_do_not_reveal_last4() {
    let engine = MaskEngine::new(&MaskSettings::default()).unwrap();
    let masked = engine.mask_str("password=Xy7$kq2!pz");
    assert_eq!(masked, "password=[REDACTED:generic_assignment …****]");
}

#[test]
fn allow_list_exact_and_prefix() {
    let settings = MaskSettings {
        allow_values: vec!["AKIAIOSFODNN7EXAMPLE".to_owned()],
        allow_prefixes: vec!["sk-proj-DOCS".to_owned()],
        ..MaskSettings::default()
    };
    let engine = MaskEngine::new(&settings).unwrap();
    let mut rng = Rng::new(8);
    let doc_key = format!(
        "sk-proj-DOCS{}T3BlbkFJ{}",
        rng.string(60, ALNUM),
        rng.string(60, ALNUM)
    );
    let real_id = format!("AKIA{}", rng.string(16, corpus::BASE32));
    let text = format!("id AKIAIOSFODNN7EXAMPLE and {doc_key} but {real_id}.");
    let findings = engine.scan(text.as_bytes());
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].kind, "aws_access_key_id");
    assert_eq!(&text[findings[0].range.clone()], real_id);
}

#[test]
fn known_literals_are_masked_whatever_their_shape() {
    let settings = MaskSettings {
        allow_prefixes: vec!["ollama".to_owned()],
        ..MaskSettings::default()
    };
    let engine =
        MaskEngine::with_known_secrets(&settings, ["ollama-local-dev", "plain words key"]).unwrap();
    let masked = engine.mask_str("a xollama-local-devx b and plain words key here");
    assert!(!masked.contains("ollama-local-dev"), "{masked}");
    assert!(!masked.contains("plain words key"), "{masked}");
    assert_eq!(masked.matches("known_secret").count(), 2);
    assert!(MaskEngine::with_known_secrets(&settings, ["short"]).is_err());
}

#[test]
fn custom_patterns_and_their_validation() {
    let engine = MaskEngine::new(&settings_with_custom()).unwrap();
    let mut rng = Rng::new(12);
    let good = format!("acme_{}", rng.string(32, ALNUM));
    let too_long = format!("acme_{}", rng.string(40, ALNUM));
    let findings =
        engine.scan(format!("{good} {too_long} xacme_{}", rng.string(32, ALNUM)).as_bytes());
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, "acme_key");

    let hex = MaskSettings {
        custom_patterns: vec![CustomPattern {
            name: "internal_token".to_owned(),
            prefix: "itk-".to_owned(),
            charset: "hex_lower".to_owned(),
            min_len: 16,
            max_len: 64,
        }],
        ..MaskSettings::default()
    };
    let engine = MaskEngine::new(&hex).unwrap();
    assert_eq!(engine.scan(b"use itk-0123456789abcdef0123 now").len(), 1);
    assert_eq!(engine.scan(b"use itk-0123456789ABCDEF0123 now").len(), 0);

    let bad = |f: &dyn Fn(&mut CustomPattern)| {
        let mut s = settings_with_custom();
        f(&mut s.custom_patterns[0]);
        MaskEngine::new(&s).is_err()
    };
    assert!(bad(&|p| p.name = "Bad-Name".to_owned()));
    assert!(bad(&|p| p.name = "openai_key".to_owned()));
    assert!(bad(&|p| p.prefix = String::new()));
    assert!(bad(&|p| p.charset = "z-a".to_owned()));
    assert!(bad(&|p| p.charset = "a b".to_owned()));
    assert!(bad(&|p| p.min_len = 0));
    assert!(bad(&|p| p.max_len = 5000));
    let mut twice = settings_with_custom();
    twice.custom_patterns.push(twice.custom_patterns[0].clone());
    assert!(MaskEngine::new(&twice).is_err());
    let json = r#"{"custom_patterns":[{"name":"x_key","prefix":"x_","charset":"alnum","min_len":8,"max_len":8}],"disabled_detectors":["bearer_token"]}"#;
    let settings: MaskSettings = serde_json::from_str(json).unwrap();
    assert!(MaskEngine::new(&settings).is_ok());
    let unknown = MaskSettings {
        disabled_detectors: vec!["nope".to_owned()],
        ..MaskSettings::default()
    };
    assert!(MaskEngine::new(&unknown).is_err());
}

#[test]
fn disabled_detectors_are_off() {
    let settings = MaskSettings {
        disabled_detectors: vec!["bearer_token".to_owned(), "jwt".to_owned()],
        ..MaskSettings::default()
    };
    let engine = MaskEngine::new(&settings).unwrap();
    assert!(engine.scan(b"Authorization: Bearer abc123def456ghi").len() <= 1);
    let mut rng = Rng::new(1);
    let token = corpus::jwt(&mut rng);
    assert!(engine.scan(format!("see {token} ok").as_bytes()).is_empty());
}

#[test]
fn generic_assignment_threshold() {
    let engine = MaskEngine::new(&MaskSettings::default()).unwrap();
    let not_secrets = [
        "api_key = os.environ[\"OPENAI_API_KEY\"]",
        "token: null",
        "\"max_tokens\": 1024",
        "key=value",
        "password: ********",
        "api_key=YOUR_API_KEY_HERE",
        "api_key=sk-...",
        "token = get_token()",
        "\"public_key\": \"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\"",
        "secret: ${SECRET_FROM_ENV}",
        "token_url: https://auth.example.com/oauth2/token",
        "if token == expected_token2 {",
        "\"next_page_token\": \"CiAKGjBpNDd2Nmp2Zml6cTViOTRfMmpk\"",
        "api_key: [REDACTED:openai_key …a1b2]",
        "password=hunter2",
    ];
    for text in not_secrets {
        assert!(engine.scan(text.as_bytes()).is_empty(), "flagged: {text}");
    }
    let secrets = [
        "api_key=Zk3pQ9vLx2Tr8mWn4Yb",
        "{\\\"api_key\\\": \\\"Zk3pQ9vLx2Tr8mWn4Yb\\\"}",
        "Authorization: Basic dXNlcjpwYXNzd29yZDEyMw==",
        "DATABASE_PASSWORD := \"Tr0ub4dor&3x\"",
        "password=Summer2024!",
        "session_token=4f9a1c2e8b7d6a5f3e2d1c0b",
    ];
    for text in secrets {
        assert_eq!(engine.scan(text.as_bytes()).len(), 1, "missed: {text}");
    }
}

#[test]
fn private_keys_in_json_truncated_and_capped() {
    let engine = MaskEngine::new(&MaskSettings::default()).unwrap();
    let mut rng = Rng::new(4);
    let pem = corpus::private_key(&mut rng, "RSA PRIVATE KEY", 20);
    let body = serde_json::json!({"content": format!("my key:\n{pem}\nthanks")}).to_string();
    let masked = engine.mask(body.as_bytes());
    let out = String::from_utf8(masked.bytes.into_owned()).unwrap();
    assert!(out.contains("my key:\\n[REDACTED:private_key"), "{out}");
    assert!(out.contains("\\nthanks"), "{out}");
    // Truncated: no END marker; the body is masked up to the closing quote.
    let truncated = &pem[..pem.len() / 2];
    let body = serde_json::json!({"content": truncated, "n": 1}).to_string();
    let out = engine.mask(body.as_bytes()).bytes.into_owned();
    serde_json::from_slice::<serde_json::Value>(&out).unwrap();
    let sample_line = truncated.lines().nth(2).unwrap();
    assert!(!String::from_utf8_lossy(&out).contains(sample_line));
    // Longer than the 8 KiB cap (documented limit): the first 8 KiB are masked.
    let huge = corpus::private_key(&mut rng, "PRIVATE KEY", 400);
    let out = engine.mask(huge.as_bytes()).bytes.into_owned();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("[REDACTED:private_key"));
    let lines_in_cap = 8192 / 65 - 1;
    for line in huge.lines().skip(1).take(lines_in_cap) {
        assert!(!out.contains(line), "leaked {line}");
    }
}

#[test]
fn header_values_are_masked_by_name() {
    assert_eq!(
        mask_header_value("Authorization", "Bearer abcdefghijklmnop1234"),
        "Bearer [REDACTED …1234]"
    );
    assert_eq!(
        mask_header_value("proxy-authorization", "Basic dXNlcjpwYXNzd29yZA=="),
        "Basic [REDACTED]"
    );
    assert_eq!(mask_header_value("x-api-key", "short"), "[REDACTED]");
    assert_eq!(
        mask_header_value("X-Goog-Api-Key", "AIzaSyA1234567890abcdefghijklmnopqrstu"),
        "[REDACTED …rstu]"
    );
    assert_eq!(
        mask_header_value("api-key", "0123456789abcdef0123456789abcdef"),
        "[REDACTED …cdef]"
    );
    assert_eq!(
        mask_header_value("cookie", "session=abc123; theme=dark"),
        "session=[REDACTED]; theme=[REDACTED]"
    );
    assert_eq!(
        mask_header_value("set-cookie", "sid=xyz789; Path=/; HttpOnly"),
        "sid=[REDACTED]; Path=/; HttpOnly"
    );
    assert_eq!(
        mask_header_value("content-type", "application/json"),
        "application/json"
    );
}

#[test]
fn query_parameters_are_masked_by_name() {
    assert_eq!(
        mask_query("/v1beta/models/gemini-pro:streamGenerateContent?alt=sse&key=AIzaXYZ"),
        "/v1beta/models/gemini-pro:streamGenerateContent?alt=sse&key=[REDACTED]"
    );
    assert_eq!(
        mask_query("/cb?access_token=abc&state=1&API_KEY=z#frag"),
        "/cb?access_token=[REDACTED]&state=1&API_KEY=[REDACTED]#frag"
    );
    assert_eq!(mask_query("/v1/chat/completions"), "/v1/chat/completions");
    assert_eq!(mask_query("/x?monkey=1&token="), "/x?monkey=1&token=");
}

#[test]
fn secret_kinds_are_sorted_and_unique_whatever_the_order_found() {
    let engine = MaskEngine::new(&MaskSettings::default()).unwrap();
    let mut rng = Rng::new(11);
    let ghp = format!("ghp_{}", rng.string(36, ALNUM));
    let ant = format!("sk-ant-api03-{}AA", rng.string(93, ALNUM));
    let aws = format!("AKIA{}", rng.string(16, corpus::BASE32));
    let body = format!("{{\"content\":\"{ghp} {ant} {ghp} {aws} {ant}\"}}");
    // What it returned before: every finding's kind, sorted, duplicates dropped.
    let mut want: Vec<String> = engine
        .scan(body.as_bytes())
        .into_iter()
        .map(|f| f.kind)
        .collect();
    want.sort();
    want.dedup();
    assert!(want.len() >= 3, "{want:?}");
    assert_eq!(secret_kinds(&engine, body.as_bytes()), want);
}

#[test]
fn prompt_policy() {
    let engine = MaskEngine::new(&MaskSettings::default()).unwrap();
    let mut rng = Rng::new(9);
    let key = format!("ghp_{}", rng.string(36, ALNUM));
    let body = format!("{{\"content\":\"use {key}\"}}");
    assert_eq!(
        apply_prompt_action(&engine, PromptAction::Off, body.as_bytes()),
        PromptVerdict::Forward
    );
    match apply_prompt_action(&engine, PromptAction::Redact, body.as_bytes()) {
        PromptVerdict::Redacted(m) => assert!(!String::from_utf8_lossy(&m.bytes).contains(&key)),
        other => panic!("{other:?}"),
    }
    match apply_prompt_action(&engine, PromptAction::Block, body.as_bytes()) {
        PromptVerdict::Blocked { kinds } => assert_eq!(kinds, vec!["github_token".to_owned()]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        apply_prompt_action(&engine, PromptAction::Block, b"{\"content\":\"hello\"}"),
        PromptVerdict::Forward
    );
    let parsed: Vec<PromptAction> = serde_json::from_str(r#"["off","redact","block"]"#).unwrap();
    assert_eq!(
        parsed,
        vec![PromptAction::Off, PromptAction::Redact, PromptAction::Block]
    );
    assert_eq!(
        serde_json::to_string(&PromptAction::Block).unwrap(),
        "\"block\""
    );
    assert!(serde_json::from_str::<PromptAction>("\"Block\"").is_err());
}

#[test]
fn masking_is_idempotent() {
    let (engine, samples) = engine_and_samples(31);
    let text: String = samples.iter().map(|s| plant_in_prose(&s.snippet)).collect();
    let once = engine.mask(text.as_bytes()).bytes.into_owned();
    let twice = engine.mask(&once);
    assert!(twice.is_clean(), "{:?}", twice.findings);
}
