//! Anthropic Messages API wire format: the `message` JSON body, the typed SSE
//! stream (`message_start` … `message_stop`) and the
//! `{"type":"error","error":{…}}` body.

use super::{generic_message, ErrorCause, Exchange, StreamFormat};
use crate::tokens::Usage;
use crate::util::js;

fn usage_json(u: &Usage, output_tokens: u64) -> String {
    format!(
        concat!(
            "{{\"input_tokens\":{},\"cache_creation_input_tokens\":{},",
            "\"cache_read_input_tokens\":{},\"output_tokens\":{}}}"
        ),
        u.anthropic_input(),
        u.cache_creation,
        u.cached,
        output_tokens
    )
}

/// `POST /v1/messages` non-streamed body.
pub(crate) fn messages_json(x: &Exchange, text: &str, u: &Usage) -> String {
    format!(
        concat!(
            "{{\"id\":{},\"type\":\"message\",\"role\":\"assistant\",\"model\":{},",
            "\"content\":[{{\"type\":\"text\",\"text\":{}}}],\"stop_reason\":\"end_turn\",",
            "\"stop_sequence\":null,\"usage\":{}}}"
        ),
        js(&x.id),
        js(&x.model),
        js(text),
        usage_json(u, u.completion())
    )
}

/// Messages SSE stream.
pub(crate) struct MessagesStream {
    id: String,
    model: String,
    usage: Usage,
}

impl MessagesStream {
    pub fn new(x: &Exchange, usage: &Usage) -> MessagesStream {
        MessagesStream {
            id: x.id.clone(),
            model: x.model.clone(),
            usage: *usage,
        }
    }
}

fn event(kind: &str, data: String) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

impl StreamFormat for MessagesStream {
    fn content_type(&self) -> &'static str {
        "text/event-stream; charset=utf-8"
    }

    fn head(&mut self) -> Vec<String> {
        let start = format!(
            concat!(
                "{{\"type\":\"message_start\",\"message\":{{\"id\":{},\"type\":\"message\",",
                "\"role\":\"assistant\",\"model\":{},\"content\":[],\"stop_reason\":null,",
                "\"stop_sequence\":null,\"usage\":{}}}}}"
            ),
            js(&self.id),
            js(&self.model),
            usage_json(&self.usage, 1)
        );
        vec![
            event("message_start", start),
            event(
                "content_block_start",
                "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}".into(),
            ),
            event("ping", "{\"type\": \"ping\"}".into()),
        ]
    }

    fn piece(&mut self, text: &str, _output_so_far: u64) -> String {
        event(
            "content_block_delta",
            format!(
                "{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}",
                js(text)
            ),
        )
    }

    fn tail(&mut self, _full_text: &str, usage: &Usage) -> Vec<String> {
        vec![
            event(
                "content_block_stop",
                "{\"type\":\"content_block_stop\",\"index\":0}".into(),
            ),
            event(
                "message_delta",
                format!(
                    "{{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{}}}}}",
                    usage.completion()
                ),
            ),
            event("message_stop", "{\"type\":\"message_stop\"}".into()),
        ]
    }
}

/// Anthropic `{"type":"error","error":{"type","message"},"request_id"}` body.
pub(crate) fn error_json(
    status: u16,
    cause: &ErrorCause,
    echo_key: Option<&str>,
    request_id: &str,
) -> String {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    let mut message = match cause {
        ErrorCause::MissingKey | ErrorCause::WrongKey => "invalid x-api-key".to_string(),
        ErrorCause::MissingVersion => "anthropic-version: header is required".to_string(),
        ErrorCause::BadRequest(m) => m.clone(),
        ErrorCause::Injected => match status {
            401 => "invalid x-api-key".to_string(),
            429 => "Number of request tokens has exceeded your per-minute rate limit".to_string(),
            500 => "Internal server error".to_string(),
            503 | 529 => "Overloaded".to_string(),
            s => generic_message(s).to_string(),
        },
    };
    if let Some(key) = echo_key {
        message.push_str(&format!(" (x-api-key: {key})"));
    }
    format!(
        "{{\"type\":\"error\",\"error\":{{\"type\":{},\"message\":{}}},\"request_id\":{}}}",
        js(kind),
        js(&message),
        js(request_id)
    )
}
