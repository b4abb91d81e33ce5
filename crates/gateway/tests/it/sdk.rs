//! The official `openai` Python SDK against the gateway, unchanged but for its base URL.
//!
//! Needs a Python with the `openai` package: `REPRISE_E2E_PYTHON`, or `.venv/bin/python` at the
//! workspace root (what `scripts/test` sets up). Missing, the test fails and says so.

use std::path::PathBuf;
use std::process::Stdio;

use reprise_test_support::MockUpstream;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::support::{Gateway, PATIENCE};

fn python() -> PathBuf {
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

#[tokio::test]
async fn the_official_python_sdk_works_unchanged() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/openai_sdk.py");
    let mut child = Command::new(python())
        .arg(script)
        .env("GATEWAY_BASE_URL", gw.base_url())
        .env("OPENAI_API_KEY", "unused")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
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
    assert_eq!(
        seen,
        [
            "PLAIN_OK",
            "FIRST_CHUNK",
            "STREAM_OK",
            "EMBEDDINGS_OK",
            "MODELS_OK",
            "BAD_REQUEST_OK",
            "TRUNCATED_OK",
            "ALL_OK"
        ]
    );
}
