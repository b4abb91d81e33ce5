//! Server-sent event streams: relayed event by event, never buffered whole, and a cut stream
//! never ends as a clean success.

use std::time::Duration;

use futures_util::StreamExt;
use reprise_test_support::MockUpstream;
use serde_json::{Value, json};

use crate::support::{
    Gateway, PATIENCE, chat_body, content_of_stream, parse_sse, sse_events, stream_body,
};

#[tokio::test]
async fn a_stream_is_relayed_event_for_event_with_usage_and_done() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let response = gw.chat(&stream_body("hi", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-reprise-provider"], "openai");
    assert_eq!(response.headers()["x-reprise-cache"], "miss");
    let events = sse_events(response).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from the mock upstream.");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        usage["total_tokens"], 10,
        "include_usage gives a final usage chunk"
    );
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );

    // Without include_usage there is no usage chunk.
    let response = gw.chat(&stream_body("hi again", false)).await;
    let events = sse_events(response).await;
    assert!(events.iter().all(|e| !e.contains("\"usage\"")));
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn chunks_reach_the_client_before_the_upstream_has_finished() {
    let mock = MockUpstream::start().await;
    let gate = mock.hold_last_chunk();
    let gw = Gateway::start(&mock).await;
    let response = gw.chat(&stream_body("hi", false)).await;
    let mut body = response.bytes_stream();
    // The upstream holds its final event until the gate opens: every chunk before it must
    // already be readable by the client.
    let mut seen = String::new();
    let before = async {
        while !seen.contains("\"finish_reason\":\"stop\"") {
            let bytes = body.next().await.unwrap().unwrap();
            seen.push_str(std::str::from_utf8(&bytes).unwrap());
        }
    };
    tokio::time::timeout(PATIENCE, before)
        .await
        .expect("the relayed chunks were held back until the stream ended");
    assert!(!seen.contains("[DONE]"));
    gate.open();
    while let Some(bytes) = body.next().await {
        seen.push_str(std::str::from_utf8(&bytes.unwrap()).unwrap());
    }
    assert_eq!(parse_sse(&seen).last().unwrap(), "[DONE]");
}

async fn cut_stream_ends_with_error(step: impl FnOnce(&MockUpstream), toml: &str, code: &str) {
    let mock = MockUpstream::start().await;
    step(&mock);
    let gw = Gateway::with_config(toml, &mock).await;
    let response = gw.chat(&stream_body("hi", true)).await;
    assert_eq!(
        response.status(),
        200,
        "the head went out with the first chunk"
    );
    let events = tokio::time::timeout(PATIENCE, sse_events(response))
        .await
        .unwrap();
    assert!(
        !events.iter().any(|e| e == "[DONE]"),
        "a cut stream must not end cleanly: {events:?}"
    );
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error", "{last}");
    assert_eq!(last["error"]["code"], code, "{last}");
    assert_eq!(
        events.len(),
        3,
        "two relayed chunks, then the error: {events:?}"
    );
}

#[tokio::test]
async fn a_truncated_stream_ends_with_an_error_event() {
    cut_stream_ends_with_error(
        |m| {
            m.truncate_after_chunks(2);
        },
        "",
        "upstream_stream_truncated",
    )
    .await;
}

#[tokio::test]
async fn a_reset_stream_ends_with_an_error_event() {
    cut_stream_ends_with_error(
        |m| {
            m.reset_after_chunks(2);
        },
        "",
        "upstream_stream_truncated",
    )
    .await;
}

#[tokio::test]
async fn a_stalled_stream_hits_the_idle_timeout() {
    cut_stream_ends_with_error(
        |m| {
            m.stall_after_chunks(2);
        },
        "[[targets]]\nname = \"openai\"\napi_key_env = \"OPENAI_API_KEY\"\nstream_idle_timeout_ms = 300\n",
        "upstream_timeout",
    )
    .await;
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_event_gets_an_error_status() {
    let mock = MockUpstream::start().await;
    mock.truncate_after_chunks(0);
    let gw = Gateway::with_config("[routing]\nmax_attempts = 1\n", &mock).await;
    let response = gw.chat(&stream_body("hi", false)).await;
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["content-type"], "application/json");
    let e: Value = response.json().await.unwrap();
    assert_eq!(e["error"]["code"], "upstream_broken_response");
}

#[tokio::test]
async fn an_upstream_error_on_a_stream_request_is_relayed_as_json() {
    let mock = MockUpstream::start().await;
    mock.fail_times(1, 429);
    let gw = Gateway::with_config("[routing]\nmax_attempts = 1\n", &mock).await;
    let response = gw.chat(&stream_body("hi", false)).await;
    assert_eq!(response.status(), 429);
    let e: Value = response.json().await.unwrap();
    assert_eq!(e["error"]["code"], "mock_failure");
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_cancels_the_upstream() {
    let mock = MockUpstream::start().await;
    mock.stall_after_chunks(2);
    let gw = Gateway::start(&mock).await;
    let response = gw.chat(&stream_body("hi", false)).await;
    let mut body = response.bytes_stream();
    let first = tokio::time::timeout(PATIENCE, body.next()).await.unwrap();
    assert!(first.unwrap().is_ok());
    assert_eq!(mock.cancelled(), 0);
    drop(body);
    assert!(
        mock.wait_cancelled(1, PATIENCE).await,
        "the upstream request outlived the client"
    );
}

#[tokio::test]
async fn a_stream_event_may_be_split_across_network_reads() {
    // The relay must frame by SSE event, not by read: a long reply yields big chunks.
    let mock = MockUpstream::builder()
        .reply("word ".repeat(3000).trim_end().to_owned())
        .start()
        .await;
    let gw = Gateway::start(&mock).await;
    let response = gw.chat(&stream_body("hi", true)).await;
    let events = tokio::time::timeout(Duration::from_secs(60), sse_events(response))
        .await
        .unwrap();
    assert_eq!(
        events.len(),
        3000 + 4,
        "role, 3000 words, finish, usage, [DONE] = {}",
        events.len()
    );
    for e in &events[..events.len() - 1] {
        let _: Value = serde_json::from_str(e).unwrap();
    }
}

#[tokio::test]
async fn an_event_of_several_data_lines_is_relayed_whole() {
    // An upstream may write a chunk's JSON over several `data:` lines (pretty-printed); the
    // client must get the same JSON, however the relay frames it.
    let chunk = |delta: Value, finish: Value| {
        serde_json::to_string_pretty(&json!({"id": "c1", "object": "chat.completion.chunk",
            "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}))
        .unwrap()
    };
    let events = vec![
        (
            None,
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        ),
        (
            None,
            chunk(json!({"content": "Several\nlines"}), Value::Null),
        ),
        (None, chunk(json!({"content": " of text."}), Value::Null)),
        (None, chunk(json!({}), json!("stop"))),
        (None, "[DONE]".to_owned()),
    ];
    assert!(events[1].1.contains('\n'));
    let mock = MockUpstream::start().await;
    mock.respond_events(events);
    let gw = Gateway::start(&mock).await;
    let response = gw.chat(&stream_body("pretty please", false)).await;
    assert_eq!(response.status(), 200);
    let events = sse_events(response).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let mut text = String::new();
    for e in &events[..events.len() - 1] {
        let c: Value = serde_json::from_str(e).unwrap_or_else(|err| panic!("{err}: {e:?}"));
        text.push_str(
            c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default(),
        );
    }
    assert_eq!(text, "Several\nlines of text.");
    // Assembled whole, it was stored: the same question is now a hit.
    let r = gw.chat(&chat_body("pretty please")).await;
    assert_eq!(r.headers()["x-reprise-cache"], "hit");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Several\nlines of text."
    );
}

#[tokio::test]
async fn a_quiet_stream_gets_keep_alive_comments() {
    let mock = MockUpstream::start().await;
    let gate = mock.hold_last_chunk();
    let gw = Gateway::with_config("stream_keepalive_secs = 1\n", &mock).await;
    let response = gw.chat(&stream_body("hi", false)).await;
    let mut body = response.bytes_stream();
    // The upstream holds its last event for 2.5 s: the client meanwhile gets comments, and
    // the stream then ends as usual.
    let opener = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        gate.open();
    });
    let mut seen = String::new();
    let read = async {
        while let Some(bytes) = body.next().await {
            seen.push_str(std::str::from_utf8(&bytes.unwrap()).unwrap());
        }
    };
    tokio::time::timeout(PATIENCE, read).await.unwrap();
    opener.await.unwrap();
    let comments = seen.matches(": keep-alive\n\n").count();
    assert!(comments >= 1, "{seen}");
    let events = parse_sse(&seen);
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(content_of_stream(&events), "Hello from the mock upstream.");
}

#[tokio::test]
async fn a_model_thinking_before_its_answer_gets_the_head_and_keep_alives() {
    // The upstream sends its first event (the role), then thinks until the client has had the
    // head and a comment; the second time round it thinks before its first event. The gateway
    // holds the head until content (to fail over if the stream breaks first), but not past
    // 1 s of quiet: the client gets the head, then comments, then the answer.
    for held_events in [1, 0] {
        thinking_model(held_events).await;
    }
}

async fn thinking_model(held_events: usize) {
    let mock = MockUpstream::start().await;
    let gate = mock.hold_after_chunks(held_events);
    let gw = Gateway::with_config("stream_keepalive_secs = 1\n", &mock).await;
    // The gate is opened only after the head and a comment came: a gateway that held the
    // head until the answer would never get there.
    let response = tokio::time::timeout(PATIENCE, gw.chat(&stream_body("hi", false)))
        .await
        .expect("the head was held until the answer");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains(": keep-alive") {
        let bytes = tokio::time::timeout(PATIENCE, body.next()).await.unwrap();
        seen.push_str(std::str::from_utf8(&bytes.unwrap().unwrap()).unwrap());
    }
    gate.open();
    while let Some(bytes) = tokio::time::timeout(PATIENCE, body.next()).await.unwrap() {
        seen.push_str(std::str::from_utf8(&bytes.unwrap()).unwrap());
    }
    let events = parse_sse(&seen);
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(content_of_stream(&events), "Hello from the mock upstream.");
}
