//! Turning a relayed stream into the one completion the cache stores, and the rules for what is
//! never stored.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Collects `chat.completion.chunk`s as they are relayed and assembles the completion they add
/// up to: contents and argument fragments concatenated, tool calls by index, unknown fields kept.
#[derive(Debug, Default)]
pub struct Assembler {
    top: Map<String, Value>,
    choices: BTreeMap<u64, Choice>,
    usage: Option<Value>,
    /// A chunk could not be read: the result is not trustworthy.
    broken: bool,
}

#[derive(Debug, Default)]
struct Choice {
    /// String fields of the delta (`content`, `refusal`, `reasoning_content`, ...), concatenated.
    texts: BTreeMap<String, String>,
    /// Other fields of the delta, last value wins.
    other: Map<String, Value>,
    tool_calls: BTreeMap<u64, ToolCall>,
    finish_reason: Option<Value>,
    extra: Map<String, Value>,
}

#[derive(Debug, Default)]
struct ToolCall {
    fields: Map<String, Value>,
    name: String,
    arguments: String,
    function_extra: Map<String, Value>,
}

impl Assembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one chunk (the JSON text of an SSE `data:` line).
    pub fn push(&mut self, data: &str) {
        let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(data) else {
            self.broken = true;
            return;
        };
        if chunk.contains_key("error") {
            self.broken = true;
            return;
        }
        if let Some(usage) = chunk.remove("usage")
            && !usage.is_null()
        {
            self.usage = Some(usage);
        }
        let choices = chunk.remove("choices");
        for (name, value) in chunk {
            self.top.insert(name, value);
        }
        let Some(Value::Array(choices)) = choices else {
            return;
        };
        for choice in choices {
            let Value::Object(mut choice) = choice else {
                self.broken = true;
                return;
            };
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let state = self.choices.entry(index).or_default();
            if let Some(reason) = choice.remove("finish_reason")
                && !reason.is_null()
            {
                state.finish_reason = Some(reason);
            }
            if let Some(Value::Object(delta)) = choice.remove("delta") {
                state.add_delta(delta);
            }
            choice.remove("index");
            choice.remove("logprobs");
            for (name, value) in choice {
                state.extra.insert(name, value);
            }
        }
    }

    /// The assembled `chat.completion`, or `None` if a chunk was unreadable.
    pub fn finish(self) -> Option<Value> {
        if self.broken {
            return None;
        }
        let mut out = self.top;
        out.insert("object".into(), Value::from("chat.completion"));
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, c)| c.into_choice(index))
            .collect();
        out.insert("choices".into(), Value::Array(choices));
        if let Some(usage) = self.usage {
            out.insert("usage".into(), usage);
        }
        Some(Value::Object(out))
    }
}

impl Choice {
    fn add_delta(&mut self, delta: Map<String, Value>) {
        for (name, value) in delta {
            match (name.as_str(), value) {
                (_, Value::Null) => {}
                ("role", v) => {
                    self.other.insert(name, v);
                }
                ("tool_calls", Value::Array(calls)) => {
                    for call in calls {
                        self.add_tool_call(call);
                    }
                }
                (_, Value::String(s)) => self.texts.entry(name).or_default().push_str(&s),
                (_, v) => {
                    self.other.insert(name, v);
                }
            }
        }
    }

    fn add_tool_call(&mut self, call: Value) {
        let Value::Object(mut call) = call else {
            return;
        };
        let index = match call.remove("index").and_then(|v| v.as_u64()) {
            Some(index) => index,
            // Some OpenAI-compatible servers send no `index`: a call with an id not seen last
            // is a new call, a delta without one continues the last call.
            None => {
                let last = self.tool_calls.last_key_value();
                let id = call.get("id").and_then(Value::as_str);
                match (last, id) {
                    (None, _) => 0,
                    (Some((&i, last)), Some(id))
                        if last.fields.get("id").and_then(Value::as_str) != Some(id) =>
                    {
                        i + 1
                    }
                    (Some((&i, _)), _) => i,
                }
            }
        };
        let state = self.tool_calls.entry(index).or_default();
        if let Some(Value::Object(function)) = call.remove("function") {
            for (name, value) in function {
                match (name.as_str(), value) {
                    ("name", Value::String(s)) => state.name.push_str(&s),
                    ("arguments", Value::String(s)) => state.arguments.push_str(&s),
                    (_, Value::Null) => {}
                    (_, v) => {
                        state.function_extra.insert(name, v);
                    }
                }
            }
        }
        for (name, value) in call {
            if !value.is_null() {
                state.fields.insert(name, value);
            }
        }
    }

    fn into_choice(self, index: u64) -> Value {
        let mut message = self.other;
        message
            .entry("role")
            .or_insert_with(|| Value::from("assistant"));
        // OpenAI always sends `content` and `refusal` in a message, null when absent.
        message.insert("content".into(), Value::Null);
        message.insert("refusal".into(), Value::Null);
        for (name, text) in self.texts {
            // An answer that is only tool calls has no content, as in a JSON answer, even from
            // a stream that opened with `"content": ""` (Anthropic's, translated, or a server's
            // that always does).
            if name == "content" && text.is_empty() && !self.tool_calls.is_empty() {
                continue;
            }
            message.insert(name, Value::String(text));
        }
        if !self.tool_calls.is_empty() {
            let calls: Vec<Value> = self
                .tool_calls
                .into_values()
                .map(|t| {
                    let mut function = t.function_extra;
                    function.insert("name".into(), Value::String(t.name));
                    function.insert("arguments".into(), Value::String(t.arguments));
                    let mut call = t.fields;
                    call.insert("function".into(), Value::Object(function));
                    Value::Object(call)
                })
                .collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        let mut choice = self.extra;
        choice.insert("index".into(), Value::from(index));
        choice.insert("message".into(), Value::Object(message));
        choice.insert("logprobs".into(), Value::Null);
        choice.insert(
            "finish_reason".into(),
            self.finish_reason.unwrap_or(Value::Null),
        );
        Value::Object(choice)
    }
}

/// Why an answer may not be stored, or `Ok` when it may.
pub type Storable = Result<(), &'static str>;

/// The never-store rules: one choice that finished normally (`stop`, or `tool_calls` when the
/// request offered tools), with content or tool calls, and no refusal.
pub fn storable(request: &Value, completion: &Value) -> Storable {
    let Some(choices) = completion.get("choices").and_then(Value::as_array) else {
        return Err("no_choices");
    };
    let [choice] = choices.as_slice() else {
        return Err("not_one_choice");
    };
    let has_tools = request
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    match choice.get("finish_reason").and_then(Value::as_str) {
        Some("stop") => {}
        Some("tool_calls") if has_tools => {}
        _ => return Err("finish_reason"),
    }
    let message = choice.get("message").unwrap_or(&Value::Null);
    if message
        .get("refusal")
        .and_then(Value::as_str)
        .is_some_and(|r| !r.is_empty())
    {
        return Err("refusal");
    }
    let has_content = message
        .get("content")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.trim().is_empty());
    let has_tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    if !has_content && !has_tool_calls {
        return Err("empty");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chunk(delta: Value, finish: Value) -> String {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "system_fingerprint": "fp",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        .to_string()
    }

    #[test]
    fn assembles_content_reasoning_and_unknown_fields() {
        let mut a = Assembler::new();
        a.push(&chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        a.push(&chunk(json!({"reasoning_content": "think "}), Value::Null));
        a.push(&chunk(
            json!({"reasoning_content": "hard", "content": "Hel"}),
            Value::Null,
        ));
        a.push(&chunk(
            json!({"content": "lo", "x_vendor": {"k": 1}}),
            Value::Null,
        ));
        a.push(&chunk(json!({}), json!("stop")));
        a.push(&json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}).to_string());
        let c = a.finish().unwrap();
        assert_eq!(c["object"], "chat.completion");
        assert_eq!(c["system_fingerprint"], "fp");
        let m = &c["choices"][0]["message"];
        assert_eq!(m["role"], "assistant");
        assert_eq!(m["content"], "Hello");
        assert_eq!(m["refusal"], Value::Null);
        assert_eq!(m["reasoning_content"], "think hard");
        assert_eq!(m["x_vendor"], json!({"k": 1}));
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert_eq!(c["usage"]["total_tokens"], 5);
        assert_eq!(storable(&json!({}), &c), Ok(()));
    }

    #[test]
    fn assembles_parallel_tool_calls() {
        let mut a = Assembler::new();
        a.push(&chunk(json!({"role": "assistant", "content": null, "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            {"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}
        ]}), Value::Null));
        a.push(&chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            Value::Null,
        ));
        a.push(&chunk(json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}, {"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), Value::Null));
        a.push(&chunk(json!({}), json!("tool_calls")));
        let c = a.finish().unwrap();
        let calls = &c["choices"][0]["message"]["tool_calls"];
        assert_eq!(
            calls[0],
            json!({"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}})
        );
        assert_eq!(calls[1]["function"]["arguments"], "{}");
        assert_eq!(c["choices"][0]["message"]["content"], Value::Null);
        // A stream that opens with `"content": ""` and then only calls tools has no content
        // either, as its JSON answer would not; text beside the calls is kept.
        for (opening, content) in [
            (json!(""), Value::Null),
            (json!("Checking."), json!("Checking.")),
        ] {
            let mut a = Assembler::new();
            a.push(&chunk(
                json!({"role": "assistant", "content": opening}),
                Value::Null,
            ));
            a.push(&chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                "function": {"name": "get_time", "arguments": "{}"}}]}),
                Value::Null,
            ));
            let c = a.finish().unwrap();
            assert_eq!(c["choices"][0]["message"]["content"], content);
        }
        let tools = json!({"tools": [{"type": "function", "function": {"name": "get_weather"}}]});
        assert_eq!(storable(&tools, &c), Ok(()));
        assert_eq!(
            storable(&json!({}), &c),
            Err("finish_reason"),
            "tool_calls without tools offered"
        );
    }

    #[test]
    fn tool_calls_without_an_index_are_told_apart_by_id() {
        let mut a = Assembler::new();
        a.push(&chunk(
            json!({"role": "assistant", "content": null}),
            Value::Null,
        ));
        for (id, name, args) in [
            ("call_a", "get_weather", "{\"city\":"),
            ("call_b", "get_time", "{}"),
        ] {
            a.push(&chunk(
                json!({"tool_calls": [{"id": id, "type": "function",
                "function": {"name": name, "arguments": args}}]}),
                Value::Null,
            ));
            if id == "call_a" {
                // A continuation: no id, no index.
                a.push(&chunk(
                    json!({"tool_calls": [{"function": {"arguments": "\"Paris\"}"}}]}),
                    Value::Null,
                ));
            }
        }
        a.push(&chunk(json!({}), json!("tool_calls")));
        let c = a.finish().unwrap();
        let calls = &c["choices"][0]["message"]["tool_calls"];
        assert_eq!(calls.as_array().unwrap().len(), 2, "{calls}");
        assert_eq!(calls[0]["id"], "call_a");
        assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(calls[1]["id"], "call_b");
        assert_eq!(
            calls[1]["function"],
            json!({"name": "get_time", "arguments": "{}"})
        );
    }

    #[test]
    fn never_store_rules() {
        let done = |message: Value, finish: &str| json!({"choices": [{"index": 0, "message": message, "finish_reason": finish}]});
        let ok = json!({"role": "assistant", "content": "fine"});
        assert_eq!(storable(&json!({}), &done(ok.clone(), "stop")), Ok(()));
        assert_eq!(
            storable(&json!({}), &done(ok.clone(), "length")),
            Err("finish_reason")
        );
        assert_eq!(
            storable(&json!({}), &done(ok.clone(), "content_filter")),
            Err("finish_reason")
        );
        assert_eq!(
            storable(&json!({}), &done(json!({"content": "  "}), "stop")),
            Err("empty")
        );
        assert_eq!(
            storable(&json!({}), &done(json!({"content": null}), "stop")),
            Err("empty")
        );
        assert_eq!(
            storable(
                &json!({}),
                &done(
                    json!({"content": null, "refusal": "I can't help with that."}),
                    "stop"
                )
            ),
            Err("refusal")
        );
        let two = json!({"choices": [{"index": 0, "message": ok, "finish_reason": "stop"}, {"index": 1, "message": ok, "finish_reason": "stop"}]});
        assert_eq!(storable(&json!({}), &two), Err("not_one_choice"));
    }

    #[test]
    fn an_unreadable_or_error_chunk_spoils_the_assembly() {
        let mut a = Assembler::new();
        a.push(&chunk(json!({"content": "x"}), Value::Null));
        a.push("{not json");
        assert!(a.finish().is_none());
        let mut a = Assembler::new();
        a.push(r#"{"error":{"message":"boom"}}"#);
        assert!(a.finish().is_none());
    }
}
