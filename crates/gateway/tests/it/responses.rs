//! `POST /v1/responses`, OpenAI's Responses API: forwarded as it came to OpenAI-compatible
//! targets, its named events relayed one by one, with the routing, retries, accounting and
//! error handling of chat completions.

use reprise_test_support::MockUpstream;
use serde_json::{Value, json};

use crate::support::{Gateway, UPSTREAM_KEY, client};

const REPLY: &str = "Hello from the mock upstream.";

fn body(stream: bool) -> Value {
    json!({
        "model": "gpt-4.1-mini",
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}],
        "stream": stream,
        "reasoning": {"effort": "low"},
        "vendor_field": {"kept": true}
    })
}

async fn post(gw: &Gateway, body: &Value) -> reqwest::Response {
    gw.post("/v1/responses", body).await
}

/// The `(event name, data)` pairs of an SSE body.
fn named_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let field = |name: &str| -> String {
                e.lines()
                    .filter_map(|l| l.strip_prefix(name).map(str::trim_start))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            let data: Value = serde_json::from_str(&field("data:")).unwrap();
            (field("event:"), data)
        })
        .collect()
}

/// The text a stream's `response.output_text.delta` events carry.
fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_response_is_forwarded_as_it_came_and_accounted() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let r = post(&gw, &body(false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-cache"], "bypass");
    assert_eq!(r.headers()["x-reprise-provider"], "openai");
    assert!(!r.headers()["x-request-id"].is_empty());
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["output"][0]["content"][0]["text"], REPLY);
    // Unknown request fields reached the upstream untouched, at its /responses route, with the
    // target's key.
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/responses");
    assert_eq!(seen[0].body, body(false));
    assert_eq!(
        seen[0].headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    // Its input and output tokens are booked as a chat completion's prompt and completion.
    let usage: Value = gw.get_json("/admin/usage").await;
    assert_eq!(usage["requests"], 1);
    assert_eq!(usage["prompt_tokens"], 5);
    assert_eq!(usage["completion_tokens"], 5);
    assert_eq!(usage["lines"][0]["model"], "gpt-4.1-mini");
}

#[tokio::test]
async fn a_streamed_response_relays_its_named_events_as_they_come() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    // The mock holds its final event until the test has read the first ones: a gateway that
    // buffered the stream would deliver nothing.
    let gate = mock.hold_last_chunk();
    let mut r = post(&gw, &body(true)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert_eq!(r.headers()["x-reprise-cache"], "bypass");
    let mut text = String::new();
    while !text.contains("response.output_text.done") {
        let piece = tokio::time::timeout(crate::support::PATIENCE, r.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&piece).unwrap());
    }
    assert!(!text.contains("response.completed"));
    gate.open();
    text.push_str(&r.text().await.unwrap());
    assert!(!text.contains("[DONE]"), "{text}");
    let events = named_events(&text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(names.last(), Some(&"response.completed"));
    for (n, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], n);
    }
    assert_eq!(text_of(&events), REPLY);
    let usage: Value = gw.get_json("/admin/usage").await;
    assert_eq!(
        (&usage["prompt_tokens"], &usage["completion_tokens"]),
        (&json!(5), &json!(5))
    );
}

#[tokio::test]
async fn a_cut_response_stream_ends_with_an_error_event() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    // Cut after the first delta: the head has gone out, so the client is told in-band.
    mock.truncate_after_chunks(5);
    let r = post(&gw, &body(true)).await;
    assert_eq!(r.status(), 200);
    let events = named_events(&r.text().await.unwrap());
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["type"], "error");
    assert_eq!(data["code"], "upstream_stream_truncated");
    assert!(data["message"].as_str().unwrap().contains("incomplete"));
    assert_eq!(data["sequence_number"], 5);
    assert_eq!(events.len(), 6);
    // A stream that fails before any content fails over like a chat stream: here the same
    // target again, after a 503 and a stream cut before its first delta.
    mock.fail_times(1, 503).truncate_after_chunks(3);
    let r = post(&gw, &body(true)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-attempts"], "3");
    let events = named_events(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap().0, "response.completed");
}

#[tokio::test]
async fn errors_are_openai_shaped_and_what_a_provider_cannot_do_is_passed_over() {
    let mock = MockUpstream::start().await;
    let anthropic = MockUpstream::start().await;
    let toml = format!(
        r#"
[[targets]]
name = "claude"
provider = "anthropic"
base_url = "{}"
api_key_env = "ANTHROPIC_API_KEY"
models = ["claude-*", "both-*"]

[[targets]]
name = "openai"
base_url = "{}"
api_key_env = "OPENAI_API_KEY"
models = ["gpt-*", "both-*"]
"#,
        anthropic.anthropic_base_url(),
        mock.base_url()
    );
    let gw = Gateway::with_env(
        &toml,
        &[
            ("ANTHROPIC_API_KEY", UPSTREAM_KEY),
            ("OPENAI_API_KEY", UPSTREAM_KEY),
        ],
    )
    .await;
    // A built-in tool has no chat equivalent: served by the Messages API only, refused, naming
    // the way out.
    let mut request = json!({"model": "claude-sonnet-4-5", "input": "Hi",
        "tools": [{"type": "web_search"}]});
    let r = post(&gw, &request).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "tools[0].type");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("Responses API"), "{message}");
    assert!(message.contains("/v1/chat/completions"), "{message}");
    assert!(anthropic.requests().is_empty());
    // Routed to both: the Anthropic target is passed over for the one that can.
    request["model"] = json!("both-large");
    let r = post(&gw, &request).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "openai");
    assert!(anthropic.requests().is_empty());
    // Without it, the first target of the plan answers, through translation.
    let r = post(&gw, &json!({"model": "both-large", "input": "Hi"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "claude");
    assert_eq!(anthropic.requests().len(), 1);
    // The request's own faults, before any upstream call.
    for (bad, param) in [
        (json!({"input": "Hi"}), "model"),
        (json!({"model": 7, "input": "Hi"}), "model"),
        (json!({"model": "gpt-4o", "stream": "yes"}), "stream"),
    ] {
        let r = post(&gw, &bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert_eq!(e["error"]["param"], param, "{bad}");
    }
    request["model"] = json!("mistral-large");
    let r = post(&gw, &request).await;
    assert_eq!(r.status(), 404);
    let mut request = body(false);
    // An upstream's own 4xx comes back as it came.
    mock.respond_status(
        400,
        r#"{"error":{"message":"No tool output found for function call call_1.","type":"invalid_request_error","param":"input","code":null}}"#,
    );
    request["model"] = json!("gpt-4o");
    let r = post(&gw, &request).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "input");
    assert_eq!(mock.requests().len(), 2);
    let r = client().get(gw.url("/v1/responses")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
}

#[tokio::test]
async fn stored_responses_and_follow_ups_find_the_account_that_holds_them() {
    let east = MockUpstream::start().await;
    let west = MockUpstream::start().await;
    let toml = format!(
        r#"
[[targets]]
name = "east"
base_url = "{}"
models = ["gpt-*"]

[[targets]]
name = "west"
base_url = "{}"
models = ["gpt-*"]
"#,
        east.base_url(),
        west.base_url()
    );
    let gw = Gateway::with_config(&toml, &east).await;
    // East is down for a moment: the response is made, and stored, by west.
    east.fail_times(1, 503);
    let r = post(&gw, &body(false)).await;
    assert_eq!(r.headers()["x-reprise-provider"], "west");
    let first: Value = r.json().await.unwrap();
    let id = first["id"].as_str().unwrap().to_owned();

    // The next turn names it: east says it holds no such response, so west is asked.
    let mut next = body(false);
    next["previous_response_id"] = json!(id);
    let r = post(&gw, &next).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "west");
    assert_eq!(r.headers()["x-reprise-attempts"], "2");
    // A response no account holds: the last account's own answer.
    next["previous_response_id"] = json!("resp_nowhere");
    let r = post(&gw, &next).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "previous_response_id");
    assert_eq!(e["error"]["code"], "previous_response_not_found");

    // The stored-response routes ask each account in turn, with the query as it came.
    let r = client()
        .get(gw.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "west");
    let stored: Value = r.json().await.unwrap();
    assert_eq!(stored, first);
    // A background response's events, relayed as a stream.
    let r = client()
        .get(gw.url(&format!("/v1/responses/{id}?stream=true")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events = named_events(&r.text().await.unwrap());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "response.completed");
    assert_eq!(events[0].1["response"], first);
    let r = client()
        .get(gw.url(&format!("/responses/{id}/input_items?limit=5&order=asc")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let items: Value = r.json().await.unwrap();
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"], body(false)["input"]);
    let paths: Vec<String> = west.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.contains(&format!(
            "GET /v1/responses/{id}/input_items?limit=5&order=asc"
        )),
        "{paths:?}"
    );
    let r = client()
        .delete(gw.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deleted: Value = r.json().await.unwrap();
    assert_eq!(deleted["deleted"], true);
    // Gone everywhere: the last account's 404, as it came.
    let r = client()
        .get(gw.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"]["message"].as_str().unwrap().contains(&id));

    // Methods and paths the API does not have.
    for (method, path, status, allow) in [
        (
            reqwest::Method::POST,
            format!("/v1/responses/{id}"),
            405,
            Some("GET, DELETE"),
        ),
        (
            reqwest::Method::GET,
            format!("/v1/responses/{id}/cancel"),
            405,
            Some("POST"),
        ),
        (
            reqwest::Method::GET,
            format!("/v1/responses/{id}/other"),
            404,
            None,
        ),
        (
            reqwest::Method::GET,
            "/v1/responses/a/b/c".to_owned(),
            404,
            None,
        ),
        (
            reqwest::Method::GET,
            "/v1/responses/bad%20id".to_owned(),
            404,
            None,
        ),
    ] {
        let r = client()
            .request(method.clone(), gw.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{method} {path}");
        assert_eq!(
            r.headers().get("allow").map(|v| v.to_str().unwrap()),
            allow,
            "{method} {path}"
        );
        let e: Value = r.json().await.unwrap();
        assert!(e["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn claude_and_gemini_answer_the_responses_api_through_translation() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_env(
        "",
        &[
            ("ANTHROPIC_API_KEY", UPSTREAM_KEY),
            ("ANTHROPIC_BASE_URL", &mock.anthropic_base_url()),
            ("GEMINI_API_KEY", UPSTREAM_KEY),
            ("GEMINI_BASE_URL", &mock.gemini_base_url()),
        ],
    )
    .await;
    for (model, provider) in [
        ("claude-sonnet-4-5", "anthropic"),
        ("gemini-2.5-flash", "gemini"),
    ] {
        let request = json!({"model": model, "instructions": "Be brief.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}],
            "max_output_tokens": 50, "store": false});
        let r = post(&gw, &request).await;
        assert_eq!(r.status(), 200, "{model}");
        assert_eq!(r.headers()["x-reprise-provider"], provider);
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["object"], "response");
        assert_eq!(answer["status"], "completed");
        assert_eq!(answer["model"], model);
        assert_eq!(answer["instructions"], "Be brief.");
        assert_eq!(answer["max_output_tokens"], 50);
        assert_eq!(answer["output"][0]["type"], "message");
        assert_eq!(answer["output"][0]["content"][0]["text"], REPLY);
        assert!(answer["usage"]["output_tokens"].as_u64().unwrap() > 0);
        // The provider got its own format: the instructions as its system prompt.
        let seen = mock.requests().pop().unwrap();
        assert!(seen.body.to_string().contains("Be brief."), "{}", seen.body);
        assert!(
            !seen.body.to_string().contains("instructions"),
            "{}",
            seen.body
        );

        let mut streamed = request.clone();
        streamed["stream"] = json!(true);
        let r = post(&gw, &streamed).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let events = named_events(&r.text().await.unwrap());
        assert_eq!(events[0].0, "response.created");
        let (last, data) = events.last().unwrap();
        assert_eq!(last, "response.completed", "{events:?}");
        for (n, (name, data)) in events.iter().enumerate() {
            assert_eq!(data["type"], name.as_str());
            assert_eq!(data["sequence_number"], n);
        }
        assert_eq!(text_of(&events), REPLY);
        assert_eq!(data["response"]["output"][0]["content"][0]["text"], REPLY);
        assert!(data["response"]["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }
    // Both answers booked: input and output tokens as prompt and completion.
    let usage: Value = gw.get_json("/admin/usage").await;
    assert_eq!(usage["requests"], 4);
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn servers_without_the_responses_api_answer_it_through_their_chat_completions() {
    // An OpenAI-compatible server that only has chat completions (its router's 404), and an
    // Azure deployment.
    let plain = MockUpstream::builder()
        .without_responses_api()
        .start()
        .await;
    let azure = MockUpstream::start().await;
    let toml = format!(
        r#"
[[targets]]
name = "local"
base_url = "{}"
models = ["llama-*"]

[[targets]]
name = "azure"
provider = "azure"
base_url = "{}"
api_key_env = "AZURE_KEY"
models = ["gpt-*"]
"#,
        plain.base_url(),
        azure.base_url().trim_end_matches("/v1")
    );
    let gw = Gateway::with_env(&toml, &[("AZURE_KEY", UPSTREAM_KEY)]).await;
    for (model, mock, path) in [
        ("llama-3.1-8b", &plain, "/v1/chat/completions".to_owned()),
        (
            "gpt-4o",
            &azure,
            "/openai/deployments/gpt-4o/chat/completions?api-version=".to_owned(),
        ),
    ] {
        let request = json!({"model": model, "instructions": "Be brief.", "input": "Say hello"});
        let r = post(&gw, &request).await;
        assert_eq!(r.status(), 200, "{model}");
        assert_eq!(r.headers().get("x-reprise-attempts"), None);
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["object"], "response");
        assert_eq!(answer["output"][0]["content"][0]["text"], REPLY);
        assert_eq!(answer["usage"]["output_tokens"], 5);
        let seen = mock.requests().pop().unwrap();
        assert!(seen.path.starts_with(&path), "{model}: {}", seen.path);
        assert_eq!(
            seen.body["messages"],
            json!([{"role": "system", "content": "Be brief."},
                   {"role": "user", "content": "Say hello"}])
        );
        let mut streamed = request.clone();
        streamed["stream"] = json!(true);
        let events = named_events(&post(&gw, &streamed).await.text().await.unwrap());
        assert_eq!(events.last().unwrap().0, "response.completed", "{model}");
        let text = &events.last().unwrap().1["response"]["output"][0]["content"][0]["text"];
        assert_eq!(text, REPLY);
    }
}

#[tokio::test]
async fn a_servers_own_404_is_not_taken_for_a_missing_responses_api() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    mock.respond_status(
        404,
        r#"{"error":{"message":"The model 'gpt-9' does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#,
    );
    let r = post(&gw, &json!({"model": "gpt-9", "input": "Hi"})).await;
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "model_not_found");
    // Asked once, at its Responses API: not again through chat completions.
    let paths: Vec<String> = mock.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v1/responses"]);
}

fn unstored(text: &str, stream: bool) -> Value {
    json!({"model": "gpt-4.1-mini", "instructions": "Be brief.", "input": text,
        "store": false, "stream": stream})
}

fn cache_of(r: &reqwest::Response) -> (String, String) {
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (header("x-reprise-cache"), header("x-reprise-cache-kind"))
}

#[tokio::test]
async fn responses_that_keep_nothing_upstream_are_cached_in_both_forms() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let question = "How do I reverse a list in Python?";

    let r = post(&gw, &unstored(question, false)).await;
    assert_eq!(cache_of(&r).0, "miss");
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["status"], "completed");

    // The same request: a new response (fresh id), the same output, no upstream call.
    let r = post(&gw, &unstored(question, false)).await;
    assert_eq!(cache_of(&r), ("hit".into(), "exact".into()));
    assert!(r.headers().contains_key("age"));
    let again: Value = r.json().await.unwrap();
    assert_ne!(again["id"], first["id"]);
    assert!(again["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(again["output"], first["output"]);
    assert_eq!(again["usage"], first["usage"]);

    // A paraphrase: a semantic hit. Streamed: the API's events, ending with the response.
    let r = post(&gw, &unstored("How can I reverse a list in Python?", true)).await;
    assert_eq!(cache_of(&r), ("hit".into(), "semantic".into()));
    assert!(r.headers().contains_key("x-reprise-cache-similarity"));
    let events = named_events(&r.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names[0], "response.created");
    assert_eq!(names.last(), Some(&"response.completed"));
    let text: String = events
        .iter()
        .filter(|e| e.0 == "response.output_text.delta")
        .map(|e| e.1["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, REPLY);
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i);
    }
    assert_eq!(
        events.last().unwrap().1["response"]["output"],
        first["output"]
    );
    assert_eq!(mock.requests().len(), 1);

    // A streamed miss is collected from its final event and answers the JSON form.
    let other = "How do I sort a dictionary by value in Python?";
    let r = post(&gw, &unstored(other, true)).await;
    assert_eq!(cache_of(&r).0, "miss");
    let relayed = named_events(&r.text().await.unwrap());
    assert_eq!(relayed.last().unwrap().0, "response.completed");
    let r = post(&gw, &unstored(other, false)).await;
    assert_eq!(cache_of(&r).0, "hit");
    assert_eq!(mock.requests().len(), 2);

    let stats = gw.get_json("/admin/cache/stats").await;
    assert_eq!(stats["exact_hits"], 2);
    assert_eq!(stats["semantic_hits"], 1);
}

#[tokio::test]
async fn responses_kept_upstream_or_continuing_one_are_never_cached() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let question = "How do I reverse a list in Python?";
    let mut stored = unstored(question, false);
    stored.as_object_mut().unwrap().remove("store");
    let mut follow_up = unstored(question, false);
    follow_up["previous_response_id"] = json!("resp_earlier");
    let mut searching = unstored(question, false);
    searching["tools"] = json!([{"type": "web_search"}]);
    for body in [&stored, &stored, &searching, &searching] {
        let r = post(&gw, body).await;
        assert_eq!(r.status(), 200);
        assert_eq!(cache_of(&r).0, "bypass", "{body}");
    }
    assert_eq!(mock.requests().len(), 4);
    // Never served from the cache either, even when its question is there.
    post(&gw, &unstored(question, false)).await;
    let r = post(&gw, &follow_up).await;
    assert_eq!(cache_of(&r).0, "bypass");
    assert_eq!(mock.requests().len(), 6);
    // Directives apply as for chat.
    let r = client()
        .post(gw.url("/v1/responses"))
        .header("cache-control", "no-cache")
        .json(&unstored(question, false))
        .send()
        .await
        .unwrap();
    assert_eq!(cache_of(&r).0, "miss");
    assert_eq!(mock.requests().len(), 7);
}

#[tokio::test]
async fn identical_concurrent_responses_share_one_upstream_call() {
    let mock = MockUpstream::start().await;
    mock.delay_first_byte(std::time::Duration::from_millis(300));
    let gw = Gateway::start(&mock).await;
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let url = gw.url("/v1/responses");
            // Half of them streamed: a streamed leader's answer is stored from its last event.
            let body = unstored("Share this answer", i % 2 == 0);
            tokio::spawn(async move {
                let r = client().post(url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let cache = cache_of(&r).0;
                let text = r.text().await.unwrap();
                let response = if i % 2 == 0 {
                    named_events(&text).pop().unwrap().1["response"].take()
                } else {
                    serde_json::from_str(&text).unwrap()
                };
                let answer = &response["output"][0]["content"][0]["text"];
                (cache, answer == REPLY)
            })
        })
        .collect();
    let mut caches = Vec::new();
    for call in calls {
        let (cache, answered) = call.await.unwrap();
        assert!(answered);
        caches.push(cache);
    }
    let misses = caches.iter().filter(|c| *c == "miss").count();
    assert_eq!(misses, 1, "{caches:?}");
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn responses_from_providers_that_keep_nothing_are_cached_whatever_store_says() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_env(
        "",
        &[
            ("ANTHROPIC_API_KEY", UPSTREAM_KEY),
            ("ANTHROPIC_BASE_URL", &mock.anthropic_base_url()),
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", &mock.base_url()),
        ],
    )
    .await;
    // Claude answers through a chat completion and keeps nothing: `store` left at its default.
    let claude = json!({"model": "claude-sonnet-4-5", "input": "How do I reverse a list?"});
    let r = post(&gw, &claude).await;
    assert_eq!(cache_of(&r).0, "miss");
    let r = post(&gw, &claude).await;
    assert_eq!(cache_of(&r), ("hit".into(), "exact".into()));
    assert_eq!(r.headers()["x-reprise-provider"], "anthropic");
    assert_eq!(mock.requests().len(), 1);
    // OpenAI keeps responses unless told not to: the same request there is not cached.
    let openai = json!({"model": "gpt-4.1-mini", "input": "How do I reverse a list?"});
    for _ in 0..2 {
        assert_eq!(cache_of(&post(&gw, &openai).await).0, "bypass");
    }
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn tenants_never_share_responses() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config("[cache]\nnamespace_header = true\n", &mock).await;
    let body = unstored("How do I reverse a list in Python?", false);
    let send = |team: &'static str| {
        client()
            .post(gw.url("/v1/responses"))
            .header("x-reprise-namespace", team)
            .json(&body)
            .send()
    };
    assert_eq!(cache_of(&send("team-a").await.unwrap()).0, "miss");
    assert_eq!(cache_of(&send("team-b").await.unwrap()).0, "miss");
    assert_eq!(cache_of(&send("team-a").await.unwrap()).0, "hit");
    assert_eq!(mock.requests().len(), 2);
}
