//! Which LLM API a request speaks, decided from its path, and how its response body is framed,
//! decided from the response content type.

/// The LLM API families whose usage this module understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiKind {
    /// OpenAI (and compatible: vLLM, Ollama `/v1`, Azure) `.../chat/completions`.
    OpenAiChat,
    /// OpenAI Responses API `.../responses`.
    OpenAiResponses,
    /// OpenAI embeddings `.../embeddings`.
    OpenAiEmbeddings,
    /// Anthropic Messages `.../v1/messages`.
    Anthropic,
    /// Gemini / Vertex `.../models/{model}:generateContent` and `:streamGenerateContent`.
    Gemini,
    /// Ollama native `/api/chat` and `/api/generate`.
    OllamaChat,
}

impl ApiKind {
    /// A short stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKind::OpenAiChat => "openai_chat",
            ApiKind::OpenAiResponses => "openai_responses",
            ApiKind::OpenAiEmbeddings => "openai_embeddings",
            ApiKind::Anthropic => "anthropic",
            ApiKind::Gemini => "gemini",
            ApiKind::OllamaChat => "ollama",
        }
    }
}

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyFraming {
    /// `text/event-stream`.
    Sse,
    /// `application/x-ndjson` (Ollama native streaming).
    Ndjson,
    /// Anything else: one JSON document (Gemini's non-SSE stream is one JSON array).
    Json,
}

impl BodyFraming {
    /// Decides the framing from a `content-type` header value (parameters and case ignored).
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        let Some(ct) = content_type else {
            return BodyFraming::Json;
        };
        let media = ct.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("text/event-stream") {
            BodyFraming::Sse
        } else if media.eq_ignore_ascii_case("application/x-ndjson")
            || media.eq_ignore_ascii_case("application/ndjson")
            || media.eq_ignore_ascii_case("application/jsonl")
        {
            BodyFraming::Ndjson
        } else {
            BodyFraming::Json
        }
    }

    /// True for the streamed framings (SSE and NDJSON).
    pub fn is_streaming(self) -> bool {
        !matches!(self, BodyFraming::Json)
    }
}

/// Strips the query string and fragment and any trailing slashes from a request path.
fn path_only(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    path.get(..end).unwrap_or(path).trim_end_matches('/')
}

/// Classifies a request path; prefixes (`/openai/v1/...`, `/anthropic/v1/...`, Azure deployment
/// paths) and query strings are tolerated. Returns `None` for paths with no usage to account.
pub fn classify_path(path: &str) -> Option<ApiKind> {
    let p = path_only(path);
    if gemini_method(p).is_some() {
        return Some(ApiKind::Gemini);
    }
    if p.ends_with("/chat/completions") {
        Some(ApiKind::OpenAiChat)
    } else if p.ends_with("/responses") {
        Some(ApiKind::OpenAiResponses)
    } else if p.ends_with("/embeddings") {
        Some(ApiKind::OpenAiEmbeddings)
    } else if p.ends_with("/v1/messages") || p == "/messages" {
        Some(ApiKind::Anthropic)
    } else if p.ends_with("/api/chat") || p.ends_with("/api/generate") {
        Some(ApiKind::OllamaChat)
    } else {
        None
    }
}

/// For a Gemini path, the model segment and the method (`generateContent`,
/// `streamGenerateContent`); `None` when the path is not a Gemini generation call.
fn gemini_method(path: &str) -> Option<(&str, &str)> {
    let last = path.rsplit('/').next()?;
    let (model, method) = last.split_once(':')?;
    if !matches!(method, "generateContent" | "streamGenerateContent") || model.is_empty() {
        return None;
    }
    let parent = path.get(..path.len().saturating_sub(last.len() + 1))?;
    let collection = parent.rsplit('/').next()?;
    matches!(collection, "models" | "tunedModels").then_some((model, method))
}

/// The model named in a Gemini path, e.g. `gemini-2.0-flash` from
/// `/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse`.
pub fn gemini_model_from_path(path: &str) -> Option<&str> {
    gemini_method(path_only(path)).map(|(model, _)| model)
}

/// True when a Gemini path asks for a streamed response (`:streamGenerateContent`).
pub fn is_gemini_stream_path(path: &str) -> bool {
    matches!(
        gemini_method(path_only(path)),
        Some((_, "streamGenerateContent"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_known_paths() {
        let cases = [
            ("/v1/chat/completions", Some(ApiKind::OpenAiChat)),
            ("/openai/v1/chat/completions?x=1", Some(ApiKind::OpenAiChat)),
            (
                "/openai/deployments/gpt4/chat/completions?api-version=2024-10-21",
                Some(ApiKind::OpenAiChat),
            ),
            ("/v1/responses", Some(ApiKind::OpenAiResponses)),
            ("/v1/responses/resp_123", None),
            ("/v1/embeddings/", Some(ApiKind::OpenAiEmbeddings)),
            ("/v1/messages", Some(ApiKind::Anthropic)),
            ("/anthropic/v1/messages?beta=true", Some(ApiKind::Anthropic)),
            ("/v1/messages/count_tokens", None),
            ("/v1/threads/t1/messages", None),
            (
                "/v1beta/models/gemini-2.0-flash:generateContent",
                Some(ApiKind::Gemini),
            ),
            (
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
                Some(ApiKind::Gemini),
            ),
            (
                "/v1/projects/p/locations/us/publishers/google/models/gemini-1.5:generateContent",
                Some(ApiKind::Gemini),
            ),
            ("/v1beta/models/gemini-2.0-flash:countTokens", None),
            ("/api/chat", Some(ApiKind::OllamaChat)),
            ("/ollama/api/generate", Some(ApiKind::OllamaChat)),
            ("/api/tags", None),
            ("", None),
        ];
        for (path, kind) in cases {
            assert_eq!(classify_path(path), kind, "{path}");
        }
    }

    #[test]
    fn extracts_gemini_model() {
        assert_eq!(
            gemini_model_from_path("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"),
            Some("gemini-2.0-flash")
        );
        assert!(is_gemini_stream_path(
            "/v1beta/models/g:streamGenerateContent?alt=sse"
        ));
        assert!(!is_gemini_stream_path("/v1beta/models/g:generateContent"));
        assert_eq!(gemini_model_from_path("/v1/chat/completions"), None);
        assert_eq!(
            gemini_model_from_path("/v1beta/models/:generateContent"),
            None
        );
    }

    #[test]
    fn framing_from_content_type() {
        assert_eq!(
            BodyFraming::from_content_type(Some("text/event-stream; charset=utf-8")),
            BodyFraming::Sse
        );
        assert_eq!(
            BodyFraming::from_content_type(Some("Application/X-NDJSON")),
            BodyFraming::Ndjson
        );
        assert_eq!(
            BodyFraming::from_content_type(Some("application/json")),
            BodyFraming::Json
        );
        assert_eq!(BodyFraming::from_content_type(None), BodyFraming::Json);
    }
}
