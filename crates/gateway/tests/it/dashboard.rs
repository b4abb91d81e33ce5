//! The dashboard: the page (self-contained), its data after known traffic, its SVG charts, the
//! request log behind it (prompts only when enabled), and the admin token from a browser.

use std::time::Duration;

use reprise_test_support::MockUpstream;
use serde_json::{Value, json};

use crate::support::{Gateway, PATIENCE, chat_body, client};

async fn ask(gw: &Gateway, q: &str, no_cache: bool) -> reqwest::Response {
    let mut r = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body(q));
    if no_cache {
        r = r.header("cache-control", "no-cache");
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn the_dashboard_shows_known_traffic() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config("log_prompts = true\n", &mock).await;
    assert_eq!(
        ask(&gw, "What is the boiling point of water?", false)
            .await
            .headers()["x-reprise-cache"],
        "miss"
    );
    assert_eq!(
        ask(&gw, "What is the boiling point of water?", false)
            .await
            .headers()["x-reprise-cache"],
        "hit"
    );
    for _ in 0..2 {
        ask(&gw, "Summarise the latest news", true).await;
    }

    let page = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>Reprise</title>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from the internet"
    );
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "no external assets"
    );

    let data: Value = gw.get_json("/dashboard/data").await;
    let h = &data["headline"];
    assert_eq!(h["requests_today"], 4);
    assert_eq!(h["hits_today"], 1);
    assert_eq!(h["exact_hits"], 1);
    assert_eq!(data["providers"][0]["name"], "openai");
    assert_eq!(data["providers"][0]["state"], "healthy");
    assert_eq!(
        data["top_misses"][0],
        json!(["gpt-4o-mini", "Summarise the latest news", 2])
    );
    assert_eq!(data["recent"].as_array().unwrap().len(), 4);
    // Newest first: two no-cache misses, the hit, the first miss.
    let caches: Vec<&str> = data["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cache"].as_str().unwrap())
        .collect();
    assert_eq!(caches, ["miss", "miss", "hit", "miss"]);
    assert!(data["now"]["rps"].as_f64().unwrap() > 0.0);

    for (chart, theme) in [
        ("requests", "light"),
        ("hit-rate", "dark"),
        ("latency", "dark"),
        ("overhead", "light"),
    ] {
        let r = client()
            .get(gw.url(&format!("/dashboard/chart/{chart}?theme={theme}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{chart}");
        assert_eq!(r.headers()["content-type"], "image/svg+xml");
        let svg = r.text().await.unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "{chart}"
        );
    }
    assert_eq!(
        client()
            .get(gw.url("/dashboard/chart/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn prompts_are_not_kept_unless_enabled_and_retention_zero_keeps_nothing() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    // `no-store`: the cache keeps nothing of it either.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("cache-control", "no-store")
        .json(&chat_body("A very private question about Zanzibar"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let data: Value = gw.get_json("/dashboard/data").await;
    assert_eq!(data["recent"].as_array().unwrap().len(), 1);
    assert_eq!(data["prompts_logged"], false);
    assert!(data["top_misses"].as_array().unwrap().is_empty());
    // The request is in the log, its words nowhere in the database files.
    let db = database_text(gw.data_dir());
    assert!(db.contains(&request_id), "the request was recorded");
    assert!(!db.contains("private question about Zanzibar"));

    let gw = Gateway::with_config("log_retention_days = 0\n", &mock).await;
    ask(&gw, "Another question", false).await;
    let data: Value = gw.get_json("/dashboard/data").await;
    assert!(data["recent"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_request_log_keeps_at_most_its_bound_of_rows_the_newest() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config(
        "log_max_rows = 2\n[cache]\nsweep_interval_secs = 1\n",
        &mock,
    )
    .await;
    let mut ids = Vec::new();
    for q in [
        "First question",
        "Second question",
        "Third question",
        "Fourth question",
    ] {
        let r = ask(&gw, q, false).await;
        assert_eq!(r.status(), 200);
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    // Rows are written once a second and trimmed at each sweep: wait for both.
    let trimmed = async {
        loop {
            let data: Value = gw.get_json("/dashboard/data").await;
            let mut recent: Vec<String> = data["recent"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["request_id"].as_str().unwrap().to_owned())
                .collect();
            recent.sort();
            let mut newest = ids[2..].to_vec();
            newest.sort();
            if recent == newest {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(PATIENCE, trimmed)
        .await
        .expect("the request log was not trimmed to its two newest rows");
}

/// The database files' bytes as text.
fn database_text(dir: &std::path::Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        all.push_str(&String::from_utf8_lossy(
            &std::fs::read(entry.unwrap().path()).unwrap(),
        ));
    }
    all
}

#[tokio::test]
async fn a_browser_gives_the_admin_token_as_a_password() {
    let mock = MockUpstream::start().await;
    let base_url = mock.base_url();
    let gw = Gateway::with_env(
        "",
        &[
            ("OPENAI_API_KEY", crate::support::UPSTREAM_KEY),
            ("OPENAI_BASE_URL", &base_url),
            ("REPRISE_ADMIN_TOKEN", "dash-token"),
        ],
    )
    .await;
    let r = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"reprise admin\""
    );
    let r = client()
        .get(gw.url("/"))
        .basic_auth("anyone", Some("dash-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(gw.url("/metrics"))
        .bearer_auth("dash-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Headless Chromium (Debian's `chromium`, `CHROMIUM` to use another) through Playwright.
#[tokio::test]
async fn a_real_browser_renders_the_dashboard() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config("log_prompts = true\n", &mock).await;
    let questions = [
        "What is the boiling point of water?",
        "How many legs does a spider have?",
        "What is the boiling point of water?",
        "Who painted the Mona Lisa?",
        "How many legs does a spider have?",
        "What is the boiling point of water?",
    ];
    for q in questions {
        assert_eq!(ask(&gw, q, false).await.status(), 200);
    }
    let usage: Value = gw.get_json("/admin/usage").await;
    assert_eq!(usage["requests"], 6);
    assert_eq!(usage["cache_hits"], 3);
    let expected = json!({
        "requests": usage["requests"],
        "cache_hits": usage["cache_hits"],
        "saved_usd": usage["saved_usd"],
    });
    let shot = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/dashboard-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/dashboard.py");
    let run = tokio::process::Command::new(crate::sdk::python())
        .arg(script)
        .env("DASHBOARD_URL", gw.url("/"))
        .env("EXPECTED", expected.to_string())
        .env("SCREENSHOT", &shot)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(90), run)
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("DASHBOARD_OK"));
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a screenshot was saved"
    );
}
