//! OpenAI's Responses API in the cache: which requests may be cached, their keys, which answers
//! may be stored, and a stored response served again, as JSON or as the API's event stream.
//!
//! Only a request that keeps nothing at the provider is cached: `"store": false` (or no target
//! that could keep it: providers that answer through a chat completion keep nothing), no
//! earlier response or conversation it continues (`previous_response_id`, `conversation`), no
//! stored prompt, not in the background. A stored response has an id the provider knows (it
//! can be retrieved, continued, deleted there); an answer from the cache, under a fresh id,
//! would be a response the provider has never heard of. Built-in tools (web search, file search, code
//! interpreter...) act on the world or on data that changes: only function tools are cached.
//!
//! The keys follow the chat completion's rules ([`crate::keys`]): the exact key hashes the
//! canonical request (request-only fields such as `store`, `stream` and `metadata` left out),
//! the scope is the same with the final user message's text taken out, and that text is what
//! the semantic tier compares. A Responses entry never answers a chat completion, nor the
//! reverse (their keys are derived from differently shaped values).

use serde_json::{Map, Value, json};

use crate::keys::{CacheKeys, canonical_request, hash};

/// Why a Responses API request is not cached, or its keys. `may_be_kept`: a target that could
/// serve it keeps responses unless told `"store": false`.
pub fn keys(
    namespace: &str,
    request: &Value,
    may_be_kept: bool,
) -> Result<CacheKeys, &'static str> {
    let object = request.as_object().ok_or("not_an_object")?;
    if may_be_kept && object.get("store") != Some(&Value::Bool(false)) {
        return Err("stored");
    }
    for (field, reason) in [
        ("previous_response_id", "previous_response"),
        ("conversation", "conversation"),
        ("prompt", "stored_prompt"),
    ] {
        if object.get(field).is_some_and(|v| !v.is_null()) {
            return Err(reason);
        }
    }
    if object.get("background") == Some(&Value::Bool(true)) {
        return Err("background");
    }
    let built_in = object
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|tools| tools.iter().any(|t| t["type"] != "function"));
    if built_in {
        return Err("built_in_tools");
    }
    let canonical = canonical_request(request);
    let exact = hash(namespace, &wrap(canonical.clone()));
    let (final_user_text, scope) = match take_final_text(canonical) {
        Some((text, rest)) => (Some(text), hash(namespace, &wrap(rest))),
        None => (None, exact),
    };
    Ok(CacheKeys {
        exact,
        scope,
        final_user_text,
    })
}

/// Domain separation: no chat request canonicalises to an object with only this field.
fn wrap(canonical: Value) -> Value {
    let mut wrapped = Map::new();
    wrapped.insert("responses".into(), canonical);
    Value::Object(wrapped)
}

/// The final user message's text (the whole `input` when it is a string) and the request
/// without it; `None` when the input does not end with a user message of text only.
fn take_final_text(mut canonical: Value) -> Option<(String, Value)> {
    let object = canonical.as_object_mut()?;
    match object.get_mut("input")? {
        Value::String(text) => {
            let text = std::mem::take(text);
            // The scope keeps the fact that the input was one text.
            object.insert("input".into(), Value::String(String::new()));
            Some((text, canonical))
        }
        Value::Array(items) => {
            let last = items.last_mut()?.as_object_mut()?;
            let is_message = last
                .get("type")
                .is_none_or(|t| t.as_str() == Some("message"));
            if !is_message || last.get("role").and_then(Value::as_str) != Some("user") {
                return None;
            }
            let text = match last.get("content")? {
                Value::String(text) => text.clone(),
                Value::Array(parts) => {
                    let texts: Option<Vec<&str>> = parts
                        .iter()
                        .map(|p| {
                            (p.get("type").and_then(Value::as_str) == Some("input_text"))
                                .then(|| p.get("text").and_then(Value::as_str))
                                .flatten()
                        })
                        .collect();
                    texts?.join("\n")
                }
                _ => return None,
            };
            last.remove("content");
            Some((text, canonical))
        }
        _ => None,
    }
}

/// Whether an answer may be stored: completed, not cut short, with text or (when the request
/// offered functions) function calls, and no refusal.
pub fn storable(request: &Value, response: &Value) -> crate::Storable {
    if response.get("status").and_then(Value::as_str) != Some("completed") {
        return Err("status");
    }
    if response.get("error").is_some_and(|e| !e.is_null())
        || response
            .get("incomplete_details")
            .is_some_and(|d| !d.is_null())
    {
        return Err("incomplete");
    }
    let output = response
        .get("output")
        .and_then(Value::as_array)
        .ok_or("no_output")?;
    let offered_tools = request
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let mut answered = false;
    for item in output {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    match part.get("type").and_then(Value::as_str) {
                        Some("refusal") => return Err("refusal"),
                        Some("output_text") => {
                            answered |= part["text"].as_str().is_some_and(|t| !t.trim().is_empty())
                        }
                        _ => {}
                    }
                }
            }
            Some("function_call") if offered_tools => answered = true,
            Some("function_call") => return Err("function_call"),
            // Reasoning summaries and encrypted reasoning replay as they came.
            Some("reasoning") => {}
            _ => return Err("output_item"),
        }
    }
    if answered { Ok(()) } else { Err("empty") }
}

/// A stored response as a new one: a fresh id and creation time, the rest as it was.
pub fn fresh(stored: &Value, now_secs: u64) -> Value {
    let mut response = stored.clone();
    if let Some(object) = response.as_object_mut() {
        object.insert(
            "id".into(),
            json!(format!("resp_{}", uuid::Uuid::now_v7().simple())),
        );
        object.insert("created_at".into(), json!(now_secs));
    }
    response
}

/// [`fresh`] serialised: the stored response's text with the fresh `id` and `created_at` spliced
/// in where the stored ones were. Every JSON hit's body.
pub fn json_body(stored: &crate::Stored, now_secs: u64) -> Vec<u8> {
    let id = format!("\"resp_{}\"", uuid::Uuid::now_v7().simple());
    let created_at = now_secs.to_string();
    match stored.with_fresh(&[("id", &id), ("created_at", &created_at)]) {
        Some(body) => body,
        None => value_body(&stored.value(), now_secs),
    }
}

/// [`fresh`] serialised, without copying the stored response: its fields are written in place,
/// with the fresh `id` and `created_at` put where the stored ones were.
fn value_body(stored: &Value, now_secs: u64) -> Vec<u8> {
    match stored.as_object() {
        Some(fields) if fields.contains_key("id") && fields.contains_key("created_at") => {
            let fresh = FreshResponse {
                fields,
                id: format!("resp_{}", uuid::Uuid::now_v7().simple()),
                created_at: now_secs,
            };
            serde_json::to_vec(&fresh).unwrap_or_default()
        }
        // Not a stored response's usual shape: the plain way.
        _ => serde_json::to_vec(&fresh(stored, now_secs)).unwrap_or_default(),
    }
}

struct FreshResponse<'a> {
    fields: &'a Map<String, Value>,
    id: String,
    created_at: u64,
}

impl serde::Serialize for FreshResponse<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (key, value) in self.fields {
            match key.as_str() {
                "id" => map.serialize_entry(key, &self.id)?,
                "created_at" => map.serialize_entry(key, &self.created_at)?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// The events of `response` (a [`fresh`] one) as the API streams them: created and in
/// progress with no output, each output item added, its content streamed (text in several
/// deltas, a function call's arguments in one) and done, then completed. Each event's data
/// carries its `type` and `sequence_number`.
pub fn events(response: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut emit = |name: &'static str, mut data: Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(out.len());
        out.push((name, data.to_string()));
    };
    let mut head = response.clone();
    head["status"] = json!("in_progress");
    head["output"] = json!([]);
    head["usage"] = Value::Null;
    emit("response.created", json!({"response": head.clone()}));
    emit("response.in_progress", json!({"response": head}));
    let items = response["output"].as_array().map_or(&[][..], Vec::as_slice);
    for (output_index, item) in items.iter().enumerate() {
        let id = item["id"].clone();
        let mut opening = item.clone();
        match item["type"].as_str() {
            Some("message") => {
                opening["status"] = json!("in_progress");
                opening["content"] = json!([]);
                emit(
                    "response.output_item.added",
                    json!({"output_index": output_index, "item": opening}),
                );
                let parts = item["content"].as_array().map_or(&[][..], Vec::as_slice);
                for (content_index, part) in parts.iter().enumerate() {
                    let place = json!({"item_id": id, "output_index": output_index,
                        "content_index": content_index});
                    let mut empty = part.clone();
                    if part["type"] == "output_text" {
                        empty["text"] = json!("");
                        empty["annotations"] = json!([]);
                    }
                    emit(
                        "response.content_part.added",
                        merged(&place, json!({"part": empty})),
                    );
                    if part["type"] == "output_text" {
                        let text = part["text"].as_str().unwrap_or_default();
                        for delta in crate::replay::pieces(text) {
                            emit(
                                "response.output_text.delta",
                                merged(&place, json!({"delta": delta, "logprobs": []})),
                            );
                        }
                        emit(
                            "response.output_text.done",
                            merged(&place, json!({"text": text, "logprobs": []})),
                        );
                    }
                    emit(
                        "response.content_part.done",
                        merged(&place, json!({"part": part})),
                    );
                }
            }
            Some("function_call") => {
                opening["status"] = json!("in_progress");
                opening["arguments"] = json!("");
                emit(
                    "response.output_item.added",
                    json!({"output_index": output_index, "item": opening}),
                );
                let arguments = item["arguments"].as_str().unwrap_or_default();
                let place = json!({"item_id": id, "output_index": output_index});
                emit(
                    "response.function_call_arguments.delta",
                    merged(&place, json!({"delta": arguments})),
                );
                emit(
                    "response.function_call_arguments.done",
                    merged(&place, json!({"arguments": arguments})),
                );
            }
            _ => emit(
                "response.output_item.added",
                json!({"output_index": output_index, "item": opening}),
            ),
        }
        emit(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        );
    }
    emit("response.completed", json!({"response": response}));
    out
}

fn merged(place: &Value, extra: Value) -> Value {
    let mut out = place.clone();
    if let (Some(out), Value::Object(extra)) = (out.as_object_mut(), extra) {
        out.extend(extra);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_kept(namespace: &str, request: &Value) -> Result<CacheKeys, &'static str> {
        keys(namespace, request, true)
    }

    fn request(input: Value) -> Value {
        json!({"model": "gpt-4.1", "store": false, "input": input, "instructions": "Be brief."})
    }

    #[test]
    fn only_requests_that_keep_nothing_upstream_are_cached() {
        assert!(keys_kept("ns", &request(json!("Hi"))).is_ok());
        let mut stored = request(json!("Hi"));
        stored["store"] = json!(true);
        assert_eq!(keys_kept("ns", &stored), Err("stored"));
        stored.as_object_mut().unwrap().remove("store");
        assert_eq!(keys_kept("ns", &stored), Err("stored"));
        // No target that could keep it: `store` does not matter.
        assert_eq!(
            keys("ns", &stored, false).unwrap(),
            keys_kept("ns", &request(json!("Hi"))).unwrap()
        );
        for (field, value, reason) in [
            ("previous_response_id", json!("resp_1"), "previous_response"),
            ("conversation", json!("conv_1"), "conversation"),
            ("prompt", json!({"id": "pmpt_1"}), "stored_prompt"),
            ("background", json!(true), "background"),
            ("tools", json!([{"type": "web_search"}]), "built_in_tools"),
        ] {
            let mut r = request(json!("Hi"));
            r[field] = value;
            assert_eq!(keys_kept("ns", &r), Err(reason), "{field}");
        }
        let mut r = request(json!("Hi"));
        r["tools"] = json!([{"type": "function", "name": "f", "parameters": {}}]);
        assert!(keys_kept("ns", &r).is_ok());
    }

    #[test]
    fn the_final_user_text_is_compared_and_the_rest_is_the_scope() {
        let plain = keys_kept("ns", &request(json!("What is Rust?"))).unwrap();
        assert_eq!(plain.final_user_text.as_deref(), Some("What is Rust?"));
        let other = keys_kept("ns", &request(json!("What is Go?"))).unwrap();
        assert_eq!(plain.scope, other.scope);
        assert_ne!(plain.exact, other.exact);
        // Request-only fields make no difference.
        let mut streamed = request(json!("What is Rust?"));
        streamed["stream"] = json!(true);
        streamed["metadata"] = json!({"trace": "1"});
        assert_eq!(keys_kept("ns", &streamed).unwrap(), plain);
        // Another system prompt, another scope.
        let mut other_system = request(json!("What is Rust?"));
        other_system["instructions"] = json!("Be thorough.");
        assert_ne!(keys_kept("ns", &other_system).unwrap().scope, plain.scope);

        let turns = request(json!([
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": [{"type": "input_text", "text": "What is Rust?"}]},
        ]));
        let k = keys_kept("ns", &turns).unwrap();
        assert_eq!(k.final_user_text.as_deref(), Some("What is Rust?"));
        assert_ne!(k.scope, plain.scope);
        // An image in the final message: the exact tier only.
        let image = request(json!([{"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "https://example.com/a.png"},
        ]}]));
        let k = keys_kept("ns", &image).unwrap();
        assert_eq!(k.final_user_text, None);
        assert_eq!(k.scope, k.exact);
        // Never a chat completion's keys.
        let chat = crate::keys::keys(
            "ns",
            &json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "What is Rust?"}]}),
        );
        assert_ne!(chat.exact, plain.exact);
    }

    fn answer(output: Value) -> Value {
        json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
            "error": null, "incomplete_details": null, "model": "gpt-4.1", "output": output,
            "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}})
    }

    fn message(text: &str) -> Value {
        json!({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]})
    }

    #[test]
    fn only_complete_answers_are_stored() {
        let r = request(json!("Hi"));
        assert_eq!(storable(&r, &answer(json!([message("Hello!")]))), Ok(()));
        assert_eq!(storable(&r, &answer(json!([message("  ")]))), Err("empty"));
        let mut cut = answer(json!([message("Hel")]));
        cut["status"] = json!("incomplete");
        cut["incomplete_details"] = json!({"reason": "max_output_tokens"});
        assert_eq!(storable(&r, &cut), Err("status"));
        let refused = answer(
            json!([{"type": "message", "id": "msg_1", "role": "assistant",
            "content": [{"type": "refusal", "refusal": "No."}]}]),
        );
        assert_eq!(storable(&r, &refused), Err("refusal"));
        let call = answer(
            json!([{"type": "function_call", "id": "fc_1", "call_id": "call_1",
            "name": "f", "arguments": "{}", "status": "completed"}]),
        );
        assert_eq!(storable(&r, &call), Err("function_call"));
        let mut with_tools = r.clone();
        with_tools["tools"] = json!([{"type": "function", "name": "f", "parameters": {}}]);
        assert_eq!(storable(&with_tools, &call), Ok(()));
        let searched = answer(json!([{"type": "web_search_call", "id": "ws_1"}, message("x")]));
        assert_eq!(storable(&r, &searched), Err("output_item"));
    }

    #[test]
    fn a_stored_response_streams_as_the_api_does() {
        let stored = answer(json!([
            {"type": "reasoning", "id": "rs_1", "summary": []},
            message("Hello there, how are you today?"),
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
             "arguments": "{\"a\":1}", "status": "completed"},
        ]));
        let response = fresh(&stored, 42);
        // The JSON body is the same response, written without a copy.
        let body = json_body(&crate::Stored::compact(&stored), 42);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(body["id"].as_str().unwrap().starts_with("resp_"));
        assert_ne!(body["id"], stored["id"]);
        let mut same = body.clone();
        same["id"] = response["id"].clone();
        assert_eq!(same, response);
        assert_ne!(response["id"], stored["id"]);
        assert_eq!(response["created_at"], 42);
        let events = events(&response);
        let names: Vec<&str> = events.iter().map(|e| e.0).collect();
        assert_eq!(names[..2], ["response.created", "response.in_progress"]);
        assert_eq!(names.last(), Some(&"response.completed"));
        let data: Vec<Value> = events
            .iter()
            .map(|e| serde_json::from_str(&e.1).unwrap())
            .collect();
        for (i, (event, d)) in events.iter().zip(&data).enumerate() {
            assert_eq!(d["type"], event.0);
            assert_eq!(d["sequence_number"], i);
        }
        assert_eq!(data[0]["response"]["output"], json!([]));
        assert_eq!(data[0]["response"]["id"], response["id"]);
        let text: String = data
            .iter()
            .filter(|d| d["type"] == "response.output_text.delta")
            .map(|d| d["delta"].as_str().unwrap())
            .collect();
        assert_eq!(text, "Hello there, how are you today?");
        assert!(
            names
                .iter()
                .filter(|n| **n == "response.output_text.delta")
                .count()
                > 1
        );
        let done: Vec<&Value> = data
            .iter()
            .filter(|d| d["type"] == "response.output_item.done")
            .map(|d| &d["item"])
            .collect();
        assert_eq!(
            done,
            response["output"]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>()
        );
        assert_eq!(data.last().unwrap()["response"], response);
        let args = data
            .iter()
            .find(|d| d["type"] == "response.function_call_arguments.done")
            .unwrap();
        assert_eq!(args["arguments"], "{\"a\":1}");
        assert_eq!(args["output_index"], 2);
    }
}
