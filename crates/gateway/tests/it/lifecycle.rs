//! The real binary end to end: start, log lines, graceful shutdown, and that no secret is ever
//! printed.

use futures_util::StreamExt;
use reprise_test_support::MockUpstream;
use serde_json::Value;

use crate::support::{
    PATIENCE, Process, TlsFront, UPSTREAM_KEY, chat_body, parse_sse, stream_body,
};

#[tokio::test]
async fn sigterm_drains_in_flight_streams_then_exits_zero() {
    let mock = MockUpstream::start().await;
    let gate = mock.hold_last_chunk();
    let base_url = mock.base_url();
    let mut p = Process::spawn(
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", &base_url),
        ],
    );
    let addr = p.listening().await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&stream_body("hi", false))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let first = tokio::time::timeout(PATIENCE, body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut seen = String::from_utf8(first.to_vec()).unwrap();

    p.terminate().await;
    // New connections are refused once shutdown has begun.
    let refused = async {
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(PATIENCE, refused)
        .await
        .expect("still accepting after SIGTERM");

    // The in-flight stream still completes.
    gate.open();
    while let Some(bytes) = body.next().await {
        seen.push_str(std::str::from_utf8(&bytes.unwrap()).unwrap());
    }
    assert_eq!(parse_sse(&seen).last().unwrap(), "[DONE]");
    let (code, out) = p.finish().await;
    assert_eq!(code, Some(0), "{out:?}");
}

#[tokio::test]
async fn one_json_log_line_per_request_and_no_secret_anywhere() {
    let mock = MockUpstream::start().await;
    // A failure whose upstream body is relayed, so error paths are covered too.
    mock.fail_times(1, 401);
    let base_url = mock.base_url();
    let mut p = Process::spawn(
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", &base_url),
            ("REPRISE_LOG", "debug"),
        ],
    );
    let addr = p.listening().await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/chat/completions");
    let mut bodies = Vec::new();
    let mut ids = Vec::new();
    for (i, body) in [
        chat_body("first"),
        chat_body("second"),
        stream_body("third", true),
        serde_json::json!({"model": 1}),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("req-{i}");
        let r = client
            .post(&url)
            .header("x-request-id", &id)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], id.as_str());
        bodies.push(r.text().await.unwrap());
        ids.push(id);
    }
    p.terminate().await;
    let (code, out) = p.finish().await;
    assert_eq!(code, Some(0));

    for line in out.iter().chain(&bodies) {
        assert!(!line.contains(UPSTREAM_KEY), "secret leaked: {line}");
        assert!(!line.contains("UPSTREAM-SECRET"), "secret leaked: {line}");
    }
    let lines: Vec<Value> = out
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(requests.len(), 4, "one line per request: {lines:#?}");
    let expected = [
        (401, false, "error", "miss"),
        (200, false, "ok", "miss"),
        (200, true, "ok", "miss"),
        (400, false, "error", "bypass"),
    ];
    for ((line, id), (status, stream, outcome, cache)) in requests.iter().zip(&ids).zip(expected) {
        assert_eq!(line["request_id"], id.as_str());
        assert_eq!(line["route"], "/v1/chat/completions");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["stream"], stream, "{line}");
        assert_eq!(line["outcome"], outcome, "{line}");
        assert_eq!(line["cache"], cache, "{line}");
        assert!(line["latency_ms"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(requests[1]["provider"], "openai");
    assert_eq!(requests[1]["model"], "gpt-4o-mini");
    assert_eq!(requests[1]["prompt_tokens"], 5);
    assert_eq!(requests[1]["completion_tokens"], 5);
    assert!(requests[1]["upstream_ms"].as_f64().is_some());
    // gpt-4o-mini: $0.15 / $0.60 per million tokens, 5 + 5 tokens.
    let cost = requests[1]["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - (5.0 * 0.15 + 5.0 * 0.60) / 1e6).abs() < 1e-12,
        "{cost}"
    );
    assert_eq!(requests[1]["attempts"][0]["outcome"], "ok");
    assert_eq!(requests[0]["attempts"][0]["outcome"], "HTTP 401");
    assert_eq!(
        requests[2]["completion_tokens"], 5,
        "usage read from the stream's usage chunk"
    );
    assert!(requests[2]["ttfb_ms"].as_f64().is_some());
    // Every line logged while serving a request carries its id.
    for line in &lines {
        if line["message"] == "upstream attempt failed" {
            assert_eq!(line["span"]["request_id"], "req-0", "{line}");
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "upstream attempt failed")
    );
}

/// An outbound proxy named by the environment carries the upstream calls (the upstream's host
/// name only resolves through it), and `NO_PROXY` exempts a host from it.
#[tokio::test]
async fn upstream_calls_go_through_the_proxy_the_environment_names() {
    let mock = MockUpstream::start().await;
    let proxy = format!("http://{}", mock.addr());
    for (no_proxy, status) in [("", 200), ("upstream.invalid", 502)] {
        let mut p = Process::spawn(
            &["serve", "--listen", "127.0.0.1:0"],
            &[
                ("OPENAI_API_KEY", UPSTREAM_KEY),
                ("OPENAI_BASE_URL", "http://upstream.invalid/v1"),
                ("HTTP_PROXY", &proxy),
                ("NO_PROXY", no_proxy),
            ],
        );
        let addr = p.listening().await;
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/v1/chat/completions"))
            .json(&chat_body("through the proxy"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "NO_PROXY={no_proxy:?}");
        p.terminate().await;
        assert_eq!(p.exit_code().await, Some(0));
    }
    // Only the proxied call reached the mock, addressed to the upstream's host.
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].headers["host"], "upstream.invalid");
    assert_eq!(
        requests[0].body["messages"][0]["content"],
        "through the proxy"
    );
}

/// An `https` upstream: the certificate is verified against the trusted roots (here a CA given by
/// `SSL_CERT_FILE`, which the system roots honour), HTTP/2 is negotiated by ALPN, and an upstream
/// whose certificate is not trusted is unreachable (502), never called in the clear.
#[tokio::test]
async fn an_https_upstream_is_verified_and_spoken_to_over_http2() {
    let mock = MockUpstream::start().await;
    let front = TlsFront::start(mock.addr()).await;
    let base_url = format!("https://localhost:{}/v1", front.port);
    let ca_file = front.ca_file.to_string_lossy().into_owned();
    let trusted = [("SSL_CERT_FILE", ca_file.as_str())];
    for (trust, status) in [(&trusted[..], 200), (&[][..], 502)] {
        let mut vars = vec![
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", base_url.as_str()),
        ];
        vars.extend_from_slice(trust);
        let mut p = Process::spawn(&["serve", "--listen", "127.0.0.1:0"], &vars);
        let addr = p.listening().await;
        let client = reqwest::Client::new();
        for content in ["first", "second"] {
            let response = client
                .post(format!("http://{addr}/v1/chat/completions"))
                .json(&chat_body(content))
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status().as_u16(),
                status,
                "trusted: {}",
                !trust.is_empty()
            );
        }
        p.terminate().await;
        assert_eq!(p.exit_code().await, Some(0));
    }
    // Both trusted requests reached the mock over one pooled HTTP/2 connection; the untrusted
    // gateway's handshakes failed before any request was sent.
    assert_eq!(mock.requests().len(), 2);
    assert_eq!(front.negotiated(), vec![Some("h2".to_owned())]);
}
