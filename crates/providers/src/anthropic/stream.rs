//! Anthropic's stream events (`message_start`, `content_block_*`, `message_delta`,
//! `message_stop`, `ping`, `error`) turned into OpenAI chunks as each arrives.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

use super::translate::{Context, JSON_TOOL, finish_reason, usage};
use crate::translate as t;
use crate::{StreamEvent, UpstreamError};

#[derive(Debug)]
pub(crate) struct Translator {
    context: Context,
    id: String,
    model: String,
    created: u64,
    /// Anthropic content block index → OpenAI tool call index (tool-use blocks only), and
    /// whether any argument text came for it yet.
    tools: HashMap<u64, (u64, bool)>,
    /// The block index of the emulated JSON tool, whose input is streamed as content.
    json_block: Option<u64>,
    /// Whether any of the emulated JSON tool's input came yet.
    json_text: bool,
    usage: Value,
    started: bool,
}

impl Translator {
    pub(crate) fn new(context: Context) -> Self {
        Self {
            context,
            id: String::new(),
            model: String::new(),
            created: crate::unix_now(),
            tools: HashMap::new(),
            json_block: None,
            json_text: false,
            usage: json!({}),
            started: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> StreamEvent {
        StreamEvent::Chunk(t::chunk(&self.id, self.created, &self.model, delta, finish))
    }

    pub(crate) fn event(
        &mut self,
        name: &str,
        data: &str,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), UpstreamError> {
        let event: Value = serde_json::from_str(data).map_err(|_| {
            UpstreamError::Malformed(format!("an Anthropic {name:?} event is not JSON"))
        })?;
        // The `type` inside the data is authoritative; the SSE event name repeats it.
        let kind = event.get("type").and_then(Value::as_str).unwrap_or(name);
        if !self.started && !matches!(kind, "message_start" | "ping" | "error") {
            return Err(UpstreamError::Malformed(format!(
                "an Anthropic stream began with {kind:?}, not message_start"
            )));
        }
        match kind {
            "message_start" => {
                let message = event.get("message").unwrap_or(&Value::Null);
                self.id = message
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.model = message
                    .get("model")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if let Some(u) = message.get("usage") {
                    merge(&mut self.usage, u);
                }
                self.started = true;
                out.push_back(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" => {
                let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = event.get("content_block").unwrap_or(&Value::Null);
                if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                    let name = block
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if self.context.json_tool && name == JSON_TOOL {
                        self.json_block = Some(index);
                        return Ok(());
                    }
                    let tool_index = self.tools.len() as u64;
                    self.tools.insert(index, (tool_index, false));
                    out.push_back(self.chunk(
                        json!({"tool_calls": [{
                            "index": tool_index,
                            "id": block.get("id").cloned().unwrap_or(Value::Null),
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }]}),
                        None,
                    ));
                }
            }
            "content_block_delta" => {
                let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = event.get("delta").unwrap_or(&Value::Null);
                let text = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or_default();
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        out.push_back(self.chunk(json!({"content": text("text")}), None));
                    }
                    Some("thinking_delta") => {
                        out.push_back(
                            self.chunk(json!({"reasoning_content": text("thinking")}), None),
                        );
                    }
                    Some("input_json_delta") if self.json_block == Some(index) => {
                        let json = text("partial_json");
                        self.json_text |= !json.is_empty();
                        out.push_back(self.chunk(json!({"content": json}), None));
                    }
                    Some("input_json_delta") => {
                        if let Some((tool_index, got_text)) = self.tools.get_mut(&index) {
                            let arguments = text("partial_json");
                            *got_text |= !arguments.is_empty();
                            let tool_index = *tool_index;
                            out.push_back(self.chunk(
                                json!({"tool_calls": [{
                                    "index": tool_index,
                                    "function": {"arguments": arguments},
                                }]}),
                                None,
                            ));
                        }
                    }
                    // signature_delta and future kinds carry nothing OpenAI has a place for.
                    _ => {}
                }
            }
            "content_block_stop" => {
                // A tool called without input streams no argument text: its arguments (or the
                // emulated JSON tool's content) are `{}`, as in a JSON answer (`""` is not JSON,
                // and clients parse it).
                let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
                if self.json_block == Some(index) && !self.json_text {
                    out.push_back(self.chunk(json!({"content": "{}"}), None));
                }
                if let Some(&(tool_index, false)) = self.tools.get(&index) {
                    out.push_back(self.chunk(
                        json!({"tool_calls": [{"index": tool_index, "function": {"arguments": "{}"}}]}),
                        None,
                    ));
                }
            }
            "message_delta" => {
                if let Some(u) = event.get("usage") {
                    merge(&mut self.usage, u);
                }
                let stop = event
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                let finish = finish_reason(stop, self.context.json_tool);
                out.push_back(self.chunk(json!({}), Some(finish)));
            }
            "message_stop" => {
                if self.context.include_usage {
                    let (prompt, completion, cached) = usage(&self.usage);
                    out.push_back(StreamEvent::Chunk(t::usage_chunk(
                        &self.id,
                        self.created,
                        &self.model,
                        t::usage(prompt, completion, cached, None),
                    )));
                }
                out.push_back(StreamEvent::Done);
            }
            "error" => {
                let message = event
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error");
                return Err(UpstreamError::InBand(message.to_owned()));
            }
            // ping and event kinds added later.
            _ => {}
        }
        Ok(())
    }
}

/// Anthropic sends input usage at the start and cumulative output usage at the end.
fn merge(into: &mut Value, from: &Value) {
    if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in from {
            if !v.is_null() {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}
