//! Anthropic and Gemini behind the OpenAI API: requests translated to each wire format, answers
//! and streams translated back, errors mapped, unsupported fields refused.

use reprise_test_support::MockUpstream;
use serde_json::{Value, json};

use crate::support::{Gateway, UPSTREAM_KEY, chat_body, error_of, parse_sse, stream_body};

const REPLY: &str = "Hello from the mock upstream.";

async fn anthropic_gateway(mock: &MockUpstream, toml: &str) -> Gateway {
    Gateway::with_env(
        toml,
        &[
            ("ANTHROPIC_API_KEY", UPSTREAM_KEY),
            ("ANTHROPIC_BASE_URL", &mock.anthropic_base_url()),
        ],
    )
    .await
}

async fn gemini_gateway(mock: &MockUpstream, toml: &str) -> Gateway {
    Gateway::with_env(
        toml,
        &[
            ("GEMINI_API_KEY", UPSTREAM_KEY),
            ("GEMINI_BASE_URL", &mock.gemini_base_url()),
        ],
    )
    .await
}

fn with_model(mut body: Value, model: &str) -> Value {
    body["model"] = json!(model);
    body
}

/// The concatenated `content` deltas and the parsed chunks of an SSE body.
async fn read_stream(response: reqwest::Response) -> (String, Vec<String>) {
    assert_eq!(response.status(), 200);
    let events = parse_sse(&response.text().await.unwrap());
    let mut text = String::new();
    for e in &events {
        if let Ok(chunk) = serde_json::from_str::<Value>(e)
            && let Some(t) = chunk["choices"][0]["delta"]["content"].as_str()
        {
            text.push_str(t);
        }
    }
    (text, events)
}

#[tokio::test]
async fn claude_models_go_to_anthropic_in_its_wire_format() {
    let mock = MockUpstream::start().await;
    let gw = anthropic_gateway(&mock, "").await;
    let mut body = with_model(chat_body("Hi there"), "claude-sonnet-4-5");
    body["messages"] = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
    ]);
    body["stop"] = json!("END");
    let r = gw.chat(&body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "anthropic");
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["choices"][0]["message"]["content"], REPLY);
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["usage"]["prompt_tokens"], 5);
    assert_eq!(c["usage"]["completion_tokens"], 5);

    let sent = &mock.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.headers["x-api-key"], UPSTREAM_KEY);
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert!(sent.headers.get("authorization").is_none());
    assert_eq!(
        sent.body,
        json!({
            "model": "claude-sonnet-4-5",
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}],
            "max_tokens": 4096,
            "stop_sequences": ["END"],
        })
    );
}

/// A conversation the assistant opens (a help desk's greeting), for `model`.
fn greeted(model: &str) -> Value {
    let mut body = with_model(chat_body("What can you do?"), model);
    body["messages"] = json!([
        {"role": "system", "content": "You are the help desk."},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "What can you do?"},
    ]);
    body
}

#[tokio::test]
async fn a_conversation_the_assistant_opens_reaches_anthropic_with_a_user_turn_first() {
    let mock = MockUpstream::start().await;
    let gw = anthropic_gateway(&mock, "").await;
    let r = gw.chat(&greeted("claude-sonnet-4-5")).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sent = &mock.requests()[0].body;
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "."}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello! How can I help?"}]},
            {"role": "user", "content": [{"type": "text", "text": "What can you do?"}]},
        ])
    );
    assert_eq!(sent["system"][0]["text"], "You are the help desk.");
}

#[tokio::test]
async fn blank_texts_and_a_prefill_ending_in_whitespace_reach_anthropic_as_it_takes_them() {
    let mock = MockUpstream::start().await;
    let gw = anthropic_gateway(&mock, "").await;
    let mut body = with_model(chat_body("Hello. Say world"), "claude-sonnet-4-5");
    body["messages"] = json!([
        {"role": "system", "content": " "},
        {"role": "user", "content": "Hello. Say world"},
        {"role": "user", "content": [{"type": "text", "text": "\n"}]},
        {"role": "assistant", "content": "Say: "},
    ]);
    let r = gw.chat(&body).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sent = &mock.requests()[0].body;
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Hello. Say world"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Say:"}]},
        ])
    );
    assert!(sent.get("system").is_none(), "{sent}");
}

#[tokio::test]
async fn anthropic_streams_become_openai_chunks() {
    let mock = MockUpstream::start().await;
    let gw = anthropic_gateway(&mock, "").await;
    let body = with_model(stream_body("Hi", true), "claude-haiku-4-5");
    let (text, events) = read_stream(gw.chat(&body).await).await;
    assert_eq!(text, REPLY);
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
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let finish: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 5, "{usage}");
    assert_eq!(mock.requests()[0].body["stream"], true);
}

#[tokio::test]
async fn anthropic_tool_calls_round_trip() {
    let mock = MockUpstream::start().await;
    let gw = anthropic_gateway(&mock, "").await;
    mock.respond_json(json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 50, "output_tokens": 30, "cache_read_input_tokens": 20},
    }));
    let mut body = with_model(chat_body("Weather in Paris and Rome?"), "claude-sonnet-4-5");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Current weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    body["tool_choice"] = json!("required");
    let c: Value = gw.chat(&body).await.json().await.unwrap();
    let message = &c["choices"][0]["message"];
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(message["content"], "Checking both.");
    assert_eq!(message["tool_calls"][1]["id"], "toolu_2");
    assert_eq!(message["tool_calls"][1]["function"]["name"], "get_weather");
    assert_eq!(
        message["tool_calls"][1]["function"]["arguments"],
        r#"{"city":"Rome"}"#
    );
    assert_eq!(
        c["usage"]["prompt_tokens"], 70,
        "cache reads are prompt tokens"
    );
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 20);
    let sent = &mock.requests()[0].body;
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );

    // The conversation continues with the tool results.
    let mut body = with_model(chat_body("unused"), "claude-sonnet-4-5");
    body["messages"] = json!([
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": null, "tool_calls": message["tool_calls"]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "24C"},
    ]);
    assert_eq!(gw.chat(&body).await.status(), 200);
    let sent = &mock.requests()[1].body;
    assert_eq!(
        sent["messages"][1]["content"][0],
        json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}})
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "24C"},
        ]}),
        "consecutive tool results merge into one user turn"
    );
}

#[tokio::test]
async fn what_a_provider_cannot_do_is_a_400_naming_the_field() {
    let mock = MockUpstream::start().await;
    let gw = anthropic_gateway(&mock, "").await;
    for (field, value) in [
        ("temperature", json!(1.5)),
        ("logit_bias", json!({"50256": -100})),
        ("n", json!(2)),
    ] {
        let mut body = with_model(chat_body("Hi"), "claude-sonnet-4-5");
        body[field] = value;
        let r = gw.chat(&body).await;
        assert_eq!(r.status(), 400, "{field}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "unsupported_parameter");
        assert_eq!(e["error"]["param"], field);
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Anthropic")
        );
    }
    assert!(mock.requests().is_empty(), "nothing was sent upstream");
}

#[tokio::test]
async fn anthropic_errors_are_openai_shaped() {
    let mock = MockUpstream::start().await;
    let gw = anthropic_gateway(&mock, "[routing]\nmax_attempts = 1\n").await;
    mock.fail_times(1, 401);
    let r = gw
        .chat(&with_model(chat_body("Hi"), "claude-sonnet-4-5"))
        .await;
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "authentication_error");
    assert_eq!(e["error"]["code"], "authentication_error");
    assert_eq!(e["error"]["message"], "mock failure 401");
}

#[tokio::test]
async fn gemini_models_go_to_gemini_in_its_wire_format() {
    let mock = MockUpstream::start().await;
    let gw = gemini_gateway(&mock, "").await;
    let mut body = with_model(chat_body("Hi"), "gemini-2.5-flash");
    body["messages"] = json!([
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]},
    ]);
    body["max_completion_tokens"] = json!(100);
    body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "x",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}});
    let r = gw.chat(&body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "gemini");
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["choices"][0]["message"]["content"], REPLY);
    assert_eq!(c["model"], "gemini-2.5-flash");
    let sent = &mock.requests()[0];
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent.headers["x-goog-api-key"], UPSTREAM_KEY);
    assert_eq!(
        sent.body,
        json!({
            "contents": [{"role": "user", "parts": [
                {"text": "What is this?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            ]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "generationConfig": {
                "maxOutputTokens": 100,
                "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
        })
    );
}

#[tokio::test]
async fn a_conversation_the_model_opens_reaches_gemini_with_a_user_turn_first() {
    let mock = MockUpstream::start().await;
    let gw = gemini_gateway(&mock, "").await;
    let r = gw.chat(&greeted("gemini-2.5-flash")).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sent = &mock.requests()[0].body;
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [{"text": "."}]},
            {"role": "model", "parts": [{"text": "Hello! How can I help?"}]},
            {"role": "user", "parts": [{"text": "What can you do?"}]},
        ])
    );
    assert_eq!(
        sent["systemInstruction"]["parts"][0]["text"],
        "You are the help desk."
    );
}

#[tokio::test]
async fn a_conversation_ending_with_the_assistant_skips_gemini_in_an_alias() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_env(
        "[aliases.\"smart\"]\ntargets = [{ target = \"gemini\", model = \"gemini-2.5-flash\" }, { target = \"openai\", model = \"gpt-4o-mini\" }]\n",
        &[
            ("GEMINI_API_KEY", UPSTREAM_KEY),
            ("GEMINI_BASE_URL", &mock.gemini_base_url()),
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", &mock.base_url()),
        ],
    )
    .await;
    let mut body = with_model(chat_body("Write a haiku."), "smart");
    body["messages"] = json!([
        {"role": "user", "content": "Write a haiku."},
        {"role": "assistant", "content": "Autumn moonlight"},
    ]);
    // OpenAI answers it; Gemini would refuse it, so it is not sent there.
    let r = gw.chat(&body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "openai");
    let sent: Vec<String> = mock.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(sent, ["/v1/chat/completions"]);
    // Asked of Gemini alone: a 400 naming the message.
    body["model"] = json!("gemini-2.5-flash");
    let r = gw.chat(&body).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "unsupported_parameter");
    assert_eq!(e["error"]["param"], "messages[1].role");
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn gemini_streams_become_openai_chunks() {
    let mock = MockUpstream::start().await;
    let gw = gemini_gateway(&mock, "").await;
    let body = with_model(stream_body("Hi", true), "gemini-2.5-pro");
    let (text, events) = read_stream(gw.chat(&body).await).await;
    assert_eq!(text, REPLY);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    assert_eq!(
        mock.requests()[0].path,
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    );
}

#[tokio::test]
async fn a_gemini_stream_cut_before_its_finish_is_not_a_clean_end() {
    let mock = MockUpstream::start().await;
    let gw = gemini_gateway(&mock, "[routing]\nmax_attempts = 1\n").await;
    // Two of five events, then the connection closes: no finishReason was seen.
    mock.truncate_after_chunks(2);
    let body = with_model(stream_body("Hi", false), "gemini-2.5-pro");
    let (_, events) = read_stream(gw.chat(&body).await).await;
    assert_ne!(events.last().unwrap(), "[DONE]");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_truncated");
}

#[tokio::test]
async fn gemini_tool_calls_and_results_name_their_function() {
    let mock = MockUpstream::start().await;
    let gw = gemini_gateway(&mock, "").await;
    mock.respond_events(vec![
        (None, json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {"tz": "CET"}}}]},
            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13},
            "modelVersion": "gemini-2.5-flash"}).to_string()),
    ]);
    let mut body = with_model(stream_body("Weather and time?", false), "gemini-2.5-flash");
    body["tools"] = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
    ]);
    let (_, events) = read_stream(gw.chat(&body).await).await;
    let chunks: Vec<Value> = events
        .iter()
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["index"], 1);
    assert_eq!(calls[1]["function"]["name"], "get_time");
    assert_eq!(calls[1]["function"]["arguments"], r#"{"tz":"CET"}"#);
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str())
        .unwrap();
    assert_eq!(finish, "tool_calls");
    let sent = &mock.requests()[0].body;
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][1]["name"],
        "get_time"
    );

    let id = calls[0]["id"].as_str().unwrap();
    let mut body = with_model(chat_body("unused"), "gemini-2.5-flash");
    body["messages"] = json!([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": id, "content": "{\"temp\": 18}"},
    ]);
    assert_eq!(gw.chat(&body).await.status(), 200);
    let sent = &mock.requests()[1].body;
    assert_eq!(
        sent["contents"][2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 18}}}]})
    );
}

#[tokio::test]
async fn a_provider_prefix_routes_and_renames_the_model() {
    let anthropic = MockUpstream::start().await;
    let openai = MockUpstream::start().await;
    let gw = Gateway::with_env(
        "",
        &[
            ("ANTHROPIC_API_KEY", UPSTREAM_KEY),
            ("ANTHROPIC_BASE_URL", &anthropic.anthropic_base_url()),
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", &openai.base_url()),
        ],
    )
    .await;
    let r = gw
        .chat(&with_model(chat_body("Hi"), "anthropic/claude-opus-4-1"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(anthropic.requests()[0].body["model"], "claude-opus-4-1");
    // A bare claude name goes to Anthropic even though the OpenAI target takes any model.
    assert_eq!(
        gw.chat(&with_model(chat_body("Hi"), "claude-3-5-haiku"))
            .await
            .headers()["x-reprise-provider"],
        "anthropic"
    );
    let r = gw.chat(&with_model(chat_body("Hi"), "openai/gpt-4o")).await;
    assert_eq!(r.headers()["x-reprise-provider"], "openai");
    assert_eq!(openai.requests()[0].body["model"], "gpt-4o");
    // A slash that names no target or provider is part of the model name.
    let r = gw
        .chat(&with_model(chat_body("Hi"), "meta-llama/llama-3-70b"))
        .await;
    assert_eq!(r.headers()["x-reprise-provider"], "openai");
    assert_eq!(openai.requests()[1].body["model"], "meta-llama/llama-3-70b");
    assert_eq!(anthropic.requests().len(), 2);
}

#[tokio::test]
async fn azure_targets_call_the_deployment_with_an_api_key_header() {
    let mock = MockUpstream::start().await;
    let resource = format!("http://{}", mock.addr());
    let gw = Gateway::with_env(
        "[aliases.\"gpt-4o-mini\"]\ntargets = [{ target = \"azure\", model = \"v1\" }]\n",
        &[
            ("AZURE_OPENAI_API_KEY", UPSTREAM_KEY),
            ("AZURE_OPENAI_ENDPOINT", &resource),
        ],
    )
    .await;
    let r = gw.chat(&chat_body("Hi")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "azure");
    let sent = &mock.requests()[0];
    assert_eq!(
        sent.path,
        "/openai/deployments/v1/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(sent.headers["api-key"], UPSTREAM_KEY);
    assert!(sent.headers.get("authorization").is_none());
}

#[tokio::test]
async fn gemini_embeds_through_batch_embed_contents() {
    let mock = MockUpstream::start().await;
    let gw = gemini_gateway(&mock, "").await;
    let body = json!({"model": "gemini-embedding-001", "input": ["a cat", "a dog"],
        "dimensions": 8, "user": "u-1"});
    let r = gw.post("/v1/embeddings", &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "gemini");
    assert_eq!(r.headers()["x-reprise-cache"], "miss");
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["model"], "gemini-embedding-001");
    for (i, text) in ["a cat", "a dog"].iter().enumerate() {
        let mut expected = reprise_test_support::bag_of_words(text);
        expected.truncate(8);
        assert_eq!(list["data"][i]["index"], i);
        assert_eq!(list["data"][i]["embedding"], json!(expected));
    }
    // Gemini reports no tokens: estimated at four bytes of text a token.
    assert_eq!(
        list["usage"],
        json!({"prompt_tokens": 4, "total_tokens": 4})
    );
    let sent = &mock.requests()[0];
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(sent.headers["x-goog-api-key"], UPSTREAM_KEY);
    assert_eq!(
        sent.body["requests"][1],
        json!({"model": "models/gemini-embedding-001",
            "content": {"parts": [{"text": "a dog"}]}, "outputDimensionality": 8})
    );

    // Cached input by input, as from any target.
    let r = gw.post("/v1/embeddings", &body).await;
    assert_eq!(r.headers()["x-reprise-cache"], "hit");
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["data"], list["data"]);
    assert_eq!(mock.requests().len(), 1);

    // Gemini's own option, as an extra field: sent with each text, and another cache entry.
    let mut retrieval = body.clone();
    retrieval["task_type"] = json!("RETRIEVAL_DOCUMENT");
    let r = gw.post("/v1/embeddings", &retrieval).await;
    assert_eq!(r.headers()["x-reprise-cache"], "miss");
    let sent = &mock.requests()[1];
    assert_eq!(sent.body["requests"][0]["taskType"], "RETRIEVAL_DOCUMENT");

    // Token ids are no text: refused naming the field, nothing sent.
    let r = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "gemini-embedding-001", "input": [[1, 2, 3]]}),
        )
        .await;
    let error = error_of(r, 400).await;
    assert_eq!(error["param"], "input");
    assert_eq!(mock.requests().len(), 2);
}
