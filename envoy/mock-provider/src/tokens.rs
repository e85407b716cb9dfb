//! Deterministic token accounting and reply text.
//!
//! Prompt tokens are `ceil(chars / 4)` (at least 1) over every text the request
//! carries (system prompt and all messages); completion tokens are the number of
//! words of the reply; reasoning tokens come on top of the completion tokens and
//! cached / cache-creation tokens are carved out of the prompt tokens.

use serde_json::Value;

/// Prompt tokens for `chars` characters of input text.
pub fn prompt_tokens_for_chars(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

/// The reply the mock gives: `This is a mock <kind> reply to: <first 40 chars of the last user message>`,
/// whitespace normalised so that the words joined by single spaces are the text.
pub fn reply_text(kind: &str, last_user_message: &str) -> String {
    let head: String = last_user_message.chars().take(40).collect();
    let raw = format!("This is a mock {kind} reply to: {head}");
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The usage a response reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// All prompt tokens (including cached and cache-creation ones).
    pub prompt: u64,
    /// Visible output tokens (words of the reply).
    pub output: u64,
    /// Hidden reasoning tokens (billed as output).
    pub reasoning: u64,
    /// Prompt tokens served from cache (<= prompt).
    pub cached: u64,
    /// Prompt tokens written to cache (Anthropic only; <= prompt - cached).
    pub cache_creation: u64,
}

impl Usage {
    /// Builds a usage, clamping the cache figures into the prompt.
    pub fn new(
        prompt: u64,
        output: u64,
        reasoning: u64,
        cached: u64,
        cache_creation: u64,
    ) -> Usage {
        let cached = cached.min(prompt);
        let cache_creation = cache_creation.min(prompt - cached);
        Usage {
            prompt,
            output,
            reasoning,
            cached,
            cache_creation,
        }
    }

    /// Output tokens as billed (visible + reasoning): OpenAI `completion_tokens`,
    /// Anthropic `output_tokens`.
    pub fn completion(&self) -> u64 {
        self.output + self.reasoning
    }

    /// Prompt + completion.
    pub fn total(&self) -> u64 {
        self.prompt + self.completion()
    }

    /// Anthropic `input_tokens`: the prompt tokens that were neither read from nor written to cache.
    pub fn anthropic_input(&self) -> u64 {
        self.prompt - self.cached - self.cache_creation
    }
}

/// Concatenated text of a content value in any of the providers' shapes:
/// a string, an array of parts, or a part object with `text` (or nested `content` / `parts`).
pub fn collect_text(v: &Value) -> String {
    let mut out = String::new();
    push_text(v, &mut out);
    out
}

fn push_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => items.iter().for_each(|i| push_text(i, out)),
        Value::Object(o) => {
            if let Some(Value::String(t)) = o.get("text") {
                out.push_str(t);
            } else if let Some(c) = o.get("content") {
                push_text(c, out);
            } else if let Some(p) = o.get("parts") {
                push_text(p, out);
            }
        }
        _ => {}
    }
}

/// The texts of a request: all of them (for prompt tokens) and the last user message (for the reply).
#[derive(Clone, Debug, Default)]
pub struct PromptText {
    /// Characters over all message contents and system prompts.
    pub chars: usize,
    /// Text of the last user message.
    pub last_user: String,
}

impl PromptText {
    /// Adds one message's text; `is_user` marks it as the latest user message so far.
    pub fn add(&mut self, text: &str, is_user: bool) {
        self.chars += text.chars().count();
        if is_user {
            self.last_user = text.to_string();
        }
    }

    /// Prompt tokens for the collected text.
    pub fn tokens(&self) -> u64 {
        prompt_tokens_for_chars(self.chars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts() {
        assert_eq!(prompt_tokens_for_chars(0), 1);
        assert_eq!(prompt_tokens_for_chars(4), 1);
        assert_eq!(prompt_tokens_for_chars(5), 2);
        let r = reply_text(
            "openai",
            "Hello\n  there, how are you doing today? This part is cut off",
        );
        assert_eq!(
            r,
            "This is a mock openai reply to: Hello there, how are you doing today?"
        );
        let u = Usage::new(10, 5, 2, 20, 3);
        assert_eq!(
            (u.cached, u.cache_creation, u.anthropic_input()),
            (10, 0, 0)
        );
        assert_eq!(u.total(), 17);
    }

    #[test]
    fn text_shapes() {
        assert_eq!(collect_text(&json!("hi")), "hi");
        assert_eq!(
            collect_text(&json!([{"type":"text","text":"a"},{"type":"image_url"},{"text":"b"}])),
            "ab"
        );
        assert_eq!(collect_text(&json!({"parts":[{"text":"g"}]})), "g");
    }
}
