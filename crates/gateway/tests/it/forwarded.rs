//! The OpenAI API's other routes (moderations, images, audio), forwarded as they came to an
//! OpenAI-compatible target: which target, the key's limits, errors, and an answer relayed as
//! it comes. (The Python SDK's own calls on these routes are in `sdk`.)

use reprise_test_support::{MockUpstream, speech_bytes};
use serde_json::{Value, json};

use crate::keys::{create_key, gateway_with_keys};
use crate::support::{Gateway, UPSTREAM_KEY, client, error_of};

fn speech(input: &str, model: &str) -> Value {
    json!({"model": model, "voice": "alloy", "input": input})
}

/// A multipart transcription upload, as the SDKs send it.
fn transcription(model: &str, audio: &[u8]) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("model", model.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(audio.to_vec()).file_name("clip.wav"),
        )
}

#[tokio::test]
async fn answers_are_relayed_as_they_came_with_the_targets_own_key() {
    let mock = MockUpstream::builder().record(true).start().await;
    let gw = Gateway::start(&mock).await;

    let r = client()
        .post(gw.url("/v1/audio/speech"))
        .header("x-request-id", "speech-1")
        .json(&speech("Hello there", "gpt-4o-mini-tts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "audio/mpeg");
    assert_eq!(h["x-reprise-provider"], "openai");
    assert_eq!(h["x-reprise-cache"], "bypass");
    assert_eq!(h["x-request-id"], "speech-1");
    assert_eq!(r.bytes().await.unwrap(), speech_bytes("Hello there"));

    // A multipart upload arrives byte for byte (every byte value), without the `/v1` prefix too.
    let audio: Vec<u8> = (0..=255).cycle().take(70_000).collect();
    let r = client()
        .post(gw.url("/audio/transcriptions"))
        .multipart(transcription("whisper-1", &audio))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text: Value = r.json().await.unwrap();
    assert_eq!(
        text["text"].as_str().unwrap(),
        String::from_utf8_lossy(&audio)
    );

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/v1/audio/speech");
    assert_eq!(requests[1].path, "/v1/audio/transcriptions");
    assert_eq!(requests[1].body["model"], "whisper-1");
    assert_eq!(requests[1].body["file_bytes"], 70_000);
    for request in &requests {
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {UPSTREAM_KEY}")
        );
    }
}

#[tokio::test]
async fn in_pass_through_mode_the_callers_own_key_goes_upstream() {
    let mock = MockUpstream::builder().record(true).start().await;
    let gw = Gateway::with_config(r#"auth = "passthrough""#, &mock).await;
    let r = client()
        .post(gw.url("/v1/moderations"))
        .bearer_auth("sk-caller-own-key")
        .json(&json!({"input": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .post(gw.url("/v1/moderations"))
        .json(&json!({"input": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r, 401).await["code"], "missing_api_key");
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].headers["authorization"],
        "Bearer sk-caller-own-key"
    );
}

#[tokio::test]
async fn every_forwarded_route_reaches_the_same_path_upstream() {
    let mock = MockUpstream::builder().record(true).start().await;
    let gw = Gateway::start(&mock).await;
    let routes = [
        ("moderations", false),
        ("images/generations", false),
        ("images/edits", true),
        ("images/variations", true),
        ("audio/speech", false),
        ("audio/transcriptions", true),
        ("audio/translations", true),
    ];
    for prefix in ["/v1", ""] {
        for (path, multipart) in routes {
            let request = client().post(gw.url(&format!("{prefix}/{path}")));
            let request = if multipart {
                request.multipart(transcription("some-model", b"an upload"))
            } else {
                request.json(&json!({"model": "some-model", "input": "x", "prompt": "y"}))
            };
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200, "{prefix}/{path}");
            assert_eq!(r.headers()["x-reprise-provider"], "openai");
        }
    }
    let upstream: Vec<String> = mock.requests().into_iter().map(|r| r.path).collect();
    let expected: Vec<String> = routes.iter().map(|(p, _)| format!("/v1/{p}")).collect();
    assert_eq!(upstream, [expected.clone(), expected].concat());
}

#[tokio::test]
async fn upstream_errors_and_cut_answers_reach_the_client_as_such() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let moderation = json!({"input": "Hello"});

    // The provider's own error, status and body as it sent them.
    mock.fail_times(1, 429);
    let r = client()
        .post(gw.url("/v1/moderations"))
        .json(&moderation)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-reprise-provider"], "openai");
    let error = error_of(r, 429).await;
    assert_eq!(
        (&error["code"], &error["message"]),
        (&json!("mock_failure"), &json!("mock failure 429"))
    );

    // Audio cut after its first frame: the client's read fails, never a short clean answer.
    mock.reset_after_chunks(1);
    let r = client()
        .post(gw.url("/v1/audio/speech"))
        .json(&speech("A longer sentence to speak", "tts-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "a cut answer ended cleanly");

    // Unreachable upstream: a 502 in the OpenAI shape.
    drop(mock);
    let r = client()
        .post(gw.url("/v1/moderations"))
        .json(&moderation)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r, 502).await["code"], "upstream_unreachable");
}

#[tokio::test]
async fn the_request_is_checked_like_any_other() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config("max_body_bytes = 4096", &mock).await;

    let r = client()
        .post(gw.url("/v1/audio/transcriptions"))
        .multipart(transcription("whisper-1", &[0; 5000]))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r, 413).await["code"], "request_too_large");

    let r = client()
        .get(gw.url("/v1/images/generations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "POST");
    assert_eq!(error_of(r, 405).await["code"], "method_not_allowed");

    let r = client()
        .post(gw.url("/v1/images/upscale"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r, 404).await["code"], "unknown_url");
}

#[tokio::test]
async fn a_key_held_to_some_models_may_forward_only_those() {
    let mock = MockUpstream::start().await;
    let (dir, key, _) = create_key(
        tempfile::tempdir().unwrap(),
        &["--label", "voice", "--models", "whisper-*,tts-1"],
    )
    .await;
    let gw = gateway_with_keys(&mock, dir, "").await;
    let post = |path: &str| client().post(gw.url(path)).bearer_auth(&key);

    let r = post("/v1/audio/transcriptions")
        .multipart(transcription("whisper-1", b"spoken words"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post("/v1/audio/speech")
        .json(&speech("Hi", "tts-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Another model, in JSON or in a form; and a request that names none (the provider's
    // default, which the key does not name either).
    let r = post("/v1/audio/transcriptions")
        .multipart(transcription("gpt-4o-transcribe", b"spoken words"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r, 403).await["code"], "model_not_allowed");
    let r = post("/v1/images/generations")
        .json(&json!({"model": "gpt-image-1", "prompt": "a cat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r, 403).await["code"], "model_not_allowed");
    let r = post("/v1/moderations")
        .json(&json!({"input": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r, 403).await["code"], "model_not_allowed");

    // And no key at all.
    let r = client()
        .post(gw.url("/v1/moderations"))
        .json(&json!({"input": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r, 401).await["code"], "missing_api_key");
}

#[tokio::test]
async fn the_first_openai_compatible_target_serves_unless_another_serves_the_model() {
    let first = MockUpstream::builder().record(true).start().await;
    let second = MockUpstream::builder().record(true).start().await;
    let toml = format!(
        r#"
        [[targets]]
        name = "claude"
        provider = "anthropic"
        base_url = "{anthropic}"
        api_key_env = "VOICE_TEST_KEY"

        [[targets]]
        name = "main"
        provider = "openai"
        base_url = "{first}"
        api_key_env = "VOICE_TEST_KEY"
        models = ["gpt-*"]

        [[targets]]
        name = "voice"
        provider = "openai"
        base_url = "{second}"
        api_key_env = "VOICE_TEST_KEY"
        models = ["whisper-*"]
        "#,
        anthropic = first.anthropic_base_url(),
        first = first.base_url(),
        second = second.base_url(),
    );
    let gw = Gateway::with_env(&toml, &[("VOICE_TEST_KEY", UPSTREAM_KEY)]).await;

    // A model only the second serves goes there; one nobody names, to the first OpenAI target.
    let r = client()
        .post(gw.url("/v1/audio/transcriptions"))
        .multipart(transcription("whisper-1", b"words"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-reprise-provider"], "voice");
    let r = client()
        .post(gw.url("/v1/moderations"))
        .json(&json!({"model": "omni-moderation-latest", "input": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-reprise-provider"], "main");
    let paths = |mock: &MockUpstream| -> Vec<String> {
        mock.requests().into_iter().map(|r| r.path).collect()
    };
    assert_eq!(paths(&first), ["/v1/moderations"]);
    assert_eq!(paths(&second), ["/v1/audio/transcriptions"]);

    // With no OpenAI-compatible target at all, the client is told why.
    let only_claude = format!(
        r#"
        [[targets]]
        name = "claude"
        provider = "anthropic"
        base_url = "{}"
        api_key_env = "VOICE_TEST_KEY"
        "#,
        first.anthropic_base_url()
    );
    let gw = Gateway::with_env(&only_claude, &[("VOICE_TEST_KEY", UPSTREAM_KEY)]).await;
    let r = client()
        .post(gw.url("/v1/moderations"))
        .json(&json!({"input": "Hello"}))
        .send()
        .await
        .unwrap();
    let error = error_of(r, 400).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("OpenAI-compatible targets only"),
        "{error}"
    );
}

#[tokio::test]
async fn an_azure_target_serves_the_routes_of_the_deployment_a_request_names() {
    let mock = MockUpstream::builder().record(true).start().await;
    let resource = format!("http://{}", mock.addr());
    let gw = Gateway::with_env(
        "",
        &[
            ("AZURE_OPENAI_API_KEY", UPSTREAM_KEY),
            ("AZURE_OPENAI_ENDPOINT", &resource),
        ],
    )
    .await;
    let r = client()
        .post(gw.url("/v1/audio/speech"))
        .json(&speech("Hello there", "my-tts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "azure");
    assert_eq!(r.bytes().await.unwrap(), speech_bytes("Hello there"));
    let r = client()
        .post(gw.url("/v1/audio/transcriptions"))
        .multipart(transcription("my-whisper", b"spoken"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent = mock.requests();
    let paths: Vec<&str> = sent.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/openai/deployments/my-tts/audio/speech",
            "/openai/deployments/my-whisper/audio/transcriptions"
        ]
    );
    for request in &sent {
        assert_eq!(request.headers["api-key"], UPSTREAM_KEY);
        assert!(request.headers.get("authorization").is_none());
    }

    // No deployment named, or a route deployments do not have: told why, nothing sent.
    for (path, body) in [
        ("/v1/audio/speech", json!({"voice": "alloy", "input": "Hi"})),
        ("/v1/moderations", json!({"model": "my-tts", "input": "Hi"})),
    ] {
        let r = client()
            .post(gw.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = error_of(r, 400).await;
        assert!(
            error["message"].as_str().unwrap().contains("Azure"),
            "{path}: {error}"
        );
    }
    assert_eq!(mock.requests().len(), 2);
}
