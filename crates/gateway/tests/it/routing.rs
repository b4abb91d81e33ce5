//! Aliases, retries, failover and the circuit breaker, against mock upstreams with scripted
//! faults.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reprise_test_support::MockUpstream;
use serde_json::{Value, json};

use crate::support::{Gateway, UPSTREAM_KEY, chat_body, parse_sse, stream_body};

/// Targets `a`, `b`, `c`... (one per mock) behind the alias `smart`, tried in that order. The
/// cache is off: these tests are about upstream calls.
fn config(mocks: &[&MockUpstream], extra: &str) -> String {
    let mut toml = String::from("[cache]\nenabled = false\n");
    toml.push_str(extra);
    let mut members = Vec::new();
    for (i, mock) in mocks.iter().enumerate() {
        let name = (b'a' + i as u8) as char;
        toml.push_str(&format!(
            "\n[[targets]]\nname = \"{name}\"\nbase_url = \"{}\"\napi_key_env = \"KEY\"\nfirst_byte_timeout_ms = 300\nstream_idle_timeout_ms = 300\n",
            mock.base_url()
        ));
        members.push(format!("{{ target = \"{name}\", model = \"up-{name}\" }}"));
    }
    toml.push_str(&format!(
        "\n[aliases.smart]\nstrategy = \"priority\"\ntargets = [{}]\n",
        members.join(", ")
    ));
    toml
}

async fn gateway(mocks: &[&MockUpstream], extra: &str) -> Gateway {
    Gateway::with_env(&config(mocks, extra), &[("KEY", UPSTREAM_KEY)]).await
}

fn smart(content: &str) -> Value {
    let mut body = chat_body(content);
    body["model"] = json!("smart");
    body
}

#[tokio::test]
async fn a_failed_target_fails_over_to_the_next() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let gw = gateway(&[&a, &b], "").await;
    a.fail_times(1, 500);
    let r = gw.chat(&smart("Hi")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "b");
    assert_eq!(r.headers()["x-reprise-attempts"], "2");
    assert_eq!(a.requests().len(), 1);
    assert_eq!(
        a.requests()[0].body["model"],
        "up-a",
        "the alias's model for a"
    );
    assert_eq!(b.requests()[0].body["model"], "up-b");
    // The next request starts at `a` again (one failure does not open its breaker).
    let r = gw.chat(&smart("Hi")).await;
    assert_eq!(r.headers()["x-reprise-provider"], "a");
}

#[tokio::test]
async fn every_kind_of_transient_failure_is_retried() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let gw = gateway(&[&a, &b], "[routing]\nbreaker_failures = 20\n").await;
    type Fault = fn(&MockUpstream);
    let faults: [(&str, Fault); 5] = [
        ("503", |m| {
            m.fail_times(1, 503);
        }),
        ("429", |m| {
            m.rate_limit(1, Duration::from_millis(10));
        }),
        ("reset", |m| {
            m.reset_after_chunks(0);
        }),
        ("slow first byte", |m| {
            m.delay_first_byte(Duration::from_secs(3));
        }),
        ("stall", |m| {
            m.stall();
        }),
    ];
    for (name, fault) in faults {
        fault(&a);
        let r = gw.chat(&smart("Hi")).await;
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.headers()["x-reprise-provider"], "b", "{name}");
    }
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let gw = gateway(&[&a, &b], "").await;
    a.fail_times(1, 400);
    let r = gw.chat(&smart("Hi")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-reprise-provider"], "a");
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        e["error"]["code"], "mock_failure",
        "the upstream's own error"
    );
    assert!(b.requests().is_empty());
}

#[tokio::test]
async fn when_every_target_fails_the_error_lists_each_attempt() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let gw = gateway(&[&a, &b], "[routing]\nmax_attempts = 2\n").await;
    a.fail_times(1, 500);
    b.stall();
    let r = gw.chat(&smart("Hi")).await;
    assert_eq!(r.status(), 503);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "all_targets_failed");
    assert_eq!(
        e["error"]["message"],
        "Every upstream attempt failed: a (up-a): HTTP 500; b (up-b): timed out"
    );

    // All of them rate-limited: a 429 the client can tell from the gateway's own limits.
    a.rate_limit(1, Duration::from_secs(2));
    b.rate_limit(1, Duration::from_secs(3));
    let r = gw.chat(&smart("Hi")).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "upstream_rate_limited");
}

#[tokio::test]
async fn a_single_target_is_retried_after_its_retry_after() {
    let a = MockUpstream::start().await;
    let gw = gateway(&[&a], "").await;
    a.rate_limit(1, Duration::from_millis(400));
    let started = Instant::now();
    let r = gw.chat(&smart("Hi")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(a.requests().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the retry waited for Retry-After"
    );

    // Out of attempts on one target: its own last answer.
    a.fail_times(3, 502);
    let r = gw.chat(&smart("Hi")).await;
    assert_eq!(r.status(), 502);
    assert_eq!(a.requests().len(), 5);
}

#[tokio::test]
async fn the_breaker_skips_a_failing_target_then_probes_it() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let gw = gateway(
        &[&a, &b],
        "[routing]\nbreaker_failures = 2\nbreaker_cooldown_ms = 600\n",
    )
    .await;
    a.fail_times(2, 500);
    for _ in 0..2 {
        assert_eq!(
            gw.chat(&smart("Hi")).await.headers()["x-reprise-provider"],
            "b"
        );
    }
    assert_eq!(a.requests().len(), 2);
    let providers = gw.get_json("/admin/providers").await;
    assert_eq!(providers["targets"][0]["state"], "cooling_down");
    assert_eq!(providers["targets"][1]["state"], "healthy");
    assert_eq!(providers["aliases"][0]["strategy"], "priority");

    // Open: `a` is not even tried.
    let r = gw.chat(&smart("Hi")).await;
    assert_eq!(r.headers()["x-reprise-provider"], "b");
    assert!(r.headers().get("x-reprise-attempts").is_none());
    assert_eq!(a.requests().len(), 2);

    // After the cool-down one probe decides; `a` answers, so it is back.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        gw.get_json("/admin/providers").await["targets"][0]["state"],
        "probing"
    );
    assert_eq!(
        gw.chat(&smart("Hi")).await.headers()["x-reprise-provider"],
        "a"
    );
    assert_eq!(
        gw.get_json("/admin/providers").await["targets"][0]["state"],
        "healthy"
    );
}

#[tokio::test]
async fn a_target_cooling_down_is_still_used_when_nothing_else_is_left() {
    let a = MockUpstream::start().await;
    let gw = gateway(
        &[&a],
        "[routing]\nbreaker_failures = 1\nbreaker_cooldown_ms = 60000\nmax_attempts = 1\n",
    )
    .await;
    a.fail_times(1, 500);
    assert_eq!(gw.chat(&smart("Hi")).await.status(), 500);
    assert_eq!(gw.chat(&smart("Hi")).await.status(), 200);
}

#[tokio::test]
async fn a_stream_fails_over_until_its_first_content() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let gw = gateway(&[&a, &b], "").await;
    // `a` sends its role chunk, then the connection drops: nothing with content was sent, so
    // the client gets b's whole stream and never sees a's failure.
    a.reset_after_chunks(1);
    let r = gw
        .chat(&{
            let mut b = stream_body("Hi", false);
            b["model"] = json!("smart");
            b
        })
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "b");
    let events = parse_sse(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(!events.iter().any(|e| e.contains("\"error\"")));
    let roles = events.iter().filter(|e| e.contains("\"role\"")).count();
    assert_eq!(roles, 1, "a's held role chunk was dropped with it");

    // After content went out, a failure is the client's to see: no failover, an error event.
    a.reset_after_chunks(3);
    let r = gw
        .chat(&{
            let mut b = stream_body("Hi", false);
            b["model"] = json!("smart");
            b
        })
        .await;
    assert_eq!(r.headers()["x-reprise-provider"], "a");
    let mut body = r.bytes_stream();
    let mut text = String::new();
    while let Some(Ok(bytes)) = body.next().await {
        text.push_str(std::str::from_utf8(&bytes).unwrap());
    }
    let events = parse_sse(&text);
    assert!(events.last().unwrap().contains("upstream_stream_truncated"));
    assert_eq!(b.requests().len(), 1);
}

#[tokio::test]
async fn the_deadline_bounds_every_attempt_together() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let gw = gateway(
        &[&a, &b],
        "[routing]\ndeadline_ms = 500\nmax_attempts = 5\n",
    )
    .await;
    for m in [&a, &b] {
        for _ in 0..3 {
            m.delay_first_byte(Duration::from_millis(400));
        }
    }
    let started = Instant::now();
    let r = gw.chat(&smart("Hi")).await;
    let took = started.elapsed();
    assert!(r.status().is_server_error(), "{}", r.status());
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn aliases_are_listed_as_models() {
    let a = MockUpstream::builder().models(&["up-a"]).start().await;
    let gw = gateway(&[&a], "").await;
    let models = gw.get_json("/v1/models").await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"smart"), "{ids:?}");
    assert!(ids.contains(&"up-a"), "{ids:?}");
}

/// Three targets failing at random (errors, rate limits, stalls, resets), one of them only
/// rarely; 2,000 requests with bounded concurrency: every request gets the right answer, and
/// none hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos() {
    const REQUESTS: usize = 2000;
    let reply = "The chaos answer.";
    let mut mocks = Vec::new();
    for _ in 0..3 {
        mocks.push(
            MockUpstream::builder()
                .reply(reply)
                .record(false)
                .start()
                .await,
        );
    }
    fastrand::seed(7);
    // Each mock's script: a fault for a share of the requests it will see.
    for (mock, rate) in mocks.iter().zip([0.5, 0.5, 0.05]) {
        for _ in 0..REQUESTS {
            if fastrand::f64() >= rate {
                mock.push(reprise_test_support::Step::Delay(Duration::ZERO));
                continue;
            }
            match fastrand::u8(0..4) {
                0 => {
                    mock.fail_times(1, 503);
                }
                1 => {
                    mock.rate_limit(1, Duration::from_millis(50));
                }
                2 => {
                    mock.stall();
                }
                _ => {
                    mock.reset_after_chunks(0);
                }
            }
        }
    }
    let refs: Vec<&MockUpstream> = mocks.iter().collect();
    let gw = gateway(
        &refs,
        "[routing]\ndeadline_ms = 3000\nmax_attempts = 10\nbackoff_initial_ms = 10\nbackoff_max_ms = 50\nbreaker_cooldown_ms = 200\n",
    )
    .await;
    let deadline = Duration::from_millis(3000);
    // One client for all (building one per request costs more than the request).
    let client = reqwest::Client::new();
    let url = gw.url("/v1/chat/completions");
    let slowest = futures_util::stream::iter(0..REQUESTS)
        .map(|i| {
            let (client, url) = (&client, &url);
            async move {
                let started = Instant::now();
                let r = client
                    .post(url)
                    .json(&smart(&format!("chaos {i}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "request {i}");
                let c: Value = r.json().await.unwrap();
                assert_eq!(c["choices"][0]["message"]["content"], reply, "request {i}");
                started.elapsed()
            }
        })
        .buffer_unordered(32)
        .fold(Duration::ZERO, |max, took| async move { max.max(took) })
        .await;
    // No request hangs: each ends within its deadline, plus the time to deliver the winning
    // answer on a machine that runs the rest of the suite beside it (half a second of slack
    // failed once in a full run on two cores). `the_deadline_bounds_every_attempt_together`
    // holds the deadline itself to account.
    assert!(slowest < deadline + Duration::from_secs(2), "{slowest:?}");
}

#[tokio::test]
async fn provider_list_and_health_from_the_cli() {
    use crate::support::Process;
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let gw = gateway(&[&a, &b], "").await;
    let addr = gw.addr.to_string();

    let (code, out) = Process::spawn(&["provider", "list", "--gateway", &addr], &[])
        .finish()
        .await;
    assert_eq!(code, Some(0), "{out:?}");
    let listed: Value = serde_json::from_str(&out.join("\n")).unwrap();
    assert_eq!(listed["targets"][0]["name"], "a");
    assert_eq!(listed["targets"][0]["provider"], "openai");
    assert_eq!(listed["targets"][0]["state"], "healthy");
    assert_eq!(listed["aliases"][0]["targets"][1]["model"], "up-b");
    assert!(!out.join("\n").contains(UPSTREAM_KEY));

    let (code, out) = Process::spawn(&["provider", "health", "--gateway", &addr], &[])
        .finish()
        .await;
    assert_eq!(code, Some(0), "{out:?}");
    let probed: Value = serde_json::from_str(&out.join("\n")).unwrap();
    assert_eq!(probed["targets"][1]["ok"], true);
    assert_eq!(probed["targets"][1]["models"], 2);

    // A target that fails its probe: reported, and the command fails.
    a.fail_times(1, 401);
    let (code, out) = Process::spawn(&["provider", "health", "--gateway", &addr], &[])
        .finish()
        .await;
    assert_eq!(code, Some(1), "{out:?}");
    let (errors, json): (Vec<String>, Vec<String>) =
        out.into_iter().partition(|l| l.starts_with("error:"));
    assert_eq!(errors, ["error: at least one target failed its probe"]);
    let probed: Value = serde_json::from_str(&json.join("\n")).unwrap();
    assert_eq!(probed["targets"][0]["ok"], false);
    assert_eq!(probed["targets"][0]["error"], "HTTP 401");
}

#[tokio::test]
async fn a_malformed_stream_event_fails_over_before_content() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let gw = gateway(&[&a, &b], "").await;
    a.respond_events(vec![(None, "{\"choices\": [ not json".to_owned())]);
    let mut body = stream_body("Hi", false);
    body["model"] = json!("smart");
    let r = gw.chat(&body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "b");
    let events = parse_sse(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(
        events
            .iter()
            .all(|e| e == "[DONE]" || serde_json::from_str::<Value>(e).is_ok())
    );
}

#[tokio::test]
async fn embeddings_fail_over_too() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let gw = gateway(&[&a, &b], "").await;
    a.fail_times(1, 503);
    let r = crate::support::client()
        .post(gw.url("/v1/embeddings"))
        .json(&json!({"model": "smart", "input": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "b");
    assert_eq!(r.headers()["x-reprise-attempts"], "2");
    assert_eq!(b.requests()[0].path, "/v1/embeddings");
    assert_eq!(b.requests()[0].body["model"], "up-b");
}

#[tokio::test]
async fn a_connect_timeout_fails_over() {
    // A listener that never accepts, its queue filled: further connection attempts hang in the
    // handshake, which only the connect timeout ends.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let attempt = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        match attempt {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    let b = MockUpstream::start().await;
    let toml = format!(
        "[cache]\nenabled = false\n[[targets]]\nname = \"a\"\nbase_url = \"http://{addr}/v1\"\napi_key_env = \"KEY\"\nconnect_timeout_ms = 300\n[[targets]]\nname = \"b\"\nbase_url = \"{}\"\napi_key_env = \"KEY\"\n[aliases.smart]\ntargets = [{{ target = \"a\" }}, {{ target = \"b\" }}]\n",
        b.base_url()
    );
    let gw = Gateway::with_env(&toml, &[("KEY", UPSTREAM_KEY)]).await;
    let started = Instant::now();
    let r = gw.chat(&smart("Hi")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-reprise-provider"], "b");
    assert_eq!(r.headers()["x-reprise-attempts"], "2");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "a's connect timed out first"
    );
    drop(listener);
}
