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
fn empty_texts_are_left_out_as_gemini_refuses_them() {
    let request = crate::fixtures::with_empty_texts();
    let (body, _) = translate::request(&request, "gemini-2.5-flash").unwrap();
    assert_eq!(
        body["contents"],
        serde_json::json!([
            {"role": "user", "parts": [{"text": "Hello"}]},
            {"role": "model", "parts": [{"text": "Hi."}]},
            {"role": "user", "parts": [{"text": "How are you?"}]}
        ])
    );
    assert!(body.get("systemInstruction").is_none(), "{body}");
}

#[test]
fn a_conversation_ending_with_the_assistant_is_refused_as_gemini_refuses_it() {
    let mut request = json("openai_request.json");
    request.insert(
        "messages".into(),
        serde_json::json!([
            {"role": "user", "content": "Write a haiku."},
            {"role": "assistant", "content": "Autumn moonlight"},
            {"role": "assistant", "content": ""},
            {"role": "system", "content": "Be brief."},
        ]),
    );
    let err = translate::request(&request, "gemini-2.5-flash").unwrap_err();
    assert!(
        matches!(err, UpstreamError::Unsupported { ref param, ref message }
            if param == "messages[1].role" && message.contains("ends with an assistant message")),
        "{err:?}"
    );
    // An assistant message with nothing in it is no turn at all.
    request.insert(
        "messages".into(),
        serde_json::json!([
            {"role": "user", "content": "Write a haiku."},
            {"role": "assistant", "content": ""},
        ]),
    );
    assert!(translate::request(&request, "gemini-2.5-flash").is_ok());
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

#[test]
fn a_blocked_prompt_streams_what_its_json_says() {
    let context = Context {
        model: "gemini-2.5-pro".into(),
        include_usage: false,
    };
    let blocked = serde_json::json!({"promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}});
    let json = translate::response(blocked.to_string().as_bytes(), &context).unwrap();
    let mut translator = Translator::new(context);
    let mut out = VecDeque::new();
    translator.event(&blocked.to_string(), &mut out).unwrap();
    translator.end(&mut out).unwrap();
    let (from_stream, from_json) = crate::fixtures::assembled_and_json(out, &json);
    assert_eq!(from_stream["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(from_stream["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(from_stream["choices"], from_json["choices"]);
}

mod consistency {
    //! The same answer read from a `generateContent` response and from the event stream of the
    //! same answer must be the same completion: a streamed miss is stored and later served as
    //! JSON.

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn part() -> impl Strategy<Value = Value> {
        let text = || prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter);
        let args = prop::collection::btree_map("[a-z]{1,6}", any::<i32>(), 0..3);
        prop_oneof![
            text().prop_map(|t| json!({"text": t})),
            text().prop_map(|t| json!({"text": t, "thought": true})),
            ("[a-z_]{1,10}", 0u32..1000, args).prop_map(|(name, id, args)| {
                json!({"functionCall": {"id": format!("fc_{id}"), "name": name, "args": args}})
            }),
        ]
    }

    /// The parts spread over events as a stream may send them: texts split anywhere (a call
    /// comes whole), each event carrying the next few.
    fn events(parts: &[Value], reason: &str, cuts: &[usize]) -> Vec<Value> {
        let mut pieces = Vec::new();
        for part in parts {
            match part.get("text").and_then(Value::as_str) {
                Some(text) if !text.is_empty() => {
                    let chars: Vec<char> = text.chars().collect();
                    let mut at: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
                    at.push(chars.len());
                    at.sort_unstable();
                    let mut start = 0;
                    for end in at {
                        if end > start {
                            let mut piece = part.clone();
                            piece["text"] = json!(chars[start..end].iter().collect::<String>());
                            pieces.push(piece);
                            start = end;
                        }
                    }
                }
                _ => pieces.push(part.clone()),
            }
        }
        let per_event = 1 + cuts.first().copied().unwrap_or(0) % 3;
        let mut out: Vec<Value> = pieces
            .chunks(per_event)
            .map(|group| {
                json!({"candidates": [{"content": {"role": "model", "parts": group}, "index": 0}],
                    "responseId": "r1", "modelVersion": "gemini-2.5-pro"})
            })
            .collect();
        out.push(
            json!({"candidates": [{"content": {"role": "model", "parts": []},
                "finishReason": reason, "index": 0}],
            "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 20,
                "thoughtsTokenCount": 5, "totalTokenCount": 36},
            "responseId": "r1", "modelVersion": "gemini-2.5-pro"}),
        );
        out
    }

    proptest! {
        #[test]
        fn a_streamed_answer_assembles_to_the_json_answer(
            parts in prop::collection::vec(part(), 0..4),
            reason in prop::sample::select(vec!["STOP", "MAX_TOKENS", "SAFETY"]),
            cuts in prop::collection::vec(any::<usize>(), 0..4),
        ) {
            let context = Context { model: "gemini-2.5-pro".into(), include_usage: true };
            let body = json!({
                "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": reason, "index": 0}],
                "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 20,
                    "thoughtsTokenCount": 5, "totalTokenCount": 36},
                "responseId": "r1", "modelVersion": "gemini-2.5-pro"});
            let json = translate::response(body.to_string().as_bytes(), &context).unwrap();
            let mut translator = Translator::new(context);
            let mut out = VecDeque::new();
            for event in events(&parts, reason, &cuts) {
                translator.event(&event.to_string(), &mut out).unwrap();
            }
            translator.end(&mut out).unwrap();
            prop_assert_eq!(out.back(), Some(&StreamEvent::Done));
            let (from_stream, from_json) = crate::fixtures::assembled_and_json(out, &json);
            prop_assert_eq!(from_stream, from_json);
        }
    }
}
