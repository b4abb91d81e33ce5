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
