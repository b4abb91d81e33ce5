//! Pure conversions between the OpenAI chat shape and Gemini's `generateContent`
//! (<https://ai.google.dev/api/generate-content>).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use crate::UpstreamError;
use crate::translate::{self as t, Object, Part, ResponseFormat, ToolChoice, invalid, unsupported};
use crate::transport::{error_type_for, openai_error};

const PROVIDER: &str = "Gemini";

/// What the response translation needs to know about the request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    /// The model asked for, reported when the response names none.
    pub model: String,
    pub include_usage: bool,
}

/// The `generateContent` body for an OpenAI chat request.
pub(crate) fn request(req: &Object, model: &str) -> Result<(Value, Context), UpstreamError> {
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
            "response_format",
            "presence_penalty",
            "frequency_penalty",
            // Gemini may call several functions at once: `true` is its only behaviour.
            "parallel_tool_calls",
        ],
    )?;
    if req.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        return Err(unsupported(
            PROVIDER,
            "parallel_tool_calls",
            "turning parallel tool calls off",
        ));
    }
    let mut body = Object::new();
    let (system, contents) = contents(req)?;
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }

    let mut config = Object::new();
    if let Some(v) = t::number(PROVIDER, req, "temperature", 2.0)? {
        config.insert("temperature".into(), Value::from(v));
    }
    if let Some(v) = t::number(PROVIDER, req, "top_p", 1.0)? {
        config.insert("topP".into(), Value::from(v));
    }
    if let Some(v) = req.get("top_k").filter(|v| !v.is_null()) {
        config.insert("topK".into(), v.clone());
    }
    if let Some(v) = t::max_tokens(req)? {
        config.insert("maxOutputTokens".into(), Value::from(v));
    }
    if let Some(stop) = t::stop_sequences(req.get("stop"))? {
        config.insert("stopSequences".into(), Value::Array(stop));
    }
    for (field, key) in [
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ] {
        if let Some(v) = req.get(field).filter(|v| !v.is_null()) {
            config.insert(key.into(), v.clone());
        }
    }
    match t::response_format(req)? {
        ResponseFormat::Text => {}
        ResponseFormat::JsonObject => {
            config.insert("responseMimeType".into(), Value::from("application/json"));
        }
        ResponseFormat::JsonSchema { schema, .. } => {
            config.insert("responseMimeType".into(), Value::from("application/json"));
            config.insert("responseJsonSchema".into(), schema.clone());
        }
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }

    let declarations: Vec<Value> = t::tool_functions(PROVIDER, req)?
        .into_iter()
        .map(|f| {
            let mut declaration = json!({"name": f.get("name").cloned().unwrap_or(Value::Null)});
            if let Some(d) = f.get("description").filter(|d| !d.is_null()) {
                declaration["description"] = d.clone();
            }
            if let Some(p) = f.get("parameters").filter(|p| !p.is_null()) {
                declaration["parametersJsonSchema"] = p.clone();
            }
            declaration
        })
        .collect();
    if !declarations.is_empty() {
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    let calling = match t::tool_choice(req)? {
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"mode": "AUTO"})),
        Some(ToolChoice::None) => Some(json!({"mode": "NONE"})),
        Some(ToolChoice::Required) => Some(json!({"mode": "ANY"})),
        Some(ToolChoice::Named(name)) => {
            Some(json!({"mode": "ANY", "allowedFunctionNames": [name]}))
        }
    };
    if let Some(calling) = calling {
        body.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": calling}),
        );
    }
    let context = Context {
        model: model.to_owned(),
        include_usage: t::include_usage(req),
    };
    Ok((Value::Object(body), context))
}

/// System instruction parts and the conversation (`user` and `model` turns, consecutive turns
/// of one role merged, the user's first). Tool results name their function, which OpenAI gives
/// only by call id: the name is found on the assistant turn that made the call.
fn contents(req: &Object) -> Result<(Vec<Value>, Vec<Value>), UpstreamError> {
    let mut system = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    let mut call_names: Vec<(String, String)> = Vec::new();
    let mut last = 0;
    for (i, message) in t::messages(req)?.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (role, parts) = match role {
            "system" | "developer" => {
                // An empty part is refused, as in the conversation.
                let text = t::content_text(PROVIDER, message, &at)?;
                if !text.is_empty() {
                    system.push(json!({"text": text}));
                }
                continue;
            }
            "user" => ("user", user_parts(message, &at)?),
            "assistant" => {
                let mut parts = Vec::new();
                let text = t::content_text(PROVIDER, message, &at)?;
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                for (k, call) in message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let (id, name, args) = t::tool_call(call, &format!("{at}.tool_calls[{k}]"))?;
                    if let Some(id) = id {
                        call_names.push((id.to_owned(), name.to_owned()));
                    }
                    parts.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                ("model", parts)
            }
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = call_names
                    .iter()
                    .rev()
                    .find(|(call, _)| call == id)
                    .map(|(_, name)| name.clone())
                    .ok_or_else(|| {
                        invalid(
                            &format!("{at}.tool_call_id"),
                            "a tool message must answer a tool call made earlier in the conversation.",
                        )
                    })?;
                let text = t::content_text(PROVIDER, message, &at)?;
                // Gemini wants an object: a JSON object result goes as it is, anything else
                // under "content".
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"content": text}),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
            other => return Err(t::unsupported_role(PROVIDER, &at, other)),
        };
        if !parts.is_empty() {
            last = i;
        }
        t::push_turn(&mut out, role, "parts", parts);
    }
    // Gemini refuses a conversation that ends on the model's turn ("Please ensure that
    // multiturn requests ends with a user role or a function response"), which OpenAI answers
    // with a new message; refused here, so that an alias can try its next target.
    if out.last().is_some_and(|turn| turn["role"] == "model") {
        return Err(t::unsupported(
            PROVIDER,
            &format!("messages[{last}].role"),
            "a conversation that ends with an assistant message",
        ));
    }
    t::user_first(&mut out, "parts", json!({"text": t::OPENING_TURN}));
    Ok((system, out))
}

fn user_parts(message: &Object, at: &str) -> Result<Vec<Value>, UpstreamError> {
    Ok(t::content_parts(PROVIDER, message, at)?
        .into_iter()
        // Gemini refuses empty parts, which OpenAI takes as nothing said; a turn left with
        // nothing is left out (consecutive turns of a role merge).
        .filter(|part| !matches!(part, Part::Text(text) if text.is_empty()))
        .map(|part| match part {
            Part::Text(text) => json!({"text": text}),
            Part::ImageData { media_type, data } => {
                json!({"inlineData": {"mimeType": media_type, "data": data}})
            }
            Part::ImageUrl(url) => {
                json!({"fileData": {"mimeType": image_type(url), "fileUri": url}})
            }
        })
        .collect())
}

/// Gemini needs a MIME type for a file by URL; taken from the extension.
fn image_type(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("heic") => "image/heic",
        _ => "image/jpeg",
    }
}

/// OpenAI's `finish_reason` for a Gemini `finishReason`.
pub(crate) fn finish_reason(reason: &str, called_tools: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

/// OpenAI usage from `usageMetadata`: thinking tokens are billed as output.
pub(crate) fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    let thoughts = n("thoughtsTokenCount");
    let completion = n("candidatesTokenCount").unwrap_or(0) + thoughts.unwrap_or(0);
    t::usage(
        n("promptTokenCount").unwrap_or(0),
        completion,
        n("cachedContentTokenCount").unwrap_or(0),
        thoughts,
    )
}

/// A tool call id: Gemini's own when it sends one, otherwise a fresh one (OpenAI clients answer
/// each call by its id).
pub(crate) fn call_id(call: &Value) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if let Some(id) = call.get("id").and_then(Value::as_str) {
        return id.to_owned();
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "call_{:x}{:04x}",
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

/// What one candidate's parts say, in OpenAI terms.
#[derive(Default)]
pub(crate) struct Parts {
    pub text: String,
    pub reasoning: String,
    pub tool_calls: Vec<Value>,
}

pub(crate) fn parts(candidate: &Value) -> Parts {
    let mut out = Parts::default();
    let parts = candidate
        .get("content")
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array);
    for part in parts.into_iter().flatten() {
        if let Some(call) = part.get("functionCall") {
            let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
            out.tool_calls.push(json!({
                "id": call_id(call),
                "type": "function",
                "function": {
                    "name": call.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": args.to_string(),
                },
            }));
        } else if let Some(text) = part.get("text").and_then(Value::as_str) {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                out.reasoning.push_str(text);
            } else {
                out.text.push_str(text);
            }
        }
    }
    out
}

/// The OpenAI `chat.completion` for a `generateContent` response.
pub(crate) fn response(body: &[u8], context: &Context) -> Result<Bytes, UpstreamError> {
    let answer: Value = serde_json::from_slice(body)
        .map_err(|e| UpstreamError::Malformed(format!("unreadable Gemini response: {e}")))?;
    let candidate = answer
        .get("candidates")
        .and_then(Value::as_array)
        .and_then(|c| c.first());
    let (message, finish) = match candidate {
        Some(candidate) => {
            let p = parts(candidate);
            let called = !p.tool_calls.is_empty();
            let mut message = json!({
                "role": "assistant",
                "content": if p.text.is_empty() && called { Value::Null } else { Value::from(p.text) },
                "refusal": null,
            });
            if called {
                message["tool_calls"] = Value::Array(p.tool_calls);
            }
            if !p.reasoning.is_empty() {
                message["reasoning_content"] = Value::from(p.reasoning);
            }
            let reason = candidate
                .get("finishReason")
                .and_then(Value::as_str)
                .unwrap_or("STOP");
            (message, finish_reason(reason, called))
        }
        // The prompt itself was blocked (`promptFeedback.blockReason`): no candidates.
        None => (
            json!({"role": "assistant", "content": null, "refusal": null}),
            "content_filter",
        ),
    };
    let completion = json!({
        "id": answer.get("responseId").and_then(Value::as_str)
            .map(|id| format!("chatcmpl-{id}")).unwrap_or_else(|| "chatcmpl-gemini".to_owned()),
        "object": "chat.completion",
        "created": crate::unix_now(),
        "model": answer.get("modelVersion").and_then(Value::as_str).unwrap_or(&context.model),
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage(answer.get("usageMetadata").unwrap_or(&Value::Null)),
    });
    Ok(Bytes::from(completion.to_string()))
}

/// A Google API error (`{"error": {"code", "message", "status"}}`) in the OpenAI shape; the
/// Google status (`INVALID_ARGUMENT`...) becomes the `code`.
pub(crate) fn error(status: StatusCode, body: &[u8]) -> Bytes {
    // Some proxies wrap it in an array.
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let parsed = match parsed {
        Some(Value::Array(mut items)) if !items.is_empty() => Some(items.swap_remove(0)),
        other => other,
    };
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    match error.and_then(|e| e.get("message")).and_then(Value::as_str) {
        Some(message) => {
            let code = error.and_then(|e| e.get("status")).and_then(Value::as_str);
            openai_error(message, error_type(code, status), code)
        }
        None => Bytes::copy_from_slice(body),
    }
}

fn error_type(code: Option<&str>, status: StatusCode) -> &'static str {
    match code {
        Some("INVALID_ARGUMENT")
        | Some("FAILED_PRECONDITION")
        | Some("NOT_FOUND")
        | Some("OUT_OF_RANGE") => "invalid_request_error",
        Some("UNAUTHENTICATED") => "authentication_error",
        Some("PERMISSION_DENIED") => "permission_error",
        Some("RESOURCE_EXHAUSTED") => "rate_limit_error",
        Some("INTERNAL") | Some("UNAVAILABLE") | Some("DEADLINE_EXCEEDED") => "server_error",
        _ => error_type_for(status),
    }
}
