//! What the translating adapters share: reading the OpenAI request (fields, messages, content
//! parts) and refusing, with a 400 naming the field, what a provider cannot do.

use serde_json::{Map, Value};

use crate::UpstreamError;

pub(crate) type Object = Map<String, Value>;

/// A request field the provider cannot honour: the request is refused rather than silently
/// answered differently.
pub(crate) fn unsupported(provider: &str, param: &str, what: &str) -> UpstreamError {
    UpstreamError::Unsupported {
        param: param.to_owned(),
        message: format!("{provider} does not support {what} ('{param}')."),
    }
}

pub(crate) fn invalid(param: &str, message: &str) -> UpstreamError {
    UpstreamError::Unsupported {
        param: param.to_owned(),
        message: message.to_owned(),
    }
}

/// Checks every top-level field against what the adapter translates (`known`) and what it may
/// ignore because it never changes the answer (`harmless`). Any other field with a value that is
/// not its OpenAI default is refused.
pub(crate) fn check_fields(
    provider: &str,
    request: &Object,
    known: &[&str],
) -> Result<(), UpstreamError> {
    /// Fields that do not change the answer: bookkeeping and transport options.
    const HARMLESS: &[&str] = &[
        "model",
        "messages",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "seed",
        "safety_identifier",
        "prompt_cache_key",
    ];
    for (field, value) in request {
        if HARMLESS.contains(&field.as_str()) || known.contains(&field.as_str()) {
            continue;
        }
        let default = match field.as_str() {
            "n" => value.is_null() || value.as_u64() == Some(1),
            "logprobs" => value.is_null() || value == &Value::Bool(false),
            "presence_penalty" | "frequency_penalty" => {
                value.is_null() || value.as_f64() == Some(0.0)
            }
            _ => value.is_null(),
        };
        if !default {
            return Err(unsupported(provider, field, "this parameter"));
        }
    }
    Ok(())
}

/// `stop`: a string or an array of strings.
pub(crate) fn stop_sequences(value: Option<&Value>) -> Result<Option<Vec<Value>>, UpstreamError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![Value::from(s.as_str())])),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(Some(items.clone())),
        Some(_) => Err(invalid(
            "stop",
            "'stop' must be a string or an array of strings.",
        )),
    }
}

/// `max_completion_tokens` (current) or `max_tokens` (legacy).
pub(crate) fn max_tokens(request: &Object) -> Result<Option<u64>, UpstreamError> {
    for field in ["max_completion_tokens", "max_tokens"] {
        match request.get(field) {
            None | Some(Value::Null) => {}
            Some(v) => {
                return v.as_u64().map(Some).ok_or_else(|| {
                    invalid(field, &format!("'{field}' must be a positive integer."))
                });
            }
        }
    }
    Ok(None)
}

/// A number field in `[0, max]`.
pub(crate) fn number(
    provider: &str,
    request: &Object,
    field: &str,
    max: f64,
) -> Result<Option<f64>, UpstreamError> {
    match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if (0.0..=max).contains(&x) => Ok(Some(x)),
            Some(_) => Err(unsupported(
                provider,
                field,
                &format!("values of '{field}' outside 0 to {max}"),
            )),
            None => Err(invalid(field, &format!("'{field}' must be a number."))),
        },
    }
}

/// One piece of a message's content.
pub(crate) enum Part<'a> {
    Text(&'a str),
    /// An image by URL (`http(s)://`).
    ImageUrl(&'a str),
    /// An inline image from a `data:` URL.
    ImageData {
        media_type: &'a str,
        data: &'a str,
    },
}

/// A message's content as parts: a string is one text part; `null` is none.
pub(crate) fn content_parts<'a>(
    provider: &str,
    message: &'a Object,
    at: &str,
) -> Result<Vec<Part<'a>>, UpstreamError> {
    match message.get("content") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::Text(s)]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| {
                let at = format!("{at}.content[{j}]");
                let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
                match kind {
                    "text" => part
                        .get("text")
                        .and_then(Value::as_str)
                        .map(Part::Text)
                        .ok_or_else(|| invalid(&at, "a text part needs 'text'.")),
                    "image_url" => {
                        let url = part
                            .get("image_url")
                            .and_then(|i| i.get("url").or(Some(i)))
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid(&at, "an image part needs 'image_url.url'."))?;
                        image(url, &at)
                    }
                    other => Err(unsupported(
                        provider,
                        &format!("{at}.type"),
                        &format!("content parts of type {other:?}"),
                    )),
                }
            })
            .collect(),
        Some(_) => Err(invalid(
            &format!("{at}.content"),
            "'content' must be a string or an array of parts.",
        )),
    }
}

fn image<'a>(url: &'a str, at: &str) -> Result<Part<'a>, UpstreamError> {
    if let Some(rest) = url.strip_prefix("data:") {
        // data:image/png;base64,AAAA
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| invalid(at, "a data: image URL needs a comma before its data."))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| invalid(at, "a data: image URL must be base64-encoded."))?;
        return Ok(Part::ImageData { media_type, data });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Part::ImageUrl(url));
    }
    Err(invalid(
        at,
        "an image URL must be http(s):// or a base64 data: URL.",
    ))
}

/// The text of a message's content (tool results and system prompts): parts joined.
pub(crate) fn content_text(
    provider: &str,
    message: &Object,
    at: &str,
) -> Result<String, UpstreamError> {
    let mut text = String::new();
    for part in content_parts(provider, message, at)? {
        match part {
            Part::Text(t) => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(t);
            }
            Part::ImageUrl(_) | Part::ImageData { .. } => {
                return Err(unsupported(
                    provider,
                    &format!("{at}.content"),
                    "images here",
                ));
            }
        }
    }
    Ok(text)
}

/// The messages array as objects.
pub(crate) fn messages(request: &Object) -> Result<Vec<&Object>, UpstreamError> {
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages", "'messages' must be an array of messages."))?;
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.as_object()
                .ok_or_else(|| invalid(&format!("messages[{i}]"), "a message must be an object."))
        })
        .collect()
}

/// The `function` of a tool (`{"type": "function", "function": {...}}`).
pub(crate) fn tool_functions<'a>(
    provider: &str,
    request: &'a Object,
) -> Result<Vec<&'a Object>, UpstreamError> {
    let Some(tools) = request.get("tools").filter(|t| !t.is_null()) else {
        return Ok(Vec::new());
    };
    let tools = tools
        .as_array()
        .ok_or_else(|| invalid("tools", "'tools' must be an array."))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let kind = tool
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("function");
            if kind != "function" {
                return Err(unsupported(
                    provider,
                    &format!("tools[{i}].type"),
                    &format!("tools of type {kind:?}"),
                ));
            }
            let function = tool
                .get("function")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    invalid(&format!("tools[{i}].function"), "a tool needs 'function'.")
                })?;
            if function.get("name").and_then(Value::as_str).is_none() {
                return Err(invalid(
                    &format!("tools[{i}].function.name"),
                    "a tool needs a name.",
                ));
            }
            Ok(function)
        })
        .collect()
}

/// What `tool_choice` asks for.
pub(crate) enum ToolChoice<'a> {
    Auto,
    None,
    Required,
    Named(&'a str),
}

pub(crate) fn tool_choice(request: &Object) -> Result<Option<ToolChoice<'_>>, UpstreamError> {
    match request.get("tool_choice") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required)),
            _ => Err(invalid(
                "tool_choice",
                "'tool_choice' must be auto, none, required or a named function.",
            )),
        },
        Some(v) => v
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|name| Some(ToolChoice::Named(name)))
            .ok_or_else(|| {
                invalid(
                    "tool_choice",
                    "a named 'tool_choice' needs 'function.name'.",
                )
            }),
    }
}

/// What `response_format` asks for.
pub(crate) enum ResponseFormat<'a> {
    Text,
    JsonObject,
    JsonSchema { schema: &'a Value },
}

pub(crate) fn response_format(request: &Object) -> Result<ResponseFormat<'_>, UpstreamError> {
    let Some(format) = request.get("response_format").filter(|f| !f.is_null()) else {
        return Ok(ResponseFormat::Text);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let spec = format.get("json_schema");
            let schema = spec.and_then(|s| s.get("schema")).ok_or_else(|| {
                invalid(
                    "response_format.json_schema.schema",
                    "a JSON schema response format needs 'schema'.",
                )
            })?;
            Ok(ResponseFormat::JsonSchema { schema })
        }
        _ => Err(invalid(
            "response_format.type",
            "'response_format.type' must be text, json_object or json_schema.",
        )),
    }
}

/// Whether the client asked for a final usage chunk.
pub(crate) fn include_usage(request: &Object) -> bool {
    request
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The OpenAI `usage` object.
pub(crate) fn usage(prompt: u64, completion: u64, cached: u64, reasoning: Option<u64>) -> Value {
    let mut usage = serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    });
    if let Some(reasoning) = reasoning {
        usage["completion_tokens_details"] = serde_json::json!({"reasoning_tokens": reasoning});
    }
    usage
}

/// One `chat.completion.chunk` as JSON text.
pub(crate) fn chunk(
    id: &str,
    created: u64,
    model: &str,
    delta: Value,
    finish: Option<&str>,
) -> String {
    serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    })
    .to_string()
}

/// The final usage chunk (`stream_options.include_usage`): no choices.
pub(crate) fn usage_chunk(id: &str, created: u64, model: &str, usage: Value) -> String {
    serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    })
    .to_string()
}

/// Appends a turn's items (`content` blocks or `parts`) to the conversation, merging them into
/// the previous turn when it has the same role, as Anthropic and Gemini both expect.
pub(crate) fn push_turn(out: &mut Vec<Value>, role: &str, key: &str, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    if let Some(last) = out.last_mut()
        && last["role"] == role
        && let Some(existing) = last[key].as_array_mut()
    {
        existing.extend(items);
        return;
    }
    let mut turn = Object::new();
    turn.insert("role".into(), Value::from(role));
    turn.insert(key.into(), Value::Array(items));
    out.push(Value::Object(turn));
}

/// The text of the user turn put before a conversation the assistant opens (a greeting, or a
/// history trimmed from the front): Anthropic and Gemini both refuse one that does not open
/// with the user, which OpenAI takes; neither takes empty text.
pub(crate) const OPENING_TURN: &str = ".";

/// Puts a user turn made of `opening` (the provider's item for [`OPENING_TURN`]) before a
/// conversation whose first turn is not the user's.
pub(crate) fn user_first(out: &mut Vec<Value>, key: &str, opening: Value) {
    if out.first().is_some_and(|turn| turn["role"] != "user") {
        let mut turn = Object::new();
        turn.insert("role".into(), Value::from("user"));
        turn.insert(key.into(), Value::Array(vec![opening]));
        out.insert(0, Value::Object(turn));
    }
}

pub(crate) fn unsupported_role(provider: &str, at: &str, role: &str) -> UpstreamError {
    unsupported(
        provider,
        &format!("{at}.role"),
        &format!("messages with role {role:?}"),
    )
}

/// One assistant tool call: its id, its function's name and its arguments parsed from JSON.
pub(crate) fn tool_call<'a>(
    call: &'a Value,
    at: &str,
) -> Result<(Option<&'a str>, &'a str, Value), UpstreamError> {
    let function = call.get("function");
    let name = function
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{at}.function.name"), "a tool call needs a name."))?;
    let arguments = function
        .and_then(|f| f.get("arguments"))
        .and_then(Value::as_str)
        .unwrap_or("{}");
    let args = if arguments.trim().is_empty() {
        Value::Object(Object::new())
    } else {
        serde_json::from_str(arguments).map_err(|_| {
            invalid(
                &format!("{at}.function.arguments"),
                "tool call arguments must be a JSON object.",
            )
        })?
    };
    Ok((call.get("id").and_then(Value::as_str), name, args))
}
