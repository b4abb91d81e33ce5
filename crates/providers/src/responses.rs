//! OpenAI's Responses API for upstreams that do not speak it (Anthropic, Gemini, Azure
//! deployments, OpenAI-compatible servers with only chat completions): the request becomes a
//! chat completion request (which their adapters translate as usual), and the chat answer
//! becomes a response object, or, streamed, the Responses API's named events.
//!
//! What has no chat equivalent is refused with a 400 naming the field (a stored conversation by
//! `previous_response_id`, background mode, built-in tools, file inputs, text settings other than
//! the format), never dropped. Bookkeeping fields (`store`, `metadata`, `include`, `truncation`...)
//! and a request for reasoning summaries are accepted; nothing is stored at these upstreams, so
//! the stored-response routes will not find these responses.

use std::collections::VecDeque;

use serde_json::{Map, Value, json};

use crate::translate::{Object, invalid};
use crate::{StreamEvent, UpstreamError};

/// The Responses API fields a chat completion carries, and the bookkeeping ones accepted.
const KNOWN: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "text",
    "reasoning",
    "stream",
    "store",
    "metadata",
    "user",
    "include",
    "truncation",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
];

/// What the response object repeats of the request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    echo: Object,
}

fn unsupported(param: &str, what: &str) -> UpstreamError {
    invalid(
        param,
        &format!(
            "{what} ('{param}') is not available for this model's provider through the \
             Responses API; send it to an OpenAI target, or use /v1/chat/completions."
        ),
    )
}

/// The chat completion request for a Responses API request.
pub(crate) fn request(req: &Object, stream: bool) -> Result<(Object, Context), UpstreamError> {
    for (field, value) in req {
        if value.is_null() || KNOWN.contains(&field.as_str()) {
            continue;
        }
        let what = match field.as_str() {
            "previous_response_id" | "conversation" => "a stored conversation",
            "background" if value == &Value::Bool(false) => continue,
            "background" => "background mode",
            "prompt" => "a stored prompt",
            _ => "this field",
        };
        return Err(unsupported(field, what));
    }
    let mut chat = Object::new();
    let model = req.get("model").cloned().unwrap_or(Value::Null);
    chat.insert("model".into(), model.clone());
    chat.insert("messages".into(), Value::Array(messages(req)?));
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("max_output_tokens", "max_completion_tokens"),
        ("user", "user"),
        ("metadata", "metadata"),
    ] {
        if let Some(v) = req.get(from).filter(|v| !v.is_null()) {
            chat.insert(to.into(), v.clone());
        }
    }
    if let Some(tools) = req.get("tools").filter(|v| !v.is_null()) {
        chat.insert("tools".into(), self::tools(tools)?);
    }
    if let Some(choice) = req.get("tool_choice").filter(|v| !v.is_null()) {
        chat.insert("tool_choice".into(), tool_choice(choice)?);
    }
    if let Some(text) = req.get("text").and_then(Value::as_object) {
        for (field, value) in text {
            if field != "format" && !value.is_null() {
                return Err(unsupported(&format!("text.{field}"), "this output setting"));
            }
        }
        if let Some(format) = text.get("format")
            && let Some(format) = response_format(format)?
        {
            chat.insert("response_format".into(), format);
        }
    }
    if let Some(effort) = req
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .filter(|e| !e.is_null())
    {
        chat.insert("reasoning_effort".into(), effort.clone());
    }
    if stream {
        chat.insert("stream".into(), Value::Bool(true));
        // The final event carries the usage: ask for it.
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let mut echo = Object::new();
    echo.insert("model".into(), model);
    for field in [
        "instructions",
        "max_output_tokens",
        "metadata",
        "parallel_tool_calls",
        "reasoning",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_p",
        "user",
    ] {
        echo.insert(
            field.into(),
            req.get(field).cloned().unwrap_or_else(|| default_of(field)),
        );
    }
    Ok((chat, Context { echo }))
}

/// What a response object says for a field the request left out.
fn default_of(field: &str) -> Value {
    match field {
        "metadata" => json!({}),
        "parallel_tool_calls" => json!(true),
        "reasoning" => json!({"effort": null, "summary": null}),
        "temperature" | "top_p" => json!(1.0),
        "text" => json!({"format": {"type": "text"}}),
        "tool_choice" => json!("auto"),
        "tools" => json!([]),
        _ => Value::Null,
    }
}

/// `instructions` and `input` as chat messages.
fn messages(req: &Object) -> Result<Vec<Value>, UpstreamError> {
    let mut out = Vec::new();
    match req.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => out.push(json!({"role": "system", "content": text})),
        Some(_) => return Err(invalid("instructions", "'instructions' must be a string.")),
    }
    let items = match req.get("input") {
        Some(Value::String(text)) => {
            out.push(json!({"role": "user", "content": text}));
            return Ok(out);
        }
        Some(Value::Array(items)) => items,
        _ => {
            return Err(invalid(
                "input",
                "'input' must be a string or a list of items.",
            ));
        }
    };
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        match kind {
            "message" => out.push(message(item, &at)?),
            "function_call" => {
                let call = json!({
                    "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": item.get("name").cloned().unwrap_or(Value::Null),
                        "arguments": item.get("arguments").cloned().unwrap_or(json!("{}")),
                    }
                });
                // Calls made in one turn are one assistant message.
                match out.last_mut() {
                    Some(last)
                        if last["role"] == "assistant"
                            && last.get("tool_calls").is_some_and(Value::is_array) =>
                    {
                        if let Some(calls) = last["tool_calls"].as_array_mut() {
                            calls.push(call);
                        }
                    }
                    Some(last) if last["role"] == "assistant" => {
                        last["tool_calls"] = json!([call]);
                    }
                    _ => out
                        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            "function_call_output" => {
                let output = match item.get("output") {
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Array(parts)) => texts(parts, &format!("{at}.output"))?,
                    _ => return Err(invalid(&format!("{at}.output"), "'output' must be text.")),
                };
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "content": output,
                }));
            }
            // A model's reasoning is its provider's own; another cannot read it back.
            "reasoning" => {}
            other => {
                return Err(unsupported(
                    &format!("{at}.type"),
                    &format!("an input item of type {other:?}"),
                ));
            }
        }
    }
    Ok(out)
}

/// One input message as a chat message.
fn message(item: &Value, at: &str) -> Result<Value, UpstreamError> {
    let role = match item.get("role").and_then(Value::as_str) {
        Some("developer" | "system") => "system",
        Some("user") => "user",
        Some("assistant") => "assistant",
        _ => {
            return Err(invalid(
                &format!("{at}.role"),
                "A message's role must be user, assistant, system or developer.",
            ));
        }
    };
    let content = match item.get("content") {
        Some(Value::String(text)) => Value::String(text.clone()),
        Some(Value::Array(parts)) if role == "user" => {
            let mut out = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                out.push(user_part(part, &format!("{at}.content[{j}]"))?);
            }
            Value::Array(out)
        }
        Some(Value::Array(parts)) => Value::String(texts(parts, &format!("{at}.content"))?),
        _ => {
            return Err(invalid(
                &format!("{at}.content"),
                "A message's content must be text or a list of parts.",
            ));
        }
    };
    Ok(json!({"role": role, "content": content}))
}

/// A user content part as a chat content part.
fn user_part(part: &Value, at: &str) -> Result<Value, UpstreamError> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => {
            Ok(json!({"type": "text", "text": part.get("text").cloned().unwrap_or(json!(""))}))
        }
        Some("input_image") => {
            let Some(url) = part.get("image_url").filter(|u| u.is_string()) else {
                return Err(unsupported(&format!("{at}.file_id"), "an image by file id"));
            };
            let mut image = json!({"url": url});
            if let Some(detail) = part.get("detail").filter(|d| !d.is_null()) {
                image["detail"] = detail.clone();
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        other => Err(unsupported(
            &format!("{at}.type"),
            &format!("a content part of type {}", other.unwrap_or("(none)")),
        )),
    }
}

/// The text parts of a list, joined (assistant history, tool output).
fn texts(parts: &[Value], at: &str) -> Result<String, UpstreamError> {
    let mut text = String::new();
    for (j, part) in parts.iter().enumerate() {
        match part.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                text.push_str(part.get("text").and_then(Value::as_str).unwrap_or_default());
            }
            Some("refusal") => {
                text.push_str(
                    part.get("refusal")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
            }
            other => {
                return Err(unsupported(
                    &format!("{at}[{j}].type"),
                    &format!("a content part of type {}", other.unwrap_or("(none)")),
                ));
            }
        }
    }
    Ok(text)
}

fn tools(tools: &Value) -> Result<Value, UpstreamError> {
    let Some(list) = tools.as_array() else {
        return Err(invalid("tools", "'tools' must be a list."));
    };
    let mut out = Vec::new();
    for (i, tool) in list.iter().enumerate() {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {
                let mut function = Map::new();
                for field in ["name", "description", "parameters", "strict"] {
                    if let Some(v) = tool.get(field).filter(|v| !v.is_null()) {
                        function.insert(field.into(), v.clone());
                    }
                }
                out.push(json!({"type": "function", "function": function}));
            }
            other => {
                return Err(unsupported(
                    &format!("tools[{i}].type"),
                    &format!("the built-in tool {}", other.unwrap_or("(none)")),
                ));
            }
        }
    }
    Ok(Value::Array(out))
}

fn tool_choice(choice: &Value) -> Result<Value, UpstreamError> {
    match choice {
        Value::String(_) => Ok(choice.clone()),
        _ if choice.get("type").and_then(Value::as_str) == Some("function") => Ok(json!({
            "type": "function",
            "function": {"name": choice.get("name").cloned().unwrap_or(Value::Null)}
        })),
        _ => Err(unsupported("tool_choice", "this tool choice")),
    }
}

/// `text.format` as a chat `response_format` (none for plain text).
fn response_format(format: &Value) -> Result<Option<Value>, UpstreamError> {
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for field in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(field).filter(|v| !v.is_null()) {
                    schema.insert(field.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(_) => Err(unsupported("text.format.type", "this output format")),
    }
}

/// Ids derived from the chat completion's, so a response and its stream agree.
fn ids(chat_id: &str) -> (String, String) {
    let tail: String = chat_id
        .trim_start_matches("chatcmpl-")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    (format!("resp_{tail}"), format!("msg_{tail}"))
}

fn usage(chat: &Value) -> Value {
    let u = &chat["usage"];
    if !u.is_object() {
        return Value::Null;
    }
    let input = u["prompt_tokens"].as_u64().unwrap_or(0);
    let output = u["completion_tokens"].as_u64().unwrap_or(0);
    json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0)
        },
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u["total_tokens"].as_u64().unwrap_or(input + output),
    })
}

/// A response object: the request's echo, and what was made.
fn response_object(
    context: &Context,
    id: &str,
    created: &Value,
    status: &str,
    output: Vec<Value>,
    usage: Value,
    finish: Option<&str>,
) -> Value {
    let mut r = Map::new();
    r.insert("id".into(), json!(id));
    r.insert("object".into(), json!("response"));
    r.insert("created_at".into(), created.clone());
    r.insert("status".into(), json!(status));
    r.insert("error".into(), Value::Null);
    let incomplete = match finish {
        Some("length") => json!({"reason": "max_output_tokens"}),
        Some("content_filter") => json!({"reason": "content_filter"}),
        _ => Value::Null,
    };
    r.insert("incomplete_details".into(), incomplete);
    for (k, v) in &context.echo {
        r.insert(k.clone(), v.clone());
    }
    r.insert("output".into(), Value::Array(output));
    r.insert("previous_response_id".into(), Value::Null);
    r.insert("store".into(), json!(false));
    r.insert("truncation".into(), json!("disabled"));
    r.insert("usage".into(), usage);
    Value::Object(r)
}

/// The final status for a chat finish reason.
fn status_of(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length" | "content_filter") => "incomplete",
        _ => "completed",
    }
}

fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

fn call_item(call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"id": format!("fc_{call_id}"), "type": "function_call", "status": status,
           "call_id": call_id, "name": name, "arguments": arguments})
}

/// The response object for a chat completion.
pub(crate) fn response(chat: &[u8], context: &Context) -> Result<bytes::Bytes, UpstreamError> {
    let chat: Value = serde_json::from_slice(chat)
        .map_err(|e| UpstreamError::Malformed(format!("unreadable chat completion: {e}")))?;
    let (id, msg_id) = ids(chat["id"].as_str().unwrap_or_default());
    let choice = &chat["choices"][0];
    let message = &choice["message"];
    let finish = choice["finish_reason"].as_str();
    let mut output = Vec::new();
    let mut content = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(text_part(text));
    }
    if let Some(refusal) = message["refusal"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "refusal", "refusal": refusal}));
    }
    if !content.is_empty() {
        output.push(message_item(&msg_id, "completed", content));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        output.push(call_item(
            call["id"].as_str().unwrap_or_default(),
            call["function"]["name"].as_str().unwrap_or_default(),
            call["function"]["arguments"].as_str().unwrap_or("{}"),
            "completed",
        ));
    }
    let object = response_object(
        context,
        &id,
        &chat["created"],
        status_of(finish),
        output,
        usage(&chat),
        finish,
    );
    Ok(bytes::Bytes::from(object.to_string()))
}

/// A function call being streamed.
#[derive(Debug)]
struct Call {
    call_id: String,
    name: String,
    arguments: String,
    output_index: usize,
}

/// Turns a chat completion's chunks, as they come, into the Responses API's events.
#[derive(Debug)]
pub(crate) struct Translator {
    context: Context,
    sequence: u64,
    id: String,
    msg_id: String,
    created: Value,
    started: bool,
    /// The message items in the order they opened: a message closes when a tool call opens,
    /// and text after the call opens another.
    messages: Vec<Message>,
    /// Function calls by their chunk index.
    calls: Vec<(u64, Call)>,
    finish: Option<String>,
    usage: Value,
}

/// A message item of a translated stream.
#[derive(Debug)]
struct Message {
    id: String,
    output_index: usize,
    /// Content parts in the order they opened: a refusal or not, and the text so far.
    parts: Vec<(bool, String)>,
    done: bool,
}

impl Message {
    fn content(&self) -> Vec<Value> {
        self.parts
            .iter()
            .map(|(refusal, text)| {
                if *refusal {
                    json!({"type": "refusal", "refusal": text})
                } else {
                    text_part(text)
                }
            })
            .collect()
    }
}

impl Translator {
    pub(crate) fn new(context: Context) -> Self {
        Self {
            context,
            sequence: 0,
            id: String::new(),
            msg_id: String::new(),
            created: Value::Null,
            started: false,
            messages: Vec::new(),
            calls: Vec::new(),
            finish: None,
            usage: Value::Null,
        }
    }

    fn emit(&mut self, out: &mut VecDeque<StreamEvent>, mut event: Value, last: bool) {
        event["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        let name = event["type"].as_str().unwrap_or_default().to_owned();
        out.push_back(StreamEvent::Named {
            name,
            data: event.to_string(),
            last,
        });
    }

    /// One chat chunk (its data).
    pub(crate) fn chunk(
        &mut self,
        data: &str,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), UpstreamError> {
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| UpstreamError::Malformed(format!("unreadable chunk: {e}")))?;
        if !self.started {
            self.started = true;
            (self.id, self.msg_id) = ids(chunk["id"].as_str().unwrap_or_default());
            self.created = chunk["created"].clone();
            let opened = self.object("in_progress", Vec::new(), Value::Null);
            self.emit(
                out,
                json!({"type": "response.created", "response": opened}),
                false,
            );
            self.emit(
                out,
                json!({"type": "response.in_progress", "response": opened}),
                false,
            );
        }
        if chunk["usage"].is_object() {
            self.usage = usage(&chunk);
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return Ok(());
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text_delta(text, false, out);
        }
        if let Some(refusal) = delta["refusal"].as_str().filter(|t| !t.is_empty()) {
            self.text_delta(refusal, true, out);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            self.call_delta(call, out);
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.finish = Some(finish.to_owned());
        }
        Ok(())
    }

    /// Text (or a refusal) for the open message item, opening it and its part first.
    fn text_delta(&mut self, delta: &str, refusal: bool, out: &mut VecDeque<StreamEvent>) {
        if self.messages.last().is_none_or(|m| m.done) {
            // The first message has the id derived from the chat's; text after a tool call
            // opens another message, numbered after it.
            let id = match self.messages.len() {
                0 => self.msg_id.clone(),
                n => format!("{}_{}", self.msg_id, n + 1),
            };
            let output_index = self.outputs();
            let item = message_item(&id, "in_progress", Vec::new());
            let event = json!({"type": "response.output_item.added",
                "output_index": output_index, "item": item});
            self.emit(out, event, false);
            self.messages.push(Message {
                id,
                output_index,
                parts: Vec::new(),
                done: false,
            });
        }
        let Some(message) = self.messages.last_mut() else {
            return;
        };
        let (msg_id, output_index) = (message.id.clone(), message.output_index);
        let content_index = match message.parts.iter().position(|(r, _)| *r == refusal) {
            Some(at) => at,
            None => {
                message.parts.push((refusal, String::new()));
                let at = message.parts.len() - 1;
                let part = if refusal {
                    json!({"type": "refusal", "refusal": ""})
                } else {
                    text_part("")
                };
                let event = json!({"type": "response.content_part.added", "item_id": msg_id,
                    "output_index": output_index, "content_index": at, "part": part});
                self.emit(out, event, false);
                at
            }
        };
        if let Some(message) = self.messages.last_mut() {
            message.parts[content_index].1.push_str(delta);
        }
        let mut event = json!({"item_id": msg_id, "output_index": output_index,
            "content_index": content_index, "delta": delta});
        if refusal {
            event["type"] = json!("response.refusal.delta");
        } else {
            event["type"] = json!("response.output_text.delta");
            event["logprobs"] = json!([]);
        }
        self.emit(out, event, false);
    }

    /// A tool call's fragment: a new call opens its item (closing the message before it).
    fn call_delta(&mut self, call: &Value, out: &mut VecDeque<StreamEvent>) {
        let index = call["index"].as_u64().unwrap_or(self.calls.len() as u64);
        let known = self.calls.iter().position(|(i, _)| *i == index);
        let at = match known {
            Some(at) => at,
            None => {
                self.close_message(out);
                let output_index = self.outputs();
                let new = Call {
                    call_id: call["id"].as_str().unwrap_or_default().to_owned(),
                    name: call["function"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    arguments: String::new(),
                    output_index,
                };
                let item = call_item(&new.call_id, &new.name, "", "in_progress");
                let event = json!({"type": "response.output_item.added",
                    "output_index": output_index, "item": item});
                self.emit(out, event, false);
                self.calls.push((index, new));
                self.calls.len() - 1
            }
        };
        if let Some(fragment) = call["function"]["arguments"]
            .as_str()
            .filter(|a| !a.is_empty())
        {
            let c = &mut self.calls[at].1;
            c.arguments.push_str(fragment);
            let event = json!({"type": "response.function_call_arguments.delta",
                "item_id": format!("fc_{}", c.call_id), "output_index": c.output_index,
                "delta": fragment});
            self.emit(out, event, false);
        }
    }

    /// The open message item's closing events, once.
    fn close_message(&mut self, out: &mut VecDeque<StreamEvent>) {
        let Some(message) = self.messages.last_mut().filter(|m| !m.done) else {
            return;
        };
        message.done = true;
        let (msg_id, output_index) = (message.id.clone(), message.output_index);
        let (parts, content) = (message.parts.clone(), message.content());
        for (index, (refusal, text)) in parts.into_iter().enumerate() {
            let (event, part) = if refusal {
                (
                    json!({"type": "response.refusal.done", "refusal": text}),
                    json!({"type": "refusal", "refusal": text}),
                )
            } else {
                (
                    json!({"type": "response.output_text.done", "text": text, "logprobs": []}),
                    text_part(&text),
                )
            };
            for mut event in [
                event,
                json!({"type": "response.content_part.done", "part": part}),
            ] {
                event["item_id"] = json!(msg_id);
                event["output_index"] = json!(output_index);
                event["content_index"] = json!(index);
                self.emit(out, event, false);
            }
        }
        let item = message_item(&msg_id, "completed", content);
        let event = json!({"type": "response.output_item.done", "output_index": output_index,
            "item": item});
        self.emit(out, event, false);
    }

    /// Output items opened so far: the next one's index.
    fn outputs(&self) -> usize {
        self.messages.len() + self.calls.len()
    }

    fn object(&self, status: &str, output: Vec<Value>, usage: Value) -> Value {
        response_object(
            &self.context,
            &self.id,
            &self.created,
            status,
            output,
            usage,
            self.finish.as_deref(),
        )
    }

    /// The chat stream's `[DONE]` (it comes once): every open item closed, then the final
    /// event, whose output lists the items in the order they opened.
    pub(crate) fn done(&mut self, out: &mut VecDeque<StreamEvent>) {
        self.close_message(out);
        let mut output: Vec<(usize, Value)> = self
            .messages
            .iter()
            .map(|m| {
                (
                    m.output_index,
                    message_item(&m.id, "completed", m.content()),
                )
            })
            .collect();
        for at in 0..self.calls.len() {
            let c = &self.calls[at].1;
            let item = call_item(&c.call_id, &c.name, &c.arguments, "completed");
            let done = json!({"type": "response.function_call_arguments.done",
                "item_id": format!("fc_{}", c.call_id), "output_index": c.output_index,
                "arguments": c.arguments});
            let closed = json!({"type": "response.output_item.done",
                "output_index": c.output_index, "item": item});
            output.push((c.output_index, item));
            self.emit(out, done, false);
            self.emit(out, closed, false);
        }
        output.sort_by_key(|(i, _)| *i);
        let output = output.into_iter().map(|(_, item)| item).collect();
        let status = status_of(self.finish.as_deref());
        let name = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let usage = self.usage.clone();
        let response = self.object(status, output, usage);
        self.emit(out, json!({"type": name, "response": response}), true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Value) -> Object {
        match v {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn a_request_becomes_a_chat_request() {
        let (chat, _) = request(
            &object(json!({
                "model": "claude-sonnet-4-5",
                "instructions": "Be brief.",
                "input": [
                    {"role": "developer", "content": "Answer in French."},
                    {"type": "message", "role": "user", "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"}
                    ]},
                    {"type": "reasoning", "id": "rs_1", "summary": []},
                    {"role": "assistant", "content": [{"type": "output_text", "text": "A cat."}]},
                    {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
                    {"type": "function_call", "call_id": "call_2", "name": "time", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
                ],
                "tools": [{"type": "function", "name": "weather", "description": "Weather",
                           "parameters": {"type": "object"}, "strict": true}],
                "tool_choice": {"type": "function", "name": "weather"},
                "text": {"format": {"type": "json_schema", "name": "answer",
                                    "schema": {"type": "object"}, "strict": true}},
                "max_output_tokens": 100,
                "temperature": 0.2,
                "store": true,
                "metadata": {"k": "v"}
            })),
            true,
        )
        .unwrap();
        assert_eq!(
            Value::Object(chat),
            json!({
                "model": "claude-sonnet-4-5",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "system", "content": "Answer in French."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}}
                    ]},
                    {"role": "assistant", "content": "A cat.", "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
                ],
                "temperature": 0.2,
                "max_completion_tokens": 100,
                "metadata": {"k": "v"},
                "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather",
                           "parameters": {"type": "object"}, "strict": true}}],
                "tool_choice": {"type": "function", "function": {"name": "weather"}},
                "response_format": {"type": "json_schema", "json_schema": {"name": "answer",
                                    "schema": {"type": "object"}, "strict": true}},
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
    }

    #[test]
    fn what_has_no_chat_equivalent_is_refused_naming_it() {
        for (field, value, param) in [
            (
                "previous_response_id",
                json!("resp_1"),
                "previous_response_id",
            ),
            ("background", json!(true), "background"),
            ("conversation", json!("conv_1"), "conversation"),
            ("tools", json!([{"type": "web_search"}]), "tools[0].type"),
            (
                "input",
                json!([{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]),
                "input[0].content[0].type",
            ),
            (
                "input",
                json!([{"type": "item_reference", "id": "x"}]),
                "input[0].type",
            ),
            (
                "text",
                json!({"format": {"type": "grammar"}}),
                "text.format.type",
            ),
            ("text", json!({"verbosity": "low"}), "text.verbosity"),
            ("frobnicate", json!(1), "frobnicate"),
        ] {
            let mut req = object(json!({"model": "m", "input": "Hi"}));
            req.insert(field.into(), value);
            match request(&req, false) {
                Err(UpstreamError::Unsupported { param: p, message }) => {
                    assert_eq!(p, param, "{field}");
                    assert!(message.contains("/v1/chat/completions"), "{message}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        // Accepted as no change: background off, a null, bookkeeping.
        let req = object(json!({"model": "m", "input": "Hi", "background": false,
            "previous_response_id": null, "include": ["x"], "truncation": "auto", "store": false}));
        assert!(request(&req, false).is_ok());
    }

    fn chat_completion(message: Value, finish: &str) -> Value {
        json!({"id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000,
               "model": "claude-sonnet-4-5",
               "choices": [{"index": 0, "message": message, "finish_reason": finish}],
               "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}})
    }

    /// The response object the JSON translation makes of `chat`.
    fn respond(chat: &Value, ctx: &Context) -> Value {
        serde_json::from_slice(&response(chat.to_string().as_bytes(), ctx).unwrap()).unwrap()
    }

    fn context(req: Value) -> Context {
        request(&object(req), false).unwrap().1
    }

    #[test]
    fn a_chat_answer_becomes_a_response() {
        let ctx = context(
            json!({"model": "claude-sonnet-4-5", "input": "Hi", "instructions": "Be brief."}),
        );
        let chat = chat_completion(json!({"role": "assistant", "content": "Hello!"}), "stop");
        let r = respond(&chat, &ctx);
        assert_eq!(r["id"], "resp_abc");
        assert_eq!(r["object"], "response");
        assert_eq!(r["status"], "completed");
        assert_eq!(r["created_at"], 1700000000);
        assert_eq!(r["instructions"], "Be brief.");
        assert_eq!(r["model"], "claude-sonnet-4-5");
        assert_eq!(
            r["output"],
            json!([{"id": "msg_abc", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]}])
        );
        assert_eq!(r["usage"]["input_tokens"], 9);
        assert_eq!(r["usage"]["output_tokens"], 4);
        assert_eq!(r["usage"]["total_tokens"], 13);
        // Tool calls are function_call items; a cut answer is incomplete.
        let chat = chat_completion(
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_1",
                   "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
            "tool_calls",
        );
        let r = respond(&chat, &ctx);
        assert_eq!(
            r["output"],
            json!([{"id": "fc_toolu_1", "type": "function_call", "status": "completed",
                    "call_id": "toolu_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"}])
        );
        let chat = chat_completion(json!({"role": "assistant", "content": "Hel"}), "length");
        let r = respond(&chat, &ctx);
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    }

    /// The events of a chat stream of `chunks` (then `[DONE]`), as (name, data) pairs.
    /// The data of every event of this name, in order.
    fn named(events: &[(String, Value, bool)], name: &str) -> Vec<Value> {
        events
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, d, _)| d.clone())
            .collect()
    }

    /// The items opened, as their output index and type.
    fn added(events: &[(String, Value, bool)]) -> Vec<(Value, Value)> {
        named(events, "response.output_item.added")
            .iter()
            .map(|d| (d["output_index"].clone(), d["item"]["type"].clone()))
            .collect()
    }

    fn events_of(ctx: &Context, chunks: &[Value]) -> Vec<(String, Value, bool)> {
        let mut t = Translator::new(ctx.clone());
        let mut out = VecDeque::new();
        for c in chunks {
            t.chunk(&c.to_string(), &mut out).unwrap();
        }
        t.done(&mut out);
        out.into_iter()
            .map(|e| match e {
                StreamEvent::Named { name, data, last } => {
                    (name, serde_json::from_str(&data).unwrap(), last)
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1700000000,
               "model": "claude-sonnet-4-5",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn usage_chunk() -> Value {
        json!({"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1700000000,
               "model": "claude-sonnet-4-5", "choices": [],
               "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}})
    }

    #[test]
    fn a_streamed_text_answer_becomes_the_events_of_its_response() {
        let ctx = context(json!({"model": "claude-sonnet-4-5", "input": "Hi"}));
        let events = events_of(
            &ctx,
            &[
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Hel"}), Value::Null),
                chunk(json!({"content": "lo!"}), Value::Null),
                chunk(json!({}), json!("stop")),
                usage_chunk(),
            ],
        );
        let names: Vec<&str> = events.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (n, (name, data, last)) in events.iter().enumerate() {
            assert_eq!(data["type"], name.as_str());
            assert_eq!(data["sequence_number"], n);
            assert_eq!(*last, n == events.len() - 1);
        }
        assert_eq!(events[0].1["response"]["status"], "in_progress");
        assert_eq!(events[6].1["text"], "Hello!");
        // The final event's response is the one the JSON answer makes.
        let chat = chat_completion(json!({"role": "assistant", "content": "Hello!"}), "stop");
        let json = respond(&chat, &ctx);
        assert_eq!(events[9].1["response"], json);
    }

    #[test]
    fn streamed_tool_calls_become_function_call_items() {
        let ctx = context(json!({"model": "claude-sonnet-4-5", "input": "Weather?",
            "tools": [{"type": "function", "name": "weather", "parameters": {}}]}));
        let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
            let mut c = json!({"index": index, "function": {"arguments": args}});
            if let Some(id) = id {
                c["id"] = json!(id);
                c["type"] = json!("function");
            }
            if let Some(name) = name {
                c["function"]["name"] = json!(name);
            }
            chunk(json!({"tool_calls": [c]}), Value::Null)
        };
        let events = events_of(
            &ctx,
            &[
                chunk(
                    json!({"role": "assistant", "content": "Let me look."}),
                    Value::Null,
                ),
                call(0, Some("toolu_1"), Some("weather"), ""),
                call(0, None, None, "{\"city\":"),
                call(0, None, None, "\"Paris\"}"),
                call(1, Some("toolu_2"), Some("weather"), "{\"city\":\"Rome\"}"),
                chunk(json!({}), json!("tool_calls")),
                usage_chunk(),
            ],
        );
        let names: Vec<&str> = events.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                // The message closes when the first call opens.
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        assert_eq!(events[8].1["output_index"], 1);
        assert_eq!(events[8].1["item"]["call_id"], "toolu_1");
        assert_eq!(events[13].1["arguments"], "{\"city\":\"Paris\"}");
        let chat = chat_completion(
            json!({"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]}),
            "tool_calls",
        );
        let json = respond(&chat, &ctx);
        assert_eq!(events.last().unwrap().1["response"], json);
    }

    #[test]
    fn the_final_output_lists_items_in_the_order_they_opened() {
        let ctx = context(json!({"model": "m", "input": "Hi"}));
        let call = json!({"index": 0, "id": "call_1", "type": "function",
                          "function": {"name": "f", "arguments": "{}"}});
        let events = events_of(
            &ctx,
            &[
                chunk(json!({"tool_calls": [call]}), Value::Null),
                chunk(json!({"content": "Done."}), Value::Null),
                chunk(json!({}), json!("tool_calls")),
            ],
        );
        assert_eq!(
            added(&events),
            [
                (json!(0), json!("function_call")),
                (json!(1), json!("message"))
            ]
        );
        let output = &events.last().unwrap().1["response"]["output"];
        assert_eq!(output[0]["type"], "function_call");
        assert_eq!(output[1]["content"][0]["text"], "Done.");
    }

    #[test]
    fn text_after_a_tool_call_opens_another_message() {
        let ctx = context(json!({"model": "m", "input": "Hi"}));
        let call = json!({"index": 0, "id": "call_1", "type": "function",
                          "function": {"name": "f", "arguments": "{}"}});
        let events = events_of(
            &ctx,
            &[
                chunk(json!({"content": "Let me look."}), Value::Null),
                chunk(json!({"tool_calls": [call]}), Value::Null),
                chunk(json!({"content": "Looking."}), Value::Null),
                chunk(json!({}), json!("tool_calls")),
            ],
        );
        assert_eq!(
            added(&events),
            [
                (json!(0), json!("message")),
                (json!(1), json!("function_call")),
                (json!(2), json!("message"))
            ]
        );
        // Each message's text goes to its own item, under its own id, and each closes once.
        let deltas: Vec<(Value, Value, Value)> = named(&events, "response.output_text.delta")
            .iter()
            .map(|d| {
                (
                    d["output_index"].clone(),
                    d["item_id"].clone(),
                    d["delta"].clone(),
                )
            })
            .collect();
        assert_eq!(deltas[0].0, 0);
        assert_eq!(deltas[0].2, "Let me look.");
        assert_eq!(deltas[1].0, 2);
        assert_eq!(deltas[1].2, "Looking.");
        assert_ne!(deltas[0].1, deltas[1].1);
        let texts: Vec<Value> = named(&events, "response.output_text.done")
            .iter()
            .map(|d| d["text"].clone())
            .collect();
        assert_eq!(texts, [json!("Let me look."), json!("Looking.")]);
        let output = &events.last().unwrap().1["response"]["output"];
        assert_eq!(output[0]["content"][0]["text"], "Let me look.");
        assert_eq!(output[1]["type"], "function_call");
        assert_eq!(output[2]["content"][0]["text"], "Looking.");
        assert_eq!(output[2]["id"], deltas[1].1);
    }

    #[test]
    fn a_cut_answer_streams_as_incomplete() {
        let ctx = context(json!({"model": "m", "input": "Hi", "max_output_tokens": 2}));
        let events = events_of(
            &ctx,
            &[
                chunk(json!({"content": "Hel"}), Value::Null),
                chunk(json!({}), json!("length")),
            ],
        );
        let (name, data, last) = events.last().unwrap();
        assert_eq!(name, "response.incomplete");
        assert!(*last);
        assert_eq!(data["response"]["status"], "incomplete");
        assert_eq!(
            data["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        assert_eq!(data["response"]["max_output_tokens"], 2);
    }
}
