//! The `reprise` command line: help, version, check-config, and refusing unsafe starts.

use crate::support::{Process, UPSTREAM_KEY};

#[tokio::test]
async fn help_and_version() {
    let (code, out) = Process::spawn(&["--help"], &[]).finish().await;
    assert_eq!(code, Some(0));
    let text = out.join("\n");
    for needle in ["serve", "check-config", "--config", "OPENAI_API_KEY"] {
        assert!(text.contains(needle), "help lacks {needle}: {text}");
    }
    let (code, out) = Process::spawn(&["--version"], &[]).finish().await;
    assert_eq!(code, Some(0));
    assert_eq!(out, vec![format!("reprise {}", env!("CARGO_PKG_VERSION"))]);
    let (code, out) = Process::spawn(&["serve", "--help"], &[]).finish().await;
    assert_eq!(code, Some(0));
    assert!(out.join("\n").contains("--allow-unauthenticated"));
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("reprise.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn check_config_accepts_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "listen = \"127.0.0.1:9999\"\n[[targets]]\nname = \"groq\"\nbase_url = \"https://api.groq.com/openai/v1\"\napi_key_env = \"GROQ_API_KEY\"\n",
    );
    let (code, out) = Process::spawn(&["check-config", &path], &[("GROQ_API_KEY", "gsk-x")])
        .finish()
        .await;
    assert_eq!(code, Some(0), "{out:?}");
    assert!(out.join("\n").contains("groq"));
    // REPRISE_CONFIG names the file too.
    let (code, _) = Process::spawn(
        &["check-config"],
        &[("GROQ_API_KEY", "gsk-x"), ("REPRISE_CONFIG", &path)],
    )
    .finish()
    .await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn check_config_names_the_failing_path_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[targets]]\nname = \"a\"\nbase_url = \"https://x/v1\"\ntimeout = 3\n",
            "targets[0].timeout",
            "unknown field",
        ),
        (
            "[[targets]]\nname = \"a\"\nbase_url = \"localhost:8080\"\n",
            "targets[0].base_url",
            "http",
        ),
        (
            "[[targets]]\nname = \"a\"\napi_key_env = \"NOT_SET_ANYWHERE\"\n",
            "targets[0].api_key_env",
            "NOT_SET_ANYWHERE",
        ),
        ("listen = 4080\n", "listen", "string"),
        ("this is not toml", ".", "line 1"),
    ];
    for (text, path, reason) in cases {
        let file = write_config(&dir, text);
        let (code, out) = Process::spawn(&["check-config", &file], &[]).finish().await;
        assert_eq!(code, Some(1), "{text}");
        let out = out.join("\n");
        assert!(out.contains(&format!("{path}:")), "{text}: {out}");
        assert!(out.contains(reason), "{text}: {out}");
    }
    let (code, out) = Process::spawn(&["check-config", "/nonexistent/reprise.toml"], &[])
        .finish()
        .await;
    assert_eq!(code, Some(1));
    assert!(out.join("\n").contains("cannot read"));
}

#[tokio::test]
async fn serve_refuses_a_non_loopback_address_without_auth() {
    let mut p = Process::spawn(
        &["serve", "--listen", "0.0.0.0:0"],
        &[("OPENAI_API_KEY", UPSTREAM_KEY)],
    );
    let (code, out) = p.finish().await;
    assert_eq!(code, Some(1));
    let out = out.join("\n");
    assert!(out.contains("refusing to listen on 0.0.0.0:0"), "{out}");
    assert!(
        out.contains("--allow-unauthenticated"),
        "says what to do: {out}"
    );
    // The environment variable form is refused the same way.
    let (code, _) = Process::spawn(
        &["serve"],
        &[
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("REPRISE_LISTEN", "0.0.0.0:0"),
        ],
    )
    .finish()
    .await;
    assert_eq!(code, Some(1));
}

#[tokio::test]
async fn serve_runs_open_only_when_told_and_warns_on_every_request() {
    let mock = reprise_test_support::MockUpstream::start().await;
    let base_url = mock.base_url();
    let mut p = Process::spawn(
        &["serve", "--listen", "0.0.0.0:0", "--allow-unauthenticated"],
        &[
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", &base_url),
        ],
    );
    let addr = p.listening().await;
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", addr.port());
    let r = reqwest::Client::new()
        .post(url)
        .json(&crate::support::chat_body("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    p.terminate().await;
    let (code, out) = p.finish().await;
    assert_eq!(code, Some(0));
    let lines: Vec<serde_json::Value> = out
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.iter().any(|l| {
        l["level"] == "WARN"
            && l["message"]
                .as_str()
                .unwrap()
                .contains("WITHOUT client authentication")
    }));
    let request = lines.iter().find(|l| l["message"] == "request").unwrap();
    assert_eq!(request["level"], "WARN");
    assert_eq!(request["unauthenticated"], true);
}

#[tokio::test]
async fn serve_without_any_target_says_how_to_add_one() {
    let (code, out) = Process::spawn(&["serve", "--listen", "127.0.0.1:0"], &[])
        .finish()
        .await;
    assert_eq!(code, Some(1));
    assert!(out.join("\n").contains("OPENAI_API_KEY"));
}

#[tokio::test]
async fn replay_estimates_each_tier_without_calling_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let line = |q: &str| {
        serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": q}]})
            .to_string()
    };
    let lines = [
        line("How do I reverse a list in Python?"),
        line("How do I reverse a list in Python?"),
        line("How can I reverse a list in Python?"),
        line("What is 2+3?"),
        line("What is 2+4?"),
        "{broken".to_owned(),
    ];
    std::fs::write(&log, lines.join("\n")).unwrap();
    // No upstream is configured at all: replay never calls one.
    let (code, out) = Process::spawn(&["replay", log.to_str().unwrap()], &[])
        .finish()
        .await;
    assert_eq!(code, Some(0), "{out:?}");
    let text = out.join("\n");
    let count = |label: &str| -> u64 {
        let line = out
            .iter()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("{text}"));
        line.split_whitespace()
            .rev()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(count("exact hits"), 1, "{text}");
    assert_eq!(count("semantic hits"), 1, "{text}");
    assert_eq!(count("misses"), 3, "{text}");
    assert!(text.contains("invalid lines         1"), "{text}");

    // An embeddings log: inputs are cached one by one.
    let embeddings = dir.path().join("embeddings.jsonl");
    let line = |input: serde_json::Value| {
        serde_json::json!({"model": "text-embedding-3-small", "input": input}).to_string()
    };
    let lines = [
        line(serde_json::json!(["alpha", "beta"])),
        line(serde_json::json!(["beta", "gamma"])),
        line(serde_json::json!("alpha")),
    ];
    std::fs::write(&embeddings, lines.join("\n")).unwrap();
    let args = [
        "replay",
        embeddings.to_str().unwrap(),
        "--api",
        "embeddings",
    ];
    let (code, out) = Process::spawn(&args, &[]).finish().await;
    assert_eq!(code, Some(0), "{out:?}");
    let text = out.join("\n");
    assert!(
        text.contains("inputs: 5 in the valid requests, 2 (40.0 %) in the cache"),
        "{text}"
    );
}

/// A tiny copy of the evaluation files' formats (the real ones live outside the repository).
fn eval_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pairs = serde_json::json!([
        {"origin": "How do I reverse a list in Python?", "similar": "How can I reverse a list in Python?"},
        {"origin": "What is the boiling point of water?", "similar": "At what temperature does water boil?"}
    ]);
    std::fs::write(dir.path().join("gptcache-mock.json"), pairs.to_string()).unwrap();
    let checklist = [
        r#"{"id": 1, "test": "Modifier: adj", "capability": "Vocabulary", "label": 0, "text_a": "Is Tyler Johnson an actor?", "text_b": "Is Tyler Johnson a bad actor?"}"#,
        r#"{"id": 2, "test": "Synonyms", "capability": "Taxonomy", "label": 1, "text_a": "How do I reverse a list in Python?", "text_b": "How can I reverse a list in Python?"}"#,
    ];
    std::fs::write(dir.path().join("checklist-dev.jsonl"), checklist.join("\n")).unwrap();
    let qqp = r#"{"id": 9, "text_a": "How do I learn Rust?", "text_b": "How can I learn Rust?", "label": 1}"#;
    write_qqp(dir.path(), qqp);
    dir
}

/// Writes `lines` as the QQP file of the data directory `dir` (gzip-compressed, as shipped).
fn write_qqp(dir: &std::path::Path, lines: &str) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(lines.as_bytes()).unwrap();
    std::fs::write(dir.join("qqp-dev.jsonl.gz"), gz.finish().unwrap()).unwrap();
}

#[tokio::test]
async fn eval_measures_a_configured_remote_embedding_model() {
    let embeddings = reprise_test_support::MockUpstream::start().await;
    let data = eval_data();
    let config = data.path().join("reprise.toml");
    std::fs::write(
        &config,
        format!(
            "[cache]\nsimilarity_threshold = 0.85\n[cache.embedding]\nbase_url = \"{}\"\nmodel = \"bag-of-words\"\n",
            embeddings.base_url()
        ),
    )
    .unwrap();
    let (config, data_dir) = (config.to_str().unwrap(), data.path().to_str().unwrap());
    let args = ["--config", config, "eval", "--data", data_dir];
    let (code, out) = Process::spawn(&args, &[]).finish().await;
    assert_eq!(code, Some(0), "{out:?}");
    let text = out.join("\n");
    assert!(
        text.contains("model bag-of-words at http://") && text.contains("threshold 0.85"),
        "{text}"
    );
    // A probe, then both texts of every pair of the three files.
    assert_eq!(embeddings.requests().len(), 1 + 4 + 4 + 2);

    // A failing endpoint fails the command instead of printing wrong figures.
    embeddings.fail_times(1, 503);
    let (code, out) = Process::spawn(&args, &[]).finish().await;
    assert_eq!(code, Some(1), "{out:?}");
    assert!(out.join("\n").contains("503"), "{out:?}");
}

/// `reprise eval --explain` on the data directory `dir`: its output, once it succeeded.
async fn eval_explain(dir: &std::path::Path) -> String {
    let dir = dir.to_str().unwrap();
    let (code, out) = Process::spawn(&["eval", "--explain", "--data", dir], &[])
        .finish()
        .await;
    assert_eq!(code, Some(0), "{out:?}");
    out.join("\n")
}

#[tokio::test]
async fn eval_explains_wrong_decisions_on_qqp_too() {
    let data = eval_data();
    // A pair labelled "not a duplicate" that the default model and guard serve.
    let qqp = r#"{"id": 9, "text_a": "How do I learn Rust?", "text_b": "How can I learn Rust?", "label": 0}"#;
    write_qqp(data.path(), qqp);
    let text = eval_explain(data.path()).await;
    let qqp = text
        .split_once("qqp-dev.jsonl.gz: wrong decisions at 0.80")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no QQP explanation: {text}"));
    assert!(
        qqp.contains("label 0")
            && qqp.contains("served: \"How do I learn Rust?\" / \"How can I learn Rust?\""),
        "{text}"
    );
}

#[tokio::test]
async fn eval_explains_every_question_its_own_entry_did_not_answer() {
    let data = eval_data();
    // Two cached questions that are the same question: the asked paraphrase resembles both
    // about equally, so the index refuses it although its own entry alone would pass.
    let pairs = serde_json::json!([
        {"origin": "How do I reverse a list in Python?", "similar": "How can I reverse a list in Python?"},
        {"origin": "How do you reverse a list in Python?", "similar": "What is the boiling point of water?"}
    ]);
    std::fs::write(data.path().join("gptcache-mock.json"), pairs.to_string()).unwrap();
    let text = eval_explain(data.path()).await;
    assert!(
        text.contains(
            "not served (another entry within the margin, sim 0.98): \"How do I reverse a list in Python?\" / \"How can I reverse a list in Python?\""
        ) && text.contains("\"another entry within the margin\": 1"),
        "{text}"
    );
}
