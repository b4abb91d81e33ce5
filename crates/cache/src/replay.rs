//! Serving a stored completion again: as JSON with a fresh `id` and `created`, or as a stream of
//! chunks shaped like an upstream's (role, content in several pieces, tool calls, finish reason,
//! optional usage chunk, `[DONE]`).

use serde_json::{Map, Value, json};

use crate::Stored;

/// A fresh completion id, like OpenAI's `chatcmpl-...`.
pub fn fresh_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::now_v7().simple())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The stored completion as a new JSON response.
pub fn json(stored: &Value) -> Value {
    let mut out = stored.clone();
    if let Some(object) = out.as_object_mut() {
        object.insert("id".into(), Value::from(fresh_id()));
        object.insert("created".into(), Value::from(now_secs()));
        object.insert("object".into(), Value::from("chat.completion"));
    }
    out
}

/// [`json()`] serialised: the stored completion's text with the fresh `id` and `created` (and
/// `object`) spliced in where the stored ones were, nothing else parsed or written again. This
/// is every JSON hit's body.
pub fn json_body(stored: &Stored) -> Vec<u8> {
    let id = format!("\"{}\"", fresh_id());
    let created = now_secs().to_string();
    let fields = [
        ("id", id.as_str()),
        ("created", &created),
        ("object", "\"chat.completion\""),
    ];
    match stored.with_fresh(&fields) {
        Some(body) => body,
        None => value_body(&stored.value()),
    }
}

/// [`json()`] serialised, without copying the stored completion: its fields are written in place,
/// with the fresh `id` and `created` (and `object`) put where the stored ones were.
fn value_body(stored: &Value) -> Vec<u8> {
    const FRESH: [&str; 3] = ["created", "id", "object"];
    match stored.as_object() {
        Some(fields) if FRESH.iter().all(|k| fields.contains_key(*k)) => {
            let fresh = Fresh {
                fields,
                id: fresh_id(),
                created: now_secs(),
            };
            serde_json::to_vec(&fresh).unwrap_or_default()
        }
        // Not a stored completion's usual shape: the plain way (the new fields sorted in).
        _ => serde_json::to_vec(&json(stored)).unwrap_or_default(),
    }
}

/// A stored completion's fields with a fresh identity.
struct Fresh<'a> {
    fields: &'a Map<String, Value>,
    id: String,
    created: u64,
}

impl serde::Serialize for Fresh<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (key, value) in self.fields {
            match key.as_str() {
                "id" => map.serialize_entry(key, &self.id)?,
                "created" => map.serialize_entry(key, &self.created)?,
                "object" => map.serialize_entry(key, "chat.completion")?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// Characters of text per replayed content chunk (upstreams send a token or a few per chunk).
const PIECE: usize = 24;

/// The stored completion as the `data:` payloads of a stream, `[DONE]` last.
pub fn chunks(stored: &Value, include_usage: bool) -> Vec<String> {
    let mut frames = Frames::of(stored, include_usage);
    let mut out = Vec::new();
    let choices = stored
        .get("choices")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for choice in choices {
        let Value::Object(mut choice) = choice else {
            continue;
        };
        let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
        let Some(Value::Object(mut message)) = choice.remove("message") else {
            continue;
        };
        let finish = choice.remove("finish_reason").unwrap_or(Value::Null);
        // The choice's own other fields (Azure's `content_filter_results`, unknown ones) go with
        // its last chunk.
        choice.remove("index");
        choice.remove("logprobs");
        let role = message
            .remove("role")
            .unwrap_or_else(|| Value::from("assistant"));
        let content = message.remove("content");
        let refusal = message.remove("refusal");
        let tool_calls = message.remove("tool_calls");
        // As an upstream sends it: `""` before text, `null` when the answer has none (tool calls).
        let opening = if matches!(content, Some(Value::String(_))) {
            Value::from("")
        } else {
            Value::Null
        };
        out.push(frames.delta(index, json!({"role": role, "content": opening})));
        // Other text fields first (reasoning precedes the answer), then non-text fields whole.
        for (name, value) in message {
            match value {
                // An empty text is still a field of the answer.
                Value::String(text) if text.is_empty() => {
                    out.push(frames.delta(index, json!({ name: "" })));
                }
                Value::String(text) => {
                    for piece in pieces(&text) {
                        out.push(frames.delta(index, json!({ name.clone(): piece })));
                    }
                }
                Value::Null => {}
                other => out.push(frames.delta(index, json!({ name: other }))),
            }
        }
        if let Some(Value::String(text)) = content {
            for piece in pieces(&text) {
                out.push(frames.delta(index, json!({ "content": piece })));
            }
        }
        if let Some(Value::String(text)) = refusal {
            out.push(frames.delta(index, json!({ "refusal": text })));
        }
        if let Some(Value::Array(calls)) = tool_calls {
            for (i, call) in calls.into_iter().enumerate() {
                let function = call.get("function").cloned().unwrap_or(Value::Null);
                let name = function.get("name").cloned().unwrap_or(Value::Null);
                let arguments = function
                    .get("arguments")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let mut opening = call.as_object().cloned().unwrap_or_default();
                opening.insert("index".into(), Value::from(i));
                opening.insert("function".into(), json!({"name": name, "arguments": ""}));
                out.push(frames.delta(index, json!({"tool_calls": [opening]})));
                for piece in pieces(&arguments) {
                    let delta =
                        json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]});
                    out.push(frames.delta(index, delta));
                }
            }
        }
        out.push(frames.end(index, finish, choice));
    }
    if include_usage {
        let usage = stored.get("usage").cloned().unwrap_or(Value::Null);
        out.push(frames.usage(usage));
    }
    out.push("[DONE]".to_owned());
    out
}

/// A replayed stream's chunks as they are made: a fresh identity and the fields every chunk of
/// an upstream stream carries, and the response's other fields (an Azure
/// `prompt_filter_results`, a provider's own), which go out once, with the first chunk: where
/// the assembler of a streamed miss found them.
struct Frames {
    /// The fields every chunk carries, serialised once: an object without its closing brace.
    head: String,
    once: Option<Map<String, Value>>,
    /// Chunks of choices carry `"usage": null` (as OpenAI's do when the usage chunk follows).
    null_usage: bool,
}

impl Frames {
    fn of(stored: &Value, null_usage: bool) -> Self {
        const EVERY_CHUNK: [&str; 3] = ["model", "system_fingerprint", "service_tier"];
        let mut head = Map::new();
        head.insert("id".into(), Value::from(fresh_id()));
        head.insert("object".into(), Value::from("chat.completion.chunk"));
        head.insert("created".into(), Value::from(now_secs()));
        let mut once = Map::new();
        for (key, value) in stored.as_object().into_iter().flatten() {
            match key.as_str() {
                "id" | "object" | "created" | "choices" | "usage" => {}
                k if EVERY_CHUNK.contains(&k) => {
                    head.insert(key.clone(), value.clone());
                }
                _ => {
                    once.insert(key.clone(), value.clone());
                }
            }
        }
        let mut head = Value::Object(head).to_string();
        head.pop();
        Frames {
            head,
            once: Some(once),
            null_usage,
        }
    }

    /// A chunk carrying `fields` (its choices, or its usage): the head's fields, then these
    /// (no key is in both: the head's are never a chunk's own).
    fn chunk(&mut self, fields: Map<String, Value>) -> String {
        let mut own = self.once.take().unwrap_or_default();
        own.extend(fields);
        let own = Value::Object(own).to_string();
        let mut chunk = String::with_capacity(self.head.len() + own.len() + 1);
        chunk.push_str(&self.head);
        match own.strip_prefix('{') {
            Some("}") | None => chunk.push('}'),
            Some(rest) => {
                chunk.push(',');
                chunk.push_str(rest);
            }
        }
        chunk
    }

    /// A chunk of choice `index` with this delta.
    fn delta(&mut self, index: u64, delta: Value) -> String {
        self.choice(index, delta, Value::Null, Map::new())
    }

    /// The last chunk of choice `index`: its finish reason and its own other fields.
    fn end(&mut self, index: u64, finish: Value, fields: Map<String, Value>) -> String {
        self.choice(index, json!({}), finish, fields)
    }

    fn choice(
        &mut self,
        index: u64,
        delta: Value,
        finish: Value,
        fields: Map<String, Value>,
    ) -> String {
        let mut choice = fields;
        choice.insert("index".into(), Value::from(index));
        choice.insert("delta".into(), delta);
        choice.insert("logprobs".into(), Value::Null);
        choice.insert("finish_reason".into(), finish);
        let mut chunk = Map::new();
        chunk.insert("choices".into(), Value::Array(vec![Value::Object(choice)]));
        if self.null_usage {
            chunk.insert("usage".into(), Value::Null);
        }
        self.chunk(chunk)
    }

    /// The usage chunk: no choices.
    fn usage(&mut self, usage: Value) -> String {
        let mut chunk = Map::new();
        chunk.insert("choices".into(), json!([]));
        chunk.insert("usage".into(), usage);
        self.chunk(chunk)
    }
}

/// Splits text into pieces of about [`PIECE`] characters, on character boundaries.
pub(crate) fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, _) in text.char_indices() {
        if count == PIECE {
            out.push(&text[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use proptest::prelude::*;

    use super::*;
    use crate::Assembler;

    fn stored() -> Value {
        json!({
            "id": "chatcmpl-old", "object": "chat.completion", "created": 1, "model": "m",
            "system_fingerprint": "fp",
            "choices": [{"index": 0, "message": {
                "role": "assistant", "content": "A long answer that will surely take more than one chunk — ünïcödé too.",
                "refusal": null, "reasoning_content": "Let me think about it.",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": \"a long argument value here\"}"}}],
                "annotations": []
            }, "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
        })
    }

    #[test]
    fn json_replay_is_fresh_but_otherwise_identical() {
        let s = stored();
        let out = json(&s);
        assert_ne!(out["id"], s["id"]);
        assert!(out["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert!(out["created"].as_u64().unwrap() > 1);
        assert_eq!(out["choices"], s["choices"]);
        assert_eq!(out["usage"], s["usage"]);
    }

    #[test]
    fn stream_replay_reassembles_to_the_stored_completion() {
        let s = stored();
        let events = chunks(&s, true);
        assert_eq!(events.last().unwrap(), "[DONE]");
        assert!(events.len() > 8, "several chunks: {}", events.len());
        let mut a = Assembler::new();
        let first: Value = serde_json::from_str(&events[0]).unwrap();
        assert!(first["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_ne!(first["id"], s["id"]);
        for e in &events[..events.len() - 1] {
            let v: Value = serde_json::from_str(e).unwrap();
            // Every chunk carries the stream's one fresh identity and the model.
            assert_eq!(v["object"], "chat.completion.chunk");
            assert_eq!((&v["id"], &v["created"]), (&first["id"], &first["created"]));
            assert_eq!(v["model"], "m");
            // As OpenAI's: `"usage": null` on every chunk but the usage chunk.
            let last = e == &events[events.len() - 2];
            assert!(v.as_object().unwrap().contains_key("usage"), "{e}");
            assert_eq!(v["usage"].is_null(), !last, "{e}");
            a.push(e);
        }
        let back = a.finish().unwrap();
        assert_eq!(back["choices"], s["choices"]);
        assert_eq!(back["usage"], s["usage"]);
        assert_eq!(back["system_fingerprint"], "fp");
        let without = chunks(&s, false);
        assert!(without.iter().all(|e| !e.contains("\"usage\"")));
    }

    /// Text with the characters that break naive splitting and escaping, and any others.
    fn text() -> impl Strategy<Value = String> {
        let tricky =
            prop::sample::select(vec!['"', '\\', '\n', 'é', '日', '🦀', '\u{301}', ' ', '{']);
        prop::collection::vec(prop_oneof![any::<char>(), tricky], 0..60).prop_map(String::from_iter)
    }

    /// Fields the gateway does not know (a provider's own, Azure's filter results): never null,
    /// as a null field and an absent one are the same answer.
    fn unknown_fields() -> impl Strategy<Value = Map<String, Value>> {
        let name = prop::sample::select(vec!["x_vendor", "content_filter_results", "x_flag"]);
        let value = prop_oneof![
            Just(json!(true)),
            any::<i32>().prop_map(Value::from),
            text().prop_map(|t| json!({ "detail": t, "list": [1, 2] })),
        ];
        prop::collection::btree_map(name, value, 0..3)
            .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn tool_call() -> impl Strategy<Value = Value> {
        (0u32..1000, text(), unknown_fields()).prop_map(|(id, arguments, extra)| {
            let mut call = extra;
            call.insert("id".into(), Value::from(format!("call_{id}")));
            call.insert("type".into(), Value::from("function"));
            call.insert(
                "function".into(),
                json!({"name": format!("f{id}"), "arguments": arguments}),
            );
            Value::Object(call)
        })
    }

    fn choice(index: usize) -> impl Strategy<Value = Value> {
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            prop::collection::vec(tool_call(), 0..3),
            unknown_fields(),
            unknown_fields(),
        )
            .prop_map(
                move |(content, refusal, reasoning, calls, message_extra, choice_extra)| {
                    let mut message = message_extra;
                    message.insert("role".into(), Value::from("assistant"));
                    // `""` beside tool calls is the same answer as no content (the assembler says
                    // `null`, as a JSON answer does).
                    let content = content.filter(|c| !c.is_empty() || calls.is_empty());
                    message.insert("content".into(), content.map_or(Value::Null, Value::from));
                    message.insert("refusal".into(), refusal.map_or(Value::Null, Value::from));
                    if let Some(reasoning) = reasoning {
                        message.insert("reasoning_content".into(), Value::from(reasoning));
                    }
                    let finish = if calls.is_empty() {
                        "stop"
                    } else {
                        "tool_calls"
                    };
                    if !calls.is_empty() {
                        message.insert("tool_calls".into(), Value::Array(calls));
                    }
                    let mut choice = choice_extra;
                    choice.insert("index".into(), Value::from(index));
                    choice.insert("message".into(), Value::Object(message));
                    choice.insert("logprobs".into(), Value::Null);
                    choice.insert("finish_reason".into(), Value::from(finish));
                    Value::Object(choice)
                },
            )
    }

    fn completion() -> impl Strategy<Value = Value> {
        (
            (1usize..4).prop_flat_map(|n| (0..n).map(choice).collect::<Vec<_>>()),
            proptest::option::of(Just("fp_1")),
            proptest::option::of(Just("default")),
            unknown_fields(),
        )
            .prop_map(|(choices, fingerprint, tier, extra)| {
                let mut top = extra;
                top.insert("id".into(), Value::from("chatcmpl-old"));
                top.insert("object".into(), Value::from("chat.completion"));
                top.insert("created".into(), Value::from(1));
                top.insert("model".into(), Value::from("gpt-4o-mini"));
                top.insert("choices".into(), Value::Array(choices));
                if let Some(f) = fingerprint {
                    top.insert("system_fingerprint".into(), Value::from(f));
                }
                if let Some(t) = tier {
                    top.insert("service_tier".into(), Value::from(t));
                }
                top.insert(
                    "usage".into(),
                    json!({"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}),
                );
                Value::Object(top)
            })
    }

    proptest! {
        /// What a client assembles from a replayed stream is the stored completion, every field
        /// of it (text split anywhere, tool calls, refusals, reasoning, unknown fields at every
        /// level), with only its identity fresh.
        #[test]
        fn any_stream_replay_reassembles_to_the_stored_completion(
            stored in completion(),
            include_usage in any::<bool>(),
        ) {
            let events = chunks(&stored, include_usage);
            prop_assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
            let mut assembler = Assembler::new();
            for event in &events[..events.len() - 1] {
                let chunk: Value = serde_json::from_str(event).unwrap();
                prop_assert_eq!(&chunk["object"], "chat.completion.chunk");
                prop_assert_ne!(&chunk["id"], "chatcmpl-old");
                assembler.push(event);
            }
            let mut back = assembler.finish().unwrap();
            let mut expected = stored.clone();
            if !include_usage {
                expected.as_object_mut().unwrap().remove("usage");
            }
            back["id"] = stored["id"].clone();
            back["created"] = stored["created"].clone();
            prop_assert_eq!(back, expected);
        }
    }

    #[test]
    fn pieces_respect_char_boundaries() {
        let text = "é".repeat(50);
        let p = pieces(&text);
        assert_eq!(p.concat(), text);
        assert!(p.iter().all(|x| x.chars().count() <= PIECE));
        assert!(pieces("").is_empty());
    }

    #[test]
    fn a_json_body_is_the_stored_completion_with_a_fresh_identity() {
        let stored = json!({
            "id": "chatcmpl-old", "object": "chat.completion", "created": 1,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_1", "x_unknown": {"kept": [1, 2]},
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
        });
        let served: Value = serde_json::from_slice(&json_body(&Stored::compact(&stored))).unwrap();
        let reference = json(&stored);
        assert_ne!(served["id"], "chatcmpl-old");
        assert!(served["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert!(served["created"].as_u64().unwrap() > 1);
        // Apart from the identity, exactly what the plain way serves.
        let strip = |mut v: Value| {
            let o = v.as_object_mut().unwrap();
            o.remove("id");
            o.remove("created");
            v
        };
        assert_eq!(strip(served), strip(reference));
        // An unusual shape still gets the fresh fields.
        let bare = json_body(&Stored::compact(&json!({"choices": []})));
        let bare: Value = serde_json::from_slice(&bare).unwrap();
        assert_eq!(bare["object"], "chat.completion");
        assert!(bare["id"].as_str().unwrap().starts_with("chatcmpl-"));
    }
}
