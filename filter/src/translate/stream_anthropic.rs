//! Anthropic Messages stream events (`message_start`, `content_block_start`,
//! `content_block_delta` with `text_delta` / `input_json_delta`, `content_block_stop`,
//! `message_delta`, `message_stop`, `ping`, `error`) mapped onto OpenAI chunk emissions.

use std::borrow::Cow;

use serde::Deserialize;

use super::openai_out::{anthropic_finish_reason, AnthropicUsage, TokenUsage};
use super::provider_error::{map_anthropic_error_type, AnthropicErrorDetail};
use super::stream_out::StreamOut;

// Provider payloads: read from JSON objects only (see `crate::json_object`).
crate::json_object::object_only!(Event<'a>, StartMessage, StartBlock<'a>, EventDelta<'a>);

/// Most content blocks that may be open at once; Anthropic streams them one at a time, so this
/// only bounds memory against a misbehaving upstream.
const MAX_OPEN_TOOL_BLOCKS: usize = 64;

/// Anthropic-specific stream state.
#[derive(Debug, Clone, Default)]
pub(crate) struct AnthropicStreamState {
    /// Cumulative usage from `message_start` and `message_delta`.
    usage: AnthropicUsage,
    /// Open `tool_use` blocks: (Anthropic content block index, OpenAI tool call index).
    open_tool_blocks: Vec<(u64, u64)>,
}

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct Event<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    message: Option<StartMessage>,
    #[serde(borrow, default)]
    content_block: Option<StartBlock<'a>>,
    #[serde(borrow, default)]
    delta: Option<EventDelta<'a>>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default)]
    error: Option<AnthropicErrorDetail>,
}

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct StartMessage {
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct StartBlock<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct EventDelta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Cow<'a, str>,
    #[serde(borrow, default)]
    partial_json: Cow<'a, str>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
}

impl AnthropicStreamState {
    /// Handles one Anthropic SSE event (`name`: its `event:` field, used when the data names no
    /// `type`).
    pub(crate) fn handle_event(
        &mut self,
        state: &mut StreamOut,
        name: &str,
        data: &[u8],
        out: &mut Vec<u8>,
    ) {
        let event: Event<'_> = match serde_json::from_slice(data) {
            Ok(event) => event,
            Err(_) => {
                state.emit_malformed_event(out);
                return;
            }
        };
        let kind: &str = if event.kind.is_empty() {
            name
        } else {
            &event.kind
        };
        match kind {
            "message_start" => {
                if let Some(message) = &event.message {
                    self.record_usage(state, &message.usage);
                }
                state.emit_role(out);
            }
            "content_block_start" => {
                let Some(block) = &event.content_block else {
                    return;
                };
                match block.kind.as_ref() {
                    "text" => state.emit_content(out, &block.text),
                    "tool_use" => {
                        let tool_index =
                            state.emit_tool_call_start(out, &block.id, &block.name, "");
                        let open = &mut self.open_tool_blocks;
                        if open.len() >= MAX_OPEN_TOOL_BLOCKS {
                            open.remove(0);
                        }
                        open.push((event.index.unwrap_or(0), tool_index));
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let Some(delta) = &event.delta else {
                    return;
                };
                match delta.kind.as_ref() {
                    "text_delta" => state.emit_content(out, &delta.text),
                    "input_json_delta" => {
                        let block_index = event.index.unwrap_or(0);
                        let tool_index = self
                            .open_tool_blocks
                            .iter()
                            .find(|(block, _)| *block == block_index)
                            .map(|(_, tool)| *tool);
                        if let Some(tool_index) = tool_index {
                            state.emit_tool_arguments(out, tool_index, &delta.partial_json);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let block_index = event.index.unwrap_or(0);
                self.open_tool_blocks
                    .retain(|(block, _)| *block != block_index);
            }
            "message_delta" => {
                if let Some(usage) = &event.usage {
                    self.record_usage(state, usage);
                }
                if let Some(reason) = event.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    state.emit_finish(out, anthropic_finish_reason(reason));
                }
            }
            "message_stop" => {
                let reason = state.finish_reason.unwrap_or(if state.tool_call_count > 0 {
                    "tool_calls"
                } else {
                    "stop"
                });
                state.emit_finish(out, reason);
                state.emit_end(out);
            }
            "error" => {
                let (message, error_type, code) = match &event.error {
                    Some(detail) => {
                        let (error_type, code) = map_anthropic_error_type(&detail.kind);
                        (detail.message.as_str(), error_type, code)
                    }
                    None => ("upstream stream error", "server_error", "server_error"),
                };
                state.emit_error(out, message, error_type, code);
            }
            _ => {}
        }
    }

    fn record_usage(&mut self, state: &mut StreamOut, usage: &AnthropicUsage) {
        self.usage.merge(usage);
        state.usage = Some(TokenUsage::from_anthropic(&self.usage));
    }
}
