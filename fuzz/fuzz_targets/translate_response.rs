//! Response translation: Anthropic and Gemini response bodies, and provider error bodies,
//! rendered as OpenAI bodies.
//!
//! Selector (first byte, modulo 4): 0 Anthropic message, 1 Gemini response, 2 Anthropic error
//! body, 3 Gemini error body (the second byte is the HTTP status class for errors).
//!
//! Properties: a translated response is a JSON `chat.completion` with a `choices` array; an
//! error body is always a JSON OpenAI error with a string message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate::translate::{
    anthropic_to_openai_at, client_status_for_provider_status, gemini_to_openai_at,
    provider_error_to_openai, SourceFormat,
};

fn json(bytes: &[u8], what: &str) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "{what} is not JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 | 1 => {
            let translated = if selector % 4 == 0 {
                anthropic_to_openai_at(rest, "client-model", 1_700_000_000)
            } else {
                gemini_to_openai_at(rest, "client-model", 1_700_000_000)
            };
            match translated {
                Ok(body) => {
                    let value = json(&body, "translated response");
                    assert_eq!(value["object"], "chat.completion");
                    assert!(value["choices"].is_array(), "no choices: {value}");
                    assert_eq!(value["model"], "client-model");
                }
                Err(e) => {
                    let value = json(&e.to_openai_error_body(), "error body");
                    assert!(value["error"]["message"].is_string());
                }
            }
        }
        _ => {
            let (status_byte, body) = rest.split_first().unwrap_or((&0, &[]));
            let status = 400 + u16::from(*status_byte) % 200;
            let provider = if selector % 4 == 2 {
                SourceFormat::Anthropic
            } else {
                SourceFormat::Gemini
            };
            let value = json(
                &provider_error_to_openai(status, body, provider),
                "error body",
            );
            assert!(value["error"]["message"].is_string(), "no message: {value}");
            let client_status = client_status_for_provider_status(status);
            assert!((400..600).contains(&client_status));
        }
    }
});
