//! `POST /v1/completions`, legacy text completions (code-completion tools, base models):
//! forwarded as they came to OpenAI-compatible targets, streams relayed chunk by chunk, with the
//! routing, retries, accounting and error handling of chat completions.

use reprise_test_support::MockUpstream;
use serde_json::{Value, json};

use crate::support::{Gateway, UPSTREAM_KEY, parse_sse};

const REPLY: &str = "Hello from the mock upstream.";

fn body(stream: bool, include_usage: bool) -> Value {
    let mut body = json!({
        "model": "gpt-3.5-turbo-instruct",
        "prompt": "def fib(n):",
        "suffix": "\n\nprint(fib(10))",
        "max_tokens": 64,
        "temperature": 0,
        "vendor_field": {"kept": true}
    });
    if stream {
        body["stream"] = json!(true);
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
    }
    body
}

async fn post(gw: &Gateway, body: &Value) -> reqwest::Response {
    gw.post("/v1/completions", body).await
}

fn text_of(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_completion_is_forwarded_as_it_came_and_accounted() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let r = post(&gw, &body(false, false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-cache"], "bypass");
    assert_eq!(r.headers()["x-reprise-provider"], "openai");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["choices"][0]["text"], REPLY);
    let seen = mock.requests();
    assert_eq!(seen[0].path, "/v1/completions");
    assert_eq!(seen[0].body, body(false, false));
    assert_eq!(
        seen[0].headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    let usage: Value = gw.get_json("/admin/usage").await;
    assert_eq!(
        (&usage["prompt_tokens"], &usage["completion_tokens"]),
        (&json!(5), &json!(5))
    );
}

#[tokio::test]
async fn a_streamed_completion_is_relayed_and_its_usage_read() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    // The client did not ask for usage: the gateway asks (for its accounting) and drops the
    // usage chunk on the way back.
    let gate = mock.hold_last_chunk();
    let mut r = post(&gw, &body(true, false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let first = tokio::time::timeout(crate::support::PATIENCE, r.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        std::str::from_utf8(&first)
            .unwrap()
            .contains("text_completion")
    );
    gate.open();
    let rest = r.text().await.unwrap();
    let events = parse_sse(&format!("{}{rest}", std::str::from_utf8(&first).unwrap()));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(text_of(&events), REPLY);
    assert!(
        !events.iter().any(|e| e.contains("\"usage\"")),
        "{events:?}"
    );
    assert_eq!(
        mock.requests()[0].body["stream_options"]["include_usage"],
        true
    );
    let usage: Value = gw.get_json("/admin/usage").await;
    assert_eq!(usage["completion_tokens"], 5);
    // Asked for: passed on.
    let r = post(&gw, &body(true, true)).await;
    let events = parse_sse(&r.text().await.unwrap());
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_chunk["usage"]["total_tokens"], 10);
}

#[tokio::test]
async fn completion_failures_fail_over_or_end_the_stream_with_an_error() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    // A 503, then a stream cut before any text: both retried.
    mock.fail_times(1, 503).truncate_after_chunks(0);
    let r = post(&gw, &body(true, false)).await;
    assert_eq!(r.headers()["x-reprise-attempts"], "3");
    let events = parse_sse(&r.text().await.unwrap());
    assert_eq!(text_of(&events), REPLY);
    // Cut after its first words: an OpenAI-shaped error event, no [DONE].
    mock.truncate_after_chunks(2);
    let r = post(&gw, &body(true, false)).await;
    assert_eq!(r.status(), 200);
    let events = parse_sse(&r.text().await.unwrap());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_truncated");
    assert!(!events.iter().any(|e| e == "[DONE]"));
}

#[tokio::test]
async fn completions_reach_azure_deployments_and_not_other_apis() {
    let mock = MockUpstream::start().await;
    let toml = format!(
        r#"
[[targets]]
name = "azure"
provider = "azure"
base_url = "{}"
api_key_env = "AZURE_KEY"
models = ["gpt-*"]

[[targets]]
name = "claude"
provider = "anthropic"
api_key_env = "AZURE_KEY"
base_url = "{}"
models = ["claude-*"]
"#,
        mock.base_url().trim_end_matches("/v1"),
        mock.anthropic_base_url()
    );
    let gw = Gateway::with_env(&toml, &[("AZURE_KEY", UPSTREAM_KEY)]).await;
    let r = post(&gw, &body(false, false)).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let seen = mock.requests();
    assert!(
        seen[0]
            .path
            .starts_with("/openai/deployments/gpt-3.5-turbo-instruct/completions"),
        "{}",
        seen[0].path
    );
    assert_eq!(seen[0].headers["api-key"], UPSTREAM_KEY);
    let mut request = body(false, false);
    request["model"] = json!("claude-haiku-4-5");
    let r = post(&gw, &request).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "model");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/chat/completions")
    );
    assert_eq!(mock.requests().len(), 1);
    // The request's own faults.
    let r = post(&gw, &json!({"prompt": "x"})).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "model");
}
