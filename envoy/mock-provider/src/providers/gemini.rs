//! Gemini `generateContent` wire format: the `GenerateContentResponse` JSON,
//! the `streamGenerateContent` stream (SSE with `alt=sse`, whose events are
//! separated by CRLF CRLF as Google's servers do, otherwise a streamed JSON
//! array) and the `{"error":{"code","message","status"}}` body.

use super::{generic_message, ErrorCause, Exchange, StreamFormat};
use crate::tokens::Usage;
use crate::util::js;

fn usage_json(u: &Usage, output_so_far: u64, last: bool) -> String {
    let mut s = format!(
        "{{\"promptTokenCount\":{},\"candidatesTokenCount\":{},\"totalTokenCount\":{}",
        u.prompt,
        output_so_far,
        u.prompt + output_so_far + u.reasoning
    );
    if u.cached > 0 {
        s.push_str(&format!(",\"cachedContentTokenCount\":{}", u.cached));
    }
    if u.reasoning > 0 {
        s.push_str(&format!(",\"thoughtsTokenCount\":{}", u.reasoning));
    }
    if last {
        s.push_str(&format!(
            ",\"promptTokensDetails\":[{{\"modality\":\"TEXT\",\"tokenCount\":{}}}]",
            u.prompt
        ));
    }
    s.push('}');
    s
}

fn response_json(x: &Exchange, text: &str, finish: bool, usage: &str) -> String {
    format!(
        concat!(
            "{{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":{}}}],\"role\":\"model\"}}{},",
            "\"index\":0}}],\"usageMetadata\":{},\"modelVersion\":{},\"responseId\":{}}}"
        ),
        js(text),
        if finish {
            ",\"finishReason\":\"STOP\""
        } else {
            ""
        },
        usage,
        js(&x.model),
        js(&x.id)
    )
}

/// `:generateContent` body.
pub(crate) fn generate_json(x: &Exchange, text: &str, u: &Usage) -> String {
    response_json(x, text, true, &usage_json(u, u.output, true))
}

/// `:streamGenerateContent` stream.
pub(crate) struct GeminiStream {
    x: Exchange,
    usage: Usage,
    sent_first: bool,
}

impl GeminiStream {
    pub fn new(x: &Exchange, usage: &Usage) -> GeminiStream {
        GeminiStream {
            x: x.clone(),
            usage: *usage,
            sent_first: false,
        }
    }

    fn frame(&mut self, json: String) -> String {
        if self.x.gemini_sse {
            format!("data: {json}\r\n\r\n")
        } else {
            let sep = if self.sent_first { ",\r\n" } else { "" };
            self.sent_first = true;
            format!("{sep}{json}")
        }
    }
}

impl StreamFormat for GeminiStream {
    fn content_type(&self) -> &'static str {
        if self.x.gemini_sse {
            "text/event-stream"
        } else {
            "application/json; charset=UTF-8"
        }
    }

    fn head(&mut self) -> Vec<String> {
        if self.x.gemini_sse {
            Vec::new()
        } else {
            vec!["[".to_string()]
        }
    }

    fn piece(&mut self, text: &str, output_so_far: u64) -> String {
        let usage = usage_json(&self.usage, output_so_far, false);
        let json = response_json(&self.x, text, false, &usage);
        self.frame(json)
    }

    fn tail(&mut self, _full_text: &str, usage: &Usage) -> Vec<String> {
        let json = response_json(&self.x, "", true, &usage_json(usage, usage.output, true));
        let mut out = vec![self.frame(json)];
        if !self.x.gemini_sse {
            out.push("]".to_string());
        }
        out
    }
}

/// Google `{"error":{"code","message","status"}}` body.
pub(crate) fn error_json(status: u16, cause: &ErrorCause, echo_key: Option<&str>) -> String {
    let grpc = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    };
    let mut message = match cause {
        ErrorCause::MissingKey | ErrorCause::WrongKey => {
            "API key not valid. Please pass a valid API key.".to_string()
        }
        ErrorCause::BadRequest(m) => m.clone(),
        ErrorCause::MissingVersion => "Invalid request.".to_string(),
        ErrorCause::Injected => match status {
            401 => "API key not valid. Please pass a valid API key.".to_string(),
            429 => "Resource has been exhausted (e.g. check quota).".to_string(),
            500 => "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting".to_string(),
            503 => "The model is overloaded. Please try again later.".to_string(),
            s => generic_message(s).to_string(),
        },
    };
    if let Some(key) = echo_key {
        message.push_str(&format!(" (key: {key})"));
    }
    format!(
        "{{\"error\":{{\"code\":{status},\"message\":{},\"status\":{}}}}}",
        js(&message),
        js(grpc)
    )
}
