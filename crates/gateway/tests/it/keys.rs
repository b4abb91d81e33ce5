//! Virtual keys, pass-through, the admin token, rate limits, budgets and the ledger, through
//! HTTP against the mock upstream, with keys made by the `reprise key` CLI.

use std::time::Duration;

use reprise_test_support::MockUpstream;
use serde_json::{Value, json};

use reprise_gateway::config::{Config, Overrides};

use crate::support::{Gateway, PATIENCE, Process, UPSTREAM_KEY, chat_body, client, run_with_input};

/// Runs `reprise key ...` on `dir`; returns the directory, the exit code and the output.
async fn key_cli(
    dir: tempfile::TempDir,
    args: &[&str],
) -> (tempfile::TempDir, Option<i32>, Vec<String>) {
    let mut all = vec!["key"];
    all.extend_from_slice(args);
    let mut p = Process::spawn_in(dir, &all, &[]);
    let (code, out) = p.finish().await;
    (p.into_data_dir(), code, out)
}

/// Creates a key with the CLI; returns the directory, the key and its id.
pub(crate) async fn create_key(
    dir: tempfile::TempDir,
    args: &[&str],
) -> (tempfile::TempDir, String, String) {
    let mut all = vec!["create"];
    all.extend_from_slice(args);
    let (dir, code, out) = key_cli(dir, &all).await;
    assert_eq!(code, Some(0), "{out:?}");
    let key = out.iter().find(|l| l.starts_with("rp-")).unwrap().clone();
    let id = out
        .iter()
        .find_map(|l| l.strip_prefix("created key "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    (dir, key, id)
}

pub(crate) async fn gateway_with_keys(
    mock: &MockUpstream,
    dir: tempfile::TempDir,
    toml: &str,
) -> Gateway {
    let base_url = mock.base_url();
    Gateway::with_env_in(
        toml,
        &[
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", &base_url),
        ],
        dir,
    )
    .await
}

async fn send(gw: &Gateway, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = client().post(gw.url("/v1/chat/completions")).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

async fn error_code(r: reqwest::Response, status: u16) -> String {
    assert_eq!(r.status(), status);
    let e: Value = r.json().await.unwrap();
    e["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn keys_made_by_the_cli_authenticate_and_revoke_at_once() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (dir, key, id) = create_key(dir, &["--label", "ci", "--models", "gpt-*"]).await;
    let (dir, expired, _) = create_key(dir, &["--label", "old", "--expires", "2020-01-01"]).await;
    let gw = gateway_with_keys(&mock, dir, "").await;

    assert_eq!(send(&gw, Some(&key), &chat_body("Hi")).await.status(), 200);
    assert_eq!(
        error_code(send(&gw, None, &chat_body("Hi")).await, 401).await,
        "missing_api_key"
    );
    // The key with its last character changed (to one it is not: a key may end in "0").
    let last = if key.ends_with('0') { "1" } else { "0" };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);
    assert_eq!(
        error_code(send(&gw, Some(&wrong), &chat_body("Hi")).await, 401).await,
        "invalid_api_key"
    );
    assert_eq!(
        error_code(send(&gw, Some(&expired), &chat_body("Hi")).await, 401).await,
        "key_expired"
    );
    let mut claude = chat_body("Hi");
    claude["model"] = json!("claude-sonnet-4-5");
    assert_eq!(
        error_code(send(&gw, Some(&key), &claude).await, 403).await,
        "model_not_allowed"
    );
    // The model list needs a key too.
    let r = client().get(gw.url("/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Listed without the key itself; then revoked by the CLI: refused on the very next request.
    let listed = Process::spawn(
        &["key", "list", "--data-dir", gw.data_dir().to_str().unwrap()],
        &[],
    )
    .finish()
    .await;
    assert_eq!(listed.0, Some(0), "{:?}", listed.1);
    let text = listed.1.join("\n");
    assert!(!text.contains(&key) && !text.contains(&key[12..]), "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["keys"][0]["label"], "ci");
    assert_eq!(list["keys"][0]["prefix"], &key[..11]);
    assert_eq!(list["keys"][0]["models"], json!(["gpt-*"]));
    let revoked = Process::spawn(
        &[
            "key",
            "revoke",
            &id,
            "--data-dir",
            gw.data_dir().to_str().unwrap(),
        ],
        &[],
    )
    .finish()
    .await;
    assert_eq!(revoked.0, Some(0), "{:?}", revoked.1);
    assert_eq!(
        error_code(send(&gw, Some(&key), &chat_body("Hi")).await, 401).await,
        "key_revoked"
    );
}

#[tokio::test]
async fn the_official_sdk_uses_a_virtual_key() {
    let mock = MockUpstream::start().await;
    let (dir, key, _) = create_key(tempfile::tempdir().unwrap(), &["--label", "sdk"]).await;
    let gw = gateway_with_keys(&mock, dir, "").await;
    let script = r#"
import os, openai
ok = openai.OpenAI(base_url=os.environ["BASE"], api_key=os.environ["KEY"], max_retries=0)
print(ok.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content)
bad = openai.OpenAI(base_url=os.environ["BASE"], api_key="rp-nope", max_retries=0)
try:
    bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
except openai.AuthenticationError as e:
    print("401", e.code)
"#;
    let out = tokio::process::Command::new(crate::sdk::python())
        .args(["-c", script])
        .env("BASE", gw.base_url())
        .env("KEY", &key)
        .output();
    let out = tokio::time::timeout(PATIENCE, out).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["Hello from the mock upstream.", "401 invalid_api_key"]
    );
    // The provider key went upstream, never the virtual key.
    let sent = &mock.requests()[0].headers;
    assert_eq!(sent["authorization"], format!("Bearer {UPSTREAM_KEY}"));
}

#[tokio::test]
async fn requests_per_minute_hold_under_concurrency() {
    let mock = MockUpstream::builder().record(false).start().await;
    let (dir, key, _) = create_key(
        tempfile::tempdir().unwrap(),
        &["--label", "rl", "--rpm", "100"],
    )
    .await;
    let gw = gateway_with_keys(&mock, dir, "[cache]\nenabled = false\n").await;
    let c = reqwest::Client::new();
    let url = gw.url("/v1/chat/completions");
    let responses = futures_util::future::join_all((0..200).map(|i| {
        c.post(&url)
            .bearer_auth(&key)
            .json(&chat_body(&format!("question {i}")))
            .send()
    }))
    .await;
    let mut ok = 0;
    let mut limited = 0;
    for r in responses {
        let r = r.unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            429 => {
                let after: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&after), "{after}");
                let e: Value = r.json().await.unwrap();
                assert_eq!(e["error"]["code"], "rpm_limit_exceeded");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (100, 100));
}

#[tokio::test]
async fn tokens_per_minute_and_cache_hits() {
    let mock = MockUpstream::start().await;
    // Each call is estimated at ~25 tokens (body / 4) + max_tokens, and really uses 10.
    let (dir, key, _) = create_key(
        tempfile::tempdir().unwrap(),
        &["--label", "tpm", "--tpm", "300"],
    )
    .await;
    let gw = gateway_with_keys(&mock, dir, "").await;
    let mut big = chat_body("Summarise the history of Rome");
    big["max_tokens"] = json!(250);
    assert_eq!(send(&gw, Some(&key), &big).await.status(), 200);
    // The first reservation was corrected to the real 10 tokens, so this one fits...
    assert_eq!(
        send(&gw, Some(&key), &{
            let mut b = big.clone();
            b["messages"][0]["content"] = json!("Summarise the history of Carthage");
            b
        })
        .await
        .status(),
        200
    );
    // ...but a request estimated above what is left does not.
    let mut huge = chat_body("A long one");
    huge["max_tokens"] = json!(400);
    let r = send(&gw, Some(&key), &huge).await;
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(error_code(r, 429).await, "tpm_limit_exceeded");
    // A cache hit spends no tokens: the first question again is served.
    let r = send(&gw, Some(&key), &big).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-cache"], "hit");
}

#[tokio::test]
async fn budgets_are_walls() {
    let mock = MockUpstream::start().await;
    // $1,000 per million tokens: each mock call (5 + 5 tokens) costs $0.01.
    let prices = "[prices.\"gpt-4o-mini\"]\ninput = 1000.0\noutput = 1000.0\n[teams.blue]\ndaily_usd = 0.025\n";
    let dir = tempfile::tempdir().unwrap();
    let (dir, solo, _) = create_key(dir, &["--label", "solo", "--daily-usd", "0.015"]).await;
    let (dir, blue1, _) = create_key(dir, &["--label", "b1", "--team", "blue"]).await;
    let (dir, blue2, _) = create_key(dir, &["--label", "b2", "--team", "blue"]).await;
    let gw = gateway_with_keys(&mock, dir, prices).await;

    assert_eq!(
        send(&gw, Some(&solo), &chat_body("one")).await.status(),
        200
    );
    assert_eq!(
        send(&gw, Some(&solo), &chat_body("two")).await.status(),
        200,
        "$0.01 < $0.015"
    );
    let r = send(&gw, Some(&solo), &chat_body("three")).await;
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after <= 86_400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "insufficient_quota");
    assert_eq!(e["error"]["code"], "daily_budget_exceeded");
    // A cache hit costs nothing and is still served.
    assert_eq!(
        send(&gw, Some(&solo), &chat_body("one")).await.headers()["x-reprise-cache"],
        "hit"
    );

    // The team's keys share the team's wall: three calls at $0.01 pass $0.025.
    for (key, q) in [(&blue1, "a"), (&blue2, "b"), (&blue1, "c")] {
        assert_eq!(send(&gw, Some(key), &chat_body(q)).await.status(), 200);
    }
    assert_eq!(
        error_code(send(&gw, Some(&blue2), &chat_body("d")).await, 429).await,
        "daily_budget_exceeded"
    );
    // And one team shares one cache namespace: b2 is served what b1 stored.
    assert_eq!(
        send(&gw, Some(&blue2), &chat_body("a")).await.headers()["x-reprise-cache"],
        "hit"
    );
    assert_eq!(
        send(&gw, Some(&solo), &chat_body("a")).await.status(),
        429,
        "another namespace: a miss"
    );
}

#[tokio::test]
async fn the_ledger_matches_the_upstream_token_for_token() {
    const N: usize = 10_000;
    let mock = MockUpstream::builder().record(false).start().await;
    let (dir, key, id) = create_key(tempfile::tempdir().unwrap(), &["--label", "ledger"]).await;
    let gw = gateway_with_keys(&mock, dir, "[cache]\nenabled = false\n").await;
    let c = reqwest::Client::new();
    let url = gw.url("/v1/chat/completions");
    use futures_util::StreamExt;
    futures_util::stream::iter(0..N)
        .map(|i| {
            let (c, url, key) = (&c, &url, &key);
            async move {
                let mut body = chat_body(&format!("q{i}"));
                // Every third request streams (usage without the client asking for it).
                if i % 3 == 0 {
                    body["stream"] = json!(true);
                }
                if i % 2 == 0 {
                    body["messages"] = json!([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]);
                }
                let r = c.post(url).bearer_auth(key).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let usage = gw.get_json(&format!("/admin/usage?key={id}")).await;
    let (prompt, completion) = mock.tokens_served();
    assert_eq!(usage["requests"], N);
    assert_eq!(usage["prompt_tokens"], prompt);
    assert_eq!(usage["completion_tokens"], completion);
    // gpt-4o-mini's shipped price: $0.15 / $0.60 per million.
    let expected = (prompt as f64 * 0.15 + completion as f64 * 0.60) / 1e6;
    let cost = usage["cost_usd"].as_f64().unwrap();
    assert!((cost - expected).abs() < 1e-5, "{cost} vs {expected}");
}

#[tokio::test]
async fn the_ledger_survives_a_clean_stop_and_kill_9_after_a_second() {
    let mock = MockUpstream::start().await;
    // Clean stop: every row is written before exit.
    let (mut p, url) = Process::serve(&mock, None).await;
    for i in 0..20 {
        let r = client()
            .post(&url)
            .json(&chat_body(&format!("q{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    p.terminate().await;
    assert_eq!(p.exit_code().await, Some(0));
    let dir = p.into_data_dir();
    let (code, out) = Process::spawn(&["usage", "--data-dir", dir.path().to_str().unwrap()], &[])
        .finish()
        .await;
    assert_eq!(code, Some(0), "{out:?}");
    let usage: Value = serde_json::from_str(&out.join("\n")).unwrap();
    assert_eq!(usage["requests"], 20);

    // kill -9: rows older than the flush interval (one second) are durable.
    let (mut p, url) = Process::serve(&mock, Some(dir)).await;
    for i in 0..10 {
        let r = client()
            .post(&url)
            .json(&chat_body(&format!("k{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    p.kill_9().await;
    let dir = p.into_data_dir();
    let (_, out) = Process::spawn(&["usage", "--data-dir", dir.path().to_str().unwrap()], &[])
        .finish()
        .await;
    let usage: Value = serde_json::from_str(&out.join("\n")).unwrap();
    assert_eq!(usage["requests"], 30);
    assert_eq!(usage["cache_hits"], 0);
}

#[tokio::test]
async fn pass_through_forwards_the_callers_key_and_separates_their_cache() {
    let mock = MockUpstream::start().await;
    let base_url = mock.base_url();
    // No provider key configured at all: callers bring theirs.
    let gw = Gateway::with_env(
        &format!(
            "auth = \"passthrough\"\n[[targets]]\nname = \"openai\"\nbase_url = \"{base_url}\"\n"
        ),
        &[],
    )
    .await;
    let alice = "sk-alice-0000000000000000";
    let bob = "sk-bob-1111111111111111";
    assert_eq!(
        send(&gw, Some(alice), &chat_body("Shared question"))
            .await
            .headers()["x-reprise-cache"],
        "miss"
    );
    assert_eq!(
        mock.requests()[0].headers["authorization"],
        format!("Bearer {alice}")
    );
    assert_eq!(
        send(&gw, Some(alice), &chat_body("Shared question"))
            .await
            .headers()["x-reprise-cache"],
        "hit"
    );
    // Bob never gets what Alice's key paid for.
    assert_eq!(
        send(&gw, Some(bob), &chat_body("Shared question"))
            .await
            .headers()["x-reprise-cache"],
        "miss"
    );
    assert_eq!(
        mock.requests()[1].headers["authorization"],
        format!("Bearer {bob}")
    );
    assert_eq!(
        error_code(send(&gw, None, &chat_body("Hi")).await, 401).await,
        "missing_api_key"
    );
}

#[tokio::test]
async fn the_admin_token_guards_admin_routes() {
    let mock = MockUpstream::start().await;
    let base_url = mock.base_url();
    let gw = Gateway::with_env(
        "",
        &[
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", &base_url),
            ("REPRISE_ADMIN_TOKEN", "admin-s3cret"),
        ],
    )
    .await;
    let r = client().get(gw.url("/admin/keys")).send().await.unwrap();
    assert_eq!(error_code(r, 401).await, "invalid_admin_token");
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth("admin-s3cret").send();
    let r = admin(
        client()
            .post(gw.url("/admin/keys"))
            .json(&json!({"label": "api", "rpm": 5})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    // Keys now exist: the gateway requires one.
    assert_eq!(send(&gw, None, &chat_body("Hi")).await.status(), 401);
    assert_eq!(send(&gw, Some(&key), &chat_body("Hi")).await.status(), 200);
    let listed: Value = admin(client().get(gw.url("/admin/keys")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["keys"][0]["rpm"], 5);
    assert!(!listed.to_string().contains(&key));
    let r = admin(client().delete(gw.url(&format!("/admin/keys/{id}"))))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        error_code(send(&gw, Some(&key), &chat_body("Hi")).await, 401).await,
        "key_revoked"
    );
    let usage: Value = admin(client().get(gw.url("/admin/usage")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // One request reached a model; the refused ones (no key, revoked key) never did.
    assert_eq!(usage["requests"], 1, "{usage}");
}

#[tokio::test]
async fn a_non_loopback_gateway_starts_once_a_key_exists() {
    let mock = MockUpstream::start().await;
    let base_url = mock.base_url();
    let vars = [
        ("OPENAI_API_KEY", UPSTREAM_KEY),
        ("OPENAI_BASE_URL", base_url.as_str()),
    ];
    let mut refused = Process::spawn(&["serve", "--listen", "0.0.0.0:0"], &vars);
    let (code, out) = refused.finish().await;
    assert_eq!(code, Some(1));
    assert!(out.join("\n").contains("reprise key create"), "{out:?}");

    let (dir, key, _) = create_key(tempfile::tempdir().unwrap(), &["--label", "edge"]).await;
    let mut p = Process::spawn_in(dir, &["serve", "--listen", "0.0.0.0:0"], &vars);
    let addr = p.listening().await;
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", addr.port());
    let r = client()
        .post(&url)
        .bearer_auth(&key)
        .json(&chat_body("Hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    p.terminate().await;
    let (code, out) = p.finish().await;
    assert_eq!(code, Some(0));
    let all = out.join("\n");
    assert!(
        !all.contains(&key) && !all.contains(UPSTREAM_KEY),
        "no key in any log line"
    );
}

#[tokio::test]
async fn provider_secrets_are_stored_sealed_and_used() {
    const ENC: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f000112233445566778899aabbccddeeff";
    const PROVIDER_KEY: &str = "sk-sealed-provider-key-77c1e0";
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_input(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_reprise"))
            .args(["secret", "set", "openai-prod", "--data-dir"])
            .arg(dir.path())
            .env("REPRISE_ENCRYPTION_KEY", ENC),
        format!("{PROVIDER_KEY}\n").as_bytes(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nowhere in the database files in the clear.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(PROVIDER_KEY));
    }

    let mock = MockUpstream::start().await;
    let toml = format!(
        "[[targets]]\nname = \"openai\"\nbase_url = \"{}\"\napi_key_secret = \"openai-prod\"\n",
        mock.base_url()
    );
    let gw = Gateway::with_env_in(&toml, &[("REPRISE_ENCRYPTION_KEY", ENC)], dir).await;
    assert_eq!(send(&gw, None, &chat_body("Hi")).await.status(), 200);
    assert_eq!(
        mock.requests()[0].headers["authorization"],
        format!("Bearer {PROVIDER_KEY}")
    );
    let names: Value = gw.get_json("/admin/secrets").await;
    assert_eq!(names, json!({"secrets": ["openai-prod"]}));

    // Without the encryption key, the gateway refuses to start and says why.
    let config = Config::from_toml(
        &toml,
        &|_: &str| None::<String>,
        &Overrides {
            data_dir: Some(gw.data_dir().to_path_buf()),
            ..Overrides::default()
        },
    )
    .unwrap();
    let err = reprise_gateway::server::build_state(config)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("REPRISE_ENCRYPTION_KEY"),
        "{err:#}"
    );
}

/// Every kind of credential, through traffic that exercises successes, client errors, upstream
/// errors, streams and the admin API, in both auth modes: none appears in any log line (debug
/// level) or any response body.
#[tokio::test]
async fn no_credential_in_any_log_line_or_response_body() {
    const ADMIN: &str = "admin-token-6a1f0c9e";
    const PASSTHROUGH: &str = "sk-caller-own-key-3b9d2e";
    let mock = MockUpstream::start().await;
    let base_url = mock.base_url();
    let (dir, key, id) = create_key(
        tempfile::tempdir().unwrap(),
        &["--label", "scan", "--rpm", "50"],
    )
    .await;
    let mut bodies = String::new();
    let mut logs = Vec::new();
    let mut dir = Some(dir);
    for mode in ["keys", "passthrough"] {
        let vars = [
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", base_url.as_str()),
            ("REPRISE_ADMIN_TOKEN", ADMIN),
            ("REPRISE_AUTH", mode),
            ("REPRISE_LOG", "debug"),
        ];
        let mut p = Process::spawn_in(
            dir.take().unwrap(),
            &["serve", "--listen", "127.0.0.1:0"],
            &vars,
        );
        let addr = p.listening().await;
        let url = format!("http://{addr}/v1/chat/completions");
        let bearer = if mode == "keys" {
            key.as_str()
        } else {
            PASSTHROUGH
        };
        mock.fail_times(3, 500);
        mock.fail_times(1, 401);
        for body in [
            chat_body("fails upstream"),
            chat_body("unauthorized upstream"),
            chat_body("fine"),
            {
                let mut b = chat_body("streamed");
                b["stream"] = json!(true);
                b
            },
            json!({"model": "gpt-4o-mini"}),
        ] {
            for auth in [Some(bearer), Some("rp-0000wrong"), None] {
                let mut r = client().post(&url).json(&body);
                if let Some(a) = auth {
                    r = r.bearer_auth(a);
                }
                bodies.push_str(&r.send().await.unwrap().text().await.unwrap());
            }
        }
        // The forwarded routes too: refused upstream, then answered (audio bytes).
        mock.fail_times(1, 401);
        for (path, body) in [
            ("/v1/moderations", json!({"input": "refused"})),
            ("/v1/moderations", json!({"input": "fine"})),
            (
                "/v1/audio/speech",
                json!({"model": "tts-1", "voice": "alloy", "input": "fine"}),
            ),
        ] {
            let r = client()
                .post(format!("http://{addr}{path}"))
                .bearer_auth(bearer)
                .json(&body)
                .send()
                .await
                .unwrap();
            bodies.push_str(&String::from_utf8_lossy(&r.bytes().await.unwrap()));
        }
        for path in [
            "/admin/keys",
            "/admin/usage",
            "/admin/providers",
            "/admin/secrets",
        ] {
            for token in [ADMIN, "wrong"] {
                let r = client()
                    .get(format!("http://{addr}{path}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                bodies.push_str(&r.text().await.unwrap());
            }
        }
        p.terminate().await;
        let (code, out) = p.finish().await;
        assert_eq!(code, Some(0), "{out:?}");
        logs.extend(out);
        dir = Some(p.into_data_dir());
    }
    let logs = logs.join("\n");
    assert!(
        logs.contains(&id),
        "the key's id may be logged, to tell keys apart"
    );
    for secret in [UPSTREAM_KEY, &key, &key[11..], ADMIN, PASSTHROUGH] {
        assert!(!logs.contains(secret), "a credential in the logs: {secret}");
        assert!(
            !bodies.contains(secret),
            "a credential in a response body: {secret}"
        );
    }
}

#[tokio::test]
async fn the_ledgers_older_days_are_summed_by_day_and_report_the_same() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let day_ms = 86_400_000i64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let three_days_ago = now - now.rem_euclid(day_ms) - 3 * day_ms;
    {
        // Six requests three days ago, as an earlier run of the gateway left them.
        let store = reprise_storage::Store::open(dir.path()).unwrap();
        let rows: Vec<reprise_storage::LedgerRow> = (0..6)
            .map(|i| reprise_storage::LedgerRow {
                ts_ms: three_days_ago + i * 1000,
                request_id: format!("old-{i}"),
                key_id: None,
                team: None,
                model: "gpt-4o-mini".into(),
                target: Some("openai".into()),
                prompt_tokens: 10,
                completion_tokens: 5,
                cached_tokens: 0,
                cost_nano_usd: Some(1_500),
                cache: if i % 3 == 0 { "hit" } else { "miss" }.into(),
                saved_tokens: 0,
                saved_nano_usd: None,
            })
            .collect();
        store.append_ledger(&rows).unwrap();
    }
    let config = dir.path().join("reprise.toml");
    std::fs::write(
        &config,
        "ledger_detail_days = 1\n[cache]\nsweep_interval_secs = 1\n",
    )
    .unwrap();
    let base_url = mock.base_url();
    let mut p = Process::spawn_in(
        dir,
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", base_url.as_str()),
            ("REPRISE_CONFIG", config.to_str().unwrap()),
        ],
    );
    let addr = p.listening().await;
    let usage = || async {
        let since = utc_date(three_days_ago);
        client()
            .get(format!("http://{addr}/admin/usage?since={since}"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let before = usage().await;
    assert_eq!(before["requests"], 6);
    let line = p.logged("ledger rows summed into daily totals").await;
    assert_eq!(line["rows"], 6);
    let after = usage().await;
    assert_eq!(before["lines"], after["lines"]);
    assert_eq!(
        (
            &after["requests"],
            &after["cache_hits"],
            &after["prompt_tokens"],
            &after["completion_tokens"]
        ),
        (&json!(6), &json!(2), &json!(60), &json!(30))
    );
    let lines = after["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{after}");
    assert_eq!(lines[0]["day"], utc_date(three_days_ago).as_str());
    p.terminate().await;
    assert_eq!(p.finish().await.0, Some(0));
}

/// `YYYY-MM-DD` of a Unix time in milliseconds (UTC).
fn utc_date(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(ms as u64);
    humantime::format_rfc3339(at).to_string()[..10].to_owned()
}
