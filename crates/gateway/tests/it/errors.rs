//! Every failure is an OpenAI-shaped JSON error with the right status, and names no secret.

use std::time::Duration;

use reprise_test_support::MockUpstream;
use serde_json::json;

use crate::support::{Gateway, PATIENCE, UPSTREAM_KEY, chat_body, client, closed_port, error_of};

async fn post_raw(gw: &Gateway, path: &str, body: &'static str) -> reqwest::Response {
    client()
        .post(gw.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn malformed_requests_are_400_naming_the_field() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("{not json", None, "not valid JSON"),
        ("", None, "empty"),
        (
            r#"{"messages":[{"role":"user","content":"x"}]}"#,
            Some("model"),
            "model",
        ),
        (r#"{"model":"gpt-4o"}"#, Some("messages"), "messages"),
        (
            r#"{"model":"gpt-4o","messages":[]}"#,
            Some("messages"),
            "at least one",
        ),
        (r#"{"model":42,"messages":[]}"#, Some("model"), "model"),
        (
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"},{"role":"wizard"}]}"#,
            Some("messages[1].role"),
            "wizard",
        ),
        (
            r#"{"model":"gpt-4o","messages":"hi"}"#,
            Some("messages"),
            "messages",
        ),
        (
            r#"{"model":"gpt-4o","messages":[],"stream":"yes"}"#,
            Some("stream"),
            "stream",
        ),
        // A message's content: a string or an array of part objects, and there for a user.
        (
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":5}]}"#,
            Some("messages[0].content"),
            "expected a string or an array of content parts, got an integer",
        ),
        (
            r#"{"model":"gpt-4o","messages":[{"role":"system","content":{"text":"x"}},{"role":"user","content":"x"}]}"#,
            Some("messages[0].content"),
            "got an object",
        ),
        (
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"a"},"b"]}]}"#,
            Some("messages[0].content[1]"),
            "expected a content part object, got a string",
        ),
        (
            r#"{"model":"gpt-4o","messages":[{"role":"system","content":"s"},{"role":"user","content":null}]}"#,
            Some("messages[1].content"),
            "missing required parameter",
        ),
        (
            r#"{"model":"gpt-4o","messages":[{"role":"user"}]}"#,
            Some("messages[0].content"),
            "missing required parameter",
        ),
    ];
    for (body, param, needle) in cases {
        let e = error_of(post_raw(&gw, "/v1/chat/completions", body).await, 400).await;
        assert_eq!(e["type"], "invalid_request_error", "{body}");
        assert_eq!(e["param"].as_str(), *param, "{body}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(needle),
            "{body}: {e}"
        );
    }
    assert!(
        mock.requests().is_empty(),
        "nothing invalid reaches the upstream"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config("max_body_bytes = 1024", &mock).await;
    let big = chat_body(&"x".repeat(2048));
    let e = error_of(gw.chat(&big).await, 413).await;
    assert_eq!(e["code"], "request_too_large");
    // Without a Content-Length (chunked), the limit still holds while reading.
    let chunk = b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"".to_vec();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..40).map(|_| Ok(chunk.clone())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let e = error_of(
        client()
            .post(gw.url("/v1/chat/completions"))
            .body(body)
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    assert_eq!(e["code"], "request_too_large");
    // Just under the limit is fine.
    let ok = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body(&"x".repeat(900)))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let e = error_of(
        client()
            .get(gw.url("/v1/completely/unknown"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_eq!(e["code"], "unknown_url");
    let e = error_of(
        client()
            .get(gw.url("/v1/chat/completions"))
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
    assert_eq!(e["code"], "method_not_allowed");
    let r = client().delete(gw.url("/v1/models")).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    error_of(r, 405).await;
}

#[tokio::test]
async fn an_unreachable_upstream_is_502() {
    let port = closed_port().await;
    let gw = Gateway::with_env(
        "",
        &[
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", &format!("http://127.0.0.1:{port}/v1")),
        ],
    )
    .await;
    let r = gw.chat(&chat_body("hi")).await;
    assert_eq!(r.headers()["x-reprise-provider"], "openai");
    let e = error_of(r, 502).await;
    assert_eq!(e["code"], "upstream_unreachable");
    assert!(
        !e["message"].as_str().unwrap().contains("127.0.0.1"),
        "no internal detail: {e}"
    );
}

const SHORT_TIMEOUTS: &str = "[routing]\nmax_attempts = 1\n[[targets]]\nname = \"openai\"\napi_key_env = \"OPENAI_API_KEY\"\nfirst_byte_timeout_ms = 200\n";

/// These tests are about how one failed call is answered: no retry hides it.
const ONE_ATTEMPT: &str = "[routing]\nmax_attempts = 1\n";

#[tokio::test]
async fn a_slow_first_byte_is_504() {
    let mock = MockUpstream::start().await;
    mock.delay_first_byte(Duration::from_secs(5));
    let gw = Gateway::with_config(SHORT_TIMEOUTS, &mock).await;
    let e = error_of(gw.chat(&chat_body("hi")).await, 504).await;
    assert_eq!(e["code"], "upstream_timeout");
}

#[tokio::test]
async fn the_total_timeout_bounds_a_whole_response() {
    let mock = MockUpstream::start().await;
    mock.delay_first_byte(Duration::from_secs(5));
    let gw = Gateway::with_config(
        "[routing]\nmax_attempts = 1\n[[targets]]\nname = \"openai\"\napi_key_env = \"OPENAI_API_KEY\"\ntotal_timeout_ms = 200\n",
        &mock,
    )
    .await;
    let e = error_of(gw.chat(&chat_body("hi")).await, 504).await;
    assert_eq!(e["code"], "upstream_timeout");
}

#[tokio::test]
async fn openai_shaped_upstream_errors_pass_through() {
    let mock = MockUpstream::start().await;
    mock.fail_times(1, 429)
        .fail_times(1, 500)
        .fail_times(1, 401);
    let gw = Gateway::with_config(ONE_ATTEMPT, &mock).await;
    for status in [429, 500, 401] {
        let r = gw.chat(&chat_body("hi")).await;
        let e = error_of(r, status).await;
        assert_eq!(e["code"], "mock_failure", "the upstream's own body: {e}");
        assert_eq!(e["message"], format!("mock failure {status}"));
    }
}

#[tokio::test]
async fn other_upstream_errors_are_wrapped() {
    let mock = MockUpstream::start().await;
    mock.respond_status(
        503,
        "<html><body>upstream proxy internal detail</body></html>",
    );
    let gw = Gateway::with_config(ONE_ATTEMPT, &mock).await;
    let e = error_of(gw.chat(&chat_body("hi")).await, 503).await;
    assert_eq!(e["type"], "upstream_error");
    assert_eq!(e["code"], "upstream_http_error");
    assert!(!e["message"].as_str().unwrap().contains("internal detail"));
}

/// A redirect is not followed (the body and key go only where the configuration says), and not
/// passed on as a 3xx the client would chase: a 502 that says what to fix, after one call.
#[tokio::test]
async fn an_upstream_redirect_is_not_followed() {
    let mock = MockUpstream::start().await;
    mock.respond_status(307, "");
    let gw = Gateway::with_config(ONE_ATTEMPT, &mock).await;
    let e = error_of(gw.chat(&chat_body("hi")).await, 502).await;
    assert_eq!(e["type"], "upstream_error");
    assert_eq!(e["code"], "upstream_redirect");
    assert!(e["message"].as_str().unwrap().contains("base_url"));
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn a_broken_json_response_is_502() {
    let mock = MockUpstream::start().await;
    mock.reset_after_chunks(0);
    let gw = Gateway::with_config(ONE_ATTEMPT, &mock).await;
    let e = error_of(gw.chat(&chat_body("hi")).await, 502).await;
    assert_eq!(e["code"], "upstream_broken_response");
}

#[tokio::test]
async fn a_client_that_gives_up_cancels_the_upstream_call() {
    let mock = MockUpstream::start().await;
    mock.stall();
    let gw = Gateway::start(&mock).await;
    let c = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = c
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert!(
        mock.wait_cancelled(1, PATIENCE).await,
        "the upstream call outlived the client"
    );
}

#[tokio::test]
async fn embeddings_errors_are_openai_shaped_too() {
    let mock = MockUpstream::start().await;
    mock.fail_times(1, 400);
    let gw = Gateway::start(&mock).await;
    let r = client()
        .post(gw.url("/v1/embeddings"))
        .json(&json!({"model": "text-embedding-3-small", "input": "x"}))
        .send()
        .await
        .unwrap();
    let e = error_of(r, 400).await;
    assert_eq!(e["code"], "mock_failure");
}

/// Requests as a buggy client might send them: a valid request with fields of the wrong type,
/// out of range, nested oddly, for each provider's translation. Every answer is a success or an
/// OpenAI-shaped client error; none is a 500 (a panic caught), and the gateway keeps serving.
#[tokio::test]
async fn generated_malformed_requests_are_answered_never_crash() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mock = MockUpstream::start().await;
    let gw = Gateway::with_env(
        "",
        &[
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", &mock.base_url()),
            ("ANTHROPIC_API_KEY", "sk-ant-test"),
            ("ANTHROPIC_BASE_URL", &mock.anthropic_base_url()),
            ("GEMINI_API_KEY", "gemini-test"),
            ("GEMINI_BASE_URL", &mock.gemini_base_url()),
        ],
    )
    .await;
    let odd = prop::sample::select(vec![
        json!(null),
        json!(true),
        json!(-1),
        json!(0),
        json!(2.5),
        json!(1e308),
        json!(u64::MAX),
        json!(""),
        json!("x"),
        json!("é🦀\u{0}"),
        json!([]),
        json!({}),
        json!([null]),
        json!([1, "a"]),
        json!([{"type": "text"}]),
        json!([{"type": "image_url", "image_url": {"url": 5}}]),
        json!([{"type": "text", "text": 5}]),
        json!({"type": "json_schema"}),
        json!([{"type": "function"}]),
        json!([{"type": "function", "function": {"name": 5, "parameters": []}}]),
        json!({"role": 5}),
        json!([[[[[[]]]]]]),
        json!("x".repeat(10_000)),
    ]);
    let field = prop::sample::select(vec![
        "model",
        "messages",
        "temperature",
        "top_p",
        "n",
        "max_tokens",
        "max_completion_tokens",
        "stream",
        "stream_options",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
        "logprobs",
        "seed",
        "user",
        "metadata",
        "x_unknown",
    ]);
    let message_field = prop::sample::select(vec![
        "role",
        "content",
        "name",
        "tool_calls",
        "tool_call_id",
    ]);
    let model = prop::sample::select(vec!["gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-pro"]);
    // Chat completions (translated for Anthropic and Gemini), text completions, the Responses
    // API (forwarded, or refused for the models of other APIs), and two forwarded routes.
    let route = prop::sample::select(vec![
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/v1/moderations",
        "/v1/audio/speech",
    ]);
    let request = (
        route,
        model,
        prop::collection::vec((field, odd.clone()), 0..3),
        prop::collection::vec((message_field, odd), 0..3),
    )
        .prop_map(|(route, model, fields, message_fields)| {
            let question = json!({"role": "user", "content": "What is the capital of France?"});
            let (mut request, message) = match route {
                "/v1/completions" => (json!({"model": model, "prompt": "Paris is"}), None),
                "/v1/moderations" => (json!({"model": model, "input": "Paris"}), None),
                "/v1/audio/speech" => (
                    json!({"model": model, "voice": "alloy", "input": "Paris"}),
                    None,
                ),
                "/v1/responses" => (
                    json!({"model": model, "instructions": "Be brief.", "input": [question]}),
                    Some("/input/0"),
                ),
                _ => (
                    json!({"model": model, "messages": [
                        {"role": "system", "content": "Be brief."}, question
                    ]}),
                    Some("/messages/1"),
                ),
            };
            if let Some(at) = message {
                for (name, value) in message_fields {
                    if let Some(m) = request.pointer_mut(at) {
                        m[name] = value;
                    }
                }
            }
            for (name, value) in fields {
                request[name] = value;
            }
            (route, request)
        });
    let mut runner = TestRunner::default();
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let (route, body) = request.new_tree(&mut runner).unwrap().current();
        let response =
            tokio::time::timeout(PATIENCE, client().post(gw.url(route)).json(&body).send())
                .await
                .unwrap()
                .unwrap();
        let status = response.status().as_u16();
        *statuses.entry(status).or_insert(0) += 1;
        assert!(
            status != 500 && status != 502,
            "{status} for {route} {body}: {}",
            response.text().await.unwrap_or_default()
        );
        if status >= 400 {
            let e = error_of(response, status).await;
            assert!(
                e["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{route} {body}"
            );
        } else {
            // Read to the end: a stream or a JSON answer, whole.
            response.bytes().await.unwrap();
        }
    }
    // Both kinds came up, and the gateway still answers a good request.
    assert!(
        statuses.contains_key(&200) && statuses.contains_key(&400),
        "{statuses:?}"
    );
    assert_eq!(gw.chat(&chat_body("still there?")).await.status(), 200);
}
