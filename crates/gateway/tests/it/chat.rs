//! The proxy path for JSON chat completions, embeddings, models and the health routes.

use reprise_test_support::MockUpstream;
use serde_json::{Value, json};

use crate::support::{Gateway, UPSTREAM_KEY, chat_body, client};

#[tokio::test]
async fn completion_is_relayed_with_gateway_headers() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let response = gw.chat(&chat_body("hello")).await;
    assert_eq!(response.status(), 200);
    let h = response.headers().clone();
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-reprise-provider"], "openai");
    assert_eq!(h["x-reprise-cache"], "miss");
    let id = h["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    // Response fields the gateway does not know pass through.
    assert_eq!(body["system_fingerprint"], "fp_mock");
    assert!(body["choices"][0]["message"].get("refusal").is_some());
    assert_eq!(body["usage"]["total_tokens"], 10);
}

#[tokio::test]
async fn a_client_request_id_is_kept() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let response = client()
        .post(gw.url("/v1/chat/completions"))
        .header("x-request-id", "client-chosen-42")
        .json(&chat_body("hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chosen-42");
    // Also on errors.
    let response = client()
        .get(gw.url("/v1/nothing-here"))
        .header("x-request-id", "client-chosen-43")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], "client-chosen-43");
}

#[tokio::test]
async fn the_request_is_forwarded_untouched_with_the_configured_key() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "ada"}
        ],
        "temperature": 0.3,
        "logit_bias": {"50256": -100},
        "seed": 7,
        "x_vendor_extension": {"nested": [1, 2, {"deep": true}]}
    });
    let response = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("rp-client-credential")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(
        seen[0].body, body,
        "unknown fields must reach the upstream untouched"
    );
    // The upstream sees the configured provider key, never the client's credential.
    assert_eq!(
        seen[0].headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}").as_str()
    );
}

#[tokio::test]
async fn every_route_also_answers_without_the_v1_prefix() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let c = client();
    let r = c
        .post(gw.url("/chat/completions"))
        .json(&chat_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(gw.url("/embeddings"))
        .json(&json!({"model": "text-embedding-3-small", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(gw.url("/models")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn embeddings_are_forwarded() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let body = json!({"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 3});
    let response = client()
        .post(gw.url("/v1/embeddings"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-reprise-provider"], "openai");
    let out: Value = response.json().await.unwrap();
    assert_eq!(out["object"], "list");
    assert_eq!(out["data"].as_array().unwrap().len(), 2);
    let seen = mock.requests();
    assert_eq!(seen[0].path, "/v1/embeddings");
    assert_eq!(seen[0].body, body);
}

#[tokio::test]
async fn embeddings_require_model_and_input() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    for (body, param) in [
        (json!({"input": "x"}), "model"),
        (json!({"model": "m"}), "input"),
    ] {
        let r = client()
            .post(gw.url("/v1/embeddings"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["param"], param);
    }
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn models_come_from_the_upstream_or_the_configuration() {
    let mock = MockUpstream::start().await;
    let other = MockUpstream::start().await;
    let toml = format!(
        r#"
[[targets]]
name = "local"
base_url = "{}"
models = ["llama-3.1-8b", "qwen-*"]
"#,
        other.base_url()
    );
    let gw = Gateway::with_config(&toml, &mock).await;
    let list: Value = gw.get_json("/v1/models").await;
    assert_eq!(list["object"], "list");
    let ids: Vec<(&str, &str)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            assert!(m["created"].is_u64());
            (m["id"].as_str().unwrap(), m["owned_by"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            ("llama-3.1-8b", "local"),
            ("mock-gpt", "openai"),
            ("mock-gpt-mini", "openai")
        ]
    );
    // Only the pattern-free target was asked: the configured one lists its exact names.
    assert!(other.requests().is_empty());

    // One model (the SDKs' `models.retrieve`), with or without the /v1 prefix: as listed; a
    // name only a configured pattern routes, owned by its target; a name with a slash in it.
    for (path, owner) in [
        ("/v1/models/mock-gpt-mini", "openai"),
        ("/models/llama-3.1-8b", "local"),
        ("/v1/models/qwen-2.5-7b", "local"),
    ] {
        let model: Value = gw.get_json(path).await;
        let id = path.rsplit('/').next().unwrap();
        assert_eq!(model["id"], id, "{path}");
        assert_eq!(model["object"], "model");
        assert_eq!(model["owned_by"], owner, "{path}");
        assert!(model["created"].is_u64());
    }
    // Neither listed nor routed by a pattern (the pattern-free target's upstream list is
    // its word), or a path under a name: 404, OpenAI-shaped.
    for path in ["/v1/models/gpt-99", "/v1/models/org/mock-gpt"] {
        let r = client().get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "model_not_found", "{path}");
        assert_eq!(e["error"]["param"], "model");
    }
    let r = client()
        .delete(gw.url("/v1/models/mock-gpt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn requests_route_by_model_pattern() {
    let mock = MockUpstream::start().await;
    let local = MockUpstream::start().await;
    let toml = format!(
        r#"
[[targets]]
name = "local"
base_url = "{}"
models = ["llama-*"]

[[targets]]
name = "openai"
models = ["gpt-*"]
"#,
        local.base_url()
    );
    let gw = Gateway::with_config(&toml, &mock).await;
    let send = |model: &'static str| {
        let url = gw.url("/v1/chat/completions");
        async move {
            client()
                .post(url)
                .json(&json!({"model": model, "messages": [{"role": "user", "content": "x"}]}))
                .send()
                .await
                .unwrap()
        }
    };
    let r = send("llama-3.1-8b").await;
    assert_eq!(r.headers()["x-reprise-provider"], "local");
    let r = send("gpt-4o").await;
    assert_eq!(r.headers()["x-reprise-provider"], "openai");
    let r = send("claude-3-haiku").await;
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "model_not_found");
    assert_eq!(e["error"]["param"], "model");
    assert_eq!(local.requests().len(), 1);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn health_and_readiness() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let r = client().get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
    let r = client().get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let c = client();
    for i in 0..5 {
        let r = c
            .post(gw.url("/v1/chat/completions"))
            .json(&chat_body(&format!("question {i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    assert_eq!(mock.requests().len(), 5);
    assert_eq!(
        mock.connections(),
        1,
        "five sequential calls should share one pooled connection"
    );
}

#[tokio::test]
async fn a_plain_http_upstream_can_be_spoken_to_over_http2() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config(
        "[[targets]]\nname = \"openai\"\napi_key_env = \"OPENAI_API_KEY\"\nhttp2_prior_knowledge = true\n",
        &mock,
    )
    .await;
    let c = client();
    for i in 0..3 {
        let r = c
            .post(gw.url("/v1/chat/completions"))
            .json(&chat_body(&format!("over h2c {i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let seen = mock.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        mock.connections(),
        1,
        "HTTP/2 multiplexes on one connection"
    );
}
