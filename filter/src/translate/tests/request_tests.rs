//! Request translation: OpenAI chat completions to Anthropic Messages and Gemini.

use serde_json::{json, Value};

use crate::translate::{
    openai_to_anthropic, openai_to_gemini, AnthropicOptions, GeminiOptions, TranslateError,
};

const AGENT_REQUEST: &str = include_str!("../fixtures/openai_request_agent.json");

fn anthropic(body: &Value) -> Value {
    let translated = openai_to_anthropic(body.to_string().as_bytes(), &AnthropicOptions::default())
        .expect("translates");
    serde_json::from_slice(&translated.body).unwrap()
}

fn gemini(body: &Value) -> Value {
    let translated = openai_to_gemini(body.to_string().as_bytes(), &GeminiOptions::default())
        .expect("translates");
    serde_json::from_slice(&translated.body).unwrap()
}

#[test]
fn anthropic_full_agent_conversation() {
    let opts = AnthropicOptions {
        default_max_tokens: 1024,
        model_override: Some("claude-sonnet-4-5".to_string()),
    };
    let translated = openai_to_anthropic(AGENT_REQUEST.as_bytes(), &opts).unwrap();
    assert_eq!(translated.path, "/v1/messages");
    assert!(translated.stream);
    assert!(translated.include_usage);
    assert_eq!(translated.model, "claude-sonnet-4-5");
    let body: Value = serde_json::from_slice(&translated.body).unwrap();
    let expected = json!({
        "model": "claude-sonnet-4-5",
        "system": "You are a helpful travel assistant.\n\nAnswer in English.",
        "max_tokens": 512,
        "temperature": 1.0,
        "stop_sequences": ["\nUser:", "END"],
        "stream": true,
        "metadata": {"user_id": "user-1234"},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What's the weather where this photo was taken, and the local time?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                    "data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/photos/eiffel.jpg"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_weather_1", "name": "get_weather",
                    "input": {"location": "Paris", "unit": "celsius"}},
                {"type": "tool_use", "id": "call_time_2", "name": "get_time", "input": {"tz": "Europe/Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_weather_1",
                    "content": "{\"temperature\": 18, \"conditions\": \"cloudy\"}"},
                {"type": "tool_result", "tool_use_id": "call_time_2", "content": "14:05"}
            ]},
            {"role": "assistant", "content": "It is 18°C and cloudy in Paris; local time is 14:05."},
            {"role": "user", "content": [
                {"type": "text", "text": "Thanks!"},
                {"type": "text", "text": "And tomorrow?"}
            ]}
        ],
        "tools": [
            {"name": "get_weather", "description": "Current weather for a city", "input_schema": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                "required": ["location"], "additionalProperties": false}},
            {"name": "get_time", "description": "Local time in a time zone", "input_schema": {
                "type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}
        ],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}
    });
    assert_eq!(body, expected);
}

#[test]
fn anthropic_simple_request_defaults() {
    let body = anthropic(&json!({
        "model": "claude-haiku-4-5",
        "messages": [{"role": "user", "content": "Hi"}],
        "top_p": 0.5,
        "stop": "\n\n"
    }));
    assert_eq!(
        body,
        json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 4096,
            "top_p": 0.5,
            "stop_sequences": ["\n\n"],
            "messages": [{"role": "user", "content": "Hi"}]
        })
    );
}

#[test]
fn anthropic_max_tokens_and_default() {
    let opts = AnthropicOptions {
        default_max_tokens: 333,
        model_override: None,
    };
    let with = |extra: Value| {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let t = openai_to_anthropic(body.to_string().as_bytes(), &opts).unwrap();
        serde_json::from_slice::<Value>(&t.body).unwrap()["max_tokens"].clone()
    };
    assert_eq!(with(json!({})), json!(333));
    assert_eq!(with(json!({"max_tokens": 77})), json!(77));
    assert_eq!(
        with(json!({"max_completion_tokens": 88, "max_tokens": 77})),
        json!(88)
    );
}

#[test]
fn anthropic_tool_choice_variants() {
    let base = |choice: Value| {
        anthropic(&json!({
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": choice
        }))
    };
    assert_eq!(base(json!("auto"))["tool_choice"], json!({"type": "auto"}));
    assert_eq!(base(json!("none"))["tool_choice"], json!({"type": "none"}));
    assert_eq!(
        base(json!("required"))["tool_choice"],
        json!({"type": "any"})
    );
    assert_eq!(
        base(json!({"type": "function", "function": {"name": "f"}}))["tool_choice"],
        json!({"type": "tool", "name": "f"})
    );
    assert!(base(Value::Null).get("tool_choice").is_none());
    // A tool without parameters still gets the required input_schema.
    assert_eq!(
        base(Value::Null)["tools"],
        json!([{"name": "f", "input_schema": {"type": "object", "properties": {}}}])
    );
    // tool_choice without tools is dropped (Anthropic rejects it).
    let body = anthropic(&json!({
        "model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"
    }));
    assert!(body.get("tool_choice").is_none());
}

#[test]
fn anthropic_merges_roles_and_skips_empty_messages() {
    let body = anthropic(&json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call:1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call:1", "content": "done"},
            {"role": "user", "content": "next"}
        ]
    }));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "f", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "done"},
                {"type": "text", "text": "next"}
            ]}
        ])
    );
}

#[test]
fn anthropic_rejects_bad_requests() {
    let t = |body: &str| openai_to_anthropic(body.as_bytes(), &AnthropicOptions::default());
    assert!(matches!(t("not json"), Err(TranslateError::InvalidJson(_))));
    assert!(matches!(t("[1]"), Err(TranslateError::InvalidJson(_))));
    assert!(matches!(
        t(r#"{"model":"m"}"#),
        Err(TranslateError::InvalidRequest(_))
    ));
    assert!(matches!(
        t(r#"{"messages":[{"role":"user","content":"x"}]}"#),
        Err(TranslateError::InvalidRequest(_))
    ));
    assert!(matches!(
        t(r#"{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}"#),
        Err(TranslateError::Unsupported(_))
    ));
    assert!(matches!(
        t(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#),
        Err(TranslateError::InvalidRequest(_))
    ));
    assert!(matches!(
        t(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#
        ),
        Err(TranslateError::Unsupported(_))
    ));
    assert!(matches!(
        t(
            r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}"#
        ),
        Err(TranslateError::InvalidRequest(_))
    ));
    let err = t("{").unwrap_err();
    let body: Value = serde_json::from_slice(&err.to_openai_error_body()).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "invalid_json");
}

#[test]
fn gemini_full_agent_conversation() {
    let translated = openai_to_gemini(
        AGENT_REQUEST.as_bytes(),
        &GeminiOptions {
            model_override: Some("models/gemini-2.5-flash".to_string()),
        },
    )
    .unwrap();
    assert_eq!(
        translated.path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert!(translated.stream && translated.include_usage);
    let body: Value = serde_json::from_slice(&translated.body).unwrap();
    let expected = json!({
        "systemInstruction": {"parts": [
            {"text": "You are a helpful travel assistant."},
            {"text": "Answer in English."}
        ]},
        "contents": [
            {"role": "user", "parts": [
                {"text": "What's the weather where this photo was taken, and the local time?"},
                {"inlineData": {"mimeType": "image/png",
                    "data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photos/eiffel.jpg"}}
            ]},
            {"role": "model", "parts": [
                {"text": "Let me check."},
                {"functionCall": {"name": "get_weather", "args": {"location": "Paris", "unit": "celsius"}}},
                {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temperature": 18, "conditions": "cloudy"}}},
                {"functionResponse": {"name": "get_time", "response": {"output": "14:05"}}}
            ]},
            {"role": "model", "parts": [{"text": "It is 18°C and cloudy in Paris; local time is 14:05."}]},
            {"role": "user", "parts": [{"text": "Thanks!"}, {"text": "And tomorrow?"}]}
        ],
        "generationConfig": {
            "maxOutputTokens": 512,
            "temperature": 1.4,
            "topP": 0.9,
            "stopSequences": ["\nUser:", "END"],
            "seed": 7
        },
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "Current weather for a city", "parametersJsonSchema": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                "required": ["location"], "additionalProperties": false}},
            {"name": "get_time", "description": "Local time in a time zone", "parametersJsonSchema": {
                "type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}
        ]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    });
    assert_eq!(body, expected);
}

#[test]
fn gemini_non_stream_path_and_options() {
    let request = json!({
        "model": "gemini-2.0-flash",
        "messages": [{"role": "user", "content": "Give me JSON"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "tool_choice": "none",
        "presence_penalty": 0.5
    });
    let t = openai_to_gemini(request.to_string().as_bytes(), &GeminiOptions::default()).unwrap();
    assert_eq!(t.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert!(!t.stream);
    let body: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        body["generationConfig"],
        json!({"presencePenalty": 0.5, "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}})
    );
    assert!(body.get("toolConfig").is_none(), "no tools, no tool config");
    let body = gemini(&json!({
        "model": "g", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"
    }));
    assert_eq!(
        body["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [{"name": "f"}]}])
    );
}

#[test]
fn gemini_thought_signature_round_trips_through_tool_call_id() {
    let body = gemini(&json!({
        "model": "gemini-3-pro",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [{"id": "call_r1_0__thought__CiQB0e2Kb+sig/A==", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_r1_0__thought__CiQB0e2Kb+sig/A==", "content": "sunny"}
        ]
    }));
    assert_eq!(
        body["contents"][1],
        json!({"role": "model", "parts": [{
            "functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
            "thoughtSignature": "CiQB0e2Kb+sig/A=="
        }]})
    );
    assert_eq!(
        body["contents"][2]["parts"][0],
        json!({"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}})
    );
}

#[test]
fn gemini_rejects_bad_requests() {
    let t = |body: Value| openai_to_gemini(body.to_string().as_bytes(), &GeminiOptions::default());
    assert!(matches!(
        t(json!({"model": "../../v1/evil?x=", "messages": []})),
        Err(TranslateError::InvalidRequest(_))
    ));
    assert!(matches!(
        t(
            json!({"model": "g", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]})
        ),
        Err(TranslateError::InvalidRequest(_))
    ));
    assert!(matches!(
        t(
            json!({"model": "g", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}]})
        ),
        Err(TranslateError::Unsupported(_))
    ));
}

#[test]
fn model_mapping() {
    use crate::translate::map_model;
    let mapping = vec![
        ("gpt-4o".to_string(), "claude-sonnet-4-5".to_string()),
        ("gpt-4o*".to_string(), "claude-haiku-4-5".to_string()),
        ("gpt-4o-mini*".to_string(), "gemini-2.5-flash".to_string()),
        ("o*".to_string(), "claude-opus-4-1".to_string()),
    ];
    assert_eq!(map_model("gpt-4o", &mapping), "claude-sonnet-4-5");
    assert_eq!(map_model("gpt-4o-2024-08-06", &mapping), "claude-haiku-4-5");
    assert_eq!(map_model("gpt-4o-mini-2024", &mapping), "gemini-2.5-flash");
    assert_eq!(map_model("o3", &mapping), "claude-opus-4-1");
    assert_eq!(map_model("llama3", &mapping), "llama3");
    assert_eq!(
        map_model("x", &[("*".to_string(), "all".to_string())]),
        "all"
    );
    assert_eq!(map_model("x", &[]), "x");
}

#[test]
fn every_prefix_and_field_mutation_of_a_request_is_handled() {
    let request = AGENT_REQUEST.trim_end();
    for end in 0..request.len() {
        let prefix = &request.as_bytes()[..end];
        assert!(openai_to_anthropic(prefix, &AnthropicOptions::default()).is_err());
        assert!(openai_to_gemini(prefix, &GeminiOptions::default()).is_err());
    }
    // Replace every value in the request, one at a time, by values of other types.
    let original: Value = serde_json::from_str(AGENT_REQUEST).unwrap();
    fn paths(value: &Value, prefix: String, out: &mut Vec<String>) {
        out.push(prefix.clone());
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    paths(v, format!("{prefix}/{k}"), out)
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    paths(v, format!("{prefix}/{i}"), out)
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    paths(&original, String::new(), &mut all);
    for path in all.iter().filter(|p| !p.is_empty()) {
        for replacement in [
            json!(null),
            json!(3),
            json!("s"),
            json!([]),
            json!({}),
            json!(true),
        ] {
            let mut mutated = original.clone();
            *mutated.pointer_mut(path).unwrap() = replacement;
            let bytes = mutated.to_string();
            let _ = openai_to_anthropic(bytes.as_bytes(), &AnthropicOptions::default());
            let _ = openai_to_gemini(bytes.as_bytes(), &GeminiOptions::default());
        }
    }
}
