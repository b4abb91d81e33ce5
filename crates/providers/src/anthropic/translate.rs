//! Pure conversions between the OpenAI chat shape and Anthropic's Messages API
//! (<https://docs.anthropic.com/en/api/messages>).

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use crate::UpstreamError;
use crate::translate::{self as t, Object, Part, ResponseFormat, ToolChoice, invalid, unsupported};
use crate::transport::{error_type_for, openai_error};

const PROVIDER: &str = "Anthropic";

/// Anthropic requires `max_tokens`; OpenAI does not. Used when the client sets none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The tool through which a JSON response format is asked for: Anthropic has no JSON mode, so
/// the model is made to call a tool whose input schema is the requested schema, and the call's
/// input becomes the message content.
pub(crate) const JSON_TOOL: &str = "json_response";

/// What the response translation needs to know about the request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    /// A JSON response format was emulated with [`JSON_TOOL`].
    pub json_tool: bool,
    pub include_usage: bool,
}

/// The Messages API request for an OpenAI chat request.
pub(crate) fn request(
    req: &Object,
    model: &str,
    stream: bool,
) -> Result<(Value, Context), UpstreamError> {
    t::check_fields(
        PROVIDER,
        req,
        &[
            "max_tokens",
            "max_completion_tokens",
            "temperature",
            "top_p",
            "top_k",
            "stop",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "response_format",
        ],
    )?;
    let mut body = Object::new();
    body.insert("model".into(), Value::from(model));
    let (system, messages) = messages(req)?;
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(messages));
    body.insert(
        "max_tokens".into(),
        Value::from(t::max_tokens(req)?.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    // Anthropic's temperature runs 0 to 1; OpenAI's to 2. Values above 1 have no equivalent.
    if let Some(temperature) = t::number(PROVIDER, req, "temperature", 1.0)? {
        body.insert("temperature".into(), Value::from(temperature));
    }
    if let Some(top_p) = t::number(PROVIDER, req, "top_p", 1.0)? {
        body.insert("top_p".into(), Value::from(top_p));
    }
    if let Some(top_k) = req.get("top_k").filter(|v| !v.is_null()) {
        body.insert("top_k".into(), top_k.clone());
    }
    if let Some(stop) = t::stop_sequences(req.get("stop"))? {
        body.insert("stop_sequences".into(), Value::Array(stop));
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    if let Some(user) = req.get("user").and_then(Value::as_str) {
        body.insert("metadata".into(), json!({"user_id": user}));
    }

    let mut tools: Vec<Value> = t::tool_functions(PROVIDER, req)?
        .into_iter()
        .map(|f| {
            let mut tool = json!({
                "name": f.get("name").cloned().unwrap_or(Value::Null),
                "input_schema": f.get("parameters").cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let Some(description) = f.get("description").filter(|d| !d.is_null()) {
                tool["description"] = description.clone();
            }
            tool
        })
        .collect();
    let mut choice = match t::tool_choice(req)? {
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::Named(name)) => Some(json!({"type": "tool", "name": name})),
    };
    let mut context = Context {
        json_tool: false,
        include_usage: t::include_usage(req),
    };
    let schema = match t::response_format(req)? {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(json!({"type": "object"})),
        ResponseFormat::JsonSchema { schema, .. } => Some(schema.clone()),
    };
    if let Some(schema) = schema {
        if !tools.is_empty() {
            return Err(unsupported(
                PROVIDER,
                "response_format",
                "a JSON response format together with tools",
            ));
        }
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(unsupported(
                PROVIDER,
                "response_format.json_schema.schema",
                "JSON schemas whose top level is not an object",
            ));
        }
        tools.push(json!({
            "name": JSON_TOOL,
            "description": "Respond with a JSON value matching this schema.",
            "input_schema": schema,
        }));
        choice = Some(json!({"type": "tool", "name": JSON_TOOL}));
        context.json_tool = true;
    }
    if req.get("parallel_tool_calls") == Some(&Value::Bool(false)) && !tools.is_empty() {
        let choice = choice.get_or_insert_with(|| json!({"type": "auto"}));
        choice["disable_parallel_tool_use"] = Value::Bool(true);
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = choice {
        body.insert("tool_choice".into(), choice);
    }
    Ok((Value::Object(body), context))
}

/// System prompts (every system or developer message, in order) and the conversation, with
/// consecutive turns of one role merged as Anthropic expects.
fn messages(req: &Object) -> Result<(Vec<Value>, Vec<Value>), UpstreamError> {
    let mut system = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    for (i, message) in t::messages(req)?.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (role, blocks) = match role {
            "system" | "developer" => {
                let text = t::content_text(PROVIDER, message, &at)?;
                if !text.trim().is_empty() {
                    system.push(json!({"type": "text", "text": text}));
                }
                continue;
            }
            "user" => ("user", user_blocks(message, &at)?),
            "assistant" => ("assistant", assistant_blocks(message, &at)?),
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid(
                            &format!("{at}.tool_call_id"),
                            "a tool message needs 'tool_call_id'.",
                        )
                    })?;
                let text = t::content_text(PROVIDER, message, &at)?;
                (
                    "user",
                    vec![json!({"type": "tool_result", "tool_use_id": id, "content": text})],
                )
            }
            other => return Err(t::unsupported_role(PROVIDER, &at, other)),
        };
        t::push_turn(&mut out, role, "content", blocks);
    }
    // A conversation that ends with the assistant is a prefill, whose text Anthropic refuses
    // to end with whitespace ("final assistant content cannot end with trailing whitespace").
    if let Some(last) = out.last_mut().filter(|turn| turn["role"] == "assistant")
        && let Some(text) = last["content"]
            .as_array_mut()
            .and_then(|blocks| blocks.last_mut())
            .filter(|block| block["type"] == "text")
            .and_then(|block| block.get_mut("text"))
        && let Some(trimmed) = text.as_str().map(str::trim_end)
    {
        *text = Value::from(trimmed);
    }
    // Anthropic refuses a conversation that the assistant opens (a greeting, or a history cut
    // to fit), which OpenAI takes: a user turn that says nothing goes before it.
    t::user_first(
        &mut out,
        "content",
        json!({"type": "text", "text": t::OPENING_TURN}),
    );
    Ok((system, out))
}

fn user_blocks(message: &Object, at: &str) -> Result<Vec<Value>, UpstreamError> {
    Ok(t::content_parts(PROVIDER, message, at)?
        .into_iter()
        // Anthropic refuses empty and whitespace-only text blocks, which OpenAI takes as
        // nothing said; a message left with nothing is left out (consecutive turns of a role
        // merge).
        .filter(|part| !matches!(part, Part::Text(text) if text.trim().is_empty()))
        .map(|part| match part {
            Part::Text(text) => json!({"type": "text", "text": text}),
            Part::ImageUrl(url) => json!({"type": "image", "source": {"type": "url", "url": url}}),
            Part::ImageData { media_type, data } => json!({
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data},
            }),
        })
        .collect())
}

fn assistant_blocks(message: &Object, at: &str) -> Result<Vec<Value>, UpstreamError> {
    let mut blocks = Vec::new();
    let text = t::content_text(PROVIDER, message, at)?;
    if !text.trim().is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for (k, call) in calls.iter().enumerate() {
            let (id, name, input) = t::tool_call(call, &format!("{at}.tool_calls[{k}]"))?;
            let id = id.unwrap_or_default();
            blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
    }
    Ok(blocks)
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
pub(crate) fn finish_reason(stop_reason: Option<&str>, json_tool: bool) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") if json_tool => "stop",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// OpenAI usage from Anthropic's: cache reads and writes are part of the prompt.
pub(crate) fn usage(u: &Value) -> (u64, u64, u64) {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    let prompt = n("input_tokens") + cached + n("cache_creation_input_tokens");
    (prompt, n("output_tokens"), cached)
}

/// The OpenAI `chat.completion` for a Messages API response.
pub(crate) fn response(body: &[u8], context: &Context) -> Result<Bytes, UpstreamError> {
    let message: Value = serde_json::from_slice(body)
        .map_err(|e| UpstreamError::Malformed(format!("unreadable Anthropic response: {e}")))?;
    let blocks = message
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| UpstreamError::Malformed("Anthropic response without content".into()))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""));
            }
            Some("tool_use") => {
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if context.json_tool && name == JSON_TOOL {
                    text.push_str(&input.to_string());
                    continue;
                }
                tool_calls.push(json!({
                    "id": block.get("id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            _ => {}
        }
    }
    let stop_reason = message.get("stop_reason").and_then(Value::as_str);
    let mut msg = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::from(text) },
        "refusal": null,
    });
    if !tool_calls.is_empty() {
        msg["tool_calls"] = Value::Array(tool_calls);
    }
    if !reasoning.is_empty() {
        msg["reasoning_content"] = Value::from(reasoning);
    }
    let (prompt, completion, cached) = usage(message.get("usage").unwrap_or(&Value::Null));
    let completion = json!({
        "id": message.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": crate::unix_now(),
        "model": message.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{
            "index": 0,
            "message": msg,
            "logprobs": null,
            "finish_reason": finish_reason(stop_reason, context.json_tool),
        }],
        "usage": t::usage(prompt, completion, cached, None),
    });
    Ok(Bytes::from(completion.to_string()))
}

/// An Anthropic error body (`{"type": "error", "error": {"type", "message"}}`) in the OpenAI
/// shape; the Anthropic error type becomes the `code`.
pub(crate) fn error(status: StatusCode, body: &[u8]) -> Bytes {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    match error.and_then(|e| e.get("message")).and_then(Value::as_str) {
        Some(message) => {
            let code = error.and_then(|e| e.get("type")).and_then(Value::as_str);
            openai_error(message, error_type(code, status), code)
        }
        None => Bytes::copy_from_slice(body),
    }
}

fn error_type(code: Option<&str>, status: StatusCode) -> &'static str {
    match code {
        Some("invalid_request_error") | Some("request_too_large") | Some("not_found_error") => {
            "invalid_request_error"
        }
        Some("authentication_error") => "authentication_error",
        Some("permission_error") => "permission_error",
        Some("rate_limit_error") => "rate_limit_error",
        Some("api_error") | Some("overloaded_error") => "server_error",
        _ => error_type_for(status),
    }
}
