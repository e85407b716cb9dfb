//! Provider routing: turns an OpenAI chat-completions request into the request for the provider
//! the failover plan picked — path, body (translated for Anthropic and Gemini), the headers that
//! carry the gateway's key for that provider, and the Envoy cluster to send it to. Pure: the host
//! layer applies the result and resolves API keys.

use crate::failover::{ProviderKind, ProviderSettings};
use crate::translate::{
    openai_to_anthropic, openai_to_gemini, AnthropicOptions, GeminiOptions, SourceFormat,
    TranslateError, ANTHROPIC_VERSION,
};

/// The request header the Envoy route reads the cluster from (`cluster_header`).
pub const CLUSTER_HEADER: &str = "x-tollgate-cluster";

/// Client credentials removed before a request goes to a provider: the gateway holds the keys.
pub const CLIENT_CREDENTIAL_HEADERS: &[&str] =
    &["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// Output tokens requested from Anthropic when the client named no limit (it requires one).
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u64 = 4096;

/// The upstream request for one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// Envoy cluster.
    pub cluster: String,
    /// `:path`.
    pub path: String,
    /// `:authority`, when the provider sets one.
    pub authority: Option<String>,
    /// Request body.
    pub body: Vec<u8>,
    /// Headers to set (the key header is added by the host, which holds the key).
    pub headers: Vec<(String, String)>,
    /// How the key is presented: header name and value prefix.
    pub key_header: (&'static str, &'static str),
    /// The response format to translate back from (`None`: already OpenAI).
    pub translate_from: Option<SourceFormat>,
    /// The client asked for a stream.
    pub stream: bool,
    /// The client asked for `stream_options.include_usage`.
    pub include_usage: bool,
}

/// How a provider of `kind` is given the gateway's key: header name and value prefix.
pub fn key_header(kind: ProviderKind) -> (&'static str, &'static str) {
    match kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => ("authorization", "Bearer "),
        ProviderKind::Anthropic => ("x-api-key", ""),
        ProviderKind::Gemini => ("x-goog-api-key", ""),
    }
}

/// The response format a provider of `kind` answers in (`None`: already OpenAI).
pub fn response_format(kind: ProviderKind) -> Option<SourceFormat> {
    match kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => None,
        ProviderKind::Anthropic => Some(SourceFormat::Anthropic),
        ProviderKind::Gemini => Some(SourceFormat::Gemini),
    }
}

/// Joins a provider's base path and an API path (`/v1` + `/chat/completions`).
fn join(base: &str, rest: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), rest)
}

/// Replaces a translator's default version prefix (`/v1`, `/v1beta`) with the provider's base.
fn rebase(path: &str, default_prefix: &str, base: &str) -> String {
    match path.strip_prefix(default_prefix) {
        Some(rest) => join(base, rest),
        None => path.to_string(),
    }
}

/// Sets `model` in an OpenAI request body (keeping every other field).
fn with_model(body: &[u8], model: &str) -> Result<Vec<u8>, TranslateError> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::InvalidJson(format!("request is not JSON: {e}")))?;
    match value.as_object_mut() {
        Some(obj) => {
            obj.insert("model".into(), serde_json::Value::String(model.to_string()));
        }
        None => {
            return Err(TranslateError::InvalidRequest(
                "request body must be a JSON object".into(),
            ))
        }
    }
    serde_json::to_vec(&value).map_err(|e| TranslateError::InvalidJson(e.to_string()))
}

/// Builds the request for `provider` from the client's OpenAI chat-completions `body`.
pub fn upstream_request(
    provider: &ProviderSettings,
    provider_model: &str,
    body: &[u8],
    client_streaming: bool,
    client_include_usage: bool,
) -> Result<UpstreamRequest, TranslateError> {
    let (path, body, headers, key_header, translate_from, stream, include_usage) =
        match provider.kind {
            ProviderKind::Openai | ProviderKind::OpenaiCompatible => (
                join(&provider.base_path, "/chat/completions"),
                with_model(body, provider_model)?,
                Vec::new(),
                key_header(provider.kind),
                response_format(provider.kind),
                client_streaming,
                client_include_usage,
            ),
            ProviderKind::Anthropic => {
                let t = openai_to_anthropic(
                    body,
                    &AnthropicOptions {
                        default_max_tokens: DEFAULT_ANTHROPIC_MAX_TOKENS,
                        model_override: Some(provider_model.to_string()),
                    },
                )?;
                (
                    rebase(&t.path, "/v1", &provider.base_path),
                    t.body,
                    vec![(
                        "anthropic-version".to_string(),
                        ANTHROPIC_VERSION.to_string(),
                    )],
                    key_header(provider.kind),
                    response_format(provider.kind),
                    t.stream,
                    t.include_usage,
                )
            }
            ProviderKind::Gemini => {
                let t = openai_to_gemini(
                    body,
                    &GeminiOptions {
                        model_override: Some(provider_model.to_string()),
                    },
                )?;
                (
                    rebase(&t.path, "/v1beta", &provider.base_path),
                    t.body,
                    Vec::new(),
                    key_header(provider.kind),
                    response_format(provider.kind),
                    t.stream,
                    t.include_usage,
                )
            }
        };
    Ok(UpstreamRequest {
        cluster: provider.cluster.clone(),
        path,
        authority: provider.host.clone(),
        body,
        headers,
        key_header,
        translate_from,
        stream,
        include_usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::parse;

    fn settings() -> crate::failover::FailoverSettings {
        parse(
            br#"{"providers":[
                {"name":"oa","kind":"openai","cluster":"openai","models":{"gpt-4o-mini":"gpt-4o-mini-2024"}},
                {"name":"an","kind":"anthropic","cluster":"anthropic","host":"api.anthropic.com"},
                {"name":"ge","kind":"gemini","cluster":"gemini"}
              ],
              "routes":[{"model":"gpt-4o-mini","providers":["oa","an","ge"]}]}"#,
            "failover",
        )
        .unwrap()
    }

    const BODY: &[u8] =
        br#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#;

    #[test]
    fn openai_provider_gets_its_model_and_path() {
        let s = settings();
        let r = upstream_request(&s.providers[0], "gpt-4o-mini-2024", BODY, true, false).unwrap();
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.cluster, "openai");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["model"], "gpt-4o-mini-2024");
        assert_eq!(r.key_header, ("authorization", "Bearer "));
        assert!(r.translate_from.is_none());
    }

    #[test]
    fn anthropic_provider_gets_a_messages_request() {
        let s = settings();
        let r = upstream_request(&s.providers[1], "claude-sonnet-4", BODY, true, false).unwrap();
        assert_eq!(r.path, "/v1/messages");
        assert_eq!(r.authority.as_deref(), Some("api.anthropic.com"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["model"], "claude-sonnet-4");
        assert_eq!(v["system"], "be brief");
        assert!(v["max_tokens"].as_u64().unwrap() > 0);
        assert_eq!(r.key_header.0, "x-api-key");
        assert!(r.headers.iter().any(|(k, _)| k == "anthropic-version"));
        assert_eq!(r.translate_from, Some(SourceFormat::Anthropic));
        assert!(r.stream);
    }

    #[test]
    fn gemini_provider_gets_a_stream_generate_path() {
        let s = settings();
        let r = upstream_request(&s.providers[2], "gemini-2.0-flash", BODY, true, false).unwrap();
        assert!(
            r.path
                .starts_with("/v1beta/models/gemini-2.0-flash:streamGenerateContent"),
            "{}",
            r.path
        );
        assert_eq!(r.key_header.0, "x-goog-api-key");
    }

    #[test]
    fn non_object_body_is_a_client_error() {
        let s = settings();
        assert!(upstream_request(&s.providers[0], "m", b"[1]", false, false).is_err());
    }
}
