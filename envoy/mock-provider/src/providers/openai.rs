//! OpenAI wire formats: chat completions (JSON and `chat.completion.chunk`
//! SSE, with `include_usage` and vLLM continuous usage), embeddings, the
//! Responses API (JSON and typed SSE events) and the `{"error":{…}}` body.

use super::{generic_message, ErrorCause, Exchange, StreamFormat};
use crate::tokens::Usage;
use crate::util::js;

const FINGERPRINT: &str = "fp_mock";

/// The full chat-completions `usage` object.
fn usage_json(u: &Usage) -> String {
    format!(
        concat!(
            "{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{},",
            "\"prompt_tokens_details\":{{\"cached_tokens\":{},\"audio_tokens\":0}},",
            "\"completion_tokens_details\":{{\"reasoning_tokens\":{},\"audio_tokens\":0,",
            "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}"
        ),
        u.prompt,
        u.completion(),
        u.total(),
        u.cached,
        u.reasoning
    )
}

/// `POST /v1/chat/completions` non-streamed body.
pub(crate) fn chat_json(x: &Exchange, text: &str, u: &Usage) -> String {
    format!(
        concat!(
            "{{\"id\":{},\"object\":\"chat.completion\",\"created\":{},\"model\":{},",
            "\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{},",
            "\"refusal\":null,\"annotations\":[]}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],",
            "\"usage\":{},\"service_tier\":\"default\",\"system_fingerprint\":{}}}"
        ),
        js(&x.id),
        x.created,
        js(&x.model),
        js(text),
        usage_json(u),
        js(FINGERPRINT)
    )
}

/// `chat.completion.chunk` SSE stream.
pub(crate) struct ChatStream {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    continuous: bool,
    prompt: u64,
    reasoning: u64,
}

impl ChatStream {
    pub fn new(x: &Exchange, usage: &Usage) -> ChatStream {
        ChatStream {
            id: x.id.clone(),
            created: x.created,
            model: x.model.clone(),
            include_usage: x.include_usage,
            continuous: x.include_usage && x.continuous_usage,
            prompt: usage.prompt,
            reasoning: usage.reasoning,
        }
    }

    fn chunk(&self, choices: &str, usage_field: &str) -> String {
        format!(
            concat!(
                "data: {{\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{},",
                "\"model\":{},\"system_fingerprint\":{},\"choices\":{}{}}}\n\n"
            ),
            js(&self.id),
            self.created,
            js(&self.model),
            js(FINGERPRINT),
            choices,
            usage_field
        )
    }

    /// The `usage` member of a chunk; `completion` is the completion tokens so far.
    fn usage_field(&self, completion: u64) -> String {
        if !self.include_usage {
            String::new()
        } else if self.continuous {
            format!(
                ",\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{}}}",
                self.prompt,
                completion,
                self.prompt + completion
            )
        } else {
            ",\"usage\":null".to_string()
        }
    }

    fn choice(delta: &str, finish: &str) -> String {
        format!("[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]")
    }
}

impl StreamFormat for ChatStream {
    fn content_type(&self) -> &'static str {
        "text/event-stream; charset=utf-8"
    }

    fn head(&mut self) -> Vec<String> {
        let delta = "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}";
        vec![self.chunk(&Self::choice(delta, "null"), &self.usage_field(0))]
    }

    fn piece(&mut self, text: &str, output_so_far: u64) -> String {
        let delta = format!("{{\"content\":{}}}", js(text));
        let completion = output_so_far + self.reasoning;
        self.chunk(&Self::choice(&delta, "null"), &self.usage_field(completion))
    }

    fn tail(&mut self, _full_text: &str, usage: &Usage) -> Vec<String> {
        let mut out = vec![self.chunk(
            &Self::choice("{}", "\"stop\""),
            &self.usage_field(usage.completion()),
        )];
        if self.include_usage {
            out.push(self.chunk("[]", &format!(",\"usage\":{}", usage_json(usage))));
        }
        out.push("data: [DONE]\n\n".to_string());
        out
    }

    fn reports_usage(&self) -> bool {
        self.include_usage
    }
}

/// A deterministic embedding component in [-1, 1).
fn embedding_value(input: usize, i: usize) -> f32 {
    let h = (input as u64 + 1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let h = (h ^ (h >> 31)) % 20_000;
    (h as f32 / 10_000.0) - 1.0
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if k <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `POST /v1/embeddings` body.
pub(crate) fn embeddings_json(x: &Exchange, u: &Usage) -> String {
    let mut data = Vec::with_capacity(x.embedding_inputs);
    for input in 0..x.embedding_inputs {
        let values: Vec<f32> = (0..x.embedding_dimensions)
            .map(|i| embedding_value(input, i))
            .collect();
        let embedding = if x.embedding_base64 {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            js(&base64(&bytes))
        } else {
            let parts: Vec<String> = values.iter().map(|v| format!("{v:.6}")).collect();
            format!("[{}]", parts.join(","))
        };
        data.push(format!(
            "{{\"object\":\"embedding\",\"index\":{input},\"embedding\":{embedding}}}"
        ));
    }
    format!(
        "{{\"object\":\"list\",\"data\":[{}],\"model\":{},\"usage\":{{\"prompt_tokens\":{},\"total_tokens\":{}}}}}",
        data.join(","),
        js(&x.model),
        u.prompt,
        u.prompt
    )
}

fn responses_usage_json(u: &Usage) -> String {
    format!(
        concat!(
            "{{\"input_tokens\":{},\"input_tokens_details\":{{\"cached_tokens\":{}}},",
            "\"output_tokens\":{},\"output_tokens_details\":{{\"reasoning_tokens\":{}}},",
            "\"total_tokens\":{}}}"
        ),
        u.prompt,
        u.cached,
        u.completion(),
        u.reasoning,
        u.total()
    )
}

fn message_item(x: &Exchange, status: &str, text: Option<&str>) -> String {
    let content = match text {
        Some(t) => format!(
            "[{{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":{}}}]",
            js(t)
        ),
        None => "[]".to_string(),
    };
    format!(
        "{{\"id\":{},\"type\":\"message\",\"status\":{},\"content\":{},\"role\":\"assistant\"}}",
        js(&format!("msg_{}", x.id)),
        js(status),
        content
    )
}

fn response_object(x: &Exchange, status: &str, output: &str, usage: &str) -> String {
    format!(
        concat!(
            "{{\"id\":{},\"object\":\"response\",\"created_at\":{},\"status\":{},",
            "\"background\":false,\"error\":null,\"incomplete_details\":null,\"instructions\":null,",
            "\"max_output_tokens\":null,\"model\":{},\"output\":{},\"parallel_tool_calls\":true,",
            "\"previous_response_id\":null,\"reasoning\":{{\"effort\":null,\"summary\":null}},",
            "\"service_tier\":\"default\",\"store\":true,\"temperature\":1.0,",
            "\"text\":{{\"format\":{{\"type\":\"text\"}}}},\"tool_choice\":\"auto\",\"tools\":[],",
            "\"top_p\":1.0,\"truncation\":\"disabled\",\"usage\":{},\"user\":null,\"metadata\":{{}}}}"
        ),
        js(&x.id),
        x.created,
        js(status),
        js(&x.model),
        output,
        usage
    )
}

/// `POST /v1/responses` non-streamed body.
pub(crate) fn responses_json(x: &Exchange, text: &str, u: &Usage) -> String {
    let output = format!("[{}]", message_item(x, "completed", Some(text)));
    response_object(x, "completed", &output, &responses_usage_json(u))
}

/// Responses API SSE stream (`event:` + `data:` with `sequence_number`).
pub(crate) struct ResponsesStream {
    x: Exchange,
    seq: u64,
}

impl ResponsesStream {
    pub fn new(x: &Exchange) -> ResponsesStream {
        ResponsesStream {
            x: x.clone(),
            seq: 0,
        }
    }

    /// One event; `fields` is the JSON object body after `type` and `sequence_number`.
    fn event(&mut self, kind: &str, fields: &str) -> String {
        let seq = self.seq;
        self.seq += 1;
        format!(
            "event: {kind}\ndata: {{\"type\":{},\"sequence_number\":{seq}{}{fields}}}\n\n",
            js(kind),
            if fields.is_empty() { "" } else { "," }
        )
    }

    fn item_fields(&self) -> String {
        format!(
            "\"item_id\":{},\"output_index\":0,\"content_index\":0",
            js(&format!("msg_{}", self.x.id))
        )
    }
}

impl StreamFormat for ResponsesStream {
    fn content_type(&self) -> &'static str {
        "text/event-stream; charset=utf-8"
    }

    fn head(&mut self) -> Vec<String> {
        let pending = response_object(&self.x, "in_progress", "[]", "null");
        let item = message_item(&self.x, "in_progress", None);
        let part = "{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":\"\"}";
        let item_fields = self.item_fields();
        vec![
            self.event("response.created", &format!("\"response\":{pending}")),
            self.event("response.in_progress", &format!("\"response\":{pending}")),
            self.event(
                "response.output_item.added",
                &format!("\"output_index\":0,\"item\":{item}"),
            ),
            self.event(
                "response.content_part.added",
                &format!("{item_fields},\"part\":{part}"),
            ),
        ]
    }

    fn piece(&mut self, text: &str, _output_so_far: u64) -> String {
        let fields = format!(
            "{},\"delta\":{},\"logprobs\":[]",
            self.item_fields(),
            js(text)
        );
        self.event("response.output_text.delta", &fields)
    }

    fn tail(&mut self, full_text: &str, usage: &Usage) -> Vec<String> {
        let item_fields = self.item_fields();
        let part = format!(
            "{{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":{}}}",
            js(full_text)
        );
        let item = message_item(&self.x, "completed", Some(full_text));
        let done = response_object(
            &self.x,
            "completed",
            &format!("[{item}]"),
            &responses_usage_json(usage),
        );
        vec![
            self.event(
                "response.output_text.done",
                &format!("{item_fields},\"text\":{},\"logprobs\":[]", js(full_text)),
            ),
            self.event(
                "response.content_part.done",
                &format!("{item_fields},\"part\":{part}"),
            ),
            self.event(
                "response.output_item.done",
                &format!("\"output_index\":0,\"item\":{item}"),
            ),
            self.event("response.completed", &format!("\"response\":{done}")),
        ]
    }
}

/// OpenAI `{"error":{"message","type","param","code"}}` body.
pub(crate) fn error_json(status: u16, cause: &ErrorCause, echo_key: Option<&str>) -> String {
    let (message, kind, code): (String, &str, Option<&str>) = match cause {
        ErrorCause::MissingKey if echo_key.is_none() => (
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.".to_string(),
            "invalid_request_error",
            None,
        ),
        ErrorCause::MissingKey | ErrorCause::WrongKey => {
            let key = echo_key.map(str::to_string).unwrap_or_else(|| "sk-****".to_string());
            (
                format!("Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."),
                "invalid_request_error",
                Some("invalid_api_key"),
            )
        }
        ErrorCause::MissingVersion | ErrorCause::BadRequest(_) => {
            let m = match cause {
                ErrorCause::BadRequest(m) => m.clone(),
                _ => "Invalid request.".to_string(),
            };
            (m, "invalid_request_error", None)
        }
        ErrorCause::Injected => {
            let (kind, code) = match status {
                400 | 404 | 413 | 422 => ("invalid_request_error", None),
                401 => ("invalid_request_error", Some("invalid_api_key")),
                403 => ("invalid_request_error", Some("unsupported_country_region_territory")),
                429 => ("requests", Some("rate_limit_exceeded")),
                503 => ("server_error", Some("overloaded")),
                s if s >= 500 => ("server_error", None),
                _ => ("api_error", None),
            };
            let mut m = if status == 401 {
                format!(
                    "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                    echo_key.unwrap_or("sk-****")
                )
            } else {
                generic_message(status).to_string()
            };
            if status != 401 {
                if let Some(key) = echo_key {
                    m.push_str(&format!(" (API key provided: {key})"));
                }
            }
            (m, kind, code)
        }
    };
    format!(
        "{{\"error\":{{\"message\":{},\"type\":{},\"param\":null,\"code\":{}}}}}",
        js(&message),
        js(kind),
        code.map(js).unwrap_or_else(|| "null".into())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn error_bodies_parse() {
        for cause in [
            ErrorCause::MissingKey,
            ErrorCause::WrongKey,
            ErrorCause::BadRequest("x".into()),
            ErrorCause::Injected,
        ] {
            let v: serde_json::Value =
                serde_json::from_str(&error_json(429, &cause, Some("sk-secret"))).unwrap();
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("sk-secret")
                    || matches!(cause, ErrorCause::BadRequest(_))
            );
        }
    }
}
