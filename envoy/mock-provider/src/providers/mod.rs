//! Wire formats of the mocked providers: which API a request targets, what it
//! asks for ([`Exchange`]), and how the JSON bodies, stream events and error
//! bodies of each provider look. Bodies are written by hand so that field
//! order matches what the real services send.

pub(crate) mod anthropic;
pub(crate) mod gemini;
pub(crate) mod ollama;
pub(crate) mod openai;

use crate::tokens::{PromptText, Usage};
use serde_json::Value;

/// The family of API, which decides auth headers and error-body shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Provider {
    OpenAi,
    Anthropic,
    Gemini,
    Ollama,
}

/// The endpoint a request targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// OpenAI (and vLLM) `POST …/chat/completions`.
    ChatCompletions,
    /// OpenAI `POST …/embeddings`.
    Embeddings,
    /// OpenAI Responses API `POST …/responses`.
    Responses,
    /// Anthropic `POST /v1/messages`.
    Messages,
    /// Anthropic `POST /v1/messages/count_tokens`.
    CountTokens,
    /// Gemini `POST …/models/{model}:generateContent` / `:streamGenerateContent`.
    Gemini { model: String, stream: bool },
    /// Ollama `POST /api/chat`.
    OllamaChat,
    /// Ollama `POST /api/generate`.
    OllamaGenerate,
}

impl Route {
    /// Maps method + path (without query) to a provider route.
    pub fn detect(method: &str, path: &str) -> Option<Route> {
        if method != "POST" {
            return None;
        }
        let path = path.trim_end_matches('/');
        if path.ends_with("/chat/completions") {
            Some(Route::ChatCompletions)
        } else if path.ends_with("/embeddings") {
            Some(Route::Embeddings)
        } else if path.ends_with("/responses") {
            Some(Route::Responses)
        } else if path.ends_with("/messages/count_tokens") {
            Some(Route::CountTokens)
        } else if path.ends_with("/v1/messages") || path == "/messages" {
            Some(Route::Messages)
        } else if path == "/api/chat" {
            Some(Route::OllamaChat)
        } else if path == "/api/generate" {
            Some(Route::OllamaGenerate)
        } else if let Some((_, rest)) = path.rsplit_once("/models/") {
            let (model, action) = rest.split_once(':')?;
            if model.is_empty() {
                return None;
            }
            let stream = match action {
                "generateContent" => false,
                "streamGenerateContent" => true,
                _ => return None,
            };
            Some(Route::Gemini {
                model: model.to_string(),
                stream,
            })
        } else {
            None
        }
    }

    /// The API family of this route.
    pub fn provider(&self) -> Provider {
        match self {
            Route::ChatCompletions | Route::Embeddings | Route::Responses => Provider::OpenAi,
            Route::Messages | Route::CountTokens => Provider::Anthropic,
            Route::Gemini { .. } => Provider::Gemini,
            Route::OllamaChat | Route::OllamaGenerate => Provider::Ollama,
        }
    }

    /// The `<kind>` word of the reply sentence.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::ChatCompletions => "openai",
            Route::Embeddings => "embeddings",
            Route::Responses => "responses",
            Route::Messages | Route::CountTokens => "anthropic",
            Route::Gemini { .. } => "gemini",
            Route::OllamaChat | Route::OllamaGenerate => "ollama",
        }
    }
}

/// What one request asks for, extracted from its body.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    pub route: Route,
    pub model: String,
    /// Response id (provider-specific prefix + sequence number).
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    pub prompt: PromptText,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    /// vLLM `stream_options.continuous_usage_stats` (or the instance option).
    pub continuous_usage: bool,
    /// Gemini `alt=sse` (otherwise a streamed JSON array).
    pub gemini_sse: bool,
    /// Embeddings: number of inputs.
    pub embedding_inputs: usize,
    /// Embeddings: vector length.
    pub embedding_dimensions: usize,
    /// Embeddings: `encoding_format: "base64"`.
    pub embedding_base64: bool,
}

impl Exchange {
    /// Parses the request body for `route`.
    pub fn parse(
        route: Route,
        body: &Value,
        seq: u64,
        gemini_sse: bool,
    ) -> Result<Exchange, String> {
        if !body.is_object() {
            return Err("request body must be a JSON object".into());
        }
        let str_field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let mut prompt = PromptText::default();
        let mut x = Exchange {
            route: route.clone(),
            model: String::new(),
            id: String::new(),
            created: crate::util::unix_now(),
            prompt: PromptText::default(),
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: false,
            continuous_usage: false,
            gemini_sse,
            embedding_inputs: 0,
            embedding_dimensions: 0,
            embedding_base64: false,
        };
        match &route {
            Route::ChatCompletions => {
                x.model = str_field("model").unwrap_or_else(|| "gpt-4o-mini".into());
                x.id = format!("chatcmpl-mock{seq:010}");
                let messages = body
                    .get("messages")
                    .and_then(Value::as_array)
                    .ok_or("`messages` must be an array")?;
                add_messages(&mut prompt, messages);
                let opts = body.get("stream_options");
                x.include_usage = opts
                    .and_then(|o| o.get("include_usage"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                x.continuous_usage = opts
                    .and_then(|o| o.get("continuous_usage_stats"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
            }
            Route::Embeddings => {
                x.model = str_field("model").unwrap_or_else(|| "text-embedding-3-small".into());
                x.stream = false;
                let input = body.get("input").ok_or("`input` is required")?;
                let mut token_inputs = 0u64;
                let inputs: Vec<&Value> = match input {
                    Value::Array(a) if a.iter().all(Value::is_number) && !a.is_empty() => {
                        vec![input]
                    }
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                for i in &inputs {
                    match i {
                        Value::String(s) => prompt.add(s, true),
                        Value::Array(ids) => token_inputs += ids.len() as u64,
                        _ => return Err("`input` must be a string, strings or token arrays".into()),
                    }
                }
                // Token-array inputs count one token per id: fold them into chars.
                prompt.chars += (token_inputs * 4) as usize;
                x.embedding_inputs = inputs.len();
                x.embedding_dimensions = body
                    .get("dimensions")
                    .and_then(Value::as_u64)
                    .map(|d| d.clamp(1, 8192) as usize)
                    .unwrap_or(1536);
                if x.embedding_inputs.saturating_mul(x.embedding_dimensions) > 4_000_000 {
                    return Err(
                        "too many embedding values requested (inputs x dimensions > 4M)".into(),
                    );
                }
                x.embedding_base64 = str_field("encoding_format").as_deref() == Some("base64");
            }
            Route::Responses => {
                x.model = str_field("model").unwrap_or_else(|| "gpt-4o-mini".into());
                x.id = format!("resp_mock{seq:010}");
                if let Some(i) = body.get("instructions").and_then(Value::as_str) {
                    prompt.add(i, false);
                }
                match body.get("input") {
                    Some(Value::String(s)) => prompt.add(s, true),
                    Some(Value::Array(items)) => add_messages(&mut prompt, items),
                    _ => return Err("`input` must be a string or an array".into()),
                }
            }
            Route::Messages | Route::CountTokens => {
                x.model = str_field("model").unwrap_or_else(|| "claude-sonnet-4-5".into());
                x.id = format!("msg_mock{seq:010}");
                if let Some(system) = body.get("system") {
                    prompt.add(&crate::tokens::collect_text(system), false);
                }
                let messages = body
                    .get("messages")
                    .and_then(Value::as_array)
                    .ok_or("messages: Field required")?;
                add_messages(&mut prompt, messages);
            }
            Route::Gemini { model, stream } => {
                x.model = model.clone();
                x.stream = *stream;
                x.id = format!("mockresp{seq:010}");
                for key in ["systemInstruction", "system_instruction"] {
                    if let Some(si) = body.get(key) {
                        prompt.add(&crate::tokens::collect_text(si), false);
                    }
                }
                let contents = body
                    .get("contents")
                    .and_then(Value::as_array)
                    .ok_or("`contents` must be an array")?;
                for c in contents {
                    let role = c.get("role").and_then(Value::as_str).unwrap_or("user");
                    let text = c
                        .get("parts")
                        .map(crate::tokens::collect_text)
                        .unwrap_or_default();
                    prompt.add(&text, role == "user");
                }
            }
            Route::OllamaChat | Route::OllamaGenerate => {
                x.model = str_field("model").unwrap_or_else(|| "llama3.2".into());
                x.stream = body.get("stream").and_then(Value::as_bool).unwrap_or(true);
                if route == Route::OllamaChat {
                    let messages = body
                        .get("messages")
                        .and_then(Value::as_array)
                        .ok_or("`messages` must be an array")?;
                    add_messages(&mut prompt, messages);
                } else {
                    if let Some(s) = body.get("system").and_then(Value::as_str) {
                        prompt.add(s, false);
                    }
                    prompt.add(
                        body.get("prompt").and_then(Value::as_str).unwrap_or(""),
                        true,
                    );
                }
            }
        }
        x.prompt = prompt;
        Ok(x)
    }
}

fn add_messages(prompt: &mut PromptText, messages: &[Value]) {
    for m in messages {
        let text = match m {
            Value::String(s) => s.clone(),
            other => other
                .get("content")
                .map(crate::tokens::collect_text)
                .unwrap_or_default(),
        };
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        prompt.add(&text, role == "user");
    }
}

/// One provider's stream: events before the content, one event per content
/// piece, and the closing events (usage / terminator) that `truncate` omits.
pub(crate) trait StreamFormat {
    /// `content-type` of the streamed body.
    fn content_type(&self) -> &'static str;
    /// Events sent before any content.
    fn head(&mut self) -> Vec<String>;
    /// The event carrying one content piece; `output_so_far` counts this piece.
    fn piece(&mut self, text: &str, output_so_far: u64) -> String;
    /// Closing events, given the whole streamed text and final usage.
    fn tail(&mut self, full_text: &str, usage: &Usage) -> Vec<String>;
    /// Whether a complete stream tells the client the usage.
    fn reports_usage(&self) -> bool {
        true
    }
}

/// The stream format of an exchange.
pub(crate) fn stream_format(x: &Exchange, usage: &Usage) -> Box<dyn StreamFormat + Send> {
    match &x.route {
        Route::Responses => Box::new(openai::ResponsesStream::new(x)),
        Route::Messages | Route::CountTokens => Box::new(anthropic::MessagesStream::new(x, usage)),
        Route::Gemini { .. } => Box::new(gemini::GeminiStream::new(x, usage)),
        Route::OllamaChat | Route::OllamaGenerate => Box::new(ollama::OllamaStream::new(x, usage)),
        Route::ChatCompletions | Route::Embeddings => Box::new(openai::ChatStream::new(x, usage)),
    }
}

/// The non-streamed JSON body of an exchange.
pub(crate) fn json_body(x: &Exchange, text: &str, usage: &Usage) -> String {
    match &x.route {
        Route::ChatCompletions => openai::chat_json(x, text, usage),
        Route::Embeddings => openai::embeddings_json(x, usage),
        Route::Responses => openai::responses_json(x, text, usage),
        Route::Messages => anthropic::messages_json(x, text, usage),
        Route::CountTokens => format!("{{\"input_tokens\":{}}}", usage.prompt),
        Route::Gemini { .. } => gemini::generate_json(x, text, usage),
        Route::OllamaChat | Route::OllamaGenerate => ollama::final_json(x, text, usage),
    }
}

/// Why an error response is sent; decides the message text.
#[derive(Clone, Debug)]
pub(crate) enum ErrorCause {
    /// No API key in the request.
    MissingKey,
    /// A key that is not the configured one.
    WrongKey,
    /// Anthropic request without `anthropic-version`.
    MissingVersion,
    /// Body could not be understood.
    BadRequest(String),
    /// Injected fault with this status.
    Injected,
}

/// The error body for `status` in `provider`'s shape; with `echo_key` the
/// message contains the received key verbatim (as e.g. OpenAI's 401 does).
pub(crate) fn error_body(
    provider: Provider,
    status: u16,
    cause: &ErrorCause,
    echo_key: Option<&str>,
    request_id: &str,
) -> String {
    match provider {
        Provider::OpenAi => openai::error_json(status, cause, echo_key),
        Provider::Anthropic => anthropic::error_json(status, cause, echo_key, request_id),
        Provider::Gemini => gemini::error_json(status, cause, echo_key),
        Provider::Ollama => ollama::error_json(status, cause, echo_key),
    }
}

/// Generic message for an injected status.
pub(crate) fn generic_message(status: u16) -> &'static str {
    match status {
        400 => "Invalid request.",
        401 => "Invalid authentication.",
        403 => "Permission denied.",
        404 => "Not found.",
        408 => "Request timed out.",
        413 => "Request too large.",
        429 => "Rate limit reached for requests. Please try again later.",
        500 => "The server had an error while processing your request. Sorry about that!",
        502 => "Bad gateway.",
        503 => "The engine is currently overloaded, please try again later.",
        504 => "Gateway timeout.",
        529 => "Overloaded",
        _ => "Mock error.",
    }
}
