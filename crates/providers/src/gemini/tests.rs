//! Translation snapshots against fixtures in Gemini's documented wire format.

use std::collections::VecDeque;

use http::StatusCode;
use serde_json::Value;

use super::stream::Translator;
use super::translate::{self, Context};
use crate::fixtures::{chunks, json, read, sse};
use crate::{StreamEvent, UpstreamError};

#[test]
fn request_to_generate_content() {
    let request = json("openai_request.json");
    let (body, context) = translate::request(&request, "gemini-2.5-flash").unwrap();
    assert!(context.include_usage);
    insta::assert_json_snapshot!(body);
}

#[test]
fn a_tool_result_must_answer_an_earlier_call() {
    let mut request = json("openai_request.json");
    request.insert(
        "messages".into(),
        serde_json::json!([{"role": "tool", "tool_call_id": "call_unknown", "content": "x"}]),
    );
    let err = translate::request(&request, "gemini-2.5-flash").unwrap_err();
    assert!(
        matches!(err, UpstreamError::Unsupported { ref param, .. } if param == "messages[0].tool_call_id")
    );
}

#[test]
fn response_with_thoughts_and_parallel_function_calls() {
    let body = read("gemini/response_tool_use.json");
    let context = Context {
        model: "gemini-2.5-flash".into(),
        include_usage: false,
    };
    let out: Value =
        serde_json::from_slice(&translate::response(body.as_bytes(), &context).unwrap()).unwrap();
    // Gemini sends no call ids: fresh ones are made, unique per call.
    let calls = out["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    insta::assert_json_snapshot!(out, {
        ".created" => "[created]",
        ".choices[0].message.tool_calls[].id" => "[call id]",
    });
}

#[test]
fn stream_of_text_ending_at_max_tokens() {
    let mut translator = Translator::new(Context {
        model: "gemini-2.5-flash".into(),
        include_usage: true,
    });
    let mut out = VecDeque::new();
    for (_, data) in sse("gemini/stream_text.sse") {
        translator.event(&data, &mut out).unwrap();
    }
    translator.end(&mut out).unwrap();
    assert_eq!(out.back(), Some(&StreamEvent::Done));
    insta::assert_json_snapshot!(chunks(out), {"[].created" => "[created]"});
}

#[test]
fn a_stream_closed_before_its_finish_reason_is_truncated() {
    let mut translator = Translator::new(Context::default());
    let mut out = VecDeque::new();
    let (_, first) = &sse("gemini/stream_text.sse")[0];
    translator.event(first, &mut out).unwrap();
    assert!(matches!(
        translator.end(&mut out),
        Err(UpstreamError::Truncated)
    ));
}

#[test]
fn errors_become_openai_shaped() {
    let body = read("gemini/error_quota.json");
    let out = translate::error(StatusCode::TOO_MANY_REQUESTS, body.as_bytes());
    insta::assert_json_snapshot!(serde_json::from_slice::<Value>(&out).unwrap());
}
