//! Request translation: an OpenAI chat-completions body rendered for Anthropic or Gemini.
//!
//! Selector (first byte): bit 0 picks the target (Anthropic, Gemini); bit 1 sets a model
//! override. The rest is the request body.
//!
//! Properties: a translated body is valid JSON (an object); the provider path is a fixed route
//! whose only variable part (the Gemini model) cannot add path segments, a query or a fragment;
//! translation is deterministic; a refusal renders as a valid OpenAI error body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate::translate::{
    openai_to_anthropic, openai_to_gemini, AnthropicOptions, GeminiOptions, TranslateError,
    Translated,
};

fn translate(selector: u8, body: &[u8]) -> Result<Translated, TranslateError> {
    let model_override = (selector & 2 != 0).then(|| "override-model-1".to_string());
    if selector & 1 == 0 {
        openai_to_anthropic(
            body,
            &AnthropicOptions {
                default_max_tokens: 1024,
                model_override,
            },
        )
    } else {
        openai_to_gemini(body, &GeminiOptions { model_override })
    }
}

fn check_path(selector: u8, path: &str) {
    if selector & 1 == 0 {
        assert_eq!(path, "/v1/messages");
        return;
    }
    let model = path
        .strip_prefix("/v1beta/models/")
        .and_then(|rest| {
            rest.strip_suffix(":generateContent")
                .or_else(|| rest.strip_suffix(":streamGenerateContent?alt=sse"))
        })
        .unwrap_or_else(|| panic!("unexpected Gemini path {path:?}"));
    assert!(
        !model.is_empty()
            && model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
        "model {model:?} escapes its path segment"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let first = translate(selector, body);
    match &first {
        Ok(t) => {
            let value: Value = serde_json::from_slice(&t.body).unwrap_or_else(|e| {
                panic!(
                    "translated body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&t.body)
                )
            });
            assert!(value.is_object(), "translated body is not an object");
            check_path(selector, &t.path);
        }
        Err(e) => {
            let error: Value = serde_json::from_slice(&e.to_openai_error_body())
                .unwrap_or_else(|err| panic!("error body is not JSON: {err}"));
            assert!(error["error"]["message"].is_string());
        }
    }
    assert_eq!(
        first,
        translate(selector, body),
        "translation is not deterministic"
    );
});
