//! Translation snapshots against fixtures in Anthropic's documented wire format.

use std::collections::VecDeque;

use http::StatusCode;
use serde_json::Value;

use super::stream::Translator;
use super::translate::{self, Context};
use crate::fixtures::{chunks, json, read, sse};
use crate::{StreamEvent, UpstreamError};

#[test]
fn request_to_messages_api() {
    let request = json("openai_request.json");
    let (body, context) = translate::request(&request, "claude-sonnet-4-5", true).unwrap();
    assert!(context.include_usage);
    assert!(!context.json_tool);
    insta::assert_json_snapshot!(body);
}

#[test]
fn empty_texts_are_left_out_as_anthropic_refuses_them() {
    let request = crate::fixtures::with_empty_texts();
    let (body, _) = translate::request(&request, "claude-sonnet-4-5", false).unwrap();
    assert_eq!(
        body["messages"],
        serde_json::json!([
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi."}]},
            {"role": "user", "content": [{"type": "text", "text": "How are you?"}]}
        ])
    );
    assert!(body.get("system").is_none(), "{body}");
}

#[test]
fn json_schema_is_asked_for_through_a_forced_tool() {
    let mut request = json("openai_request.json");
    request.remove("tools");
    request.remove("tool_choice");
    request.insert(
        "messages".into(),
        serde_json::json!([{"role": "user", "content": "Name a city."}]),
    );
    request.insert(
        "response_format".into(),
        serde_json::json!({"type": "json_schema", "json_schema": {"name": "city",
            "schema": {"type": "object", "properties": {"city": {"type": "string"}}}}}),
    );
    let (body, context) = translate::request(&request, "claude-sonnet-4-5", false).unwrap();
    assert!(context.json_tool);
    assert_eq!(
        body["tool_choice"],
        serde_json::json!({"type": "tool", "name": "json_response"})
    );
    let answer = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5",
        "content":[{"type":"tool_use","id":"toolu_1","name":"json_response","input":{"city":"Lyon"}}],
        "stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":7}}"#;
    let out: Value =
        serde_json::from_slice(&translate::response(answer, &context).unwrap()).unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"],
        r#"{"city":"Lyon"}"#
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert!(out["choices"][0]["message"].get("tool_calls").is_none());
}

#[test]
fn response_with_thinking_and_parallel_tool_calls() {
    let body = read("anthropic/response_tool_use.json");
    let out = translate::response(body.as_bytes(), &Context::default()).unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    insta::assert_json_snapshot!(out, {".created" => "[created]"});
}

#[test]
fn stream_with_text_and_tool_argument_deltas() {
    let mut translator = Translator::new(Context {
        json_tool: false,
        include_usage: true,
    });
    let mut out = VecDeque::new();
    for (name, data) in sse("anthropic/stream_tool_use.sse") {
        translator.event(&name, &data, &mut out).unwrap();
    }
    assert_eq!(out.back(), Some(&StreamEvent::Done));
    insta::assert_json_snapshot!(chunks(out), {"[].created" => "[created]"});
}

#[test]
fn an_error_event_mid_stream_is_an_error_not_an_end() {
    let mut translator = Translator::new(Context::default());
    let mut out = VecDeque::new();
    let mut result = Ok(());
    for (name, data) in sse("anthropic/stream_overloaded.sse") {
        result = translator.event(&name, &data, &mut out);
    }
    assert!(matches!(&result, Err(UpstreamError::InBand(m)) if m == "Overloaded"));
    assert!(result.unwrap_err().retryable());
    assert!(!out.contains(&StreamEvent::Done));
}

#[test]
fn a_stream_must_begin_with_message_start() {
    let mut translator = Translator::new(Context::default());
    let err = translator
        .event(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
            &mut VecDeque::new(),
        )
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Malformed(_)));
    let err = translator
        .event("message_start", "{not json", &mut VecDeque::new())
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Malformed(_)));
}

#[test]
fn errors_become_openai_shaped() {
    let body = read("anthropic/error_invalid.json");
    let out = translate::error(StatusCode::BAD_REQUEST, body.as_bytes());
    insta::assert_json_snapshot!(serde_json::from_slice::<Value>(&out).unwrap());
    // Not Anthropic's shape: left for the gateway to wrap.
    let html = translate::error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
    assert_eq!(&html[..], b"<html>bad gateway</html>");
}

mod consistency {
    //! The same answer read from a JSON response and from the event stream of the same answer
    //! must be the same completion: a streamed miss is stored and later served as JSON.

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    #[derive(Debug, Clone)]
    enum Block {
        Text(String),
        Thinking(String),
        ToolUse(String, Value),
    }

    fn block() -> impl Strategy<Value = Block> {
        let text = || prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter);
        let input =
            prop::collection::btree_map("[a-z]{1,6}", any::<i32>(), 0..3).prop_map(|m| json!(m));
        prop_oneof![
            text().prop_map(Block::Text),
            text().prop_map(Block::Thinking),
            ("[a-z_]{1,10}", input).prop_map(|(name, input)| Block::ToolUse(name, input)),
        ]
    }

    /// Splits `text` at the given char positions (modulo its length), as a stream may.
    fn split(text: &str, cuts: &[usize]) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
        at.push(chars.len());
        at.sort_unstable();
        let mut out = Vec::new();
        let mut start = 0;
        for end in at {
            if end > start {
                out.push(chars[start..end].iter().collect());
                start = end;
            }
        }
        out
    }

    fn stream(blocks: &[Block], stop: &str, cuts: &[usize]) -> Vec<(String, String)> {
        let mut events = vec![(
            "message_start".to_owned(),
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
                "stop_reason": null, "usage": {"input_tokens": 12, "cache_read_input_tokens": 3,
                "output_tokens": 1}}}),
        )];
        for (index, block) in blocks.iter().enumerate() {
            let (start, kind, field, text) = match block {
                Block::Text(t) => (
                    json!({"type": "text", "text": ""}),
                    "text_delta",
                    "text",
                    t.clone(),
                ),
                Block::Thinking(t) => (
                    json!({"type": "thinking", "thinking": ""}),
                    "thinking_delta",
                    "thinking",
                    t.clone(),
                ),
                Block::ToolUse(name, input) => (
                    json!({"type": "tool_use", "id": format!("toolu_{index}"), "name": name, "input": {}}),
                    "input_json_delta",
                    "partial_json",
                    // A tool without input streams no argument text.
                    if input.as_object().is_some_and(|o| o.is_empty()) {
                        String::new()
                    } else {
                        input.to_string()
                    },
                ),
            };
            events.push((
                "content_block_start".into(),
                json!({"type": "content_block_start", "index": index, "content_block": start}),
            ));
            for piece in split(&text, cuts) {
                events.push((
                    "content_block_delta".into(),
                    json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": kind, field: piece}}),
                ));
            }
            events.push((
                "content_block_stop".into(),
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
        events.push((
            "message_delta".into(),
            json!({"type": "message_delta", "delta": {"stop_reason": stop},
                "usage": {"output_tokens": 30}}),
        ));
        events.push(("message_stop".into(), json!({"type": "message_stop"})));
        events
            .into_iter()
            .map(|(name, data)| (name, data.to_string()))
            .collect()
    }

    fn message(blocks: &[Block], stop: &str) -> Value {
        let content: Vec<Value> = blocks
            .iter()
            .enumerate()
            .map(|(index, block)| match block {
                Block::Text(t) => json!({"type": "text", "text": t}),
                Block::Thinking(t) => json!({"type": "thinking", "thinking": t, "signature": "s"}),
                Block::ToolUse(name, input) => json!({"type": "tool_use",
                    "id": format!("toolu_{index}"), "name": name, "input": input}),
            })
            .collect();
        json!({"id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": content, "stop_reason": stop,
            "usage": {"input_tokens": 12, "cache_read_input_tokens": 3, "output_tokens": 30}})
    }

    proptest! {
        #[test]
        fn a_streamed_answer_assembles_to_the_json_answer(
            blocks in prop::collection::vec(block(), 0..4),
            stop in prop::sample::select(vec!["end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal"]),
            cuts in prop::collection::vec(any::<usize>(), 0..4),
            json_tool in any::<bool>(),
        ) {
            // With a JSON response format emulated, the forced tool's input is the content.
            let mut blocks = blocks;
            if json_tool
                && let Some(Block::ToolUse(name, _)) =
                    blocks.iter_mut().find(|b| matches!(b, Block::ToolUse(..)))
            {
                *name = translate::JSON_TOOL.to_owned();
            }
            let context = Context { json_tool, include_usage: true };
            let body = message(&blocks, stop).to_string();
            let json = translate::response(body.as_bytes(), &context).unwrap();
            let mut translator = Translator::new(context);
            let mut out = VecDeque::new();
            for (name, data) in stream(&blocks, stop, &cuts) {
                translator.event(&name, &data, &mut out).unwrap();
            }
            prop_assert_eq!(out.back(), Some(&StreamEvent::Done));
            let (from_stream, from_json) = crate::fixtures::assembled_and_json(out, &json);
            prop_assert_eq!(from_stream, from_json);
        }
    }
}
