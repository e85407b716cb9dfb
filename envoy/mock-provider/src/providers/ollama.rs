//! Ollama wire format: `/api/chat` and `/api/generate` as one JSON object
//! (`stream:false`) or NDJSON (the default) whose last line has `done:true`,
//! `done_reason` and the eval counters/durations; errors are `{"error":"…"}`.

use super::{generic_message, ErrorCause, Exchange, Route, StreamFormat};
use crate::tokens::Usage;
use crate::util::{js, rfc3339_now};

/// Deterministic, realistic durations (nanoseconds) for the final object.
fn stats_json(u: &Usage) -> String {
    let prompt_eval_duration = 1_000_000 + u.prompt * 250_000;
    let eval_duration = 5_000_000 + u.completion() * 20_000_000;
    let load_duration = 2_500_000;
    let total = prompt_eval_duration + eval_duration + load_duration + 1_000_000;
    format!(
        concat!(
            "\"done_reason\":\"stop\",\"total_duration\":{},\"load_duration\":{},",
            "\"prompt_eval_count\":{},\"prompt_eval_duration\":{},\"eval_count\":{},",
            "\"eval_duration\":{}"
        ),
        total,
        load_duration,
        u.prompt,
        prompt_eval_duration,
        u.completion(),
        eval_duration
    )
}

fn object(x: &Exchange, text: &str, done: bool, stats: Option<String>) -> String {
    let payload = if x.route == Route::OllamaGenerate {
        format!("\"response\":{}", js(text))
    } else {
        format!(
            "\"message\":{{\"role\":\"assistant\",\"content\":{}}}",
            js(text)
        )
    };
    let mut s = format!(
        "{{\"model\":{},\"created_at\":{},{payload},\"done\":{done}",
        js(&x.model),
        js(&rfc3339_now())
    );
    if let Some(stats) = stats {
        s.push(',');
        s.push_str(&stats);
    }
    s.push('}');
    s
}

/// `stream:false` body (also the last NDJSON line when `text` is empty).
pub(crate) fn final_json(x: &Exchange, text: &str, u: &Usage) -> String {
    object(x, text, true, Some(stats_json(u)))
}

/// NDJSON stream.
pub(crate) struct OllamaStream {
    x: Exchange,
}

impl OllamaStream {
    pub fn new(x: &Exchange, _usage: &Usage) -> OllamaStream {
        OllamaStream { x: x.clone() }
    }
}

impl StreamFormat for OllamaStream {
    fn content_type(&self) -> &'static str {
        "application/x-ndjson"
    }

    fn head(&mut self) -> Vec<String> {
        Vec::new()
    }

    fn piece(&mut self, text: &str, _output_so_far: u64) -> String {
        format!("{}\n", object(&self.x, text, false, None))
    }

    fn tail(&mut self, _full_text: &str, usage: &Usage) -> Vec<String> {
        vec![format!("{}\n", final_json(&self.x, "", usage))]
    }
}

/// Ollama `{"error":"…"}` body.
pub(crate) fn error_json(status: u16, cause: &ErrorCause, echo_key: Option<&str>) -> String {
    let mut message = match cause {
        ErrorCause::MissingKey | ErrorCause::WrongKey => "unauthorized".to_string(),
        ErrorCause::BadRequest(m) => m.clone(),
        ErrorCause::MissingVersion => "invalid request".to_string(),
        ErrorCause::Injected => match status {
            401 => "unauthorized".to_string(),
            500 => "an error was encountered while running the model".to_string(),
            503 => "server busy, please try again.  maximum pending requests exceeded".to_string(),
            s => generic_message(s).to_lowercase(),
        },
    };
    if let Some(key) = echo_key {
        message.push_str(&format!(" (key: {key})"));
    }
    format!("{{\"error\":{}}}", js(&message))
}
