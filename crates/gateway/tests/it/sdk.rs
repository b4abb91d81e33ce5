//! The official `openai` SDKs (Python and Node) against the gateway, unchanged but for their
//! base URL.
//!
//! Needs a Python with the `openai` package: `REPRISE_E2E_PYTHON`, or `.venv/bin/python` at the
//! workspace root; and Node.js (`REPRISE_E2E_NODE`, or `node`) with the `openai` package in
//! `tests/e2e/node_modules`. `scripts/test` sets up both. Missing, the tests fail and say so.

use std::path::PathBuf;
use std::process::Stdio;

use reprise_test_support::MockUpstream;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::support::{Gateway, PATIENCE};

pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("REPRISE_E2E_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with the openai SDK: run `scripts/test` (it creates .venv) or set REPRISE_E2E_PYTHON"
    );
    venv
}

fn e2e(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e")
        .join(file)
}

pub fn node() -> PathBuf {
    assert!(
        e2e("node_modules/openai/package.json").exists(),
        "no openai Node SDK: run `scripts/test` (it runs `npm ci` in crates/gateway/tests/e2e)"
    );
    PathBuf::from(std::env::var("REPRISE_E2E_NODE").unwrap_or_else(|_| "node".to_owned()))
}

#[tokio::test]
async fn the_official_python_sdk_works_unchanged() {
    drive_sdk(
        python(),
        "openai_sdk.py",
        &[
            "PLAIN_OK",
            "FIRST_CHUNK",
            "STREAM_OK",
            "EMBEDDINGS_OK",
            "MODELS_OK",
            "RESPONSES_OK",
            "COMPLETIONS_OK",
            "MEDIA_OK",
            "BAD_REQUEST_OK",
            "TRUNCATED_OK",
            "ALL_OK",
        ],
    )
    .await;
}

#[tokio::test]
async fn the_official_node_sdk_works_unchanged() {
    drive_sdk(
        node(),
        "openai_sdk.mjs",
        &[
            "PLAIN_OK",
            "FIRST_CHUNK",
            "STREAM_OK",
            "CACHE_OK",
            "EMBEDDINGS_OK",
            "MODELS_OK",
            "RESPONSES_OK",
            "COMPLETIONS_OK",
            "MEDIA_OK",
            "BAD_REQUEST_OK",
            "TRUNCATED_OK",
            "ALL_OK",
        ],
    )
    .await;
}

/// Runs an SDK script against a gateway in front of the mock, scripting the mock between its
/// steps as the script reports them, and checks it reported `expected` and exited cleanly.
async fn drive_sdk(program: PathBuf, script: &str, expected: &[&str]) {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let mut child = Command::new(&program)
        .arg(e2e(script))
        .env("GATEWAY_BASE_URL", gw.base_url())
        .env("OPENAI_API_KEY", "unused")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();

    // The stream (step 2) must hold its last chunk until the SDK has the first; step 6 then
    // gets a stream the upstream cuts short.
    let mut gate = None;
    let drive = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let reply: Option<&[u8]> = match line.as_str() {
                "PLAIN_OK" => {
                    gate = Some(mock.hold_last_chunk());
                    Some(b"READY\n")
                }
                "FIRST_CHUNK" => {
                    gate.take().expect("stream before plain").open();
                    Some(b"GO\n")
                }
                "BAD_REQUEST_OK" => {
                    mock.truncate_after_chunks(2);
                    Some(b"READY\n")
                }
                _ => None,
            };
            if let Some(reply) = reply {
                stdin.write_all(reply).await.unwrap();
                stdin.flush().await.unwrap();
            }
            seen.push(line);
        }
    };
    let finished = tokio::time::timeout(PATIENCE, drive).await;
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err)
        .await
        .ok();
    assert!(
        finished.is_ok(),
        "the SDK script hung after {seen:?}; stderr: {err}"
    );
    let status = child.wait().await.unwrap();
    assert!(status.success(), "SDK script failed after {seen:?}:\n{err}");
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_python_sdk_reaches_anthropic_and_gemini() {
    use reprise_test_support::Step;
    use serde_json::json;
    use std::time::Duration;

    let anthropic = MockUpstream::start().await;
    let gemini = MockUpstream::start().await;
    // The script's order, per provider and API: plain, stream, tool call, streamed tool call.
    let normal = || Step::Delay(Duration::ZERO);
    let ev = |name: &str, data: serde_json::Value| (Some(name.to_owned()), data.to_string());
    // Twice: through chat completions, then through the Responses API.
    for _ in 0..2 {
        anthropic.push(normal()).push(normal());
        anthropic.respond_json(
            json!({"id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [{"type": "tool_use", "id": "toolu_1",
            "name": "get_weather", "input": {"city": "Paris"}}], "stop_reason": "tool_use",
            "stop_sequence": null, "usage": {"input_tokens": 9, "output_tokens": 4}}),
        );
        anthropic.respond_events(vec![
            ev("message_start", json!({"type": "message_start", "message": {"id": "msg_2",
                "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
                "stop_reason": null, "usage": {"input_tokens": 9, "output_tokens": 1}}})),
            ev("content_block_start", json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}})),
            ev("content_block_delta", json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}})),
            ev("content_block_delta", json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}})),
            ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 4}})),
            ev("message_stop", json!({"type": "message_stop"})),
        ]);
    }
    let call = json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall":
        {"name": "get_weather", "args": {"city": "Paris"}}}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13}});
    for _ in 0..2 {
        gemini.push(normal()).push(normal());
        gemini.respond_json(call.clone());
        gemini.respond_events(vec![(None, call.to_string())]);
    }

    let gw = Gateway::with_env(
        "[cache]\nenabled = false\n",
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-test"),
            ("ANTHROPIC_BASE_URL", &anthropic.anthropic_base_url()),
            ("GEMINI_API_KEY", "gemini-test"),
            ("GEMINI_BASE_URL", &gemini.gemini_base_url()),
        ],
    )
    .await;
    let run = Command::new(python())
        .arg(e2e("providers_sdk.py"))
        .env("GATEWAY_BASE_URL", gw.base_url())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE, run).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "ANTHROPIC_OK",
            "ANTHROPIC_RESPONSES_OK",
            "GEMINI_OK",
            "GEMINI_RESPONSES_OK",
            "GEMINI_EMBEDDINGS_OK"
        ]
    );
    assert_eq!(anthropic.requests().len(), 8);
    assert_eq!(gemini.requests().len(), 10);
}
